package main

import (
	"bytes"
	"context"
	"github.com/billflow/billflow/internal/testkit"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/rails/lightning"
	"github.com/billflow/billflow/rails/nwc"
	"github.com/billflow/billflow/sandbox/lnnode"
	"github.com/billflow/billflow/sandbox/relay"
)

// syncBuffer collects a command's output while the test reads it.
type syncBuffer = testkit.SyncBuffer

// startRun runs the command until the test ends or stop is called, and
// waits for its stdout announcement.
func startRun(t *testing.T, args []string) (stdout, stderr *syncBuffer, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr = &syncBuffer{}, &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, func(string) string { return "" }, stdout, stderr) }()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			require.NoError(t, <-done)
		}
	}
	t.Cleanup(stop)
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(stdout.String(), "NWC_URL_FILE=") {
		select {
		case err := <-done:
			t.Fatalf("run ended early: %v\n%s", err, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no announcement; stderr:\n%s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return stdout, stderr, stop
}

func TestRunServesAndKeepsItsIdentity(t *testing.T) {
	r := relay.New(relay.Options{})
	relayURL, err := r.Start(context.Background(), "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(r.Close)

	lnDir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	node, err := lnnode.Start(ctx, lnnode.Options{DataDir: lnDir})
	require.NoError(t, err)
	t.Cleanup(func() { _ = node.Close() })
	pay := httptest.NewServer(node.PayHandler())
	t.Cleanup(pay.Close)
	env := strings.Join([]string{
		"LNNODE_GRPC_ADDR=" + node.Addr(),
		"LNNODE_TLS_CERT=" + node.TLSCertPath(),
		"LNNODE_MACAROON=" + node.MacaroonPath(),
		"LNNODE_PAY_URL=" + pay.URL + "/pay",
		"LNNODE_NETWORK=" + node.Network().Name,
	}, "\n") + "\n"
	require.NoError(t, os.WriteFile(filepath.Join(lnDir, lnnodeEnv), []byte(env), 0o600))
	lnd, err := lightning.New(node.ClientConfig())
	require.NoError(t, err)
	t.Cleanup(func() { _ = lnd.Close() })

	dir := t.TempDir()
	args := []string{"--dir", dir, "--relay", relayURL, "--lnnode-dir", lnDir, "--balance-msat", "50000", "-v"}
	stdout, stderr, stop := startRun(t, args)

	urlPath := filepath.Join(dir, urlFile)
	st, err := os.Stat(urlPath)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o600), st.Mode().Perm(), "the URL file holds secrets")
	raw, err := os.ReadFile(urlPath)
	require.NoError(t, err)
	connURL := strings.TrimSpace(string(raw))
	conn, err := nwc.ParseURL(connURL)
	require.NoError(t, err)
	secret := connURL[strings.Index(connURL, "secret=")+len("secret=") : strings.Index(connURL, "secret=")+len("secret=")+64]

	c, err := nwc.NewClient(conn)
	require.NoError(t, err)
	inv, err := lnd.CreateInvoice(ctx, lightning.CreateInvoiceRequest{AmountMsat: 20_000, Expiry: time.Hour})
	require.NoError(t, err)
	_, err = c.PayInvoice(ctx, nwc.PayInvoiceRequest{Invoice: inv.PaymentRequest})
	require.NoError(t, err)
	got, err := lnd.LookupInvoice(ctx, inv.PaymentHash)
	require.NoError(t, err)
	assert.True(t, got.Settled)
	made, err := c.MakeInvoice(ctx, nwc.MakeInvoiceRequest{AmountMsat: 1_000})
	require.NoError(t, err)
	assert.NotEmpty(t, made.Invoice)
	require.NoError(t, c.Close())

	stop()
	for _, out := range []string{stdout.String(), stderr.String()} {
		assert.NotContains(t, out, secret)
	}
	assert.Contains(t, stdout.String(), "NWC_URL_FILE="+urlPath)

	// A restart keeps the key and the authorised clients: the old URL works.
	startRun(t, args)
	raw2, err := os.ReadFile(urlPath)
	require.NoError(t, err)
	assert.Equal(t, string(raw), string(raw2), "no new URL is minted on restart")
	c2, err := nwc.NewClient(conn)
	require.NoError(t, err)
	defer func() { _ = c2.Close() }()
	bal, err := c2.GetBalance(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(50_000), bal.BalanceMsat, "the balance resets at each start")
}

func TestRunNeedsDirAndRelay(t *testing.T) {
	var stderr bytes.Buffer
	err := run(context.Background(), []string{"--dir", t.TempDir()}, func(string) string { return "" }, &bytes.Buffer{}, &stderr)
	require.Error(t, err)
	assert.Contains(t, stderr.String(), "Usage:")
}

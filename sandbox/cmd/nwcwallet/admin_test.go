package main

import (
	"context"
	"io"
	"net/http"
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

func post(t *testing.T, url, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// TestFaultSwitches runs the wallet with --admin-addr and a reply delay:
// a payment is made but its answer comes after the client gave up (the
// outcome-unknown window), silence leaves requests undone, and reset
// brings answers back.
func TestFaultSwitches(t *testing.T) {
	r := relay.New(relay.Options{})
	relayURL, err := r.Start(context.Background(), "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(r.Close)
	lnDir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	node, err := lnnode.Start(ctx, lnnode.Options{DataDir: lnDir})
	require.NoError(t, err)
	t.Cleanup(func() { _ = node.Close() })
	pay := httptest.NewServer(node.PayHandler())
	t.Cleanup(pay.Close)
	env := "LNNODE_GRPC_ADDR=" + node.Addr() + "\nLNNODE_TLS_CERT=" + node.TLSCertPath() + "\nLNNODE_MACAROON=" + node.MacaroonPath() +
		"\nLNNODE_PAY_URL=" + pay.URL + "/pay\nLNNODE_NETWORK=" + node.Network().Name + "\n"
	require.NoError(t, os.WriteFile(filepath.Join(lnDir, lnnodeEnv), []byte(env), 0o600))
	lnd, err := lightning.New(node.ClientConfig())
	require.NoError(t, err)
	t.Cleanup(func() { _ = lnd.Close() })

	dir := t.TempDir()
	stdout, _, _ := startRun(t, []string{"--dir", dir, "--relay", relayURL, "--lnnode-dir", lnDir,
		"--admin-addr", "127.0.0.1:0", "--reply-delay", "1h"})
	var adminURL string
	for _, l := range strings.Split(stdout.String(), "\n") {
		if v, ok := strings.CutPrefix(l, "NWC_ADMIN_URL="); ok {
			adminURL = v
		}
	}
	require.NotEmpty(t, adminURL, "NWC_ADMIN_URL announced:\n%s", stdout.String())
	raw, err := os.ReadFile(filepath.Join(dir, urlFile))
	require.NoError(t, err)
	conn, err := nwc.ParseURL(strings.TrimSpace(string(raw)))
	require.NoError(t, err)
	c, err := nwc.NewClient(conn)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })

	// Late: the wallet pays, the answer never reaches a client that waits
	// two seconds.
	inv, err := lnd.CreateInvoice(ctx, lightning.CreateInvoiceRequest{AmountMsat: 20_000, Expiry: time.Hour})
	require.NoError(t, err)
	short, stopShort := context.WithTimeout(ctx, 2*time.Second)
	_, err = c.PayInvoice(short, nwc.PayInvoiceRequest{Invoice: inv.PaymentRequest})
	stopShort()
	require.Error(t, err, "no answer within the client's timeout")
	got, err := lnd.LookupInvoice(ctx, inv.PaymentHash)
	require.NoError(t, err)
	assert.True(t, got.Settled, "the payment was made all the same")

	// Silent: nothing is answered and nothing done.
	code, body := post(t, adminURL+"/_sandbox/faults", `{"reply_delay":"0s","silent":true}`)
	require.Equal(t, http.StatusOK, code, body)
	assert.Contains(t, body, `"reply_delay":"0s","silent":true,"drop_next":0`)
	inv2, err := lnd.CreateInvoice(ctx, lightning.CreateInvoiceRequest{AmountMsat: 10_000, Expiry: time.Hour})
	require.NoError(t, err)
	short, stopShort = context.WithTimeout(ctx, 2*time.Second)
	_, err = c.PayInvoice(short, nwc.PayInvoiceRequest{Invoice: inv2.PaymentRequest})
	stopShort()
	require.Error(t, err)
	got, err = lnd.LookupInvoice(ctx, inv2.PaymentHash)
	require.NoError(t, err)
	assert.False(t, got.Settled, "a silent wallet pays nothing")

	// Reset: answers again, at once; the balance is set at run time.
	code, body = post(t, adminURL+"/_sandbox/reset", ``)
	require.Equal(t, http.StatusOK, code, body)
	code, body = post(t, adminURL+"/_sandbox/faults", `{"balance_msat":123456789}`)
	require.Equal(t, http.StatusOK, code, body)
	assert.Contains(t, body, `"balance_msat":123456789`)
	bal, err := c.GetBalance(ctx)
	require.NoError(t, err)
	assert.Equal(t, int64(123456789), bal.BalanceMsat)

	code, body = post(t, adminURL+"/_sandbox/faults", `{"reply_delay":"soon"}`)
	assert.Equal(t, http.StatusBadRequest, code)
	assert.Contains(t, body, "reply_delay")
	code, _ = post(t, adminURL+"/_sandbox/faults", `{"delay":"1s"}`)
	assert.Equal(t, http.StatusBadRequest, code, "unknown fields are refused")
}

func TestAdminAddrMustBeLoopback(t *testing.T) {
	_, err := serveAdmin(t.Context(), "0.0.0.0:0", newAdmin(nil, 0, false))
	require.ErrorContains(t, err, "loopback")
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/billflow/billflow/rails/lightning"
	"github.com/billflow/billflow/sandbox/lnnode"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// notifyWriter collects output and signals the first write.
type notifyWriter struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	once  sync.Once
	wrote chan struct{}
}

func (w *notifyWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	defer w.once.Do(func() { close(w.wrote) })
	return w.buf.Write(p)
}

func (w *notifyWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

func TestServeAndPayByHand(t *testing.T) {
	dir := t.TempDir()
	ctx, stop := context.WithCancel(t.Context())
	out := &notifyWriter{wrote: make(chan struct{})}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve", "--dir", dir}, out, io.Discard) }()
	select {
	case <-out.wrote:
	case err := <-done:
		t.Fatalf("serve ended early: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("serve printed nothing (hang guard)")
	}

	vars := map[string]string{}
	for line := range strings.SplitSeq(strings.TrimSpace(out.String()), "\n") {
		k, v, ok := strings.Cut(line, "=")
		require.True(t, ok, line)
		vars[k] = v
	}
	assert.Equal(t, "regtest", vars["LNNODE_NETWORK"])
	for _, k := range []string{"LNNODE_GRPC_ADDR", "LNNODE_TLS_CERT", "LNNODE_MACAROON", "LNNODE_PAYOUT_MACAROON", "LNNODE_PAY_URL", "LNNODE_PAYEE_URL", "LNNODE_PUBKEY", "LNNODE_PAYEE_PUBKEY"} {
		assert.NotEmpty(t, vars[k], k)
	}

	// A client configured from the files, as dev mode does.
	c, err := lightning.New(lightning.Config{Address: vars["LNNODE_GRPC_ADDR"], TLSCertPath: vars["LNNODE_TLS_CERT"], MacaroonPath: vars["LNNODE_MACAROON"]})
	require.NoError(t, err)
	defer c.Close()
	inv, err := c.CreateInvoice(t.Context(), lightning.CreateInvoiceRequest{AmountMsat: 12_000, Expiry: time.Hour})
	require.NoError(t, err)

	var paid bytes.Buffer
	require.NoError(t, run(t.Context(), []string{"pay", "--dir", dir, inv.PaymentRequest}, &paid, io.Discard))
	var resp lnnode.PayResponse
	require.NoError(t, json.Unmarshal(paid.Bytes(), &resp))
	assert.Equal(t, inv.PaymentHash, resp.PaymentHash)

	err = run(t.Context(), []string{"pay", "--url", vars["LNNODE_PAY_URL"], inv.PaymentRequest}, io.Discard, io.Discard)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "409")

	got, err := c.LookupInvoice(t.Context(), inv.PaymentHash)
	require.NoError(t, err)
	assert.Equal(t, int64(12_000), got.AmtPaidMsat)

	// A payout: the payee's invoice, paid by a client with the payout
	// macaroon file, as the dev worker is configured.
	var made bytes.Buffer
	require.NoError(t, run(t.Context(), []string{"payee-invoice", "--dir", dir, "--memo", "withdrawal", "--expiry", "10m", "25000"}, &made, io.Discard))
	var payee lnnode.PayeeInvoiceResponse
	require.NoError(t, json.Unmarshal(made.Bytes(), &payee))
	d, err := lightning.ValidateBOLT11(payee.PaymentRequest, lightning.Expectation{Network: &chaincfg.RegressionNetParams, AmountMsat: 25_000, Payee: vars["LNNODE_PAYEE_PUBKEY"]})
	require.NoError(t, err)
	assert.Equal(t, payee.PaymentHash, d.PaymentHash)
	payer, err := lightning.New(lightning.Config{Address: vars["LNNODE_GRPC_ADDR"], TLSCertPath: vars["LNNODE_TLS_CERT"],
		MacaroonPath: vars["LNNODE_MACAROON"], PayoutMacaroonPath: vars["LNNODE_PAYOUT_MACAROON"]})
	require.NoError(t, err)
	defer payer.Close()
	p, err := payer.PayInvoice(t.Context(), lightning.PayRequest{BOLT11: payee.PaymentRequest})
	require.NoError(t, err)
	assert.Equal(t, lightning.StatusSucceeded, p.Status)

	stop()
	assert.NoError(t, <-done)
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"serve"},
		{"serve", "--dir", t.TempDir(), "--network", "mainnet"},
		{"pay", "lnbcrt1"},
		{"pay", "--dir", t.TempDir(), "lnbcrt1"}, // no lnnode.env there
		{"payee-invoice", "--url", "http://127.0.0.1:1/payee/invoices", "-5"},
		{"payee-invoice", "--url", "http://127.0.0.1:1/payee/invoices", "--expiry", "1500ms", "1000"},
		{"payee-invoice", "1000"},
		{"frobnicate"},
	} {
		err := run(t.Context(), args, io.Discard, io.Discard)
		assert.Error(t, err, "%v", args)
	}
	assert.NoError(t, run(t.Context(), []string{"help"}, io.Discard, io.Discard))
}

package lightning_test

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/billflow/billflow/rails/lightning"
	"github.com/billflow/billflow/sandbox/lnnode"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// These tests run the production client against the sandbox node over a
// real TLS socket; the sandbox's own behaviour is tested in its package.

const guard = 30 * time.Second // hang guard only, never a speed assertion

func sandbox(t *testing.T) (*lnnode.Node, *lightning.LND) {
	t.Helper()
	node, err := lnnode.Start(t.Context(), lnnode.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = node.Close() })
	c, err := lightning.New(node.ClientConfig())
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return node, c
}

func TestNewRejectsBadConfig(t *testing.T) {
	node, _ := sandbox(t)
	good := node.ClientConfig()
	dir := t.TempDir()
	certFile := filepath.Join(dir, "tls.cert")
	require.NoError(t, os.WriteFile(certFile, node.TLSCertPEM(), 0o600))
	junk := filepath.Join(dir, "junk")
	require.NoError(t, os.WriteFile(junk, []byte("not a certificate, not a macaroon"), 0o600))
	// A secret-looking value that must not be echoed back.
	const badHex = "0201036c6e6402f801zz"

	for _, tc := range []struct {
		name string
		edit func(*lightning.Config)
	}{
		{"no address", func(c *lightning.Config) { c.Address = "" }},
		{"no certificate", func(c *lightning.Config) { c.TLSCertPEM = nil }},
		{"two certificates", func(c *lightning.Config) { c.TLSCertPath = certFile }},
		{"certificate not PEM", func(c *lightning.Config) {
			c.TLSCertPEM = []byte("-----BEGIN CERTIFICATE-----\nMIIB" + badHex + "\n-----END CERTIFICATE-----\n")
		}},
		{"certificate file not PEM", func(c *lightning.Config) { c.TLSCertPEM, c.TLSCertPath = nil, junk }},
		{"no macaroon", func(c *lightning.Config) { c.MacaroonHex = "" }},
		{"two macaroons", func(c *lightning.Config) { c.MacaroonPath = junk }},
		{"macaroon not hex", func(c *lightning.Config) { c.MacaroonHex = badHex }},
		{"macaroon not a macaroon", func(c *lightning.Config) { c.MacaroonHex = "00112233" }},
		{"macaroon file not a macaroon", func(c *lightning.Config) { c.MacaroonHex, c.MacaroonPath = "", junk }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			tc.edit(&cfg)
			_, err := lightning.New(cfg)
			require.ErrorIs(t, err, lightning.ErrInvalidRequest)
			assert.NotContains(t, err.Error(), badHex)
			assert.NotContains(t, err.Error(), "zz")
			assert.NotContains(t, err.Error(), good.MacaroonHex[:16])
		})
	}

	cfg := good
	cfg.TLSCertPEM, cfg.TLSCertPath = nil, filepath.Join(dir, "missing.cert")
	_, err := lightning.New(cfg)
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func TestMacaroonFileBinaryOrHex(t *testing.T) {
	node, _ := sandbox(t)
	raw, err := hex.DecodeString(node.MacaroonHex())
	require.NoError(t, err)
	dir := t.TempDir()
	for name, content := range map[string][]byte{
		"binary, as lnd writes it": raw,
		"hex text":                 []byte(node.MacaroonHex() + "\n"),
		"upper-case hex":           []byte(strings.ToUpper(node.MacaroonHex())),
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, "m")
			require.NoError(t, os.WriteFile(path, content, 0o600))
			cfg := node.ClientConfig()
			cfg.MacaroonHex, cfg.MacaroonPath = "", path
			c, err := lightning.New(cfg)
			require.NoError(t, err)
			defer c.Close()
			_, err = c.CreateInvoice(t.Context(), lightning.CreateInvoiceRequest{AmountMsat: 1000})
			require.NoError(t, err)
		})
	}
}

func TestCreateInvoiceChecksRequests(t *testing.T) {
	_, c := sandbox(t)
	ctx := t.Context()
	for _, req := range []lightning.CreateInvoiceRequest{
		{AmountMsat: 0},
		{AmountMsat: -5},
		{AmountMsat: 1, Memo: strings.Repeat("m", 1025)},
		{AmountMsat: 1, Expiry: -time.Second},
		{AmountMsat: 1, Expiry: 366 * 24 * time.Hour},
	} {
		_, err := c.CreateInvoice(ctx, req)
		assert.ErrorIs(t, err, lightning.ErrInvalidRequest, "%+v", req)
	}

	// lnd counts whole seconds: a fraction rounds up, never down.
	inv, err := c.CreateInvoice(ctx, lightning.CreateInvoiceRequest{AmountMsat: 1, Expiry: 1500 * time.Millisecond})
	require.NoError(t, err)
	assert.Equal(t, 2*time.Second, inv.ExpiresAt.Sub(inv.CreatedAt))
	// Zero keeps lnd's default of 24 hours.
	inv, err = c.CreateInvoice(ctx, lightning.CreateInvoiceRequest{AmountMsat: 1})
	require.NoError(t, err)
	assert.Equal(t, 24*time.Hour, inv.ExpiresAt.Sub(inv.CreatedAt))
}

func TestCreateInvoiceChecksTheNodesNetwork(t *testing.T) {
	node, _ := sandbox(t) // a regtest node
	cfg := node.ClientConfig()
	cfg.Network = &chaincfg.SimNetParams // but the engine expects simnet
	c, err := lightning.New(cfg)
	require.NoError(t, err)
	defer c.Close()
	_, err = c.CreateInvoice(t.Context(), lightning.CreateInvoiceRequest{AmountMsat: 1000})
	var bad *lightning.InvalidInvoiceError
	require.ErrorAs(t, err, &bad)
	assert.Equal(t, lightning.ReasonWrongNetwork, bad.Reason)
}

func TestLookupInvoiceErrors(t *testing.T) {
	_, c := sandbox(t)
	_, err := c.LookupInvoice(t.Context(), strings.Repeat("ab", 32))
	assert.ErrorIs(t, err, lightning.ErrInvoiceNotFound)
	for _, hash := range []string{"", "abcd", strings.Repeat("zz", 32), strings.Repeat("ab", 33)} {
		_, err = c.LookupInvoice(t.Context(), hash)
		assert.ErrorIs(t, err, lightning.ErrInvalidRequest, hash)
		assert.NotErrorIs(t, err, lightning.ErrInvoiceNotFound)
	}
}

func TestCallsEndWithTheirContext(t *testing.T) {
	_, c := sandbox(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := c.CreateInvoice(ctx, lightning.CreateInvoiceRequest{AmountMsat: 1000})
	assert.ErrorIs(t, err, context.Canceled)
	var rpcErr *lightning.RPCError
	require.ErrorAs(t, err, &rpcErr)
	assert.Equal(t, "AddInvoice", rpcErr.Method)

	_, err = c.LookupInvoice(ctx, strings.Repeat("ab", 32))
	assert.ErrorIs(t, err, context.Canceled)
	err = c.SubscribeSettled(ctx, 0, func(lightning.Invoice) error { return nil })
	assert.ErrorIs(t, err, context.Canceled)
}

func TestUnreachableNodeIsRetryable(t *testing.T) {
	node, _ := sandbox(t)
	// A port nobody listens on: bind one, then release it.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := lis.Addr().String()
	require.NoError(t, lis.Close())

	cfg := node.ClientConfig()
	cfg.Address = addr
	c, err := lightning.New(cfg)
	require.NoError(t, err)
	defer c.Close()
	ctx, cancel := context.WithTimeout(t.Context(), guard)
	defer cancel()
	_, err = c.CreateInvoice(ctx, lightning.CreateInvoiceRequest{AmountMsat: 1000})
	var rpcErr *lightning.RPCError
	require.ErrorAs(t, err, &rpcErr)
	assert.True(t, rpcErr.Retryable(), rpcErr.Error())
}

func TestWaitReady(t *testing.T) {
	_, c := sandbox(t)
	ctx, cancel := context.WithTimeout(t.Context(), guard)
	defer cancel()
	require.NoError(t, c.WaitReady(ctx))

	ended, stop := context.WithCancel(t.Context())
	stop()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := lis.Addr().String()
	require.NoError(t, lis.Close())
	node, _ := sandbox(t)
	cfg := node.ClientConfig()
	cfg.Address = addr
	down, err := lightning.New(cfg)
	require.NoError(t, err)
	defer down.Close()
	assert.ErrorIs(t, down.WaitReady(ended), context.Canceled)
}

func TestSubscribeSettledReturnsTheCallbacksError(t *testing.T) {
	node, c := sandbox(t)
	inv, err := c.CreateInvoice(t.Context(), lightning.CreateInvoiceRequest{AmountMsat: 1000})
	require.NoError(t, err)
	_, err = node.Pay(t.Context(), inv.PaymentRequest)
	require.NoError(t, err)

	stop := errors.New("stop here")
	var seen []lightning.Invoice
	ctx, cancel := context.WithTimeout(t.Context(), guard)
	defer cancel()
	err = c.SubscribeSettled(ctx, 0, func(inv lightning.Invoice) error {
		seen = append(seen, inv)
		return stop
	})
	require.ErrorIs(t, err, stop)
	require.Len(t, seen, 1)
	assert.Equal(t, inv.PaymentHash, seen[0].PaymentHash)
	assert.Equal(t, int64(1000), seen[0].AmtPaidMsat)

	// The same from a resumed stream (settle index 0 and > 0 take
	// different paths).
	second, err := c.CreateInvoice(t.Context(), lightning.CreateInvoiceRequest{AmountMsat: 2000})
	require.NoError(t, err)
	_, err = node.Pay(t.Context(), second.PaymentRequest)
	require.NoError(t, err)
	seen = nil
	err = c.SubscribeSettled(ctx, 1, func(inv lightning.Invoice) error {
		seen = append(seen, inv)
		return stop
	})
	require.ErrorIs(t, err, stop)
	require.Len(t, seen, 1)
	assert.Equal(t, uint64(2), seen[0].SettleIndex)
}

func TestNodeInterfaceRoundTrip(t *testing.T) {
	node, c := sandbox(t)
	var n lightning.Node = c
	ctx := t.Context()
	inv, err := n.CreateInvoice(ctx, lightning.CreateInvoiceRequest{AmountMsat: 42_000, Memo: "round trip", Expiry: time.Hour})
	require.NoError(t, err)

	settled := make(chan lightning.Invoice, 1)
	subCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- n.SubscribeSettled(subCtx, 0, func(inv lightning.Invoice) error {
			settled <- inv
			return nil
		})
	}()
	_, err = node.Pay(ctx, inv.PaymentRequest)
	require.NoError(t, err)
	var got lightning.Invoice
	select {
	case got = <-settled:
	case <-time.After(guard):
		t.Fatal("no settlement (hang guard)")
	}
	cancel()
	assert.ErrorIs(t, <-done, context.Canceled)

	want := inv
	want.Settled, want.AmtPaidMsat, want.SettleIndex, want.SettledAt = true, 42_000, 1, got.SettledAt
	assert.Equal(t, want, got)
	assert.False(t, got.SettledAt.IsZero())
	looked, err := n.LookupInvoice(ctx, inv.PaymentHash)
	require.NoError(t, err)
	assert.Equal(t, got, looked)
}

func TestConfigPrintsNoSecrets(t *testing.T) {
	node, _ := sandbox(t)
	cfg := node.ClientConfig()
	var logged strings.Builder
	slog.New(slog.NewTextHandler(&logged, nil)).Info("dial", "lnd", cfg)
	for _, out := range []string{fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), fmt.Sprintf("%v", &cfg), logged.String()} {
		assert.NotContains(t, out, cfg.MacaroonHex[:24])
		assert.NotContains(t, out, string(cfg.TLSCertPEM[30:60]))
		assert.Contains(t, out, cfg.Address)
	}
}

//go:build regtest

package lightning_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/billflow/billflow/rails/lightning"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The regtest tier runs the LND client against real lnd nodes on a private
// btcd chain; scripts/regtest.sh starts them and sets:
//
//	BILLFLOW_REGTEST_LND_ADDR      the engine's lnd, host:port
//	BILLFLOW_REGTEST_LND_TLSCERT   its tls.cert
//	BILLFLOW_REGTEST_LND_MACAROON  its invoice.macaroon (lnd's binary file)
//	BILLFLOW_REGTEST_LND_READONLY_MACAROON  its readonly.macaroon (optional)
//	BILLFLOW_REGTEST_NETWORK       simnet or regtest
//	BILLFLOW_REGTEST_PAY_CMD       a program paying the BOLT11 in its first
//	                               argument from the other node (lncli payinvoice)

// regtestTimeout bounds each wait on the real network (payments and
// subscriptions); it guards against hangs and asserts no speed.
const regtestTimeout = 2 * time.Minute

type regtestEnv struct {
	cfg      lightning.Config
	readonly string
	payCmd   string
}

func regtest(t *testing.T) regtestEnv {
	t.Helper()
	get := func(k string) string { return os.Getenv(k) }
	env := regtestEnv{
		cfg: lightning.Config{
			Address:      get("BILLFLOW_REGTEST_LND_ADDR"),
			TLSCertPath:  get("BILLFLOW_REGTEST_LND_TLSCERT"),
			MacaroonPath: get("BILLFLOW_REGTEST_LND_MACAROON"),
		},
		readonly: get("BILLFLOW_REGTEST_LND_READONLY_MACAROON"),
		payCmd:   get("BILLFLOW_REGTEST_PAY_CMD"),
	}
	if env.cfg.Address == "" || env.cfg.TLSCertPath == "" || env.cfg.MacaroonPath == "" || env.payCmd == "" {
		t.Skip("regtest tier not configured: BILLFLOW_REGTEST_LND_ADDR, _LND_TLSCERT, _LND_MACAROON and _PAY_CMD " +
			"must point at a running lnd and a payer; scripts/regtest.sh starts btcd and two lnd nodes and sets them")
	}
	switch get("BILLFLOW_REGTEST_NETWORK") {
	case "simnet":
		env.cfg.Network = &chaincfg.SimNetParams
	case "regtest", "":
		env.cfg.Network = &chaincfg.RegressionNetParams
	default:
		t.Fatalf("BILLFLOW_REGTEST_NETWORK=%q: want simnet or regtest", get("BILLFLOW_REGTEST_NETWORK"))
	}
	return env
}

func (e regtestEnv) client(t *testing.T) *lightning.LND {
	t.Helper()
	c, err := lightning.New(e.cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), regtestTimeout)
	defer cancel()
	require.NoError(t, c.WaitReady(ctx))
	return c
}

// payFromOtherNode pays bolt11 over the channel, as a tenant's wallet would.
func (e regtestEnv) payFromOtherNode(t *testing.T, bolt11 string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), regtestTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, e.payCmd, bolt11).CombinedOutput()
	require.NoError(t, err, "paying from the other node: %s", out)
}

// awaitSettled follows SubscribeSettled from `after` until the invoice with
// hash settles, returning it and every settlement seen before it.
func awaitSettled(t *testing.T, c *lightning.LND, after uint64, hash string, start func()) (lightning.Invoice, []lightning.Invoice) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), regtestTimeout)
	defer cancel()
	type result struct {
		inv    lightning.Invoice
		before []lightning.Invoice
		err    error
	}
	res := make(chan result, 1)
	found := errFound{}
	go func() {
		var seen []lightning.Invoice
		err := c.SubscribeSettled(ctx, after, func(inv lightning.Invoice) error {
			if inv.PaymentHash == hash {
				res <- result{inv: inv, before: seen}
				return found
			}
			seen = append(seen, inv)
			return nil
		})
		if err != found {
			res <- result{err: err}
		}
	}()
	start()
	r := <-res
	require.NoError(t, r.err, "subscription ended before the settlement")
	return r.inv, r.before
}

type errFound struct{}

func (errFound) Error() string { return "found" }

func TestRegtestInvoiceSettlesThroughSubscription(t *testing.T) {
	env := regtest(t)
	c := env.client(t)
	ctx := t.Context()

	// An unpaid invoice first: with two or more invoices and no settlement
	// on a fresh node, a subscription from 0 uses lnd's add_index replay to
	// learn that the stream is registered (see followFromZero).
	_, err := c.CreateInvoice(ctx, lightning.CreateInvoiceRequest{AmountMsat: 1_000, Memo: "never paid", Expiry: time.Hour})
	require.NoError(t, err)

	const msat = 25_000_000 // 25,000 sat
	inv, err := c.CreateInvoice(ctx, lightning.CreateInvoiceRequest{AmountMsat: msat, Memo: "billflow regtest", Expiry: 10 * time.Minute})
	require.NoError(t, err)
	d, err := lightning.ValidateBOLT11(inv.PaymentRequest, lightning.Expectation{Network: env.cfg.Network, AmountMsat: msat, Now: time.Now()})
	require.NoError(t, err)
	assert.Equal(t, inv.PaymentHash, d.PaymentHash)
	assert.Equal(t, inv.ExpiresAt, d.ExpiresAt)

	// From settle index 0: lnd replays nothing for 0, so this goes through
	// the client's ListInvoices catch-up, then the live stream.
	settled, _ := awaitSettled(t, c, 0, inv.PaymentHash, func() { env.payFromOtherNode(t, inv.PaymentRequest) })
	assert.True(t, settled.Settled)
	assert.Equal(t, int64(msat), settled.AmtPaidMsat)
	assert.NotZero(t, settled.SettleIndex)
	assert.False(t, settled.SettledAt.IsZero())

	looked, err := c.LookupInvoice(ctx, inv.PaymentHash)
	require.NoError(t, err)
	assert.True(t, looked.Settled)
	assert.Equal(t, settled.SettleIndex, looked.SettleIndex)
	assert.Equal(t, int64(msat), looked.AmtPaidMsat)

	// Resuming from the stored index sees only later settlements: lnd's own
	// backlog replay.
	second, err := c.CreateInvoice(ctx, lightning.CreateInvoiceRequest{AmountMsat: 1_000, Expiry: 10 * time.Minute})
	require.NoError(t, err)
	got, before := awaitSettled(t, c, settled.SettleIndex, second.PaymentHash, func() { env.payFromOtherNode(t, second.PaymentRequest) })
	assert.Empty(t, before, "nothing settled between the two invoices")
	assert.Equal(t, settled.SettleIndex+1, got.SettleIndex)
	assert.Equal(t, int64(1_000), got.AmtPaidMsat)

	// And a replay from just before both delivers both, in order.
	replayed, before := awaitSettled(t, c, settled.SettleIndex-1, second.PaymentHash, func() {})
	require.Len(t, before, 1)
	assert.Equal(t, inv.PaymentHash, before[0].PaymentHash)
	assert.Equal(t, got.SettleIndex, replayed.SettleIndex)
}

func TestRegtestLookupAndCredentials(t *testing.T) {
	env := regtest(t)
	c := env.client(t)

	unknown := make([]byte, 32)
	_, _ = rand.Read(unknown)
	_, err := c.LookupInvoice(t.Context(), hex.EncodeToString(unknown))
	assert.ErrorIs(t, err, lightning.ErrInvoiceNotFound, "lnd's not-found maps to ErrInvoiceNotFound")

	if env.readonly == "" {
		t.Log("BILLFLOW_REGTEST_LND_READONLY_MACAROON not set: skipping the permission check")
		return
	}
	cfg := env.cfg
	cfg.MacaroonPath = env.readonly
	ro, err := lightning.New(cfg)
	require.NoError(t, err)
	defer ro.Close()
	_, err = ro.CreateInvoice(t.Context(), lightning.CreateInvoiceRequest{AmountMsat: 1000})
	var rpcErr *lightning.RPCError
	require.ErrorAs(t, err, &rpcErr, "lnd refuses AddInvoice to a read-only macaroon")
	assert.False(t, rpcErr.Retryable())
	msg := err.Error()
	for _, path := range []string{env.readonly, env.cfg.MacaroonPath, env.cfg.TLSCertPath} {
		b, readErr := os.ReadFile(path)
		require.NoError(t, readErr)
		for _, secret := range []string{hex.EncodeToString(b), strings.TrimSpace(string(b))} {
			if len(secret) > 40 {
				assert.NotContains(t, msg, secret[:40])
			}
		}
	}
}

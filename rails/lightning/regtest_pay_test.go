//go:build regtest

package lightning_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/billflow/billflow/rails/lightning"
	"github.com/btcsuite/btcd/btcec/v2"
	"github.com/btcsuite/btcd/btcec/v2/ecdsa"
	"github.com/btcsuite/btcd/chaincfg/chainhash"
	"github.com/lightningnetwork/lnd/lnwire"
	"github.com/lightningnetwork/lnd/zpay32"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Payouts against real lnd: the engine's node (bob) pays the other node's
// (alice's) invoices over their channel. scripts/regtest.sh also sets:
//
//	BILLFLOW_REGTEST_LND_PAYOUT_MACAROON  bob's baked offchain:read,
//	                                      offchain:write, info:read macaroon
//	BILLFLOW_REGTEST_INVOICE_CMD          a program printing alice's
//	                                      `lncli addinvoice --json` for
//	                                      AMT_MSAT EXPIRY_SECONDS

func payoutEnv(t *testing.T) (regtestEnv, string, string) {
	t.Helper()
	env := regtest(t)
	mac, cmd := os.Getenv("BILLFLOW_REGTEST_LND_PAYOUT_MACAROON"), os.Getenv("BILLFLOW_REGTEST_INVOICE_CMD")
	if mac == "" || cmd == "" {
		t.Skip("BILLFLOW_REGTEST_LND_PAYOUT_MACAROON and BILLFLOW_REGTEST_INVOICE_CMD not set (scripts/regtest.sh sets them)")
	}
	return env, mac, cmd
}

func otherNodeInvoice(t *testing.T, cmd string, msat int64, expiry time.Duration) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), regtestTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, cmd, strconv.FormatInt(msat, 10), strconv.FormatInt(int64(expiry/time.Second), 10)).Output()
	require.NoError(t, err, "addinvoice on the other node: %s", out)
	var resp struct {
		PaymentRequest string `json:"payment_request"`
	}
	require.NoError(t, json.Unmarshal(out, &resp), string(out))
	require.NotEmpty(t, resp.PaymentRequest)
	return resp.PaymentRequest
}

// unreachableInvoice is a valid invoice of a node nobody has a channel to.
func unreachableInvoice(t *testing.T, env regtestEnv, msat int64) string {
	t.Helper()
	key, err := btcec.NewPrivateKey()
	require.NoError(t, err)
	var preimage, addr [32]byte
	_, _ = rand.Read(preimage[:])
	_, _ = rand.Read(addr[:])
	features := lnwire.NewFeatureVector(lnwire.NewRawFeatureVector(lnwire.TLVOnionPayloadRequired, lnwire.PaymentAddrRequired), lnwire.Features)
	inv, err := zpay32.NewInvoice(env.cfg.Network, sha256.Sum256(preimage[:]), time.Now(),
		zpay32.Amount(lnwire.MilliSatoshi(msat)), zpay32.Description("nowhere"), zpay32.PaymentAddr(addr), zpay32.Features(features))
	require.NoError(t, err)
	s, err := inv.Encode(zpay32.MessageSigner{SignCompact: func(msg []byte) ([]byte, error) {
		return ecdsa.SignCompact(key, chainhash.HashB(msg), true)
	}})
	require.NoError(t, err)
	return s
}

func TestRegtestPayout(t *testing.T) {
	env, mac, invoiceCmd := payoutEnv(t)
	cfg := env.cfg
	cfg.PayoutMacaroonPath = mac
	c, err := lightning.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), regtestTimeout)
	defer cancel()
	require.NoError(t, c.WaitReady(ctx))

	const msat = 5_000_000
	bolt11 := otherNodeInvoice(t, invoiceCmd, msat, time.Hour)
	d, err := lightning.ValidateBOLT11(bolt11, lightning.Expectation{Network: env.cfg.Network, AmountMsat: msat})
	require.NoError(t, err)
	_, err = c.LookupPayment(ctx, d.PaymentHash)
	require.ErrorIs(t, err, lightning.ErrPaymentNotFound, "lnd's TrackPaymentV2 NotFound")

	p, err := c.PayInvoice(ctx, lightning.PayRequest{BOLT11: bolt11, MaxFeeMsat: 10_000, Timeout: time.Minute})
	require.NoError(t, err)
	require.Equal(t, lightning.StatusSucceeded, p.Status, "%+v", p)
	assert.Equal(t, d.PaymentHash, p.PaymentHash)
	assert.Equal(t, int64(msat), p.AmountMsat)
	pre, err := hex.DecodeString(p.PreimageHex)
	require.NoError(t, err)
	sum := sha256.Sum256(pre)
	assert.Equal(t, p.PaymentHash, hex.EncodeToString(sum[:]))

	looked, err := c.LookupPayment(ctx, p.PaymentHash)
	require.NoError(t, err)
	assert.Equal(t, p, looked)
	again, err := c.PayInvoice(ctx, lightning.PayRequest{BOLT11: bolt11})
	require.NoError(t, err)
	assert.Equal(t, p, again)

	// Concurrent payouts of one invoice: lnd's AlreadyExists for the
	// losers becomes a lookup; all see the one payment.
	shared := otherNodeInvoice(t, invoiceCmd, 1_000_000, time.Hour)
	const callers = 4
	results := make([]lightning.Payment, callers)
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			results[i], errs[i] = c.PayInvoice(ctx, lightning.PayRequest{BOLT11: shared, MaxFeeMsat: 10_000})
		})
	}
	wg.Wait()
	for i := range callers {
		require.NoError(t, errs[i])
		assert.Equal(t, lightning.StatusSucceeded, results[i].Status)
		assert.Equal(t, results[0].PreimageHex, results[i].PreimageHex)
	}

	// No route to a node nobody knows.
	nowhere := unreachableInvoice(t, env, 1_000_000)
	failed, err := c.PayInvoice(ctx, lightning.PayRequest{BOLT11: nowhere, Timeout: 30 * time.Second})
	require.NoError(t, err)
	assert.Equal(t, lightning.StatusFailed, failed.Status)
	assert.Equal(t, "FAILURE_REASON_NO_ROUTE", failed.FailureReason)

	// Refusals: the node's own invoice, an amount-less one, an expired one.
	own, err := c.CreateInvoice(ctx, lightning.CreateInvoiceRequest{AmountMsat: 1_000, Expiry: time.Hour})
	require.NoError(t, err)
	noAmount := otherNodeInvoice(t, invoiceCmd, 0, time.Hour)
	expiring := otherNodeInvoice(t, invoiceCmd, 1_000, time.Second)
	ed, err := lightning.ValidateBOLT11(expiring, lightning.Expectation{Network: env.cfg.Network, AmountMsat: 1_000, Now: time.Now().Add(-time.Hour)})
	require.NoError(t, err)
	// Let the expiry pass (lnd compares with its own clock).
	for time.Now().Before(ed.ExpiresAt.Add(time.Second)) {
		time.Sleep(200 * time.Millisecond)
	}
	for _, tc := range []struct {
		bolt11 string
		reason lightning.RefusalReason
	}{{own.PaymentRequest, lightning.RefusedSelfPayment}, {noAmount, lightning.RefusedNoAmount}, {expiring, lightning.RefusedExpired}} {
		_, err := c.PayInvoice(ctx, lightning.PayRequest{BOLT11: tc.bolt11})
		var refused *lightning.PaymentRefusedError
		require.True(t, errors.As(err, &refused), "%v", err)
		assert.Equal(t, tc.reason, refused.Reason, err.Error())
	}

	// The invoice macaroon cannot pay.
	cfg.PayoutMacaroonPath = env.cfg.MacaroonPath
	weak, err := lightning.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = weak.Close() })
	_, err = weak.PayInvoice(ctx, lightning.PayRequest{BOLT11: otherNodeInvoice(t, invoiceCmd, 1_000, time.Hour)})
	var rpcErr *lightning.RPCError
	require.ErrorAs(t, err, &rpcErr)
	assert.Equal(t, "PermissionDenied", rpcErr.Code.String())

	// The read-only macaroon may look (offchain:read) but not pay: a
	// configuration error, not a refusal of the invoice.
	if env.readonly != "" {
		cfg.PayoutMacaroonPath = env.readonly
		ro, err := lightning.New(cfg)
		require.NoError(t, err)
		t.Cleanup(func() { _ = ro.Close() })
		_, err = ro.PayInvoice(ctx, lightning.PayRequest{BOLT11: otherNodeInvoice(t, invoiceCmd, 1_000, time.Hour)})
		assert.NotErrorIs(t, err, lightning.ErrPaymentRefused)
		require.ErrorAs(t, err, &rpcErr)
		assert.Equal(t, "PermissionDenied", rpcErr.Code.String())
		looked, err := ro.LookupPayment(ctx, p.PaymentHash)
		require.NoError(t, err)
		assert.Equal(t, p, looked)
	}
}

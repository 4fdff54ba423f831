package lightning_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/billflow/billflow/rails/lightning"
	"github.com/billflow/billflow/sandbox/lnnode"
	"github.com/btcsuite/btcd/chaincfg"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// settableClock moves the sandbox node's clock to expire invoices without
// sleeping.
type settableClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *settableClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *settableClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func payoutSandbox(t *testing.T, opts lnnode.Options) (*lnnode.Node, *lightning.LND) {
	t.Helper()
	node, err := lnnode.Start(t.Context(), opts)
	require.NoError(t, err)
	t.Cleanup(func() { _ = node.Close() })
	c, err := lightning.New(node.ClientConfig())
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return node, c
}

func payeeInvoice(t *testing.T, node *lnnode.Node, msat int64, expiry time.Duration) (bolt11, hash string) {
	t.Helper()
	bolt11, hash, err := node.PayeeInvoice(t.Context(), msat, "withdrawal", expiry)
	require.NoError(t, err)
	return bolt11, hash
}

func TestPayInvoiceSucceedsOnceAndIsIdempotent(t *testing.T) {
	node, c := payoutSandbox(t, lnnode.Options{})
	bolt11, hash := payeeInvoice(t, node, 21_000, time.Hour)

	_, err := c.LookupPayment(t.Context(), hash)
	require.ErrorIs(t, err, lightning.ErrPaymentNotFound, "nothing paid yet")

	ctx, cancel := context.WithTimeout(t.Context(), guard)
	defer cancel()
	p, err := c.PayInvoice(ctx, lightning.PayRequest{BOLT11: bolt11, MaxFeeMsat: 100, Timeout: time.Minute})
	require.NoError(t, err)
	assert.Equal(t, lightning.StatusSucceeded, p.Status)
	assert.Equal(t, hash, p.PaymentHash)
	assert.Equal(t, int64(21_000), p.AmountMsat)
	assert.Equal(t, int64(0), p.FeeMsat)
	assert.Empty(t, p.FailureReason)
	pre, err := hex.DecodeString(p.PreimageHex)
	require.NoError(t, err)
	sum := sha256.Sum256(pre)
	assert.Equal(t, hash, hex.EncodeToString(sum[:]), "the preimage proves the payment")

	settled, paid, err := node.PayeeInvoiceState(hash)
	require.NoError(t, err)
	assert.True(t, settled)
	assert.Equal(t, int64(21_000), paid)

	looked, err := c.LookupPayment(t.Context(), hash)
	require.NoError(t, err)
	assert.Equal(t, p, looked)

	// A retried payout (an activity retry) gets the same payment back and
	// the payee is not paid twice.
	again, err := c.PayInvoice(ctx, lightning.PayRequest{BOLT11: bolt11, MaxFeeMsat: 100})
	require.NoError(t, err)
	assert.Equal(t, p, again)
	settled, paid, err = node.PayeeInvoiceState(hash)
	require.NoError(t, err)
	assert.True(t, settled)
	assert.Equal(t, int64(21_000), paid)
}

// Concurrent payouts of one invoice (two workers on one withdrawal) pay
// once: the loser's duplicate send (lnd's AlreadyExists) becomes a lookup.
func TestPayInvoiceConcurrentCallsPayOnce(t *testing.T) {
	node, c := payoutSandbox(t, lnnode.Options{})
	bolt11, hash := payeeInvoice(t, node, 5_000, time.Hour)
	ctx, cancel := context.WithTimeout(t.Context(), guard)
	defer cancel()
	const callers = 8
	results := make([]lightning.Payment, callers)
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			results[i], errs[i] = c.PayInvoice(ctx, lightning.PayRequest{BOLT11: bolt11})
		})
	}
	wg.Wait()
	for i := range callers {
		require.NoError(t, errs[i])
		assert.Equal(t, lightning.StatusSucceeded, results[i].Status)
		assert.Equal(t, results[0], results[i])
	}
	_, paid, err := node.PayeeInvoiceState(hash)
	require.NoError(t, err)
	assert.Equal(t, int64(5_000), paid)
}

func TestPayInvoiceNoRouteFails(t *testing.T) {
	_, c := payoutSandbox(t, lnnode.Options{})
	// An invoice of a node the sandbox cannot reach.
	other, err := lnnode.Start(t.Context(), lnnode.Options{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = other.Close() })
	inv := create(t, newClientFor(t, other), 3_000)

	p, err := c.PayInvoice(t.Context(), lightning.PayRequest{BOLT11: inv.PaymentRequest, Timeout: 5 * time.Second})
	require.NoError(t, err, "a failed payment is an outcome, not an error")
	assert.Equal(t, lightning.StatusFailed, p.Status)
	assert.Equal(t, "FAILURE_REASON_NO_ROUTE", p.FailureReason)
	assert.Equal(t, inv.PaymentHash, p.PaymentHash)
	assert.Empty(t, p.PreimageHex)
	assert.Equal(t, int64(3_000), p.AmountMsat)

	looked, err := c.LookupPayment(t.Context(), inv.PaymentHash)
	require.NoError(t, err)
	assert.Equal(t, p, looked)

	// A failed payment is final for billflow: paying again returns it
	// instead of trying again (lnd alone would retry a failed hash).
	again, err := c.PayInvoice(t.Context(), lightning.PayRequest{BOLT11: inv.PaymentRequest})
	require.NoError(t, err)
	assert.Equal(t, p, again)
}

func TestPayInvoiceRefusals(t *testing.T) {
	clk := &settableClock{now: time.Now().Truncate(time.Second)}
	node, c := payoutSandbox(t, lnnode.Options{Now: clk.Now})

	expiring, expiringHash := payeeInvoice(t, node, 1_000, time.Minute)
	noAmount, _ := payeeInvoice(t, node, 0, time.Hour)
	own := create(t, c, 2_000)
	clk.Advance(2 * time.Minute)

	for _, tc := range []struct {
		name   string
		bolt11 string
		reason lightning.RefusalReason
	}{
		{"expired", expiring, lightning.RefusedExpired},
		{"no amount", noAmount, lightning.RefusedNoAmount},
		{"own invoice", own.PaymentRequest, lightning.RefusedSelfPayment},
		{"not an invoice", "lnbcrt1notaninvoice", lightning.RefusedInvalidInvoice},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.PayInvoice(t.Context(), lightning.PayRequest{BOLT11: tc.bolt11})
			require.ErrorIs(t, err, lightning.ErrPaymentRefused)
			var refused *lightning.PaymentRefusedError
			require.True(t, errors.As(err, &refused))
			assert.Equal(t, tc.reason, refused.Reason, err.Error())
			assert.NotContains(t, err.Error(), node.PayoutMacaroonHex()[:16])
		})
	}
	// The refused payment was never recorded.
	_, err := c.LookupPayment(t.Context(), expiringHash)
	require.ErrorIs(t, err, lightning.ErrPaymentNotFound)
	settled, _, err := node.PayeeInvoiceState(expiringHash)
	require.NoError(t, err)
	assert.False(t, settled)
}

func TestPayInvoiceChecksRequests(t *testing.T) {
	node, c := payoutSandbox(t, lnnode.Options{})
	bolt11, _ := payeeInvoice(t, node, 1_000, time.Hour)
	for _, req := range []lightning.PayRequest{
		{BOLT11: " "},
		{BOLT11: bolt11, MaxFeeMsat: -1},
		{BOLT11: bolt11, Timeout: -time.Second},
	} {
		_, err := c.PayInvoice(t.Context(), req)
		require.ErrorIs(t, err, lightning.ErrInvalidRequest)
	}
	_, err := c.LookupPayment(t.Context(), "abcd")
	require.ErrorIs(t, err, lightning.ErrInvalidRequest)

	// A client pinned to another network refuses before asking the node.
	cfg := node.ClientConfig()
	cfg.Network = &chaincfg.MainNetParams
	mainnet, err := lightning.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = mainnet.Close() })
	_, err = mainnet.PayInvoice(t.Context(), lightning.PayRequest{BOLT11: bolt11})
	var refused *lightning.PaymentRefusedError
	require.ErrorAs(t, err, &refused)
	assert.Equal(t, lightning.RefusedInvalidInvoice, refused.Reason)
}

func TestPayoutsNeedThePayoutMacaroon(t *testing.T) {
	node, _ := payoutSandbox(t, lnnode.Options{})
	bolt11, hash := payeeInvoice(t, node, 1_000, time.Hour)

	cfg := node.ClientConfig()
	cfg.PayoutMacaroonHex = ""
	noPayouts, err := lightning.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = noPayouts.Close() })
	_, err = noPayouts.PayInvoice(t.Context(), lightning.PayRequest{BOLT11: bolt11})
	require.ErrorIs(t, err, lightning.ErrPayoutsNotConfigured)
	_, err = noPayouts.LookupPayment(t.Context(), hash)
	require.ErrorIs(t, err, lightning.ErrPayoutsNotConfigured)

	// The invoice macaroon cannot spend: the node refuses the router calls.
	cfg.PayoutMacaroonHex = node.MacaroonHex()
	invoiceOnly, err := lightning.New(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = invoiceOnly.Close() })
	_, err = invoiceOnly.PayInvoice(t.Context(), lightning.PayRequest{BOLT11: bolt11})
	var rpcErr *lightning.RPCError
	require.ErrorAs(t, err, &rpcErr)
	assert.Equal(t, "PermissionDenied", rpcErr.Code.String())
	assert.False(t, rpcErr.Retryable())
	_, err = invoiceOnly.LookupPayment(t.Context(), hash)
	require.ErrorAs(t, err, &rpcErr)
	assert.Equal(t, "PermissionDenied", rpcErr.Code.String())

	settled, _, err := node.PayeeInvoiceState(hash)
	require.NoError(t, err)
	assert.False(t, settled)

	// The payout macaroon does its job and is never printed.
	assert.NotContains(t, node.ClientConfig().String(), node.PayoutMacaroonHex()[:16])
	assert.Contains(t, node.ClientConfig().String(), "payout macaroon: hex [redacted]")
}

func TestPayoutMacaroonFromFile(t *testing.T) {
	node, _ := payoutSandbox(t, lnnode.Options{DataDir: t.TempDir()})
	bolt11, _ := payeeInvoice(t, node, 4_000, time.Hour)
	c, err := lightning.New(lightning.Config{
		Address: node.Addr(), TLSCertPath: node.TLSCertPath(),
		MacaroonPath: node.MacaroonPath(), PayoutMacaroonPath: node.PayoutMacaroonPath(),
	})
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	p, err := c.PayInvoice(t.Context(), lightning.PayRequest{BOLT11: bolt11})
	require.NoError(t, err)
	assert.Equal(t, lightning.StatusSucceeded, p.Status)

	_, err = lightning.New(lightning.Config{
		Address: node.Addr(), TLSCertPath: node.TLSCertPath(), MacaroonPath: node.MacaroonPath(),
		PayoutMacaroonPath: node.PayoutMacaroonPath(), PayoutMacaroonHex: node.PayoutMacaroonHex(),
	})
	require.ErrorIs(t, err, lightning.ErrInvalidRequest)
	assert.NotContains(t, err.Error(), node.PayoutMacaroonHex()[:16])
}

func newClientFor(t *testing.T, node *lnnode.Node) *lightning.LND {
	t.Helper()
	c, err := lightning.New(node.ClientConfig())
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func create(t *testing.T, c *lightning.LND, msat int64) lightning.Invoice {
	t.Helper()
	inv, err := c.CreateInvoice(t.Context(), lightning.CreateInvoiceRequest{AmountMsat: msat, Memo: "test", Expiry: time.Hour})
	require.NoError(t, err)
	return inv
}

// waitUntil polls cond (a query of the node, not a clock) until it holds;
// guard only stops a hang.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(guard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s never happened (hang guard)", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A payment whose outcome is not known yet: callers whose context ends get
// it in flight (or an error saying the call ended), never a second payment;
// callers still waiting get the outcome when it comes.
func TestPayInvoiceInFlight(t *testing.T) {
	node, c := payoutSandbox(t, lnnode.Options{})
	bolt11, hash := payeeInvoice(t, node, 8_000, time.Hour)
	node.HoldPayouts()

	type result struct {
		p   lightning.Payment
		err error
	}
	pay := func(ctx context.Context) <-chan result {
		ch := make(chan result, 1)
		go func() {
			p, err := c.PayInvoice(ctx, lightning.PayRequest{BOLT11: bolt11})
			ch <- result{p, err}
		}()
		return ch
	}
	leaving, leave := context.WithCancel(t.Context())
	first := pay(leaving)
	waitUntil(t, "the payment in flight on the node", func() bool {
		p, err := c.LookupPayment(t.Context(), hash)
		return err == nil && p.Status == lightning.StatusInFlight
	})
	inflight, err := c.LookupPayment(t.Context(), hash)
	require.NoError(t, err)
	assert.Equal(t, lightning.PaymentStatus("in_flight"), inflight.Status)
	assert.Empty(t, inflight.PreimageHex)
	assert.False(t, inflight.Status.Terminal())

	waiting := pay(t.Context())
	leave()
	r := <-first
	if r.err == nil {
		assert.Equal(t, inflight, r.p, "the caller that left gets the payment in flight")
	} else {
		assert.ErrorIs(t, r.err, context.Canceled, "or an error saying its call ended")
	}
	settled, _, err := node.PayeeInvoiceState(hash)
	require.NoError(t, err)
	assert.False(t, settled)

	n, err := node.ReleasePayouts()
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	var w result
	select {
	case w = <-waiting:
	case <-time.After(guard):
		t.Fatal("the waiting caller never got the outcome (hang guard)")
	}
	require.NoError(t, w.err)
	assert.Equal(t, lightning.StatusSucceeded, w.p.Status)
	assert.NotEmpty(t, w.p.PreimageHex)
	_, paid, err := node.PayeeInvoiceState(hash)
	require.NoError(t, err)
	assert.Equal(t, int64(8_000), paid, "paid once")
	looked, err := c.LookupPayment(t.Context(), hash)
	require.NoError(t, err)
	assert.Equal(t, w.p, looked)
}

//go:build integration

package activities

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/billflow/billflow/internal/testkit"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/rails/lightning"
	"github.com/billflow/billflow/rails/nwc"
	"github.com/billflow/billflow/sandbox/lnnode"
	"github.com/billflow/billflow/secret"
	"github.com/billflow/billflow/store"
	"github.com/billflow/billflow/vault"
)

// clock is a settable clock shared by the store and the sandbox node.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time       { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration)  { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }
func newClock(t time.Time) *clock     { return &clock{t: t} }
func (c *clock) fn() func() time.Time { return c.Now }

// lightningWorld is an invoice in a real store and the sandbox node, both on
// a test clock.
func lightningWorld(t *testing.T) (*Activities, *lnnode.Node, *clock, store.Invoice) {
	t.Helper()
	ctx := context.Background()
	clk := newClock(time.Now().UTC().Truncate(time.Second))
	st := testkit.NewStore(t)
	st.Now = clk.fn()
	node, err := lnnode.Start(ctx, lnnode.Options{Now: clk.fn()})
	require.NoError(t, err)
	t.Cleanup(func() { _ = node.Close() })
	client, err := lightning.New(node.ClientConfig())
	require.NoError(t, err)
	rates, err := lightning.NewStaticRate(map[string]int64{"usd": 2_000_000})
	require.NoError(t, err)
	id := testkit.NewTenantID(t)
	_, _, err = st.EnsureTenant(ctx, id, "usd", 600)
	require.NoError(t, err)
	at := clk.Now()
	_, err = st.RecordActivity(ctx, id, models.Activity{ID: "ln-" + string(id[:8]), Type: models.ResourceCreated, ResourceID: "r", PlanID: "pro", At: at}, false)
	require.NoError(t, err)
	res, err := st.Claim(ctx, store.ClaimParams{TenantID: id, ClaimKey: "ln-" + string(id), Period: models.Period{Start: at, End: at.Add(10 * time.Minute)}})
	require.NoError(t, err)
	require.NotNil(t, res.Invoice)
	a := &Activities{Store: st, Rails: Rails{Node: client, Rates: rates, InvoiceExpiry: 10 * time.Minute}}
	return a, node, clk, *res.Invoice
}

// A BOLT11 a wallet was asked to pay and whose outcome is unknown: while it
// is payable ResolveNWC fails retryably (Temporal asks again and the card
// waits); once the node reports it settled, that is the payment.
func TestResolveNWCWaitsForTheNode(t *testing.T) {
	ctx := context.Background()
	a, node, clk, inv := lightningWorld(t)
	b, err := a.ensureBolt11(ctx, inv)
	require.NoError(t, err)
	require.NoError(t, a.Store.MarkNWCRequested(ctx, b.PaymentHash, clk.Now()))

	_, err = a.ResolveNWC(ctx, InvoiceInput{InvoiceID: inv.ID})
	require.Error(t, err, "still payable: unresolved")
	var appErr *temporal.ApplicationError
	require.False(t, errors.As(err, &appErr) && appErr.NonRetryable(), "unresolved must be retried, not final: %v", err)

	_, err = node.Pay(ctx, b.PaymentRequest)
	require.NoError(t, err)
	res, err := a.ResolveNWC(ctx, InvoiceInput{InvoiceID: inv.ID})
	require.NoError(t, err)
	require.NotNil(t, res.Payment)
	require.Equal(t, store.RailNWC, res.Payment.Rail)
	require.Equal(t, b.PaymentHash, res.Payment.Reference)
	require.Equal(t, b.AmountMsat, res.Payment.AmountMsat)
}

// Expired and unpaid on the node: resolved as unpaid, the card may go on.
// BOLT11s no wallet was asked to pay do not hold the card.
func TestResolveNWCExpiredIsUnpaid(t *testing.T) {
	ctx := context.Background()
	a, _, clk, inv := lightningWorld(t)
	b, err := a.ensureBolt11(ctx, inv)
	require.NoError(t, err)
	res, err := a.ResolveNWC(ctx, InvoiceInput{InvoiceID: inv.ID})
	require.NoError(t, err, "never sent to a wallet")
	require.Nil(t, res.Payment)
	require.NoError(t, a.Store.MarkNWCRequested(ctx, b.PaymentHash, clk.Now()))
	clk.Add(11 * time.Minute)
	res, err = a.ResolveNWC(ctx, InvoiceInput{InvoiceID: inv.ID})
	require.NoError(t, err)
	require.Nil(t, res.Payment)
	require.Equal(t, 1, res.Checked)
}

// A BOLT11 paid just before it expired is found, not superseded: the
// payment page (and the NWC rail) get the paid invoice back instead of a
// new BOLT11 to pay a second time.
func TestExpiringBolt11LookedUpBeforeSuperseded(t *testing.T) {
	ctx := context.Background()
	a, node, clk, inv := lightningWorld(t)
	first, err := a.IssueLightningInvoice(ctx, InvoiceInput{InvoiceID: inv.ID})
	require.NoError(t, err)
	require.False(t, first.Settled)
	_, err = node.Pay(ctx, first.PaymentRequest)
	require.NoError(t, err)
	// The settlement stream has not told the store yet; the BOLT11 expires.
	clk.Add(11 * time.Minute)
	again, err := a.IssueLightningInvoice(ctx, InvoiceInput{InvoiceID: inv.ID})
	require.NoError(t, err)
	require.True(t, again.Settled, "the expired BOLT11 was paid: not replaced")
	require.Equal(t, first.PaymentHash, again.PaymentHash)
	bolts, err := a.Store.Bolt11s(ctx, inv.ID)
	require.NoError(t, err)
	require.Len(t, bolts, 1, "no new BOLT11 issued")
}

// After a partial payment the Lightning rail asks for the remainder: the
// live BOLT11 for the whole amount is looked up, superseded, and replaced by
// one priced for what is still due.
func TestBolt11ForTheRemainderAfterPartialPayment(t *testing.T) {
	ctx := context.Background()
	a, _, clk, inv := lightningWorld(t) // 20.00 USD at 2,000,000 msat per dollar
	first, err := a.IssueLightningInvoice(ctx, InvoiceInput{InvoiceID: inv.ID})
	require.NoError(t, err)
	require.Equal(t, int64(40_000_000), first.AmountMsat)
	res, err := a.Store.Settle(ctx, store.PaymentReport{InvoiceID: inv.ID, Rail: store.RailManual, Reference: "part", Amount: 500, Currency: "usd", ReceivedAt: clk.Now()})
	require.NoError(t, err)
	require.Equal(t, store.SettledPartial, res.Outcome)
	rest, err := a.IssueLightningInvoice(ctx, InvoiceInput{InvoiceID: inv.ID})
	require.NoError(t, err)
	require.False(t, rest.Settled)
	require.NotEqual(t, first.PaymentHash, rest.PaymentHash)
	require.Equal(t, int64(30_000_000), rest.AmountMsat, "15.00 USD still due")
	bolts, err := a.Store.Bolt11s(ctx, inv.ID)
	require.NoError(t, err)
	require.Len(t, bolts, 2)
	for _, b := range bolts {
		if b.PaymentHash == first.PaymentHash {
			require.NotNil(t, b.SupersededAt, "the BOLT11 for the whole amount is superseded")
		} else {
			require.Nil(t, b.SupersededAt)
			require.Equal(t, int64(1500), b.QuoteAmount)
		}
	}
}

// payingWallet is a tenant's wallet that pays through the sandbox node and
// counts the requests it gets.
type payingWallet struct {
	node *lnnode.Node
	mu   sync.Mutex
	asks int
}

func (w *payingWallet) PayInvoice(ctx context.Context, req nwc.PayInvoiceRequest) (nwc.PayInvoiceResult, error) {
	w.mu.Lock()
	w.asks++
	w.mu.Unlock()
	pre, err := w.node.Pay(ctx, req.Invoice)
	return nwc.PayInvoiceResult{Preimage: pre}, err
}

func (w *payingWallet) Close() error { return nil }

func (w *payingWallet) count() int { w.mu.Lock(); defer w.mu.Unlock(); return w.asks }

// withWallet gives the world's tenant an NWC connection to w.
func withWallet(t *testing.T, a *Activities, inv store.Invoice, w *payingWallet) {
	t.Helper()
	box, err := secret.NewBox(make([]byte, 32))
	require.NoError(t, err)
	a.Rails.Vault = vault.New(box, a.Store)
	a.Rails.NWCTimeout = 15 * time.Second
	a.Rails.NewNWC = func(nwc.Connection) (NWCPayer, error) { return w, nil }
	sk := nostr.GeneratePrivateKey()
	wallet, err := nostr.GetPublicKey(nostr.GeneratePrivateKey())
	require.NoError(t, err)
	_, err = a.Rails.Vault.SetNWC(context.Background(), inv.TenantID, "nostr+walletconnect://"+wallet+"?relay=ws%3A%2F%2F127.0.0.1%3A1&secret="+sk)
	require.NoError(t, err)
}

// A pay request the wallet never got (lost while a relay or the wallet
// restarted; found by the chaos test): once the request's own timeout has
// passed, ResolveNWC asks the wallet again to pay the same BOLT11 instead of
// holding the invoice until the BOLT11 expires an hour later. Before that,
// it only waits.
func TestResolveNWCAsksAgainAfterALostRequest(t *testing.T) {
	ctx := context.Background()
	a, node, clk, inv := lightningWorld(t)
	w := &payingWallet{node: node}
	withWallet(t, a, inv, w)
	b, err := a.ensureBolt11(ctx, inv)
	require.NoError(t, err)
	require.NoError(t, a.Store.MarkNWCRequested(ctx, b.PaymentHash, clk.Now()))

	_, err = a.ResolveNWC(ctx, InvoiceInput{InvoiceID: inv.ID})
	require.Error(t, err, "the first request may still be answered: wait")
	require.Equal(t, 0, w.count())

	clk.Add(16 * time.Second)
	res, err := a.ResolveNWC(ctx, InvoiceInput{InvoiceID: inv.ID})
	require.NoError(t, err)
	require.Equal(t, 1, w.count())
	require.NotNil(t, res.Payment)
	require.Equal(t, store.RailNWC, res.Payment.Rail)
	require.Equal(t, b.PaymentHash, res.Payment.Reference)
	li, err := a.Rails.Node.LookupInvoice(ctx, b.PaymentHash)
	require.NoError(t, err)
	require.True(t, li.Settled)

	// Asked again once more (the answer was lost too): the node already has
	// the payment, so the wallet is not asked.
	res, err = a.ResolveNWC(ctx, InvoiceInput{InvoiceID: inv.ID})
	require.NoError(t, err)
	require.NotNil(t, res.Payment)
	require.Equal(t, 1, w.count())
}

// A suspended tenant's wallet is not asked again: suspension stops
// automatic collection; the node alone decides.
func TestResolveNWCDoesNotAskASuspendedTenant(t *testing.T) {
	ctx := context.Background()
	a, node, clk, inv := lightningWorld(t)
	w := &payingWallet{node: node}
	withWallet(t, a, inv, w)
	b, err := a.ensureBolt11(ctx, inv)
	require.NoError(t, err)
	require.NoError(t, a.Store.MarkNWCRequested(ctx, b.PaymentHash, clk.Now()))
	_, err = a.Store.Pool().Exec(ctx, `UPDATE tenants SET status = 'suspended', suspended_at = now() WHERE id = $1`, inv.TenantID)
	require.NoError(t, err)
	clk.Add(16 * time.Second)
	_, err = a.ResolveNWC(ctx, InvoiceInput{InvoiceID: inv.ID})
	require.Error(t, err)
	require.Equal(t, 0, w.count())
}

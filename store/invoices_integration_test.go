//go:build integration

package store_test

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/internal/testkit"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/store"
)

func period0() models.Period { return models.Period{Index: 0, Start: at(0), End: at(600)} }

func claim(t *testing.T, st *store.Store, tenant models.TenantID, key string) store.ClaimResult {
	t.Helper()
	res, err := st.Claim(bg(), store.ClaimParams{TenantID: tenant, ClaimKey: key, Period: period0()})
	require.NoError(t, err, "claim %s", key)
	return res
}

// invoiceRow is an invoices row as stored, with the sum of its items.
type invoiceRow struct {
	ID, Status, Currency string
	Total, ItemsSum      int64
	Items                int64
	PaidAt               *time.Time
	PaidRail, PaidRef    *string
}

func readInvoice(t tb, st *store.Store, id string) invoiceRow {
	t.Helper()
	var r invoiceRow
	require.NoError(t, st.Pool().QueryRow(bg(), `SELECT i.id, i.status, i.currency, i.total,
			(SELECT coalesce(sum(amount), 0) FROM invoice_items WHERE invoice_id = i.id),
			(SELECT count(*) FROM invoice_items WHERE invoice_id = i.id),
			i.paid_at, i.paid_rail, i.paid_reference
		FROM invoices i WHERE i.id = $1`, id).
		Scan(&r.ID, &r.Status, &r.Currency, &r.Total, &r.ItemsSum, &r.Items, &r.PaidAt, &r.PaidRail, &r.PaidRef))
	return r
}

// event is an events row.
type event struct {
	Type, Subject string
	Payload       map[string]any
}

func events(t tb, st *store.Store, tenant models.TenantID) []event {
	t.Helper()
	rows, err := st.Pool().Query(bg(), `SELECT type, subject_id, payload FROM events WHERE tenant_id = $1 ORDER BY created_at, id`, tenant)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (event, error) {
		var e event
		var raw []byte
		if err := r.Scan(&e.Type, &e.Subject, &raw); err != nil {
			return e, err
		}
		return e, json.Unmarshal(raw, &e.Payload)
	})
	require.NoError(t, err)
	return out
}

func TestClaimMovesOutstandingItemsOntoInvoice(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)
	record(t, st, tenant, created("a1", "r1", "basic", at(0)))  // 500
	record(t, st, tenant, created("a2", "r2", "pro", at(300)))  // 1000
	record(t, st, tenant, deactivated("a3", "r1", at(450)))     // -125
	record(t, st, tenant, created("a4", "r3", "free", at(460))) // nothing
	const want = 500 + 1000 - 125

	res := claim(t, st, tenant, "claim-1")
	require.NotNil(t, res.Invoice)
	inv := *res.Invoice
	assert.Equal(t, int64(want), inv.Total)
	assert.Equal(t, int64(0), res.Outstanding)
	assert.Equal(t, store.InvoiceOpen, inv.Status)
	assert.Equal(t, models.Currency("usd"), inv.Currency)
	assert.Equal(t, tenant, inv.TenantID)
	assert.True(t, inv.PeriodStart.Equal(at(0)))
	assert.True(t, inv.PeriodEnd.Equal(at(600)))

	row := readInvoice(t, st, inv.ID)
	assert.Equal(t, int64(want), row.Total)
	assert.Equal(t, row.Total, row.ItemsSum, "total equals the sum of its items")
	assert.Equal(t, int64(3), row.Items)
	assert.Equal(t, "open", row.Status)
	assert.Equal(t, int64(0), scalar(t, st, `SELECT count(*) FROM invoice_items WHERE tenant_id = $1 AND invoice_id IS NULL`, tenant),
		"every outstanding item moved")
	evs := events(t, st, tenant)
	require.Len(t, evs, 1)
	assert.Equal(t, "invoice.created", evs[0].Type)
	assert.Equal(t, inv.ID, evs[0].Subject)
	assert.Equal(t, inv.ID, evs[0].Payload["id"])
	assert.EqualValues(t, want, evs[0].Payload["total"])

	// GetInvoice / ListInvoices / OpenInvoices read the same rows.
	got, items, err := st.GetInvoice(bg(), inv.ID)
	require.NoError(t, err)
	assert.Equal(t, inv.ID, got.ID)
	assert.Equal(t, int64(want), got.Total)
	assert.Len(t, items, 3)
	assert.Equal(t, int64(want), models.Total(func() []models.Item {
		out := make([]models.Item, len(items))
		for i, it := range items {
			out[i] = it.Item
			assert.Equal(t, inv.ID, *it.InvoiceID)
		}
		return out
	}()))
	open, err := st.OpenInvoices(bg(), tenant)
	require.NoError(t, err)
	require.Len(t, open, 1)
	assert.Equal(t, inv.ID, open[0].ID)

	// The same claim key again: the same invoice, nothing new, even though a
	// new item is now outstanding.
	before := countRows(t, st, tenant)
	again := claim(t, st, tenant, "claim-1")
	require.NotNil(t, again.Invoice)
	assert.Equal(t, inv.ID, again.Invoice.ID)
	assert.Equal(t, inv.Total, again.Invoice.Total)
	assert.Equal(t, before, countRows(t, st, tenant))

	record(t, st, tenant, created("a5", "r4", "basic", at(540))) // 50
	before = countRows(t, st, tenant)
	again = claim(t, st, tenant, "claim-1")
	require.NotNil(t, again.Invoice)
	assert.Equal(t, inv.ID, again.Invoice.ID)
	assert.Equal(t, int64(50), again.Outstanding)
	assert.Equal(t, before, countRows(t, st, tenant), "a replayed claim moves nothing")
	assert.Equal(t, int64(1), scalar(t, st, `SELECT count(*) FROM invoice_items WHERE tenant_id = $1 AND invoice_id IS NULL`, tenant))
	assert.Equal(t, row, readInvoice(t, st, inv.ID))
	assert.Len(t, events(t, st, tenant), 1)

	// A new key claims the rest.
	next := claim(t, st, tenant, "claim-2")
	require.NotNil(t, next.Invoice)
	assert.NotEqual(t, inv.ID, next.Invoice.ID)
	assert.Equal(t, int64(50), next.Invoice.Total)
	assert.Len(t, events(t, st, tenant), 2)
}

func TestClaimNonPositiveCarriesCredit(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)

	// Nothing at all: no invoice.
	res := claim(t, st, tenant, "empty")
	assert.Nil(t, res.Invoice)
	assert.Equal(t, int64(0), res.Outstanding)

	record(t, st, tenant, created("a1", "r1", "basic", at(0))) // +500
	first := claim(t, st, tenant, "k1")
	require.NotNil(t, first.Invoice)
	assert.Equal(t, int64(500), first.Invoice.Total)

	record(t, st, tenant, deactivated("a2", "r1", at(300))) // -250
	res = claim(t, st, tenant, "k2")
	assert.Nil(t, res.Invoice, "a credit is not invoiced")
	assert.Equal(t, int64(-250), res.Outstanding)
	assert.Equal(t, int64(1), scalar(t, st, `SELECT count(*) FROM invoices WHERE tenant_id = $1`, tenant))
	credit := itemRows(t, st, `WHERE activity_id = 'a2'`)
	require.Len(t, credit, 1)
	assert.Nil(t, credit[0].InvoiceID, "the credit stays outstanding")
	assert.Equal(t, int64(-250), credit[0].Amount)

	record(t, st, tenant, created("a3", "r2", "basic", at(300))) // +250: net zero
	res = claim(t, st, tenant, "k3")
	assert.Nil(t, res.Invoice, "a zero net is not invoiced")
	assert.Equal(t, int64(0), res.Outstanding)
	assert.Equal(t, int64(2), scalar(t, st, `SELECT count(*) FROM invoice_items WHERE tenant_id = $1 AND invoice_id IS NULL`, tenant))
	assert.Equal(t, int64(1), scalar(t, st, `SELECT count(*) FROM events WHERE tenant_id = $1`, tenant))

	record(t, st, tenant, created("a4", "r3", "pro", at(300))) // +1000
	res = claim(t, st, tenant, "k4")
	require.NotNil(t, res.Invoice)
	assert.Equal(t, int64(1000), res.Invoice.Total, "the credit nets against the next claim")
	row := readInvoice(t, st, res.Invoice.ID)
	assert.Equal(t, int64(1000), row.ItemsSum)
	assert.Equal(t, int64(3), row.Items, "credit, zeroing charge and new charge all on the invoice")
	assert.Equal(t, int64(0), scalar(t, st, `SELECT count(*) FROM invoice_items WHERE tenant_id = $1 AND invoice_id IS NULL`, tenant))
}

func TestClaimRejectsEmptyKeyAndUnknownTenant(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)
	record(t, st, tenant, created("a1", "r1", "basic", at(0)))
	_, err := st.Claim(bg(), store.ClaimParams{TenantID: tenant, Period: period0()})
	requireValidation(t, err)
	_, err = st.Claim(bg(), store.ClaimParams{TenantID: testkit.NewTenantID(t), ClaimKey: "k", Period: period0()})
	requireValidation(t, err)
	assert.Equal(t, int64(0), scalar(t, st, `SELECT count(*) FROM invoices`))
}

// TestClaimKeyOfAnotherTenant: a claim key is global, so reusing one for
// another tenant must not hand that tenant somebody else's invoice.
func TestClaimKeyOfAnotherTenant(t *testing.T) {
	st := testkit.NewStore(t)
	a := newTenant(t, st, fixed)
	b := newTenant(t, st, fixed)
	record(t, st, a, created("a1", "r1", "basic", at(0)))
	record(t, st, b, created("b1", "r1", "pro", at(0)))
	resA := claim(t, st, a, "shared-key")
	require.NotNil(t, resA.Invoice)

	resB, err := st.Claim(bg(), store.ClaimParams{TenantID: b, ClaimKey: "shared-key", Period: period0()})
	if err == nil && resB.Invoice != nil {
		assert.Equal(t, b, resB.Invoice.TenantID, "tenant %s was handed tenant %s's invoice %s", b.Short(), a.Short(), resB.Invoice.ID)
	}
	// Whatever the outcome, b's items are untouched by a's invoice.
	assert.Equal(t, int64(1), scalar(t, st, `SELECT count(*) FROM invoice_items WHERE tenant_id = $1 AND invoice_id IS NULL`, b))
}

func TestInvoiceTotalTriggerRejectsMismatch(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)
	record(t, st, tenant, created("a1", "r1", "basic", at(0))) // 500
	record(t, st, tenant, created("a2", "r2", "pro", at(300))) // 1000

	insertAndMove := func(id string, total int64) error {
		return pgx.BeginTxFunc(bg(), st.Pool(), pgx.TxOptions{}, func(tx pgx.Tx) error {
			if _, err := tx.Exec(bg(), `INSERT INTO invoices (id, tenant_id, claim_key, currency, total, period_start, period_end)
				VALUES ($1, $2, $1, 'usd', $3, $4, $5)`, id, tenant, total, at(0), at(600)); err != nil {
				return err
			}
			_, err := tx.Exec(bg(), `UPDATE invoice_items SET invoice_id = $1 WHERE tenant_id = $2 AND invoice_id IS NULL`, id, tenant)
			return err // the deferred trigger fires at COMMIT
		})
	}
	for _, total := range []int64{1499, 1501, 1} {
		err := insertAndMove(fmt.Sprintf("bad-%d", total), total)
		pgErr := requirePgCode(t, err, "23514")
		assert.Contains(t, pgErr.Message, "does not equal the sum of its items")
	}
	assert.Equal(t, int64(0), scalar(t, st, `SELECT count(*) FROM invoices`), "rolled back")
	assert.Equal(t, int64(2), scalar(t, st, `SELECT count(*) FROM invoice_items WHERE invoice_id IS NULL`), "items still outstanding")

	// Control: the right total commits.
	require.NoError(t, insertAndMove("good", 1500))
	assert.Equal(t, int64(1500), readInvoice(t, st, "good").ItemsSum)

	// Changing the total of a committed invoice fails at commit too.
	err := pgx.BeginTxFunc(bg(), st.Pool(), pgx.TxOptions{}, func(tx pgx.Tx) error {
		_, err := tx.Exec(bg(), `UPDATE invoices SET total = 1400 WHERE id = 'good'`)
		return err
	})
	requirePgCode(t, err, "23514")
	assert.Equal(t, int64(1500), readInvoice(t, st, "good").Total)

	// An invoice with no items fails unless its total is zero, which the
	// CHECK (total > 0) forbids.
	err = pgx.BeginTxFunc(bg(), st.Pool(), pgx.TxOptions{}, func(tx pgx.Tx) error {
		_, err := tx.Exec(bg(), `INSERT INTO invoices (id, tenant_id, claim_key, currency, total, period_start, period_end)
			VALUES ('empty', $1, 'empty', 'usd', 10, $2, $3)`, tenant, at(0), at(600))
		return err
	})
	requirePgCode(t, err, "23514")
}

// TestInvoiceTotalTriggerCoversItemMoves: the invariant "invoice total = sum
// of its items" must also hold when items move, not only when an invoice's
// total is written.
func TestInvoiceTotalTriggerCoversItemMoves(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)
	record(t, st, tenant, created("a1", "r1", "basic", at(0)))
	record(t, st, tenant, created("a2", "r2", "pro", at(300)))
	id := seedInvoice(t, st, tenant, "open")
	require.Equal(t, int64(1500), readInvoice(t, st, id).Total)

	_, err := st.Pool().Exec(bg(), `UPDATE invoice_items SET invoice_id = NULL WHERE activity_id = 'a2'`)
	row := readInvoice(t, st, id)
	assert.Error(t, err, "moving an item off an invoice must be rejected; now total %d, items %d", row.Total, row.ItemsSum)
	assert.Equal(t, row.Total, row.ItemsSum)
}

// TestConcurrentRecordAndClaim records activities from 8 goroutines and claims
// from 4 at the same time on one tenant, then checks that money is conserved.
func TestConcurrentRecordAndClaim(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)
	record(t, st, tenant, created("anchor", "r-anchor", "basic", at(0)))

	const (
		recorders    = 8
		perRecorder  = 12
		claimers     = 4
		perClaimer   = 10
		periodLength = 600
	)
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		errs      []error
		byKey     = map[string]*store.Invoice{}
		wantItems = 1 // the anchor's
	)
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
	}
	for g := range recorders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range perRecorder / 3 {
				res := fmt.Sprintf("g%d-r%d", g, j)
				base := 1 + 7*j + g
				for k, a := range []models.Activity{
					created(res+"-c", res, []string{"basic", "pro"}[j%2], at(base)),
					deactivated(res+"-d", res, at(base+100+g)),
					activated(res+"-a", res, at(base+200)),
				} {
					out, err := st.RecordActivity(bg(), tenant, a, false)
					if err != nil {
						fail(fmt.Errorf("record %s: %w", a.ID, err))
						continue
					}
					if out.Item == nil {
						fail(fmt.Errorf("record %s (%d): no item", a.ID, k))
					}
				}
			}
		}()
	}
	for c := range claimers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range perClaimer {
				key := fmt.Sprintf("c%d-%d", c, j)
				res, err := st.Claim(bg(), store.ClaimParams{TenantID: tenant, ClaimKey: key, Period: models.Period{Start: at(0), End: at(periodLength)}})
				if err != nil {
					fail(fmt.Errorf("claim %s: %w", key, err))
					continue
				}
				mu.Lock()
				byKey[key] = res.Invoice
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	require.Empty(t, errs)

	// Expected items: every activity bills (all on paid plans, alternating states).
	wantItems += recorders * (perRecorder / 3) * 3
	assert.Equal(t, int64(wantItems), scalar(t, st, `SELECT count(*) FROM invoice_items WHERE tenant_id = $1`, tenant))

	// Every invoice total equals its items; no invoice is non-positive.
	assert.Equal(t, int64(0), scalar(t, st, `SELECT count(*) FROM invoices i
		WHERE i.total <> (SELECT coalesce(sum(amount), 0) FROM invoice_items WHERE invoice_id = i.id) OR i.total <= 0`))
	// sum(invoices) + outstanding == sum(items).
	all := scalar(t, st, `SELECT coalesce(sum(amount), 0) FROM invoice_items WHERE tenant_id = $1`, tenant)
	invoiced := scalar(t, st, `SELECT coalesce(sum(total), 0) FROM invoices WHERE tenant_id = $1`, tenant)
	outstanding, err := st.Outstanding(bg(), tenant)
	require.NoError(t, err)
	assert.Equal(t, all, invoiced+outstanding)

	// Each successful claim's invoice holds items no other invoice holds, and
	// the invoices the claims returned are exactly those in the database.
	seenItems := map[string]string{}
	seenInvoices := map[string]bool{}
	var returned int64
	for key, inv := range byKey {
		if inv == nil {
			continue
		}
		require.False(t, seenInvoices[inv.ID], "claim %s returned invoice %s twice", key, inv.ID)
		seenInvoices[inv.ID] = true
		returned += inv.Total
		got, items, err := st.GetInvoice(bg(), inv.ID)
		require.NoError(t, err)
		assert.Equal(t, inv.Total, got.Total)
		for _, it := range items {
			if other, dup := seenItems[it.ID]; dup {
				t.Errorf("item %s on invoices %s and %s", it.ID, other, inv.ID)
			}
			seenItems[it.ID] = inv.ID
		}
	}
	assert.NotEmpty(t, seenInvoices, "the anchor's item alone makes the first claim invoice")
	assert.Equal(t, int64(len(seenInvoices)), scalar(t, st, `SELECT count(*) FROM invoices WHERE tenant_id = $1`, tenant))
	assert.Equal(t, invoiced, returned)
	assert.Equal(t, int64(len(seenItems)), scalar(t, st, `SELECT count(*) FROM invoice_items WHERE tenant_id = $1 AND invoice_id IS NOT NULL`, tenant))

	// A last claim sweeps whatever positive remainder there is.
	final := claim(t, st, tenant, "final")
	after, err := st.Outstanding(bg(), tenant)
	require.NoError(t, err)
	assert.LessOrEqual(t, after, int64(0))
	if final.Invoice != nil {
		assert.Equal(t, outstanding, final.Invoice.Total)
	}
	assert.Equal(t, all, scalar(t, st, `SELECT coalesce(sum(total), 0) FROM invoices WHERE tenant_id = $1`, tenant)+after)
}

func TestSetInvoiceStatusAwaitingPayment(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)
	record(t, st, tenant, created("a1", "r1", "basic", at(0)))
	id := seedInvoice(t, st, tenant, "open")

	inv, err := st.SetInvoiceStatus(bg(), id, store.InvoiceAwaitingPayment)
	require.NoError(t, err)
	assert.Equal(t, store.InvoiceAwaitingPayment, inv.Status)
	assert.Equal(t, "awaiting_payment", readInvoice(t, st, id).Status)
	inv, err = st.SetInvoiceStatus(bg(), id, store.InvoiceAwaitingPayment)
	require.NoError(t, err)
	assert.Equal(t, store.InvoiceAwaitingPayment, inv.Status)

	// From collecting too.
	_, err = st.Pool().Exec(bg(), `UPDATE invoices SET status = 'collecting' WHERE id = $1`, id)
	require.NoError(t, err)
	inv, err = st.SetInvoiceStatus(bg(), id, store.InvoiceAwaitingPayment)
	require.NoError(t, err)
	assert.Equal(t, store.InvoiceAwaitingPayment, inv.Status)
	assert.Equal(t, "awaiting_payment", readInvoice(t, st, id).Status)

	// A paid invoice stays paid.
	_, err = st.Settle(bg(), store.PaymentReport{InvoiceID: id, Rail: store.RailManual, Reference: "r", ReceivedAt: at(10)})
	require.NoError(t, err)
	for _, status := range []string{store.InvoiceAwaitingPayment, store.InvoiceOpen, store.InvoiceCollecting} {
		inv, err = st.SetInvoiceStatus(bg(), id, status)
		require.NoError(t, err)
		assert.Equal(t, store.InvoicePaid, inv.Status, status)
		assert.Equal(t, "paid", readInvoice(t, st, id).Status, status)
	}

	_, err = st.SetInvoiceStatus(bg(), "no-such-invoice", store.InvoiceAwaitingPayment)
	require.ErrorIs(t, err, store.ErrNotFound)
}

func TestSettleFirstPaymentWins(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)
	record(t, st, tenant, created("a1", "r1", "basic", at(0)))
	id := seedInvoice(t, st, tenant, "awaiting_payment")
	paidAt := ts("2026-01-01T00:05:00.123456789Z")
	hash1 := payHash("first payment")
	// NWC pays the invoice's BOLT11, whose stored quote values the msat.
	_, err := st.SaveBolt11(bg(), newBolt11(id, "first payment", at(60), time.Hour), at(60))
	require.NoError(t, err)

	first, err := st.Settle(bg(), store.PaymentReport{InvoiceID: id, Rail: store.RailNWC, Reference: hash1, AmountMsat: 150_000, ReceivedAt: paidAt})
	require.NoError(t, err)
	assert.Equal(t, store.SettledApplied, first.Outcome)
	assert.False(t, first.AlreadyPaid())
	assert.Equal(t, store.InvoicePaid, first.Invoice.Status)
	assert.Equal(t, "nwc", first.Invoice.PaidRail)
	row := readInvoice(t, st, id)
	assert.Equal(t, "paid", row.Status)
	require.NotNil(t, row.PaidAt)
	assert.True(t, row.PaidAt.Equal(paidAt.Truncate(time.Microsecond)), "paid_at %v", row.PaidAt)
	assert.Equal(t, "nwc", *row.PaidRail)
	assert.Equal(t, hash1, *row.PaidRef)

	// Other money on another rail: kept as an overpayment to refund; the
	// invoice keeps its first payment.
	second, err := st.Settle(bg(), store.PaymentReport{InvoiceID: id, Rail: store.RailStripe, Reference: "pi_2", Amount: priceBasic, Currency: "usd",
		ReceivedAt: paidAt.Add(time.Minute)})
	require.NoError(t, err)
	assert.Equal(t, store.SettledOverpayment, second.Outcome)
	assert.True(t, second.AlreadyPaid())
	assert.False(t, second.Payment.Applied)
	assert.Equal(t, "to_refund", second.Payment.RefundStatus)
	assert.Equal(t, "nwc", second.Invoice.PaidRail, "the first rail is kept")
	assert.Equal(t, hash1, second.Invoice.PaidReference)
	assert.Equal(t, row, readInvoice(t, st, id), "the invoice did not change")

	pays := paymentRows(t, st, id)
	require.Len(t, pays, 2)
	assert.Equal(t, "nwc", pays[0].Rail)
	assert.True(t, pays[0].Applied)
	assert.Nil(t, pays[0].RefundStatus)
	assert.Equal(t, "stripe", pays[1].Rail)
	assert.False(t, pays[1].Applied)
	require.NotNil(t, pays[1].RefundStatus)
	assert.Equal(t, "to_refund", *pays[1].RefundStatus)
	assert.Equal(t, second.Payment.ID, pays[1].ID)

	paid, overpaid := 0, 0
	for _, e := range events(t, st, tenant) {
		switch e.Type {
		case "invoice.paid":
			paid++
			assert.Equal(t, id, e.Subject)
			assert.Equal(t, "nwc", e.Payload["paid_rail"])
		case "payment.overpaid":
			overpaid++
			assert.Equal(t, pays[1].ID, e.Subject)
			assert.Equal(t, id, e.Payload["invoice_id"])
			assert.Equal(t, "pi_2", e.Payload["reference"])
		}
	}
	assert.Equal(t, 1, paid, "invoice.paid exactly once")
	assert.Equal(t, 1, overpaid, "payment.overpaid for the second payment")
	assert.Equal(t, int64(1), scalar(t, st, `SELECT count(*) FROM entitlements WHERE invoice_id = $1`, id))

	_, err = st.Settle(bg(), store.PaymentReport{InvoiceID: "no-such-invoice", Rail: store.RailNWC, Reference: payHash("x"), ReceivedAt: paidAt})
	require.ErrorIs(t, err, store.ErrNotFound)
}

func TestSettleConcurrentlyOnePaymentWins(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)
	const (
		rounds  = 5
		callers = 16
	)
	rails := []string{store.RailNWC, store.RailLightning, store.RailOOB, store.RailStripe, store.RailManual}
	for round := range rounds {
		record(t, st, tenant, created(fmt.Sprintf("a%d", round), fmt.Sprintf("r%d", round), "pro", at(round)))
		id := seedInvoice(t, st, tenant, "awaiting_payment")

		// Different money from every caller, across every rail.
		reports := make([]store.PaymentReport, callers)
		for i := range callers {
			rail := rails[i%len(rails)]
			ref := fmt.Sprintf("ref-%d-%d", round, i)
			switch rail {
			case store.RailNWC, store.RailLightning, store.RailOOB:
				ref = payHash(ref)
			case store.RailStripe:
				ref = "pi_" + ref
			}
			reports[i] = store.PaymentReport{InvoiceID: id, Rail: rail, Reference: ref, ReceivedAt: at(100 + i)}
		}
		results := make([]store.SettleResult, callers)
		errs := make([]error, callers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				results[i], errs[i] = st.Settle(bg(), reports[i])
			}()
		}
		close(start)
		wg.Wait()
		winners := 0
		var winner store.PaymentReport
		for i := range callers {
			require.NoError(t, errs[i])
			switch results[i].Outcome {
			case store.SettledApplied:
				winners++
				winner = reports[i]
			case store.SettledOverpayment:
				assert.False(t, results[i].Payment.Applied)
			default:
				t.Errorf("round %d caller %d: outcome %q", round, i, results[i].Outcome)
			}
		}
		require.Equal(t, 1, winners, "round %d: exactly one payment wins", round)
		for i := range callers {
			assert.Equal(t, winner.Rail, results[i].Invoice.PaidRail, "every caller sees the winning rail")
			assert.Equal(t, winner.Reference, results[i].Invoice.PaidReference, "every caller sees the winning reference")
		}
		row := readInvoice(t, st, id)
		assert.Equal(t, winner.Rail, *row.PaidRail)
		assert.Equal(t, winner.Reference, *row.PaidRef)
		assert.Equal(t, int64(1), scalar(t, st, `SELECT count(*) FROM events WHERE type = 'invoice.paid' AND subject_id = $1`, id))
		assert.Equal(t, int64(1), scalar(t, st, `SELECT count(*) FROM entitlements WHERE invoice_id = $1`, id))
		assert.Equal(t, int64(callers), scalar(t, st, `SELECT count(*) FROM payments WHERE invoice_id = $1`, id), "no money lost")
		assert.Equal(t, int64(1), scalar(t, st, `SELECT count(*) FROM payments WHERE invoice_id = $1 AND applied`, id))
		assert.Equal(t, int64(callers-1), scalar(t, st, `SELECT count(*) FROM payments WHERE invoice_id = $1 AND NOT applied AND refund_status = 'to_refund'`, id))
		assert.Equal(t, int64(callers-1), scalar(t, st, `SELECT count(*) FROM events e JOIN payments p ON p.id = e.subject_id
			WHERE e.type = 'payment.overpaid' AND p.invoice_id = $1 AND NOT p.applied`, id))
	}
}

func TestSettleClosedInvoice(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)
	for _, status := range []string{"void", "uncollectible"} {
		record(t, st, tenant, created("a-"+status, "r-"+status, "basic", at(0)))
		id := seedInvoice(t, st, tenant, "open")
		_, err := st.CloseInvoice(bg(), id, status, "test", at(50))
		require.NoError(t, err)

		// Money for a closed invoice is never lost: it is kept to refund.
		late := payHash("late-" + status)
		res, err := st.Settle(bg(), store.PaymentReport{InvoiceID: id, Rail: store.RailNWC, Reference: late, ReceivedAt: at(100)})
		require.NoError(t, err, status)
		assert.Equal(t, store.SettledOverpayment, res.Outcome, status)
		assert.Equal(t, status, res.Invoice.Status)
		row := readInvoice(t, st, id)
		assert.Equal(t, status, row.Status)
		assert.Nil(t, row.PaidAt)
		assert.Nil(t, row.PaidRail)
		assert.Equal(t, int64(0), scalar(t, st, `SELECT count(*) FROM events WHERE type = 'invoice.paid' AND subject_id = $1`, id))
		assert.Equal(t, int64(0), scalar(t, st, `SELECT count(*) FROM entitlements WHERE invoice_id = $1`, id))
		pays := paymentRows(t, st, id)
		require.Len(t, pays, 1)
		assert.False(t, pays[0].Applied)
		require.NotNil(t, pays[0].RefundStatus)
		assert.Equal(t, "to_refund", *pays[0].RefundStatus)
		assert.Equal(t, int64(1), scalar(t, st, `SELECT count(*) FROM events WHERE type = 'payment.overpaid' AND subject_id = $1`, pays[0].ID))

		inv, err := st.SetInvoiceStatus(bg(), id, store.InvoiceAwaitingPayment)
		require.NoError(t, err)
		assert.Equal(t, status, inv.Status, "a closed invoice is not reopened")
		assert.Equal(t, status, readInvoice(t, st, id).Status)
	}
}

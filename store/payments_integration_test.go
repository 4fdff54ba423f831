//go:build integration

package store_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
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

// payHash is a real-looking Lightning payment hash: 64 lowercase hex
// characters, the sha256 of seed.
func payHash(seed string) string {
	h := sha256.Sum256([]byte(seed))
	return hex.EncodeToString(h[:])
}

// newInvoice records one basic resource for the tenant and seeds an invoice
// of it in the given status. name must be unique per tenant.
func newInvoice(t *testing.T, st *store.Store, tenant models.TenantID, name, status string) string {
	t.Helper()
	record(t, st, tenant, created("act-"+name, "res-"+name, "basic", at(0)))
	return seedInvoice(t, st, tenant, status)
}

// newBolt11 is a Lightning invoice for invoiceID, issued at created and
// valid for ttl, whose payment hash is payHash(seed).
func newBolt11(invoiceID, seed string, created time.Time, ttl time.Duration) store.Bolt11 {
	return store.Bolt11{
		PaymentHash:    payHash(seed),
		InvoiceID:      invoiceID,
		PaymentRequest: "lnbcrt1500n1" + seed,
		AmountMsat:     150_000,
		QuoteAmount:    priceBasic,
		QuoteCurrency:  "usd",
		CreatedAt:      created,
		ExpiresAt:      created.Add(ttl),
	}
}

// paymentRow is a payments row as stored.
type paymentRow struct {
	ID, InvoiceID, TenantID, Rail, MoneyRef, Reference string
	Amount, AmountMsat                                 *int64
	Currency                                           *string
	ReceivedAt                                         time.Time
	Applied                                            bool
	RefundStatus                                       *string
}

func paymentRows(t tb, st *store.Store, invoiceID string) []paymentRow {
	t.Helper()
	rows, err := st.Pool().Query(bg(), `SELECT id, invoice_id, tenant_id, rail, money_ref, reference, amount, amount_msat, currency,
			received_at, applied, refund_status
		FROM payments WHERE invoice_id = $1 ORDER BY received_at, id`, invoiceID)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (paymentRow, error) {
		var p paymentRow
		err := r.Scan(&p.ID, &p.InvoiceID, &p.TenantID, &p.Rail, &p.MoneyRef, &p.Reference, &p.Amount, &p.AmountMsat, &p.Currency,
			&p.ReceivedAt, &p.Applied, &p.RefundStatus)
		p.ReceivedAt = p.ReceivedAt.UTC()
		return p, err
	})
	require.NoError(t, err)
	return out
}

// bolt11Row is a bolt11_invoices row as stored.
type bolt11Row struct {
	PaymentHash, InvoiceID                  string
	NWCRequestedAt, SupersededAt, SettledAt *time.Time
	AmtPaidMsat                             *int64
}

func readBolt11(t tb, st *store.Store, hash string) bolt11Row {
	t.Helper()
	var b bolt11Row
	require.NoError(t, st.Pool().QueryRow(bg(), `SELECT payment_hash, invoice_id, nwc_requested_at, superseded_at, settled_at, amt_paid_msat
		FROM bolt11_invoices WHERE payment_hash = $1`, hash).
		Scan(&b.PaymentHash, &b.InvoiceID, &b.NWCRequestedAt, &b.SupersededAt, &b.SettledAt, &b.AmtPaidMsat))
	return b
}

// sameTime asserts that got is set and is the instant want (to the microsecond).
func sameTime(t tb, want time.Time, got *time.Time, msgAndArgs ...any) {
	t.Helper()
	require.NotNil(t, got, msgAndArgs...)
	require.True(t, got.Equal(want.Truncate(time.Microsecond)), "want %v, got %v %v", want, *got, fmt.Sprint(msgAndArgs...))
}

// dbState is everything a payment operation can write, for "nothing written" checks.
type dbState struct {
	Payments, Events, Entitlements, Reservations, Reserved, Redeemed, CardPayments, Bolt11s, SettledBolt11s int64
	Invoices                                                                                                string
}

func snapshot(t tb, st *store.Store) dbState {
	t.Helper()
	var s dbState
	s.Payments = scalar(t, st, `SELECT count(*) FROM payments`)
	s.Events = scalar(t, st, `SELECT count(*) FROM events`)
	s.Entitlements = scalar(t, st, `SELECT count(*) FROM entitlements`)
	s.Reservations = scalar(t, st, `SELECT count(*) FROM discount_reservations`)
	s.Reserved = scalar(t, st, `SELECT coalesce(sum(reserved), 0) FROM discount_codes`)
	s.Redeemed = scalar(t, st, `SELECT coalesce(sum(redeemed), 0) FROM discount_codes`)
	s.CardPayments = scalar(t, st, `SELECT count(*) FROM card_payments`)
	s.Bolt11s = scalar(t, st, `SELECT count(*) FROM bolt11_invoices`)
	s.SettledBolt11s = scalar(t, st, `SELECT count(*) FROM bolt11_invoices WHERE settled_at IS NOT NULL`)
	require.NoError(t, st.Pool().QueryRow(bg(), `SELECT coalesce(string_agg(id || ':' || status || ':' || coalesce(paid_rail, '-') || ':' ||
		coalesce(closed_reason, '-'), ',' ORDER BY id), '') FROM invoices`).Scan(&s.Invoices))
	return s
}

func countType(t tb, st *store.Store, typ, subject string) int64 {
	t.Helper()
	return scalar(t, st, `SELECT count(*) FROM events WHERE type = $1 AND subject_id = $2`, typ, subject)
}

// ---------------------------------------------------------------- Settle

func TestSettleAppliedGrantsOneEntitlementAndSettlesBolt11(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)
	id := newInvoice(t, st, tenant, "a1", "awaiting_payment")
	issued := at(60)
	b := newBolt11(id, "applied", issued, time.Hour)
	saved, err := st.SaveBolt11(bg(), b, issued)
	require.NoError(t, err)
	require.Equal(t, b.PaymentHash, saved.PaymentHash)
	require.NoError(t, st.MarkNeedsAction(bg(), id, "card needs 3-D Secure", at(61)))
	require.Equal(t, int64(1), scalar(t, st, `SELECT count(*) FROM invoices WHERE id = $1 AND needs_action_at IS NOT NULL`, id))

	paidAt := ts("2026-01-01T00:02:00.500000789Z")
	// No msat in the report: the Lightning invoice's amount is what was paid.
	res, err := st.Settle(bg(), store.PaymentReport{InvoiceID: id, Rail: store.RailNWC, Reference: b.PaymentHash, ReceivedAt: paidAt})
	require.NoError(t, err)
	assert.Equal(t, store.SettledApplied, res.Outcome)
	assert.False(t, res.AlreadyPaid())
	assert.True(t, res.Payment.Applied)
	assert.Empty(t, res.Payment.RefundStatus)
	assert.Equal(t, store.InvoicePaid, res.Invoice.Status)

	row := readInvoice(t, st, id)
	assert.Equal(t, "paid", row.Status)
	sameTime(t, paidAt, row.PaidAt, "paid_at")
	require.NotNil(t, row.PaidRail)
	assert.Equal(t, "nwc", *row.PaidRail)
	assert.Equal(t, b.PaymentHash, *row.PaidRef)
	assert.Equal(t, int64(0), scalar(t, st, `SELECT count(*) FROM invoices WHERE id = $1 AND needs_action_at IS NOT NULL`, id),
		"paying clears needs_action_at")

	// Exactly one entitlement, for the invoice's period.
	assert.Equal(t, int64(1), scalar(t, st, `SELECT count(*) FROM entitlements WHERE invoice_id = $1`, id))
	var entTenant string
	var start, end, granted time.Time
	require.NoError(t, st.Pool().QueryRow(bg(), `SELECT tenant_id, period_start, period_end, granted_at FROM entitlements WHERE invoice_id = $1`, id).
		Scan(&entTenant, &start, &end, &granted))
	assert.Equal(t, string(tenant), entTenant)
	assert.True(t, start.Equal(anchor0), "period_start %v", start)
	assert.True(t, end.Equal(anchor0.Add(fixed)), "period_end %v", end)
	sameTime(t, paidAt, &granted, "granted_at")
	ent, err := st.GetEntitlement(bg(), id)
	require.NoError(t, err)
	assert.Equal(t, tenant, ent.TenantID)
	// The UNIQUE invoice key holds even against a raw insert.
	_, err = st.Pool().Exec(bg(), `INSERT INTO entitlements (invoice_id, tenant_id, period_start, period_end, granted_at) VALUES ($1, $2, $3, $4, $5)`,
		id, tenant, anchor0, anchor0.Add(fixed), paidAt)
	requirePgCode(t, err, "23505")

	// invoice.paid, once.
	assert.Equal(t, int64(1), countType(t, st, "invoice.paid", id))
	for _, e := range events(t, st, tenant) {
		if e.Type == "invoice.paid" {
			assert.Equal(t, "paid", e.Payload["status"])
			assert.Equal(t, "nwc", e.Payload["paid_rail"])
			assert.Equal(t, b.PaymentHash, e.Payload["paid_reference"])
		}
	}

	// The Lightning invoice whose hash was paid is settled, with its own amount.
	br := readBolt11(t, st, b.PaymentHash)
	sameTime(t, paidAt, br.SettledAt, "settled_at")
	require.NotNil(t, br.AmtPaidMsat)
	assert.Equal(t, int64(150_000), *br.AmtPaidMsat)
	assert.Nil(t, br.SupersededAt)
	_, err = st.LiveBolt11(bg(), id, issued)
	require.ErrorIs(t, err, store.ErrNotFound, "a settled Lightning invoice is not payable")

	// One payments row, applied.
	pays := paymentRows(t, st, id)
	require.Len(t, pays, 1)
	p := pays[0]
	assert.Equal(t, res.Payment.ID, p.ID)
	assert.Equal(t, string(tenant), p.TenantID)
	assert.Equal(t, "nwc", p.Rail)
	assert.Equal(t, "lightning:"+b.PaymentHash, p.MoneyRef)
	assert.Equal(t, b.PaymentHash, p.Reference)
	assert.Nil(t, p.Amount)
	assert.Nil(t, p.Currency)
	// The report had no msat: a settled BOLT11 received at least its amount,
	// which is what the payment records and is valued at.
	require.NotNil(t, p.AmountMsat)
	assert.Equal(t, int64(150_000), *p.AmountMsat)
	assert.True(t, p.Applied)
	assert.Nil(t, p.RefundStatus)
	assert.True(t, p.ReceivedAt.Equal(paidAt.Truncate(time.Microsecond)))

	viaAPI, err := st.Payments(bg(), id)
	require.NoError(t, err)
	require.Len(t, viaAPI, 1)
	assert.Equal(t, p.ID, viaAPI[0].ID)
	assert.True(t, viaAPI[0].Applied)
}

func TestSettleRecordsReportedAmounts(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)

	// Lightning: the report's msat is what was paid, even above the invoice's.
	id := newInvoice(t, st, tenant, "ln", "awaiting_payment")
	b := newBolt11(id, "amounts", at(60), time.Hour)
	_, err := st.SaveBolt11(bg(), b, at(60))
	require.NoError(t, err)
	res, err := st.Settle(bg(), store.PaymentReport{InvoiceID: id, Rail: store.RailLightning, Reference: b.PaymentHash, AmountMsat: 151_000, ReceivedAt: at(70)})
	require.NoError(t, err)
	require.Equal(t, store.SettledApplied, res.Outcome)
	br := readBolt11(t, st, b.PaymentHash)
	require.NotNil(t, br.AmtPaidMsat)
	assert.Equal(t, int64(151_000), *br.AmtPaidMsat)
	pays := paymentRows(t, st, id)
	require.Len(t, pays, 1)
	require.NotNil(t, pays[0].AmountMsat)
	assert.Equal(t, int64(151_000), *pays[0].AmountMsat)

	// Card: fiat amount and currency.
	id2 := newInvoice(t, st, tenant, "card", "collecting")
	res, err = st.Settle(bg(), store.PaymentReport{InvoiceID: id2, Rail: store.RailStripe, Reference: "pi_amounts", Amount: priceBasic, Currency: "usd", ReceivedAt: at(80)})
	require.NoError(t, err)
	require.Equal(t, store.SettledApplied, res.Outcome)
	pays = paymentRows(t, st, id2)
	require.Len(t, pays, 1)
	require.NotNil(t, pays[0].Amount)
	assert.Equal(t, int64(priceBasic), *pays[0].Amount)
	require.NotNil(t, pays[0].Currency)
	assert.Equal(t, "usd", *pays[0].Currency)
	assert.Equal(t, "stripe:pi_amounts", pays[0].MoneyRef)
	assert.Nil(t, pays[0].AmountMsat)
}

// TestSettleLargeAmounts: amount and amount_msat are bigint columns; a
// Lightning payment above 2^31 msat (about 2.1M sats, a four-figure fiat
// invoice) is ordinary and must be recorded as reported.
func TestSettleLargeAmounts(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)
	const bigMsat = int64(5_000_000_000)  // 5M sats
	const bigCents = int64(3_000_000_000) // 30M usd

	t.Run("lightning msat", func(t *testing.T) {
		id := newInvoice(t, st, tenant, "bigln", "awaiting_payment")
		b := newBolt11(id, "big", at(60), time.Hour)
		b.AmountMsat = bigMsat
		_, err := st.SaveBolt11(bg(), b, at(60))
		require.NoError(t, err)
		res, err := st.Settle(bg(), store.PaymentReport{InvoiceID: id, Rail: store.RailLightning, Reference: b.PaymentHash, AmountMsat: bigMsat, ReceivedAt: at(70)})
		require.NoError(t, err, "settling a %d msat payment", bigMsat)
		assert.Equal(t, store.SettledApplied, res.Outcome)
		pays := paymentRows(t, st, id)
		require.Len(t, pays, 1)
		require.NotNil(t, pays[0].AmountMsat)
		assert.Equal(t, bigMsat, *pays[0].AmountMsat)
		br := readBolt11(t, st, b.PaymentHash)
		require.NotNil(t, br.AmtPaidMsat)
		assert.Equal(t, bigMsat, *br.AmtPaidMsat)
	})
	t.Run("card amount", func(t *testing.T) {
		id := newInvoice(t, st, tenant, "bigcard", "awaiting_payment")
		res, err := st.Settle(bg(), store.PaymentReport{InvoiceID: id, Rail: store.RailStripe, Reference: "pi_big", Amount: bigCents, Currency: "usd", ReceivedAt: at(70)})
		require.NoError(t, err, "settling a %d cent payment", bigCents)
		assert.Equal(t, store.SettledApplied, res.Outcome)
		pays := paymentRows(t, st, id)
		require.Len(t, pays, 1)
		require.NotNil(t, pays[0].Amount)
		assert.Equal(t, bigCents, *pays[0].Amount)
	})
}

func TestSettleSameLightningPaymentAcrossRails(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)
	id := newInvoice(t, st, tenant, "a1", "awaiting_payment")
	b := newBolt11(id, "one payment", at(60), time.Hour)
	_, err := st.SaveBolt11(bg(), b, at(60))
	require.NoError(t, err)

	first, err := st.Settle(bg(), store.PaymentReport{InvoiceID: id, Rail: store.RailNWC, Reference: b.PaymentHash, AmountMsat: 150_000, ReceivedAt: at(100)})
	require.NoError(t, err)
	require.Equal(t, store.SettledApplied, first.Outcome)
	paidRow := readInvoice(t, st, id)

	// The settlement stream and a lookup report the same money (the lookup
	// with the hash in upper case): duplicates, nothing changes.
	for i, rep := range []store.PaymentReport{
		{InvoiceID: id, Rail: store.RailLightning, Reference: b.PaymentHash, AmountMsat: 150_000, ReceivedAt: at(101)},
		{InvoiceID: id, Rail: store.RailOOB, Reference: strings.ToUpper(b.PaymentHash), ReceivedAt: at(102)},
		{InvoiceID: id, Rail: store.RailNWC, Reference: b.PaymentHash, ReceivedAt: at(103)},
	} {
		res, err := st.Settle(bg(), rep)
		require.NoError(t, err, "report %d (%s)", i, rep.Rail)
		assert.Equal(t, store.SettledDuplicate, res.Outcome, "report %d (%s)", i, rep.Rail)
		assert.True(t, res.AlreadyPaid())
		assert.Equal(t, first.Payment.ID, res.Payment.ID, "the recorded payment is returned")
		assert.Equal(t, "nwc", res.Payment.Rail)
		assert.Equal(t, "nwc", res.Invoice.PaidRail)
		assert.Equal(t, store.InvoicePaid, res.Invoice.Status)
	}

	pays := paymentRows(t, st, id)
	require.Len(t, pays, 1, "one Lightning payment is one payments row")
	assert.Equal(t, "nwc", pays[0].Rail)
	assert.True(t, pays[0].Applied)
	assert.Equal(t, paidRow, readInvoice(t, st, id), "paid_rail and paid_at stay the first report's")
	assert.Equal(t, "nwc", *paidRow.PaidRail)
	sameTime(t, at(100), paidRow.PaidAt)
	assert.Equal(t, int64(1), countType(t, st, "invoice.paid", id))
	assert.Equal(t, int64(0), scalar(t, st, `SELECT count(*) FROM events WHERE type = 'payment.overpaid'`))
	assert.Equal(t, int64(1), scalar(t, st, `SELECT count(*) FROM entitlements WHERE invoice_id = $1`, id))
	sameTime(t, at(100), readBolt11(t, st, b.PaymentHash).SettledAt, "settled at the first report")

	// The same money reported for another invoice is refused; nothing written.
	other := newInvoice(t, st, tenant, "a2", "awaiting_payment")
	before := snapshot(t, st)
	_, err = st.Settle(bg(), store.PaymentReport{InvoiceID: other, Rail: store.RailLightning, Reference: b.PaymentHash, ReceivedAt: at(200)})
	requireValidation(t, err)
	assert.Equal(t, before, snapshot(t, st))
	assert.Equal(t, "awaiting_payment", readInvoice(t, st, other).Status)
}

func TestSettleSameLightningPaymentConcurrently(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)
	id := newInvoice(t, st, tenant, "a1", "awaiting_payment")
	hash := payHash("raced payment")
	rails := []string{store.RailNWC, store.RailLightning, store.RailOOB}
	const callers = 12

	results := make([]store.SettleResult, callers)
	errs := make([]error, callers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i], errs[i] = st.Settle(bg(), store.PaymentReport{InvoiceID: id, Rail: rails[i%3], Reference: hash, ReceivedAt: at(100 + i)})
		}()
	}
	close(start)
	wg.Wait()
	applied := 0
	for i := range callers {
		require.NoError(t, errs[i])
		switch results[i].Outcome {
		case store.SettledApplied:
			applied++
		case store.SettledDuplicate:
		default:
			t.Errorf("caller %d: outcome %q", i, results[i].Outcome)
		}
	}
	assert.Equal(t, 1, applied)
	assert.Equal(t, int64(1), scalar(t, st, `SELECT count(*) FROM payments`))
	assert.Equal(t, int64(1), countType(t, st, "invoice.paid", id))
	assert.Equal(t, int64(0), scalar(t, st, `SELECT count(*) FROM events WHERE type = 'payment.overpaid'`))
}

func TestSettleOtherMoneyAfterPaidIsOverpayment(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)
	id := newInvoice(t, st, tenant, "a1", "awaiting_payment")
	// A Lightning invoice is out when the card pays.
	b := newBolt11(id, "late lightning", at(60), time.Hour)
	_, err := st.SaveBolt11(bg(), b, at(60))
	require.NoError(t, err)

	first, err := st.Settle(bg(), store.PaymentReport{InvoiceID: id, Rail: store.RailStripe, Reference: "pi_A", Amount: priceBasic, Currency: "usd", ReceivedAt: at(100)})
	require.NoError(t, err)
	require.Equal(t, store.SettledApplied, first.Outcome)
	paidRow := readInvoice(t, st, id)

	// Then the Lightning invoice is paid too: money owed back.
	over, err := st.Settle(bg(), store.PaymentReport{InvoiceID: id, Rail: store.RailNWC, Reference: b.PaymentHash, AmountMsat: 200_000, ReceivedAt: at(110)})
	require.NoError(t, err)
	assert.Equal(t, store.SettledOverpayment, over.Outcome)
	assert.True(t, over.AlreadyPaid())
	assert.False(t, over.Payment.Applied)
	assert.Equal(t, "to_refund", over.Payment.RefundStatus)
	assert.Equal(t, "stripe", over.Invoice.PaidRail)
	assert.Equal(t, "pi_A", over.Invoice.PaidReference)
	assert.Equal(t, paidRow, readInvoice(t, st, id), "the invoice keeps the first payment")

	pays := paymentRows(t, st, id)
	require.Len(t, pays, 2)
	assert.Equal(t, "stripe", pays[0].Rail)
	assert.True(t, pays[0].Applied)
	op := pays[1]
	assert.Equal(t, over.Payment.ID, op.ID)
	assert.Equal(t, "nwc", op.Rail)
	assert.Equal(t, "lightning:"+b.PaymentHash, op.MoneyRef)
	assert.False(t, op.Applied)
	require.NotNil(t, op.RefundStatus)
	assert.Equal(t, "to_refund", *op.RefundStatus)
	require.NotNil(t, op.AmountMsat)
	assert.Equal(t, int64(200_000), *op.AmountMsat)
	// The Lightning invoice did receive the money.
	br := readBolt11(t, st, b.PaymentHash)
	sameTime(t, at(110), br.SettledAt)
	require.NotNil(t, br.AmtPaidMsat)
	assert.Equal(t, int64(200_000), *br.AmtPaidMsat)

	assert.Equal(t, int64(1), countType(t, st, "payment.overpaid", op.ID))
	for _, e := range events(t, st, tenant) {
		if e.Type == "payment.overpaid" {
			assert.Equal(t, op.ID, e.Subject)
			assert.Equal(t, id, e.Payload["invoice_id"])
			assert.Equal(t, "nwc", e.Payload["rail"])
			assert.Equal(t, b.PaymentHash, e.Payload["reference"])
			assert.Equal(t, false, e.Payload["applied"])
			assert.Equal(t, "to_refund", e.Payload["refund_status"])
			assert.EqualValues(t, 200_000, e.Payload["amount_msat"])
		}
	}

	// Replays of either payment are duplicates: no new row, no new event.
	for _, rep := range []store.PaymentReport{
		{InvoiceID: id, Rail: store.RailLightning, Reference: b.PaymentHash, ReceivedAt: at(120)},
		{InvoiceID: id, Rail: store.RailStripe, Reference: "pi_A", ReceivedAt: at(121)},
	} {
		res, err := st.Settle(bg(), rep)
		require.NoError(t, err)
		assert.Equal(t, store.SettledDuplicate, res.Outcome, rep.Rail)
	}
	assert.Len(t, paymentRows(t, st, id), 2)

	// Manual money after paid is an overpayment too.
	man, err := st.Settle(bg(), store.PaymentReport{InvoiceID: id, Rail: store.RailManual, Reference: "cash at the desk", Amount: 100, Currency: "usd", ReceivedAt: at(130)})
	require.NoError(t, err)
	assert.Equal(t, store.SettledOverpayment, man.Outcome)
	pays = paymentRows(t, st, id)
	require.Len(t, pays, 3)
	assert.Equal(t, "manual:"+id+"/cash at the desk", pays[2].MoneyRef)
	assert.Equal(t, "cash at the desk", pays[2].Reference, "manual references are kept as given")

	assert.Equal(t, int64(2), scalar(t, st, `SELECT count(*) FROM events WHERE type = 'payment.overpaid' AND tenant_id = $1`, tenant))
	assert.Equal(t, int64(1), countType(t, st, "invoice.paid", id))
	assert.Equal(t, int64(1), scalar(t, st, `SELECT count(*) FROM entitlements WHERE invoice_id = $1`, id))
	assert.Equal(t, int64(2), scalar(t, st, `SELECT count(*) FROM payments WHERE tenant_id = $1 AND refund_status = 'to_refund'`, tenant))
	// What payments apply always adds up to the invoice's amount_paid, even
	// against a raw update (checked at commit).
	_, err = st.Pool().Exec(bg(), `UPDATE payments SET applied = true, applied_amount = 1, refund_status = NULL, refund_reason = NULL WHERE id = $1`, op.ID)
	pgErr := requirePgCode(t, err, "23514")
	assert.Contains(t, pgErr.Message, "does not equal the sum of its applied payments")
}

func TestSettleVoidedInvoiceIsOverpayment(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)
	id := newInvoice(t, st, tenant, "a1", "awaiting_payment")
	b := newBolt11(id, "void then paid", at(60), time.Hour)
	_, err := st.SaveBolt11(bg(), b, at(60))
	require.NoError(t, err)
	_, err = st.CreateDiscountCode(bg(), "VOIDED", 1)
	require.NoError(t, err)
	require.NoError(t, st.ReserveDiscount(bg(), id, "VOIDED", at(61)))
	_, err = st.CloseInvoice(bg(), id, store.InvoiceVoid, "duplicate invoice", at(70))
	require.NoError(t, err)
	sameTime(t, at(70), readBolt11(t, st, b.PaymentHash).SupersededAt)

	// The wallet paid the superseded Lightning invoice anyway.
	res, err := st.Settle(bg(), store.PaymentReport{InvoiceID: id, Rail: store.RailOOB, Reference: b.PaymentHash, ReceivedAt: at(80)})
	require.NoError(t, err)
	assert.Equal(t, store.SettledOverpayment, res.Outcome)
	assert.Equal(t, store.InvoiceVoid, res.Invoice.Status)
	row := readInvoice(t, st, id)
	assert.Equal(t, "void", row.Status)
	assert.Nil(t, row.PaidAt)
	pays := paymentRows(t, st, id)
	require.Len(t, pays, 1, "the money is never lost")
	assert.False(t, pays[0].Applied)
	require.NotNil(t, pays[0].RefundStatus)
	assert.Equal(t, "to_refund", *pays[0].RefundStatus)
	assert.Equal(t, int64(1), countType(t, st, "payment.overpaid", pays[0].ID))
	assert.Equal(t, int64(0), countType(t, st, "invoice.paid", id))
	assert.Equal(t, int64(0), scalar(t, st, `SELECT count(*) FROM entitlements WHERE invoice_id = $1`, id))
	d, err := st.GetDiscountCode(bg(), "VOIDED")
	require.NoError(t, err)
	assert.Equal(t, 0, d.Reserved, "released when voided, not re-reserved")
	assert.Equal(t, 0, d.Redeemed, "an overpayment consumes no discount")
	_, status, err := st.DiscountReservation(bg(), id)
	require.NoError(t, err)
	assert.Equal(t, "released", status)
}

func TestSettleRejectsBadReferences(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)
	id := newInvoice(t, st, tenant, "a1", "awaiting_payment")
	b := newBolt11(id, "bad refs", at(60), time.Hour)
	_, err := st.SaveBolt11(bg(), b, at(60))
	require.NoError(t, err)
	before := snapshot(t, st)
	row := readInvoice(t, st, id)

	for _, tc := range []struct {
		name, rail, ref, field string
	}{
		{"nwc with a non-hash reference", store.RailNWC, "hash-1", "reference"},
		{"nwc with a preimage-length prefix", store.RailNWC, b.PaymentHash[:63], "reference"},
		{"nwc with a longer reference", store.RailNWC, b.PaymentHash + "0", "reference"},
		{"lightning with a non-hex character", store.RailLightning, "g" + b.PaymentHash[1:], "reference"},
		{"oob with a bolt11 string", store.RailOOB, "lnbcrt1500n1bad", "reference"},
		{"lightning with an empty reference", store.RailLightning, "", "reference"},
		{"stripe with a charge id", store.RailStripe, "ch_123", "reference"},
		{"stripe with a payment hash", store.RailStripe, b.PaymentHash, "reference"},
		{"stripe with an empty reference", store.RailStripe, "", "reference"},
		{"stripe with an upper-case prefix", store.RailStripe, "PI_123", "reference"},
		{"unknown rail card", "card", "pi_123", "rail"},
		{"unknown rail upper-case NWC", "NWC", b.PaymentHash, "rail"},
		{"empty rail", "", b.PaymentHash, "rail"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := st.Settle(bg(), store.PaymentReport{InvoiceID: id, Rail: tc.rail, Reference: tc.ref, ReceivedAt: at(100)})
			ve := requireValidation(t, err)
			assert.Equal(t, tc.field, ve.Field)
			assert.Equal(t, before, snapshot(t, st), "nothing written")
			assert.Equal(t, row, readInvoice(t, st, id))
			assert.Nil(t, readBolt11(t, st, b.PaymentHash).SettledAt)
		})
	}
}

// TestSettleHashOfAnotherInvoicesBolt11: a payment hash issued for invoice A
// reported against invoice B must not mark A's Lightning invoice settled (A
// would be left unpaid with no payable Lightning invoice, and the real
// settlement of A's hash would then be refused as "already recorded for B").
func TestSettleHashOfAnotherInvoicesBolt11(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)
	a := newInvoice(t, st, tenant, "a", "awaiting_payment")
	bInv := newInvoice(t, st, tenant, "b", "awaiting_payment")
	bolt := newBolt11(a, "belongs to A", at(60), time.Hour)
	_, err := st.SaveBolt11(bg(), bolt, at(60))
	require.NoError(t, err)

	_, err = st.Settle(bg(), store.PaymentReport{InvoiceID: bInv, Rail: store.RailLightning, Reference: bolt.PaymentHash, ReceivedAt: at(100)})
	// Whether the report is refused or recorded against B, A's Lightning
	// invoice must be untouched while A is unpaid.
	assert.Equal(t, "awaiting_payment", readInvoice(t, st, a).Status)
	assert.Nil(t, readBolt11(t, st, bolt.PaymentHash).SettledAt,
		"A's Lightning invoice was marked settled by a payment recorded for B (Settle err: %v)", err)
	_, liveErr := st.LiveBolt11(bg(), a, at(61))
	assert.NoError(t, liveErr, "A still has a payable Lightning invoice")
}

// ---------------------------------------------------------------- discounts

func TestDiscountCodeLifecycle(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)
	code := func(c string) store.DiscountCode {
		t.Helper()
		d, err := st.GetDiscountCode(bg(), c)
		require.NoError(t, err)
		// Cross-check with SQL.
		var r, rd int64
		require.NoError(t, st.Pool().QueryRow(bg(), `SELECT reserved, redeemed FROM discount_codes WHERE code = $1`, c).Scan(&r, &rd))
		require.Equal(t, int64(d.Reserved), r)
		require.Equal(t, int64(d.Redeemed), rd)
		return d
	}
	reservation := func(inv string) (string, string) {
		t.Helper()
		c, s, err := st.DiscountReservation(bg(), inv)
		require.NoError(t, err)
		return c, s
	}

	d, err := st.CreateDiscountCode(bg(), "SPRING-26", 2)
	require.NoError(t, err)
	assert.Equal(t, store.DiscountCode{Code: "SPRING-26", MaxRedemptions: 2}, d)
	d, err = st.CreateDiscountCode(bg(), "SPRING-26", 2)
	require.NoError(t, err, "creating again with the same limit is a no-op")
	assert.Equal(t, 2, d.MaxRedemptions)
	_, err = st.CreateDiscountCode(bg(), "SPRING-26", 3)
	requireValidation(t, err)
	assert.Equal(t, 2, code("SPRING-26").MaxRedemptions)
	_, err = st.CreateDiscountCode(bg(), "bad code!", 1)
	requireValidation(t, err)
	_, err = st.CreateDiscountCode(bg(), "ZERO", 0)
	requireValidation(t, err)
	assert.Equal(t, int64(1), scalar(t, st, `SELECT count(*) FROM discount_codes`))
	_, err = st.CreateDiscountCode(bg(), "OTHER", 5)
	require.NoError(t, err)

	invA := newInvoice(t, st, tenant, "a", "open")
	invB := newInvoice(t, st, tenant, "b", "collecting")
	invC := newInvoice(t, st, tenant, "c", "awaiting_payment")

	// Reserve for A; again is a no-op.
	require.NoError(t, st.ReserveDiscount(bg(), invA, "SPRING-26", at(10)))
	require.NoError(t, st.ReserveDiscount(bg(), invA, "SPRING-26", at(11)))
	assert.Equal(t, 1, code("SPRING-26").Reserved)
	c, s := reservation(invA)
	assert.Equal(t, "SPRING-26", c)
	assert.Equal(t, "reserved", s)

	// Another code for A is refused, and OTHER keeps its slots.
	before := snapshot(t, st)
	requireValidation(t, st.ReserveDiscount(bg(), invA, "OTHER", at(12)))
	assert.Equal(t, before, snapshot(t, st))
	assert.Equal(t, 0, code("OTHER").Reserved)

	// B takes the last slot; C finds the code exhausted, and nothing is written.
	require.NoError(t, st.ReserveDiscount(bg(), invB, "SPRING-26", at(13)))
	assert.Equal(t, 2, code("SPRING-26").Reserved)
	before = snapshot(t, st)
	requireValidation(t, st.ReserveDiscount(bg(), invC, "SPRING-26", at(14)))
	assert.Equal(t, before, snapshot(t, st))
	_, _, err = st.DiscountReservation(bg(), invC)
	require.ErrorIs(t, err, store.ErrNotFound)
	// An unknown code is a validation error too.
	requireValidation(t, st.ReserveDiscount(bg(), invC, "NO-SUCH-CODE", at(14)))
	assert.Equal(t, before, snapshot(t, st))

	// Paying A consumes its slot.
	res, err := st.Settle(bg(), store.PaymentReport{InvoiceID: invA, Rail: store.RailStripe, Reference: "pi_discounted", ReceivedAt: at(20)})
	require.NoError(t, err)
	require.Equal(t, store.SettledApplied, res.Outcome)
	d = code("SPRING-26")
	assert.Equal(t, 1, d.Reserved)
	assert.Equal(t, 1, d.Redeemed)
	_, s = reservation(invA)
	assert.Equal(t, "consumed", s)
	assert.Equal(t, int64(1), scalar(t, st, `SELECT count(*) FROM discount_reservations WHERE invoice_id = $1 AND resolved_at IS NOT NULL`, invA))
	// An overpayment on A consumes nothing more.
	_, err = st.Settle(bg(), store.PaymentReport{InvoiceID: invA, Rail: store.RailStripe, Reference: "pi_again", ReceivedAt: at(21)})
	require.NoError(t, err)
	assert.Equal(t, 1, code("SPRING-26").Redeemed)
	// A paid invoice cannot reserve another code.
	requireValidation(t, st.ReserveDiscount(bg(), invA, "OTHER", at(22)))
	assert.Equal(t, 0, code("OTHER").Reserved)

	// Voiding B releases its slot...
	_, err = st.CloseInvoice(bg(), invB, store.InvoiceVoid, "", at(30))
	require.NoError(t, err)
	d = code("SPRING-26")
	assert.Equal(t, 0, d.Reserved)
	assert.Equal(t, 1, d.Redeemed)
	_, s = reservation(invB)
	assert.Equal(t, "released", s)
	// ...closing again releases nothing more...
	_, err = st.CloseInvoice(bg(), invB, store.InvoiceVoid, "", at(31))
	require.NoError(t, err)
	assert.Equal(t, 0, code("SPRING-26").Reserved)

	// ...and C can use it.
	require.NoError(t, st.ReserveDiscount(bg(), invC, "SPRING-26", at(40)))
	d = code("SPRING-26")
	assert.Equal(t, 1, d.Reserved)
	assert.Equal(t, 1, d.Redeemed)
	_, err = st.Settle(bg(), store.PaymentReport{InvoiceID: invC, Rail: store.RailManual, Reference: "transfer", ReceivedAt: at(50)})
	require.NoError(t, err)
	d = code("SPRING-26")
	assert.Equal(t, 0, d.Reserved)
	assert.Equal(t, 2, d.Redeemed)

	// Fully redeemed: a new invoice is refused.
	invD := newInvoice(t, st, tenant, "d", "open")
	before = snapshot(t, st)
	requireValidation(t, st.ReserveDiscount(bg(), invD, "SPRING-26", at(60)))
	assert.Equal(t, before, snapshot(t, st))

	// Writing off an invoice releases its slot as well.
	require.NoError(t, st.ReserveDiscount(bg(), invD, "OTHER", at(61)))
	assert.Equal(t, 1, code("OTHER").Reserved)
	_, err = st.CloseInvoice(bg(), invD, store.InvoiceUncollectible, "gone", at(62))
	require.NoError(t, err)
	d = code("OTHER")
	assert.Equal(t, 0, d.Reserved)
	assert.Equal(t, 0, d.Redeemed)
	_, s = reservation(invD)
	assert.Equal(t, "released", s)

	_, err = st.GetDiscountCode(bg(), "NO-SUCH-CODE")
	require.ErrorIs(t, err, store.ErrNotFound)
	_, _, err = st.DiscountReservation(bg(), "no-such-invoice")
	require.ErrorIs(t, err, store.ErrNotFound)
	require.ErrorIs(t, st.ReserveDiscount(bg(), "no-such-invoice", "OTHER", at(70)), store.ErrNotFound)
}

func TestReserveDiscountConcurrentlyNeverOversells(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)
	const (
		slots    = 3
		invoices = 10
	)
	_, err := st.CreateDiscountCode(bg(), "RUSH", slots)
	require.NoError(t, err)
	ids := make([]string, invoices)
	for i := range ids {
		ids[i] = newInvoice(t, st, tenant, fmt.Sprintf("i%d", i), "open")
	}
	errs := make([]error, invoices)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range invoices {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = st.ReserveDiscount(bg(), ids[i], "RUSH", at(10))
		}()
	}
	close(start)
	wg.Wait()
	ok := 0
	for _, err := range errs {
		if err == nil {
			ok++
			continue
		}
		requireValidation(t, err)
	}
	assert.Equal(t, slots, ok)
	d, err := st.GetDiscountCode(bg(), "RUSH")
	require.NoError(t, err)
	assert.Equal(t, slots, d.Reserved)
	assert.Equal(t, int64(slots), scalar(t, st, `SELECT count(*) FROM discount_reservations WHERE code = 'RUSH' AND status = 'reserved'`))
}

// ---------------------------------------------------------------- CloseInvoice

func TestCloseInvoice(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)

	t.Run("void", func(t *testing.T) {
		id := newInvoice(t, st, tenant, "void", "awaiting_payment")
		b := newBolt11(id, "voided live", at(60), time.Hour)
		_, err := st.SaveBolt11(bg(), b, at(60))
		require.NoError(t, err)

		inv, err := st.CloseInvoice(bg(), id, store.InvoiceVoid, "customer cancelled", at(70))
		require.NoError(t, err)
		assert.Equal(t, store.InvoiceVoid, inv.Status)
		var closedAt *time.Time
		var reason *string
		require.NoError(t, st.Pool().QueryRow(bg(), `SELECT closed_at, closed_reason FROM invoices WHERE id = $1`, id).Scan(&closedAt, &reason))
		sameTime(t, at(70), closedAt)
		require.NotNil(t, reason)
		assert.Equal(t, "customer cancelled", *reason)
		assert.Equal(t, "void", readInvoice(t, st, id).Status)

		// Its live Lightning invoice is superseded.
		sameTime(t, at(70), readBolt11(t, st, b.PaymentHash).SupersededAt)
		_, err = st.LiveBolt11(bg(), id, at(61))
		require.ErrorIs(t, err, store.ErrNotFound)
		// No new Lightning invoice for a closed invoice.
		_, err = st.SaveBolt11(bg(), newBolt11(id, "after void", at(80), time.Hour), at(80))
		require.ErrorIs(t, err, store.ErrInvoiceClosed)

		assert.Equal(t, int64(1), countType(t, st, "invoice.voided", id))
		for _, e := range events(t, st, tenant) {
			if e.Type == "invoice.voided" && e.Subject == id {
				assert.Equal(t, "customer cancelled", e.Payload["reason"])
				invPayload, ok := e.Payload["invoice"].(map[string]any)
				require.True(t, ok, "payload %v", e.Payload)
				assert.Equal(t, "void", invPayload["status"])
			}
		}

		// Idempotent: again the same way changes nothing.
		before := snapshot(t, st)
		inv, err = st.CloseInvoice(bg(), id, store.InvoiceVoid, "another reason", at(90))
		require.NoError(t, err)
		assert.Equal(t, store.InvoiceVoid, inv.Status)
		assert.Equal(t, before, snapshot(t, st))
		require.NoError(t, st.Pool().QueryRow(bg(), `SELECT closed_at FROM invoices WHERE id = $1`, id).Scan(&closedAt))
		sameTime(t, at(70), closedAt, "closed_at kept")

		// A void invoice is not written off afterwards.
		_, err = st.CloseInvoice(bg(), id, store.InvoiceUncollectible, "", at(95))
		requireValidation(t, err)
		assert.Equal(t, before, snapshot(t, st))
	})

	t.Run("uncollectible", func(t *testing.T) {
		id := newInvoice(t, st, tenant, "unc", "collecting")
		inv, err := st.CloseInvoice(bg(), id, store.InvoiceUncollectible, "", at(70))
		require.NoError(t, err)
		assert.Equal(t, store.InvoiceUncollectible, inv.Status)
		assert.Equal(t, "uncollectible", readInvoice(t, st, id).Status)
		var reason *string
		require.NoError(t, st.Pool().QueryRow(bg(), `SELECT closed_reason FROM invoices WHERE id = $1`, id).Scan(&reason))
		assert.Nil(t, reason, "an empty reason is stored as NULL")
		assert.Equal(t, int64(1), countType(t, st, "invoice.written_off", id))
		assert.Equal(t, int64(0), countType(t, st, "invoice.voided", id))
		_, err = st.CloseInvoice(bg(), id, store.InvoiceUncollectible, "", at(71))
		require.NoError(t, err)
		assert.Equal(t, int64(1), countType(t, st, "invoice.written_off", id))
		_, err = st.CloseInvoice(bg(), id, store.InvoiceVoid, "", at(72))
		requireValidation(t, err)
		assert.Equal(t, "uncollectible", readInvoice(t, st, id).Status)
	})

	t.Run("paid cannot be closed", func(t *testing.T) {
		id := newInvoice(t, st, tenant, "paid", "awaiting_payment")
		_, err := st.Settle(bg(), store.PaymentReport{InvoiceID: id, Rail: store.RailStripe, Reference: "pi_paid", ReceivedAt: at(50)})
		require.NoError(t, err)
		before := snapshot(t, st)
		row := readInvoice(t, st, id)
		for _, status := range []string{store.InvoiceVoid, store.InvoiceUncollectible} {
			_, err = st.CloseInvoice(bg(), id, status, "", at(60))
			requireValidation(t, err)
		}
		assert.Equal(t, before, snapshot(t, st))
		assert.Equal(t, row, readInvoice(t, st, id))
	})

	t.Run("bad input", func(t *testing.T) {
		id := newInvoice(t, st, tenant, "bad", "open")
		before := snapshot(t, st)
		for _, status := range []string{store.InvoicePaid, store.InvoiceOpen, "cancelled", ""} {
			_, err := st.CloseInvoice(bg(), id, status, "", at(60))
			requireValidation(t, err)
		}
		_, err := st.CloseInvoice(bg(), id, store.InvoiceVoid, strings.Repeat("x", 501), at(60))
		requireValidation(t, err)
		assert.Equal(t, before, snapshot(t, st))
		_, err = st.CloseInvoice(bg(), "no-such-invoice", store.InvoiceVoid, "", at(60))
		require.ErrorIs(t, err, store.ErrNotFound)
	})

	t.Run("closed_at consistency is enforced", func(t *testing.T) {
		id := newInvoice(t, st, tenant, "raw", "open")
		_, err := st.Pool().Exec(bg(), `UPDATE invoices SET status = 'void' WHERE id = $1`, id)
		requirePgCode(t, err, "23514")
	})
}

// ---------------------------------------------------------------- bolt11

func TestBolt11ReuseSupersedeAndLive(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)
	id := newInvoice(t, st, tenant, "a1", "awaiting_payment")
	now := at(1000)

	_, err := st.LiveBolt11(bg(), id, now)
	require.ErrorIs(t, err, store.ErrNotFound)

	b1 := newBolt11(id, "first", now, time.Hour)
	got, err := st.SaveBolt11(bg(), b1, now)
	require.NoError(t, err)
	assert.Equal(t, b1.PaymentHash, got.PaymentHash)
	live, err := st.LiveBolt11(bg(), id, now.Add(time.Minute))
	require.NoError(t, err)
	assert.Equal(t, b1.PaymentHash, live.PaymentHash)
	assert.Equal(t, b1.PaymentRequest, live.PaymentRequest)
	assert.Equal(t, b1.AmountMsat, live.AmountMsat)
	assert.Equal(t, b1.QuoteAmount, live.QuoteAmount)
	assert.Equal(t, b1.QuoteCurrency, live.QuoteCurrency)
	assert.True(t, live.ExpiresAt.Equal(b1.ExpiresAt))

	// A second one while the first is payable: the first is returned, the
	// second not stored.
	b2 := newBolt11(id, "second", now.Add(time.Minute), time.Hour)
	got, err = st.SaveBolt11(bg(), b2, now.Add(time.Minute))
	require.NoError(t, err)
	assert.Equal(t, b1.PaymentHash, got.PaymentHash)
	assert.Equal(t, b1.PaymentRequest, got.PaymentRequest)
	_, err = st.Bolt11ByHash(bg(), b2.PaymentHash)
	require.ErrorIs(t, err, store.ErrNotFound)
	assert.Equal(t, int64(1), scalar(t, st, `SELECT count(*) FROM bolt11_invoices WHERE invoice_id = $1`, id))

	// Once the first expired, it is not live, and a new one supersedes it.
	later := now.Add(2 * time.Hour)
	_, err = st.LiveBolt11(bg(), id, later)
	require.ErrorIs(t, err, store.ErrNotFound, "an expired Lightning invoice is not payable")
	_, err = st.LiveBolt11(bg(), id, b1.ExpiresAt)
	require.ErrorIs(t, err, store.ErrNotFound, "expired at its expiry instant")
	b3 := newBolt11(id, "third", later, time.Hour)
	got, err = st.SaveBolt11(bg(), b3, later)
	require.NoError(t, err)
	assert.Equal(t, b3.PaymentHash, got.PaymentHash)
	r1 := readBolt11(t, st, b1.PaymentHash)
	sameTime(t, later, r1.SupersededAt)
	assert.Nil(t, r1.SettledAt)
	r3 := readBolt11(t, st, b3.PaymentHash)
	assert.Nil(t, r3.SupersededAt)
	live, err = st.LiveBolt11(bg(), id, later)
	require.NoError(t, err)
	assert.Equal(t, b3.PaymentHash, live.PaymentHash)

	all, err := st.Bolt11s(bg(), id)
	require.NoError(t, err)
	require.Len(t, all, 2)
	assert.Equal(t, b1.PaymentHash, all[0].PaymentHash)
	require.NotNil(t, all[0].SupersededAt)
	assert.Equal(t, b3.PaymentHash, all[1].PaymentHash)
	byHash, err := st.Bolt11ByHash(bg(), strings.ToUpper(b3.PaymentHash))
	require.NoError(t, err)
	assert.Equal(t, id, byHash.InvoiceID)

	// The partial unique index: at most one unsettled, unsuperseded row per invoice.
	_, err = st.Pool().Exec(bg(), `INSERT INTO bolt11_invoices (payment_hash, invoice_id, payment_request, amount_msat, quote_amount, quote_currency, created_at, expires_at)
		VALUES ($1, $2, 'lnbc-raw', 1000, 500, 'usd', $3, $4)`, payHash("raw"), id, later, later.Add(time.Hour))
	requirePgCode(t, err, "23505")
	// ...but superseded or settled rows do not count.
	_, err = st.Pool().Exec(bg(), `INSERT INTO bolt11_invoices (payment_hash, invoice_id, payment_request, amount_msat, quote_amount, quote_currency, created_at, expires_at, superseded_at)
		VALUES ($1, $2, 'lnbc-raw-superseded', 1000, 500, 'usd', $3, $4, $4)`, payHash("raw superseded"), id, now, now.Add(time.Hour))
	require.NoError(t, err)
	// And the hash must be 64 lowercase hex in SQL too.
	_, err = st.Pool().Exec(bg(), `INSERT INTO bolt11_invoices (payment_hash, invoice_id, payment_request, amount_msat, quote_amount, quote_currency, created_at, expires_at, superseded_at)
		VALUES ($1, $2, 'lnbc-raw-upper', 1000, 500, 'usd', $3, $4, $4)`, strings.ToUpper(payHash("upper")), id, now, now.Add(time.Hour))
	requirePgCode(t, err, "23514")

	// MarkNWCRequested sets the instant once.
	require.NoError(t, st.MarkNWCRequested(bg(), b3.PaymentHash, later.Add(time.Second)))
	require.NoError(t, st.MarkNWCRequested(bg(), b3.PaymentHash, later.Add(time.Minute)))
	sameTime(t, later.Add(time.Second), readBolt11(t, st, b3.PaymentHash).NWCRequestedAt, "the first request is kept")
	live, err = st.LiveBolt11(bg(), id, later)
	require.NoError(t, err)
	sameTime(t, later.Add(time.Second), live.NWCRequestedAt)
	assert.Nil(t, readBolt11(t, st, b1.PaymentHash).NWCRequestedAt)

	// Bad input.
	bad := newBolt11(id, "bad", later, time.Hour)
	bad.PaymentHash = strings.ToUpper(bad.PaymentHash)
	_, err = st.SaveBolt11(bg(), bad, later)
	requireValidation(t, err)
	bad.PaymentHash = "hash-1"
	_, err = st.SaveBolt11(bg(), bad, later)
	requireValidation(t, err)
	_, err = st.SaveBolt11(bg(), newBolt11("no-such-invoice", "orphan", later, time.Hour), later)
	require.ErrorIs(t, err, store.ErrNotFound)
	_, err = st.Bolt11ByHash(bg(), payHash("never issued"))
	require.ErrorIs(t, err, store.ErrNotFound)
}

func TestSaveBolt11ConcurrentlyKeepsOne(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)
	id := newInvoice(t, st, tenant, "a1", "awaiting_payment")
	const callers = 8
	got := make([]store.Bolt11, callers)
	errs := make([]error, callers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			got[i], errs[i] = st.SaveBolt11(bg(), newBolt11(id, fmt.Sprintf("racer-%d", i), at(100), time.Hour), at(100))
		}()
	}
	close(start)
	wg.Wait()
	for i := range callers {
		require.NoError(t, errs[i])
		assert.Equal(t, got[0].PaymentHash, got[i].PaymentHash, "every caller pays the same Lightning invoice")
	}
	assert.Equal(t, int64(1), scalar(t, st, `SELECT count(*) FROM bolt11_invoices WHERE invoice_id = $1`, id))
}

// ---------------------------------------------------------------- card payments

func TestRecordCardPaymentUpsert(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)
	id := newInvoice(t, st, tenant, "a1", "collecting")
	key1 := "invoice/" + id + "/card/1"

	c := store.CardPayment{PaymentIntentID: "pi_one", InvoiceID: id, IdempotencyKey: key1, Attempt: 1, Amount: priceBasic, Currency: "usd",
		Status: "requires_action", Outcome: "needs_action", DeclineCode: "authentication_required"}
	require.NoError(t, st.RecordCardPayment(bg(), c))
	c.Status, c.Outcome, c.DeclineCode = "succeeded", "paid", ""
	require.NoError(t, st.RecordCardPayment(bg(), c))

	assert.Equal(t, int64(1), scalar(t, st, `SELECT count(*) FROM card_payments WHERE invoice_id = $1`, id))
	var status, outcome string
	var decline *string
	var createdAt, updatedAt time.Time
	require.NoError(t, st.Pool().QueryRow(bg(), `SELECT status, outcome, decline_code, created_at, updated_at FROM card_payments WHERE payment_intent_id = 'pi_one'`).
		Scan(&status, &outcome, &decline, &createdAt, &updatedAt))
	assert.Equal(t, "succeeded", status)
	assert.Equal(t, "paid", outcome)
	assert.Nil(t, decline)
	assert.False(t, updatedAt.Before(createdAt))

	// Another PaymentIntent under the same idempotency key is refused.
	dup := c
	dup.PaymentIntentID = "pi_two"
	err := st.RecordCardPayment(bg(), dup)
	requirePgCode(t, err, "23505")
	assert.Equal(t, int64(1), scalar(t, st, `SELECT count(*) FROM card_payments`))

	// A second attempt is its own row.
	c2 := store.CardPayment{PaymentIntentID: "pi_three", InvoiceID: id, IdempotencyKey: "invoice/" + id + "/card/2", Attempt: 2, Amount: priceBasic, Currency: "usd",
		Status: "requires_payment_method", Outcome: "declined", DeclineCode: "insufficient_funds"}
	require.NoError(t, st.RecordCardPayment(bg(), c2))
	list, err := st.CardPayments(bg(), id)
	require.NoError(t, err)
	require.Len(t, list, 2)
	assert.Equal(t, c, list[0])
	assert.Equal(t, c2, list[1])

	// Bad rows.
	bad := c2
	bad.PaymentIntentID, bad.IdempotencyKey = "ch_bad", "invoice/"+id+"/card/9"
	requirePgCode(t, st.RecordCardPayment(bg(), bad), "23514")
	bad.PaymentIntentID, bad.Attempt = "pi_bad", 0
	requirePgCode(t, st.RecordCardPayment(bg(), bad), "23514")
	bad.Attempt, bad.InvoiceID = 9, "no-such-invoice"
	requirePgCode(t, st.RecordCardPayment(bg(), bad), "23503")
	assert.Equal(t, int64(2), scalar(t, st, `SELECT count(*) FROM card_payments`))
}

// ---------------------------------------------------------------- attempts and cursor

func TestRecordAttemptUpsertAndOrder(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)
	id := newInvoice(t, st, tenant, "a1", "collecting")

	for _, a := range []store.Attempt{
		{InvoiceID: id, Attempt: 2, Rail: "nwc", Outcome: "failed", Detail: "wallet offline", At: at(300)},
		{InvoiceID: id, Attempt: 1, Rail: "nwc", Outcome: "failed", Detail: "timeout", At: at(100)},
		{InvoiceID: id, Attempt: 1, Rail: "card", Outcome: "declined", At: at(110)},
		{InvoiceID: id, Attempt: 1, Rail: "dm", Outcome: "sent", At: at(120)},
		// A retried activity: attempt 1's nwc outcome is replaced.
		{InvoiceID: id, Attempt: 1, Rail: "nwc", Outcome: "paid_late", Detail: "settled on retry", At: at(130)},
	} {
		require.NoError(t, st.RecordAttempt(bg(), a))
	}
	assert.Equal(t, int64(4), scalar(t, st, `SELECT count(*) FROM payment_attempts WHERE invoice_id = $1`, id))
	got, err := st.Attempts(bg(), id)
	require.NoError(t, err)
	require.Len(t, got, 4)
	want := []store.Attempt{
		{InvoiceID: id, Attempt: 1, Rail: "card", Outcome: "declined", At: at(110)},
		{InvoiceID: id, Attempt: 1, Rail: "dm", Outcome: "sent", At: at(120)},
		{InvoiceID: id, Attempt: 1, Rail: "nwc", Outcome: "paid_late", Detail: "settled on retry", At: at(130)},
		{InvoiceID: id, Attempt: 2, Rail: "nwc", Outcome: "failed", Detail: "wallet offline", At: at(300)},
	}
	assert.Equal(t, want, got)

	requirePgCode(t, st.RecordAttempt(bg(), store.Attempt{InvoiceID: id, Attempt: 1, Rail: "stripe", Outcome: "x", At: at(1)}), "23514")
	requirePgCode(t, st.RecordAttempt(bg(), store.Attempt{InvoiceID: id, Attempt: 0, Rail: "nwc", Outcome: "x", At: at(1)}), "23514")
	requirePgCode(t, st.RecordAttempt(bg(), store.Attempt{InvoiceID: "no-such-invoice", Attempt: 1, Rail: "nwc", Outcome: "x", At: at(1)}), "23503")
	none, err := st.Attempts(bg(), "no-such-invoice")
	require.NoError(t, err)
	assert.Empty(t, none)
}

func TestSettleCursorNeverMovesBackwards(t *testing.T) {
	st := testkit.NewStore(t)
	cur := func(name string) uint64 {
		t.Helper()
		n, err := st.SettleCursor(bg(), name)
		require.NoError(t, err)
		return n
	}
	assert.Equal(t, uint64(0), cur("lnd"), "an unknown stream starts at 0")
	require.NoError(t, st.AdvanceSettleCursor(bg(), "lnd", 10))
	assert.Equal(t, uint64(10), cur("lnd"))
	require.NoError(t, st.AdvanceSettleCursor(bg(), "lnd", 5))
	assert.Equal(t, uint64(10), cur("lnd"), "never back")
	require.NoError(t, st.AdvanceSettleCursor(bg(), "lnd", 10))
	assert.Equal(t, uint64(10), cur("lnd"))
	require.NoError(t, st.AdvanceSettleCursor(bg(), "lnd", 11))
	assert.Equal(t, uint64(11), cur("lnd"))
	assert.Equal(t, uint64(0), cur("other"), "streams are independent")
	require.NoError(t, st.AdvanceSettleCursor(bg(), "other", 3))
	assert.Equal(t, uint64(3), cur("other"))
	assert.Equal(t, uint64(11), cur("lnd"))
	assert.Equal(t, int64(11), scalar(t, st, `SELECT settle_index FROM settlement_cursors WHERE name = 'lnd'`))

	// Concurrent advances end at the maximum.
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			assert.NoError(t, st.AdvanceSettleCursor(bg(), "race", uint64(100+i)))
		}()
	}
	wg.Wait()
	assert.Equal(t, uint64(119), cur("race"))
}

// ---------------------------------------------------------------- needs action and status

func TestMarkNeedsActionOnce(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)
	id := newInvoice(t, st, tenant, "a1", "collecting")
	needsAt := func() *time.Time {
		t.Helper()
		var v *time.Time
		require.NoError(t, st.Pool().QueryRow(bg(), `SELECT needs_action_at FROM invoices WHERE id = $1`, id).Scan(&v))
		return v
	}

	require.NoError(t, st.MarkNeedsAction(bg(), id, "authentication_required", at(100)))
	require.NoError(t, st.MarkNeedsAction(bg(), id, "authentication_required again", at(200)))
	sameTime(t, at(100), needsAt(), "the first instant is kept")
	assert.Equal(t, int64(1), countType(t, st, "invoice.needs_action", id))
	for _, e := range events(t, st, tenant) {
		if e.Type == "invoice.needs_action" {
			assert.Equal(t, "authentication_required", e.Payload["reason"])
		}
	}
	assert.Equal(t, "collecting", readInvoice(t, st, id).Status, "the status is not changed")

	// Paying clears it; a late mark on a paid invoice writes nothing.
	_, err := st.Settle(bg(), store.PaymentReport{InvoiceID: id, Rail: store.RailStripe, Reference: "pi_after_3ds", ReceivedAt: at(300)})
	require.NoError(t, err)
	assert.Nil(t, needsAt())
	before := snapshot(t, st)
	require.NoError(t, st.MarkNeedsAction(bg(), id, "late", at(400)))
	assert.Nil(t, needsAt())
	assert.Equal(t, before, snapshot(t, st))

	// A closed invoice is left alone too.
	closed := newInvoice(t, st, tenant, "a2", "open")
	_, err = st.CloseInvoice(bg(), closed, store.InvoiceVoid, "", at(10))
	require.NoError(t, err)
	require.NoError(t, st.MarkNeedsAction(bg(), closed, "late", at(20)))
	assert.Equal(t, int64(0), countType(t, st, "invoice.needs_action", closed))

	require.ErrorIs(t, st.MarkNeedsAction(bg(), "no-such-invoice", "x", at(1)), store.ErrNotFound)
}

func TestSetInvoiceStatus(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)
	id := newInvoice(t, st, tenant, "a1", "open")

	for _, status := range []string{store.InvoiceCollecting, store.InvoiceAwaitingPayment, store.InvoiceOpen, store.InvoiceCollecting} {
		inv, err := st.SetInvoiceStatus(bg(), id, status)
		require.NoError(t, err)
		assert.Equal(t, status, inv.Status)
		assert.Equal(t, status, readInvoice(t, st, id).Status)
	}

	// Not a collection status: a validation error, nothing written.
	before := snapshot(t, st)
	for _, status := range []string{store.InvoicePaid, store.InvoiceVoid, store.InvoiceUncollectible, "pending", ""} {
		_, err := st.SetInvoiceStatus(bg(), id, status)
		requireValidation(t, err)
	}
	assert.Equal(t, before, snapshot(t, st))
	assert.Equal(t, "collecting", readInvoice(t, st, id).Status)

	// Paid: unchanged, returned as it is.
	_, err := st.Settle(bg(), store.PaymentReport{InvoiceID: id, Rail: store.RailNWC, Reference: payHash("status"), ReceivedAt: at(50)})
	require.NoError(t, err)
	row := readInvoice(t, st, id)
	for _, status := range []string{store.InvoiceOpen, store.InvoiceCollecting, store.InvoiceAwaitingPayment} {
		inv, err := st.SetInvoiceStatus(bg(), id, status)
		require.NoError(t, err)
		assert.Equal(t, store.InvoicePaid, inv.Status)
		assert.Equal(t, "nwc", inv.PaidRail)
	}
	assert.Equal(t, row, readInvoice(t, st, id))

	// Closed: unchanged.
	closed := newInvoice(t, st, tenant, "a2", "open")
	_, err = st.CloseInvoice(bg(), closed, store.InvoiceUncollectible, "", at(60))
	require.NoError(t, err)
	inv, err := st.SetInvoiceStatus(bg(), closed, store.InvoiceOpen)
	require.NoError(t, err)
	assert.Equal(t, store.InvoiceUncollectible, inv.Status)
	assert.Equal(t, "uncollectible", readInvoice(t, st, closed).Status)

	_, err = st.SetInvoiceStatus(bg(), "no-such-invoice", store.InvoiceOpen)
	require.True(t, errors.Is(err, store.ErrNotFound), "got %v", err)
}

// Concurrent records of one charge (six clicks Stripe replays by one
// idempotency key) all succeed and leave one row: the one that loses the
// race on the idempotency key index takes the update path on its retry.
func TestRecordCardPaymentConcurrentSameCharge(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)
	id := newInvoice(t, st, tenant, "a1", "collecting")
	for round := 0; round < 20; round++ {
		c := store.CardPayment{PaymentIntentID: fmt.Sprintf("pi_race_%d", round), InvoiceID: id, IdempotencyKey: fmt.Sprintf("invoice/%s/card/page-%d", id, round+1),
			Attempt: round + 1, Amount: priceBasic, Currency: "usd", Status: "succeeded", Outcome: "paid"}
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i := range errs {
			wg.Go(func() { errs[i] = st.RecordCardPayment(bg(), c) })
		}
		wg.Wait()
		for _, err := range errs {
			require.NoError(t, err)
		}
	}
	assert.Equal(t, int64(20), scalar(t, st, `SELECT count(*) FROM card_payments WHERE invoice_id = $1`, id))
}

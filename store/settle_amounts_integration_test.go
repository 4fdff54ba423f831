//go:build integration

package store_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/internal/testkit"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/store"
)

// Settle compares the money received with the amount due (issue 8). The
// invoices here are one basic resource: 500 cents.

// paidSoFar reads an invoice's amount_paid and status from the database.
func paidSoFar(t tb, st *store.Store, id string) (int64, string) {
	t.Helper()
	var paid int64
	var status string
	require.NoError(t, st.Pool().QueryRow(bg(), `SELECT amount_paid, status FROM invoices WHERE id = $1`, id).Scan(&paid, &status))
	return paid, status
}

// refundRow is a payment's applied and owed-back parts as stored.
type refundRow struct {
	Applied                  bool
	AppliedAmount            int64
	RefundStatus, Reason     *string
	RefundAmount, RefundMsat *int64
	Amount, AmountMsat       *int64
	Currency                 *string
}

func readRefund(t tb, st *store.Store, paymentID string) refundRow {
	t.Helper()
	var r refundRow
	require.NoError(t, st.Pool().QueryRow(bg(), `SELECT applied, applied_amount, refund_status, refund_reason, refund_amount, refund_msat,
			amount, amount_msat, currency FROM payments WHERE id = $1`, paymentID).
		Scan(&r.Applied, &r.AppliedAmount, &r.RefundStatus, &r.Reason, &r.RefundAmount, &r.RefundMsat, &r.Amount, &r.AmountMsat, &r.Currency))
	return r
}

func i64(v int64) *int64   { return &v }
func str(v string) *string { return &v }

func TestSettlePartialThenCompletingPayment(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)
	id := newInvoice(t, st, tenant, "p1", "collecting")
	_, err := st.CreateDiscountCode(bg(), "HALF", 1)
	require.NoError(t, err)
	require.NoError(t, st.ReserveDiscount(bg(), id, "HALF", at(1)))

	// 200 of 500 by card: recorded and applied, the invoice stays open.
	part, err := st.Settle(bg(), store.PaymentReport{InvoiceID: id, Rail: store.RailStripe, Reference: "pi_part", Amount: 200, Currency: "usd", ReceivedAt: at(10)})
	require.NoError(t, err)
	assert.Equal(t, store.SettledPartial, part.Outcome)
	assert.False(t, part.AlreadyPaid())
	assert.Equal(t, int64(200), part.Invoice.AmountPaid)
	assert.Equal(t, int64(300), part.Invoice.Due())
	paid, status := paidSoFar(t, st, id)
	assert.Equal(t, int64(200), paid)
	assert.Equal(t, "collecting", status, "a partial payment leaves the collection status alone")
	assert.Equal(t, refundRow{Applied: true, AppliedAmount: 200, Amount: i64(200), Currency: str("usd")}, readRefund(t, st, part.Payment.ID))
	assert.Equal(t, int64(1), countType(t, st, "invoice.partially_paid", part.Payment.ID))
	assert.Equal(t, int64(0), countType(t, st, "invoice.paid", id))
	assert.Equal(t, int64(0), scalar(t, st, `SELECT count(*) FROM entitlements WHERE invoice_id = $1`, id))
	code, rstatus, err := st.DiscountReservation(bg(), id)
	require.NoError(t, err)
	assert.Equal(t, "HALF/reserved", code+"/"+rstatus)
	for _, e := range events(t, st, tenant) {
		if e.Type == "invoice.partially_paid" {
			assert.EqualValues(t, 300, e.Payload["due"])
			assert.EqualValues(t, 200, e.Payload["invoice"].(map[string]any)["amount_paid"])
		}
	}
	// The same money again changes nothing.
	again, err := st.Settle(bg(), store.PaymentReport{InvoiceID: id, Rail: store.RailStripe, Reference: "pi_part", Amount: 200, Currency: "usd", ReceivedAt: at(11)})
	require.NoError(t, err)
	assert.Equal(t, store.SettledDuplicate, again.Outcome)
	assert.False(t, again.AlreadyPaid())
	paid, _ = paidSoFar(t, st, id)
	assert.Equal(t, int64(200), paid)

	// A Lightning invoice for the remainder is out when the rest arrives another way.
	b := newBolt11(id, "remainder", at(20), time.Hour)
	b.QuoteAmount, b.AmountMsat = 300, 90_000
	_, err = st.SaveBolt11(bg(), b, at(20))
	require.NoError(t, err)

	// A manual report with no amount: the full remaining amount due (300).
	rest, err := st.Settle(bg(), store.PaymentReport{InvoiceID: id, Rail: store.RailManual, Reference: "bank transfer 42", ReceivedAt: at(30)})
	require.NoError(t, err)
	assert.Equal(t, store.SettledApplied, rest.Outcome)
	assert.Equal(t, store.InvoicePaid, rest.Invoice.Status)
	assert.Equal(t, int64(0), rest.Invoice.Due())
	paid, status = paidSoFar(t, st, id)
	assert.Equal(t, int64(500), paid)
	assert.Equal(t, "paid", status)
	assert.Equal(t, refundRow{Applied: true, AppliedAmount: 300, Amount: i64(300), Currency: str("usd")}, readRefund(t, st, rest.Payment.ID))
	row := readInvoice(t, st, id)
	assert.Equal(t, "manual", *row.PaidRail, "the completing payment is the one named")
	assert.Equal(t, int64(1), countType(t, st, "invoice.paid", id))
	assert.Equal(t, int64(1), scalar(t, st, `SELECT count(*) FROM entitlements WHERE invoice_id = $1`, id))
	assert.NotNil(t, readBolt11(t, st, b.PaymentHash).SupersededAt, "the paid invoice's BOLT11 is superseded")
	_, rstatus, err = st.DiscountReservation(bg(), id)
	require.NoError(t, err)
	assert.Equal(t, "consumed", rstatus)
	assert.Equal(t, int64(0), scalar(t, st, `SELECT count(*) FROM payments WHERE refund_status IS NOT NULL`))
}

func TestSettleOverpaymentRecordsTheDifference(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)

	// Card: 700 for 500 due.
	id := newInvoice(t, st, tenant, "o1", "collecting")
	res, err := st.Settle(bg(), store.PaymentReport{InvoiceID: id, Rail: store.RailStripe, Reference: "pi_700", Amount: 700, Currency: "usd", ReceivedAt: at(10)})
	require.NoError(t, err)
	assert.Equal(t, store.SettledApplied, res.Outcome)
	paid, status := paidSoFar(t, st, id)
	assert.Equal(t, int64(500), paid)
	assert.Equal(t, "paid", status)
	assert.Equal(t, refundRow{Applied: true, AppliedAmount: 500, RefundStatus: str("to_refund"), Reason: str("overpaid"), RefundAmount: i64(200),
		Amount: i64(700), Currency: str("usd")}, readRefund(t, st, res.Payment.ID))
	assert.Equal(t, int64(1), countType(t, st, "invoice.paid", id))
	assert.Equal(t, int64(1), countType(t, st, "payment.overpaid", res.Payment.ID))

	// Lightning: 160,000 msat on a 150,000 msat quote for 500 cents is 533
	// cents; the msat beyond what 500 cents cost (150,000) are owed back.
	id2 := newInvoice(t, st, tenant, "o2", "awaiting_payment")
	b := newBolt11(id2, "over", at(20), time.Hour)
	_, err = st.SaveBolt11(bg(), b, at(20))
	require.NoError(t, err)
	ln, err := st.Settle(bg(), store.PaymentReport{InvoiceID: id2, Rail: store.RailLightning, Reference: b.PaymentHash, AmountMsat: 160_000, ReceivedAt: at(30)})
	require.NoError(t, err)
	assert.Equal(t, store.SettledApplied, ln.Outcome)
	assert.Equal(t, refundRow{Applied: true, AppliedAmount: 500, RefundStatus: str("to_refund"), Reason: str("overpaid"), RefundMsat: i64(10_000),
		AmountMsat: i64(160_000)}, readRefund(t, st, ln.Payment.ID))

	// Both differences are listed where refunds are read.
	owed, err := st.ToRefund(bg(), tenant)
	require.NoError(t, err)
	require.Len(t, owed, 2)
	assert.Equal(t, int64(200), owed[0].RefundAmount)
	assert.Equal(t, int64(10_000), owed[1].RefundMsat)
	all, err := st.ToRefund(bg(), "")
	require.NoError(t, err)
	assert.Len(t, all, 2)
}

// A manual or application report on an invoice already paid, voided or
// written off is always recorded, as an overpayment of its whole amount.
func TestSettleManualReportOnSettledInvoiceIsOverpayment(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)
	id := newInvoice(t, st, tenant, "m1", "collecting")
	_, err := st.Settle(bg(), store.PaymentReport{InvoiceID: id, Rail: store.RailStripe, Reference: "pi_first", Amount: 500, Currency: "usd", ReceivedAt: at(10)})
	require.NoError(t, err)

	// No amount: it stands for the invoice's total, since nothing is due.
	res, err := st.Settle(bg(), store.PaymentReport{InvoiceID: id, Rail: store.RailManual, Reference: "cheque 7", ReceivedAt: at(20)})
	require.NoError(t, err)
	assert.Equal(t, store.SettledOverpayment, res.Outcome)
	assert.True(t, res.AlreadyPaid())
	assert.Equal(t, refundRow{RefundStatus: str("to_refund"), Reason: str("invoice_settled"), RefundAmount: i64(500), Amount: i64(500), Currency: str("usd")},
		readRefund(t, st, res.Payment.ID))
	assert.Equal(t, int64(1), countType(t, st, "payment.overpaid", res.Payment.ID))
	paid, status := paidSoFar(t, st, id)
	assert.Equal(t, int64(500), paid)
	assert.Equal(t, "paid", status)

	// A written-off invoice that was partly paid keeps what was paid; a
	// manual report with no amount stands for what was still due.
	id2 := newInvoice(t, st, tenant, "m2", "collecting")
	_, err = st.Settle(bg(), store.PaymentReport{InvoiceID: id2, Rail: store.RailStripe, Reference: "pi_some", Amount: 100, Currency: "usd", ReceivedAt: at(30)})
	require.NoError(t, err)
	_, err = st.CloseInvoice(bg(), id2, store.InvoiceUncollectible, "gave up", at(40))
	require.NoError(t, err)
	late, err := st.Settle(bg(), store.PaymentReport{InvoiceID: id2, Rail: store.RailManual, Reference: "late cash", ReceivedAt: at(50)})
	require.NoError(t, err)
	assert.Equal(t, store.SettledOverpayment, late.Outcome)
	assert.Equal(t, i64(400), readRefund(t, st, late.Payment.ID).RefundAmount)
	paid, status = paidSoFar(t, st, id2)
	assert.Equal(t, int64(100), paid)
	assert.Equal(t, "uncollectible", status)
}

// A void invoice was never owed: voiding one that was partly paid turns
// its partial payments into money to refund.
func TestVoidPartlyPaidInvoiceRefundsItsPayments(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)
	id := newInvoice(t, st, tenant, "v1", "awaiting_payment")
	b := newBolt11(id, "void part", at(10), time.Hour)
	_, err := st.SaveBolt11(bg(), b, at(10))
	require.NoError(t, err)
	card, err := st.Settle(bg(), store.PaymentReport{InvoiceID: id, Rail: store.RailStripe, Reference: "pi_v", Amount: 100, Currency: "usd", ReceivedAt: at(20)})
	require.NoError(t, err)
	ln, err := st.Settle(bg(), store.PaymentReport{InvoiceID: id, Rail: store.RailNWC, Reference: b.PaymentHash, AmountMsat: 60_000, ReceivedAt: at(30)})
	require.NoError(t, err)
	require.Equal(t, store.SettledPartial, ln.Outcome)
	paid, _ := paidSoFar(t, st, id)
	require.Equal(t, int64(300), paid)

	inv, err := st.CloseInvoice(bg(), id, store.InvoiceVoid, "billed by mistake", at(40))
	require.NoError(t, err)
	assert.Equal(t, int64(0), inv.AmountPaid)
	paid, status := paidSoFar(t, st, id)
	assert.Equal(t, int64(0), paid)
	assert.Equal(t, "void", status)
	assert.Equal(t, refundRow{RefundStatus: str("to_refund"), Reason: str("invoice_voided"), RefundAmount: i64(100), Amount: i64(100), Currency: str("usd")},
		readRefund(t, st, card.Payment.ID))
	assert.Equal(t, refundRow{RefundStatus: str("to_refund"), Reason: str("invoice_voided"), RefundMsat: i64(60_000), AmountMsat: i64(60_000)},
		readRefund(t, st, ln.Payment.ID))
	assert.Equal(t, int64(1), countType(t, st, "payment.unapplied", card.Payment.ID))
	owed, err := st.ToRefund(bg(), tenant)
	require.NoError(t, err)
	assert.Len(t, owed, 2)
}

// Lightning money is valued at the quote stored with its BOLT11, rounded
// down: below the quote is a partial payment.
func TestSettleLightningBelowQuoteIsPartial(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)
	id := newInvoice(t, st, tenant, "l1", "awaiting_payment")
	b := newBolt11(id, "short", at(10), time.Hour) // 150,000 msat for 500 cents: 300 msat a cent
	_, err := st.SaveBolt11(bg(), b, at(10))
	require.NoError(t, err)

	// 90,299 msat is 300.99 cents: 300 credited, never 301.
	res, err := st.Settle(bg(), store.PaymentReport{InvoiceID: id, Rail: store.RailNWC, Reference: b.PaymentHash, AmountMsat: 90_299, ReceivedAt: at(20)})
	require.NoError(t, err)
	assert.Equal(t, store.SettledPartial, res.Outcome)
	assert.Equal(t, refundRow{Applied: true, AppliedAmount: 300, AmountMsat: i64(90_299)}, readRefund(t, st, res.Payment.ID))
	paid, status := paidSoFar(t, st, id)
	assert.Equal(t, int64(300), paid)
	assert.Equal(t, "awaiting_payment", status)
	br := readBolt11(t, st, b.PaymentHash)
	require.NotNil(t, br.SettledAt, "the BOLT11 received the money")
	assert.Equal(t, int64(90_299), *br.AmtPaidMsat)
	_, err = st.LiveBolt11(bg(), id, at(21))
	require.ErrorIs(t, err, store.ErrNotFound, "the remainder needs a new BOLT11")

	// The remainder at a new quote (a different rate: 400 msat a cent).
	b2 := newBolt11(id, "remainder", at(30), time.Hour)
	b2.QuoteAmount, b2.AmountMsat = 200, 80_000
	_, err = st.SaveBolt11(bg(), b2, at(30))
	require.NoError(t, err)
	done, err := st.Settle(bg(), store.PaymentReport{InvoiceID: id, Rail: store.RailLightning, Reference: b2.PaymentHash, ReceivedAt: at(40)})
	require.NoError(t, err)
	assert.Equal(t, store.SettledApplied, done.Outcome)
	assert.Equal(t, refundRow{Applied: true, AppliedAmount: 200, AmountMsat: i64(80_000)}, readRefund(t, st, done.Payment.ID),
		"no msat reported: the BOLT11's amount")
	paid, status = paidSoFar(t, st, id)
	assert.Equal(t, int64(500), paid)
	assert.Equal(t, "paid", status)

	// Less than one cent's worth cannot count: recorded to refund.
	id2 := newInvoice(t, st, tenant, "l2", "awaiting_payment")
	b3 := newBolt11(id2, "dust", at(50), time.Hour)
	_, err = st.SaveBolt11(bg(), b3, at(50))
	require.NoError(t, err)
	dust, err := st.Settle(bg(), store.PaymentReport{InvoiceID: id2, Rail: store.RailLightning, Reference: b3.PaymentHash, AmountMsat: 299, ReceivedAt: at(60)})
	require.NoError(t, err)
	assert.Equal(t, store.SettledUnapplied, dust.Outcome)
	assert.Equal(t, refundRow{RefundStatus: str("to_refund"), Reason: str("below_minor_unit"), RefundMsat: i64(299), AmountMsat: i64(299)},
		readRefund(t, st, dust.Payment.ID))

	// Lightning money for a hash with no stored quote cannot be valued.
	unpriced, err := st.Settle(bg(), store.PaymentReport{InvoiceID: id2, Rail: store.RailLightning, Reference: payHash("unknown"), AmountMsat: 150_000, ReceivedAt: at(70)})
	require.NoError(t, err)
	assert.Equal(t, store.SettledUnapplied, unpriced.Outcome)
	assert.Equal(t, str("unpriced"), readRefund(t, st, unpriced.Payment.ID).Reason)
	paid, status = paidSoFar(t, st, id2)
	assert.Equal(t, int64(0), paid)
	assert.Equal(t, "awaiting_payment", status)
}

// Money in another currency is never applied and never dropped.
func TestSettleWrongCurrencyRecordedToRefund(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)
	id := newInvoice(t, st, tenant, "c1", "collecting")
	res, err := st.Settle(bg(), store.PaymentReport{InvoiceID: id, Rail: store.RailStripe, Reference: "pi_eur", Amount: 500, Currency: "EUR", ReceivedAt: at(10)})
	require.NoError(t, err)
	assert.Equal(t, store.SettledUnapplied, res.Outcome)
	assert.False(t, res.AlreadyPaid())
	assert.Equal(t, refundRow{RefundStatus: str("to_refund"), Reason: str("currency_mismatch"), RefundAmount: i64(500), Amount: i64(500), Currency: str("eur")},
		readRefund(t, st, res.Payment.ID))
	assert.Equal(t, int64(1), countType(t, st, "payment.unapplied", res.Payment.ID))
	paid, status := paidSoFar(t, st, id)
	assert.Equal(t, int64(0), paid)
	assert.Equal(t, "collecting", status)
	owed, err := st.ToRefund(bg(), tenant)
	require.NoError(t, err)
	require.Len(t, owed, 1)
	assert.Equal(t, "pi_eur", owed[0].Reference)

	// A currency billflow does not bill in at all is recorded the same way.
	odd, err := st.Settle(bg(), store.PaymentReport{InvoiceID: id, Rail: store.RailStripe, Reference: "pi_xts", Amount: 7, Currency: "xts", ReceivedAt: at(11)})
	require.NoError(t, err)
	assert.Equal(t, store.SettledUnapplied, odd.Outcome)

	// A currency without an amount cannot stand for the amount due.
	_, err = st.Settle(bg(), store.PaymentReport{InvoiceID: id, Rail: store.RailManual, Reference: "euros", Currency: "eur", ReceivedAt: at(12)})
	requireValidation(t, err)
	_, err = st.Settle(bg(), store.PaymentReport{InvoiceID: id, Rail: store.RailManual, Reference: "bad", Amount: 5, Currency: "dollars", ReceivedAt: at(12)})
	ve := requireValidation(t, err)
	assert.Equal(t, "currency", ve.Field)
	_, err = st.Settle(bg(), store.PaymentReport{InvoiceID: id, Rail: store.RailManual, Reference: "neg", Amount: -5, ReceivedAt: at(12)})
	assert.Equal(t, "amount", requireValidation(t, err).Field)
	assert.Equal(t, int64(2), scalar(t, st, `SELECT count(*) FROM payments WHERE invoice_id = $1`, id))
}

// Concurrent partial payments are serialised by the invoice's row lock:
// exactly the total is applied, the rest is owed back, one invoice.paid.
func TestSettleConcurrentPartialPayments(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)
	id := newInvoice(t, st, tenant, "cc", "collecting")
	const n = 8 // 8 x 150 = 1200 for 500 due
	var wg sync.WaitGroup
	outcomes := make([]string, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := st.Settle(bg(), store.PaymentReport{InvoiceID: id, Rail: store.RailStripe, Reference: fmt.Sprintf("pi_c%d", i), Amount: 150, Currency: "usd", ReceivedAt: at(10 + i)})
			outcomes[i], errs[i] = res.Outcome, err
		}()
	}
	wg.Wait()
	count := map[string]int{}
	for i := range n {
		require.NoError(t, errs[i])
		count[outcomes[i]]++
	}
	// 150, 300, 450 are partial; the fourth pays (50 applied, 100 back);
	// the other four arrive for a paid invoice.
	assert.Equal(t, map[string]int{store.SettledPartial: 3, store.SettledApplied: 1, store.SettledOverpayment: 4}, count)
	paid, status := paidSoFar(t, st, id)
	assert.Equal(t, int64(500), paid)
	assert.Equal(t, "paid", status)
	assert.Equal(t, int64(500), scalar(t, st, `SELECT sum(applied_amount) FROM payments WHERE invoice_id = $1`, id))
	assert.Equal(t, int64(700), scalar(t, st, `SELECT sum(refund_amount) FROM payments WHERE invoice_id = $1`, id))
	assert.Equal(t, int64(1), countType(t, st, "invoice.paid", id))
	assert.Equal(t, int64(1), scalar(t, st, `SELECT count(*) FROM entitlements WHERE invoice_id = $1`, id))
}

// One currency table: the database accepts exactly models' currencies,
// with the same exponents, and refuses any other code in the columns
// billflow prices in.
func TestCurrencyColumnsAreConstrained(t *testing.T) {
	st := testkit.NewStore(t)
	rows, err := st.Pool().Query(bg(), `SELECT code, minor_units FROM currencies ORDER BY code`)
	require.NoError(t, err)
	db := map[models.Currency]int{}
	for rows.Next() {
		var c string
		var e int
		require.NoError(t, rows.Scan(&c, &e))
		db[models.Currency(c)] = e
	}
	require.NoError(t, rows.Err())
	want := map[models.Currency]int{}
	for _, c := range models.Currencies() {
		e, _ := models.MinorUnits(c)
		want[c] = e
	}
	assert.Equal(t, want, db, "the currencies table and models/currency.go differ")

	// Three lowercase letters but not a supported code: the reference.
	_, err = st.Pool().Exec(bg(), `INSERT INTO tenants (id, currency) VALUES ($1, 'xxx')`, string(testkit.NewTenantID(t)))
	pgErr := requirePgCode(t, err, "23503")
	assert.Equal(t, "tenants_currency_supported", pgErr.ConstraintName)
	for _, bad := range []string{"xxx", "USD", "us"} {
		_, err = st.Pool().Exec(bg(), `INSERT INTO plans (id, name, amount, currency) VALUES ('p-bad', 'Bad', 1, $1)`, bad)
		requireCurrencyRefused(t, err, bad)
	}
	_, err = st.Pool().Exec(bg(), `INSERT INTO currencies (code, minor_units) VALUES ('ABC', 2)`)
	requirePgCode(t, err, "23514")
	// A tenant in a supported currency is fine; the store's own check names the code.
	_, _, err = st.EnsureTenant(bg(), testkit.NewTenantID(t), "jpy", 0)
	require.NoError(t, err)
	_, _, err = st.EnsureTenant(bg(), testkit.NewTenantID(t), "xxx", 0)
	requireValidation(t, err)

	tenant := newTenant(t, st, fixed)
	id := newInvoice(t, st, tenant, "cur", "collecting")
	for table, sql := range map[string]string{
		"bolt11_invoices": `INSERT INTO bolt11_invoices (payment_hash, invoice_id, payment_request, amount_msat, quote_amount, quote_currency, created_at, expires_at)
			VALUES ('` + payHash("cur") + `', $1, 'lnbc-cur', 1, 1, 'btc', now(), now() + interval '1 hour')`,
		"card_payments": `INSERT INTO card_payments (payment_intent_id, invoice_id, idempotency_key, attempt, amount, currency, status, outcome)
			VALUES ('pi_cur', $1, 'k-cur', 1, 1, 'xxx', 's', 'o')`,
		"payments": `INSERT INTO payments (id, invoice_id, tenant_id, rail, money_ref, reference, amount, currency, received_at, applied, refund_status, refund_reason)
			SELECT 'p-cur', id, tenant_id, 'manual', 'manual:x', 'x', 1, 'EUR', now(), false, 'to_refund', 'currency_mismatch' FROM invoices WHERE id = $1`,
	} {
		_, err := st.Pool().Exec(bg(), sql, id)
		requireCurrencyRefused(t, err, table)
	}
}

// requireCurrencyRefused asserts err is a constraint on a currency column.
func requireCurrencyRefused(t *testing.T, err error, what string) {
	t.Helper()
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr, what)
	assert.Contains(t, []string{"23503", "23514"}, pgErr.Code, what)
	assert.Contains(t, pgErr.ConstraintName, "currency", what)
}

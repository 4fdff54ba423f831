package store

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/billflow/billflow/models"
)

// Payment rails, as recorded on payments and invoices.
const (
	RailNWC       = "nwc"
	RailLightning = "lightning"
	RailOOB       = "oob"
	RailStripe    = "stripe"
	RailManual    = "manual"
)

var (
	paymentHashRE  = regexp.MustCompile(`^[0-9a-f]{64}$`)
	currencyCodeRE = regexp.MustCompile(`^[a-z]{3}$`)
)

// PaymentReport is money received for an invoice through a rail.
type PaymentReport struct {
	InvoiceID string
	Rail      string
	// Reference identifies the money on its rail: the payment hash for nwc,
	// lightning and oob; the PaymentIntent id for stripe; free text for manual.
	Reference string
	// Amount and Currency are what a fiat rail (stripe, manual) collected, in
	// minor units of Currency; an empty Currency means the invoice's.
	// AmountMsat is what a Lightning rail (nwc, lightning, oob) collected.
	// A report without its rail's amount vouches for the amount due: see
	// Settle.
	Amount     int64
	Currency   models.Currency
	AmountMsat int64
	ReceivedAt time.Time
}

// moneyRef is the identity of the money behind a report: one Lightning
// payment is the same money whether NWC, the settlement stream or a lookup
// reported it.
func (p PaymentReport) moneyRef() (string, error) {
	switch p.Rail {
	case RailNWC, RailLightning, RailOOB:
		h := strings.ToLower(p.Reference)
		if !paymentHashRE.MatchString(h) {
			return "", &models.ValidationError{Field: "reference", Reason: fmt.Sprintf("a %s payment's reference must be its 64-hex payment hash, not %q", p.Rail, p.Reference)}
		}
		return "lightning:" + h, nil
	case RailStripe:
		if !strings.HasPrefix(p.Reference, "pi_") {
			return "", &models.ValidationError{Field: "reference", Reason: fmt.Sprintf("a stripe payment's reference must be its PaymentIntent id (pi_...), not %q", p.Reference)}
		}
		return "stripe:" + p.Reference, nil
	case RailManual:
		return "manual:" + p.InvoiceID + "/" + p.Reference, nil
	}
	return "", &models.ValidationError{Field: "rail", Reason: fmt.Sprintf("%q is not one of nwc, lightning, oob, stripe, manual", p.Rail)}
}

// Why money, or part of it, is owed back (payments.refund_reason).
const (
	// RefundOverpaid: the part of a payment beyond the amount due.
	RefundOverpaid = "overpaid"
	// RefundInvoiceSettled: the invoice was already paid, voided or written off.
	RefundInvoiceSettled = "invoice_settled"
	// RefundCurrencyMismatch: the money is not in the invoice's currency.
	RefundCurrencyMismatch = "currency_mismatch"
	// RefundUnpriced: Lightning money for a payment hash with no stored
	// quote, so its worth in the invoice's currency is unknown.
	RefundUnpriced = "unpriced"
	// RefundBelowMinorUnit: Lightning money worth less than one minor unit.
	RefundBelowMinorUnit = "below_minor_unit"
	// RefundInvoiceVoided: a partial payment of an invoice since voided.
	RefundInvoiceVoided = "invoice_voided"
)

// Payment is a recorded payment.
type Payment struct {
	ID         string          `json:"id"`
	InvoiceID  string          `json:"invoice_id"`
	TenantID   models.TenantID `json:"tenant_id"`
	Rail       string          `json:"rail"`
	Reference  string          `json:"reference"`
	Amount     int64           `json:"amount,omitempty"`
	Currency   models.Currency `json:"currency,omitempty"`
	AmountMsat int64           `json:"amount_msat,omitempty"`
	ReceivedAt time.Time       `json:"received_at"`
	// Applied is true when the payment credited the invoice: AppliedAmount,
	// in the invoice's currency.
	Applied       bool  `json:"applied"`
	AppliedAmount int64 `json:"applied_amount"`
	// RefundStatus (to_refund, refunded) is set when some or all of the
	// money is owed back: RefundAmount in Currency for fiat, RefundMsat for
	// Lightning, for RefundReason. A payment can be both applied and owed
	// back in part (the difference of an overpayment).
	RefundStatus string `json:"refund_status,omitempty"`
	RefundAmount int64  `json:"refund_amount,omitempty"`
	RefundMsat   int64  `json:"refund_msat,omitempty"`
	RefundReason string `json:"refund_reason,omitempty"`
}

const paymentColumns = `id, invoice_id, tenant_id, rail, reference, coalesce(amount, 0), coalesce(currency, ''), coalesce(amount_msat, 0), received_at,
	applied, applied_amount, coalesce(refund_status, ''), coalesce(refund_amount, 0), coalesce(refund_msat, 0), coalesce(refund_reason, '')`

func scanPayment(row pgx.Row) (Payment, error) {
	var p Payment
	err := row.Scan(&p.ID, &p.InvoiceID, &p.TenantID, &p.Rail, &p.Reference, &p.Amount, &p.Currency, &p.AmountMsat, &p.ReceivedAt,
		&p.Applied, &p.AppliedAmount, &p.RefundStatus, &p.RefundAmount, &p.RefundMsat, &p.RefundReason)
	if errors.Is(err, pgx.ErrNoRows) {
		return p, ErrNotFound
	}
	p.ReceivedAt = p.ReceivedAt.UTC()
	return p, err
}

func collectPayments(rows pgx.Rows, err error) ([]Payment, error) {
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Payment, error) { return scanPayment(r) })
}

// Payments lists an invoice's payments, oldest first.
func (s *Store) Payments(ctx context.Context, invoiceID string) ([]Payment, error) {
	return collectPayments(s.pool.Query(ctx, `SELECT `+paymentColumns+` FROM payments WHERE invoice_id = $1 ORDER BY received_at, id`, invoiceID))
}

// ToRefund lists every payment with money owed back (refund status
// to_refund), oldest first, for one tenant or all when tenantID is empty:
// overpayments of paid or closed invoices, the difference of an
// overpayment, and money that could not be applied (wrong currency,
// unpriced Lightning), whatever the invoice's status.
func (s *Store) ToRefund(ctx context.Context, tenantID models.TenantID) ([]Payment, error) {
	return collectPayments(s.pool.Query(ctx, `SELECT `+paymentColumns+` FROM payments
		WHERE refund_status = 'to_refund' AND ($1 = '' OR tenant_id = $1) ORDER BY received_at, id`, string(tenantID)))
}

// Settlement outcomes.
const (
	// SettledApplied: this payment paid the invoice (in full, with any
	// earlier partial payments); a part beyond the amount due is owed back.
	SettledApplied = "applied"
	// SettledPartial: this payment credited less than the amount due; the
	// invoice stays open for the remainder (Invoice.Due).
	SettledPartial = "partial"
	// SettledDuplicate: this money was already recorded; nothing changed.
	SettledDuplicate = "duplicate"
	// SettledOverpayment: the invoice was already paid (or closed); the money
	// is recorded as owed back to the tenant.
	SettledOverpayment = "overpayment"
	// SettledUnapplied: the invoice is open but the money cannot count
	// against it (another currency, no quote to price Lightning money, less
	// than one minor unit); it is recorded as owed back and the invoice is
	// unchanged.
	SettledUnapplied = "unapplied"
)

// SettleResult is the outcome of recording a payment.
type SettleResult struct {
	Invoice Invoice
	Payment Payment
	// Outcome is SettledApplied, SettledPartial, SettledDuplicate,
	// SettledOverpayment or SettledUnapplied.
	Outcome string
	// TenantStatus is the tenant's standing (active, grace, suspended) as
	// of this payment: only a tenant not active has a grace window to tell.
	TenantStatus string
	// settledBefore: the invoice was paid, voided or written off before
	// this report.
	settledBefore bool
}

// AlreadyPaid reports whether the invoice had been paid (or closed) before
// this report.
func (r SettleResult) AlreadyPaid() bool { return r.settledBefore }

func settledStatus(status string) bool {
	return status == InvoicePaid || status == InvoiceVoid || status == InvoiceUncollectible
}

// Settle is the one place money received is counted against an invoice
// (card and Stripe webhooks, reconciliation, the Lightning settlement stream,
// NWC and application reports all end here), in one transaction under the
// invoice's row lock.
//
// The money is valued in the invoice's currency: a fiat report by its Amount
// (its Currency must be the invoice's); Lightning money by AmountMsat
// converted at the quote stored with its BOLT11 (quote_amount minor units
// for amount_msat), rounded down so it never credits more than it is worth.
// A report that carries no amount for its rail is the reporter vouching that
// the amount due was received: a manual report (starter invoice mark-paid,
// POST /v1/invoices/{id}/payments) with no amount means the full remaining
// amount due (Invoice.Due), or the invoice's total when nothing is due any
// more; a Lightning report with no msat means its BOLT11's amount (a settled
// BOLT11 received at least that).
//
// Then:
//   - less than due: a partial payment. The payment is applied, the
//     invoice's amount_paid grows and it stays open for the remainder, with
//     an invoice.partially_paid event (outcome partial).
//   - the amount due or more: the invoice is paid, with all that goes with it
//     (its live BOLT11 superseded, exactly one entitlement, the reserved
//     discount slot consumed, invoice.paid); a part beyond the amount due is
//     recorded on the payment as owed back (refund_status to_refund,
//     reason overpaid, a payment.overpaid event) (outcome applied).
//   - the invoice already paid, voided or written off: the whole amount is
//     an overpayment to refund, with payment.overpaid, whatever the rail,
//     manual reports included (outcome overpayment).
//   - money in another currency than the invoice's (or Lightning money
//     with no stored quote, or worth less than one minor unit): recorded
//     whole as unapplied money to refund, with a payment.unapplied event;
//     never applied, never dropped (outcome unapplied).
//   - the same money reported again (same money reference, whichever rail
//     reports it) is a duplicate and changes nothing (outcome duplicate).
//
// Sub-minor-unit remainders of a partial Lightning payment are not credited
// (rounding down) and not refunded: they are below what the invoice's
// currency can express.
func (s *Store) Settle(ctx context.Context, p PaymentReport) (SettleResult, error) {
	var res SettleResult
	ref, err := p.moneyRef()
	if err != nil {
		return res, err
	}
	if p.Amount < 0 {
		return res, &models.ValidationError{Field: "amount", Reason: fmt.Sprintf("%d is negative", p.Amount)}
	}
	if p.AmountMsat < 0 {
		return res, &models.ValidationError{Field: "amount_msat", Reason: fmt.Sprintf("%d is negative", p.AmountMsat)}
	}
	cur := models.Currency(strings.ToLower(strings.TrimSpace(string(p.Currency))))
	if cur != "" && !currencyCodeRE.MatchString(string(cur)) {
		return res, &models.ValidationError{Field: "currency", Reason: fmt.Sprintf("%q is not a three-letter ISO 4217 code", p.Currency)}
	}
	if p.Rail != RailManual {
		p.Reference = strings.ToLower(p.Reference)
		if p.Rail == RailStripe {
			p.Reference = ref[len("stripe:"):]
		}
	}
	at := p.ReceivedAt.UTC().Truncate(time.Microsecond)
	err = s.tx(ctx, func(tx pgx.Tx) error {
		var err error
		res, err = settleTx(ctx, tx, p, ref, cur, at)
		return err
	})
	return res, err
}

// settleTx is Settle's transaction body, for a caller that records a
// payment inside its own transaction (PayFromWallet): p is validated, ref is
// its money reference, cur its currency (may be empty), at when it arrived.
func settleTx(ctx context.Context, tx pgx.Tx, p PaymentReport, ref string, cur models.Currency, at time.Time) (SettleResult, error) {
	var res SettleResult
	lightning := strings.HasPrefix(ref, "lightning:")
	err := func() error {
		inv, err := scanInvoice(tx.QueryRow(ctx, `SELECT `+invoiceColumns+` FROM invoices WHERE id = $1 FOR UPDATE`, p.InvoiceID))
		if err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT status FROM tenants WHERE id = $1`, inv.TenantID).Scan(&res.TenantStatus); err != nil {
			return err
		}
		res.settledBefore = settledStatus(inv.Status)
		prior, err := scanPayment(tx.QueryRow(ctx, `SELECT `+paymentColumns+` FROM payments WHERE money_ref = $1`, ref))
		if err == nil {
			if prior.InvoiceID != p.InvoiceID {
				return &models.ValidationError{Field: "reference", Reason: fmt.Sprintf("payment %s was already recorded for invoice %s", p.Reference, prior.InvoiceID)}
			}
			res.Invoice, res.Payment, res.Outcome = inv, prior, SettledDuplicate
			return nil
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		var bolt *Bolt11
		if lightning {
			b, err := scanBolt11(tx.QueryRow(ctx, `SELECT `+bolt11Columns+` FROM bolt11_invoices WHERE payment_hash = $1`, p.Reference))
			switch {
			case err == nil && b.InvoiceID != inv.ID:
				return &models.ValidationError{Field: "reference", Reason: fmt.Sprintf("payment hash %s belongs to invoice %s", p.Reference, b.InvoiceID)}
			case err == nil:
				bolt = &b
			case !errors.Is(err, ErrNotFound):
				return err
			}
		}

		pay := Payment{ID: uuid.NewString(), InvoiceID: inv.ID, TenantID: inv.TenantID, Rail: p.Rail, Reference: p.Reference,
			Amount: p.Amount, Currency: cur, AmountMsat: p.AmountMsat, ReceivedAt: at}
		// vouched is what a report without an amount stands for.
		vouched := inv.Due()
		if vouched <= 0 {
			vouched = inv.Total
		}
		// credit is the money's worth in the invoice's currency; unapplied
		// says why it cannot count at all.
		var credit int64
		unapplied := ""
		if lightning {
			if pay.AmountMsat == 0 && bolt != nil {
				pay.AmountMsat = bolt.AmountMsat
			}
			switch {
			case pay.AmountMsat == 0:
				pay.Amount, pay.Currency, credit = vouched, inv.Currency, vouched
			case bolt == nil:
				unapplied = RefundUnpriced
			case bolt.QuoteCurrency != inv.Currency:
				unapplied = RefundCurrencyMismatch
			default:
				if credit, err = models.MsatToMinor(pay.AmountMsat, bolt.QuoteAmount, bolt.AmountMsat); err != nil {
					return err
				}
				if credit == 0 {
					unapplied = RefundBelowMinorUnit
				}
			}
		} else {
			if pay.Currency == "" {
				pay.Currency = inv.Currency
			}
			if pay.Amount == 0 {
				if pay.Currency != inv.Currency {
					return &models.ValidationError{Field: "amount", Reason: fmt.Sprintf("a payment in %s needs its amount (invoice %s is in %s)", pay.Currency, inv.ID, inv.Currency)}
				}
				pay.Amount = vouched
			}
			if pay.Currency != inv.Currency {
				unapplied = RefundCurrencyMismatch
			} else {
				credit = pay.Amount
			}
		}

		outcome := SettledApplied
		switch {
		case res.settledBefore || unapplied != "":
			pay.RefundStatus, pay.RefundReason = "to_refund", unapplied
			if pay.RefundReason == "" {
				pay.RefundReason = RefundInvoiceSettled
			}
			if lightning && pay.AmountMsat > 0 {
				pay.RefundMsat = pay.AmountMsat
			} else {
				pay.RefundAmount = pay.Amount
			}
			outcome = SettledUnapplied
			if res.settledBefore {
				outcome = SettledOverpayment
			}
		default:
			due := inv.Due()
			pay.Applied, pay.AppliedAmount = true, min(credit, due)
			if credit > due {
				pay.RefundStatus, pay.RefundReason = "to_refund", RefundOverpaid
				if lightning && bolt != nil {
					kept, err := models.MinorToMsat(pay.AppliedAmount, bolt.QuoteAmount, bolt.AmountMsat)
					if err != nil {
						return err
					}
					pay.RefundMsat = pay.AmountMsat - kept
				} else {
					pay.RefundAmount = pay.Amount - pay.AppliedAmount
				}
				if pay.RefundMsat == 0 && pay.RefundAmount == 0 {
					pay.RefundStatus, pay.RefundReason = "", ""
				}
			}
			if inv.AmountPaid, err = models.AddAmount("invoice "+inv.ID+" amount_paid", inv.AmountPaid, pay.AppliedAmount); err != nil {
				return err
			}
			if inv.AmountPaid < inv.Total {
				outcome = SettledPartial
			}
		}

		if _, err := tx.Exec(ctx, `INSERT INTO payments (id, invoice_id, tenant_id, rail, money_ref, reference, amount, currency, amount_msat, received_at,
				applied, applied_amount, refund_status, refund_amount, refund_msat, refund_reason)
			VALUES ($1, $2, $3, $4, $5, $6, NULLIF($7::bigint, 0), NULLIF($8, ''), NULLIF($9::bigint, 0), $10,
				$11, $12, NULLIF($13, ''), NULLIF($14::bigint, 0), NULLIF($15::bigint, 0), NULLIF($16, ''))`,
			pay.ID, pay.InvoiceID, pay.TenantID, pay.Rail, ref, pay.Reference, pay.Amount, string(pay.Currency), pay.AmountMsat, at,
			pay.Applied, pay.AppliedAmount, pay.RefundStatus, pay.RefundAmount, pay.RefundMsat, pay.RefundReason); err != nil {
			return fmt.Errorf("record payment: %w", err)
		}
		if bolt != nil {
			if _, err := tx.Exec(ctx, `UPDATE bolt11_invoices SET settled_at = $2, amt_paid_msat = $3
				WHERE payment_hash = $1 AND settled_at IS NULL`, bolt.PaymentHash, at, pay.AmountMsat); err != nil {
				return fmt.Errorf("mark lightning invoice settled: %w", err)
			}
		}
		res.Payment, res.Outcome = pay, outcome
		switch outcome {
		case SettledOverpayment:
			res.Invoice = inv
			return insertEvent(ctx, tx, inv.TenantID, "payment.overpaid", pay.ID, pay)
		case SettledUnapplied:
			res.Invoice = inv
			return insertEvent(ctx, tx, inv.TenantID, "payment.unapplied", pay.ID, pay)
		case SettledPartial:
			if _, err := tx.Exec(ctx, `UPDATE invoices SET amount_paid = $2 WHERE id = $1`, inv.ID, inv.AmountPaid); err != nil {
				return err
			}
			res.Invoice = inv
			return insertEvent(ctx, tx, inv.TenantID, "invoice.partially_paid", pay.ID,
				map[string]any{"invoice": inv, "payment": pay, "due": inv.Due()})
		}
		inv.Status, inv.PaidAt, inv.PaidRail, inv.PaidReference = InvoicePaid, &at, p.Rail, p.Reference
		if _, err := tx.Exec(ctx, `UPDATE invoices SET status = 'paid', amount_paid = $5, paid_at = $2, paid_rail = $3, paid_reference = $4, needs_action_at = NULL WHERE id = $1`,
			inv.ID, at, p.Rail, p.Reference, inv.AmountPaid); err != nil {
			return err
		}
		// A paid invoice offers no Lightning invoice any more.
		if _, err := tx.Exec(ctx, `UPDATE bolt11_invoices SET superseded_at = $2 WHERE invoice_id = $1 AND settled_at IS NULL AND superseded_at IS NULL`, inv.ID, at); err != nil {
			return err
		}
		// A paid top-up is a wallet deposit, never a subscription entitlement.
		var kind string
		if err := tx.QueryRow(ctx, `SELECT kind FROM invoices WHERE id = $1`, inv.ID).Scan(&kind); err != nil {
			return err
		}
		if kind == InvoiceKindTopUp {
			if err := depositTopUp(ctx, tx, inv, ref, at); err != nil {
				return err
			}
		} else if _, err := tx.Exec(ctx, `INSERT INTO entitlements (invoice_id, tenant_id, period_start, period_end, granted_at)
			VALUES ($1, $2, $3, $4, $5) ON CONFLICT (invoice_id) DO NOTHING`, inv.ID, inv.TenantID, inv.PeriodStart, inv.PeriodEnd, at); err != nil {
			return fmt.Errorf("grant entitlement: %w", err)
		}
		if err := resolveReservation(ctx, tx, inv.ID, "consumed", at); err != nil {
			return err
		}
		if err := fundInvoiceCredit(ctx, tx, inv, at); err != nil {
			return err
		}
		if err := creditInvoiceShare(ctx, tx, inv, kind, at); err != nil {
			return err
		}
		if err := insertEvent(ctx, tx, inv.TenantID, "invoice.paid", inv.ID, inv); err != nil {
			return err
		}
		if pay.RefundStatus != "" {
			if err := insertEvent(ctx, tx, inv.TenantID, "payment.overpaid", pay.ID, pay); err != nil {
				return err
			}
		}
		res.Invoice = inv
		return nil
	}()
	return res, err
}

// resolveReservation consumes or releases the invoice's reserved discount slot, if any.
func resolveReservation(ctx context.Context, tx pgx.Tx, invoiceID, to string, at time.Time) error {
	var code string
	err := tx.QueryRow(ctx, `UPDATE discount_reservations SET status = $2, resolved_at = $3
		WHERE invoice_id = $1 AND status = 'reserved' RETURNING code`, invoiceID, to, at).Scan(&code)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("resolve discount reservation: %w", err)
	}
	if to == "consumed" {
		_, err = tx.Exec(ctx, `UPDATE discount_codes SET reserved = reserved - 1, redeemed = redeemed + 1 WHERE code = $1`, code)
	} else {
		_, err = tx.Exec(ctx, `UPDATE discount_codes SET reserved = reserved - 1 WHERE code = $1`, code)
	}
	return err
}

// CloseInvoice voids an invoice or writes it off as uncollectible, releasing
// its discount slot, in one transaction with its event. Voiding a partly
// paid invoice makes its partial payments money to refund; writing one off
// keeps them applied. Closing it again the
// same way is a no-op; a paid invoice cannot be closed.
func (s *Store) CloseInvoice(ctx context.Context, id, status, reason string, at time.Time) (Invoice, error) {
	if status != InvoiceVoid && status != InvoiceUncollectible {
		return Invoice{}, &models.ValidationError{Field: "status", Reason: fmt.Sprintf("an invoice is closed as void or uncollectible, not %q", status)}
	}
	if len(reason) > 500 {
		return Invoice{}, &models.ValidationError{Field: "reason", Reason: "is longer than 500 characters"}
	}
	var inv Invoice
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var err error
		inv, err = scanInvoice(tx.QueryRow(ctx, `SELECT `+invoiceColumns+` FROM invoices WHERE id = $1 FOR UPDATE`, id))
		if err != nil {
			return err
		}
		switch inv.Status {
		case status:
			return nil
		case InvoicePaid, InvoiceVoid, InvoiceUncollectible:
			return &models.ValidationError{Field: "invoice", Reason: fmt.Sprintf("invoice %s is %s and cannot become %s", id, inv.Status, status)}
		}
		at := at.UTC().Truncate(time.Microsecond)
		if _, err := tx.Exec(ctx, `UPDATE invoices SET status = $2, closed_at = $3, closed_reason = NULLIF($4, '') WHERE id = $1`, id, status, at, reason); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE bolt11_invoices SET superseded_at = $2 WHERE invoice_id = $1 AND settled_at IS NULL AND superseded_at IS NULL`, id, at); err != nil {
			return err
		}
		if err := resolveReservation(ctx, tx, id, "released", at); err != nil {
			return err
		}
		if status == InvoiceVoid && inv.AmountPaid > 0 {
			if err := unapplyVoided(ctx, tx, inv); err != nil {
				return err
			}
			inv.AmountPaid = 0
		}
		inv.Status = status
		typ := "invoice.voided"
		if status == InvoiceUncollectible {
			typ = "invoice.written_off"
		}
		return insertEvent(ctx, tx, inv.TenantID, typ, id, map[string]any{"invoice": inv, "reason": reason})
	})
	return inv, err
}

// unapplyVoided turns the partial payments of an invoice being voided into
// money owed back: a void invoice was never owed, so what was paid towards
// it belongs to the tenant (each payment whole: its msat for Lightning, its
// amount for fiat), with a payment.unapplied event each. Writing an invoice
// off keeps its partial payments: the tenant did owe them.
func unapplyVoided(ctx context.Context, tx pgx.Tx, inv Invoice) error {
	rows, err := tx.Query(ctx, `UPDATE payments SET applied = false, applied_amount = 0, refund_status = 'to_refund', refund_reason = $2,
			refund_msat = CASE WHEN money_ref LIKE 'lightning:%' THEN amount_msat END,
			refund_amount = CASE WHEN money_ref LIKE 'lightning:%' AND amount_msat IS NOT NULL THEN NULL ELSE amount END
		WHERE invoice_id = $1 AND applied
		RETURNING `+paymentColumns, inv.ID, RefundInvoiceVoided)
	unapplied, err := collectPayments(rows, err)
	if err != nil {
		return fmt.Errorf("unapply payments of voided invoice %s: %w", inv.ID, err)
	}
	if _, err := tx.Exec(ctx, `UPDATE invoices SET amount_paid = 0 WHERE id = $1`, inv.ID); err != nil {
		return err
	}
	for _, p := range unapplied {
		if err := insertEvent(ctx, tx, inv.TenantID, "payment.unapplied", p.ID, p); err != nil {
			return err
		}
	}
	return nil
}

// SetInvoiceStatus moves an invoice between the collection statuses (open,
// collecting, awaiting_payment). A paid or closed invoice is left alone and
// returned as it is, so a replayed call after settlement changes nothing.
func (s *Store) SetInvoiceStatus(ctx context.Context, id, status string) (Invoice, error) {
	switch status {
	case InvoiceOpen, InvoiceCollecting, InvoiceAwaitingPayment:
	default:
		return Invoice{}, &models.ValidationError{Field: "status", Reason: fmt.Sprintf("%q is not a collection status", status)}
	}
	if _, err := s.pool.Exec(ctx, `UPDATE invoices SET status = $2 WHERE id = $1 AND status IN ('open', 'collecting', 'awaiting_payment')`, id, status); err != nil {
		return Invoice{}, err
	}
	return scanInvoice(s.pool.QueryRow(ctx, `SELECT `+invoiceColumns+` FROM invoices WHERE id = $1`, id))
}

// MarkNeedsAction records that collecting the invoice needs the customer
// (a card demanding authentication) and writes invoice.needs_action, once
// per invoice, in the same transaction.
func (s *Store) MarkNeedsAction(ctx context.Context, id, detail string, at time.Time) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		inv, err := scanInvoice(tx.QueryRow(ctx, `SELECT `+invoiceColumns+` FROM invoices WHERE id = $1 FOR UPDATE`, id))
		if err != nil {
			return err
		}
		if inv.Status == InvoicePaid || inv.Status == InvoiceVoid || inv.Status == InvoiceUncollectible {
			return nil
		}
		if _, err := tx.Exec(ctx, `UPDATE invoices SET needs_action_at = coalesce(needs_action_at, $2) WHERE id = $1`, id, at.UTC()); err != nil {
			return err
		}
		return insertEvent(ctx, tx, inv.TenantID, "invoice.needs_action", id, map[string]any{"invoice": inv, "reason": detail})
	})
}

// Bolt11 is a Lightning invoice issued on the engine's node for an invoice.
type Bolt11 struct {
	PaymentHash    string          `json:"payment_hash"`
	InvoiceID      string          `json:"invoice_id"`
	PaymentRequest string          `json:"payment_request"`
	AmountMsat     int64           `json:"amount_msat"`
	QuoteAmount    int64           `json:"quote_amount"`
	QuoteCurrency  models.Currency `json:"quote_currency"`
	CreatedAt      time.Time       `json:"created_at"`
	ExpiresAt      time.Time       `json:"expires_at"`
	NWCRequestedAt *time.Time      `json:"nwc_requested_at,omitempty"`
	SupersededAt   *time.Time      `json:"superseded_at,omitempty"`
	SettledAt      *time.Time      `json:"settled_at,omitempty"`
	AmtPaidMsat    int64           `json:"amt_paid_msat,omitempty"`
}

const bolt11Columns = `payment_hash, invoice_id, payment_request, amount_msat, quote_amount, quote_currency, created_at, expires_at, nwc_requested_at, superseded_at, settled_at, coalesce(amt_paid_msat, 0)`

func scanBolt11(row pgx.Row) (Bolt11, error) {
	var b Bolt11
	err := row.Scan(&b.PaymentHash, &b.InvoiceID, &b.PaymentRequest, &b.AmountMsat, &b.QuoteAmount, &b.QuoteCurrency, &b.CreatedAt, &b.ExpiresAt,
		&b.NWCRequestedAt, &b.SupersededAt, &b.SettledAt, &b.AmtPaidMsat)
	if errors.Is(err, pgx.ErrNoRows) {
		return b, ErrNotFound
	}
	b.CreatedAt, b.ExpiresAt = b.CreatedAt.UTC(), b.ExpiresAt.UTC()
	return b, err
}

func collectBolt11s(rows pgx.Rows, err error) ([]Bolt11, error) {
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Bolt11, error) { return scanBolt11(r) })
}

// LiveBolt11 returns the invoice's payable Lightning invoice: unsettled, not
// superseded and not expired at now. ErrNotFound when there is none.
func (s *Store) LiveBolt11(ctx context.Context, invoiceID string, now time.Time) (Bolt11, error) {
	return scanBolt11(s.pool.QueryRow(ctx, `SELECT `+bolt11Columns+` FROM bolt11_invoices
		WHERE invoice_id = $1 AND settled_at IS NULL AND superseded_at IS NULL AND expires_at > $2`, invoiceID, now.UTC()))
}

// SaveBolt11 records a newly issued Lightning invoice, superseding an expired
// unpaid one. If another payable invoice was saved meanwhile, that one is
// returned instead and b is not stored (the caller pays the returned one).
func (s *Store) SaveBolt11(ctx context.Context, b Bolt11, now time.Time) (Bolt11, error) {
	if !paymentHashRE.MatchString(b.PaymentHash) {
		return Bolt11{}, &models.ValidationError{Field: "payment_hash", Reason: "must be 64 lowercase hex characters"}
	}
	var out Bolt11
	err := s.tx(ctx, func(tx pgx.Tx) error {
		inv, err := scanInvoice(tx.QueryRow(ctx, `SELECT `+invoiceColumns+` FROM invoices WHERE id = $1 FOR UPDATE`, b.InvoiceID))
		if err != nil {
			return err
		}
		if inv.Status == InvoiceVoid || inv.Status == InvoiceUncollectible {
			return fmt.Errorf("issue a lightning invoice for invoice %s (%s): %w", inv.ID, inv.Status, ErrInvoiceClosed)
		}
		live, err := scanBolt11(tx.QueryRow(ctx, `SELECT `+bolt11Columns+` FROM bolt11_invoices
			WHERE invoice_id = $1 AND settled_at IS NULL AND superseded_at IS NULL`, b.InvoiceID))
		switch {
		case err == nil && live.ExpiresAt.After(now):
			out = live
			return nil
		case err == nil:
			if _, err := tx.Exec(ctx, `UPDATE bolt11_invoices SET superseded_at = $2 WHERE payment_hash = $1`, live.PaymentHash, now.UTC()); err != nil {
				return err
			}
		case !errors.Is(err, ErrNotFound):
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO bolt11_invoices (payment_hash, invoice_id, payment_request, amount_msat, quote_amount, quote_currency, created_at, expires_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, b.PaymentHash, b.InvoiceID, b.PaymentRequest, b.AmountMsat, b.QuoteAmount, string(b.QuoteCurrency),
			b.CreatedAt.UTC(), b.ExpiresAt.UTC()); err != nil {
			return fmt.Errorf("save lightning invoice: %w", err)
		}
		out = b
		return nil
	})
	return out, err
}

// Bolt11s lists every Lightning invoice issued for an invoice, oldest first.
func (s *Store) Bolt11s(ctx context.Context, invoiceID string) ([]Bolt11, error) {
	return collectBolt11s(s.pool.Query(ctx, `SELECT `+bolt11Columns+` FROM bolt11_invoices WHERE invoice_id = $1 ORDER BY created_at, payment_hash`, invoiceID))
}

// Bolt11ByHash finds a Lightning invoice by payment hash.
func (s *Store) Bolt11ByHash(ctx context.Context, paymentHash string) (Bolt11, error) {
	return scanBolt11(s.pool.QueryRow(ctx, `SELECT `+bolt11Columns+` FROM bolt11_invoices WHERE payment_hash = $1`, strings.ToLower(paymentHash)))
}

// MarkNWCRequested records that the tenant's wallet is about to be asked to
// pay this Lightning invoice.
func (s *Store) MarkNWCRequested(ctx context.Context, paymentHash string, at time.Time) error {
	_, err := s.pool.Exec(ctx, `UPDATE bolt11_invoices SET nwc_requested_at = coalesce(nwc_requested_at, $2) WHERE payment_hash = $1`, paymentHash, at.UTC())
	return err
}

// CardPayment is one off-session charge attempt.
type CardPayment struct {
	PaymentIntentID string          `json:"payment_intent_id"`
	InvoiceID       string          `json:"invoice_id"`
	IdempotencyKey  string          `json:"idempotency_key"`
	Attempt         int             `json:"attempt"`
	Amount          int64           `json:"amount"`
	Currency        models.Currency `json:"currency"`
	Status          string          `json:"status"`
	Outcome         string          `json:"outcome"`
	DeclineCode     string          `json:"decline_code,omitempty"`
}

// RecordCardPayment stores a charge or updates its status; the PaymentIntent
// id and the idempotency key are each UNIQUE, so a replayed charge is one row.
func (s *Store) RecordCardPayment(ctx context.Context, c CardPayment) error {
	var err error
	// Two writers of the same charge (concurrent clicks replayed by Stripe's
	// idempotency key) can race: the loser may trip the idempotency_key
	// index before the payment_intent_id arbiter sees the winner's row. The
	// winner has committed by then, so a second try takes the update path.
	for try := 0; try < 2; try++ {
		_, err = s.pool.Exec(ctx, `INSERT INTO card_payments (payment_intent_id, invoice_id, idempotency_key, attempt, amount, currency, status, outcome, decline_code)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULLIF($9, ''))
			ON CONFLICT (payment_intent_id) DO UPDATE SET status = EXCLUDED.status, outcome = EXCLUDED.outcome,
				decline_code = EXCLUDED.decline_code, updated_at = now()`,
			c.PaymentIntentID, c.InvoiceID, c.IdempotencyKey, c.Attempt, c.Amount, string(c.Currency), c.Status, c.Outcome, c.DeclineCode)
		if !isUniqueViolation(err) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("record card payment: %w", err)
	}
	return nil
}

// CardPayments lists an invoice's card charges, oldest first.
func (s *Store) CardPayments(ctx context.Context, invoiceID string) ([]CardPayment, error) {
	rows, err := s.pool.Query(ctx, `SELECT payment_intent_id, invoice_id, idempotency_key, attempt, amount, currency, status, outcome, coalesce(decline_code, '')
		FROM card_payments WHERE invoice_id = $1 ORDER BY attempt, created_at`, invoiceID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (CardPayment, error) {
		var c CardPayment
		err := r.Scan(&c.PaymentIntentID, &c.InvoiceID, &c.IdempotencyKey, &c.Attempt, &c.Amount, &c.Currency, &c.Status, &c.Outcome, &c.DeclineCode)
		return c, err
	})
}

// Attempt is one rail's outcome in one cascade attempt.
type Attempt struct {
	InvoiceID string    `json:"invoice_id"`
	Attempt   int       `json:"attempt"`
	Rail      string    `json:"rail"`
	Outcome   string    `json:"outcome"`
	Detail    string    `json:"detail,omitempty"`
	At        time.Time `json:"at"`
}

// RecordAttempt stores a rail's outcome for an attempt; recording it again
// (a retried activity) keeps the latest outcome.
func (s *Store) RecordAttempt(ctx context.Context, a Attempt) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO payment_attempts (invoice_id, attempt, rail, outcome, detail, at) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (invoice_id, attempt, rail) DO UPDATE SET outcome = EXCLUDED.outcome, detail = EXCLUDED.detail, at = EXCLUDED.at`,
		a.InvoiceID, a.Attempt, a.Rail, a.Outcome, a.Detail, a.At.UTC())
	if err != nil {
		return fmt.Errorf("record %s attempt: %w", a.Rail, err)
	}
	return nil
}

// Attempts lists an invoice's cascade attempts in order.
func (s *Store) Attempts(ctx context.Context, invoiceID string) ([]Attempt, error) {
	rows, err := s.pool.Query(ctx, `SELECT invoice_id, attempt, rail, outcome, detail, at FROM payment_attempts
		WHERE invoice_id = $1 ORDER BY attempt, at`, invoiceID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Attempt, error) {
		var a Attempt
		err := r.Scan(&a.InvoiceID, &a.Attempt, &a.Rail, &a.Outcome, &a.Detail, &a.At)
		a.At = a.At.UTC()
		return a, err
	})
}

// SettleCursor returns where the named settlement stream resumes (0: from the start).
func (s *Store) SettleCursor(ctx context.Context, name string) (uint64, error) {
	var idx int64
	err := s.pool.QueryRow(ctx, `SELECT settle_index FROM settlement_cursors WHERE name = $1`, name).Scan(&idx)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return uint64(idx), err
}

// AdvanceSettleCursor moves the named stream's cursor forward (never back).
func (s *Store) AdvanceSettleCursor(ctx context.Context, name string, idx uint64) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO settlement_cursors (name, settle_index) VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET settle_index = GREATEST(settlement_cursors.settle_index, EXCLUDED.settle_index), updated_at = now()`, name, int64(idx))
	return err
}

// Entitlement is what a paid invoice grants.
type Entitlement struct {
	InvoiceID   string          `json:"invoice_id"`
	TenantID    models.TenantID `json:"tenant_id"`
	PeriodStart time.Time       `json:"period_start"`
	PeriodEnd   time.Time       `json:"period_end"`
	GrantedAt   time.Time       `json:"granted_at"`
}

// GetEntitlement returns an invoice's entitlement, ErrNotFound if unpaid.
func (s *Store) GetEntitlement(ctx context.Context, invoiceID string) (Entitlement, error) {
	var e Entitlement
	err := s.pool.QueryRow(ctx, `SELECT invoice_id, tenant_id, period_start, period_end, granted_at FROM entitlements WHERE invoice_id = $1`, invoiceID).
		Scan(&e.InvoiceID, &e.TenantID, &e.PeriodStart, &e.PeriodEnd, &e.GrantedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return e, ErrNotFound
	}
	return e, err
}

// DiscountCode is a limited-use code.
type DiscountCode struct {
	Code           string `json:"code"`
	MaxRedemptions int    `json:"max_redemptions"`
	Reserved       int    `json:"reserved"`
	Redeemed       int    `json:"redeemed"`
}

// CreateDiscountCode adds a code usable max times; creating it again with
// the same limit is a no-op.
func (s *Store) CreateDiscountCode(ctx context.Context, code string, max int) (DiscountCode, error) {
	if max <= 0 {
		return DiscountCode{}, &models.ValidationError{Field: "max_redemptions", Reason: "must be positive"}
	}
	if _, err := s.pool.Exec(ctx, `INSERT INTO discount_codes (code, max_redemptions) VALUES ($1, $2) ON CONFLICT (code) DO NOTHING`, code, max); err != nil {
		if strings.Contains(err.Error(), "discount_codes_code_check") {
			return DiscountCode{}, &models.ValidationError{Field: "code", Reason: fmt.Sprintf("%q is not 1-64 letters, digits, '-' or '_'", code)}
		}
		return DiscountCode{}, err
	}
	d, err := s.GetDiscountCode(ctx, code)
	if err == nil && d.MaxRedemptions != max {
		return d, &models.ValidationError{Field: "code", Reason: fmt.Sprintf("%q already exists with %d redemptions", code, d.MaxRedemptions)}
	}
	return d, err
}

// GetDiscountCode reads a code's usage.
func (s *Store) GetDiscountCode(ctx context.Context, code string) (DiscountCode, error) {
	var d DiscountCode
	err := s.pool.QueryRow(ctx, `SELECT code, max_redemptions, reserved, redeemed FROM discount_codes WHERE code = $1`, code).
		Scan(&d.Code, &d.MaxRedemptions, &d.Reserved, &d.Redeemed)
	if errors.Is(err, pgx.ErrNoRows) {
		return d, ErrNotFound
	}
	return d, err
}

// ReserveDiscount holds one slot of a code for an invoice being collected.
// One reservation per invoice; reserving the same code again is a no-op. A
// code with no free slot is a validation error and nothing is written.
func (s *Store) ReserveDiscount(ctx context.Context, invoiceID, code string, at time.Time) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		inv, err := scanInvoice(tx.QueryRow(ctx, `SELECT `+invoiceColumns+` FROM invoices WHERE id = $1 FOR UPDATE`, invoiceID))
		if err != nil {
			return err
		}
		var prior string
		err = tx.QueryRow(ctx, `SELECT code FROM discount_reservations WHERE invoice_id = $1`, invoiceID).Scan(&prior)
		if err == nil {
			if prior == code {
				return nil
			}
			return &models.ValidationError{Field: "code", Reason: fmt.Sprintf("invoice %s already has discount code %q", invoiceID, prior)}
		} else if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if inv.Status != InvoiceOpen && inv.Status != InvoiceCollecting && inv.Status != InvoiceAwaitingPayment {
			return &models.ValidationError{Field: "invoice", Reason: fmt.Sprintf("invoice %s is %s", invoiceID, inv.Status)}
		}
		tag, err := tx.Exec(ctx, `UPDATE discount_codes SET reserved = reserved + 1 WHERE code = $1 AND reserved + redeemed < max_redemptions`, code)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			if _, err := scanDiscountExists(ctx, tx, code); err != nil {
				return err
			}
			return &models.ValidationError{Field: "code", Reason: fmt.Sprintf("discount code %q has no redemptions left", code)}
		}
		_, err = tx.Exec(ctx, `INSERT INTO discount_reservations (invoice_id, code, status, reserved_at) VALUES ($1, $2, 'reserved', $3)`, invoiceID, code, at.UTC())
		return err
	})
}

func scanDiscountExists(ctx context.Context, tx pgx.Tx, code string) (bool, error) {
	var one int
	err := tx.QueryRow(ctx, `SELECT 1 FROM discount_codes WHERE code = $1`, code).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, &models.ValidationError{Field: "code", Reason: fmt.Sprintf("discount code %q does not exist", code)}
	}
	return err == nil, err
}

// DiscountReservation returns the invoice's reservation's code and status.
func (s *Store) DiscountReservation(ctx context.Context, invoiceID string) (code, status string, err error) {
	err = s.pool.QueryRow(ctx, `SELECT code, status FROM discount_reservations WHERE invoice_id = $1`, invoiceID).Scan(&code, &status)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", "", ErrNotFound
	}
	return code, status, err
}

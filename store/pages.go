package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/billflow/billflow/models"
)

// Page token kinds: the subject of an invoice token is an invoice id, of an
// account token a tenant id.
const (
	PageInvoice = "invoice"
	PageAccount = "account"
)

// PageToken is a live capability token's row (only its hash is stored).
type PageToken struct {
	Kind    string
	Subject string
	Version int
}

// EnsurePageToken returns the version of the live token of an invoice or a
// tenant, creating version 1 (or the one after the last revoked) when there
// is none. hashFor gives sha256 of the token of a version: the store never
// sees a token itself. An unknown invoice or tenant is ErrNotFound.
func (s *Store) EnsurePageToken(ctx context.Context, kind, subject string, hashFor func(version int) []byte) (int, error) {
	var table string
	switch kind {
	case PageInvoice:
		table = "invoices"
	case PageAccount:
		table = "tenants"
	default:
		return 0, &models.ValidationError{Field: "kind", Reason: fmt.Sprintf("%q is not invoice or account", kind)}
	}
	// Two callers may create the first token at once; the partial UNIQUE
	// index lets one win, and the other reads the winner's row next time
	// round.
	for range 3 {
		var v int
		err := s.pool.QueryRow(ctx, `SELECT version FROM page_tokens WHERE kind = $1 AND subject = $2 AND revoked_at IS NULL`, kind, subject).Scan(&v)
		if err == nil {
			return v, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return 0, err
		}
		var exists bool
		if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+table+` WHERE id = $1)`, subject).Scan(&exists); err != nil {
			return 0, err
		}
		if !exists {
			return 0, fmt.Errorf("%s %s: %w", kind, subject, ErrNotFound)
		}
		if err := s.pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) + 1 FROM page_tokens WHERE kind = $1 AND subject = $2`, kind, subject).Scan(&v); err != nil {
			return 0, err
		}
		tag, err := s.pool.Exec(ctx, `INSERT INTO page_tokens (token_hash, kind, subject, version) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`,
			hashFor(v), kind, subject, v)
		if err != nil {
			return 0, fmt.Errorf("save page token: %w", err)
		}
		if tag.RowsAffected() == 1 {
			return v, nil
		}
	}
	return 0, fmt.Errorf("save page token for %s %s: lost the race three times", kind, subject)
}

// LookupPageToken finds the live token with this sha256; a wrong or revoked
// token is ErrNotFound.
func (s *Store) LookupPageToken(ctx context.Context, hash []byte) (PageToken, error) {
	var t PageToken
	err := s.pool.QueryRow(ctx, `SELECT kind, subject, version FROM page_tokens WHERE token_hash = $1 AND revoked_at IS NULL`, hash).
		Scan(&t.Kind, &t.Subject, &t.Version)
	if errors.Is(err, pgx.ErrNoRows) {
		return t, ErrNotFound
	}
	return t, err
}

// RevokePageTokens revokes the live token of an invoice or a tenant; the
// next EnsurePageToken creates the next version. It reports whether a token
// was revoked.
func (s *Store) RevokePageTokens(ctx context.Context, kind, subject string, at time.Time) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE page_tokens SET revoked_at = $3 WHERE kind = $1 AND subject = $2 AND revoked_at IS NULL`, kind, subject, at.UTC())
	return tag.RowsAffected() > 0, err
}

// PageCharge is one "pay by card" charge from an invoice page.
type PageCharge struct {
	InvoiceID       string
	N               int
	IdempotencyKey  string
	Amount          int64
	Currency        models.Currency
	PaymentIntentID string
	// Outcome is "" until Stripe answered, then the card rail's outcome
	// ("failed" for a request Stripe refused).
	Outcome string
	// Fresh is true when this call created the charge.
	Fresh bool
}

// PageChargeRetryable reports whether a charge's outcome lets the payer try
// again with a new key: it was declined, needed authentication, or Stripe
// refused the request. Anything else (succeeded, processing, unknown) keeps
// its key, so a second click replays the first charge instead of charging
// again.
func PageChargeRetryable(outcome string) bool {
	switch outcome {
	case "declined", "authentication_required", "canceled", "failed":
		return true
	}
	return false
}

// ReservePageCharge returns the charge a "pay by card" click is to send:
// the latest one while its outcome is unknown, processing or succeeded
// (sending its key again charges nothing new), else a new one for what is
// still due with the key invoice/<id>/card/page-<n>. An invoice that is not
// payable is ErrInvoiceClosed.
func (s *Store) ReservePageCharge(ctx context.Context, invoiceID string) (PageCharge, error) {
	var out PageCharge
	err := s.tx(ctx, func(tx pgx.Tx) error {
		inv, err := scanInvoice(tx.QueryRow(ctx, `SELECT `+invoiceColumns+` FROM invoices WHERE id = $1 FOR UPDATE`, invoiceID))
		if err != nil {
			return err
		}
		switch inv.Status {
		case InvoiceOpen, InvoiceCollecting, InvoiceAwaitingPayment:
		default:
			return fmt.Errorf("invoice %s is %s: %w", inv.ID, inv.Status, ErrInvoiceClosed)
		}
		if inv.Due() <= 0 {
			return fmt.Errorf("invoice %s has nothing due: %w", inv.ID, ErrInvoiceClosed)
		}
		last, err := scanPageCharge(tx.QueryRow(ctx, `SELECT `+pageChargeColumns+` FROM page_card_charges WHERE invoice_id = $1 ORDER BY n DESC LIMIT 1`, invoiceID))
		switch {
		case err == nil && !PageChargeRetryable(last.Outcome):
			out = last
			return nil
		case err != nil && !errors.Is(err, ErrNotFound):
			return err
		}
		n := last.N + 1
		out = PageCharge{InvoiceID: inv.ID, N: n, IdempotencyKey: fmt.Sprintf("invoice/%s/card/page-%d", inv.ID, n),
			Amount: inv.Due(), Currency: inv.Currency, Fresh: true}
		_, err = tx.Exec(ctx, `INSERT INTO page_card_charges (invoice_id, n, idempotency_key, amount, currency) VALUES ($1, $2, $3, $4, $5)`,
			out.InvoiceID, out.N, out.IdempotencyKey, out.Amount, string(out.Currency))
		return err
	})
	return out, err
}

// FinishPageCharge records Stripe's answer to a page charge.
func (s *Store) FinishPageCharge(ctx context.Context, invoiceID string, n int, paymentIntentID, outcome string) error {
	_, err := s.pool.Exec(ctx, `UPDATE page_card_charges SET payment_intent_id = coalesce(NULLIF($3, ''), payment_intent_id), outcome = $4, updated_at = now()
		WHERE invoice_id = $1 AND n = $2`, invoiceID, n, paymentIntentID, outcome)
	if err != nil {
		return fmt.Errorf("record page card charge: %w", err)
	}
	return nil
}

// PageCharges lists an invoice's page charges, oldest first.
func (s *Store) PageCharges(ctx context.Context, invoiceID string) ([]PageCharge, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+pageChargeColumns+` FROM page_card_charges WHERE invoice_id = $1 ORDER BY n`, invoiceID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (PageCharge, error) { return scanPageCharge(r) })
}

const pageChargeColumns = `invoice_id, n, idempotency_key, amount, currency, coalesce(payment_intent_id, ''), outcome`

func scanPageCharge(row pgx.Row) (PageCharge, error) {
	var c PageCharge
	err := row.Scan(&c.InvoiceID, &c.N, &c.IdempotencyKey, &c.Amount, &c.Currency, &c.PaymentIntentID, &c.Outcome)
	if errors.Is(err, pgx.ErrNoRows) {
		return c, ErrNotFound
	}
	return c, err
}

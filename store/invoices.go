package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/billflow/billflow/models"
)

// Invoice statuses.
const (
	InvoiceOpen            = "open"
	InvoiceCollecting      = "collecting"
	InvoiceAwaitingPayment = "awaiting_payment"
	InvoicePaid            = "paid"
	InvoiceVoid            = "void"
	InvoiceUncollectible   = "uncollectible"
)

// Invoice is a claim of outstanding items, to be collected.
type Invoice struct {
	ID       string          `json:"id"`
	TenantID models.TenantID `json:"tenant_id"`
	Currency models.Currency `json:"currency"`
	Total    int64           `json:"total"`
	// AmountPaid is what applied payments have credited so far, in the
	// invoice's currency: total while paid, less while partially paid.
	AmountPaid    int64      `json:"amount_paid"`
	Status        string     `json:"status"`
	PeriodStart   time.Time  `json:"period_start"`
	PeriodEnd     time.Time  `json:"period_end"`
	CreatedAt     time.Time  `json:"created_at"`
	PaidAt        *time.Time `json:"paid_at,omitempty"`
	PaidRail      string     `json:"paid_rail,omitempty"`
	PaidReference string     `json:"paid_reference,omitempty"`
}

// Due is what remains to collect: total minus what payments have credited
// (zero once paid). Collection charges or invoices this, not the total.
func (inv Invoice) Due() int64 { return inv.Total - inv.AmountPaid }

const invoiceColumns = `id, tenant_id, currency, total, amount_paid, status, period_start, period_end, created_at, paid_at, coalesce(paid_rail, ''), coalesce(paid_reference, '')`

func scanInvoice(row pgx.Row) (Invoice, error) {
	var inv Invoice
	err := row.Scan(&inv.ID, &inv.TenantID, &inv.Currency, &inv.Total, &inv.AmountPaid, &inv.Status, &inv.PeriodStart, &inv.PeriodEnd,
		&inv.CreatedAt, &inv.PaidAt, &inv.PaidRail, &inv.PaidReference)
	if errors.Is(err, pgx.ErrNoRows) {
		return Invoice{}, ErrNotFound
	}
	inv.PeriodStart, inv.PeriodEnd, inv.CreatedAt = inv.PeriodStart.UTC(), inv.PeriodEnd.UTC(), inv.CreatedAt.UTC()
	if inv.PaidAt != nil {
		p := inv.PaidAt.UTC()
		inv.PaidAt = &p
	}
	return inv, err
}

func collectInvoices(rows pgx.Rows, err error) ([]Invoice, error) {
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Invoice, error) { return scanInvoice(r) })
}

// ClaimParams names one claim of a tenant's outstanding items.
type ClaimParams struct {
	TenantID models.TenantID
	// ClaimKey identifies the claim; retrying a claim with the same key
	// returns the invoice it made instead of making another.
	ClaimKey string
	// Period is the billing period the claim happens in.
	Period models.Period
	// Pool, when set, lets items on free_tier plans get a free-tier credit
	// item from the pool (store/pool_invoices.go).
	Pool *models.PoolConfig
}

// ClaimResult is the outcome of a claim.
type ClaimResult struct {
	// Invoice is the invoice made by this claim, or nil when nothing is owed.
	Invoice *Invoice
	// Outstanding is what remains unclaimed: zero after a claim, or the
	// (non-positive) net carried forward.
	Outstanding int64
}

// Claim moves every outstanding item onto a new invoice when their sum is
// positive, writing the invoice.created event in the same transaction. When
// the sum is zero or negative nothing is claimed and the credit carries on.
func (s *Store) Claim(ctx context.Context, p ClaimParams) (ClaimResult, error) {
	var res ClaimResult
	if p.ClaimKey == "" {
		return res, &models.ValidationError{Field: "claim_key", Reason: "must not be empty"}
	}
	err := s.tx(ctx, func(tx pgx.Tx) error {
		tenant, err := lockTenant(ctx, tx, p.TenantID)
		if err != nil {
			return err
		}
		prior, err := scanInvoice(tx.QueryRow(ctx, `SELECT `+invoiceColumns+` FROM invoices WHERE claim_key = $1`, p.ClaimKey))
		if err == nil {
			if prior.TenantID != p.TenantID {
				return &models.ValidationError{Field: "claim_key", Reason: fmt.Sprintf("%q is already used by another tenant", p.ClaimKey)}
			}
			res.Invoice = &prior
			res.Outstanding, err = outstanding(ctx, tx, p.TenantID)
			return err
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		items, err := queryItems(ctx, tx, `WHERE tenant_id = $1 AND invoice_id IS NULL`, p.TenantID)
		if err != nil {
			return err
		}
		plain := make([]models.Item, len(items))
		ids := make([]string, len(items))
		for i, it := range items {
			plain[i], ids[i] = it.Item, it.ID
		}
		total, ok, err := models.Claimable(plain)
		if err != nil {
			return err
		}
		if !ok {
			res.Outstanding = total
			return nil
		}
		inv := Invoice{
			ID: uuid.NewString(), TenantID: p.TenantID, Currency: tenant.Currency, Total: total, Status: InvoiceOpen,
			PeriodStart: p.Period.Start.UTC(), PeriodEnd: p.Period.End.UTC(), CreatedAt: s.Now().UTC().Truncate(time.Microsecond),
		}
		credit, err := planInvoiceCredit(ctx, tx, p.Pool, p.TenantID, items, total, inv.CreatedAt)
		if err != nil {
			return err
		}
		if credit != nil {
			inv.Total -= credit.amount
		}
		if _, err := tx.Exec(ctx, `INSERT INTO invoices (id, tenant_id, claim_key, currency, total, status, period_start, period_end, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			inv.ID, inv.TenantID, p.ClaimKey, inv.Currency, inv.Total, inv.Status, inv.PeriodStart, inv.PeriodEnd, inv.CreatedAt); err != nil {
			return fmt.Errorf("insert invoice: %w", err)
		}
		tag, err := tx.Exec(ctx, `UPDATE invoice_items SET invoice_id = $1 WHERE id = ANY($2) AND invoice_id IS NULL`, inv.ID, ids)
		if err != nil {
			return fmt.Errorf("claim items: %w", err)
		}
		if tag.RowsAffected() != int64(len(ids)) {
			return fmt.Errorf("claim items: moved %d of %d items", tag.RowsAffected(), len(ids))
		}
		if credit != nil {
			if err := writeInvoiceCredit(ctx, tx, inv, credit); err != nil {
				return err
			}
		}
		if err := insertEvent(ctx, tx, p.TenantID, "invoice.created", inv.ID, inv); err != nil {
			return err
		}
		res.Invoice = &inv
		return nil
	})
	return res, err
}

// insertEvent writes an outbound event in the caller's transaction. The
// (type, subject) pair is UNIQUE, so a replayed change cannot emit twice.
func insertEvent(ctx context.Context, tx pgx.Tx, tenantID models.TenantID, typ, subject string, payload any) error {
	body, err := json.Marshal(payload)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `INSERT INTO events (id, tenant_id, type, subject_id, payload) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (type, subject_id) DO NOTHING`, uuid.NewString(), tenantID, typ, subject, body)
	if err != nil {
		return fmt.Errorf("insert %s event: %w", typ, err)
	}
	return nil
}

// GetInvoice returns an invoice and its items.
func (s *Store) GetInvoice(ctx context.Context, id string) (Invoice, []Item, error) {
	inv, err := scanInvoice(s.pool.QueryRow(ctx, `SELECT `+invoiceColumns+` FROM invoices WHERE id = $1`, id))
	if err != nil {
		return Invoice{}, nil, err
	}
	items, err := queryItems(ctx, s.pool, `WHERE invoice_id = $1`, id)
	return inv, items, err
}

// ListInvoices returns invoices, newest first, optionally for one tenant.
func (s *Store) ListInvoices(ctx context.Context, tenantID models.TenantID) ([]Invoice, error) {
	if tenantID == "" {
		return collectInvoices(s.pool.Query(ctx, `SELECT `+invoiceColumns+` FROM invoices ORDER BY created_at DESC, id`))
	}
	return collectInvoices(s.pool.Query(ctx, `SELECT `+invoiceColumns+` FROM invoices WHERE tenant_id = $1 ORDER BY created_at DESC, id`, tenantID))
}

// OpenInvoices returns the tenant's invoices that are not yet paid, voided or
// written off, oldest first.
func (s *Store) OpenInvoices(ctx context.Context, tenantID models.TenantID) ([]Invoice, error) {
	return collectInvoices(s.pool.Query(ctx, `SELECT `+invoiceColumns+` FROM invoices
		WHERE tenant_id = $1 AND status IN ('open', 'collecting', 'awaiting_payment') ORDER BY created_at, id`, tenantID))
}

// ErrInvoiceClosed is returned when collecting an invoice that was voided or written off.
var ErrInvoiceClosed = errors.New("invoice is closed")

// Event is an outbound event row.
type Event struct {
	ID          string          `json:"id"`
	TenantID    models.TenantID `json:"tenant_id"`
	Type        string          `json:"type"`
	SubjectID   string          `json:"subject_id"`
	Payload     json.RawMessage `json:"payload"`
	CreatedAt   time.Time       `json:"created_at"`
	DeliveredAt *time.Time      `json:"delivered_at,omitempty"`
}

// ListEvents returns a tenant's events, oldest first.
func (s *Store) ListEvents(ctx context.Context, tenantID models.TenantID) ([]Event, error) {
	return collectEvents(s.pool.Query(ctx, `SELECT `+eventColumns+` FROM events
		WHERE tenant_id = $1 ORDER BY created_at, id`, tenantID))
}

const eventColumns = `id, tenant_id, type, subject_id, payload, created_at, delivered_at`

func collectEvents(rows pgx.Rows, err error) ([]Event, error) {
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Event, error) {
		var e Event
		err := r.Scan(&e.ID, &e.TenantID, &e.Type, &e.SubjectID, &e.Payload, &e.CreatedAt, &e.DeliveredAt)
		return e, err
	})
}

// PendingEvents returns up to limit undelivered events, oldest first.
func (s *Store) PendingEvents(ctx context.Context, limit int) ([]Event, error) {
	return collectEvents(s.pool.Query(ctx, `SELECT `+eventColumns+` FROM events
		WHERE delivered_at IS NULL ORDER BY created_at, id LIMIT $1`, limit))
}

// MarkEventDelivered records a delivery; marking twice keeps the first time.
func (s *Store) MarkEventDelivered(ctx context.Context, id string, at time.Time) error {
	_, err := s.pool.Exec(ctx, `UPDATE events SET delivered_at = $2 WHERE id = $1 AND delivered_at IS NULL`, id, at.UTC())
	return err
}

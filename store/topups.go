package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/billflow/billflow/models"
)

// Invoice kinds (invoices.kind).
const (
	// InvoiceKindSubscription is an invoice of claimed subscription items.
	InvoiceKindSubscription = "subscription"
	// InvoiceKindTopUp is a wallet top-up: when paid, Settle writes its
	// total as a deposit instead of granting an entitlement.
	InvoiceKindTopUp = "top_up"
)

// TopUpParams asks for a top-up invoice.
type TopUpParams struct {
	TenantID models.TenantID
	// Key identifies the request: a retry with the same key returns the
	// invoice the first made.
	Key    string
	Amount int64
	// Currency, when set, must be the wallet's (the tenant's).
	Currency models.Currency
	At       time.Time
}

// CreateTopUp makes an open invoice of kind top_up for Amount with one
// item, in the wallet's currency, with its invoice.created event, in one
// transaction; it is collected like any invoice and deposits when paid.
func (s *Store) CreateTopUp(ctx context.Context, p TopUpParams) (Invoice, error) {
	var inv Invoice
	p.Key = strings.TrimSpace(p.Key)
	if p.Key == "" || len(p.Key) > 200 {
		return inv, &models.ValidationError{Field: "top_up.key", Reason: "must be 1 to 200 characters"}
	}
	if p.Amount <= 0 {
		return inv, &models.ValidationError{Field: "top_up " + p.Key, Reason: fmt.Sprintf("amount %d is not positive", p.Amount)}
	}
	if p.Amount > models.MaxPlanAmount {
		return inv, &models.ValidationError{Field: "top_up " + p.Key, Reason: fmt.Sprintf("amount %d is above the limit of %d", p.Amount, models.MaxPlanAmount)}
	}
	at := p.At
	if at.IsZero() {
		at = s.Now()
	}
	at = at.UTC().Truncate(time.Microsecond)
	claimKey := "top_up/" + string(p.TenantID) + "/" + p.Key
	err := s.tx(ctx, func(tx pgx.Tx) error {
		cur, _, err := ensureWallet(ctx, tx, p.TenantID)
		if err != nil {
			return err
		}
		if c := models.Currency(strings.ToLower(strings.TrimSpace(string(p.Currency)))); c != "" && c != cur {
			return &models.ValidationError{Field: "currency", Reason: fmt.Sprintf("%s does not match the wallet's currency %s", c, cur)}
		}
		prior, err := scanInvoice(tx.QueryRow(ctx, `SELECT `+invoiceColumns+` FROM invoices WHERE claim_key = $1`, claimKey))
		if err == nil {
			if prior.Total != p.Amount {
				return &models.ValidationError{Field: "top_up " + p.Key, Reason: fmt.Sprintf("key already used for a top-up of %d", prior.Total)}
			}
			inv = prior
			return nil
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		inv, err = insertTopUp(ctx, tx, p.TenantID, cur, p.Amount, claimKey, at, false)
		return err
	})
	return inv, err
}

// insertTopUp writes an open top-up invoice with its one item and its
// invoice.created event, in the caller's transaction.
func insertTopUp(ctx context.Context, tx pgx.Tx, tenant models.TenantID, cur models.Currency, amount int64, claimKey string, at time.Time, auto bool) (Invoice, error) {
	inv := Invoice{ID: uuid.NewString(), TenantID: tenant, Currency: cur, Total: amount, Status: InvoiceOpen,
		PeriodStart: at, PeriodEnd: at, CreatedAt: at}
	if _, err := tx.Exec(ctx, `INSERT INTO invoices (id, tenant_id, claim_key, currency, total, status, period_start, period_end, created_at, kind, auto_recharge)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'top_up', $10)`,
		inv.ID, inv.TenantID, claimKey, inv.Currency, inv.Total, inv.Status, inv.PeriodStart, inv.PeriodEnd, inv.CreatedAt, auto); err != nil {
		return inv, fmt.Errorf("insert top-up invoice: %w", err)
	}
	description := "Wallet top-up"
	if auto {
		description = "Wallet auto-recharge"
	}
	if _, err := tx.Exec(ctx, `INSERT INTO invoice_items (id, tenant_id, kind, resource_id, amount, currency, created_at, period_start, description, invoice_id)
		VALUES ($1, $2, 'top_up', 'wallet', $3, $4, $5, $5, $6, $7)`,
		uuid.NewString(), inv.TenantID, inv.Total, inv.Currency, at, description, inv.ID); err != nil {
		return inv, fmt.Errorf("insert top-up item: %w", err)
	}
	return inv, insertEvent(ctx, tx, inv.TenantID, "invoice.created", inv.ID, inv)
}

// InvoiceKind returns an invoice's kind (subscription or top_up).
func (s *Store) InvoiceKind(ctx context.Context, id string) (string, error) {
	var kind string
	err := s.pool.QueryRow(ctx, `SELECT kind FROM invoices WHERE id = $1`, id).Scan(&kind)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", ErrNotFound
	}
	return kind, err
}

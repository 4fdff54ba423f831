package store

import (
	"context"
	"errors"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/billflow/billflow/models"
)

// AutoRechargeStart is the outcome of StartAutoRecharge.
type AutoRechargeStart struct {
	// Invoice is the open auto top-up (nil when none is due).
	Invoice *Invoice `json:"invoice,omitempty"`
	// Created: this call made it; otherwise it was open already.
	Created bool `json:"created,omitempty"`
	// Skipped says why no auto top-up is open (auto-recharge off, or
	// spendable not below the threshold).
	Skipped string `json:"skipped,omitempty"`
}

// OpenAutoTopUp returns the tenant's open auto top-up, or nil.
func (s *Store) OpenAutoTopUp(ctx context.Context, tenant models.TenantID) (*Invoice, error) {
	return openAutoTopUp(ctx, s.pool, tenant)
}

func openAutoTopUp(ctx context.Context, q querier, tenant models.TenantID) (*Invoice, error) {
	inv, err := scanInvoice(q.QueryRow(ctx, `SELECT `+invoiceColumns+` FROM invoices
		WHERE tenant_id = $1 AND kind = 'top_up' AND auto_recharge AND status IN ('open', 'collecting', 'awaiting_payment')`, tenant))
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &inv, nil
}

// StartAutoRecharge makes the tenant's auto top-up when its wallet has
// auto-recharge on and spendable is below the threshold, in one
// transaction under the wallet's row lock. Idempotent: an auto top-up that
// is still open is returned instead of a second one, and the partial
// UNIQUE index invoices_one_open_auto_recharge makes a second open one
// impossible even so. A paid (or closed) auto top-up no longer counts, so
// the next fall below the threshold starts a new one.
func (s *Store) StartAutoRecharge(ctx context.Context, tenant models.TenantID) (AutoRechargeStart, error) {
	var out AutoRechargeStart
	err := s.tx(ctx, func(tx pgx.Tx) error {
		out = AutoRechargeStart{}
		if _, _, err := ensureWallet(ctx, tx, tenant); err != nil {
			return err
		}
		w, err := scanWallet(tx.QueryRow(ctx, `SELECT `+walletColumns+` FROM wallets WHERE tenant_id = $1 FOR UPDATE`, tenant))
		if err != nil {
			return err
		}
		var a AutoRecharge
		if err := tx.QueryRow(ctx, `SELECT auto_recharge_threshold, auto_recharge_amount FROM wallets WHERE tenant_id = $1`, tenant).
			Scan(&a.Threshold, &a.Amount); err != nil {
			return err
		}
		if out.Invoice, err = openAutoTopUp(ctx, tx, tenant); err != nil || out.Invoice != nil {
			return err
		}
		switch {
		case !a.On():
			out.Skipped = "auto-recharge is off"
			return nil
		case w.Spendable >= *a.Threshold:
			out.Skipped = "spendable is not below the threshold"
			return nil
		}
		inv, err := insertTopUp(ctx, tx, tenant, w.Currency, *a.Amount, "auto_recharge/"+string(tenant)+"/"+uuid.NewString(), s.Now().UTC().Truncate(time.Microsecond), true)
		if err != nil {
			return err
		}
		out.Invoice, out.Created = &inv, true
		return nil
	})
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23505" && pe.ConstraintName == "invoices_one_open_auto_recharge" {
		// Another start won the race: answer its top-up.
		inv, err := s.OpenAutoTopUp(ctx, tenant)
		return AutoRechargeStart{Invoice: inv}, err
	}
	return out, err
}

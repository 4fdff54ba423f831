package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/billflow/billflow/models"
)

// AutoRecharge is a wallet's auto-recharge setting: when spendable falls
// below Threshold, a top-up of Amount is started. Off (both nil) when the
// wallet has none. The columns are migration 00012's; the recharge itself
// is the BalanceSync workflow's (this file only stores the setting).
type AutoRecharge struct {
	Threshold *int64 `json:"threshold"`
	Amount    *int64 `json:"amount"`
}

// On says whether auto-recharge is set.
func (a AutoRecharge) On() bool { return a.Threshold != nil && a.Amount != nil }

// WalletAutoRecharge reads the tenant's auto-recharge setting (off for a
// wallet not written yet); an unknown tenant is a *models.ValidationError.
func (s *Store) WalletAutoRecharge(ctx context.Context, tenant models.TenantID) (AutoRecharge, error) {
	var a AutoRecharge
	err := s.pool.QueryRow(ctx, `SELECT auto_recharge_threshold, auto_recharge_amount FROM wallets WHERE tenant_id = $1`, tenant).
		Scan(&a.Threshold, &a.Amount)
	if errors.Is(err, pgx.ErrNoRows) {
		// No wallet yet: WalletState tells an unknown tenant from an empty wallet.
		_, err = s.WalletState(ctx, tenant)
		return AutoRecharge{}, err
	}
	return a, err
}

// SetWalletAutoRecharge stores the tenant's auto-recharge setting, making
// its wallet if it has none: both set (threshold >= 0, amount positive) or
// both nil (off).
func (s *Store) SetWalletAutoRecharge(ctx context.Context, tenant models.TenantID, a AutoRecharge) (AutoRecharge, error) {
	switch {
	case (a.Threshold == nil) != (a.Amount == nil):
		return a, &models.ValidationError{Field: "auto_recharge", Reason: "threshold and amount are set together (or neither, to turn it off)"}
	case a.Threshold != nil && *a.Threshold < 0:
		return a, &models.ValidationError{Field: "auto_recharge.threshold", Reason: fmt.Sprintf("%d is negative", *a.Threshold)}
	case a.Amount != nil && *a.Amount <= 0:
		return a, &models.ValidationError{Field: "auto_recharge.amount", Reason: fmt.Sprintf("amount %d is not positive", *a.Amount)}
	case a.Amount != nil && *a.Amount > models.MaxPlanAmount:
		return a, &models.ValidationError{Field: "auto_recharge.amount", Reason: fmt.Sprintf("amount %d is above the limit of %d", *a.Amount, models.MaxPlanAmount)}
	}
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if _, _, err := ensureWallet(ctx, tx, tenant); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE wallets SET auto_recharge_threshold = $2, auto_recharge_amount = $3, updated_at = now()
			WHERE tenant_id = $1`, tenant, a.Threshold, a.Amount)
		return err
	})
	return a, err
}

// TopUpRef is an open top-up invoice.
type TopUpRef struct {
	InvoiceID string          `json:"invoice_id"`
	Total     int64           `json:"total"`
	Currency  models.Currency `json:"currency"`
	Status    string          `json:"status"`
	CreatedAt time.Time       `json:"created_at"`
}

// OpenTopUpRefs is OpenTopUps in the short form the wallet views show.
func (s *Store) OpenTopUpRefs(ctx context.Context, tenant models.TenantID) ([]TopUpRef, error) {
	open, err := s.OpenTopUps(ctx, tenant)
	if err != nil {
		return nil, err
	}
	refs := make([]TopUpRef, 0, len(open))
	for _, inv := range open {
		refs = append(refs, TopUpRef{InvoiceID: inv.ID, Total: inv.Total, Currency: inv.Currency, Status: inv.Status, CreatedAt: inv.CreatedAt.UTC()})
	}
	return refs, nil
}

// WalletPaysInvoices says whether the tenant's wallet pays its open
// invoices before the other rails (wallets.pay_invoices_from_wallet; on for
// a wallet not written yet, the column's default); an unknown tenant is a
// *models.ValidationError.
func (s *Store) WalletPaysInvoices(ctx context.Context, tenant models.TenantID) (bool, error) {
	on := true
	err := s.pool.QueryRow(ctx, `SELECT pay_invoices_from_wallet FROM wallets WHERE tenant_id = $1`, tenant).Scan(&on)
	if errors.Is(err, pgx.ErrNoRows) {
		// No wallet yet: WalletState tells an unknown tenant from an empty wallet.
		_, err = s.WalletState(ctx, tenant)
		return true, err
	}
	return on, err
}

// SetWalletPaysInvoices turns the wallet as the first rail on or off for the
// tenant, making its wallet if it has none. Off, PayFromWallet leaves the
// tenant's invoices to NWC, card and DM.
func (s *Store) SetWalletPaysInvoices(ctx context.Context, tenant models.TenantID, on bool) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		if _, _, err := ensureWallet(ctx, tx, tenant); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE wallets SET pay_invoices_from_wallet = $2, updated_at = now() WHERE tenant_id = $1`, tenant, on)
		return err
	})
}

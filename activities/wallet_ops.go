package activities

import (
	"context"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"

	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/store"
)

// WalletGrantInput is a grant asked for through the balance sync; At is the
// workflow's now.
type WalletGrantInput struct {
	TenantID models.TenantID       `json:"tenant_id"`
	Request  contract.GrantRequest `json:"request"`
	At       time.Time             `json:"at"`
}

// WalletGrant writes a grant (store.Grant: idempotent by key, refused with
// a ValidationError naming an amount not positive, another currency or an
// expiry in the past; NotFound for an unknown tenant).
func (a *Activities) WalletGrant(ctx context.Context, in WalletGrantInput) (contract.WalletWriteResult, error) {
	r := in.Request
	res, err := a.Store.Grant(ctx, store.WalletWrite{TenantID: in.TenantID, Key: r.Key, Amount: r.Amount, Currency: r.Currency,
		ExpiresAt: r.ExpiresAt, At: in.At})
	if err != nil {
		return contract.WalletWriteResult{}, notFoundTenant(err)
	}
	return contract.WalletWriteResult{Entry: ledgerEntry(res.Entry), Spendable: res.Wallet.Spendable, Withdrawable: res.Wallet.Withdrawable,
		Duplicate: res.Duplicate}, nil
}

// WalletTopUpInput is a top-up asked for through the balance sync.
type WalletTopUpInput struct {
	TenantID models.TenantID       `json:"tenant_id"`
	Request  contract.TopUpRequest `json:"request"`
	At       time.Time             `json:"at"`
}

// WalletTopUp makes the top-up invoice (store.CreateTopUp, idempotent by
// key) and starts its collection, invoice/<id>, reusing a running one; a
// retry after the start failed starts it for the same invoice.
func (a *Activities) WalletTopUp(ctx context.Context, in WalletTopUpInput) (contract.TopUpResult, error) {
	ic, ok := a.Notify.(InvoiceCollector)
	if !ok || ic == nil {
		return contract.TopUpResult{}, temporal.NewNonRetryableApplicationError("no invoice collector configured: top-ups cannot be collected", ErrValidation, nil)
	}
	r := in.Request
	inv, err := a.Store.CreateTopUp(ctx, store.TopUpParams{TenantID: in.TenantID, Key: r.Key, Amount: r.Amount, Currency: r.Currency, At: in.At})
	if err != nil {
		return contract.TopUpResult{}, notFoundTenant(err)
	}
	if _, err := ic.CollectInvoice(ctx, inv.ID); err != nil {
		return contract.TopUpResult{}, fmt.Errorf("start collecting top-up %s: %w", inv.ID, err)
	}
	return contract.TopUpResult{InvoiceID: inv.ID, Amount: inv.Total, Currency: inv.Currency, Status: inv.Status}, nil
}

// WalletAutoRechargeInput sets a wallet's auto-recharge.
type WalletAutoRechargeInput struct {
	TenantID models.TenantID       `json:"tenant_id"`
	Setting  contract.AutoRecharge `json:"setting"`
}

// WalletAutoRecharge stores the setting (store.SetWalletAutoRecharge:
// both set and positive, or both nil for off).
func (a *Activities) WalletAutoRecharge(ctx context.Context, in WalletAutoRechargeInput) (contract.AutoRecharge, error) {
	got, err := a.Store.SetWalletAutoRecharge(ctx, in.TenantID, store.AutoRecharge{Threshold: in.Setting.Threshold, Amount: in.Setting.Amount})
	if err != nil {
		return contract.AutoRecharge{}, notFoundTenant(err)
	}
	return contract.AutoRecharge{Threshold: got.Threshold, Amount: got.Amount}, nil
}

// WalletLedgerInput asks for a ledger page.
type WalletLedgerInput struct {
	TenantID models.TenantID        `json:"tenant_id"`
	Request  contract.LedgerRequest `json:"request"`
}

// WalletLedger reads a page of the ledger, newest first.
func (a *Activities) WalletLedger(ctx context.Context, in WalletLedgerInput) (contract.LedgerPage, error) {
	page, err := a.Store.LedgerPage(ctx, in.TenantID, in.Request.Before, in.Request.Limit)
	if err != nil {
		return contract.LedgerPage{}, notFoundTenant(err)
	}
	out := contract.LedgerPage{Entries: make([]contract.LedgerEntry, 0, len(page.Entries)), Next: page.Next}
	for _, e := range page.Entries {
		out.Entries = append(out.Entries, ledgerEntry(e))
	}
	return out, nil
}

func ledgerEntry(e store.WalletEntry) contract.LedgerEntry {
	return contract.LedgerEntry{Seq: e.Seq, Kind: string(e.Kind), Key: e.Key, Amount: e.Amount, Currency: e.Currency, ExpiresAt: e.ExpiresAt,
		FromGrants: e.FromGrants, InvoiceID: e.InvoiceID, At: e.At}
}

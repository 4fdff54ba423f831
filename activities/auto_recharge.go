package activities

import (
	"context"
	"fmt"

	"go.temporal.io/sdk/temporal"

	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/models"
)

// InvoiceCollector starts an invoice's InvoicePayment workflow (invoice/<id>,
// reusing a running one). Package billing implements it; StartAutoRecharge
// uses it when the Notifier given to Activities also implements it.
type InvoiceCollector interface {
	CollectInvoice(ctx context.Context, invoiceID string) (string, error)
}

// AutoRechargeState is a wallet's auto-recharge setting as a sync read it,
// with its open auto top-up, so the BalanceSync workflow decides whether
// to start one.
type AutoRechargeState struct {
	Threshold int64 `json:"threshold"`
	Amount    int64 `json:"amount"`
	// OpenInvoiceID is the open auto top-up ("" when none is open).
	OpenInvoiceID string `json:"open_invoice_id,omitempty"`
}

// Due says whether a top-up should start: spendable below the threshold
// and no auto top-up open.
func (s *AutoRechargeState) Due(spendable int64) bool {
	return s != nil && s.OpenInvoiceID == "" && spendable < s.Threshold
}

// StartAutoRechargeInput names the wallet to recharge.
type StartAutoRechargeInput struct {
	TenantID models.TenantID `json:"tenant_id"`
}

// StartAutoRechargeResult is the auto top-up started (or already open).
type StartAutoRechargeResult struct {
	InvoiceID string `json:"invoice_id,omitempty"`
	Amount    int64  `json:"amount,omitempty"`
	// Created: this call made the invoice.
	Created bool `json:"created,omitempty"`
	// Skipped says why none was started (off, or not below the threshold).
	Skipped string `json:"skipped,omitempty"`
}

// StartAutoRecharge makes the wallet's auto top-up (store.StartAutoRecharge:
// one transaction, at most one open per wallet, idempotent) and starts its
// collection. The top-up is collected by its own InvoicePayment (NWC, card,
// DM, dunning schedule), so a failed one backs off there, and while it is
// open no second one is made. A retry after the collection failed to start
// finds the same invoice and starts it.
func (a *Activities) StartAutoRecharge(ctx context.Context, in StartAutoRechargeInput) (StartAutoRechargeResult, error) {
	var out StartAutoRechargeResult
	ic, ok := a.Notify.(InvoiceCollector)
	if !ok || ic == nil {
		return out, temporal.NewNonRetryableApplicationError("no invoice collector configured: auto top-ups cannot be collected", ErrValidation, nil)
	}
	res, err := a.Store.StartAutoRecharge(ctx, in.TenantID)
	if err != nil {
		return out, classify(err)
	}
	if res.Invoice == nil {
		out.Skipped = res.Skipped
		return out, nil
	}
	out.InvoiceID, out.Amount, out.Created = res.Invoice.ID, res.Invoice.Total, res.Created
	if _, err := ic.CollectInvoice(ctx, res.Invoice.ID); err != nil {
		return out, fmt.Errorf("start collecting auto top-up %s: %w", res.Invoice.ID, err)
	}
	// Told after every start (not only when created): a retry after the
	// collection failed to start finds the invoice made, and the sync's fast
	// window is still wanted. The workflow calls this only when none is open.
	a.balanceEvent(ctx, in.TenantID, contract.BalanceTopUpRequested, res.Invoice.ID)
	return out, nil
}

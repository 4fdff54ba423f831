package activities

import (
	"context"
	"strings"
	"time"

	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/store"
)

// PaymentReport is money received for an invoice, as reported to its workflow.
type PaymentReport = contract.PaymentReport

// SettleInput is a payment of an invoice through a rail.
type SettleInput struct {
	InvoiceID string        `json:"invoice_id"`
	Payment   PaymentReport `json:"payment"`
	PaidAt    time.Time     `json:"paid_at"`
}

// SettleResult is the invoice after recording the payment. Outcome is
// applied (this payment paid it), duplicate (the same money was already
// recorded) or overpayment (other money for a paid or closed invoice, kept
// to refund).
type SettleResult struct {
	Invoice     InvoiceRef `json:"invoice"`
	Outcome     string     `json:"outcome"`
	AlreadyPaid bool       `json:"already_paid"`
	// TenantStatus is the tenant's standing: active means no grace window
	// is open, so there is none to tell.
	TenantStatus string `json:"tenant_status,omitempty"`
}

// Settle records a payment in one transaction: the first payment pays the
// invoice (entitlement, discount slot, event), the same money again changes
// nothing, and other money is kept as an overpayment.
func (a *Activities) Settle(ctx context.Context, in SettleInput) (SettleResult, error) {
	res, err := a.Store.Settle(ctx, store.PaymentReport{InvoiceID: in.InvoiceID, Rail: in.Payment.Rail, Reference: in.Payment.Reference,
		Amount: in.Payment.Amount, Currency: models.Currency(strings.ToLower(in.Payment.Currency)), AmountMsat: in.Payment.AmountMsat, ReceivedAt: in.PaidAt})
	if err != nil {
		return SettleResult{}, classify(err)
	}
	if res.Outcome != store.SettledDuplicate {
		a.nudge(ctx)
		a.balanceAfterSettle(ctx, res.Invoice, in.Payment.Rail)
	}
	return SettleResult{Invoice: invoiceRef(res.Invoice), Outcome: res.Outcome, AlreadyPaid: res.AlreadyPaid(), TenantStatus: res.TenantStatus}, nil
}

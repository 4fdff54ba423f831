package activities

import (
	"context"
	"strings"
	"time"

	"go.temporal.io/sdk/activity"

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
	// TellTenant (invoice-v6): once the invoice is paid, signal this
	// tenant's workflow (invoice-settled) from here, best effort;
	// SettleResult.TenantTold says whether it was delivered.
	TellTenant models.TenantID `json:"tell_tenant,omitempty"`
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
	// TenantTold: the tenant's workflow took the invoice-settled signal
	// (asked for by TellTenant), so the invoice need not send it.
	TenantTold bool `json:"tenant_told,omitempty"`
}

// TenantTeller signals a tenant's workflow that an invoice was settled; the
// Settle activity uses it when the Notifier also implements it.
type TenantTeller interface {
	TellInvoiceSettled(ctx context.Context, tenant models.TenantID, s contract.InvoiceSettled) error
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
	out := SettleResult{Invoice: invoiceRef(res.Invoice), Outcome: res.Outcome, AlreadyPaid: res.AlreadyPaid(), TenantStatus: res.TenantStatus}
	if in.TellTenant != "" && res.Invoice.Status == store.InvoicePaid {
		out.TenantTold = a.tellTenant(ctx, in.TellTenant, in.InvoiceID)
	}
	return out, nil
}

// tellTenant signals the tenant that the invoice is paid. Best effort: the
// payment is recorded already, and when the signal does not go through the
// invoice's workflow sends it itself, as before.
func (a *Activities) tellTenant(ctx context.Context, tenant models.TenantID, invoiceID string) bool {
	tt, ok := a.Notify.(TenantTeller)
	if !ok {
		return false
	}
	if err := tt.TellInvoiceSettled(ctx, tenant, contract.InvoiceSettled{InvoiceID: invoiceID, Status: store.InvoicePaid}); err != nil {
		if activity.IsActivity(ctx) {
			activity.GetLogger(ctx).Info("tenant not told of the settlement; the invoice's workflow tells it", "tenant", tenant.Short(), "error", err)
		}
		return false
	}
	return true
}

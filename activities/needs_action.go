package activities

import (
	"context"
	"time"

	"github.com/billflow/billflow/models"
)

// NeedsActionInput is a workflow step that failed for good: for an invoice
// (InvoiceID set) or for a tenant's billing (only TenantID set).
type NeedsActionInput struct {
	InvoiceID string          `json:"invoice_id,omitempty"`
	TenantID  models.TenantID `json:"tenant_id,omitempty"`
	Step      string          `json:"step"`
	Reason    string          `json:"reason"`
	At        time.Time       `json:"at"`
}

// RecordNeedsAction marks the invoice or tenant as needing action and writes
// the invoice.needs_action or tenant.needs_action event in the same
// transaction, so an operator or the application sees it.
func (a *Activities) RecordNeedsAction(ctx context.Context, in NeedsActionInput) error {
	reason := Summarize(in.Step + ": " + in.Reason)
	var err error
	if in.InvoiceID != "" {
		err = a.Store.MarkNeedsAction(ctx, in.InvoiceID, reason, in.At)
	} else {
		err = a.Store.MarkTenantNeedsAction(ctx, in.TenantID, in.Step, Summarize(in.Reason), in.At)
	}
	if err != nil {
		return classify(err)
	}
	a.nudge(ctx)
	return nil
}

// ClearTenantNeedsAction removes a tenant's needs-action mark once the step
// that failed has succeeded.
func (a *Activities) ClearTenantNeedsAction(ctx context.Context, in NeedsActionInput) error {
	return classify(a.Store.ClearTenantNeedsAction(ctx, in.TenantID))
}

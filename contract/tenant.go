package contract

import (
	"time"

	"github.com/billflow/billflow/models"
)

// TenantBillingInput is what a client starts a TenantBilling workflow with.
// The workflow's own input (workflows.TenantBillingInput) is a superset
// that also carries state across continue-as-new; these fields decode into
// it unchanged.
type TenantBillingInput struct {
	TenantID models.TenantID `json:"tenant_id"`
	// Currency and PeriodSeconds apply only when the workflow creates the
	// tenant; a stored tenant keeps its own.
	Currency      models.Currency `json:"currency,omitempty"`
	PeriodSeconds int64           `json:"period_seconds,omitempty"`
}

// RecordActivityRequest is the record-activity update's argument.
type RecordActivityRequest struct {
	ID         string              `json:"id"`
	Type       models.ActivityType `json:"type"`
	ResourceID string              `json:"resource_id"`
	PlanID     string              `json:"plan_id,omitempty"`
	// CreatedAt defaults to the time the workflow accepts the update.
	CreatedAt *time.Time `json:"created_at,omitempty"`
}

// ItemRef summarises a line item.
type ItemRef struct {
	ID          string          `json:"id"`
	Kind        models.ItemKind `json:"kind"`
	Amount      int64           `json:"amount"`
	PlanID      string          `json:"plan_id"`
	PeriodStart time.Time       `json:"period_start"`
	Description string          `json:"description"`
}

// RecordActivityResponse is the record-activity update's result.
type RecordActivityResponse struct {
	ActivityID string `json:"activity_id"`
	// Item is the line item produced, or nil when the activity bills nothing.
	Item *ItemRef `json:"item,omitempty"`
	// Duplicate is true when the identical activity had already been recorded.
	Duplicate   bool      `json:"duplicate"`
	Anchor      time.Time `json:"billing_anchor"`
	Outstanding int64     `json:"outstanding"`
}

// RenewNowResponse is the renew-now update's result.
type RenewNowResponse struct {
	// InvoiceID is the invoice made, or empty when nothing is owed.
	InvoiceID   string          `json:"invoice_id,omitempty"`
	Total       int64           `json:"total,omitempty"`
	Currency    models.Currency `json:"currency"`
	NothingOwed bool            `json:"nothing_owed"`
	// Renewed counts renewal items written; 0 when the period was already renewed.
	Renewed     int       `json:"renewed"`
	PeriodStart time.Time `json:"period_start,omitzero"`
	Outstanding int64     `json:"outstanding"`
}

// InvoiceRef summarises an invoice for workflow state and queries.
type InvoiceRef struct {
	ID        string          `json:"id"`
	TenantID  models.TenantID `json:"tenant_id"`
	Total     int64           `json:"total"`
	Currency  models.Currency `json:"currency"`
	Status    string          `json:"status"`
	CreatedAt time.Time       `json:"created_at"`
	PaidRail  string          `json:"paid_rail,omitempty"`
}

// TenantState is the tenant query's (and the describe update's) result.
type TenantState struct {
	TenantID       models.TenantID `json:"tenant_id"`
	Currency       models.Currency `json:"currency"`
	Status         string          `json:"status"`
	PeriodSeconds  int64           `json:"period_seconds"`
	Anchor         *time.Time      `json:"billing_anchor"`
	Period         *models.Period  `json:"current_period"`
	NextBoundary   *time.Time      `json:"next_boundary"`
	RenewedThrough *time.Time      `json:"renewed_through"`
	Outstanding    int64           `json:"outstanding"`
	OpenInvoices   []InvoiceRef    `json:"open_invoices"`
	ClaimPending   bool            `json:"claim_pending"`
	// NeedsAction is the billing step waiting for a retry, if any.
	NeedsAction *NeedsAction `json:"needs_action,omitempty"`
}

// InvoiceSettled is the invoice-settled signal's payload.
type InvoiceSettled struct {
	InvoiceID string `json:"invoice_id"`
	Status    string `json:"status"`
}

// TenantStatus is the tenant-status signal's payload.
type TenantStatus struct {
	Status string `json:"status"`
}

// Package contract is billflow's wire contract with applications: workflow
// IDs and type names, update, signal and query names, the request and
// response types they carry, and the error type codes. It is what package
// billing (the client applications import) and the workflows share, and it
// depends on nothing but the standard library and billflow's models, so an
// application importing billing pulls in the Temporal client and these
// types only (billing/deps_test.go checks it).
//
// The JSON shape of every type here is part of recorded workflow histories
// (workflows/testdata): change it only compatibly.
package contract

import (
	"time"

	"errors"

	"github.com/billflow/billflow/models"
)

// DefaultTaskQueue is the task queue billflow's worker polls.
const DefaultTaskQueue = "billflow"

// Workflow type names, as the worker registers them. Clients start
// workflows by these names so they need not import the workflow code.
const (
	WorkflowTenantBilling  = "TenantBilling"
	WorkflowInvoicePayment = "InvoicePayment"
	WorkflowGraceWindow    = "GraceWindow"
)

// Update, query and signal names of the tenant's TenantBilling workflow.
const (
	UpdateRecordActivity = "record-activity"
	UpdateRenewNow       = "renew-now"
	UpdateDescribe       = "describe"
	QueryTenant          = "tenant"
	SignalInvoiceSettled = "invoice-settled"
	// SignalTenantStatus tells the tenant workflow its standing changed.
	SignalTenantStatus = "tenant-status"
)

// Update, query and signal names of an invoice's InvoicePayment workflow.
const (
	UpdateMarkPaid = "mark-paid"
	SignalPaid     = "invoice-paid"
	QueryInvoice   = "invoice"
	// UpdateCloseInvoice voids an invoice or writes it off.
	UpdateCloseInvoice = "close-invoice"
	// UpdateLightningInvoice returns a payable BOLT11 for the payment page.
	UpdateLightningInvoice = "lightning-invoice"
	// SignalCardFailed reports a failed PaymentIntent of this invoice
	// (Stripe's payment_intent.payment_failed webhook).
	SignalCardFailed = "card-failed"
)

// SignalRetry asks TenantBilling, InvoicePayment, GraceWindow or
// LightningSettlements to re-run the step that needs action, once its cause
// is fixed (the workflow also retries at its next timer or boundary).
const SignalRetry = "retry"

// NeedsAction is a workflow step that failed for good and waits for someone
// to act: shown in queries and current details, and written to the store as
// needs_action with an invoice.needs_action or tenant.needs_action event.
type NeedsAction struct {
	Step   string    `json:"step"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// Signal and query names of a tenant's GraceWindow workflow.
const (
	// SignalCollectionFailed starts (signal-with-start) or feeds the grace window.
	SignalCollectionFailed = "collection-failed"
	QueryGrace             = "grace"
)

// TenantWorkflowID is the ID of a tenant's TenantBilling workflow.
func TenantWorkflowID(id models.TenantID) string { return "tenant/" + string(id) }

// InvoiceWorkflowID is the ID of an invoice's InvoicePayment workflow.
func InvoiceWorkflowID(invoiceID string) string { return "invoice/" + invoiceID }

// GraceWorkflowID is the ID of a tenant's GraceWindow workflow.
func GraceWorkflowID(id models.TenantID) string { return "grace/" + string(id) }

// Error types carried by non-retryable Temporal application errors.
const (
	// ErrValidation is bad input; retrying cannot fix it.
	ErrValidation = "ValidationError"
	// ErrNotFound is a missing tenant or invoice.
	ErrNotFound = "NotFound"
	// ErrInvoiceClosed is a payment for a voided or written-off invoice.
	ErrInvoiceClosed = "InvoiceClosed"
	// ErrNotEnough is a withdrawal (or promise) above what the wallet has;
	// its details are a models.NotEnoughError.
	ErrNotEnough = "NotEnough"
)

// ValidationError is input billflow rejected, naming the field and why.
type ValidationError = models.ValidationError

// ErrWorkflowGone is the answer for a workflow that has finished.
var ErrWorkflowGone = errors.New("workflow is not running")

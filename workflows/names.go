// Package workflows defines billflow's durable processes: their IDs, their
// signal, update and query names, and their search attributes. Workflows call
// activities only through method values of activities.Activities.
package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/models"
)

// DefaultTaskQueue is the task queue billflow's worker polls.
const DefaultTaskQueue = contract.DefaultTaskQueue

// Workflow, update, query and signal names: part of the public contract,
// defined in package contract.
const (
	UpdateRecordActivity = contract.UpdateRecordActivity
	UpdateRenewNow       = contract.UpdateRenewNow
	UpdateDescribe       = contract.UpdateDescribe
	QueryTenant          = contract.QueryTenant
	SignalInvoiceSettled = contract.SignalInvoiceSettled

	UpdateMarkPaid = contract.UpdateMarkPaid
	SignalPaid     = contract.SignalPaid
	QueryInvoice   = contract.QueryInvoice
)

// TenantWorkflowID is the ID of a tenant's TenantBilling workflow.
func TenantWorkflowID(id models.TenantID) string { return contract.TenantWorkflowID(id) }

// InvoiceWorkflowID is the ID of an invoice's InvoicePayment workflow.
func InvoiceWorkflowID(invoiceID string) string { return contract.InvoiceWorkflowID(invoiceID) }

// Search attributes, registered on the server at start (see scripts/lib.sh).
var (
	AttrTenant      = temporal.NewSearchAttributeKeyKeyword("BillingTenant")
	AttrInvoice     = temporal.NewSearchAttributeKeyKeyword("BillingInvoice")
	AttrStatus      = temporal.NewSearchAttributeKeyKeyword("BillingStatus")
	AttrPaymentRail = temporal.NewSearchAttributeKeyKeyword("PaymentRail")
	AttrAmountDue   = temporal.NewSearchAttributeKeyInt64("AmountDue")
	AttrPeriodStart = temporal.NewSearchAttributeKeyTime("PeriodStart")
)

// a is the nil receiver used to name activities by method value; the worker
// registers the real struct under the same names.
var a *activities.Activities

// Activity option presets. Every call has explicit timeouts and a retry
// policy; business failures are non-retryable by type.
var nonRetryable = []string{activities.ErrValidation, activities.ErrNotFound, activities.ErrInvoiceClosed}

// interactive is for activities a caller is waiting on (an update): bounded,
// so a database outage surfaces as an error instead of a hung request.
func interactive(ctx workflow.Context, summary string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout:    15 * time.Second,
		ScheduleToCloseTimeout: time.Minute,
		Summary:                summary,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: 500 * time.Millisecond, BackoffCoefficient: 2, MaximumInterval: 10 * time.Second,
			NonRetryableErrorTypes: nonRetryable,
		},
	})
}

// durable is for activities the process cannot go on without (renewal at a
// boundary, claims): retried until they succeed, backing off to 5 minutes.
func durable(ctx workflow.Context, summary string) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		Summary:             summary,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 5 * time.Minute,
			NonRetryableErrorTypes: nonRetryable,
		},
	})
}

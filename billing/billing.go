// Package billing is the Go API application code uses to drive billflow:
// typed functions over Temporal updates, signals and queries. Errors are typed
// so callers can tell bad input (*ValidationError) from not-found and from
// transient failures worth retrying (*UnavailableError).
package billing

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/workflows"
)

// ValidationError is input billflow rejected; retrying it will not help.
type ValidationError = models.ValidationError

// ErrTenantNotFound means no billing workflow exists for the tenant.
var ErrTenantNotFound = errors.New("tenant not found")

// ErrInvoiceNotFound means no payment workflow exists for the invoice.
var ErrInvoiceNotFound = errors.New("invoice not found")

// ErrInvoiceClosed means the invoice is no longer collecting (already
// settled, voided or written off): its workflow has completed.
var ErrInvoiceClosed = errors.New("invoice is no longer collecting")

// UnavailableError wraps a failure to reach billflow (Temporal or a worker
// down, a timeout); the same call may succeed later.
type UnavailableError struct{ Err error }

func (e *UnavailableError) Error() string { return "billflow unavailable: " + e.Err.Error() }
func (e *UnavailableError) Unwrap() error { return e.Err }

// Client wraps a Temporal client.
type Client struct {
	temporal  client.Client
	taskQueue string
}

// New returns a Client that starts workflows on taskQueue (empty: the default).
func New(c client.Client, taskQueue string) *Client {
	if taskQueue == "" {
		taskQueue = workflows.DefaultTaskQueue
	}
	return &Client{temporal: c, taskQueue: taskQueue}
}

// TenantState is a tenant's billing state as its workflow sees it.
type TenantState = workflows.TenantState

// CreateTenantRequest creates a tenant.
type CreateTenantRequest struct {
	// Tenant is a Nostr public key, hex or npub.
	Tenant string
	// Currency defaults to "usd".
	Currency string
	// Period is a fixed period length; zero means calendar months.
	Period time.Duration
}

// CreateTenant creates the tenant and starts its billing workflow, or returns
// the existing tenant's state (an existing tenant keeps its settings).
func (c *Client) CreateTenant(ctx context.Context, req CreateTenantRequest) (TenantState, error) {
	id, err := models.ParseTenantID(req.Tenant)
	if err != nil {
		return TenantState{}, err
	}
	cur := req.Currency
	if cur == "" {
		cur = "usd"
	}
	currency, err := models.ParseCurrency(cur)
	if err != nil {
		return TenantState{}, err
	}
	if req.Period < 0 || req.Period%time.Second != 0 {
		return TenantState{}, &ValidationError{Field: "period", Reason: fmt.Sprintf("%s is not a positive whole number of seconds", req.Period)}
	}
	in := workflows.TenantBillingInput{TenantID: id, Currency: currency, PeriodSeconds: int64(req.Period / time.Second)}
	var st TenantState
	err = c.updateWithStart(ctx, in, workflows.UpdateDescribe, &st)
	return st, err
}

// Activity is one billable event for RecordActivity.
type Activity struct {
	ID         string
	Type       models.ActivityType
	ResourceID string
	PlanID     string
	// CreatedAt defaults to now.
	CreatedAt time.Time
}

// RecordResult is what recording an activity produced.
type RecordResult = workflows.RecordActivityResponse

// RecordActivity records an activity for a tenant (creating the tenant with
// default settings if it does not exist yet) and returns the item it billed.
// Recording the identical activity again returns the first outcome.
func (c *Client) RecordActivity(ctx context.Context, tenant string, act Activity) (RecordResult, error) {
	id, err := models.ParseTenantID(tenant)
	if err != nil {
		return RecordResult{}, err
	}
	req := workflows.RecordActivityRequest{ID: act.ID, Type: act.Type, ResourceID: act.ResourceID, PlanID: act.PlanID}
	if !act.CreatedAt.IsZero() {
		at := act.CreatedAt.UTC()
		req.CreatedAt = &at
	}
	check := models.Activity{ID: act.ID, Type: act.Type, ResourceID: act.ResourceID, PlanID: act.PlanID, At: time.Now()}
	if err := check.Validate(); err != nil {
		return RecordResult{}, err
	}
	var res RecordResult
	err = c.updateWithStart(ctx, workflows.TenantBillingInput{TenantID: id, Currency: "usd"}, workflows.UpdateRecordActivity, &res, req)
	return res, err
}

// RenewResult is the outcome of a renewal.
type RenewResult = workflows.RenewNowResponse

// RenewNow runs the tenant's current-period renewal (never twice per period)
// and claims what is outstanding.
func (c *Client) RenewNow(ctx context.Context, tenant string) (RenewResult, error) {
	id, err := models.ParseTenantID(tenant)
	if err != nil {
		return RenewResult{}, err
	}
	var res RenewResult
	err = c.update(ctx, workflows.TenantWorkflowID(id), workflows.UpdateRenewNow, &res, ErrTenantNotFound)
	return res, err
}

// Tenant returns a tenant's billing state.
func (c *Client) Tenant(ctx context.Context, tenant string) (TenantState, error) {
	id, err := models.ParseTenantID(tenant)
	if err != nil {
		return TenantState{}, err
	}
	v, err := c.temporal.QueryWorkflow(ctx, workflows.TenantWorkflowID(id), "", workflows.QueryTenant)
	if err != nil {
		return TenantState{}, translate(err, ErrTenantNotFound)
	}
	var st TenantState
	if err := v.Get(&st); err != nil {
		return TenantState{}, err
	}
	return st, nil
}

// Payment is the outcome of reporting a payment.
type Payment = workflows.InvoicePaymentResult

// MarkInvoicePaid reports money received for an invoice through a rail
// ("manual", "stripe", "nwc", "lightning", "oob"). The first payment wins; a
// second report comes back with AlreadyPaid set.
func (c *Client) MarkInvoicePaid(ctx context.Context, invoiceID, rail, reference string) (Payment, error) {
	req := workflows.MarkPaidRequest{Rail: rail, Reference: reference}
	if err := req.Validate(); err != nil {
		return Payment{}, err
	}
	var res Payment
	err := c.update(ctx, workflows.InvoiceWorkflowID(invoiceID), workflows.UpdateMarkPaid, &res, ErrInvoiceNotFound, req)
	if errors.Is(err, ErrInvoiceClosed) {
		// The workflow has finished: report its outcome rather than fail.
		run := c.temporal.GetWorkflow(ctx, workflows.InvoiceWorkflowID(invoiceID), "")
		if getErr := run.Get(ctx, &res); getErr == nil {
			res.AlreadyPaid = true
			return res, nil
		}
	}
	return res, err
}

func (c *Client) updateWithStart(ctx context.Context, in workflows.TenantBillingInput, update string, out any, args ...any) error {
	start := c.temporal.NewWithStartWorkflowOperation(client.StartWorkflowOptions{
		ID:                       workflows.TenantWorkflowID(in.TenantID),
		TaskQueue:                c.taskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		StaticSummary:            fmt.Sprintf("Billing periods of tenant %s", in.TenantID.Short()),
		StaticDetails:            fmt.Sprintf("Tenant `%s`. Records activities into prorated items, renews at each boundary, claims invoices and starts their payment workflows.", in.TenantID),
	}, workflows.TenantBilling, in)
	handle, err := c.temporal.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
		StartWorkflowOperation: start,
		UpdateOptions: client.UpdateWorkflowOptions{
			UpdateName: update, Args: args, WaitForStage: client.WorkflowUpdateStageCompleted,
		},
	})
	if err != nil {
		return translate(err, ErrTenantNotFound)
	}
	return translate(handle.Get(ctx, out), ErrTenantNotFound)
}

func (c *Client) update(ctx context.Context, workflowID, update string, out any, notFound error, args ...any) error {
	handle, err := c.temporal.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID: workflowID, UpdateName: update, Args: args, WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err != nil {
		return translate(err, notFound)
	}
	return translate(handle.Get(ctx, out), notFound)
}

// translate maps Temporal errors to this package's typed errors.
func translate(err error, notFound error) error {
	if err == nil {
		return nil
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		switch appErr.Type() {
		case activities.ErrValidation:
			return &ValidationError{Reason: appErr.Message()}
		case activities.ErrNotFound:
			return fmt.Errorf("%w: %s", notFound, appErr.Message())
		case activities.ErrInvoiceClosed:
			return fmt.Errorf("%w: %s", ErrInvoiceClosed, appErr.Message())
		}
		return err
	}
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		if notFound == ErrInvoiceNotFound && isCompleted(err) {
			return ErrInvoiceClosed
		}
		return notFound
	}
	if errors.Is(err, context.Canceled) {
		return err
	}
	return &UnavailableError{Err: err}
}

// isCompleted recognises the server's answer to an update sent to a closed workflow.
func isCompleted(err error) bool {
	return strings.Contains(err.Error(), "already completed")
}

// Package billing is the Go API application code uses to drive billflow:
// typed functions over Temporal updates, signals and queries. Errors are typed
// so callers can tell bad input (*ValidationError) from not-found and from
// transient failures worth retrying (*UnavailableError).
//
// It depends only on the Temporal client and billflow's contract and models
// packages (deps_test.go holds it to that): no payment rail, database or
// Nostr library, so any module can import it without billflow's replace
// directives (examples/app builds that way).
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

	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/models"
)

// ValidationError is input billflow rejected; retrying it will not help.
type ValidationError = contract.ValidationError

// ErrTenantNotFound means the tenant was never created (no billing workflow
// exists for it). Errors wrapping it name the tenant.
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
		taskQueue = contract.DefaultTaskQueue
	}
	return &Client{temporal: c, taskQueue: taskQueue}
}

// TenantState is a tenant's billing state as its workflow sees it.
type TenantState = contract.TenantState

// DefaultCurrency is the currency of a tenant created without one.
const DefaultCurrency models.Currency = "usd"

// CreateTenantRequest creates a tenant.
type CreateTenantRequest struct {
	// Tenant is a Nostr public key, hex or npub.
	Tenant string
	// Currency defaults to DefaultCurrency.
	Currency string
	// Period is a fixed period length; zero means calendar months.
	Period time.Duration
}

// CreateTenant creates the tenant and starts its billing workflow. Creating
// an existing tenant with the same settings returns its state (idempotent);
// with a different currency or period it is a *ValidationError naming the
// difference, since a tenant's settings never change silently.
func (c *Client) CreateTenant(ctx context.Context, req CreateTenantRequest) (TenantState, error) {
	id, err := models.ParseTenantID(req.Tenant)
	if err != nil {
		return TenantState{}, err
	}
	cur := req.Currency
	if cur == "" {
		cur = string(DefaultCurrency)
	}
	currency, err := models.ParseCurrency(cur)
	if err != nil {
		return TenantState{}, err
	}
	if req.Period < 0 || req.Period%time.Second != 0 {
		return TenantState{}, &ValidationError{Field: "period", Reason: fmt.Sprintf("%s is not a positive whole number of seconds", req.Period)}
	}
	in := contract.TenantBillingInput{TenantID: id, Currency: currency, PeriodSeconds: int64(req.Period / time.Second)}
	var st TenantState
	if err := c.updateWithStart(ctx, in, contract.UpdateDescribe, &st); err != nil {
		return st, err
	}
	if err := SettingsConflict(st, in.Currency, in.PeriodSeconds); err != nil {
		return st, err
	}
	return st, nil
}

// SettingsConflict compares an existing tenant's settings with the ones
// requested for it and returns a *ValidationError naming each difference
// (current vs requested), or nil when they agree.
func SettingsConflict(st TenantState, currency models.Currency, periodSeconds int64) error {
	var diffs []string
	if st.Currency != currency {
		diffs = append(diffs, fmt.Sprintf("currency is %s, not %s", st.Currency, currency))
	}
	if st.PeriodSeconds != periodSeconds {
		diffs = append(diffs, fmt.Sprintf("period is %s, not %s", periodName(st.PeriodSeconds), periodName(periodSeconds)))
	}
	if len(diffs) == 0 {
		return nil
	}
	return &ValidationError{Field: "tenant", Reason: fmt.Sprintf("tenant %s already exists with other settings: %s as requested; a tenant's settings are not changed by creating it again",
		st.TenantID, strings.Join(diffs, "; "))}
}

func periodName(seconds int64) string {
	if seconds == 0 {
		return "calendar months"
	}
	return (time.Duration(seconds) * time.Second).String()
}

// Activity is one billable event for RecordActivity.
type Activity struct {
	ID         string
	Type       models.ActivityType
	ResourceID string
	PlanID     string
	// CreatedAt defaults to now.
	CreatedAt time.Time
	// CreateTenant creates the tenant, with DefaultCurrency and calendar
	// months, when it does not exist yet. Without it, an activity for a
	// tenant that was never created is ErrTenantNotFound, so a mistyped
	// tenant id is an error rather than a new tenant.
	CreateTenant bool
}

// RecordResult is what recording an activity produced.
type RecordResult = contract.RecordActivityResponse

// RecordActivity records an activity for an existing tenant (or creates it
// first when act.CreateTenant is set) and returns the item it billed.
// Recording the identical activity again returns the first outcome.
func (c *Client) RecordActivity(ctx context.Context, tenant string, act Activity) (RecordResult, error) {
	id, err := models.ParseTenantID(tenant)
	if err != nil {
		return RecordResult{}, err
	}
	req := contract.RecordActivityRequest{ID: act.ID, Type: act.Type, ResourceID: act.ResourceID, PlanID: act.PlanID}
	if !act.CreatedAt.IsZero() {
		at := act.CreatedAt.UTC()
		req.CreatedAt = &at
	}
	check := models.Activity{ID: act.ID, Type: act.Type, ResourceID: act.ResourceID, PlanID: act.PlanID, At: time.Now()}
	if err := check.Validate(); err != nil {
		return RecordResult{}, err
	}
	var res RecordResult
	if act.CreateTenant {
		err = c.updateWithStart(ctx, contract.TenantBillingInput{TenantID: id, Currency: DefaultCurrency}, contract.UpdateRecordActivity, &res, req)
	} else {
		err = c.update(ctx, contract.TenantWorkflowID(id), contract.UpdateRecordActivity, &res, tenantNotFound(id), req)
	}
	return res, err
}

// tenantNotFound is ErrTenantNotFound naming the tenant.
func tenantNotFound(id models.TenantID) error {
	return fmt.Errorf("%w: %s", ErrTenantNotFound, id)
}

// RenewResult is the outcome of a renewal.
type RenewResult = contract.RenewNowResponse

// RenewNow runs the tenant's current-period renewal (never twice per period)
// and claims what is outstanding.
func (c *Client) RenewNow(ctx context.Context, tenant string) (RenewResult, error) {
	id, err := models.ParseTenantID(tenant)
	if err != nil {
		return RenewResult{}, err
	}
	var res RenewResult
	err = c.update(ctx, contract.TenantWorkflowID(id), contract.UpdateRenewNow, &res, tenantNotFound(id))
	return res, err
}

// Tenant returns a tenant's billing state.
func (c *Client) Tenant(ctx context.Context, tenant string) (TenantState, error) {
	id, err := models.ParseTenantID(tenant)
	if err != nil {
		return TenantState{}, err
	}
	v, err := c.temporal.QueryWorkflow(ctx, contract.TenantWorkflowID(id), "", contract.QueryTenant)
	if err != nil {
		return TenantState{}, translate(err, tenantNotFound(id))
	}
	var st TenantState
	if err := v.Get(&st); err != nil {
		return TenantState{}, err
	}
	return st, nil
}

func (c *Client) updateWithStart(ctx context.Context, in contract.TenantBillingInput, update string, out any, args ...any) error {
	start := c.temporal.NewWithStartWorkflowOperation(client.StartWorkflowOptions{
		ID:                       contract.TenantWorkflowID(in.TenantID),
		TaskQueue:                c.taskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		StaticSummary:            fmt.Sprintf("Billing periods of tenant %s", in.TenantID.Short()),
		StaticDetails:            fmt.Sprintf("Tenant `%s`. Records activities into prorated items, renews at each boundary, claims invoices and starts their payment workflows.", in.TenantID),
	}, contract.WorkflowTenantBilling, in)
	handle, err := c.temporal.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{
		StartWorkflowOperation: start,
		UpdateOptions: client.UpdateWorkflowOptions{
			UpdateName: update, Args: args, WaitForStage: client.WorkflowUpdateStageCompleted,
		},
	})
	if err != nil {
		return translate(err, tenantNotFound(in.TenantID))
	}
	return translate(handle.Get(ctx, out), tenantNotFound(in.TenantID))
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
		case contract.ErrValidation:
			var ve ValidationError
			if appErr.HasDetails() && appErr.Details(&ve) == nil && ve.Reason != "" {
				return &ve
			}
			return &ValidationError{Reason: appErr.Message()}
		case contract.ErrNotFound:
			return fmt.Errorf("%w (%s)", notFound, appErr.Message())
		case contract.ErrInvoiceClosed:
			return fmt.Errorf("%w: %s", ErrInvoiceClosed, appErr.Message())
		}
		return err
	}
	var nf *serviceerror.NotFound
	if errors.As(err, &nf) {
		if errors.Is(notFound, ErrInvoiceNotFound) && isCompleted(err) {
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

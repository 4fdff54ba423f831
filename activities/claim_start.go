package activities

import (
	"context"
	"errors"
	"fmt"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"

	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/store"
)

// InvoicePaymentStart is the input ClaimAndStart starts an invoice's
// InvoicePayment workflow with: the JSON of the workflow's own input
// (workflows.InvoicePaymentInput), which a test in package workflows
// holds equal field for field.
type InvoicePaymentStart struct {
	InvoiceID string          `json:"invoice_id"`
	TenantID  models.TenantID `json:"tenant_id"`
	Total     int64           `json:"total"`
	Currency  models.Currency `json:"currency"`
	// Version is the invoice's code path (the workflow's consolidated
	// change number), so the run reads no change id.
	Version int `json:"version,omitempty"`
	// Begun is BeginCollection's answer (asked for the rails and the
	// first wallet turn), when the claim ran it: the run takes it instead
	// of running BeginCollection itself.
	Begun *BeginCollectionResult `json:"begun,omitempty"`
}

// ClaimAndStartInput is one claim of a tenant's workflow (tenant-v4): the
// renewals up to RenewUpTo first when set, then the claim, then the start
// of the invoice's workflow when the claim made one.
type ClaimAndStartInput struct {
	Claim     ClaimInput `json:"claim"`
	RenewUpTo *time.Time `json:"renew_up_to,omitempty"`
	// TaskQueue is where the invoice's workflow runs (the tenant's own);
	// PaymentVersion is the path it is given.
	TaskQueue      string `json:"task_queue"`
	PaymentVersion int    `json:"payment_version"`
	// Begin asks for the invoice's BeginCollection to be run before its
	// workflow starts, and given to it (InvoicePaymentStart.Begun).
	Begin bool `json:"begin,omitempty"`
	// Reload, when set, reads the tenant again after the claim (what
	// LoadTenant returns), for the next run to start from.
	Reload *LoadTenantInput `json:"reload,omitempty"`
}

// ClaimAndStartResult is what ClaimAndStart did.
type ClaimAndStartResult struct {
	// Renew is the renewal's result when one was asked for.
	Renew *RenewResult `json:"renew,omitempty"`
	Claim ClaimResult  `json:"claim"`
	// PaymentStarted: the invoice's workflow was started here, or found
	// running or finished (a retry). False when this worker has no client
	// to start it with: the workflow then starts it as a child.
	PaymentStarted bool `json:"payment_started,omitempty"`
	// Snapshot is the tenant after the claim, when Reload asked for it and
	// it could be read (best effort: without it the next run loads).
	Snapshot *TenantSnapshot `json:"snapshot,omitempty"`
}

// Search attributes an invoice's workflow starts with (the names in
// workflows/names.go; a test holds them equal).
var (
	saInvoice   = temporal.NewSearchAttributeKeyKeyword("BillingInvoice")
	saTenant    = temporal.NewSearchAttributeKeyKeyword("BillingTenant")
	saStatus    = temporal.NewSearchAttributeKeyKeyword("BillingStatus")
	saAmountDue = temporal.NewSearchAttributeKeyInt64("AmountDue")
)

// InvoiceStartSearchAttributes names the search attributes ClaimAndStart
// sets on an invoice's workflow, for the test that holds them equal to the
// workflows' own.
func InvoiceStartSearchAttributes() []string {
	return []string{saInvoice.GetName(), saTenant.GetName(), saStatus.GetName(), saAmountDue.GetName()}
}

// ClaimAndStart runs a tenant's renewal and claim and starts the invoice's
// payment workflow, in one call (a local activity: one marker in the
// tenant's history instead of two markers and a child workflow's three
// events and workflow task). Every step is safe to repeat: the renewal is a
// no-op once done, the claim key finds the invoice it made, and the
// workflow id invoice/<id> with a conflict policy that uses the running
// workflow (and a reuse policy that refuses a second run once it finished)
// makes a retried start find the first one.
func (a *Activities) ClaimAndStart(ctx context.Context, in ClaimAndStartInput) (ClaimAndStartResult, error) {
	var out ClaimAndStartResult
	if in.RenewUpTo != nil {
		rr, err := a.Renew(ctx, RenewInput{TenantID: in.Claim.TenantID, UpTo: *in.RenewUpTo})
		if err != nil {
			return out, err
		}
		out.Renew = &rr
	}
	cr, err := a.Claim(ctx, in.Claim)
	if err != nil {
		return out, err
	}
	out.Claim = cr
	if cr.Invoice != nil {
		begun := a.beginForStart(ctx, in, cr.Invoice.ID)
		if out.PaymentStarted, err = a.startPayment(ctx, in, *cr.Invoice, begun); err != nil {
			return out, err
		}
	}
	if in.Reload != nil {
		snap, err := a.LoadTenant(ctx, *in.Reload)
		if err == nil {
			out.Snapshot = &snap
		} else if activity.IsActivity(ctx) {
			activity.GetLogger(ctx).Info("tenant not reloaded after the claim; the next run loads it", "error", err)
		}
	}
	return out, nil
}

// beginForStart runs the invoice's BeginCollection (with the rails and the
// first wallet turn, as invoice-v7 asks for it) before its workflow is
// started, so the run starts collecting without a step of its own. Only
// for an invoice still open: one already being collected belongs to a
// workflow an earlier try started (or will start, and then runs
// BeginCollection itself). Best effort: nil leaves it to the run.
func (a *Activities) beginForStart(ctx context.Context, in ClaimAndStartInput, invoiceID string) *BeginCollectionResult {
	if !in.Begin || in.TaskQueue == "" || !activity.IsActivity(ctx) || activity.GetClient(ctx) == nil {
		return nil
	}
	inv, _, err := a.Store.GetInvoice(ctx, invoiceID)
	if err != nil || inv.Status != store.InvoiceOpen {
		return nil
	}
	res, err := a.BeginCollection(ctx, InvoiceInput{InvoiceID: invoiceID, Rails: true, Wallet: true})
	if err != nil {
		activity.GetLogger(ctx).Info("collection not begun by the claim; the invoice's run begins it", "invoice", invoiceID, "error", err)
		return nil
	}
	return &res
}

// startPayment starts the invoice's InvoicePayment workflow with the
// worker's client. It reports false (not started, nothing wrong) when there
// is no client or the server refuses the request as such, so the tenant's
// workflow starts it as a child instead; an unavailable server is an error,
// retried with the whole step.
func (a *Activities) startPayment(ctx context.Context, in ClaimAndStartInput, inv InvoiceRef, begun *BeginCollectionResult) (bool, error) {
	if in.TaskQueue == "" || !activity.IsActivity(ctx) {
		return false, nil
	}
	c := activity.GetClient(ctx)
	if c == nil {
		return false, nil
	}
	opts := client.StartWorkflowOptions{
		ID:                       contract.InvoiceWorkflowID(inv.ID),
		TaskQueue:                in.TaskQueue,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		StaticSummary:            fmt.Sprintf("Invoice %s for tenant %s", models.FormatAmount(inv.Total, inv.Currency), in.Claim.TenantID.Short()),
		// What the invoice publishes once BeginCollection (its first step)
		// marked it collecting, all of it due: it upserts none then.
		TypedSearchAttributes: temporal.NewSearchAttributes(saInvoice.ValueSet(inv.ID), saTenant.ValueSet(string(in.Claim.TenantID)),
			saStatus.ValueSet("collecting"), saAmountDue.ValueSet(inv.Total)),
		// The server hands the invoice's first workflow task back in its
		// answer to this worker (same client, same task queue), instead of
		// queueing it in matching behind a storm's other tasks. Without a
		// free slot here, or on a server that has it off, the task is
		// queued as usual.
		EnableEagerStart: true,
	}
	_, err := c.ExecuteWorkflow(ctx, opts, contract.WorkflowInvoicePayment, InvoicePaymentStart{
		InvoiceID: inv.ID, TenantID: in.Claim.TenantID, Total: inv.Total, Currency: inv.Currency, Version: in.PaymentVersion, Begun: begun})
	var already *serviceerror.WorkflowExecutionAlreadyStarted
	var invalid *serviceerror.InvalidArgument
	var denied *serviceerror.PermissionDenied
	switch {
	case err == nil, errors.As(err, &already):
		return true, nil
	case errors.As(err, &invalid), errors.As(err, &denied):
		// Retrying cannot fix it; the child start reports what is wrong.
		activity.GetLogger(ctx).Warn("invoice's workflow not started by the claim; the tenant starts it", "invoice", inv.ID, "error", err)
		return false, nil
	}
	return false, fmt.Errorf("start payment of invoice %s: %w", inv.ID, err)
}

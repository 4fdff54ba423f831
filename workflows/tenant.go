package workflows

import (
	"errors"
	"fmt"
	"strings"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/models"
)

// tenantRunEvents is the history length past which a tenant's run
// (tenant-v5) continues as new at its next boundary instead of billing the
// next period in the same history: about 90 periods on the happy path, and
// a replay after a worker restart stays a few milliseconds.
const tenantRunEvents = 1000

// tenantRunMaxAge is the age past which a tenant's run (tenant-v5)
// continues as new at its next boundary however short its history: a new
// run re-encrypts the tenant's state with the current payload key, so a
// retired key is needed only for runs younger than this (and histories
// within the namespace's retention). Monthly tenants continue about every
// fourth period.
const tenantRunMaxAge = 90 * 24 * time.Hour

// ClaimDebounce is how long the tenant workflow waits after a billable
// activity before claiming, so that a burst of activity makes one invoice.
const ClaimDebounce = 30 * time.Second

// MaxFutureSkew bounds how far in the future an activity's instant may lie.
const MaxFutureSkew = 5 * time.Minute

// TenantBillingInput starts or continues a tenant's billing.
type TenantBillingInput struct {
	TenantID models.TenantID `json:"tenant_id"`
	// Currency and PeriodSeconds apply only when the workflow creates the
	// tenant; a stored tenant keeps its own.
	Currency      models.Currency `json:"currency,omitempty"`
	PeriodSeconds int64           `json:"period_seconds,omitempty"`
	// PendingClaim carries an unfinished claim debounce across continue-as-new.
	PendingClaim bool `json:"pending_claim,omitempty"`
	// NeedsAction carries a failed step (already recorded) across
	// continue-as-new; the next run retries it first.
	NeedsAction *NeedsAction `json:"needs_action,omitempty"`
	// ContinueAfter, when positive, continues as new after that many waits
	// in one run instead of when Temporal suggests it (for tests).
	ContinueAfter int `json:"continue_after,omitempty"`
	// Version is the consolidated change id's number whose path this run
	// takes without reading it (pathTenantV3 or pathTenantV4, set by
	// continue-as-new); 0 reads the ids.
	Version int `json:"version,omitempty"`
	// Snapshot (tenant-v4) is the tenant as the previous run's boundary
	// claim reloaded it, with the signals that run took since: this run
	// starts from it instead of running LoadTenant.
	Snapshot *activities.TenantSnapshot `json:"snapshot,omitempty"`
}

// RecordActivityRequest is the record-activity update's argument.
type RecordActivityRequest = contract.RecordActivityRequest

// requestedActivity is the activity a request records, at now when it names no instant.
func requestedActivity(r RecordActivityRequest, now time.Time) models.Activity {
	at := now
	if r.CreatedAt != nil {
		at = *r.CreatedAt
	}
	return models.Activity{ID: r.ID, Type: r.Type, ResourceID: r.ResourceID, PlanID: r.PlanID, At: models.BillingInstant(at)}
}

// RecordActivityResponse is the record-activity update's result.
type RecordActivityResponse = contract.RecordActivityResponse

// RenewNowResponse is the renew-now update's result.
type RenewNowResponse = contract.RenewNowResponse

// TenantState is the tenant query's result.
type TenantState = contract.TenantState

// InvoiceSettled is the invoice-settled signal's payload.
type InvoiceSettled = contract.InvoiceSettled

type tenantRun struct {
	in       TenantBillingInput
	snap     activities.TenantSnapshot
	loaded   bool
	period   *models.Period
	mu       workflow.Mutex
	claimReq workflow.Channel
	settled  workflow.ReceiveChannel
	status   workflow.ReceiveChannel
	debounce workflow.Future
	claims   int
	// needsAction: this run parks failed steps instead of failing (a
	// GetVersion patch); na is the step waiting for a retry.
	needsAction bool
	// local: this run takes the tenant-v2 path (store steps as local
	// activities, only changed search attributes upserted).
	local bool
	// v3: the tenant-v3 path (tenant-v2's, with the path carried across
	// continue-as-new and given to the invoices it starts).
	v3 bool
	// v4: the tenant-v4 path (tenant-v3's, with renewal, claim and the
	// invoice's start in one local activity, and the tenant reloaded at
	// the boundary for the next run); fresh: r.snap is that reload.
	v4, fresh bool
	// v5: the tenant-v5 path (tenant-v4's, with the run going on to the
	// next period instead of continuing as new at each boundary).
	v5     bool
	na     *NeedsAction
	retry  workflow.ReceiveChannel
	budget runBudget
}

// TenantBilling runs a tenant's billing periods: it records activities into
// items, sleeps until each boundary, renews and claims, and continues as new
// every period (tenant-v5: when its history is long or its run old). ID:
// tenant/<tenant-id>.
func TenantBilling(ctx workflow.Context, in TenantBillingInput) error {
	r := &tenantRun{
		in:       in,
		mu:       workflow.NewMutex(ctx),
		claimReq: workflow.NewBufferedChannel(ctx, 1),
		settled: workflow.GetSignalChannelWithOptions(ctx, SignalInvoiceSettled, workflow.SignalChannelOptions{
			Description: "An invoice of this tenant was settled; removes it from the open invoices.",
		}),
		status: workflow.GetSignalChannelWithOptions(ctx, SignalTenantStatus, workflow.SignalChannelOptions{
			Description: "The tenant's standing changed (active, grace, suspended).",
		}),
	}
	// The path the input carries, else tenant-v4, tenant-v3 then
	// tenant-v2 are read first: a run that has one takes every earlier
	// change without reading their ids. A run carrying tenant-v3 reads
	// tenant-v4 (recorded before it existed, it finds no marker and stays
	// on tenant-v3).
	if r.v5 = in.Version >= pathTenantV5 || patched(ctx, changeTenantV5); r.v5 {
		r.v4, r.v3, r.local, r.needsAction = true, true, true, true
	} else if r.v4 = in.Version >= pathTenantV4 || patched(ctx, changeTenantV4); r.v4 {
		r.v3, r.local, r.needsAction = true, true, true
	} else if r.v3 = in.Version >= pathTenantV3 || patched(ctx, changeTenantV3); r.v3 {
		r.local, r.needsAction = true, true
	} else if r.local = patched(ctx, changeTenantV2); r.local {
		r.needsAction = true
	} else {
		r.needsAction = patched(ctx, changeTenantNeedsAction)
	}
	r.na = in.NeedsAction
	r.budget = runBudget{max: in.ContinueAfter}
	r.retry = workflow.GetSignalChannelWithOptions(ctx, SignalRetry, workflow.SignalChannelOptions{
		Description: "Re-run the billing step that needs action (renewal and claim), after its cause was fixed.",
	})
	if err := r.registerHandlers(ctx); err != nil {
		return err
	}
	if r.v4 && in.Snapshot != nil {
		// The previous run reloaded the tenant at the boundary, moments ago.
		r.snap = *in.Snapshot
	} else if err := r.load(ctx); err != nil {
		return err
	}
	r.loaded = true
	r.publish(ctx)

	if r.snap.Anchor == nil {
		// Nothing to bill until the first activity sets the anchor.
		if r.needsAction && r.budget.exhausted(ctx) {
			return r.continueAsNew(ctx)
		}
		r.budget.spend()
		if err := workflow.Await(ctx, func() bool { return r.snap.Anchor != nil }); err != nil {
			return err
		}
	}
	pendingClaim := in.PendingClaim
	for {
		cont, err := r.billPeriod(ctx, pendingClaim)
		if err != nil || !cont {
			return err
		}
		pendingClaim = false
	}
}

// billPeriod waits for the current period's boundary and renews and claims
// there. It reports true when the run goes on to the next period in this
// history (tenant-v5, while the history is short), else it has returned the
// continue-as-new error (or a failure).
func (r *tenantRun) billPeriod(ctx workflow.Context, pendingClaim bool) (bool, error) {
	sched := r.schedule()
	period := sched.PeriodAt(workflow.Now(ctx))
	// Catch up a boundary that passed while no run was waiting for it (a
	// worker outage longer than a period, or a tenant anchored in the past).
	if period.Index >= 1 && (r.snap.RenewedThrough == nil || r.snap.RenewedThrough.Before(period.Start)) {
		if _, err := r.renewAndClaim(ctx, period, false); err != nil {
			if !r.needsAction {
				return false, err
			}
			r.parked(ctx, "renew and claim through "+period.Start.Format(time.RFC3339), err)
		} else {
			r.resolved(ctx)
		}
	} else if r.needsAction && r.na != nil {
		// A step failed in the previous run: retry it now.
		r.retryStep(ctx, period)
	}
	r.period = &period
	r.publish(ctx)
	if pendingClaim {
		r.startDebounce(ctx)
	}

	timerCtx, cancelTimer := workflow.WithCancel(ctx)
	boundary := workflow.NewTimerWithOptions(timerCtx, period.End.Sub(workflow.Now(ctx)), workflow.TimerOptions{
		Summary: fmt.Sprintf("next billing boundary %s (period #%d ends)", period.End.Format(time.RFC3339), period.Index),
	})
	reachedBoundary := false
	for !reachedBoundary {
		sel := workflow.NewSelector(ctx)
		sel.AddFuture(boundary, func(f workflow.Future) { reachedBoundary = true })
		sel.AddReceive(r.claimReq, func(c workflow.ReceiveChannel, _ bool) {
			c.Receive(ctx, nil)
			r.startDebounce(ctx)
		})
		sel.AddReceive(r.settled, func(c workflow.ReceiveChannel, _ bool) {
			var s InvoiceSettled
			c.Receive(ctx, &s)
			r.invoiceSettled(s)
			r.publish(ctx)
		})
		sel.AddReceive(r.status, func(c workflow.ReceiveChannel, _ bool) {
			var st TenantStatus
			c.Receive(ctx, &st)
			r.snap.Status = st.Status
			r.publish(ctx)
		})
		if r.needsAction {
			sel.AddReceive(r.retry, func(c workflow.ReceiveChannel, _ bool) {
				drain(c, &struct{}{})
				r.retryStep(ctx, *r.period)
			})
		}
		if r.debounce != nil {
			sel.AddFuture(r.debounce, func(workflow.Future) {
				r.debounce = nil
				if err := r.claimLocked(ctx, *r.period); err != nil {
					workflow.GetLogger(ctx).Error("claim after activity failed", "error", err)
					if r.needsAction {
						r.parked(ctx, "claim after activity", err)
					}
				}
			})
		}
		r.budget.spend()
		sel.Select(ctx)
		// A busy period may outgrow one history: continue early, keeping the
		// same boundary (the next run recomputes it from the anchor).
		if r.needsAction {
			if !reachedBoundary && r.budget.exhausted(ctx) {
				cancelTimer()
				break
			}
		} else if !reachedBoundary && r.debounce == nil && workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			cancelTimer()
			break
		}
	}
	if reachedBoundary {
		cancelTimer() // fired: no command; frees the context
		next := sched.Period(period.Index + 1)
		// tenant-v4: the claim reloads the tenant for the next run.
		if _, err := r.renewAndClaim(ctx, next, r.v4); err != nil {
			if !r.needsAction {
				return false, err
			}
			// The next run's catch-up retries it; so do a retry signal and
			// the boundary after.
			r.parked(ctx, "renew and claim through "+next.Start.Format(time.RFC3339), err)
		} else {
			r.resolved(ctx)
		}
		// tenant-v5: the next period runs in this history while it is
		// short; a new run per period cost a workflow execution, its first
		// workflow task on the shared queue, and five events.
		info := workflow.GetInfo(ctx)
		if r.v5 && !r.budget.exhausted(ctx) && info.GetCurrentHistoryLength() < tenantRunEvents &&
			workflow.Now(ctx).Sub(info.WorkflowStartTime) < tenantRunMaxAge {
			return true, nil
		}
	}
	return false, r.continueAsNew(ctx)
}

// load reads (or creates) the tenant. When that fails for good the tenant
// needs action and the run waits for a retry signal.
func (r *tenantRun) load(ctx workflow.Context) error {
	for {
		err := step(durable(ctx, "load tenant"), r.local, a.LoadTenant, activities.LoadTenantInput{
			TenantID: r.in.TenantID, Currency: r.in.Currency, PeriodSeconds: r.in.PeriodSeconds,
		}).Get(ctx, &r.snap)
		if err == nil || !r.needsAction {
			return err
		}
		r.parked(ctx, "load tenant", err)
		if err := workflow.Await(ctx, func() bool { return r.retry.Len() > 0 }); err != nil {
			return err
		}
		drain(r.retry, &struct{}{})
	}
}

// retryStep re-runs the renewal and claim of the current period (a no-op
// renewal when it was done) after a failure.
func (r *tenantRun) retryStep(ctx workflow.Context, period models.Period) {
	if _, err := r.renewAndClaim(ctx, period, false); err != nil {
		r.parked(ctx, "renew and claim through "+period.Start.Format(time.RFC3339), err)
		return
	}
	r.resolved(ctx)
}

// parked records a billing step that failed for good: in the details and,
// once per step, in the store (tenant.needs_action). The workflow goes on.
func (r *tenantRun) parked(ctx workflow.Context, step string, err error) {
	reason := activities.Summarize(errorMessage(err))
	first := r.na == nil || r.na.Step != step
	r.na = &NeedsAction{Step: step, Reason: reason, At: workflow.Now(ctx)}
	workflow.GetLogger(ctx).Warn("tenant billing needs action", "step", step, "reason", reason)
	r.publish(ctx)
	if !first {
		return
	}
	if rerr := workflow.ExecuteActivity(recordOptions(ctx, "record: needs action ("+step+")"), a.RecordNeedsAction, activities.NeedsActionInput{
		TenantID: r.in.TenantID, Step: step, Reason: reason, At: workflow.Now(ctx)}).Get(ctx, nil); rerr != nil {
		workflow.GetLogger(ctx).Error("needs action not recorded in the store", "step", step, "error", rerr)
	}
}

// resolved clears a needs-action mark once the step succeeded.
func (r *tenantRun) resolved(ctx workflow.Context) {
	if r.na == nil {
		return
	}
	r.na = nil
	r.publish(ctx)
	if err := workflow.ExecuteActivity(recordOptions(ctx, "clear: needs action"), a.ClearTenantNeedsAction,
		activities.NeedsActionInput{TenantID: r.in.TenantID}).Get(ctx, nil); err != nil {
		workflow.GetLogger(ctx).Warn("needs action not cleared in the store", "error", err)
	}
}

func (r *tenantRun) schedule() models.Schedule {
	return models.Schedule{Anchor: r.snap.Anchor.UTC(), Fixed: time.Duration(r.snap.PeriodSeconds) * time.Second}
}

func (r *tenantRun) startDebounce(ctx workflow.Context) {
	if r.debounce == nil {
		r.debounce = workflow.NewTimerWithOptions(ctx, ClaimDebounce, workflow.TimerOptions{
			Summary: "claim outstanding items after recent activity (debounce)",
		})
	}
}

// continueAsNew drains signals and waits for in-flight updates so nothing
// accepted by this run is lost, then starts the next run.
func (r *tenantRun) continueAsNew(ctx workflow.Context) error {
	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
		return err
	}
	pending := r.debounce != nil
	for r.claimReq.ReceiveAsync(nil) {
		pending = true
	}
	for {
		var s InvoiceSettled
		if !r.settled.ReceiveAsync(&s) {
			break
		}
		r.invoiceSettled(s)
	}
	// The next run reloads the status from the store, so these only need
	// to be taken off the channel; a snapshot carried to it takes them.
	var st TenantStatus
	for r.status.ReceiveAsync(&st) {
		if r.fresh {
			r.snap.Status = st.Status
		}
	}
	next := TenantBillingInput{
		TenantID: r.snap.TenantID, Currency: r.snap.Currency, PeriodSeconds: r.snap.PeriodSeconds, PendingClaim: pending}
	if r.v4 {
		next.Version = pathTenantV4
		if r.v5 {
			next.Version = pathTenantV5
		}
		if r.fresh {
			snap := r.snap
			next.Snapshot = &snap
		}
	} else if r.v3 {
		next.Version = pathTenantV3
	}
	if r.needsAction {
		// A retry requested as the run ends is served by the next run,
		// which retries a pending step first thing.
		drain(r.retry, &struct{}{})
		next.NeedsAction, next.ContinueAfter = r.na, r.in.ContinueAfter
		if next.TenantID == "" {
			next.TenantID = r.in.TenantID
		}
	}
	return workflow.NewContinueAsNewError(ctx, TenantBilling, next)
}

func (r *tenantRun) registerHandlers(ctx workflow.Context) error {
	if err := workflow.SetQueryHandlerWithOptions(ctx, QueryTenant, func() (TenantState, error) { return r.state(), nil },
		workflow.QueryHandlerOptions{Description: "Billing state: anchor, current period, next boundary, outstanding total, open invoices."}); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateDescribe,
		func(ctx workflow.Context) (TenantState, error) {
			if err := workflow.Await(ctx, func() bool { return r.loaded }); err != nil {
				return TenantState{}, err
			}
			return r.state(), nil
		}, workflow.UpdateHandlerOptions{Description: "Returns the billing state once the tenant is loaded (used to create tenants)."}); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateRecordActivity, r.recordActivity,
		workflow.UpdateHandlerOptions{Description: "Records one activity and returns the item it billed.", Validator: func(ctx workflow.Context, req RecordActivityRequest) error {
			now := workflow.Now(ctx)
			act := requestedActivity(req, now)
			if err := act.Validate(); err != nil {
				return rejected(err)
			}
			if act.At.After(now.Add(MaxFutureSkew)) {
				return rejected(&models.ValidationError{Field: "activity " + act.ID, Reason: fmt.Sprintf(
					"created_at %s is more than %s in the future", act.At.Format(time.RFC3339), MaxFutureSkew)})
			}
			return nil
		}}); err != nil {
		return err
	}
	return workflow.SetUpdateHandlerWithOptions(ctx, UpdateRenewNow, r.renewNow, workflow.UpdateHandlerOptions{
		Description: "Runs the current period's renewal (never twice) and a claim; returns the invoice id or nothing owed.",
	})
}

func (r *tenantRun) recordActivity(ctx workflow.Context, req RecordActivityRequest) (RecordActivityResponse, error) {
	if err := workflow.Await(ctx, func() bool { return r.loaded }); err != nil {
		return RecordActivityResponse{}, err
	}
	if err := r.mu.Lock(ctx); err != nil {
		return RecordActivityResponse{}, err
	}
	defer r.mu.Unlock()
	act := requestedActivity(req, workflow.Now(ctx))
	var res RecordActivityResponse
	// An activity even on tenant-v2: the update's workflow task stays
	// short (it only schedules), which keeps a burst of record-activity
	// updates from holding speculative workflow tasks open on Postgres.
	err := workflow.ExecuteActivity(interactive(ctx, "record "+string(act.Type)+" "+act.ResourceID), a.RecordActivity,
		activities.RecordActivityInput{TenantID: r.snap.TenantID, Activity: act, InstantDefaulted: req.CreatedAt == nil}).Get(ctx, &res)
	if err != nil {
		return res, callerError(err)
	}
	if r.snap.Anchor == nil {
		anchor := res.Anchor
		r.snap.Anchor = &anchor
	}
	r.snap.Outstanding = res.Outstanding
	if res.Item != nil && !res.Duplicate {
		r.claimReq.SendAsync(true)
	}
	r.publish(ctx)
	return res, nil
}

// renewNow runs the current period's renewal (a no-op if already done) and a
// claim, for operators and scripts.
func (r *tenantRun) renewNow(ctx workflow.Context) (RenewNowResponse, error) {
	if err := workflow.Await(ctx, func() bool { return r.loaded }); err != nil {
		return RenewNowResponse{}, err
	}
	if r.snap.Anchor == nil {
		return RenewNowResponse{Currency: r.snap.Currency, NothingOwed: true, Outstanding: r.snap.Outstanding}, nil
	}
	period := r.schedule().PeriodAt(workflow.Now(ctx))
	return r.renewAndClaim(ctx, period, false)
}

// renewAndClaim renews every boundary up to period.Start and claims, holding
// the tenant's mutex so it never interleaves with recording or another claim.
// With reload (tenant-v4, at the boundary) the claim also reloads the
// tenant for the next run.
func (r *tenantRun) renewAndClaim(ctx workflow.Context, period models.Period, reload bool) (RenewNowResponse, error) {
	if err := r.mu.Lock(ctx); err != nil {
		return RenewNowResponse{}, err
	}
	defer r.mu.Unlock()
	out := RenewNowResponse{Currency: r.snap.Currency, PeriodStart: period.Start}
	if r.v4 {
		// One local activity: renewal (from period #1 on), claim, and the
		// start of the invoice's workflow.
		var upTo *time.Time
		if period.Index >= 1 {
			start := period.Start
			upTo = &start
		}
		inv, err := r.claimAndStart(ctx, period, upTo, reload, &out)
		if err != nil {
			return out, callerError(err)
		}
		return r.claimed(out, inv), nil
	}
	if period.Index >= 1 {
		var rr activities.RenewResult
		if err := step(durable(ctx, "renew through "+period.Start.Format(time.RFC3339)), r.local, a.Renew,
			activities.RenewInput{TenantID: r.snap.TenantID, UpTo: period.Start}).Get(ctx, &rr); err != nil {
			return out, callerError(err)
		}
		out.Renewed = rr.Created
		r.snap.RenewedThrough = rr.RenewedThrough
	}
	inv, err := r.claim(ctx, period)
	if err != nil {
		return out, callerError(err)
	}
	return r.claimed(out, inv), nil
}

// claimed completes a renew-and-claim answer with the claim's invoice.
func (r *tenantRun) claimed(out RenewNowResponse, inv *activities.InvoiceRef) RenewNowResponse {
	if inv != nil {
		out.InvoiceID, out.Total = inv.ID, inv.Total
	} else {
		out.NothingOwed = true
	}
	out.Outstanding = r.snap.Outstanding
	return out
}

func (r *tenantRun) claimLocked(ctx workflow.Context, period models.Period) error {
	if err := r.mu.Lock(ctx); err != nil {
		return err
	}
	defer r.mu.Unlock()
	var err error
	if r.v4 {
		_, err = r.claimAndStart(ctx, period, nil, false, nil)
	} else {
		_, err = r.claim(ctx, period)
	}
	return err
}

// claimKey names the run's next claim: the run id and the claim's ordinal
// are the same on every replay, so a retried claim finds the invoice it
// already made.
func (r *tenantRun) claimKey(ctx workflow.Context) string {
	r.claims++
	return fmt.Sprintf("%s/%s/%d", TenantWorkflowID(r.snap.TenantID), workflow.GetInfo(ctx).WorkflowExecution.RunID, r.claims)
}

// claimAndStart (tenant-v4) renews up to upTo when set, claims and starts
// the invoice's InvoicePayment workflow in one local activity; when that
// worker could not start it (no client) the workflow starts it as a child,
// as before. With reload the activity also reads the tenant again, for the
// next run. The caller holds the mutex; out, when given, gets the renewal.
func (r *tenantRun) claimAndStart(ctx workflow.Context, period models.Period, upTo *time.Time, reload bool, out *RenewNowResponse) (*activities.InvoiceRef, error) {
	in := activities.ClaimAndStartInput{
		Claim:     activities.ClaimInput{TenantID: r.snap.TenantID, ClaimKey: r.claimKey(ctx), PeriodStart: period.Start, PeriodEnd: period.End},
		RenewUpTo: upTo, TaskQueue: workflow.GetInfo(ctx).TaskQueueName, PaymentVersion: pathInvoiceV7,
		// The invoice's run starts with its collection begun.
		Begin: true,
	}
	summary := "claim outstanding items"
	if upTo != nil {
		summary = "renew through " + upTo.Format(time.RFC3339) + " and claim"
	}
	if reload {
		in.Reload = &activities.LoadTenantInput{TenantID: r.snap.TenantID, Currency: r.snap.Currency, PeriodSeconds: r.snap.PeriodSeconds}
	}
	var res activities.ClaimAndStartResult
	if err := step(durable(ctx, summary), true, a.ClaimAndStart, in).Get(ctx, &res); err != nil {
		return nil, err
	}
	if res.Renew != nil {
		if out != nil {
			out.Renewed = res.Renew.Created
		}
		r.snap.RenewedThrough = res.Renew.RenewedThrough
	}
	r.snap.Outstanding = res.Claim.Outstanding
	inv := res.Claim.Invoice
	if res.Snapshot != nil {
		// What the store has after the claim (the invoice among the open
		// ones): the next run starts from it.
		r.snap, r.fresh = *res.Snapshot, true
	} else if inv != nil {
		r.snap.OpenInvoices = append(r.snap.OpenInvoices, *inv)
	}
	r.publish(ctx)
	if inv == nil || res.PaymentStarted {
		return inv, nil
	}
	return inv, r.startPayment(ctx, *inv)
}

// claim claims outstanding items and, when an invoice results, starts its
// InvoicePayment workflow. The caller holds the mutex.
func (r *tenantRun) claim(ctx workflow.Context, period models.Period) (*activities.InvoiceRef, error) {
	key := r.claimKey(ctx)
	var res activities.ClaimResult
	if err := step(durable(ctx, "claim outstanding items"), r.local, a.Claim, activities.ClaimInput{
		TenantID: r.snap.TenantID, ClaimKey: key, PeriodStart: period.Start, PeriodEnd: period.End,
	}).Get(ctx, &res); err != nil {
		return nil, err
	}
	r.snap.Outstanding = res.Outstanding
	if res.Invoice == nil {
		r.publish(ctx)
		return nil, nil
	}
	inv := *res.Invoice
	r.snap.OpenInvoices = append(r.snap.OpenInvoices, inv)
	r.publish(ctx)
	return &inv, r.startPayment(ctx, inv)
}

// startPayment starts the invoice's InvoicePayment workflow as a child.
func (r *tenantRun) startPayment(ctx workflow.Context, inv activities.InvoiceRef) error {
	opts := workflow.ChildWorkflowOptions{
		WorkflowID:            InvoiceWorkflowID(inv.ID),
		ParentClosePolicy:     enumspb.PARENT_CLOSE_POLICY_ABANDON,
		WorkflowIDReusePolicy: enumspb.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE,
		StaticSummary:         fmt.Sprintf("Invoice %s for tenant %s", FormatAmount(inv.Total, inv.Currency), r.snap.TenantID.Short()),
	}
	if r.local {
		// The invoice starts with the search attributes it publishes once
		// its first step (BeginCollection, in its first workflow task) has
		// marked it collecting, all of it due; so it upserts none then.
		opts.TypedSearchAttributes = temporal.NewSearchAttributes(
			AttrInvoice.ValueSet(inv.ID), AttrTenant.ValueSet(string(r.snap.TenantID)),
			AttrStatus.ValueSet("collecting"), AttrAmountDue.ValueSet(inv.Total))
	}
	child := workflow.WithChildOptions(ctx, opts)
	pin := InvoicePaymentInput{InvoiceID: inv.ID, TenantID: r.snap.TenantID, Total: inv.Total, Currency: inv.Currency}
	if r.v4 {
		pin.Version = pathInvoiceV7
	} else if r.v3 {
		// The invoice takes the newest invoice path without reading its
		// id (the child's input is not compared on replay).
		pin.Version = pathInvoiceV6
	}
	fut := workflow.ExecuteChildWorkflow(child, InvoicePayment, pin)
	if err := fut.GetChildWorkflowExecution().Get(ctx, nil); err != nil {
		var started *temporal.ChildWorkflowExecutionAlreadyStartedError
		if !errors.As(err, &started) {
			return fmt.Errorf("start payment of invoice %s: %w", inv.ID, err)
		}
	}
	return nil
}

func (r *tenantRun) invoiceSettled(s InvoiceSettled) {
	open := r.snap.OpenInvoices[:0]
	for _, inv := range r.snap.OpenInvoices {
		if inv.ID != s.InvoiceID {
			open = append(open, inv)
		}
	}
	r.snap.OpenInvoices = open
}

func (r *tenantRun) state() TenantState {
	st := TenantState{
		TenantID: r.snap.TenantID, Currency: r.snap.Currency, Status: r.snap.Status, PeriodSeconds: r.snap.PeriodSeconds,
		Anchor: r.snap.Anchor, Period: r.period, RenewedThrough: r.snap.RenewedThrough, Outstanding: r.snap.Outstanding,
		OpenInvoices: r.snap.OpenInvoices, ClaimPending: r.debounce != nil, NeedsAction: r.na,
	}
	if st.TenantID == "" {
		st.TenantID = r.in.TenantID
	}
	if r.period != nil {
		end := r.period.End
		st.NextBoundary = &end
	}
	return st
}

// publish updates the search attributes and the Web UI's current details.
func (r *tenantRun) publish(ctx workflow.Context) {
	st := r.state()
	status := st.Status
	if st.NeedsAction != nil {
		status = "needs_action"
	}
	u := newSAUpdates(ctx, r.local)
	u.keyword(AttrTenant, string(st.TenantID))
	u.keyword(AttrStatus, status)
	if st.Period != nil {
		u.time(AttrPeriodStart, st.Period.Start)
	}
	u.upsert(ctx)
	workflow.SetCurrentDetails(ctx, tenantDetails(st))
}

func tenantDetails(st TenantState) string {
	var b strings.Builder
	// The static summary set at start does not survive continue-as-new
	// (SDK 1.50 cannot carry it), so every run leads with its own summary.
	b.WriteString(fmt.Sprintf("### Billing periods of tenant `%s`\n\n", st.TenantID.Short()))
	b.WriteString("| | |\n|---|---|\n")
	b.WriteString(fmt.Sprintf("| Status | **%s** |\n", st.Status))
	schedule := "calendar months"
	if st.PeriodSeconds > 0 {
		schedule = fmt.Sprintf("fixed, %s", time.Duration(st.PeriodSeconds)*time.Second)
	}
	b.WriteString(fmt.Sprintf("| Periods | %s |\n", schedule))
	if st.Anchor == nil {
		b.WriteString("| Billing anchor | not set: waiting for the first activity |\n")
	} else {
		b.WriteString(fmt.Sprintf("| Billing anchor | %s |\n", st.Anchor.Format(time.RFC3339)))
	}
	if st.Period != nil {
		b.WriteString(fmt.Sprintf("| Current period | #%d, %s → %s |\n", st.Period.Index, st.Period.Start.Format(time.RFC3339), st.Period.End.Format(time.RFC3339)))
		b.WriteString(fmt.Sprintf("| Next boundary | %s |\n", st.Period.End.Format(time.RFC3339)))
	}
	b.WriteString(fmt.Sprintf("| Outstanding | %s |\n", FormatAmount(st.Outstanding, st.Currency)))
	if st.ClaimPending {
		b.WriteString("| Claim | pending (debounce) |\n")
	}
	b.WriteString(needsActionRow(st.NeedsAction))
	b.WriteString(fmt.Sprintf("\n**Open invoices:** %d\n", len(st.OpenInvoices)))
	if len(st.OpenInvoices) > 0 {
		b.WriteString("\n| Invoice | Amount | Status |\n|---|---|---|\n")
		for _, inv := range st.OpenInvoices {
			b.WriteString(fmt.Sprintf("| `%s` | %s | %s |\n", inv.ID, FormatAmount(inv.Total, inv.Currency), inv.Status))
		}
	}
	return b.String()
}

// callerError strips the activity wrapper from a business failure so the
// caller of an update sees the reason and its type, not Temporal plumbing.
func callerError(err error) error {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) && appErr.NonRetryable() {
		return temporal.NewNonRetryableApplicationError(appErr.Message(), appErr.Type(), nil)
	}
	return err
}

// rejected is a validator's verdict: a typed, non-retryable validation error.
func rejected(err error) error {
	return temporal.NewNonRetryableApplicationError(err.Error(), activities.ErrValidation, nil)
}

package workflows

import (
	"fmt"
	"strings"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/models"
)

// Grace defaults.
const (
	DefaultGraceWindow = 7 * 24 * time.Hour
	DefaultBanFactor   = 50
)

// Grace window signals and query.
const (
	// SignalCollectionFailed starts (signal-with-start) or feeds the grace window.
	SignalCollectionFailed = contract.SignalCollectionFailed
	QueryGrace             = contract.QueryGrace
	// SignalTenantStatus tells the tenant workflow its standing changed.
	SignalTenantStatus = contract.SignalTenantStatus
)

// GraceWorkflowID is the ID of a tenant's GraceWindow workflow.
func GraceWorkflowID(id models.TenantID) string { return contract.GraceWorkflowID(id) }

// GraceWindowInput configures a grace window.
type GraceWindowInput struct {
	TenantID models.TenantID `json:"tenant_id"`
	// Window defaults to DefaultGraceWindow; a failed grace bans the tenant
	// from grace for BanFactor windows (default 50).
	Window    time.Duration `json:"window,omitempty"`
	BanFactor int           `json:"ban_factor,omitempty"`
	// Carry is the state a continued-as-new run resumes from; nil at start.
	Carry *GraceCarry `json:"carry,omitempty"`
	// ContinueAfter, when positive, continues as new after that many waits
	// in one run instead of when Temporal suggests it (for tests).
	ContinueAfter int `json:"continue_after,omitempty"`
}

// GraceCarry is what a grace window remembers across continue-as-new.
type GraceCarry struct {
	State activities.GraceResult `json:"state"`
	// Failed and Settled record collection-failed and invoice-settled
	// signals taken off their channels as the previous run ended.
	Failed  bool `json:"failed,omitempty"`
	Settled bool `json:"settled,omitempty"`
	// Retry names the transition that failed and is retried first
	// (enter, restore or expire); NeedsAction says why.
	Retry       string       `json:"retry,omitempty"`
	NeedsAction *NeedsAction `json:"needs_action,omitempty"`
}

// CollectionFailed is the collection-failed signal's payload.
type CollectionFailed = contract.CollectionFailed

// TenantStatus is the tenant-status signal's payload.
type TenantStatus = contract.TenantStatus

// GraceWindowResult is the grace window's outcome: the tenant is active again.
type GraceWindowResult = activities.GraceResult

type graceRun struct {
	in    GraceWindowInput
	state activities.GraceResult
	// Set by patched runs: the transition to retry and why it failed.
	retry string
	na    *NeedsAction
}

// GraceWindow runs from a failed collection until the tenant has paid
// everything: a grace window during which service continues, then, if the
// window runs out unpaid, suspension and a ban from grace. ID: grace/<tenant>.
func GraceWindow(ctx workflow.Context, in GraceWindowInput) (GraceWindowResult, error) {
	if in.Window <= 0 {
		in.Window = DefaultGraceWindow
	}
	if in.BanFactor <= 0 {
		in.BanFactor = DefaultBanFactor
	}
	r := &graceRun{in: in}
	if err := workflow.SetQueryHandlerWithOptions(ctx, QueryGrace, func() (activities.GraceResult, error) { return r.state, nil },
		workflow.QueryHandlerOptions{Description: "Status, grace expiry, ban expiry and unpaid invoices."}); err != nil {
		return r.state, err
	}
	failed := workflow.GetSignalChannelWithOptions(ctx, SignalCollectionFailed, workflow.SignalChannelOptions{
		Description: "A collection attempt failed: start or keep the grace window."})
	settled := workflow.GetSignalChannelWithOptions(ctx, SignalInvoiceSettled, workflow.SignalChannelOptions{
		Description: "An invoice was settled: restore the tenant if nothing is left unpaid."})

	needsAction, continues := patched(ctx, changeGraceNeedsAction), patched(ctx, changeGraceContinueAsNew)
	if needsAction || continues {
		return r.run(ctx, failed, settled, needsAction, continues)
	}
	drain(failed, &CollectionFailed{})
	if err := r.step(ctx, a.EnterGrace, "enter grace window"); err != nil {
		return r.state, err
	}
	for {
		if r.state.Status == "active" {
			// A failure that arrived while restoring opens a new window here,
			// since this run would otherwise swallow its signal.
			if !drain(failed, &CollectionFailed{}) {
				if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
					return r.state, err
				}
				return r.state, nil
			}
			if err := r.step(ctx, a.EnterGrace, "enter grace window"); err != nil {
				return r.state, err
			}
			continue
		}
		sel := workflow.NewSelector(ctx)
		timerCtx, cancel := workflow.WithCancel(ctx)
		expired := false
		if r.state.Status == "grace" && r.state.GraceExpiresAt != nil {
			sel.AddFuture(workflow.NewTimerWithOptions(timerCtx, r.state.GraceExpiresAt.Sub(workflow.Now(ctx)), workflow.TimerOptions{
				Summary: "grace window ends " + r.state.GraceExpiresAt.Format(time.RFC3339),
			}), func(workflow.Future) { expired = true })
		}
		var err error
		sel.AddReceive(settled, func(c workflow.ReceiveChannel, _ bool) {
			drain(c, &InvoiceSettled{})
			err = r.step(ctx, a.RestoreIfSettled, "restore if settled")
		})
		sel.AddReceive(failed, func(c workflow.ReceiveChannel, _ bool) {
			// Another invoice failed: nothing changes, but refresh what is unpaid.
			drain(c, &CollectionFailed{})
			err = r.step(ctx, a.RestoreIfSettled, "refresh unpaid invoices")
		})
		sel.Select(ctx)
		cancel()
		if err != nil {
			return r.state, err
		}
		if expired {
			if err := r.step(ctx, a.ExpireGrace, "grace window expired: suspend and ban"); err != nil {
				return r.state, err
			}
		}
	}
}

// Grace transitions, by the name a failed one is retried under.
var graceSteps = map[string]struct {
	activity any
	summary  string
}{
	"enter":   {a.EnterGrace, "enter grace window"},
	"restore": {a.RestoreIfSettled, "restore if settled"},
	"refresh": {a.RestoreIfSettled, "refresh unpaid invoices"},
	"expire":  {a.ExpireGrace, "grace window expired: suspend and ban"},
}

// GraceRetryInterval is how long a grace window waits before retrying a
// transition that failed for good, when no retry signal comes first.
const GraceRetryInterval = time.Hour

// run is the grace window of patched runs: a transition that fails for good
// is recorded and retried (retry signal or GraceRetryInterval), and the
// window continues as new with its state and pending signals.
func (r *graceRun) run(ctx workflow.Context, failed, settled workflow.ReceiveChannel, needsAction, continues bool) (GraceWindowResult, error) {
	retry := workflow.GetSignalChannelWithOptions(ctx, SignalRetry, workflow.SignalChannelOptions{
		Description: "Re-run the grace transition that needs action."})
	budget := runBudget{max: r.in.ContinueAfter}
	var pendingFailed, pendingSettled bool
	if c := r.in.Carry; c != nil {
		r.state, r.retry, r.na = c.State, c.Retry, c.NeedsAction
		pendingFailed, pendingSettled = c.Failed, c.Settled
		r.publish(ctx)
	} else {
		drain(failed, &CollectionFailed{})
		r.retry = "enter"
	}
	// do runs one transition; a failure is kept for retry unless this run
	// predates that change.
	do := func(name string) error {
		st := graceSteps[name]
		err := r.step(ctx, st.activity, st.summary)
		if err == nil {
			if r.retry == name {
				r.retry, r.na = "", nil
				r.publish(ctx)
			}
			return nil
		}
		if !needsAction {
			return err
		}
		r.parked(ctx, name, st.summary, err)
		return nil
	}
	for {
		if r.retry != "" {
			if err := do(r.retry); err != nil {
				return r.state, err
			}
		}
		if pendingSettled && r.retry == "" {
			pendingSettled = false
			if err := do("restore"); err != nil {
				return r.state, err
			}
		}
		if pendingFailed && r.retry == "" && r.state.Status != "active" {
			pendingFailed = false
			if err := do("refresh"); err != nil {
				return r.state, err
			}
		}
		if r.retry == "" && r.state.Status == "active" {
			// A failure that arrived while restoring opens a new window here,
			// since this run would otherwise swallow its signal.
			if !pendingFailed && !drain(failed, &CollectionFailed{}) {
				if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
					return r.state, err
				}
				if !drain(failed, &CollectionFailed{}) {
					return r.state, nil
				}
			}
			pendingFailed = false
			if err := do("enter"); err != nil {
				return r.state, err
			}
			continue
		}
		if continues && budget.exhausted(ctx) {
			if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
				return r.state, err
			}
			next := r.in
			next.Carry = &GraceCarry{State: r.state, Retry: r.retry, NeedsAction: r.na,
				Failed: pendingFailed || drain(failed, &CollectionFailed{}), Settled: pendingSettled || drain(settled, &InvoiceSettled{})}
			drain(retry, &struct{}{})
			return r.state, workflow.NewContinueAsNewError(ctx, GraceWindow, next)
		}
		budget.spend()
		sel := workflow.NewSelector(ctx)
		timerCtx, cancel := workflow.WithCancel(ctx)
		expired := false
		switch {
		case r.retry != "":
			sel.AddFuture(workflow.NewTimerWithOptions(timerCtx, GraceRetryInterval, workflow.TimerOptions{
				Summary: "retry: " + graceSteps[r.retry].summary,
			}), func(workflow.Future) {})
		case r.state.Status == "grace" && r.state.GraceExpiresAt != nil:
			sel.AddFuture(workflow.NewTimerWithOptions(timerCtx, r.state.GraceExpiresAt.Sub(workflow.Now(ctx)), workflow.TimerOptions{
				Summary: "grace window ends " + r.state.GraceExpiresAt.Format(time.RFC3339),
			}), func(workflow.Future) { expired = true })
		}
		sel.AddReceive(settled, func(c workflow.ReceiveChannel, _ bool) {
			drain(c, &InvoiceSettled{})
			pendingSettled = true
		})
		sel.AddReceive(failed, func(c workflow.ReceiveChannel, _ bool) {
			// Another invoice failed: nothing changes, but refresh what is unpaid.
			drain(c, &CollectionFailed{})
			pendingFailed = true
		})
		sel.AddReceive(retry, func(c workflow.ReceiveChannel, _ bool) { drain(c, &struct{}{}) })
		sel.Select(ctx)
		cancel()
		if expired {
			if err := do("expire"); err != nil {
				return r.state, err
			}
		}
	}
}

// parked records a grace transition that failed for good: in the details
// and in the store (tenant.needs_action); it is retried later.
func (r *graceRun) parked(ctx workflow.Context, name, summary string, err error) {
	reason := activities.Summarize(errorMessage(err))
	first := r.na == nil || r.retry != name
	r.retry = name
	r.na = &NeedsAction{Step: summary, Reason: reason, At: workflow.Now(ctx)}
	workflow.GetLogger(ctx).Warn("grace window needs action", "step", summary, "reason", reason)
	r.publish(ctx)
	if !first {
		return
	}
	if rerr := workflow.ExecuteActivity(recordOptions(ctx, "record: needs action ("+summary+")"), a.RecordNeedsAction, activities.NeedsActionInput{
		TenantID: r.in.TenantID, Step: "grace window: " + summary, Reason: reason, At: workflow.Now(ctx)}).Get(ctx, nil); rerr != nil {
		workflow.GetLogger(ctx).Error("needs action not recorded in the store", "error", rerr)
	}
}

// drain empties a signal channel, reporting whether anything was in it.
func drain[T any](c workflow.ReceiveChannel, v *T) bool {
	got := false
	for c.ReceiveAsync(v) {
		got = true
	}
	return got
}

// step runs one grace transition and publishes the outcome.
func (r *graceRun) step(ctx workflow.Context, activity any, summary string) error {
	before := r.state.Status
	in := activities.GraceInput{TenantID: r.in.TenantID, At: workflow.Now(ctx), Window: r.in.Window,
		BanFor: time.Duration(r.in.BanFactor) * r.in.Window}
	var res activities.GraceResult
	if err := workflow.ExecuteActivity(durable(ctx, summary), activity, in).Get(ctx, &res); err != nil {
		return err
	}
	r.state = res
	r.publish(ctx)
	if res.Changed && res.Status == "suspended" {
		// Tell the tenant; a DM that cannot be sent is logged, never fatal.
		dmCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			StartToCloseTimeout: 30 * time.Second, ScheduleToCloseTimeout: 10 * time.Minute, Summary: "DM the tenant: suspended",
			RetryPolicy: &temporal.RetryPolicy{InitialInterval: 5 * time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute,
				NonRetryableErrorTypes: nonRetryable},
		})
		if err := workflow.ExecuteActivity(dmCtx, a.SendSuspensionDM, activities.SuspensionDMInput{TenantID: r.in.TenantID}).Get(ctx, nil); err != nil {
			workflow.GetLogger(ctx).Warn("suspension DM not sent", "error", err)
		}
	}
	if res.Status != before {
		err := workflow.SignalExternalWorkflow(ctx, TenantWorkflowID(r.in.TenantID), "", SignalTenantStatus,
			TenantStatus{Status: res.Status}).Get(ctx, nil)
		if err != nil {
			workflow.GetLogger(ctx).Warn("could not tell the tenant workflow", "error", err)
		}
	}
	return nil
}

func (r *graceRun) publish(ctx workflow.Context) {
	if err := workflow.UpsertTypedSearchAttributes(ctx, AttrTenant.ValueSet(string(r.in.TenantID)), AttrStatus.ValueSet(r.state.Status)); err != nil {
		workflow.GetLogger(ctx).Warn("upsert search attributes failed", "error", err)
	}
	var b strings.Builder
	b.WriteString(fmt.Sprintf("### Grace window of tenant `%s`\n\n| | |\n|---|---|\n", r.in.TenantID.Short()))
	b.WriteString(fmt.Sprintf("| Status | **%s** |\n| Window | %s |\n", r.state.Status, r.in.Window))
	if r.state.GraceExpiresAt != nil {
		b.WriteString(fmt.Sprintf("| Grace ends | %s |\n", r.state.GraceExpiresAt.Format(time.RFC3339)))
	}
	if r.state.BannedUntil != nil {
		b.WriteString(fmt.Sprintf("| Banned from grace until | %s |\n", r.state.BannedUntil.Format(time.RFC3339)))
	}
	b.WriteString(needsActionRow(r.na))
	b.WriteString(fmt.Sprintf("\n**Unpaid invoices:** %d\n", len(r.state.Unpaid)))
	for _, inv := range r.state.Unpaid {
		b.WriteString(fmt.Sprintf("- `%s` %s\n", inv.ID, FormatAmount(inv.Total, inv.Currency)))
	}
	workflow.SetCurrentDetails(ctx, b.String())
}

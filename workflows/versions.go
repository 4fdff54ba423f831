package workflows

import (
	"fmt"
	"time"

	"github.com/billflow/billflow/contract"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// Change ids: each change to a workflow's command sequence is one
// workflow.GetVersion patch, so a run recorded before the change replays on
// the code path it took. All of them are read when a run starts (before its
// first command), so a run takes one code path from start to end; a run
// continued as new takes the newest. docs/versioning.md lists them.
const (
	// changeInvoiceNeedsAction: a step that fails for good parks the invoice
	// as needs_action (event, details row) instead of failing the workflow;
	// a "retry" signal or the next timer re-runs it; an unknown invoice
	// completes as not_found; signals arriving at continue-as-new are carried.
	changeInvoiceNeedsAction = "invoice-needs-action"
	// changeInvoiceOneTimer: one reconcile/dunning timer per wait, kept
	// across signals instead of restarted by each one.
	changeInvoiceOneTimer = "invoice-one-timer"
	// changeInvoiceAttemptOnce: a card failure reported by Stripe after the
	// cascade recorded it is not listed (or acted on) a second time.
	changeInvoiceAttemptOnce = "invoice-attempt-once"
	// changeInvoiceResolveNWC: before the card is charged, an NWC payment
	// whose outcome is unknown is resolved on the engine's node.
	changeInvoiceResolveNWC = "invoice-resolve-nwc"
	// changeInvoiceLateReport: a run started only to record money for a
	// finished invoice (input with just the invoice id) records it and ends.
	changeInvoiceLateReport = "invoice-late-report"
	// changeInvoicePartial: a rail's payment that leaves part of the
	// invoice due does not end the cascade: the next rail (or the DM)
	// collects the remainder.
	changeInvoicePartial = "invoice-partial-payments"
	// changeInvoiceWalletFirst: each cascade attempt first tries the
	// tenant's wallet (PayFromWallet); paid ends collection, not covered
	// goes on to NWC as before.
	changeInvoiceWalletFirst = "invoice-wallet-first"
	// changeInvoiceV4 consolidates the invoice's patches: a run that has it
	// takes every change above without reading their ids (each GetVersion
	// on a new run costs a marker and a search-attribute upsert), runs its
	// short store steps as local activities and upserts only search
	// attributes whose value changed. It is read first; a run without it
	// (recorded before it) reads the older ids exactly as before.
	changeInvoiceV4 = "invoice-v4"
	// changeInvoiceV5 consolidates invoice-v4 (read first, like it) and
	// adds: the run's path is carried in its input (InvoicePaymentInput.
	// Version, set by the tenant that starts it and by continue-as-new), so
	// a run so started reads no id at all; and the first cascade attempt
	// skips PayByNWC when BeginCollection found no NWC rail to use (the
	// skipped row is recorded by ChargeCard).
	changeInvoiceV5 = "invoice-v5"
	// changeInvoiceV6 consolidates invoice-v5 (read first, before it) and
	// adds: Settle tells the tenant of the paid invoice (TellTenant, best
	// effort); the workflow signals the tenant itself only when that signal
	// did not go through.
	changeInvoiceV6 = "invoice-v6"
	// changeInvoiceV7 consolidates invoice-v6 (read first, before it) and
	// adds: BeginCollection runs the first attempt's wallet turn in the
	// same local activity (InvoiceInput.Wallet), and the NWC and card
	// activities settle the payment they took themselves
	// (RailAttemptInput.Settle), so no separate Settle step follows them.
	changeInvoiceV7 = "invoice-v7"

	// changeBalanceAutoRecharge: after a sync that finds spendable below
	// the wallet's auto-recharge threshold and no auto top-up open, the
	// balance sync starts one (StartAutoRecharge).
	changeBalanceAutoRecharge = "balance-auto-recharge"

	// changeTenantNeedsAction: a failed load, renewal or claim parks the
	// tenant as needs_action; a "retry" signal or the next boundary re-runs it.
	changeTenantNeedsAction = "tenant-needs-action"
	// changeTenantV2 consolidates the tenant's patches (like
	// changeInvoiceV4): tenant-needs-action without reading its id, short
	// store steps (load, renew, claim) as local activities, only changed
	// search attributes upserted, and the invoice's search attributes set
	// when its workflow is started.
	changeTenantV2 = "tenant-v2"
	// changeTenantV3 consolidates tenant-v2 (read first) and carries the
	// run's path in TenantBillingInput.Version across continue-as-new, so a
	// continued run reads no id; the invoices it starts are given
	// invoice-v5 in their input.
	changeTenantV3 = "tenant-v3"
	// changeTenantV4 consolidates tenant-v3 (read first, before it) and
	// adds: renewal, claim and the start of the invoice's InvoicePayment
	// are one local activity (ClaimAndStart), which starts the invoice
	// through the client (idempotent workflow id) instead of as a child
	// workflow, and reloads the tenant at the boundary so the next run
	// starts from that snapshot (TenantBillingInput.Snapshot) instead of
	// running LoadTenant.
	changeTenantV4 = "tenant-v4"
	// changeTenantV5 consolidates tenant-v4 (read first, before it, also by
	// a run carrying 3 or 4) and adds: after the boundary's renewal and
	// claim the run goes on to the next period in the same history, and
	// continues as new only when that history has grown past
	// tenantRunEvents, Temporal suggests it, or a test's budget is spent.
	changeTenantV5 = "tenant-v5"

	// changeGraceNeedsAction: a failed grace transition is recorded and
	// retried (signal or the next wake) instead of failing the window.
	changeGraceNeedsAction = "grace-needs-action"
	// changeGraceContinueAsNew: the grace window continues as new, carrying
	// its state and any signal that arrived meanwhile.
	changeGraceContinueAsNew = "grace-continue-as-new"

	// changeOutboxNeverFails: a delivery that fails for good waits for the
	// next sweep instead of failing the outbox.
	changeOutboxNeverFails = "outbox-never-fails"
	// changeSettlementsNeverFail: a misconfigured node is reported in the
	// details and retried, instead of failing the stream.
	changeSettlementsNeverFail = "settlements-never-fail"
)

// Paths carried in a workflow's input (Version): the number of the
// consolidated change id the run takes. A run whose input names one takes
// that path without reading any id (no marker, no search-attribute upsert);
// a run whose input names none (0: started by a client, or recorded before
// the field existed) reads the ids, newest first.
const (
	pathInvoiceV5 = 5
	pathInvoiceV6 = 6
	pathInvoiceV7 = 7
	pathTenantV3  = 3
	pathTenantV4  = 4
	pathTenantV5  = 5
)

// patched reports whether this run takes the code path of change.
func patched(ctx workflow.Context, change string) bool {
	return workflow.GetVersion(ctx, change, workflow.DefaultVersion, 1) >= 1
}

// step runs a short store step that is safe to repeat (idempotent in the
// store) with the options already set on ctx. On a run that takes the
// local-steps path (local) it is a local activity: one marker event instead
// of scheduled, started and completed, and no extra workflow task; it is
// retried from the worker on the same policy, and re-run if the worker dies
// before the workflow task completes. Otherwise it is the activity the
// recorded histories have.
func step(ctx workflow.Context, local bool, fn any, args ...any) workflow.Future {
	if !local {
		return workflow.ExecuteActivity(ctx, fn, args...)
	}
	o := workflow.GetActivityOptions(ctx)
	total := o.ScheduleToCloseTimeout
	if total == 0 {
		// An activity without one is retried until it succeeds; a local
		// activity without one would stop at its StartToClose (the SDK
		// takes that as the total), so a Postgres outage longer than 30 s
		// would park the step instead of waiting it out.
		total = unboundedLocal
	}
	lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: o.StartToCloseTimeout, ScheduleToCloseTimeout: total,
		RetryPolicy: o.RetryPolicy, Summary: o.Summary,
	})
	return workflow.ExecuteLocalActivity(lctx, fn, args...)
}

// unboundedLocal is the total time a local step whose activity options set
// no schedule-to-close may keep retrying: in effect, until it succeeds
// (retries past a minute's backoff wait on a workflow timer).
const unboundedLocal = 10 * 365 * 24 * time.Hour

// saUpdates collects search-attribute updates for one upsert. With only
// changed set, a value equal to the one the workflow already has (carried
// by continue-as-new, set at start or upserted before) is left out, so an
// upsert that changes nothing costs no history event.
type saUpdates struct {
	cur     temporal.SearchAttributes
	changed bool
	list    []temporal.SearchAttributeUpdate
}

func newSAUpdates(ctx workflow.Context, onlyChanged bool) *saUpdates {
	return &saUpdates{cur: workflow.GetTypedSearchAttributes(ctx), changed: onlyChanged}
}

func (u *saUpdates) keyword(k temporal.SearchAttributeKeyKeyword, v string) {
	if cur, ok := u.cur.GetKeyword(k); !u.changed || !ok || cur != v {
		u.list = append(u.list, k.ValueSet(v))
	}
}

func (u *saUpdates) int64(k temporal.SearchAttributeKeyInt64, v int64) {
	if cur, ok := u.cur.GetInt64(k); !u.changed || !ok || cur != v {
		u.list = append(u.list, k.ValueSet(v))
	}
}

func (u *saUpdates) time(k temporal.SearchAttributeKeyTime, v time.Time) {
	if cur, ok := u.cur.GetTime(k); !u.changed || !ok || !cur.Equal(v) {
		u.list = append(u.list, k.ValueSet(v))
	}
}

// upsert sends the collected updates, if any.
func (u *saUpdates) upsert(ctx workflow.Context) {
	if len(u.list) == 0 {
		return
	}
	if err := workflow.UpsertTypedSearchAttributes(ctx, u.list...); err != nil {
		workflow.GetLogger(ctx).Warn("upsert search attributes failed", "error", err)
	}
}

// SignalRetry asks a workflow to re-run the step that needs action, after an
// operator or the application fixed its cause.
const SignalRetry = contract.SignalRetry

// NeedsAction is a step that failed for good and waits for someone to act.
type NeedsAction = contract.NeedsAction

// needsActionRow renders a NeedsAction for the current details.
func needsActionRow(n *NeedsAction) string {
	if n == nil {
		return ""
	}
	return fmt.Sprintf("\n**Needs action** since %s: %s failed: %s. Fix the cause, then send the `%s` signal (the next timer retries too).\n",
		n.At.UTC().Format(time.RFC3339), n.Step, n.Reason, SignalRetry)
}

// runBudget counts the waits of one run when a test bounds them
// (ContinueAfter), so continue-as-new can be forced at every wait point.
type runBudget struct {
	max, used int
}

// exhausted reports whether the run should continue as new before waiting:
// the server suggests it, or the test's budget of waits is spent.
func (b *runBudget) exhausted(ctx workflow.Context) bool {
	if b.max > 0 && b.used >= b.max {
		return true
	}
	return workflow.GetInfo(ctx).GetContinueAsNewSuggested()
}

// spend counts one wait.
func (b *runBudget) spend() { b.used++ }

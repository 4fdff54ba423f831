package workflows

import (
	"fmt"
	"time"

	"github.com/billflow/billflow/contract"
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

	// changeBalanceAutoRecharge: after a sync that finds spendable below
	// the wallet's auto-recharge threshold and no auto top-up open, the
	// balance sync starts one (StartAutoRecharge).
	changeBalanceAutoRecharge = "balance-auto-recharge"

	// changeTenantNeedsAction: a failed load, renewal or claim parks the
	// tenant as needs_action; a "retry" signal or the next boundary re-runs it.
	changeTenantNeedsAction = "tenant-needs-action"

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

// patched reports whether this run takes the code path of change.
func patched(ctx workflow.Context, change string) bool {
	return workflow.GetVersion(ctx, change, workflow.DefaultVersion, 1) >= 1
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

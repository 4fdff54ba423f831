package workflows

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	sdkpb "go.temporal.io/api/sdk/v1"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/billflow/billflow/activities"
)

// fatal is a business failure: non-retryable, typed.
func fatal(msg string) error {
	return temporal.NewNonRetryableApplicationError(msg, activities.ErrValidation, nil)
}

// details reads the workflow's current details (what the Web UI shows).
func details(t *testing.T, env *testsuite.TestWorkflowEnvironment) string {
	t.Helper()
	v, err := env.QueryWorkflow("__temporal_workflow_metadata")
	require.NoError(t, err)
	var md sdkpb.WorkflowMetadata
	require.NoError(t, v.Get(&md))
	return md.GetCurrentDetails()
}

// continuedWith decodes the next run's input of a workflow that continued as new.
func continuedWith[T any](t *testing.T, env *testsuite.TestWorkflowEnvironment) T {
	t.Helper()
	require.True(t, env.IsWorkflowCompleted())
	var can *workflow.ContinueAsNewError
	require.True(t, errors.As(env.GetWorkflowError(), &can), "want continue-as-new, got %v", env.GetWorkflowError())
	var next T
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	return next
}

// failedCascade mocks a first attempt where every rail fails and the DM goes out.
func failedCascade(env *testsuite.TestWorkflowEnvironment, acts *activities.Activities) {
	env.OnActivity(acts.PayByNWC, mock.Anything, mock.Anything).Return(rail("skipped", "no NWC wallet connected", nil), nil).Maybe()
	env.OnActivity(acts.ChargeCard, mock.Anything, mock.Anything).Return(rail("failed", "card declined", nil), nil).Maybe()
	env.OnActivity(acts.SendPaymentDM, mock.Anything, mock.Anything).Return(activities.PaymentDMResult{Outcome: "sent"}, nil).Maybe()
}

// An invoice id the store does not know ends the workflow cleanly.
func TestInvoiceNotFoundCompletes(t *testing.T) {
	env, acts := newEnv(t, ts("2026-03-01T00:00:00Z"))
	env.OnActivity(acts.BeginCollection, mock.Anything, mock.Anything).Return(activities.BeginCollectionResult{},
		temporal.NewNonRetryableApplicationError("invoice nope not found", activities.ErrNotFound, nil)).Once()
	env.OnActivity(acts.PayByNWC, mock.Anything, mock.Anything).Never()
	env.ExecuteWorkflow(InvoicePayment, InvoicePaymentInput{InvoiceID: "nope"})
	res := result(t, env)
	require.Equal(t, "not_found", res.Status)
}

// Each activity of InvoicePayment fails for good once: the workflow records
// needs_action (store event, details row), keeps running, and after a retry
// (signal or the next timer) it is paid and completes.
func TestInvoiceBusinessErrorsNeverFailTheWorkflow(t *testing.T) {
	for _, tc := range []struct {
		name string
		// setup mocks the failing activity (once) and says how the test
		// recovers; pay sends the payment that ends the invoice.
		setup func(env *testsuite.TestWorkflowEnvironment, acts *activities.Activities)
		step  string
	}{
		{"BeginCollection", func(env *testsuite.TestWorkflowEnvironment, acts *activities.Activities) {
			env.OnActivity(acts.BeginCollection, mock.Anything, mock.Anything).Return(activities.BeginCollectionResult{}, fatal("invoice row locked by a migration")).Once()
		}, "begin collection"},
		{"SetInvoiceStatus", func(env *testsuite.TestWorkflowEnvironment, acts *activities.Activities) {
			env.OnActivity(acts.SetInvoiceStatus, mock.Anything, mock.Anything).Return(activities.InvoiceRef{}, fatal("bad status")).Once()
		}, "set the invoice's status"},
		{"ReportCollectionFailed", func(env *testsuite.TestWorkflowEnvironment, acts *activities.Activities) {
			env.OnActivity(acts.ReportCollectionFailed, mock.Anything, mock.Anything).Return(fatal("no notifier configured")).Once()
		}, "open the tenant's grace window"},
		{"Settle", func(env *testsuite.TestWorkflowEnvironment, acts *activities.Activities) {
			env.OnActivity(acts.Settle, mock.Anything, mock.Anything).Return(activities.SettleResult{}, fatal("amount in the wrong currency")).Once()
		}, "record payment via manual"},
		{"RecordAttempt", func(env *testsuite.TestWorkflowEnvironment, acts *activities.Activities) {
			env.OnActivity(acts.SendPaymentDM, mock.Anything, mock.Anything).Return(activities.PaymentDMResult{}, fatal("bad recipient")).Once()
			env.OnActivity(acts.RecordAttempt, mock.Anything, mock.Anything).Return(fatal("attempt table full")).Once()
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, acts := newEnv(t, ts("2026-03-01T00:00:00Z"))
			tc.setup(env, acts)
			env.OnActivity(acts.BeginCollection, mock.Anything, mock.Anything).Return(activities.BeginCollectionResult{
				Invoice: activities.InvoiceRef{ID: "inv-na", Total: 2500, Currency: "usd", Status: "collecting"}, Policy: activities.DefaultPaymentPolicy()}, nil)
			env.OnActivity(acts.SetInvoiceStatus, mock.Anything, mock.Anything).Return(
				func(_ context.Context, in activities.SetInvoiceStatusInput) (activities.InvoiceRef, error) {
					return activities.InvoiceRef{ID: "inv-na", Status: in.Status}, nil
				}).Maybe()
			env.OnActivity(acts.Reconcile, mock.Anything, mock.Anything).Return(activities.ReconcileResult{}, nil).Maybe()
			env.OnActivity(acts.ReportCollectionFailed, mock.Anything, mock.Anything).Return(nil).Maybe()
			env.OnActivity(acts.RecordAttempt, mock.Anything, mock.Anything).Return(nil).Maybe()
			failedCascade(env, acts)
			recorded := 0
			env.OnActivity(acts.RecordNeedsAction, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.NeedsActionInput) error {
				recorded++
				require.Equal(t, "inv-na", in.InvoiceID)
				require.Contains(t, in.Step, tc.step)
				return nil
			}).Maybe()
			env.OnActivity(acts.Settle, mock.Anything, mock.Anything).Return(settled("manual"), nil).Maybe()
			env.OnSignalExternalWorkflow(mock.Anything, mock.Anything, "", SignalInvoiceSettled, mock.Anything).Return(nil).Maybe()
			var mid string
			var midState InvoicePaymentResult
			env.RegisterDelayedCallback(func() {
				require.False(t, env.IsWorkflowCompleted(), "the workflow must still run")
				mid = details(t, env)
				v, err := env.QueryWorkflow(QueryInvoice)
				require.NoError(t, err)
				require.NoError(t, v.Get(&midState))
				env.SignalWorkflow(SignalPaid, MarkPaidRequest{Rail: "manual", Reference: "wire"})
			}, 30*time.Second)
			env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalRetry, nil) }, time.Minute+30*time.Second)
			env.ExecuteWorkflow(InvoicePayment, InvoicePaymentInput{InvoiceID: "inv-na", TenantID: testTenant, Total: 2500, Currency: "usd"})
			res := result(t, env)
			require.Equal(t, "paid", res.Status)
			if tc.step != "" {
				require.Equal(t, 1, recorded, "needs action recorded once")
				if tc.name != "Settle" { // Settle fails on the payment itself, after the check
					require.Contains(t, mid, "Needs action")
					require.NotNil(t, midState.NeedsAction)
				}
			}
		})
	}
}

// A card declined at once and then reported failed again by Stripe's
// webhook: the failure is listed once, and the reconcile wait keeps its one
// timer instead of starting a second identical one.
func TestInvoiceDeclineThenWebhookOneTimerOneRow(t *testing.T) {
	env, acts, in := invoiceEnv(t, "inv-once")
	env.OnActivity(acts.PayByNWC, mock.Anything, mock.Anything).Return(rail("skipped", "no NWC wallet connected", nil), nil).Once()
	env.OnActivity(acts.ChargeCard, mock.Anything, mock.Anything).Return(rail("failed", "card declined (insufficient_funds)", nil), nil).Once()
	env.OnActivity(acts.SendPaymentDM, mock.Anything, mock.Anything).Return(activities.PaymentDMResult{Outcome: "sent"}, nil).Once()
	env.OnActivity(acts.ReportCollectionFailed, mock.Anything, mock.Anything).Return(nil).Once()
	env.OnActivity(acts.Settle, mock.Anything, mock.Anything).Return(settled("manual"), nil).Once()
	timers := map[time.Duration]int{}
	env.SetOnTimerScheduledListener(func(_ string, d time.Duration) { timers[d.Round(time.Second)]++ })
	start := env.Now()
	var mid string
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(SignalCardFailed, CardFailed{PaymentIntentID: "pi_d", Reason: "insufficient_funds"})
	}, 20*time.Second)
	env.RegisterDelayedCallback(func() {
		mid = details(t, env)
		env.SignalWorkflow(SignalPaid, MarkPaidRequest{Rail: "manual", Reference: "wire"})
	}, 2*time.Hour)
	env.ExecuteWorkflow(InvoicePayment, in)
	result(t, env)
	require.Equal(t, 1, strings.Count(mid, "| card | failed |"), mid)
	total := 0
	for _, n := range timers {
		total += n
	}
	// Checks at 1m, 5m, 15m, 1h and the pending 6h one: five timers.
	require.Equal(t, 5, total, "timers: %v", timers)
	require.Equal(t, 2*time.Hour, env.Now().Sub(start))
}

// The wallet's answer is unknown: the card is not charged before the node
// says the NWC payment was made (here: it was).
func TestInvoiceUnknownNWCResolvedBeforeCard(t *testing.T) {
	env, acts, in := invoiceEnv(t, "inv-unk")
	unknown := rail("failed", "NWC: outcome unknown", nil)
	unknown.PaymentUnknown = true
	env.OnActivity(acts.PayByNWC, mock.Anything, mock.Anything).Return(unknown, nil).Once()
	env.OnActivity(acts.ResolveNWC, mock.Anything, activities.InvoiceInput{InvoiceID: "inv-unk"}).Return(
		activities.ResolveNWCResult{Checked: 1, Payment: &activities.PaymentReport{Rail: "nwc", Reference: testHash, AmountMsat: 50_000_000}}, nil).Once()
	env.OnActivity(acts.ChargeCard, mock.Anything, mock.Anything).Never()
	env.OnActivity(acts.SendPaymentDM, mock.Anything, mock.Anything).Never()
	env.OnActivity(acts.Settle, mock.Anything, mock.MatchedBy(func(s activities.SettleInput) bool { return s.Payment.Reference == testHash })).
		Return(settled("nwc"), nil).Once()
	env.ExecuteWorkflow(InvoicePayment, in)
	require.Equal(t, "nwc", result(t, env).Rail)
}

// The node cannot tell for good: the card is still not charged; the DM
// goes out and the invoice needs action.
func TestInvoiceUnresolvableNWCNeverChargesCard(t *testing.T) {
	env, acts, in := invoiceEnv(t, "inv-unr")
	env.OnActivity(acts.PayByNWC, mock.Anything, mock.Anything).Return(activities.RailAttemptResult{}, errors.New("worker lost")).Once()
	env.OnActivity(acts.ResolveNWC, mock.Anything, mock.Anything).Return(activities.ResolveNWCResult{}, fatal("node misconfigured")).Once()
	env.OnActivity(acts.ChargeCard, mock.Anything, mock.Anything).Never()
	env.OnActivity(acts.RecordNeedsAction, mock.Anything, mock.Anything).Return(nil).Once()
	env.OnActivity(acts.SendPaymentDM, mock.Anything, mock.Anything).Return(activities.PaymentDMResult{Outcome: "sent"}, nil).Once()
	env.OnActivity(acts.ReportCollectionFailed, mock.Anything, mock.Anything).Return(nil).Once()
	env.OnActivity(acts.Settle, mock.Anything, mock.Anything).Return(settled("manual"), nil).Once()
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalPaid, MarkPaidRequest{Rail: "manual", Reference: "wire"}) }, time.Hour)
	env.ExecuteWorkflow(InvoicePayment, in)
	require.Equal(t, "manual", result(t, env).Rail)
}

// Money reported for a paid invoice whose workflow had finished: a new run
// with only the invoice id reads the rest from the store, records the money
// (an overpayment), runs no cascade, signals nobody and completes.
func TestInvoiceLateReportRun(t *testing.T) {
	env, acts := newEnv(t, ts("2026-03-01T00:00:00Z"))
	env.OnActivity(acts.BeginCollection, mock.Anything, activities.InvoiceInput{InvoiceID: "inv-late", Rails: true}).Return(activities.BeginCollectionResult{
		Invoice: activities.InvoiceRef{ID: "inv-late", TenantID: testTenant, Total: 2500, Currency: "usd", Status: "paid", PaidRail: "stripe"},
		Policy:  activities.DefaultPaymentPolicy()}, nil).Once()
	env.OnActivity(acts.Settle, mock.Anything, mock.MatchedBy(func(s activities.SettleInput) bool { return s.Payment.Reference == "wire-2" })).
		Return(activities.SettleResult{Invoice: activities.InvoiceRef{Status: "paid", PaidRail: "stripe"}, Outcome: "overpayment", AlreadyPaid: true}, nil).Once()
	env.OnActivity(acts.PayByNWC, mock.Anything, mock.Anything).Never()
	env.OnActivity(acts.ChargeCard, mock.Anything, mock.Anything).Never()
	signalled := 0
	env.OnSignalExternalWorkflow(mock.Anything, mock.Anything, mock.Anything, mock.Anything, mock.Anything).Return(
		func(string, string, string, string, interface{}) error { signalled++; return nil }).Maybe()
	var upd updateResult
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(UpdateMarkPaid, "late", updateCallbacks(&upd), MarkPaidRequest{Rail: "manual", Reference: "wire-2", Amount: 2500, Currency: "usd"})
	}, 0)
	env.ExecuteWorkflow(InvoicePayment, InvoicePaymentInput{InvoiceID: "inv-late"})
	res := result(t, env)
	require.Equal(t, "paid", res.Status)
	require.NoError(t, upd.err)
	require.Equal(t, "overpayment", upd.value.(InvoicePaymentResult).Outcome)
	require.Zero(t, signalled, "the run that collected the invoice told the tenant already")
}

// A delivery that fails for good does not end the outbox: the next sweep
// delivers.
func TestOutboxSurvivesFailedDelivery(t *testing.T) {
	env, acts := newEnv(t, ts("2026-03-01T00:00:00Z"))
	env.RegisterWorkflow(EventOutbox)
	env.OnActivity(acts.DeliverEvents, mock.Anything, mock.Anything).Return(activities.DeliverEventsResult{}, fatal("webhook URL invalid")).Once()
	delivered := 0
	env.OnActivity(acts.DeliverEvents, mock.Anything, mock.Anything).Return(func(context.Context, activities.DeliverEventsInput) (activities.DeliverEventsResult, error) {
		delivered++
		return activities.DeliverEventsResult{Delivered: 1}, nil
	})
	env.RegisterDelayedCallback(func() {
		require.False(t, env.IsWorkflowCompleted(), "the outbox still runs")
		env.CancelWorkflow()
	}, OutboxSweep+time.Minute)
	env.ExecuteWorkflow(EventOutbox, EventOutboxInput{})
	require.True(t, env.IsWorkflowCompleted())
	var canceled *temporal.CanceledError
	require.ErrorAs(t, env.GetWorkflowError(), &canceled)
	require.Equal(t, 1, delivered, "the sweep after the failure delivered")
}

// Continue-as-new at the invoice's waits keeps everything the run knows: a
// processing card charge (so no dunning retry charges again), the attempt
// table, the reconcile count; card failures taken off the channel at the
// end of a run are handled by the next.
func TestInvoiceContinueAsNewKeepsState(t *testing.T) {
	env, acts, in := invoiceEnv(t, "inv-can")
	env.OnActivity(acts.PayByNWC, mock.Anything, mock.Anything).Return(rail("skipped", "no NWC wallet connected", nil), nil).Once()
	env.OnActivity(acts.ChargeCard, mock.Anything, mock.Anything).Return(rail("processing", "card charge processing", nil), nil).Once()
	env.OnSignalExternalWorkflow(mock.Anything, mock.Anything, "", SignalInvoiceSettled, mock.Anything).Return(nil).Maybe()
	in.ContinueAfter = 1
	env.ExecuteWorkflow(InvoicePayment, in)
	next := continuedWith[InvoicePaymentInput](t, env)
	require.NotNil(t, next.Carry)
	require.True(t, next.Carry.CardPending, "the processing charge survives continue-as-new")
	require.Equal(t, 1, next.Carry.Reconciled)
	require.Len(t, next.Carry.Attempts, 2)
	require.Equal(t, "awaiting_payment", next.Carry.Status)

	// Run 2: Stripe's failure, taken off the channel as run 1 ended, is
	// handled first: the DM goes out and the grace window opens; the card
	// is not charged again in this run.
	next.Carry.CardFailures = []CardFailed{{PaymentIntentID: "pi_can", Reason: "expired_card"}}
	env, acts = newEnv(t, ts("2026-03-01T00:01:00Z"))
	env.OnActivity(acts.SetInvoiceStatus, mock.Anything, mock.Anything).Return(activities.InvoiceRef{ID: "inv-can", Status: "awaiting_payment"}, nil).Maybe()
	env.OnActivity(acts.Reconcile, mock.Anything, mock.Anything).Return(activities.ReconcileResult{}, nil).Maybe()
	env.OnActivity(acts.BeginCollection, mock.Anything, mock.Anything).Never()
	env.OnActivity(acts.ChargeCard, mock.Anything, mock.Anything).Never()
	env.OnActivity(acts.SendPaymentDM, mock.Anything, mock.MatchedBy(func(d activities.PaymentDMInput) bool {
		return strings.Contains(d.Failure, "expired_card")
	})).Return(activities.PaymentDMResult{Outcome: "sent"}, nil).Once()
	env.OnActivity(acts.ReportCollectionFailed, mock.Anything, mock.Anything).Return(nil).Once()
	env.ExecuteWorkflow(InvoicePayment, next)
	next = continuedWith[InvoicePaymentInput](t, env)
	env.AssertExpectations(t)
	require.False(t, next.Carry.CardPending)
	require.True(t, next.Carry.GraceOpened)
	require.NotNil(t, next.Carry.FirstFailure)
	require.Equal(t, 1, strings.Count(fmtRows(next.Carry.Attempts), "card:failed"), "the processing row became the failure, listed once")

	// Run 3: paid by a report carried from run 2's end.
	next.Carry.Reports = []MarkPaidRequest{{Rail: "manual", Reference: "wire"}}
	env, acts = newEnv(t, ts("2026-03-01T00:10:00Z"))
	env.OnActivity(acts.Settle, mock.Anything, mock.Anything).Return(settled("manual"), nil).Once()
	env.OnSignalExternalWorkflow(mock.Anything, mock.Anything, "", SignalInvoiceSettled, mock.Anything).Return(nil).Maybe()
	env.ExecuteWorkflow(InvoicePayment, next)
	require.Equal(t, "manual", result(t, env).Rail)
}

func fmtRows(rows []AttemptRow) string {
	var b strings.Builder
	for _, r := range rows {
		b.WriteString(r.Rail + ":" + r.Outcome + " ")
	}
	return b.String()
}

// The signal path of a late report (signal-with-start of a run with only
// the invoice id): the money is recorded before the run completes.
func TestInvoiceLateReportBySignal(t *testing.T) {
	env, acts := newEnv(t, ts("2026-03-01T00:00:00Z"))
	env.OnActivity(acts.BeginCollection, mock.Anything, mock.Anything).Return(activities.BeginCollectionResult{
		Invoice: activities.InvoiceRef{ID: "inv-lsig", TenantID: testTenant, Total: 2500, Currency: "usd", Status: "void"},
		Policy:  activities.DefaultPaymentPolicy()}, nil).Once()
	env.OnActivity(acts.Settle, mock.Anything, mock.MatchedBy(func(s activities.SettleInput) bool { return s.Payment.Reference == "pi_after_void" })).
		Return(activities.SettleResult{Invoice: activities.InvoiceRef{Status: "void"}, Outcome: "overpayment"}, nil).Once()
	env.OnActivity(acts.PayByNWC, mock.Anything, mock.Anything).Never()
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(SignalPaid, MarkPaidRequest{Rail: "stripe", Reference: "pi_after_void", Amount: 2500, Currency: "usd"})
	}, 0)
	env.ExecuteWorkflow(InvoicePayment, InvoicePaymentInput{InvoiceID: "inv-lsig"})
	require.Equal(t, "void", result(t, env).Status)
}

// NWC pays only part of the invoice (the store reports a partial payment):
// the invoice stays open and the card is charged in the same attempt (the
// card activity charges what is still due).
func TestInvoicePartialPaymentContinuesCascade(t *testing.T) {
	env, acts, in := invoiceEnv(t, "inv-part")
	env.OnActivity(acts.PayByNWC, mock.Anything, mock.Anything).Return(rail("paid", "paid from the tenant's wallet",
		&activities.PaymentReport{Rail: "nwc", Reference: testHash, AmountMsat: 10_000_000}), nil).Once()
	env.OnActivity(acts.Settle, mock.Anything, mock.MatchedBy(func(s activities.SettleInput) bool { return s.Payment.Rail == "nwc" })).
		Return(activities.SettleResult{Invoice: activities.InvoiceRef{ID: "inv-part", Status: "collecting"}, Outcome: "partial"}, nil).Once()
	env.OnActivity(acts.ChargeCard, mock.Anything, activities.RailAttemptInput{InvoiceID: "inv-part", Attempt: 1}).
		Return(rail("paid", "charged the saved card", &activities.PaymentReport{Rail: "stripe", Reference: "pi_rest", Amount: 2000, Currency: "usd"}), nil).Once()
	env.OnActivity(acts.Settle, mock.Anything, mock.MatchedBy(func(s activities.SettleInput) bool { return s.Payment.Rail == "stripe" })).
		Return(settled("stripe"), nil).Once()
	env.OnActivity(acts.SendPaymentDM, mock.Anything, mock.Anything).Never()
	// Bound the test: an invoice left waiting for the remainder is cancelled.
	env.RegisterDelayedCallback(env.CancelWorkflow, time.Hour)
	env.ExecuteWorkflow(InvoicePayment, in)
	res := result(t, env)
	require.Equal(t, "paid", res.Status)
	require.Equal(t, "stripe", res.Rail)
}

// The wallet paid but the payment cannot be recorded: the card is not
// charged, the report is kept and retried at the next check, and the
// checks are spread out on the reconcile schedule (not fired back to back).
func TestInvoiceRailPaidSettleFailsKeepsReport(t *testing.T) {
	env, acts, in := invoiceEnv(t, "inv-keep")
	pay := &activities.PaymentReport{Rail: "nwc", Reference: testHash, AmountMsat: 50_000_000}
	env.OnActivity(acts.PayByNWC, mock.Anything, mock.Anything).Return(rail("paid", "paid from the tenant's wallet", pay), nil).Once()
	env.OnActivity(acts.Settle, mock.Anything, mock.Anything).Return(activities.SettleResult{}, fatal("store rejected the report")).Once()
	env.OnActivity(acts.RecordNeedsAction, mock.Anything, mock.Anything).Return(nil).Once()
	env.OnActivity(acts.Settle, mock.Anything, mock.Anything).Return(settled("nwc"), nil).Once()
	env.OnActivity(acts.ChargeCard, mock.Anything, mock.Anything).Never()
	env.OnActivity(acts.SendPaymentDM, mock.Anything, mock.Anything).Never()
	env.RegisterDelayedCallback(env.CancelWorkflow, 24*time.Hour)
	start := env.Now()
	env.ExecuteWorkflow(InvoicePayment, in)
	require.Equal(t, "nwc", result(t, env).Rail)
	require.Equal(t, time.Minute, env.Now().Sub(start), "the report was recorded at the first check, a minute on")
}

package workflows

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	sdkpb "go.temporal.io/api/sdk/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/billflow/billflow/activities"
)

const testHash = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

// invoiceEnv is a testsuite environment for one invoice with the activities
// every path uses mocked: begin, status changes, reconciliation (finding
// nothing unless a test says otherwise), and the settlement signals.
func invoiceEnv(t *testing.T, id string, reconcile ...func(context.Context, activities.InvoiceInput) (activities.ReconcileResult, error)) (*testsuite.TestWorkflowEnvironment, *activities.Activities, InvoicePaymentInput) {
	env, acts := newEnv(t, ts("2026-03-01T00:00:00Z"))
	env.OnActivity(acts.BeginCollection, mock.Anything, activities.InvoiceInput{InvoiceID: id, Rails: true}).Return(activities.BeginCollectionResult{
		Invoice: activities.InvoiceRef{ID: id, Total: 2500, Currency: "usd", Status: "collecting"}, Policy: activities.DefaultPaymentPolicy()}, nil).Once()
	env.OnActivity(acts.SetInvoiceStatus, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.SetInvoiceStatusInput) (activities.InvoiceRef, error) {
			return activities.InvoiceRef{ID: id, Status: in.Status}, nil
		}).Maybe()
	if len(reconcile) > 0 {
		env.OnActivity(acts.Reconcile, mock.Anything, mock.Anything).Return(reconcile[0])
	} else {
		env.OnActivity(acts.Reconcile, mock.Anything, mock.Anything).Return(activities.ReconcileResult{}, nil).Maybe()
	}
	env.OnSignalExternalWorkflow(mock.Anything, TenantWorkflowID(testTenant), "", SignalInvoiceSettled, mock.Anything).Return(nil).Once()
	env.OnSignalExternalWorkflow(mock.Anything, GraceWorkflowID(testTenant), "", SignalInvoiceSettled, mock.Anything).Return(nil).Once()
	return env, acts, InvoicePaymentInput{InvoiceID: id, TenantID: testTenant, Total: 2500, Currency: "usd"}
}

func rail(outcome, summary string, p *activities.PaymentReport) activities.RailAttemptResult {
	return activities.RailAttemptResult{Outcome: outcome, Summary: summary, Payment: p}
}

func settled(rail string) activities.SettleResult {
	return activities.SettleResult{Invoice: activities.InvoiceRef{Status: "paid", PaidRail: rail}, Outcome: "applied"}
}

func result(t *testing.T, env *testsuite.TestWorkflowEnvironment) InvoicePaymentResult {
	t.Helper()
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	env.AssertExpectations(t)
	var res InvoicePaymentResult
	require.NoError(t, env.GetWorkflowResult(&res))
	return res
}

func TestInvoiceCascadeNWCPays(t *testing.T) {
	env, acts, in := invoiceEnv(t, "inv-nwc")
	pay := &activities.PaymentReport{Rail: "nwc", Reference: testHash, AmountMsat: 50_000_000}
	env.OnActivity(acts.PayByNWC, mock.Anything, activities.RailAttemptInput{InvoiceID: "inv-nwc", Attempt: 1}).Return(rail("paid", "paid from the tenant's wallet", pay), nil).Once()
	env.OnActivity(acts.Settle, mock.Anything, mock.MatchedBy(func(s activities.SettleInput) bool {
		return s.Payment == *pay && s.InvoiceID == "inv-nwc"
	})).Return(settled("nwc"), nil).Once()
	env.OnActivity(acts.ChargeCard, mock.Anything, mock.Anything).Never()
	env.OnActivity(acts.SendPaymentDM, mock.Anything, mock.Anything).Never()
	env.OnActivity(acts.ReportCollectionFailed, mock.Anything, mock.Anything).Never()
	env.ExecuteWorkflow(InvoicePayment, in)
	res := result(t, env)
	require.Equal(t, "paid", res.Status)
	require.Equal(t, "nwc", res.Rail)
	require.Equal(t, testHash, res.Reference)
}

func TestInvoiceCascadeNWCFailsCardPays(t *testing.T) {
	env, acts, in := invoiceEnv(t, "inv-card")
	env.OnActivity(acts.PayByNWC, mock.Anything, mock.Anything).Return(rail("failed", "NWC: INSUFFICIENT_BALANCE", nil), nil).Once()
	env.OnActivity(acts.ChargeCard, mock.Anything, activities.RailAttemptInput{InvoiceID: "inv-card", Attempt: 1}).
		Return(rail("paid", "charged the saved card", &activities.PaymentReport{Rail: "stripe", Reference: "pi_1", Amount: 2500, Currency: "usd"}), nil).Once()
	env.OnActivity(acts.Settle, mock.Anything, mock.Anything).Return(settled("stripe"), nil).Once()
	env.OnActivity(acts.SendPaymentDM, mock.Anything, mock.Anything).Never()
	env.OnActivity(acts.ReportCollectionFailed, mock.Anything, mock.Anything).Never()
	env.ExecuteWorkflow(InvoicePayment, in)
	res := result(t, env)
	require.Equal(t, "stripe", res.Rail)
}

// Both automatic rails fail: the DM carries the last failure, the grace
// window opens once, reconciliation runs on its timers, and the invoice is
// paid when the Lightning stream reports it.
func TestInvoiceCascadeBothFailThenPaidByStream(t *testing.T) {
	reconciled := 0
	env, acts, in := invoiceEnv(t, "inv-dm", func(_ context.Context, _ activities.InvoiceInput) (activities.ReconcileResult, error) {
		reconciled++
		return activities.ReconcileResult{}, nil
	})
	env.OnActivity(acts.PayByNWC, mock.Anything, mock.Anything).Return(rail("failed", "NWC: INSUFFICIENT_BALANCE", nil), nil).Once()
	env.OnActivity(acts.ChargeCard, mock.Anything, mock.Anything).Return(rail("failed", "card declined (insufficient_funds)", nil), nil).Once()
	env.OnActivity(acts.SendPaymentDM, mock.Anything, activities.PaymentDMInput{InvoiceID: "inv-dm", Attempt: 1, Failure: "card declined (insufficient_funds)"}).
		Return(activities.PaymentDMResult{Outcome: "sent", EventID: "ev1", Relays: 1}, nil).Once()
	env.OnActivity(acts.ReportCollectionFailed, mock.Anything, mock.MatchedBy(func(c activities.CollectionFailedInput) bool {
		return c.TenantID == testTenant && c.InvoiceID == "inv-dm" && c.GraceWindow == 7*24*time.Hour && c.BanFactor == 50
	})).Return(nil).Once()
	env.OnActivity(acts.Settle, mock.Anything, mock.MatchedBy(func(s activities.SettleInput) bool { return s.Payment.Rail == "lightning" })).
		Return(settled("lightning"), nil).Once()
	var details string
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow("__temporal_workflow_metadata")
		require.NoError(t, err)
		var md sdkpb.WorkflowMetadata
		require.NoError(t, v.Get(&md))
		details = md.GetCurrentDetails()
		env.SignalWorkflow(SignalPaid, MarkPaidRequest{Rail: "lightning", Reference: testHash, AmountMsat: 1000})
	}, 2*time.Hour)
	env.ExecuteWorkflow(InvoicePayment, in)
	res := result(t, env)
	require.Equal(t, "lightning", res.Rail)
	require.Equal(t, 4, reconciled, "checks at 1m, 5m, 15m and 1h before the payment at 2h")
	require.Contains(t, details, "| 1 | nwc | failed | NWC: INSUFFICIENT_BALANCE |")
	require.Contains(t, details, "| 1 | card | failed | card declined (insufficient_funds) |")
	require.Contains(t, details, "| 1 | dm | sent |")
}

// The automatic rails are retried on days 1, 3 and 5 after the first
// failure, each time with a reminder DM; the grace window opens only once.
func TestInvoiceDunningRetriesWithReminders(t *testing.T) {
	env, acts, in := invoiceEnv(t, "inv-dun")
	var attempts []int
	env.OnActivity(acts.PayByNWC, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.RailAttemptInput) (activities.RailAttemptResult, error) {
		attempts = append(attempts, in.Attempt)
		if in.Attempt == 3 {
			return rail("paid", "paid", &activities.PaymentReport{Rail: "nwc", Reference: testHash}), nil
		}
		return rail("skipped", "no NWC wallet connected", nil), nil
	}).Times(3)
	env.OnActivity(acts.ChargeCard, mock.Anything, mock.Anything).Return(rail("failed", "card declined", nil), nil).Twice()
	var reminders []bool
	env.OnActivity(acts.SendPaymentDM, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.PaymentDMInput) (activities.PaymentDMResult, error) {
		reminders = append(reminders, in.Reminder)
		return activities.PaymentDMResult{Outcome: "sent"}, nil
	}).Twice()
	env.OnActivity(acts.ReportCollectionFailed, mock.Anything, mock.Anything).Return(nil).Once()
	env.OnActivity(acts.Settle, mock.Anything, mock.Anything).Return(settled("nwc"), nil).Once()
	start := env.Now()
	env.ExecuteWorkflow(InvoicePayment, in)
	res := result(t, env)
	require.Equal(t, "nwc", res.Rail)
	require.Equal(t, []int{1, 2, 3}, attempts)
	require.Equal(t, []bool{false, true}, reminders)
	require.Equal(t, 72*time.Hour, env.Now().Sub(start).Round(time.Hour), "paid at the day-3 retry")
}

// A processing card charge holds the cascade (no DM) until Stripe says it
// failed; then the DM goes out and the grace window opens.
func TestInvoiceCardProcessingThenFailed(t *testing.T) {
	env, acts, in := invoiceEnv(t, "inv-proc")
	env.OnActivity(acts.PayByNWC, mock.Anything, mock.Anything).Return(rail("skipped", "no NWC wallet connected", nil), nil).Once()
	env.OnActivity(acts.ChargeCard, mock.Anything, mock.Anything).Return(rail("processing", "card charge processing", nil), nil).Once()
	dmAt := time.Time{}
	env.OnActivity(acts.SendPaymentDM, mock.Anything, mock.MatchedBy(func(d activities.PaymentDMInput) bool {
		return strings.Contains(d.Failure, "card charge failed: insufficient_funds")
	})).Return(func(_ context.Context, _ activities.PaymentDMInput) (activities.PaymentDMResult, error) {
		dmAt = env.Now()
		return activities.PaymentDMResult{Outcome: "sent"}, nil
	}).Once()
	env.OnActivity(acts.ReportCollectionFailed, mock.Anything, mock.Anything).Return(nil).Once()
	env.OnActivity(acts.Settle, mock.Anything, mock.Anything).Return(settled("manual"), nil).Once()
	start := env.Now()
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(SignalCardFailed, CardFailed{PaymentIntentID: "pi_p", Reason: "insufficient_funds"})
	}, 10*time.Minute)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(SignalPaid, MarkPaidRequest{Rail: "manual", Reference: "wire"})
	}, 3*time.Hour)
	env.ExecuteWorkflow(InvoicePayment, in)
	res := result(t, env)
	require.Equal(t, "manual", res.Rail)
	require.Equal(t, 10*time.Minute, dmAt.Sub(start).Round(time.Minute))
}

// A dropped webhook: reconciliation finds the succeeded PaymentIntent.
func TestInvoicePaidByReconciliation(t *testing.T) {
	calls := 0
	env, acts, in := invoiceEnv(t, "inv-rec", func(_ context.Context, _ activities.InvoiceInput) (activities.ReconcileResult, error) {
		calls++
		if calls < 2 {
			return activities.ReconcileResult{Checked: 1}, nil
		}
		return activities.ReconcileResult{Checked: 1, Found: []activities.PaymentReport{{Rail: "stripe", Reference: "pi_r", Amount: 2500, Currency: "usd"}}}, nil
	})
	env.OnActivity(acts.PayByNWC, mock.Anything, mock.Anything).Return(rail("skipped", "no NWC wallet connected", nil), nil).Once()
	env.OnActivity(acts.ChargeCard, mock.Anything, mock.Anything).Return(rail("processing", "card charge processing", nil), nil).Once()
	env.OnActivity(acts.Settle, mock.Anything, mock.MatchedBy(func(s activities.SettleInput) bool { return s.Payment.Reference == "pi_r" })).Return(settled("stripe"), nil).Once()
	env.OnActivity(acts.SendPaymentDM, mock.Anything, mock.Anything).Never()
	start := env.Now()
	env.ExecuteWorkflow(InvoicePayment, in)
	res := result(t, env)
	require.Equal(t, "stripe", res.Rail)
	require.Equal(t, 5*time.Minute, env.Now().Sub(start).Round(time.Minute), "found by the 5-minute check")
}

// The application reports payment through the mark-paid update; invalid
// reports are rejected before they enter history; a second, different
// payment is recorded as an overpayment.
func TestInvoiceMarkPaidUpdate(t *testing.T) {
	env, acts, in := invoiceEnv(t, "inv-upd")
	env.OnActivity(acts.PayByNWC, mock.Anything, mock.Anything).Return(rail("skipped", "no NWC wallet connected", nil), nil).Once()
	env.OnActivity(acts.ChargeCard, mock.Anything, mock.Anything).Return(rail("skipped", "no card on file", nil), nil).Once()
	env.OnActivity(acts.SendPaymentDM, mock.Anything, mock.Anything).Return(activities.PaymentDMResult{Outcome: "sent"}, nil).Once()
	env.OnActivity(acts.ReportCollectionFailed, mock.Anything, mock.Anything).Return(nil).Once()
	env.OnActivity(acts.Settle, mock.Anything, mock.MatchedBy(func(s activities.SettleInput) bool { return s.Payment.Reference == "wire-42" })).
		Return(settled("manual"), nil).Once()
	env.OnActivity(acts.Settle, mock.Anything, mock.MatchedBy(func(s activities.SettleInput) bool { return s.Payment.Reference == "pi_late" })).
		Return(activities.SettleResult{Invoice: activities.InvoiceRef{Status: "paid", PaidRail: "manual"}, Outcome: "overpayment", AlreadyPaid: true}, nil).Once()
	var bad, badHash, first updateResult
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(UpdateMarkPaid, "bad", updateCallbacks(&bad), MarkPaidRequest{Rail: "cash-in-envelope"})
		env.UpdateWorkflow(UpdateMarkPaid, "bad-hash", updateCallbacks(&badHash), MarkPaidRequest{Rail: "lightning", Reference: "nope"})
	}, 24*time.Hour+time.Minute)
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(UpdateMarkPaid, "first", updateCallbacks(&first), MarkPaidRequest{Rail: "manual", Reference: "wire-42"})
		env.SignalWorkflow(SignalPaid, MarkPaidRequest{Rail: "stripe", Reference: "pi_late"})
	}, 48*time.Hour)
	// Day 1 dunning retry happens before the payment.
	env.OnActivity(acts.PayByNWC, mock.Anything, mock.Anything).Return(rail("skipped", "", nil), nil).Maybe()
	env.OnActivity(acts.ChargeCard, mock.Anything, mock.Anything).Return(rail("skipped", "", nil), nil).Maybe()
	env.OnActivity(acts.SendPaymentDM, mock.Anything, mock.Anything).Return(activities.PaymentDMResult{Outcome: "sent"}, nil).Maybe()
	env.ExecuteWorkflow(InvoicePayment, in)
	res := result(t, env)
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, bad.rejected, &appErr)
	require.Contains(t, appErr.Error(), "cash-in-envelope")
	require.ErrorAs(t, badHash.rejected, &appErr)
	require.Contains(t, appErr.Error(), "payment hash")
	require.NoError(t, first.err)
	require.Equal(t, "manual", first.value.(InvoicePaymentResult).Rail)
	require.Equal(t, "manual", res.Rail)
	require.False(t, res.AlreadyPaid)
}

// A DM that cannot be sent is recorded and does not fail the invoice.
func TestInvoiceDMFailureIsRecorded(t *testing.T) {
	env, acts, in := invoiceEnv(t, "inv-nodm")
	env.OnActivity(acts.PayByNWC, mock.Anything, mock.Anything).Return(rail("skipped", "", nil), nil).Once()
	env.OnActivity(acts.ChargeCard, mock.Anything, mock.Anything).Return(rail("skipped", "", nil), nil).Once()
	env.OnActivity(acts.SendPaymentDM, mock.Anything, mock.Anything).Return(activities.PaymentDMResult{}, temporal.NewApplicationError("no relay accepted the DM", "RelayError"))
	env.OnActivity(acts.RecordAttempt, mock.Anything, mock.MatchedBy(func(r activities.RecordAttemptInput) bool {
		return r.Rail == "dm" && r.Outcome == "failed" && strings.Contains(r.Detail, "no relay accepted the DM")
	})).Return(nil).Once()
	env.OnActivity(acts.ReportCollectionFailed, mock.Anything, mock.Anything).Return(nil).Once()
	env.OnActivity(acts.Settle, mock.Anything, mock.Anything).Return(settled("manual"), nil).Once()
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalPaid, MarkPaidRequest{Rail: "manual"}) }, time.Hour)
	env.SetTestTimeout(time.Minute)
	env.ExecuteWorkflow(InvoicePayment, in)
	require.Equal(t, "manual", result(t, env).Rail)
}

// Voiding: the close-invoice update closes the invoice and ends collection.
func TestInvoiceVoided(t *testing.T) {
	env, acts, in := invoiceEnv(t, "inv-void")
	env.OnActivity(acts.PayByNWC, mock.Anything, mock.Anything).Return(rail("skipped", "", nil), nil).Once()
	env.OnActivity(acts.ChargeCard, mock.Anything, mock.Anything).Return(rail("skipped", "", nil), nil).Once()
	env.OnActivity(acts.SendPaymentDM, mock.Anything, mock.Anything).Return(activities.PaymentDMResult{Outcome: "sent"}, nil).Once()
	env.OnActivity(acts.ReportCollectionFailed, mock.Anything, mock.Anything).Return(nil).Once()
	env.OnActivity(acts.CloseInvoice, mock.Anything, mock.MatchedBy(func(c activities.CloseInvoiceInput) bool {
		return c.Status == "void" && c.Reason == "duplicate"
	})).Return(activities.InvoiceRef{ID: "inv-void", Status: "void"}, nil).Once()
	var bad, ok updateResult
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(UpdateCloseInvoice, "bad", updateCallbacks(&bad), CloseInvoiceRequest{Status: "deleted"})
		env.UpdateWorkflow(UpdateCloseInvoice, "ok", updateCallbacks(&ok), CloseInvoiceRequest{Status: "void", Reason: "duplicate"})
	}, 2*time.Hour)
	env.ExecuteWorkflow(InvoicePayment, in)
	res := result(t, env)
	require.Equal(t, "void", res.Status)
	require.Error(t, bad.rejected)
	require.NoError(t, ok.err)
}

// A dunning retry never charges the card again while an earlier charge is
// still processing: that charge may yet succeed.
func TestInvoiceDunningSkipsCardWhileChargeProcessing(t *testing.T) {
	env, acts, in := invoiceEnv(t, "inv-pend")
	env.OnActivity(acts.PayByNWC, mock.Anything, mock.Anything).Return(rail("skipped", "no NWC wallet connected", nil), nil).Times(3)
	charges := 0
	env.OnActivity(acts.ChargeCard, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.RailAttemptInput) (activities.RailAttemptResult, error) {
		charges++
		if in.Attempt == 1 {
			return rail("failed", "card declined", nil), nil
		}
		return rail("processing", "card charge processing", nil), nil
	}).Twice()
	env.OnActivity(acts.SendPaymentDM, mock.Anything, mock.Anything).Return(activities.PaymentDMResult{Outcome: "sent"}, nil).Twice()
	env.OnActivity(acts.ReportCollectionFailed, mock.Anything, mock.Anything).Return(nil).Once()
	env.OnActivity(acts.Settle, mock.Anything, mock.Anything).Return(settled("stripe"), nil).Once()
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(SignalPaid, MarkPaidRequest{Rail: "stripe", Reference: "pi_2"})
	}, 100*time.Hour)
	env.ExecuteWorkflow(InvoicePayment, in)
	require.Equal(t, "stripe", result(t, env).Rail)
	require.Equal(t, 2, charges, "attempt 3 (day 3) skipped the card")
}

package workflows

import (
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"

	"github.com/billflow/billflow/activities"
)

func TestInvoicePaymentWaitsForPaymentAndSettlesOnce(t *testing.T) {
	env, acts := newEnv(t, ts("2026-03-01T00:00:00Z"))
	in := InvoicePaymentInput{InvoiceID: "inv-1", TenantID: testTenant, Total: 2500, Currency: "usd"}
	env.OnActivity(acts.MarkAwaitingPayment, mock.Anything, activities.InvoiceInput{InvoiceID: "inv-1"}).
		Return(activities.InvoiceRef{ID: "inv-1", Total: 2500, Currency: "usd", Status: "awaiting_payment"}, nil).Once()
	env.OnActivity(acts.Settle, mock.Anything, mock.MatchedBy(func(s activities.SettleInput) bool {
		return s.InvoiceID == "inv-1" && s.Rail == "manual" && s.Reference == "wire-42"
	})).Return(activities.SettleResult{Invoice: activities.InvoiceRef{ID: "inv-1", Status: "paid", PaidRail: "manual"}}, nil).Once()
	env.OnSignalExternalWorkflow(mock.Anything, TenantWorkflowID(testTenant), "", SignalInvoiceSettled,
		InvoiceSettled{InvoiceID: "inv-1", Status: "paid"}).Return(nil).Once()
	env.OnSignalExternalWorkflow(mock.Anything, GraceWorkflowID(testTenant), "", SignalInvoiceSettled,
		InvoiceSettled{InvoiceID: "inv-1", Status: "paid"}).Return(nil).Once()

	var bad, first updateResult
	var waiting InvoicePaymentResult
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(QueryInvoice)
		require.NoError(t, err)
		require.NoError(t, v.Get(&waiting))
		env.UpdateWorkflow(UpdateMarkPaid, "bad", updateCallbacks(&bad), MarkPaidRequest{Rail: "cash-in-envelope"})
	}, 24*time.Hour)
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(UpdateMarkPaid, "first", updateCallbacks(&first), MarkPaidRequest{Rail: "manual", Reference: "wire-42"})
		// A late duplicate report on the signal path changes nothing.
		env.SignalWorkflow(SignalPaid, MarkPaidRequest{Rail: "stripe", Reference: "pi_1"})
	}, 72*time.Hour)
	env.ExecuteWorkflow(InvoicePayment, in)

	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	env.AssertExpectations(t)
	require.Equal(t, "awaiting_payment", waiting.Status)
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, bad.rejected, &appErr)
	require.Contains(t, appErr.Error(), "cash-in-envelope")
	require.NoError(t, first.err)
	require.Equal(t, "manual", first.value.(InvoicePaymentResult).Rail)
	var res InvoicePaymentResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Equal(t, "paid", res.Status)
	require.Equal(t, "manual", res.Rail)
	require.False(t, res.AlreadyPaid)
}

func TestInvoicePaymentSignalPathAndAlreadyPaid(t *testing.T) {
	env, acts := newEnv(t, ts("2026-03-01T00:00:00Z"))
	env.OnActivity(acts.MarkAwaitingPayment, mock.Anything, mock.Anything).
		Return(activities.InvoiceRef{ID: "inv-2", Status: "awaiting_payment"}, nil).Once()
	// The store reports an earlier payment: the first payment stands.
	env.OnActivity(acts.Settle, mock.Anything, mock.Anything).
		Return(activities.SettleResult{Invoice: activities.InvoiceRef{ID: "inv-2", Status: "paid", PaidRail: "nwc"}, AlreadyPaid: true}, nil).Once()
	env.OnSignalExternalWorkflow(mock.Anything, mock.Anything, "", SignalInvoiceSettled, mock.Anything).Return(nil).Twice()
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(SignalPaid, MarkPaidRequest{Rail: "bogus"}) // ignored: invalid
		env.SignalWorkflow(SignalPaid, MarkPaidRequest{Rail: "stripe", Reference: "pi_9"})
	}, time.Hour)
	env.ExecuteWorkflow(InvoicePayment, InvoicePaymentInput{InvoiceID: "inv-2", TenantID: testTenant, Total: 100, Currency: "usd"})
	require.NoError(t, env.GetWorkflowError())
	env.AssertExpectations(t)
	var res InvoicePaymentResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Equal(t, "nwc", res.Rail)
	require.True(t, res.AlreadyPaid)
}

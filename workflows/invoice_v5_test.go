package workflows

import (
	"testing"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/billflow/billflow/activities"
)

// invoiceV5Env is invoiceEnv with BeginCollection's answer chosen by the
// test: rails is whether it must be asked about the rails (invoice-v5),
// nwcSkip its answer. The card pays.
func invoiceV5Env(t *testing.T, id string, rails bool, nwcSkip string) (*testsuite.TestWorkflowEnvironment, *activities.Activities) {
	env, acts := newEnv(t, ts("2026-03-01T00:00:00Z"))
	env.OnActivity(acts.BeginCollection, mock.Anything, activities.InvoiceInput{InvoiceID: id, Rails: rails}).Return(activities.BeginCollectionResult{
		Invoice: activities.InvoiceRef{ID: id, Total: 2500, Currency: "usd", Status: "collecting"}, Policy: activities.DefaultPaymentPolicy(),
		NWCSkip: nwcSkip}, nil).Once()
	env.OnActivity(acts.Settle, mock.Anything, mock.Anything).Return(settled("stripe"), nil).Once()
	env.OnSignalExternalWorkflow(mock.Anything, TenantWorkflowID(testTenant), "", SignalInvoiceSettled, mock.Anything).Return(nil).Once()
	env.OnSignalExternalWorkflow(mock.Anything, GraceWorkflowID(testTenant), "", SignalInvoiceSettled, mock.Anything).Return(nil).Maybe()
	return env, acts
}

var cardPaid = rail("paid", "charged the saved card", &activities.PaymentReport{Rail: "stripe", Reference: "pi_1", Amount: 2500, Currency: "usd"})

// invoice-v5: a tenant without an NWC connection (BeginCollection says so)
// is not sent through PayByNWC on the first attempt; the card is charged
// and records the skipped NWC row (NWCSkipped), so the attempt table is
// the one PayByNWC would have left.
func TestInvoiceV5SkipsNWCWithoutAConnection(t *testing.T) {
	const id = "inv-v5-card"
	env, acts := invoiceV5Env(t, id, true, "no NWC wallet connected")
	env.OnActivity(acts.PayByNWC, mock.Anything, mock.Anything).Never()
	env.OnActivity(acts.ChargeCard, mock.Anything, activities.RailAttemptInput{InvoiceID: id, Attempt: 1, NWCSkipped: "no NWC wallet connected"}).
		Return(cardPaid, nil).Once()
	env.ExecuteWorkflow(InvoicePayment, InvoicePaymentInput{InvoiceID: id, TenantID: testTenant, Total: 2500, Currency: "usd"})
	res := result(t, env)
	require.Equal(t, "paid", res.Status)
	require.Equal(t, "stripe", res.Rail)
}

// A tenant with an NWC connection goes through PayByNWC as before, and the
// card is not told of a skipped NWC turn.
func TestInvoiceV5KeepsNWCWithAConnection(t *testing.T) {
	const id = "inv-v5-nwc"
	env, acts := invoiceV5Env(t, id, true, "")
	env.OnActivity(acts.PayByNWC, mock.Anything, activities.RailAttemptInput{InvoiceID: id, Attempt: 1}).
		Return(rail("failed", "NWC: INSUFFICIENT_BALANCE", nil), nil).Once()
	env.OnActivity(acts.ChargeCard, mock.Anything, activities.RailAttemptInput{InvoiceID: id, Attempt: 1}).Return(cardPaid, nil).Once()
	env.ExecuteWorkflow(InvoicePayment, InvoicePaymentInput{InvoiceID: id, TenantID: testTenant, Total: 2500, Currency: "usd"})
	require.Equal(t, "paid", result(t, env).Status)
}

// The path a run takes is read from its input when the input names one
// (the tenant gives invoice-v5 to the invoices it starts): such a run reads
// no change id (GetVersion never called) and takes invoice-v5
// (BeginCollection is asked about the rails, NWC skipped); a run given none
// whose invoice-v5 read answers the default (a history recorded before it)
// takes invoice-v4's path exactly as before (PayByNWC runs, nothing asked).
func TestInvoiceV5PathCarriedInInput(t *testing.T) {
	t.Run("input names invoice-v5", func(t *testing.T) {
		const id = "inv-v5-carried"
		env, acts := invoiceV5Env(t, id, true, "no NWC wallet connected")
		for _, change := range []string{changeInvoiceV6, changeInvoiceV5, changeInvoiceV4, changeInvoiceNeedsAction} {
			env.OnGetVersion(change, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion).Never()
		}
		env.OnActivity(acts.PayByNWC, mock.Anything, mock.Anything).Never()
		env.OnActivity(acts.ChargeCard, mock.Anything, mock.Anything).Return(cardPaid, nil).Once()
		env.ExecuteWorkflow(InvoicePayment, InvoicePaymentInput{InvoiceID: id, TenantID: testTenant, Total: 2500, Currency: "usd", Version: pathInvoiceV5})
		require.Equal(t, "paid", result(t, env).Status)
	})
	t.Run("run before invoice-v5", func(t *testing.T) {
		const id = "inv-v4"
		env, acts := invoiceV5Env(t, id, false, "")
		env.OnGetVersion(changeInvoiceV6, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
		env.OnGetVersion(changeInvoiceV5, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion)
		env.OnActivity(acts.PayByNWC, mock.Anything, activities.RailAttemptInput{InvoiceID: id, Attempt: 1}).
			Return(rail("skipped", "no NWC wallet connected", nil), nil).Once()
		env.OnActivity(acts.ChargeCard, mock.Anything, activities.RailAttemptInput{InvoiceID: id, Attempt: 1}).Return(cardPaid, nil).Once()
		env.ExecuteWorkflow(InvoicePayment, InvoicePaymentInput{InvoiceID: id, TenantID: testTenant, Total: 2500, Currency: "usd"})
		require.Equal(t, "paid", result(t, env).Status)
	})
}

// invoice-v6: Settle is asked to tell the tenant (TellTenant) and did, so
// the run sends the tenant no invoice-settled signal of its own; when
// Settle could not tell it, the run does, as before (nothing is lost).
func TestInvoiceV6SettleTellsTheTenant(t *testing.T) {
	for _, told := range []bool{true, false} {
		name := map[bool]string{true: "told by Settle", false: "Settle's signal failed"}[told]
		t.Run(name, func(t *testing.T) {
			const id = "inv-v6"
			env, acts := newEnv(t, ts("2026-03-01T00:00:00Z"))
			env.OnActivity(acts.BeginCollection, mock.Anything, mock.Anything).Return(activities.BeginCollectionResult{
				Invoice: activities.InvoiceRef{ID: id, Total: 2500, Currency: "usd", Status: "collecting"}, Policy: activities.DefaultPaymentPolicy(),
				NWCSkip: "no NWC wallet connected"}, nil).Once()
			env.OnActivity(acts.ChargeCard, mock.Anything, mock.Anything).Return(cardPaid, nil).Once()
			res := settled("stripe")
			res.TenantStatus, res.TenantTold = "active", told
			env.OnActivity(acts.Settle, mock.Anything, mock.MatchedBy(func(in activities.SettleInput) bool {
				return in.TellTenant == testTenant
			})).Return(res, nil).Once()
			tenantSignal := env.OnSignalExternalWorkflow(mock.Anything, TenantWorkflowID(testTenant), "", SignalInvoiceSettled, mock.Anything).Return(nil)
			if told {
				tenantSignal.Never()
			} else {
				tenantSignal.Once()
			}
			env.ExecuteWorkflow(InvoicePayment, InvoicePaymentInput{InvoiceID: id, TenantID: testTenant, Total: 2500, Currency: "usd", Version: pathInvoiceV6})
			require.Equal(t, "paid", result(t, env).Status)
		})
	}
}

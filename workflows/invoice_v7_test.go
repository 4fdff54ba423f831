package workflows

import (
	"testing"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/billflow/billflow/activities"
)

// invoiceV7Env runs an invoice on the newest path (given invoice-v7 in its
// input, as the tenant does); BeginCollection is asked for the rails and
// the first wallet turn and answers with wallet (nil: it did not run it).
func invoiceV7Env(t *testing.T, id string, wallet *activities.WalletRailResult, walletErr string) (*testsuite.TestWorkflowEnvironment, *activities.Activities, InvoicePaymentInput) {
	env, acts := newestEnv(t, ts("2026-03-01T00:00:00Z"))
	for _, change := range []string{changeInvoiceV7, changeInvoiceV6, changeInvoiceV5, changeInvoiceV4} {
		env.OnGetVersion(change, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion).Never()
	}
	env.OnActivity(acts.BeginCollection, mock.Anything, activities.InvoiceInput{InvoiceID: id, Rails: true, Wallet: true}).Return(activities.BeginCollectionResult{
		Invoice: activities.InvoiceRef{ID: id, Total: 2500, Currency: "usd", Status: "collecting"}, Policy: activities.DefaultPaymentPolicy(),
		NWCSkip: "no NWC wallet connected", Wallet: wallet, WalletError: walletErr}, nil).Once()
	env.OnSignalExternalWorkflow(mock.Anything, GraceWorkflowID(testTenant), "", SignalInvoiceSettled, mock.Anything).Return(nil).Maybe()
	return env, acts, InvoicePaymentInput{InvoiceID: id, TenantID: testTenant, Total: 2500, Currency: "usd", Version: pathInvoiceV7}
}

var noWallet = &activities.WalletRailResult{Outcome: activities.OutcomeNotCovered, Summary: "no wallet", NoWallet: true}

// invoice-v7 on the card path: BeginCollection ran the wallet turn (no
// wallet), so PayFromWallet is not run; ChargeCard is asked to settle and
// tell the tenant, and did: no Settle step, no signal from the run. One
// local activity and one activity in all.
func TestInvoiceV7CardSettlesInTheRail(t *testing.T) {
	const id = "inv-v7-card"
	env, acts, in := invoiceV7Env(t, id, noWallet, "")
	env.OnActivity(acts.PayFromWallet, mock.Anything, mock.Anything).Never()
	env.OnActivity(acts.PayByNWC, mock.Anything, mock.Anything).Never()
	env.OnActivity(acts.Settle, mock.Anything, mock.Anything).Never()
	charged := cardPaid
	s := settled("stripe")
	s.TenantTold = true
	charged.Settled = &s
	env.OnActivity(acts.ChargeCard, mock.Anything, activities.RailAttemptInput{InvoiceID: id, Attempt: 1, NWCSkipped: "no NWC wallet connected",
		Settle: true, TellTenant: testTenant}).Return(charged, nil).Once()
	env.OnSignalExternalWorkflow(mock.Anything, TenantWorkflowID(testTenant), "", SignalInvoiceSettled, mock.Anything).Return(nil).Never()
	local, remote := stepListener(env)
	env.ExecuteWorkflow(InvoicePayment, in)
	res := result(t, env)
	env.AssertExpectations(t)
	require.Equal(t, "paid", res.Status)
	require.Equal(t, "stripe", res.Rail)
	require.Equal(t, "pi_1", res.Reference)
	require.NotNil(t, res.PaidAt)
	require.Equal(t, []string{"BeginCollection"}, *local)
	require.Equal(t, []string{"ChargeCard"}, *remote)
}

// A payment the rail took but could not settle (SettleError) is settled
// by the run, as before: the money is never left unrecorded.
func TestInvoiceV7RailSettleFailureIsSettledByTheRun(t *testing.T) {
	const id = "inv-v7-unsettled"
	env, acts, in := invoiceV7Env(t, id, noWallet, "")
	charged := cardPaid
	charged.SettleError = "connection refused"
	env.OnActivity(acts.ChargeCard, mock.Anything, mock.Anything).Return(charged, nil).Once()
	env.OnActivity(acts.Settle, mock.Anything, mock.MatchedBy(func(in activities.SettleInput) bool {
		return in.InvoiceID == id && in.Payment.Reference == "pi_1" && in.TellTenant == testTenant
	})).Return(settled("stripe"), nil).Once()
	env.OnSignalExternalWorkflow(mock.Anything, TenantWorkflowID(testTenant), "", SignalInvoiceSettled, mock.Anything).Return(nil).Once()
	env.ExecuteWorkflow(InvoicePayment, in)
	res := result(t, env)
	env.AssertExpectations(t)
	require.Equal(t, "paid", res.Status)
}

// The wallet paying in BeginCollection ends collection as paid via the
// wallet: no rail runs.
func TestInvoiceV7WalletPaysInBeginCollection(t *testing.T) {
	const id = "inv-v7-wallet"
	env, acts, in := invoiceV7Env(t, id, &activities.WalletRailResult{Outcome: activities.OutcomePaid, Reference: "invoice/" + id,
		Summary: "paid 25.00 USD from the wallet", TenantStatus: "active"}, "")
	env.OnActivity(acts.PayFromWallet, mock.Anything, mock.Anything).Never()
	env.OnActivity(acts.PayByNWC, mock.Anything, mock.Anything).Never()
	env.OnActivity(acts.ChargeCard, mock.Anything, mock.Anything).Never()
	env.OnSignalExternalWorkflow(mock.Anything, TenantWorkflowID(testTenant), "", SignalInvoiceSettled, mock.Anything).Return(nil).Once()
	env.ExecuteWorkflow(InvoicePayment, in)
	res := result(t, env)
	env.AssertExpectations(t)
	require.Equal(t, "paid", res.Status)
	require.Equal(t, walletRail, res.Rail)
}

// A wallet turn that failed inside BeginCollection is run by the attempt
// as its own step (with its own retries), as before.
func TestInvoiceV7WalletErrorRunsTheWalletStep(t *testing.T) {
	const id = "inv-v7-wallet-err"
	env, acts, in := invoiceV7Env(t, id, nil, "connection refused")
	env.OnActivity(acts.PayFromWallet, mock.Anything, activities.RailAttemptInput{InvoiceID: id, Attempt: 1}).Return(*noWallet, nil).Once()
	charged := cardPaid
	s := settled("stripe")
	s.TenantTold = true
	charged.Settled = &s
	env.OnActivity(acts.ChargeCard, mock.Anything, mock.Anything).Return(charged, nil).Once()
	env.ExecuteWorkflow(InvoicePayment, in)
	res := result(t, env)
	env.AssertExpectations(t)
	require.Equal(t, "paid", res.Status)
}

// A dunning attempt (2 and later) runs the wallet as its own step again,
// and the NWC rail too; a rail that pays settles it.
func TestInvoiceV7DunningAttemptRunsEveryRail(t *testing.T) {
	const id = "inv-v7-dunning"
	env, acts, in := invoiceV7Env(t, id, noWallet, "")
	env.OnActivity(acts.SetInvoiceStatus, mock.Anything, mock.Anything).Return(activities.InvoiceRef{ID: id, Status: "awaiting_payment"}, nil).Maybe()
	env.OnActivity(acts.Reconcile, mock.Anything, mock.Anything).Return(activities.ReconcileResult{}, nil).Maybe()
	env.OnActivity(acts.ChargeCard, mock.Anything, mock.MatchedBy(func(in activities.RailAttemptInput) bool { return in.Attempt == 1 })).
		Return(rail("failed", "card declined", nil), nil).Once()
	env.OnActivity(acts.SendPaymentDM, mock.Anything, mock.Anything).Return(activities.PaymentDMResult{Outcome: "sent"}, nil).Once()
	env.OnActivity(acts.ReportCollectionFailed, mock.Anything, mock.Anything).Return(nil).Once()
	env.OnActivity(acts.PayFromWallet, mock.Anything, activities.RailAttemptInput{InvoiceID: id, Attempt: 2}).Return(*noWallet, nil).Once()
	nwcPaid := rail("paid", "paid from the tenant's wallet", &activities.PaymentReport{Rail: "nwc", Reference: testHash, AmountMsat: 50_000_000})
	s := settled("nwc")
	s.TenantTold = true
	nwcPaid.Settled = &s
	env.OnActivity(acts.PayByNWC, mock.Anything, activities.RailAttemptInput{InvoiceID: id, Attempt: 2, Settle: true, TellTenant: testTenant}).
		Return(nwcPaid, nil).Once()
	env.OnActivity(acts.Settle, mock.Anything, mock.Anything).Never()
	env.ExecuteWorkflow(InvoicePayment, in)
	res := result(t, env)
	env.AssertExpectations(t)
	require.Equal(t, "paid", res.Status)
	require.Equal(t, "nwc", res.Rail)
}

// A run carrying invoice-v6 reads invoice-v7: recorded before it (the
// default answered), it keeps invoice-v6's steps: the wallet turn and
// Settle as their own steps, the rail not asked to settle.
func TestInvoiceV6RunKeepsItsPath(t *testing.T) {
	const id = "inv-v6"
	env, acts := newestEnv(t, ts("2026-03-01T00:00:00Z"))
	env.OnGetVersion(changeInvoiceV7, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion).Once()
	env.OnSignalExternalWorkflow(mock.Anything, GraceWorkflowID(testTenant), "", SignalInvoiceSettled, mock.Anything).Return(nil).Maybe()
	env.OnActivity(acts.BeginCollection, mock.Anything, activities.InvoiceInput{InvoiceID: id, Rails: true}).Return(activities.BeginCollectionResult{
		Invoice: activities.InvoiceRef{ID: id, Total: 2500, Currency: "usd", Status: "collecting"}, Policy: activities.DefaultPaymentPolicy(),
		NWCSkip: "no NWC wallet connected"}, nil).Once()
	env.OnActivity(acts.PayFromWallet, mock.Anything, mock.Anything).Return(*noWallet, nil).Once()
	env.OnActivity(acts.ChargeCard, mock.Anything, activities.RailAttemptInput{InvoiceID: id, Attempt: 1, NWCSkipped: "no NWC wallet connected"}).
		Return(cardPaid, nil).Once()
	s := settled("stripe")
	s.TenantTold = true
	env.OnActivity(acts.Settle, mock.Anything, mock.Anything).Return(s, nil).Once()
	env.ExecuteWorkflow(InvoicePayment, InvoicePaymentInput{InvoiceID: id, TenantID: testTenant, Total: 2500, Currency: "usd", Version: pathInvoiceV6})
	res := result(t, env)
	env.AssertExpectations(t)
	require.Equal(t, "paid", res.Status)
}

// A run started by the tenant's claim with its collection begun (Begun in
// the input) runs no BeginCollection: its first step is the rail.
func TestInvoiceV7BegunByTheClaim(t *testing.T) {
	const id = "inv-v7-begun"
	env, acts := newestEnv(t, ts("2026-03-01T00:00:00Z"))
	env.OnActivity(acts.BeginCollection, mock.Anything, mock.Anything).Never()
	env.OnActivity(acts.PayFromWallet, mock.Anything, mock.Anything).Never()
	charged := cardPaid
	s := settled("stripe")
	s.TenantTold, s.TenantStatus = true, "active"
	charged.Settled = &s
	env.OnActivity(acts.ChargeCard, mock.Anything, activities.RailAttemptInput{InvoiceID: id, Attempt: 1, NWCSkipped: "no NWC wallet connected",
		Settle: true, TellTenant: testTenant}).Return(charged, nil).Once()
	local, remote := stepListener(env)
	begun := activities.BeginCollectionResult{Invoice: activities.InvoiceRef{ID: id, Total: 2500, Currency: "usd", Status: "collecting"},
		Policy: activities.DefaultPaymentPolicy(), NWCSkip: "no NWC wallet connected", Wallet: noWallet}
	env.ExecuteWorkflow(InvoicePayment, InvoicePaymentInput{InvoiceID: id, TenantID: testTenant, Total: 2500, Currency: "usd",
		Version: pathInvoiceV7, Begun: &begun})
	res := result(t, env)
	env.AssertExpectations(t)
	require.Equal(t, "paid", res.Status)
	require.Empty(t, *local)
	require.Equal(t, []string{"ChargeCard"}, *remote)
}

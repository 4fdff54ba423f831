package workflows

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	sdkpb "go.temporal.io/api/sdk/v1"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/billflow/billflow/activities"
)

// walletEnv is invoiceEnv with the wallet rail left to the test: wallet
// answers the first attempt's wallet turn.
func walletEnv(t *testing.T, id string, wallet activities.WalletRailResult, walletErr error) (*testsuite.TestWorkflowEnvironment, *activities.Activities, InvoicePaymentInput) {
	env, acts := newBareEnv(t, ts("2026-03-01T00:00:00Z"))
	env.OnActivity(acts.BeginCollection, mock.Anything, activities.InvoiceInput{InvoiceID: id, Rails: true}).Return(activities.BeginCollectionResult{
		Invoice: activities.InvoiceRef{ID: id, Total: 2500, Currency: "usd", Status: "collecting"}, Policy: activities.DefaultPaymentPolicy()}, nil).Once()
	env.OnActivity(acts.SetInvoiceStatus, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.SetInvoiceStatusInput) (activities.InvoiceRef, error) {
			return activities.InvoiceRef{ID: id, Status: in.Status}, nil
		}).Maybe()
	env.OnActivity(acts.Reconcile, mock.Anything, mock.Anything).Return(activities.ReconcileResult{}, nil).Maybe()
	env.OnActivity(acts.PayFromWallet, mock.Anything, activities.RailAttemptInput{InvoiceID: id, Attempt: 1}).Return(wallet, walletErr).Once()
	env.OnSignalExternalWorkflow(mock.Anything, TenantWorkflowID(testTenant), "", SignalInvoiceSettled, mock.Anything).Return(nil).Once()
	return env, acts, InvoicePaymentInput{InvoiceID: id, TenantID: testTenant, Total: 2500, Currency: "usd"}
}

func currentDetails(t *testing.T, env *testsuite.TestWorkflowEnvironment) string {
	t.Helper()
	v, err := env.QueryWorkflow("__temporal_workflow_metadata")
	require.NoError(t, err)
	var md sdkpb.WorkflowMetadata
	require.NoError(t, v.Get(&md))
	return md.GetCurrentDetails()
}

// The wallet covers the invoice: it is paid via the wallet, and no other
// rail, settlement or DM runs.
func TestInvoiceWalletPays(t *testing.T) {
	env, acts, in := walletEnv(t, "inv-wal", activities.WalletRailResult{Outcome: "paid", Reference: "invoice/inv-wal",
		Summary: "paid $25.00 from the wallet ($5.00 left)", TenantStatus: "active"}, nil)
	env.OnActivity(acts.PayByNWC, mock.Anything, mock.Anything).Never()
	env.OnActivity(acts.ChargeCard, mock.Anything, mock.Anything).Never()
	env.OnActivity(acts.Settle, mock.Anything, mock.Anything).Never()
	env.OnActivity(acts.SendPaymentDM, mock.Anything, mock.Anything).Never()
	env.OnActivity(acts.ReportCollectionFailed, mock.Anything, mock.Anything).Never()
	env.ExecuteWorkflow(InvoicePayment, in)
	res := result(t, env)
	require.Equal(t, "paid", res.Status)
	require.Equal(t, "wallet", res.Rail)
	require.Equal(t, "invoice/inv-wal", res.Reference)
	require.NotNil(t, res.PaidAt)
	require.False(t, res.AlreadyPaid)
	require.Contains(t, currentDetails(t, env), "| 1 | wallet | paid | paid $25.00 from the wallet ($5.00 left) |")
}

// The wallet does not cover the invoice: the cascade goes on to NWC, which pays.
func TestInvoiceWalletNotCoveredThenNWC(t *testing.T) {
	env, acts, in := walletEnv(t, "inv-wnc", activities.WalletRailResult{Outcome: "not_covered", Summary: "spendable $3.00 does not cover $25.00 due"}, nil)
	pay := &activities.PaymentReport{Rail: "nwc", Reference: testHash, AmountMsat: 50_000_000}
	env.OnActivity(acts.PayByNWC, mock.Anything, activities.RailAttemptInput{InvoiceID: "inv-wnc", Attempt: 1}).Return(rail("paid", "paid over NWC", pay), nil).Once()
	env.OnActivity(acts.Settle, mock.Anything, mock.MatchedBy(func(s activities.SettleInput) bool { return s.Payment == *pay })).
		Return(activities.SettleResult{Invoice: activities.InvoiceRef{Status: "paid", PaidRail: "nwc"}, Outcome: "applied", TenantStatus: "active"}, nil).Once()
	env.OnActivity(acts.ChargeCard, mock.Anything, mock.Anything).Never()
	env.OnActivity(acts.SendPaymentDM, mock.Anything, mock.Anything).Never()
	env.ExecuteWorkflow(InvoicePayment, in)
	res := result(t, env)
	require.Equal(t, "nwc", res.Rail)
	details := currentDetails(t, env)
	require.Contains(t, details, "| 1 | wallet | not_covered | spendable $3.00 does not cover $25.00 due |")
	require.Contains(t, details, "| 1 | nwc | paid | paid over NWC |")
}

// A wallet rail that stays down does not hold collection; and an NWC turn
// that finds the invoice paid via the wallet (the wallet's answer was lost)
// ends it as paid via the wallet, with no settlement the store would refuse.
func TestInvoiceWalletDownThenFoundPaidByWallet(t *testing.T) {
	env, acts, in := walletEnv(t, "inv-wdn", activities.WalletRailResult{},
		temporal.NewNonRetryableApplicationError("database unavailable", "", errors.New("down")))
	env.OnActivity(acts.PayByNWC, mock.Anything, mock.Anything).Return(rail("paid", "already paid via wallet",
		&activities.PaymentReport{Rail: "wallet", Reference: "invoice/inv-wdn"}), nil).Once()
	env.OnActivity(acts.Settle, mock.Anything, mock.Anything).Never()
	env.OnActivity(acts.ChargeCard, mock.Anything, mock.Anything).Never()
	env.OnSignalExternalWorkflow(mock.Anything, GraceWorkflowID(testTenant), "", SignalInvoiceSettled, mock.Anything).Return(nil).Once()
	env.ExecuteWorkflow(InvoicePayment, in)
	res := result(t, env)
	require.Equal(t, "wallet", res.Rail)
	require.Equal(t, "invoice/inv-wdn", res.Reference)
	require.Contains(t, currentDetails(t, env), "| 1 | wallet | failed | wallet rail unavailable: database unavailable |")
}

//go:build integration

package activities

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/testsuite"

	"github.com/billflow/billflow/rails/lightning"
)

// reportRecorder is a Notifier that records the payment reports it is given.
type reportRecorder struct {
	Notifier
	reports []PaymentReport
}

func (n *reportRecorder) ReportPayment(_ context.Context, _ string, p PaymentReport) error {
	n.reports = append(n.reports, p)
	return nil
}

// The Lightning settlement stream does not report a payment the store has
// already recorded as what paid the invoice (the NWC rail settled it): the
// report would carry nothing new. An unrecorded one is reported as before.
func TestSettlementStreamSkipsARecordedPayment(t *testing.T) {
	ctx := context.Background()
	a, _, clk, inv := lightningWorld(t)
	n := &reportRecorder{}
	a.Notify = n
	b, err := a.ensureBolt11(ctx, inv)
	require.NoError(t, err)
	settled := lightning.Invoice{PaymentHash: b.PaymentHash, AmountMsat: b.AmountMsat, Settled: true, AmtPaidMsat: b.AmountMsat,
		SettledAt: clk.Now(), SettleIndex: 1}

	// The stream's step, in an activity context as in WatchSettlements.
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivityWithOptions(func(ctx context.Context) error { return a.handleSettlement(ctx, settled) },
		activity.RegisterOptions{Name: "handleSettlement"})
	handle := func() {
		t.Helper()
		_, err := env.ExecuteActivity("handleSettlement")
		require.NoError(t, err)
	}

	handle()
	require.Len(t, n.reports, 1, "not recorded yet: reported")

	_, err = a.Settle(ctx, SettleInput{InvoiceID: inv.ID, Payment: PaymentReport{Rail: "nwc", Reference: b.PaymentHash, AmountMsat: b.AmountMsat},
		PaidAt: clk.Now()})
	require.NoError(t, err)
	handle()
	require.Len(t, n.reports, 1, "recorded as the invoice's payment: nothing new to report")
}

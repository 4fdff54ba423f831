//go:build integration

package workflows_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/billing"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/internal/testkit"
	"github.com/billflow/billflow/store"
	"github.com/billflow/billflow/workflows"
)

// Auto-recharge against the dev server and Postgres: a balance event's
// sync finds spendable below the threshold and starts one auto top-up with
// its invoice/<id> collection (a stand-in InvoicePayment that waits, so no
// rail is needed); the syncs after it start no second one; paid, it
// deposits and no new one starts above the threshold.
func TestBalanceSyncAutoRechargeFiresOnce(t *testing.T) {
	ctx := context.Background()
	st := testkit.NewStore(t)
	tc := testkit.TemporalClient(t)
	ensureWalletBalanceAttribute(t, tc)
	queue := testkit.TaskQueue(t)
	bc := billing.New(tc, queue)
	w := worker.New(tc, queue, worker.Options{})
	w.RegisterWorkflow(workflows.BalanceSync)
	w.RegisterWorkflowWithOptions(func(ctx workflow.Context, _ contract.InvoicePaymentInput) error {
		return workflow.Await(ctx, func() bool { return false })
	}, workflow.RegisterOptions{Name: contract.WorkflowInvoicePayment})
	w.RegisterActivity(&activities.Activities{Store: st, Notify: bc})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)

	tenant := testkit.NewTenantID(t)
	_, _, err := st.EnsureTenant(ctx, tenant, "usd", 0)
	require.NoError(t, err)
	threshold, amount := int64(500), int64(2000)
	_, err = st.SetWalletAutoRecharge(ctx, tenant, store.AutoRecharge{Threshold: &threshold, Amount: &amount})
	require.NoError(t, err)
	id := contract.BalanceWorkflowID(tenant)
	t.Cleanup(func() { _ = tc.TerminateWorkflow(context.Background(), id, "", "test done") })

	require.NoError(t, bc.ReportBalanceEvent(ctx, tenant, contract.BalanceEvent{Kind: contract.BalanceSettled, Reference: "s1"}))
	var open *store.Invoice
	waitFor(t, "auto top-up started", 60*time.Second, func() bool {
		open, err = st.OpenAutoTopUp(ctx, tenant)
		require.NoError(t, err)
		return open != nil
	})
	require.Equal(t, amount, open.Total)
	t.Cleanup(func() {
		_ = tc.TerminateWorkflow(context.Background(), contract.InvoiceWorkflowID(open.ID), "", "test done")
	})
	waitFor(t, "its collection started", 60*time.Second, func() bool {
		_, err := tc.DescribeWorkflowExecution(ctx, contract.InvoiceWorkflowID(open.ID), "")
		return err == nil
	})

	for range 3 {
		_, err := bc.SyncBalance(ctx, string(tenant))
		require.NoError(t, err)
	}
	require.Equal(t, int64(1), count(t, st, `SELECT count(*) FROM invoices WHERE tenant_id = $1 AND auto_recharge`, tenant), "open: no second one")

	_, err = st.Settle(ctx, store.PaymentReport{InvoiceID: open.ID, Rail: "manual", Reference: "wire-auto", Amount: amount, Currency: "usd", ReceivedAt: st.Now()})
	require.NoError(t, err)
	v, err := bc.SyncBalance(ctx, string(tenant))
	require.NoError(t, err)
	require.Equal(t, amount, v.Spendable)
	require.Equal(t, int64(1), count(t, st, `SELECT count(*) FROM invoices WHERE tenant_id = $1 AND auto_recharge`, tenant), "above the threshold: none")
}

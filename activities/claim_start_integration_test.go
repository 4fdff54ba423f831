//go:build integration

package activities

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/internal/testkit"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/store"
)

// ClaimAndStart on the real stores (Postgres, the Temporal dev server), run
// as the local activity it is: the claim makes the invoice, begins its
// collection and starts invoice/<id> with the worker's client; the same
// step run again (a worker that died before its workflow task completed)
// finds the same invoice and the running workflow, and begins nothing
// again; once that workflow has finished, a third try starts no second run.
func TestClaimAndStartStartsTheInvoiceOnce(t *testing.T) {
	ctx := context.Background()
	st := testkit.NewStore(t)
	tc := testkit.TemporalClient(t)
	queue := testkit.TaskQueue(t)
	tenant := testkit.NewTenantID(t)
	_, _, err := st.EnsureTenant(ctx, tenant, "usd", 600)
	require.NoError(t, err)
	at := time.Now().UTC().Truncate(time.Second)
	_, err = st.RecordActivity(ctx, tenant, models.Activity{ID: "cs-" + string(tenant[:8]), Type: models.ResourceCreated, ResourceID: "r", PlanID: "pro", At: at}, false)
	require.NoError(t, err)

	a := &Activities{Store: st}
	w := worker.New(tc, queue, worker.Options{})
	w.RegisterActivity(a)
	// The invoice's workflow: it only waits, so the test sees it running.
	w.RegisterWorkflowWithOptions(func(ctx workflow.Context, _ InvoicePaymentStart) error {
		return workflow.Await(ctx, func() bool { return false })
	}, workflow.RegisterOptions{Name: contract.WorkflowInvoicePayment})
	// The tenant's side: the step, run as a local activity n times.
	w.RegisterWorkflowWithOptions(func(ctx workflow.Context, in ClaimAndStartInput, n int) ([]ClaimAndStartResult, error) {
		lctx := workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{StartToCloseTimeout: 30 * time.Second})
		var out []ClaimAndStartResult
		for range n {
			var res ClaimAndStartResult
			if err := workflow.ExecuteLocalActivity(lctx, a.ClaimAndStart, in).Get(ctx, &res); err != nil {
				return out, err
			}
			out = append(out, res)
		}
		return out, nil
	}, workflow.RegisterOptions{Name: "claimAndStartTwice"})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)

	in := ClaimAndStartInput{
		Claim:     ClaimInput{TenantID: tenant, ClaimKey: "tenant/" + string(tenant) + "/run/1", PeriodStart: at, PeriodEnd: at.Add(10 * time.Minute)},
		TaskQueue: queue, PaymentVersion: 7, Begin: true,
		Reload: &LoadTenantInput{TenantID: tenant},
	}
	run := func(n int) []ClaimAndStartResult {
		t.Helper()
		r, err := tc.ExecuteWorkflow(ctx, clientOptions(queue), "claimAndStartTwice", in, n)
		require.NoError(t, err)
		var out []ClaimAndStartResult
		require.NoError(t, r.Get(ctx, &out))
		return out
	}
	res := run(2)
	require.Len(t, res, 2)
	inv := res[0].Claim.Invoice
	require.NotNil(t, inv, "the claim made an invoice")
	require.Equal(t, inv.ID, res[1].Claim.Invoice.ID, "the same claim key finds the same invoice")
	require.True(t, res[0].PaymentStarted)
	require.True(t, res[1].PaymentStarted, "the retry finds the running workflow")
	require.NotNil(t, res[0].Snapshot)
	require.Len(t, res[0].Snapshot.OpenInvoices, 1, "the reload sees the invoice")
	t.Cleanup(func() {
		_ = tc.TerminateWorkflow(context.Background(), contract.InvoiceWorkflowID(inv.ID), "", "test over")
	})

	stored, _, err := st.GetInvoice(ctx, inv.ID)
	require.NoError(t, err)
	require.Equal(t, store.InvoiceCollecting, stored.Status, "the claim began the collection")

	d, err := tc.DescribeWorkflowExecution(ctx, contract.InvoiceWorkflowID(inv.ID), "")
	require.NoError(t, err)
	info := d.GetWorkflowExecutionInfo()
	require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING, info.GetStatus())
	require.Equal(t, info.GetFirstRunId(), info.GetExecution().GetRunId(), "one run")
	require.Equal(t, queue, info.GetTaskQueue())
	status := info.GetSearchAttributes().GetIndexedFields()["BillingStatus"]
	require.NotNil(t, status)
	require.Contains(t, string(status.GetData()), "collecting")

	hist := tc.GetWorkflowHistory(ctx, contract.InvoiceWorkflowID(inv.ID), "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	first, err := hist.Next()
	require.NoError(t, err)
	var started InvoicePaymentStart
	require.NoError(t, testkit.DataConverter(t).FromPayload(first.GetWorkflowExecutionStartedEventAttributes().GetInput().GetPayloads()[0], &started))
	require.Equal(t, 7, started.Version)
	require.Equal(t, tenant, started.TenantID)
	require.NotNil(t, started.Begun, "the run starts with its collection begun")
	require.Equal(t, store.InvoiceCollecting, started.Begun.Invoice.Status)
	require.NotNil(t, started.Begun.Wallet, "the first wallet turn ran with it")
	require.True(t, started.Begun.Wallet.NoWallet)

	// The invoice's workflow ends; the step run once more starts no second run.
	require.NoError(t, tc.TerminateWorkflow(ctx, contract.InvoiceWorkflowID(inv.ID), "", "paid"))
	again := run(1)
	require.True(t, again[0].PaymentStarted)
	d, err = tc.DescribeWorkflowExecution(ctx, contract.InvoiceWorkflowID(inv.ID), "")
	require.NoError(t, err)
	require.Equal(t, enumspb.WORKFLOW_EXECUTION_STATUS_TERMINATED, d.GetWorkflowExecutionInfo().GetStatus(), "no new run")
}

func clientOptions(queue string) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{TaskQueue: queue}
}

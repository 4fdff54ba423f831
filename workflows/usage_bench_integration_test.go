//go:build integration

package workflows_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/internal/testkit"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/receipts"
	"github.com/billflow/billflow/store"
	"github.com/billflow/billflow/workflows"
)

// Sustained signed receipts per second with 200 concurrent sessions on the
// dev server, real activities and Postgres, next to no-op workflows of the
// same shape (per receipt: a report signal, then a sign update that runs two
// activities and restarts a timer). A benchmark, not a timed test:
//
//	# with TEMPORAL_ADDRESS and BILLFLOW_TEST_DATABASE_URL set, as scripts/test.sh sets them
//	go test -tags integration -run '^$' -bench BenchmarkUsageReceipts -benchtime 1x ./workflows/
const (
	benchSessions = 200
	benchReceipts = 5
)

func BenchmarkUsageReceipts(b *testing.B) {
	st := testkit.NewStore(b)
	tc := testkit.TemporalClient(b)
	ensureUsageAttributes(b, tc)
	queue := testkit.TaskQueue(b)
	signer, err := receipts.NewSigner(itEngineKey)
	require.NoError(b, err)
	acts := &activities.Activities{Store: st, Notify: usageITNotifier{tc: tc}, Usage: activities.Usage{Signer: signer,
		Services: map[string]models.Service{"vpn": {ID: "vpn", Unit: models.UnitSeconds, Price: 10, Units: 60, Chunk: 60, GracePeriod: time.Minute}}}}
	w := worker.New(tc, queue, worker.Options{})
	w.RegisterWorkflow(workflows.UsageSession)
	w.RegisterWorkflowWithOptions(noopSession, workflow.RegisterOptions{Name: "NoopSession"})
	w.RegisterActivity(acts)
	w.RegisterActivity(&noopActivities{})
	require.NoError(b, w.Start())
	b.Cleanup(w.Stop)

	ctx := context.Background()
	keys := make([]string, benchSessions)
	for i := range keys {
		keys[i] = nostr.GeneratePrivateKey()
		pk, _ := nostr.GetPublicKey(keys[i])
		_, _, err := st.EnsureTenant(ctx, models.TenantID(pk), "usd", 0)
		require.NoError(b, err)
		_, err = st.Grant(ctx, store.WalletWrite{TenantID: models.TenantID(pk), Key: "bench", Amount: 1_000_000})
		require.NoError(b, err)
	}
	for _, kind := range []string{"usage", "noop"} {
		b.Run(kind, func(b *testing.B) {
			for n := 0; n < b.N; n++ {
				start := time.Now()
				var wg sync.WaitGroup
				errs := make(chan error, benchSessions)
				for i := 0; i < benchSessions; i++ {
					wg.Add(1)
					go func(i int) {
						defer wg.Done()
						id := fmt.Sprintf("bench-%s-%s-%d-%d", kind, queue, n, i)
						if err := benchSession(ctx, tc, queue, kind, id, keys[i]); err != nil {
							errs <- fmt.Errorf("session %d: %w", i, err)
						}
					}(i)
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					b.Fatal(err)
				}
				el := time.Since(start)
				b.ReportMetric(float64(benchSessions*benchReceipts)/el.Seconds(), "receipts/s")
			}
		})
	}
}

// benchSession runs one session of benchReceipts receipts.
func benchSession(ctx context.Context, tc client.Client, queue, kind, session, key string) error {
	pk, _ := nostr.GetPublicKey(key)
	wid := contract.UsageSessionWorkflowID(session)
	wfType, input := contract.WorkflowUsageSession, any(contract.UsageSessionInput{SessionID: session})
	if kind == "noop" {
		wfType, input = "NoopSession", nil
	}
	op := tc.NewWithStartWorkflowOperation(client.StartWorkflowOptions{ID: wid, TaskQueue: queue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING}, wfType, input)
	h, err := tc.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{StartWorkflowOperation: op,
		UpdateOptions: client.UpdateWorkflowOptions{UpdateName: contract.UpdateUsageStart, WaitForStage: client.WorkflowUpdateStageCompleted,
			Args: []any{contract.UsageStartRequest{SessionID: session, ServiceID: "vpn", Payer: models.TenantID(pk), MaxUnitPrice: 10}}}})
	if err != nil {
		return err
	}
	var res contract.UsageStartResult
	if err := h.Get(ctx, &res); err != nil {
		return err
	}
	waiting := res.Receipt
	for r := 0; r < benchReceipts; r++ {
		// Report the covered units first, so the payment sends the next
		// receipt at once and the sign update answers it.
		if err := tc.SignalWorkflow(ctx, wid, "", contract.SignalUsageReport, contract.UsageReport{ID: fmt.Sprint(r), Seconds: 60}); err != nil {
			return err
		}
		var arg contract.UsageSignRequest
		if waiting != nil {
			if arg.Event, err = receipts.SignAs(key, waiting.Receipt, time.Now()); err != nil {
				return err
			}
		}
		uh, err := tc.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: wid, UpdateName: contract.UpdateUsageSign,
			Args: []any{arg}, WaitForStage: client.WorkflowUpdateStageCompleted})
		if err != nil {
			return err
		}
		var v contract.UsageView
		if err := uh.Get(ctx, &v); err != nil {
			return err
		}
		if kind == "usage" && (v.State != contract.UsageNormal || v.Waiting == nil) {
			return fmt.Errorf("receipt %d: state %s/%s, waiting %v", r, v.State, v.SubState, v.Waiting != nil)
		}
		waiting = v.Waiting
	}
	uh, err := tc.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{WorkflowID: wid, UpdateName: contract.UpdateUsageEnd,
		WaitForStage: client.WorkflowUpdateStageCompleted})
	if err != nil {
		return err
	}
	return uh.Get(ctx, nil)
}

// noopActivities do nothing.
type noopActivities struct{}

// NoopStep does nothing.
func (*noopActivities) NoopStep(context.Context) error { return nil }

// noopSession has UsageSession's shape per receipt (a report signal; a
// sign update running two activities and restarting a timer) and no logic.
func noopSession(ctx workflow.Context) error {
	ao := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 15 * time.Second})
	var n *noopActivities
	ended := false
	var cancel workflow.CancelFunc
	restart := func(ctx workflow.Context) {
		if cancel != nil {
			cancel()
		}
		var tctx workflow.Context
		tctx, cancel = workflow.WithCancel(ctx)
		workflow.NewTimer(tctx, 10*time.Second)
	}
	if err := workflow.SetUpdateHandler(ctx, contract.UpdateUsageStart, func(ctx workflow.Context, _ contract.UsageStartRequest) (contract.UsageStartResult, error) {
		err := workflow.ExecuteActivity(ao, n.NoopStep).Get(ctx, nil)
		restart(ctx)
		return contract.UsageStartResult{State: contract.UsageIdle}, err
	}); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandler(ctx, contract.UpdateUsageSign, func(ctx workflow.Context, _ contract.UsageSignRequest) (contract.UsageView, error) {
		if err := workflow.ExecuteActivity(ao, n.NoopStep).Get(ctx, nil); err != nil {
			return contract.UsageView{}, err
		}
		err := workflow.ExecuteActivity(ao, n.NoopStep).Get(ctx, nil)
		restart(ctx)
		return contract.UsageView{State: contract.UsageNormal}, err
	}); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandler(ctx, contract.UpdateUsageEnd, func(ctx workflow.Context) (contract.UsageView, error) {
		ended = true
		return contract.UsageView{}, nil
	}); err != nil {
		return err
	}
	reports := workflow.GetSignalChannel(ctx, contract.SignalUsageReport)
	for !ended {
		if err := workflow.Await(ctx, func() bool { return ended || reports.Len() > 0 }); err != nil {
			return err
		}
		for reports.ReceiveAsync(nil) {
		}
	}
	return workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) })
}

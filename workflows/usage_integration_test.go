//go:build integration

package workflows_test

import (
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/internal/testkit"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/receipts"
	"github.com/billflow/billflow/store"
	"github.com/billflow/billflow/workflows"
)

// UsageSession against the real dev server, real activities and Postgres:
// a session across several receipts paid from the wallet, and one that
// runs out of funds, goes through grace, is topped up (the settle path
// signals it) and resumes. History events per receipt are measured.

const (
	itEngineKey = "00000000000000000000000000000000000000000000000000000000000000e1"
	itPayerKey  = "00000000000000000000000000000000000000000000000000000000000000a1"
)

// usageITNotifier is the worker's notifier for these tests: no invoice
// workflows, no balance sync; usage-funds signals go to the session.
type usageITNotifier struct{ tc client.Client }

func (usageITNotifier) ReportPayment(context.Context, string, activities.PaymentReport) error {
	return activities.ErrWorkflowGone
}
func (usageITNotifier) ReportCollectionFailed(context.Context, activities.CollectionFailedInput) error {
	return nil
}
func (usageITNotifier) ReportBalanceEvent(context.Context, models.TenantID, contract.BalanceEvent) error {
	return nil
}
func (n usageITNotifier) SignalUsageFunds(ctx context.Context, id string, sig contract.UsageFundsSignal) error {
	return n.tc.SignalWorkflow(ctx, contract.UsageSessionWorkflowID(id), "", contract.SignalUsageFunds, sig)
}

type usageIT struct {
	st    *store.Store
	tc    client.Client
	acts  *activities.Activities
	queue string
	payer models.TenantID
}

func newUsageIT(t *testing.T) usageIT {
	t.Helper()
	st := testkit.NewStore(t)
	tc := testkit.TemporalClient(t)
	ensureUsageAttributes(t, tc)
	queue := testkit.TaskQueue(t)
	signer, err := receipts.NewSigner(itEngineKey)
	require.NoError(t, err)
	acts := &activities.Activities{Store: st, Notify: usageITNotifier{tc: tc}, Usage: activities.Usage{Signer: signer,
		Services: map[string]models.Service{"vpn": {ID: "vpn", Unit: models.UnitSeconds, Price: 10, Units: 60, Chunk: 60, GracePeriod: time.Minute}}}}
	w := worker.New(tc, queue, worker.Options{})
	w.RegisterWorkflow(workflows.UsageSession)
	w.RegisterActivity(acts)
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
	pk, err := nostr.GetPublicKey(itPayerKey)
	require.NoError(t, err)
	payer := models.TenantID(pk)
	_, _, err = st.EnsureTenant(context.Background(), payer, "usd", 0)
	require.NoError(t, err)
	return usageIT{st: st, tc: tc, acts: acts, queue: queue, payer: payer}
}

// ensureUsageAttributes registers UsageState and UsageService on a dev
// server started before scripts/lib.sh listed them (idempotent).
func ensureUsageAttributes(t testing.TB, tc client.Client) {
	ns := os.Getenv("TEMPORAL_NAMESPACE")
	if ns == "" {
		ns = "default"
	}
	for _, name := range []string{"UsageState", "UsageService"} {
		_, err := tc.OperatorService().AddSearchAttributes(context.Background(), &operatorservice.AddSearchAttributesRequest{
			Namespace: ns, SearchAttributes: map[string]enumspb.IndexedValueType{name: enumspb.INDEXED_VALUE_TYPE_KEYWORD}})
		var exists *serviceerror.AlreadyExists
		if err != nil && !errors.As(err, &exists) {
			require.NoError(t, err)
		}
	}
}

// start is update-with-start of usage-start.
func (e usageIT) start(t *testing.T, session string) contract.UsageStartResult {
	t.Helper()
	ctx := context.Background()
	id := contract.UsageSessionWorkflowID(session)
	op := e.tc.NewWithStartWorkflowOperation(client.StartWorkflowOptions{ID: id, TaskQueue: e.queue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING, StaticSummary: "usage session test"},
		contract.WorkflowUsageSession, contract.UsageSessionInput{SessionID: session})
	h, err := e.tc.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{StartWorkflowOperation: op,
		UpdateOptions: client.UpdateWorkflowOptions{UpdateName: contract.UpdateUsageStart, WaitForStage: client.WorkflowUpdateStageCompleted,
			Args: []any{contract.UsageStartRequest{SessionID: session, ServiceID: "vpn", Payer: e.payer, MaxUnitPrice: 10}}}})
	require.NoError(t, err)
	var res contract.UsageStartResult
	require.NoError(t, h.Get(ctx, &res))
	return res
}

func (e usageIT) update(t *testing.T, session, name string, args ...any) contract.UsageView {
	t.Helper()
	h, err := e.tc.UpdateWorkflow(context.Background(), client.UpdateWorkflowOptions{WorkflowID: contract.UsageSessionWorkflowID(session),
		UpdateName: name, Args: args, WaitForStage: client.WorkflowUpdateStageCompleted})
	require.NoError(t, err)
	var v contract.UsageView
	require.NoError(t, h.Get(context.Background(), &v))
	return v
}

func (e usageIT) sign(t *testing.T, session string, r contract.Receipt) contract.UsageView {
	t.Helper()
	ev, err := receipts.SignAs(itPayerKey, r, time.Now())
	require.NoError(t, err)
	return e.update(t, session, contract.UpdateUsageSign, contract.UsageSignRequest{Event: ev})
}

func (e usageIT) view(t *testing.T, session string) contract.UsageView {
	t.Helper()
	v, err := e.tc.QueryWorkflow(context.Background(), contract.UsageSessionWorkflowID(session), "", contract.QueryUsage)
	require.NoError(t, err)
	var out contract.UsageView
	require.NoError(t, v.Get(&out))
	return out
}

// waitReceipt waits until the session waits for receipt seq's signature.
func (e usageIT) waitReceipt(t *testing.T, session string, seq int64) contract.SignRequest {
	t.Helper()
	var v contract.UsageView
	waitFor(t, "receipt to sign", 30*time.Second, func() bool {
		v = e.view(t, session)
		return v.Waiting != nil && v.Waiting.Receipt.Seq == seq
	})
	return *v.Waiting
}

func TestUsageSessionAcrossReceipts(t *testing.T) {
	e := newUsageIT(t)
	ctx := context.Background()
	_, err := e.st.Grant(ctx, store.WalletWrite{TenantID: e.payer, Key: "promo", Amount: 1000})
	require.NoError(t, err)
	session := "it-" + testkit.TaskQueue(t)[len("test-"):]
	res := e.start(t, session)
	require.Equal(t, contract.UsageIdle, res.State)
	require.NotNil(t, res.Receipt)
	// The engine's signature verifies as the engine's.
	require.Nil(t, receipts.Verify(res.Receipt.Event, models.TenantID(res.Receipt.Receipt.Provider), res.Receipt.ReceiptID))

	const n = 5
	req := *res.Receipt
	for i := int64(1); i <= n; i++ {
		v := e.sign(t, session, req.Receipt)
		require.Equal(t, contract.UsageNormal, v.State, "receipt %d", i)
		require.Equal(t, i, v.ReceiptsSigned)
		used := int64(60)
		if i == 1 {
			used = 40
		}
		require.NoError(t, e.tc.SignalWorkflow(ctx, contract.UsageSessionWorkflowID(session), "", contract.SignalUsageReport,
			contract.UsageReport{ID: "r" + string(rune('0'+i)), Seconds: used}))
		req = e.waitReceipt(t, session, i+1)
		require.Equal(t, i+1, req.Receipt.Seq)
	}
	end := e.update(t, session, contract.UpdateUsageEnd)
	require.Equal(t, contract.UsageEnded, end.State)
	require.Equal(t, int64(n), end.ReceiptsSigned)
	require.Equal(t, int64(40+60*(n-1)), end.UsedUnits)

	// The ledger of record: one promise and one receipt row per receipt,
	// one settlement of the promised total, remain units saved, paid stats.
	require.Equal(t, int64(n), count(t, e.st, `SELECT count(*) FROM wallet_entries WHERE tenant_id = $1 AND kind = 'promise'`, e.payer))
	require.Equal(t, int64(n), count(t, e.st, `SELECT count(*) FROM usage_receipts WHERE session_id = $1`, session))
	require.Equal(t, int64(10*n), count(t, e.st, `SELECT amount FROM wallet_entries WHERE tenant_id = $1 AND kind = 'settle' AND source_key = $2`,
		e.payer, "usage/"+session))
	remain, err := e.st.UsageRemain(ctx, e.payer, "vpn", models.UnitSeconds)
	require.NoError(t, err)
	require.Equal(t, int64(60*n-(40+60*(n-1))), remain)
	stats, err := e.st.UsageStatsOf(ctx, "vpn", e.payer)
	require.NoError(t, err)
	require.Len(t, stats, 1)
	require.Equal(t, "paid", stats[0].Mode)
	require.Equal(t, int64(40+60*(n-1)), stats[0].Seconds)
	require.Equal(t, int64(n+1), count(t, e.st, `SELECT count(*) FROM events WHERE tenant_id = $1 AND type = 'usage.sign_request'`, e.payer),
		"one sign request per receipt (the last one unsigned)")
	w, err := e.st.WalletState(ctx, e.payer)
	require.NoError(t, err)
	require.Equal(t, int64(1000-10*n), w.Spendable)
	require.Zero(t, w.Unsettled)

	// History per receipt, measured between the payments of receipts 2 and 4.
	events := history(t, e.tc, contract.UsageSessionWorkflowID(session))
	var pays []int
	for i, ev := range events {
		if ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName() == "UsagePay" {
			pays = append(pays, i)
		}
	}
	require.Len(t, pays, n)
	per := float64(pays[3]-pays[1]) / 2
	t.Logf("history: %d events for %d receipts (start and end included), %.1f events per receipt in steady state (report signal, sign and send, sign update, pay, sign timer)",
		len(events), n, per)
	desc, err := e.tc.DescribeWorkflowExecution(ctx, contract.UsageSessionWorkflowID(session), "")
	require.NoError(t, err)
	fields := desc.GetWorkflowExecutionInfo().GetSearchAttributes().GetIndexedFields()
	require.Contains(t, fields, "UsageState")
	require.Contains(t, fields, "UsageService")
	require.Contains(t, fields, "BillingTenant")
	if os.Getenv("BILLFLOW_RECORD_HISTORIES") != "" {
		recordHistory(t, e.tc, contract.UsageSessionWorkflowID(session), "usage_session_v2.json")
	}
}

// A payer without funds starts in grace; a paid top-up (the settle path)
// signals the session, which sends a new receipt and resumes in NORMAL.
func TestUsageSessionGraceThenTopUp(t *testing.T) {
	e := newUsageIT(t)
	ctx := context.Background()
	session := "it-" + testkit.TaskQueue(t)[len("test-"):]
	res := e.start(t, session)
	require.Equal(t, contract.UsageGrace, res.State)
	require.Equal(t, contract.SubWaitingTxForPaying, res.SubState)
	waiting, err := e.st.WaitingUsageSessions(ctx, e.payer)
	require.NoError(t, err)
	require.Equal(t, []string{session}, waiting)
	require.Equal(t, int64(1), count(t, e.st, `SELECT count(*) FROM events WHERE tenant_id = $1 AND type = 'usage.funds_needed'`, e.payer))

	top, err := e.st.CreateTopUp(ctx, store.TopUpParams{TenantID: e.payer, Key: "k1", Amount: 500})
	require.NoError(t, err)
	var suite testsuite.WorkflowTestSuite
	aenv := suite.NewTestActivityEnvironment()
	aenv.RegisterActivity(e.acts)
	_, err = aenv.ExecuteActivity(e.acts.Settle, activities.SettleInput{InvoiceID: top.ID, PaidAt: time.Now(),
		Payment: activities.PaymentReport{Rail: store.RailManual, Reference: "ref-1", Amount: 500, Currency: "usd"}})
	require.NoError(t, err)
	req := e.waitReceipt(t, session, 1)
	require.Equal(t, contract.SubWaitingReceiptForNewTxFromClient, e.view(t, session).SubState)
	v := e.sign(t, session, req.Receipt)
	require.Equal(t, contract.UsageNormal, v.State)
	require.Equal(t, int64(490), v.FundsLeft)
	end := e.update(t, session, contract.UpdateUsageEnd)
	require.Equal(t, contract.UsageEnded, end.State)
	stats, err := e.st.UsageStatsOf(ctx, "vpn", e.payer)
	require.NoError(t, err)
	require.Len(t, stats, 1)
	require.Equal(t, "grace", stats[0].Mode)
	require.Equal(t, int64(1), stats[0].Sessions)
	if os.Getenv("BILLFLOW_RECORD_HISTORIES") != "" {
		recordHistory(t, e.tc, contract.UsageSessionWorkflowID(session), "usage_session_grace_v2.json")
	}
}

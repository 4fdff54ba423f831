//go:build integration

package workflows_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/temporalproto"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/worker"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/billing"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/internal/testkit"
	"github.com/billflow/billflow/store"
	"github.com/billflow/billflow/workflows"
)

// The BalanceSync workflow against the real dev server and Postgres: a
// balance event signal-with-starts it, a deposit shows in the query within
// the aggressive window, and its history size per cycle is measured.

type balanceEnv struct {
	st    *store.Store
	tc    client.Client
	bc    *billing.Client
	queue string
}

func newBalanceEnv(t *testing.T) balanceEnv {
	t.Helper()
	st := testkit.NewStore(t)
	tc := testkit.TemporalClient(t)
	ensureWalletBalanceAttribute(t, tc)
	queue := testkit.TaskQueue(t)
	bc := billing.New(tc, queue)
	w := worker.New(tc, queue, worker.Options{})
	w.RegisterWorkflow(workflows.BalanceSync)
	w.RegisterActivity(&activities.Activities{Store: st, Notify: bc})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
	return balanceEnv{st: st, tc: tc, bc: bc, queue: queue}
}

// ensureWalletBalanceAttribute registers WalletBalance on a dev server
// started before scripts/lib.sh listed it (adding it is idempotent).
func ensureWalletBalanceAttribute(t *testing.T, tc client.Client) {
	ns := os.Getenv("TEMPORAL_NAMESPACE")
	if ns == "" {
		ns = "default"
	}
	_, err := tc.OperatorService().AddSearchAttributes(context.Background(), &operatorservice.AddSearchAttributesRequest{
		Namespace: ns, SearchAttributes: map[string]enumspb.IndexedValueType{"WalletBalance": enumspb.INDEXED_VALUE_TYPE_INT}})
	var exists *serviceerror.AlreadyExists
	if err != nil && !errors.As(err, &exists) {
		require.NoError(t, err)
	}
}

// waitFor polls cond until it holds (bounded generously; not a timing assertion).
func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func queryBalance(t *testing.T, tc client.Client, id string) contract.BalanceView {
	t.Helper()
	v, err := tc.QueryWorkflow(context.Background(), id, "", contract.QueryBalance)
	require.NoError(t, err)
	var view contract.BalanceView
	require.NoError(t, v.Get(&view))
	return view
}

func TestBalanceSyncDepositSeenInFastWindow(t *testing.T) {
	e := newBalanceEnv(t)
	ctx := context.Background()
	tenant := testkit.NewTenantID(t)
	_, _, err := e.st.EnsureTenant(ctx, tenant, "usd", 0)
	require.NoError(t, err)
	id := contract.BalanceWorkflowID(tenant)

	require.NoError(t, e.bc.ReportBalanceEvent(ctx, tenant, contract.BalanceEvent{Kind: contract.BalanceTopUpRequested, Reference: "t1"}))
	var first contract.BalanceView
	waitFor(t, "first sync", 30*time.Second, func() bool { first = queryBalance(t, e.tc, id); return !first.SyncedAt.IsZero() })
	require.NotNil(t, first.FastUntil, "the event opened an aggressive window")
	require.Zero(t, first.Spendable)

	_, err = e.st.Deposit(ctx, store.WalletWrite{TenantID: tenant, Key: "pay-1", Amount: 1500})
	require.NoError(t, err)
	var seen contract.BalanceView
	waitFor(t, "deposit in the query", 60*time.Second, func() bool { seen = queryBalance(t, e.tc, id); return seen.Spendable == 1500 })
	require.NotNil(t, seen.FastUntil)
	require.False(t, seen.SyncedAt.After(*seen.FastUntil), "seen by a fast sync inside the window")
	require.Less(t, seen.SyncedAt.Sub(first.SyncedAt), time.Hour, "not by the lifetime sync")
	require.Equal(t, int64(1), count(t, e.st, `SELECT count(*) FROM events WHERE tenant_id = $1 AND type = 'wallet.balance_changed'`, tenant))

	// A fresh cached read answers from the query; SyncBalance syncs now.
	cached, err := e.bc.CachedBalance(ctx, string(tenant), time.Hour)
	require.NoError(t, err)
	require.Equal(t, int64(1500), cached.Spendable)
	_, err = e.st.Deposit(ctx, store.WalletWrite{TenantID: tenant, Key: "pay-2", Amount: 10})
	require.NoError(t, err)
	synced, err := e.bc.SyncBalance(ctx, string(tenant))
	require.NoError(t, err)
	require.Equal(t, int64(1510), synced.Spendable)

	desc, err := e.tc.DescribeWorkflowExecution(ctx, id, "")
	require.NoError(t, err)
	require.Contains(t, desc.GetWorkflowExecutionInfo().GetSearchAttributes().GetIndexedFields(), "WalletBalance")
	require.NoError(t, e.tc.TerminateWorkflow(ctx, id, "", "test done"))

	// A tenant that was never created: the read names it, and the sync it
	// started has ended.
	unknown := testkit.NewTenantID(t)
	_, err = e.bc.CachedBalance(ctx, string(unknown), 0)
	require.ErrorIs(t, err, billing.ErrTenantNotFound)
	require.ErrorContains(t, err, string(unknown))
	run := e.tc.GetWorkflow(ctx, contract.BalanceWorkflowID(unknown), "")
	var last contract.BalanceView
	require.NoError(t, run.Get(ctx, &last), "completed, not failed")
	require.Contains(t, last.LastError, "does not exist")
}

// TestBalanceSyncHistorySize measures the history events one aggressive
// window and one lifetime-sync cycle add (short intervals, same commands
// as the defaults), and records the replay fixture when asked.
func TestBalanceSyncHistorySize(t *testing.T) {
	e := newBalanceEnv(t)
	ctx := context.Background()
	tenant := testkit.NewTenantID(t)
	_, _, err := e.st.EnsureTenant(ctx, tenant, "usd", 0)
	require.NoError(t, err)
	_, err = e.st.Grant(ctx, store.WalletWrite{TenantID: tenant, Key: "promo", Amount: 300})
	require.NoError(t, err)
	soon := time.Now().Add(2500 * time.Millisecond)
	_, err = e.st.Grant(ctx, store.WalletWrite{TenantID: tenant, Key: "trial", Amount: 40, ExpiresAt: &soon})
	require.NoError(t, err)
	id := contract.BalanceWorkflowID(tenant)
	const fast, window, slow = time.Second, 5 * time.Second, 8 * time.Second
	_, err = e.tc.SignalWithStartWorkflow(ctx, id, contract.SignalBalanceEvent, contract.BalanceEvent{Kind: contract.BalanceSettled},
		client.StartWorkflowOptions{ID: id, TaskQueue: e.queue, StaticSummary: "balance sync test"},
		contract.WorkflowBalanceSync, contract.BalanceSyncInput{TenantID: tenant, FastInterval: fast, FastTimeout: window, SlowInterval: slow})
	require.NoError(t, err)
	// The window runs, ends, and two lifetime cycles follow.
	waitFor(t, "two lifetime cycles", 90*time.Second, func() bool { return lifetimeTimers(t, e.tc, id) >= 3 })
	synced, err := e.bc.SyncBalance(ctx, string(tenant))
	require.NoError(t, err)
	require.Equal(t, int64(300), synced.Spendable, "the trial grant expired on its timer")
	require.Equal(t, int64(1), count(t, e.st, `SELECT count(*) FROM wallet_entries WHERE tenant_id = $1 AND kind = 'expire'`, tenant))
	require.Equal(t, int64(40), count(t, e.st, `SELECT expired FROM wallets WHERE tenant_id = $1`, tenant), "removed once")

	events := history(t, e.tc, id)
	var lifetime []int
	signal := -1
	for i, ev := range events {
		if ev.GetEventType() == enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED && signal < 0 {
			signal = i
		}
		if strings.HasPrefix(timerSummary(t, ev), "lifetime") {
			lifetime = append(lifetime, i)
		}
	}
	require.GreaterOrEqual(t, signal, 0)
	require.GreaterOrEqual(t, len(lifetime), 3)
	perWindow := lifetime[0] - signal
	perCycle := lifetime[1] - lifetime[0]
	syncs := 0
	for _, ev := range events[signal:lifetime[0]] {
		if ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName() == "SyncWallet" {
			syncs++
		}
	}
	t.Logf("history: %d events from the window's signal to the first lifetime timer (%d syncs, one grant expiry; window %s every %s), %d per lifetime cycle, %d in all",
		perWindow, syncs, window, fast, perCycle, len(events))
	if os.Getenv("BILLFLOW_RECORD_HISTORIES") != "" {
		recordHistory(t, e.tc, id, "balance_sync.json")
	}
	require.NoError(t, e.tc.TerminateWorkflow(ctx, id, "", "test done"))
}

func lifetimeTimers(t *testing.T, tc client.Client, id string) int {
	n := 0
	for _, ev := range history(t, tc, id) {
		if strings.HasPrefix(timerSummary(t, ev), "lifetime") {
			n++
		}
	}
	return n
}

func timerSummary(t *testing.T, ev *historypb.HistoryEvent) string {
	if ev.GetEventType() != enumspb.EVENT_TYPE_TIMER_STARTED || ev.GetUserMetadata().GetSummary() == nil {
		return ""
	}
	var s string
	require.NoError(t, converter.GetDefaultDataConverter().FromPayload(ev.GetUserMetadata().GetSummary(), &s))
	return s
}

func history(t *testing.T, tc client.Client, id string) []*historypb.HistoryEvent {
	t.Helper()
	iter := tc.GetWorkflowHistory(context.Background(), id, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	var out []*historypb.HistoryEvent
	for iter.HasNext() {
		ev, err := iter.Next()
		require.NoError(t, err)
		testkit.Decode(t, ev)
		out = append(out, ev)
	}
	return out
}

func count(t *testing.T, st *store.Store, sql string, args ...any) int64 {
	t.Helper()
	var n int64
	require.NoError(t, st.Pool().QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

// recordHistory writes the workflow's history as a replay fixture; an
// existing fixture is never overwritten (fixtures are append-only).
func recordHistory(t *testing.T, tc client.Client, id, name string) {
	t.Helper()
	var events []json.RawMessage
	for _, ev := range history(t, tc, id) {
		b, err := temporalproto.CustomJSONMarshalOptions{}.Marshal(ev)
		require.NoError(t, err)
		events = append(events, b)
	}
	out, err := json.MarshalIndent(map[string]any{"events": events}, "", "  ")
	require.NoError(t, err)
	_, file, _, _ := runtime.Caller(0)
	path := filepath.Join(filepath.Dir(file), "testdata", name)
	if _, err := os.Stat(path); err == nil {
		t.Fatalf("%s exists: recorded histories are append-only; record under a new name", path)
	}
	require.NoError(t, os.WriteFile(path, out, 0o644))
	t.Logf("recorded %d history events of %s into %s", len(events), id, path)
}

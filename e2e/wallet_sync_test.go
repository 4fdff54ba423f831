//go:build integration

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/api"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/internal/testkit"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/rails/nwc"
	"github.com/billflow/billflow/store"
	"github.com/billflow/billflow/workflows"
)

// parkSettlementStream stops the Lightning settlement stream for the whole
// test, before the worker starts: its workflow (lightning-settlements/<queue>)
// is started on a task queue no worker polls, so the worker, which only
// makes sure that ID runs, finds it running and never subscribes to the
// node. Terminating the running stream instead would leave its
// WatchSettlements activity alive until its next heartbeat fails (up to
// tens of seconds), racing the payment the test makes.
func (s *stack) parkSettlementStream() {
	s.t.Helper()
	ctx := context.Background()
	id := workflows.SettlementsWorkflowID(s.taskQueue)
	_, err := s.temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: s.taskQueue + "-stream-stopped",
		StaticSummary: "e2e: the settlement stream, parked where no worker runs it"},
		"LightningSettlements", workflows.LightningSettlementsInput{Cursor: "lnd"})
	require.NoError(s.t, err)
	s.t.Cleanup(func() { _ = s.temporal.TerminateWorkflow(context.Background(), id, "", "e2e test over") })
}

// startBalanceSync starts the tenant's BalanceSync with a short fast
// interval (the api's and the activities' balance events then feed this run).
func (s *stack) startBalanceSync(tenant models.TenantID, fast time.Duration) {
	s.t.Helper()
	ctx := context.Background()
	id := contract.BalanceWorkflowID(tenant)
	_, err := s.temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: id, TaskQueue: s.taskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING},
		contract.WorkflowBalanceSync, workflows.BalanceSyncInput{TenantID: tenant, FastInterval: fast, FastTimeout: 10 * time.Minute})
	require.NoError(s.t, err)
	s.t.Cleanup(func() { _ = s.temporal.TerminateWorkflow(context.Background(), id, "", "e2e test over") })
}

// queriedBalance is the tenant's balance as its BalanceSync last synced it
// (the query: it never makes the workflow sync).
func (s *stack) queriedBalance(tenant models.TenantID) (contract.BalanceView, error) {
	var v contract.BalanceView
	res, err := s.temporal.QueryWorkflow(context.Background(), contract.BalanceWorkflowID(tenant), "", contract.QueryBalance)
	if err != nil {
		return v, err
	}
	return v, res.Get(&v)
}

// apiCall sends an application request to the rails' api and decodes the answer.
func (r *rails) apiCall(t *testing.T, method, path string, body any, out any) int {
	t.Helper()
	var rd *bytes.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequest(method, r.api.URL+path, rd)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+apiToken)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	require.NoError(t, json.NewDecoder(resp.Body).Decode(out))
	return resp.StatusCode
}

// balanceSync is a BalanceSync history, read as a list of syncs.
type balanceSync struct {
	// wake is the summary of the last timer that fired before the sync
	// ("aggressive sync every ...", "lifetime sync every ..."), or "start"
	// or "update". (A balance event that opens a window also syncs; it is
	// labelled with the wake before it.)
	wake string
	// reconciled is the sync's ReconcileTopUps result, if it ran one.
	reconciled *activities.ReconcileTopUpsResult
	// reconcileAt is when that ReconcileTopUps was scheduled.
	reconcileAt time.Time
	// wallet is the sync's SyncWallet result.
	wallet *activities.SyncWalletResult
}

// balanceSyncs reads the tenant's BalanceSync history (this run) into its
// syncs, in order.
func (s *stack) balanceSyncs(tenant models.TenantID) []balanceSync {
	s.t.Helper()
	dc := testkit.DataConverter(s.t)
	iter := s.temporal.GetWorkflowHistory(context.Background(), contract.BalanceWorkflowID(tenant), "", false, 0)
	timers := map[string]string{}
	activityType := map[int64]string{}
	scheduledAt := map[int64]time.Time{}
	wake := "start"
	var out []balanceSync
	var cur *balanceSync
	for iter.HasNext() {
		ev, err := iter.Next()
		require.NoError(s.t, err)
		switch ev.GetEventType() {
		case enumspb.EVENT_TYPE_TIMER_STARTED:
			var summary string
			if p := ev.GetUserMetadata().GetSummary(); p != nil {
				require.NoError(s.t, dc.FromPayload(p, &summary))
			}
			timers[ev.GetTimerStartedEventAttributes().GetTimerId()] = summary
		case enumspb.EVENT_TYPE_TIMER_FIRED:
			wake = timers[ev.GetTimerFiredEventAttributes().GetTimerId()]
		case enumspb.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
			wake = "update"
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
			name := ev.GetActivityTaskScheduledEventAttributes().GetActivityType().GetName()
			activityType[ev.GetEventId()] = name
			scheduledAt[ev.GetEventId()] = ev.GetEventTime().AsTime()
			if name == "ReconcileTopUps" || (name == "SyncWallet" && cur == nil) {
				out = append(out, balanceSync{wake: wake})
				cur = &out[len(out)-1]
			}
		case enumspb.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
			a := ev.GetActivityTaskCompletedEventAttributes()
			switch activityType[a.GetScheduledEventId()] {
			case "ReconcileTopUps":
				var rec activities.ReconcileTopUpsResult
				require.NoError(s.t, dc.FromPayloads(a.GetResult(), &rec))
				cur.reconciled, cur.reconcileAt = &rec, scheduledAt[a.GetScheduledEventId()]
			case "SyncWallet":
				var w activities.SyncWalletResult
				require.NoError(s.t, dc.FromPayloads(a.GetResult(), &w))
				cur.wallet = &w
				cur = nil
			}
		}
	}
	return out
}

// activityCount counts a workflow's scheduled activities of a type.
func (s *stack) activityCount(workflowID, name string) int {
	s.t.Helper()
	n := 0
	iter := s.temporal.GetWorkflowHistory(context.Background(), workflowID, "", false, 0)
	for iter.HasNext() {
		ev, err := iter.Next()
		require.NoError(s.t, err)
		if a := ev.GetActivityTaskScheduledEventAttributes(); a != nil && a.GetActivityType().GetName() == name {
			n++
		}
	}
	return n
}

// A top-up paid over the NWC sandbox raises spendable within one fast
// interval with the Lightning settlement stream stopped: the aggressive
// balance sync repairs it.
//
// The scenario is chosen so that nothing but the aggressive sync can learn
// of the money. When the NWC wallet pays the cascade's own pay_invoice, the
// cascade learns it from the NIP-47 answer (PayByNWC), and when that answer
// is lost it asks the node itself (PayByNWC's settledOnNode, then
// ResolveNWC polling while the BOLT11 is payable), so neither the stream
// nor the balance sync would be what delivers it. Here the cascade's NWC
// request is refused (INSUFFICIENT_BALANCE: the wallet certainly did not
// pay), no card is saved, so the tenant gets the DM and the invoice waits
// (awaiting_payment) with its own reconciliation an hour away. The tenant
// then funds the wallet and pays the top-up's BOLT11 from it over NIP-47
// (another app's connection to the same sandbox wallet): the money settles
// on the engine's node, where only the settlement stream (parked for the
// whole test) or a reconciliation would see it. The BalanceSync, in the
// fast window the top-up request opened (1 s interval here), reconciles
// the open top-up with the node (ReconcileTopUps), hands the payment to
// the invoice's workflow, which settles it and writes the deposit, and the
// next fast sync reads spendable 25.00 USD.
func TestTopUpRepairedByAggressiveSync(t *testing.T) {
	ctx := context.Background()
	s := newStack(t)
	r := s.startRails(railsOpts{env: []string{"BILLFLOW_RECONCILE=1h"}})
	r.wallet.SetForceInsufficientBalance(true)
	s.parkSettlementStream()
	s.startWorker()
	u := s.newTenant(r, payer{nwc: true})
	s.startBalanceSync(u.id, time.Second)

	var tu api.TopUpView
	require.Equal(t, http.StatusCreated, r.apiCall(t, http.MethodPost, "/v1/tenants/"+string(u.id)+"/wallet/top-ups",
		map[string]any{"amount": 2500, "key": "e2e-top-up"}, &tu))
	inv := tu.Invoice.ID
	s.waitDM(r, u, "invoice="+inv)
	s.waitFor("the top-up awaits payment", 30*time.Second, func() (bool, error) {
		return s.invoiceStatus(inv) == store.InvoiceAwaitingPayment, nil
	})
	attempts, err := s.store.Attempts(ctx, inv)
	require.NoError(t, err)
	var rails []string
	for _, a := range attempts {
		rails = append(rails, a.Rail+":"+a.Outcome)
	}
	require.Contains(t, rails, "nwc:failed", "the cascade's NWC request was refused")
	require.Empty(t, r.wallet.Payments(), "the refused request paid nothing")
	bolts, err := s.store.Bolt11s(ctx, inv)
	require.NoError(t, err)
	require.Len(t, bolts, 1, "the BOLT11 of the NWC attempt, also the payment link's")
	require.Equal(t, int64(2500*msatPerDollar/100), bolts[0].AmountMsat)

	// The tenant pays the link from its wallet, over NIP-47.
	r.wallet.SetForceInsufficientBalance(false)
	conn, err := r.wallet.NewConnection()
	require.NoError(t, err)
	app, err := nwc.NewClient(conn)
	require.NoError(t, err)
	t.Cleanup(func() { _ = app.Close() })
	payCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	_, err = app.PayInvoice(payCtx, nwc.PayInvoiceRequest{Invoice: bolts[0].PaymentRequest})
	cancel()
	require.NoError(t, err)
	paidAt := time.Now()
	require.Len(t, r.wallet.Payments(), 1)

	res := s.outcome(inv, 60*time.Second)
	require.Equal(t, "paid", res.Status)
	require.Equal(t, store.RailLightning, res.Rail, "found on the node, not answered over NWC")
	require.Equal(t, bolts[0].PaymentHash, res.Reference)
	var view contract.BalanceView
	s.waitFor("the balance sync reads the deposit", 30*time.Second, func() (bool, error) {
		var err error
		view, err = s.queriedBalance(u.id)
		return view.Spendable == 2500, err
	})
	require.Empty(t, view.OpenTopUps)
	require.Empty(t, view.Violation)

	// The deposit is written once, for the payment found.
	require.Equal(t, 1, s.count(`SELECT count(*) FROM wallet_entries WHERE tenant_id=$1 AND kind='deposit'`, u.id))
	require.Equal(t, 1, s.count(`SELECT count(*) FROM wallet_entries WHERE tenant_id=$1 AND kind='deposit' AND amount=2500`, u.id))
	require.Equal(t, 1, s.count(`SELECT count(*) FROM payments WHERE invoice_id=$1`, inv))
	require.Equal(t, 1, s.count(`SELECT count(*) FROM events WHERE subject_id=$1 AND type='invoice.paid'`, inv))
	w, err := s.store.WalletState(ctx, u.id)
	require.NoError(t, err)
	require.Equal(t, int64(2500), w.Spendable)

	// Nothing else delivered it: the stream never ran, the invoice never
	// reconciled on its own and never polled the node for its NWC request.
	cursor, err := s.store.SettleCursor(ctx, "lnd")
	require.NoError(t, err)
	require.Zero(t, cursor, "the settlement stream handled no settlement")
	require.Zero(t, s.activityCount(workflows.SettlementsWorkflowID(s.taskQueue), "WatchSettlements"), "the stream never subscribed")
	require.NotContains(t, s.logs.String(), "following lightning settlements")
	require.Zero(t, s.activityCount(workflows.InvoiceWorkflowID(inv), "Reconcile"))
	require.Zero(t, s.activityCount(workflows.InvoiceWorkflowID(inv), "ResolveNWC"))

	// The BalanceSync found it: a reconciliation reports the payment, handed
	// to the running invoice workflow, at an aggressive sync; the first to
	// find it is at most the first reconciliation scheduled after the
	// payment; the deposit is read at an aggressive sync too.
	syncs := s.balanceSyncs(u.id)
	// (A sync running before the invoice's workflow has settled the
	// payment may find it again: the report is idempotent, and the deposit
	// above is written once.)
	found, raised, finds := -1, -1, 0
	for i, sy := range syncs {
		if sy.reconciled != nil && len(sy.reconciled.Found) > 0 {
			if found == -1 {
				found = i
			}
			finds++
			require.Len(t, sy.reconciled.Found, 1)
			f := sy.reconciled.Found[0]
			require.Equal(t, inv, f.InvoiceID)
			require.Equal(t, bolts[0].PaymentHash, f.Payment.Reference)
			require.False(t, f.Settled, "handed to the invoice's workflow, which settled it")
		}
		if raised == -1 && sy.wallet != nil && sy.wallet.View.Spendable == 2500 {
			raised = i
		}
	}
	require.NotEqual(t, -1, found, "a ReconcileTopUps found the payment")
	require.NotEqual(t, -1, raised, "a sync read spendable 25.00")
	require.GreaterOrEqual(t, raised, found)
	require.True(t, strings.HasPrefix(syncs[found].wake, "aggressive sync every 1s"), "found by a fast-window sync: %q", syncs[found].wake)
	require.True(t, strings.HasPrefix(syncs[raised].wake, "aggressive sync every 1s"), "raised at a fast-window sync: %q", syncs[raised].wake)
	missed := 0
	for _, sy := range syncs[:found] {
		if sy.reconciled != nil {
			missed++
			require.True(t, sy.reconcileAt.Before(paidAt), "a reconciliation after the payment missed it")
		}
	}
	t.Logf("top-up found by BalanceSync sync %d of %d (wake %q) after %d reconciliation(s) of it before the payment; found %d time(s); spendable raised at sync %d",
		found+1, len(syncs), syncs[found].wake, missed, finds, raised+1)
}

// Auto-recharge over the sandboxes: a wallet holding 25.00 USD with
// auto-recharge at 10.00 (threshold) / 20.00 (amount) pays a 20.00 USD
// subscription invoice from its credit (the wallet rail), which leaves 5.00,
// below the threshold. The balance sync's next sync starts one auto top-up,
// whose own InvoicePayment collects it over NWC (the sandbox wallet pays
// the BOLT11 through the engine's node, its answer held 3 s so fast syncs
// run while the top-up is open); paid, it deposits and spendable is 25.00
// again. Exactly one auto top-up is started: not by the syncs while it is
// open, nor by later syncs above the threshold; one wallet.low_balance is
// written for the one crossing.
func TestAutoRechargeOverNWCFiresOnce(t *testing.T) {
	ctx := context.Background()
	s := newStack(t)
	r := s.startRails(railsOpts{})
	r.wallet.SetReplyDelay(3 * time.Second)
	s.startWorker()
	u := s.newTenant(r, payer{nwc: true})
	_, err := s.store.Deposit(ctx, store.WalletWrite{TenantID: u.id, Key: "e2e-deposit-" + string(u.id)[:8], Amount: 2500, Currency: "usd"})
	require.NoError(t, err)
	var ar store.AutoRecharge
	require.Equal(t, http.StatusOK, r.apiCall(t, http.MethodPut, "/v1/tenants/"+string(u.id)+"/wallet/auto-recharge",
		map[string]any{"threshold": 1000, "amount": 2000}, &ar))
	require.True(t, ar.On())
	s.startBalanceSync(u.id, time.Second)

	inv := s.bill(u, "pro")
	res := s.outcome(inv, 90*time.Second)
	require.Equal(t, store.RailWallet, res.Rail, "the subscription invoice is paid from the wallet")

	var topUp string
	s.waitFor("an auto top-up", 60*time.Second, func() (bool, error) {
		err := s.store.Pool().QueryRow(ctx, `SELECT coalesce(max(id), '') FROM invoices WHERE tenant_id=$1 AND kind='top_up'`, u.id).Scan(&topUp)
		return topUp != "", err
	})
	paid := s.outcome(topUp, 90*time.Second)
	require.Equal(t, "paid", paid.Status)
	require.Equal(t, store.RailNWC, paid.Rail, "the auto top-up is collected over NWC")
	var view contract.BalanceView
	s.waitFor("the balance sync reads the recharged wallet", 30*time.Second, func() (bool, error) {
		var err error
		view, err = s.queriedBalance(u.id)
		return view.Spendable == 2500, err
	})
	// Later syncs, above the threshold, start nothing.
	for range 2 {
		v, err := s.billing.SyncBalance(ctx, string(u.id))
		require.NoError(t, err)
		require.Equal(t, int64(2500), v.Spendable)
	}

	require.Equal(t, 1, s.count(`SELECT count(*) FROM invoices WHERE tenant_id=$1 AND kind='top_up'`, u.id), "one auto top-up")
	require.Equal(t, 1, s.count(`SELECT count(*) FROM invoices WHERE id=$1 AND auto_recharge AND total=2000 AND status='paid'`, topUp))
	require.Len(t, r.wallet.Payments(), 1, "one NWC payment: the top-up's")
	require.Equal(t, int64(2000*msatPerDollar/100), r.wallet.Payments()[0].AmountMsat)
	require.Equal(t, 1, s.count(`SELECT count(*) FROM wallet_entries WHERE tenant_id=$1 AND kind='deposit' AND amount=2000`, u.id))
	require.Equal(t, 1, s.count(`SELECT count(*) FROM wallet_entries WHERE tenant_id=$1 AND kind='settle' AND amount=2000`, u.id))
	require.Equal(t, 1, s.count(`SELECT count(*) FROM events WHERE tenant_id=$1 AND type='wallet.low_balance'`, u.id))
	w, err := s.store.WalletState(ctx, u.id)
	require.NoError(t, err)
	require.Equal(t, int64(2500), w.Spendable)
	require.Empty(t, w.Violation)

	require.Equal(t, 1, s.activityCount(contract.BalanceWorkflowID(u.id), "StartAutoRecharge"), "one auto top-up started by the balance sync")
	whileOpen := 0
	for _, sy := range s.balanceSyncs(u.id) {
		if sy.wallet == nil {
			continue // a sync still running as the history was read
		}
		if a := sy.wallet.AutoRecharge; a != nil && a.OpenInvoiceID == topUp && sy.wallet.View.Spendable < a.Threshold {
			whileOpen++
		}
	}
	require.Positive(t, whileOpen, "a sync ran below the threshold while the top-up was open, and started none")
	t.Logf("auto-recharge: %d sync(s) below the threshold while the top-up was open started no second one", whileOpen)
}

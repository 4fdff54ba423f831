//go:build integration

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"
	sdkpb "go.temporal.io/api/sdk/v1"
	"go.temporal.io/sdk/client"

	"github.com/billflow/billflow/billing"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/internal/testkit"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/sandbox/meterclient"
	"github.com/billflow/billflow/store"
)

// The usage services of these tests: 1 cent a second, a receipt per 10
// seconds (10 cents); e2e-sec's grace is long enough that only a top-up or
// its absence decides, never the timer racing the test; e2e-short's ends
// at once (and bans for 50 x 2 s).
const usageCatalog = `{"services": [
  {"id": "e2e-sec", "unit": "SEC", "price": 60, "units": 60, "chunk": 10, "grace_period": "10m"},
  {"id": "e2e-free", "unit": "SEC", "price": 0, "units": 60, "chunk": 60, "allow_free": true},
  {"id": "e2e-short", "unit": "SEC", "price": 60, "units": 60, "chunk": 10, "grace_period": "2s"}
]}`

// usageRails starts the rails with the test catalog and the outbound
// webhook fanned out to the stack's receiver and the metered clients
// added later (the application relays sign requests to its payers; here
// every client sees every event and answers its own payer's).
func (s *stack) usageRails() (*rails, *hookFanout) {
	s.t.Helper()
	path := filepath.Join(s.t.TempDir(), "services.json")
	require.NoError(s.t, os.WriteFile(path, []byte(usageCatalog), 0o600))
	f := &hookFanout{handlers: []http.Handler{s.webhook.srv.Config.Handler}}
	f.srv = httptest.NewServer(f)
	s.t.Cleanup(f.srv.Close)
	r := s.startRails(railsOpts{env: []string{"BILLFLOW_SERVICES=" + path, "BILLFLOW_WEBHOOK_URL=" + f.srv.URL}})
	return r, f
}

// hookFanout delivers each outbound event to several endpoints in this
// process; its answer is the first one's (the stack's receiver).
type hookFanout struct {
	srv      *httptest.Server
	mu       sync.Mutex
	handlers []http.Handler
}

func (f *hookFanout) add(h http.Handler) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.handlers = append(f.handlers, h)
}

func (f *hookFanout) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	hs := append([]http.Handler(nil), f.handlers...)
	f.mu.Unlock()
	status := 0
	for _, h := range hs {
		req := httptest.NewRequest(r.Method, r.URL.String(), bytes.NewReader(body))
		req.Header = r.Header.Clone()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if status == 0 {
			status = rec.Code
		}
	}
	w.WriteHeader(status)
}

// meterClient is the sandbox metered client holding the payer's key, in
// the given mode, posting signatures to the rails' api.
func (s *stack) meterClient(r *rails, f *hookFanout, u tenantUser, mode meterclient.Mode) *meterclient.Client {
	s.t.Helper()
	mc, err := meterclient.New(meterclient.Options{SecretKey: u.sk, APIURL: r.api.URL, APIToken: apiToken,
		WebhookSecret: []byte(webhookSecret), Mode: mode})
	require.NoError(s.t, err)
	s.t.Cleanup(mc.Close)
	f.add(mc)
	return mc
}

// usageView waits until the session's view satisfies ok and returns it.
func (s *stack) usageView(session, what string, ok func(contract.UsageView) bool) contract.UsageView {
	s.t.Helper()
	var v contract.UsageView
	s.waitFor(what, 90*time.Second, func() (bool, error) {
		var err error
		v, err = s.billing.UsageSession(context.Background(), session)
		return err == nil && ok(v), err
	})
	return v
}

// resting: NORMAL with n receipts paid and none waiting.
func resting(n int64) func(contract.UsageView) bool {
	return func(v contract.UsageView) bool {
		return v.State == contract.UsageNormal && v.SubState == contract.SubNormal && v.ReceiptsSigned == n && v.Waiting == nil
	}
}

// timerSummaries lists the summaries of a workflow's started timers, and
// how many of them fired.
func (s *stack) timerSummaries(workflowID string) (started []string, fired int) {
	s.t.Helper()
	dc := testkit.DataConverter(s.t)
	iter := s.temporal.GetWorkflowHistory(context.Background(), workflowID, "", false, 0)
	for iter.HasNext() {
		ev, err := iter.Next()
		require.NoError(s.t, err)
		switch ev.GetEventType() {
		case enumspb.EVENT_TYPE_TIMER_STARTED:
			var summary string
			if p := ev.GetUserMetadata().GetSummary(); p != nil {
				require.NoError(s.t, dc.FromPayload(p, &summary))
			}
			started = append(started, summary)
		case enumspb.EVENT_TYPE_TIMER_FIRED:
			fired++
		}
	}
	return started, fired
}

// signalCount counts a workflow's received signals of a name.
func (s *stack) signalCount(workflowID, name string) int {
	s.t.Helper()
	n := 0
	iter := s.temporal.GetWorkflowHistory(context.Background(), workflowID, "", false, 0)
	for iter.HasNext() {
		ev, err := iter.Next()
		require.NoError(s.t, err)
		if a := ev.GetWorkflowExecutionSignaledEventAttributes(); a != nil && a.GetSignalName() == name {
			n++
		}
	}
	return n
}

// sessionResult waits for the session's workflow to complete and returns its final view.
func (s *stack) sessionResult(session string) contract.UsageView {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var v contract.UsageView
	require.NoError(s.t, s.temporal.GetWorkflow(ctx, contract.UsageSessionWorkflowID(session), "").Get(ctx, &v))
	return v
}

func (s *stack) report(session, id string, seconds int64) {
	s.t.Helper()
	require.NoError(s.t, s.billing.ReportUsage(context.Background(), session, billing.UsageReport{ID: id, Seconds: seconds, BytesReceived: 1000, BytesSent: 500}))
}

// A paid session across several receipts, from a wallet funded first:
// the sandbox client (auto) co-signs each receipt it is sent; each usage
// report that uses up the covered units brings the next receipt; every
// receipt is promised once on the wallet, the statistics are written, and
// the end settles the promised total and keeps the unused units.
func TestUsageSessionPaidAcrossReceipts(t *testing.T) {
	ctx := context.Background()
	s := newStack(t)
	r, f := s.usageRails()
	s.startWorker()
	u := s.newTenant(r, payer{})
	_, err := s.store.Deposit(ctx, store.WalletWrite{TenantID: u.id, Key: "e2e-deposit", Amount: 100, Currency: "usd"})
	require.NoError(t, err)
	mc := s.meterClient(r, f, u, meterclient.ModeAuto)

	session := "paid-" + string(u.id)[:8]
	res, err := s.billing.StartUsage(ctx, billing.UsageStartRequest{SessionID: session, ServiceID: "e2e-sec", Payer: u.id, MaxUnitPrice: 60})
	require.NoError(t, err)
	assert.Equal(t, contract.UsageIdle, res.State)
	assert.Equal(t, contract.SubWaitingFirstReceiptSign, res.SubState)
	require.NotNil(t, res.Receipt)
	assert.Equal(t, int64(10), res.Receipt.Receipt.Value)

	s.usageView(session, "the first receipt signed by the client and paid", resting(1))
	for i := int64(1); i <= 3; i++ {
		s.report(session, fmt.Sprint("rep-", i), 10)
		s.usageView(session, "receipt after report", resting(i+1))
	}
	v, err := s.billing.EndUsage(ctx, session)
	require.NoError(t, err)
	assert.Equal(t, contract.UsageEnded, v.State)
	assert.Equal(t, int64(4), v.ReceiptsSigned)
	assert.Equal(t, int64(40), v.PaidUnits)
	assert.Equal(t, int64(30), v.UsedUnits)
	assert.Equal(t, int64(30), v.Value)
	assert.Equal(t, int64(40), v.Promised)
	assert.Empty(t, v.LastError)

	// Every sign request the client got, it signed; one per receipt.
	out := mc.Outcomes()
	require.Len(t, out, 4, "%+v", out)
	for _, o := range out {
		assert.Equal(t, "signed", o.Result, "%+v", o)
		assert.Equal(t, 1, o.Attempt)
	}
	// The ledger: one promise per receipt (keyed by it), one settle of their total.
	n, err := s.store.UsageReceiptCount(ctx, session)
	require.NoError(t, err)
	assert.Equal(t, 4, n)
	assert.Equal(t, 4, s.count(`SELECT count(*) FROM wallet_entries e JOIN usage_receipts r ON r.receipt_id = e.source_key
		WHERE e.tenant_id = $1 AND e.kind = 'promise' AND e.amount = 10 AND r.session_id = $2`, u.id, session))
	assert.Equal(t, 4, s.count(`SELECT count(*) FROM wallet_entries WHERE tenant_id = $1 AND kind = 'promise'`, u.id))
	assert.Equal(t, 1, s.count(`SELECT count(*) FROM wallet_entries WHERE tenant_id = $1 AND kind = 'settle' AND amount = 40 AND source_key = $2`,
		u.id, "usage/"+session))
	w, err := s.store.WalletState(ctx, u.id)
	require.NoError(t, err)
	assert.Equal(t, int64(60), w.Spendable)
	assert.Equal(t, int64(60), w.Funds)
	assert.Empty(t, w.Violation)
	remain, err := s.store.UsageRemain(ctx, u.id, "e2e-sec", models.UnitSeconds)
	require.NoError(t, err)
	assert.Equal(t, int64(10), remain, "the unused covered units are kept as remain service")
	stats, err := s.store.UsageStatsOf(ctx, "e2e-sec", u.id)
	require.NoError(t, err)
	require.Len(t, stats, 1, "%+v", stats)
	assert.Equal(t, store.UsageStats{Mode: store.UsageModePaid, Seconds: 30, BytesReceived: 3000, BytesSent: 1500, Units: 30, Value: 30}, stats[0].UsageStats)
	assert.Equal(t, 1, s.count(`SELECT count(*) FROM usage_sessions WHERE id = $1 AND state = 'ended'`, session))

	// The history: the engine signed and sent 4 receipts, paid 4, ended once.
	id := contract.UsageSessionWorkflowID(session)
	assert.Equal(t, contract.UsageEnded, s.sessionResult(session).State)
	assert.Equal(t, 4, s.activityCount(id, "UsageSend"))
	assert.Equal(t, 4, s.activityCount(id, "UsagePay"))
	assert.Equal(t, 1, s.activityCount(id, "UsageEnd"))
	_, fired := s.timerSummaries(id)
	assert.Zero(t, fired, "no sign timeout fired")
	_, events := s.historyText(id)
	t.Logf("paid session: 4 receipts, %d history events", events)
}

// A session that runs out of funds: the first receipt is paid from the
// wallet, the next one finds it empty (TX_COND_NOT_ENOUGH reported), the
// session goes into grace while service continues and asks for funds; a
// top-up collected over NWC from the tenant's sandbox wallet deposits,
// the session is told, issues a new receipt the client signs, and resumes
// NORMAL. Statistics count the grace session; the ledger has one promise
// per paid receipt and the top-up's deposit.
func TestUsageSessionGraceToppedUpOverNWC(t *testing.T) {
	ctx := context.Background()
	s := newStack(t)
	r, f := s.usageRails()
	s.startWorker()
	u := s.newTenant(r, payer{nwc: true})
	_, err := s.store.Deposit(ctx, store.WalletWrite{TenantID: u.id, Key: "e2e-deposit", Amount: 10, Currency: "usd"})
	require.NoError(t, err)
	mc := s.meterClient(r, f, u, meterclient.ModeAuto)

	session := "grace-" + string(u.id)[:8]
	_, err = s.billing.StartUsage(ctx, billing.UsageStartRequest{SessionID: session, ServiceID: "e2e-sec", Payer: u.id, MaxUnitPrice: 60})
	require.NoError(t, err)
	s.usageView(session, "the first receipt paid", resting(1))
	s.report(session, "rep-1", 10)
	v := s.usageView(session, "grace: the next receipt found the wallet empty", func(v contract.UsageView) bool {
		return v.State == contract.UsageGrace
	})
	assert.Equal(t, contract.SubWaitingNewTxFromClient, v.SubState)
	assert.Equal(t, models.UsageNotEnough, v.LastError)
	assert.Equal(t, int64(1), v.ReceiptsSigned)
	s.waitFor("the session waits for funds in Postgres", 30*time.Second, func() (bool, error) {
		return s.count(`SELECT count(*) FROM usage_sessions WHERE id = $1 AND state = 'waiting_funds'`, session) == 1, nil
	})
	s.waitFor("usage.error and usage.funds_needed delivered", 30*time.Second, func() (bool, error) {
		return len(s.webhook.received(store.EventUsageError)) > 0 && len(s.webhook.received(store.EventUsageFundsNeeded)) > 0, nil
	})
	// Service goes on in grace (4 s: after the new receipt more than half
	// a chunk is left, so no further receipt is issued before the end).
	s.report(session, "rep-2", 4)
	s.usageView(session, "the report counted in grace", func(v contract.UsageView) bool { return v.UsedUnits == 14 })

	top, err := s.billing.TopUp(ctx, string(u.id), billing.TopUpRequest{Key: "usage-top-up", Amount: 100, Currency: "usd"})
	require.NoError(t, err)
	paid := s.outcome(top.InvoiceID, 90*time.Second)
	require.Equal(t, "paid", paid.Status)
	require.Equal(t, store.RailNWC, paid.Rail, "the top-up is collected over NWC")
	v = s.usageView(session, "NORMAL again after the top-up's receipt is signed", resting(2))
	assert.Equal(t, int64(20), v.PaidUnits)
	assert.Equal(t, int64(14), v.UsedUnits)

	v, err = s.billing.EndUsage(ctx, session)
	require.NoError(t, err)
	assert.Equal(t, contract.UsageEnded, v.State)
	assert.Equal(t, int64(20), v.Promised)

	id := contract.UsageSessionWorkflowID(session)
	assert.Equal(t, 1, s.signalCount(id, contract.SignalUsageFunds), "the paid top-up told the session")
	timers, fired := s.timerSummaries(id)
	grace := 0
	for _, sm := range timers {
		if strings.HasPrefix(sm, "grace period") {
			grace++
		}
	}
	assert.Equal(t, 1, grace, "one grace timer: %q", timers)
	assert.Zero(t, fired, "neither the grace timer nor a sign timeout fired")
	assert.Equal(t, 3, s.activityCount(id, "UsagePay"), "receipt 1, receipt 2 refused for funds, the new receipt 2")
	out := mc.Outcomes()
	require.Len(t, out, 3, "the client signed receipt 1, receipt 2 (refused for funds) and the new receipt 2: %+v", out)
	for _, o := range out {
		assert.Equal(t, "signed", o.Result, "%+v", o)
	}

	assert.Equal(t, 2, s.count(`SELECT count(*) FROM usage_receipts WHERE session_id = $1`, session))
	assert.Equal(t, 2, s.count(`SELECT count(*) FROM wallet_entries WHERE tenant_id = $1 AND kind = 'promise' AND amount = 10`, u.id))
	assert.Equal(t, 1, s.count(`SELECT count(*) FROM wallet_entries WHERE tenant_id = $1 AND kind = 'deposit' AND amount = 100 AND invoice_id = $2`, u.id, top.InvoiceID))
	assert.Equal(t, 1, s.count(`SELECT count(*) FROM wallet_entries WHERE tenant_id = $1 AND kind = 'settle' AND amount = 20 AND source_key = $2`, u.id, "usage/"+session))
	w, err := s.store.WalletState(ctx, u.id)
	require.NoError(t, err)
	assert.Equal(t, int64(90), w.Spendable)
	assert.Empty(t, w.Violation)
	ban, err := s.store.UsageBan(ctx, "e2e-sec", u.id, time.Now())
	require.NoError(t, err)
	assert.Nil(t, ban)
	stats, err := s.store.UsageStatsOf(ctx, "e2e-sec", u.id)
	require.NoError(t, err)
	byMode := map[string]store.UsageStats{}
	for _, st := range stats {
		byMode[st.Mode] = st.UsageStats
	}
	assert.Equal(t, int64(1), byMode[store.UsageModeGrace].Sessions)
	assert.Equal(t, int64(4), byMode[store.UsageModeGrace].Seconds, "the usage reported in grace")
	assert.Equal(t, int64(10), byMode[store.UsageModePaid].Seconds)
}

// startUsageWith starts a session as billing.StartUsage does, with the
// workflow's input knobs (short sign timeouts) set.
func (s *stack) startUsageWith(in contract.UsageSessionInput, req billing.UsageStartRequest) (contract.UsageStartResult, error) {
	s.t.Helper()
	ctx := context.Background()
	var res contract.UsageStartResult
	start := s.temporal.NewWithStartWorkflowOperation(client.StartWorkflowOptions{
		ID: contract.UsageSessionWorkflowID(in.SessionID), TaskQueue: s.taskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
	}, contract.WorkflowUsageSession, in)
	h, err := s.temporal.UpdateWithStartWorkflow(ctx, client.UpdateWithStartWorkflowOptions{StartWorkflowOperation: start,
		UpdateOptions: client.UpdateWorkflowOptions{UpdateName: contract.UpdateUsageStart, Args: []any{req}, WaitForStage: client.WorkflowUpdateStageCompleted}})
	if err != nil {
		return res, err
	}
	return res, h.Get(ctx, &res)
}

// A client that never signs: the first receipt is sent, re-sent after
// each sign timeout (1 s here, 3 sends), then the session ends with
// RECEIPT_NO_SIGN: nothing promised or settled, the error reported to the
// application, the payer's funds untouched.
func TestUsageSessionNeverSigned(t *testing.T) {
	ctx := context.Background()
	s := newStack(t)
	r, f := s.usageRails()
	s.startWorker()
	u := s.newTenant(r, payer{})
	_, err := s.store.Deposit(ctx, store.WalletWrite{TenantID: u.id, Key: "e2e-deposit", Amount: 100, Currency: "usd"})
	require.NoError(t, err)
	mc := s.meterClient(r, f, u, meterclient.ModeNever)

	session := "never-" + string(u.id)[:8]
	res, err := s.startUsageWith(contract.UsageSessionInput{SessionID: session, SignTimeout: time.Second, SignAttempts: 3},
		billing.UsageStartRequest{SessionID: session, ServiceID: "e2e-sec", Payer: u.id, MaxUnitPrice: 60})
	require.NoError(t, err)
	assert.Equal(t, contract.SubWaitingFirstReceiptSign, res.SubState)

	v := s.sessionResult(session)
	assert.Equal(t, contract.UsageEnded, v.State)
	assert.Equal(t, contract.SubError, v.SubState)
	assert.Equal(t, models.UsageReceiptNoSign, v.LastError)
	assert.Zero(t, v.ReceiptsSigned)
	_, err = s.billing.EndUsage(ctx, session)
	var ue *billing.UsageError
	require.ErrorAs(t, err, &ue)
	assert.Equal(t, models.UsageSessionEnded, ue.Code)

	id := contract.UsageSessionWorkflowID(session)
	timers, fired := s.timerSummaries(id)
	var sign []string
	for _, sm := range timers {
		if strings.Contains(sm, "for the payer's signature") {
			sign = append(sign, sm)
		}
	}
	require.Len(t, sign, 3, "%q", timers)
	for i, sm := range sign {
		assert.Contains(t, sm, fmt.Sprintf("(send %d of 3)", i+1))
	}
	assert.Equal(t, 3, fired, "each send's timeout fired")
	assert.Equal(t, 3, s.activityCount(id, "UsageSend"), "the receipt sent and re-sent twice")
	assert.Zero(t, s.activityCount(id, "UsagePay"))
	assert.Equal(t, 1, s.activityCount(id, "UsageEnd"))
	s.waitFor("the client got every send", 30*time.Second, func() (bool, error) { return len(mc.Outcomes()) == 3, nil })
	for i, o := range mc.Outcomes() {
		assert.Equal(t, "ignored", o.Result)
		assert.Equal(t, i+1, o.Attempt)
		assert.Equal(t, res.Receipt.ReceiptID, o.ReceiptID, "the very receipt waited for is re-sent")
	}
	s.waitFor("usage.error delivered", 30*time.Second, func() (bool, error) { return len(s.webhook.received(store.EventUsageError)) == 1, nil })

	assert.Zero(t, s.count(`SELECT count(*) FROM usage_receipts WHERE session_id = $1`, session))
	assert.Zero(t, s.count(`SELECT count(*) FROM wallet_entries WHERE tenant_id = $1 AND kind IN ('promise', 'settle')`, u.id))
	assert.Equal(t, 1, s.count(`SELECT count(*) FROM usage_sessions WHERE id = $1 AND state = 'ended'`, session))
	w, err := s.store.WalletState(ctx, u.id)
	require.NoError(t, err)
	assert.Equal(t, int64(100), w.Spendable)
}

// A grace that ends unpaid bans the payer (TX_COND_NOT_FOUND, a ban of 50
// grace periods in Postgres); a new session is refused over the api
// (403 RECEIPT_BANNED_PKEY_HASH) until an operator lifts the ban
// (DELETE /v1/usage/bans/{service}/{payer}); then it starts, in grace. The
// statistics over the api count both grace sessions.
func TestUsageGraceBanLiftedByOperator(t *testing.T) {
	ctx := context.Background()
	s := newStack(t)
	r, _ := s.usageRails()
	s.startWorker()
	u := s.newTenant(r, payer{})

	first := "banned-" + string(u.id)[:8]
	res, err := s.billing.StartUsage(ctx, billing.UsageStartRequest{SessionID: first, ServiceID: "e2e-short", Payer: u.id, MaxUnitPrice: 60})
	require.NoError(t, err)
	assert.Equal(t, contract.UsageGrace, res.State, "no funds: service starts in grace")
	assert.Equal(t, contract.SubWaitingTxForPaying, res.SubState)
	v := s.sessionResult(first)
	assert.Equal(t, models.UsageNoFunds, v.LastError)
	ban, err := s.store.UsageBan(ctx, "e2e-short", u.id, time.Now())
	require.NoError(t, err)
	require.NotNil(t, ban, "the payer is banned from grace on the service")
	assert.True(t, ban.After(time.Now()))
	_, fired := s.timerSummaries(contract.UsageSessionWorkflowID(first))
	assert.Equal(t, 1, fired, "the grace timer ended the session")

	start := func(id string) map[string]any {
		return map[string]any{"session_id": id, "service_id": "e2e-short", "payer": string(u.id), "max_unit_price": 60}
	}
	var refused struct{ Error, Code, Message string }
	require.Equal(t, http.StatusForbidden, r.apiCall(t, http.MethodPost, "/v1/usage/sessions", start("refused-"+string(u.id)[:8]), &refused))
	assert.Equal(t, string(models.UsageBannedPayer), refused.Code, refused.Message)

	var lifted struct {
		Lifted    bool       `json:"lifted"`
		ExpiresAt *time.Time `json:"expires_at"`
	}
	require.Equal(t, http.StatusOK, r.apiCall(t, http.MethodDelete, "/v1/usage/bans/e2e-short/"+string(u.id), nil, &lifted))
	assert.True(t, lifted.Lifted)
	require.NotNil(t, lifted.ExpiresAt)
	assert.True(t, ban.Equal(*lifted.ExpiresAt))

	again := "again-" + string(u.id)[:8]
	var started contract.UsageStartResult
	require.Equal(t, http.StatusOK, r.apiCall(t, http.MethodPost, "/v1/usage/sessions", start(again), &started))
	assert.Equal(t, contract.UsageGrace, started.State, "with the ban lifted the payer may go into grace again")
	assert.Equal(t, models.UsageNoFunds, s.sessionResult(again).LastError)

	var stats struct {
		Services []struct {
			ServiceID string `json:"service_id"`
			Grace     struct {
				Sessions int64 `json:"sessions"`
			} `json:"grace"`
		} `json:"services"`
	}
	require.Equal(t, http.StatusOK, r.apiCall(t, http.MethodGet, "/v1/usage/stats?service=e2e-short&payer="+string(u.id), nil, &stats))
	require.Len(t, stats.Services, 1)
	assert.Equal(t, int64(2), stats.Services[0].Grace.Sessions, "both sessions went through grace")
}

// poolConfig is the free-tier pool of TestUsageSessionFreeTierPool:
// trusted payers get 25 cents a day, the pool takes 10% of every paid
// invoice and is low under 1.00 USD.
const poolConfig = `{"currency": "usd", "credit_share_bps": 1000, "low_balance_floor": 100,
  "tiers": {"new": {"daily_budget": 0}, "established": {"daily_budget": 10, "paid_invoices": 1, "min_age": "168h"},
    "trusted": {"daily_budget": 25, "paid_invoices": 3, "min_age": "720h"}, "elite": {"daily_budget": 1000, "paid_invoices": 12, "min_age": "4320h"}}}`

// A trusted payer's session runs free until its daily budget (25) is used,
// then partial, then gated: receipts of 10 are paid by the pool (1, 2),
// half by the pool once the payer's half is promised (3), and by the
// wallet (4). The session's view shows the pool's part, the end settles
// only the wallet's part and records every grant, and the pool grows by
// 10% of the tenant's paid invoice. The operator side goes through the
// starter (tier set, pool credit, pool show, pool grants).
func TestUsageSessionFreeTierPool(t *testing.T) {
	ctx := context.Background()
	s := newStack(t)
	cfgPath := filepath.Join(t.TempDir(), "pool.json")
	require.NoError(t, os.WriteFile(cfgPath, []byte(poolConfig), 0o600))
	s.env = append(s.env, "BILLFLOW_POOL="+cfgPath)
	r, f := s.usageRails()
	s.startWorker()
	s.waitFor("the worker configures the pool", 60*time.Second, func() (bool, error) {
		_, err := s.store.GetPool(ctx)
		return err == nil, nil
	})
	u := s.newTenant(r, payer{card: "pm_card_visa"})
	out, errOut, code := s.starter("tier", "set", "--tenant", string(u.id), "--tier", "trusted", "--reason", "e2e")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "trusted (pinned: e2e")
	out, errOut, code = s.starter("pool", "credit", "--key", "e2e-seed", "--amount", "200", "--note", "e2e")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "the pool holds 200")
	_, err := s.store.Deposit(ctx, store.WalletWrite{TenantID: u.id, Key: "e2e-deposit", Amount: 100, Currency: "usd"})
	require.NoError(t, err)
	s.meterClient(r, f, u, meterclient.ModeAuto)

	session := "pool-" + string(u.id)[:8]
	_, err = s.billing.StartUsage(ctx, billing.UsageStartRequest{SessionID: session, ServiceID: "e2e-sec", Payer: u.id, MaxUnitPrice: 60})
	require.NoError(t, err)
	serves := []string{contract.PoolFree, contract.PoolFree, contract.PoolPartial, contract.PoolGate}
	for i, want := range serves {
		n := int64(i + 1)
		if i > 0 {
			s.report(session, fmt.Sprint("rep-", i), 10)
		}
		v := s.usageView(session, fmt.Sprintf("receipt %d paid (%s)", n, want), resting(n))
		require.NotNil(t, v.Pool, "receipt %d", n)
		assert.Equal(t, want, v.Pool.LastServe, "receipt %d", n)
	}
	v := s.usageView(session, "the pool's figures", resting(4))
	assert.Equal(t, contract.UsagePoolView{Absorbed: 25, Balance: 175, AbsorbedToday: 25, LastServe: contract.PoolGate, Tier: "trusted"}, *v.Pool)
	assert.Equal(t, int64(15), v.Promised, "the wallet promised 5 of receipt 3 and receipt 4")
	details := s.currentDetails(contract.UsageSessionWorkflowID(session))
	assert.Contains(t, details, "Pool balance")
	assert.Contains(t, details, "Absorbed today")

	v, err = s.billing.EndUsage(ctx, session)
	require.NoError(t, err)
	assert.Equal(t, int64(40), v.PaidUnits)
	assert.Equal(t, int64(30), v.UsedUnits)
	assert.Equal(t, 1, s.count(`SELECT count(*) FROM wallet_entries WHERE tenant_id = $1 AND kind = 'settle' AND amount = 15 AND source_key = $2`,
		u.id, "usage/"+session))
	assert.Equal(t, 3, s.count(`SELECT count(*) FROM pool_grants WHERE payer = $1 AND outcome = 'recorded' AND absorbed = reserved`, u.id))
	assert.Equal(t, 2, s.count(`SELECT count(*) FROM usage_receipts WHERE session_id = $1 AND pool_serve = 'free' AND pool_absorbed = value`, session))
	w, err := s.store.WalletState(ctx, u.id)
	require.NoError(t, err)
	assert.Equal(t, int64(85), w.Funds)
	assert.Zero(t, w.Unsettled)
	remain, err := s.store.UsageRemain(ctx, u.id, "e2e-sec", models.UnitSeconds)
	require.NoError(t, err)
	assert.Equal(t, int64(10), remain, "the gated receipt's unused units are the payer's")
	out, errOut, code = s.starter("pool", "grants", "--payer", string(u.id))
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, 3, strings.Count(out, "recorded"), out)

	// A paid invoice: the pool is credited 10% of it in the settlement.
	inv := s.bill(u, "pro")
	assert.Equal(t, store.InvoicePaid, s.outcome(inv, 2*time.Minute).Status)
	paid, _, err := s.store.GetInvoice(ctx, inv)
	require.NoError(t, err)
	p, err := s.store.GetPool(ctx)
	require.NoError(t, err)
	assert.Equal(t, 175+paid.Total/10, p.Balance, "the pool grew by the invoice's share")
	out, errOut, code = s.starter("pool", "show")
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, models.FormatAmount(p.Balance, "usd"))
	// Application code sees the same through package billing.
	bp, err := s.billing.Pool(ctx)
	require.NoError(t, err)
	assert.Equal(t, p.Balance, bp.Balance)
	tier, err := s.billing.PayerTier(ctx, string(u.id))
	require.NoError(t, err)
	assert.Equal(t, int64(25), tier.AbsorbedToday)
	if os.Getenv("BILLFLOW_RECORD_HISTORIES") != "" {
		if !fixtureExists("usage_session_free_pool.json") {
			recordHistory(t, s.temporal, contract.UsageSessionWorkflowID(session), "", "usage_session_free_pool.json")
		}
		op := contract.PoolOperationWorkflowID("e2e-record")
		run, err := s.temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: op, TaskQueue: s.taskQueue}, contract.WorkflowPoolOperation,
			contract.PoolOpRequest{Op: contract.PoolOpDecide, Payer: u.id, Amount: 10})
		require.NoError(t, err)
		var ans contract.PoolOpAnswer
		require.NoError(t, run.Get(ctx, &ans))
		require.NotNil(t, ans.Verdict)
		if !fixtureExists("pool_operation.json") {
			recordHistory(t, s.temporal, op, "", "pool_operation.json")
		}
	}
}

// currentDetails is a running workflow's current details (what the Web
// UI shows), read by the SDK's metadata query.
func (s *stack) currentDetails(workflowID string) string {
	s.t.Helper()
	v, err := s.temporal.QueryWorkflow(context.Background(), workflowID, "", "__temporal_workflow_metadata")
	require.NoError(s.t, err)
	var md sdkpb.WorkflowMetadata
	require.NoError(s.t, v.Get(&md))
	return md.GetCurrentDetails()
}

// fixtureExists reports whether a replay fixture is recorded already
// (fixtures are append-only: a second recording would be refused).
func fixtureExists(name string) bool {
	_, err := os.Stat(filepath.Join(repoRoot(), "workflows", "testdata", name))
	return err == nil
}

package workflows

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nbd-wtf/go-nostr"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/receipts"
)

// The seed's scenarios (section 11) against the UsageSession workflow with
// time skipping; the activities are an in-memory world with the real
// receipt signer and verifier.

const (
	usageEngineKey = "00000000000000000000000000000000000000000000000000000000000000e1"
	usagePayerKey  = "00000000000000000000000000000000000000000000000000000000000000a1"
	usageOtherKey  = "00000000000000000000000000000000000000000000000000000000000000b2"
)

var usageServices = map[string]models.Service{
	// 10 per 60 seconds, a receipt per minute, a minute of grace.
	"vpn":  {ID: "vpn", Unit: models.UnitSeconds, Price: 10, Units: 60, Chunk: 60, GracePeriod: time.Minute},
	"free": {ID: "free", Unit: models.UnitBytes, Price: 0, Units: 1000, Chunk: 1000, AllowFree: true},
}

// usageWorld is the activities' in-memory world.
type usageWorld struct {
	t         *testing.T
	env       *testsuite.TestWorkflowEnvironment
	start     time.Time
	signer    *receipts.Signer
	payer     models.TenantID
	spendable int64
	banUntil  *time.Time
	remain    int64
	promises  map[string]int64
	sent      []contract.SignRequest
	errs      []models.UsageErrorCode
	fundsAsk  []string // keys of top-up requests
	bans      []activities.UsageBanInput
	ended     *activities.UsageEndInput
	stats     map[string]contract.UsageModeStats
	// startErr and payErr, when set, are what UsageStart and UsagePay fail with.
	startErr error
	payErr   error
	// starts counts UsageStart calls.
	starts int
	// pool, when set, is the free-tier pool the activities decide with
	// (usage_pool_test.go).
	pool *testPool
	// onSend, when set, runs as UsageSend sends (while the activity runs).
	onSend func(contract.SignRequest)
}

func newUsageWorld(t *testing.T) *usageWorld {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	start := ts("2026-05-01T00:00:00Z")
	env.SetStartTime(start)
	acts := &activities.Activities{}
	env.RegisterActivity(acts)
	env.RegisterWorkflow(UsageSession)
	signer, err := receipts.NewSigner(usageEngineKey)
	require.NoError(t, err)
	pk, err := nostr.GetPublicKey(usagePayerKey)
	require.NoError(t, err)
	w := &usageWorld{t: t, env: env, start: start, signer: signer, payer: models.TenantID(pk), spendable: 1000,
		promises: map[string]int64{}, stats: map[string]contract.UsageModeStats{}}
	env.OnActivity(acts.UsageStart, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.UsageStartInput) (activities.UsageStartResult, error) {
			w.starts++
			if w.startErr != nil {
				return activities.UsageStartResult{}, w.startErr
			}
			svc, ok := usageServices[in.Request.ServiceID]
			if !ok {
				return activities.UsageStartResult{}, testUsageError(models.UsageServiceNotFound)
			}
			if svc.Price > in.Request.MaxUnitPrice {
				return activities.UsageStartResult{}, testUsageError(models.UsageUnitPriceTooHigh)
			}
			out := activities.UsageStartResult{Service: svc, Currency: "usd", Spendable: w.spendable}
			if w.banUntil != nil && w.banUntil.After(in.At) {
				b := *w.banUntil
				out.BannedUntil = &b
			}
			out.Remain, w.remain = w.remain, 0
			if in.Pool && w.pool != nil {
				v, _ := models.UsageDelta(svc.Price, 0, svc.Chunk, svc.Units)
				out.PoolCover = w.pool.cover(v)
			}
			return out, nil
		}).Maybe()
	env.OnActivity(acts.UsageSend, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.UsageSendInput) (contract.SignRequest, error) {
			var req contract.SignRequest
			if in.Signed != nil {
				req = *in.Signed
			} else if req, err = w.signer.Sign(in.Receipt, in.At); err != nil {
				return req, err
			}
			req.Attempt = in.Attempt
			w.sent = append(w.sent, req)
			if w.onSend != nil {
				w.onSend(req)
			}
			return req, nil
		}).Maybe()
	env.OnActivity(acts.UsagePay, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.UsagePayInput) (activities.UsagePayResult, error) {
			if w.payErr != nil {
				return activities.UsagePayResult{}, w.payErr
			}
			if ue := receipts.Verify(in.Answer, in.Request.Receipt.Payer, in.Request.ReceiptID); ue != nil {
				return activities.UsagePayResult{}, testUsageError(ue.Code)
			}
			if in.Pool && w.pool != nil {
				return w.pool.pay(w, in)
			}
			if _, ok := w.promises[in.Request.ReceiptID]; ok {
				return activities.UsagePayResult{Paid: true, Duplicate: true, Spendable: w.spendable}, nil
			}
			if in.Request.Receipt.Value > w.spendable {
				return activities.UsagePayResult{NotEnough: true, Spendable: w.spendable}, nil
			}
			w.spendable -= in.Request.Receipt.Value
			w.promises[in.Request.ReceiptID] = in.Request.Receipt.Value
			w.addStats(in.Stats)
			return activities.UsagePayResult{Paid: true, Spendable: w.spendable}, nil
		}).Maybe()
	env.OnActivity(acts.UsageFunds, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.UsageFundsInput) (activities.UsageFundsResult, error) {
			enough := w.spendable >= in.Need
			var cover int64
			if in.Pool && w.pool != nil {
				cover = w.pool.cover(in.Need)
				enough = w.spendable+cover >= in.Need
			}
			if !enough && in.Wait {
				w.fundsAsk = append(w.fundsAsk, in.Key)
			}
			return activities.UsageFundsResult{Spendable: w.spendable, Enough: enough, PoolCover: cover}, nil
		}).Maybe()
	env.OnActivity(acts.UsageReportError, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.UsageErrorInput) error {
			w.errs = append(w.errs, in.Code)
			return nil
		}).Maybe()
	env.OnActivity(acts.UsageBan, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.UsageBanInput) error {
			w.bans = append(w.bans, in)
			return nil
		}).Maybe()
	env.OnActivity(acts.UsageEnd, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.UsageEndInput) error {
			w.ended = &in
			w.addStats(in.Stats)
			if w.pool != nil {
				w.pool.end(in)
			}
			return nil
		}).Maybe()
	return w
}

func testUsageError(code models.UsageErrorCode) error {
	ue := contract.UsageError{Code: code, Message: models.UsageErrorMeaning[code]}
	return temporal.NewNonRetryableApplicationError(ue.Error(), contract.ErrUsage, nil, ue)
}

func (w *usageWorld) addStats(in []contract.UsageModeStats) {
	for _, s := range in {
		t := w.stats[s.Mode]
		t.Mode = s.Mode
		t.Seconds += s.Seconds
		t.BytesReceived += s.BytesReceived
		t.BytesSent += s.BytesSent
		t.Units += s.Units
		t.Value += s.Value
		t.Sessions += s.Sessions
		w.stats[s.Mode] = t
	}
}

// usageUpdate is an update's outcome as the test saw it.
type usageUpdate struct {
	rejected error
	err      error
	value    any
	done     bool
}

// code is the usage error code of a rejected or failed update.
func (u *usageUpdate) code() models.UsageErrorCode {
	for _, err := range []error{u.rejected, u.err} {
		var appErr *temporal.ApplicationError
		if errors.As(err, &appErr) {
			var ue contract.UsageError
			if appErr.Details(&ue) == nil {
				return ue.Code
			}
		}
	}
	return ""
}

type usageUpdateCallbacks struct{ u *usageUpdate }

func (c usageUpdateCallbacks) Accept() {}
func (c usageUpdateCallbacks) Reject(err error) {
	c.u.rejected, c.u.done = err, true
}
func (c usageUpdateCallbacks) Complete(success any, err error) {
	c.u.value, c.u.err, c.u.done = success, err, true
}

// at runs fn at d after the start.
func (w *usageWorld) at(d time.Duration, fn func()) { w.env.RegisterDelayedCallback(fn, d) }

func (w *usageWorld) update(name string, args ...any) *usageUpdate {
	u := &usageUpdate{}
	w.env.UpdateWorkflow(name, name+"-"+time.Duration(len(w.sent)).String()+"-"+randomish(), usageUpdateCallbacks{u: u}, args...)
	return u
}

var updateSeq int

func randomish() string {
	updateSeq++
	return time.Duration(updateSeq).String()
}

func (w *usageWorld) startReq(service string) contract.UsageStartRequest {
	return contract.UsageStartRequest{ServiceID: service, Payer: w.payer, MaxUnitPrice: 100}
}

// sign is the payer's answer to the last receipt sent.
func (w *usageWorld) sign(key string, r contract.Receipt) contract.UsageSignRequest {
	ev, err := receipts.SignAs(key, r, w.start)
	require.NoError(w.t, err)
	return contract.UsageSignRequest{Event: ev}
}

func (w *usageWorld) last() contract.SignRequest {
	require.NotEmpty(w.t, w.sent)
	return w.sent[len(w.sent)-1]
}

func (w *usageWorld) view() contract.UsageView {
	v, err := w.env.QueryWorkflow(contract.QueryUsage)
	require.NoError(w.t, err)
	var out contract.UsageView
	require.NoError(w.t, v.Get(&out))
	return out
}

func (w *usageWorld) report(id string, secs int64) {
	w.env.SignalWorkflow(contract.SignalUsageReport, contract.UsageReport{ID: id, Seconds: secs})
}

func (w *usageWorld) run(in UsageSessionInput) contract.UsageView {
	if in.SessionID == "" {
		in.SessionID = "s1"
	}
	w.env.ExecuteWorkflow(UsageSession, in)
	require.True(w.t, w.env.IsWorkflowCompleted())
	var v contract.UsageView
	if err := w.env.GetWorkflowError(); err != nil {
		var can *workflow.ContinueAsNewError
		require.True(w.t, errors.As(err, &can), "workflow failed: %v", err)
		return v
	}
	require.NoError(w.t, w.env.GetWorkflowResult(&v))
	return v
}

// Scenario 1: a free service (price 0, allow_free) starts FREE; its usage
// counts as free.
func TestUsageFreeMode(t *testing.T) {
	w := newUsageWorld(t)
	var start *usageUpdate
	w.at(0, func() { start = w.update(contract.UpdateUsageStart, w.startReq("free")) })
	w.at(time.Second, func() {
		w.env.SignalWorkflow(contract.SignalUsageReport, contract.UsageReport{ID: "r1", BytesReceived: 700, BytesSent: 300})
	})
	w.at(2*time.Second, func() { w.update(contract.UpdateUsageEnd) })
	v := w.run(UsageSessionInput{})
	require.NoError(t, start.err)
	require.Equal(t, contract.UsageFree, start.value.(contract.UsageStartResult).State)
	require.Equal(t, contract.UsageEnded, v.State)
	require.Empty(t, w.sent, "no receipts in FREE")
	require.Equal(t, contract.UsageModeStats{Mode: "free", BytesReceived: 700, BytesSent: 300, Units: 1000}, w.stats["free"])
	require.Zero(t, w.ended.Settle)
	require.Zero(t, w.ended.Remain)
	w.calls(map[string]int{"UsageStart": 1, "UsageSend": 0, "UsagePay": 0, "UsageFunds": 0, "UsageEnd": 1})
}

// calls checks how many times each activity ran.
func (w *usageWorld) calls(want map[string]int) {
	w.t.Helper()
	for name, n := range want {
		w.env.AssertActivityNumberOfCalls(w.t, name, n)
	}
}

// Scenario 3: remain service of the same payer, service and unit starts
// NORMAL at once, consumed first; the next receipt goes out before it runs
// out; unused covered units are saved again at the end.
func TestUsageRemainService(t *testing.T) {
	w := newUsageWorld(t)
	w.remain = 100
	var start *usageUpdate
	w.at(0, func() { start = w.update(contract.UpdateUsageStart, w.startReq("vpn")) })
	w.at(time.Second, func() {
		require.Equal(t, contract.UsageNormal, w.view().State)
		require.Empty(t, w.sent, "100 covered units, chunk 60: no receipt yet")
		w.report("a", 70)
	})
	w.at(2*time.Second, func() {
		require.Len(t, w.sent, 1, "30 left <= half a chunk: receipt_next goes out")
		require.Equal(t, contract.SubWaitingNextReceiptSign, w.view().SubState)
		w.update(contract.UpdateUsageEnd)
	})
	w.run(UsageSessionInput{})
	require.NoError(t, start.err)
	res := start.value.(contract.UsageStartResult)
	require.Equal(t, contract.UsageNormal, res.State)
	require.Equal(t, int64(100), res.RemainUnits)
	require.Equal(t, int64(30), w.ended.Remain)
	require.Zero(t, w.ended.Settle)
}

// Scenario 4: no funds, not banned: grace starts (service starts,
// WAITING_TX_FOR_PAYING) and a top-up is asked for; no receipt yet.
func TestUsageGraceStart(t *testing.T) {
	w := newUsageWorld(t)
	w.spendable = 0
	var start *usageUpdate
	w.at(0, func() { start = w.update(contract.UpdateUsageStart, w.startReq("vpn")) })
	w.at(10*time.Second, func() {
		v := w.view()
		require.Equal(t, contract.UsageGrace, v.State)
		require.Equal(t, contract.SubWaitingTxForPaying, v.SubState)
		w.update(contract.UpdateUsageEnd)
	})
	w.run(UsageSessionInput{})
	require.NoError(t, start.err)
	require.Equal(t, contract.UsageGrace, start.value.(contract.UsageStartResult).State)
	require.Equal(t, []string{"start"}, w.fundsAsk)
	require.Empty(t, w.sent)
	require.Empty(t, w.bans, "ended by the client inside grace: no ban")
}

// Scenario 5: the grace period ends with no funds: TX_COND_NOT_FOUND, the
// session ends and the payer is banned for 50 grace periods.
func TestUsageGraceTimeoutBans(t *testing.T) {
	w := newUsageWorld(t)
	w.spendable = 0
	w.at(0, func() { w.update(contract.UpdateUsageStart, w.startReq("vpn")) })
	w.at(30*time.Second, func() { w.report("g1", 30) })
	v := w.run(UsageSessionInput{})
	require.Equal(t, contract.UsageEnded, v.State)
	require.Equal(t, models.UsageNoFunds, v.LastError)
	require.Equal(t, []models.UsageErrorCode{models.UsageNoFunds}, w.errs)
	require.Len(t, w.bans, 1)
	require.False(t, w.bans[0].Lift)
	require.Equal(t, w.start.Add(time.Minute).Add(50*time.Minute), w.bans[0].Until)
	require.Equal(t, int64(30), w.stats["grace"].Seconds)
	require.Equal(t, int64(1), w.stats["grace"].Sessions)
	w.calls(map[string]int{"UsageSend": 0, "UsagePay": 0, "UsageBan": 1, "UsageReportError": 1, "UsageEnd": 1})
}

// Scenario 6: funds arrive during grace: WAITING_NEW_TX_IN_LEDGER, a new
// receipt (WAITING_RECEIPT_FOR_NEW_TX_FROM_CLIENT), signed -> NORMAL; the
// grace ends (no ban at its old deadline) and the ban is lifted.
func TestUsageFundsDuringGrace(t *testing.T) {
	w := newUsageWorld(t)
	w.spendable = 0
	w.at(0, func() { w.update(contract.UpdateUsageStart, w.startReq("vpn")) })
	w.at(20*time.Second, func() {
		w.spendable = 1000
		w.env.SignalWorkflow(contract.SignalUsageFunds, contract.UsageFundsSignal{Reference: "inv-1"})
	})
	w.at(21*time.Second, func() {
		v := w.view()
		require.Equal(t, contract.SubWaitingReceiptForNewTxFromClient, v.SubState)
		require.NotNil(t, v.Waiting)
		w.update(contract.UpdateUsageSign, w.sign(usagePayerKey, v.Waiting.Receipt))
	})
	w.at(22*time.Second, func() {
		require.Equal(t, contract.UsageNormal, w.view().State)
	})
	w.at(5*time.Minute, func() { w.update(contract.UpdateUsageEnd) })
	v := w.run(UsageSessionInput{})
	require.Equal(t, contract.UsageEnded, v.State)
	require.Empty(t, w.errs, "the grace deadline passed after funds: no TX_COND_NOT_FOUND")
	require.Len(t, w.bans, 1)
	require.True(t, w.bans[0].Lift, "funds lift the ban")
	require.Equal(t, int64(1), v.ReceiptsSigned)
	require.Equal(t, int64(10), w.ended.Settle)
}

// Scenarios 7 and 8: a bad signature, another key, another receipt or
// version 1 are refused with their codes; the session keeps waiting and
// takes the good answer.
func TestUsageBadAnswersKeepWaiting(t *testing.T) {
	w := newUsageWorld(t)
	var start *usageUpdate
	var bad []*usageUpdate
	var good *usageUpdate
	w.at(0, func() { start = w.update(contract.UpdateUsageStart, w.startReq("vpn")) })
	w.at(time.Second, func() {
		r := w.last().Receipt
		tampered := w.sign(usagePayerKey, r)
		tampered.Event.Content += " "
		other := r
		other.Seq = 7
		v1 := r
		v1.Version = 1
		bad = append(bad,
			w.update(contract.UpdateUsageSign, tampered),
			w.update(contract.UpdateUsageSign, w.sign(usageOtherKey, r)),
			w.update(contract.UpdateUsageSign, w.sign(usagePayerKey, other)),
			w.update(contract.UpdateUsageSign, w.sign(usagePayerKey, v1)))
	})
	w.at(2*time.Second, func() {
		require.Equal(t, contract.SubWaitingFirstReceiptSign, w.view().SubState)
		good = w.update(contract.UpdateUsageSign, w.sign(usagePayerKey, w.last().Receipt))
	})
	w.at(3*time.Second, func() { w.update(contract.UpdateUsageEnd) })
	w.run(UsageSessionInput{})
	require.NoError(t, start.err)
	require.Equal(t, contract.SubWaitingFirstReceiptSign, start.value.(contract.UsageStartResult).SubState)
	want := []models.UsageErrorCode{models.UsageReceiptBadSignature, models.UsageReceiptWrongPayer, models.UsageReceiptCantFind,
		models.UsageReceiptBadVersion}
	for i, u := range bad {
		require.Error(t, u.rejected, "answer %d is rejected by the validator", i)
		require.Equal(t, want[i], u.code(), "answer %d", i)
	}
	require.NoError(t, good.err)
	require.Equal(t, contract.UsageNormal, good.value.(contract.UsageView).State)
	require.Len(t, w.promises, 1)
}

// Scenario 9: paid receipts: NORMAL; receipt_next names the previous one;
// the end settles the promised total and keeps unused units.
func TestUsagePaidReceiptsGoNormal(t *testing.T) {
	w := newUsageWorld(t)
	w.at(0, func() { w.update(contract.UpdateUsageStart, w.startReq("vpn")) })
	w.at(time.Second, func() { w.update(contract.UpdateUsageSign, w.sign(usagePayerKey, w.last().Receipt)) })
	w.at(40*time.Second, func() { w.report("r1", 40) })
	w.at(41*time.Second, func() {
		require.Len(t, w.sent, 2)
		require.Equal(t, int64(2), w.last().Receipt.Seq)
		require.Equal(t, w.sent[0].ReceiptID, w.last().Receipt.Prev)
		w.update(contract.UpdateUsageSign, w.sign(usagePayerKey, w.last().Receipt))
	})
	w.at(50*time.Second, func() { w.report("r2", 10) })
	w.at(50*time.Second+time.Millisecond, func() { w.report("r2", 10) }) // a duplicate
	w.at(60*time.Second, func() { w.update(contract.UpdateUsageEnd) })
	v := w.run(UsageSessionInput{})
	require.Equal(t, int64(2), v.ReceiptsSigned)
	require.Equal(t, int64(50), v.UsedUnits, "the duplicate report counts once")
	require.Equal(t, int64(20), w.ended.Settle)
	require.Equal(t, int64(70), w.ended.Remain)
	require.Equal(t, int64(50), w.stats["paid"].Seconds)
	require.Equal(t, int64(8), w.stats["paid"].Value, "10 per 60 s: 50 s is 8.33, rounded")
	w.calls(map[string]int{"UsageStart": 1, "UsageSend": 2, "UsagePay": 2, "UsageBan": 0, "UsageEnd": 1})
}

// Scenario 10 (from IDLE): the first receipt signed but the wallet cannot
// pay it: GRACE, WAITING_TX_FOR_PAYING.
func TestUsageNotEnoughFromIdle(t *testing.T) {
	w := newUsageWorld(t)
	w.at(0, func() { w.update(contract.UpdateUsageStart, w.startReq("vpn")) })
	w.at(time.Second, func() {
		w.spendable = 5
		w.update(contract.UpdateUsageSign, w.sign(usagePayerKey, w.last().Receipt))
	})
	w.at(2*time.Second, func() {
		v := w.view()
		require.Equal(t, contract.UsageGrace, v.State)
		require.Equal(t, contract.SubWaitingTxForPaying, v.SubState)
		require.Nil(t, v.Waiting)
		w.update(contract.UpdateUsageEnd)
	})
	w.run(UsageSessionInput{})
	require.Equal(t, []string{"receipt-1"}, w.fundsAsk)
	require.Empty(t, w.promises)
}

// Scenario 10 (from NORMAL): receipt_next cannot be paid: the application
// gets TX_COND_NOT_ENOUGH, WAITING_NEW_TX_FROM_CLIENT, the grace timer runs
// and service continues (usage counts as grace).
func TestUsageNotEnoughFromNormal(t *testing.T) {
	w := newUsageWorld(t)
	w.at(0, func() { w.update(contract.UpdateUsageStart, w.startReq("vpn")) })
	w.at(time.Second, func() { w.update(contract.UpdateUsageSign, w.sign(usagePayerKey, w.last().Receipt)) })
	w.at(40*time.Second, func() { w.report("r1", 40) })
	w.at(41*time.Second, func() {
		w.spendable = 0
		w.update(contract.UpdateUsageSign, w.sign(usagePayerKey, w.last().Receipt))
	})
	w.at(42*time.Second, func() {
		v := w.view()
		require.Equal(t, contract.UsageGrace, v.State)
		require.Equal(t, contract.SubWaitingNewTxFromClient, v.SubState)
		require.Equal(t, models.UsageNotEnough, v.LastError)
		w.report("r2", 15)
	})
	w.at(50*time.Second, func() { w.update(contract.UpdateUsageEnd) })
	v := w.run(UsageSessionInput{})
	require.Equal(t, []models.UsageErrorCode{models.UsageNotEnough}, w.errs)
	require.Equal(t, int64(1), v.ReceiptsSigned)
	require.Equal(t, int64(15), w.stats["grace"].Seconds)
	require.Equal(t, int64(40), w.stats["paid"].Seconds)
}

// Scenario 13: the sign request is re-sent every 10 s up to 3 sends, then
// RECEIPT_NO_SIGN; outside NORMAL the session ends.
func TestUsageSignTimeoutResendsThenNoSign(t *testing.T) {
	w := newUsageWorld(t)
	w.at(0, func() { w.update(contract.UpdateUsageStart, w.startReq("vpn")) })
	v := w.run(UsageSessionInput{})
	require.Len(t, w.sent, 3)
	for i, s := range w.sent {
		require.Equal(t, i+1, s.Attempt)
		require.Equal(t, w.sent[0].ReceiptID, s.ReceiptID)
	}
	require.Equal(t, contract.UsageEnded, v.State)
	require.Equal(t, models.UsageReceiptNoSign, v.LastError)
	require.Equal(t, w.start.Add(30*time.Second), *v.EndedAt)
	w.calls(map[string]int{"UsageSend": 3, "UsagePay": 0, "UsageReportError": 1, "UsageEnd": 1})
}

// RECEIPT_NO_SIGN in NORMAL keeps the session (the seed does not cut
// service mid-way) until it ends.
func TestUsageNoSignInNormalKeepsSession(t *testing.T) {
	w := newUsageWorld(t)
	w.at(0, func() { w.update(contract.UpdateUsageStart, w.startReq("vpn")) })
	w.at(time.Second, func() { w.update(contract.UpdateUsageSign, w.sign(usagePayerKey, w.last().Receipt)) })
	w.at(40*time.Second, func() { w.report("r1", 40) })
	w.at(2*time.Minute, func() {
		v := w.view()
		require.Equal(t, contract.UsageNormal, v.State)
		require.Equal(t, contract.SubError, v.SubState)
		require.Equal(t, models.UsageReceiptNoSign, v.LastError)
		w.report("r2", 30)
	})
	w.at(3*time.Minute, func() { w.update(contract.UpdateUsageEnd) })
	v := w.run(UsageSessionInput{})
	require.Equal(t, int64(70), v.UsedUnits)
	require.Equal(t, int64(10), w.ended.Settle)
	require.Zero(t, w.ended.Remain)
}

// Scenario 13 (the seed's swap): in WAITING_RECEIPT_FOR_NEW_TX_FROM_CLIENT,
// with an earlier receipt paid, the timeout re-sends the receipt the
// session waits for, never the earlier one, and only it is accepted.
func TestUsageResendAfterNewFundsIsTheWaitingReceipt(t *testing.T) {
	w := newUsageWorld(t)
	var old, good *usageUpdate
	w.at(0, func() { w.update(contract.UpdateUsageStart, w.startReq("vpn")) })
	w.at(time.Second, func() { w.update(contract.UpdateUsageSign, w.sign(usagePayerKey, w.last().Receipt)) })
	w.at(40*time.Second, func() { w.report("r1", 40) })
	w.at(41*time.Second, func() {
		w.spendable = 0
		w.update(contract.UpdateUsageSign, w.sign(usagePayerKey, w.last().Receipt))
	})
	w.at(45*time.Second, func() {
		w.spendable = 1000
		w.env.SignalWorkflow(contract.SignalUsageFunds, nil)
	})
	w.at(46*time.Second, func() {
		require.Equal(t, contract.SubWaitingReceiptForNewTxFromClient, w.view().SubState)
	})
	w.at(56*time.Second, func() {
		// One timeout later: re-sent, send 2 of the new receipt.
		l := w.last()
		require.Equal(t, 2, l.Attempt)
		require.Equal(t, int64(2), l.Receipt.Seq)
		require.NotEqual(t, w.sent[0].ReceiptID, l.ReceiptID, "not the earlier receipt (the seed's swap)")
		require.Equal(t, w.view().Waiting.ReceiptID, l.ReceiptID)
		old = w.update(contract.UpdateUsageSign, w.sign(usagePayerKey, w.sent[0].Receipt))
		good = w.update(contract.UpdateUsageSign, w.sign(usagePayerKey, l.Receipt))
	})
	w.at(time.Minute+30*time.Second, func() { w.update(contract.UpdateUsageEnd) })
	v := w.run(UsageSessionInput{})
	require.Equal(t, models.UsageReceiptCantFind, old.code())
	require.NoError(t, good.err)
	require.Equal(t, int64(2), v.ReceiptsSigned)
}

// Scenario 14: a ban refuses a start without funds while active
// (RECEIPT_BANNED_PKEY_HASH, the session ends); after it expires the same
// payer gets grace.
func TestUsageBanRefusedWhileActiveGoneAfterExpiry(t *testing.T) {
	w := newUsageWorld(t)
	w.spendable = 0
	until := w.start.Add(50 * time.Minute)
	w.banUntil = &until
	var start *usageUpdate
	w.at(0, func() { start = w.update(contract.UpdateUsageStart, w.startReq("vpn")) })
	v := w.run(UsageSessionInput{})
	require.Equal(t, models.UsageBannedPayer, start.code())
	require.Equal(t, contract.UsageEnded, v.State)

	w2 := newUsageWorld(t)
	w2.spendable = 0
	w2.env.SetStartTime(until)
	w2.banUntil = &until
	w2.at(0, func() { start = w2.update(contract.UpdateUsageStart, w2.startReq("vpn")) })
	w2.at(time.Second, func() { w2.update(contract.UpdateUsageEnd) })
	w2.run(UsageSessionInput{})
	require.NoError(t, start.err)
	require.Equal(t, contract.UsageGrace, start.value.(contract.UsageStartResult).State)
}

// Start refusals from the catalog: an unknown service, a price above the
// client's highest.
func TestUsageStartRefusals(t *testing.T) {
	for _, c := range []struct {
		req  func(w *usageWorld) contract.UsageStartRequest
		want models.UsageErrorCode
	}{
		{func(w *usageWorld) contract.UsageStartRequest { return w.startReq("nope") }, models.UsageServiceNotFound},
		{func(w *usageWorld) contract.UsageStartRequest {
			r := w.startReq("vpn")
			r.MaxUnitPrice = 9
			return r
		}, models.UsageUnitPriceTooHigh},
	} {
		w := newUsageWorld(t)
		var start *usageUpdate
		w.at(0, func() { start = w.update(contract.UpdateUsageStart, c.req(w)) })
		v := w.run(UsageSessionInput{})
		require.Equal(t, c.want, start.code())
		require.Equal(t, contract.UsageEnded, v.State)
	}
}

// Scenario 15: statistics per mode: grace time (and the grace session
// count) then paid time, each written once with its receipt or the end.
func TestUsageStatsPerMode(t *testing.T) {
	w := newUsageWorld(t)
	w.spendable = 0
	w.at(0, func() { w.update(contract.UpdateUsageStart, w.startReq("vpn")) })
	w.at(10*time.Second, func() { w.report("g", 12) })
	w.at(20*time.Second, func() {
		w.spendable = 1000
		w.env.SignalWorkflow(contract.SignalUsageFunds, nil)
	})
	w.at(21*time.Second, func() { w.update(contract.UpdateUsageSign, w.sign(usagePayerKey, w.last().Receipt)) })
	w.at(30*time.Second, func() { w.report("p", 24) })
	w.at(40*time.Second, func() { w.update(contract.UpdateUsageEnd) })
	w.run(UsageSessionInput{})
	require.Equal(t, contract.UsageModeStats{Mode: "grace", Seconds: 12, Units: 12, Value: 2, Sessions: 1}, w.stats["grace"])
	require.Equal(t, contract.UsageModeStats{Mode: "paid", Seconds: 24, Units: 24, Value: 4}, w.stats["paid"])
	require.Equal(t, int64(24), w.ended.Remain, "60 paid, 36 used since the first report counted against it")
}

// A long session continues as new every N paid receipts, carrying its state.
func TestUsageContinuesAsNewCarryingState(t *testing.T) {
	w := newUsageWorld(t)
	w.at(0, func() { w.update(contract.UpdateUsageStart, w.startReq("vpn")) })
	w.at(time.Second, func() { w.update(contract.UpdateUsageSign, w.sign(usagePayerKey, w.last().Receipt)) })
	w.at(40*time.Second, func() { w.report("r1", 40) })
	w.at(41*time.Second, func() { w.update(contract.UpdateUsageSign, w.sign(usagePayerKey, w.last().Receipt)) })
	w.env.ExecuteWorkflow(UsageSession, UsageSessionInput{SessionID: "s1", ContinueEvery: 2})
	var can *workflow.ContinueAsNewError
	require.True(t, errors.As(w.env.GetWorkflowError(), &can))
	var next UsageSessionInput
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	require.NotNil(t, next.Carry)
	require.Equal(t, int64(2), next.Carry.View.ReceiptsSigned)
	require.Equal(t, int64(120), next.Carry.View.PaidUnits)
	require.Equal(t, int64(20), next.Carry.Promised)
	require.Equal(t, w.sent[1].ReceiptID, next.Carry.Last.ReceiptID)
}

// Scenario 2 (the seed's NETWORK_IS_OFFLINE): the engine cannot check a
// start (its database is down past the bounded retries): the start answers
// SERVICE_UNAVAILABLE and the session ends without failing.
func TestUsageEngineUnavailable(t *testing.T) {
	w := newUsageWorld(t)
	w.startErr = errors.New("connection refused")
	var start *usageUpdate
	w.at(0, func() { start = w.update(contract.UpdateUsageStart, w.startReq("vpn")) })
	v := w.run(UsageSessionInput{})
	require.Equal(t, models.UsageUnavailable, start.code())
	require.Equal(t, contract.UsageEnded, v.State)
	require.Equal(t, models.UsageUnavailable, v.LastError)
}

// Scenario 11 (the seed's TX_ERROR): a receipt the wallet cannot be asked
// about is TX_CREATION_ERROR: outside NORMAL the session ends; in NORMAL
// it is kept (sub-state ERROR) until it ends.
func TestUsagePaymentErrorIsTxCreationError(t *testing.T) {
	w := newUsageWorld(t)
	var first *usageUpdate
	w.at(0, func() { w.update(contract.UpdateUsageStart, w.startReq("vpn")) })
	w.at(time.Second, func() {
		w.payErr = errors.New("database down")
		first = w.update(contract.UpdateUsageSign, w.sign(usagePayerKey, w.last().Receipt))
	})
	v := w.run(UsageSessionInput{})
	require.Equal(t, models.UsagePaymentError, first.code())
	require.Equal(t, contract.UsageEnded, v.State)
	require.Equal(t, models.UsagePaymentError, v.LastError)

	w = newUsageWorld(t)
	w.at(0, func() { w.update(contract.UpdateUsageStart, w.startReq("vpn")) })
	w.at(time.Second, func() { w.update(contract.UpdateUsageSign, w.sign(usagePayerKey, w.last().Receipt)) })
	w.at(40*time.Second, func() { w.report("r1", 40) })
	w.at(41*time.Second, func() {
		w.payErr = errors.New("database down")
		w.update(contract.UpdateUsageSign, w.sign(usagePayerKey, w.last().Receipt))
	})
	w.at(5*time.Minute, func() {
		v := w.view()
		require.Equal(t, contract.UsageNormal, v.State)
		require.Equal(t, contract.SubError, v.SubState)
		w.update(contract.UpdateUsageEnd)
	})
	v = w.run(UsageSessionInput{})
	require.Equal(t, models.UsagePaymentError, v.LastError)
	require.Equal(t, int64(1), v.ReceiptsSigned)
	require.Equal(t, int64(10), w.ended.Settle)
}

// Scenario 12 (the seed's NEW_TX_COND_RESPONSE): funds that do not cover
// the receipt leave the session in WAITING_NEW_TX_IN_LEDGER, grace still
// running; a later top-up that does sends the new receipt.
func TestUsageFundsNotEnoughWaitsInLedger(t *testing.T) {
	w := newUsageWorld(t)
	w.spendable = 0
	w.at(0, func() { w.update(contract.UpdateUsageStart, w.startReq("vpn")) })
	w.at(10*time.Second, func() {
		w.spendable = 5
		w.env.SignalWorkflow(contract.SignalUsageFunds, nil)
	})
	w.at(11*time.Second, func() {
		v := w.view()
		require.Equal(t, contract.UsageGrace, v.State)
		require.Equal(t, contract.SubWaitingNewTxInLedger, v.SubState)
		require.Nil(t, v.Waiting)
		w.spendable = 500
		w.env.SignalWorkflow(contract.SignalUsageFunds, nil)
	})
	w.at(12*time.Second, func() {
		v := w.view()
		require.Equal(t, contract.SubWaitingReceiptForNewTxFromClient, v.SubState)
		w.update(contract.UpdateUsageSign, w.sign(usagePayerKey, v.Waiting.Receipt))
	})
	w.at(3*time.Minute, func() { w.update(contract.UpdateUsageEnd) })
	v := w.run(UsageSessionInput{})
	require.Empty(t, w.errs, "no TX_COND_NOT_FOUND: the grace ended with the funds")
	require.Equal(t, int64(1), v.ReceiptsSigned)
}

// A start retried while the first is being checked answers like the first:
// the same mode when it started, the same refusal when it did not (and
// the checks run once).
func TestUsageStartRetriedAnswersTheFirst(t *testing.T) {
	for _, c := range []struct {
		service string
		want    models.UsageErrorCode
	}{{"vpn", ""}, {"nope", models.UsageServiceNotFound}} {
		w := newUsageWorld(t)
		var first, second *usageUpdate
		w.at(0, func() {
			first = w.update(contract.UpdateUsageStart, w.startReq(c.service))
			second = w.update(contract.UpdateUsageStart, w.startReq(c.service))
		})
		if c.want == "" {
			w.at(time.Second, func() { w.update(contract.UpdateUsageEnd) })
		}
		w.run(UsageSessionInput{})
		require.Equal(t, 1, w.starts, c.service)
		require.Equal(t, c.want, first.code(), c.service)
		require.Equal(t, c.want, second.code(), c.service)
		if c.want == "" {
			require.Equal(t, first.value, second.value)
		}
	}
}

// End by timeout: a session that gets no report, signature or funds for
// IdleTimeout ends like usage-end (settled, remain saved), counted from its
// last activity.
func TestUsageIdleTimeoutEnds(t *testing.T) {
	w := newUsageWorld(t)
	w.at(0, func() { w.update(contract.UpdateUsageStart, w.startReq("vpn")) })
	w.at(time.Second, func() { w.update(contract.UpdateUsageSign, w.sign(usagePayerKey, w.last().Receipt)) })
	w.at(4*time.Minute, func() { w.report("r1", 20) })
	v := w.run(UsageSessionInput{IdleTimeout: 5 * time.Minute})
	require.Equal(t, contract.UsageEnded, v.State)
	require.Equal(t, w.start.Add(9*time.Minute), *v.EndedAt, "five minutes after the last report")
	require.Equal(t, int64(10), w.ended.Settle)
	require.Equal(t, int64(40), w.ended.Remain)
}

// The payer may be given as an npub; a key that is none is refused by the
// validator (PAYER_NOT_FOUND) and the session is not started.
func TestUsageStartPayerKey(t *testing.T) {
	w := newUsageWorld(t)
	var bad, good *usageUpdate
	w.at(0, func() {
		req := w.startReq("vpn")
		req.Payer = "npub-nonsense"
		bad = w.update(contract.UpdateUsageStart, req)
		req.Payer = models.TenantID(strings.ToUpper(string(w.payer)))
		good = w.update(contract.UpdateUsageStart, req)
	})
	w.at(time.Second, func() { w.update(contract.UpdateUsageEnd) })
	v := w.run(UsageSessionInput{})
	require.Error(t, bad.rejected)
	require.Equal(t, models.UsagePayerNotFound, bad.code())
	require.NoError(t, good.err)
	require.Equal(t, w.payer, v.Payer, "normalised to lower-case hex")
}

// A payer that answers the first send of a receipt before the engine's
// send activity has returned (the request reached it first) is queued
// behind the send and paid, not refused as waiting for no signature.
func TestUsageSignatureBeforeTheSendReturns(t *testing.T) {
	w := newUsageWorld(t)
	var early *usageUpdate
	w.onSend = func(req contract.SignRequest) {
		if early == nil {
			early = w.update(contract.UpdateUsageSign, w.sign(usagePayerKey, req.Receipt))
		}
	}
	w.at(0, func() { w.update(contract.UpdateUsageStart, w.startReq("vpn")) })
	w.at(time.Minute, func() { w.update(contract.UpdateUsageEnd) })
	v := w.run(UsageSessionInput{})
	require.NotNil(t, early)
	require.True(t, early.done)
	require.NoError(t, early.rejected, "accepted while the send ran")
	require.NoError(t, early.err)
	require.Equal(t, int64(1), v.ReceiptsSigned)
	w.calls(map[string]int{"UsageSend": 1, "UsagePay": 1})
}

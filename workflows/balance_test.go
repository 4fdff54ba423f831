package workflows

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/contract"
)

// balanceEnv is a BalanceSync test environment whose SyncWallet mock
// records the instant of every sync and answers spendable.
type balanceEnv struct {
	env       *testsuite.TestWorkflowEnvironment
	acts      *activities.Activities
	start     time.Time
	syncs     []time.Duration // since start
	spendable int64
	openTopUp bool
	nextGrant *time.Time
	syncErr   error
	// recharge is the wallet's auto-recharge state SyncWallet answers.
	recharge *activities.AutoRechargeState
}

func newBalanceEnv(t *testing.T) *balanceEnv {
	start := ts("2026-03-01T00:00:00Z")
	env, acts := newEnv(t, start)
	env.RegisterWorkflow(BalanceSync)
	b := &balanceEnv{env: env, acts: acts, start: start}
	env.OnActivity(acts.SyncWallet, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.SyncWalletInput) (activities.SyncWalletResult, error) {
			b.syncs = append(b.syncs, in.At.Sub(b.start))
			if err := b.syncErr; err != nil {
				b.syncErr = nil
				return activities.SyncWalletResult{}, err
			}
			v := contract.BalanceView{TenantID: in.TenantID, Currency: "usd", Funds: b.spendable, Spendable: b.spendable, SyncedAt: in.At}
			if b.openTopUp {
				v.OpenTopUps = []contract.OpenTopUp{{InvoiceID: "inv-top", Amount: 500, Currency: "usd", Status: "open", CreatedAt: start}}
			}
			var ar *activities.AutoRechargeState
			if b.recharge != nil {
				c := *b.recharge
				ar = &c
			}
			return activities.SyncWalletResult{View: v, After: b.spendable, NextGrantExpiry: b.nextGrant, AutoRecharge: ar}, nil
		}).Maybe()
	return b
}

// stopAt cancels the (endless) workflow at d after start.
func (b *balanceEnv) stopAt(d time.Duration) {
	b.env.RegisterDelayedCallback(b.env.CancelWorkflow, d)
}

func (b *balanceEnv) event(d time.Duration) {
	b.env.RegisterDelayedCallback(func() {
		b.env.SignalWorkflow(SignalBalanceEvent, BalanceEvent{Kind: contract.BalanceSettled, Reference: "s"})
	}, d)
}

func (b *balanceEnv) query(t *testing.T) BalanceView {
	t.Helper()
	v, err := b.env.QueryWorkflow(QueryBalance)
	require.NoError(t, err)
	var view BalanceView
	require.NoError(t, v.Get(&view))
	return view
}

func seconds(ss ...float64) []time.Duration {
	out := make([]time.Duration, len(ss))
	for i, s := range ss {
		out[i] = time.Duration(s * float64(time.Second))
	}
	return out
}

// fastSyncs lists a window's syncs: from, from+interval, ... up to last.
func fastSyncs(from, last, step time.Duration) []time.Duration {
	var out []time.Duration
	for d := from; d <= last; d += step {
		out = append(out, d)
	}
	return out
}

// Three events within 10 s make one aggressive window: it opens with a
// sync at the first event, syncs every 5 s (never twice as often, as a
// second loop would), and lasts until 2 min after the last event.
func TestBalanceThreeEventsOneFastWindow(t *testing.T) {
	b := newBalanceEnv(t)
	b.event(2 * time.Second)
	b.event(6 * time.Second)
	b.event(10 * time.Second)
	var mid BalanceView
	b.env.RegisterDelayedCallback(func() { mid = b.query(t) }, time.Minute)
	b.stopAt(2 * time.Hour)
	b.env.ExecuteWorkflow(BalanceSync, BalanceSyncInput{TenantID: testTenant})
	require.True(t, b.env.IsWorkflowCompleted())

	want := append(seconds(0), fastSyncs(2*time.Second, 130*time.Second, 5*time.Second)...)
	want = append(want, want[len(want)-1]+time.Hour)
	require.Equal(t, want, b.syncs, "one window from 2s to 10s+2m at 5s, then the lifetime sync")
	require.NotNil(t, mid.FastUntil)
	require.Equal(t, b.start.Add(130*time.Second), *mid.FastUntil, "the window ends 2 min after the last event")
}

// A window ends at its timeout: the last fast sync is at most FastTimeout
// after the event, then the lifetime interval applies.
func TestBalanceFastWindowEndsAtTimeout(t *testing.T) {
	b := newBalanceEnv(t)
	b.event(time.Second)
	var after BalanceView
	b.env.RegisterDelayedCallback(func() { after = b.query(t) }, 200*time.Second)
	b.stopAt(90 * time.Minute)
	b.env.ExecuteWorkflow(BalanceSync, BalanceSyncInput{TenantID: testTenant, FastInterval: 10 * time.Second, FastTimeout: time.Minute})
	want := append(seconds(0), fastSyncs(time.Second, 61*time.Second, 10*time.Second)...)
	want = append(want, 61*time.Second+time.Hour)
	require.Equal(t, want, b.syncs)
	require.Nil(t, after.FastUntil, "no window after its timeout")
	require.Contains(t, details(t, b.env), "Lifetime sync")
}

// The lifetime sync continues as new, carrying the balance; an event taken
// off the channel at the hand-over opens a window in the next run.
func TestBalanceLifetimeSyncContinuesAsNew(t *testing.T) {
	b := newBalanceEnv(t)
	b.spendable = 700
	b.env.ExecuteWorkflow(BalanceSync, BalanceSyncInput{TenantID: testTenant, ContinueAfter: 3})
	require.Equal(t, []time.Duration{0, time.Hour, 2 * time.Hour, 3 * time.Hour}, b.syncs)
	next := continuedWith[BalanceSyncInput](t, b.env)
	require.NotNil(t, next.Carry)
	require.Equal(t, int64(700), next.Carry.View.Spendable)
	require.Equal(t, b.start.Add(3*time.Hour), next.Carry.LastSync)
	require.Equal(t, testTenant, next.TenantID)

	// The next run: no sync at start (the carried balance is fresh) unless
	// an event was carried, which opens a window with a sync at once.
	next.Carry.Events = 1
	next.ContinueAfter = 0
	b2 := newBalanceEnv(t)
	b2.env.SetStartTime(b.start.Add(3 * time.Hour))
	b2.start = b.start.Add(3 * time.Hour)
	b2.stopAt(30 * time.Second)
	b2.env.ExecuteWorkflow(BalanceSync, next)
	require.Equal(t, seconds(0, 5, 10, 15, 20, 25), b2.syncs)
}

// A grant expires on a timer at its expiry instant, once.
func TestBalanceGrantExpiresOnce(t *testing.T) {
	b := newBalanceEnv(t)
	expiry := b.start.Add(30 * time.Minute)
	b.nextGrant = &expiry
	var at []time.Time
	b.env.OnActivity(b.acts.ExpireGrants, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.ExpireGrantsInput) (activities.ExpireGrantsResult, error) {
			at = append(at, in.At)
			b.nextGrant = nil
			return activities.ExpireGrantsResult{Expired: []activities.ExpiredGrant{{Key: "promo", Amount: 300}}}, nil
		}).Once()
	b.stopAt(3 * time.Hour)
	b.env.ExecuteWorkflow(BalanceSync, BalanceSyncInput{TenantID: testTenant})
	require.Equal(t, []time.Time{expiry}, at, "one expiry, at the grant's instant")
	require.Equal(t, []time.Duration{0, 30 * time.Minute, 90 * time.Minute, 150 * time.Minute}, b.syncs)
	b.env.AssertExpectations(t)
}

// A fresh read answers from the query without running the activity; a
// stale one (older than the max age) asks the update, which syncs.
func TestBalanceStaleReadSyncsFreshDoesNot(t *testing.T) {
	b := newBalanceEnv(t)
	b.spendable = 100
	var fresh, stale BalanceView
	var upd updateResult
	b.env.RegisterDelayedCallback(func() {
		fresh = b.query(t)
		require.False(t, fresh.Stale(b.start.Add(10*time.Second), contract.DefaultBalanceMaxAge))
	}, 10*time.Second)
	b.env.RegisterDelayedCallback(func() {
		b.spendable = 250
		now := b.start.Add(30 * time.Minute)
		v := b.query(t)
		require.True(t, v.Stale(now, contract.DefaultBalanceMaxAge))
		b.env.UpdateWorkflow(UpdateSyncBalance, "stale-read", updateCallbacks(&upd))
	}, 30*time.Minute)
	b.env.RegisterDelayedCallback(func() { stale = b.query(t) }, 31*time.Minute)
	b.stopAt(45 * time.Minute)
	b.env.ExecuteWorkflow(BalanceSync, BalanceSyncInput{TenantID: testTenant})
	require.Equal(t, []time.Duration{0, 30 * time.Minute}, b.syncs, "the query did not sync; the update did")
	require.Equal(t, int64(100), fresh.Spendable)
	require.NoError(t, upd.err)
	require.Equal(t, int64(250), upd.value.(BalanceView).Spendable)
	require.Equal(t, b.start.Add(30*time.Minute), upd.value.(BalanceView).SyncedAt)
	require.Equal(t, int64(250), stale.Spendable)
}

// A business error does not fail the workflow: it is shown in the view and
// the details, an update's caller gets it, and the next timer syncs again.
func TestBalanceBusinessErrorKeepsRunning(t *testing.T) {
	b := newBalanceEnv(t)
	b.syncErr = fatal("tenant t-x does not exist")
	var during BalanceView
	var det string
	var upd updateResult
	b.env.RegisterDelayedCallback(func() {
		during = b.query(t)
		det = details(t, b.env)
		b.syncErr = fatal("wallet row locked")
		b.env.UpdateWorkflow(UpdateSyncBalance, "u1", updateCallbacks(&upd))
	}, time.Minute)
	var after BalanceView
	b.env.RegisterDelayedCallback(func() { after = b.query(t) }, 61*time.Minute)
	b.stopAt(2 * time.Hour)
	b.env.ExecuteWorkflow(BalanceSync, BalanceSyncInput{TenantID: testTenant})
	var canceled error
	require.True(t, b.env.IsWorkflowCompleted())
	canceled = b.env.GetWorkflowError()
	require.Error(t, canceled)
	require.Contains(t, canceled.Error(), "canceled", "only the test's cancel ends it")
	require.Contains(t, during.LastError, "does not exist")
	require.ErrorContains(t, upd.err, "wallet row locked", "the update's caller gets the failure")
	require.Contains(t, det, "Last error")
	require.Empty(t, after.LastError, "the next sync clears it")
	require.Equal(t, []time.Duration{0, time.Minute, time.Hour, 2 * time.Hour}[:3], b.syncs[:3])
}

// Open top-ups are reconciled before each sync; a rail that cannot be
// asked is a retryable error that the activity retry policy backs off.
func TestBalanceReconcilesOpenTopUpsWithRetry(t *testing.T) {
	b := newBalanceEnv(t)
	b.openTopUp = true
	calls := 0
	b.env.OnActivity(b.acts.ReconcileTopUps, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.ReconcileTopUpsInput) (activities.ReconcileTopUpsResult, error) {
			calls++
			require.Equal(t, []string{"inv-top"}, in.InvoiceIDs)
			if calls <= 2 {
				return activities.ReconcileTopUpsResult{}, errors.New("top-up reconciliation: rail unreachable: lightning")
			}
			b.openTopUp = false
			return activities.ReconcileTopUpsResult{Checked: 1}, nil
		})
	b.stopAt(90 * time.Minute)
	b.env.ExecuteWorkflow(BalanceSync, BalanceSyncInput{TenantID: testTenant})
	require.Equal(t, 3, calls, "two retries by the policy, then success; no more once nothing is open")
	require.Equal(t, []time.Duration{0, time.Hour}, b.syncs[:2])
}

// A sync started for a tenant that does not exist ends (completed, the
// reason in its result) instead of running forever.
func TestBalanceUnknownTenantEnds(t *testing.T) {
	b := newBalanceEnv(t)
	b.syncErr = temporal.NewNonRetryableApplicationError("tenant t-x does not exist", activities.ErrNotFound, nil)
	b.env.ExecuteWorkflow(BalanceSync, BalanceSyncInput{TenantID: testTenant})
	require.True(t, b.env.IsWorkflowCompleted())
	require.NoError(t, b.env.GetWorkflowError())
	var v BalanceView
	require.NoError(t, b.env.GetWorkflowResult(&v))
	require.Contains(t, v.LastError, "does not exist")
	require.Len(t, b.syncs, 1)
}

// A wallet write through an update (here a grant) answers its outcome and
// opens an aggressive window like a balance event; a duplicate write does
// not; a refused one answers the typed error and syncs nothing extra.
func TestBalanceWalletUpdateOpensFastWindow(t *testing.T) {
	b := newBalanceEnv(t)
	calls := 0
	b.env.OnActivity(b.acts.WalletGrant, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.WalletGrantInput) (contract.WalletWriteResult, error) {
			calls++
			switch in.Request.Key {
			case "bad":
				return contract.WalletWriteResult{}, temporal.NewNonRetryableApplicationError("amount: 0 is not positive", contract.ErrValidation, nil)
			case "dup":
				return contract.WalletWriteResult{Spendable: 700, Duplicate: true}, nil
			}
			b.spendable = 700
			return contract.WalletWriteResult{Spendable: 700}, nil
		})
	var got contract.WalletWriteResult
	var refused error
	update := func(at time.Duration, key string) {
		b.env.RegisterDelayedCallback(func() {
			b.env.UpdateWorkflow(contract.UpdateWalletGrant, key, &testsuite.TestUpdateCallback{
				OnAccept: func() {}, OnReject: func(err error) { t.Errorf("rejected: %v", err) },
				OnComplete: func(v any, err error) {
					if key == "bad" {
						refused = err
						return
					}
					require.NoError(t, err)
					if key == "promo" {
						got = v.(contract.WalletWriteResult)
					}
				},
			}, contract.GrantRequest{Key: key, Amount: 700})
		}, at)
	}
	update(10*time.Minute, "bad")
	update(20*time.Minute, "dup")
	update(30*time.Minute, "promo")
	b.stopAt(50 * time.Minute)
	b.env.ExecuteWorkflow(BalanceSync, BalanceSyncInput{TenantID: testTenant})
	require.True(t, b.env.IsWorkflowCompleted())
	assert.Equal(t, 3, calls)
	assert.Equal(t, int64(700), got.Spendable)
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, refused, &appErr)
	assert.Equal(t, contract.ErrValidation, appErr.Type())
	want := append(seconds(0), fastSyncs(30*time.Minute, 32*time.Minute, 5*time.Second)...)
	require.Equal(t, want, b.syncs, "only the write that changed something opened a window")
}

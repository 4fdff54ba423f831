package workflows

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/models"
)

// testPool is the free-tier pool the usage activities decide with in the
// testsuite (the store's rules, in memory): absorb = min(daily remaining,
// balance, value); free debits at decision, partial once the payer's part
// is promised, gate pays from the wallet.
type testPool struct {
	balance, budget, today int64
	// reserved are the grants' debits by receipt id; settled and released
	// what recordGrant and releaseReservation did (once per key).
	reserved map[string]int64
	settled  map[string]contract.UsagePoolSettle
	released map[string]bool
	// failAfterReserve makes the payment fail after a free reservation.
	failAfterReserve bool
}

func newTestPool(balance, budget int64) *testPool {
	return &testPool{balance: balance, budget: budget, reserved: map[string]int64{}, settled: map[string]contract.UsagePoolSettle{},
		released: map[string]bool{}}
}

func (p *testPool) cover(need int64) int64 { return max(min(p.budget-p.today, p.balance, need), 0) }

func (p *testPool) settle(ss []contract.UsagePoolSettle) {
	for _, s := range ss {
		if _, ok := p.settled[s.Key]; ok || p.released[s.Key] {
			continue
		}
		p.settled[s.Key] = s
		back := p.reserved[s.Key] - s.Actual
		p.balance += back
		p.today -= back
	}
}

func (p *testPool) end(in activities.UsageEndInput) {
	p.settle(in.PoolSettle)
	for _, k := range in.PoolRelease {
		if _, ok := p.settled[k]; ok || p.released[k] {
			continue
		}
		p.released[k] = true
		p.balance += p.reserved[k]
		p.today -= p.reserved[k]
	}
}

func (p *testPool) paid(w *usageWorld, serve string, absorbed, charge int64) activities.UsagePayResult {
	return activities.UsagePayResult{Paid: true, Spendable: w.spendable, Pool: &contract.UsagePoolPaid{Serve: serve, Absorbed: absorbed,
		Charge: charge, Balance: p.balance, AbsorbedToday: p.today, Tier: "trusted"}}
}

func (p *testPool) pay(w *usageWorld, in activities.UsagePayInput) (activities.UsagePayResult, error) {
	p.settle(in.PoolSettle)
	r := in.Request.Receipt
	key := in.Request.ReceiptID
	if _, ok := w.promises[key]; ok {
		res := p.paid(w, contract.PoolGate, p.reserved[key], w.promises[key])
		res.Duplicate = true
		return res, nil
	}
	absorb := p.cover(r.Value)
	switch {
	case absorb > 0 && absorb == r.Value:
		p.balance -= absorb
		p.today += absorb
		p.reserved[key] = absorb
		if p.failAfterReserve {
			return activities.UsagePayResult{}, temporal.NewNonRetryableApplicationError("wallet database gone", "Test", nil)
		}
		w.promises[key] = 0
		w.addStats(in.Stats)
		return p.paid(w, contract.PoolFree, absorb, 0), nil
	case absorb > 0:
		charge := r.Value - absorb
		if charge > w.spendable {
			return activities.UsagePayResult{NotEnough: true, Spendable: w.spendable}, nil
		}
		w.spendable -= charge
		p.balance -= absorb
		p.today += absorb
		p.reserved[key] = absorb
		w.promises[key] = charge
		w.addStats(in.Stats)
		return p.paid(w, contract.PoolPartial, absorb, charge), nil
	}
	if r.Value > w.spendable {
		return activities.UsagePayResult{NotEnough: true, Spendable: w.spendable}, nil
	}
	w.spendable -= r.Value
	w.promises[key] = r.Value
	w.addStats(in.Stats)
	return p.paid(w, contract.PoolGate, 0, r.Value), nil
}

func (w *usageWorld) signLast() {
	w.update(contract.UpdateUsageSign, w.sign(usagePayerKey, w.last().Receipt))
}

// A trusted payer's session runs free until its daily budget (25) is used,
// then partial (the pool pays 5 of receipt 3 once the payer's 5 is
// promised), then gated (the wallet pays receipt 4). The end settles only
// the payer's part and records every grant in full (all units used).
func TestUsagePoolFreeThenPartialThenGate(t *testing.T) {
	w := newUsageWorld(t)
	w.pool = newTestPool(1000, 25)
	w.at(0, func() { w.update(contract.UpdateUsageStart, w.startReq("vpn")) })
	w.at(time.Second, w.signLast)
	w.at(40*time.Second, func() { w.report("r1", 40) })
	w.at(41*time.Second, func() {
		v := w.view()
		require.NotNil(t, v.Pool)
		require.Equal(t, contract.UsagePoolView{Absorbed: 10, Balance: 990, AbsorbedToday: 10, LastServe: contract.PoolFree, Tier: "trusted"}, *v.Pool)
		require.Equal(t, int64(0), v.Promised, "the pool paid receipt 1: nothing promised from the wallet")
		w.signLast()
	})
	w.at(80*time.Second, func() { w.report("r2", 50) }) // used 90 of 120: receipt 3
	w.at(81*time.Second, w.signLast)
	w.at(120*time.Second, func() { w.report("r3", 60) }) // used 150 of 180: receipt 4
	w.at(121*time.Second, func() {
		v := w.view()
		require.Equal(t, contract.PoolPartial, v.Pool.LastServe)
		require.Equal(t, int64(25), v.Pool.Absorbed)
		require.Equal(t, int64(5), v.Promised)
		w.signLast()
	})
	w.at(150*time.Second, func() { w.report("r4", 70) }) // used 220 of 240
	w.at(151*time.Second, func() { w.update(contract.UpdateUsageEnd) })
	v := w.run(UsageSessionInput{})
	require.Equal(t, int64(4), v.ReceiptsSigned)
	require.Equal(t, contract.PoolGate, v.Pool.LastServe)
	require.Equal(t, int64(25), v.Pool.Absorbed)
	require.Equal(t, int64(0), v.Pool.Released)
	require.Equal(t, int64(15), v.Promised)
	require.Equal(t, int64(15), w.ended.Settle, "the wallet settles its part only: 5 of receipt 3 and receipt 4")
	require.Equal(t, int64(20), w.ended.Remain, "the gated receipt's unused units are the payer's")
	require.Equal(t, map[string]int64{w.sent[0].ReceiptID: 0, w.sent[1].ReceiptID: 0, w.sent[2].ReceiptID: 5, w.sent[3].ReceiptID: 10}, w.promises)
	require.Len(t, w.pool.settled, 3)
	for _, s := range w.pool.settled {
		require.Equal(t, s.Reserved, s.Actual, "every grant's units were used")
	}
	require.Equal(t, int64(975), w.pool.balance)
	require.Equal(t, int64(25), w.pool.today)
	w.calls(map[string]int{"UsageStart": 1, "UsageSend": 5, "UsagePay": 4, "UsageEnd": 1}) // receipt 5 waits unsigned at the end
}

// A free session that ends before the covered units are used gives the
// unused part of the reservation back (actual 2 of reserved 10 for 15 of
// 60 seconds, rounded down), and the unused units are not the payer's
// remain service: the pool paid for them.
func TestUsagePoolEndReleasesUnused(t *testing.T) {
	w := newUsageWorld(t)
	w.pool = newTestPool(1000, 100)
	w.at(0, func() { w.update(contract.UpdateUsageStart, w.startReq("vpn")) })
	w.at(time.Second, w.signLast)
	w.at(15*time.Second, func() { w.report("r1", 15) })
	w.at(16*time.Second, func() { w.update(contract.UpdateUsageEnd) })
	v := w.run(UsageSessionInput{})
	require.Equal(t, []contract.UsagePoolSettle{{Key: w.sent[0].ReceiptID, Actual: 2, Reserved: 10}}, w.ended.PoolSettle)
	require.Equal(t, int64(0), w.ended.Remain)
	require.Equal(t, int64(0), w.ended.Settle)
	require.Equal(t, int64(8), v.Pool.Released)
	require.Equal(t, int64(998), w.pool.balance)
	require.Equal(t, int64(2), w.pool.today)
}

// A partial receipt the payer cannot pay its part of goes to grace and the
// pool is not debited (partial is advisory until the payer's part is
// promised).
func TestUsagePoolPartialWaitsForThePayer(t *testing.T) {
	w := newUsageWorld(t)
	w.pool = newTestPool(1000, 4)
	w.spendable = 7 // the payer's part is 6, the pool's 4: the start finds 7 + 4 enough
	w.at(0, func() { w.update(contract.UpdateUsageStart, w.startReq("vpn")) })
	w.at(time.Second, func() {
		w.spendable = 3
		w.signLast()
	})
	w.at(2*time.Second, func() {
		v := w.view()
		require.Equal(t, contract.UsageGrace, v.State)
		require.Equal(t, contract.SubWaitingTxForPaying, v.SubState)
		require.Nil(t, v.Pool)
		w.update(contract.UpdateUsageEnd)
	})
	w.run(UsageSessionInput{})
	require.Equal(t, int64(1000), w.pool.balance)
	require.Empty(t, w.pool.reserved)
	require.Empty(t, w.promises)
	require.Equal(t, []string{"receipt-1"}, w.fundsAsk)
}

// A payer with an empty wallet whose daily budget covers the first receipt
// is served (the pool's cover counts as funds), not sent to grace.
func TestUsagePoolCoversAnEmptyWallet(t *testing.T) {
	w := newUsageWorld(t)
	w.pool = newTestPool(1000, 100)
	w.spendable = 0
	var start *usageUpdate
	w.at(0, func() { start = w.update(contract.UpdateUsageStart, w.startReq("vpn")) })
	w.at(time.Second, func() {
		require.NoError(t, start.err)
		require.Equal(t, contract.SubWaitingFirstReceiptSign, start.value.(contract.UsageStartResult).SubState)
		w.signLast()
	})
	w.at(2*time.Second, func() {
		v := w.view()
		require.Equal(t, contract.UsageNormal, v.State)
		require.Equal(t, contract.PoolFree, v.Pool.LastServe)
		w.update(contract.UpdateUsageEnd)
	})
	w.run(UsageSessionInput{})
	require.Empty(t, w.fundsAsk)
}

// A payment that fails after the pool reserved for it: the session ends
// (TX_CREATION_ERROR outside NORMAL) and the end releases the whole
// reservation.
func TestUsagePoolPaymentErrorReleases(t *testing.T) {
	w := newUsageWorld(t)
	w.pool = newTestPool(1000, 100)
	w.pool.failAfterReserve = true
	w.at(0, func() { w.update(contract.UpdateUsageStart, w.startReq("vpn")) })
	w.at(time.Second, w.signLast)
	v := w.run(UsageSessionInput{})
	require.Equal(t, contract.UsageEnded, v.State)
	require.Equal(t, []string{w.sent[0].ReceiptID}, w.ended.PoolRelease)
	require.True(t, w.pool.released[w.sent[0].ReceiptID])
	require.Equal(t, int64(1000), w.pool.balance)
	require.Equal(t, int64(0), w.pool.today)
}

// A gated payer (no budget) sees no pool in its session and pays as before.
func TestUsagePoolGateUnchanged(t *testing.T) {
	w := newUsageWorld(t)
	w.pool = newTestPool(1000, 0)
	w.at(0, func() { w.update(contract.UpdateUsageStart, w.startReq("vpn")) })
	w.at(time.Second, w.signLast)
	w.at(2*time.Second, func() { w.update(contract.UpdateUsageEnd) })
	v := w.run(UsageSessionInput{})
	require.Nil(t, v.Pool)
	require.Equal(t, int64(10), w.ended.Settle)
	require.Empty(t, w.ended.PoolSettle)
	require.Equal(t, int64(60), w.ended.Remain)
}

// Grants whose units are all used are recorded by the next payment and
// not carried further; a continued-as-new run carries the open ones.
func TestUsagePoolGrantsRecordedOnceUsedAndCarried(t *testing.T) {
	w := newUsageWorld(t)
	w.pool = newTestPool(1000, 100)
	w.at(0, func() { w.update(contract.UpdateUsageStart, w.startReq("vpn")) })
	w.at(time.Second, w.signLast)
	w.at(40*time.Second, func() { w.report("r1", 40) })
	w.at(41*time.Second, w.signLast)
	w.at(90*time.Second, func() { w.report("r2", 50) })
	w.at(91*time.Second, w.signLast)
	w.env.ExecuteWorkflow(UsageSession, UsageSessionInput{SessionID: "s1", ContinueEvery: 3})
	next := continued(t, w)
	require.Equal(t, []contract.UsagePoolGrant{
		{Key: w.sent[1].ReceiptID, Start: 60, Units: 60, Value: 10, Absorbed: 10},
		{Key: w.sent[2].ReceiptID, Start: 120, Units: 60, Value: 10, Absorbed: 10},
	}, next.Carry.PoolGrants)
	require.Equal(t, map[string]contract.UsagePoolSettle{w.sent[0].ReceiptID: {Key: w.sent[0].ReceiptID, Actual: 10, Reserved: 10}}, w.pool.settled)
	require.Equal(t, int64(30), next.Carry.View.Pool.Absorbed)
}

// The pool's settlement of grants is pure arithmetic: rounding is in the
// pool's favour and a partial receipt's pool units are its last ones.
func TestSettlePoolGrants(t *testing.T) {
	g := []contract.UsagePoolGrant{
		{Key: "a", Start: 0, Units: 60, Value: 10, Absorbed: 10},
		{Key: "b", Start: 60, Units: 60, Value: 10, Absorbed: 4}, // partial: 24 pool units, the last ones
	}
	s, kept, pu := contract.SettlePoolGrants(g, 0, 100, false)
	require.Equal(t, []contract.UsagePoolSettle{{Key: "a", Actual: 10, Reserved: 10}}, s)
	require.Equal(t, g[1:], kept)
	require.Zero(t, pu)
	// 20 units of b unused: all pool units (the payer's 36 came first).
	s, _, pu = contract.SettlePoolGrants(g, 0, 100, true)
	require.Equal(t, []contract.UsagePoolSettle{{Key: "a", Actual: 10, Reserved: 10}, {Key: "b", Actual: 0, Reserved: 4}}, s)
	require.Equal(t, int64(20), pu)
	// 50 unused: the 24 pool units go back, 26 are the payer's.
	s, _, pu = contract.SettlePoolGrants(g[1:], 0, 70, true)
	require.Equal(t, []contract.UsagePoolSettle{{Key: "b", Actual: 0, Reserved: 4}}, s)
	require.Equal(t, int64(24), pu)
	// Remain units come first: with 30 remain units, a's units are 30..90.
	s, _, pu = contract.SettlePoolGrants(g[:1], 30, 45, true)
	require.Equal(t, []contract.UsagePoolSettle{{Key: "a", Actual: 2, Reserved: 10}}, s)
	require.Equal(t, int64(45), pu)
	// Nothing used at all; zero-value receipts.
	s, _, _ = contract.SettlePoolGrants([]contract.UsagePoolGrant{{Key: "z", Units: 10, Value: 0, Absorbed: 0}}, 0, 0, true)
	require.Equal(t, []contract.UsagePoolSettle{{Key: "z", Actual: 0, Reserved: 0}}, s)
}

func continued(t *testing.T, w *usageWorld) UsageSessionInput {
	t.Helper()
	var can *workflow.ContinueAsNewError
	require.True(t, errors.As(w.env.GetWorkflowError(), &can), "want continue-as-new, got %v", w.env.GetWorkflowError())
	var next UsageSessionInput
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	require.NotNil(t, next.Carry)
	return next
}

// PoolOperation runs its one activity and answers; a refusal is the
// answer's Error (the field named), never a failed workflow.
func TestPoolOperation(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
		want contract.PoolOpAnswer
	}{
		{"answer", nil, contract.PoolOpAnswer{Status: &contract.PoolStatusView{Balance: 42}}},
		{"refusal", temporal.NewNonRetryableApplicationError("amount: -1 is not positive", activities.ErrValidation, nil,
			models.ValidationError{Field: "amount", Reason: "-1 is not positive"}),
			contract.PoolOpAnswer{Error: &contract.PoolOpError{Field: "amount", Reason: "-1 is not positive"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var s testsuite.WorkflowTestSuite
			env := s.NewTestWorkflowEnvironment()
			acts := &activities.Activities{}
			env.RegisterActivity(acts)
			env.OnActivity(acts.PoolOperation, mock.Anything, contract.PoolOpRequest{Op: contract.PoolOpShow}).Return(
				func(context.Context, contract.PoolOpRequest) (contract.PoolOpAnswer, error) {
					if c.err != nil {
						return contract.PoolOpAnswer{}, c.err
					}
					return c.want, nil
				}).Once()
			env.ExecuteWorkflow(PoolOperation, contract.PoolOpRequest{Op: contract.PoolOpShow})
			require.True(t, env.IsWorkflowCompleted())
			require.NoError(t, env.GetWorkflowError())
			var got contract.PoolOpAnswer
			require.NoError(t, env.GetWorkflowResult(&got))
			require.Equal(t, c.want, got)
			env.AssertExpectations(t)
		})
	}
}

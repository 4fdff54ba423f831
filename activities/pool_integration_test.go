//go:build integration

package activities

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"

	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/receipts"
	"github.com/billflow/billflow/store"
)

// poolActs is usageActs with a configured pool holding balance and the
// payer pinned trusted (budget 25 a day).
func poolActs(t *testing.T, balance int64) (*Activities, *testsuite.TestActivityEnvironment, models.TenantID,
	func(seq int64) (contract.SignRequest, contract.NostrEvent)) {
	t.Helper()
	a, env, payer := usageActs(t, true)
	ctx := context.Background()
	cfg := models.DefaultPoolConfig()
	cfg.LowFloor = 0
	cfg.Tiers[models.TierTrusted] = models.TierRule{DailyBudget: 25, PaidInvoices: 3, MinAge: 30 * 24 * time.Hour}
	a.Usage.Pool = &cfg
	_, err := a.Store.ConfigurePool(ctx, cfg)
	require.NoError(t, err)
	_, err = a.Store.CreditPool(ctx, "seed", balance, "test")
	require.NoError(t, err)
	require.NoError(t, a.Store.PinTier(ctx, payer, models.TierTrusted, "test"))
	_, err = a.Store.StartUsageSession(ctx, "s1", payer, "vpn", time.Now())
	require.NoError(t, err)
	receipt := func(seq int64) (contract.SignRequest, contract.NostrEvent) {
		r := contract.Receipt{Version: 2, SessionID: "s1", ServiceID: "vpn", Payer: payer, Unit: models.UnitSeconds, Units: 60, UnitPrice: 10,
			PriceUnits: 60, Value: 10, Currency: "usd", Seq: seq}
		req, err := a.Usage.Signer.Sign(r, time.Now())
		require.NoError(t, err)
		ans, err := receipts.SignAs(usagePayerKey, req.Receipt, time.Now())
		require.NoError(t, err)
		return req, ans
	}
	return a, env, payer, receipt
}

// The pool's cover counts at the start and in a funds check; receipts go
// free, free, partial, gate; the end records used grants and gives the
// unused part back, and releases a failed payment's reservation.
func TestUsagePoolActivities(t *testing.T) {
	a, env, payer, receipt := poolActs(t, 1000)
	ctx := context.Background()
	now := time.Now()

	v, err := env.ExecuteActivity(a.UsageStart, UsageStartInput{Request: contract.UsageStartRequest{SessionID: "s2", ServiceID: "vpn",
		Payer: payer, MaxUnitPrice: 10}, At: now, Pool: true})
	require.NoError(t, err)
	var st UsageStartResult
	require.NoError(t, v.Get(&st))
	require.Equal(t, int64(0), st.Spendable)
	require.Equal(t, int64(10), st.PoolCover, "the pool would pay the whole first receipt")
	v, err = env.ExecuteActivity(a.UsageFunds, UsageFundsInput{SessionID: "s2", Payer: payer, ServiceID: "vpn", Need: 10, At: now, Pool: true})
	require.NoError(t, err)
	var funds UsageFundsResult
	require.NoError(t, v.Get(&funds))
	require.True(t, funds.Enough)

	_, err = a.Store.Deposit(ctx, store.WalletWrite{TenantID: payer, Key: "d1", Amount: 100})
	require.NoError(t, err)
	pay := func(seq int64, settle ...contract.UsagePoolSettle) UsagePayResult {
		req, ans := receipt(seq)
		v, err := env.ExecuteActivity(a.UsagePay, UsagePayInput{Request: req, Answer: ans, At: now, Pool: true, PoolSettle: settle})
		require.NoError(t, err)
		var res UsagePayResult
		require.NoError(t, v.Get(&res))
		require.True(t, res.Paid)
		return res
	}
	r1 := pay(1)
	require.Equal(t, contract.UsagePoolPaid{Serve: contract.PoolFree, Absorbed: 10, Balance: 990, AbsorbedToday: 10, Tier: "trusted"}, *r1.Pool)
	require.Equal(t, int64(100), r1.Spendable)
	r2 := pay(2)
	require.Equal(t, contract.PoolFree, r2.Pool.Serve)
	k1, _ := receipt(1)
	r3 := pay(3, contract.UsagePoolSettle{Key: k1.ReceiptID, Actual: 10, Reserved: 10})
	require.Equal(t, contract.UsagePoolPaid{Serve: contract.PoolPartial, Absorbed: 5, Charge: 5, Balance: 975, AbsorbedToday: 25, Tier: "trusted"}, *r3.Pool)
	require.Equal(t, int64(95), r3.Spendable)
	r4 := pay(4)
	require.Equal(t, contract.PoolGate, r4.Pool.Serve)
	require.Equal(t, int64(85), r4.Spendable)

	k2, _ := receipt(2)
	k3, _ := receipt(3)
	end := UsageEndInput{SessionID: "s1", Payer: payer, ServiceID: "vpn", Unit: models.UnitSeconds, Settle: 15, At: now,
		PoolSettle: []contract.UsagePoolSettle{{Key: k1.ReceiptID, Actual: 10, Reserved: 10}, {Key: k2.ReceiptID, Actual: 10, Reserved: 10},
			{Key: k3.ReceiptID, Actual: 2, Reserved: 5}},
		PoolRelease: []string{"never-reserved"}}
	for range 2 { // the end is retried: exactly once
		_, err = env.ExecuteActivity(a.UsageEnd, end)
		require.NoError(t, err)
	}
	p, err := a.Store.GetPool(ctx)
	require.NoError(t, err)
	require.Equal(t, int64(978), p.Balance, "3 of receipt 3's reservation went back")
	g, err := a.Store.GetGrant(ctx, k3.ReceiptID)
	require.NoError(t, err)
	require.Equal(t, int64(2), g.Absorbed)
	require.Equal(t, int64(3), g.Released)
	w, err := a.Store.WalletState(ctx, payer)
	require.NoError(t, err)
	require.Equal(t, int64(85), w.Funds, "the wallet paid 5 + 10, the pool the rest")
	require.Zero(t, w.Unsettled)
}

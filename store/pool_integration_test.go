//go:build integration

package store_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/internal/testkit"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/store"
)

// poolCfg is the pool configuration of these tests: trusted payers (pinned)
// get 100 a day.
func poolCfg() models.PoolConfig {
	c := models.DefaultPoolConfig()
	c.CreditShareBps = 1000
	c.LowFloor = 50
	c.Tiers[models.TierTrusted] = models.TierRule{DailyBudget: 100, PaidInvoices: 3, MinAge: 30 * 24 * time.Hour}
	return c
}

// poolStore is a fresh store with the pool configured and holding balance.
func poolStore(t *testing.T, conns int, balance int64) *store.Store {
	t.Helper()
	st := wideStore(t, conns)
	_, err := st.ConfigurePool(bg(), poolCfg())
	require.NoError(t, err)
	if balance > 0 {
		_, err = st.CreditPool(bg(), "seed", balance, "test seed")
		require.NoError(t, err)
	}
	return st
}

// trustedPayer is a usd tenant pinned to the trusted tier.
func trustedPayer(t *testing.T, st *store.Store) models.TenantID {
	t.Helper()
	id := testkit.NewTenantID(t)
	_, _, err := st.EnsureTenant(bg(), id, "usd", 600)
	require.NoError(t, err)
	require.NoError(t, st.PinTier(bg(), id, models.TierTrusted, "test"))
	return id
}

func poolBalance(t tb, st *store.Store) int64 {
	t.Helper()
	return scalar(t, st, `SELECT balance FROM pool`)
}

func TestPoolFreeRecordRelease(t *testing.T) {
	st := poolStore(t, 4, 1000)
	cfg := poolCfg()
	payer := trustedPayer(t, st)

	v, err := st.DecideAndReserveFree(bg(), cfg, store.PoolRequest{Payer: payer, Key: "r1", Estimated: 30})
	require.NoError(t, err)
	require.Equal(t, models.ServeFree, v.Serve)
	require.Equal(t, int64(30), v.Absorb)
	require.Equal(t, int64(970), poolBalance(t, st))

	g, err := st.RecordGrant(bg(), "r1", 20)
	require.NoError(t, err)
	require.Equal(t, store.GrantRecorded, g.Outcome)
	require.Equal(t, int64(980), poolBalance(t, st))
	require.Equal(t, int64(20), scalar(t, st, `SELECT absorbed FROM pool_daily WHERE payer = $1`, payer))

	v, err = st.DecideAndReserveFree(bg(), cfg, store.PoolRequest{Payer: payer, Key: "r2", Estimated: 80})
	require.NoError(t, err)
	require.Equal(t, models.ServeFree, v.Serve)
	_, err = st.ReleaseReservation(bg(), "r2", "failed")
	require.NoError(t, err)
	require.Equal(t, int64(980), poolBalance(t, st))

	v, err = st.DecideAndReserveFree(bg(), cfg, store.PoolRequest{Payer: payer, Key: "r3", Estimated: 200})
	require.NoError(t, err)
	require.Equal(t, models.ServePartial, v.Serve)
	require.Equal(t, int64(80), v.Absorb)
	require.Equal(t, int64(980), poolBalance(t, st))
}

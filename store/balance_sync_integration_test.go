//go:build integration

package store_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/internal/testkit"
	"github.com/billflow/billflow/store"
)

// wallet.balance_changed is written only when spendable changed since the
// last published value (before and after in the payload), decided in
// Postgres; wallet.low_balance once per fall below the threshold.
func TestPublishBalanceOnlyWhenChanged(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, time.Hour)
	events := func(typ string) []store.BalanceChangedPayload {
		rows, err := st.Pool().Query(bg(), `SELECT payload FROM events WHERE tenant_id = $1 AND type = $2 ORDER BY created_at, subject_id`, tenant, typ)
		require.NoError(t, err)
		defer rows.Close()
		var out []store.BalanceChangedPayload
		for rows.Next() {
			var b []byte
			require.NoError(t, rows.Scan(&b))
			var p store.BalanceChangedPayload
			require.NoError(t, json.Unmarshal(b, &p))
			out = append(out, p)
		}
		require.NoError(t, rows.Err())
		return out
	}

	// No wallet yet: nothing to publish, no event, spendable zero.
	pub, err := st.PublishBalance(bg(), tenant, at(1))
	require.NoError(t, err)
	require.False(t, pub.Changed)
	require.Empty(t, events(store.EventWalletBalanceChanged))

	_, err = st.Grant(bg(), store.WalletWrite{TenantID: tenant, Key: "g1", Amount: 1000, At: at(2)})
	require.NoError(t, err)
	pub, err = st.PublishBalance(bg(), tenant, at(3))
	require.NoError(t, err)
	require.True(t, pub.Changed)
	require.Equal(t, int64(0), pub.Before)
	require.Equal(t, int64(1000), pub.After)

	// The same balance again (a retried or repeated sync): no event.
	for i := 0; i < 3; i++ {
		pub, err = st.PublishBalance(bg(), tenant, at(4+i))
		require.NoError(t, err)
		require.False(t, pub.Changed)
	}
	require.Len(t, events(store.EventWalletBalanceChanged), 1)

	// A threshold, then a promise that takes spendable below it: one
	// balance_changed (1000 -> 300) and one low_balance; staying low
	// writes no second low_balance.
	_, err = st.Pool().Exec(bg(), `UPDATE wallets SET auto_recharge_threshold = 500 WHERE tenant_id = $1`, tenant)
	require.NoError(t, err)
	_, err = st.Promise(bg(), store.WalletWrite{TenantID: tenant, Key: "r1", Amount: 700, At: at(10)})
	require.NoError(t, err)
	pub, err = st.PublishBalance(bg(), tenant, at(11))
	require.NoError(t, err)
	require.True(t, pub.Changed)
	require.True(t, pub.LowCrossed)
	_, err = st.Promise(bg(), store.WalletWrite{TenantID: tenant, Key: "r2", Amount: 100, At: at(12)})
	require.NoError(t, err)
	pub, err = st.PublishBalance(bg(), tenant, at(13))
	require.NoError(t, err)
	require.True(t, pub.Changed)
	require.False(t, pub.LowCrossed, "still low: no second low_balance")

	got := events(store.EventWalletBalanceChanged)
	require.Len(t, got, 3)
	require.Equal(t, [][2]int64{{0, 1000}, {1000, 300}, {300, 200}},
		[][2]int64{{got[0].Before, got[0].After}, {got[1].Before, got[1].After}, {got[2].Before, got[2].After}})
	require.Equal(t, int64(1), scalar(t, st, `SELECT count(*) FROM events WHERE tenant_id = $1 AND type = $2`, tenant, store.EventWalletLowBalance))

	// Concurrent syncs of one change publish it once.
	_, err = st.Grant(bg(), store.WalletWrite{TenantID: tenant, Key: "g2", Amount: 50, At: at(20)})
	require.NoError(t, err)
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		go func() { _, err := st.PublishBalance(bg(), tenant, at(21)); errs <- err }()
	}
	for i := 0; i < 8; i++ {
		require.NoError(t, <-errs)
	}
	require.Len(t, events(store.EventWalletBalanceChanged), 4)
}

//go:build integration

package store_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/internal/testkit"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/store"
)

// usageTenant is a tenant (the payer) with a wallet granted `funds`.
func usageTenant(t *testing.T, st *store.Store, funds int64) models.TenantID {
	t.Helper()
	id := newTenant(t, st, 0)
	if funds > 0 {
		_, err := st.Grant(bg(), store.WalletWrite{TenantID: id, Key: "g-" + string(id), Amount: funds, At: at(0)})
		require.NoError(t, err)
	}
	return id
}

func receiptPayment(payer models.TenantID, session, id string, seq, value int64, stats ...store.UsageStats) store.UsageReceiptPayment {
	return store.UsageReceiptPayment{ReceiptID: id, SessionID: session, Seq: seq, Payer: payer, ServiceID: "vpn", Unit: models.UnitSeconds,
		Units: 60, Value: value, Currency: "usd", PayerEvent: map[string]string{"id": "p"}, EngineEvent: map[string]string{"id": "e"},
		Stats: stats, At: at(int(seq))}
}

// A receipt is paid once: one promise and one receipt row, a retry is a
// duplicate, and a receipt the wallet cannot cover writes nothing.
func TestUsageReceiptPromisedOnce(t *testing.T) {
	st := testkit.NewStore(t)
	payer := usageTenant(t, st, 250)
	row, err := st.StartUsageSession(bg(), "s1", payer, "vpn", at(0))
	require.NoError(t, err)
	require.Equal(t, store.UsageSessionActive, row.State)
	require.NoError(t, st.SetUsageSessionState(bg(), "s1", store.UsageSessionWaitingFunds, at(0)))
	waiting, err := st.WaitingUsageSessions(bg(), payer)
	require.NoError(t, err)
	require.Equal(t, []string{"s1"}, waiting)
	require.NoError(t, st.SetUsageSessionState(bg(), "s2", store.UsageSessionEnded, at(0)), "an unknown session changes nothing")

	p := receiptPayment(payer, "s1", "r1", 1, 100, store.UsageStats{Mode: store.UsageModePaid, Seconds: 30, Units: 30, Value: 50})
	res, err := st.PayUsageReceipt(bg(), p)
	require.NoError(t, err)
	require.False(t, res.Duplicate)
	require.Equal(t, int64(150), res.Wallet.Spendable)
	res, err = st.PayUsageReceipt(bg(), p)
	require.NoError(t, err)
	require.True(t, res.Duplicate)
	require.Equal(t, int64(150), res.Wallet.Spendable)
	require.Equal(t, int64(1), scalar(t, st, `SELECT count(*) FROM wallet_entries WHERE tenant_id = $1 AND kind = 'promise' AND source_key = 'r1'`, payer))
	require.Equal(t, int64(1), scalar(t, st, `SELECT count(*) FROM usage_receipts WHERE receipt_id = 'r1'`))
	require.Equal(t, int64(30), scalar(t, st, `SELECT seconds FROM usage_stats WHERE payer = $1 AND mode = 'paid'`, payer), "stats written once")
	waiting, err = st.WaitingUsageSessions(bg(), payer)
	require.NoError(t, err)
	require.Empty(t, waiting, "a paid receipt makes the session active")

	_, err = st.PayUsageReceipt(bg(), receiptPayment(payer, "s1", "r2", 2, 200))
	require.True(t, errors.Is(err, store.ErrNotEnough), "got %v", err)
	require.Equal(t, int64(0), scalar(t, st, `SELECT count(*) FROM usage_receipts WHERE receipt_id = 'r2'`))

	// The session's end settles its promised total once.
	_, err = st.SettlePromises(bg(), store.WalletWrite{TenantID: payer, Key: "usage/s1", Amount: 100, At: at(9)})
	require.NoError(t, err)
	w, err := st.WalletState(bg(), payer)
	require.NoError(t, err)
	require.Equal(t, int64(150), w.Spendable)
	require.Equal(t, int64(0), w.Unsettled)
}

// Statistics are written once per key and add up per mode.
func TestUsageStatsIdempotentPerKey(t *testing.T) {
	st := testkit.NewStore(t)
	payer := usageTenant(t, st, 0)
	stats := []store.UsageStats{
		{Mode: store.UsageModeFree, Seconds: 10, BytesReceived: 100, BytesSent: 50, Units: 10},
		{Mode: store.UsageModeGrace, Seconds: 5, Units: 5, Value: 3, Sessions: 1},
	}
	wrote, err := st.WriteUsageStats(bg(), "s1/end", "vpn", payer, stats, at(1))
	require.NoError(t, err)
	require.True(t, wrote)
	wrote, err = st.WriteUsageStats(bg(), "s1/end", "vpn", payer, stats, at(2))
	require.NoError(t, err)
	require.False(t, wrote)
	_, err = st.WriteUsageStats(bg(), "s2/end", "vpn", payer, stats[:1], at(3))
	require.NoError(t, err)
	rows, err := st.UsageStatsOf(bg(), "vpn", payer)
	require.NoError(t, err)
	require.Len(t, rows, 2)
	require.Equal(t, "free", rows[0].Mode)
	require.Equal(t, int64(20), rows[0].Seconds)
	require.Equal(t, int64(200), rows[0].BytesReceived)
	require.Equal(t, "grace", rows[1].Mode)
	require.Equal(t, int64(1), rows[1].Sessions)
	_, err = st.WriteUsageStats(bg(), "s3/end", "vpn", payer, []store.UsageStats{{Mode: "bogus", Units: 1}}, at(4))
	var ve *models.ValidationError
	require.ErrorAs(t, err, &ve)
}

// A grace ban holds until it expires; an operator can lift it.
func TestUsageBanExpiry(t *testing.T) {
	st := testkit.NewStore(t)
	payer := usageTenant(t, st, 0)
	until := at(0).Add(50 * time.Minute)
	require.NoError(t, st.BanUsagePayer(bg(), "vpn", payer, until, "TX_COND_NOT_FOUND", at(0)))
	b, err := st.UsageBan(bg(), "vpn", payer, at(60))
	require.NoError(t, err)
	require.NotNil(t, b)
	require.True(t, b.Equal(until))
	b, err = st.UsageBan(bg(), "other", payer, at(60))
	require.NoError(t, err)
	require.Nil(t, b, "bans are per service")
	b, err = st.UsageBan(bg(), "vpn", payer, until)
	require.NoError(t, err)
	require.Nil(t, b, "gone at its expiry")
	lifted, err := st.LiftUsageBan(bg(), "vpn", payer)
	require.NoError(t, err)
	require.True(t, lifted)
	lifted, err = st.LiftUsageBan(bg(), "vpn", payer)
	require.NoError(t, err)
	require.False(t, lifted)
}

// Remain service is per (payer, service, unit), added and taken once per key.
func TestUsageRemainService(t *testing.T) {
	st := testkit.NewStore(t)
	payer := usageTenant(t, st, 0)
	added, err := st.AddUsageRemain(bg(), "s1", payer, "vpn", models.UnitSeconds, 40, at(1))
	require.NoError(t, err)
	require.True(t, added)
	added, err = st.AddUsageRemain(bg(), "s1", payer, "vpn", models.UnitSeconds, 40, at(1))
	require.NoError(t, err)
	require.False(t, added)
	n, err := st.UsageRemain(bg(), payer, "vpn", models.UnitBytes)
	require.NoError(t, err)
	require.Zero(t, n, "another unit has none")
	took, err := st.TakeUsageRemain(bg(), "s2", payer, "vpn", models.UnitSeconds, at(2))
	require.NoError(t, err)
	require.Equal(t, int64(40), took)
	took, err = st.TakeUsageRemain(bg(), "s2", payer, "vpn", models.UnitSeconds, at(3))
	require.NoError(t, err)
	require.Equal(t, int64(40), took, "a retry answers what the first took")
	took, err = st.TakeUsageRemain(bg(), "s3", payer, "vpn", models.UnitSeconds, at(4))
	require.NoError(t, err)
	require.Zero(t, took)
}

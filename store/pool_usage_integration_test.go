//go:build integration

package store_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/store"
)

// pooledReceipt is receipt seq of session s worth value.
func pooledReceipt(payer models.TenantID, session string, seq, value int64) store.UsageReceiptPayment {
	return store.UsageReceiptPayment{ReceiptID: session + "-r" + string(rune('0'+seq)), SessionID: session, Seq: seq, Payer: payer,
		ServiceID: "vpn", Unit: models.UnitSeconds, Units: 60, Value: value, Currency: "usd", PayerEvent: map[string]any{},
		EngineEvent: map[string]any{}, At: time.Now()}
}

func startSession(t *testing.T, st *store.Store, payer models.TenantID, id string) {
	t.Helper()
	_, err := st.StartUsageSession(bg(), id, payer, "vpn", time.Now())
	require.NoError(t, err)
}

// Free: the pool pays the whole receipt (grant reserved by the decision,
// keyed by the receipt id), the wallet promises nothing and the receipt
// row says so; a retry answers the first payment.
func TestPayUsageReceiptPooledFree(t *testing.T) {
	st := poolStore(t, 4, 1000)
	payer := trustedPayer(t, st)
	startSession(t, st, payer, "s1")
	p := pooledReceipt(payer, "s1", 1, 30)
	res, part, err := st.PayUsageReceiptPooled(bg(), poolCfg(), p)
	require.NoError(t, err)
	require.False(t, res.Duplicate)
	require.Equal(t, store.UsagePoolPart{Serve: models.ServeFree, Tier: models.TierTrusted, Absorbed: 30, Charge: 0, Balance: 970, AbsorbedToday: 30}, part)
	require.Equal(t, int64(970), poolBalance(t, st))
	require.Equal(t, int64(0), res.Wallet.Totals.Promised)
	require.Equal(t, int64(30), scalar(t, st, `SELECT pool_absorbed FROM usage_receipts WHERE receipt_id = $1`, p.ReceiptID))
	g, err := st.GetGrant(bg(), p.ReceiptID)
	require.NoError(t, err)
	require.Equal(t, store.GrantReserved, g.Outcome)
	require.Equal(t, int64(30), g.Reserved)

	res, again, err := st.PayUsageReceiptPooled(bg(), poolCfg(), p)
	require.NoError(t, err)
	require.True(t, res.Duplicate)
	require.Equal(t, part, again)
	require.Equal(t, int64(970), poolBalance(t, st), "a retry moves nothing")
}

// Partial: advisory until the payer's part is promised. A wallet that
// cannot pay its part leaves the pool, the grants and the receipts
// untouched; once funded, the pool's part and the payer's are taken in one
// transaction.
func TestPayUsageReceiptPooledPartialNeedsThePayersPart(t *testing.T) {
	st := poolStore(t, 4, 1000)
	payer := trustedPayer(t, st)
	startSession(t, st, payer, "s1")
	_, part, err := st.PayUsageReceiptPooled(bg(), poolCfg(), pooledReceipt(payer, "s1", 1, 90))
	require.NoError(t, err)
	require.Equal(t, models.ServeFree, part.Serve)

	deposit(t, st, payer, "d1", 5)
	p := pooledReceipt(payer, "s1", 2, 30) // 10 left of the daily 100: the payer's part is 20
	_, _, err = st.PayUsageReceiptPooled(bg(), poolCfg(), p)
	var ne *store.NotEnoughError
	require.True(t, errors.As(err, &ne), "got %v", err)
	require.Equal(t, int64(910), poolBalance(t, st), "nothing debited for a payer who did not pay")
	require.Equal(t, int64(0), scalar(t, st, `SELECT count(*) FROM pool_grants WHERE request_key = $1`, p.ReceiptID))
	require.Equal(t, int64(0), scalar(t, st, `SELECT count(*) FROM usage_receipts WHERE receipt_id = $1`, p.ReceiptID))
	require.Equal(t, int64(90), scalar(t, st, `SELECT absorbed FROM pool_daily WHERE payer = $1`, payer))

	deposit(t, st, payer, "d2", 100)
	res, part, err := st.PayUsageReceiptPooled(bg(), poolCfg(), p)
	require.NoError(t, err)
	require.Equal(t, models.ServePartial, part.Serve)
	require.Equal(t, int64(10), part.Absorbed)
	require.Equal(t, int64(20), part.Charge)
	require.Equal(t, int64(20), res.Wallet.Totals.Promised)
	require.Equal(t, int64(900), poolBalance(t, st))
	require.Equal(t, int64(100), part.AbsorbedToday)

	// The budget is used: gated, the wallet pays all of it.
	res, part, err = st.PayUsageReceiptPooled(bg(), poolCfg(), pooledReceipt(payer, "s1", 3, 30))
	require.NoError(t, err)
	require.Equal(t, models.ServeGate, part.Serve)
	require.Equal(t, int64(50), res.Wallet.Totals.Promised)
	require.Equal(t, int64(900), poolBalance(t, st))
}

// A pool smaller than the payer's part: the pool takes what it has, the
// payer promises the rest, and the balance that crossed the floor writes
// pool.low once.
func TestPayUsageReceiptPooledDrainedPoolAndLowEvent(t *testing.T) {
	st := poolStore(t, 4, 60) // floor 50
	payer := trustedPayer(t, st)
	startSession(t, st, payer, "s1")
	deposit(t, st, payer, "d1", 100)
	_, part, err := st.PayUsageReceiptPooled(bg(), poolCfg(), pooledReceipt(payer, "s1", 1, 20))
	require.NoError(t, err)
	require.Equal(t, models.ServeFree, part.Serve)
	require.Equal(t, int64(1), scalar(t, st, `SELECT count(*) FROM events WHERE type = 'pool.low'`))
	res, part, err := st.PayUsageReceiptPooled(bg(), poolCfg(), pooledReceipt(payer, "s1", 2, 70))
	require.NoError(t, err)
	require.Equal(t, models.ServePartial, part.Serve)
	require.Equal(t, int64(40), part.Absorbed)
	require.Equal(t, int64(30), part.Charge)
	require.Equal(t, int64(30), res.Wallet.Totals.Promised)
	require.Equal(t, int64(0), poolBalance(t, st))
	require.Equal(t, int64(1), scalar(t, st, `SELECT count(*) FROM events WHERE type = 'pool.low'`), "one crossing, one event")
	_, err = st.CreditPool(bg(), "refill", 500, "operator")
	require.NoError(t, err)
	_, _, err = st.PayUsageReceiptPooled(bg(), poolCfg(), pooledReceipt(payer, "s1", 3, 40)) // the daily budget's last 40 -> 460
	require.NoError(t, err)
	require.Equal(t, int64(1), scalar(t, st, `SELECT count(*) FROM events WHERE type = 'pool.low'`), "above the floor: no event")
}

// Concurrent payments of many receipts of one payer never overdraw the
// pool or the daily budget, and what the pool paid equals its debit.
func TestPayUsageReceiptPooledConcurrent(t *testing.T) {
	st := poolStore(t, 16, 1000)
	payer := trustedPayer(t, st)
	startSession(t, st, payer, "s1")
	deposit(t, st, payer, "d1", 10000)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := int64(1); i <= 8; i++ {
		wg.Add(1)
		go func(seq int64) {
			defer wg.Done()
			_, _, err := st.PayUsageReceiptPooled(bg(), poolCfg(), pooledReceipt(payer, "s1", seq, 30))
			errs <- err
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	absorbed := scalar(t, st, `SELECT coalesce(sum(pool_absorbed), 0) FROM usage_receipts WHERE session_id = 's1'`)
	require.Equal(t, int64(100), absorbed, "the daily budget, exactly")
	require.Equal(t, int64(1000)-absorbed, poolBalance(t, st))
	require.Equal(t, int64(240)-absorbed, scalar(t, st, `SELECT promised FROM wallets WHERE tenant_id = $1`, payer))
	require.Equal(t, absorbed, scalar(t, st, `SELECT coalesce(sum(reserved), 0) FROM pool_grants WHERE payer = $1`, payer))
}

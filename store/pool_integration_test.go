//go:build integration

package store_test

import (
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

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
	require.NoError(t, st.UpsertPlans(bg(), testkit.Plans))
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

// grantSums reads, straight from SQL, the grants' reserved and released
// totals and the pool's credits.
func grantSums(t tb, st *store.Store) (reserved, released, credited int64) {
	t.Helper()
	reserved = scalar(t, st, `SELECT coalesce(sum(reserved), 0) FROM pool_grants`)
	released = scalar(t, st, `SELECT coalesce(sum(released), 0) FROM pool_grants`)
	credited = scalar(t, st, `SELECT coalesce(sum(amount), 0) FROM pool_credits`)
	return
}

// requirePoolBalanced: balance = credits - reserved + released, from SQL.
func requirePoolBalanced(t tb, st *store.Store) {
	t.Helper()
	reserved, released, credited := grantSums(t, st)
	require.Equal(t, credited-reserved+released, poolBalance(t, st), "balance = credits %d - reserved %d + released %d", credited, reserved, released)
}

// run starts n goroutines running f(i) at once and waits for them.
func run(n int, f func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			f(i)
		}()
	}
	close(start)
	wg.Wait()
}

// TestPoolConcurrentFreeDecisionsNeverOverdraw: 64 concurrent free
// decisions of 10 by 64 payers against a pool of 305 reserve exactly 30
// grants; the pool keeps 5 (never negative), the sum of the grants is the
// debit, and every other caller got a partial or gate verdict with nothing
// debited.
func TestPoolConcurrentFreeDecisionsNeverOverdraw(t *testing.T) {
	const callers = 64
	st := poolStore(t, callers+2, 305)
	cfg := poolCfg()
	payers := make([]models.TenantID, callers)
	for i := range payers {
		payers[i] = trustedPayer(t, st)
	}
	verdicts := make([]store.PoolVerdict, callers)
	errs := make([]error, callers)
	run(callers, func(i int) {
		verdicts[i], errs[i] = st.DecideAndReserveFree(bg(), cfg, store.PoolRequest{Payer: payers[i], Key: fmt.Sprintf("free-%d", i), Estimated: 10})
	})
	free, other := 0, 0
	for i, v := range verdicts {
		require.NoError(t, errs[i])
		switch v.Serve {
		case models.ServeFree:
			free++
			require.NotNil(t, v.Grant)
			require.Equal(t, int64(10), v.Grant.Reserved)
		default:
			other++
			require.Nil(t, v.Grant, "a %s verdict reserves nothing", v.Serve)
			require.Equal(t, int64(10), v.Absorb+v.Charge)
		}
	}
	require.Equal(t, 30, free)
	require.Equal(t, callers-30, other)
	require.Equal(t, int64(5), poolBalance(t, st))
	require.Equal(t, int64(30), scalar(t, st, `SELECT count(*) FROM pool_grants WHERE outcome = 'reserved' AND reserved = 10`))
	reserved, _, _ := grantSums(t, st)
	require.Equal(t, int64(300), reserved, "the sum of the grants is the debit")
	require.Equal(t, int64(300), scalar(t, st, `SELECT sum(absorbed) FROM pool_daily`), "the daily counters moved with the pool")
	requirePoolBalanced(t, st)
}

// TestPoolConcurrentDecisionsOfOnePayerKeepItsBudget: 64 concurrent
// decisions of 10 by one trusted payer (100 a day) against a large pool
// reserve exactly 10 grants: the daily counter is locked with the debit.
func TestPoolConcurrentDecisionsOfOnePayerKeepItsBudget(t *testing.T) {
	const callers = 64
	st := poolStore(t, callers+2, 100_000)
	cfg := poolCfg()
	payer := trustedPayer(t, st)
	verdicts := make([]store.PoolVerdict, callers)
	errs := make([]error, callers)
	run(callers, func(i int) {
		verdicts[i], errs[i] = st.DecideAndReserveFree(bg(), cfg, store.PoolRequest{Payer: payer, Key: fmt.Sprintf("one-%d", i), Estimated: 10})
	})
	free := 0
	for i, v := range verdicts {
		require.NoError(t, errs[i])
		if v.Serve == models.ServeFree {
			free++
		} else {
			require.Equal(t, models.ServeGate, v.Serve)
			require.Equal(t, "daily free budget used", v.Reason)
		}
	}
	require.Equal(t, 10, free)
	require.Equal(t, int64(100), scalar(t, st, `SELECT absorbed FROM pool_daily WHERE payer = $1`, payer))
	require.Equal(t, int64(100_000-100), poolBalance(t, st))
	requirePoolBalanced(t, st)
}

// TestPoolDecisionRetriedConcurrently: 16 concurrent calls with one key
// debit once and all answer with the same grant.
func TestPoolDecisionRetriedConcurrently(t *testing.T) {
	const callers = 16
	st := poolStore(t, callers+2, 1000)
	cfg := poolCfg()
	payer := trustedPayer(t, st)
	verdicts := make([]store.PoolVerdict, callers)
	errs := make([]error, callers)
	run(callers, func(i int) {
		verdicts[i], errs[i] = st.DecideAndReserveFree(bg(), cfg, store.PoolRequest{Payer: payer, Key: "same", Estimated: 40})
	})
	replayed := 0
	for i, v := range verdicts {
		require.NoError(t, errs[i])
		require.Equal(t, models.ServeFree, v.Serve)
		require.Equal(t, int64(40), v.Absorb)
		require.Equal(t, "same", v.Grant.RequestKey)
		if v.Replayed {
			replayed++
		}
	}
	require.Equal(t, callers-1, replayed)
	require.Equal(t, int64(960), poolBalance(t, st))
	require.Equal(t, int64(40), scalar(t, st, `SELECT absorbed FROM pool_daily WHERE payer = $1`, payer))

	_, err := st.DecideAndReserveFree(bg(), cfg, store.PoolRequest{Payer: payer, Key: "same", Estimated: 41})
	require.Equal(t, "request_key", requireValidation(t, err).Field)
}

// TestPoolPartialReserveAfterDrain: a partial verdict is advisory; when the
// pool drained before the payer's part was paid, ReservePartialGrant takes
// what is left and the rest is the payer's shortfall, never absorbed; with
// nothing left the grant is unfunded. Retries return the first result.
func TestPoolPartialReserveAfterDrain(t *testing.T) {
	st := poolStore(t, 4, 60)
	cfg := poolCfg()
	a, b := trustedPayer(t, st), trustedPayer(t, st)

	v, err := st.DecideAndReserveFree(bg(), cfg, store.PoolRequest{Payer: a, Key: "a1", Estimated: 80})
	require.NoError(t, err)
	require.Equal(t, models.ServePartial, v.Serve)
	require.Equal(t, int64(60), v.Absorb)
	require.Equal(t, int64(20), v.Charge)
	require.Equal(t, "the pool holds 60", v.Reason)
	require.Nil(t, v.Grant)
	require.Equal(t, int64(60), poolBalance(t, st), "a partial verdict debits nothing")

	// b drains 40 before a's part is paid.
	v, err = st.DecideAndReserveFree(bg(), cfg, store.PoolRequest{Payer: b, Key: "b1", Estimated: 40})
	require.NoError(t, err)
	require.Equal(t, models.ServeFree, v.Serve)
	require.True(t, v.CrossedFloor, "60 -> 20 crossed the floor of 50")

	req := store.PartialRequest{PoolRequest: store.PoolRequest{Payer: a, Key: "a1", Estimated: 80}, Absorb: 60}
	r, err := st.ReservePartialGrant(bg(), cfg, req)
	require.NoError(t, err)
	require.Equal(t, int64(20), r.Absorbed)
	require.Equal(t, int64(40), r.Shortfall, "the payer is asked for what the pool no longer has")
	require.Equal(t, store.GrantReserved, r.Grant.Outcome)
	require.Equal(t, models.ServePartial, r.Grant.Serve)
	require.Equal(t, int64(0), poolBalance(t, st))
	require.False(t, r.CrossedFloor, "20 -> 0 was under the floor already")

	again, err := st.ReservePartialGrant(bg(), cfg, req)
	require.NoError(t, err)
	require.True(t, again.Replayed)
	require.Equal(t, int64(20), again.Absorbed)
	require.Equal(t, int64(40), again.Shortfall)
	require.Equal(t, int64(0), poolBalance(t, st))

	// Nothing left at all: unfunded, the whole part is the shortfall.
	r, err = st.ReservePartialGrant(bg(), cfg, store.PartialRequest{PoolRequest: store.PoolRequest{Payer: a, Key: "a2", Estimated: 30}, Absorb: 10})
	require.NoError(t, err)
	require.Equal(t, int64(0), r.Absorbed)
	require.Equal(t, int64(10), r.Shortfall)
	require.Equal(t, store.GrantUnfunded, r.Grant.Outcome)
	require.Equal(t, "the pool is empty", r.Grant.Reason)
	require.Equal(t, int64(20), scalar(t, st, `SELECT absorbed FROM pool_daily WHERE payer = $1`, a))
	requirePoolBalanced(t, st)
}

// TestPoolPartialRechecksDailyBudget: the payer's budget is checked again
// when the partial grant is reserved: what was used since the verdict is
// no longer available.
func TestPoolPartialRechecksDailyBudget(t *testing.T) {
	st := poolStore(t, 4, 10_000)
	cfg := poolCfg()
	c := trustedPayer(t, st)
	v, err := st.DecideAndReserveFree(bg(), cfg, store.PoolRequest{Payer: c, Key: "big", Estimated: 150})
	require.NoError(t, err)
	require.Equal(t, models.ServePartial, v.Serve)
	require.Equal(t, int64(100), v.Absorb)
	require.Equal(t, "daily free budget: 100 left", v.Reason)

	_, err = st.DecideAndReserveFree(bg(), cfg, store.PoolRequest{Payer: c, Key: "small", Estimated: 30})
	require.NoError(t, err)

	r, err := st.ReservePartialGrant(bg(), cfg, store.PartialRequest{PoolRequest: store.PoolRequest{Payer: c, Key: "big", Estimated: 150}, Absorb: v.Absorb})
	require.NoError(t, err)
	require.Equal(t, int64(70), r.Absorbed)
	require.Equal(t, int64(30), r.Shortfall)
	require.Equal(t, int64(100), scalar(t, st, `SELECT absorbed FROM pool_daily WHERE payer = $1`, c))
	require.Equal(t, int64(10_000-100), poolBalance(t, st))

	_, err = st.ReservePartialGrant(bg(), cfg, store.PartialRequest{PoolRequest: store.PoolRequest{Payer: c, Key: "x", Estimated: 10}, Absorb: 11})
	require.Equal(t, "absorb", requireValidation(t, err).Field)
}

// TestPoolReleaseOnceUnderConcurrentRetries: 16 concurrent releases of one
// grant return its reservation to the pool once.
func TestPoolReleaseOnceUnderConcurrentRetries(t *testing.T) {
	const callers = 16
	st := poolStore(t, callers+2, 1000)
	cfg := poolCfg()
	payer := trustedPayer(t, st)
	_, err := st.DecideAndReserveFree(bg(), cfg, store.PoolRequest{Payer: payer, Key: "rel", Estimated: 50})
	require.NoError(t, err)
	require.Equal(t, int64(950), poolBalance(t, st))

	errs := make([]error, callers)
	grants := make([]store.PoolGrant, callers)
	run(callers, func(i int) { grants[i], errs[i] = st.ReleaseReservation(bg(), "rel", "session failed") })
	for i := range errs {
		require.NoError(t, errs[i])
		require.Equal(t, store.GrantReleased, grants[i].Outcome)
		require.Equal(t, int64(50), grants[i].Released)
	}
	require.Equal(t, int64(1000), poolBalance(t, st))
	require.Equal(t, int64(0), scalar(t, st, `SELECT absorbed FROM pool_daily WHERE payer = $1`, payer))

	_, err = st.RecordGrant(bg(), "rel", 10)
	require.Equal(t, "grant rel", requireValidation(t, err).Field, "a released grant records nothing")
	_, err = st.ReleaseReservation(bg(), "nope", "")
	require.ErrorIs(t, err, store.ErrNotFound)
	requirePoolBalanced(t, st)
}

// TestPoolOverReservationRefundOnceUnderConcurrentRetries: 16 concurrent
// records of one grant (reserved 50, actual 20) give 30 back once; a later
// release or a record of another amount changes nothing.
func TestPoolOverReservationRefundOnceUnderConcurrentRetries(t *testing.T) {
	const callers = 16
	st := poolStore(t, callers+2, 1000)
	cfg := poolCfg()
	payer := trustedPayer(t, st)
	_, err := st.DecideAndReserveFree(bg(), cfg, store.PoolRequest{Payer: payer, Key: "rec", Estimated: 50})
	require.NoError(t, err)

	errs := make([]error, callers)
	run(callers, func(i int) { _, errs[i] = st.RecordGrant(bg(), "rec", 20) })
	for _, err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, int64(980), poolBalance(t, st))
	require.Equal(t, int64(20), scalar(t, st, `SELECT absorbed FROM pool_daily WHERE payer = $1`, payer), "the daily counter holds the actual")

	g, err := st.ReleaseReservation(bg(), "rec", "late cancel")
	require.NoError(t, err)
	require.Equal(t, store.GrantRecorded, g.Outcome)
	require.Equal(t, int64(20), g.Absorbed)
	require.Equal(t, int64(30), g.Released)
	_, err = st.RecordGrant(bg(), "rec", 25)
	require.Equal(t, "grant rec", requireValidation(t, err).Field)
	require.Equal(t, int64(980), poolBalance(t, st))

	// A late retry of the decision answers the decision it made (free,
	// nothing to charge), not what was recorded since, and moves nothing.
	v, err := st.DecideAndReserveFree(bg(), cfg, store.PoolRequest{Payer: payer, Key: "rec", Estimated: 50})
	require.NoError(t, err)
	require.True(t, v.Replayed)
	require.Equal(t, models.PoolDecision{Serve: models.ServeFree, Absorb: 50, Charge: 0}, v.PoolDecision)
	require.Equal(t, store.GrantRecorded, v.Grant.Outcome)
	require.Equal(t, int64(980), poolBalance(t, st))

	_, err = st.DecideAndReserveFree(bg(), cfg, store.PoolRequest{Payer: payer, Key: "rec2", Estimated: 10})
	require.NoError(t, err)
	_, err = st.RecordGrant(bg(), "rec2", 11)
	require.Equal(t, "actual", requireValidation(t, err).Field, "the pool never absorbs more than it reserved")
	requirePoolBalanced(t, st)
}

// TestPoolRecordAndReleaseRace: a record and a release racing on one grant:
// exactly one settles it, and the pool is consistent with the winner.
func TestPoolRecordAndReleaseRace(t *testing.T) {
	const grants = 16
	st := poolStore(t, 2*grants+2, 10_000)
	cfg := poolCfg()
	payers := make([]models.TenantID, grants)
	for i := range payers {
		payers[i] = trustedPayer(t, st)
		_, err := st.DecideAndReserveFree(bg(), cfg, store.PoolRequest{Payer: payers[i], Key: fmt.Sprintf("race-%d", i), Estimated: 40})
		require.NoError(t, err)
	}
	errs := make([]error, 2*grants)
	run(2*grants, func(i int) {
		key := fmt.Sprintf("race-%d", i/2)
		if i%2 == 0 {
			_, errs[i] = st.RecordGrant(bg(), key, 15)
		} else {
			_, errs[i] = st.ReleaseReservation(bg(), key, "cancelled")
		}
	})
	for i, err := range errs {
		if i%2 == 0 && err != nil {
			requireValidation(t, err) // the release won
		} else {
			require.NoError(t, err)
		}
	}
	recorded := scalar(t, st, `SELECT count(*) FROM pool_grants WHERE outcome = 'recorded'`)
	released := scalar(t, st, `SELECT count(*) FROM pool_grants WHERE outcome = 'released'`)
	require.Equal(t, int64(grants), recorded+released)
	require.Equal(t, 10_000-15*recorded, poolBalance(t, st))
	requirePoolBalanced(t, st)
}

// TestPoolDailyWindow: the budget comes back 24 hours after the window
// opened, not at midnight, and a release of a grant from an ended window
// does not eat into the new one.
func TestPoolDailyWindow(t *testing.T) {
	st := poolStore(t, 4, 10_000)
	cfg := poolCfg()
	payer := trustedPayer(t, st)
	now := ts("2026-03-01T23:00:00Z")
	st.Now = func() time.Time { return now }
	_, err := st.DecideAndReserveFree(bg(), cfg, store.PoolRequest{Payer: payer, Key: "d1", Estimated: 100})
	require.NoError(t, err)

	now = now.Add(2 * time.Hour) // past midnight, same window
	v, err := st.DecideAndReserveFree(bg(), cfg, store.PoolRequest{Payer: payer, Key: "d2", Estimated: 1})
	require.NoError(t, err)
	require.Equal(t, models.ServeGate, v.Serve)

	now = ts("2026-03-02T23:00:00Z") // exactly 24 hours later
	v, err = st.DecideAndReserveFree(bg(), cfg, store.PoolRequest{Payer: payer, Key: "d3", Estimated: 60})
	require.NoError(t, err)
	require.Equal(t, models.ServeFree, v.Serve)
	require.Equal(t, int64(100), v.DailyRemaining)

	_, err = st.ReleaseReservation(bg(), "d1", "late")
	require.NoError(t, err)
	pt, err := st.PayerTier(bg(), cfg, payer)
	require.NoError(t, err)
	require.Equal(t, int64(60), pt.AbsorbedToday, "d1's release is not taken off the new window")
	require.Equal(t, int64(40), pt.DailyRemaining)
	require.True(t, pt.WindowStart.Equal(now))
	requirePoolBalanced(t, st)
}

// TestPoolSettlementCreditsShareOncePerInvoice: paying an invoice credits
// the pool its share (10%, rounded down) in the settlement transaction,
// once, however often the payment is reported; a partial payment, a top-up
// or an invoice in another currency credits nothing.
func TestPoolSettlementCreditsShareOncePerInvoice(t *testing.T) {
	st := poolStore(t, 20, 0)
	tenant := newTenant(t, st, fixed)
	id := newInvoice(t, st, tenant, "s1", "awaiting_payment")
	total := scalar(t, st, `SELECT total FROM invoices WHERE id = $1`, id)
	require.Positive(t, total)

	_, err := st.Settle(bg(), store.PaymentReport{InvoiceID: id, Rail: store.RailManual, Reference: "part", Amount: 1, ReceivedAt: at(10)})
	require.NoError(t, err)
	require.Equal(t, int64(0), poolBalance(t, st), "a partial payment credits nothing")

	const reporters = 8
	errs := make([]error, reporters)
	run(reporters, func(i int) {
		_, errs[i] = st.Settle(bg(), store.PaymentReport{InvoiceID: id, Rail: store.RailManual, Reference: fmt.Sprintf("rest-%d", i%2), ReceivedAt: at(20)})
	})
	for _, err := range errs {
		require.NoError(t, err)
	}
	share := total / 10
	require.Equal(t, share, poolBalance(t, st))
	require.Equal(t, int64(1), scalar(t, st, `SELECT count(*) FROM pool_credits WHERE invoice_id = $1`, id))
	require.Equal(t, "invoice:"+id, scalarText(t, st, `SELECT credit_key FROM pool_credits WHERE invoice_id = $1`, id))

	top, err := st.CreateTopUp(bg(), store.TopUpParams{TenantID: tenant, Key: "t1", Amount: 5000, At: at(30)})
	require.NoError(t, err)
	_, err = st.Settle(bg(), store.PaymentReport{InvoiceID: top.ID, Rail: store.RailManual, Reference: "topup", ReceivedAt: at(31)})
	require.NoError(t, err)
	require.Equal(t, share, poolBalance(t, st), "a top-up is no revenue")

	eur := testkit.NewTenantID(t)
	_, _, err = st.EnsureTenant(bg(), eur, "eur", 600)
	require.NoError(t, err)
	record(t, st, eur, created("act-e", "res-e", "euro", at(0)))
	eid := seedInvoice(t, st, eur, "awaiting_payment")
	_, err = st.Pool().Exec(bg(), `UPDATE invoices SET currency = 'eur' WHERE id = $1`, eid)
	require.NoError(t, err)
	_, err = st.Settle(bg(), store.PaymentReport{InvoiceID: eid, Rail: store.RailManual, Reference: "eur", ReceivedAt: at(40)})
	require.NoError(t, err)
	require.Equal(t, share, poolBalance(t, st), "a pool in usd takes no share of a eur invoice")
	requirePoolBalanced(t, st)
}

func scalarText(t tb, st *store.Store, sql string, args ...any) string {
	t.Helper()
	var s string
	require.NoError(t, st.Pool().QueryRow(bg(), sql, args...).Scan(&s), sql)
	return s
}

// TestPoolOperatorOps: top-ups are idempotent by key; the currency changes
// only while the pool is empty; pins override the derived tier; the status
// and the grant list read back what happened.
func TestPoolOperatorOps(t *testing.T) {
	st := wideStore(t, 4)
	cfg := poolCfg()
	_, err := st.CreditPool(bg(), "k", 10, "")
	require.ErrorIs(t, err, store.ErrPoolNotConfigured)
	_, err = st.ConfigurePool(bg(), cfg)
	require.NoError(t, err)

	c, err := st.CreditPool(bg(), "topup-1", 500, "launch")
	require.NoError(t, err)
	require.Equal(t, int64(500), c.Balance)
	c, err = st.CreditPool(bg(), "topup-1", 500, "launch")
	require.NoError(t, err)
	require.True(t, c.Replayed)
	require.Equal(t, int64(500), poolBalance(t, st))
	_, err = st.CreditPool(bg(), "topup-1", 600, "")
	require.Equal(t, "key", requireValidation(t, err).Field)
	_, err = st.CreditPool(bg(), "invoice:x", 5, "")
	require.Equal(t, "key", requireValidation(t, err).Field)
	_, err = st.CreditPool(bg(), "k2", 0, "")
	require.Equal(t, "amount", requireValidation(t, err).Field)

	eurCfg := cfg
	eurCfg.Currency = "eur"
	_, err = st.ConfigurePool(bg(), eurCfg)
	require.Equal(t, "pool.currency", requireValidation(t, err).Field)

	payer := testkit.NewTenantID(t)
	_, _, err = st.EnsureTenant(bg(), payer, "usd", 600)
	require.NoError(t, err)
	pt, err := st.PayerTier(bg(), cfg, payer)
	require.NoError(t, err)
	require.Equal(t, models.TierNew, pt.Tier)
	require.False(t, pt.Pinned)
	v, err := st.DecideAndReserveFree(bg(), cfg, store.PoolRequest{Payer: payer, Key: "n1", Estimated: 10})
	require.NoError(t, err)
	require.Equal(t, models.ServeGate, v.Serve)
	require.Equal(t, "tier new has no daily free budget", v.Reason)

	require.NoError(t, st.PinTier(bg(), payer, models.TierElite, "partner"))
	pt, err = st.PayerTier(bg(), cfg, payer)
	require.NoError(t, err)
	require.Equal(t, models.TierElite, pt.Tier)
	require.Equal(t, models.TierNew, pt.Derived)
	require.Equal(t, "partner", pt.PinReason)
	require.Equal(t, int64(1000), pt.DailyBudget)

	dry, err := st.DecidePool(bg(), cfg, store.PoolRequest{Payer: payer, Key: "dry", Estimated: 700})
	require.NoError(t, err)
	require.Equal(t, models.ServePartial, dry.Serve)
	require.Equal(t, int64(500), dry.Absorb)
	require.Equal(t, int64(0), scalar(t, st, `SELECT count(*) FROM pool_daily`), "a dry run writes nothing")

	v, err = st.DecideAndReserveFree(bg(), cfg, store.PoolRequest{Payer: payer, Key: "e1", Estimated: 300})
	require.NoError(t, err)
	require.Equal(t, models.ServeFree, v.Serve)
	require.Equal(t, models.TierElite, v.Grant.Tier)
	_, err = st.RecordGrant(bg(), "e1", 200)
	require.NoError(t, err)
	_, err = st.DecideAndReserveFree(bg(), cfg, store.PoolRequest{Payer: payer, Key: "e2", Estimated: 10})
	require.NoError(t, err)

	status, err := st.PoolStatus(bg())
	require.NoError(t, err)
	require.Equal(t, int64(290), status.Balance)
	require.Equal(t, int64(210), status.AbsorbedToday)
	require.Equal(t, int64(10), status.Reserved)
	require.Equal(t, int64(2), status.Grants)
	require.Equal(t, int64(500), status.Credited)
	require.False(t, status.Low)

	all, err := st.ListGrants(bg(), store.GrantFilter{Payer: payer})
	require.NoError(t, err)
	require.Len(t, all, 2)
	open, err := st.ListGrants(bg(), store.GrantFilter{Outcome: store.GrantReserved})
	require.NoError(t, err)
	require.Len(t, open, 1)
	require.Equal(t, "e2", open[0].RequestKey)
	_, err = st.ListGrants(bg(), store.GrantFilter{Outcome: "lost"})
	require.Equal(t, "outcome", requireValidation(t, err).Field)

	_, err = st.DecideAndReserveFree(bg(), models.PoolConfig{}, store.PoolRequest{Payer: payer, Key: "zero-cfg", Estimated: 10})
	require.Equal(t, "pool.currency", requireValidation(t, err).Field, "a zero configuration is refused")

	require.NoError(t, st.UnpinTier(bg(), payer))
	pt, err = st.PayerTier(bg(), cfg, payer)
	require.NoError(t, err)
	require.Equal(t, models.TierNew, pt.Tier)
	require.Equal(t, "payer", requireValidation(t, st.PinTier(bg(), testkit.NewTenantID(t), models.TierElite, "")).Field)
	requirePoolBalanced(t, st)
}

// TestPoolTierFromPaidHistory: a tenant's paid invoices raise its derived
// tier (established needs one paid invoice and a week).
func TestPoolTierFromPaidHistory(t *testing.T) {
	st := poolStore(t, 4, 0)
	cfg := poolCfg()
	tenant := newTenant(t, st, fixed)
	id := newInvoice(t, st, tenant, "h1", "awaiting_payment")
	_, err := st.Settle(bg(), store.PaymentReport{InvoiceID: id, Rail: store.RailManual, Reference: "h1", ReceivedAt: time.Now()})
	require.NoError(t, err)
	pt, err := st.PayerTier(bg(), cfg, tenant)
	require.NoError(t, err)
	require.Equal(t, int64(1), pt.History.PaidInvoices)
	require.Equal(t, models.TierNew, pt.Tier, "the account is younger than a week")
	st.Now = func() time.Time { return time.Now().Add(8 * 24 * time.Hour) }
	pt, err = st.PayerTier(bg(), cfg, tenant)
	require.NoError(t, err)
	require.Equal(t, models.TierEstablished, pt.Tier)
	st.Now = func() time.Time { return time.Now().Add(100 * 24 * time.Hour) }
	pt, err = st.PayerTier(bg(), cfg, tenant)
	require.NoError(t, err)
	require.Equal(t, models.TierNew, pt.Tier, "90 days without a paid invoice drop a tier")
}

// refGrant is the reference model's grant.
type refGrant struct {
	payer              int
	estimated          int64
	reserved, released int64
	absorbed           int64
	outcome            string
	serve              models.Serve
	reservedAt         time.Time
}

// refPayer is the reference model's daily row (ws zero: no row yet).
type refPayer struct {
	ws       time.Time
	absorbed int64
}

// effective is what the row counts at now.
func (p refPayer) effective(now time.Time) int64 {
	if p.ws.IsZero() || now.Sub(p.ws) >= 24*time.Hour {
		return 0
	}
	return p.absorbed
}

// TestPoolStoreMatchesModel drives random decisions, partial reserves,
// records, releases and top-ups (with the clock moving across daily
// windows) through the store and through a reference model written out
// here: the verdicts, the pool's balance and every payer's daily counter
// agree after every step, and the balance is always credits - reserved +
// released.
func TestPoolStoreMatchesModel(t *testing.T) {
	st := poolStore(t, 4, 0)
	cfg := poolCfg() // trusted: 100 a day
	const budget = 100
	rapid.Check(t, func(rt *rapid.T) {
		run := fmt.Sprintf("%d-", time.Now().UnixNano())
		payers := []models.TenantID{trustedPayer(t, st), trustedPayer(t, st), trustedPayer(t, st)}
		ref := struct {
			balance int64
			payers  []refPayer
			grants  map[string]*refGrant
			credits map[string]int64
		}{balance: poolBalance(rt, st), payers: make([]refPayer, len(payers)), grants: map[string]*refGrant{}, credits: map[string]int64{}}
		now := ts("2026-05-01T00:00:00Z")
		st.Now = func() time.Time { return now }
		defer func() { st.Now = time.Now }()
		touch := func(i int) { // the store creates the daily row when a decision reaches it
			if ref.payers[i].ws.IsZero() {
				ref.payers[i].ws = now
			}
		}
		take := func(i int, n int64) { // a debit moves the daily row, opening a new window if the last ended
			p := &ref.payers[i]
			if now.Sub(p.ws) >= 24*time.Hour {
				p.ws, p.absorbed = now, 0
			}
			p.absorbed += n
		}
		giveBack := func(g *refGrant, n int64) {
			ref.balance += n
			if p := &ref.payers[g.payer]; !p.ws.After(g.reservedAt) {
				p.absorbed = max(p.absorbed-n, 0)
			}
		}
		keys := func() []string {
			ks := make([]string, 0, len(ref.grants))
			for k := range ref.grants {
				ks = append(ks, k)
			}
			sort.Strings(ks)
			return ks
		}
		steps := rapid.IntRange(1, 30).Draw(rt, "steps")
		for i := 0; i < steps; i++ {
			now = now.Add(time.Duration(rapid.IntRange(0, 8*60).Draw(rt, "advance minutes")) * time.Minute)
			pi := rapid.IntRange(0, len(payers)-1).Draw(rt, "payer")
			op := rapid.SampledFrom([]string{"decide", "decide", "partial", "record", "release", "credit", "retry"}).Draw(rt, "op")
			switch op {
			case "credit":
				amt := rapid.Int64Range(1, 150).Draw(rt, "credit")
				key := fmt.Sprintf("%sc%d", run, i)
				_, err := st.CreditPool(bg(), key, amt, "")
				require.NoError(rt, err)
				ref.balance += amt
				ref.credits[key] = amt
			case "decide":
				est := rapid.Int64Range(0, 60).Draw(rt, "estimated")
				key := fmt.Sprintf("%sg%d", run, i)
				v, err := st.DecideAndReserveFree(bg(), cfg, store.PoolRequest{Payer: payers[pi], Key: key, Estimated: est})
				require.NoError(rt, err)
				want := models.PoolDecision{Serve: models.ServeGate, Charge: est}
				if est > 0 {
					touch(pi)
					want, err = models.Decide(models.DailyRemaining(budget, ref.payers[pi].effective(now)), ref.balance, est)
					require.NoError(rt, err)
				}
				require.Equal(rt, want, v.PoolDecision, "decide %d for payer %d", est, pi)
				if want.Serve == models.ServeFree {
					ref.balance -= est
					take(pi, est)
					ref.grants[key] = &refGrant{payer: pi, estimated: est, reserved: est, outcome: store.GrantReserved, serve: models.ServeFree, reservedAt: now}
				}
			case "partial":
				est := rapid.Int64Range(1, 60).Draw(rt, "estimated")
				absorb := rapid.Int64Range(1, est).Draw(rt, "absorb")
				key := fmt.Sprintf("%sp%d", run, i)
				r, err := st.ReservePartialGrant(bg(), cfg, store.PartialRequest{PoolRequest: store.PoolRequest{Payer: payers[pi], Key: key, Estimated: est}, Absorb: absorb})
				require.NoError(rt, err)
				touch(pi)
				got := min(absorb, models.DailyRemaining(budget, ref.payers[pi].effective(now)), ref.balance)
				require.Equal(rt, [2]int64{got, absorb - got}, [2]int64{r.Absorbed, r.Shortfall}, "partial %d of %d for payer %d", absorb, est, pi)
				g := &refGrant{payer: pi, estimated: est, reserved: got, outcome: store.GrantReserved, serve: models.ServePartial, reservedAt: now}
				if got == 0 {
					g.outcome = store.GrantUnfunded
				} else {
					ref.balance -= got
					take(pi, got)
				}
				ref.grants[key] = g
			case "record", "release", "retry":
				ks := keys()
				if len(ks) == 0 {
					continue
				}
				key := rapid.SampledFrom(ks).Draw(rt, "grant")
				g := ref.grants[key]
				switch op {
				case "retry":
					v, err := st.DecideAndReserveFree(bg(), cfg, store.PoolRequest{Payer: payers[g.payer], Key: key, Estimated: g.estimated})
					require.NoError(rt, err)
					require.True(rt, v.Replayed)
					require.Equal(rt, g.reserved, v.Absorb)
				case "record":
					actual := rapid.Int64Range(0, g.reserved).Draw(rt, "actual")
					_, err := st.RecordGrant(bg(), key, actual)
					switch {
					case g.outcome == store.GrantReserved:
						require.NoError(rt, err)
						g.outcome, g.absorbed, g.released = store.GrantRecorded, actual, g.reserved-actual
						giveBack(g, g.reserved-actual)
					case g.outcome == store.GrantRecorded && g.absorbed == actual, g.outcome == store.GrantUnfunded && actual == 0:
						require.NoError(rt, err)
					default:
						requireValidation(rt, err)
					}
				case "release":
					_, err := st.ReleaseReservation(bg(), key, "model")
					require.NoError(rt, err)
					if g.outcome == store.GrantReserved {
						g.outcome, g.released = store.GrantReleased, g.reserved
						giveBack(g, g.reserved)
					}
				}
			}
			require.Equal(rt, ref.balance, poolBalance(rt, st), "balance after %s", op)
			for i, p := range payers {
				pt, err := st.PayerTier(bg(), cfg, p)
				require.NoError(rt, err)
				require.Equal(rt, ref.payers[i].effective(now), pt.AbsorbedToday, "payer %d's daily counter after %s", i, op)
			}
		}
		for key, g := range ref.grants {
			sg, err := st.GetGrant(bg(), key)
			require.NoError(rt, err)
			require.Equal(rt, [3]int64{g.reserved, g.absorbed, g.released}, [3]int64{sg.Reserved, sg.Absorbed, sg.Released}, "grant %s", key)
			require.Equal(rt, g.outcome, sg.Outcome, "grant %s", key)
			require.Equal(rt, g.serve, sg.Serve, "grant %s", key)
		}
		requirePoolBalanced(rt, st)
	})
}

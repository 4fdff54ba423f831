//go:build integration

package store_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/billflow/billflow/internal/testkit"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/store"
)

// wideStore is a store on a fresh database whose pool lets conns writers
// hold a connection at once (the default pool has max(4, CPUs)), so that
// concurrent writers really are concurrent in Postgres.
func wideStore(t testing.TB, conns int) *store.Store {
	t.Helper()
	u, err := url.Parse(testkit.NewDatabase(t))
	require.NoError(t, err)
	q := u.Query()
	q.Set("pool_max_conns", fmt.Sprint(conns))
	u.RawQuery = q.Encode()
	st, err := store.Open(context.Background(), u.String())
	require.NoError(t, err)
	t.Cleanup(st.Close)
	return st
}

// walletRow reads a wallet's totals straight from SQL.
func walletRow(t tb, st *store.Store, tenant models.TenantID) models.WalletTotals {
	t.Helper()
	var w models.WalletTotals
	require.NoError(t, st.Pool().QueryRow(bg(), `SELECT deposits, grants, promised, settled, settled_from_grants, withdrawn, expired
		FROM wallets WHERE tenant_id = $1`, tenant).Scan(&w.Deposits, &w.Grants, &w.Promised, &w.Settled, &w.SettledFromGrants, &w.Withdrawn, &w.Expired))
	return w
}

// ledgerSum recomputes a total from the ledger rows.
func ledgerSum(t tb, st *store.Store, tenant models.TenantID, kind string) int64 {
	t.Helper()
	return scalar(t, st, `SELECT coalesce(sum(amount), 0) FROM wallet_entries WHERE tenant_id = $1 AND kind = $2`, tenant, kind)
}

// requireLedgerMatchesTotals checks the running totals against the ledger of record.
func requireLedgerMatchesTotals(t tb, st *store.Store, tenant models.TenantID) {
	t.Helper()
	w := walletRow(t, st, tenant)
	assert.Equal(t, ledgerSum(t, st, tenant, "deposit"), w.Deposits, "deposits")
	assert.Equal(t, ledgerSum(t, st, tenant, "grant"), w.Grants, "grants")
	assert.Equal(t, ledgerSum(t, st, tenant, "promise"), w.Promised, "promised")
	assert.Equal(t, ledgerSum(t, st, tenant, "settle"), w.Settled, "settled")
	assert.Equal(t, ledgerSum(t, st, tenant, "withdraw")-ledgerSum(t, st, tenant, "withdraw_return"), w.Withdrawn, "withdrawn")
	assert.Equal(t, ledgerSum(t, st, tenant, "expire"), w.Expired, "expired")
	assert.Equal(t, scalar(t, st, `SELECT coalesce(sum(from_grants), 0) FROM wallet_entries WHERE tenant_id = $1`, tenant), w.SettledFromGrants, "settled from grants")
	assert.Equal(t, w.SettledFromGrants, scalar(t, st, `SELECT coalesce(sum(used), 0) FROM wallet_grants WHERE tenant_id = $1`, tenant), "grants used")
	assert.Equal(t, w.Expired, scalar(t, st, `SELECT coalesce(sum(expired), 0) FROM wallet_grants WHERE tenant_id = $1`, tenant), "grants expired")
	require.NoError(t, w.Check())
}

func TestWalletEveryKeyIsIdempotent(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)
	exp := at(3600)
	type step struct {
		name     string
		write    func(amount int64) (store.WalletResult, error)
		amount   int64
		conflict int64 // a different amount under the same key
	}
	w := func(key string, amount int64) store.WalletWrite {
		return store.WalletWrite{TenantID: tenant, Key: key, Amount: amount, At: at(0)}
	}
	steps := []step{
		{"deposit", func(a int64) (store.WalletResult, error) { return st.Deposit(bg(), w("stripe:pi_1", a)) }, 1000, 999},
		{"grant", func(a int64) (store.WalletResult, error) {
			g := w("promo-1", a)
			g.ExpiresAt = &exp
			return st.Grant(bg(), g)
		}, 300, 301},
		{"promise", func(a int64) (store.WalletResult, error) { return st.Promise(bg(), w("receipt-1", a)) }, 400, 401},
		{"settle", func(a int64) (store.WalletResult, error) { return st.SettlePromises(bg(), w("settlement-1", a)) }, 350, 349},
		{"withdraw", func(a int64) (store.WalletResult, error) { return st.Withdraw(bg(), w("withdrawal-1", a)) }, 100, 101},
	}
	for _, s := range steps {
		first, err := s.write(s.amount)
		require.NoError(t, err, s.name)
		require.False(t, first.Duplicate, s.name)
		before := walletRow(t, st, tenant)
		again, err := s.write(s.amount)
		require.NoError(t, err, s.name+" retry")
		assert.True(t, again.Duplicate, s.name+" retry is a duplicate")
		assert.Equal(t, first.Entry, again.Entry, s.name+" retry returns the first entry")
		assert.Equal(t, before, walletRow(t, st, tenant), s.name+" retry changed the totals")
		_, err = s.write(s.conflict)
		ve := requireValidation(t, err)
		assert.Contains(t, ve.Field, first.Entry.Key, s.name+" conflict names the key")
		assert.Equal(t, before, walletRow(t, st, tenant), s.name+" conflict changed the totals")
	}
	// A grant's expiry is part of its content.
	later := at(7200)
	_, err := st.Grant(bg(), store.WalletWrite{TenantID: tenant, Key: "promo-1", Amount: 300, ExpiresAt: &later, At: at(0)})
	requireValidation(t, err)

	// Expire is keyed by the grant: a second expiry returns the first.
	first, err := st.ExpireGrant(bg(), tenant, "promo-1", exp)
	require.NoError(t, err)
	again, err := st.ExpireGrant(bg(), tenant, "promo-1", exp.Add(time.Hour))
	require.NoError(t, err)
	assert.True(t, again.Duplicate)
	assert.Equal(t, first.Entry, again.Entry)
	assert.Equal(t, int64(6), scalar(t, st, `SELECT count(*) FROM wallet_entries WHERE tenant_id = $1`, tenant))
	requireLedgerMatchesTotals(t, st, tenant)

	// The same key for another kind or another tenant is another entry.
	_, err = st.Promise(bg(), w("stripe:pi_1", 10))
	require.NoError(t, err)
	other := newTenant(t, st, fixed)
	_, err = st.Deposit(bg(), store.WalletWrite{TenantID: other, Key: "stripe:pi_1", Amount: 5})
	require.NoError(t, err)
}

func TestWalletStateAndGrantFirstSettlement(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)
	early, late := at(1000), at(2000)
	_, err := st.Deposit(bg(), store.WalletWrite{TenantID: tenant, Key: "d1", Amount: 1000, At: at(0)})
	require.NoError(t, err)
	for _, g := range []struct {
		key string
		exp *time.Time
	}{{"forever", nil}, {"late", &late}, {"early", &early}} {
		_, err := st.Grant(bg(), store.WalletWrite{TenantID: tenant, Key: g.key, Amount: 100, ExpiresAt: g.exp, At: at(0)})
		require.NoError(t, err)
	}
	_, err = st.Promise(bg(), store.WalletWrite{TenantID: tenant, Key: "r1", Amount: 450})
	require.NoError(t, err)
	res, err := st.SettlePromises(bg(), store.WalletWrite{TenantID: tenant, Key: "s1", Amount: 250})
	require.NoError(t, err)
	assert.Equal(t, int64(250), res.Entry.FromGrants)
	grants, err := st.WalletGrants(bg(), tenant)
	require.NoError(t, err)
	used := map[string]int64{}
	for _, g := range grants {
		used[g.Key] = g.Used
	}
	assert.Equal(t, map[string]int64{"early": 100, "late": 100, "forever": 50}, used, "earliest expiry first, never-expiring last")
	res, err = st.SettlePromises(bg(), store.WalletWrite{TenantID: tenant, Key: "s2", Amount: 200})
	require.NoError(t, err)
	assert.Equal(t, int64(50), res.Entry.FromGrants, "the last 50 of grants, then deposits")

	state, err := st.WalletState(bg(), tenant)
	require.NoError(t, err)
	// funds = 1000 + 300 - 450 = 850, unsettled 0; grants used up, so all
	// 850 left of deposits is withdrawable.
	assert.Equal(t, int64(850), state.Funds)
	assert.Equal(t, int64(0), state.Unsettled)
	assert.Equal(t, int64(850), state.Spendable)
	assert.Equal(t, int64(850), state.Withdrawable)
	assert.Empty(t, state.Violation)
	assert.Equal(t, models.Currency("usd"), state.Currency)
	requireLedgerMatchesTotals(t, st, tenant)

	_, err = st.SettlePromises(bg(), store.WalletWrite{TenantID: tenant, Key: "s3", Amount: 1})
	ve := requireValidation(t, err)
	assert.Contains(t, ve.Reason, "above the unsettled 0")
}

func TestWalletErrorsNameWhatWasWrong(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)
	missing := testkit.NewTenantID(t)

	_, err := st.Deposit(bg(), store.WalletWrite{TenantID: missing, Key: "k", Amount: 1})
	assert.Contains(t, requireValidation(t, err).Reason, "does not exist")
	_, err = st.WalletState(bg(), missing)
	assert.Contains(t, requireValidation(t, err).Reason, "does not exist")
	_, err = st.Promise(bg(), store.WalletWrite{TenantID: tenant, Key: "k", Amount: 0})
	assert.Contains(t, requireValidation(t, err).Reason, "not positive")
	_, err = st.Deposit(bg(), store.WalletWrite{TenantID: tenant, Key: "k", Amount: 10, Currency: "eur"})
	assert.Contains(t, requireValidation(t, err).Reason, "does not match the wallet's currency usd")
	past := at(-1)
	_, err = st.Grant(bg(), store.WalletWrite{TenantID: tenant, Key: "g", Amount: 10, ExpiresAt: &past, At: at(0)})
	assert.Contains(t, requireValidation(t, err).Reason, "in the past")
	_, err = st.Deposit(bg(), store.WalletWrite{TenantID: tenant, Key: "", Amount: 10})
	assert.Equal(t, "deposit.key", requireValidation(t, err).Field)

	// Grants are spendable but not withdrawable.
	_, err = st.Grant(bg(), store.WalletWrite{TenantID: tenant, Key: "g", Amount: 500})
	require.NoError(t, err)
	_, err = st.Deposit(bg(), store.WalletWrite{TenantID: tenant, Key: "d", Amount: 100})
	require.NoError(t, err)
	_, err = st.Withdraw(bg(), store.WalletWrite{TenantID: tenant, Key: "w", Amount: 101})
	var ne *store.NotEnoughError
	require.ErrorAs(t, err, &ne)
	assert.Equal(t, store.NotEnoughError{Of: "withdrawable", Wanted: 101, Available: 100}, *ne)
	_, err = st.Promise(bg(), store.WalletWrite{TenantID: tenant, Key: "r", Amount: 601})
	require.ErrorIs(t, err, store.ErrNotEnough)
	require.ErrorAs(t, err, &ne)
	assert.Equal(t, store.NotEnoughError{Of: "spendable", Wanted: 601, Available: 600}, *ne)
	// What promises hold cannot be withdrawn: 550 promised of 600 leaves 50.
	_, err = st.Promise(bg(), store.WalletWrite{TenantID: tenant, Key: "r", Amount: 550})
	require.NoError(t, err)
	_, err = st.Withdraw(bg(), store.WalletWrite{TenantID: tenant, Key: "w", Amount: 51})
	require.ErrorAs(t, err, &ne)
	assert.Equal(t, int64(50), ne.Available)
	assert.Equal(t, int64(0), scalar(t, st, `SELECT count(*) FROM wallet_entries WHERE tenant_id = $1 AND kind = 'withdraw'`, tenant))
	requireLedgerMatchesTotals(t, st, tenant)

	// An overflowing total is refused whole.
	big := store.WalletWrite{TenantID: tenant, Key: "huge", Amount: 1 << 62}
	_, err = st.Deposit(bg(), big)
	require.NoError(t, err)
	big.Key = "huge2"
	_, err = st.Deposit(bg(), big)
	assert.Contains(t, requireValidation(t, err).Reason, "overflow")
	requireLedgerMatchesTotals(t, st, tenant)

	_, err = st.LedgerPage(bg(), missing, 0, 10)
	assert.Contains(t, requireValidation(t, err).Reason, "does not exist")
	_, err = st.LedgerPage(bg(), tenant, 0, 501)
	assert.Equal(t, "limit", requireValidation(t, err).Field)
}

// TestWalletConcurrentPromisesNeverOverspend: 32 writers promise at once
// against a balance that covers about a third of them.
func TestWalletConcurrentPromisesNeverOverspend(t *testing.T) {
	st := wideStore(t, 34)
	tenant := testkit.NewTenantID(t)
	_, _, err := st.EnsureTenant(bg(), tenant, "usd", 600)
	require.NoError(t, err)
	const balance = 1000
	_, err = st.Deposit(bg(), store.WalletWrite{TenantID: tenant, Key: "d", Amount: 600})
	require.NoError(t, err)
	_, err = st.Grant(bg(), store.WalletWrite{TenantID: tenant, Key: "g", Amount: 400})
	require.NoError(t, err)

	var accepted, refused atomic.Int64
	var sum atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, 32)
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			amount := int64(60 + (i*37)%90) // 60..149
			<-start
			_, err := st.Promise(bg(), store.WalletWrite{TenantID: tenant, Key: fmt.Sprintf("receipt-%d", i), Amount: amount})
			switch {
			case err == nil:
				accepted.Add(1)
				sum.Add(amount)
			case errors.Is(err, store.ErrNotEnough):
				refused.Add(1)
			default:
				errs <- err
			}
		}(i)
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	t.Logf("32 concurrent promises: %d accepted (sum %d), %d refused", accepted.Load(), sum.Load(), refused.Load())
	assert.Equal(t, int64(32), accepted.Load()+refused.Load())
	assert.Greater(t, accepted.Load(), int64(0))
	assert.Greater(t, refused.Load(), int64(0), "the balance covers only some of the promises")
	assert.LessOrEqual(t, sum.Load(), int64(balance))
	state, err := st.WalletState(bg(), tenant)
	require.NoError(t, err)
	assert.Equal(t, balance-sum.Load(), state.Spendable)
	assert.Equal(t, accepted.Load(), scalar(t, st, `SELECT count(*) FROM wallet_entries WHERE tenant_id = $1 AND kind = 'promise'`, tenant))
	// Refused only when the rest could not fit: the smallest amount is 60.
	assert.Less(t, state.Spendable, int64(150))
	requireLedgerMatchesTotals(t, st, tenant)
}

// TestWalletConcurrentRetriesWriteOnce: 16 writers send the same write at
// once, for promise, settle and expire; each is written once and every
// writer gets the first outcome.
func TestWalletConcurrentRetriesWriteOnce(t *testing.T) {
	st := wideStore(t, 18)
	tenant := testkit.NewTenantID(t)
	_, _, err := st.EnsureTenant(bg(), tenant, "usd", 600)
	require.NoError(t, err)
	exp := at(60)
	_, err = st.Deposit(bg(), store.WalletWrite{TenantID: tenant, Key: "d", Amount: 100, At: at(0)})
	require.NoError(t, err)
	_, err = st.Grant(bg(), store.WalletWrite{TenantID: tenant, Key: "g", Amount: 50, ExpiresAt: &exp, At: at(0)})
	require.NoError(t, err)
	same := func(write func() (store.WalletResult, error)) {
		t.Helper()
		var wg sync.WaitGroup
		var firsts atomic.Int64
		seqs := make(chan int64, 16)
		start := make(chan struct{})
		for i := 0; i < 16; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				res, err := write()
				assert.NoError(t, err)
				if err == nil && !res.Duplicate {
					firsts.Add(1)
				}
				seqs <- res.Entry.Seq
			}()
		}
		close(start)
		wg.Wait()
		close(seqs)
		assert.Equal(t, int64(1), firsts.Load())
		var first int64
		for seq := range seqs {
			if first == 0 {
				first = seq
			}
			assert.Equal(t, first, seq, "every writer gets the first entry")
		}
	}
	same(func() (store.WalletResult, error) {
		return st.Promise(bg(), store.WalletWrite{TenantID: tenant, Key: "same", Amount: 70})
	})
	same(func() (store.WalletResult, error) {
		return st.SettlePromises(bg(), store.WalletWrite{TenantID: tenant, Key: "same", Amount: 70})
	})
	same(func() (store.WalletResult, error) { return st.ExpireGrant(bg(), tenant, "g", exp) })
	w := walletRow(t, st, tenant)
	assert.Equal(t, models.WalletTotals{Deposits: 100, Grants: 50, Promised: 70, Settled: 70, SettledFromGrants: 50}, w)
	assert.Equal(t, int64(5), scalar(t, st, `SELECT count(*) FROM wallet_entries WHERE tenant_id = $1`, tenant))
	requireLedgerMatchesTotals(t, st, tenant)
}

func TestWalletDatabaseRefusesNegativeSpendable(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)
	_, err := st.Deposit(bg(), store.WalletWrite{TenantID: tenant, Key: "d", Amount: 100})
	require.NoError(t, err)
	_, err = st.Promise(bg(), store.WalletWrite{TenantID: tenant, Key: "r", Amount: 80})
	require.NoError(t, err)

	// Raw writes that skip the store's conditions still cannot overspend.
	_, err = st.Pool().Exec(bg(), `UPDATE wallets SET promised = promised + 21 WHERE tenant_id = $1`, tenant)
	assert.Equal(t, "wallets_spendable_not_negative", requirePgCode(t, err, "23514").ConstraintName)
	_, err = st.Pool().Exec(bg(), `UPDATE wallets SET withdrawn = 21 WHERE tenant_id = $1`, tenant)
	requirePgCode(t, err, "23514")
	_, err = st.Pool().Exec(bg(), `UPDATE wallets SET settled = 81 WHERE tenant_id = $1`, tenant)
	requirePgCode(t, err, "23514")
	// Exactly at zero is allowed.
	_, err = st.Pool().Exec(bg(), `UPDATE wallets SET promised = 100 WHERE tenant_id = $1`, tenant)
	require.NoError(t, err)
	_, err = st.Pool().Exec(bg(), `UPDATE wallets SET promised = 80 WHERE tenant_id = $1`, tenant)
	require.NoError(t, err)

	// The ledger is append-only.
	_, err = st.Pool().Exec(bg(), `UPDATE wallet_entries SET amount = 1 WHERE tenant_id = $1`, tenant)
	requirePgCode(t, err, "23000")
	_, err = st.Pool().Exec(bg(), `DELETE FROM wallet_entries WHERE tenant_id = $1`, tenant)
	requirePgCode(t, err, "23000")
	requireLedgerMatchesTotals(t, st, tenant)
}

// A grant above the plan bound is refused with the field named; before, two
// grants near the int64 limit overflowed the wallet's sum inside Postgres.
func TestWalletGrantAboveLimitRefused(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)
	huge := int64(math.MaxInt64 / 2)
	for i, key := range []string{"g1", "g2"} {
		_, err := st.Grant(bg(), store.WalletWrite{TenantID: tenant, Key: key, Amount: huge, At: at(i)})
		v := requireValidation(t, err)
		assert.Equal(t, "grant "+key, v.Field)
		assert.Contains(t, v.Reason, "above the limit")
	}
	res, err := st.Grant(bg(), store.WalletWrite{TenantID: tenant, Key: "max", Amount: models.MaxPlanAmount, At: at(5)})
	require.NoError(t, err)
	assert.Equal(t, models.MaxPlanAmount, res.Wallet.Spendable)
}

func TestWalletGrantExpiry(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)
	exp := at(3600)
	_, err := st.Deposit(bg(), store.WalletWrite{TenantID: tenant, Key: "d", Amount: 100, At: at(0)})
	require.NoError(t, err)
	_, err = st.Grant(bg(), store.WalletWrite{TenantID: tenant, Key: "welcome", Amount: 300, ExpiresAt: &exp, At: at(0)})
	require.NoError(t, err)
	_, err = st.Grant(bg(), store.WalletWrite{TenantID: tenant, Key: "forever", Amount: 50, At: at(0)})
	require.NoError(t, err)
	_, err = st.Promise(bg(), store.WalletWrite{TenantID: tenant, Key: "r1", Amount: 120, At: at(10)})
	require.NoError(t, err)

	_, err = st.ExpireGrant(bg(), tenant, "welcome", at(3599))
	assert.Contains(t, requireValidation(t, err).Reason, "expires at")
	_, err = st.ExpireGrant(bg(), tenant, "forever", exp)
	assert.Contains(t, requireValidation(t, err).Reason, "never expires")
	_, err = st.ExpireGrant(bg(), tenant, "nope", exp)
	assert.Contains(t, requireValidation(t, err).Reason, "no such grant")

	due, err := st.DueGrants(bg(), exp)
	require.NoError(t, err)
	assert.Equal(t, []store.DueGrant{{TenantID: tenant, Key: "welcome"}}, due)

	// The unsettled 120 holds 120 of the expiring grant (grants first): 180 expires.
	res, err := st.ExpireGrant(bg(), tenant, "welcome", exp)
	require.NoError(t, err)
	assert.Equal(t, int64(180), res.Entry.Amount)
	assert.Equal(t, models.EntryExpire, res.Entry.Kind)
	assert.Equal(t, int64(150), res.Wallet.Spendable, "100 deposited + 50 forever + 120 held - 120 promised")
	due, err = st.DueGrants(bg(), exp.Add(time.Hour))
	require.NoError(t, err)
	assert.Empty(t, due)

	// Settling the promise takes the held 120 of the expired grant first.
	res, err = st.SettlePromises(bg(), store.WalletWrite{TenantID: tenant, Key: "s1", Amount: 120, At: exp.Add(time.Minute)})
	require.NoError(t, err)
	assert.Equal(t, int64(120), res.Entry.FromGrants)
	grants, err := st.WalletGrants(bg(), tenant)
	require.NoError(t, err)
	require.Len(t, grants, 2)
	assert.Equal(t, models.WalletGrant{Key: "welcome", Amount: 300, ExpiresAt: &exp, Used: 120, Expired: 180, ExpiredDone: true, Seq: grants[0].Seq}, grants[0])
	assert.Equal(t, int64(0), grants[0].Remaining())
	requireLedgerMatchesTotals(t, st, tenant)
}

func TestWalletLedgerPage(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)
	for i := 0; i < 7; i++ {
		_, err := st.Deposit(bg(), store.WalletWrite{TenantID: tenant, Key: fmt.Sprintf("d%d", i), Amount: int64(i + 1), At: at(i)})
		require.NoError(t, err)
	}
	var keys []string
	var before int64
	pages := 0
	for {
		page, err := st.LedgerPage(bg(), tenant, before, 3)
		require.NoError(t, err)
		pages++
		for _, e := range page.Entries {
			keys = append(keys, e.Key)
		}
		if page.Next == 0 {
			break
		}
		before = page.Next
		// An entry appended meanwhile does not shift the pages.
		if pages == 1 {
			_, err := st.Deposit(bg(), store.WalletWrite{TenantID: tenant, Key: "late", Amount: 1})
			require.NoError(t, err)
		}
	}
	assert.Equal(t, 3, pages)
	assert.Equal(t, "d6 d5 d4 d3 d2 d1 d0", strings.Join(keys, " "))
	empty, err := st.LedgerPage(bg(), newTenant(t, st, fixed), 0, 0)
	require.NoError(t, err)
	assert.Empty(t, empty.Entries)
}

func TestTopUpPaidDepositsOnceAcrossRails(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)
	inv, err := st.CreateTopUp(bg(), store.TopUpParams{TenantID: tenant, Key: "t1", Amount: 500, At: at(0)})
	require.NoError(t, err)
	again, err := st.CreateTopUp(bg(), store.TopUpParams{TenantID: tenant, Key: "t1", Amount: 500, At: at(5)})
	require.NoError(t, err)
	assert.Equal(t, inv.ID, again.ID, "a retried top-up request returns its invoice")
	_, err = st.CreateTopUp(bg(), store.TopUpParams{TenantID: tenant, Key: "t1", Amount: 501})
	requireValidation(t, err)
	_, err = st.CreateTopUp(bg(), store.TopUpParams{TenantID: tenant, Key: "t2", Amount: 500, Currency: "eur"})
	requireValidation(t, err)
	kind, err := st.InvoiceKind(bg(), inv.ID)
	require.NoError(t, err)
	assert.Equal(t, store.InvoiceKindTopUp, kind)
	_, items, err := st.GetInvoice(bg(), inv.ID)
	require.NoError(t, err)
	require.Len(t, items, 1)
	assert.Equal(t, int64(500), items[0].Amount)

	hash := strings.Repeat("ab", 32)
	res, err := st.Settle(bg(), store.PaymentReport{InvoiceID: inv.ID, Rail: store.RailNWC, Reference: hash, ReceivedAt: at(60)})
	require.NoError(t, err)
	assert.Equal(t, store.SettledApplied, res.Outcome)
	// The settlement stream reports the same Lightning payment.
	res, err = st.Settle(bg(), store.PaymentReport{InvoiceID: inv.ID, Rail: store.RailLightning, Reference: strings.ToUpper(hash), ReceivedAt: at(61)})
	require.NoError(t, err)
	assert.Equal(t, store.SettledDuplicate, res.Outcome)

	assert.Equal(t, int64(1), scalar(t, st, `SELECT count(*) FROM wallet_entries WHERE tenant_id = $1 AND kind = 'deposit'`, tenant))
	assert.Equal(t, int64(1), scalar(t, st, `SELECT count(*) FROM wallet_entries WHERE kind = 'deposit' AND source_key = $1 AND invoice_id = $2 AND amount = 500`,
		"lightning:"+hash, inv.ID))
	assert.Equal(t, int64(0), scalar(t, st, `SELECT count(*) FROM entitlements WHERE invoice_id = $1`, inv.ID), "a top-up is no subscription")
	state, err := st.WalletState(bg(), tenant)
	require.NoError(t, err)
	assert.Equal(t, int64(500), state.Spendable)
	requireLedgerMatchesTotals(t, st, tenant)

	// Money after it is paid is an overpayment to refund, not a second deposit.
	res, err = st.Settle(bg(), store.PaymentReport{InvoiceID: inv.ID, Rail: store.RailStripe, Reference: "pi_again", Amount: 500, ReceivedAt: at(62)})
	require.NoError(t, err)
	assert.Equal(t, store.SettledOverpayment, res.Outcome)
	assert.Equal(t, int64(500), walletRow(t, st, tenant).Deposits)
}

func TestTopUpPartialAndOverpaid(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)
	inv, err := st.CreateTopUp(bg(), store.TopUpParams{TenantID: tenant, Key: "t1", Amount: 500, At: at(0)})
	require.NoError(t, err)
	res, err := st.Settle(bg(), store.PaymentReport{InvoiceID: inv.ID, Rail: store.RailStripe, Reference: "pi_a", Amount: 200, ReceivedAt: at(1)})
	require.NoError(t, err)
	assert.Equal(t, store.SettledPartial, res.Outcome)
	assert.Equal(t, int64(0), walletRow(t, st, tenant).Deposits, "nothing deposited until the top-up is paid")
	res, err = st.Settle(bg(), store.PaymentReport{InvoiceID: inv.ID, Rail: store.RailStripe, Reference: "pi_b", Amount: 400, ReceivedAt: at(2)})
	require.NoError(t, err)
	assert.Equal(t, store.SettledApplied, res.Outcome)
	assert.Equal(t, int64(100), res.Payment.RefundAmount)
	// The invoice's total is deposited, keyed by the payment that paid it; the 100 over is owed back.
	assert.Equal(t, int64(1), scalar(t, st, `SELECT count(*) FROM wallet_entries WHERE source_key = 'stripe:pi_b' AND amount = 500`))
	assert.Equal(t, int64(500), walletRow(t, st, tenant).Deposits)
	requireLedgerMatchesTotals(t, st, tenant)
}

func TestSubscriptionInvoiceNeverDeposits(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)
	record(t, st, tenant, created("a1", "r1", "basic", at(0)))
	id := seedInvoice(t, st, tenant, store.InvoiceOpen)
	kind, err := st.InvoiceKind(bg(), id)
	require.NoError(t, err)
	assert.Equal(t, store.InvoiceKindSubscription, kind)
	res, err := st.Settle(bg(), store.PaymentReport{InvoiceID: id, Rail: store.RailManual, Reference: "cash", ReceivedAt: at(5)})
	require.NoError(t, err)
	assert.Equal(t, store.SettledApplied, res.Outcome)
	assert.Equal(t, int64(0), scalar(t, st, `SELECT count(*) FROM wallet_entries`))
	assert.Equal(t, int64(0), scalar(t, st, `SELECT count(*) FROM wallets`))
	assert.Equal(t, int64(1), scalar(t, st, `SELECT count(*) FROM entitlements WHERE invoice_id = $1`, id))
}

// TestWalletStoreMatchesModel drives random writes through the store and
// through models.Wallet (the reference arithmetic) side by side: the same
// writes are accepted or refused, and the totals, grants and expired
// amounts agree after every step.
func TestWalletStoreMatchesModel(t *testing.T) {
	st := testkit.NewStore(t)
	rapid.Check(t, func(rt *rapid.T) {
		tenant := testkit.NewTenantID(t)
		_, _, err := st.EnsureTenant(bg(), tenant, "usd", 600)
		require.NoError(rt, err)
		_, created, err := st.EnsureWallet(bg(), tenant)
		require.NoError(rt, err)
		require.True(rt, created)
		var ref models.Wallet
		now := at(0)
		steps := rapid.IntRange(1, 25).Draw(rt, "steps")
		for i := 0; i < steps; i++ {
			now = now.Add(time.Duration(rapid.IntRange(0, 90).Draw(rt, "advance")) * time.Minute)
			amount := rapid.Int64Range(1, 400).Draw(rt, "amount")
			key := fmt.Sprintf("k%d", i)
			w := store.WalletWrite{TenantID: tenant, Key: key, Amount: amount, At: now}
			var refErr, stErr error
			kind := rapid.SampledFrom([]string{"deposit", "grant", "promise", "settle", "withdraw", "expire"}).Draw(rt, "kind")
			switch kind {
			case "deposit":
				refErr = ref.Deposit(amount)
				_, stErr = st.Deposit(bg(), w)
			case "grant":
				if rapid.Bool().Draw(rt, "expires") {
					exp := now.Add(time.Duration(rapid.IntRange(1, 240).Draw(rt, "ttl")) * time.Minute)
					w.ExpiresAt = &exp
				}
				refErr = ref.Grant(key, amount, w.ExpiresAt, now)
				_, stErr = st.Grant(bg(), w)
			case "promise":
				refErr = ref.Promise(amount)
				_, stErr = st.Promise(bg(), w)
			case "settle":
				_, _, refErr = ref.Settle(amount)
				_, stErr = st.SettlePromises(bg(), w)
			case "withdraw":
				refErr = ref.Withdraw(amount)
				_, stErr = st.Withdraw(bg(), w)
			case "expire":
				if len(ref.Grants) == 0 {
					continue
				}
				g := ref.Grants[rapid.IntRange(0, len(ref.Grants)-1).Draw(rt, "grant")]
				var want int64
				want, refErr = ref.Expire(g.Key, now)
				var res store.WalletResult
				res, stErr = st.ExpireGrant(bg(), tenant, g.Key, now)
				if g.ExpiredDone {
					// The model refuses a second expiry; the store answers it with the first.
					require.Error(rt, refErr)
					require.NoError(rt, stErr)
					require.True(rt, res.Duplicate)
					continue
				}
				if refErr == nil && stErr == nil {
					require.Equal(rt, want, res.Entry.Amount, "expired amount of %s", g.Key)
				}
			}
			require.Equal(rt, refErr == nil, stErr == nil, "%s %d: model %v, store %v", kind, amount, refErr, stErr)
			if refErr != nil {
				require.Equal(rt, errors.Is(refErr, models.ErrNotEnough), errors.Is(stErr, store.ErrNotEnough), "%s: model %v, store %v", kind, refErr, stErr)
			}
			require.Equal(rt, ref.Totals, walletRow(rt, st, tenant), "after %s %d", kind, amount)
			grants, err := st.WalletGrants(bg(), tenant)
			require.NoError(rt, err)
			byKey := map[string]models.WalletGrant{}
			for _, g := range grants {
				byKey[g.Key] = g
			}
			for _, g := range ref.Grants {
				got := byKey[g.Key]
				require.Equal(rt, [3]int64{g.Used, g.Expired, g.Amount}, [3]int64{got.Used, got.Expired, got.Amount}, "grant %s", g.Key)
			}
		}
		requireLedgerMatchesTotals(rt, st, tenant)
	})
}

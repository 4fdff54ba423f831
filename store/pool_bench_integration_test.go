//go:build integration

package store_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/billflow/billflow/internal/poolbench"
	"github.com/billflow/billflow/internal/testkit"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/store"
)

// BenchmarkConcurrentPoolDebits compares pool debits per second with 32
// concurrent clients against one pool row in the shared Postgres, in the
// same run: billflow's one conditional UPDATE (store.PoolDebitSQL) and the
// seed's read-then-write transaction (SELECT ... FOR UPDATE, then UPDATE).
// Each pattern makes b.N debits, in rounds that alternate which goes first.
// It reports both rates and their ratio; it asserts nothing about time,
// only that every debit landed.
//
//	BILLFLOW_TEST_DATABASE_URL=... go test -tags integration -run '^$' -bench ConcurrentPoolDebits -benchtime 4000x ./store/
func BenchmarkConcurrentPoolDebits(b *testing.B) {
	const clients = 32
	st := wideStore(b, clients+2)
	if _, err := st.ConfigurePool(bg(), models.DefaultPoolConfig()); err != nil {
		b.Fatal(err)
	}
	funded := 2*int64(b.N) + 1
	if _, err := st.CreditPool(bg(), "bench", funded, ""); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	c, err := poolbench.Compare(bg(), st.Pool(), clients, int64(b.N), 4)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(c.AtomicPerSecond(), "atomic-debits/s")
	b.ReportMetric(c.LockedPerSecond(), "for-update-debits/s")
	b.ReportMetric(c.Ratio(), "ratio")
	if got := scalar(b, st, `SELECT balance FROM pool`); got != 1 {
		b.Fatalf("after 2 x %d debits of 1 the pool holds %d, want 1", b.N, got)
	}
}

// BenchmarkConcurrentPoolDecisions measures whole free decisions per second
// (DecideAndReserveFree: the payer's tier from its paid history, its daily
// row locked, the pool's conditional debit, the daily counter and the
// grant's audit row, in one transaction) with 32 concurrent payers. It
// reports decisions/s and asserts only that every decision was free and
// the pool holds the rest.
//
//	BILLFLOW_TEST_DATABASE_URL=... go test -tags integration -run '^$' -bench ConcurrentPoolDecisions -benchtime 4000x ./store/
func BenchmarkConcurrentPoolDecisions(b *testing.B) {
	const clients = 32
	st := wideStore(b, clients+2)
	cfg := models.DefaultPoolConfig()
	cfg.Tiers[models.TierElite] = models.TierRule{DailyBudget: models.MaxPlanAmount, PaidInvoices: 12, MinAge: 180 * 24 * time.Hour}
	if _, err := st.ConfigurePool(bg(), cfg); err != nil {
		b.Fatal(err)
	}
	if _, err := st.CreditPool(bg(), "bench", int64(b.N)+1, ""); err != nil {
		b.Fatal(err)
	}
	payers := make([]models.TenantID, clients)
	for i := range payers {
		payers[i] = testkit.NewTenantID(b)
		if _, _, err := st.EnsureTenant(bg(), payers[i], "usd", 600); err != nil {
			b.Fatal(err)
		}
		if err := st.PinTier(bg(), payers[i], models.TierElite, "bench"); err != nil {
			b.Fatal(err)
		}
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	b.ResetTimer()
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				v, err := st.DecideAndReserveFree(bg(), cfg, store.PoolRequest{Payer: payers[w], Key: fmt.Sprintf("d-%d", i), Estimated: 1})
				if err == nil && v.Serve != models.ServeFree {
					err = fmt.Errorf("decision %d: %s (%s)", i, v.Serve, v.Reason)
				}
				if err != nil {
					select {
					case errs <- err:
					default:
					}
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
	if got := scalar(b, st, `SELECT balance FROM pool`); got != 1 {
		b.Fatalf("after %d free decisions of 1 the pool holds %d, want 1", b.N, got)
	}
}

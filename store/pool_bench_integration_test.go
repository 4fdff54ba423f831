//go:build integration

package store_test

import (
	"testing"

	"github.com/billflow/billflow/internal/poolbench"
	"github.com/billflow/billflow/models"
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

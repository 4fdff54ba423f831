//go:build integration

package store_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/billflow/billflow/internal/testkit"
	"github.com/billflow/billflow/store"
)

// BenchmarkConcurrentPromiseDebits measures promise debits per second with
// 32 concurrent writers against one wallet in the shared Postgres: every
// promise is a transaction whose conditional UPDATE takes the wallet row's
// lock, so this is the throughput of the serialisation point. It reports
// promises/s; it asserts nothing about time.
//
//	BILLFLOW_TEST_DATABASE_URL=... go test -tags integration -run '^$' -bench ConcurrentPromise -benchtime 2000x ./store/
func BenchmarkConcurrentPromiseDebits(b *testing.B) {
	const writers = 32
	st := wideStore(b, writers+2)
	tenant := testkit.NewTenantID(b)
	if _, _, err := st.EnsureTenant(bg(), tenant, "usd", 600); err != nil {
		b.Fatal(err)
	}
	if _, err := st.Deposit(bg(), store.WalletWrite{TenantID: tenant, Key: "funding", Amount: int64(b.N) * 10}); err != nil {
		b.Fatal(err)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	b.ResetTimer()
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				_, err := st.Promise(bg(), store.WalletWrite{TenantID: tenant, Key: fmt.Sprintf("receipt-%d", i), Amount: 10})
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
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "promises/s")
	state, err := st.WalletState(bg(), tenant)
	if err != nil {
		b.Fatal(err)
	}
	if state.Spendable != 0 || state.Totals.Promised != int64(b.N)*10 {
		b.Fatalf("after %d promises of 10: spendable %d promised %d", b.N, state.Spendable, state.Totals.Promised)
	}
}

package bench

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/billflow/billflow/internal/poolbench"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/store"
)

// PoolOptions sets up the pool scenario.
type PoolOptions struct {
	// Clients debit concurrently (32 by default).
	Clients int
	// Debits is how many debits each pattern makes (20000 by default).
	Debits int64
	// Rounds alternate which pattern goes first (4 by default).
	Rounds int
}

// Pool compares debits per second of the free-tier pool with o.Clients
// concurrent clients: billflow's atomic conditional UPDATE against the
// seed's SELECT ... FOR UPDATE then UPDATE, on the scenario's own database
// in one run (package poolbench, which BenchmarkConcurrentPoolDebits runs
// too). It needs no worker. Verified: every debit landed (the pool holds
// exactly what was not debited).
func Pool(ctx context.Context, s *Stack, o PoolOptions) (Result, error) {
	if o.Clients <= 0 {
		o.Clients = 32
	}
	if o.Debits <= 0 {
		o.Debits = 20_000
	}
	if o.Rounds <= 0 {
		o.Rounds = 4
	}
	r := Result{Scenario: "pool", Tenants: o.Clients, Params: map[string]string{
		"clients": strconv.Itoa(o.Clients), "debits_per_pattern": strconv.FormatInt(o.Debits, 10), "rounds": strconv.Itoa(o.Rounds),
	}, Counts: map[string]float64{}, Latencies: map[string]Summary{}}
	// A pool of connections for every client (pgxpool's default is 4).
	u, err := url.Parse(s.DBURL)
	if err != nil {
		return r, err
	}
	q := u.Query()
	q.Set("pool_max_conns", strconv.Itoa(o.Clients+2))
	u.RawQuery = q.Encode()
	st, err := store.Open(ctx, u.String())
	if err != nil {
		return r, err
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		return r, err
	}
	if _, err := st.ConfigurePool(ctx, models.DefaultPoolConfig()); err != nil {
		return r, err
	}
	const spare = 1
	if _, err := st.CreditPool(ctx, "bench", 2*o.Debits+spare, "bench"); err != nil {
		return r, err
	}
	var settings []string
	for _, name := range []string{"fsync", "synchronous_commit"} {
		var v string
		if err := st.Pool().QueryRow(ctx, "SELECT current_setting($1)", name).Scan(&v); err == nil {
			settings = append(settings, name+"="+v)
		}
	}
	c, err := poolbench.Compare(ctx, st.Pool(), o.Clients, o.Debits, o.Rounds)
	if err != nil {
		return r, err
	}
	r.Counts["atomic_debits_per_second"] = round1(c.AtomicPerSecond())
	r.Counts["for_update_debits_per_second"] = round1(c.LockedPerSecond())
	r.Counts["ratio_atomic_over_for_update"] = round2(c.Ratio())
	r.Counts["atomic_seconds"] = round2(c.AtomicElapsed.Seconds())
	r.Counts["for_update_seconds"] = round2(c.LockedElapsed.Seconds())
	r.ThroughputPerSecond = c.AtomicPerSecond()
	pool, err := st.GetPool(ctx)
	if err != nil {
		return r, err
	}
	if pool.Balance != spare {
		r.Failures = append(r.Failures, fmt.Sprintf("after 2 x %d debits of 1 the pool holds %d, want %d", o.Debits, pool.Balance, spare))
	}
	r.Notes = append(r.Notes, "each pattern debits 1 per statement or transaction from one pool row; rounds alternate which pattern goes first",
		"postgres: "+strings.Join(settings, ", "))
	return r, nil
}

// PoolTable renders a pool result as a Markdown table of both patterns.
func PoolTable(r Result) string {
	var b strings.Builder
	b.WriteString("| pattern | clients | debits | seconds | debits/s |\n|---|---|---|---|---|\n")
	fmt.Fprintf(&b, "| %s | %d | %s | %.2f | %.0f |\n", poolbench.Atomic, r.Tenants, r.Params["debits_per_pattern"],
		r.Counts["atomic_seconds"], r.Counts["atomic_debits_per_second"])
	fmt.Fprintf(&b, "| %s | %d | %s | %.2f | %.0f |\n", poolbench.SelectForUpdate, r.Tenants, r.Params["debits_per_pattern"],
		r.Counts["for_update_seconds"], r.Counts["for_update_debits_per_second"])
	fmt.Fprintf(&b, "\nratio (atomic / FOR UPDATE): %.2fx; verified: %s\n", r.Counts["ratio_atomic_over_for_update"], map[bool]string{true: "yes", false: "NO"}[len(r.Failures) == 0])
	return b.String()
}

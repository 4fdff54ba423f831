package bench

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	enumspb "go.temporal.io/api/enums/v1"

	"github.com/billflow/billflow/contract"
)

// IdleOptions sets up the idle scenario.
type IdleOptions struct {
	Tenants int
	// Window is how long idle tenants are watched.
	Window time.Duration
}

// Idle measures what idle tenants cost: tenants mid-period (a one-hour
// period, the activation's invoice paid) are watched for Window, counting
// PostgreSQL statements on the scenario's database and Temporal tasks
// (workflow and activity tasks scheduled in their histories), per idle
// tenant per hour. Statements are counted with pg_stat_statements when the
// server has it loaded, otherwise from pg_stat_database's transaction
// counters (each statement outside a transaction block is one).
func Idle(ctx context.Context, s *Stack, o IdleOptions) (Result, error) {
	r := Result{Scenario: "idle", Tenants: o.Tenants, Params: map[string]string{}, Counts: map[string]float64{}}
	if o.Window == 0 {
		o.Window = time.Minute
	}
	r.Params["window"] = o.Window.String()
	if err := s.StartWorker(ctx); err != nil {
		return r, err
	}
	anchor := time.Now().UTC().Truncate(time.Second)
	tenants, err := s.CreateTenants(ctx, o.Tenants, anchor, time.Hour)
	if err != nil {
		return r, err
	}
	// Past the claim debounce and the activation's invoice: idle from here.
	if err := s.waitNoOpenInvoices(ctx, time.Now().Add(5*time.Minute)); err != nil {
		return r, err
	}
	if err := sleep(ctx, 5*time.Second); err != nil {
		return r, err
	}

	counter, how, err := statementCounter(ctx, s)
	if err != nil {
		return r, err
	}
	r.Notes = append(r.Notes, "PostgreSQL statements counted with "+how+"; every statement on the scenario's database counts, including the worker's own background work (outbox sweeps), so per tenant is an upper bound")
	before, err := counter(ctx)
	if err != nil {
		return r, err
	}
	start := time.Now()
	if err := sleep(ctx, o.Window); err != nil {
		return r, err
	}
	end := time.Now()
	after, err := counter(ctx)
	if err != nil {
		return r, err
	}
	tasks := 0
	for _, t := range tenants {
		events, err := historyEvents(ctx, s, contract.TenantWorkflowID(t), "")
		if err != nil {
			return r, err
		}
		for _, ev := range events {
			at := ev.GetEventTime().AsTime()
			if at.Before(start) || at.After(end) {
				continue
			}
			switch ev.GetEventType() {
			case enumspb.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, enumspb.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
				tasks++
			}
		}
	}
	perHour := float64(time.Hour) / float64(end.Sub(start)) / float64(len(tenants))
	statements := after - before
	r.Counts["window_seconds"] = round1(end.Sub(start).Seconds())
	r.Counts["postgres_statements_in_window"] = float64(statements)
	// Nonzero proves the counter counts: the set-up's statements.
	r.Counts["postgres_statements_before_window"] = float64(before)
	r.Counts["postgres_statements_per_idle_tenant_hour"] = round2(float64(statements) * perHour)
	r.Counts["temporal_tasks_in_window"] = float64(tasks)
	r.Counts["temporal_tasks_per_idle_tenant_hour"] = round2(float64(tasks) * perHour)
	return r, nil
}

// statementCounter returns a function reading a statement counter for the
// scenario's database, and says which one it is.
func statementCounter(ctx context.Context, s *Stack) (func(context.Context) (int64, error), string, error) {
	if _, err := s.Pool.Exec(ctx, `CREATE EXTENSION IF NOT EXISTS pg_stat_statements`); err == nil {
		var ok bool
		// The view errors unless the library is in shared_preload_libraries.
		if err := s.Pool.QueryRow(ctx, `SELECT true FROM pg_stat_statements LIMIT 1`).Scan(&ok); err == nil || errors.Is(err, pgx.ErrNoRows) {
			return func(ctx context.Context) (int64, error) {
				var n int64
				// The bench's own reads of the view are left out.
				err := s.Pool.QueryRow(ctx, `SELECT coalesce(sum(calls), 0)::bigint FROM pg_stat_statements
					WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
					AND query NOT ILIKE '%pg_stat_statements%' AND query NOT ILIKE '%pg_stat_database%'`).Scan(&n)
				return n, err
			}, "pg_stat_statements (sum of calls)", nil
		}
	}
	return func(ctx context.Context) (int64, error) {
		var n int64
		// Statistics are flushed lazily; wait out the flush interval (1 s)
		// so the reading is current. The reading itself is one transaction,
		// subtracted.
		if err := sleep(ctx, 1500*time.Millisecond); err != nil {
			return 0, err
		}
		if _, err := s.Pool.Exec(ctx, `SELECT pg_stat_clear_snapshot()`); err != nil {
			return 0, err
		}
		err := s.Pool.QueryRow(ctx, `SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()`).Scan(&n)
		return n - 2, err
	}, "pg_stat_database xact_commit + xact_rollback deltas (pg_stat_statements is not loaded: see scripts/bench.sh)", nil
}

// Package poolbench compares two ways of debiting the free-tier pool under
// concurrent clients, against one Postgres in one run: billflow's one
// conditional UPDATE (store.PoolDebitSQL) and the seed's pattern, a
// transaction that reads the balance with SELECT ... FOR UPDATE and then
// writes it with an UPDATE. The store's benchmark
// (BenchmarkConcurrentPoolDebits) and the bench harness's pool scenario
// both run it; it measures, it asserts nothing about time.
package poolbench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/billflow/billflow/store"
)

// Pattern is a way to debit the pool.
type Pattern string

// The two patterns compared.
const (
	// Atomic is billflow's: UPDATE ... WHERE balance >= n RETURNING, one
	// statement, its row lock held from that statement to its commit.
	Atomic Pattern = "atomic conditional UPDATE"
	// SelectForUpdate is the seed's: BEGIN; SELECT balance ... FOR UPDATE;
	// UPDATE ... SET balance = read - n; COMMIT. Its row lock is held across
	// the client's round trips between the SELECT and the COMMIT.
	SelectForUpdate Pattern = "SELECT ... FOR UPDATE, then UPDATE"
)

// ErrEmpty is a debit the pool could not cover (the benchmark funds the
// pool for every debit, so it is a setup fault).
var ErrEmpty = errors.New("the pool cannot cover the debit")

// Debit takes amount from the pool with the pattern, at at.
func Debit(ctx context.Context, db *pgxpool.Pool, p Pattern, amount int64, at time.Time) error {
	switch p {
	case Atomic:
		var balance int64
		err := db.QueryRow(ctx, store.PoolDebitSQL, amount, at).Scan(&balance)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrEmpty
		}
		return err
	case SelectForUpdate:
		return pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
			var balance int64
			if err := tx.QueryRow(ctx, `SELECT balance FROM pool WHERE id = 1 FOR UPDATE`).Scan(&balance); err != nil {
				return err
			}
			if balance < amount {
				return ErrEmpty
			}
			_, err := tx.Exec(ctx, `UPDATE pool SET balance = $1, updated_at = $2 WHERE id = 1`, balance-amount, at)
			return err
		})
	}
	return fmt.Errorf("unknown pattern %q", p)
}

// Comparison is one run of both patterns.
type Comparison struct {
	Clients int `json:"clients"`
	// Debits is how many debits each pattern made, in Rounds rounds that
	// alternate which pattern goes first (load on a shared machine drifts).
	Debits int64 `json:"debits"`
	Rounds int   `json:"rounds"`
	// Elapsed is each pattern's wall time over all its rounds.
	AtomicElapsed time.Duration `json:"atomic_elapsed"`
	LockedElapsed time.Duration `json:"locked_elapsed"`
}

// AtomicPerSecond is the atomic pattern's debits per second.
func (c Comparison) AtomicPerSecond() float64 { return float64(c.Debits) / c.AtomicElapsed.Seconds() }

// LockedPerSecond is the seed pattern's debits per second.
func (c Comparison) LockedPerSecond() float64 { return float64(c.Debits) / c.LockedElapsed.Seconds() }

// Ratio is atomic over seed debits per second.
func (c Comparison) Ratio() float64 { return c.AtomicPerSecond() / c.LockedPerSecond() }

// Compare runs debits debits of 1 with each pattern, clients at a time,
// against the configured pool in db, which must hold at least 2 x debits.
func Compare(ctx context.Context, db *pgxpool.Pool, clients int, debits int64, rounds int) (Comparison, error) {
	c := Comparison{Clients: clients, Debits: debits, Rounds: max(1, min(rounds, int(debits)))}
	for r := 0; r < c.Rounds; r++ {
		n := debits / int64(c.Rounds)
		if r == 0 {
			n += debits % int64(c.Rounds)
		}
		order := []Pattern{Atomic, SelectForUpdate}
		if r%2 == 1 {
			order[0], order[1] = order[1], order[0]
		}
		for _, p := range order {
			d, err := Run(ctx, db, p, clients, n)
			if err != nil {
				return c, fmt.Errorf("%s: %w", p, err)
			}
			if p == Atomic {
				c.AtomicElapsed += d
			} else {
				c.LockedElapsed += d
			}
		}
	}
	return c, nil
}

// Run makes n debits of 1 with the pattern from clients concurrent
// clients and returns the wall time they took.
func Run(ctx context.Context, db *pgxpool.Pool, p Pattern, clients int, n int64) (time.Duration, error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	at := time.Now().UTC()
	start := time.Now()
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= n {
				if err := Debit(ctx, db, p, 1, at); err != nil {
					once.Do(func() { first = err })
					return
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start), first
}

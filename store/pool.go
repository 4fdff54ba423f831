package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/billflow/billflow/models"
)

// The free-tier generosity pool (issue 11). The pool's balance moves only in
// conditional UPDATEs (never a read, then a write): a free decision debits
// it with `balance >= n` in the same transaction as the payer's daily
// counter and the grant's audit row; a partial grant takes LEAST(balance, n)
// when the payer's part is paid; recording and releasing give back what was
// not used, once per grant (its request key is the audit row's primary key).

// PoolDebitSQL is the pool's debit: one conditional UPDATE that takes $1
// only where the balance has it, at $2, returning the balance after (no
// row: not enough). The row lock it takes is held only from this statement
// to the commit; the benchmarks (BenchmarkConcurrentPoolDebits, the bench
// harness's pool scenario) run it against a read-then-write transaction.
const PoolDebitSQL = `UPDATE pool SET balance = balance - $1, updated_at = $2 WHERE id = 1 AND balance >= $1 RETURNING balance`

// ErrPoolNotConfigured is returned by pool operations before ConfigurePool.
var ErrPoolNotConfigured = errors.New("the free-tier pool is not configured (the worker configures it at start from BILLFLOW_POOL)")

// Grant outcomes (pool_grants.outcome).
const (
	// GrantReserved: debited from the pool, not yet recorded or released.
	GrantReserved = "reserved"
	// GrantRecorded: the absorbed amount is final; any over-reservation
	// went back to the pool.
	GrantRecorded = "recorded"
	// GrantReleased: the whole reservation went back to the pool.
	GrantReleased = "released"
	// GrantUnfunded: a partial grant that found nothing to take (the pool
	// drained or the daily budget was used since the decision): the payer
	// pays the difference.
	GrantUnfunded = "unfunded"
)

// Pool is the pool's row.
type Pool struct {
	Currency models.Currency `json:"currency"`
	Balance  int64           `json:"balance"`
	// ShareBps is the share of every paid invoice credited to the pool.
	ShareBps  int64     `json:"credit_share_bps"`
	LowFloor  int64     `json:"low_balance_floor"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Low reports whether the balance is under the floor.
func (p Pool) Low() bool { return p.Balance < p.LowFloor }

// PoolGrant is one grant's audit row.
type PoolGrant struct {
	RequestKey string           `json:"request_key"`
	Payer      models.TenantID  `json:"payer"`
	Tier       models.TrustTier `json:"tier"`
	Serve      models.Serve     `json:"serve"`
	Currency   models.Currency  `json:"currency"`
	Estimated  int64            `json:"estimated"`
	// Reserved was debited from the pool; Absorbed is what the pool finally
	// paid (once recorded); Released went back to the pool.
	Reserved   int64      `json:"reserved"`
	Absorbed   int64      `json:"absorbed"`
	Released   int64      `json:"released"`
	Outcome    string     `json:"outcome"`
	Reason     string     `json:"reason,omitempty"`
	ReservedAt time.Time  `json:"reserved_at"`
	SettledAt  *time.Time `json:"settled_at,omitempty"`
}

const grantColumns = `request_key, payer, tier, serve, currency, estimated, reserved, absorbed, released, outcome, reason, reserved_at, settled_at`

func scanGrant(row pgx.Row) (PoolGrant, error) {
	var g PoolGrant
	err := row.Scan(&g.RequestKey, &g.Payer, &g.Tier, &g.Serve, &g.Currency, &g.Estimated, &g.Reserved, &g.Absorbed, &g.Released,
		&g.Outcome, &g.Reason, &g.ReservedAt, &g.SettledAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return PoolGrant{}, ErrNotFound
	}
	g.ReservedAt = g.ReservedAt.UTC()
	if g.SettledAt != nil {
		t := g.SettledAt.UTC()
		g.SettledAt = &t
	}
	return g, err
}

// PoolRequest asks the pool to cover an estimated cost for a payer.
type PoolRequest struct {
	Payer models.TenantID
	// Key identifies the grant (e.g. a usage receipt's id): a retry with
	// the same key returns the first result and moves no money.
	Key string
	// Estimated is the cost in minor units of the pool's currency.
	Estimated int64
}

func (r PoolRequest) validate() error {
	switch {
	case r.Payer == "":
		return &models.ValidationError{Field: "payer", Reason: "must not be empty"}
	case strings.TrimSpace(r.Key) == "":
		return &models.ValidationError{Field: "request_key", Reason: "must not be empty"}
	case r.Estimated < 0:
		return &models.ValidationError{Field: "estimated", Reason: fmt.Sprintf("%d is negative", r.Estimated)}
	}
	return nil
}

// PoolVerdict is a decision with what it was made from.
type PoolVerdict struct {
	models.PoolDecision
	Tier models.TrustTier `json:"tier"`
	// DailyBudget and DailyRemaining are the payer's, before this decision.
	DailyBudget    int64 `json:"daily_budget"`
	DailyRemaining int64 `json:"daily_remaining"`
	// PoolBalance is the pool's balance after this decision.
	PoolBalance int64 `json:"pool_balance"`
	// Reason says what limited the pool's part (empty when free).
	Reason string `json:"reason,omitempty"`
	// Grant is the reserved grant of a free decision (nil otherwise).
	Grant *PoolGrant `json:"grant,omitempty"`
	// Replayed: the key had a grant already; it is returned unchanged.
	Replayed bool `json:"replayed,omitempty"`
	// CrossedFloor: this debit took the balance from at or above the low
	// floor to under it (the moment to tell of pool.low).
	CrossedFloor bool `json:"crossed_floor,omitempty"`
}

// PayerTier is a payer's standing with the pool.
type PayerTier struct {
	Payer   models.TenantID    `json:"payer"`
	Tier    models.TrustTier   `json:"tier"`
	Derived models.TrustTier   `json:"derived"`
	Pinned  bool               `json:"pinned"`
	History models.PaidHistory `json:"history"`
	// PinReason is the operator's reason for a pinned tier.
	PinReason string `json:"pin_reason,omitempty"`
	// DailyBudget, AbsorbedToday and DailyRemaining are in the current
	// 24-hour window (which starts at WindowStart, zero when none is open).
	DailyBudget    int64     `json:"daily_budget"`
	AbsorbedToday  int64     `json:"absorbed_today"`
	DailyRemaining int64     `json:"daily_remaining"`
	WindowStart    time.Time `json:"window_start,omitzero"`
}

// poolNow is the store's clock as the pool's tables store it.
func (s *Store) poolNow() time.Time { return s.Now().UTC().Truncate(time.Microsecond) }

// ConfigurePool writes the configuration's currency, credit share and low
// floor to the pool's row, creating it with a zero balance the first time.
// Every process that settles invoices then credits the same share. The
// currency changes only while the balance is zero (no conversion).
func (s *Store) ConfigurePool(ctx context.Context, cfg models.PoolConfig) (Pool, error) {
	if err := cfg.Validate(); err != nil {
		return Pool{}, err
	}
	var p Pool
	err := s.tx(ctx, func(tx pgx.Tx) error {
		now := s.poolNow()
		if _, err := tx.Exec(ctx, `INSERT INTO pool (id, currency, share_bps, low_floor, updated_at) VALUES (1, $1, $2, $3, $4)
			ON CONFLICT (id) DO NOTHING`, cfg.Currency, cfg.CreditShareBps, cfg.LowFloor, now); err != nil {
			return err
		}
		cur, err := scanPool(tx.QueryRow(ctx, `SELECT `+poolColumns+` FROM pool WHERE id = 1 FOR UPDATE`))
		if err != nil {
			return err
		}
		if cur.Currency != cfg.Currency && cur.Balance > 0 {
			return &models.ValidationError{Field: "pool.currency", Reason: fmt.Sprintf("the pool holds %d %s: it cannot change to %s until it is empty",
				cur.Balance, cur.Currency, cfg.Currency)}
		}
		p, err = scanPool(tx.QueryRow(ctx, `UPDATE pool SET currency = $1, share_bps = $2, low_floor = $3,
			updated_at = CASE WHEN (currency, share_bps, low_floor) = ($1, $2, $3) THEN updated_at ELSE $4 END
			WHERE id = 1 RETURNING `+poolColumns, cfg.Currency, cfg.CreditShareBps, cfg.LowFloor, now))
		return err
	})
	return p, err
}

const poolColumns = `currency, balance, share_bps, low_floor, updated_at`

func scanPool(row pgx.Row) (Pool, error) {
	var p Pool
	err := row.Scan(&p.Currency, &p.Balance, &p.ShareBps, &p.LowFloor, &p.UpdatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return Pool{}, ErrPoolNotConfigured
	}
	p.UpdatedAt = p.UpdatedAt.UTC()
	return p, err
}

// GetPool returns the pool's row.
func (s *Store) GetPool(ctx context.Context) (Pool, error) {
	return scanPool(s.pool.QueryRow(ctx, `SELECT `+poolColumns+` FROM pool WHERE id = 1`))
}

// payerStanding reads what a payer's tier is made of: its currency, paid
// history and any pin.
func payerStanding(ctx context.Context, q querier, cfg models.PoolConfig, payer models.TenantID, now time.Time) (PayerTier, models.Currency, error) {
	pt := PayerTier{Payer: payer}
	// Every decision, dry run and tier view comes through here: a zero or
	// hand-made configuration is refused before it can derive a tier.
	if err := cfg.Validate(); err != nil {
		return pt, "", err
	}
	var cur models.Currency
	var last *time.Time
	var pin *string
	err := q.QueryRow(ctx, `SELECT t.currency, t.created_at,
			(SELECT count(*) FROM invoices i WHERE i.tenant_id = t.id AND i.status = 'paid' AND i.kind <> 'top_up'),
			(SELECT max(i.paid_at) FROM invoices i WHERE i.tenant_id = t.id AND i.status = 'paid' AND i.kind <> 'top_up'),
			p.tier, coalesce(p.reason, '')
		FROM tenants t LEFT JOIN pool_tier_pins p ON p.payer = t.id WHERE t.id = $1`, payer).
		Scan(&cur, &pt.History.Since, &pt.History.PaidInvoices, &last, &pin, &pt.PinReason)
	if errors.Is(err, pgx.ErrNoRows) {
		return pt, "", &models.ValidationError{Field: "payer", Reason: fmt.Sprintf("%s is not a tenant of the engine", payer)}
	}
	if err != nil {
		return pt, "", err
	}
	pt.History.Since = pt.History.Since.UTC()
	if last != nil {
		pt.History.LastPaidAt = last.UTC()
	}
	pt.Derived = cfg.DeriveTier(pt.History, now)
	pt.Tier = pt.Derived
	if pin != nil {
		pt.Tier, pt.Pinned = models.TrustTier(*pin), true
	}
	pt.DailyBudget = cfg.Budget(pt.Tier)
	return pt, cur, nil
}

// windowAbsorbed is what a daily row counts at now: nothing once its
// 24-hour window has ended.
func windowAbsorbed(start time.Time, absorbed int64, now time.Time) (time.Time, int64) {
	if start.IsZero() || now.Sub(start) >= models.DayWindow {
		return time.Time{}, 0
	}
	return start, absorbed
}

// PayerTier returns a payer's tier (pinned or derived from its paid
// history) and its daily budget's state. It writes nothing.
func (s *Store) PayerTier(ctx context.Context, cfg models.PoolConfig, payer models.TenantID) (PayerTier, error) {
	now := s.poolNow()
	pt, _, err := payerStanding(ctx, s.pool, cfg, payer, now)
	if err != nil {
		return pt, err
	}
	var start time.Time
	var absorbed int64
	err = s.pool.QueryRow(ctx, `SELECT window_start, absorbed FROM pool_daily WHERE payer = $1`, payer).Scan(&start, &absorbed)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return pt, err
	}
	pt.WindowStart, pt.AbsorbedToday = windowAbsorbed(start.UTC(), absorbed, now)
	pt.DailyRemaining = models.DailyRemaining(pt.DailyBudget, pt.AbsorbedToday)
	return pt, nil
}

// PinTier pins a payer's tier (an operator's decision), replacing any pin.
func (s *Store) PinTier(ctx context.Context, payer models.TenantID, tier models.TrustTier, reason string) error {
	t, err := models.ParseTrustTier(string(tier))
	if err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO pool_tier_pins (payer, tier, reason, pinned_at)
		SELECT id, $2, $3, $4 FROM tenants WHERE id = $1
		ON CONFLICT (payer) DO UPDATE SET tier = excluded.tier, reason = excluded.reason, pinned_at = excluded.pinned_at`,
		payer, t, reason, s.poolNow())
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return &models.ValidationError{Field: "payer", Reason: fmt.Sprintf("%s is not a tenant of the engine", payer)}
	}
	return nil
}

// UnpinTier removes a payer's pin: its tier is derived again. Unpinning a
// payer without a pin changes nothing.
func (s *Store) UnpinTier(ctx context.Context, payer models.TenantID) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM pool_tier_pins WHERE payer = $1`, payer)
	return err
}

// decideTx is the decision inside a transaction: it locks the payer's daily
// row (creating it), so that a payer's decisions are serialised and its
// budget cannot be overspent, and reads the pool's balance without a lock
// (a free decision's debit is conditional on the balance it needs). It
// returns the verdict and the daily row's window as it stands.
func decideTx(ctx context.Context, tx pgx.Tx, cfg models.PoolConfig, payer models.TenantID, estimated int64, now time.Time) (PoolVerdict, Pool, time.Time, int64, error) {
	var v PoolVerdict
	pt, cur, err := payerStanding(ctx, tx, cfg, payer, now)
	if err != nil {
		return v, Pool{}, time.Time{}, 0, err
	}
	v.Tier, v.DailyBudget = pt.Tier, pt.DailyBudget
	p, err := scanPool(tx.QueryRow(ctx, `SELECT `+poolColumns+` FROM pool WHERE id = 1`))
	if err != nil {
		return v, p, time.Time{}, 0, err
	}
	v.PoolBalance = p.Balance
	gate := func(reason string) (PoolVerdict, Pool, time.Time, int64, error) {
		v.PoolDecision = models.PoolDecision{Serve: models.ServeGate, Charge: estimated}
		v.Reason = reason
		return v, p, time.Time{}, 0, nil
	}
	switch {
	case cur != p.Currency:
		return gate(fmt.Sprintf("the payer pays in %s, the pool holds %s", cur, p.Currency))
	case v.DailyBudget == 0:
		return gate(fmt.Sprintf("tier %s has no daily free budget", v.Tier))
	case estimated == 0:
		return gate("nothing to cover")
	}
	var start time.Time
	var absorbed int64
	if err := tx.QueryRow(ctx, `INSERT INTO pool_daily (payer, window_start, absorbed) VALUES ($1, $2, 0)
		ON CONFLICT (payer) DO UPDATE SET absorbed = pool_daily.absorbed
		RETURNING window_start, absorbed`, payer, now).Scan(&start, &absorbed); err != nil {
		return v, p, time.Time{}, 0, fmt.Errorf("lock the payer's daily budget: %w", err)
	}
	start, absorbed = windowAbsorbed(start.UTC(), absorbed, now)
	v.DailyRemaining = models.DailyRemaining(v.DailyBudget, absorbed)
	if v.PoolDecision, err = models.Decide(v.DailyRemaining, p.Balance, estimated); err != nil {
		return v, p, start, absorbed, err
	}
	v.Reason = limitReason(v.PoolDecision, v.DailyRemaining, p.Balance)
	return v, p, start, absorbed, nil
}

// limitReason says what limited a decision that is not free.
func limitReason(d models.PoolDecision, dailyRemaining, balance int64) string {
	switch {
	case d.Serve == models.ServeFree:
		return ""
	case dailyRemaining == 0:
		return "daily free budget used"
	case balance == 0:
		return "the pool is empty"
	case dailyRemaining <= balance:
		return fmt.Sprintf("daily free budget: %d left", dailyRemaining)
	default:
		return fmt.Sprintf("the pool holds %d", balance)
	}
}

// DecidePool is a dry run of DecideAndReserveFree: the verdict the payer
// would get now, with nothing written.
func (s *Store) DecidePool(ctx context.Context, cfg models.PoolConfig, req PoolRequest) (PoolVerdict, error) {
	if err := req.validate(); err != nil {
		return PoolVerdict{}, err
	}
	var v PoolVerdict
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		var err error
		v, _, _, _, err = decideTx(ctx, tx, cfg, req.Payer, req.Estimated, s.poolNow())
		if err != nil {
			return err
		}
		return errDryRun // roll back the daily row decideTx may have created
	})
	if errors.Is(err, errDryRun) {
		err = nil
	}
	return v, err
}

var errDryRun = errors.New("dry run")

// verdictOf is the verdict a grant was decided with, for a retry of its
// key: what was reserved, whatever was recorded or released since (the
// grant says that), so a late retry never turns a free decision into a
// charge.
func verdictOf(g PoolGrant, balance int64) PoolVerdict {
	serve := g.Serve
	if g.Reserved == 0 {
		serve = models.ServeGate
	}
	return PoolVerdict{PoolDecision: models.PoolDecision{Serve: serve, Absorb: g.Reserved, Charge: g.Estimated - g.Reserved},
		Tier: g.Tier, PoolBalance: balance, Grant: &g, Replayed: true}
}

// DecideAndReserveFree decides for a payer's estimated cost. A free verdict
// (the pool covers all of it) is reserved at once, in one transaction: the
// pool's conditional debit (UPDATE ... WHERE balance >= estimated), the
// payer's daily counter, and the grant's audit row (outcome reserved); work
// may start right after, and RecordGrant or ReleaseReservation settles the
// grant. A partial verdict is advisory and debits nothing (see
// ReservePartialGrant); a gate debits nothing. A retry with the key of a
// reserved grant returns that grant's verdict and moves nothing.
func (s *Store) DecideAndReserveFree(ctx context.Context, cfg models.PoolConfig, req PoolRequest) (PoolVerdict, error) {
	if err := req.validate(); err != nil {
		return PoolVerdict{}, err
	}
	var v PoolVerdict
	err := s.tx(ctx, func(tx pgx.Tx) error {
		now := s.poolNow()
		if g, err := scanGrant(tx.QueryRow(ctx, `SELECT `+grantColumns+` FROM pool_grants WHERE request_key = $1`, req.Key)); err == nil {
			return replay(ctx, tx, g, req, &v)
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		var p Pool
		var start time.Time
		var absorbed int64
		var err error
		v, p, start, absorbed, err = decideTx(ctx, tx, cfg, req.Payer, req.Estimated, now)
		if err != nil || v.Serve != models.ServeFree {
			return err
		}
		// The decision, in one statement: the debit, conditional on the
		// balance it needs, and only with it the daily counter and the
		// audit row. The pool's row lock is the one every decision waits
		// for: one statement takes it and COMMIT releases it, so it is held
		// for no client round trip beyond the COMMIT's.
		g := PoolGrant{RequestKey: req.Key, Payer: req.Payer, Tier: v.Tier, Serve: models.ServeFree, Currency: p.Currency,
			Estimated: req.Estimated, Reserved: req.Estimated, Outcome: GrantReserved, ReservedAt: now}
		winStart, total, err := dailyAfter(start, absorbed, req.Estimated, now)
		if err != nil {
			return err
		}
		err = tx.QueryRow(ctx, `WITH debit AS (`+PoolDebitSQL+`),
			daily AS (UPDATE pool_daily SET window_start = $4, absorbed = $5 WHERE payer = $3 AND EXISTS (SELECT 1 FROM debit)),
			audit AS (INSERT INTO pool_grants (request_key, payer, tier, serve, currency, estimated, reserved, outcome, reserved_at)
				SELECT $6, $3, $7, $8, $9, $1, $1, $10, $2 FROM debit)
			SELECT balance FROM debit`,
			req.Estimated, now, req.Payer, winStart, total, g.RequestKey, g.Tier, g.Serve, g.Currency, g.Outcome).Scan(&v.PoolBalance)
		if errors.Is(err, pgx.ErrNoRows) {
			// Drained since it was read: decide again on what is there now.
			if err := tx.QueryRow(ctx, `SELECT balance FROM pool WHERE id = 1`).Scan(&v.PoolBalance); err != nil {
				return err
			}
			if v.PoolDecision, err = models.Decide(v.DailyRemaining, v.PoolBalance, req.Estimated); err != nil {
				return err
			}
			v.Reason = limitReason(v.PoolDecision, v.DailyRemaining, v.PoolBalance)
			return nil
		}
		if err != nil {
			return err
		}
		v.CrossedFloor = v.PoolBalance+req.Estimated >= p.LowFloor && v.PoolBalance < p.LowFloor
		v.Grant = &g
		return nil
	})
	if isUniqueViolation(err) {
		// A concurrent call with the same key won: answer with its grant.
		return s.replayKey(ctx, req)
	}
	return v, err
}

// replay answers a retry of a key that has a grant.
func replay(ctx context.Context, tx pgx.Tx, g PoolGrant, req PoolRequest, v *PoolVerdict) error {
	if g.Payer != req.Payer || g.Estimated != req.Estimated {
		return &models.ValidationError{Field: "request_key", Reason: fmt.Sprintf("%q was used for a grant of %d to %s, not %d to %s",
			req.Key, g.Estimated, g.Payer.Short(), req.Estimated, req.Payer.Short())}
	}
	var balance int64
	if err := tx.QueryRow(ctx, `SELECT balance FROM pool WHERE id = 1`).Scan(&balance); err != nil {
		return err
	}
	*v = verdictOf(g, balance)
	return nil
}

func (s *Store) replayKey(ctx context.Context, req PoolRequest) (PoolVerdict, error) {
	var v PoolVerdict
	err := s.tx(ctx, func(tx pgx.Tx) error {
		g, err := scanGrant(tx.QueryRow(ctx, `SELECT `+grantColumns+` FROM pool_grants WHERE request_key = $1`, req.Key))
		if err != nil {
			return err
		}
		return replay(ctx, tx, g, req, &v)
	})
	return v, err
}

// moveDaily adds delta to the payer's daily counter, starting a new window
// at now when the current one (start, zero when ended) is over. The row is
// locked by decideTx.
func moveDaily(ctx context.Context, tx pgx.Tx, payer models.TenantID, start time.Time, absorbed, delta int64, now time.Time) error {
	start, total, err := dailyAfter(start, absorbed, delta, now)
	if err != nil {
		return err
	}
	_, err = tx.Exec(ctx, `UPDATE pool_daily SET window_start = $2, absorbed = $3 WHERE payer = $1`, payer, start, total)
	return err
}

// dailyAfter is the daily row after adding delta: a new window at now
// when the current one (start, zero when ended) is over.
func dailyAfter(start time.Time, absorbed, delta int64, now time.Time) (time.Time, int64, error) {
	if start.IsZero() {
		start, absorbed = now, 0
	}
	total, err := models.AddAmount("daily absorbed", absorbed, delta)
	return start, total, err
}

// giveBackDaily takes n off the payer's daily counter when the grant
// (reserved at reservedAt) counted in the current window; a grant of an
// earlier window counts no more anyway.
func giveBackDaily(ctx context.Context, tx pgx.Tx, payer models.TenantID, n int64, reservedAt time.Time) error {
	_, err := tx.Exec(ctx, `UPDATE pool_daily SET absorbed = GREATEST(absorbed - $2, 0) WHERE payer = $1 AND window_start <= $3`,
		payer, n, reservedAt)
	return err
}

func insertGrant(ctx context.Context, tx pgx.Tx, g PoolGrant) error {
	_, err := tx.Exec(ctx, `INSERT INTO pool_grants (`+grantColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`,
		g.RequestKey, g.Payer, g.Tier, g.Serve, g.Currency, g.Estimated, g.Reserved, g.Absorbed, g.Released, g.Outcome, g.Reason,
		g.ReservedAt, g.SettledAt)
	return err
}

// PartialRequest reserves the pool's part of a partial verdict once the
// payer's part is confirmed paid.
type PartialRequest struct {
	PoolRequest
	// Absorb is the pool's part the payer was not charged (the advisory
	// verdict's Absorb, or less: the actual cost capped by it).
	Absorb int64
}

// PartialResult is what a partial grant took.
type PartialResult struct {
	Grant PoolGrant `json:"grant"`
	// Absorbed was debited from the pool; Shortfall = Absorb - Absorbed is
	// what the payer must pay on top of its part (the pool drained or the
	// daily budget was used since the decision): never silently absorbed.
	Absorbed     int64 `json:"absorbed"`
	Shortfall    int64 `json:"shortfall"`
	PoolBalance  int64 `json:"pool_balance"`
	Replayed     bool  `json:"replayed,omitempty"`
	CrossedFloor bool  `json:"crossed_floor,omitempty"`
}

// ReservePartialGrant debits the pool's part of a partial verdict, called
// when the payer's part is confirmed paid. In one transaction it re-checks
// the payer's daily budget (the verdict was advisory and may be stale),
// takes LEAST(balance, part) from the pool, moves the daily counter and
// writes the grant (outcome reserved, or unfunded when nothing could be
// taken). Whatever it could not take is the Shortfall. A retry with the
// same key returns the first result.
func (s *Store) ReservePartialGrant(ctx context.Context, cfg models.PoolConfig, req PartialRequest) (PartialResult, error) {
	if err := req.validate(); err != nil {
		return PartialResult{}, err
	}
	if req.Absorb <= 0 || req.Absorb > req.Estimated {
		return PartialResult{}, &models.ValidationError{Field: "absorb", Reason: fmt.Sprintf("%d is not between 1 and the estimate %d", req.Absorb, req.Estimated)}
	}
	var r PartialResult
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var err error
		r, err = reservePartialTx(ctx, tx, cfg, req, s.poolNow())
		return err
	})
	if isUniqueViolation(err) {
		err = s.tx(ctx, func(tx pgx.Tx) error {
			g, err := scanGrant(tx.QueryRow(ctx, `SELECT `+grantColumns+` FROM pool_grants WHERE request_key = $1`, req.Key))
			if err != nil {
				return err
			}
			return replayPartial(ctx, tx, g, req, &r)
		})
	}
	return r, err
}

// reservePartialTx is ReservePartialGrant in the caller's transaction
// (a usage receipt's payment takes the payer's part in the same one).
func reservePartialTx(ctx context.Context, tx pgx.Tx, cfg models.PoolConfig, req PartialRequest, now time.Time) (PartialResult, error) {
	var r PartialResult
	err := func() error {
		if g, err := scanGrant(tx.QueryRow(ctx, `SELECT `+grantColumns+` FROM pool_grants WHERE request_key = $1`, req.Key)); err == nil {
			return replayPartial(ctx, tx, g, req, &r)
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		v, p, start, absorbed, err := decideTx(ctx, tx, cfg, req.Payer, req.Absorb, now)
		if err != nil {
			return err
		}
		// The balance read may be stale either way: the locked row decides
		// below. A gate before the daily budget (another currency, a tier
		// without budget) leaves DailyRemaining 0.
		want := min(req.Absorb, v.DailyRemaining)
		g := PoolGrant{RequestKey: req.Key, Payer: req.Payer, Tier: v.Tier, Serve: models.ServePartial, Currency: p.Currency,
			Estimated: req.Estimated, ReservedAt: now}
		r.PoolBalance = p.Balance
		if want > 0 {
			// LEAST-based debit: the balance read above may be stale; the
			// locked row decides.
			var before int64
			if err := tx.QueryRow(ctx, `WITH cur AS (SELECT balance FROM pool WHERE id = 1 FOR UPDATE)
				UPDATE pool SET balance = pool.balance - LEAST(cur.balance, $1), updated_at = $2 FROM cur WHERE id = 1
				RETURNING LEAST(cur.balance, $1), pool.balance, cur.balance`, want, now).Scan(&g.Reserved, &r.PoolBalance, &before); err != nil {
				return err
			}
			r.CrossedFloor = before >= p.LowFloor && r.PoolBalance < p.LowFloor
		}
		if g.Reserved > 0 {
			if err := moveDaily(ctx, tx, req.Payer, start, absorbed, g.Reserved, now); err != nil {
				return err
			}
			g.Outcome = GrantReserved
		} else {
			g.Outcome, g.Reason, g.SettledAt = GrantUnfunded, v.Reason, &now
			if want > 0 {
				g.Reason = "the pool is empty"
			}
		}
		if err := insertGrant(ctx, tx, g); err != nil {
			return err
		}
		r.Grant, r.Absorbed, r.Shortfall = g, g.Reserved, req.Absorb-g.Reserved
		return nil
	}()
	return r, err
}

func replayPartial(ctx context.Context, tx pgx.Tx, g PoolGrant, req PartialRequest, r *PartialResult) error {
	var v PoolVerdict
	if err := replay(ctx, tx, g, req.PoolRequest, &v); err != nil {
		return err
	}
	*r = PartialResult{Grant: g, Absorbed: g.Reserved, Shortfall: max(req.Absorb-g.Reserved, 0), PoolBalance: v.PoolBalance, Replayed: true}
	return nil
}

// RecordGrant makes a reserved grant's absorbed amount final: actual (what
// the covered work really cost, at most the reservation). The
// over-reservation (reserved - actual) goes back to the pool and off the
// payer's daily counter in the same transaction. Once per grant: a retry
// with the same actual returns the grant unchanged; another actual, or a
// grant already released, is refused.
func (s *Store) RecordGrant(ctx context.Context, key string, actual int64) (PoolGrant, error) {
	var g PoolGrant
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var err error
		g, err = scanGrant(tx.QueryRow(ctx, `SELECT `+grantColumns+` FROM pool_grants WHERE request_key = $1 FOR UPDATE`, key))
		if err != nil {
			return err
		}
		switch {
		case g.Outcome == GrantRecorded && g.Absorbed == actual:
			return nil
		case g.Outcome == GrantUnfunded && actual == 0:
			return nil
		case g.Outcome != GrantReserved:
			return &models.ValidationError{Field: "grant " + key, Reason: fmt.Sprintf("is %s (absorbed %d, released %d): %d cannot be recorded",
				g.Outcome, g.Absorbed, g.Released, actual)}
		case actual < 0 || actual > g.Reserved:
			return &models.ValidationError{Field: "actual", Reason: fmt.Sprintf("%d is not between 0 and the %d reserved by grant %s", actual, g.Reserved, key)}
		}
		over := g.Reserved - actual
		if err := settleGrant(ctx, tx, &g, GrantRecorded, actual, over, "", s.poolNow()); err != nil {
			return err
		}
		return nil
	})
	return g, err
}

// ReleaseReservation returns a reserved grant's whole reservation to the
// pool and the payer's daily counter (the covered work failed or was
// cancelled), once: releasing a grant already recorded or released
// returns it unchanged.
func (s *Store) ReleaseReservation(ctx context.Context, key, reason string) (PoolGrant, error) {
	var g PoolGrant
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var err error
		g, err = scanGrant(tx.QueryRow(ctx, `SELECT `+grantColumns+` FROM pool_grants WHERE request_key = $1 FOR UPDATE`, key))
		if err != nil || g.Outcome != GrantReserved {
			return err
		}
		return settleGrant(ctx, tx, &g, GrantReleased, 0, g.Reserved, reason, s.poolNow())
	})
	return g, err
}

// settleGrant closes a reserved grant (locked by the caller): back gives
// back to the pool and off the daily counter, in this transaction. Locks
// are taken in the order grant, daily row, pool, as the decisions do
// (daily row, pool), so the two never deadlock.
func settleGrant(ctx context.Context, tx pgx.Tx, g *PoolGrant, outcome string, absorbed, back int64, reason string, now time.Time) error {
	if _, err := tx.Exec(ctx, `UPDATE pool_grants SET outcome = $2, absorbed = $3, released = $4, reason = $5, settled_at = $6 WHERE request_key = $1`,
		g.RequestKey, outcome, absorbed, back, reason, now); err != nil {
		return err
	}
	g.Outcome, g.Absorbed, g.Released, g.Reason, g.SettledAt = outcome, absorbed, back, reason, &now
	if back == 0 {
		return nil
	}
	if err := giveBackDaily(ctx, tx, g.Payer, back, g.ReservedAt); err != nil {
		return err
	}
	// The pool last, so its row lock is held only until the COMMIT.
	if _, err := tx.Exec(ctx, `UPDATE pool SET balance = balance + $1, updated_at = $2 WHERE id = 1`, back, now); err != nil {
		return fmt.Errorf("give %d back to the pool: %w", back, err)
	}
	return nil
}

// PoolCredit is money put into the pool.
type PoolCredit struct {
	Key        string    `json:"key"`
	InvoiceID  string    `json:"invoice_id,omitempty"`
	Amount     int64     `json:"amount"`
	Note       string    `json:"note,omitempty"`
	CreditedAt time.Time `json:"credited_at"`
	// Balance is the pool's balance after the credit (for a replay: now).
	Balance  int64 `json:"balance"`
	Replayed bool  `json:"replayed,omitempty"`
}

// CreditPool tops the pool up by amount (an operator's credit), once per
// key: a retry with the same key and amount returns the first credit.
func (s *Store) CreditPool(ctx context.Context, key string, amount int64, note string) (PoolCredit, error) {
	key = strings.TrimSpace(key)
	switch {
	case key == "":
		return PoolCredit{}, &models.ValidationError{Field: "key", Reason: "must not be empty"}
	case strings.HasPrefix(key, "invoice:"):
		return PoolCredit{}, &models.ValidationError{Field: "key", Reason: fmt.Sprintf("%q: keys invoice:... are the invoices' shares", key)}
	case amount <= 0:
		return PoolCredit{}, &models.ValidationError{Field: "amount", Reason: fmt.Sprintf("%d is not positive", amount)}
	}
	c := PoolCredit{Key: key, Amount: amount, Note: note, CreditedAt: s.poolNow()}
	err := s.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `INSERT INTO pool_credits (credit_key, amount, note, credited_at) SELECT $1, $2, $3, $4 FROM pool WHERE id = 1
			ON CONFLICT (credit_key) DO NOTHING`, key, amount, note, c.CreditedAt)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			var prior PoolCredit
			err := tx.QueryRow(ctx, `SELECT amount, note, credited_at FROM pool_credits WHERE credit_key = $1`, key).Scan(&prior.Amount, &prior.Note, &prior.CreditedAt)
			if errors.Is(err, pgx.ErrNoRows) {
				return ErrPoolNotConfigured
			}
			if err != nil {
				return err
			}
			if prior.Amount != amount {
				return &models.ValidationError{Field: "key", Reason: fmt.Sprintf("%q already credited %d, not %d", key, prior.Amount, amount)}
			}
			c.Note, c.CreditedAt, c.Replayed = prior.Note, prior.CreditedAt.UTC(), true
			return tx.QueryRow(ctx, `SELECT balance FROM pool WHERE id = 1`).Scan(&c.Balance)
		}
		return tx.QueryRow(ctx, `UPDATE pool SET balance = balance + $1, updated_at = $2 WHERE id = 1 RETURNING balance`, amount, c.CreditedAt).Scan(&c.Balance)
	})
	return c, err
}

// creditInvoiceShare credits the pool its share of a paid invoice, inside
// the settlement transaction, once per invoice (pool_credits.invoice_id is
// UNIQUE). Top-ups are no revenue (the wallet money they bring is counted
// when it pays an invoice), an invoice in another currency than the pool's
// cannot be converted, and with no pool configured there is nothing to
// credit: none of these credit anything.
func creditInvoiceShare(ctx context.Context, tx pgx.Tx, inv Invoice, kind string, at time.Time) error {
	if kind == InvoiceKindTopUp || inv.Total <= 0 {
		return nil
	}
	var bps int64
	err := tx.QueryRow(ctx, `SELECT share_bps FROM pool WHERE id = 1 AND currency = $1`, inv.Currency).Scan(&bps)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	share, err := models.CreditShare(inv.Total, bps)
	if err != nil || share == 0 {
		return err
	}
	tag, err := tx.Exec(ctx, `INSERT INTO pool_credits (credit_key, invoice_id, amount, note, credited_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT DO NOTHING`, "invoice:"+inv.ID, inv.ID, share, fmt.Sprintf("%d bps of %d", bps, inv.Total), at)
	if err != nil || tag.RowsAffected() == 0 {
		return err
	}
	if _, err := tx.Exec(ctx, `UPDATE pool SET balance = balance + $1, updated_at = $2 WHERE id = 1`, share, at); err != nil {
		return fmt.Errorf("credit the pool %d of invoice %s: %w", share, inv.ID, err)
	}
	return nil
}

// PoolStatus is the pool at a glance.
type PoolStatus struct {
	Pool
	Low bool `json:"low"`
	// AbsorbedToday is what grants of the last 24 hours took from the pool,
	// net of what went back; Reserved is held by grants not yet recorded.
	AbsorbedToday int64 `json:"absorbed_today"`
	Reserved      int64 `json:"reserved"`
	// Grants counts every grant; GrantsToday those of the last 24 hours.
	Grants      int64 `json:"grants"`
	GrantsToday int64 `json:"grants_today"`
	// Credited is every credit the pool has had: shares and top-ups.
	Credited int64 `json:"credited"`
}

// PoolStatus returns the pool's balance and today's activity.
func (s *Store) PoolStatus(ctx context.Context) (PoolStatus, error) {
	var st PoolStatus
	var err error
	if st.Pool, err = s.GetPool(ctx); err != nil {
		return st, err
	}
	st.Low = st.Pool.Low()
	since := s.poolNow().Add(-models.DayWindow)
	err = s.pool.QueryRow(ctx, `SELECT
			coalesce(sum(reserved - released) FILTER (WHERE reserved_at > $1), 0),
			coalesce(sum(reserved) FILTER (WHERE outcome = 'reserved'), 0),
			count(*), count(*) FILTER (WHERE reserved_at > $1),
			(SELECT coalesce(sum(amount), 0) FROM pool_credits)
		FROM pool_grants`, since).Scan(&st.AbsorbedToday, &st.Reserved, &st.Grants, &st.GrantsToday, &st.Credited)
	return st, err
}

// GrantFilter selects grants for ListGrants; zero fields select all.
type GrantFilter struct {
	Payer   models.TenantID
	Outcome string
	// Since selects grants reserved at or after it.
	Since time.Time
	// Limit caps the rows (0: 100).
	Limit int
}

// ListGrants returns grants, newest first.
func (s *Store) ListGrants(ctx context.Context, f GrantFilter) ([]PoolGrant, error) {
	switch f.Outcome {
	case "", GrantReserved, GrantRecorded, GrantReleased, GrantUnfunded:
	default:
		return nil, &models.ValidationError{Field: "outcome", Reason: fmt.Sprintf("%q is not reserved, recorded, released or unfunded", f.Outcome)}
	}
	if f.Limit < 0 {
		return nil, &models.ValidationError{Field: "limit", Reason: fmt.Sprintf("%d is negative", f.Limit)}
	}
	if f.Limit == 0 {
		f.Limit = 100
	}
	var since *time.Time
	if !f.Since.IsZero() {
		since = &f.Since
	}
	rows, err := s.pool.Query(ctx, `SELECT `+grantColumns+` FROM pool_grants
		WHERE ($1 = '' OR payer = $1) AND ($2 = '' OR outcome = $2) AND ($3::timestamptz IS NULL OR reserved_at >= $3)
		ORDER BY reserved_at DESC, request_key LIMIT $4`, string(f.Payer), f.Outcome, since, f.Limit)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (PoolGrant, error) { return scanGrant(r) })
}

// GetGrant returns one grant by its request key.
func (s *Store) GetGrant(ctx context.Context, key string) (PoolGrant, error) {
	return scanGrant(s.pool.QueryRow(ctx, `SELECT `+grantColumns+` FROM pool_grants WHERE request_key = $1`, key))
}

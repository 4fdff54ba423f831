package models

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/bits"
	"strings"
	"time"
)

// The free-tier generosity pool (issue 11): trusted payers get a daily free
// budget, paid from a shared pool that is credited a share of every paid
// invoice. This file holds the pure rules: trust tiers, the free / partial /
// gate decision, the credit share. The store moves the money atomically.

// TrustTier is how much a payer is trusted with free service.
type TrustTier string

// Trust tiers, lowest first.
const (
	TierNew         TrustTier = "new"
	TierEstablished TrustTier = "established"
	TierTrusted     TrustTier = "trusted"
	TierElite       TrustTier = "elite"
)

// TrustTiers lists the tiers lowest first.
var TrustTiers = []TrustTier{TierNew, TierEstablished, TierTrusted, TierElite}

// rank is a tier's position in TrustTiers (-1: not a tier).
func (t TrustTier) rank() int {
	for i, x := range TrustTiers {
		if x == t {
			return i
		}
	}
	return -1
}

// ParseTrustTier checks a tier name (case-insensitive).
func ParseTrustTier(s string) (TrustTier, error) {
	t := TrustTier(strings.ToLower(strings.TrimSpace(s)))
	if t.rank() < 0 {
		return "", invalid("tier", "%q is not one of new, established, trusted, elite", s)
	}
	return t, nil
}

// BasisPoints is the unit of the credit share: 10000 is all of it.
const BasisPoints int64 = 10_000

// DayWindow is the length of a payer's daily budget window: it starts at
// the payer's first grant after the previous window ended.
const DayWindow = 24 * time.Hour

// TierRule is one tier's daily budget and what a payer's paid history must
// reach for it (the new tier's requirements are ignored: everyone has it).
type TierRule struct {
	// DailyBudget is the free amount per 24-hour window, in minor units of
	// the pool's currency.
	DailyBudget int64 `json:"daily_budget"`
	// PaidInvoices is the least number of paid invoices.
	PaidInvoices int64 `json:"paid_invoices,omitempty"`
	// MinAge is the least age of the payer's account.
	MinAge time.Duration `json:"min_age,omitempty"`
}

// PoolConfig is the pool's configuration (config/pool.json, BILLFLOW_POOL).
type PoolConfig struct {
	// Currency is the pool's currency: payers in another currency are gated.
	Currency Currency `json:"currency"`
	// CreditShareBps is the share of every paid invoice credited to the pool,
	// in basis points (1000 = 10%).
	CreditShareBps int64 `json:"credit_share_bps"`
	// LowFloor is the balance under which the pool is low (pool.low).
	LowFloor int64 `json:"low_balance_floor"`
	// DecayAfter: each full DecayAfter without a paid invoice drops the
	// derived tier by one (zero: no decay). A pinned tier never decays.
	DecayAfter time.Duration `json:"decay_after,omitempty"`
	// Tiers has a rule for each of the four tiers.
	Tiers map[TrustTier]TierRule `json:"tiers"`
}

// DefaultPoolConfig is the pool's configuration when no file is given: new
// payers get nothing; established, trusted and elite 50, 200 and 1000 minor
// units a day; 10% of every paid invoice goes to the pool.
func DefaultPoolConfig() PoolConfig {
	return PoolConfig{
		Currency:       "usd",
		CreditShareBps: 1000,
		LowFloor:       1000,
		DecayAfter:     90 * 24 * time.Hour,
		Tiers: map[TrustTier]TierRule{
			TierNew:         {DailyBudget: 0},
			TierEstablished: {DailyBudget: 50, PaidInvoices: 1, MinAge: 7 * 24 * time.Hour},
			TierTrusted:     {DailyBudget: 200, PaidInvoices: 3, MinAge: 30 * 24 * time.Hour},
			TierElite:       {DailyBudget: 1000, PaidInvoices: 12, MinAge: 180 * 24 * time.Hour},
		},
	}
}

// Validate checks a pool configuration: every tier has a rule, amounts are
// within range, and a higher tier never asks less than a lower one.
func (c PoolConfig) Validate() error {
	if _, err := ParseCurrency(string(c.Currency)); err != nil {
		return invalid("pool.currency", "%q is not a supported three-letter ISO 4217 code", c.Currency)
	}
	if c.CreditShareBps < 0 || c.CreditShareBps > BasisPoints {
		return invalid("pool.credit_share_bps", "%d is not between 0 and %d basis points", c.CreditShareBps, BasisPoints)
	}
	if c.LowFloor < 0 || c.LowFloor > MaxPlanAmount {
		return invalid("pool.low_balance_floor", "%d is not between 0 and %d", c.LowFloor, MaxPlanAmount)
	}
	if c.DecayAfter < 0 {
		return invalid("pool.decay_after", "%s is negative", c.DecayAfter)
	}
	for t := range c.Tiers {
		if t.rank() < 0 {
			return invalid("pool.tiers", "%q is not one of new, established, trusted, elite", t)
		}
	}
	var prev TierRule
	for i, t := range TrustTiers {
		r, ok := c.Tiers[t]
		field := "pool.tiers." + string(t)
		switch {
		case !ok:
			return invalid(field, "is missing (every tier needs a rule)")
		case r.DailyBudget < 0 || r.DailyBudget > MaxPlanAmount:
			return invalid(field+".daily_budget", "%d is not between 0 and %d", r.DailyBudget, MaxPlanAmount)
		case r.PaidInvoices < 0:
			return invalid(field+".paid_invoices", "%d is negative", r.PaidInvoices)
		case r.MinAge < 0:
			return invalid(field+".min_age", "%s is negative", r.MinAge)
		}
		if i > 1 && (r.PaidInvoices < prev.PaidInvoices || r.MinAge < prev.MinAge) {
			return invalid(field, "asks less paid history than the tier below it")
		}
		if i > 0 {
			prev = r
		}
	}
	return nil
}

// Budget is a tier's daily free budget.
func (c PoolConfig) Budget(t TrustTier) int64 { return c.Tiers[t].DailyBudget }

// poolFile is the configuration as its JSON file writes it: durations as Go
// duration strings ("168h").
type poolFile struct {
	Currency       string                  `json:"currency"`
	CreditShareBps *int64                  `json:"credit_share_bps"`
	LowFloor       int64                   `json:"low_balance_floor"`
	DecayAfter     string                  `json:"decay_after"`
	Tiers          map[string]poolFileTier `json:"tiers"`
}

type poolFileTier struct {
	DailyBudget  int64  `json:"daily_budget"`
	PaidInvoices int64  `json:"paid_invoices"`
	MinAge       string `json:"min_age"`
}

// ParsePoolConfig reads a pool configuration file; unknown fields, missing
// tiers and malformed durations are errors naming the field.
func ParsePoolConfig(data []byte) (PoolConfig, error) {
	var f poolFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return PoolConfig{}, fmt.Errorf("parse pool configuration: %w", err)
	}
	if f.CreditShareBps == nil {
		return PoolConfig{}, invalid("pool.credit_share_bps", "is missing (0 turns the invoice share off)")
	}
	c := PoolConfig{Currency: Currency(strings.ToLower(strings.TrimSpace(f.Currency))), CreditShareBps: *f.CreditShareBps,
		LowFloor: f.LowFloor, Tiers: map[TrustTier]TierRule{}}
	var err error
	if c.DecayAfter, err = parseOptDuration("pool.decay_after", f.DecayAfter); err != nil {
		return PoolConfig{}, err
	}
	for name, ft := range f.Tiers {
		t, err := ParseTrustTier(name)
		if err != nil {
			return PoolConfig{}, invalid("pool.tiers", "%q is not one of new, established, trusted, elite", name)
		}
		r := TierRule{DailyBudget: ft.DailyBudget, PaidInvoices: ft.PaidInvoices}
		if r.MinAge, err = parseOptDuration("pool.tiers."+string(t)+".min_age", ft.MinAge); err != nil {
			return PoolConfig{}, err
		}
		c.Tiers[t] = r
	}
	return c, c.Validate()
}

func parseOptDuration(field, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, invalid(field, "%q is not a duration (e.g. 720h)", s)
	}
	return d, nil
}

// PaidHistory is what a payer's trust tier is derived from.
type PaidHistory struct {
	// PaidInvoices counts the payer's paid invoices (top-ups excluded).
	PaidInvoices int64 `json:"paid_invoices"`
	// Since is when the payer's account was created.
	Since time.Time `json:"since"`
	// LastPaidAt is the latest paid invoice's instant (zero: none).
	LastPaidAt time.Time `json:"last_paid_at,omitzero"`
}

// DeriveTier is the tier a paid history earns at now: the highest tier
// whose paid-invoice count and account age it reaches, then one tier lower
// for each full DecayAfter since the last paid invoice (or since the
// account was created, when nothing was ever paid).
func (c PoolConfig) DeriveTier(h PaidHistory, now time.Time) TrustTier {
	age := now.Sub(h.Since)
	earned := 0
	for i := 1; i < len(TrustTiers); i++ {
		r := c.Tiers[TrustTiers[i]]
		if h.PaidInvoices >= r.PaidInvoices && age >= r.MinAge {
			earned = i
		}
	}
	if c.DecayAfter > 0 && earned > 0 {
		last := h.LastPaidAt
		if last.IsZero() {
			last = h.Since
		}
		if idle := now.Sub(last); idle >= c.DecayAfter {
			earned -= int(min(int64(idle/c.DecayAfter), int64(earned)))
		}
	}
	return TrustTiers[earned]
}

// TierFor is the payer's tier: the pinned one when an operator pinned it
// (pinned non-empty), else the derived one.
func (c PoolConfig) TierFor(h PaidHistory, pinned TrustTier, now time.Time) TrustTier {
	if pinned != "" {
		return pinned
	}
	return c.DeriveTier(h, now)
}

// Serve is a pool decision's verdict.
type Serve string

// Pool decisions.
const (
	// ServeFree: the pool covers the whole estimate.
	ServeFree Serve = "free"
	// ServePartial: the pool covers part, the payer pays the rest first.
	ServePartial Serve = "partial"
	// ServeGate: the pool covers nothing; the payer pays in full.
	ServeGate Serve = "gate"
)

// PoolDecision is what the pool absorbs of an estimate and what the payer
// is charged: Absorb + Charge = the estimate.
type PoolDecision struct {
	Serve  Serve `json:"serve"`
	Absorb int64 `json:"absorb"`
	Charge int64 `json:"charge"`
}

// DailyRemaining is what is left of a daily budget after absorbed (never
// below zero).
func DailyRemaining(budget, absorbed int64) int64 {
	if absorbed >= budget {
		return 0
	}
	return budget - absorbed
}

// Decide is the pool's verdict on an estimated cost: absorb = min(daily
// remaining, pool balance, estimated); all of it is free, some of it
// partial, none of it (or an estimate of 0) a gate. Negative inputs are
// errors naming which.
func Decide(dailyRemaining, poolBalance, estimated int64) (PoolDecision, error) {
	switch {
	case dailyRemaining < 0:
		return PoolDecision{}, invalid("daily_remaining", "%d is negative", dailyRemaining)
	case poolBalance < 0:
		return PoolDecision{}, invalid("pool_balance", "%d is negative", poolBalance)
	case estimated < 0:
		return PoolDecision{}, invalid("estimated", "%d is negative", estimated)
	}
	absorb := min(dailyRemaining, poolBalance, estimated)
	d := PoolDecision{Absorb: absorb, Charge: estimated - absorb}
	switch {
	case absorb == 0:
		d.Serve = ServeGate
	case absorb == estimated:
		d.Serve = ServeFree
	default:
		d.Serve = ServePartial
	}
	return d, nil
}

// CreditShare is floor(amount * bps / 10000): the pool's share of a paid
// amount, exact in 128 bits, rounded down so the pool never gets more than
// its share. amount is not negative; bps is between 0 and 10000.
func CreditShare(amount, bps int64) (int64, error) {
	if amount < 0 {
		return 0, invalid("amount", "%d is negative", amount)
	}
	if bps < 0 || bps > BasisPoints {
		return 0, invalid("credit_share_bps", "%d is not between 0 and %d", bps, BasisPoints)
	}
	hi, lo := bits.Mul64(uint64(amount), uint64(bps))
	// hi < 10000 always (amount < 2^63, bps <= 10000), so Div64 cannot
	// panic, and the quotient is at most amount: it fits in int64.
	q, _ := bits.Div64(hi, lo, uint64(BasisPoints))
	return int64(q), nil
}

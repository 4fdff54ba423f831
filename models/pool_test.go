package models_test

import (
	"errors"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/billflow/billflow/models"
)

// TestDecideTable covers each branch of the decision and the edge amounts:
// 0, 1, exactly the daily budget left, exactly the pool's balance.
func TestDecideTable(t *testing.T) {
	cases := []struct {
		name                       string
		remaining, pool, estimated int64
		serve                      models.Serve
		absorb, charge             int64
	}{
		{"estimate 0 is a gate", 100, 100, 0, models.ServeGate, 0, 0},
		{"no budget left", 0, 100, 10, models.ServeGate, 0, 10},
		{"empty pool", 100, 0, 10, models.ServeGate, 0, 10},
		{"both empty", 0, 0, 1, models.ServeGate, 0, 1},
		{"estimate 1, room", 1, 1, 1, models.ServeFree, 1, 0},
		{"well within both", 100, 1000, 30, models.ServeFree, 30, 0},
		{"exactly the daily budget left", 30, 1000, 30, models.ServeFree, 30, 0},
		{"exactly the pool", 1000, 30, 30, models.ServeFree, 30, 0},
		{"exactly both", 30, 30, 30, models.ServeFree, 30, 0},
		{"one over the daily budget", 30, 1000, 31, models.ServePartial, 30, 1},
		{"one over the pool", 1000, 30, 31, models.ServePartial, 30, 1},
		{"budget limits below the pool", 20, 50, 100, models.ServePartial, 20, 80},
		{"pool limits below the budget", 50, 20, 100, models.ServePartial, 20, 80},
		{"budget 1 left", 1, 100, 5, models.ServePartial, 1, 4},
		{"pool holds 1", 100, 1, 5, models.ServePartial, 1, 4},
		{"huge amounts", math.MaxInt64, math.MaxInt64, math.MaxInt64, models.ServeFree, math.MaxInt64, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := models.Decide(c.remaining, c.pool, c.estimated)
			mustNil(t, err)
			want := models.PoolDecision{Serve: c.serve, Absorb: c.absorb, Charge: c.charge}
			if d != want {
				t.Fatalf("Decide(%d, %d, %d) = %+v, want %+v", c.remaining, c.pool, c.estimated, d, want)
			}
		})
	}
}

func TestDecideRefusesNegatives(t *testing.T) {
	for _, c := range []struct {
		field   string
		r, p, e int64
	}{{"daily_remaining", -1, 0, 0}, {"pool_balance", 0, -1, 0}, {"estimated", 0, 0, -1}} {
		_, err := models.Decide(c.r, c.p, c.e)
		var ve *models.ValidationError
		if !errors.As(err, &ve) || ve.Field != c.field {
			t.Errorf("Decide(%d, %d, %d): want a ValidationError on %s, got %v", c.r, c.p, c.e, c.field, err)
		}
	}
}

// TestDecideProperties: absorb + charge is the estimate; absorb never
// exceeds the budget left, the pool or the estimate, and is the largest
// that does not; the verdict follows from absorb.
func TestDecideProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		amount := func(label string) int64 {
			if rapid.Bool().Draw(t, label+" small") {
				return rapid.Int64Range(0, 50).Draw(t, label)
			}
			return rapid.Int64Range(0, math.MaxInt64).Draw(t, label)
		}
		r, p, e := amount("remaining"), amount("pool"), amount("estimated")
		d, err := models.Decide(r, p, e)
		if err != nil {
			t.Fatal(err)
		}
		if d.Absorb+d.Charge != e || d.Absorb < 0 || d.Charge < 0 {
			t.Fatalf("absorb %d + charge %d != estimated %d", d.Absorb, d.Charge, e)
		}
		if d.Absorb > r || d.Absorb > p || d.Absorb > e {
			t.Fatalf("absorb %d exceeds remaining %d, pool %d or estimate %d", d.Absorb, r, p, e)
		}
		if d.Absorb != r && d.Absorb != p && d.Absorb != e {
			t.Fatalf("absorb %d is not the least of %d, %d, %d", d.Absorb, r, p, e)
		}
		switch {
		case d.Absorb == 0 && d.Serve != models.ServeGate,
			d.Absorb > 0 && d.Absorb == e && d.Serve != models.ServeFree,
			d.Absorb > 0 && d.Absorb < e && d.Serve != models.ServePartial:
			t.Fatalf("verdict %s for absorb %d of %d", d.Serve, d.Absorb, e)
		}
	})
}

func TestDailyRemaining(t *testing.T) {
	for _, c := range []struct{ budget, absorbed, want int64 }{
		{100, 0, 100}, {100, 99, 1}, {100, 100, 0}, {100, 150, 0}, {0, 0, 0},
	} {
		if got := models.DailyRemaining(c.budget, c.absorbed); got != c.want {
			t.Errorf("DailyRemaining(%d, %d) = %d, want %d", c.budget, c.absorbed, got, c.want)
		}
	}
}

func TestCreditShare(t *testing.T) {
	for _, c := range []struct{ amount, bps, want int64 }{
		{1000, 1000, 100}, // 10%
		{999, 1000, 99},   // rounded down
		{1, 9999, 0},      // less than one minor unit: nothing
		{1, 10000, 1},     // all of it
		{12345, 0, 0},     // share off
		{0, 1000, 0},      // nothing paid
		{12345, 1, 1},     // 1 bps of 12345 = 1.2345
		{math.MaxInt64, 10000, math.MaxInt64},
		{math.MaxInt64, 9999, 9222449699651090329}, // exact beyond 64-bit products
	} {
		got, err := models.CreditShare(c.amount, c.bps)
		mustNil(t, err)
		if got != c.want {
			t.Errorf("CreditShare(%d, %d) = %d, want %d", c.amount, c.bps, got, c.want)
		}
	}
	for _, c := range []struct {
		amount, bps int64
		field       string
	}{{-1, 100, "amount"}, {100, -1, "credit_share_bps"}, {100, 10001, "credit_share_bps"}} {
		_, err := models.CreditShare(c.amount, c.bps)
		var ve *models.ValidationError
		if !errors.As(err, &ve) || ve.Field != c.field {
			t.Errorf("CreditShare(%d, %d): want a ValidationError on %s, got %v", c.amount, c.bps, c.field, err)
		}
	}
}

// TestCreditShareProperty: the share is floor(amount * bps / 10000),
// checked against big integers, for every amount and share.
func TestCreditShareProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		amount := rapid.Int64Range(0, math.MaxInt64).Draw(t, "amount")
		bps := rapid.Int64Range(0, 10000).Draw(t, "bps")
		got, err := models.CreditShare(amount, bps)
		if err != nil {
			t.Fatal(err)
		}
		want := new(big.Int).Mul(big.NewInt(amount), big.NewInt(bps))
		want.Quo(want, big.NewInt(10000))
		if !want.IsInt64() || want.Int64() != got {
			t.Fatalf("CreditShare(%d, %d) = %d, want %s", amount, bps, got, want)
		}
		if got > amount {
			t.Fatalf("share %d above the amount %d", got, amount)
		}
	})
}

var poolNow = ts("2026-06-01T00:00:00Z")

const day = 24 * time.Hour

func TestDeriveTier(t *testing.T) {
	cfg := models.DefaultPoolConfig() // established 1 paid/7d, trusted 3/30d, elite 12/180d, decay 90d
	paid := func(n int64, age, idle time.Duration) models.PaidHistory {
		h := models.PaidHistory{PaidInvoices: n, Since: poolNow.Add(-age)}
		if n > 0 {
			h.LastPaidAt = poolNow.Add(-idle)
		}
		return h
	}
	for _, c := range []struct {
		name string
		h    models.PaidHistory
		want models.TrustTier
	}{
		{"brand new", paid(0, 0, 0), models.TierNew},
		{"old but never paid", paid(0, 400*day, 0), models.TierNew},
		{"paid once, too young", paid(1, 6*day, 0), models.TierNew},
		{"paid once, exactly 7 days", paid(1, 7*day, 0), models.TierEstablished},
		{"many paid, young", paid(50, 10*day, 0), models.TierEstablished},
		{"3 paid, 30 days", paid(3, 30*day, 0), models.TierTrusted},
		{"12 paid, 180 days", paid(12, 180*day, day), models.TierElite},
		{"11 paid, 400 days", paid(11, 400*day, day), models.TierTrusted},
		{"elite idle 89 days keeps its tier", paid(12, 400*day, 89*day), models.TierElite},
		{"elite idle 90 days drops one", paid(12, 400*day, 90*day), models.TierTrusted},
		{"elite idle 180 days drops two", paid(12, 400*day, 180*day), models.TierEstablished},
		{"elite idle a year is new", paid(12, 800*day, 365*day), models.TierNew},
		{"established idle 90 days is new", paid(1, 200*day, 90*day), models.TierNew},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := cfg.DeriveTier(c.h, poolNow); got != c.want {
				t.Fatalf("DeriveTier(%+v) = %s, want %s", c.h, got, c.want)
			}
		})
	}
	noDecay := cfg
	noDecay.DecayAfter = 0
	if got := noDecay.DeriveTier(paid(12, 800*day, 700*day), poolNow); got != models.TierElite {
		t.Fatalf("without decay an idle elite payer is %s", got)
	}
	if got := cfg.TierFor(paid(0, 0, 0), models.TierElite, poolNow); got != models.TierElite {
		t.Fatalf("a pinned tier is %s", got)
	}
	if got := cfg.TierFor(paid(3, 30*day, 0), "", poolNow); got != models.TierTrusted {
		t.Fatalf("an unpinned tier is %s", got)
	}
}

// TestDeriveTierMonotone: more paid invoices, an older account or a more
// recent payment never lower the tier.
func TestDeriveTierMonotone(t *testing.T) {
	cfg := models.DefaultPoolConfig()
	rank := map[models.TrustTier]int{}
	for i, tier := range models.TrustTiers {
		rank[tier] = i
	}
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.Int64Range(0, 30).Draw(t, "paid")
		age := time.Duration(rapid.Int64Range(0, 1000).Draw(t, "age days")) * day
		idle := time.Duration(rapid.Int64Range(0, 1000).Draw(t, "idle days")) * day
		h := models.PaidHistory{PaidInvoices: n, Since: poolNow.Add(-age), LastPaidAt: poolNow.Add(-min(idle, age))}
		base := rank[cfg.DeriveTier(h, poolNow)]
		more := h
		more.PaidInvoices++
		older := h
		older.Since = older.Since.Add(-day)
		fresher := h
		fresher.LastPaidAt = poolNow
		for name, hh := range map[string]models.PaidHistory{"more paid": more, "older": older, "paid now": fresher} {
			if r := rank[cfg.DeriveTier(hh, poolNow)]; r < base {
				t.Fatalf("%s lowered the tier from %d to %d", name, base, r)
			}
		}
	})
}

func TestParseTrustTier(t *testing.T) {
	for _, s := range []string{"new", "Established", " trusted ", "ELITE"} {
		if _, err := models.ParseTrustTier(s); err != nil {
			t.Errorf("ParseTrustTier(%q): %v", s, err)
		}
	}
	if _, err := models.ParseTrustTier("gold"); err == nil || !strings.Contains(err.Error(), "gold") {
		t.Errorf("ParseTrustTier(gold): want an error naming it, got %v", err)
	}
}

// TestPoolConfigFile: the shipped config/pool.json is valid and matches
// the defaults' shape.
func TestPoolConfigFile(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "config", "pool.json"))
	mustNil(t, err)
	c, err := models.ParsePoolConfig(data)
	mustNil(t, err)
	if c.Currency != "usd" || c.CreditShareBps != 1000 || c.Budget(models.TierNew) != 0 || c.Budget(models.TierElite) != 1000 ||
		c.Tiers[models.TierTrusted].MinAge != 30*day || c.DecayAfter != 90*day {
		t.Fatalf("config/pool.json read as %+v", c)
	}
	mustNil(t, models.DefaultPoolConfig().Validate())
}

func TestParsePoolConfigErrors(t *testing.T) {
	valid := `"tiers": {"new": {"daily_budget": 0}, "established": {"daily_budget": 5, "paid_invoices": 1},
		"trusted": {"daily_budget": 10, "paid_invoices": 2}, "elite": {"daily_budget": 20, "paid_invoices": 3}}`
	for _, c := range []struct{ doc, want string }{
		{`{"currency": "usd", "credit_share_bps": 100, ` + valid + `}`, ""},
		{`{"currency": "usd", ` + valid + `}`, "pool.credit_share_bps"},
		{`{"currency": "usd", "credit_share_bps": 10001, ` + valid + `}`, "pool.credit_share_bps"},
		{`{"currency": "usd", "credit_share_bps": 10.5, ` + valid + `}`, "credit_share_bps"},
		{`{"currency": "xyz", "credit_share_bps": 100, ` + valid + `}`, "pool.currency"},
		{`{"currency": "usd", "credit_share_bps": 100, "low_balance_floor": -1, ` + valid + `}`, "pool.low_balance_floor"},
		{`{"currency": "usd", "credit_share_bps": 100, "decay_after": "ninety days", ` + valid + `}`, "pool.decay_after"},
		{`{"currency": "usd", "credit_share_bps": 100, "colour": "red", ` + valid + `}`, "colour"},
		{`{"currency": "usd", "credit_share_bps": 100, "tiers": {"new": {"daily_budget": 0}}}`, "pool.tiers.established"},
		{`{"currency": "usd", "credit_share_bps": 100, "tiers": {"gold": {"daily_budget": 0}}}`, "gold"},
		{`{"currency": "usd", "credit_share_bps": 100, "tiers": {"new": {"daily_budget": -1}, "established": {"daily_budget": 5},
			"trusted": {"daily_budget": 10}, "elite": {"daily_budget": 20}}}`, "pool.tiers.new.daily_budget"},
		{`{"currency": "usd", "credit_share_bps": 100, "tiers": {"new": {"daily_budget": 0}, "established": {"daily_budget": 5, "paid_invoices": 4},
			"trusted": {"daily_budget": 10, "paid_invoices": 2}, "elite": {"daily_budget": 20, "paid_invoices": 5}}}`, "pool.tiers.trusted"},
		{`{"currency": "usd", "credit_share_bps": 100, "tiers": {"new": {"daily_budget": 0}, "established": {"daily_budget": 5, "min_age": "1x"},
			"trusted": {"daily_budget": 10}, "elite": {"daily_budget": 20}}}`, "pool.tiers.established.min_age"},
	} {
		_, err := models.ParsePoolConfig([]byte(c.doc))
		if c.want == "" {
			if err != nil {
				t.Errorf("%s: %v", c.doc, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: want an error naming %s, got %v", c.doc, c.want, err)
		}
	}
}

package models_test

import (
	"math"
	"math/big"
	"slices"
	"testing"
	"time"

	"github.com/billflow/billflow/models"
	"pgregory.net/rapid"
)

// April 2026 has 30 days: a clean period for hand computations.
var april = models.Period{Index: 0, Start: ts("2026-04-01T00:00:00Z"), End: ts("2026-05-01T00:00:00Z")}

// fixedPeriod is a period of n seconds starting at 2026-01-01T00:00:00Z.
func fixedPeriod(n int64) models.Period {
	s := ts("2026-01-01T00:00:00Z")
	return models.Period{Start: s, End: s.Add(secs(n))}
}

// DESIGN 4 "Proration": amount * (S_{k+1} - t) / (S_{k+1} - S_k), rounded half
// away from zero, exact integers. Each want is computed by hand in the comment.
func TestProrateExact(t *testing.T) {
	cases := []struct {
		name   string
		amount int64
		p      models.Period
		t      string
		want   int64
	}{
		{"at period start: full price", 1000, april, "2026-04-01T00:00:00Z", 1000},
		{"1/3 elapsed: 1000*20/30 = 666.67 -> 667", 1000, april, "2026-04-11T00:00:00Z", 667},
		{"2/3 elapsed: 1000*10/30 = 333.33 -> 333", 1000, april, "2026-04-21T00:00:00Z", 333},
		{"half: 1000*15/30 = 500", 1000, april, "2026-04-16T00:00:00Z", 500},
		{"half-cent up: 1001*15/30 = 500.5 -> 501", 1001, april, "2026-04-16T00:00:00Z", 501},
		{"half-cent up: 999*15/30 = 499.5 -> 500", 999, april, "2026-04-16T00:00:00Z", 500},
		{"half-cent: 1*15/30 = 0.5 -> 1", 1, april, "2026-04-16T00:00:00Z", 1},
		{"last second: 1000*1/2592000 -> 0", 1000, april, "2026-04-30T23:59:59Z", 0},
		{"last second of a big price: 2592000*1/2592000 = 1", 2592000, april, "2026-04-30T23:59:59Z", 1},
		{"credit half-cent: -1001*15/30 = -500.5 -> -501", -1001, april, "2026-04-16T00:00:00Z", -501},
		{"credit: -1000*20/30 = -666.67 -> -667", -1000, april, "2026-04-11T00:00:00Z", -667},
		{"credit: -1000*10/30 = -333.33 -> -333", -1000, april, "2026-04-21T00:00:00Z", -333},
		{"zero price", 0, april, "2026-04-11T00:00:00Z", 0},
		// 31-day January: 3100 * 21/31 = 2100 exactly.
		{"31-day month", 3100, models.Period{Start: ts("2026-01-01T00:00:00Z"), End: ts("2026-02-01T00:00:00Z")}, "2026-01-11T00:00:00Z", 2100},
		// Leap February: 29 days, 15 remaining from Feb 15: 2900*15/29 = 1500.
		{"leap February", 2900, models.Period{Start: ts("2024-02-01T00:00:00Z"), End: ts("2024-03-01T00:00:00Z")}, "2024-02-15T00:00:00Z", 1500},
		// Clamped period [Jan 31 10:00, Feb 28 10:00) is 28 days; 14 left: 3000*14/28.
		{"clamped month-end period", 3000, models.Period{Start: ts("2026-01-31T10:00:00Z"), End: ts("2026-02-28T10:00:00Z")}, "2026-02-14T10:00:00Z", 1500},
		// Fixed 2 s period at 1 s: 1/2 = 0.5 -> 1; 3/2 = 1.5 -> 2; -3/2 -> -2.
		{"2s: 1 * 1/2 -> 1", 1, fixedPeriod(2), "2026-01-01T00:00:01Z", 1},
		{"2s: 3 * 1/2 -> 2", 3, fixedPeriod(2), "2026-01-01T00:00:01Z", 2},
		{"2s: -3 * 1/2 -> -2", -3, fixedPeriod(2), "2026-01-01T00:00:01Z", -2},
		{"2s: -1 * 1/2 -> -1", -1, fixedPeriod(2), "2026-01-01T00:00:01Z", -1},
		// Fixed 4 s: 5*2/4 = 2.5 -> 3; 5*1/4 = 1.25 -> 1; 5*3/4 = 3.75 -> 4.
		{"4s: 5 * 2/4 -> 3", 5, fixedPeriod(4), "2026-01-01T00:00:02Z", 3},
		{"4s: 5 * 1/4 -> 1", 5, fixedPeriod(4), "2026-01-01T00:00:03Z", 1},
		{"4s: 5 * 3/4 -> 4", 5, fixedPeriod(4), "2026-01-01T00:00:01Z", 4},
		// Instants truncate to whole seconds first: at 1.9 s of a 3 s period
		// 2 s remain (1 * 2/3 = 0.67 -> 1), not 1.1 s (which would give 0).
		{"truncated to seconds", 1, fixedPeriod(3), "2026-01-01T00:00:01.9Z", 1},
		// 10-minute period, 4 min elapsed: 1000 * 360/600 = 600.
		{"10 minutes", 1000, fixedPeriod(600), "2026-01-01T00:04:00Z", 600},
		// No overflow: MaxInt64 * 15 days would not fit in an int64.
		// MaxInt64 / 2 = 4611686018427387903.5 -> ...904.
		{"no overflow", math.MaxInt64, april, "2026-04-16T00:00:00Z", 4611686018427387904},
		{"no overflow, full", math.MaxInt64, april, "2026-04-01T00:00:00Z", math.MaxInt64},
		{"no overflow, credit", -math.MaxInt64, april, "2026-04-16T00:00:00Z", -4611686018427387904},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := models.Prorate(c.amount, c.p, ts(c.t)); got != c.want {
				t.Errorf("Prorate(%d, [%s, %s), %s) = %d, want %d", c.amount, c.p.Start, c.p.End, c.t, got, c.want)
			}
		})
	}
}

func TestDivRoundHalfAway(t *testing.T) {
	cases := []struct{ n, d, want int64 }{
		{0, 5, 0},
		{1, 3, 0}, {-1, 3, 0},
		{1, 2, 1}, {-1, 2, -1},
		{4, 3, 1}, {-4, 3, -1},
		{5, 3, 2}, {-5, 3, -2},
		{5, 2, 3}, {-5, 2, -3},
		{7, 2, 4}, {-7, 2, -4},
		{14, 10, 1}, {-14, 10, -1},
		{15, 10, 2}, {-15, 10, -2},
		{16, 10, 2}, {-16, 10, -2},
		{25, 10, 3}, {-25, 10, -3}, // not banker's rounding (which gives 2)
		{10, 10, 1}, {-10, 10, -1},
		{math.MaxInt64, 1, math.MaxInt64},
		{math.MinInt64, 1, math.MinInt64},
		{math.MaxInt64, 2, 4611686018427387904},
		{math.MinInt64, 2, -4611686018427387904},
	}
	for _, c := range cases {
		n, d := big.NewInt(c.n), big.NewInt(c.d)
		got := models.DivRoundHalfAway(n, d)
		if !got.IsInt64() || got.Int64() != c.want {
			t.Errorf("DivRoundHalfAway(%d, %d) = %s, want %d", c.n, c.d, got, c.want)
		}
		if n.Int64() != c.n || d.Int64() != c.d {
			t.Errorf("DivRoundHalfAway(%d, %d) changed its arguments to %s, %s", c.n, c.d, n, d)
		}
	}
	// Beyond int64: (2^80 + 2^79) / 2^80 = 1.5 -> 2; negated -> -2.
	p80 := new(big.Int).Lsh(big.NewInt(1), 80)
	n := new(big.Int).Add(p80, new(big.Int).Lsh(big.NewInt(1), 79))
	if got := models.DivRoundHalfAway(n, p80); got.Cmp(big.NewInt(2)) != 0 {
		t.Errorf("1.5 in big integers rounded to %s, want 2", got)
	}
	if got := models.DivRoundHalfAway(new(big.Int).Neg(n), p80); got.Cmp(big.NewInt(-2)) != 0 {
		t.Errorf("-1.5 in big integers rounded to %s, want -2", got)
	}
}

func TestDivRoundHalfAwayPanicsOnNonPositiveDivisor(t *testing.T) {
	for _, d := range []int64{0, -1} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("DivRoundHalfAway(1, %d) did not panic", d)
				}
			}()
			models.DivRoundHalfAway(big.NewInt(1), big.NewInt(d))
		}()
	}
}

// Property: DivRoundHalfAway agrees with an independent formula, and its
// error is at most half the divisor, ties going away from zero.
func TestPropertyDivRoundHalfAway(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := big.NewInt(rapid.Int64().Draw(t, "n"))
		d := big.NewInt(rapid.OneOf(rapid.Int64Range(1, 20), rapid.Int64Range(1, math.MaxInt64)).Draw(t, "d"))
		q := models.DivRoundHalfAway(n, d)
		if want := refRound(n, d); q.Cmp(want) != 0 {
			t.Fatalf("DivRoundHalfAway(%s, %s) = %s, want %s", n, d, q, want)
		}
		// |n - q*d| * 2 <= d
		diff := new(big.Int).Sub(n, new(big.Int).Mul(q, d))
		twice := new(big.Int).Lsh(new(big.Int).Abs(diff), 1)
		switch twice.Cmp(d) {
		case 1:
			t.Fatalf("DivRoundHalfAway(%s, %s) = %s is more than half off", n, d, q)
		case 0: // a tie: |q*d| must exceed |n|
			if new(big.Int).Abs(new(big.Int).Mul(q, d)).Cmp(new(big.Int).Abs(n)) <= 0 {
				t.Fatalf("tie DivRoundHalfAway(%s, %s) = %s rounded toward zero", n, d, q)
			}
		}
	})
}

// drawPeriod draws a calendar-month period (any anchor, k in [0, 600)) or a
// fixed-length one.
func drawPeriod(t *rapid.T) models.Period {
	anchor := drawAnchor(t, "anchor")
	k := rapid.IntRange(0, 599).Draw(t, "k")
	if rapid.Bool().Draw(t, "monthly") {
		return models.Schedule{Anchor: anchor}.Period(k)
	}
	fixed := rapid.Int64Range(1, 40*86400).Draw(t, "fixedSeconds")
	return models.Schedule{Anchor: anchor, Fixed: secs(fixed)}.Period(k)
}

func drawAmount(t *rapid.T, label string) int64 {
	return rapid.OneOf(
		rapid.Int64Range(0, 10),
		rapid.Int64Range(0, 1_000_000),
		rapid.Int64Range(0, math.MaxInt64),
	).Draw(t, label)
}

// Property: for any instant t in a period, Prorate matches the oracle, lies in
// [0, a] for a >= 0, is a at the start, never increases as t moves on, and a
// credit is the exact negation of the charge.
func TestPropertyProrate(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		p := drawPeriod(t)
		a := drawAmount(t, "amount")
		length := int64(p.Length() / time.Second)
		o1 := rapid.Int64Range(0, length-1).Draw(t, "offset1")
		o2 := rapid.Int64Range(o1, length-1).Draw(t, "offset2")
		t1, t2 := p.Start.Add(secs(o1)), p.Start.Add(secs(o2))

		if got := models.Prorate(a, p, p.Start); got != a {
			t.Fatalf("Prorate(%d, p, start) = %d, want the full amount", a, got)
		}
		v1, v2 := models.Prorate(a, p, t1), models.Prorate(a, p, t2)
		if want := refProrate(a, p.Start, p.End, t1); v1 != want {
			t.Fatalf("Prorate(%d, %v, %s) = %d, oracle says %d", a, p, t1, v1, want)
		}
		if v1 < 0 || v1 > a {
			t.Fatalf("Prorate(%d, ...) = %d is outside [0, %d]", a, v1, a)
		}
		if v2 > v1 {
			t.Fatalf("Prorate increased from %d at %s to %d at %s", v1, t1, v2, t2)
		}
		if neg := models.Prorate(-a, p, t1); neg != -v1 {
			t.Fatalf("Prorate(-%d) = %d, want %d", a, neg, -v1)
		}
	})
}

// Property: split a period at any instants t_1 < ... (t_0 = start, t_m = end).
// The prorations over the sub-intervals, Prorate(t_i) - Prorate(t_{i+1}),
// telescope to exactly a; and the shares a*(t_{i+1}-t_i)/L rounded one by one
// sum to a within the rounding: |sum - a| <= m/2 + 1.
func TestPropertyProrateSplits(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		p := drawPeriod(t)
		a := rapid.OneOf(rapid.Int64Range(0, 100), rapid.Int64Range(0, 1<<40)).Draw(t, "amount")
		length := int64(p.Length() / time.Second)
		offs := rapid.SliceOfN(rapid.Int64Range(0, length), 0, 30).Draw(t, "splits")
		offs = append(offs, 0, length)
		slices.Sort(offs)
		offs = slices.Compact(offs)

		if got := models.Prorate(a, p, p.End); got != 0 {
			t.Fatalf("Prorate at the period's end = %d, want 0", got)
		}
		var telescoped, rounded int64
		L := big.NewInt(length)
		for i := 0; i+1 < len(offs); i++ {
			ti, tj := p.Start.Add(secs(offs[i])), p.Start.Add(secs(offs[i+1]))
			piece := models.Prorate(a, p, ti) - models.Prorate(a, p, tj)
			if piece < 0 {
				t.Fatalf("sub-interval [%s, %s) has a negative proration %d", ti, tj, piece)
			}
			telescoped += piece
			share := new(big.Int).Mul(big.NewInt(a), big.NewInt(offs[i+1]-offs[i]))
			rounded += models.DivRoundHalfAway(share, L).Int64()
		}
		if telescoped != a {
			t.Fatalf("prorations over %d sub-intervals sum to %d, want %d", len(offs)-1, telescoped, a)
		}
		m := int64(len(offs) - 1)
		diff := rounded - a
		if diff < 0 {
			diff = -diff
		}
		if 2*diff > m+2 {
			t.Fatalf("independently rounded shares sum to %d, off from %d by %d with %d pieces", rounded, a, diff, m)
		}
	})
}

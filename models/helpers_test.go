package models_test

import (
	"errors"
	"maps"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/billflow/billflow/models"
	"pgregory.net/rapid"
)

// This file holds helpers shared by the package's tests, and the independent
// reference computations ("oracles") the tests compare the models code with.
// The oracles deliberately use different formulas from the code under test.

// ts parses an RFC 3339 instant; it panics on a typo in a test table.
func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

// The catalog most tests use. Prices are per full period, in cents.
var testPlans = []models.Plan{
	{ID: "basic", Name: "Basic", Amount: 3000, Currency: "usd"},
	{ID: "pro", Name: "Pro", Amount: 9000, Currency: "usd"},
	{ID: "free", Name: "Free", Amount: 0, Currency: "usd"},
	{ID: "odd", Name: "Odd", Amount: 1001, Currency: "usd"},
	{ID: "cent", Name: "Cent", Amount: 1, Currency: "usd"},
	{ID: "euro", Name: "Euro", Amount: 1000, Currency: "eur"},
}

func testCatalog(t testing.TB) models.Catalog {
	t.Helper()
	c, err := models.NewCatalog(testPlans)
	if err != nil {
		t.Fatalf("NewCatalog: %v", err)
	}
	return c
}

// isLeap is the Gregorian rule, written out rather than asked of package time.
func isLeap(y int) bool { return y%4 == 0 && (y%100 != 0 || y%400 == 0) }

// monthDays is the number of days in month m of year y, from a table.
func monthDays(y int, m time.Month) int {
	days := [...]int{31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}
	if m == time.February && isLeap(y) {
		return 29
	}
	return days[m-1]
}

// addMonths returns the year and month k months after (y, m), by counting
// rather than by division, so it is independent of the code's floorDiv.
func addMonths(y int, m time.Month, k int) (int, time.Month) {
	for ; k > 0; k-- {
		if m == time.December {
			y, m = y+1, time.January
		} else {
			m++
		}
	}
	for ; k < 0; k++ {
		if m == time.January {
			y, m = y-1, time.December
		} else {
			m--
		}
	}
	return y, m
}

// refProrate is the oracle for DESIGN 4 "Proration":
// amount * (end - t) / (end - start), rounded half away from zero, computed
// as sign * floor((2|n| + d) / 2d) in big integers (a different formula from
// the code's quotient-and-remainder).
func refProrate(amount int64, start, end, t time.Time) int64 {
	rem := big.NewInt(int64(end.Sub(t) / time.Second))
	length := big.NewInt(int64(end.Sub(start) / time.Second))
	n := new(big.Int).Mul(big.NewInt(amount), rem)
	return refRound(n, length).Int64()
}

// refRound is n/d rounded half away from zero, d > 0.
func refRound(n, d *big.Int) *big.Int {
	abs := new(big.Int).Abs(n)
	num := new(big.Int).Add(new(big.Int).Lsh(abs, 1), d)
	q := new(big.Int).Div(num, new(big.Int).Lsh(d, 1))
	if n.Sign() < 0 {
		q.Neg(q)
	}
	return q
}

// snapshot deep-copies a ledger so a later state can be compared with it.
func snapshot(l *models.Ledger) models.Ledger {
	c := *l
	c.Resources = maps.Clone(l.Resources)
	return c
}

func sameLedger(a, b models.Ledger) bool {
	return a.Currency == b.Currency && a.Schedule.Anchor.Equal(b.Schedule.Anchor) &&
		a.Schedule.Anchor.IsZero() == b.Schedule.Anchor.IsZero() &&
		a.Schedule.Fixed == b.Schedule.Fixed &&
		maps.EqualFunc(a.Resources, b.Resources, func(x, y models.Resource) bool {
			return x.PlanID == y.PlanID && x.Active == y.Active && x.LastAt.Equal(y.LastAt)
		})
}

// wantValidation asserts err is a *ValidationError whose Field is field and
// whose message contains field and every one of mentions.
func wantValidation(t testing.TB, err error, field string, mentions ...string) *models.ValidationError {
	t.Helper()
	var ve *models.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error = %v (%T), want a *models.ValidationError", err, err)
	}
	if ve.Field != field {
		t.Errorf("ValidationError.Field = %q, want %q (message %q)", ve.Field, field, ve.Error())
	}
	msg := ve.Error()
	if field != "" && !strings.HasPrefix(msg, field+": ") {
		t.Errorf("message %q does not start by naming %q", msg, field)
	}
	for _, m := range mentions {
		if !strings.Contains(msg, m) {
			t.Errorf("message %q does not mention %q", msg, m)
		}
	}
	return ve
}

// drawAnchor draws any instant of years 1990-2100 in whole seconds, biased
// toward month ends: the day is drawn from 1-31 and clamped to the month.
func drawAnchor(t *rapid.T, label string) time.Time {
	y := rapid.IntRange(1990, 2100).Draw(t, label+".year")
	m := time.Month(rapid.IntRange(1, 12).Draw(t, label+".month"))
	d := min(rapid.IntRange(1, 31).Draw(t, label+".day"), monthDays(y, m))
	h := rapid.IntRange(0, 23).Draw(t, label+".hour")
	mi := rapid.IntRange(0, 59).Draw(t, label+".minute")
	s := rapid.IntRange(0, 59).Draw(t, label+".second")
	return time.Date(y, m, d, h, mi, s, 0, time.UTC)
}

// secs is a whole number of seconds as a Duration.
func secs(n int64) time.Duration { return time.Duration(n) * time.Second }

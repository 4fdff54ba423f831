package models_test

import (
	"math"
	"math/big"
	"strings"
	"testing"

	"github.com/billflow/billflow/models"
	"pgregory.net/rapid"
)

func TestCheckedArithmetic(t *testing.T) {
	if s, err := models.AddAmount("x", math.MaxInt64-1, 1); err != nil || s != math.MaxInt64 {
		t.Errorf("AddAmount at the edge = %d, %v", s, err)
	}
	_, err := models.AddAmount("invoice total", math.MaxInt64, 1)
	wantValidation(t, err, "invoice total", "overflows")
	_, err = models.AddAmount("x", math.MinInt64, -1)
	wantValidation(t, err, "x", "overflows")
	_, err = models.SubAmount("x", math.MinInt64, 1)
	wantValidation(t, err, "x", "overflows")
	_, err = models.SubAmount("x", 0, math.MinInt64)
	wantValidation(t, err, "x", "overflows")
	_, err = models.MulAmount("x", math.MaxInt64/2+1, 2)
	wantValidation(t, err, "x", "overflows")
	if p, err := models.MulAmount("x", -3, 4); err != nil || p != -12 {
		t.Errorf("MulAmount(-3, 4) = %d, %v", p, err)
	}
	// Against big.Int on arbitrary operands: either the exact value or an error.
	rapid.Check(t, func(t *rapid.T) {
		a, b := rapid.Int64().Draw(t, "a"), rapid.Int64().Draw(t, "b")
		check := func(name string, got int64, err error, exact *big.Int) {
			if exact.IsInt64() {
				if err != nil || got != exact.Int64() {
					t.Fatalf("%s(%d, %d) = %d, %v; want %s", name, a, b, got, err, exact)
				}
			} else if err == nil {
				t.Fatalf("%s(%d, %d) = %d, want an overflow error (exact %s)", name, a, b, got, exact)
			}
		}
		s, err := models.AddAmount("x", a, b)
		check("AddAmount", s, err, new(big.Int).Add(big.NewInt(a), big.NewInt(b)))
		d, err := models.SubAmount("x", a, b)
		check("SubAmount", d, err, new(big.Int).Sub(big.NewInt(a), big.NewInt(b)))
		p, err := models.MulAmount("x", a, b)
		check("MulAmount", p, err, new(big.Int).Mul(big.NewInt(a), big.NewInt(b)))
	})
}

// A sum of items that does not fit in int64 used to wrap to a negative
// total; it is a ValidationError naming the total and the item.
func TestSumItemsOverflowIsValidationError(t *testing.T) {
	items := []models.Item{
		{ActivityID: "a1", Amount: math.MaxInt64 - 10},
		{ActivityID: "a2", Amount: 11},
	}
	_, err := models.SumItems(items)
	wantValidation(t, err, "total", "a2", "overflows")
	_, _, err = models.Claimable(items)
	wantValidation(t, err, "total", "overflows")
	if s, err := models.SumItems(items[:1]); err != nil || s != math.MaxInt64-10 {
		t.Errorf("SumItems of one item = %d, %v", s, err)
	}
}

// The catalog bounds plan amounts, naming the plan; a catalog built
// around NewCatalog still cannot make the ledger wrap a proration.
func TestPlanAmountBound(t *testing.T) {
	if _, err := models.NewCatalog([]models.Plan{{ID: "max", Name: "Max", Amount: models.MaxPlanAmount, Currency: "usd"}}); err != nil {
		t.Fatalf("a plan at the bound: %v", err)
	}
	_, err := models.NewCatalog([]models.Plan{{ID: "gold", Name: "Gold", Amount: models.MaxPlanAmount + 1, Currency: "usd"}})
	wantValidation(t, err, "plan gold", "1000000000001", "above the limit")

	// A hand-built catalog (no NewCatalog): a proration of an extreme price
	// is still exact (big-integer product), never wrapped.
	cat := models.Catalog{
		"top":    {ID: "top", Name: "Top", Amount: math.MaxInt64, Currency: "usd"},
		"bottom": {ID: "bottom", Name: "Bottom", Amount: 0, Currency: "usd"},
	}
	l := models.NewLedger("usd", ts("2026-01-01T00:00:00Z"), 0)
	if _, err := l.Apply(models.Activity{ID: "a1", Type: models.ResourceCreated, ResourceID: "r", PlanID: "bottom", At: ts("2026-01-01T00:00:00Z")}, cat); err != nil {
		t.Fatal(err)
	}
	it, err := l.Apply(models.Activity{ID: "a2", Type: models.ResourcePlanChanged, ResourceID: "r", PlanID: "top", At: ts("2026-01-01T00:00:00Z")}, cat)
	if err != nil || it.Amount != math.MaxInt64 {
		t.Fatalf("full-period change to a MaxInt64 plan = %v, %v", it, err)
	}
}

func TestProrateAmountLargeExact(t *testing.T) {
	p := models.Period{Start: ts("2026-01-01T00:00:00Z"), End: ts("2026-02-01T00:00:00Z")}
	// amount * remaining exceeds int64 (the product needs big integers) but
	// the result fits: half of MaxInt64, rounded half away from zero.
	got, err := models.ProrateAmount(math.MaxInt64, p, ts("2026-01-16T12:00:00Z"))
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(math.MaxInt64/2 + 1); got != want {
		t.Errorf("ProrateAmount(MaxInt64, half) = %d, want %d", got, want)
	}
	// Outside its period (a caller bug) the result can exceed int64: an error.
	_, err = models.ProrateAmount(math.MaxInt64, p, ts("2025-12-01T00:00:00Z"))
	wantValidation(t, err, "amount", "overflows")
}

func TestMsatConversions(t *testing.T) {
	// Quote: 500 cents for 150,000 msat (300 msat a cent).
	cases := []struct{ msat, minor int64 }{
		{150_000, 500}, {149_999, 499}, {150_299, 500}, {150_300, 501}, {299, 0}, {300, 1}, {0, 0},
	}
	for _, c := range cases {
		if got, err := models.MsatToMinor(c.msat, 500, 150_000); err != nil || got != c.minor {
			t.Errorf("MsatToMinor(%d) = %d, %v; want %d (round down)", c.msat, got, err, c.minor)
		}
	}
	if got, _ := models.MinorToMsat(499, 500, 150_000); got != 149_700 {
		t.Errorf("MinorToMsat(499) = %d, want 149700", got)
	}
	// 1 cent at 7 cents per 1000 msat is 142.857 msat: round up.
	if got, _ := models.MinorToMsat(1, 7, 1000); got != 143 {
		t.Errorf("MinorToMsat(1 @ 7/1000) = %d, want 143", got)
	}
	_, err := models.MsatToMinor(math.MaxInt64, math.MaxInt64, 1)
	wantValidation(t, err, "amount_msat", "overflows")
	_, err = models.MinorToMsat(math.MaxInt64, 1, math.MaxInt64)
	wantValidation(t, err, "amount", "overflows")
	_, err = models.MsatToMinor(1, 0, 1)
	wantValidation(t, err, "amount_msat")

	rapid.Check(t, func(t *rapid.T) {
		qMinor := rapid.Int64Range(1, 1e12).Draw(t, "quote_minor")
		qMsat := rapid.Int64Range(1, 1e15).Draw(t, "quote_msat")
		msat := rapid.Int64Range(0, 1e15).Draw(t, "msat")
		minor, err := models.MsatToMinor(msat, qMinor, qMsat)
		exact := new(big.Int).Quo(new(big.Int).Mul(big.NewInt(msat), big.NewInt(qMinor)), big.NewInt(qMsat))
		if !exact.IsInt64() {
			if err == nil {
				t.Fatalf("no overflow error for %s", exact)
			}
			return
		}
		if err != nil || minor != exact.Int64() {
			t.Fatalf("MsatToMinor = %d, %v; want %s", minor, err, exact)
		}
		// Never over-credit: the msat needed for the credited amount is at
		// most what was paid.
		back, err := models.MinorToMsat(minor, qMinor, qMsat)
		if err != nil || back > msat {
			t.Fatalf("MinorToMsat(%d) = %d, %v; more than the %d msat paid", minor, back, err, msat)
		}
	})
}

// One table: every supported currency formats with its ISO exponent, and
// ParseCurrency accepts exactly the table.
func TestCurrencyTableFormatsConsistently(t *testing.T) {
	want := map[models.Currency]string{
		"usd": "1234.56 USD", "eur": "1234.56 EUR", "jpy": "123456 JPY", "krw": "123456 KRW",
		"kwd": "123.456 KWD", "bhd": "123.456 BHD", "bif": "123456 BIF", "xpf": "123456 XPF",
	}
	for c, w := range want {
		if got := models.FormatAmount(123456, c); got != w {
			t.Errorf("FormatAmount(123456, %s) = %q, want %q", c, got, w)
		}
	}
	if got := models.FormatAmount(-5, "usd"); got != "-0.05 USD" {
		t.Errorf("FormatAmount(-5, usd) = %q", got)
	}
	if got := models.FormatAmount(math.MinInt64, "usd"); got != "-92233720368547758.08 USD" {
		t.Errorf("FormatAmount(MinInt64, usd) = %q", got)
	}
	all := models.Currencies()
	if len(all) < 150 {
		t.Errorf("only %d currencies in the table", len(all))
	}
	for _, c := range all {
		exp, ok := models.MinorUnits(c)
		if !ok || exp < 0 || exp > 3 {
			t.Errorf("%s: exponent %d, %v", c, exp, ok)
		}
		per, _ := models.MinorPerMajor(c)
		// One major unit formats as 1 with exp zeros after the point.
		one := models.FormatAmount(per, c)
		wantOne := "1 " + strings.ToUpper(string(c))
		if exp > 0 {
			wantOne = "1." + strings.Repeat("0", exp) + " " + strings.ToUpper(string(c))
		}
		if one != wantOne {
			t.Errorf("FormatAmount(%d, %s) = %q, want %q", per, c, one, wantOne)
		}
		if got, err := models.ParseCurrency(" " + strings.ToUpper(string(c)) + " "); err != nil || got != c {
			t.Errorf("ParseCurrency(%s) = %q, %v", c, got, err)
		}
	}
	for _, bad := range []string{"xxx", "xts", "btc", "us", "usdd", "u$d", ""} {
		_, err := models.ParseCurrency(bad)
		wantValidation(t, err, "currency", "ISO 4217")
	}
	_, err := models.NewCatalog([]models.Plan{{ID: "p", Name: "P", Amount: 1, Currency: "xxx"}})
	wantValidation(t, err, "plan p", "xxx")
}

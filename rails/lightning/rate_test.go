package lightning_test

import (
	"context"
	"math"
	"math/big"
	"strings"
	"testing"

	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/rails/lightning"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"
)

func TestStaticRatePinnedAmounts(t *testing.T) {
	rates, err := lightning.NewStaticRate(map[string]int64{
		"USD": 2_000_000,   // BTC at 50,000 USD: 1 USD = 2,000 sat
		"eur": 333_333_333, // a rate that does not divide evenly
		"jpy": 13_000,      // no minor unit: amounts are whole yen
		"kwd": 650_000_001, // three-digit minor unit (fils)
		"gbp": 1,           // 1 msat per pound: sub-msat results round up
	})
	require.NoError(t, err)
	ctx := t.Context()

	for _, tc := range []struct {
		amountMinor int64
		currency    string
		want        int64
	}{
		{2000, "usd", 40_000_000}, // 20.00 USD
		{1, "usd", 20_000},        // 0.01 USD
		{2000, "USD", 40_000_000}, // codes in any case
		{1, "eur", 3_333_334},     // 3,333,333.33 rounds up
		{3, "eur", 10_000_000},    // 9,999,999.99 rounds up
		{300, "eur", 999_999_999}, // exact
		{150, "jpy", 1_950_000},   // 150 yen, not 1.50
		{1, "kwd", 650_001},       // 0.001 KWD = 650,000.001 msat
		{1000, "kwd", 650_000_001},
		{1, "gbp", 1}, // 0.01 msat rounds up to 1: never zero
		{100, "gbp", 1},
		{101, "gbp", 2},
	} {
		got, err := rates.MsatFor(ctx, tc.amountMinor, tc.currency)
		require.NoError(t, err, "%d %s", tc.amountMinor, tc.currency)
		assert.Equal(t, tc.want, got, "%d %s", tc.amountMinor, tc.currency)
	}
	assert.Equal(t, []string{"eur", "gbp", "jpy", "kwd", "usd"}, rates.Currencies())
}

func TestStaticRateErrors(t *testing.T) {
	rates, err := lightning.ParseStaticRate("usd=2000000, EUR = 2200000")
	require.NoError(t, err)
	ctx := t.Context()

	_, err = rates.MsatFor(ctx, 100, "chf")
	assert.ErrorIs(t, err, lightning.ErrUnknownCurrency)
	assert.Contains(t, err.Error(), `"chf"`)
	for _, amt := range []int64{0, -1} {
		_, err = rates.MsatFor(ctx, amt, "usd")
		assert.ErrorIs(t, err, lightning.ErrInvalidRequest)
	}
	_, err = rates.MsatFor(ctx, math.MaxInt64, "usd")
	assert.ErrorIs(t, err, lightning.ErrInvalidRequest, "overflow is an error, not a wrapped amount")
	var ve *models.ValidationError
	require.ErrorAs(t, err, &ve, "an overflow is a validation error naming the value")
	assert.Equal(t, "amount", ve.Field)
	assert.Contains(t, ve.Reason, "9223372036854775807")

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	_, err = rates.MsatFor(cancelled, 100, "usd")
	assert.ErrorIs(t, err, context.Canceled)

	for _, spec := range []string{"", "usd", "usd=abc", "usd=0", "usd=-5", "dollars=1", "usd=1,usd=2", "usd=1,USD=2"} {
		_, err := lightning.ParseStaticRate(spec)
		assert.ErrorIs(t, err, lightning.ErrInvalidRequest, "spec %q", spec)
	}
	_, err = lightning.NewStaticRate(map[string]int64{"usd": 1, "USD": 2})
	assert.ErrorIs(t, err, lightning.ErrInvalidRequest)
}

// TestStaticRateIsExactCeiling checks the defining property for any amount
// and rate: the result r is the least integer with r*10^d >= amount*rate,
// and only results beyond int64 are refused.
func TestStaticRateIsExactCeiling(t *testing.T) {
	digits := map[string]int64{"usd": 100, "jpy": 1, "kwd": 1000}
	rapid.Check(t, func(t *rapid.T) {
		currency := rapid.SampledFrom([]string{"usd", "jpy", "kwd"}).Draw(t, "currency")
		rate := rapid.Int64Range(1, 1_000_000_000_000).Draw(t, "msatPerMajor")
		amount := rapid.Int64Range(1, 1_000_000_000).Draw(t, "amountMinor")
		rates, err := lightning.NewStaticRate(map[string]int64{currency: rate})
		if err != nil {
			t.Fatal(err)
		}
		got, err := rates.MsatFor(context.Background(), amount, currency)
		price := new(big.Int).Mul(big.NewInt(amount), big.NewInt(rate))
		if err != nil {
			// Only a price beyond int64 msat may fail.
			limit := new(big.Int).Mul(big.NewInt(math.MaxInt64), big.NewInt(digits[currency]))
			if price.Cmp(limit) <= 0 {
				t.Fatalf("%d minor at %d: %v", amount, rate, err)
			}
			return
		}
		scaled := new(big.Int).Mul(big.NewInt(got), big.NewInt(digits[currency]))
		below := new(big.Int).Mul(big.NewInt(got-1), big.NewInt(digits[currency]))
		if scaled.Cmp(price) < 0 {
			t.Fatalf("undercharge: %d msat for %d minor at %d", got, amount, rate)
		}
		if below.Cmp(price) >= 0 {
			t.Fatalf("not the ceiling: %d msat for %d minor at %d", got, amount, rate)
		}
	})
}

// TestStaticRateUsesTheModelsCurrencyTable: the rate source and formatting
// read one ISO 4217 exponent table. For every supported currency, the minor
// units FormatAmount shows as exactly one major unit cost exactly the
// msat-per-major rate, and a currency outside the table has no rate.
// (Before there was one table, bhd formatted 1000 fils as "10.00 BHD" while
// the rate source priced them as 1 BHD, and bif/djf/pyg... disagreed the
// other way.)
func TestStaticRateUsesTheModelsCurrencyTable(t *testing.T) {
	const rate = 1_000_003 // msat per major unit; odd so scale errors show
	for _, c := range models.Currencies() {
		per, ok := models.MinorPerMajor(c)
		require.True(t, ok, c)
		require.Regexp(t, `^1(\.0+)? `+strings.ToUpper(string(c))+`$`, models.FormatAmount(per, c), "one major unit of %s", c)
		rates, err := lightning.NewStaticRate(map[string]int64{string(c): rate})
		require.NoError(t, err, c)
		got, err := rates.MsatFor(context.Background(), per, string(c))
		require.NoError(t, err, c)
		assert.Equal(t, int64(rate), got, "msat for one major unit (%d minor) of %s", per, c)
	}
	_, err := lightning.NewStaticRate(map[string]int64{"xxx": rate})
	require.ErrorIs(t, err, lightning.ErrInvalidRequest)
	assert.Contains(t, err.Error(), `"xxx"`)
}

package lightning

import (
	"context"
	"fmt"
	"math"
	"math/bits"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/billflow/billflow/models"
)

// RateSource converts a fiat amount in minor units (cents) to millisatoshis
// at the moment of invoicing.
//
// StaticRate is the sandbox and dev-mode implementation. A live feed (an
// exchange or an aggregator) implements the same interface; it must bound
// its request by ctx, refuse quotes older than it can vouch for rather than
// serve a stale one, and round up like StaticRate so the engine never
// undercharges. The quote used must be recorded with the invoice it priced,
// since it cannot be recomputed later.
type RateSource interface {
	// MsatFor returns the millisatoshi price of amountMinor minor units of
	// currency (a three-letter ISO 4217 code, any case). amountMinor must be
	// positive; an unknown currency is an error wrapping ErrUnknownCurrency.
	MsatFor(ctx context.Context, amountMinor int64, currency string) (int64, error)
}

var _ RateSource = (*StaticRate)(nil)

// StaticRate is a RateSource with fixed rates: for each currency, the price
// of one major unit (1 USD, 1 EUR, 1 JPY) in millisatoshis.
type StaticRate struct {
	msatPerMajor map[string]int64
}

// NewStaticRate builds a StaticRate from msat-per-major-unit rates keyed by
// ISO 4217 code (any case). With BTC at 50,000 USD, 1 USD is 2,000,000 msat.
func NewStaticRate(msatPerMajor map[string]int64) (*StaticRate, error) {
	rates := make(map[string]int64, len(msatPerMajor))
	for code, rate := range msatPerMajor {
		c := strings.ToLower(strings.TrimSpace(code))
		if !currencyCode.MatchString(c) {
			return nil, fmt.Errorf("%w: %q is not a three-letter ISO 4217 code", ErrInvalidRequest, code)
		}
		if _, ok := models.MinorUnits(models.Currency(c)); !ok {
			return nil, fmt.Errorf("%w: %q is not an ISO 4217 currency billflow supports", ErrInvalidRequest, code)
		}
		if rate <= 0 {
			return nil, fmt.Errorf("%w: rate for %s must be positive, got %d msat", ErrInvalidRequest, c, rate)
		}
		if _, dup := rates[c]; dup {
			return nil, fmt.Errorf("%w: currency %s given twice", ErrInvalidRequest, c)
		}
		rates[c] = rate
	}
	return &StaticRate{msatPerMajor: rates}, nil
}

// ParseStaticRate reads rates written as "usd=2000000,eur=2200000" (msat
// per major unit), the form used in configuration and on command lines.
func ParseStaticRate(spec string) (*StaticRate, error) {
	rates := map[string]int64{}
	for part := range strings.SplitSeq(spec, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		code, value, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("%w: rate %q is not CURRENCY=MSAT", ErrInvalidRequest, part)
		}
		rate, err := strconv.ParseInt(strings.TrimSpace(value), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: rate %q: msat per unit is not an integer", ErrInvalidRequest, part)
		}
		code = strings.ToLower(strings.TrimSpace(code))
		if _, dup := rates[code]; dup {
			return nil, fmt.Errorf("%w: currency %s given twice", ErrInvalidRequest, code)
		}
		rates[code] = rate
	}
	if len(rates) == 0 {
		return nil, fmt.Errorf("%w: no rates in %q", ErrInvalidRequest, spec)
	}
	return NewStaticRate(rates)
}

// Currencies lists the currencies this source has rates for, sorted.
func (s *StaticRate) Currencies() []string {
	out := make([]string, 0, len(s.msatPerMajor))
	for c := range s.msatPerMajor {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// MsatFor implements RateSource: ceil(amountMinor * rate / 10^digits),
// exactly, where digits is the currency's ISO 4217 minor-unit exponent from
// models.MinorUnits, the table formatting and messages use too.
func (s *StaticRate) MsatFor(ctx context.Context, amountMinor int64, currency string) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	c := strings.ToLower(strings.TrimSpace(currency))
	rate, ok := s.msatPerMajor[c]
	if !ok {
		return 0, fmt.Errorf("%w %q", ErrUnknownCurrency, currency)
	}
	if amountMinor <= 0 {
		return 0, fmt.Errorf("%w: amount %d %s is not positive", ErrInvalidRequest, amountMinor, c)
	}
	digits, ok := models.MinorUnits(models.Currency(c))
	if !ok {
		return 0, fmt.Errorf("%w %q", ErrUnknownCurrency, currency)
	}
	return msatCeil(amountMinor, rate, digits)
}

// msatCeil computes ceil(amount*rate / 10^digits) in 128-bit integer
// arithmetic. Rounding up means a payer is never asked for less than the
// fiat price; the excess is below one msat.
func msatCeil(amount, rate int64, digits int) (int64, error) {
	div := uint64(1)
	for range digits {
		div *= 10
	}
	hi, lo := bits.Mul64(uint64(amount), uint64(rate))
	if hi >= div {
		return 0, overflow(amount, rate)
	}
	q, rem := bits.Div64(hi, lo, div)
	if rem != 0 {
		q++
	}
	if q > math.MaxInt64 {
		return 0, overflow(amount, rate)
	}
	return int64(q), nil
}

var currencyCode = regexp.MustCompile(`^[a-z]{3}$`)

// overflow is a price beyond int64 msat: a *models.ValidationError naming
// the amount (what the caller can change), that is also ErrInvalidRequest.
func overflow(amount, rate int64) error {
	return fmt.Errorf("%w: %w", ErrInvalidRequest, &models.ValidationError{Field: "amount",
		Reason: fmt.Sprintf("%d minor units at %d msat per major unit overflows a 64-bit msat amount", amount, rate)})
}

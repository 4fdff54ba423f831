package models

import (
	"math"
	"math/big"
	"math/bits"
	"regexp"
	"strings"
)

// Currency is a lower-case ISO 4217 code such as "usd".
type Currency string

var currencyPattern = regexp.MustCompile(`^[a-z]{3}$`)

// Plan is a catalog entry. Amount is the price of one full period in minor units.
type Plan struct {
	ID       string   `json:"id"`
	Name     string   `json:"name"`
	Amount   int64    `json:"amount"`
	Currency Currency `json:"currency"`
	// FreeTier: claims of items on this plan may get a free-tier credit
	// item from the generosity pool (issue 11).
	FreeTier bool `json:"free_tier,omitempty"`
}

// Validate checks a plan as it would be loaded into the catalog.
func (p Plan) Validate() error {
	if strings.TrimSpace(p.ID) == "" {
		return invalid("plan.id", "must not be empty")
	}
	if p.Amount < 0 {
		return invalid("plan "+p.ID, "amount %d is negative", p.Amount)
	}
	if p.Amount > MaxPlanAmount {
		return invalid("plan "+p.ID, "amount %d is above the limit of %d minor units per period", p.Amount, MaxPlanAmount)
	}
	if _, err := ParseCurrency(string(p.Currency)); err != nil {
		return invalid("plan "+p.ID, "currency %q is not a supported three-letter ISO 4217 code", p.Currency)
	}
	return nil
}

// Catalog maps plan ids to plans.
type Catalog map[string]Plan

// NewCatalog validates plans and indexes them by id; duplicate ids are an error.
func NewCatalog(plans []Plan) (Catalog, error) {
	c := make(Catalog, len(plans))
	for _, p := range plans {
		p.Currency = Currency(strings.ToLower(string(p.Currency)))
		if err := p.Validate(); err != nil {
			return nil, err
		}
		if _, dup := c[p.ID]; dup {
			return nil, invalid("plan "+p.ID, "appears twice in the catalog")
		}
		c[p.ID] = p
	}
	return c, nil
}

// DivRoundHalfAway returns n/d rounded half away from zero, computed exactly.
// d must be positive.
func DivRoundHalfAway(n, d *big.Int) *big.Int {
	if d.Sign() <= 0 {
		panic("models: DivRoundHalfAway with non-positive divisor")
	}
	abs := new(big.Int).Abs(n)
	q, r := new(big.Int).QuoRem(abs, d, new(big.Int))
	// Round up when the remainder is at least half the divisor: 2r >= d.
	if r.Lsh(r, 1).Cmp(d) >= 0 {
		q.Add(q, big.NewInt(1))
	}
	if n.Sign() < 0 {
		q.Neg(q)
	}
	return q
}

// MaxPlanAmount bounds a plan's price per period: 10^12 minor units (ten
// billion dollars, a trillion yen). Far above any real plan, it keeps every
// sum of a period's items many orders of magnitude inside int64, so an
// amount this large in a catalog is a typo, refused when the catalog loads.
const MaxPlanAmount int64 = 1_000_000_000_000

// AddAmount returns a+b, or a ValidationError naming field when the sum does
// not fit in int64: money never wraps around.
func AddAmount(field string, a, b int64) (int64, error) {
	s := a + b
	// Overflow iff both operands have the same sign and the sum's differs.
	if (a >= 0) == (b >= 0) && (s >= 0) != (a >= 0) {
		return 0, invalid(field, "%d + %d overflows a 64-bit amount", a, b)
	}
	return s, nil
}

// SubAmount returns a-b, or a ValidationError naming field on overflow.
func SubAmount(field string, a, b int64) (int64, error) {
	s := a - b
	// Overflow iff the operands have different signs and the result's sign
	// differs from a's.
	if (a >= 0) != (b >= 0) && (s >= 0) != (a >= 0) {
		return 0, invalid(field, "%d - %d overflows a 64-bit amount", a, b)
	}
	return s, nil
}

// MulAmount returns a*b, or a ValidationError naming field on overflow.
func MulAmount(field string, a, b int64) (int64, error) {
	p := new(big.Int).Mul(big.NewInt(a), big.NewInt(b))
	if !p.IsInt64() {
		return 0, invalid(field, "%d * %d overflows a 64-bit amount", a, b)
	}
	return p.Int64(), nil
}

// MsatToMinor converts msat received into minor units of the currency of a
// quote (quoteMinor minor units priced at quoteMsat msat), rounding down:
// floor(msat * quoteMinor / quoteMsat). Rounding down means a Lightning
// payment never credits more than it is worth at the quote. All three must
// be positive (msat may be zero); the product is exact in 128 bits.
func MsatToMinor(msat, quoteMinor, quoteMsat int64) (int64, error) {
	if msat < 0 || quoteMinor <= 0 || quoteMsat <= 0 {
		return 0, invalid("amount_msat", "cannot convert %d msat at a quote of %d minor units for %d msat", msat, quoteMinor, quoteMsat)
	}
	hi, lo := bits.Mul64(uint64(msat), uint64(quoteMinor))
	if hi >= uint64(quoteMsat) {
		return 0, invalid("amount_msat", "%d msat at %d minor units per %d msat overflows", msat, quoteMinor, quoteMsat)
	}
	q, _ := bits.Div64(hi, lo, uint64(quoteMsat))
	if q > math.MaxInt64 {
		return 0, invalid("amount_msat", "%d msat at %d minor units per %d msat overflows", msat, quoteMinor, quoteMsat)
	}
	return int64(q), nil
}

// MinorToMsat converts minor units into msat at a quote, rounding up:
// ceil(minor * quoteMsat / quoteMinor), the least msat worth minor at the
// quote. It is MsatToMinor's inverse in the sense that
// MsatToMinor(MinorToMsat(m)) >= m.
func MinorToMsat(minor, quoteMinor, quoteMsat int64) (int64, error) {
	if minor < 0 || quoteMinor <= 0 || quoteMsat <= 0 {
		return 0, invalid("amount", "cannot convert %d minor units at a quote of %d minor units for %d msat", minor, quoteMinor, quoteMsat)
	}
	hi, lo := bits.Mul64(uint64(minor), uint64(quoteMsat))
	if hi >= uint64(quoteMinor) {
		return 0, invalid("amount", "%d minor units at %d msat per %d minor units overflows", minor, quoteMsat, quoteMinor)
	}
	q, r := bits.Div64(hi, lo, uint64(quoteMinor))
	if r != 0 {
		q++
	}
	if q > math.MaxInt64 {
		return 0, invalid("amount", "%d minor units at %d msat per %d minor units overflows", minor, quoteMsat, quoteMinor)
	}
	return int64(q), nil
}

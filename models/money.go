package models

import (
	"math/big"
	"regexp"
	"strings"
)

// Currency is a lower-case ISO 4217 code such as "usd".
type Currency string

var currencyPattern = regexp.MustCompile(`^[a-z]{3}$`)

// ParseCurrency normalises and validates a currency code.
func ParseCurrency(s string) (Currency, error) {
	c := strings.ToLower(strings.TrimSpace(s))
	if !currencyPattern.MatchString(c) {
		return "", invalid("currency", "%q is not a three-letter ISO 4217 code", s)
	}
	return Currency(c), nil
}

// Plan is a catalog entry. Amount is the price of one full period in minor units.
type Plan struct {
	ID       string   `json:"id"`
	Name     string   `json:"name"`
	Amount   int64    `json:"amount"`
	Currency Currency `json:"currency"`
}

// Validate checks a plan as it would be loaded into the catalog.
func (p Plan) Validate() error {
	if strings.TrimSpace(p.ID) == "" {
		return invalid("plan.id", "must not be empty")
	}
	if p.Amount < 0 {
		return invalid("plan "+p.ID, "amount %d is negative", p.Amount)
	}
	if _, err := ParseCurrency(string(p.Currency)); err != nil {
		return invalid("plan "+p.ID, "currency %q is not a three-letter ISO 4217 code", p.Currency)
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

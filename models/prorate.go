package models

import (
	"math/big"
	"time"
)

// Prorate returns amount * (p.End - t) / (p.End - p.Start), rounded half away
// from zero in exact integer arithmetic: the share of a period's price still
// ahead at instant t. t must lie in p, so the result is never larger than
// amount; it panics rather than wrap if a caller breaks that. Code billing
// input uses ProrateAmount, which reports the overflow instead.
func Prorate(amount int64, p Period, t time.Time) int64 {
	v, err := ProrateAmount(amount, p, t)
	if err != nil {
		panic(err)
	}
	return v
}

// ProrateAmount is Prorate with an overflow reported as a ValidationError
// naming the amount. The product amount * remaining is computed in big
// integers (it can exceed int64 for a large price), and only the result has
// to fit.
func ProrateAmount(amount int64, p Period, t time.Time) (int64, error) {
	t = BillingInstant(t)
	remaining := int64(p.End.Sub(t) / time.Second)
	length := int64(p.Length() / time.Second)
	n := new(big.Int).Mul(big.NewInt(amount), big.NewInt(remaining))
	q := DivRoundHalfAway(n, big.NewInt(length))
	if !q.IsInt64() {
		return 0, invalid("amount", "prorating %d over %ds of a %ds period overflows a 64-bit amount", amount, remaining, length)
	}
	return q.Int64(), nil
}

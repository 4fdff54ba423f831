package models

import (
	"math/big"
	"time"
)

// Prorate returns amount * (p.End - t) / (p.End - p.Start), rounded half away
// from zero in exact integer arithmetic: the share of a period's price still
// ahead at instant t. t must lie in p.
func Prorate(amount int64, p Period, t time.Time) int64 {
	t = BillingInstant(t)
	remaining := int64(p.End.Sub(t) / time.Second)
	length := int64(p.Length() / time.Second)
	n := new(big.Int).Mul(big.NewInt(amount), big.NewInt(remaining))
	return DivRoundHalfAway(n, big.NewInt(length)).Int64()
}

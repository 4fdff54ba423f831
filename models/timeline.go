package models

import (
	"slices"
	"time"
)

// Timeline folds a tenant's whole activity log and returns every item the
// engine bills up to and including instant upTo: each activity's proration in
// order of instant, and at each boundary S_k (k >= 1, S_k <= upTo) the renewal
// of everything active as of S_k, folding only activities before S_k.
//
// Activities after upTo are ignored. Activities at the same instant keep their
// given order (the order they were recorded in).
func Timeline(l *Ledger, activities []Activity, catalog Catalog, upTo time.Time) ([]Item, error) {
	upTo = BillingInstant(upTo)
	acts := slices.Clone(activities)
	slices.SortStableFunc(acts, func(a, b Activity) int {
		return BillingInstant(a.At).Compare(BillingInstant(b.At))
	})
	var items []Item
	k := 1
	renewThrough := func(t time.Time) error {
		if !l.Anchored() {
			return nil
		}
		for b := l.Schedule.Boundary(k); !b.After(t); b = l.Schedule.Boundary(k) {
			renewals, err := l.Renewals(b, catalog)
			if err != nil {
				return err
			}
			items = append(items, renewals...)
			k++
		}
		return nil
	}
	for _, a := range acts {
		if BillingInstant(a.At).After(upTo) {
			break
		}
		if err := renewThrough(BillingInstant(a.At)); err != nil {
			return nil, err
		}
		item, err := l.Apply(a, catalog)
		if err != nil {
			return nil, err
		}
		if item != nil {
			items = append(items, *item)
		}
	}
	if err := renewThrough(upTo); err != nil {
		return nil, err
	}
	return items, nil
}

// Total sums item amounts.
func Total(items []Item) int64 {
	var sum int64
	for _, it := range items {
		sum += it.Amount
	}
	return sum
}

// Claimable reports whether outstanding items may become an invoice: only a
// positive net is invoiced; zero or a credit carries to the next claim.
func Claimable(outstanding []Item) (total int64, ok bool) {
	total = Total(outstanding)
	return total, total > 0
}

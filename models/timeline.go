package models

import (
	"fmt"
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

// SumItems adds item amounts with checked arithmetic: a sum that does not
// fit in int64 is a ValidationError naming the item it overflowed at, never
// a wrapped total.
func SumItems(items []Item) (int64, error) {
	var sum int64
	for i, it := range items {
		s, err := AddAmount("total", sum, it.Amount)
		if err != nil {
			name := it.ActivityID
			if name == "" {
				name = fmt.Sprintf("renewal of %s at %s", it.ResourceID, it.PeriodStart.Format(time.RFC3339))
			}
			return 0, invalid("total", "adding item %d (%s, amount %d) to %d overflows a 64-bit amount", i, name, it.Amount, sum)
		}
		sum = s
	}
	return sum, nil
}

// Total sums item amounts. It panics rather than return a wrapped total;
// callers summing input they have not bounded use SumItems.
func Total(items []Item) int64 {
	sum, err := SumItems(items)
	if err != nil {
		panic(err)
	}
	return sum
}

// Claimable reports whether outstanding items may become an invoice: only a
// positive net is invoiced; zero or a credit carries to the next claim. A
// sum that overflows is an error, not a claim.
func Claimable(outstanding []Item) (total int64, ok bool, err error) {
	total, err = SumItems(outstanding)
	if err != nil {
		return 0, false, err
	}
	return total, total > 0, nil
}

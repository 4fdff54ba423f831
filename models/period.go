package models

import (
	"fmt"
	"time"
)

// Schedule places a tenant's billing periods in time. Period k (k >= 0) is
// [Boundary(k), Boundary(k+1)).
type Schedule struct {
	// Anchor is S_0, the start of the first period.
	Anchor time.Time
	// Fixed is the length of every period; zero means calendar months.
	Fixed time.Duration
}

// Period is one billing period.
type Period struct {
	Index int       `json:"index"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// Length is the period's length.
func (p Period) Length() time.Duration { return p.End.Sub(p.Start) }

// Contains reports whether t falls in [Start, End).
func (p Period) Contains(t time.Time) bool { return !t.Before(p.Start) && t.Before(p.End) }

// BillingInstant normalises an instant for billing math: UTC, whole seconds.
func BillingInstant(t time.Time) time.Time { return t.UTC().Truncate(time.Second) }

// NewSchedule validates and normalises a schedule. A fixed period must be a
// whole number of seconds, at least one second.
func NewSchedule(anchor time.Time, fixed time.Duration) (Schedule, error) {
	if anchor.IsZero() {
		return Schedule{}, invalid("billing_anchor", "must be set")
	}
	if fixed < 0 || (fixed > 0 && (fixed < time.Second || fixed%time.Second != 0)) {
		return Schedule{}, invalid("period", "fixed period %s must be a positive whole number of seconds", fixed)
	}
	return Schedule{Anchor: BillingInstant(anchor), Fixed: fixed}, nil
}

// Monthly reports whether periods are calendar months.
func (s Schedule) Monthly() bool { return s.Fixed == 0 }

// Boundary returns S_k. Calendar-month boundaries are always computed from the
// anchor (never stepped from a previous clamped date), keeping the anchor's
// time of day and clamping its day of month to the target month's last day.
func (s Schedule) Boundary(k int) time.Time {
	if !s.Monthly() {
		return s.Anchor.Add(time.Duration(k) * s.Fixed)
	}
	a := s.Anchor
	months := int(a.Month()) - 1 + k
	year := a.Year() + floorDiv(months, 12)
	month := time.Month(months-12*floorDiv(months, 12)) + 1
	day := min(a.Day(), daysIn(year, month))
	return time.Date(year, month, day, a.Hour(), a.Minute(), a.Second(), 0, time.UTC)
}

// PeriodAt returns the period containing t. Instants before the anchor fall in
// negative-index periods; callers reject those where it matters.
func (s Schedule) PeriodAt(t time.Time) Period {
	t = BillingInstant(t)
	var k int
	if s.Monthly() {
		k = (t.Year()-s.Anchor.Year())*12 + int(t.Month()) - int(s.Anchor.Month())
		for s.Boundary(k).After(t) {
			k--
		}
		for !s.Boundary(k + 1).After(t) {
			k++
		}
	} else {
		k = int(floorDiv64(int64(t.Sub(s.Anchor)), int64(s.Fixed)))
	}
	return s.Period(k)
}

// Period returns period k.
func (s Schedule) Period(k int) Period {
	return Period{Index: k, Start: s.Boundary(k), End: s.Boundary(k + 1)}
}

// String describes the schedule for people.
func (s Schedule) String() string {
	if s.Monthly() {
		return fmt.Sprintf("monthly from %s", s.Anchor.Format(time.RFC3339))
	}
	return fmt.Sprintf("every %s from %s", s.Fixed, s.Anchor.Format(time.RFC3339))
}

func daysIn(year int, month time.Month) int {
	return time.Date(year, month+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

func floorDiv(a, b int) int {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

func floorDiv64(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

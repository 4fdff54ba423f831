package models_test

import (
	"testing"
	"time"

	"github.com/billflow/billflow/models"
	"pgregory.net/rapid"
)

// DESIGN 4 "Periods": S_k = A plus k calendar months, same time of day, day of
// month clamped to the target month's last day, always computed from A.
func TestBoundaryCalendarMonths(t *testing.T) {
	cases := []struct {
		name   string
		anchor string
		k      int
		want   string
	}{
		// The DESIGN example: never drifts to the 28th after February.
		{"31st k=0 is the anchor", "2026-01-31T10:00:00Z", 0, "2026-01-31T10:00:00Z"},
		{"31st into February", "2026-01-31T10:00:00Z", 1, "2026-02-28T10:00:00Z"},
		{"31st back to March 31", "2026-01-31T10:00:00Z", 2, "2026-03-31T10:00:00Z"},
		{"31st into April", "2026-01-31T10:00:00Z", 3, "2026-04-30T10:00:00Z"},
		{"31st back to May 31", "2026-01-31T10:00:00Z", 4, "2026-05-31T10:00:00Z"},
		{"31st into June", "2026-01-31T10:00:00Z", 5, "2026-06-30T10:00:00Z"},
		{"31st July", "2026-01-31T10:00:00Z", 6, "2026-07-31T10:00:00Z"},
		{"31st August", "2026-01-31T10:00:00Z", 7, "2026-08-31T10:00:00Z"},
		{"31st September", "2026-01-31T10:00:00Z", 8, "2026-09-30T10:00:00Z"},
		{"31st December", "2026-01-31T10:00:00Z", 11, "2026-12-31T10:00:00Z"},
		{"31st a year on", "2026-01-31T10:00:00Z", 12, "2027-01-31T10:00:00Z"},
		{"31st next February", "2026-01-31T10:00:00Z", 13, "2027-02-28T10:00:00Z"},
		{"31st leap February 2028", "2026-01-31T10:00:00Z", 25, "2028-02-29T10:00:00Z"},
		{"31st 100 months on", "2026-01-31T10:00:00Z", 100, "2034-05-31T10:00:00Z"},

		// Anchors on the 29th and 30th.
		{"29th into non-leap February", "2026-01-29T08:30:15Z", 1, "2026-02-28T08:30:15Z"},
		{"29th back to March 29", "2026-01-29T08:30:15Z", 2, "2026-03-29T08:30:15Z"},
		{"29th into leap February", "2026-01-29T08:30:15Z", 25, "2028-02-29T08:30:15Z"},
		{"30th into February", "2026-01-30T23:59:59Z", 1, "2026-02-28T23:59:59Z"},
		{"30th back to March 30", "2026-01-30T23:59:59Z", 2, "2026-03-30T23:59:59Z"},
		{"30th April", "2026-01-30T23:59:59Z", 3, "2026-04-30T23:59:59Z"},
		{"30th into leap February", "2024-01-30T00:00:00Z", 1, "2024-02-29T00:00:00Z"},
		{"short-month anchor keeps its day", "2026-04-30T12:00:00Z", 1, "2026-05-30T12:00:00Z"},
		{"28th never clamps", "2026-02-28T01:02:03Z", 1, "2026-03-28T01:02:03Z"},

		// Leap years.
		{"2024-01-31 -> Feb 29", "2024-01-31T00:00:00Z", 1, "2024-02-29T00:00:00Z"},
		{"2024-01-31 -> Mar 31", "2024-01-31T00:00:00Z", 2, "2024-03-31T00:00:00Z"},
		{"2024-01-31 -> Feb 28 2025", "2024-01-31T00:00:00Z", 13, "2025-02-28T00:00:00Z"},
		{"Feb 29 anchor, a month on", "2024-02-29T06:00:00Z", 1, "2024-03-29T06:00:00Z"},
		{"Feb 29 anchor, a year on", "2024-02-29T06:00:00Z", 12, "2025-02-28T06:00:00Z"},
		{"Feb 29 anchor, two years on", "2024-02-29T06:00:00Z", 24, "2026-02-28T06:00:00Z"},
		{"Feb 29 anchor, four years on", "2024-02-29T06:00:00Z", 48, "2028-02-29T06:00:00Z"},
		{"2000 is a leap year", "2000-01-31T00:00:00Z", 1, "2000-02-29T00:00:00Z"},
		{"2100 is not a leap year", "2100-01-31T00:00:00Z", 1, "2100-02-28T00:00:00Z"},
		{"2096 is a leap year", "2096-01-31T00:00:00Z", 1, "2096-02-29T00:00:00Z"},

		// December -> January year rollover.
		{"December 31 into January", "2025-12-31T23:59:59Z", 1, "2026-01-31T23:59:59Z"},
		{"December 31 into February", "2025-12-31T23:59:59Z", 2, "2026-02-28T23:59:59Z"},
		{"November 30 into December", "2025-11-30T05:00:00Z", 1, "2025-12-30T05:00:00Z"},
		{"November 30 into January", "2025-11-30T05:00:00Z", 2, "2026-01-30T05:00:00Z"},
		{"November 30 into February", "2025-11-30T05:00:00Z", 3, "2026-02-28T05:00:00Z"},
		{"December 15, 25 months on", "2025-12-15T00:00:00Z", 25, "2028-01-15T00:00:00Z"},

		// Negative k: periods before the anchor (PeriodAt uses them).
		{"k=-1 clamps too", "2026-03-31T10:00:00Z", -1, "2026-02-28T10:00:00Z"},
		{"k=-3 crosses the year", "2026-03-31T10:00:00Z", -3, "2025-12-31T10:00:00Z"},
		{"k=-13", "2026-03-31T10:00:00Z", -13, "2025-02-28T10:00:00Z"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := models.Schedule{Anchor: ts(c.anchor)}
			got := s.Boundary(c.k)
			if want := ts(c.want); !got.Equal(want) || got.Location() != time.UTC {
				t.Errorf("anchor %s: Boundary(%d) = %s (%s), want %s UTC", c.anchor, c.k, got, got.Location(), c.want)
			}
		})
	}
}

// The seed's bug: stepping a month from the previous clamped start drifts
// (Jan 31 -> Feb 28 -> Mar 28) and time.AddDate overflows (Jan 31 -> Mar 3).
func TestBoundaryNeverDrifts(t *testing.T) {
	s := models.Schedule{Anchor: ts("2026-01-31T10:00:00Z")}
	for k := 0; k < 1200; k++ {
		got := s.Boundary(k)
		y, m := addMonths(2026, time.January, k)
		if got.Year() != y || got.Month() != m || got.Day() != monthDays(y, m) {
			t.Fatalf("Boundary(%d) = %s, want the last day of %s %d", k, got, m, y)
		}
	}
	if got := s.Boundary(2); got.Day() != 31 {
		t.Errorf("Boundary(2) = %s: drifted from the anchor's 31st", got)
	}
}

func TestBoundaryFixed(t *testing.T) {
	anchor := ts("2026-01-31T10:00:00Z")
	cases := []struct {
		fixed time.Duration
		k     int
		want  string
	}{
		{10 * time.Minute, 0, "2026-01-31T10:00:00Z"},
		{10 * time.Minute, 1, "2026-01-31T10:10:00Z"},
		{10 * time.Minute, 6, "2026-01-31T11:00:00Z"},
		{10 * time.Minute, 84, "2026-02-01T00:00:00Z"}, // crosses midnight and a month end
		{10 * time.Minute, 144, "2026-02-01T10:00:00Z"},
		{10 * time.Minute, -1, "2026-01-31T09:50:00Z"},
		{7 * 24 * time.Hour, 4, "2026-02-28T10:00:00Z"},
		{time.Second, 3600, "2026-01-31T11:00:00Z"},
	}
	for _, c := range cases {
		s := models.Schedule{Anchor: anchor, Fixed: c.fixed}
		if got := s.Boundary(c.k); !got.Equal(ts(c.want)) {
			t.Errorf("every %s: Boundary(%d) = %s, want %s", c.fixed, c.k, got, c.want)
		}
	}
}

func TestPeriodAt(t *testing.T) {
	monthly := models.Schedule{Anchor: ts("2026-01-31T10:00:00Z")}
	fixed := models.Schedule{Anchor: ts("2026-01-31T10:00:00Z"), Fixed: 10 * time.Minute}
	cases := []struct {
		name       string
		s          models.Schedule
		t          string
		index      int
		start, end string
	}{
		{"at the anchor", monthly, "2026-01-31T10:00:00Z", 0, "2026-01-31T10:00:00Z", "2026-02-28T10:00:00Z"},
		{"last second of period 0", monthly, "2026-02-28T09:59:59Z", 0, "2026-01-31T10:00:00Z", "2026-02-28T10:00:00Z"},
		{"exactly at S_1 starts period 1", monthly, "2026-02-28T10:00:00Z", 1, "2026-02-28T10:00:00Z", "2026-03-31T10:00:00Z"},
		{"March 28 is still period 1 (no drift)", monthly, "2026-03-28T10:00:00Z", 1, "2026-02-28T10:00:00Z", "2026-03-31T10:00:00Z"},
		{"sub-second before S_2 truncates into period 1", monthly, "2026-03-31T09:59:59.999999999Z", 1, "2026-02-28T10:00:00Z", "2026-03-31T10:00:00Z"},
		{"exactly at S_2", monthly, "2026-03-31T10:00:00Z", 2, "2026-03-31T10:00:00Z", "2026-04-30T10:00:00Z"},
		{"another zone, same instant as S_2", monthly, "2026-03-31T12:00:00+02:00", 2, "2026-03-31T10:00:00Z", "2026-04-30T10:00:00Z"},
		{"a year on", monthly, "2027-02-28T10:00:00Z", 13, "2027-02-28T10:00:00Z", "2027-03-31T10:00:00Z"},
		{"before the anchor", monthly, "2026-01-15T00:00:00Z", -1, "2025-12-31T10:00:00Z", "2026-01-31T10:00:00Z"},
		{"fixed: at the anchor", fixed, "2026-01-31T10:00:00Z", 0, "2026-01-31T10:00:00Z", "2026-01-31T10:10:00Z"},
		{"fixed: last second", fixed, "2026-01-31T10:09:59.5Z", 0, "2026-01-31T10:00:00Z", "2026-01-31T10:10:00Z"},
		{"fixed: exactly at S_1", fixed, "2026-01-31T10:10:00Z", 1, "2026-01-31T10:10:00Z", "2026-01-31T10:20:00Z"},
		{"fixed: next day", fixed, "2026-02-01T10:05:00Z", 144, "2026-02-01T10:00:00Z", "2026-02-01T10:10:00Z"},
		{"fixed: before the anchor", fixed, "2026-01-31T09:59:59Z", -1, "2026-01-31T09:50:00Z", "2026-01-31T10:00:00Z"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := c.s.PeriodAt(ts(c.t))
			if p.Index != c.index || !p.Start.Equal(ts(c.start)) || !p.End.Equal(ts(c.end)) {
				t.Errorf("PeriodAt(%s) = {%d %s %s}, want {%d %s %s}", c.t, p.Index, p.Start, p.End, c.index, c.start, c.end)
			}
			if !p.Contains(ts(c.t).Truncate(time.Second)) {
				t.Errorf("period %v does not contain %s", p, c.t)
			}
			if want := ts(c.end).Sub(ts(c.start)); p.Length() != want {
				t.Errorf("Length() = %s, want %s", p.Length(), want)
			}
		})
	}
}

func TestPeriodContains(t *testing.T) {
	p := models.Period{Start: ts("2026-02-28T10:00:00Z"), End: ts("2026-03-31T10:00:00Z")}
	for _, c := range []struct {
		t    string
		want bool
	}{
		{"2026-02-28T09:59:59Z", false},
		{"2026-02-28T10:00:00Z", true},
		{"2026-03-31T09:59:59Z", true},
		{"2026-03-31T10:00:00Z", false},
	} {
		if got := p.Contains(ts(c.t)); got != c.want {
			t.Errorf("Contains(%s) = %v, want %v", c.t, got, c.want)
		}
	}
}

func TestNewSchedule(t *testing.T) {
	s, err := models.NewSchedule(ts("2026-01-31T12:00:00.75+02:00"), 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := ts("2026-01-31T10:00:00Z"); !s.Anchor.Equal(want) || s.Anchor.Location() != time.UTC || s.Anchor.Nanosecond() != 0 {
		t.Errorf("anchor = %s, want %s in UTC, whole seconds", s.Anchor, want)
	}
	if !s.Monthly() {
		t.Error("Fixed 0 should be monthly")
	}
	if got := s.Boundary(1); !got.Equal(ts("2026-02-28T10:00:00Z")) {
		t.Errorf("Boundary(1) = %s", got)
	}
	f, err := models.NewSchedule(ts("2026-01-31T10:00:00Z"), 10*time.Minute)
	if err != nil || f.Monthly() || f.Fixed != 10*time.Minute {
		t.Errorf("NewSchedule(10m) = %+v, %v", f, err)
	}

	_, err = models.NewSchedule(time.Time{}, 0)
	wantValidation(t, err, "billing_anchor", "must be set")
	for _, bad := range []time.Duration{-time.Second, time.Millisecond, 1500 * time.Millisecond} {
		_, err := models.NewSchedule(ts("2026-01-31T10:00:00Z"), bad)
		wantValidation(t, err, "period", "whole number of seconds")
	}
}

// Property: for any anchor and k in [0, 600), boundaries increase, each S_k
// keeps the anchor's time of day with day = min(anchor day, days in month),
// and PeriodAt maps every instant of [S_k, S_{k+1}) to period k.
func TestPropertyCalendarPeriodsTile(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		anchor := drawAnchor(t, "anchor")
		k := rapid.IntRange(0, 599).Draw(t, "k")
		s := models.Schedule{Anchor: anchor}
		sk, sk1 := s.Boundary(k), s.Boundary(k+1)

		if !sk.Before(sk1) {
			t.Fatalf("S_%d = %s is not before S_%d = %s", k, sk, k+1, sk1)
		}
		for i, b := range []time.Time{sk, sk1} {
			y, m := addMonths(anchor.Year(), anchor.Month(), k+i)
			wantDay := min(anchor.Day(), monthDays(y, m))
			if b.Location() != time.UTC || b.Year() != y || b.Month() != m || b.Day() != wantDay ||
				b.Hour() != anchor.Hour() || b.Minute() != anchor.Minute() || b.Second() != anchor.Second() || b.Nanosecond() != 0 {
				t.Fatalf("S_%d = %s, want %d-%02d-%02d at %s UTC", k+i, b, y, m, wantDay, anchor.Format("15:04:05"))
			}
		}
		// Same time of day, so a period is a whole number of days, 28 to 31.
		if d := sk1.Sub(sk); d%(24*time.Hour) != 0 || d < 28*24*time.Hour || d > 31*24*time.Hour {
			t.Fatalf("period %d lasts %s", k, d)
		}

		length := int64(sk1.Sub(sk) / time.Second)
		off := rapid.OneOf(rapid.Just(int64(0)), rapid.Just(length-1), rapid.Int64Range(0, length-1)).Draw(t, "offset")
		nanos := rapid.Int64Range(0, int64(time.Second)-1).Draw(t, "nanos")
		at := sk.Add(secs(off) + time.Duration(nanos))
		want := models.Period{Index: k, Start: sk, End: sk1}
		if got := s.PeriodAt(at); got.Index != want.Index || !got.Start.Equal(want.Start) || !got.End.Equal(want.End) {
			t.Fatalf("PeriodAt(%s) = %+v, want %+v", at, got, want)
		}
		// No gap: the next period starts exactly where this one ends.
		if next := s.PeriodAt(sk1); next.Index != k+1 || !next.Start.Equal(sk1) {
			t.Fatalf("PeriodAt(S_%d) = %+v", k+1, next)
		}
		// No overlap: the second before S_k belongs to the previous period.
		if prev := s.PeriodAt(sk.Add(-time.Second)); prev.Index != k-1 || !prev.End.Equal(sk) {
			t.Fatalf("PeriodAt(S_%d - 1s) = %+v", k, prev)
		}
		// Period(k) agrees.
		if p := s.Period(k); p != (models.Period{Index: k, Start: sk, End: sk1}) {
			t.Fatalf("Period(%d) = %+v", k, p)
		}
		// And for this anchor, every k in [0, 600): strictly increasing,
		// clamped day, and the period's last second maps back to k.
		prev := s.Boundary(0)
		for j := 1; j <= 600; j++ {
			b := s.Boundary(j)
			y, m := addMonths(anchor.Year(), anchor.Month(), j)
			if !prev.Before(b) || b.Year() != y || b.Month() != m || b.Day() != min(anchor.Day(), monthDays(y, m)) {
				t.Fatalf("S_%d = %s after S_%d = %s", j, b, j-1, prev)
			}
			if p := s.PeriodAt(b.Add(-time.Second)); p.Index != j-1 {
				t.Fatalf("PeriodAt(S_%d - 1s) has index %d", j, p.Index)
			}
			prev = b
		}
	})
}

// The same tiling for fixed-length periods (trials, demos, end-to-end tests).
func TestPropertyFixedPeriodsTile(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		anchor := drawAnchor(t, "anchor")
		fixedSecs := rapid.OneOf(
			rapid.SampledFrom([]int64{1, 60, 600, 3600, 86400, 7 * 86400, 30 * 86400}),
			rapid.Int64Range(1, 40*86400),
		).Draw(t, "fixedSeconds")
		k := rapid.IntRange(0, 599).Draw(t, "k")
		s, err := models.NewSchedule(anchor, secs(fixedSecs))
		if err != nil {
			t.Fatal(err)
		}
		sk, sk1 := s.Boundary(k), s.Boundary(k+1)
		if want := time.Unix(anchor.Unix()+int64(k)*fixedSecs, 0); !sk.Equal(want) {
			t.Fatalf("S_%d = %s, want %s", k, sk, want)
		}
		if sk1.Sub(sk) != secs(fixedSecs) {
			t.Fatalf("period %d lasts %s, want %ds", k, sk1.Sub(sk), fixedSecs)
		}
		off := rapid.OneOf(rapid.Just(int64(0)), rapid.Just(fixedSecs-1), rapid.Int64Range(0, fixedSecs-1)).Draw(t, "offset")
		nanos := rapid.Int64Range(0, int64(time.Second)-1).Draw(t, "nanos")
		at := sk.Add(secs(off) + time.Duration(nanos))
		if got := s.PeriodAt(at); got.Index != k || !got.Start.Equal(sk) || !got.End.Equal(sk1) {
			t.Fatalf("PeriodAt(%s) = %+v, want {%d %s %s}", at, got, k, sk, sk1)
		}
		if next := s.PeriodAt(sk1); next.Index != k+1 {
			t.Fatalf("PeriodAt(S_%d) index %d", k+1, next.Index)
		}
		if prev := s.PeriodAt(sk.Add(-time.Second)); prev.Index != k-1 || !prev.End.Equal(sk) {
			t.Fatalf("PeriodAt(S_%d - 1s) = %+v", k, prev)
		}
	})
}

package models_test

import (
	"strings"
	"testing"
	"time"

	"github.com/billflow/billflow/models"
)

// The ledger tests run in April 2026 (30 days) with the anchor on April 1,
// so every proration is easy to check by hand: at April d, 31-d days remain.

func act(id string, typ models.ActivityType, resource, plan, at string) models.Activity {
	return models.Activity{ID: id, Type: typ, ResourceID: resource, PlanID: plan, At: ts(at)}
}

func created(id, resource, plan, at string) models.Activity {
	return act(id, models.ResourceCreated, resource, plan, at)
}
func activated(id, resource, at string) models.Activity {
	return act(id, models.ResourceActivated, resource, "", at)
}
func deactivated(id, resource, at string) models.Activity {
	return act(id, models.ResourceDeactivated, resource, "", at)
}
func planChanged(id, resource, plan, at string) models.Activity {
	return act(id, models.ResourcePlanChanged, resource, plan, at)
}

func mustApply(t testing.TB, l *models.Ledger, c models.Catalog, a models.Activity) *models.Item {
	t.Helper()
	it, err := l.Apply(a, c)
	if err != nil {
		t.Fatalf("Apply(%s %s %s): %v", a.ID, a.Type, a.ResourceID, err)
	}
	return it
}

// wantProration asserts a proration item's fields.
func wantProration(t testing.TB, it *models.Item, a models.Activity, plan string, amount int64, periodStart string) {
	t.Helper()
	if it == nil {
		t.Fatalf("%s (%s %s): no item, want %d on %s", a.ID, a.Type, a.ResourceID, amount, plan)
	}
	want := models.Item{
		Kind: models.KindProration, ActivityID: a.ID, ResourceID: a.ResourceID, PlanID: plan,
		Amount: amount, Currency: "usd", CreatedAt: models.BillingInstant(a.At), PeriodStart: ts(periodStart),
	}
	got := *it
	if got.Description == "" || !strings.Contains(got.Description, a.ResourceID) {
		t.Errorf("%s: description %q does not name the resource", a.ID, got.Description)
	}
	got.Description = ""
	if got.Kind != want.Kind || got.ActivityID != want.ActivityID || got.ResourceID != want.ResourceID ||
		got.PlanID != want.PlanID || got.Amount != want.Amount || got.Currency != want.Currency ||
		!got.CreatedAt.Equal(want.CreatedAt) || !got.PeriodStart.Equal(want.PeriodStart) {
		t.Errorf("%s: item = %+v\nwant %+v", a.ID, got, want)
	}
}

func wantNoItem(t testing.TB, it *models.Item, a models.Activity) {
	t.Helper()
	if it != nil {
		t.Errorf("%s (%s %s): item %+v, want none", a.ID, a.Type, a.ResourceID, *it)
	}
}

func wantResource(t testing.TB, l *models.Ledger, id, plan string, active bool, lastAt string) {
	t.Helper()
	r, ok := l.Resources[id]
	if !ok {
		t.Fatalf("resource %s is not in the ledger", id)
	}
	if r.PlanID != plan || r.Active != active || !r.LastAt.Equal(ts(lastAt)) {
		t.Errorf("resource %s = %+v, want plan %s active %v last %s", id, r, plan, active, lastAt)
	}
}

func TestLedgerCreated(t *testing.T) {
	c := testCatalog(t)
	l := models.NewLedger("usd", time.Time{}, 0)

	a1 := created("a1", "r1", "basic", "2026-04-01T00:00:00Z")
	// The first activity anchors the tenant, so it is at the period start: full price.
	wantProration(t, mustApply(t, l, c, a1), a1, "basic", 3000, "2026-04-01T00:00:00Z")
	if !l.Anchored() || !l.Schedule.Anchor.Equal(ts("2026-04-01T00:00:00Z")) {
		t.Fatalf("anchor = %s, want the first activity's instant", l.Schedule.Anchor)
	}
	wantResource(t, l, "r1", "basic", true, "2026-04-01T00:00:00Z")

	// 1/3 of April elapsed: 3000 * 20/30 = 2000.
	a2 := created("a2", "r2", "basic", "2026-04-11T00:00:00Z")
	wantProration(t, mustApply(t, l, c, a2), a2, "basic", 2000, "2026-04-01T00:00:00Z")
	// 1001 * 15/30 = 500.5 -> 501 (half away from zero).
	a3 := created("a3", "r3", "odd", "2026-04-16T00:00:00Z")
	wantProration(t, mustApply(t, l, c, a3), a3, "odd", 501, "2026-04-01T00:00:00Z")
	// In May (period 1, 31 days): from May 11, 21 days remain: 9000*21/31 = 6096.77 -> 6097.
	a4 := created("a4", "r4", "pro", "2026-05-11T00:00:00Z")
	wantProration(t, mustApply(t, l, c, a4), a4, "pro", 6097, "2026-05-01T00:00:00Z")
	// Exactly at a boundary: full price, period starting there.
	a5 := created("a5", "r5", "pro", "2026-06-01T00:00:00Z")
	wantProration(t, mustApply(t, l, c, a5), a5, "pro", 9000, "2026-06-01T00:00:00Z")
}

func TestLedgerDuplicateCreated(t *testing.T) {
	c := testCatalog(t)
	l := models.NewLedger("usd", time.Time{}, 0)
	mustApply(t, l, c, created("a1", "r1", "basic", "2026-04-01T00:00:00Z"))
	before := snapshot(l)
	it, err := l.Apply(created("a2", "r1", "pro", "2026-04-11T00:00:00Z"), c)
	wantValidation(t, err, "activity a2", `"r1"`, "already exists")
	if it != nil || !sameLedger(before, *l) {
		t.Errorf("failed duplicate create changed the ledger: item %v, %+v -> %+v", it, before, *l)
	}
}

func TestLedgerFirstActivitySetsAnchor(t *testing.T) {
	c := testCatalog(t)

	t.Run("truncated to UTC seconds", func(t *testing.T) {
		l := models.NewLedger("usd", time.Time{}, 0)
		a := created("a1", "r1", "basic", "2026-04-11T12:30:45.678+02:00")
		it := mustApply(t, l, c, a)
		want := ts("2026-04-11T10:30:45Z")
		if !l.Schedule.Anchor.Equal(want) || l.Schedule.Anchor.Location() != time.UTC || l.Schedule.Anchor.Nanosecond() != 0 {
			t.Errorf("anchor = %s, want %s UTC", l.Schedule.Anchor, want)
		}
		if it.Amount != 3000 || !it.CreatedAt.Equal(want) || it.CreatedAt.Nanosecond() != 0 || !it.PeriodStart.Equal(want) {
			t.Errorf("item = %+v, want full price at %s", *it, want)
		}
	})

	t.Run("on a free plan", func(t *testing.T) {
		l := models.NewLedger("usd", time.Time{}, 0)
		a := created("a1", "r1", "free", "2026-04-05T00:00:00Z")
		wantNoItem(t, mustApply(t, l, c, a), a)
		if !l.Schedule.Anchor.Equal(ts("2026-04-05T00:00:00Z")) {
			t.Fatalf("a free-plan activity did not anchor the tenant: %s", l.Schedule.Anchor)
		}
		// A later paid resource is prorated against that anchor:
		// period [Apr 5, May 5) is 30 days, 20 remain from Apr 15: 3000*20/30.
		b := created("a2", "r2", "basic", "2026-04-15T00:00:00Z")
		wantProration(t, mustApply(t, l, c, b), b, "basic", 2000, "2026-04-05T00:00:00Z")
	})

	t.Run("an explicit anchor is kept", func(t *testing.T) {
		l := models.NewLedger("usd", ts("2026-04-01T00:00:00.5+00:00"), 0)
		if !l.Anchored() || !l.Schedule.Anchor.Equal(ts("2026-04-01T00:00:00Z")) {
			t.Fatalf("explicit anchor = %s", l.Schedule.Anchor)
		}
		a := created("a1", "r1", "basic", "2026-04-11T00:00:00Z")
		wantProration(t, mustApply(t, l, c, a), a, "basic", 2000, "2026-04-01T00:00:00Z")
		if !l.Schedule.Anchor.Equal(ts("2026-04-01T00:00:00Z")) {
			t.Errorf("first activity moved an explicit anchor to %s", l.Schedule.Anchor)
		}
	})

	t.Run("fixed periods", func(t *testing.T) {
		l := models.NewLedger("usd", time.Time{}, 10*time.Minute)
		mustApply(t, l, c, created("a1", "r1", "basic", "2026-04-01T00:00:00Z"))
		// Period 1 is [00:10, 00:20); at 00:14, 6 of 10 minutes remain: 9000*6/10.
		a := created("a2", "r2", "pro", "2026-04-01T00:14:00Z")
		wantProration(t, mustApply(t, l, c, a), a, "pro", 5400, "2026-04-01T00:10:00Z")
	})
}

func TestLedgerActivation(t *testing.T) {
	c := testCatalog(t)
	l := models.NewLedger("usd", time.Time{}, 0)
	mustApply(t, l, c, created("a1", "r1", "basic", "2026-04-01T00:00:00Z"))

	// Activating an active resource bills nothing (the seed charged it again).
	a2 := activated("a2", "r1", "2026-04-06T00:00:00Z")
	wantNoItem(t, mustApply(t, l, c, a2), a2)
	wantResource(t, l, "r1", "basic", true, "2026-04-06T00:00:00Z")

	// Deactivation credits the remaining share: -3000 * 15/30 = -1500.
	a3 := deactivated("a3", "r1", "2026-04-16T00:00:00Z")
	wantProration(t, mustApply(t, l, c, a3), a3, "basic", -1500, "2026-04-01T00:00:00Z")
	wantResource(t, l, "r1", "basic", false, "2026-04-16T00:00:00Z")

	// A second deactivation yields nothing.
	a4 := deactivated("a4", "r1", "2026-04-18T00:00:00Z")
	wantNoItem(t, mustApply(t, l, c, a4), a4)
	wantResource(t, l, "r1", "basic", false, "2026-04-18T00:00:00Z")

	// Reactivation charges the remaining share: 3000 * 10/30 = 1000.
	a5 := activated("a5", "r1", "2026-04-21T00:00:00Z")
	wantProration(t, mustApply(t, l, c, a5), a5, "basic", 1000, "2026-04-01T00:00:00Z")

	// And activating it again is free.
	a6 := activated("a6", "r1", "2026-04-26T00:00:00Z")
	wantNoItem(t, mustApply(t, l, c, a6), a6)
	wantResource(t, l, "r1", "basic", true, "2026-04-26T00:00:00Z")

	// Credits round half away from zero too: odd plan, deactivated at half:
	// -(1001 * 15/30) = -500.5 -> -501.
	mustApply(t, l, c, created("b1", "r2", "odd", "2026-04-01T00:00:00Z"))
	b2 := deactivated("b2", "r2", "2026-04-16T00:00:00Z")
	wantProration(t, mustApply(t, l, c, b2), b2, "odd", -501, "2026-04-01T00:00:00Z")
}

func TestLedgerPlanChangeWhileActive(t *testing.T) {
	c := testCatalog(t)
	l := models.NewLedger("usd", time.Time{}, 0)
	mustApply(t, l, c, created("a1", "r1", "basic", "2026-04-01T00:00:00Z"))

	// Upgrade at half: prorate(9000) - prorate(3000) = 4500 - 1500 = 3000, on the new plan.
	a2 := planChanged("a2", "r1", "pro", "2026-04-16T00:00:00Z")
	wantProration(t, mustApply(t, l, c, a2), a2, "pro", 3000, "2026-04-01T00:00:00Z")
	wantResource(t, l, "r1", "pro", true, "2026-04-16T00:00:00Z")

	// Downgrade with 10 days left: 1000 - 3000 = -2000, a credit on the new plan.
	a3 := planChanged("a3", "r1", "basic", "2026-04-21T00:00:00Z")
	wantProration(t, mustApply(t, l, c, a3), a3, "basic", -2000, "2026-04-01T00:00:00Z")

	// To the same plan: nothing, and nothing changes but the last instant.
	a4 := planChanged("a4", "r1", "basic", "2026-04-22T00:00:00Z")
	wantNoItem(t, mustApply(t, l, c, a4), a4)
	wantResource(t, l, "r1", "basic", true, "2026-04-22T00:00:00Z")

	// Deactivation afterwards credits the current plan: -3000 * 5/30 = -500.
	a5 := deactivated("a5", "r1", "2026-04-26T00:00:00Z")
	wantProration(t, mustApply(t, l, c, a5), a5, "basic", -500, "2026-04-01T00:00:00Z")
}

// DESIGN says prorate(price q) - prorate(price p), each rounded, not
// prorate(q - p): with prices 1 and 4 at half a period they differ:
// round(2.0) - round(0.5) = 2 - 1 = 1, but round((4-1)/2) = round(1.5) = 2.
func TestLedgerPlanChangeRoundsEachSide(t *testing.T) {
	c, err := models.NewCatalog([]models.Plan{
		{ID: "one", Name: "One", Amount: 1, Currency: "usd"},
		{ID: "four", Name: "Four", Amount: 4, Currency: "usd"},
		{ID: "two", Name: "Two", Amount: 2, Currency: "usd"},
	})
	if err != nil {
		t.Fatal(err)
	}
	l := models.NewLedger("usd", time.Time{}, 0)
	mustApply(t, l, c, created("a1", "r1", "one", "2026-04-01T00:00:00Z"))
	a2 := planChanged("a2", "r1", "four", "2026-04-16T00:00:00Z")
	wantProration(t, mustApply(t, l, c, a2), a2, "four", 1, "2026-04-01T00:00:00Z")

	// one -> two at half: round(1.0) - round(0.5) = 0: a zero item is no item.
	mustApply(t, l, c, created("b1", "r2", "one", "2026-04-01T00:00:00Z"))
	b2 := planChanged("b2", "r2", "two", "2026-04-16T00:00:00Z")
	wantNoItem(t, mustApply(t, l, c, b2), b2)
	wantResource(t, l, "r2", "two", true, "2026-04-16T00:00:00Z")
}

func TestLedgerPlanChangeWhileInactive(t *testing.T) {
	c := testCatalog(t)
	l := models.NewLedger("usd", time.Time{}, 0)
	mustApply(t, l, c, created("a1", "r1", "basic", "2026-04-01T00:00:00Z"))
	mustApply(t, l, c, deactivated("a2", "r1", "2026-04-11T00:00:00Z"))

	// Inactive: the resource just takes the new plan (the seed charged it).
	a3 := planChanged("a3", "r1", "pro", "2026-04-16T00:00:00Z")
	wantNoItem(t, mustApply(t, l, c, a3), a3)
	wantResource(t, l, "r1", "pro", false, "2026-04-16T00:00:00Z")

	// Inactive at the boundary: no renewal.
	if rs, err := l.Renewals(ts("2026-05-01T00:00:00Z"), c); err != nil || len(rs) != 0 {
		t.Fatalf("renewals of an inactive resource: %+v, %v", rs, err)
	}

	// Reactivation uses the new plan: 9000 * 10/30 = 3000.
	a4 := activated("a4", "r1", "2026-04-21T00:00:00Z")
	wantProration(t, mustApply(t, l, c, a4), a4, "pro", 3000, "2026-04-01T00:00:00Z")

	// And so does the renewal.
	rs, err := l.Renewals(ts("2026-05-01T00:00:00Z"), c)
	if err != nil || len(rs) != 1 || rs[0].PlanID != "pro" || rs[0].Amount != 9000 {
		t.Fatalf("renewal after an inactive plan change = %+v, %v; want one pro 9000", rs, err)
	}
}

func TestLedgerFreePlans(t *testing.T) {
	c := testCatalog(t)
	l := models.NewLedger("usd", time.Time{}, 0)
	steps := []models.Activity{
		created("a1", "r1", "free", "2026-04-01T00:00:00Z"),
		deactivated("a2", "r1", "2026-04-06T00:00:00Z"),
		activated("a3", "r1", "2026-04-08T00:00:00Z"),
		activated("a4", "r1", "2026-04-09T00:00:00Z"),
	}
	for _, a := range steps {
		wantNoItem(t, mustApply(t, l, c, a), a)
	}
	wantResource(t, l, "r1", "free", true, "2026-04-09T00:00:00Z")
	if rs, err := l.Renewals(ts("2026-05-01T00:00:00Z"), c); err != nil || len(rs) != 0 {
		t.Errorf("renewal of a free plan: %+v, %v", rs, err)
	}

	// free -> paid while active: prorate(3000) - prorate(0) = 3000 * 15/30 = 1500.
	a5 := planChanged("a5", "r1", "basic", "2026-04-16T00:00:00Z")
	wantProration(t, mustApply(t, l, c, a5), a5, "basic", 1500, "2026-04-01T00:00:00Z")
	// paid -> free while active: prorate(0) - prorate(3000) = -1000 with 10 days
	// left, a credit on the (free) new plan. The code reads "free plans produce
	// no items" as "activities that involve only free plans".
	a6 := planChanged("a6", "r1", "free", "2026-04-21T00:00:00Z")
	wantProration(t, mustApply(t, l, c, a6), a6, "free", -1000, "2026-04-01T00:00:00Z")
	a7 := deactivated("a7", "r1", "2026-04-26T00:00:00Z")
	wantNoItem(t, mustApply(t, l, c, a7), a7)
}

// An activity for the same resource at the same instant as its last one is
// not "older", so it is accepted.
func TestLedgerSameInstantAccepted(t *testing.T) {
	c := testCatalog(t)
	l := models.NewLedger("usd", time.Time{}, 0)
	mustApply(t, l, c, created("a1", "r1", "basic", "2026-04-11T00:00:00Z"))
	a2 := deactivated("a2", "r1", "2026-04-11T00:00:00Z")
	// Created and deactivated at the same instant: +3000 then -3000.
	wantProration(t, mustApply(t, l, c, a2), a2, "basic", -3000, "2026-04-11T00:00:00Z")
	// Another resource may record an activity older than r1's last one.
	a3 := created("a3", "r2", "basic", "2026-04-11T00:00:00Z")
	wantProration(t, mustApply(t, l, c, a3), a3, "basic", 3000, "2026-04-11T00:00:00Z")
}

// Every rejected activity is a *ValidationError naming the activity, and it
// leaves the ledger exactly as it was.
func TestLedgerRejects(t *testing.T) {
	c := testCatalog(t)
	setup := func(t *testing.T) *models.Ledger {
		l := models.NewLedger("usd", time.Time{}, 0)
		mustApply(t, l, c, created("s1", "r1", "basic", "2026-04-01T00:00:00Z"))
		mustApply(t, l, c, planChanged("s2", "r1", "pro", "2026-04-10T00:00:00Z"))
		mustApply(t, l, c, created("s3", "r3", "basic", "2026-04-02T00:00:00Z"))
		mustApply(t, l, c, deactivated("s4", "r3", "2026-04-03T00:00:00Z"))
		return l
	}
	cases := []struct {
		name     string
		a        models.Activity
		field    string
		mentions []string
	}{
		{"unknown plan on create", created("x1", "r2", "gold", "2026-04-12T00:00:00Z"), "activity x1", []string{`"gold"`, "catalog"}},
		{"unknown plan on active plan change", planChanged("x1", "r1", "gold", "2026-04-12T00:00:00Z"), "activity x1", []string{`"gold"`}},
		{"unknown plan on inactive plan change", planChanged("x1", "r3", "gold", "2026-04-12T00:00:00Z"), "activity x1", []string{`"gold"`}},
		{"unknown resource activated", activated("x1", "r9", "2026-04-12T00:00:00Z"), "activity x1", []string{`"r9"`, "unknown"}},
		{"unknown resource deactivated", deactivated("x1", "r9", "2026-04-12T00:00:00Z"), "activity x1", []string{`"r9"`, "unknown"}},
		{"unknown resource plan change", planChanged("x1", "r9", "basic", "2026-04-12T00:00:00Z"), "activity x1", []string{`"r9"`, "unknown"}},
		{"before the anchor", created("x1", "r2", "basic", "2026-03-31T23:59:59Z"), "activity x1", []string{"before the billing anchor", "2026-04-01T00:00:00Z"}},
		{"currency mismatch on create", created("x1", "r2", "euro", "2026-04-12T00:00:00Z"), "activity x1", []string{`"euro"`, "eur", "usd"}},
		{"currency mismatch on plan change", planChanged("x1", "r1", "euro", "2026-04-12T00:00:00Z"), "activity x1", []string{`"euro"`, "eur", "usd"}},
		{"currency mismatch on inactive plan change", planChanged("x1", "r3", "euro", "2026-04-12T00:00:00Z"), "activity x1", []string{"eur"}},
		{"older than the resource's last", deactivated("x1", "r1", "2026-04-09T23:59:59Z"), "activity x1", []string{"older", `"r1"`, "2026-04-10T00:00:00Z"}},
		{"older create of an existing id", created("x1", "r1", "basic", "2026-04-05T00:00:00Z"), "activity x1", []string{`"r1"`}},
		{"duplicate create", created("x1", "r1", "basic", "2026-04-12T00:00:00Z"), "activity x1", []string{`"r1"`, "already exists"}},
		{"invalid activity", act("x1", "resource_deleted", "r1", "", "2026-04-12T00:00:00Z"), "activity x1", []string{"type", "resource_deleted"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := setup(t)
			before := snapshot(l)
			it, err := l.Apply(tc.a, c)
			wantValidation(t, err, tc.field, tc.mentions...)
			if it != nil {
				t.Errorf("rejected activity returned an item %+v", *it)
			}
			if !sameLedger(before, *l) {
				t.Errorf("rejected activity changed the ledger:\nbefore %+v\nafter  %+v", before, *l)
			}
		})
	}
}

// When the first activity fails, the anchor stays unset (and nothing else
// changes), so the next valid activity anchors the tenant.
func TestLedgerRejectedFirstActivityLeavesAnchorUnset(t *testing.T) {
	c := testCatalog(t)
	cases := []struct {
		name     string
		currency models.Currency
		a        models.Activity
		mentions []string
	}{
		{"unknown plan", "usd", created("x1", "r1", "gold", "2026-04-01T00:00:00Z"), []string{`"gold"`}},
		{"unknown resource", "usd", activated("x1", "r1", "2026-04-01T00:00:00Z"), []string{`"r1"`}},
		{"currency mismatch", "usd", created("x1", "r1", "euro", "2026-04-01T00:00:00Z"), []string{"eur"}},
		{"unknown plan, no currency yet", "", created("x1", "r1", "gold", "2026-04-01T00:00:00Z"), []string{`"gold"`}},
		{"invalid activity", "usd", created("x1", "r1", "", "2026-04-01T00:00:00Z"), []string{"plan_id"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l := models.NewLedger(tc.currency, time.Time{}, 0)
			before := snapshot(l)
			_, err := l.Apply(tc.a, c)
			wantValidation(t, err, "activity x1", tc.mentions...)
			if l.Anchored() || !l.Schedule.Anchor.IsZero() {
				t.Fatalf("a rejected first activity set the anchor to %s", l.Schedule.Anchor)
			}
			if !sameLedger(before, *l) {
				t.Fatalf("a rejected first activity changed the ledger: %+v", *l)
			}
			a := created("a2", "r2", "basic", "2026-04-11T00:00:00Z")
			wantProration(t, mustApply(t, l, c, a), a, "basic", 3000, "2026-04-11T00:00:00Z")
			if !l.Schedule.Anchor.Equal(ts("2026-04-11T00:00:00Z")) {
				t.Errorf("anchor = %s, want the first accepted activity's instant", l.Schedule.Anchor)
			}
		})
	}
}

// With no tenant currency (the offline preview), the first plan used sets it.
func TestLedgerCurrencyFromFirstPlan(t *testing.T) {
	c := testCatalog(t)
	l := models.NewLedger("", time.Time{}, 0)
	mustApply(t, l, c, created("a1", "r1", "euro", "2026-04-01T00:00:00Z"))
	if l.Currency != "eur" {
		t.Fatalf("currency = %q, want eur", l.Currency)
	}
	before := snapshot(l)
	_, err := l.Apply(created("a2", "r2", "basic", "2026-04-02T00:00:00Z"), c)
	wantValidation(t, err, "activity a2", `"basic"`, "usd", "eur")
	if !sameLedger(before, *l) {
		t.Errorf("ledger changed: %+v", *l)
	}
}

func TestActivityValidate(t *testing.T) {
	long := strings.Repeat("x", 129)
	ok128 := strings.Repeat("x", 128)
	at := ts("2026-04-01T00:00:00Z")
	cases := []struct {
		name     string
		a        models.Activity
		field    string // "" means valid
		mentions []string
	}{
		{"valid created", models.Activity{ID: "a1", Type: models.ResourceCreated, ResourceID: "r1", PlanID: "basic", At: at}, "", nil},
		{"valid activated", models.Activity{ID: "a1", Type: models.ResourceActivated, ResourceID: "r1", At: at}, "", nil},
		{"valid deactivated", models.Activity{ID: "a1", Type: models.ResourceDeactivated, ResourceID: "r1", At: at}, "", nil},
		{"valid plan change", models.Activity{ID: "a1", Type: models.ResourcePlanChanged, ResourceID: "r1", PlanID: "pro", At: at}, "", nil},
		{"ids of 128 characters", models.Activity{ID: ok128, Type: models.ResourceActivated, ResourceID: ok128, At: at}, "", nil},
		{"empty id", models.Activity{Type: models.ResourceActivated, ResourceID: "r1", At: at}, "activity", []string{"id must not be empty"}},
		{"blank id", models.Activity{ID: "  ", Type: models.ResourceActivated, ResourceID: "r1", At: at}, "activity   ", []string{"id must not be empty"}},
		{"long id", models.Activity{ID: long, Type: models.ResourceActivated, ResourceID: "r1", At: at}, "activity " + long, []string{"id is longer than 128"}},
		{"empty resource", models.Activity{ID: "a1", Type: models.ResourceActivated, At: at}, "activity a1", []string{"resource_id must not be empty"}},
		{"long resource", models.Activity{ID: "a1", Type: models.ResourceActivated, ResourceID: long, At: at}, "activity a1", []string{"resource_id is longer than 128"}},
		{"no instant", models.Activity{ID: "a1", Type: models.ResourceActivated, ResourceID: "r1"}, "activity a1", []string{"created_at must be set"}},
		{"created without plan", models.Activity{ID: "a1", Type: models.ResourceCreated, ResourceID: "r1", At: at}, "activity a1", []string{"plan_id is required for resource_created"}},
		{"plan change with blank plan", models.Activity{ID: "a1", Type: models.ResourcePlanChanged, ResourceID: "r1", PlanID: " ", At: at}, "activity a1", []string{"plan_id is required for resource_plan_changed"}},
		{"activated with plan", models.Activity{ID: "a1", Type: models.ResourceActivated, ResourceID: "r1", PlanID: "basic", At: at}, "activity a1", []string{"plan_id must be empty for resource_activated"}},
		{"deactivated with plan", models.Activity{ID: "a1", Type: models.ResourceDeactivated, ResourceID: "r1", PlanID: "basic", At: at}, "activity a1", []string{"plan_id must be empty for resource_deactivated"}},
		{"unknown type", models.Activity{ID: "a1", Type: "resource_deleted", ResourceID: "r1", At: at}, "activity a1", []string{`type "resource_deleted"`, "resource_created"}},
		{"empty type", models.Activity{ID: "a1", ResourceID: "r1", At: at}, "activity a1", []string{`type ""`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.a.Validate()
			if tc.field == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			wantValidation(t, err, tc.field, tc.mentions...)
		})
	}
	if got := models.ActivityTypes; len(got) != 4 || got[0] != "resource_created" || got[1] != "resource_activated" ||
		got[2] != "resource_deactivated" || got[3] != "resource_plan_changed" {
		t.Errorf("ActivityTypes = %v", got)
	}
}

func TestLedgerRenewals(t *testing.T) {
	c := testCatalog(t)
	l := models.NewLedger("usd", time.Time{}, 0)
	for _, a := range []models.Activity{
		created("a1", "r1", "basic", "2026-04-01T00:00:00Z"),
		created("a2", "r2", "pro", "2026-04-02T00:00:00Z"),
		deactivated("a3", "r2", "2026-04-03T00:00:00Z"),
		created("a4", "r3", "free", "2026-04-04T00:00:00Z"),
		created("a5", "r0", "pro", "2026-04-05T00:00:00Z"),
		created("a6", "r4", "odd", "2026-04-06T00:00:00Z"),
	} {
		mustApply(t, l, c, a)
	}
	b := ts("2026-05-01T00:00:00Z")
	before := snapshot(l)
	got, err := l.Renewals(b, c)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		res, plan string
		amount    int64
	}{{"r0", "pro", 9000}, {"r1", "basic", 3000}, {"r4", "odd", 1001}} // by resource id; r2 inactive, r3 free
	if len(got) != len(want) {
		t.Fatalf("Renewals = %+v, want %d items", got, len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.Kind != models.KindRenewal || g.ResourceID != w.res || g.PlanID != w.plan || g.Amount != w.amount ||
			g.Currency != "usd" || g.ActivityID != "" || !g.CreatedAt.Equal(b) || !g.PeriodStart.Equal(b) || g.Description == "" {
			t.Errorf("renewal %d = %+v, want %s on %s for %d at %s", i, g, w.res, w.plan, w.amount, b)
		}
	}
	if !sameLedger(before, *l) {
		t.Error("Renewals changed the ledger")
	}

	// A resource whose plan left the catalog cannot be renewed silently.
	l.Resources["r5"] = models.Resource{PlanID: "gone", Active: true, LastAt: ts("2026-04-07T00:00:00Z")}
	_, err = l.Renewals(b, c)
	wantValidation(t, err, "resource r5", `"gone"`)
}

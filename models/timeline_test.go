package models_test

import (
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/billflow/billflow/models"
	"pgregory.net/rapid"
)

// itemKey is an item without its description, printable and comparable.
type itemKey struct {
	Kind        models.ItemKind
	ActivityID  string
	ResourceID  string
	PlanID      string
	Amount      int64
	Currency    models.Currency
	CreatedAt   string
	PeriodStart string
}

func keyOf(it models.Item) itemKey {
	return itemKey{it.Kind, it.ActivityID, it.ResourceID, it.PlanID, it.Amount, it.Currency,
		it.CreatedAt.UTC().Format(time.RFC3339Nano), it.PeriodStart.UTC().Format(time.RFC3339Nano)}
}

func keysOf(items []models.Item) []itemKey {
	out := make([]itemKey, len(items))
	for i, it := range items {
		out[i] = keyOf(it)
	}
	return out
}

func proration(act, res, plan string, amount int64, at, periodStart string) itemKey {
	return itemKey{models.KindProration, act, res, plan, amount, "usd", at, periodStart}
}

func renewal(res, plan string, amount int64, boundary string) itemKey {
	return itemKey{models.KindRenewal, "", res, plan, amount, "usd", boundary, boundary}
}

func wantItems(t testing.TB, got []models.Item, want []itemKey) {
	t.Helper()
	g := keysOf(got)
	if !slices.Equal(g, want) {
		t.Errorf("items differ:\n got: %s\nwant: %s", fmtKeys(g), fmtKeys(want))
	}
}

func fmtKeys(ks []itemKey) string {
	s := ""
	for _, k := range ks {
		s += fmt.Sprintf("\n  %+v", k)
	}
	return s
}

func mustTimeline(t testing.TB, l *models.Ledger, acts []models.Activity, c models.Catalog, upTo string) []models.Item {
	t.Helper()
	items, err := models.Timeline(l, acts, c, ts(upTo))
	if err != nil {
		t.Fatalf("Timeline: %v", err)
	}
	return items
}

// A month-end anchor (the 31st), hand-computed.
//
//	S_0 = 2026-01-31T10:00Z, S_1 = 02-28T10:00Z, S_2 = 03-31T10:00Z, S_3 = 04-30T10:00Z.
//	a1 r1 basic at S_0: full price                                  +3000
//	a2 r2 pro at 02-14T10:00: period 0 is 28 days, 14 remain: 9000*14/28 = +4500
//	S_1 renewals: r1 basic 3000, r2 pro 9000 (r3 is created AT S_1, so it is not in it)
//	a3 r3 basic exactly at S_1: full price, period_start S_1        +3000
//	a4 r2 deactivated 03-15T10:00: period 1 is 31 days, 16 remain:
//	   -9000*16/31 = -4645.16 -> -4645
//	S_2 renewals: r1 3000, r3 3000 (r2 was deactivated before S_2)
//	S_3 renewals: r1 3000, r3 3000 (upTo = S_3 is inclusive)
//	total 3000+4500+12000+3000-4645+6000+6000 = 29855
func TestTimelineMonthEnd(t *testing.T) {
	c := testCatalog(t)
	acts := []models.Activity{
		created("a1", "r1", "basic", "2026-01-31T10:00:00Z"),
		created("a2", "r2", "pro", "2026-02-14T10:00:00Z"),
		created("a3", "r3", "basic", "2026-02-28T10:00:00Z"),
		deactivated("a4", "r2", "2026-03-15T10:00:00Z"),
	}
	want := []itemKey{
		proration("a1", "r1", "basic", 3000, "2026-01-31T10:00:00Z", "2026-01-31T10:00:00Z"),
		proration("a2", "r2", "pro", 4500, "2026-02-14T10:00:00Z", "2026-01-31T10:00:00Z"),
		renewal("r1", "basic", 3000, "2026-02-28T10:00:00Z"),
		renewal("r2", "pro", 9000, "2026-02-28T10:00:00Z"),
		proration("a3", "r3", "basic", 3000, "2026-02-28T10:00:00Z", "2026-02-28T10:00:00Z"),
		proration("a4", "r2", "pro", -4645, "2026-03-15T10:00:00Z", "2026-02-28T10:00:00Z"),
		renewal("r1", "basic", 3000, "2026-03-31T10:00:00Z"),
		renewal("r3", "basic", 3000, "2026-03-31T10:00:00Z"),
		renewal("r1", "basic", 3000, "2026-04-30T10:00:00Z"),
		renewal("r3", "basic", 3000, "2026-04-30T10:00:00Z"),
	}
	l := models.NewLedger("usd", time.Time{}, 0)
	items := mustTimeline(t, l, acts, c, "2026-04-30T10:00:00Z")
	wantItems(t, items, want)
	if got := models.Total(items); got != 29855 {
		t.Errorf("Total = %d, want 29855", got)
	}

	// One second before S_3: no S_3 renewals.
	items = mustTimeline(t, models.NewLedger("usd", time.Time{}, 0), acts, c, "2026-04-30T09:59:59Z")
	wantItems(t, items, want[:8])

	// Out-of-order input is applied in order of instant, with the same result.
	shuffled := []models.Activity{acts[3], acts[1], acts[0], acts[2]}
	items = mustTimeline(t, models.NewLedger("usd", time.Time{}, 0), shuffled, c, "2026-04-30T10:00:00Z")
	wantItems(t, items, want)
	if shuffled[0].ID != "a4" {
		t.Error("Timeline reordered its caller's slice")
	}
}

// Deactivating exactly at a boundary: the renewal at S_k (which folds only
// activities before S_k) charges the full price, and the deactivation at S_k
// credits the full price back. Nothing is renewed afterwards.
func TestTimelineDeactivatedAtBoundary(t *testing.T) {
	c := testCatalog(t)
	acts := []models.Activity{
		created("a1", "r1", "basic", "2026-04-01T00:00:00Z"),
		deactivated("a2", "r1", "2026-05-01T00:00:00Z"),
	}
	items := mustTimeline(t, models.NewLedger("usd", time.Time{}, 0), acts, c, "2026-07-01T00:00:00Z")
	wantItems(t, items, []itemKey{
		proration("a1", "r1", "basic", 3000, "2026-04-01T00:00:00Z", "2026-04-01T00:00:00Z"),
		renewal("r1", "basic", 3000, "2026-05-01T00:00:00Z"),
		proration("a2", "r1", "basic", -3000, "2026-05-01T00:00:00Z", "2026-05-01T00:00:00Z"),
	})
}

// Renewals use the plan as of S_k: a change before S_k counts, one at S_k
// does not (it is prorated at full price instead).
func TestTimelineRenewalUsesPlanAsOfBoundary(t *testing.T) {
	c := testCatalog(t)
	acts := []models.Activity{
		created("a1", "r1", "basic", "2026-04-01T00:00:00Z"),
		deactivated("a2", "r1", "2026-04-11T00:00:00Z"),                // -2000
		planChanged("a3", "r1", "pro", "2026-04-16T00:00:00Z"),         // inactive: nothing
		activated("a4", "r1", "2026-04-21T00:00:00Z"),                  // 9000*10/30 = +3000 on pro
		planChanged("a5", "r1", "basic", "2026-06-01T00:00:00Z"),       // at S_2: 3000-9000 = -6000
		created("a6", "r2", "pro", "2026-05-31T23:59:59Z"),             // 9000*1/2678400 -> 0: no item
		planChanged("a7", "r2", "basic", "2026-05-31T23:59:59.999Z"),   // same second: 0 - 0: no item
		activated("a8", "r2", "2026-06-01T00:00:00Z"),                  // already active: nothing
		created("a9", "r3", "odd", "2026-06-16T00:00:00Z"),             // June 30 days, 15 left: 500.5 -> 501
		deactivated("a10", "r3", "2026-06-16T00:00:00.5Z"),             // same second: -501
		planChanged("a11", "r3", "basic", "2026-06-20T00:00:00Z"),      // inactive: nothing
		planChanged("a12", "r1", "basic", "2026-06-20T00:00:00Z"),      // same plan: nothing
		created("a13", "r4", "free", "2026-06-20T00:00:00Z"),           // free: nothing
		planChanged("a14", "r4", "free", "2026-06-21T00:00:00Z"),       // free to free: nothing
		deactivated("a15", "r4", "2026-06-22T00:00:00Z"),               // free: nothing
		activated("a16", "r3", "2026-07-01T00:00:00Z"),                 // at S_3, on basic: +3000
		planChanged("a17", "r2", "pro", "2026-07-01T00:00:00.999999Z"), // 9000-3000 = +6000
	}
	items := mustTimeline(t, models.NewLedger("usd", time.Time{}, 0), acts, c, "2026-07-01T00:00:00Z")
	wantItems(t, items, []itemKey{
		proration("a1", "r1", "basic", 3000, "2026-04-01T00:00:00Z", "2026-04-01T00:00:00Z"),
		proration("a2", "r1", "basic", -2000, "2026-04-11T00:00:00Z", "2026-04-01T00:00:00Z"),
		proration("a4", "r1", "pro", 3000, "2026-04-21T00:00:00Z", "2026-04-01T00:00:00Z"),
		renewal("r1", "pro", 9000, "2026-05-01T00:00:00Z"),
		renewal("r1", "pro", 9000, "2026-06-01T00:00:00Z"),
		renewal("r2", "basic", 3000, "2026-06-01T00:00:00Z"),
		proration("a5", "r1", "basic", -6000, "2026-06-01T00:00:00Z", "2026-06-01T00:00:00Z"),
		proration("a9", "r3", "odd", 501, "2026-06-16T00:00:00Z", "2026-06-01T00:00:00Z"),
		proration("a10", "r3", "odd", -501, "2026-06-16T00:00:00Z", "2026-06-01T00:00:00Z"),
		renewal("r1", "basic", 3000, "2026-07-01T00:00:00Z"),
		renewal("r2", "basic", 3000, "2026-07-01T00:00:00Z"),
		proration("a16", "r3", "basic", 3000, "2026-07-01T00:00:00Z", "2026-07-01T00:00:00Z"),
		proration("a17", "r2", "pro", 6000, "2026-07-01T00:00:00Z", "2026-07-01T00:00:00Z"),
	})
}

// Activities after upTo are ignored, even invalid ones; one exactly at upTo is in.
func TestTimelineUpTo(t *testing.T) {
	c := testCatalog(t)
	acts := []models.Activity{
		created("a1", "r1", "basic", "2026-04-01T00:00:00Z"),
		created("a2", "r2", "basic", "2026-04-11T00:00:00Z"),
		created("a3", "r3", "gold", "2026-04-11T00:00:01Z"),
	}
	items := mustTimeline(t, models.NewLedger("usd", time.Time{}, 0), acts, c, "2026-04-11T00:00:00.9Z")
	wantItems(t, items, []itemKey{
		proration("a1", "r1", "basic", 3000, "2026-04-01T00:00:00Z", "2026-04-01T00:00:00Z"),
		proration("a2", "r2", "basic", 2000, "2026-04-11T00:00:00Z", "2026-04-01T00:00:00Z"),
	})

	// Before the first activity: nothing, and the ledger stays unanchored.
	l := models.NewLedger("usd", time.Time{}, 0)
	items = mustTimeline(t, l, acts, c, "2026-03-01T00:00:00Z")
	if len(items) != 0 || l.Anchored() {
		t.Errorf("before any activity: items %+v, anchored %v", items, l.Anchored())
	}

	// No activities on an explicitly anchored ledger: no items, no error.
	items = mustTimeline(t, models.NewLedger("usd", ts("2026-01-01T00:00:00Z"), 0), nil, c, "2026-12-01T00:00:00Z")
	if len(items) != 0 {
		t.Errorf("no activities: items %+v", items)
	}
}

// Activities at the same instant keep the order they were recorded in.
func TestTimelineSameInstantKeepsOrder(t *testing.T) {
	c := testCatalog(t)
	a := created("a1", "r1", "basic", "2026-04-11T00:00:00Z")
	b := deactivated("a2", "r1", "2026-04-11T00:00:00.5Z") // same billing second
	items := mustTimeline(t, models.NewLedger("usd", ts("2026-04-01T00:00:00Z"), 0), []models.Activity{a, b}, c, "2026-04-30T00:00:00Z")
	wantItems(t, items, []itemKey{
		proration("a1", "r1", "basic", 2000, "2026-04-11T00:00:00Z", "2026-04-01T00:00:00Z"),
		proration("a2", "r1", "basic", -2000, "2026-04-11T00:00:00Z", "2026-04-01T00:00:00Z"),
	})
	_, err := models.Timeline(models.NewLedger("usd", ts("2026-04-01T00:00:00Z"), 0), []models.Activity{b, a}, c, ts("2026-04-30T00:00:00Z"))
	wantValidation(t, err, "activity a2", `"r1"`, "unknown")

	// Long enough that an unstable sort would shuffle equal instants: the
	// log is given newest first, and within each instant in recorded order.
	var acts []models.Activity
	var want []itemKey
	for i := 9; i >= 0; i-- {
		at := fmt.Sprintf("2026-04-%02dT00:00:00Z", 11+i)
		res := fmt.Sprintf("r%d", i)
		acts = append(acts,
			created(res+"-c", res, "basic", at),
			deactivated(res+"-d", res, at),
			activated(res+"-a", res, at),
			planChanged(res+"-p", res, "pro", at))
		// 20-i days of 30 remain.
		share := int64(20 - i)
		want = append([]itemKey{
			proration(res+"-c", res, "basic", 100*share, at, "2026-04-01T00:00:00Z"),
			proration(res+"-d", res, "basic", -100*share, at, "2026-04-01T00:00:00Z"),
			proration(res+"-a", res, "basic", 100*share, at, "2026-04-01T00:00:00Z"),
			proration(res+"-p", res, "pro", 200*share, at, "2026-04-01T00:00:00Z"),
		}, want...)
	}
	items = mustTimeline(t, models.NewLedger("usd", ts("2026-04-01T00:00:00Z"), 0), acts, c, "2026-04-30T00:00:00Z")
	wantItems(t, items, want)
}

func TestTimelineErrorsReachTheCaller(t *testing.T) {
	c := testCatalog(t)
	cases := []struct {
		name     string
		anchor   string
		acts     []models.Activity
		field    string
		mentions []string
	}{
		{"unknown plan", "", []models.Activity{
			created("a1", "r1", "basic", "2026-04-01T00:00:00Z"),
			created("a2", "r2", "gold", "2026-05-11T00:00:00Z"),
		}, "activity a2", []string{`"gold"`}},
		{"unknown resource", "", []models.Activity{
			created("a1", "r1", "basic", "2026-04-01T00:00:00Z"),
			deactivated("a2", "r2", "2026-04-02T00:00:00Z"),
		}, "activity a2", []string{`"r2"`}},
		{"before an explicit anchor", "2026-04-01T00:00:00Z", []models.Activity{
			created("a1", "r1", "basic", "2026-03-31T00:00:00Z"),
		}, "activity a1", []string{"before the billing anchor"}},
		{"currency", "", []models.Activity{
			created("a1", "r1", "basic", "2026-04-01T00:00:00Z"),
			created("a2", "r2", "euro", "2026-04-02T00:00:00Z"),
		}, "activity a2", []string{"eur", "usd"}},
		{"duplicate create", "", []models.Activity{
			created("a1", "r1", "basic", "2026-04-01T00:00:00Z"),
			created("a2", "r1", "basic", "2026-04-02T00:00:00Z"),
		}, "activity a2", []string{"already exists"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var anchor time.Time
			if tc.anchor != "" {
				anchor = ts(tc.anchor)
			}
			items, err := models.Timeline(models.NewLedger("usd", anchor, 0), tc.acts, c, ts("2026-06-01T00:00:00Z"))
			wantValidation(t, err, tc.field, tc.mentions...)
			if items != nil {
				t.Errorf("items on error: %+v", items)
			}
		})
	}
}

// A fixed 10-minute schedule bills the same way.
func TestTimelineFixedPeriods(t *testing.T) {
	c := testCatalog(t)
	acts := []models.Activity{
		created("a1", "r1", "basic", "2026-04-01T00:00:00Z"),
		created("a2", "r2", "pro", "2026-04-01T00:07:30Z"), // 2.5 of 10 min left: 2250
		deactivated("a3", "r1", "2026-04-01T00:20:00Z"),    // at S_2: -3000
	}
	items := mustTimeline(t, models.NewLedger("usd", time.Time{}, 10*time.Minute), acts, c, "2026-04-01T00:30:00Z")
	wantItems(t, items, []itemKey{
		proration("a1", "r1", "basic", 3000, "2026-04-01T00:00:00Z", "2026-04-01T00:00:00Z"),
		proration("a2", "r2", "pro", 2250, "2026-04-01T00:07:30Z", "2026-04-01T00:00:00Z"),
		renewal("r1", "basic", 3000, "2026-04-01T00:10:00Z"),
		renewal("r2", "pro", 9000, "2026-04-01T00:10:00Z"),
		renewal("r1", "basic", 3000, "2026-04-01T00:20:00Z"),
		renewal("r2", "pro", 9000, "2026-04-01T00:20:00Z"),
		proration("a3", "r1", "basic", -3000, "2026-04-01T00:20:00Z", "2026-04-01T00:20:00Z"),
		renewal("r2", "pro", 9000, "2026-04-01T00:30:00Z"),
	})
}

func TestClaimable(t *testing.T) {
	items := func(amounts ...int64) []models.Item {
		out := make([]models.Item, len(amounts))
		for i, a := range amounts {
			out[i] = models.Item{Amount: a}
		}
		return out
	}
	cases := []struct {
		items []models.Item
		total int64
		ok    bool
	}{
		{nil, 0, false},
		{items(1), 1, true},
		{items(3000, -1500), 1500, true},
		{items(1500, -1500), 0, false},
		{items(-1500), -1500, false},
		{items(-1500, 500), -1000, false},
		{items(-1500, 500, 3000), 2000, true},
	}
	for _, c := range cases {
		total, ok, _ := models.Claimable(c.items)
		if total != c.total || ok != c.ok {
			t.Errorf("Claimable(%v) = %d, %v; want %d, %v", c.items, total, ok, c.total, c.ok)
		}
		if got := models.Total(c.items); got != c.total {
			t.Errorf("Total(%v) = %d, want %d", c.items, got, c.total)
		}
	}
}

// simulateClaims plays DESIGN 4 "Invoices" over a timeline: a claim after
// each activity's item and after each boundary's renewals. A claim takes all
// outstanding items when they sum to more than zero.
func simulateClaims(items []models.Item) (invoices [][]models.Item, outstanding []models.Item) {
	for i, it := range items {
		outstanding = append(outstanding, it)
		if it.Kind == models.KindRenewal && i+1 < len(items) && items[i+1].Kind == models.KindRenewal &&
			items[i+1].PeriodStart.Equal(it.PeriodStart) {
			continue // the claim comes after the boundary's last renewal
		}
		if _, ok, _ := models.Claimable(outstanding); ok {
			invoices = append(invoices, outstanding)
			outstanding = nil
		}
	}
	return invoices, outstanding
}

// A credit that makes the outstanding net negative is carried forward and
// nets against the next renewal's claim.
//
//	a1 r1 pro at Apr 1 (anchor)                          +9000 -> invoice 1 (9000)
//	a2 r1 -> basic at Apr 16: 1500 - 4500              = -3000 -> outstanding -3000, not claimed
//	a3 r2 basic at Apr 26: 3000*5/30                    =  +500 -> outstanding -2500, not claimed
//	a4 r2 deactivated at Apr 26                         =  -500 -> outstanding -3000
//	a5 r2 activated at Apr 26                           =  +500 -> outstanding -2500
//	May 1 renewals: r1 basic 3000, r2 basic 3000               -> invoice 2: -3000+500-500+500+6000 = 3500
func TestClaimsCarryCreditForward(t *testing.T) {
	c := testCatalog(t)
	acts := []models.Activity{
		created("a1", "r1", "pro", "2026-04-01T00:00:00Z"),
		planChanged("a2", "r1", "basic", "2026-04-16T00:00:00Z"),
		created("a3", "r2", "basic", "2026-04-26T00:00:00Z"),
		deactivated("a4", "r2", "2026-04-26T00:00:00Z"),
		activated("a5", "r2", "2026-04-26T00:00:00Z"),
	}
	items := mustTimeline(t, models.NewLedger("usd", time.Time{}, 0), acts, c, "2026-05-01T00:00:00Z")
	invoices, outstanding := simulateClaims(items)
	if len(invoices) != 2 || len(outstanding) != 0 {
		t.Fatalf("invoices %v, outstanding %v; want 2 invoices and nothing outstanding", invoices, outstanding)
	}
	if got := models.Total(invoices[0]); got != 9000 || len(invoices[0]) != 1 {
		t.Errorf("invoice 1 = %+v (total %d), want the 9000 creation alone", invoices[0], got)
	}
	if got := models.Total(invoices[1]); got != 3500 || len(invoices[1]) != 6 {
		t.Errorf("invoice 2 = %+v (total %d), want 6 items totalling 3500", invoices[1], got)
	}
	if invoices[1][0].ActivityID != "a2" || invoices[1][0].Amount != -3000 {
		t.Errorf("invoice 2 does not start with the carried credit: %+v", invoices[1][0])
	}
	// At each step before the renewal, the outstanding net was not claimable.
	for n, want := range map[int]int64{2: -3000, 3: -2500, 4: -3000, 5: -2500} {
		if total, ok, _ := models.Claimable(items[1:n]); ok || total != want {
			t.Errorf("after %d items: Claimable = %d, %v; want %d, false", n, total, ok, want)
		}
	}
}

// A resource created at t and never changed: its items through S_n sum to
// prorate(price, t) + (n - k_t) * price.
func TestTimelineNeverChangedResource(t *testing.T) {
	c := testCatalog(t)
	acts := []models.Activity{
		created("a0", "r0", "free", "2026-01-31T10:00:00Z"),
		created("a1", "r1", "odd", "2026-03-16T07:00:00Z"),
	}
	// Period 1 = [Feb 28 10:00, Mar 31 10:00), 31 days; from Mar 16 07:00 remain
	// 15 days 3 h = 1306800 s of 2678400 s: 1001*1306800/2678400 = 488.39 -> 488.
	// Through S_6 = Jul 31 10:00: 488 + (6 - 1) * 1001 = 5493.
	items := mustTimeline(t, models.NewLedger("usd", time.Time{}, 0), acts, c, "2026-07-31T10:00:00Z")
	if got := models.Total(items); got != 5493 {
		t.Errorf("total = %d, want 5493; items %s", got, fmtKeys(keysOf(items)))
	}
}

// ---- Property: random valid activity logs --------------------------------

var propPlans = []string{"basic", "pro", "free", "odd", "cent"}

type genLog struct {
	sched    models.Schedule // the anchor the log will end up with, and the period kind
	explicit bool            // the anchor is given to NewLedger rather than set by the first activity
	acts     []models.Activity
	upTo     time.Time
}

func drawLog(t *rapid.T) genLog {
	var fixed time.Duration
	if !rapid.Bool().Draw(t, "monthly") {
		fixed = secs(rapid.SampledFrom([]int64{600, 3600, 86400, 7 * 86400, 13*3600 + 17, 31 * 86400}).Draw(t, "fixedSeconds"))
	}
	sched := models.Schedule{Anchor: drawAnchor(t, "anchor"), Fixed: fixed}
	explicit := rapid.Bool().Draw(t, "explicitAnchor")
	nPeriods := rapid.IntRange(1, 6).Draw(t, "periods")
	horizon := sched.Boundary(nPeriods)

	// instant draws an instant in [from, horizon], often exactly on a
	// boundary or a second either side of one.
	instant := func(label string, from time.Time) time.Time {
		var at time.Time
		switch rapid.IntRange(0, 3).Draw(t, label+".kind") {
		case 0:
			at = from
		case 1:
			at = sched.Boundary(rapid.IntRange(0, nPeriods).Draw(t, label+".boundary"))
		case 2:
			at = sched.Boundary(rapid.IntRange(0, nPeriods).Draw(t, label+".boundary")).
				Add(secs(rapid.SampledFrom([]int64{-1, 1}).Draw(t, label+".side")))
		default:
			span := int64(horizon.Sub(from) / time.Second)
			at = from.Add(secs(rapid.Int64Range(0, max(span, 0)).Draw(t, label+".offset")))
		}
		if at.Before(from) {
			at = from
		}
		if at.After(horizon) {
			at = horizon
		}
		return at
	}

	var acts []models.Activity
	nRes := rapid.IntRange(1, 4).Draw(t, "resources")
	for r := range nRes {
		res := fmt.Sprintf("r%d", r)
		at := sched.Anchor // the first resource anchors an implicitly anchored tenant
		if r > 0 || explicit {
			at = instant(res+".created", sched.Anchor)
		}
		plan := rapid.SampledFrom(propPlans).Draw(t, res+".plan")
		acts = append(acts, models.Activity{ID: res + "-0", Type: models.ResourceCreated, ResourceID: res, PlanID: plan, At: at})
		more := rapid.OneOf(rapid.Just(0), rapid.IntRange(0, 8)).Draw(t, res+".activities")
		for j := 1; j <= more; j++ {
			label := fmt.Sprintf("%s-%d", res, j)
			at = instant(label, at)
			a := models.Activity{ID: label, ResourceID: res, At: at}
			a.Type = rapid.SampledFrom(models.ActivityTypes[1:]).Draw(t, label+".type")
			if a.Type == models.ResourcePlanChanged {
				a.PlanID = rapid.SampledFrom(propPlans).Draw(t, label+".plan")
			}
			acts = append(acts, a)
		}
	}
	// Sub-second noise: billing truncates it away.
	for i := range acts {
		acts[i].At = acts[i].At.Add(time.Duration(rapid.SampledFrom([]int64{0, 0, 1, 999_999_999}).Draw(t, fmt.Sprintf("nanos%d", i))))
	}
	// A log in order of (billing) instant; per resource, generation order.
	slices.SortStableFunc(acts, func(a, b models.Activity) int {
		return models.BillingInstant(a.At).Compare(models.BillingInstant(b.At))
	})

	var upTo time.Time
	switch rapid.IntRange(0, 3).Draw(t, "upTo.kind") {
	case 0:
		upTo = sched.Boundary(rapid.IntRange(0, nPeriods).Draw(t, "upTo.boundary"))
	case 1:
		upTo = sched.Boundary(rapid.IntRange(0, nPeriods).Draw(t, "upTo.boundary")).Add(-time.Second)
	default:
		upTo = instant("upTo", sched.Anchor)
	}
	return genLog{sched: sched, explicit: explicit, acts: acts, upTo: upTo}
}

func (g genLog) ledger() *models.Ledger {
	var anchor time.Time
	if g.explicit {
		anchor = g.sched.Anchor
	}
	return models.NewLedger("usd", anchor, g.sched.Fixed)
}

type refState struct {
	plan   string
	active bool
}

// refFold is the state after folding acts, from scratch.
func refFold(acts []models.Activity) map[string]refState {
	st := map[string]refState{}
	for _, a := range acts {
		s := st[a.ResourceID]
		switch a.Type {
		case models.ResourceCreated:
			s = refState{plan: a.PlanID, active: true}
		case models.ResourceActivated:
			s.active = true
		case models.ResourceDeactivated:
			s.active = false
		case models.ResourcePlanChanged:
			s.plan = a.PlanID
		}
		st[a.ResourceID] = s
	}
	return st
}

// refTimeline computes, straight from DESIGN 4's definitions, the items the
// engine owes for g: each activity's item from the table (state folded from
// scratch over the activities before it), and at each boundary S_k <= upTo
// one renewal per resource active on a paid plan after folding exactly the
// activities with instant < S_k. Renewals at S_k come before activities at
// instants >= S_k; renewals are in resource id order.
func refTimeline(g genLog, c models.Catalog) []itemKey {
	var inc []models.Activity
	for _, a := range g.acts {
		if !models.BillingInstant(a.At).After(models.BillingInstant(g.upTo)) {
			inc = append(inc, a)
		}
	}
	if len(inc) == 0 && !g.explicit {
		return nil // never anchored: no periods, no renewals
	}
	at := func(a models.Activity) time.Time { return models.BillingInstant(a.At) }
	price := func(id string) int64 { return c[id].Amount }
	var out []itemKey
	emit := func(i int) {
		a := inc[i]
		before := refFold(inc[:i])[a.ResourceID]
		p := g.sched.PeriodAt(at(a))
		pr := func(plan string) int64 { return refProrate(price(plan), p.Start, p.End, at(a)) }
		var amount int64
		plan := before.plan
		switch a.Type {
		case models.ResourceCreated:
			plan, amount = a.PlanID, pr(a.PlanID)
		case models.ResourceActivated:
			if !before.active {
				amount = pr(plan)
			}
		case models.ResourceDeactivated:
			if before.active {
				amount = -pr(plan)
			}
		case models.ResourcePlanChanged:
			if before.active && a.PlanID != before.plan {
				plan, amount = a.PlanID, pr(a.PlanID)-pr(before.plan)
			}
		}
		if amount != 0 {
			out = append(out, itemKey{models.KindProration, a.ID, a.ResourceID, plan, amount, "usd",
				at(a).Format(time.RFC3339Nano), p.Start.Format(time.RFC3339Nano)})
		}
	}
	i := 0
	for k := 1; ; k++ {
		b := g.sched.Boundary(k)
		for i < len(inc) && at(inc[i]).Before(b) {
			emit(i)
			i++
		}
		if b.After(models.BillingInstant(g.upTo)) {
			break
		}
		var before []models.Activity
		for _, a := range inc {
			if at(a).Before(b) {
				before = append(before, a)
			}
		}
		st := refFold(before)
		ids := make([]string, 0, len(st))
		for id := range st {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids {
			if s := st[id]; s.active && price(s.plan) > 0 {
				out = append(out, itemKey{models.KindRenewal, "", id, s.plan, price(s.plan), "usd",
					b.Format(time.RFC3339Nano), b.Format(time.RFC3339Nano)})
			}
		}
	}
	for ; i < len(inc); i++ {
		emit(i)
	}
	return out
}

func TestPropertyTimelineConservation(t *testing.T) {
	c := testCatalog(t)
	rapid.Check(t, func(t *rapid.T) {
		g := drawLog(t)
		input := slices.Clone(g.acts)
		l1 := g.ledger()
		items, err := models.Timeline(l1, input, c, g.upTo)
		if err != nil {
			t.Fatalf("Timeline rejected a valid log: %v", err)
		}
		if !reflect.DeepEqual(input, g.acts) {
			t.Fatal("Timeline modified its input")
		}

		// Deterministic: a second run on a fresh ledger gives the same items
		// (descriptions included) and the same final state.
		l2 := g.ledger()
		again, err := models.Timeline(l2, slices.Clone(g.acts), c, g.upTo)
		if err != nil || !reflect.DeepEqual(items, again) || !sameLedger(*l1, *l2) {
			t.Fatalf("Timeline is not deterministic: %v\n%s\n%s", err, fmtKeys(keysOf(items)), fmtKeys(keysOf(again)))
		}

		// Exactly the items DESIGN 4 defines, in order.
		if want := refTimeline(g, c); !slices.Equal(keysOf(items), want) {
			t.Fatalf("Timeline differs from the rules:\n got: %s\nwant: %s", fmtKeys(keysOf(items)), fmtKeys(want))
		}

		upTo := models.BillingInstant(g.upTo)
		included := map[string]models.Activity{}
		for _, a := range g.acts {
			if !models.BillingInstant(a.At).After(upTo) {
				included[a.ID] = a
			}
		}

		// Every activity produces at most one item; renewals belong to none.
		perActivity := map[string]int{}
		perResource := map[string]int64{}
		for i, it := range items {
			perResource[it.ResourceID] += it.Amount
			if it.Amount == 0 || it.Currency != "usd" || it.Description == "" || it.CreatedAt.After(upTo) {
				t.Fatalf("bad item %+v", it)
			}
			if i > 0 && it.CreatedAt.Before(items[i-1].CreatedAt) {
				t.Fatalf("items out of order at %d: %s after %s", i, it.CreatedAt, items[i-1].CreatedAt)
			}
			switch it.Kind {
			case models.KindProration:
				if _, ok := included[it.ActivityID]; !ok {
					t.Fatalf("item for an activity not in the log up to %s: %+v", upTo, it)
				}
				if perActivity[it.ActivityID]++; perActivity[it.ActivityID] > 1 {
					t.Fatalf("activity %s produced two items", it.ActivityID)
				}
			case models.KindRenewal:
				if it.ActivityID != "" {
					t.Fatalf("renewal with an activity id: %+v", it)
				}
			default:
				t.Fatalf("unknown kind %q", it.Kind)
			}
		}

		// Renewals: exactly one per (resource, S_k <= upTo) for the resources
		// active on a paid plan as of S_k, at that plan's full price.
		type rk struct {
			res string
			k   int
		}
		renewals := map[rk]models.Item{}
		anchored := g.explicit || len(included) > 0
		for _, it := range items {
			if it.Kind != models.KindRenewal {
				continue
			}
			p := g.sched.PeriodAt(it.PeriodStart)
			if !p.Start.Equal(it.PeriodStart) || p.Index < 1 || !anchored {
				t.Fatalf("renewal off a boundary: %+v", it)
			}
			key := rk{it.ResourceID, p.Index}
			if _, dup := renewals[key]; dup {
				t.Fatalf("two renewals of %s at S_%d", it.ResourceID, p.Index)
			}
			renewals[key] = it
		}
		n := 0
		if anchored && !upTo.Before(g.sched.Anchor) {
			n = g.sched.PeriodAt(upTo).Index
		}
		want := 0
		for k := 1; k <= n; k++ {
			b := g.sched.Boundary(k)
			var before []models.Activity
			for _, a := range g.acts {
				if models.BillingInstant(a.At).Before(b) {
					before = append(before, a)
				}
			}
			for id, s := range refFold(before) {
				got, ok := renewals[rk{id, k}]
				if paid := s.active && c[s.plan].Amount > 0; paid != ok {
					t.Fatalf("S_%d: resource %s active=%v on %s, renewal present=%v", k, id, s.active, s.plan, ok)
				} else if ok {
					want++
					if got.PlanID != s.plan || got.Amount != c[s.plan].Amount {
						t.Fatalf("S_%d: renewal %+v, want plan %s at full price", k, got, s.plan)
					}
				}
			}
		}
		if want != len(renewals) {
			t.Fatalf("%d renewals, want %d", len(renewals), want)
		}

		// A resource created at t and never changed: through S_n its items
		// sum to prorate(price, t) + (n - k_t) * price.
		count := map[string]int{}
		for _, a := range g.acts {
			count[a.ResourceID]++
		}
		for _, a := range included {
			if a.Type != models.ResourceCreated || count[a.ResourceID] != 1 {
				continue
			}
			t0 := models.BillingInstant(a.At)
			p := g.sched.PeriodAt(t0)
			price := c[a.PlanID].Amount
			want := refProrate(price, p.Start, p.End, t0) + int64(n-p.Index)*price
			if got := perResource[a.ResourceID]; got != want {
				t.Fatalf("never-changed %s on %s from %s (k_t=%d) through S_%d: items sum to %d, want %d",
					a.ResourceID, a.PlanID, t0, p.Index, n, got, want)
			}
		}

		// Charges and credits telescope: no resource, and no tenant, ends
		// with a net credit from a valid log.
		for res, sum := range perResource {
			if sum < 0 {
				t.Fatalf("resource %s nets %d", res, sum)
			}
		}

		// Claims: every invoice is positive, each item is on at most one,
		// and invoices plus what is outstanding add up to the total.
		invoices, outstanding := simulateClaims(items)
		var invoiced, onInvoices int64
		for _, inv := range invoices {
			total, ok, _ := models.Claimable(inv)
			if !ok || total <= 0 {
				t.Fatalf("invoice with total %d", total)
			}
			invoiced += total
			onInvoices += int64(len(inv))
		}
		if invoiced+models.Total(outstanding) != models.Total(items) || onInvoices+int64(len(outstanding)) != int64(len(items)) {
			t.Fatalf("claims lost money: invoiced %d + outstanding %d != total %d", invoiced, models.Total(outstanding), models.Total(items))
		}

		// The ledger ends in the state the rules give.
		var inc []models.Activity
		for _, a := range g.acts {
			if _, ok := included[a.ID]; ok {
				inc = append(inc, a)
			}
		}
		final := refFold(inc)
		if len(final) != len(l1.Resources) {
			t.Fatalf("ledger has %d resources, want %d", len(l1.Resources), len(final))
		}
		for id, s := range final {
			r := l1.Resources[id]
			if r.PlanID != s.plan || r.Active != s.active {
				t.Fatalf("resource %s = %+v, want %+v", id, r, s)
			}
		}
	})
}

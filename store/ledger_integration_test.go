//go:build integration

package store_test

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"pgregory.net/rapid"

	"github.com/billflow/billflow/internal/testkit"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/store"
)

func TestRecordActivityFirstSetsAnchorAndStoresItem(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, 0) // calendar months

	anchor, _ := tenantRow(t, st, tenant)
	require.Nil(t, anchor)

	// Sub-second precision is dropped: billing instants are whole seconds.
	first := created("a1", "r1", "basic", ts("2026-01-31T10:00:00.750Z"))
	res := record(t, st, tenant, first)
	assert.True(t, res.AnchorSet)
	assert.False(t, res.Duplicate)
	wantAnchor := ts("2026-01-31T10:00:00Z")
	require.NotNil(t, res.Tenant.Anchor)
	assert.True(t, res.Tenant.Anchor.Equal(wantAnchor), "anchor %v", res.Tenant.Anchor)
	anchor, renewed := tenantRow(t, st, tenant)
	require.NotNil(t, anchor)
	assert.True(t, anchor.Equal(wantAnchor), "stored anchor %v", anchor)
	assert.Nil(t, renewed)

	// Created at the anchor: the whole period remains, so the full price.
	require.NotNil(t, res.Item)
	assert.Equal(t, int64(priceBasic), res.Item.Amount)
	assert.Equal(t, int64(priceBasic), res.Outstanding)
	rows := itemRows(t, st, `WHERE tenant_id = $1`, tenant)
	require.Len(t, rows, 1)
	assert.Equal(t, res.Item.ID, rows[0].ID)
	assert.Equal(t, "proration", rows[0].Kind)
	require.NotNil(t, rows[0].ActivityID)
	assert.Equal(t, "a1", *rows[0].ActivityID)
	assert.Equal(t, "r1", rows[0].ResourceID)
	assert.Equal(t, "basic", rows[0].PlanID)
	assert.Equal(t, int64(priceBasic), rows[0].Amount)
	assert.Equal(t, "usd", rows[0].Currency)
	assert.True(t, rows[0].CreatedAt.Equal(wantAnchor))
	assert.True(t, rows[0].PeriodStart.Equal(wantAnchor))
	assert.Nil(t, rows[0].InvoiceID)

	// The stored activity and resource state.
	var (
		typ, resource, plan string
		createdAt           time.Time
	)
	require.NoError(t, st.Pool().QueryRow(bg(), `SELECT type, resource_id, plan_id, created_at FROM activities WHERE id = 'a1' AND tenant_id = $1`, tenant).
		Scan(&typ, &resource, &plan, &createdAt))
	assert.Equal(t, "resource_created", typ)
	assert.Equal(t, "r1", resource)
	assert.Equal(t, "basic", plan)
	assert.True(t, createdAt.Equal(wantAnchor), "activity instant stored truncated: %v", createdAt)
	var (
		resPlan string
		active  bool
		last    time.Time
	)
	require.NoError(t, st.Pool().QueryRow(bg(), `SELECT plan_id, active, last_activity_at FROM resources WHERE tenant_id = $1 AND id = 'r1'`, tenant).
		Scan(&resPlan, &active, &last))
	assert.Equal(t, "basic", resPlan)
	assert.True(t, active)
	assert.True(t, last.Equal(wantAnchor))

	// A second activity leaves the anchor alone.
	res = record(t, st, tenant, created("a2", "r2", "pro", ts("2026-02-14T10:00:00Z")))
	assert.False(t, res.AnchorSet)
	anchor, _ = tenantRow(t, st, tenant)
	assert.True(t, anchor.Equal(wantAnchor))
}

// TestRecordActivityProratesLikeModels records every kind of activity on a
// calendar-month tenant anchored on a month's last day and checks each stored
// item against models.Prorate over the period it falls in (and against hand
// computed values).
func TestRecordActivityProratesLikeModels(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, 0)
	anchor := ts("2026-01-31T10:00:00Z")
	sched, err := models.NewSchedule(anchor, 0)
	require.NoError(t, err)
	// Period 0 is [Jan 31, Feb 28) = 28 days; period 1 is [Feb 28, Mar 31) = 31 days.
	p0 := sched.Period(0)
	p1 := sched.Period(1)
	require.Equal(t, ts("2026-02-28T10:00:00Z"), p0.End)
	require.Equal(t, ts("2026-03-31T10:00:00Z"), p1.End)

	type step struct {
		act    models.Activity
		period models.Period
		want   int64 // hand-computed; 0 means no item
		model  int64 // from models.Prorate
	}
	steps := []step{
		{created("a0", "r0", "basic", anchor), p0, 500, models.Prorate(priceBasic, p0, anchor)},
		// 14 of 28 days remain: half of 2000.
		{created("a1", "r1", "pro", ts("2026-02-14T10:00:00Z")), p0, 1000, models.Prorate(pricePro, p0, ts("2026-02-14T10:00:00Z"))},
		// 7 of 28 days remain: a quarter of 500, as a credit.
		{deactivated("a2", "r0", ts("2026-02-21T10:00:00Z")), p0, -125, -models.Prorate(priceBasic, p0, ts("2026-02-21T10:00:00Z"))},
		// Deactivating again bills nothing.
		{deactivated("a3", "r0", ts("2026-02-22T10:00:00Z")), p0, 0, 0},
		// An inactive resource changes plan with no item.
		{planChanged("a4", "r0", "pro", ts("2026-02-23T10:00:00Z")), p0, 0, 0},
		// Reactivating bills the new plan: 5 of 28 days of 2000 = 357.14 -> 357.
		{activated("a5", "r0", ts("2026-02-23T10:00:00Z")), p0, 357, models.Prorate(pricePro, p0, ts("2026-02-23T10:00:00Z"))},
		// Activating an active resource bills nothing.
		{activated("a6", "r0", ts("2026-02-24T10:00:00Z")), p0, 0, 0},
		// In period 1 (31 days): pro -> basic with 15.5 days left (Mar 15 22:00):
		// 250 - 1000 = -750.
		{planChanged("a7", "r1", "basic", ts("2026-03-15T22:00:00Z")), p1, -750,
			models.Prorate(priceBasic, p1, ts("2026-03-15T22:00:00Z")) - models.Prorate(pricePro, p1, ts("2026-03-15T22:00:00Z"))},
		// Changing to the same plan bills nothing.
		{planChanged("a8", "r1", "basic", ts("2026-03-17T00:00:00Z")), p1, 0, 0},
		// A free plan bills nothing.
		{created("a9", "r2", "free", ts("2026-03-17T00:00:00Z")), p1, 0, 0},
	}
	var total int64
	for _, s := range steps {
		res := record(t, st, tenant, s.act)
		assert.Equal(t, s.want, s.model, "%s: hand value vs models.Prorate", s.act.ID)
		rows := itemRows(t, st, `WHERE activity_id = $1`, s.act.ID)
		if s.want == 0 {
			assert.Nil(t, res.Item, s.act.ID)
			assert.Empty(t, rows, s.act.ID)
		} else {
			require.NotNil(t, res.Item, s.act.ID)
			require.Len(t, rows, 1, s.act.ID)
			assert.Equal(t, s.model, rows[0].Amount, s.act.ID)
			assert.Equal(t, res.Item.ID, rows[0].ID, s.act.ID)
			assert.True(t, rows[0].PeriodStart.Equal(s.period.Start), "%s period_start %v", s.act.ID, rows[0].PeriodStart)
			assert.True(t, rows[0].CreatedAt.Equal(s.act.At), s.act.ID)
		}
		total += s.want
		assert.Equal(t, total, res.Outstanding, "outstanding after %s", s.act.ID)
	}
	assert.Equal(t, total, scalar(t, st, `SELECT sum(amount) FROM invoice_items WHERE tenant_id = $1`, tenant))
	assert.Equal(t, int64(len(steps)), scalar(t, st, `SELECT count(*) FROM activities WHERE tenant_id = $1`, tenant))
	out, err := st.Outstanding(bg(), tenant)
	require.NoError(t, err)
	assert.Equal(t, total, out)
	items, err := st.OutstandingItems(bg(), tenant)
	require.NoError(t, err)
	assert.Len(t, items, 5)

	var plan string
	var active bool
	require.NoError(t, st.Pool().QueryRow(bg(), `SELECT plan_id, active FROM resources WHERE tenant_id = $1 AND id = 'r0'`, tenant).Scan(&plan, &active))
	assert.Equal(t, "pro", plan)
	assert.True(t, active)
}

func TestRecordActivityReplayIsDuplicate(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)
	record(t, st, tenant, created("a0", "r0", "basic", at(0)))
	act := created("a1", "r1", "pro", at(300))
	first := record(t, st, tenant, act)
	require.NotNil(t, first.Item)
	assert.Equal(t, int64(1000), first.Item.Amount)
	before := countRows(t, st, tenant)

	for i := range 3 {
		again := act
		if i == 2 {
			again.At = act.At.Add(400 * time.Millisecond) // same billing instant
		}
		res, err := st.RecordActivity(bg(), tenant, again, false)
		require.NoError(t, err)
		assert.True(t, res.Duplicate)
		assert.False(t, res.AnchorSet)
		require.NotNil(t, res.Item)
		assert.Equal(t, first.Item.ID, res.Item.ID, "same stored item")
		assert.Equal(t, first.Item.Amount, res.Item.Amount)
		assert.Equal(t, int64(priceBasic+1000), res.Outstanding)
		assert.Equal(t, before, countRows(t, st, tenant), "nothing new written")
	}

	// Replaying an activity that billed nothing is a duplicate with no item.
	free := created("a2", "r2", "free", at(310))
	res := record(t, st, tenant, free)
	assert.Nil(t, res.Item)
	before = countRows(t, st, tenant)
	res = record(t, st, tenant, free)
	assert.True(t, res.Duplicate)
	assert.Nil(t, res.Item)
	assert.Equal(t, before, countRows(t, st, tenant))
}

func TestRecordActivitySameIDDifferentContent(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)
	other := newTenant(t, st, fixed)
	record(t, st, tenant, created("a1", "r1", "basic", at(0)))
	record(t, st, tenant, created("a2", "r2", "basic", at(10)))
	before := countRows(t, st, tenant)

	for name, a := range map[string]models.Activity{
		"other plan":     created("a1", "r1", "pro", at(0)),
		"other resource": created("a1", "r9", "basic", at(0)),
		"other instant":  created("a1", "r1", "basic", at(1)),
		"other type":     deactivated("a1", "r1", at(0)),
		"other tenant":   created("a1", "r1", "basic", at(0)),
	} {
		target := tenant
		if name == "other tenant" {
			target = other
		}
		_, err := st.RecordActivity(bg(), target, a, false)
		ve := requireValidation(t, err)
		assert.Contains(t, ve.Error(), "a1", name)
		assert.Equal(t, before, countRows(t, st, tenant), name)
		assert.Equal(t, counts{}, countRows(t, st, other), name)
	}
	anchor, _ := tenantRow(t, st, other)
	assert.Nil(t, anchor, "the other tenant's anchor stays unset")
}

// TestRecordActivityDefaultedInstantReplay checks that replaying an activity
// whose instant the caller left to the engine ("now") returns the first
// outcome even though "now" moved on, while the content must still match.
func TestRecordActivityDefaultedInstantReplay(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)
	first, err := st.RecordActivity(bg(), tenant, created("n1", "r1", "basic", at(0)), true)
	require.NoError(t, err)
	require.NotNil(t, first.Item)
	before := countRows(t, st, tenant)

	again, err := st.RecordActivity(bg(), tenant, created("n1", "r1", "basic", at(42)), true)
	require.NoError(t, err)
	assert.True(t, again.Duplicate)
	assert.Equal(t, first.Item.ID, again.Item.ID)
	assert.Equal(t, before, countRows(t, st, tenant))

	// An explicit, different instant is still a different activity.
	_, err = st.RecordActivity(bg(), tenant, created("n1", "r1", "basic", at(42)), false)
	requireValidation(t, err)
	// And the defaulted instant does not excuse other differences.
	_, err = st.RecordActivity(bg(), tenant, created("n1", "r1", "pro", at(42)), true)
	requireValidation(t, err)
	assert.Equal(t, before, countRows(t, st, tenant))
}

// TestRecordActivityRejectsFirstActivity checks that an invalid first activity
// writes nothing and leaves the anchor unset.
func TestRecordActivityRejectsFirstActivity(t *testing.T) {
	st := testkit.NewStore(t)
	cases := map[string]models.Activity{
		"unknown plan":          created("a1", "r1", "nope", at(0)),
		"unknown resource":      activated("a1", "r1", at(0)),
		"currency mismatch":     created("a1", "r1", "euro", at(0)),
		"plan change unknown":   planChanged("a1", "r1", "pro", at(0)),
		"missing plan":          created("a1", "r1", "", at(0)),
		"empty id":              created("", "r1", "basic", at(0)),
		"zero instant":          created("a1", "r1", "basic", time.Time{}),
		"unknown activity type": {ID: "a1", Type: "resource_deleted", ResourceID: "r1", At: at(0)},
	}
	for name, a := range cases {
		t.Run(name, func(t *testing.T) {
			tenant := newTenant(t, st, fixed)
			res, err := st.RecordActivity(bg(), tenant, a, false)
			requireValidation(t, err)
			assert.Nil(t, res.Item)
			assert.Equal(t, counts{}, countRows(t, st, tenant))
			anchor, renewed := tenantRow(t, st, tenant)
			assert.Nil(t, anchor, "anchor must stay NULL")
			assert.Nil(t, renewed)
		})
	}
}

// TestRecordActivityRejectsAfterState checks validation that depends on the
// stored state of earlier activities.
func TestRecordActivityRejectsAfterState(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)
	record(t, st, tenant, created("a1", "r1", "basic", at(100)))
	record(t, st, tenant, deactivated("a2", "r1", at(200)))
	before := countRows(t, st, tenant)
	outstandingBefore := scalar(t, st, `SELECT sum(amount) FROM invoice_items WHERE tenant_id = $1`, tenant)

	for name, a := range map[string]models.Activity{
		"unknown plan":             planChanged("b1", "r1", "nope", at(300)),
		"unknown resource":         deactivated("b1", "ghost", at(300)),
		"duplicate create":         created("b1", "r1", "pro", at(300)),
		"currency mismatch":        created("b1", "r2", "euro", at(300)),
		"currency mismatch change": planChanged("b1", "r1", "euro", at(300)),
		"older than resource last": activated("b1", "r1", at(199)),
		"before the anchor":        created("b1", "r2", "basic", at(99)),
	} {
		_, err := st.RecordActivity(bg(), tenant, a, false)
		requireValidation(t, err)
		assert.Equal(t, before, countRows(t, st, tenant), name)
		assert.Equal(t, outstandingBefore, scalar(t, st, `SELECT sum(amount) FROM invoice_items WHERE tenant_id = $1`, tenant), name)
		var active bool
		var last time.Time
		require.NoError(t, st.Pool().QueryRow(bg(), `SELECT active, last_activity_at FROM resources WHERE tenant_id = $1 AND id = 'r1'`, tenant).
			Scan(&active, &last))
		assert.False(t, active, name)
		assert.True(t, last.Equal(at(200)), name)
	}
	anchor, _ := tenantRow(t, st, tenant)
	assert.True(t, anchor.Equal(at(100)))

	// An activity at the same instant as the resource's last one is accepted.
	res := record(t, st, tenant, activated("b2", "r1", at(200)))
	require.NotNil(t, res.Item)
	assert.Equal(t, int64(417), res.Item.Amount) // 500 * 500/600 = 416.67
}

func TestRecordActivityUnknownTenant(t *testing.T) {
	st := testkit.NewStore(t)
	ghost := testkit.NewTenantID(t)
	_, err := st.RecordActivity(bg(), ghost, created("a1", "r1", "basic", at(0)), false)
	requireValidation(t, err)
	assert.Equal(t, int64(0), scalar(t, st, `SELECT count(*) FROM activities`))
}

func TestRecordActivityBeforeRenewedThroughRejected(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)
	record(t, st, tenant, created("a1", "r1", "basic", at(0)))
	res, err := st.Renew(bg(), tenant, at(610))
	require.NoError(t, err)
	require.Equal(t, 1, res.Created)
	_, renewed := tenantRow(t, st, tenant)
	require.NotNil(t, renewed)
	require.True(t, renewed.Equal(at(600)))
	before := countRows(t, st, tenant)

	// A new resource in the renewed period 0 would reopen it.
	_, err = st.RecordActivity(bg(), tenant, created("a2", "r2", "pro", at(599)), false)
	ve := requireValidation(t, err)
	assert.Contains(t, ve.Reason, "renewed")
	assert.Equal(t, before, countRows(t, st, tenant))

	// The replay of an activity recorded before the renewal is still a duplicate.
	dup := record(t, st, tenant, created("a1", "r1", "basic", at(0)))
	assert.True(t, dup.Duplicate)

	// Exactly at the renewed boundary is the new period: full price.
	res2 := record(t, st, tenant, created("a3", "r3", "pro", at(600)))
	require.NotNil(t, res2.Item)
	assert.Equal(t, int64(pricePro), res2.Item.Amount)
	assert.True(t, res2.Item.PeriodStart.Equal(at(600)))
}

// renewalKey names a renewal: resource at period start (seconds after anchor0).
type renewalKey struct {
	Resource string
	Start    int
	Amount   int64
}

func renewals(t tb, st *store.Store, tenant models.TenantID) []renewalKey {
	t.Helper()
	var out []renewalKey
	for _, r := range itemRows(t, st, `WHERE tenant_id = $1 AND kind = 'renewal'`, tenant) {
		assert.Nil(t, r.ActivityID, "renewal has no activity")
		assert.True(t, r.CreatedAt.Equal(r.PeriodStart), "renewal dated at its boundary")
		out = append(out, renewalKey{r.ResourceID, int(r.PeriodStart.Sub(anchor0) / time.Second), r.Amount})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Start != out[j].Start {
			return out[i].Start < out[j].Start
		}
		return out[i].Resource < out[j].Resource
	})
	return out
}

func TestRenewCatchesUpMissedBoundariesOnce(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)
	// Boundaries: S1 = 600, S2 = 1200, S3 = 1800, S4 = 2400.
	record(t, st, tenant, created("a1", "r1", "basic", at(0)))
	record(t, st, tenant, created("a2", "r2", "pro", at(100)))
	record(t, st, tenant, created("a3", "r3", "free", at(50)))   // free: never renewed
	record(t, st, tenant, created("a4", "r4", "basic", at(200))) // deactivated in period 1
	record(t, st, tenant, deactivated("a5", "r4", at(700)))
	record(t, st, tenant, created("a6", "r5", "basic", at(1200))) // exactly at S2
	record(t, st, tenant, created("a7", "r6", "pro", at(599)))    // just before S1
	record(t, st, tenant, deactivated("a8", "r6", at(1199)))      // just before S2
	record(t, st, tenant, created("a9", "r7", "basic", at(1300))) // in period 2
	record(t, st, tenant, created("a10", "r8", "pro", at(1900)))  // in period 3, after the upTo below
	itemsBefore := scalar(t, st, `SELECT count(*) FROM invoice_items WHERE tenant_id = $1`, tenant)

	// Nothing renews inside period 0.
	res, err := st.Renew(bg(), tenant, at(599))
	require.NoError(t, err)
	assert.Equal(t, 0, res.Created)
	assert.Nil(t, res.RenewedThrough)
	_, renewed := tenantRow(t, st, tenant)
	assert.Nil(t, renewed)

	// Three boundaries missed at once; upTo lies in period 3, before a10.
	res, err = st.Renew(bg(), tenant, at(1805))
	require.NoError(t, err)
	want := []renewalKey{
		{"r1", 600, priceBasic}, {"r2", 600, pricePro}, {"r4", 600, priceBasic}, {"r6", 600, pricePro},
		{"r1", 1200, priceBasic}, {"r2", 1200, pricePro},
		{"r1", 1800, priceBasic}, {"r2", 1800, pricePro}, {"r5", 1800, priceBasic}, {"r7", 1800, priceBasic},
	}
	assert.Equal(t, want, renewals(t, st, tenant))
	assert.Equal(t, len(want), res.Created)
	require.NotNil(t, res.RenewedThrough)
	assert.True(t, res.RenewedThrough.Equal(at(1800)))
	_, renewed = tenantRow(t, st, tenant)
	require.NotNil(t, renewed)
	assert.True(t, renewed.Equal(at(1800)), "renewed_through %v", renewed)
	assert.Equal(t, itemsBefore+int64(len(want)), scalar(t, st, `SELECT count(*) FROM invoice_items WHERE tenant_id = $1`, tenant))

	// The activity exactly at S2 kept its full-price proration, outside S2's renewal.
	r5 := itemRows(t, st, `WHERE tenant_id = $1 AND resource_id = 'r5'`, tenant)
	require.Len(t, r5, 2)
	assert.Equal(t, "proration", r5[0].Kind)
	assert.Equal(t, int64(priceBasic), r5[0].Amount)
	assert.True(t, r5[0].PeriodStart.Equal(at(1200)))

	// Again, and again later in the same period: nothing.
	for _, upTo := range []time.Time{at(1805), at(1800), at(2399)} {
		res, err = st.Renew(bg(), tenant, upTo)
		require.NoError(t, err)
		assert.Equal(t, 0, res.Created, "renew up to %v", upTo)
		require.NotNil(t, res.RenewedThrough)
		assert.True(t, res.RenewedThrough.Equal(at(1800)))
	}
	// An earlier upTo does not move renewed_through back.
	res, err = st.Renew(bg(), tenant, at(700))
	require.NoError(t, err)
	assert.Equal(t, 0, res.Created)
	_, renewed = tenantRow(t, st, tenant)
	assert.True(t, renewed.Equal(at(1800)))
	assert.Equal(t, want, renewals(t, st, tenant))

	// The next boundary renews once more, now including r8 (created at 1900).
	res, err = st.Renew(bg(), tenant, at(2400))
	require.NoError(t, err)
	assert.Equal(t, 5, res.Created)
	got := renewals(t, st, tenant)
	assert.Equal(t, []renewalKey{
		{"r1", 2400, priceBasic}, {"r2", 2400, pricePro}, {"r5", 2400, priceBasic}, {"r7", 2400, priceBasic}, {"r8", 2400, pricePro},
	}, got[len(want):])
	_, renewed = tenantRow(t, st, tenant)
	assert.True(t, renewed.Equal(at(2400)))
}

// TestRenewMonthlyMonthEnd renews a calendar-month tenant anchored on Jan 31
// across three boundaries: each is clamped, and computed from the anchor.
func TestRenewMonthlyMonthEnd(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, 0)
	record(t, st, tenant, created("a1", "r1", "pro", ts("2026-01-31T10:00:00Z")))
	res, err := st.Renew(bg(), tenant, ts("2026-04-30T10:00:00Z"))
	require.NoError(t, err)
	assert.Equal(t, 3, res.Created)
	var starts []string
	for _, r := range itemRows(t, st, `WHERE tenant_id = $1 AND kind = 'renewal'`, tenant) {
		starts = append(starts, r.PeriodStart.Format(time.RFC3339))
		assert.Equal(t, int64(pricePro), r.Amount)
	}
	assert.Equal(t, []string{"2026-02-28T10:00:00Z", "2026-03-31T10:00:00Z", "2026-04-30T10:00:00Z"}, starts)
	_, renewed := tenantRow(t, st, tenant)
	assert.True(t, renewed.Equal(ts("2026-04-30T10:00:00Z")))
}

func TestRenewWithoutAnchorOrTenant(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)
	res, err := st.Renew(bg(), tenant, at(100000))
	require.NoError(t, err)
	assert.Equal(t, 0, res.Created)
	assert.Nil(t, res.RenewedThrough)
	_, renewed := tenantRow(t, st, tenant)
	assert.Nil(t, renewed)

	_, err = st.Renew(bg(), testkit.NewTenantID(t), at(0))
	requireValidation(t, err)
}

func TestRenewalUniqueIndexRejectsDuplicateInsert(t *testing.T) {
	st := testkit.NewStore(t)
	tenant := newTenant(t, st, fixed)
	record(t, st, tenant, created("a1", "r1", "basic", at(0)))
	res, err := st.Renew(bg(), tenant, at(600))
	require.NoError(t, err)
	require.Equal(t, 1, res.Created)

	insert := `INSERT INTO invoice_items (id, tenant_id, kind, resource_id, plan_id, amount, currency, created_at, period_start, description)
		VALUES ($1, $2, 'renewal', 'r1', 'basic', 500, 'usd', $3, $3, 'raw duplicate')`
	_, err = st.Pool().Exec(bg(), insert, "dup-1", tenant, at(600))
	pgErr := requirePgCode(t, err, "23505")
	assert.Equal(t, "invoice_items_renewal_once", pgErr.ConstraintName)
	// Another period of the same resource is a different key.
	_, err = st.Pool().Exec(bg(), insert, "dup-2", tenant, at(1200))
	require.NoError(t, err)
	assert.Equal(t, int64(2), scalar(t, st, `SELECT count(*) FROM invoice_items WHERE tenant_id = $1 AND kind = 'renewal'`, tenant))

	// An activity bills at most one item.
	_, err = st.Pool().Exec(bg(), `INSERT INTO invoice_items (id, tenant_id, kind, activity_id, resource_id, plan_id, amount, currency, created_at, period_start, description)
		VALUES ('dup-3', $1, 'proration', 'a1', 'r1', 'basic', 500, 'usd', $2, $2, 'raw duplicate')`, tenant, at(0))
	requirePgCode(t, err, "23505")
}

// TestRecordAndRenewMatchModelsTimeline is a differential property test: a
// random activity log recorded through the store (each activity in its own
// transaction, state round-tripping through the resources table), with
// renewals run at random moments in between, must bill exactly what
// models.Timeline bills for the accepted activities, reject exactly what
// models rejects (plus activities before renewed_through) with nothing
// written, and renew exactly the renewals Timeline produces, once each.
func TestRecordAndRenewMatchModelsTimeline(t *testing.T) {
	st := testkit.NewStore(t)
	catalog, err := models.NewCatalog(testkit.Plans)
	require.NoError(t, err)
	plans := []string{"free", "basic", "pro", "euro", "nope"}
	types := models.ActivityTypes
	seconds := func(t time.Time) int { return int(t.Sub(anchor0) / time.Second) }
	sortKeys := func(ks []renewalKey) {
		slices.SortFunc(ks, func(a, b renewalKey) int {
			if a.Start != b.Start {
				return a.Start - b.Start
			}
			return strings.Compare(a.Resource, b.Resource)
		})
	}

	rapid.Check(t, func(rt *rapid.T) {
		tenant := testkit.NewTenantID(t)
		_, _, err := st.EnsureTenant(bg(), tenant, "usd", int64(fixed/time.Second))
		require.NoError(rt, err)
		ref := models.NewLedger("usd", time.Time{}, fixed)
		var (
			accepted []models.Activity
			through  *time.Time // renewed_through as the test expects it
			renewed  int        // renewal items the store reported creating
			last     time.Time  // latest accepted instant
		)
		renew := func(upTo time.Time) {
			res, err := st.Renew(bg(), tenant, upTo)
			require.NoError(rt, err)
			renewed += res.Created
			if ref.Anchored() {
				if p := ref.Schedule.PeriodAt(upTo); p.Index >= 1 && (through == nil || p.Start.After(*through)) {
					through = &p.Start
				}
			}
			_, got := tenantRow(rt, st, tenant)
			if through == nil {
				require.Nil(rt, got)
			} else {
				require.NotNil(rt, got)
				require.True(rt, got.Equal(*through), "renewed_through %v, want %v", got, through)
			}
		}
		clock := 0
		n := rapid.IntRange(1, 25).Draw(rt, "n")
		for i := range n {
			// Mostly forward in time, sometimes back, sometimes the same instant.
			clock += rapid.IntRange(-120, 400).Draw(rt, "step")
			if rapid.IntRange(0, 5).Draw(rt, "renew_now") == 0 {
				renew(at(clock))
			}
			a := models.Activity{
				ID:         fmt.Sprintf("%s-a%d", tenant[:12], i), // activity ids are global
				Type:       rapid.SampledFrom(types).Draw(rt, "type"),
				ResourceID: fmt.Sprintf("r%d", rapid.IntRange(0, 3).Draw(rt, "resource")),
				At:         at(clock),
			}
			if a.Type == models.ResourceCreated || a.Type == models.ResourcePlanChanged {
				a.PlanID = rapid.SampledFrom(plans).Draw(rt, "plan")
			}
			before := countRows(rt, st, tenant)
			res, err := st.RecordActivity(bg(), tenant, a, false)
			if through != nil && a.At.Before(*through) {
				requireValidation(rt, err)
				require.Equal(rt, before, countRows(rt, st, tenant), "rejected %+v wrote something", a)
				continue
			}
			wantItem, wantErr := ref.Apply(a, catalog)
			if wantErr != nil {
				requireValidation(rt, err)
				require.Equal(rt, before, countRows(rt, st, tenant), "rejected %+v wrote something", a)
				continue
			}
			require.NoError(rt, err, "%+v", a)
			accepted = append(accepted, a)
			if a.At.After(last) {
				last = a.At
			}
			if wantItem == nil {
				require.Nil(rt, res.Item, "%+v", a)
				continue
			}
			require.NotNil(rt, res.Item, "%+v", a)
			require.Equal(rt, wantItem.Amount, res.Item.Amount, "%+v", a)
			require.True(rt, wantItem.PeriodStart.Equal(res.Item.PeriodStart))
			require.Equal(rt, wantItem.PlanID, res.Item.PlanID)
		}
		renew(at(clock + rapid.IntRange(0, 2000).Draw(rt, "renew_after")))
		if len(accepted) == 0 {
			anchor, _ := tenantRow(rt, st, tenant)
			require.Nil(rt, anchor)
			require.Equal(rt, int64(0), scalar(rt, st, `SELECT count(*) FROM invoice_items WHERE tenant_id = $1`, tenant))
			return
		}

		var wantProrations, gotProrations, wantRenewals []renewalKey
		full, err := models.Timeline(models.NewLedger("usd", time.Time{}, fixed), accepted, catalog, last)
		require.NoError(rt, err)
		for _, it := range full {
			if it.Kind == models.KindProration {
				wantProrations = append(wantProrations, renewalKey{it.ActivityID, seconds(it.PeriodStart), it.Amount})
			}
		}
		for _, r := range itemRows(rt, st, `WHERE tenant_id = $1 AND kind = 'proration'`, tenant) {
			gotProrations = append(gotProrations, renewalKey{*r.ActivityID, seconds(r.PeriodStart), r.Amount})
		}
		if through != nil {
			upToThrough, err := models.Timeline(models.NewLedger("usd", time.Time{}, fixed), accepted, catalog, *through)
			require.NoError(rt, err)
			for _, it := range upToThrough {
				if it.Kind == models.KindRenewal {
					wantRenewals = append(wantRenewals, renewalKey{it.ResourceID, seconds(it.PeriodStart), it.Amount})
				}
			}
		}
		sortKeys(wantRenewals)
		sortKeys(wantProrations)
		sortKeys(gotProrations)
		require.Equal(rt, wantProrations, gotProrations, "prorations")
		require.Equal(rt, wantRenewals, renewals(rt, st, tenant), "renewals through %v", through)
		require.Equal(rt, len(wantRenewals), renewed, "renewals reported created")
	})
}

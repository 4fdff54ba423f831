package workflows

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/billflow/billflow/activities"
)

// claimAtBoundaries answers ClaimAndStart at each boundary as the store
// does: a renewal up to it, an invoice, and the tenant reloaded with that
// invoice open. It records the boundaries it was asked about.
func claimAtBoundaries(env *testsuite.TestWorkflowEnvironment, acts *activities.Activities, anchor time.Time, got *[]time.Time) {
	env.OnActivity(acts.ClaimAndStart, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.ClaimAndStartInput) (activities.ClaimAndStartResult, error) {
		upTo := *in.RenewUpTo
		*got = append(*got, upTo)
		inv := activities.InvoiceRef{ID: "inv-" + upTo.Format("2006-01"), TenantID: testTenant, Total: 2000, Currency: "usd", Status: "collecting"}
		return activities.ClaimAndStartResult{Renew: &activities.RenewResult{Created: 1, RenewedThrough: &upTo},
			Claim: activities.ClaimResult{Invoice: &inv}, PaymentStarted: true,
			Snapshot: &activities.TenantSnapshot{TenantID: testTenant, Currency: "usd", Status: "active", Anchor: &anchor,
				RenewedThrough: &upTo, OpenInvoices: []activities.InvoiceRef{inv}}}, nil
	})
}

// loopEnv is a newest-path environment starting at start for a tenant
// anchored at anchor and renewed through it, whose boundaries' claims are
// answered by claimAtBoundaries into the returned slice.
func loopEnv(t *testing.T, start, anchor time.Time) (*testsuite.TestWorkflowEnvironment, *activities.Activities, *[]time.Time) {
	renewed := anchor
	env, acts := newestEnv(t, start)
	env.OnActivity(acts.LoadTenant, mock.Anything, mock.Anything).Return(activities.TenantSnapshot{
		TenantID: testTenant, Currency: "usd", Status: "active", Anchor: &anchor, RenewedThrough: &renewed}, nil).Once()
	claimed := new([]time.Time)
	claimAtBoundaries(env, acts, anchor, claimed)
	return env, acts, claimed
}

// tenant-v5: after the boundary's claim the run bills the next period in
// the same history (one load, one version read, no continue-as-new), with
// the signals of each period served; it continues as new when its budget
// is spent, carrying the path and the last reload.
func TestTenantV5BillsTheNextPeriodInTheSameRun(t *testing.T) {
	anchor := ts("2026-01-01T00:00:00Z")
	b1, b2, b3 := ts("2026-02-01T00:00:00Z"), ts("2026-03-01T00:00:00Z"), ts("2026-04-01T00:00:00Z")
	env, acts, claimed := loopEnv(t, b1.Add(-time.Hour), anchor)
	env.OnActivity(acts.Renew, mock.Anything, mock.Anything).Never()
	env.OnActivity(acts.Claim, mock.Anything, mock.Anything).Never()
	local, remote := stepListener(env)
	var second TenantState
	// In the second period: February's invoice is paid, then the state is read.
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(SignalInvoiceSettled, InvoiceSettled{InvoiceID: "inv-2026-02", Status: "paid"})
	}, 2*time.Hour)
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(QueryTenant)
		require.NoError(t, err)
		require.NoError(t, v.Get(&second))
	}, 3*time.Hour)
	// Four waits (the boundaries b1 and b2, the settled signal, the
	// boundary b3) spend the budget: the run continues as new at b3.
	env.ExecuteWorkflow(TenantBilling, TenantBillingInput{TenantID: testTenant, ContinueAfter: 4})
	next := continuedAs(t, env)
	env.AssertExpectations(t)
	require.Equal(t, []time.Time{b1, b2, b3}, *claimed, "one claim per boundary, in one run")
	require.Equal(t, []string{"LoadTenant", "ClaimAndStart", "ClaimAndStart", "ClaimAndStart"}, *local)
	require.Empty(t, *remote)
	require.True(t, second.NextBoundary.Equal(b2), "the second period's boundary: %v", second.NextBoundary)
	require.Empty(t, second.OpenInvoices, "the settled invoice left the open ones")
	require.Equal(t, pathTenantV5, next.Version)
	require.NotNil(t, next.Snapshot)
	require.True(t, next.Snapshot.RenewedThrough.Equal(b3), "the next run starts from the last boundary's reload")
}

// tenant-v5 continues as new at a boundary once the history has grown
// past tenantRunEvents, without any test budget.
func TestTenantV5ContinuesAsNewWhenTheHistoryIsLong(t *testing.T) {
	anchor := ts("2026-01-01T00:00:00Z")
	b1 := ts("2026-02-01T00:00:00Z")
	env, _, claimed := loopEnv(t, b1.Add(-time.Hour), anchor)
	env.SetCurrentHistoryLength(tenantRunEvents)
	env.ExecuteWorkflow(TenantBilling, TenantBillingInput{TenantID: testTenant})
	next := continuedAs(t, env)
	require.Equal(t, []time.Time{b1}, *claimed)
	require.Equal(t, pathTenantV5, next.Version)
	require.True(t, next.Snapshot.RenewedThrough.Equal(b1))
}

// A run carrying tenant-v4's path (continued before tenant-v5 existed)
// reads the tenant-v5 id on a new run and takes it; a run carrying
// tenant-v5 reads no id at all.
func TestTenantV5TakenByContinuedRuns(t *testing.T) {
	anchor := ts("2026-01-01T00:00:00Z")
	b1 := ts("2026-02-01T00:00:00Z")
	snap := activities.TenantSnapshot{TenantID: testTenant, Currency: "usd", Status: "active", Anchor: &anchor, RenewedThrough: &anchor}
	for _, tc := range []struct {
		version int
		reads   bool
	}{{pathTenantV4, true}, {pathTenantV5, false}} {
		env, acts := newestEnv(t, b1.Add(-time.Hour))
		read := false
		env.OnGetVersion(changeTenantV5, workflow.DefaultVersion, 1).Return(func(string, workflow.Version, workflow.Version) workflow.Version {
			read = true
			return 1
		}).Maybe()
		var claimed []time.Time
		claimAtBoundaries(env, acts, anchor, &claimed)
		s := snap
		env.SetCurrentHistoryLength(tenantRunEvents) // continue at the first boundary
		env.ExecuteWorkflow(TenantBilling, TenantBillingInput{TenantID: testTenant, Version: tc.version, Snapshot: &s})
		next := continuedAs(t, env)
		require.Equal(t, tc.reads, read, "version %d reads tenant-v5", tc.version)
		require.Equal(t, pathTenantV5, next.Version)
		require.Equal(t, []time.Time{b1}, claimed)
	}
}

// tenant-v5 continues as new at the first boundary after its run is
// tenantRunMaxAge old, so the state is re-encrypted under the current
// payload key at least that often: monthly, about every fourth period.
func TestTenantV5ContinuesAsNewWhenTheRunIsOld(t *testing.T) {
	anchor := ts("2026-01-01T00:00:00Z")
	start := ts("2026-01-31T23:00:00Z")
	env, _, claimed := loopEnv(t, start, anchor)
	env.ExecuteWorkflow(TenantBilling, TenantBillingInput{TenantID: testTenant})
	next := continuedAs(t, env)
	// Ages at the boundaries: 1 h, 28, 59 and 89 days (and 1 h), then 120.
	require.Equal(t, []time.Time{ts("2026-02-01T00:00:00Z"), ts("2026-03-01T00:00:00Z"), ts("2026-04-01T00:00:00Z"),
		ts("2026-05-01T00:00:00Z"), ts("2026-06-01T00:00:00Z")}, *claimed)
	require.Equal(t, pathTenantV5, next.Version)
	require.True(t, next.Snapshot.RenewedThrough.Equal(ts("2026-06-01T00:00:00Z")))
}

package workflows

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/billflow/billflow/activities"
)

// stepListener records which activities a run executes locally and which
// as (remote) activities.
func stepListener(env *testsuite.TestWorkflowEnvironment) (local, remote *[]string) {
	local, remote = new([]string), new([]string)
	env.SetOnLocalActivityStartedListener(func(info *activity.Info, _ context.Context, _ []any) {
		*local = append(*local, info.ActivityType.Name)
	})
	env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
		*remote = append(*remote, info.ActivityType.Name)
	})
	return local, remote
}

// tenant-v4: at the boundary, renewal, claim and the start of the invoice's
// workflow are one local activity (ClaimAndStart), which also reloads the
// tenant; no child workflow is started, and the next run is given the path
// and the reloaded snapshot.
func TestTenantV4BoundaryIsOneLocalActivity(t *testing.T) {
	anchor := ts("2026-01-01T00:00:00Z")
	boundary := ts("2026-02-01T00:00:00Z")
	renewed := anchor
	env, acts := tenantV4Env(t, boundary.Add(-time.Hour))
	env.OnActivity(acts.LoadTenant, mock.Anything, mock.Anything).Return(activities.TenantSnapshot{
		TenantID: testTenant, Currency: "usd", Status: "active", Anchor: &anchor, RenewedThrough: &renewed}, nil).Once()
	inv := activities.InvoiceRef{ID: "inv-b1", TenantID: testTenant, Total: 2000, Currency: "usd", Status: "open"}
	reloaded := activities.TenantSnapshot{TenantID: testTenant, Currency: "usd", Status: "active", Anchor: &anchor,
		RenewedThrough: &boundary, OpenInvoices: []activities.InvoiceRef{inv}}
	var got activities.ClaimAndStartInput
	env.OnActivity(acts.ClaimAndStart, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.ClaimAndStartInput) (activities.ClaimAndStartResult, error) {
		got = in
		return activities.ClaimAndStartResult{Renew: &activities.RenewResult{Created: 1, RenewedThrough: &boundary},
			Claim: activities.ClaimResult{Invoice: &inv}, PaymentStarted: true, Snapshot: &reloaded}, nil
	}).Once()
	env.OnActivity(acts.Renew, mock.Anything, mock.Anything).Never()
	env.OnActivity(acts.Claim, mock.Anything, mock.Anything).Never()
	env.OnWorkflow(InvoicePayment, mock.Anything, mock.Anything).Return(InvoicePaymentResult{}, nil).Never()
	local, remote := stepListener(env)
	env.ExecuteWorkflow(TenantBilling, TenantBillingInput{TenantID: testTenant})
	next := continuedAs(t, env)
	env.AssertExpectations(t)
	require.Equal(t, []string{"LoadTenant", "ClaimAndStart"}, *local)
	require.Empty(t, *remote)
	require.NotNil(t, got.RenewUpTo)
	require.True(t, got.RenewUpTo.Equal(boundary))
	require.True(t, got.Claim.PeriodStart.Equal(boundary))
	require.NotEmpty(t, got.Claim.ClaimKey)
	require.NotEmpty(t, got.TaskQueue, "the invoice runs on the tenant's task queue")
	require.Equal(t, pathInvoiceV7, got.PaymentVersion)
	require.True(t, got.Begin, "the invoice's run starts with its collection begun")
	require.NotNil(t, got.Reload, "the boundary's claim reloads the tenant for the next run")
	require.Equal(t, pathTenantV4, next.Version)
	require.Equal(t, &reloaded, next.Snapshot)
}

// A run given a snapshot (tenant-v4, by continue-as-new) starts from it:
// no LoadTenant, no change id read; it sleeps to the boundary and claims.
func TestTenantV4CarriedSnapshotSkipsLoad(t *testing.T) {
	anchor := ts("2026-01-01T00:00:00Z")
	b1, b2 := ts("2026-02-01T00:00:00Z"), ts("2026-03-01T00:00:00Z")
	env, acts := tenantV4Env(t, b1.Add(2*time.Second))
	for _, change := range []string{changeTenantV4, changeTenantV3, changeTenantV2, changeTenantNeedsAction} {
		env.OnGetVersion(change, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion).Never()
	}
	env.OnActivity(acts.LoadTenant, mock.Anything, mock.Anything).Never()
	env.OnActivity(acts.ClaimAndStart, mock.Anything, mock.MatchedBy(func(in activities.ClaimAndStartInput) bool {
		return in.RenewUpTo != nil && in.RenewUpTo.Equal(b2)
	})).Return(activities.ClaimAndStartResult{Renew: &activities.RenewResult{Created: 1, RenewedThrough: &b2}}, nil).Once()
	var mid TenantState
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(QueryTenant)
		require.NoError(t, err)
		require.NoError(t, v.Get(&mid))
	}, time.Hour)
	snap := activities.TenantSnapshot{TenantID: testTenant, Currency: "usd", Status: "active", Anchor: &anchor, RenewedThrough: &b1,
		OpenInvoices: []activities.InvoiceRef{{ID: "inv-b1", TenantID: testTenant, Total: 2000, Currency: "usd", Status: "collecting"}}}
	env.ExecuteWorkflow(TenantBilling, TenantBillingInput{TenantID: testTenant, Version: pathTenantV4, Snapshot: &snap})
	next := continuedAs(t, env)
	env.AssertExpectations(t)
	require.Len(t, mid.OpenInvoices, 1, "the carried open invoices")
	require.True(t, mid.NextBoundary.Equal(b2))
	require.Equal(t, pathTenantV4, next.Version)
	require.Nil(t, next.Snapshot, "no reload answered: the next run loads")
}

// A settled invoice and a status change taken off the channels as the run
// ends are carried in the snapshot the next run starts from.
func TestTenantV4SignalsAtContinueAsNewGoIntoTheSnapshot(t *testing.T) {
	anchor := ts("2026-01-01T00:00:00Z")
	boundary := ts("2026-02-01T00:00:00Z")
	renewed := anchor
	env, acts := tenantV4Env(t, boundary.Add(-time.Hour))
	env.OnActivity(acts.LoadTenant, mock.Anything, mock.Anything).Return(activities.TenantSnapshot{
		TenantID: testTenant, Currency: "usd", Status: "active", Anchor: &anchor, RenewedThrough: &renewed}, nil).Once()
	inv := activities.InvoiceRef{ID: "inv-b1", TenantID: testTenant, Total: 2000, Currency: "usd", Status: "open"}
	env.OnActivity(acts.ClaimAndStart, mock.Anything, mock.Anything).Return(func(context.Context, activities.ClaimAndStartInput) (activities.ClaimAndStartResult, error) {
		// The invoice is paid and the tenant's standing changes while the
		// boundary's workflow task runs: both signals wait in the channels.
		env.SignalWorkflow(SignalInvoiceSettled, InvoiceSettled{InvoiceID: "inv-b1", Status: "paid"})
		env.SignalWorkflow(SignalTenantStatus, TenantStatus{Status: "grace"})
		return activities.ClaimAndStartResult{Renew: &activities.RenewResult{Created: 1, RenewedThrough: &boundary},
			Claim: activities.ClaimResult{Invoice: &inv}, PaymentStarted: true,
			Snapshot: &activities.TenantSnapshot{TenantID: testTenant, Currency: "usd", Status: "active", Anchor: &anchor,
				RenewedThrough: &boundary, OpenInvoices: []activities.InvoiceRef{inv}}}, nil
	}).Once()
	env.ExecuteWorkflow(TenantBilling, TenantBillingInput{TenantID: testTenant})
	next := continuedAs(t, env)
	require.NotNil(t, next.Snapshot)
	require.Empty(t, next.Snapshot.OpenInvoices, "the settled invoice is off the carried list")
	require.Equal(t, "grace", next.Snapshot.Status)
}

// When the claim's worker cannot start the invoice's workflow (no client),
// the tenant starts it as a child, on invoice-v7, as before.
func TestTenantV4StartsTheInvoiceAsAChildWhenTheClaimCouldNot(t *testing.T) {
	anchor := ts("2026-01-01T00:00:00Z")
	boundary := ts("2026-02-01T00:00:00Z")
	renewed := anchor
	env, acts := tenantV4Env(t, boundary.Add(-time.Hour))
	env.OnActivity(acts.LoadTenant, mock.Anything, mock.Anything).Return(activities.TenantSnapshot{
		TenantID: testTenant, Currency: "usd", Status: "active", Anchor: &anchor, RenewedThrough: &renewed}, nil).Once()
	inv := activities.InvoiceRef{ID: "inv-child", TenantID: testTenant, Total: 2000, Currency: "usd", Status: "open"}
	env.OnActivity(acts.ClaimAndStart, mock.Anything, mock.Anything).Return(activities.ClaimAndStartResult{
		Renew: &activities.RenewResult{Created: 1, RenewedThrough: &boundary}, Claim: activities.ClaimResult{Invoice: &inv}}, nil).Once()
	var started []InvoicePaymentInput
	env.OnWorkflow(InvoicePayment, mock.Anything, mock.Anything).Return(func(_ workflow.Context, in InvoicePaymentInput) (InvoicePaymentResult, error) {
		started = append(started, in)
		return InvoicePaymentResult{InvoiceID: in.InvoiceID, Status: "paid"}, nil
	})
	env.ExecuteWorkflow(TenantBilling, TenantBillingInput{TenantID: testTenant})
	next := continuedAs(t, env)
	env.AssertExpectations(t)
	require.Equal(t, []InvoicePaymentInput{{InvoiceID: "inv-child", TenantID: testTenant, Total: 2000, Currency: "usd", Version: pathInvoiceV7}}, started)
	require.Nil(t, next.Snapshot, "no reload answered")
	require.Equal(t, pathTenantV4, next.Version)
}

// A claim after recorded activity (the debounce) is ClaimAndStart without
// a renewal and without a reload.
func TestTenantV4DebouncedClaim(t *testing.T) {
	anchor := ts("2026-01-10T00:00:00Z")
	env, acts := tenantV4Env(t, anchor)
	env.OnActivity(acts.LoadTenant, mock.Anything, mock.Anything).Return(activities.TenantSnapshot{
		TenantID: testTenant, Currency: "usd", Status: "active"}, nil).Once()
	env.OnActivity(acts.RecordActivity, mock.Anything, mock.Anything).Return(activities.RecordActivityResult{
		Anchor: anchor, Item: &activities.ItemRef{ID: "item-1"}, Outstanding: 500}, nil).Once()
	var claims []activities.ClaimAndStartInput
	env.OnActivity(acts.ClaimAndStart, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.ClaimAndStartInput) (activities.ClaimAndStartResult, error) {
		claims = append(claims, in)
		if in.RenewUpTo != nil {
			return activities.ClaimAndStartResult{Renew: &activities.RenewResult{RenewedThrough: in.RenewUpTo}}, nil
		}
		return activities.ClaimAndStartResult{Claim: activities.ClaimResult{Invoice: &activities.InvoiceRef{ID: "inv-d", TenantID: testTenant,
			Total: 500, Currency: "usd", Status: "open"}}, PaymentStarted: true}, nil
	})
	var rec updateResult
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(UpdateRecordActivity, "u1", updateCallbacks(&rec), RecordActivityRequest{
			ID: "a1", Type: "resource_created", ResourceID: "relay-1", PlanID: "pro", CreatedAt: &anchor})
	}, time.Second)
	env.ExecuteWorkflow(TenantBilling, TenantBillingInput{TenantID: testTenant, Currency: "usd", ContinueAfter: 3})
	require.NoError(t, rec.err)
	require.NotEmpty(t, claims)
	require.Nil(t, claims[0].RenewUpTo, "the debounced claim renews nothing")
	require.Nil(t, claims[0].Reload)
	require.Equal(t, pathInvoiceV7, claims[0].PaymentVersion)
}

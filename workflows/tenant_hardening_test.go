package workflows

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/workflow"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/models"
)

// LoadTenant, Renew and Claim each fail for good once: TenantBilling records
// needs_action, keeps running, and a retry signal (or the next boundary)
// re-runs the step; the run reaches its boundary and continues as new.
func TestTenantBusinessErrorsNeverFailTheWorkflow(t *testing.T) {
	anchor := ts("2026-03-01T00:00:00Z")
	for _, failing := range []string{"LoadTenant", "Renew", "Claim"} {
		t.Run(failing, func(t *testing.T) {
			env, acts := newEnv(t, ts("2026-04-10T00:00:00Z"))
			renewed := anchor
			if failing == "LoadTenant" {
				env.OnActivity(acts.LoadTenant, mock.Anything, mock.Anything).Return(activities.TenantSnapshot{}, fatal("currency xyz is not supported")).Once()
			}
			env.OnActivity(acts.LoadTenant, mock.Anything, mock.Anything).Return(activities.TenantSnapshot{
				TenantID: testTenant, Currency: "usd", Status: "active", Anchor: &anchor, RenewedThrough: &renewed}, nil).Once()
			if failing == "Renew" {
				env.OnActivity(acts.Renew, mock.Anything, mock.Anything).Return(activities.RenewResult{}, fatal(`plan "gold" is not in the catalog`)).Once()
			}
			if failing == "Claim" {
				env.OnActivity(acts.Claim, mock.Anything, mock.Anything).Return(activities.ClaimResult{}, fatal("invoice total overflows")).Once()
			}
			env.OnActivity(acts.Renew, mock.Anything, mock.Anything).Return(activities.RenewResult{Created: 1}, nil)
			env.OnActivity(acts.Claim, mock.Anything, mock.Anything).Return(activities.ClaimResult{}, nil)
			recorded := 0
			env.OnActivity(acts.RecordNeedsAction, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.NeedsActionInput) error {
				recorded++
				require.Equal(t, testTenant, in.TenantID)
				return nil
			}).Once()
			env.OnActivity(acts.ClearTenantNeedsAction, mock.Anything, mock.Anything).Return(nil).Once()
			var mid TenantState
			env.RegisterDelayedCallback(func() {
				require.False(t, env.IsWorkflowCompleted())
				if failing != "LoadTenant" { // the query waits for nothing, the state is loaded
					v, err := env.QueryWorkflow(QueryTenant)
					require.NoError(t, err)
					require.NoError(t, v.Get(&mid))
				}
				require.Contains(t, details(t, env), "Needs action")
				env.SignalWorkflow(SignalRetry, nil)
			}, time.Hour)
			env.ExecuteWorkflow(TenantBilling, TenantBillingInput{TenantID: testTenant})
			next := continuedAs(t, env)
			env.AssertExpectations(t)
			require.Equal(t, 1, recorded)
			require.Nil(t, next.NeedsAction, "the retry succeeded")
			require.Equal(t, ts("2026-05-01T00:00:00Z"), env.Now().UTC(), "ran on to its boundary")
			if failing != "LoadTenant" {
				require.NotNil(t, mid.NeedsAction)
			}
		})
	}
}

// A renewal that fails for good at the boundary does not end the tenant:
// the run continues as new carrying the failure, and the next run's
// catch-up retries it.
func TestTenantBoundaryFailureCarriedAndRetried(t *testing.T) {
	anchor := ts("2026-03-01T00:00:00Z")
	env, acts := newEnv(t, ts("2026-03-20T00:00:00Z"))
	renewed := anchor
	env.OnActivity(acts.LoadTenant, mock.Anything, mock.Anything).Return(activities.TenantSnapshot{
		TenantID: testTenant, Currency: "usd", Status: "active", Anchor: &anchor, RenewedThrough: &renewed}, nil).Once()
	env.OnActivity(acts.Renew, mock.Anything, mock.Anything).Return(activities.RenewResult{}, fatal(`plan "gold" is not in the catalog`)).Once()
	env.OnActivity(acts.RecordNeedsAction, mock.Anything, mock.Anything).Return(nil).Once()
	env.ExecuteWorkflow(TenantBilling, TenantBillingInput{TenantID: testTenant})
	next := continuedAs(t, env)
	require.NotNil(t, next.NeedsAction)
	require.Contains(t, next.NeedsAction.Reason, "gold")

	env, acts = newEnv(t, ts("2026-04-01T00:00:01Z"))
	env.OnActivity(acts.LoadTenant, mock.Anything, mock.Anything).Return(activities.TenantSnapshot{
		TenantID: testTenant, Currency: "usd", Status: "active", Anchor: &anchor, RenewedThrough: &renewed}, nil).Once()
	env.OnActivity(acts.Renew, mock.Anything, activities.RenewInput{TenantID: testTenant, UpTo: ts("2026-04-01T00:00:00Z")}).
		Return(activities.RenewResult{Created: 1}, nil).Once()
	env.OnActivity(acts.Renew, mock.Anything, mock.Anything).Return(activities.RenewResult{}, nil).Once()
	env.OnActivity(acts.Claim, mock.Anything, mock.Anything).Return(activities.ClaimResult{}, nil).Twice()
	env.OnActivity(acts.RecordNeedsAction, mock.Anything, mock.Anything).Never()
	env.OnActivity(acts.ClearTenantNeedsAction, mock.Anything, mock.Anything).Return(nil).Once()
	env.ExecuteWorkflow(TenantBilling, next)
	next = continuedAs(t, env)
	env.AssertExpectations(t)
	require.Nil(t, next.NeedsAction)
}

// Continue-as-new forced at each wait point (waiting for the anchor, for a
// claim's debounce, for the boundary) loses nothing: the anchor, the pending
// claim and the renewal all carry over.
func TestTenantContinueAsNewAtEveryWait(t *testing.T) {
	anchor := ts("2026-06-15T12:00:00Z")
	boundary := ts("2026-07-15T12:00:00Z")
	// Run 1: no anchor yet; the first activity arrives; the run continues
	// as new at its next wait with the claim still pending.
	env, acts := newEnv(t, anchor.Add(-time.Minute))
	env.OnActivity(acts.LoadTenant, mock.Anything, mock.Anything).Return(activities.TenantSnapshot{TenantID: testTenant, Currency: "usd", Status: "active"}, nil).Once()
	env.OnActivity(acts.RecordActivity, mock.Anything, mock.Anything).Return(activities.RecordActivityResult{ActivityID: "a1", Anchor: anchor,
		Outstanding: 2000, Item: &activities.ItemRef{Kind: models.KindProration, Amount: 2000}}, nil).Once()
	env.OnActivity(acts.Claim, mock.Anything, mock.Anything).Never()
	var rec updateResult
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(UpdateRecordActivity, "u1", updateCallbacks(&rec), RecordActivityRequest{
			ID: "a1", Type: models.ResourceCreated, ResourceID: "r", PlanID: "pro", CreatedAt: &anchor})
	}, time.Minute)
	env.ExecuteWorkflow(TenantBilling, TenantBillingInput{TenantID: testTenant, Currency: "usd", ContinueAfter: 1})
	next := continuedAs(t, env)
	env.AssertExpectations(t)
	require.NoError(t, rec.err)
	require.True(t, next.PendingClaim, "the claim debounce carries over")
	require.Equal(t, 1, next.ContinueAfter)

	// Run 2: the debounce fires and claims; continue as new at the next wait.
	env, acts = newEnv(t, anchor.Add(time.Minute))
	env.OnActivity(acts.LoadTenant, mock.Anything, mock.Anything).Return(activities.TenantSnapshot{
		TenantID: testTenant, Currency: "usd", Status: "active", Anchor: &anchor, Outstanding: 2000}, nil).Once()
	env.OnActivity(acts.Claim, mock.Anything, mock.Anything).Return(activities.ClaimResult{
		Invoice: &activities.InvoiceRef{ID: "inv-1", TenantID: testTenant, Total: 2000, Currency: "usd", Status: "open"}}, nil).Once()
	env.OnWorkflow(InvoicePayment, mock.Anything, mock.Anything).Return(func(_ workflow.Context, in InvoicePaymentInput) (InvoicePaymentResult, error) {
		return InvoicePaymentResult{InvoiceID: in.InvoiceID, Status: "paid"}, nil
	}).Once()
	env.ExecuteWorkflow(TenantBilling, next)
	next = continuedAs(t, env)
	env.AssertExpectations(t)
	require.False(t, next.PendingClaim)
	require.Equal(t, anchor.Add(time.Minute+ClaimDebounce), env.Now().UTC())

	// Run 3: waits for the boundary, renews and claims once.
	env, acts = newEnv(t, anchor.Add(time.Hour))
	env.OnActivity(acts.LoadTenant, mock.Anything, mock.Anything).Return(activities.TenantSnapshot{
		TenantID: testTenant, Currency: "usd", Status: "active", Anchor: &anchor}, nil).Once()
	env.OnActivity(acts.Renew, mock.Anything, activities.RenewInput{TenantID: testTenant, UpTo: boundary}).Return(activities.RenewResult{Created: 1, RenewedThrough: &boundary}, nil).Once()
	env.OnActivity(acts.Claim, mock.Anything, mock.Anything).Return(activities.ClaimResult{}, nil).Once()
	env.ExecuteWorkflow(TenantBilling, next)
	continuedAs(t, env)
	env.AssertExpectations(t)
	require.Equal(t, boundary, env.Now().UTC())
}

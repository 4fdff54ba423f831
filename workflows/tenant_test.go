package workflows

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/models"
)

const testTenant = models.TenantID("7e7e9c42a91bfef19fa929e5fda1b72e0ebc1a4c1141673e2794234d86addf4e")

func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func ptr[T any](v T) *T { return &v }

type updateResult struct {
	accepted bool
	rejected error
	value    any
	err      error
}

// updateCallbacks records an update's outcome for assertions.
func updateCallbacks(out *updateResult) *testsuite.TestUpdateCallback {
	return &testsuite.TestUpdateCallback{
		OnAccept:   func() { out.accepted = true },
		OnReject:   func(err error) { out.rejected = err },
		OnComplete: func(v any, err error) { out.value, out.err = v, err },
	}
}

func newEnv(t *testing.T, start time.Time) (*testsuite.TestWorkflowEnvironment, *activities.Activities) {
	env, acts := newBareEnv(t, start)
	// The cascade's first rail: unless a test says otherwise, the wallet
	// does not cover the invoice and NWC goes on as before.
	env.OnActivity(acts.PayFromWallet, mock.Anything, mock.Anything).Return(
		activities.WalletRailResult{Outcome: activities.OutcomeNotCovered, Summary: "no wallet", NoWallet: true}, nil).Maybe()
	return env, acts
}

// newBareEnv is newEnv without the wallet rail's default answer. Its runs
// take tenant-v3 and invoice-v6 (GetVersion of tenant-v4 and invoice-v7
// answers the default, as for a run recorded before them): the path every
// run recorded before those changes still replays on. newestEnv runs the
// newest paths.
func newBareEnv(t *testing.T, start time.Time) (*testsuite.TestWorkflowEnvironment, *activities.Activities) {
	env, acts := newestEnv(t, start)
	env.OnGetVersion(changeTenantV5, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion).Maybe()
	env.OnGetVersion(changeTenantV4, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion).Maybe()
	env.OnGetVersion(changeInvoiceV7, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion).Maybe()
	return env, acts
}

// tenantV4Env is newestEnv with tenant-v5 answered as absent: its new runs
// take tenant-v4 (continue-as-new at every boundary), as every run
// recorded before tenant-v5 replays.
func tenantV4Env(t *testing.T, start time.Time) (*testsuite.TestWorkflowEnvironment, *activities.Activities) {
	env, acts := newestEnv(t, start)
	env.OnGetVersion(changeTenantV5, workflow.DefaultVersion, 1).Return(workflow.DefaultVersion).Maybe()
	return env, acts
}

// newestEnv is a test environment whose new runs take the newest paths
// (tenant-v5, invoice-v7), with no activity answers set.
func newestEnv(t *testing.T, start time.Time) (*testsuite.TestWorkflowEnvironment, *activities.Activities) {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	env.SetStartTime(start)
	acts := &activities.Activities{}
	env.RegisterActivity(acts)
	env.RegisterWorkflow(TenantBilling)
	env.RegisterWorkflow(InvoicePayment)
	return env, acts
}

// continuedAs returns the input of the next run when the workflow continued as new.
func continuedAs(t *testing.T, env *testsuite.TestWorkflowEnvironment) TenantBillingInput {
	t.Helper()
	require.True(t, env.IsWorkflowCompleted())
	var can *workflow.ContinueAsNewError
	require.True(t, errors.As(env.GetWorkflowError(), &can), "want continue-as-new, got %v", env.GetWorkflowError())
	var next TenantBillingInput
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	return next
}

// A tenant anchored on January 31st renews on the last day of shorter months
// (always computed from the anchor, never drifting) and continues as new once
// per period; each run renews exactly once.
func TestTenantBillingMonthEndAnchorAcrossPeriods(t *testing.T) {
	anchor := ts("2026-01-31T10:00:00Z")
	wantBoundaries := []time.Time{ts("2026-02-28T10:00:00Z"), ts("2026-03-31T10:00:00Z"), ts("2026-04-30T10:00:00Z")}

	// Run 0: a new tenant; the first activity sets the anchor.
	env, acts := newEnv(t, anchor.Add(-time.Minute))
	env.OnActivity(acts.LoadTenant, mock.Anything, activities.LoadTenantInput{TenantID: testTenant, Currency: "usd"}).
		Return(activities.TenantSnapshot{TenantID: testTenant, Currency: "usd", Status: "active"}, nil).Once()
	env.OnActivity(acts.RecordActivity, mock.Anything, mock.MatchedBy(func(in activities.RecordActivityInput) bool {
		return in.Activity.ID == "a1" && in.Activity.At.Equal(anchor)
	})).Return(activities.RecordActivityResult{ActivityID: "a1", Anchor: anchor, Outstanding: 2000,
		Item: &activities.ItemRef{Kind: models.KindProration, Amount: 2000}}, nil).Once()
	env.OnActivity(acts.Claim, mock.Anything, mock.MatchedBy(func(in activities.ClaimInput) bool {
		return in.PeriodStart.Equal(anchor) && in.PeriodEnd.Equal(wantBoundaries[0])
	})).Return(activities.ClaimResult{Invoice: &activities.InvoiceRef{ID: "inv-1", TenantID: testTenant, Total: 2000, Currency: "usd", Status: "open"}}, nil).Once()
	env.OnActivity(acts.Renew, mock.Anything, activities.RenewInput{TenantID: testTenant, UpTo: wantBoundaries[0]}).
		Return(activities.RenewResult{Created: 1, RenewedThrough: &wantBoundaries[0]}, nil).Once()
	env.OnActivity(acts.Claim, mock.Anything, mock.MatchedBy(func(in activities.ClaimInput) bool {
		return in.PeriodStart.Equal(wantBoundaries[0])
	})).Return(activities.ClaimResult{Invoice: &activities.InvoiceRef{ID: "inv-2", TenantID: testTenant, Total: 2000, Currency: "usd", Status: "open"}}, nil).Once()
	var started []string
	env.OnWorkflow(InvoicePayment, mock.Anything, mock.Anything).Return(func(_ workflow.Context, in InvoicePaymentInput) (InvoicePaymentResult, error) {
		started = append(started, in.InvoiceID)
		return InvoicePaymentResult{InvoiceID: in.InvoiceID, Status: "paid"}, nil
	})
	var rec updateResult
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(UpdateRecordActivity, "u1", updateCallbacks(&rec), RecordActivityRequest{
			ID: "a1", Type: models.ResourceCreated, ResourceID: "relay-1", PlanID: "pro", CreatedAt: &anchor})
	}, time.Minute)
	var mid TenantState
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(QueryTenant)
		require.NoError(t, err)
		require.NoError(t, v.Get(&mid))
	}, 10*24*time.Hour)
	env.ExecuteWorkflow(TenantBilling, TenantBillingInput{TenantID: testTenant, Currency: "usd"})
	next := continuedAs(t, env)
	env.AssertExpectations(t)
	require.True(t, rec.accepted)
	require.NoError(t, rec.err)
	require.Equal(t, []string{"inv-1", "inv-2"}, started, "the debounced claim and the boundary claim each start one payment workflow")
	require.Equal(t, TenantBillingInput{TenantID: testTenant, Currency: "usd", Version: pathTenantV3}, next, "the next run takes tenant-v3 from its input")
	require.NotNil(t, mid.Anchor)
	require.True(t, mid.Anchor.Equal(anchor))
	require.True(t, mid.NextBoundary.Equal(wantBoundaries[0]))
	require.Len(t, mid.OpenInvoices, 1)

	// Runs 1 and 2 start from the stored state and sleep to the next boundary.
	for i := 1; i < len(wantBoundaries); i++ {
		env, acts := newEnv(t, wantBoundaries[i-1].Add(2*time.Second))
		renewed := wantBoundaries[i-1]
		env.OnActivity(acts.LoadTenant, mock.Anything, mock.Anything).Return(activities.TenantSnapshot{
			TenantID: testTenant, Currency: "usd", Status: "active", Anchor: &anchor, RenewedThrough: &renewed}, nil).Once()
		env.OnActivity(acts.Renew, mock.Anything, activities.RenewInput{TenantID: testTenant, UpTo: wantBoundaries[i]}).
			Return(activities.RenewResult{Created: 1, RenewedThrough: &wantBoundaries[i]}, nil).Once()
		env.OnActivity(acts.Claim, mock.Anything, mock.Anything).Return(activities.ClaimResult{}, nil).Once()
		env.OnActivity(acts.RecordActivity, mock.Anything, mock.Anything).Never()
		env.ExecuteWorkflow(TenantBilling, next)
		next = continuedAs(t, env)
		env.AssertExpectations(t)
		require.Equal(t, wantBoundaries[i], env.Now().UTC().Truncate(time.Second), "run %d woke exactly at its boundary", i)
	}
}

// A boundary that passed while no run waited (a long outage) is renewed as
// soon as the next run starts, before it sleeps to the following boundary.
func TestTenantBillingCatchesUpMissedBoundary(t *testing.T) {
	anchor := ts("2026-03-01T00:00:00Z")
	env, acts := newEnv(t, ts("2026-05-10T00:00:00Z"))
	renewed := ts("2026-03-01T00:00:00Z")
	env.OnActivity(acts.LoadTenant, mock.Anything, mock.Anything).Return(activities.TenantSnapshot{
		TenantID: testTenant, Currency: "usd", Status: "active", Anchor: &anchor, RenewedThrough: &renewed}, nil).Once()
	env.OnActivity(acts.Renew, mock.Anything, activities.RenewInput{TenantID: testTenant, UpTo: ts("2026-05-01T00:00:00Z")}).
		Return(activities.RenewResult{Created: 2}, nil).Once()
	env.OnActivity(acts.Renew, mock.Anything, activities.RenewInput{TenantID: testTenant, UpTo: ts("2026-06-01T00:00:00Z")}).
		Return(activities.RenewResult{Created: 1}, nil).Once()
	env.OnActivity(acts.Claim, mock.Anything, mock.Anything).Return(activities.ClaimResult{}, nil).Twice()
	env.ExecuteWorkflow(TenantBilling, TenantBillingInput{TenantID: testTenant})
	continuedAs(t, env)
	env.AssertExpectations(t)
}

// A burst of activity makes one claim after the debounce, not one per activity;
// a validator rejects malformed input before any activity runs.
func TestTenantBillingDebouncesClaimsAndValidates(t *testing.T) {
	anchor := ts("2026-06-15T12:00:00Z")
	env, acts := newEnv(t, anchor.Add(time.Hour))
	env.OnActivity(acts.LoadTenant, mock.Anything, mock.Anything).Return(activities.TenantSnapshot{
		TenantID: testTenant, Currency: "usd", Status: "active", Anchor: &anchor}, nil).Once()
	env.OnActivity(acts.RecordActivity, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.RecordActivityInput) (activities.RecordActivityResult, error) {
		return activities.RecordActivityResult{ActivityID: in.Activity.ID, Anchor: anchor, Item: &activities.ItemRef{Amount: 100}}, nil
	}).Times(3)
	env.OnActivity(acts.Claim, mock.Anything, mock.Anything).Return(activities.ClaimResult{}, nil).Once()
	env.OnActivity(acts.Renew, mock.Anything, mock.Anything).Return(activities.RenewResult{}, nil).Once()
	env.OnActivity(acts.Claim, mock.Anything, mock.Anything).Return(activities.ClaimResult{}, nil).Once()

	var bad, future updateResult
	for i, id := range []string{"b1", "b2", "b3"} {
		env.RegisterDelayedCallback(func() {
			env.UpdateWorkflow(UpdateRecordActivity, id, updateCallbacks(&updateResult{}), RecordActivityRequest{
				ID: id, Type: models.ResourceActivated, ResourceID: "r"})
		}, time.Minute+time.Duration(i)*5*time.Second)
	}
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(UpdateRecordActivity, "bad", updateCallbacks(&bad), RecordActivityRequest{ID: "x", Type: "resource_exploded", ResourceID: "r"})
		later := anchor.Add(48 * time.Hour)
		env.UpdateWorkflow(UpdateRecordActivity, "future", updateCallbacks(&future), RecordActivityRequest{ID: "y", Type: models.ResourceActivated, ResourceID: "r", CreatedAt: &later})
	}, 2*time.Minute)
	var mid TenantState
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(QueryTenant)
		require.NoError(t, err)
		require.NoError(t, v.Get(&mid))
	}, 80*time.Second)
	env.ExecuteWorkflow(TenantBilling, TenantBillingInput{TenantID: testTenant})
	continuedAs(t, env)
	env.AssertExpectations(t)
	require.True(t, mid.ClaimPending, "claim is waiting on the debounce timer")
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, bad.rejected, &appErr)
	require.Equal(t, activities.ErrValidation, appErr.Type())
	require.Contains(t, appErr.Error(), "resource_exploded")
	require.ErrorAs(t, future.rejected, &appErr)
	require.Contains(t, appErr.Error(), "in the future")
}

// renew-now returns the invoice of the current period's renewal, or nothing
// owed; a validation failure from the store reaches the caller typed.
func TestTenantBillingRenewNowAndTypedErrors(t *testing.T) {
	anchor := ts("2026-01-01T00:00:00Z")
	env, acts := newEnv(t, ts("2026-02-10T00:00:00Z"))
	renewed := ts("2026-01-01T00:00:00Z")
	env.OnActivity(acts.LoadTenant, mock.Anything, mock.Anything).Return(activities.TenantSnapshot{
		TenantID: testTenant, Currency: "usd", Status: "active", Anchor: &anchor, RenewedThrough: &renewed}, nil).Once()
	feb := ts("2026-02-01T00:00:00Z")
	// Catch-up at start renews February and claims it.
	env.OnActivity(acts.Renew, mock.Anything, activities.RenewInput{TenantID: testTenant, UpTo: feb}).
		Return(activities.RenewResult{Created: 1, RenewedThrough: &feb}, nil).Once()
	env.OnActivity(acts.Claim, mock.Anything, mock.Anything).Return(activities.ClaimResult{
		Invoice: &activities.InvoiceRef{ID: "inv-feb", Total: 2000, Currency: "usd"}}, nil).Once()
	// renew-now in the same period: the store renews nothing, nothing owed.
	env.OnActivity(acts.Renew, mock.Anything, activities.RenewInput{TenantID: testTenant, UpTo: feb}).
		Return(activities.RenewResult{Created: 0, RenewedThrough: &feb}, nil).Once()
	env.OnActivity(acts.Claim, mock.Anything, mock.Anything).Return(activities.ClaimResult{Outstanding: -300}, nil).Once()
	env.OnActivity(acts.RecordActivity, mock.Anything, mock.Anything).Return(activities.RecordActivityResult{},
		temporal.NewNonRetryableApplicationError(`activity a9: plan "gold" is not in the catalog`, activities.ErrValidation, nil)).Once()
	env.OnWorkflow(InvoicePayment, mock.Anything, mock.Anything).Return(InvoicePaymentResult{}, nil)
	env.OnActivity(acts.Renew, mock.Anything, activities.RenewInput{TenantID: testTenant, UpTo: ts("2026-03-01T00:00:00Z")}).
		Return(activities.RenewResult{}, nil).Once()
	env.OnActivity(acts.Claim, mock.Anything, mock.Anything).Return(activities.ClaimResult{}, nil).Once()

	var renew, rec updateResult
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(UpdateRenewNow, "renew", updateCallbacks(&renew))
		env.UpdateWorkflow(UpdateRecordActivity, "rec", updateCallbacks(&rec), RecordActivityRequest{
			ID: "a9", Type: models.ResourcePlanChanged, ResourceID: "r", PlanID: "gold"})
	}, time.Hour)
	env.ExecuteWorkflow(TenantBilling, TenantBillingInput{TenantID: testTenant})
	continuedAs(t, env)
	env.AssertExpectations(t)
	require.NoError(t, renew.err)
	res := renew.value.(RenewNowResponse)
	require.True(t, res.NothingOwed)
	require.Equal(t, 0, res.Renewed)
	require.Equal(t, int64(-300), res.Outstanding)
	var appErr *temporal.ApplicationError
	require.ErrorAs(t, rec.err, &appErr)
	require.Equal(t, activities.ErrValidation, appErr.Type())
	require.Contains(t, appErr.Error(), `plan "gold" is not in the catalog`)
}

func TestFormatAmount(t *testing.T) {
	require.Equal(t, "1234.56 USD", FormatAmount(123456, "usd"))
	require.Equal(t, "-0.05 EUR", FormatAmount(-5, "eur"))
	require.Equal(t, "500 JPY", FormatAmount(500, "jpy"))
}

var _ = ptr[int]

package workflows

import (
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"

	"github.com/billflow/billflow/activities"
)

func graceEnv(t *testing.T, start time.Time) (*testsuite.TestWorkflowEnvironment, *activities.Activities) {
	env, acts := newEnv(t, start)
	env.RegisterWorkflow(GraceWindow)
	env.OnSignalExternalWorkflow(mock.Anything, TenantWorkflowID(testTenant), "", SignalTenantStatus, mock.Anything).Return(nil)
	return env, acts
}

func unpaid(ids ...string) []activities.InvoiceRef {
	var out []activities.InvoiceRef
	for _, id := range ids {
		out = append(out, activities.InvoiceRef{ID: id, Total: 2000, Currency: "usd"})
	}
	return out
}

// Paid inside the window: restored, no suspension.
func TestGraceWindowPaidInside(t *testing.T) {
	start := ts("2026-03-01T00:00:00Z")
	expires := start.Add(DefaultGraceWindow)
	env, acts := graceEnv(t, start)
	env.OnActivity(acts.EnterGrace, mock.Anything, activities.GraceInput{TenantID: testTenant, At: start, Window: DefaultGraceWindow, BanFor: 50 * DefaultGraceWindow}).
		Return(activities.GraceResult{Status: "grace", GraceExpiresAt: &expires, Unpaid: unpaid("inv-1"), Changed: true}, nil).Once()
	env.OnActivity(acts.RestoreIfSettled, mock.Anything, mock.Anything).
		Return(activities.GraceResult{Status: "active", Changed: true}, nil).Once()
	env.OnActivity(acts.ExpireGrace, mock.Anything, mock.Anything).Never()
	env.OnActivity(acts.SendSuspensionDM, mock.Anything, mock.Anything).Never()
	var mid activities.GraceResult
	env.RegisterDelayedCallback(func() {
		v, err := env.QueryWorkflow(QueryGrace)
		require.NoError(t, err)
		require.NoError(t, v.Get(&mid))
		env.SignalWorkflow(SignalInvoiceSettled, InvoiceSettled{InvoiceID: "inv-1", Status: "paid"})
	}, 3*24*time.Hour)
	env.ExecuteWorkflow(GraceWindow, GraceWindowInput{TenantID: testTenant})
	require.NoError(t, env.GetWorkflowError())
	env.AssertExpectations(t)
	require.Equal(t, "grace", mid.Status)
	var res GraceWindowResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Equal(t, "active", res.Status)
	require.Equal(t, start.Add(3*24*time.Hour), env.Now().UTC())
}

// The window runs out unpaid: suspended and banned for 50 windows; a later
// payment while suspended restores. Another failure in between is absorbed.
func TestGraceWindowExpiresSuspendsThenRestores(t *testing.T) {
	start := ts("2026-03-01T00:00:00Z")
	window := 2 * time.Hour
	expires := start.Add(window)
	banned := expires.Add(50 * window)
	env, acts := graceEnv(t, start)
	env.OnActivity(acts.EnterGrace, mock.Anything, mock.Anything).
		Return(activities.GraceResult{Status: "grace", GraceExpiresAt: &expires, Unpaid: unpaid("inv-1"), Changed: true}, nil).Once()
	// A second failed invoice during grace refreshes the unpaid list only.
	env.OnActivity(acts.RestoreIfSettled, mock.Anything, mock.MatchedBy(func(in activities.GraceInput) bool { return in.At.Before(expires) })).
		Return(activities.GraceResult{Status: "grace", GraceExpiresAt: &expires, Unpaid: unpaid("inv-1", "inv-2")}, nil).Once()
	env.OnActivity(acts.ExpireGrace, mock.Anything, activities.GraceInput{TenantID: testTenant, At: expires, Window: window, BanFor: 50 * window}).
		Return(activities.GraceResult{Status: "suspended", BannedUntil: &banned, Unpaid: unpaid("inv-1", "inv-2"), Changed: true}, nil).Once()
	env.OnActivity(acts.SendSuspensionDM, mock.Anything, activities.SuspensionDMInput{TenantID: testTenant}).
		Return(activities.PaymentDMResult{Outcome: "sent"}, nil).Once()
	env.OnActivity(acts.RestoreIfSettled, mock.Anything, mock.MatchedBy(func(in activities.GraceInput) bool { return in.At.After(expires) })).
		Return(activities.GraceResult{Status: "active", BannedUntil: &banned, Changed: true}, nil).Once()
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(SignalCollectionFailed, CollectionFailed{InvoiceID: "inv-2"})
	}, time.Hour)
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(SignalInvoiceSettled, InvoiceSettled{InvoiceID: "inv-1", Status: "paid"})
	}, 30*24*time.Hour)
	env.ExecuteWorkflow(GraceWindow, GraceWindowInput{TenantID: testTenant, Window: window})
	require.NoError(t, env.GetWorkflowError())
	env.AssertExpectations(t)
	var res GraceWindowResult
	require.NoError(t, env.GetWorkflowResult(&res))
	require.Equal(t, "active", res.Status)
	require.Equal(t, banned, *res.BannedUntil, "the ban outlives the restore")
}

// Banned from grace: the store suspends at once; no timer, only payment ends it.
func TestGraceWindowBannedSuspendsAtOnce(t *testing.T) {
	start := ts("2026-06-01T00:00:00Z")
	banned := start.Add(100 * 24 * time.Hour)
	env, acts := graceEnv(t, start)
	env.OnActivity(acts.EnterGrace, mock.Anything, mock.Anything).
		Return(activities.GraceResult{Status: "suspended", BannedUntil: &banned, Unpaid: unpaid("inv-9"), Changed: true}, nil).Once()
	env.OnActivity(acts.ExpireGrace, mock.Anything, mock.Anything).Never()
	// The DM failing for good is logged; suspension and restore go on.
	env.OnActivity(acts.SendSuspensionDM, mock.Anything, mock.Anything).Return(activities.PaymentDMResult{},
		temporal.NewNonRetryableApplicationError("bad recipient", activities.ErrValidation, nil)).Once()
	env.OnActivity(acts.RestoreIfSettled, mock.Anything, mock.Anything).
		Return(activities.GraceResult{Status: "active", BannedUntil: &banned, Changed: true}, nil).Once()
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(SignalInvoiceSettled, InvoiceSettled{InvoiceID: "inv-9", Status: "paid"})
	}, 90*24*time.Hour)
	env.ExecuteWorkflow(GraceWindow, GraceWindowInput{TenantID: testTenant})
	require.NoError(t, env.GetWorkflowError())
	env.AssertExpectations(t)
}

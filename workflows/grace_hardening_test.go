package workflows

import (
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/activities"
)

// EnterGrace, ExpireGrace and RestoreIfSettled each fail for good once: the
// grace window records needs_action, keeps running, retries on a signal
// (or after GraceRetryInterval) and ends restored.
func TestGraceBusinessErrorsNeverFailTheWorkflow(t *testing.T) {
	for _, failing := range []string{"EnterGrace", "ExpireGrace", "RestoreIfSettled"} {
		t.Run(failing, func(t *testing.T) {
			start := ts("2026-03-01T00:00:00Z")
			expires := start.Add(time.Hour)
			env, acts := graceEnv(t, start)
			if failing == "EnterGrace" {
				env.OnActivity(acts.EnterGrace, mock.Anything, mock.Anything).Return(activities.GraceResult{}, fatal("tenant row locked")).Once()
			}
			env.OnActivity(acts.EnterGrace, mock.Anything, mock.Anything).
				Return(activities.GraceResult{Status: "grace", GraceExpiresAt: &expires, Unpaid: unpaid("inv-1"), Changed: true}, nil).Once()
			if failing == "ExpireGrace" {
				env.OnActivity(acts.ExpireGrace, mock.Anything, mock.Anything).Return(activities.GraceResult{}, fatal("ban length invalid")).Once()
			}
			env.OnActivity(acts.ExpireGrace, mock.Anything, mock.Anything).
				Return(activities.GraceResult{Status: "suspended", Unpaid: unpaid("inv-1"), Changed: true}, nil).Maybe()
			env.OnActivity(acts.SendSuspensionDM, mock.Anything, mock.Anything).Return(activities.PaymentDMResult{Outcome: "sent"}, nil).Maybe()
			if failing == "RestoreIfSettled" {
				env.OnActivity(acts.RestoreIfSettled, mock.Anything, mock.Anything).Return(activities.GraceResult{}, fatal("invoice list corrupt")).Once()
			}
			env.OnActivity(acts.RestoreIfSettled, mock.Anything, mock.Anything).Return(activities.GraceResult{Status: "active", Changed: true}, nil).Once()
			env.OnActivity(acts.RecordNeedsAction, mock.Anything, mock.Anything).Return(nil).Once()
			var mid string
			env.RegisterDelayedCallback(func() {
				env.SignalWorkflow(SignalInvoiceSettled, InvoiceSettled{InvoiceID: "inv-1", Status: "paid"})
			}, 2*time.Hour)
			env.RegisterDelayedCallback(func() {
				require.False(t, env.IsWorkflowCompleted())
				mid = details(t, env)
				env.SignalWorkflow(SignalRetry, nil)
			}, 2*time.Hour+time.Minute)
			if failing == "EnterGrace" {
				env.RegisterDelayedCallback(func() {
					require.Contains(t, details(t, env), "Needs action")
					env.SignalWorkflow(SignalRetry, nil)
				}, time.Minute)
			}
			env.ExecuteWorkflow(GraceWindow, GraceWindowInput{TenantID: testTenant, Window: time.Hour})
			require.True(t, env.IsWorkflowCompleted())
			require.NoError(t, env.GetWorkflowError())
			env.AssertExpectations(t)
			var res GraceWindowResult
			require.NoError(t, env.GetWorkflowResult(&res))
			require.Equal(t, "active", res.Status)
			if failing == "RestoreIfSettled" {
				require.Contains(t, mid, "Needs action")
			}
		})
	}
}

// The grace window continues as new at its wait, carrying its state and a
// signal that arrived: the next run neither re-enters grace nor loses the
// failure, and the window still expires and restores on time.
func TestGraceContinueAsNewAtEveryWait(t *testing.T) {
	start := ts("2026-03-01T00:00:00Z")
	expires := start.Add(DefaultGraceWindow)
	env, acts := graceEnv(t, start)
	env.OnActivity(acts.EnterGrace, mock.Anything, mock.Anything).
		Return(activities.GraceResult{Status: "grace", GraceExpiresAt: &expires, Unpaid: unpaid("inv-1"), Changed: true}, nil).Once()
	env.OnActivity(acts.RestoreIfSettled, mock.Anything, mock.Anything).
		Return(activities.GraceResult{Status: "grace", GraceExpiresAt: &expires, Unpaid: unpaid("inv-1", "inv-2")}, nil).Once()
	env.RegisterDelayedCallback(func() {
		env.SignalWorkflow(SignalCollectionFailed, CollectionFailed{InvoiceID: "inv-2"})
	}, time.Hour)
	env.ExecuteWorkflow(GraceWindow, GraceWindowInput{TenantID: testTenant, ContinueAfter: 1})
	next := continuedWith[GraceWindowInput](t, env)
	env.AssertExpectations(t)
	require.NotNil(t, next.Carry)
	require.Equal(t, "grace", next.Carry.State.Status)
	require.Len(t, next.Carry.State.Unpaid, 2, "the refreshed state carries over")

	// Run 2: the window expires: suspended; continues as new again.
	env, acts = graceEnv(t, start.Add(time.Hour))
	env.OnActivity(acts.EnterGrace, mock.Anything, mock.Anything).Never()
	env.OnActivity(acts.ExpireGrace, mock.Anything, mock.Anything).
		Return(activities.GraceResult{Status: "suspended", Unpaid: unpaid("inv-1", "inv-2"), Changed: true}, nil).Once()
	env.OnActivity(acts.SendSuspensionDM, mock.Anything, mock.Anything).Return(activities.PaymentDMResult{Outcome: "sent"}, nil).Once()
	env.ExecuteWorkflow(GraceWindow, next)
	next = continuedWith[GraceWindowInput](t, env)
	env.AssertExpectations(t)
	require.Equal(t, expires, env.Now().UTC())
	require.Equal(t, "suspended", next.Carry.State.Status)

	// Run 3: a settlement carried from the previous run's end restores.
	next.Carry.Settled = true
	env, acts = graceEnv(t, expires.Add(time.Hour))
	env.OnActivity(acts.EnterGrace, mock.Anything, mock.Anything).Never()
	env.OnActivity(acts.RestoreIfSettled, mock.Anything, mock.Anything).Return(activities.GraceResult{Status: "active", Changed: true}, nil).Once()
	env.ExecuteWorkflow(GraceWindow, next)
	require.True(t, env.IsWorkflowCompleted())
	require.NoError(t, env.GetWorkflowError())
	env.AssertExpectations(t)
}

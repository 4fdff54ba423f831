package workflows

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"go.temporal.io/sdk/workflow"

	"github.com/billflow/billflow/activities"
)

// The outbox delivers at start, drains full batches, wakes on a nudge and on
// its sweep timer, and continues as new when the history asks for it.
func TestEventOutboxDeliversOnNudgeAndSweep(t *testing.T) {
	env, acts := newEnv(t, ts("2026-04-01T00:00:00Z"))
	env.RegisterWorkflow(EventOutbox)
	var calls []time.Time
	env.OnActivity(acts.DeliverEvents, mock.Anything, activities.DeliverEventsInput{Limit: 100}).Return(
		func(_ context.Context, _ activities.DeliverEventsInput) (activities.DeliverEventsResult, error) {
			calls = append(calls, env.Now().UTC())
			// The first call finds a full batch, so the outbox calls again at once.
			return activities.DeliverEventsResult{Delivered: 100, More: len(calls) == 1}, nil
		})
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalEventsWritten, nil) }, time.Minute)
	env.RegisterDelayedCallback(func() { env.CancelWorkflow() }, OutboxSweep+2*time.Minute)
	env.ExecuteWorkflow(EventOutbox, EventOutboxInput{})
	require.True(t, env.IsWorkflowCompleted())
	var can *workflow.ContinueAsNewError
	require.False(t, errors.As(env.GetWorkflowError(), &can), "no continue-as-new on a short history")
	start := ts("2026-04-01T00:00:00Z")
	require.Equal(t, []time.Time{start, start, start.Add(time.Minute), start.Add(time.Minute + OutboxSweep)}, calls,
		"start, full-batch follow-up, nudge, sweep")
}

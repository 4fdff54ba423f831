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
	"go.temporal.io/sdk/workflow"

	"github.com/billflow/billflow/activities"
)

// The stream activity is retried across node outages without new history;
// when it does return, the workflow pauses and starts clean as a new run.
func TestLightningSettlementsContinuesAsNew(t *testing.T) {
	env, acts := newEnv(t, ts("2026-03-01T00:00:00Z"))
	env.RegisterWorkflow(LightningSettlements)
	calls := 0
	env.OnActivity(acts.WatchSettlements, mock.Anything, activities.WatchSettlementsInput{Cursor: "lnd"}).Return(
		func(_ context.Context, _ activities.WatchSettlementsInput) (activities.WatchSettlementsResult, error) {
			calls++
			if calls < 3 {
				return activities.WatchSettlementsResult{}, errors.New("node unreachable")
			}
			return activities.WatchSettlementsResult{SettleIndex: 7}, nil
		})
	start := env.Now()
	env.ExecuteWorkflow(LightningSettlements, LightningSettlementsInput{Cursor: "lnd"})
	require.True(t, env.IsWorkflowCompleted())
	var can *workflow.ContinueAsNewError
	require.ErrorAs(t, env.GetWorkflowError(), &can)
	var next LightningSettlementsInput
	require.NoError(t, converter.GetDefaultDataConverter().FromPayloads(can.Input, &next))
	require.Equal(t, "lnd", next.Cursor)
	require.Equal(t, 3, calls, "two failures retried by Temporal, then the third attempt returned")
	require.GreaterOrEqual(t, env.Now().Sub(start), 10*time.Second)
}

// A stream with no node configured does not fail: it says so in its
// details, waits for a retry signal (or an hour) and resubscribes.
func TestLightningSettlementsMisconfiguredWaitsForRetry(t *testing.T) {
	env, acts := newEnv(t, ts("2026-03-01T00:00:00Z"))
	env.RegisterWorkflow(LightningSettlements)
	env.OnActivity(acts.WatchSettlements, mock.Anything, mock.Anything).Return(activities.WatchSettlementsResult{},
		temporal.NewNonRetryableApplicationError("no Lightning node configured", activities.ErrValidation, nil)).Once()
	var mid string
	env.RegisterDelayedCallback(func() {
		require.False(t, env.IsWorkflowCompleted())
		mid = details(t, env)
		env.SignalWorkflow(SignalRetry, nil)
	}, 10*time.Minute)
	env.ExecuteWorkflow(LightningSettlements, LightningSettlementsInput{Cursor: "lnd"})
	next := continuedWith[LightningSettlementsInput](t, env)
	require.Equal(t, "lnd", next.Cursor)
	require.Contains(t, mid, "no Lightning node configured")
	env.AssertExpectations(t)
}

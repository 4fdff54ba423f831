package workflows

import (
	"errors"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/billflow/billflow/activities"
)

// SettlementsWorkflowID is the ID of the singleton following the engine's
// Lightning node for a task queue (one node and database per deployment).
func SettlementsWorkflowID(taskQueue string) string { return "lightning-settlements/" + taskQueue }

// LightningSettlementsInput names the cursor the stream resumes from.
type LightningSettlementsInput struct {
	Cursor string `json:"cursor"`
}

// LightningSettlements keeps one long-running, heartbeating activity
// subscribed to the engine's Lightning node. The activity resumes from the
// settle index stored in Postgres and signals invoice/<id> for each settled
// invoice billflow issued. A lost worker is noticed within the heartbeat
// timeout and the subscription resumes on another; a node outage is retried
// with back-off for as long as it lasts. ID: lightning-settlements/<queue>.
func LightningSettlements(ctx workflow.Context, in LightningSettlementsInput) error {
	watch := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		// The subscription is re-opened every hour: a fresh attempt, not a
		// new history event.
		StartToCloseTimeout: time.Hour,
		HeartbeatTimeout:    30 * time.Second,
		Summary:             "follow settled Lightning invoices",
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second,
			NonRetryableErrorTypes: []string{activities.ErrValidation},
		},
	})
	neverFails := patched(ctx, changeSettlementsNeverFail)
	var res activities.WatchSettlementsResult
	err := workflow.ExecuteActivity(watch, a.WatchSettlements, activities.WatchSettlementsInput{Cursor: in.Cursor}).Get(ctx, &res)
	if err != nil && neverFails && errorType(err) == activities.ErrValidation {
		// Misconfiguration: say so where operators look, then wait for a
		// retry signal (after fixing the node's configuration) or an hour.
		workflow.GetLogger(ctx).Error("Lightning settlement stream needs action", "error", err)
		workflow.SetCurrentDetails(ctx, needsActionRow(&NeedsAction{Step: "follow settled Lightning invoices",
			Reason: activities.Summarize(errorMessage(err)), At: workflow.Now(ctx)}))
		retry := workflow.GetSignalChannelWithOptions(ctx, SignalRetry, workflow.SignalChannelOptions{
			Description: "Resubscribe now (after the node's configuration was fixed)."})
		if _, err := workflow.AwaitWithOptions(ctx, workflow.AwaitOptions{Timeout: time.Hour,
			TimerOptions: workflow.TimerOptions{Summary: "retry following the node"}}, func() bool { return retry.Len() > 0 }); err != nil {
			return err
		}
		drain(retry, &struct{}{})
		return workflow.NewContinueAsNewError(ctx, LightningSettlements, in)
	}
	if err != nil {
		var appErr *temporal.ApplicationError
		if errors.As(err, &appErr) && appErr.Type() == activities.ErrValidation {
			// Misconfiguration: end rather than spin; the worker restarts it
			// once a node is configured.
			return err
		}
	}
	// The activity only returns after its unlimited retries end in a
	// non-retryable error, or when the worker is stopped: start clean.
	if err := workflow.NewTimerWithOptions(ctx, 10*time.Second, workflow.TimerOptions{Summary: "pause before resubscribing"}).Get(ctx, nil); err != nil {
		return err
	}
	return workflow.NewContinueAsNewError(ctx, LightningSettlements, in)
}

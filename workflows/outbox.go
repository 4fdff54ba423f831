package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/billflow/billflow/activities"
)

// OutboxWorkflowID is the ID of the EventOutbox serving a task queue: one
// per deployment (task queue and database) in a namespace.
func OutboxWorkflowID(taskQueue string) string { return "outbox/" + taskQueue }

// SignalEventsWritten nudges the outbox after a transaction wrote events.
const SignalEventsWritten = "events-written"

// OutboxSweep is how often the outbox looks for events without a nudge, so a
// lost nudge delays an event by minutes, never forever.
const OutboxSweep = 5 * time.Minute

// EventOutboxInput is empty; the outbox is configured by the worker.
type EventOutboxInput struct{}

// EventOutbox delivers outbound events in the order they were written: on a
// nudge, or every OutboxSweep. Delivery failures are retried by Temporal
// with back-off and never hold up billing. It continues as new when its
// history grows. ID: outbox/<task-queue>.
func EventOutbox(ctx workflow.Context, _ EventOutboxInput) error {
	nudges := workflow.GetSignalChannelWithOptions(ctx, SignalEventsWritten, workflow.SignalChannelOptions{
		Description: "Events were written: deliver them now rather than at the next sweep.",
	})
	deliver := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Minute,
		HeartbeatTimeout:    time.Minute,
		Summary:             "deliver pending events",
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: 2 * time.Second, BackoffCoefficient: 2, MaximumInterval: 10 * time.Minute,
		},
	})
	neverFails := patched(ctx, changeOutboxNeverFails)
	for {
		for {
			var res activities.DeliverEventsResult
			if err := workflow.ExecuteActivity(deliver, a.DeliverEvents, activities.DeliverEventsInput{Limit: 100}).Get(ctx, &res); err != nil {
				if !neverFails || ctx.Err() != nil {
					return err
				}
				// Delivery retries for ever; only a failure that says it is
				// final ends here. The events stay in the table: the next
				// sweep (or nudge) delivers them.
				workflow.GetLogger(ctx).Error("event delivery failed; retrying at the next sweep", "error", err)
				workflow.SetCurrentDetails(ctx, "**Needs action:** event delivery failed: "+activities.Summarize(errorMessage(err))+
					". Undelivered events stay in the events table; the next sweep retries.")
				break
			}
			if !res.More {
				break
			}
		}
		if workflow.GetInfo(ctx).GetContinueAsNewSuggested() {
			drain(nudges, &struct{}{})
			return workflow.NewContinueAsNewError(ctx, EventOutbox, EventOutboxInput{})
		}
		sel := workflow.NewSelector(ctx)
		timerCtx, cancel := workflow.WithCancel(ctx)
		sel.AddFuture(workflow.NewTimerWithOptions(timerCtx, OutboxSweep, workflow.TimerOptions{Summary: "next sweep for undelivered events"}), func(workflow.Future) {})
		sel.AddReceive(nudges, func(c workflow.ReceiveChannel, _ bool) { drain(c, &struct{}{}) })
		sel.Select(ctx)
		cancel()
	}
}

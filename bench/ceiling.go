package bench

import (
	"context"
	"fmt"
	"sync"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"
)

// CeilingWorkflow is the least a design pays per tenant-period: a timer to
// the boundary, then one activity.
func CeilingWorkflow(ctx workflow.Context, fireAt time.Time) error {
	if d := fireAt.Sub(workflow.Now(ctx)); d > 0 {
		if err := workflow.Sleep(ctx, d); err != nil {
			return err
		}
	}
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 5},
	})
	return workflow.ExecuteActivity(ctx, (*CeilingActivities).Noop).Get(ctx, nil)
}

// CeilingActivities holds the ceiling scenario's activity.
type CeilingActivities struct{}

// Noop does nothing: the round trip is what is measured.
func (*CeilingActivities) Noop(ctx context.Context) error {
	activity.GetInfo(ctx) // a real activity reads its context; this keeps the shape honest
	return nil
}

// CeilingOptions sets up the ceiling scenario.
type CeilingOptions struct {
	Workflows int
	// Lead is how long after the start the timers fire; zero picks one long
	// enough to start every workflow first.
	Lead    time.Duration
	Timeout time.Duration
}

// Ceiling runs o.Workflows minimal workflows on the bench's own worker and
// task queue, all firing at one instant, and measures fire -> completed.
func Ceiling(ctx context.Context, s *Stack, o CeilingOptions) (Result, error) {
	r := Result{Scenario: "ceiling", Tenants: o.Workflows, Params: map[string]string{}, Latencies: map[string]Summary{}, Counts: map[string]float64{}}
	if o.Lead == 0 {
		o.Lead = 10*time.Second + time.Duration(o.Workflows)*100*time.Millisecond
	}
	if o.Timeout == 0 {
		o.Timeout = 5*time.Minute + time.Duration(o.Workflows)*time.Second
	}
	// Default worker options, as billflow's worker uses.
	w := worker.New(s.Temporal, s.TaskQueue, worker.Options{})
	w.RegisterWorkflow(CeilingWorkflow)
	w.RegisterActivity(&CeilingActivities{})
	if err := w.Start(); err != nil {
		return r, err
	}
	defer w.Stop()

	fireAt := time.Now().Add(o.Lead).UTC()
	r.Params["lead"] = o.Lead.String()
	ids := make([]string, o.Workflows)
	errs := make([]error, o.Workflows)
	var wg sync.WaitGroup
	work := make(chan int)
	for g := 0; g < setupConcurrency; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				ids[i] = fmt.Sprintf("ceiling/%s/%d", s.TaskQueue, i)
				_, errs[i] = s.Temporal.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: ids[i], TaskQueue: s.TaskQueue}, CeilingWorkflow, fireAt)
			}
		}()
	}
	for i := 0; i < o.Workflows; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return r, fmt.Errorf("start ceiling workflow: %w", err)
		}
	}
	if time.Now().After(fireAt) {
		return r, fmt.Errorf("starting %d workflows took longer than the lead %s: give a longer -period", o.Workflows, o.Lead)
	}
	var done []time.Duration
	var last time.Time
	deadline := fireAt.Add(o.Timeout)
	for _, id := range ids {
		wctx, cancel := context.WithDeadline(ctx, deadline)
		err := s.Temporal.GetWorkflow(wctx, id, "").Get(wctx, nil)
		cancel()
		if err != nil {
			r.Failures = append(r.Failures, fmt.Sprintf("%s: %v", id, err))
			continue
		}
		d, err := s.Temporal.DescribeWorkflowExecution(ctx, id, "")
		if err != nil {
			r.Failures = append(r.Failures, fmt.Sprintf("%s: %v", id, err))
			continue
		}
		info := d.GetWorkflowExecutionInfo()
		if info.GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_COMPLETED {
			r.Failures = append(r.Failures, fmt.Sprintf("%s: %s", id, info.GetStatus()))
			continue
		}
		closed := info.GetCloseTime().AsTime()
		done = append(done, closed.Sub(fireAt))
		if closed.After(last) {
			last = closed
		}
	}
	r.Latencies["workflow_done"] = Summarize(done)
	if len(done) > 0 && last.After(fireAt) {
		r.ThroughputPerSecond = round2(float64(len(done)) / last.Sub(fireAt).Seconds())
	}
	r.Notes = append(r.Notes, "minimal workflows (timer, one no-op activity) on the bench's own worker with default options; the server is the one the storm uses")
	return r, nil
}

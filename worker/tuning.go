package main

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"go.temporal.io/sdk/worker"
)

// stickyTimeout is how long a workflow task may wait on this worker's
// sticky queue before the server moves it to the shared queue (the SDK's
// default is 5 s). In a storm a tenant's task waits longer than that behind
// the others: each move cost two events, a workflow task sent again with
// the whole history, and the cached workflow evicted and replayed. The
// price is paid when a worker dies: tasks already queued for it wait out
// this timeout before another worker gets them (new ones go to the shared
// queue once the server sees nobody polling its sticky queue, about 10 s);
// a worker that stops cleanly hands its workflows back at once.
const stickyTimeout = 60 * time.Second

// workerOptions are the Temporal worker's options. BILLFLOW_WORKER_POLLERS
// picks how task queues are polled, for measuring with the bench
// (scripts/bench.sh passes the environment to the worker): unset keeps the
// SDK's defaults (two workflow and two activity pollers), "autoscale" lets
// the SDK scale pollers with the backlog, a number N runs N of each. The
// default stays the SDK's: on the 2-core dev stack, storm N=100 paid p50
// 7.7 s and 8.4 invoices/s with it, 24-29 s and 2.1-2.3/s with autoscale.
func workerOptions() (worker.Options, error) {
	o := worker.Options{StickyScheduleToStartTimeout: stickyTimeout}
	if v := os.Getenv("BILLFLOW_WORKER_STICKY_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Second || d > 10*time.Minute {
			return o, fmt.Errorf("BILLFLOW_WORKER_STICKY_TIMEOUT=%q: want a duration from 1s to 10m", v)
		}
		o.StickyScheduleToStartTimeout = d
	}
	switch v := os.Getenv("BILLFLOW_WORKER_POLLERS"); v {
	case "":
	case "autoscale":
		o.WorkflowTaskPollerBehavior = worker.NewPollerBehaviorAutoscaling(worker.PollerBehaviorAutoscalingOptions{})
		o.ActivityTaskPollerBehavior = worker.NewPollerBehaviorAutoscaling(worker.PollerBehaviorAutoscalingOptions{})
	default:
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 64 {
			return o, fmt.Errorf("BILLFLOW_WORKER_POLLERS=%q: want autoscale or a number of pollers from 1 to 64", v)
		}
		o.MaxConcurrentWorkflowTaskPollers, o.MaxConcurrentActivityTaskPollers = n, n
	}
	return o, nil
}

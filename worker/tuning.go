package main

import (
	"fmt"
	"os"
	"strconv"

	"go.temporal.io/sdk/worker"
)

// workerOptions are the Temporal worker's options. BILLFLOW_WORKER_POLLERS
// picks how task queues are polled, for measuring with the bench
// (scripts/bench.sh passes the environment to the worker): unset keeps the
// SDK's defaults (two workflow and two activity pollers), "autoscale" lets
// the SDK scale pollers with the backlog, a number N runs N of each. The
// default stays the SDK's: on the 2-core dev stack, storm N=100 paid p50
// 7.7 s and 8.4 invoices/s with it, 24-29 s and 2.1-2.3/s with autoscale.
func workerOptions() (worker.Options, error) {
	var o worker.Options
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

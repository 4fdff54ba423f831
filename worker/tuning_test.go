package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The worker's options: the sticky timeout is raised from the SDK's 5 s by
// default and can be set for measuring; pollers stay the SDK's unless asked.
func TestWorkerOptions(t *testing.T) {
	t.Setenv("BILLFLOW_WORKER_STICKY_TIMEOUT", "")
	t.Setenv("BILLFLOW_WORKER_POLLERS", "")
	o, err := workerOptions()
	require.NoError(t, err)
	require.Equal(t, stickyTimeout, o.StickyScheduleToStartTimeout)
	require.Zero(t, o.MaxConcurrentWorkflowTaskPollers, "the SDK's default pollers")

	t.Setenv("BILLFLOW_WORKER_STICKY_TIMEOUT", "5s")
	t.Setenv("BILLFLOW_WORKER_POLLERS", "8")
	o, err = workerOptions()
	require.NoError(t, err)
	require.Equal(t, 5*time.Second, o.StickyScheduleToStartTimeout)
	require.Equal(t, 8, o.MaxConcurrentWorkflowTaskPollers)
	require.Equal(t, 8, o.MaxConcurrentActivityTaskPollers)

	for _, bad := range []string{"soon", "500ms", "11m"} {
		t.Setenv("BILLFLOW_WORKER_STICKY_TIMEOUT", bad)
		_, err = workerOptions()
		require.ErrorContains(t, err, "BILLFLOW_WORKER_STICKY_TIMEOUT")
	}
	t.Setenv("BILLFLOW_WORKER_STICKY_TIMEOUT", "")
	t.Setenv("BILLFLOW_WORKER_POLLERS", "65")
	_, err = workerOptions()
	require.ErrorContains(t, err, "BILLFLOW_WORKER_POLLERS")
}

//go:build integration

package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.temporal.io/api/workflowservice/v1"
	"go.temporal.io/sdk/client"

	"github.com/billflow/billflow/internal/testkit"
	"github.com/billflow/billflow/metrics"
)

type health struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
	Failed []string          `json:"failed"`
}

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

func healthz(t *testing.T, h http.Handler) (int, health) {
	t.Helper()
	code, body := get(t, h, "/healthz")
	var out health
	require.NoError(t, json.Unmarshal([]byte(body), &out), body)
	return code, out
}

// TestOpsEndpointsReportRealReadiness: /healthz is 200 only when Postgres
// and Temporal both answer, and 503 naming the one that does not; /metrics
// carries the SDK's metrics and billflow's.
func TestOpsEndpointsReportRealReadiness(t *testing.T) {
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	st := testkit.NewStore(t)
	reg := metrics.New()
	handler, err := reg.Temporal()
	require.NoError(t, err)
	require.NoError(t, reg.Register(&metrics.Collector{Pool: st.Pool(), Logger: logger}))
	ns := os.Getenv("TEMPORAL_NAMESPACE")
	if ns == "" {
		ns = "default"
	}
	tc, err := client.Dial(client.Options{HostPort: os.Getenv("TEMPORAL_ADDRESS"), Namespace: ns, MetricsHandler: handler})
	require.NoError(t, err)
	t.Cleanup(tc.Close)

	h := opsHandler(logger, reg, st.Pool(), tc)
	code, body := healthz(t, h)
	assert.Equal(t, http.StatusOK, code)
	assert.Equal(t, health{Status: "ok", Checks: map[string]string{"postgres": "ok", "temporal": "ok"}}, body)

	// A client call the SDK measures, then both families on one page.
	_, err = tc.CountWorkflow(ctx, &workflowservice.CountWorkflowExecutionsRequest{Namespace: ns})
	require.NoError(t, err)
	code, page := get(t, h, "/metrics")
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, page, "temporal_request")
	assert.Contains(t, page, "billflow_billing_metrics_up 1")
	assert.Contains(t, page, "billflow_outbox_backlog 0")

	// Temporal unreachable.
	dead, err := client.NewLazyClient(client.Options{HostPort: "127.0.0.1:1", Namespace: ns})
	require.NoError(t, err)
	t.Cleanup(dead.Close)
	code, body = healthz(t, opsHandler(logger, reg, st.Pool(), dead))
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Equal(t, []string{"temporal"}, body.Failed)
	assert.Equal(t, "ok", body.Checks["postgres"])

	// Postgres unreachable.
	other := testkit.NewStore(t)
	other.Pool().Close()
	code, body = healthz(t, opsHandler(logger, reg, other.Pool(), tc))
	assert.Equal(t, http.StatusServiceUnavailable, code)
	assert.Equal(t, []string{"postgres"}, body.Failed)
	assert.Equal(t, "unavailable", body.Status)
	assert.False(t, strings.Contains(body.Status, "ok"))
}

package metrics

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	"go.temporal.io/sdk/client"
)

// Check is one dependency readiness depends on.
type Check struct {
	// Name says which dependency failed ("postgres", "temporal").
	Name string
	// Func returns nil when the dependency answers.
	Func func(ctx context.Context) error
}

// healthBody is /healthz's answer.
type healthBody struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
	// Failed names the checks that failed, in order.
	Failed []string `json:"failed,omitempty"`
}

// Health serves readiness: 200 when every check passes, 503 naming the ones
// that failed (their error is logged by the caller's checks, not shown:
// errors may name hosts). Each check is bounded by timeout.
func Health(timeout time.Duration, checks ...Check) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := healthBody{Status: "ok", Checks: map[string]string{}}
		for _, c := range checks {
			ctx, cancel := context.WithTimeout(r.Context(), timeout)
			err := c.Func(ctx)
			cancel()
			if err != nil {
				body.Checks[c.Name] = "unavailable"
				body.Failed = append(body.Failed, c.Name)
				continue
			}
			body.Checks[c.Name] = "ok"
		}
		status := http.StatusOK
		if len(body.Failed) > 0 {
			status, body.Status = http.StatusServiceUnavailable, "unavailable"
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(body)
	})
}

// Pinger is what the postgres check needs (a *pgxpool.Pool).
type Pinger interface {
	Ping(ctx context.Context) error
}

// HealthChecker is what the temporal check needs (a client.Client).
type HealthChecker interface {
	CheckHealth(ctx context.Context, request *client.CheckHealthRequest) (*client.CheckHealthResponse, error)
}

// Readiness is the checks of a program that needs Postgres and Temporal;
// a failure is logged with its error.
func Readiness(logger *slog.Logger, db Pinger, tc HealthChecker) []Check {
	logged := func(name string, f func(ctx context.Context) error) Check {
		return Check{Name: name, Func: func(ctx context.Context) error {
			err := f(ctx)
			if err != nil && logger != nil {
				logger.Warn("readiness check failed", "check", name, "error", err)
			}
			return err
		}}
	}
	return []Check{
		logged("postgres", db.Ping),
		logged("temporal", func(ctx context.Context) error {
			_, err := tc.CheckHealth(ctx, &client.CheckHealthRequest{})
			return err
		}),
	}
}

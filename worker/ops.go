package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/billflow/billflow/metrics"
)

// opsHandler serves the worker's operations endpoints: /metrics (the
// Temporal SDK's metrics and billflow's billing metrics) and /healthz
// (readiness: Postgres and Temporal reachable, 503 naming the one that is not).
func opsHandler(logger *slog.Logger, reg *metrics.Registry, db metrics.Pinger, tc metrics.HealthChecker) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", reg.Handler(logger))
	mux.Handle("GET /healthz", metrics.Health(5*time.Second, metrics.Readiness(logger, db, tc)...))
	return mux
}

// serveOps listens on addr (BILLFLOW_WORKER_HTTP_ADDR) and serves h until
// the returned stop is called. Listening happens before it returns, so a
// taken port stops the worker at start.
func serveOps(logger *slog.Logger, addr string, h http.Handler) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("BILLFLOW_WORKER_HTTP_ADDR=%s: %w", addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("metrics and health listener stopped", "addr", addr, "error", err)
		}
	}()
	logger.Info("metrics and health", "addr", ln.Addr().String())
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}

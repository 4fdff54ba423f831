// Package metrics exposes billflow's operations for Prometheus: the Temporal
// SDK's own metrics (workflow and activity task latencies, failures, poller
// counts), exported through OpenTelemetry, and billflow's billing metrics,
// read from Postgres at scrape time.
//
// Reading the billing metrics from the system of record, rather than
// counting in activities, keeps them right across worker replicas, restarts
// and retried activities: every replica reports the same numbers, and a
// counter never double-counts an activity that ran twice.
package metrics

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.temporal.io/sdk/client"
	temporalotel "go.temporal.io/sdk/contrib/opentelemetry"
)

// Registry holds every metric a program exposes on /metrics.
type Registry struct {
	reg      *prometheus.Registry
	provider *sdkmetric.MeterProvider
}

// New returns a registry with the Go runtime and process collectors.
func New() *Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &Registry{reg: reg}
}

// Register adds a collector (e.g. the billing Collector).
func (r *Registry) Register(c prometheus.Collector) error { return r.reg.Register(c) }

// Temporal returns a metrics handler for client.Options.MetricsHandler: the
// SDK's metrics (temporal_* names) go to this registry through OpenTelemetry.
func (r *Registry) Temporal() (client.MetricsHandler, error) {
	if r.provider == nil {
		exp, err := otelprom.New(otelprom.WithRegisterer(r.reg), otelprom.WithoutScopeInfo())
		if err != nil {
			return nil, fmt.Errorf("metrics: prometheus exporter: %w", err)
		}
		r.provider = sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	}
	return temporalotel.NewMetricsHandler(temporalotel.MetricsHandlerOptions{
		Meter: r.provider.Meter("go.temporal.io/sdk"),
		// Counters as monotonic sums, so Prometheus sees *_total counters.
		UseMonotonicCounters: true,
		// A failed SDK metric must not disturb the worker; the log says so.
		OnError: func(err error) { slog.Default().Warn("temporal metric", "error", err) },
	}), nil
}

// Handler serves the registry in Prometheus' exposition format. A collector
// that fails (Postgres down) is reported in the log and leaves its metrics
// out; the rest are still served.
func (r *Registry) Handler(logger *slog.Logger) http.Handler {
	return promhttp.HandlerFor(r.reg, promhttp.HandlerOpts{
		ErrorLog:      slogErrorLog{logger},
		ErrorHandling: promhttp.ContinueOnError,
	})
}

// Shutdown flushes and stops the OpenTelemetry pipeline.
func (r *Registry) Shutdown(ctx context.Context) error {
	if r.provider == nil {
		return nil
	}
	return r.provider.Shutdown(ctx)
}

type slogErrorLog struct{ l *slog.Logger }

func (s slogErrorLog) Println(v ...any) {
	if s.l != nil {
		s.l.Warn("metrics", "error", fmt.Sprint(v...))
	}
}

// Command api serves billflow's HTTP ingress (package api): the Stripe
// webhook endpoint, the application endpoints, /healthz and /metrics. Its
// configuration is config.API: DATABASE_URL, TEMPORAL_* (through the SDK's
// envconfig), BILLFLOW_TASK_QUEUE, BILLFLOW_API_ADDR (default
// 127.0.0.1:8090), BILLFLOW_API_TOKEN (required) and
// BILLFLOW_STRIPE_WEBHOOK_SECRET (required when BILLFLOW_STRIPE_API_KEY says
// the card rail is on; without it every webhook is refused). With
// BILLFLOW_PUBLIC_URL and BILLFLOW_SECRET_KEY it serves the hosted invoice
// and account pages (package paypage), charging saved cards through
// BILLFLOW_STRIPE_API_KEY / BILLFLOW_STRIPE_API_URL when set.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"
	"go.temporal.io/sdk/converter"
	tlog "go.temporal.io/sdk/log"

	"github.com/billflow/billflow/api"
	"github.com/billflow/billflow/billing"
	"github.com/billflow/billflow/config"
	"github.com/billflow/billflow/metrics"
	"github.com/billflow/billflow/payloadcodec"
	"github.com/billflow/billflow/paypage"
	"github.com/billflow/billflow/store"
)

func main() {
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, logger); err != nil {
		logger.Error("api stopped", "error", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, logger *slog.Logger) error {
	cfg, err := config.LoadAPI(os.Environ())
	if err != nil {
		return err
	}
	logger.Info("configuration", "config", cfg)
	st, err := store.Open(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	defer st.Close()
	opts, err := envconfig.LoadDefaultClientOptions()
	if err != nil {
		return fmt.Errorf("temporal client configuration: %w", err)
	}
	opts.Logger = tlog.NewStructuredLogger(logger)
	// The codec the api's clients encrypt with is the one it serves to the
	// Web UI at /codecs/ (nil with BILLFLOW_PAYLOAD_KEYS=plaintext: no endpoint).
	codec, err := payloadcodec.Configure(&opts, os.Environ())
	if err != nil {
		return err
	}
	reg := metrics.New()
	if opts.MetricsHandler, err = reg.Temporal(); err != nil {
		return err
	}
	defer func() { _ = reg.Shutdown(context.Background()) }()
	if err := reg.Register(&metrics.Collector{Pool: st.Pool(), Logger: logger}); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	tc, err := client.DialContext(ctx, opts)
	if err != nil {
		return fmt.Errorf("connect to temporal at %q: %w", opts.HostPort, err)
	}
	defer tc.Close()
	bc := billing.New(tc, cfg.TaskQueue)
	var payloadCodec converter.PayloadCodec
	if codec != nil {
		payloadCodec = codec
	}
	pages, err := paypage.FromConfig(cfg, st, bc, logger)
	if err != nil {
		return err
	}
	// The same free-tier pool configuration as the worker's (tiers, budgets).
	poolCfg, err := api.LoadPoolConfig(os.Getenv("BILLFLOW_POOL"))
	if err != nil {
		return err
	}
	srv := &http.Server{
		Addr: cfg.Addr,
		Handler: (&api.Server{
			PayloadCodec: payloadCodec,
			Billing:      bc, Store: st, Token: cfg.Token,
			StripeWebhookSecret: cfg.StripeWebhookSecret, Logger: logger,
			Checks: metrics.Readiness(logger, st.Pool(), tc), Metrics: reg.Handler(logger), Pages: pages,
			CodecToken: cfg.CodecToken, CodecOrigins: cfg.CodecOrigins,
			Pool: &poolCfg,
		}).Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	logger.Info("api listening", "addr", cfg.Addr)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return srv.Shutdown(shutdown)
}

// Command api serves billflow's HTTP ingress (package api): the Stripe
// webhook endpoint and the application endpoints. It reads DATABASE_URL,
// TEMPORAL_* (through the SDK's envconfig), BILLFLOW_TASK_QUEUE,
// BILLFLOW_API_ADDR (default 127.0.0.1:8090), BILLFLOW_API_TOKEN (required)
// and BILLFLOW_STRIPE_WEBHOOK_SECRET (without it every webhook is refused).
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"
	tlog "go.temporal.io/sdk/log"

	"github.com/billflow/billflow/api"
	"github.com/billflow/billflow/billing"
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
	token := os.Getenv("BILLFLOW_API_TOKEN")
	if token == "" {
		return errors.New("BILLFLOW_API_TOKEN is not set: application requests must be authenticated")
	}
	addr := os.Getenv("BILLFLOW_API_ADDR")
	if addr == "" {
		addr = "127.0.0.1:8090"
	}
	dbURL := os.Getenv("DATABASE_URL")
	if dbURL == "" {
		return errors.New("DATABASE_URL is not set")
	}
	st, err := store.Open(ctx, dbURL)
	if err != nil {
		return err
	}
	defer st.Close()
	opts, err := envconfig.LoadDefaultClientOptions()
	if err != nil {
		return fmt.Errorf("temporal client configuration: %w", err)
	}
	opts.Logger = tlog.NewStructuredLogger(logger)
	tc, err := client.DialContext(ctx, opts)
	if err != nil {
		return fmt.Errorf("connect to temporal at %q: %w", opts.HostPort, err)
	}
	defer tc.Close()
	srv := &http.Server{
		Addr: addr,
		Handler: (&api.Server{
			Billing: billing.New(tc, os.Getenv("BILLFLOW_TASK_QUEUE")), Store: st, Token: token,
			StripeWebhookSecret: os.Getenv("BILLFLOW_STRIPE_WEBHOOK_SECRET"), Logger: logger,
		}).Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	logger.Info("api listening", "addr", addr)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	return srv.Shutdown(shutdown)
}

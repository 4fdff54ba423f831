// Command worker runs billflow's Temporal worker: it reads and validates its
// configuration (config.Worker) and logs it with secrets redacted, applies
// database migrations, loads the plan catalog, registers the workflows and
// activities, serves /metrics and /healthz when BILLFLOW_WORKER_HTTP_ADDR is
// set, and runs until SIGINT or SIGTERM.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/billing"
	"github.com/billflow/billflow/config"
	"github.com/billflow/billflow/metrics"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/outbound"
	"github.com/billflow/billflow/payloadcodec"
	"github.com/billflow/billflow/workflows"
)

func main() {
	logger := slog.New(inputRejectionsAsWarnings{slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, logger); err != nil {
		logger.Error("worker stopped", "error", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, logger *slog.Logger) error {
	cfg, err := config.LoadWorker(os.Environ())
	if err != nil {
		return err
	}
	logger.Info("configuration", "config", cfg)
	plans, err := loadPlans(cfg.Plans)
	if err != nil {
		return err
	}
	st, err := openStore(ctx, logger, cfg.DatabaseURL, startupWait)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		return err
	}
	if err := st.UpsertPlans(ctx, plans); err != nil {
		return fmt.Errorf("load plan catalog %s: %w", cfg.Plans, err)
	}

	// Address, namespace, TLS and API key come from TEMPORAL_* variables or
	// the Temporal config file, the same way the temporal CLI reads them.
	opts, err := envconfig.LoadDefaultClientOptions()
	if err != nil {
		return fmt.Errorf("temporal client configuration: %w", err)
	}
	opts.Logger = tlog.NewStructuredLogger(logger)
	if _, err := payloadcodec.Configure(&opts, os.Environ()); err != nil {
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
	tc, err := dialTemporal(ctx, logger, opts, startupWait)
	if err != nil {
		return fmt.Errorf("connect to temporal at %q: %w", opts.HostPort, err)
	}
	defer tc.Close()

	wopts, err := workerOptions()
	if err != nil {
		return err
	}
	w := worker.New(tc, cfg.TaskQueue, wopts)
	w.RegisterWorkflow(workflows.TenantBilling)
	w.RegisterWorkflow(workflows.InvoicePayment)
	w.RegisterWorkflow(workflows.GraceWindow)
	w.RegisterWorkflow(workflows.EventOutbox)
	w.RegisterWorkflow(workflows.LightningSettlements)
	w.RegisterWorkflow(workflows.BalanceSync)
	w.RegisterWorkflow(workflows.WithdrawalPayout)
	w.RegisterWorkflow(workflows.UsageSession)
	w.RegisterWorkflow(workflows.PoolOperation)
	rails, closeRails, err := buildRails(logger, st, cfg.Rails)
	defer closeRails()
	if err != nil {
		return err
	}
	policy := buildPolicy(cfg.Policy)
	usage, err := buildUsage(cfg.Services, cfg.Rails.RobotKey)
	if err != nil {
		return err
	}
	if usage.Pool, err = loadPool(ctx, st, cfg.Pool); err != nil {
		return err
	}
	outboxID := workflows.OutboxWorkflowID(cfg.TaskQueue)
	nudge := newNudger(func(ctx context.Context) error {
		return tc.SignalWorkflow(ctx, outboxID, "", workflows.SignalEventsWritten, nil)
	}, 10*time.Second, logger)
	acts := &activities.Activities{
		Store:  st,
		Nudge:  nudge.Nudge,
		Rails:  rails,
		Notify: usageNotifier{Client: billing.New(tc, cfg.TaskQueue), tc: tc},
		Policy: policy,
		Usage:  usage,
	}
	if cfg.WebhookURL != "" {
		acts.Webhook = &outbound.Sender{URL: cfg.WebhookURL, Secret: []byte(cfg.WebhookSecret)}
	}
	w.RegisterActivity(acts)

	// The outbox is one workflow per task queue; every worker makes sure it
	// runs, and all but the first find it running.
	if _, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: workflows.OutboxWorkflowID(cfg.TaskQueue), TaskQueue: cfg.TaskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		StaticSummary:            "Delivers outbound events to the application's webhook",
	}, workflows.EventOutbox, workflows.EventOutboxInput{}); err != nil {
		return fmt.Errorf("start the event outbox: %w", err)
	}
	if rails.Node != nil {
		// One settlement stream per deployment; every worker makes sure it runs.
		if _, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
			ID: workflows.SettlementsWorkflowID(cfg.TaskQueue), TaskQueue: cfg.TaskQueue,
			WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
			StaticSummary:            "Follows the engine's Lightning node and reports settled invoices",
		}, workflows.LightningSettlements, workflows.LightningSettlementsInput{Cursor: "lnd"}); err != nil {
			return fmt.Errorf("start the lightning settlement stream: %w", err)
		}
	}

	if cfg.HTTPAddr != "" {
		stopHTTP, err := serveOps(logger, cfg.HTTPAddr, opsHandler(logger, reg, st.Pool(), tc))
		if err != nil {
			return err
		}
		defer stopHTTP()
	}

	logger.Info("worker started", "task_queue", cfg.TaskQueue, "namespace", opts.Namespace, "plans", len(plans),
		"webhook", cfg.WebhookURL != "", "dunning", policy.Dunning, "grace_window", policy.GraceWindow, "http", cfg.HTTPAddr)
	interrupt := make(chan any, 1)
	go func() {
		<-ctx.Done()
		interrupt <- struct{}{}
	}()
	return w.Run(interrupt)
}

// catalogFile is the plan catalog's file format.
type catalogFile struct {
	Plans []models.Plan `json:"plans"`
}

func loadPlans(path string) ([]models.Plan, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read plan catalog (BILLFLOW_PLANS): %w", err)
	}
	var f catalogFile
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("parse plan catalog %s: %w", path, err)
	}
	if _, err := models.NewCatalog(f.Plans); err != nil {
		return nil, fmt.Errorf("plan catalog %s: %w", path, err)
	}
	return f.Plans, nil
}

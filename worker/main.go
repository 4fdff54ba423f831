// Command worker runs billflow's Temporal worker: it reads its configuration
// from the environment, applies database migrations, loads the plan catalog,
// registers the workflows and activities and runs until SIGINT or SIGTERM.
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

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"
	tlog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/billing"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/outbound"
	"github.com/billflow/billflow/store"
	"github.com/billflow/billflow/workflows"
)

func main() {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, logger); err != nil {
		logger.Error("worker stopped", "error", err)
		os.Exit(1)
	}
}

// config is everything the worker reads from the environment.
type config struct {
	databaseURL   string
	plansFile     string
	taskQueue     string
	webhookURL    string
	webhookSecret string
}

func loadConfig() (config, error) {
	c := config{
		databaseURL: os.Getenv("DATABASE_URL"),
		plansFile:   envOr("BILLFLOW_PLANS", "config/plans.json"),
		taskQueue:   envOr("BILLFLOW_TASK_QUEUE", workflows.DefaultTaskQueue),
		// Where outbound events go, and the HMAC key that signs them.
		webhookURL:    os.Getenv("BILLFLOW_WEBHOOK_URL"),
		webhookSecret: os.Getenv("BILLFLOW_WEBHOOK_SECRET"),
	}
	if c.databaseURL == "" {
		return c, fmt.Errorf("DATABASE_URL is not set: point it at billflow's Postgres database")
	}
	if c.webhookURL != "" && c.webhookSecret == "" {
		return c, fmt.Errorf("BILLFLOW_WEBHOOK_URL is set but BILLFLOW_WEBHOOK_SECRET is not: events must be signed")
	}
	return c, nil
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func run(ctx context.Context, logger *slog.Logger) error {
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	plans, err := loadPlans(cfg.plansFile)
	if err != nil {
		return err
	}
	st, err := store.Open(ctx, cfg.databaseURL)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		return err
	}
	if err := st.UpsertPlans(ctx, plans); err != nil {
		return fmt.Errorf("load plan catalog %s: %w", cfg.plansFile, err)
	}

	// Address, namespace, TLS and API key come from TEMPORAL_* variables or
	// the Temporal config file, the same way the temporal CLI reads them.
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

	w := worker.New(tc, cfg.taskQueue, worker.Options{})
	w.RegisterWorkflow(workflows.TenantBilling)
	w.RegisterWorkflow(workflows.InvoicePayment)
	w.RegisterWorkflow(workflows.GraceWindow)
	w.RegisterWorkflow(workflows.EventOutbox)
	w.RegisterWorkflow(workflows.LightningSettlements)
	rails, closeRails, err := buildRails(logger, st)
	defer closeRails()
	if err != nil {
		return err
	}
	policy, err := buildPolicy()
	if err != nil {
		return err
	}
	acts := &activities.Activities{
		Store: st,
		Nudge: func(ctx context.Context) error {
			return tc.SignalWorkflow(ctx, workflows.OutboxWorkflowID(cfg.taskQueue), "", workflows.SignalEventsWritten, nil)
		},
		Rails:  rails,
		Notify: billing.New(tc, cfg.taskQueue),
		Policy: policy,
	}
	if cfg.webhookURL != "" {
		acts.Webhook = &outbound.Sender{URL: cfg.webhookURL, Secret: []byte(cfg.webhookSecret)}
	}
	w.RegisterActivity(acts)

	// The outbox is one workflow per task queue; every worker makes sure it
	// runs, and all but the first find it running.
	if _, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
		ID: workflows.OutboxWorkflowID(cfg.taskQueue), TaskQueue: cfg.taskQueue,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
		StaticSummary:            "Delivers outbound events to the application's webhook",
	}, workflows.EventOutbox, workflows.EventOutboxInput{}); err != nil {
		return fmt.Errorf("start the event outbox: %w", err)
	}
	if rails.Node != nil {
		// One settlement stream per deployment; every worker makes sure it runs.
		if _, err := tc.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
			ID: workflows.SettlementsWorkflowID(cfg.taskQueue), TaskQueue: cfg.taskQueue,
			WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
			StaticSummary:            "Follows the engine's Lightning node and reports settled invoices",
		}, workflows.LightningSettlements, workflows.LightningSettlementsInput{Cursor: "lnd"}); err != nil {
			return fmt.Errorf("start the lightning settlement stream: %w", err)
		}
	}

	logger.Info("worker started", "task_queue", cfg.taskQueue, "namespace", opts.Namespace, "plans", len(plans),
		"webhook", cfg.webhookURL != "", "dunning", policy.Dunning, "grace_window", policy.GraceWindow)
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

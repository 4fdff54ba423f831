package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/contrib/envconfig"
	tlog "go.temporal.io/sdk/log"

	"github.com/billflow/billflow/billing"
	"github.com/billflow/billflow/config"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/payloadcodec"
	"github.com/billflow/billflow/store"
)

// app holds lazily opened connections: offline commands (preview) open none.
type app struct {
	stdout, stderr io.Writer
	cfg            config.Starter
	temporal       client.Client
	billing        *billing.Client
	store          *store.Store
}

func newApp(stdout, stderr io.Writer) *app { return &app{stdout: stdout, stderr: stderr} }

func (a *app) close() {
	if a.temporal != nil {
		a.temporal.Close()
	}
	if a.store != nil {
		a.store.Close()
	}
}

// billingClient connects to Temporal using the TEMPORAL_* environment (or the
// Temporal CLI's config file), like the worker.
func (a *app) billingClient(ctx context.Context) (*billing.Client, error) {
	if a.billing != nil {
		return a.billing, nil
	}
	opts, err := envconfig.LoadDefaultClientOptions()
	if err != nil {
		return nil, fmt.Errorf("temporal client configuration: %w", err)
	}
	// The SDK logs connection chatter at info level; a CLI keeps stdout clean.
	opts.Logger = tlog.NewStructuredLogger(slog.New(slog.NewTextHandler(io.Discard, nil)))
	if _, err := payloadcodec.Configure(&opts, os.Environ()); err != nil {
		return nil, usagef("%v", err)
	}
	dialCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	tc, err := client.DialContext(dialCtx, opts)
	if err != nil {
		return nil, fmt.Errorf("connect to temporal at %q (set TEMPORAL_ADDRESS): %w", opts.HostPort, err)
	}
	a.temporal = tc
	a.billing = billing.New(tc, a.cfg.TaskQueue)
	return a.billing, nil
}

// db opens billflow's database (DATABASE_URL), for the commands that read or change rows directly.
func (a *app) db(ctx context.Context) (*store.Store, error) {
	if a.store != nil {
		return a.store, nil
	}
	url := a.cfg.DatabaseURL
	if url == "" {
		return nil, fmt.Errorf("DATABASE_URL is not set: this command reads or writes billflow's Postgres database")
	}
	st, err := store.Open(ctx, url)
	if err != nil {
		return nil, err
	}
	a.store = st
	return st, nil
}

func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "starter",
		Short:         "Operate billflow: tenants, activity, renewals, invoices, discount codes, wallets, usage sessions, the free-tier pool",
		Long:          "starter drives billflow's Temporal workflows and reads its Postgres database.\n\nIt reaches Temporal through TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE (and TLS or API key variables, as the temporal CLI does) and Postgres through DATABASE_URL. `invoice preview` needs neither.\n\nExit codes: 0 success, 1 failure, 2 bad input (usage, validation or configuration), 3 tenant or usage session not found, 4 a usage session refused the request.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{msg: err.Error()} })
	root.AddCommand(a.tenantCommand(), a.activityCommand(), a.renewCommand(), a.invoiceCommand(), a.discountCommand(), a.walletCommand(), a.usageCommand(), a.poolCommand(), a.tierCommand())
	markUsage(root)
	return root
}

func requireFlag(cmd *cobra.Command, names ...string) error {
	for _, n := range names {
		if !cmd.Flags().Changed(n) {
			return usagef("--%s is required (see %s --help)", n, cmd.CommandPath())
		}
	}
	return nil
}

// markUsage makes command-line mistakes exit with the usage code: a group
// command given an unknown subcommand fails instead of printing help and
// succeeding, and argument validators' errors become usage errors.
func markUsage(cmd *cobra.Command) {
	if cmd.HasSubCommands() {
		cmd.Args = cobra.ArbitraryArgs
		cmd.RunE = func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usagef("unknown command %q for %q", args[0], c.CommandPath())
			}
			return c.Help()
		}
		for _, sub := range cmd.Commands() {
			markUsage(sub)
		}
		return
	}
	if validate := cmd.Args; validate != nil {
		cmd.Args = func(c *cobra.Command, args []string) error {
			if err := validate(c, args); err != nil {
				return &usageError{msg: err.Error()}
			}
			return nil
		}
	}
}

// tenantInDB checks the required --tenant flag, normalises it and opens the
// database, for commands that read or change a tenant's rows directly.
func (a *app) tenantInDB(cmd *cobra.Command, tenant string) (models.TenantID, *store.Store, error) {
	if err := requireFlag(cmd, "tenant"); err != nil {
		return "", nil, err
	}
	id, err := models.ParseTenantID(tenant)
	if err != nil {
		return "", nil, err
	}
	st, err := a.db(cmd.Context())
	if err != nil {
		return "", nil, err
	}
	return id, st, requireTenant(cmd.Context(), st, id)
}

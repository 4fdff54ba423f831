package main

import (
	"fmt"

	"github.com/google/uuid"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/billflow/billflow/billing"
	"github.com/billflow/billflow/workflows"
)

func newID() string { return uuid.NewString() }

// renewOutcome is one tenant's line in renew's JSON output.
type renewOutcome struct {
	Tenant string `json:"tenant"`
	billing.RenewResult
	Error string `json:"error,omitempty"`
}

func (a *app) renewCommand() *cobra.Command {
	var (
		tenant      string
		all, asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "renew (--tenant PUBKEY | --all)",
		Short: "Run the current period's renewal and claim; print the invoice id or \"nothing owed\"",
		Long:  "Runs the renewal of the tenant's current period (never twice per period: repeating it renews nothing) and claims outstanding items into an invoice when they net positive. --all does this for every tenant in the database, with a progress bar on stderr.",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (tenant == "") == !all {
				return usagef("give exactly one of --tenant or --all")
			}
			bc, err := a.billingClient(cmd.Context())
			if err != nil {
				return err
			}
			if !all {
				res, err := bc.RenewNow(cmd.Context(), tenant)
				if err != nil {
					return asTenantNotFound(tenant, err)
				}
				if asJSON {
					return a.printJSON(renewOutcome{Tenant: tenant, RenewResult: res})
				}
				a.printRenewal(tenant, res)
				return nil
			}
			st, err := a.db(cmd.Context())
			if err != nil {
				return err
			}
			tenants, err := st.ListTenants(cmd.Context())
			if err != nil {
				return err
			}
			bar := progressbar.NewOptions(len(tenants),
				progressbar.OptionSetWriter(a.stderr), progressbar.OptionSetDescription("renewing"),
				progressbar.OptionShowCount(), progressbar.OptionClearOnFinish())
			outcomes := make([]renewOutcome, 0, len(tenants))
			failed := 0
			for _, t := range tenants {
				res, err := bc.RenewNow(cmd.Context(), string(t.ID))
				o := renewOutcome{Tenant: string(t.ID), RenewResult: res}
				if err != nil {
					o.Error = err.Error()
					failed++
				}
				outcomes = append(outcomes, o)
				_ = bar.Add(1)
			}
			_ = bar.Finish()
			if asJSON {
				if err := a.printJSON(outcomes); err != nil {
					return err
				}
			} else {
				for _, o := range outcomes {
					if o.Error != "" {
						fmt.Fprintf(a.stdout, "%s: error: %s\n", o.Tenant, o.Error)
						continue
					}
					a.printRenewal(o.Tenant, o.RenewResult)
				}
			}
			if failed > 0 {
				return fmt.Errorf("%d of %d tenants failed to renew", failed, len(tenants))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant", "", "tenant's Nostr public key (hex or npub)")
	cmd.Flags().BoolVar(&all, "all", false, "renew every tenant")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) printRenewal(tenant string, res billing.RenewResult) {
	if res.NothingOwed {
		fmt.Fprintf(a.stdout, "%s: nothing owed (renewed %d, outstanding %s)\n", tenant, res.Renewed, workflows.FormatAmount(res.Outstanding, res.Currency))
		return
	}
	fmt.Fprintf(a.stdout, "%s: invoice %s for %s (renewed %d)\n", tenant, res.InvoiceID, workflows.FormatAmount(res.Total, res.Currency), res.Renewed)
}

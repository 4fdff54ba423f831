package main

import (
	"errors"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/billflow/billflow/api"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/store"
)

// The pool and tier commands operate the free-tier generosity pool (issue
// 11) in Postgres (DATABASE_URL), with the configuration of BILLFLOW_POOL
// (else config/pool.json, else the defaults) for tiers and budgets: the
// same functions as the HTTP API's /v1/pool endpoints.

func (a *app) poolCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pool",
		Short: "Show, credit and audit the free-tier pool; dry-run its decision for a payer",
		Long: "The free-tier pool pays usage receipts of trusted payers within their tier's daily budget (free, partial or gate) and grows " +
			"by a share of every paid invoice. Its balance never goes below zero.",
	}
	cmd.AddCommand(a.poolShow(), a.poolCredit(), a.poolGrants(), a.poolDecide())
	return cmd
}

func (a *app) tierCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tier",
		Short: "Show or pin a payer's trust tier for the free-tier pool",
		Long: "A payer's tier (new, established, trusted, elite) is derived from its paid invoices and account age, decaying after " +
			"inactivity, unless an operator pins it. Each tier has a daily free budget (BILLFLOW_POOL).",
	}
	cmd.AddCommand(a.tierShow(), a.tierSet())
	return cmd
}

// tenantFlagError names --tenant for what the API calls the payer.
func tenantFlagError(err error) error {
	var ve *models.ValidationError
	if errors.As(err, &ve) && ve.Field == "payer" {
		return &models.ValidationError{Field: "--tenant", Reason: ve.Reason}
	}
	return flagError(err)
}

func poolConfig() (models.PoolConfig, error) {
	cfg, err := api.LoadPoolConfig(os.Getenv("BILLFLOW_POOL"))
	if err != nil {
		return cfg, &usageError{msg: err.Error()}
	}
	return cfg, nil
}

func (a *app) poolShow() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "show",
		Short: "Show the pool: balance, floor, today's absorbed amount and grants, reservations, credits",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := a.db(cmd.Context())
			if err != nil {
				return err
			}
			p, err := api.PoolStatus(cmd.Context(), st)
			if err != nil {
				return err
			}
			if asJSON {
				return a.printJSON(p)
			}
			w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			low := ""
			if p.Low {
				low = " (LOW: under the floor)"
			}
			fmt.Fprintf(w, "balance\t%s%s\n", models.FormatAmount(p.Balance, p.Currency), low)
			fmt.Fprintf(w, "low floor\t%s\n", models.FormatAmount(p.LowFloor, p.Currency))
			fmt.Fprintf(w, "credit share\t%d bps of every paid invoice\n", p.ShareBps)
			fmt.Fprintf(w, "absorbed today\t%s in %d grants (last 24 h)\n", models.FormatAmount(p.AbsorbedToday, p.Currency), p.GrantsToday)
			fmt.Fprintf(w, "reserved\t%s (grants not recorded yet)\n", models.FormatAmount(p.Reserved, p.Currency))
			fmt.Fprintf(w, "grants\t%d\n", p.Grants)
			fmt.Fprintf(w, "credited\t%s (shares and top-ups)\n", models.FormatAmount(p.Credited, p.Currency))
			return w.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) poolCredit() *cobra.Command {
	var (
		b      api.PoolCreditBody
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "credit --key KEY --amount N [--note TEXT]",
		Short: "Top the pool up by N minor units (once per key: a retry with the same key changes nothing)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlag(cmd, "key", "amount"); err != nil {
				return err
			}
			st, err := a.db(cmd.Context())
			if err != nil {
				return err
			}
			c, err := api.CreditPool(cmd.Context(), st, b)
			if err != nil {
				return flagError(err)
			}
			if asJSON {
				return a.printJSON(c)
			}
			verb := "credited"
			if c.Replayed {
				verb = "already credited"
			}
			_, err = fmt.Fprintf(a.stdout, "%s %d under %s; the pool holds %d\n", verb, c.Amount, c.Key, c.Balance)
			return err
		},
	}
	cmd.Flags().StringVar(&b.Key, "key", "", "the credit's idempotency key")
	cmd.Flags().Int64Var(&b.Amount, "amount", 0, "minor units of the pool's currency")
	cmd.Flags().StringVar(&b.Note, "note", "", "why (kept with the credit)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) poolGrants() *cobra.Command {
	var (
		payer, outcome, limit string
		asJSON                bool
	)
	cmd := &cobra.Command{
		Use:   "grants [--payer PUBKEY] [--outcome reserved|recorded|released|unfunded] [--limit N]",
		Short: "List the grant audit, newest first: payer, request key, tier, estimated, reserved, absorbed, released, outcome",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := api.ParseGrantFilter(payer, outcome, limit)
			if err != nil {
				return flagError(err)
			}
			st, err := a.db(cmd.Context())
			if err != nil {
				return err
			}
			gs, err := st.ListGrants(cmd.Context(), f)
			if err != nil {
				return flagError(err)
			}
			if asJSON {
				if gs == nil {
					gs = []store.PoolGrant{}
				}
				return a.printJSON(api.PoolGrants{Grants: gs})
			}
			w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintf(w, "reserved at\tpayer\trequest key\ttier\tserve\testimated\treserved\tabsorbed\treleased\toutcome\n")
			for _, g := range gs {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n", g.ReservedAt.Format(time.RFC3339), g.Payer.Short(), g.RequestKey,
					g.Tier, g.Serve, g.Estimated, g.Reserved, g.Absorbed, g.Released, g.Outcome)
			}
			if len(gs) == 0 {
				fmt.Fprintf(w, "(no grants)\n")
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&payer, "payer", "", "one payer (hex or npub)")
	cmd.Flags().StringVar(&outcome, "outcome", "", "reserved, recorded, released or unfunded")
	cmd.Flags().StringVar(&limit, "limit", "", "at most N rows (default 100)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) poolDecide() *cobra.Command {
	var (
		b      api.PoolDecideBody
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "decide --tenant PUBKEY --amount N",
		Short: "Dry run: what the pool would decide now for the tenant's cost of N (free, partial or gate); nothing is reserved",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlag(cmd, "tenant", "amount"); err != nil {
				return err
			}
			cfg, err := poolConfig()
			if err != nil {
				return err
			}
			st, err := a.db(cmd.Context())
			if err != nil {
				return err
			}
			v, err := api.DecidePool(cmd.Context(), st, cfg, b)
			if err != nil {
				return tenantFlagError(err)
			}
			if asJSON {
				return a.printJSON(v)
			}
			w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintf(w, "decision\t%s\n", v.Serve)
			fmt.Fprintf(w, "pool pays\t%d\n", v.Absorb)
			fmt.Fprintf(w, "payer pays\t%d\n", v.Charge)
			fmt.Fprintf(w, "tier\t%s (daily budget %d, %d left today)\n", v.Tier, v.DailyBudget, v.DailyRemaining)
			fmt.Fprintf(w, "pool balance\t%d\n", v.PoolBalance)
			if v.Reason != "" {
				fmt.Fprintf(w, "why\t%s\n", v.Reason)
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&b.Payer, "tenant", "", "the payer (hex or npub)")
	cmd.Flags().Int64Var(&b.Amount, "amount", 0, "the estimated cost in minor units")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) printTier(t store.PayerTier) error {
	w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "payer\t%s\n", t.Payer)
	how := "derived"
	if t.Pinned {
		how = "pinned"
		if t.PinReason != "" {
			how += ": " + t.PinReason
		}
	}
	fmt.Fprintf(w, "tier\t%s (%s; derived %s)\n", t.Tier, how, t.Derived)
	fmt.Fprintf(w, "daily budget\t%d\n", t.DailyBudget)
	fmt.Fprintf(w, "absorbed today\t%d (%d left)\n", t.AbsorbedToday, t.DailyRemaining)
	return w.Flush()
}

func (a *app) tierShow() *cobra.Command {
	var (
		tenant string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "show --tenant PUBKEY",
		Short: "Show the tenant's tier (derived or pinned), daily budget and what it absorbed today",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlag(cmd, "tenant"); err != nil {
				return err
			}
			cfg, err := poolConfig()
			if err != nil {
				return err
			}
			st, err := a.db(cmd.Context())
			if err != nil {
				return err
			}
			t, err := api.PayerTier(cmd.Context(), st, cfg, tenant)
			if err != nil {
				return tenantFlagError(err)
			}
			if asJSON {
				return a.printJSON(t)
			}
			return a.printTier(t)
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant", "", "the payer (hex or npub)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) tierSet() *cobra.Command {
	var (
		tenant string
		b      api.TierPinBody
		unpin  bool
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "set --tenant PUBKEY (--tier new|established|trusted|elite [--reason TEXT] | --unpin)",
		Short: "Pin the tenant's tier (an operator's decision), or unpin it so it is derived again",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlag(cmd, "tenant"); err != nil {
				return err
			}
			if unpin == (b.Tier != "") {
				return usagef("give exactly one of --tier and --unpin (see %s --help)", cmd.CommandPath())
			}
			cfg, err := poolConfig()
			if err != nil {
				return err
			}
			st, err := a.db(cmd.Context())
			if err != nil {
				return err
			}
			t, err := api.SetPayerTier(cmd.Context(), st, cfg, tenant, b)
			if err != nil {
				return tenantFlagError(err)
			}
			if asJSON {
				return a.printJSON(t)
			}
			return a.printTier(t)
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant", "", "the payer (hex or npub)")
	cmd.Flags().StringVar(&b.Tier, "tier", "", "new, established, trusted or elite")
	cmd.Flags().StringVar(&b.Reason, "reason", "", "why (kept with the pin)")
	cmd.Flags().BoolVar(&unpin, "unpin", false, "remove the pin")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/billflow/billflow/api"
	"github.com/billflow/billflow/billing"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/workflows"
)

func (a *app) tenantCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "tenant", Short: "Create and inspect tenants"}
	cmd.AddCommand(a.tenantCreate(), a.tenantShow(), a.tenantList(), a.tenantGrace(), a.tenantPortalLink())
	cmd.AddCommand(a.paymentCommands()...)
	return cmd
}

func (a *app) tenantCreate() *cobra.Command {
	var (
		tenant, currency string
		period           time.Duration
		asJSON           bool
	)
	cmd := &cobra.Command{
		Use:   "create --tenant PUBKEY [--currency usd] [--period 10m]",
		Short: "Create a tenant and start its billing workflow",
		Long:  "Creates the tenant (a Nostr public key, hex or npub) and starts its TenantBilling workflow. Without --period, periods are calendar months from the first activity; with it, fixed-length periods (for trials and demos). Creating an existing tenant with the same settings shows it unchanged; with a different currency or period it is an error naming the difference.",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlag(cmd, "tenant"); err != nil {
				return err
			}
			bc, err := a.billingClient(cmd.Context())
			if err != nil {
				return err
			}
			st, err := bc.CreateTenant(cmd.Context(), billing.CreateTenantRequest{Tenant: tenant, Currency: currency, Period: period})
			if err != nil {
				return err
			}
			if asJSON {
				return a.printJSON(st)
			}
			a.printTenant(st)
			return nil
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant", "", "tenant's Nostr public key (hex or npub)")
	cmd.Flags().StringVar(&currency, "currency", "usd", "currency the tenant is billed in (ISO 4217)")
	cmd.Flags().DurationVar(&period, "period", 0, "fixed period length, e.g. 10m (default: calendar months)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) tenantShow() *cobra.Command {
	var (
		tenant string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "show --tenant PUBKEY",
		Short: "Show a tenant's billing state: anchor, period, next boundary, outstanding, open invoices",
		Long:  "Shows the tenant's billing state from its workflow (anchor, period, next boundary, outstanding) with its standing and its open invoices' statuses from the database, the system of record: the same statuses invoice list shows.",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlag(cmd, "tenant"); err != nil {
				return err
			}
			bc, err := a.billingClient(cmd.Context())
			if err != nil {
				return err
			}
			st, err := bc.Tenant(cmd.Context(), tenant)
			if err != nil {
				return asTenantNotFound(tenant, err)
			}
			// Invoice statuses and the tenant's standing come from Postgres,
			// the system of record, so this agrees with invoice list and
			// tenant grace: the workflow's copy is what it knew when it
			// claimed the invoice.
			db, err := a.db(cmd.Context())
			if err != nil {
				return err
			}
			if err := api.FreshenTenantState(cmd.Context(), db, &st); err != nil {
				return err
			}
			if asJSON {
				return a.printJSON(st)
			}
			a.printTenant(st)
			return nil
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant", "", "tenant's Nostr public key (hex or npub)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) printTenant(st billing.TenantState) {
	w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "tenant\t%s\n", st.TenantID)
	fmt.Fprintf(w, "status\t%s\n", st.Status)
	fmt.Fprintf(w, "currency\t%s\n", st.Currency)
	if st.PeriodSeconds > 0 {
		fmt.Fprintf(w, "periods\tfixed, %s\n", time.Duration(st.PeriodSeconds)*time.Second)
	} else {
		fmt.Fprintf(w, "periods\tcalendar months\n")
	}
	if st.Anchor != nil {
		fmt.Fprintf(w, "billing anchor\t%s\n", st.Anchor.Format(time.RFC3339))
	} else {
		fmt.Fprintf(w, "billing anchor\tnot set (no activity yet)\n")
	}
	if st.Period != nil {
		fmt.Fprintf(w, "current period\t#%d %s -> %s\n", st.Period.Index, st.Period.Start.Format(time.RFC3339), st.Period.End.Format(time.RFC3339))
		fmt.Fprintf(w, "next boundary\t%s\n", st.Period.End.Format(time.RFC3339))
	}
	fmt.Fprintf(w, "outstanding\t%s\n", workflows.FormatAmount(st.Outstanding, st.Currency))
	fmt.Fprintf(w, "open invoices\t%d\n", len(st.OpenInvoices))
	for _, inv := range st.OpenInvoices {
		fmt.Fprintf(w, "  %s\t%s %s\n", inv.ID, workflows.FormatAmount(inv.Total, inv.Currency), inv.Status)
	}
	_ = w.Flush()
}

func (a *app) tenantList() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List tenants (from the database)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := a.db(cmd.Context())
			if err != nil {
				return err
			}
			tenants, err := st.ListTenants(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				if tenants == nil {
					return a.printJSON([]any{})
				}
				return a.printJSON(tenants)
			}
			w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "TENANT\tSTATUS\tCURRENCY\tPERIODS\tANCHOR")
			for _, t := range tenants {
				periods, anchor := "monthly", "-"
				if t.PeriodSeconds > 0 {
					periods = (time.Duration(t.PeriodSeconds) * time.Second).String()
				}
				if t.Anchor != nil {
					anchor = t.Anchor.Format(time.RFC3339)
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", t.ID, t.Status, t.Currency, periods, anchor)
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) activityCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "activity", Short: "Record billable activity"}
	var (
		tenant, id, typ, resource, plan, at string
		asJSON, createTenant                bool
	)
	record := &cobra.Command{
		Use:   "record --tenant PUBKEY --type TYPE --resource ID [--plan PLAN] [--at RFC3339] [--id ID]",
		Short: "Record one activity and print the item it billed",
		Long:  "Types: resource_created and resource_plan_changed (both need --plan), resource_activated, resource_deactivated. --id makes the call idempotent: recording the same activity again returns the first outcome. Without --id a fresh id is generated. The tenant must exist (tenant create) unless --create-tenant is given.",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlag(cmd, "tenant", "type", "resource"); err != nil {
				return err
			}
			act := billing.Activity{ID: id, Type: models.ActivityType(typ), ResourceID: resource, PlanID: plan, CreateTenant: createTenant}
			if act.ID == "" {
				act.ID = "cli-" + newID()
			}
			if at != "" {
				t, err := time.Parse(time.RFC3339, at)
				if err != nil {
					return &billing.ValidationError{Field: "--at", Reason: fmt.Sprintf("%q is not an RFC3339 instant", at)}
				}
				act.CreatedAt = t
			}
			bc, err := a.billingClient(cmd.Context())
			if err != nil {
				return err
			}
			res, err := bc.RecordActivity(cmd.Context(), tenant, act)
			if err != nil {
				return asTenantNotFound(tenant, err)
			}
			if asJSON {
				return a.printJSON(res)
			}
			switch {
			case res.Item == nil:
				fmt.Fprintf(a.stdout, "recorded %s: no item billed\n", res.ActivityID)
			default:
				fmt.Fprintf(a.stdout, "recorded %s: %s %s (%s)\n", res.ActivityID, res.Item.Kind, res.Item.Description, fmt.Sprint(res.Item.Amount)+" minor units")
			}
			if res.Duplicate {
				fmt.Fprintln(a.stdout, "(already recorded earlier: nothing new was written)")
			}
			return nil
		},
	}
	record.Flags().StringVar(&tenant, "tenant", "", "tenant's Nostr public key (hex or npub)")
	record.Flags().StringVar(&id, "id", "", "activity id (idempotency key)")
	record.Flags().StringVar(&typ, "type", "", "resource_created | resource_activated | resource_deactivated | resource_plan_changed")
	record.Flags().StringVar(&resource, "resource", "", "resource id")
	record.Flags().StringVar(&plan, "plan", "", "plan id (resource_created, resource_plan_changed)")
	record.Flags().StringVar(&at, "at", "", "instant of the activity, RFC3339 (default now)")
	record.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	record.Flags().BoolVar(&createTenant, "create-tenant", false, "create the tenant (usd, calendar months) if it does not exist; otherwise an unknown tenant is an error")
	cmd.AddCommand(record)
	return cmd
}

func (a *app) tenantGrace() *cobra.Command {
	var (
		tenant string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "grace --tenant PUBKEY",
		Short: "Show a tenant's standing: grace window, suspension, ban from grace, unpaid invoices (from the database)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			id, st, err := a.tenantInDB(cmd, tenant)
			if err != nil {
				return err
			}
			g, err := st.GetGraceState(cmd.Context(), id)
			if err != nil {
				return err
			}
			if asJSON {
				return a.printJSON(g)
			}
			w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintf(w, "tenant\t%s\nstatus\t%s\n", g.TenantID, g.Status)
			if g.GraceExpiresAt != nil {
				fmt.Fprintf(w, "grace ends\t%s\n", g.GraceExpiresAt.Format(time.RFC3339))
			}
			if g.SuspendedAt != nil {
				fmt.Fprintf(w, "suspended since\t%s\n", g.SuspendedAt.Format(time.RFC3339))
			}
			switch {
			case g.Banned(time.Now()):
				fmt.Fprintf(w, "banned from grace until\t%s\n", g.BannedUntil.Format(time.RFC3339))
			case g.BannedUntil != nil:
				fmt.Fprintf(w, "ban from grace\texpired %s\n", g.BannedUntil.Format(time.RFC3339))
			default:
				fmt.Fprintf(w, "ban from grace\tnone\n")
			}
			fmt.Fprintf(w, "unpaid invoices\t%d\n", len(g.Unpaid))
			for _, inv := range g.Unpaid {
				fmt.Fprintf(w, "  %s\t%s %s\n", inv.ID, workflows.FormatAmount(inv.Total, inv.Currency), inv.Status)
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant", "", "tenant's Nostr public key (hex or npub)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

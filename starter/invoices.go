package main

import (
	"errors"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/billflow/billflow/billing"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/store"
	"github.com/billflow/billflow/workflows"
)

func (a *app) invoiceCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "invoice", Short: "Inspect, settle, close and preview invoices"}
	cmd.AddCommand(a.invoiceList(), a.invoiceShow(), a.invoiceMarkPaid(), a.invoicePreview())
	cmd.AddCommand(a.invoiceClose("void"), a.invoiceClose("write-off"), a.invoiceLightning(), a.invoiceRefunds(), a.invoicePageLink())
	return cmd
}

func (a *app) invoiceList() *cobra.Command {
	var (
		tenant string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "list [--tenant PUBKEY]",
		Short: "List invoices, newest first (from the database)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var id models.TenantID
			if tenant != "" {
				var err error
				if id, err = models.ParseTenantID(tenant); err != nil {
					return err
				}
			}
			st, err := a.db(cmd.Context())
			if err != nil {
				return err
			}
			if id != "" {
				if err := requireTenant(cmd.Context(), st, id); err != nil {
					return err
				}
			}
			invoices, err := st.ListInvoices(cmd.Context(), id)
			if err != nil {
				return err
			}
			if asJSON {
				if invoices == nil {
					invoices = []store.Invoice{}
				}
				return a.printJSON(invoices)
			}
			w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "INVOICE\tTENANT\tTOTAL\tSTATUS\tCREATED")
			for _, inv := range invoices {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", inv.ID, inv.TenantID.Short(), workflows.FormatAmount(inv.Total, inv.Currency), inv.Status, inv.CreatedAt.Format(time.RFC3339))
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant", "", "only this tenant's invoices")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// invoiceView is invoice show's JSON output.
type invoiceView struct {
	store.Invoice
	Items []store.Item `json:"items"`
	// PaymentURL is the invoice's hosted page, when BILLFLOW_PUBLIC_URL is set.
	PaymentURL string `json:"payment_url,omitempty"`
	collectionView
}

func (a *app) invoiceShow() *cobra.Command {
	var (
		id     string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "show --invoice ID",
		Short: "Show an invoice with its items, payments and collection history (from the database)",
		Long:  "Shows the invoice and its items, then how it is being collected: the entitlement it granted and its discount code, if any; the cascade's attempts; the payments received (applied, or an overpayment to refund); the Lightning invoices issued; the card charges.",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlag(cmd, "invoice"); err != nil {
				return err
			}
			st, err := a.db(cmd.Context())
			if err != nil {
				return err
			}
			inv, items, err := st.GetInvoice(cmd.Context(), id)
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("invoice %q: %w", id, billing.ErrInvoiceNotFound)
			}
			if err != nil {
				return err
			}
			col, err := loadCollection(cmd.Context(), st, id)
			if err != nil {
				return err
			}
			page, err := a.invoicePageURL(cmd.Context(), id)
			if err != nil {
				return err
			}
			if asJSON {
				if items == nil {
					items = []store.Item{}
				}
				return a.printJSON(invoiceView{Invoice: inv, Items: items, PaymentURL: page, collectionView: col})
			}
			w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintf(w, "invoice\t%s\ntenant\t%s\nstatus\t%s\ntotal\t%s\nperiod\t%s -> %s\ncreated\t%s\n", inv.ID, inv.TenantID, inv.Status,
				workflows.FormatAmount(inv.Total, inv.Currency), inv.PeriodStart.Format(time.RFC3339), inv.PeriodEnd.Format(time.RFC3339), inv.CreatedAt.Format(time.RFC3339))
			if inv.PaidAt != nil {
				fmt.Fprintf(w, "paid\t%s via %s %s\n", inv.PaidAt.Format(time.RFC3339), inv.PaidRail, inv.PaidReference)
			}
			if page != "" {
				fmt.Fprintf(w, "page\t%s\n", page)
			}
			fmt.Fprintln(w, "\nKIND\tRESOURCE\tPLAN\tAMOUNT\tPERIOD START\tDESCRIPTION")
			for _, it := range items {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", it.Kind, it.ResourceID, it.PlanID, workflows.FormatAmount(it.Amount, it.Currency), it.PeriodStart.Format(time.RFC3339), it.Description)
			}
			printCollection(w, col, time.Now())
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&id, "invoice", "", "invoice id")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) invoiceMarkPaid() *cobra.Command {
	var (
		id, rail, reference, currency string
		amount, amountMsat            int64
		asJSON                        bool
	)
	cmd := &cobra.Command{
		Use:   "mark-paid --invoice ID --rail RAIL [--reference REF] [--amount N --currency C | --amount-msat N]",
		Short: "Report money received for an invoice (partial, full, or kept to refund when already paid)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlag(cmd, "invoice"); err != nil {
				return err
			}
			bc, err := a.billingClient(cmd.Context())
			if err != nil {
				return err
			}
			res, err := bc.RecordPayment(cmd.Context(), id, billing.PaymentReport{Rail: rail, Reference: reference,
				Amount: amount, Currency: currency, AmountMsat: amountMsat})
			if err != nil {
				return err
			}
			if asJSON {
				return a.printJSON(res)
			}
			switch {
			case res.Outcome == "partial":
				fmt.Fprintf(a.stdout, "invoice %s: partial payment recorded; the invoice stays open for the rest\n", res.InvoiceID)
			case res.Outcome == "unapplied":
				fmt.Fprintf(a.stdout, "invoice %s: the money could not count against it (another currency?) and was recorded to refund\n", res.InvoiceID)
			case res.Outcome == "overpayment":
				fmt.Fprintf(a.stdout, "invoice %s was already paid via %s; this payment was recorded as an overpayment to refund\n", res.InvoiceID, res.Rail)
			case res.AlreadyPaid:
				fmt.Fprintf(a.stdout, "invoice %s was already paid via %s\n", res.InvoiceID, res.Rail)
			default:
				fmt.Fprintf(a.stdout, "invoice %s paid via %s\n", res.InvoiceID, res.Rail)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&id, "invoice", "", "invoice id")
	cmd.Flags().StringVar(&rail, "rail", "manual", "rail the money came through: manual, stripe, nwc, lightning, oob")
	cmd.Flags().StringVar(&reference, "reference", "", "payment reference (receipt, payment hash, intent id)")
	cmd.Flags().Int64Var(&amount, "amount", 0, "amount received in minor units (omitted: the full amount still due)")
	cmd.Flags().StringVar(&currency, "currency", "", "currency of --amount (default: the invoice's)")
	cmd.Flags().Int64Var(&amountMsat, "amount-msat", 0, "amount received in millisatoshis (Lightning rails)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) invoicePreview() *cobra.Command {
	var (
		input, at string
		asJSON    bool
	)
	cmd := &cobra.Command{
		Use:   "preview --input FILE --at RFC3339",
		Short: "Preview the items the engine would bill for an activity log, offline",
		Long: `Runs the engine's billing rules on an activity log, with no server: every
proration from activities at or before --at and every renewal at a boundary at
or before --at, with calendar-month periods from the billing anchor (the first
activity unless billing_anchor is given).

Input file:
  {"billing_anchor": optional RFC3339,
   "plans": [{"id", "name", "amount" (minor units), "currency"}],
   "activities": [{"id", "type", "resource_id", "plan_id", "created_at"}]}`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlag(cmd, "input", "at"); err != nil {
				return err
			}
			when, err := time.Parse(time.RFC3339, at)
			if err != nil {
				return &billing.ValidationError{Field: "--at", Reason: fmt.Sprintf("%q is not an RFC3339 instant", at)}
			}
			data, err := os.ReadFile(input)
			if err != nil {
				return usagef("read --input: %v", err)
			}
			in, err := models.ParsePreviewInput(data)
			if err != nil {
				return err
			}
			res, err := models.Preview(in, when)
			if err != nil {
				return err
			}
			if asJSON {
				return a.printJSON(res)
			}
			w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			if res.BillingAnchor != nil {
				fmt.Fprintf(w, "billing anchor\t%s\n", res.BillingAnchor.Format(time.RFC3339))
			}
			if res.PeriodStart != nil {
				fmt.Fprintf(w, "period\t%s -> %s\n", res.PeriodStart.Format(time.RFC3339), res.PeriodEnd.Format(time.RFC3339))
			}
			fmt.Fprintln(w, "\nKIND\tCREATED\tRESOURCE\tPLAN\tAMOUNT\tDESCRIPTION")
			for _, it := range res.Items {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\n", it.Kind, it.CreatedAt.Format(time.RFC3339), it.ResourceID, it.PlanID, it.Amount, it.Description)
			}
			fmt.Fprintf(w, "\ntotal\t%s\n", workflows.FormatAmount(res.Total, res.Currency))
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&input, "input", "", "activity log file (JSON)")
	cmd.Flags().StringVar(&at, "at", "", "preview instant, RFC3339")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

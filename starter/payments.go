package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/billing"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/store"
	"github.com/billflow/billflow/workflows"
)

// collectionView is how an invoice is being collected, in invoice show's
// JSON output: lists are [] rather than null; entitlement and discount are
// left out when there is none.
type collectionView struct {
	Attempts          []store.Attempt     `json:"attempts"`
	Payments          []store.Payment     `json:"payments"`
	LightningInvoices []store.Bolt11      `json:"lightning_invoices"`
	CardPayments      []store.CardPayment `json:"card_payments"`
	Entitlement       *store.Entitlement  `json:"entitlement,omitempty"`
	Discount          *discountView       `json:"discount,omitempty"`
}

// discountView is an invoice's discount reservation.
type discountView struct {
	Code   string `json:"code"`
	Status string `json:"status"`
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// loadCollection reads an invoice's attempts, payments, Lightning invoices,
// card charges, entitlement and discount reservation.
func loadCollection(ctx context.Context, st *store.Store, id string) (collectionView, error) {
	var (
		v   collectionView
		err error
	)
	if v.Attempts, err = st.Attempts(ctx, id); err != nil {
		return v, fmt.Errorf("read payment attempts of invoice %s: %w", id, err)
	}
	if v.Payments, err = st.Payments(ctx, id); err != nil {
		return v, fmt.Errorf("read payments of invoice %s: %w", id, err)
	}
	if v.LightningInvoices, err = st.Bolt11s(ctx, id); err != nil {
		return v, fmt.Errorf("read Lightning invoices of invoice %s: %w", id, err)
	}
	if v.CardPayments, err = st.CardPayments(ctx, id); err != nil {
		return v, fmt.Errorf("read card charges of invoice %s: %w", id, err)
	}
	v.Attempts, v.Payments, v.LightningInvoices, v.CardPayments = nonNil(v.Attempts), nonNil(v.Payments), nonNil(v.LightningInvoices), nonNil(v.CardPayments)
	switch e, err := st.GetEntitlement(ctx, id); {
	case err == nil:
		e.PeriodStart, e.PeriodEnd, e.GrantedAt = e.PeriodStart.UTC(), e.PeriodEnd.UTC(), e.GrantedAt.UTC()
		v.Entitlement = &e
	case !errors.Is(err, store.ErrNotFound):
		return v, fmt.Errorf("read entitlement of invoice %s: %w", id, err)
	}
	switch code, status, err := st.DiscountReservation(ctx, id); {
	case err == nil:
		v.Discount = &discountView{Code: code, Status: status}
	case !errors.Is(err, store.ErrNotFound):
		return v, fmt.Errorf("read discount reservation of invoice %s: %w", id, err)
	}
	return v, nil
}

// printCollection writes invoice show's collection sections to w, each a
// column block of its own.
func printCollection(w io.Writer, v collectionView, now time.Time) {
	fmt.Fprintln(w)
	if e := v.Entitlement; e != nil {
		fmt.Fprintf(w, "entitlement\t%s -> %s (granted %s)\n", e.PeriodStart.Format(time.RFC3339), e.PeriodEnd.Format(time.RFC3339), e.GrantedAt.Format(time.RFC3339))
	} else {
		fmt.Fprintf(w, "entitlement\tnone\n")
	}
	if d := v.Discount; d != nil {
		fmt.Fprintf(w, "discount\t%s (%s)\n", d.Code, d.Status)
	} else {
		fmt.Fprintf(w, "discount\tnone\n")
	}

	if len(v.Attempts) == 0 {
		fmt.Fprintln(w, "\nno collection attempts")
	} else {
		fmt.Fprintln(w, "\nATTEMPT\tRAIL\tOUTCOME\tDETAIL\tAT")
		for _, at := range v.Attempts {
			fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\n", at.Attempt, at.Rail, at.Outcome, dash(at.Detail), at.At.Format(time.RFC3339))
		}
	}

	if len(v.Payments) == 0 {
		fmt.Fprintln(w, "\nno payments")
	} else {
		fmt.Fprintln(w, "\nPAYMENT RAIL\tREFERENCE\tAMOUNT\tRECEIVED\tSTATE")
		for _, p := range v.Payments {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", p.Rail, dash(p.Reference), paymentAmount(p), p.ReceivedAt.Format(time.RFC3339), paymentState(p))
		}
	}

	if len(v.LightningInvoices) == 0 {
		fmt.Fprintln(w, "\nno Lightning invoices issued")
	} else {
		fmt.Fprintln(w, "\nLIGHTNING HASH\tMSAT\tEXPIRES\tSTATE")
		for _, b := range v.LightningInvoices {
			fmt.Fprintf(w, "%s\t%d\t%s\t%s\n", shortHash(b.PaymentHash), b.AmountMsat, b.ExpiresAt.Format(time.RFC3339), bolt11State(b, now))
		}
	}

	if len(v.CardPayments) == 0 {
		fmt.Fprintln(w, "\nno card charges")
	} else {
		fmt.Fprintln(w, "\nPAYMENT INTENT\tATTEMPT\tAMOUNT\tSTATUS\tOUTCOME\tDECLINE CODE")
		for _, c := range v.CardPayments {
			fmt.Fprintf(w, "%s\t%d\t%s\t%s\t%s\t%s\n", c.PaymentIntentID, c.Attempt, workflows.FormatAmount(c.Amount, c.Currency), c.Status, c.Outcome, dash(c.DeclineCode))
		}
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// paymentAmount renders what a rail collected: fiat, millisatoshis or both.
func paymentAmount(p store.Payment) string {
	var parts []string
	if p.Amount != 0 {
		parts = append(parts, workflows.FormatAmount(p.Amount, p.Currency))
	}
	if p.AmountMsat != 0 {
		parts = append(parts, fmt.Sprintf("%d msat", p.AmountMsat))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " / ")
}

// refundAmount renders the part of a payment owed back: all of it for an
// overpayment, the difference beyond the amount due for one that paid.
func refundAmount(p store.Payment) string {
	switch {
	case p.RefundMsat != 0:
		return fmt.Sprintf("%d msat", p.RefundMsat)
	case p.RefundAmount != 0:
		return workflows.FormatAmount(p.RefundAmount, p.Currency)
	}
	return paymentAmount(p)
}

// paymentState says whether a payment paid the invoice or is owed back.
func paymentState(p store.Payment) string {
	switch {
	case p.Applied:
		return "applied"
	case p.RefundStatus == "to_refund":
		return "overpayment to refund"
	case p.RefundStatus != "":
		return "overpayment " + p.RefundStatus
	}
	return "overpayment"
}

func bolt11State(b store.Bolt11, now time.Time) string {
	switch {
	case b.SettledAt != nil:
		return "settled " + b.SettledAt.UTC().Format(time.RFC3339)
	case b.SupersededAt != nil:
		return "superseded " + b.SupersededAt.UTC().Format(time.RFC3339)
	case !b.ExpiresAt.After(now):
		return "expired"
	}
	return "payable"
}

func shortHash(h string) string {
	if len(h) > 16 {
		return h[:16] + "..."
	}
	return h
}

// requireValue is requireFlag for flags that must also be non-empty.
func requireValue(cmd *cobra.Command, names ...string) error {
	if err := requireFlag(cmd, names...); err != nil {
		return err
	}
	for _, n := range names {
		if strings.TrimSpace(cmd.Flags().Lookup(n).Value.String()) == "" {
			return usagef("--%s is empty (see %s --help)", n, cmd.CommandPath())
		}
	}
	return nil
}

// invoiceClose is invoice void (status void) and invoice write-off (status
// uncollectible), through the invoice's workflow.
func (a *app) invoiceClose(name string) *cobra.Command {
	status, verb, done, short := "void", "void", "voided", "Void an invoice: it is not owed (releases its discount slot)"
	long := "Voids the invoice through its payment workflow, which stops collecting it and releases its discount slot."
	if name == "write-off" {
		status, verb, done, short = "uncollectible", "write off", "written off (uncollectible)", "Write an invoice off as uncollectible (releases its discount slot)"
		long = "Writes the invoice off as uncollectible through its payment workflow, which stops collecting it and releases its discount slot."
	}
	long += " A paid invoice cannot be closed; closing an invoice the same way again changes nothing."
	var (
		id, reason string
		asJSON     bool
	)
	cmd := &cobra.Command{
		Use:   name + " --invoice ID [--reason TEXT]",
		Short: short,
		Long:  long,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireValue(cmd, "invoice"); err != nil {
				return err
			}
			if len(reason) > 500 {
				return &billing.ValidationError{Field: "--reason", Reason: fmt.Sprintf("is %d bytes long; at most 500", len(reason))}
			}
			bc, err := a.billingClient(cmd.Context())
			if err != nil {
				return err
			}
			res, err := bc.CloseInvoice(cmd.Context(), id, status, reason)
			already := false
			if errors.Is(err, billing.ErrInvoiceClosed) {
				// The workflow has finished: say what became of the invoice.
				if cur, ok := a.invoiceStatus(cmd, id); ok {
					if cur != status {
						return &billing.ValidationError{Field: "invoice", Reason: fmt.Sprintf("invoice %s is %s and cannot be %s", id, cur, done)}
					}
					res, err, already = billing.Payment{InvoiceID: id, Status: status}, nil, true
				}
			}
			if err != nil {
				return fmt.Errorf("%s invoice %s: %w", verb, id, err)
			}
			if asJSON {
				return a.printJSON(res)
			}
			switch {
			case already:
				fmt.Fprintf(a.stdout, "invoice %s was already %s\n", res.InvoiceID, done)
			case reason != "":
				fmt.Fprintf(a.stdout, "invoice %s %s: %s\n", res.InvoiceID, done, reason)
			default:
				fmt.Fprintf(a.stdout, "invoice %s %s\n", res.InvoiceID, done)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&id, "invoice", "", "invoice id")
	cmd.Flags().StringVar(&reason, "reason", "", "why, kept with the invoice (at most 500 bytes)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// invoiceStatus reads an invoice's status from the database, when one is
// configured, to explain a finished workflow.
func (a *app) invoiceStatus(cmd *cobra.Command, id string) (string, bool) {
	st, err := a.db(cmd.Context())
	if err != nil {
		return "", false
	}
	inv, _, err := st.GetInvoice(cmd.Context(), id)
	if err != nil {
		return "", false
	}
	return inv.Status, true
}

// lightningView is invoice lightning's JSON output.
type lightningView struct {
	InvoiceID string `json:"invoice_id"`
	activities.LightningInvoice
}

func (a *app) invoiceLightning() *cobra.Command {
	var (
		id     string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "lightning --invoice ID",
		Short: "Print a payable Lightning invoice (BOLT11) for an invoice being collected",
		Long:  "Asks the invoice's payment workflow for its payable BOLT11: issued on the engine's node and reused while payable, replaced once expired.",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireValue(cmd, "invoice"); err != nil {
				return err
			}
			bc, err := a.billingClient(cmd.Context())
			if err != nil {
				return err
			}
			li, err := bc.LightningInvoice(cmd.Context(), id)
			if err != nil {
				return fmt.Errorf("lightning invoice for invoice %s: %w", id, err)
			}
			if asJSON {
				return a.printJSON(lightningView{InvoiceID: id, LightningInvoice: li})
			}
			w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintf(w, "invoice\t%s\npayment request\t%s\npayment hash\t%s\namount\t%d msat\nexpires\t%s\n",
				id, li.PaymentRequest, li.PaymentHash, li.AmountMsat, li.ExpiresAt.UTC().Format(time.RFC3339))
			if li.Settled {
				fmt.Fprintf(w, "state\tsettled: the node reports it paid; do not pay it again\n")
			} else {
				fmt.Fprintf(w, "state\tpayable\n")
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&id, "invoice", "", "invoice id")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) invoiceRefunds() *cobra.Command {
	var (
		tenant string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "refunds [--tenant PUBKEY]",
		Short: "List overpayments owed back to tenants, oldest first (from the database)",
		Long:  "Lists money billflow kept on record to return (refund status to_refund): payments for an invoice already paid, voided or written off, the part of a payment beyond the amount due, and money in another currency than the invoice's.",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var tid models.TenantID
			if tenant != "" {
				var err error
				if tid, err = models.ParseTenantID(tenant); err != nil {
					return err
				}
			}
			st, err := a.db(cmd.Context())
			if err != nil {
				return err
			}
			if tid != "" {
				if err := requireTenant(cmd.Context(), st, tid); err != nil {
					return err
				}
			}
			// Every payment with money owed back, whatever its invoice's
			// status (money in the wrong currency is owed back on an open
			// invoice too), oldest first.
			owed, err := st.ToRefund(cmd.Context(), tid)
			if err != nil {
				return err
			}
			if asJSON {
				return a.printJSON(owed)
			}
			if len(owed) == 0 {
				fmt.Fprintln(a.stdout, "no overpayments to refund")
				return nil
			}
			w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "INVOICE\tTENANT\tRAIL\tREFERENCE\tTO REFUND\tREASON\tRECEIVED")
			for _, p := range owed {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.InvoiceID, p.TenantID.Short(), p.Rail, dash(p.Reference), refundAmount(p), dash(p.RefundReason), p.ReceivedAt.Format(time.RFC3339))
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant", "", "only this tenant's overpayments")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

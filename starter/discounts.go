package main

import (
	"errors"
	"fmt"
	"regexp"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/billflow/billflow/billing"
	"github.com/billflow/billflow/store"
)

// discountCodeRE is the database's rule for a code.
var discountCodeRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

var errDiscountNotFound = errors.New("discount code not found")

func checkDiscountCode(code string) error {
	if !discountCodeRE.MatchString(code) {
		return &billing.ValidationError{Field: "--code", Reason: fmt.Sprintf("%q is not 1-64 letters, digits, '-' or '_'", code)}
	}
	return nil
}

// discountCodeView is a code's usage in the discount commands' JSON output.
type discountCodeView struct {
	store.DiscountCode
	Available int `json:"available"`
}

func newDiscountCodeView(d store.DiscountCode) discountCodeView {
	return discountCodeView{DiscountCode: d, Available: d.MaxRedemptions - d.Reserved - d.Redeemed}
}

func (a *app) printDiscountCode(d discountCodeView) error {
	w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "code\t%s\nmax redemptions\t%d\nreserved\t%d\nredeemed\t%d\navailable\t%d\n", d.Code, d.MaxRedemptions, d.Reserved, d.Redeemed, d.Available)
	return w.Flush()
}

func (a *app) discountCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "discount", Short: "Create, reserve and inspect limited-use discount codes (in the database)"}
	cmd.AddCommand(a.discountCreate(), a.discountReserve(), a.discountShow())
	return cmd
}

func (a *app) discountCreate() *cobra.Command {
	var (
		code    string
		maxUses int
		asJSON  bool
	)
	cmd := &cobra.Command{
		Use:   "create --code CODE --max N",
		Short: "Create a discount code usable N times (creating it again with the same N changes nothing)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlag(cmd, "code", "max"); err != nil {
				return err
			}
			if err := checkDiscountCode(code); err != nil {
				return err
			}
			if maxUses <= 0 {
				return &billing.ValidationError{Field: "--max", Reason: fmt.Sprintf("must be positive, not %d", maxUses)}
			}
			st, err := a.db(cmd.Context())
			if err != nil {
				return err
			}
			d, err := st.CreateDiscountCode(cmd.Context(), code, maxUses)
			if err != nil {
				return err
			}
			if asJSON {
				return a.printJSON(newDiscountCodeView(d))
			}
			return a.printDiscountCode(newDiscountCodeView(d))
		},
	}
	cmd.Flags().StringVar(&code, "code", "", "the code: 1-64 letters, digits, '-' or '_'")
	cmd.Flags().IntVar(&maxUses, "max", 0, "how many invoices may redeem it")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// reservationView is discount reserve's JSON output.
type reservationView struct {
	InvoiceID    string           `json:"invoice_id"`
	Code         string           `json:"code"`
	Status       string           `json:"status"`
	DiscountCode discountCodeView `json:"discount_code"`
}

func (a *app) discountReserve() *cobra.Command {
	var (
		id, code string
		asJSON   bool
	)
	cmd := &cobra.Command{
		Use:   "reserve --invoice ID --code CODE",
		Short: "Hold one slot of a discount code for an unpaid invoice (consumed when paid, released when closed)",
		Long:  "Holds one slot of the code for the invoice. An invoice has at most one code; reserving its code again changes nothing. A code with no slot left is refused and nothing is written.",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireValue(cmd, "invoice", "code"); err != nil {
				return err
			}
			if err := checkDiscountCode(code); err != nil {
				return err
			}
			st, err := a.db(cmd.Context())
			if err != nil {
				return err
			}
			err = st.ReserveDiscount(cmd.Context(), id, code, time.Now())
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("invoice %q: %w", id, billing.ErrInvoiceNotFound)
			}
			var ve *billing.ValidationError
			if err != nil && !errors.As(err, &ve) {
				return fmt.Errorf("reserve discount code %q for invoice %s: %w", code, id, err)
			}
			if err != nil {
				return err // names the code or the invoice already
			}
			_, status, err := st.DiscountReservation(cmd.Context(), id)
			if err != nil {
				return fmt.Errorf("read discount reservation of invoice %s: %w", id, err)
			}
			d, err := st.GetDiscountCode(cmd.Context(), code)
			if err != nil {
				return fmt.Errorf("read discount code %q: %w", code, err)
			}
			v := reservationView{InvoiceID: id, Code: code, Status: status, DiscountCode: newDiscountCodeView(d)}
			if asJSON {
				return a.printJSON(v)
			}
			fmt.Fprintf(a.stdout, "invoice %s: discount code %s %s (%d of %d left)\n", id, code, status, v.DiscountCode.Available, d.MaxRedemptions)
			return nil
		},
	}
	cmd.Flags().StringVar(&id, "invoice", "", "invoice id")
	cmd.Flags().StringVar(&code, "code", "", "discount code")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) discountShow() *cobra.Command {
	var (
		code   string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "show --code CODE",
		Short: "Show a discount code's usage: limit, reserved, redeemed, available",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlag(cmd, "code"); err != nil {
				return err
			}
			if err := checkDiscountCode(code); err != nil {
				return err
			}
			st, err := a.db(cmd.Context())
			if err != nil {
				return err
			}
			d, err := st.GetDiscountCode(cmd.Context(), code)
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("discount code %q: %w", code, errDiscountNotFound)
			}
			if err != nil {
				return err
			}
			if asJSON {
				return a.printJSON(newDiscountCodeView(d))
			}
			return a.printDiscountCode(newDiscountCodeView(d))
		},
	}
	cmd.Flags().StringVar(&code, "code", "", "discount code")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/billflow/billflow/api"
	"github.com/billflow/billflow/billing"
	"github.com/billflow/billflow/contract"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/store"
)

// The wallet commands read and write a tenant's prepaid wallet in Postgres
// through the store (the ledger's rules are models/wallet.go); top-up also
// starts the top-up invoice's collection in Temporal.

func (a *app) walletCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "wallet",
		Short: "Inspect and change a tenant's prepaid wallet",
		Long: "A tenant's wallet holds prepaid credit in its currency (minor units): deposits from paid top-ups and grants from operators, " +
			"less what settled usage, withdrawals and grant expiries took. spendable = funds - unsettled promises; grants are used before deposits.",
	}
	cmd.AddCommand(a.walletShow(), a.walletHistory(), a.walletGrant(), a.walletTopUp(), a.walletWithdraw(), a.walletAutoRecharge(), a.walletPayInvoices())
	return cmd
}

// amountFlag reads a required positive --amount.
func amountFlag(cmd *cobra.Command, amount int64) error {
	if err := requireFlag(cmd, "amount"); err != nil {
		return err
	}
	if amount <= 0 {
		return &models.ValidationError{Field: "--amount", Reason: fmt.Sprintf("amount %d is not positive", amount)}
	}
	return nil
}

func (a *app) walletShow() *cobra.Command {
	var (
		tenant string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "show --tenant PUBKEY",
		Short: "Show a wallet: funds, promised, settled, spendable, grants, auto-recharge, open top-ups",
		Long:  "Shows the wallet from Postgres. Spendable is never shown below zero; totals that break a wallet rule are reported as a warning on stderr (and in the JSON's violation).",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			id, st, err := a.tenantInDB(cmd, tenant)
			if err != nil {
				return err
			}
			v, err := api.LoadWalletView(cmd.Context(), st, id)
			if err != nil {
				return err
			}
			if v.Violation != "" {
				fmt.Fprintln(a.stderr, "warning:", v.Violation)
			}
			if asJSON {
				return a.printJSON(v)
			}
			a.printWallet(v)
			return nil
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant", "", "tenant's Nostr public key (hex or npub)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) printWallet(v api.WalletView) {
	money := func(n int64) string { return models.FormatAmount(n, v.Currency) }
	t := v.Totals
	w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "tenant\t%s\n", v.TenantID)
	fmt.Fprintf(w, "currency\t%s\n", v.Currency)
	fmt.Fprintf(w, "funds\t%s\n", money(v.Funds))
	fmt.Fprintf(w, "promised\t%s\n", money(t.Promised))
	fmt.Fprintf(w, "settled\t%s (%s from grants)\n", money(t.Settled), money(t.SettledFromGrants))
	fmt.Fprintf(w, "unsettled\t%s\n", money(v.Unsettled))
	fmt.Fprintf(w, "deposited\t%s\n", money(t.Deposits))
	fmt.Fprintf(w, "granted\t%s\n", money(t.Grants))
	fmt.Fprintf(w, "withdrawn\t%s\n", money(t.Withdrawn))
	fmt.Fprintf(w, "expired\t%s\n", money(t.Expired))
	fmt.Fprintf(w, "spendable\t%s\n", money(v.Spendable))
	fmt.Fprintf(w, "withdrawable\t%s\n", money(v.Withdrawable))
	if v.AutoRecharge.On() {
		fmt.Fprintf(w, "auto-recharge\t%s when spendable is below %s\n", money(*v.AutoRecharge.Amount), money(*v.AutoRecharge.Threshold))
	} else {
		fmt.Fprintf(w, "auto-recharge\toff\n")
	}
	if v.PayInvoices {
		fmt.Fprintf(w, "pays invoices\ton (an open invoice the wallet covers is paid from it first)\n")
	} else {
		fmt.Fprintf(w, "pays invoices\toff\n")
	}
	fmt.Fprintf(w, "grants\t%d\n", len(v.Grants))
	for _, g := range v.Grants {
		expiry := "never expires"
		if g.ExpiresAt != nil {
			expiry = "expires " + g.ExpiresAt.Format(time.RFC3339)
			if g.ExpiredDone {
				expiry = "expired " + g.ExpiresAt.Format(time.RFC3339)
			}
		}
		fmt.Fprintf(w, "  %s\t%s of %s left, %s\n", g.Key, money(g.Remaining), money(g.Amount), expiry)
	}
	fmt.Fprintf(w, "open top-ups\t%d\n", len(v.OpenTopUps))
	for _, tu := range v.OpenTopUps {
		fmt.Fprintf(w, "  %s\t%s %s\n", tu.InvoiceID, models.FormatAmount(tu.Total, tu.Currency), tu.Status)
	}
	fmt.Fprintf(w, "open payouts\t%d\n", len(v.OpenPayouts))
	for _, p := range v.OpenPayouts {
		fmt.Fprintf(w, "  %s\t%s %s, requested %s\n", p.Key, money(p.Amount), p.Method, p.RequestedAt.Format(time.RFC3339))
	}
	_ = w.Flush()
}

func (a *app) walletHistory() *cobra.Command {
	var (
		tenant string
		before int64
		limit  int
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "history --tenant PUBKEY [--before SEQ] [--limit N]",
		Short: "List the wallet's ledger, newest first",
		Long:  "Lists up to --limit ledger entries (1-500) older than entry --before (default: from the newest). The last line names the --before of the next page, if any.",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			id, st, err := a.tenantInDB(cmd, tenant)
			if err != nil {
				return err
			}
			page, err := st.LedgerPage(cmd.Context(), id, before, limit)
			if err != nil {
				return err
			}
			if asJSON {
				return a.printJSON(page)
			}
			w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "SEQ\tAT\tKIND\tAMOUNT\tKEY\tDETAIL")
			for _, e := range page.Entries {
				detail := ""
				switch {
				case e.ExpiresAt != nil:
					detail = "expires " + e.ExpiresAt.Format(time.RFC3339)
				case e.Kind == models.EntrySettle:
					detail = models.FormatAmount(e.FromGrants, e.Currency) + " from grants"
				case e.InvoiceID != "":
					detail = "invoice " + e.InvoiceID
				}
				fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\n", e.Seq, e.At.Format(time.RFC3339), e.Kind, models.FormatAmount(e.Amount, e.Currency), e.Key, detail)
			}
			if page.Next != 0 {
				fmt.Fprintf(w, "more: --before %d\n", page.Next)
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant", "", "tenant's Nostr public key (hex or npub)")
	cmd.Flags().Int64Var(&before, "before", 0, "list entries older than this sequence number (the previous page's next)")
	cmd.Flags().IntVar(&limit, "limit", 50, "entries per page (1-500)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// printWrite prints a grant's or a withdrawal's outcome.
func (a *app) printWrite(res store.WalletResult, asJSON bool) error {
	if asJSON {
		return a.printJSON(api.WalletWriteView{Entry: res.Entry, Wallet: res.Wallet, Duplicate: res.Duplicate})
	}
	e := res.Entry
	verb := "recorded"
	if res.Duplicate {
		verb = "already recorded (nothing changed)"
	}
	fmt.Fprintf(a.stdout, "%s %s %s of %s (entry %d)\n", verb, e.Kind, e.Key, models.FormatAmount(e.Amount, e.Currency), e.Seq)
	fmt.Fprintf(a.stdout, "spendable %s, withdrawable %s\n", models.FormatAmount(res.Wallet.Spendable, res.Wallet.Currency),
		models.FormatAmount(res.Wallet.Withdrawable, res.Wallet.Currency))
	return nil
}

func (a *app) walletGrant() *cobra.Command {
	var (
		tenant, expires, key, currency string
		amount                         int64
		asJSON                         bool
	)
	cmd := &cobra.Command{
		Use:   "grant --tenant PUBKEY --amount N [--expires RFC3339] [--key K] [--currency C]",
		Short: "Give the tenant credit (an operator grant), optionally expiring",
		Long: "Grants --amount minor units of credit in the wallet's currency. Grants are used before deposits, earliest expiry first, and are not withdrawable; " +
			"at its expiry a grant loses its unused remainder. --key makes the call idempotent (the same key again changes nothing); without it a fresh key is generated. " +
			"--currency, when given, must be the wallet's.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := amountFlag(cmd, amount); err != nil {
				return err
			}
			wr := store.WalletWrite{Key: key, Amount: amount, Currency: models.Currency(currency)}
			if wr.Key == "" {
				wr.Key = "cli-" + newID()
			}
			if expires != "" {
				t, err := time.Parse(time.RFC3339, expires)
				if err != nil {
					return &billing.ValidationError{Field: "--expires", Reason: fmt.Sprintf("%q is not an RFC3339 instant", expires)}
				}
				wr.ExpiresAt = &t
			}
			id, st, err := a.tenantInDB(cmd, tenant)
			if err != nil {
				return err
			}
			wr.TenantID = id
			res, err := st.Grant(cmd.Context(), wr)
			if err != nil {
				return api.WalletError(err)
			}
			return a.printWrite(res, asJSON)
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant", "", "tenant's Nostr public key (hex or npub)")
	cmd.Flags().Int64Var(&amount, "amount", 0, "credit in minor units (e.g. 500 = 5.00 USD)")
	cmd.Flags().StringVar(&expires, "expires", "", "expiry instant (RFC3339, in the future; default: never)")
	cmd.Flags().StringVar(&key, "key", "", "idempotency key (default: generated)")
	cmd.Flags().StringVar(&currency, "currency", "", "the wallet's currency, checked when given")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) walletTopUp() *cobra.Command {
	var (
		tenant, key, currency string
		amount                int64
		asJSON                bool
	)
	cmd := &cobra.Command{
		Use:   "top-up --tenant PUBKEY --amount N [--key K] [--currency C]",
		Short: "Create a top-up invoice and start collecting it",
		Long: "Creates an invoice of kind top_up for --amount minor units and starts its InvoicePayment workflow, which collects it like any invoice " +
			"(NWC, card, then a DM with the payment link). When it is paid, the payment deposits its total in the wallet. " +
			"--key makes the call idempotent (the same key returns the same invoice); without it a fresh key is generated. Prints the invoice id and, when the hosted pages are configured, its payment page link.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := amountFlag(cmd, amount); err != nil {
				return err
			}
			if key == "" {
				key = "cli-" + newID()
			}
			id, st, err := a.tenantInDB(cmd, tenant)
			if err != nil {
				return err
			}
			inv, err := st.CreateTopUp(cmd.Context(), store.TopUpParams{TenantID: id, Key: key, Amount: amount, Currency: models.Currency(currency)})
			if err != nil {
				return err
			}
			bc, err := a.billingClient(cmd.Context())
			if err != nil {
				return fmt.Errorf("top-up invoice %s was created but its collection was not started (run this again with --key %s): %w", inv.ID, key, err)
			}
			if _, err := bc.CollectInvoice(cmd.Context(), inv.ID); err != nil {
				return fmt.Errorf("top-up invoice %s was created but its collection was not started (run this again with --key %s): %w", inv.ID, key, err)
			}
			a.balanceEvent(cmd, id, contract.BalanceTopUpRequested, inv.ID)
			page, err := a.invoicePageURL(cmd.Context(), inv.ID)
			if err != nil {
				return err
			}
			if asJSON {
				return a.printJSON(api.TopUpView{Invoice: inv, PaymentURL: page})
			}
			w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintf(w, "invoice\t%s\n", inv.ID)
			fmt.Fprintf(w, "amount\t%s\n", models.FormatAmount(inv.Total, inv.Currency))
			fmt.Fprintf(w, "status\t%s (collection started)\n", inv.Status)
			if page != "" {
				fmt.Fprintf(w, "page\t%s\n", page)
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant", "", "tenant's Nostr public key (hex or npub)")
	cmd.Flags().Int64Var(&amount, "amount", 0, "top-up in minor units (e.g. 2000 = 20.00 USD)")
	cmd.Flags().StringVar(&key, "key", "", "idempotency key (default: generated)")
	cmd.Flags().StringVar(&currency, "currency", "", "the wallet's currency, checked when given")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) walletWithdraw() *cobra.Command {
	var (
		tenant, reference, currency, bolt11, key string
		amount                                   int64
		asJSON                                   bool
	)
	cmd := &cobra.Command{
		Use:   "withdraw --tenant PUBKEY --amount N (--bolt11 INVOICE --key K | --reference R) [--currency C]",
		Short: "Pay unspent deposits back: over Lightning, or record an operator's payout",
		Long: "Takes --amount minor units of unspent deposits out of the wallet (grants and what promises hold are not withdrawable).\n\n" +
			"With --bolt11 and --key, the engine's Lightning node pays the tenant's invoice: it must be for the engine's network, ask exactly " +
			"the amount's value in millisatoshis at the engine's rate, and stay payable for at least a minute. The request is recorded at once " +
			"(the same --key again changes nothing) and its payout workflow, payout/<tenant>/<key>, pays it; if the payment fails the amount " +
			"goes back to the wallet.\n\nWith --reference, it records a payout the operator made already, under that reference (also its key).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := amountFlag(cmd, amount); err != nil {
				return err
			}
			if bolt11 != "" {
				return a.lightningWithdraw(cmd, tenant, key, bolt11, reference, currency, amount, asJSON)
			}
			if err := requireFlag(cmd, "reference"); err != nil {
				return err
			}
			id, st, err := a.tenantInDB(cmd, tenant)
			if err != nil {
				return err
			}
			res, err := st.Withdraw(cmd.Context(), store.WalletWrite{TenantID: id, Key: reference, Amount: amount, Currency: models.Currency(currency)})
			if err != nil {
				return api.WalletError(err)
			}
			if !res.Duplicate {
				a.balanceEvent(cmd, id, contract.BalanceWithdrawalRequested, reference)
			}
			return a.printWrite(res, asJSON)
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant", "", "tenant's Nostr public key (hex or npub)")
	cmd.Flags().Int64Var(&amount, "amount", 0, "withdrawal in minor units")
	cmd.Flags().StringVar(&bolt11, "bolt11", "", "the tenant's BOLT11 invoice: pay the withdrawal out over Lightning")
	cmd.Flags().StringVar(&key, "key", "", "the Lightning withdrawal's request id (its idempotency key)")
	cmd.Flags().StringVar(&reference, "reference", "", "the operator's payout reference (its key), for a payout made already")
	cmd.Flags().StringVar(&currency, "currency", "", "the wallet's currency, checked when given")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// lightningWithdraw records a Lightning withdrawal through its payout
// workflow and prints the recorded request.
func (a *app) lightningWithdraw(cmd *cobra.Command, tenant, key, bolt11, reference, currency string, amount int64, asJSON bool) error {
	if reference != "" {
		return &billing.ValidationError{Field: "--reference", Reason: "a Lightning withdrawal's reference is its payment's preimage; give either --bolt11 or --reference"}
	}
	if err := requireFlag(cmd, "key"); err != nil {
		return err
	}
	id, err := models.ParseTenantID(tenant)
	if err != nil {
		return err
	}
	bc, err := a.billingClient(cmd.Context())
	if err != nil {
		return err
	}
	res, err := bc.Withdraw(cmd.Context(), billing.WithdrawalRequest{TenantID: id, Key: key, Amount: amount, Currency: models.Currency(currency), BOLT11: bolt11})
	if err != nil {
		return api.WalletError(err)
	}
	if asJSON {
		return a.printJSON(res)
	}
	w := res.Withdrawal
	verb := "recorded"
	if res.Duplicate {
		verb = "already recorded"
	}
	fmt.Fprintf(a.stdout, "%s Lightning withdrawal %s of %s (%d msat, payment hash %s): %s\n", verb, w.Key, models.FormatAmount(w.Amount, w.Currency),
		w.AmountMsat, w.PaymentHash, w.Status)
	fmt.Fprintf(a.stdout, "spendable %s, withdrawable %s; the payout runs in workflow %s\n", models.FormatAmount(res.Spendable, w.Currency),
		models.FormatAmount(res.Withdrawable, w.Currency), contract.PayoutWorkflowID(id, w.Key))
	return nil
}

func (a *app) walletAutoRecharge() *cobra.Command {
	var (
		tenant            string
		threshold, amount int64
		off, asJSON       bool
	)
	cmd := &cobra.Command{
		Use:   "auto-recharge --tenant PUBKEY (--threshold N --amount M | --off)",
		Short: "Set or clear the wallet's auto-recharge (top up M when spendable falls below N)",
		Long: "Stores the wallet's auto-recharge setting: when spendable falls below --threshold, a top-up of --amount is to be started. " +
			"The wallet's balance sync (balance/<tenant>) starts it after a sync that finds spendable below the threshold, at most one open auto top-up at a time; " +
			"a failed one is collected on its invoice's dunning schedule before another can start.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var set store.AutoRecharge
			switch {
			case off && (cmd.Flags().Changed("threshold") || cmd.Flags().Changed("amount")):
				return usagef("--off turns auto-recharge off: give it without --threshold and --amount")
			case off:
			default:
				if !cmd.Flags().Changed("threshold") || !cmd.Flags().Changed("amount") {
					return usagef("give --threshold and --amount, or --off (see %s --help)", cmd.CommandPath())
				}
				set = store.AutoRecharge{Threshold: &threshold, Amount: &amount}
			}
			id, st, err := a.tenantInDB(cmd, tenant)
			if err != nil {
				return err
			}
			got, err := st.SetWalletAutoRecharge(cmd.Context(), id, set)
			if err != nil {
				return err
			}
			if asJSON {
				return a.printJSON(got)
			}
			if !got.On() {
				_, err = fmt.Fprintln(a.stdout, "auto-recharge off")
				return err
			}
			w, err := st.WalletState(cmd.Context(), id)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(a.stdout, "auto-recharge: top up %s when spendable is below %s\n",
				models.FormatAmount(*got.Amount, w.Currency), models.FormatAmount(*got.Threshold, w.Currency))
			return err
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant", "", "tenant's Nostr public key (hex or npub)")
	cmd.Flags().Int64Var(&threshold, "threshold", 0, "spendable below which a top-up starts (minor units)")
	cmd.Flags().Int64Var(&amount, "amount", 0, "top-up amount (minor units, positive)")
	cmd.Flags().BoolVar(&off, "off", false, "turn auto-recharge off")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) walletPayInvoices() *cobra.Command {
	var (
		tenant          string
		on, off, asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "pay-invoices --tenant PUBKEY (--on | --off)",
		Short: "Turn on or off paying the tenant's invoices from its wallet first",
		Long: "On (the default), an open invoice the wallet covers in full is paid from the wallet before NWC, card and DM. " +
			"Off, the wallet keeps its credit and invoices go to the other rails.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if on == off {
				return usagef("give exactly one of --on and --off (see %s --help)", cmd.CommandPath())
			}
			id, st, err := a.tenantInDB(cmd, tenant)
			if err != nil {
				return err
			}
			if err := st.SetWalletPaysInvoices(cmd.Context(), id, on); err != nil {
				return err
			}
			if asJSON {
				return a.printJSON(api.PayInvoicesView{Enabled: &on})
			}
			state := "off"
			if on {
				state = "on"
			}
			_, err = fmt.Fprintf(a.stdout, "pay invoices from wallet: %s\n", state)
			return err
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant", "", "tenant's Nostr public key (hex or npub)")
	cmd.Flags().BoolVar(&on, "on", false, "the wallet pays open invoices it covers first")
	cmd.Flags().BoolVar(&off, "off", false, "the wallet does not pay invoices")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// balanceEvent starts the tenant's aggressive balance sync. Best effort: the
// lifetime sync catches up anyway, so a failure is only a warning.
func (a *app) balanceEvent(cmd *cobra.Command, tenant models.TenantID, kind, ref string) {
	bc, err := a.billingClient(cmd.Context())
	if err == nil {
		err = bc.ReportBalanceEvent(cmd.Context(), tenant, contract.BalanceEvent{Kind: kind, Reference: ref})
	}
	if err != nil {
		fmt.Fprintf(a.stderr, "warning: the balance sync was not started (the hourly sync catches up): %v\n", err)
	}
}

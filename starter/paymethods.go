package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/secret"
	"github.com/billflow/billflow/vault"
)

func (a *app) paymentCommands() []*cobra.Command {
	return []*cobra.Command{a.tenantSetNWC(), a.tenantSetStripe(), a.tenantPaymentMethods()}
}

func (a *app) tenantSetNWC() *cobra.Command {
	var (
		tenant, file string
		clear        bool
	)
	cmd := &cobra.Command{
		Use:   "set-nwc --tenant PUBKEY (--url-file FILE | --url-file - | --clear)",
		Short: "Store a tenant's Nostr Wallet Connect URL, sealed (AES-256-GCM, BILLFLOW_SECRET_KEY)",
		Long: "Reads the nostr+walletconnect:// URL from a file or standard input (never from the command line, which other users can see),\n" +
			"validates it and stores it sealed and bound to the tenant. Only the activity that pays opens it.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlag(cmd, "tenant"); err != nil {
				return err
			}
			if clear == (file != "") {
				return usagef("give exactly one of --url-file or --clear")
			}
			id, err := models.ParseTenantID(tenant)
			if err != nil {
				return err
			}
			v, err := a.vault(cmd)
			if err != nil {
				return err
			}
			if err := requireTenant(cmd.Context(), a.store, id); err != nil {
				return err
			}
			if clear {
				if err := v.ClearNWC(cmd.Context(), id); err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "%s: NWC connection removed\n", id)
				return nil
			}
			url, err := readSecretLine(cmd.InOrStdin(), file)
			if err != nil {
				return err
			}
			wallet, err := v.SetNWC(cmd.Context(), id, url)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "%s: NWC connection stored sealed (wallet %s)\n", id, wallet)
			return nil
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant", "", "tenant's Nostr public key (hex or npub)")
	cmd.Flags().StringVar(&file, "url-file", "", "file holding the connection URL, or - for standard input")
	cmd.Flags().BoolVar(&clear, "clear", false, "remove the tenant's NWC connection")
	return cmd
}

// readSecretLine reads the first non-empty line of a file or stdin ("-").
func readSecretLine(stdin io.Reader, file string) (string, error) {
	r := stdin
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return "", usagef("read --url-file: %v", err)
		}
		defer f.Close()
		r = f
	}
	sc := bufio.NewScanner(io.LimitReader(r, 64<<10))
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			return line, nil
		}
	}
	return "", usagef("no connection URL in --url-file")
}

// vault opens the database and the sealing key (BILLFLOW_SECRET_KEY).
func (a *app) vault(cmd *cobra.Command) (*vault.Vault, error) {
	raw := a.cfg.SecretKey
	if raw == "" {
		return nil, fmt.Errorf("BILLFLOW_SECRET_KEY is not set: it seals payment secrets (scripts/dev.sh writes one into .data/env)")
	}
	key, err := secret.ParseKey(raw)
	if err != nil {
		return nil, fmt.Errorf("BILLFLOW_SECRET_KEY: %w", err)
	}
	box, err := secret.NewBox(key)
	if err != nil {
		return nil, err
	}
	st, err := a.db(cmd.Context())
	if err != nil {
		return nil, err
	}
	return vault.New(box, st), nil
}

func (a *app) tenantSetStripe() *cobra.Command {
	var tenant, customer string
	cmd := &cobra.Command{
		Use:   "set-stripe-customer --tenant PUBKEY --customer cus_... ",
		Short: "Link a tenant to its Stripe customer (whose saved card is charged off-session); empty --customer unlinks",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlag(cmd, "tenant", "customer"); err != nil {
				return err
			}
			id, err := models.ParseTenantID(tenant)
			if err != nil {
				return err
			}
			st, err := a.db(cmd.Context())
			if err != nil {
				return err
			}
			if err := requireTenant(cmd.Context(), st, id); err != nil {
				return err
			}
			if err := st.SetStripeCustomer(cmd.Context(), id, customer); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "%s: Stripe customer %q\n", id, customer)
			return nil
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant", "", "tenant's Nostr public key (hex or npub)")
	cmd.Flags().StringVar(&customer, "customer", "", "Stripe customer id (cus_...)")
	return cmd
}

func (a *app) tenantPaymentMethods() *cobra.Command {
	var (
		tenant string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "payment-methods --tenant PUBKEY",
		Short: "Show how a tenant pays automatically (never shows secrets)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			id, st, err := a.tenantInDB(cmd, tenant)
			if err != nil {
				return err
			}
			pm, err := st.GetPaymentMethods(cmd.Context(), id)
			if err != nil {
				return err
			}
			if asJSON {
				return a.printJSON(pm)
			}
			w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintf(w, "tenant\t%s\n", pm.TenantID)
			if pm.HasNWC() {
				fmt.Fprintf(w, "NWC wallet\t%s (connection sealed)\n", pm.NWCWalletPubkey)
			} else {
				fmt.Fprintf(w, "NWC wallet\tnone\n")
			}
			if pm.NWCLastError != "" {
				fmt.Fprintf(w, "last NWC error\t%s (%s)\n", pm.NWCLastError, pm.NWCErrorAt.Format(time.RFC3339))
			}
			cus := pm.StripeCustomerID
			if cus == "" {
				cus = "none"
			}
			fmt.Fprintf(w, "Stripe customer\t%s\n", cus)
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant", "", "tenant's Nostr public key (hex or npub)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON (never includes secrets)")
	return cmd
}

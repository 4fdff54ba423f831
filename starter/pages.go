package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/billflow/billflow/billing"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/paypage/links"
	"github.com/billflow/billflow/store"
)

// pageLinks mints the hosted pages' links (package paypage) when
// BILLFLOW_PUBLIC_URL and BILLFLOW_SECRET_KEY are set; nil when the pages
// are not configured.
func (a *app) pageLinks(ctx context.Context) (*links.Issuer, error) {
	if a.cfg.PublicURL == "" {
		return nil, nil
	}
	st, err := a.db(ctx)
	if err != nil {
		return nil, err
	}
	return links.New(st, a.cfg.SecretKey, a.cfg.PublicURL)
}

// requirePageLinks is pageLinks for the commands that exist to print one.
func (a *app) requirePageLinks(ctx context.Context) (*links.Issuer, error) {
	if a.cfg.PublicURL == "" || a.cfg.SecretKey == "" {
		return nil, &models.ValidationError{Field: "BILLFLOW_PUBLIC_URL", Reason: "is not set (with BILLFLOW_SECRET_KEY): the hosted pages' links need the api's public URL and the key their tokens derive from"}
	}
	return a.pageLinks(ctx)
}

// tenantPortalLink prints a tenant's account page link.
func (a *app) tenantPortalLink() *cobra.Command {
	var (
		tenant string
		revoke bool
	)
	cmd := &cobra.Command{
		Use:   "portal-link --tenant PUBKEY [--revoke]",
		Short: "Print the tenant's account page link (<BILLFLOW_PUBLIC_URL>/account/<token>)",
		Long: "Prints the link to the tenant's hosted account page: its standing and its invoices, each linking to its payment page. " +
			"The link is a capability: whoever has it sees the page. --revoke invalidates the current link (it answers 404 from then on) and prints a new one.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			id, _, err := a.tenantInDB(cmd, tenant)
			if err != nil {
				return err
			}
			li, err := a.requirePageLinks(cmd.Context())
			if err != nil {
				return err
			}
			if revoke {
				if _, err := li.Revoke(cmd.Context(), store.PageAccount, string(id)); err != nil {
					return err
				}
			}
			u, err := li.AccountURL(cmd.Context(), id)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(a.stdout, u)
			return err
		},
	}
	cmd.Flags().StringVar(&tenant, "tenant", "", "tenant public key (hex)")
	cmd.Flags().BoolVar(&revoke, "revoke", false, "revoke the current link and print a new one")
	return cmd
}

// invoicePageLink prints an invoice's payment page link.
func (a *app) invoicePageLink() *cobra.Command {
	var (
		id     string
		revoke bool
	)
	cmd := &cobra.Command{
		Use:   "page-link --invoice ID [--revoke]",
		Short: "Print the invoice's payment page link (<BILLFLOW_PUBLIC_URL>/pay/<token>)",
		Long: "Prints the link to the invoice's hosted payment page, the one its DMs and invoice.created event carry. " +
			"--revoke invalidates the current link (it answers 404 from then on) and prints a new one.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := requireFlag(cmd, "invoice"); err != nil {
				return err
			}
			li, err := a.requirePageLinks(cmd.Context())
			if err != nil {
				return err
			}
			if revoke {
				if _, err := li.Revoke(cmd.Context(), store.PageInvoice, id); err != nil {
					return err
				}
			}
			u, err := li.InvoiceURL(cmd.Context(), id)
			if errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("invoice %q: %w", id, billing.ErrInvoiceNotFound)
			}
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(a.stdout, u)
			return err
		},
	}
	cmd.Flags().StringVar(&id, "invoice", "", "invoice id")
	cmd.Flags().BoolVar(&revoke, "revoke", false, "revoke the current link and print a new one")
	return cmd
}

// invoicePageURL is the invoice's page link for `invoice show`, or "" when
// the pages are not configured.
func (a *app) invoicePageURL(ctx context.Context, invoiceID string) (string, error) {
	li, err := a.pageLinks(ctx)
	if li == nil || err != nil {
		return "", err
	}
	return li.InvoiceURL(ctx, invoiceID)
}

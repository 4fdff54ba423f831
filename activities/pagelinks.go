package activities

import (
	"context"
	"fmt"
	"strings"

	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/store"
)

// PageLinks mints the links of the api's hosted pages (paypage/links.Issuer).
type PageLinks interface {
	// InvoiceURL is the invoice's payment page, <public URL>/pay/<token>.
	InvoiceURL(ctx context.Context, invoiceID string) (string, error)
	// AccountURL is the tenant's account page, <public URL>/account/<token>.
	AccountURL(ctx context.Context, tenant models.TenantID) (string, error)
}

// paymentLink is the link a payment DM carries: the invoice's hosted page
// when the pages are configured, else <AppURL>/account?invoice=<id>.
func (a *Activities) paymentLink(ctx context.Context, inv store.Invoice) (string, error) {
	if a.Rails.Pages == nil {
		return fmt.Sprintf("%s/account?invoice=%s", strings.TrimRight(a.Rails.AppURL, "/"), inv.ID), nil
	}
	u, err := a.Rails.Pages.InvoiceURL(ctx, inv.ID)
	if err != nil {
		return "", fmt.Errorf("payment page link: %w", err)
	}
	return u, nil
}

// accountLink is the link a suspension DM carries: the tenant's account
// page when the pages are configured, else <AppURL>/account.
func (a *Activities) accountLink(ctx context.Context, tenant models.TenantID) (string, error) {
	if a.Rails.Pages == nil {
		return strings.TrimRight(a.Rails.AppURL, "/") + "/account", nil
	}
	u, err := a.Rails.Pages.AccountURL(ctx, tenant)
	if err != nil {
		return "", fmt.Errorf("account page link: %w", err)
	}
	return u, nil
}

// eventPaymentURL is the payment page link an invoice.created event
// carries, "" when the pages are off.
func (a *Activities) eventPaymentURL(ctx context.Context, typ, subject string) (string, error) {
	if typ != "invoice.created" || a.Rails.Pages == nil {
		return "", nil
	}
	return a.Rails.Pages.InvoiceURL(ctx, subject)
}

package activities

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/store"
)

type fakePages struct{}

func (fakePages) InvoiceURL(_ context.Context, id string) (string, error) {
	return "https://billing.example/pay/tok-" + id, nil
}

func (fakePages) AccountURL(_ context.Context, t models.TenantID) (string, error) {
	return "https://billing.example/account/tok-" + string(t), nil
}

// DMs and invoice.created events carry the hosted pages' links when they are
// configured, the application's URL otherwise.
func TestPageLinksInMessages(t *testing.T) {
	ctx := context.Background()
	inv := store.Invoice{ID: "inv-1", Total: 2050, Currency: "usd"}
	a := &Activities{Rails: Rails{AppURL: "https://app.example/"}}
	link, err := a.paymentLink(ctx, inv)
	require.NoError(t, err)
	require.Equal(t, "https://app.example/account?invoice=inv-1", link)
	acct, err := a.accountLink(ctx, "ab")
	require.NoError(t, err)
	require.Equal(t, "https://app.example/account", acct)
	page, err := a.eventPaymentURL(ctx, "invoice.created", "inv-1")
	require.NoError(t, err)
	require.Empty(t, page)

	a.Rails.Pages = fakePages{}
	link, err = a.paymentLink(ctx, inv)
	require.NoError(t, err)
	require.Contains(t, PaymentMessage(link, inv, "", false), "\n\nhttps://billing.example/pay/tok-inv-1")
	acct, err = a.accountLink(ctx, "ab")
	require.NoError(t, err)
	require.Contains(t, SuspensionMessage(acct, []store.Invoice{inv}), "Pay them at https://billing.example/account/tok-ab to restore it.")
	page, err = a.eventPaymentURL(ctx, "invoice.created", "inv-1")
	require.NoError(t, err)
	require.Equal(t, "https://billing.example/pay/tok-inv-1", page)
	page, err = a.eventPaymentURL(ctx, "invoice.paid", "inv-1")
	require.NoError(t, err)
	require.Empty(t, page, "only invoice.created carries the link")
}

//go:build integration

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/api"
	"github.com/billflow/billflow/internal/testkit"
	"github.com/billflow/billflow/rails/card"
	stripesandbox "github.com/billflow/billflow/sandbox/stripe"
	"github.com/billflow/billflow/store"
)

// The HTTP ingress: application endpoints behind a bearer token, and a card
// payment whose only news is Stripe's signed webhook (from the Stripe
// sandbox) settling the invoice through its workflow, once.
func TestAPIAndStripeWebhookSettlesInvoice(t *testing.T) {
	ctx := context.Background()
	s := newStack(t)
	s.startWorker()
	const token, whsec = "e2e-api-token", "whsec_e2e"
	srv := &api.Server{Billing: s.billing, Store: s.store, Token: token, StripeWebhookSecret: whsec}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	tenant := testkit.NewTenantID(t)

	post := func(path, tok string, body any) (int, map[string]any) {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+path, bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	code, _ := post("/v1/tenants/"+string(tenant)+"/activities", "wrong", map[string]any{})
	require.Equal(t, http.StatusUnauthorized, code)
	code, body := post("/v1/tenants/"+string(tenant)+"/activities", token, map[string]any{"id": "h1", "type": "resource_exploded", "resource_id": "r"})
	require.Equal(t, http.StatusBadRequest, code)
	require.Contains(t, body["message"], "resource_exploded")
	// A tenant that was never created is not created by its first activity
	// unless the caller asks for it.
	code, body = post("/v1/tenants/"+string(tenant)+"/activities", token, map[string]any{"id": "h2", "type": "resource_created", "resource_id": "relay-1", "plan_id": "pro"})
	require.Equal(t, http.StatusNotFound, code, body)
	require.Contains(t, body["message"], string(tenant))
	code, body = post("/v1/tenants/"+string(tenant)+"/activities", token, map[string]any{"id": "h2", "type": "resource_created", "resource_id": "relay-1", "plan_id": "pro", "create_tenant": true})
	require.Equal(t, http.StatusOK, code, body)
	require.Equal(t, float64(2000), body["item"].(map[string]any)["amount"])

	renewed, err := s.billing.RenewNow(ctx, string(tenant))
	require.NoError(t, err)
	require.NotEmpty(t, renewed.InvoiceID)
	code, _ = post("/v1/invoices/"+renewed.InvoiceID+"/payments", token, map[string]any{"rail": "bitcoin-by-mail"})
	require.Equal(t, http.StatusBadRequest, code)

	// A Stripe sandbox that delivers its webhooks to the ingress.
	sb, err := stripesandbox.Start(ctx, stripesandbox.Options{APIKey: "sk_test_e2e", WebhookURL: ts.URL + "/webhooks/stripe", WebhookSecret: whsec,
		Customers: []stripesandbox.Customer{{ID: "cus_e2e", PaymentMethods: []stripesandbox.PaymentMethod{{ID: stripesandbox.CardVisa}}, DefaultPaymentMethod: stripesandbox.CardVisa}}})
	require.NoError(t, err)
	t.Cleanup(sb.Close)
	cc, err := card.New(card.Config{APIKey: "sk_test_e2e", BackendURL: sb.URL()})
	require.NoError(t, err)
	pm, found, err := cc.DefaultPaymentMethod(ctx, "cus_e2e")
	require.NoError(t, err)
	require.True(t, found)
	res, err := cc.ChargeOffSession(ctx, card.ChargeRequest{CustomerID: "cus_e2e", PaymentMethodID: pm, AmountMinor: renewed.Total,
		Currency: "usd", InvoiceID: renewed.InvoiceID, IdempotencyKey: card.IdempotencyKey(renewed.InvoiceID, 1)})
	require.NoError(t, err)
	require.Equal(t, card.OutcomeSucceeded, res.Outcome)

	s.waitFor("the webhook settles the invoice", 30*time.Second, func() (bool, error) {
		inv, _, err := s.store.GetInvoice(ctx, renewed.InvoiceID)
		return inv.Status == store.InvoicePaid, err
	})
	inv, _, err := s.store.GetInvoice(ctx, renewed.InvoiceID)
	require.NoError(t, err)
	require.Equal(t, "stripe", inv.PaidRail)
	require.Equal(t, res.PaymentIntentID, inv.PaidReference)
	require.Equal(t, 1, sb.ChargeCount(renewed.InvoiceID))
	var evID string
	require.NoError(t, s.store.Pool().QueryRow(ctx, `SELECT id FROM stripe_events WHERE invoice_id=$1 AND type='payment_intent.succeeded'`, renewed.InvoiceID).Scan(&evID))

	// A redelivery is recognised and changes nothing; a forged delivery is refused.
	require.NoError(t, sb.Redeliver(ctx, evID))
	require.Equal(t, 1, s.count(`SELECT count(*) FROM stripe_events WHERE id=$1`, evID))
	require.Equal(t, 1, s.count(`SELECT count(*) FROM events WHERE type='invoice.paid' AND subject_id=$1`, renewed.InvoiceID))
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+"/webhooks/stripe", bytes.NewReader([]byte(`{"id":"evt_forged"}`)))
	req.Header.Set("Stripe-Signature", "t=1,v1=00")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusBadRequest, resp.StatusCode)

	// The application sees the result through its own endpoint too.
	s.waitFor("the tenant workflow drops the paid invoice", 30*time.Second, func() (bool, error) {
		st, err := s.billing.Tenant(ctx, string(tenant))
		return len(st.OpenInvoices) == 0, err
	})
}

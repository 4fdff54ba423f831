//go:build integration

package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v76"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/worker"

	"github.com/billflow/billflow/activities"
	"github.com/billflow/billflow/api"
	"github.com/billflow/billflow/billing"
	"github.com/billflow/billflow/internal/testkit"
	"github.com/billflow/billflow/models"
	stripesandbox "github.com/billflow/billflow/sandbox/stripe"
	"github.com/billflow/billflow/store"
	"github.com/billflow/billflow/workflows"
)

// A succeeded PaymentIntent whose amount or currency does not match the
// invoice used to be logged and marked processed, its money recorded
// nowhere. It is now reported like any payment and the settlement decides:
// the webhook reports it to the invoice's workflow (signal-with-start, here
// starting it), whose Settle activity is the one settlement path.
func TestStripeWebhookMismatchedAmountIsSettled(t *testing.T) {
	ctx := context.Background()
	const whsec = "whsec_api_test"
	signedAt := time.Unix(1_760_000_000, 0)
	st, hs, id := newPaymentsHarness(t, whsec, signedAt)
	var err error

	deliver := func(evID, piID string, received int64, currency string) {
		t.Helper()
		payload, err := json.Marshal(map[string]any{
			"id": evID, "object": "event", "api_version": stripe.APIVersion, "created": signedAt.Unix(),
			"type": "payment_intent.succeeded", "livemode": false, "pending_webhooks": 1,
			"data": map[string]any{"object": map[string]any{
				"id": piID, "object": "payment_intent", "amount": received, "amount_received": received, "currency": currency,
				"status": "succeeded", "metadata": map[string]string{"invoice_id": id},
			}},
		})
		require.NoError(t, err)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, hs.URL+"/webhooks/stripe", bytes.NewReader(payload))
		req.Header.Set("Stripe-Signature", stripesandbox.SignatureHeader(payload, whsec, signedAt))
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}

	// Less than due: a partial payment, the invoice stays open for the rest.
	deliver("evt_part", "pi_part", 1500, "usd")
	var inv store.Invoice
	require.Eventually(t, func() bool {
		inv, _, err = st.GetInvoice(ctx, id)
		return err == nil && inv.AmountPaid > 0
	}, 30*time.Second, 50*time.Millisecond, "the partial payment is recorded")
	assert.NotEqual(t, store.InvoicePaid, inv.Status)
	assert.Equal(t, int64(1500), inv.AmountPaid)
	assert.Equal(t, int64(500), inv.Due())

	// The wrong currency: recorded whole, to refund, never applied.
	deliver("evt_eur", "pi_eur", 500, "eur")
	// More than the remainder: pays the invoice, the difference to refund.
	deliver("evt_over", "pi_over", 800, "usd")

	require.Eventually(t, func() bool {
		inv, _, err = st.GetInvoice(ctx, id)
		return err == nil && inv.Status == store.InvoicePaid
	}, 30*time.Second, 50*time.Millisecond, "the invoice is paid")
	assert.Equal(t, int64(2000), inv.AmountPaid)
	assert.Equal(t, "pi_over", inv.PaidReference)

	pays, err := st.Payments(ctx, id)
	require.NoError(t, err)
	require.Len(t, pays, 3)
	byRef := map[string]store.Payment{}
	for _, p := range pays {
		byRef[p.Reference] = p
	}
	assert.Equal(t, int64(1500), byRef["pi_part"].AppliedAmount)
	assert.Empty(t, byRef["pi_part"].RefundStatus)
	eur := byRef["pi_eur"]
	assert.False(t, eur.Applied)
	assert.Equal(t, models.Currency("eur"), eur.Currency)
	assert.Equal(t, "to_refund", eur.RefundStatus)
	assert.Equal(t, store.RefundCurrencyMismatch, eur.RefundReason)
	assert.Equal(t, int64(500), eur.RefundAmount)
	over := byRef["pi_over"]
	assert.Equal(t, int64(500), over.AppliedAmount)
	assert.Equal(t, "to_refund", over.RefundStatus)
	assert.Equal(t, int64(300), over.RefundAmount)

	inv, _, err = st.GetInvoice(ctx, id)
	require.NoError(t, err)
	owed, err := st.ToRefund(ctx, inv.TenantID)
	require.NoError(t, err)
	require.Len(t, owed, 2)
	// The test's clock is frozen, so both have the same received_at.
	assert.ElementsMatch(t, []string{"pi_eur", "pi_over"}, []string{owed[0].Reference, owed[1].Reference})

	// Nothing received vouches for nothing (no amount would mean "the amount due").
	deliver("evt_zero", "pi_zero", 0, "usd")
	pays, err = st.Payments(ctx, id)
	require.NoError(t, err)
	assert.Len(t, pays, 3)

	var processed int
	require.NoError(t, st.Pool().QueryRow(ctx, `SELECT count(*) FROM stripe_events WHERE invoice_id = $1`, id).Scan(&processed))
	assert.Equal(t, 4, processed)
}

// newPaymentsHarness runs the invoice workflows on a task queue of the
// test's own and an api in front of them, and makes one open invoice of
// 20.00 USD (no workflow running for it yet).
func newPaymentsHarness(t *testing.T, whsec string, now time.Time) (*store.Store, *httptest.Server, string) {
	t.Helper()
	ctx := context.Background()
	st := testkit.NewStore(t)
	bc := startBillingWorker(t, st)
	srv := &api.Server{Billing: bc, Store: st, Token: "t", StripeWebhookSecret: whsec, Now: func() time.Time { return now }}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)

	tenant := testkit.NewTenantID(t)
	_, _, err := st.EnsureTenant(ctx, tenant, "usd", 600)
	require.NoError(t, err)
	anchor := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	_, err = st.RecordActivity(ctx, tenant, models.Activity{ID: "a1", Type: models.ResourceCreated, ResourceID: "r1", PlanID: "pro", At: anchor}, false)
	require.NoError(t, err)
	claim, err := st.Claim(ctx, store.ClaimParams{TenantID: tenant, ClaimKey: "k1", Period: models.Period{Start: anchor, End: anchor.Add(10 * time.Minute)}})
	require.NoError(t, err)
	require.NotNil(t, claim.Invoice)
	require.Equal(t, int64(2000), claim.Invoice.Total)
	return st, hs, claim.Invoice.ID
}

// POST /v1/invoices/{id}/payments goes through the same settlement: an
// amount below what is due is a partial payment, the rest pays the invoice,
// and a report on the paid invoice is recorded as an overpayment (it used to
// answer "already paid" and write nothing).
func TestApplicationPaymentsGoThroughSettlement(t *testing.T) {
	ctx := context.Background()
	st, hs, id := newPaymentsHarness(t, "whsec_api_test", time.Now())
	report := func(body string) map[string]any {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, hs.URL+"/v1/invoices/"+id+"/payments", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer t")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var out map[string]any
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
		require.Equal(t, http.StatusOK, resp.StatusCode, out)
		return out
	}

	out := report(`{"rail":"manual","reference":"wire-1","amount":1200,"currency":"usd"}`)
	assert.Equal(t, "partial", out["outcome"])
	inv, _, err := st.GetInvoice(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, int64(800), inv.Due())

	out = report(`{"rail":"manual","reference":"wire-2"}`) // no amount: the rest
	assert.Equal(t, "applied", out["outcome"])
	assert.Equal(t, "paid", out["status"])

	out = report(`{"rail":"manual","reference":"wire-3","amount":500}`)
	assert.Equal(t, "overpayment", out["outcome"])
	owed, err := st.ToRefund(ctx, "")
	require.NoError(t, err)
	found := false
	for _, p := range owed {
		found = found || (p.InvoiceID == id && p.Reference == "wire-3" && p.RefundAmount == 500)
	}
	assert.True(t, found, "the report on the paid invoice is kept to refund: %+v", owed)
	inv, _, err = st.GetInvoice(ctx, id)
	require.NoError(t, err)
	assert.Equal(t, store.InvoicePaid, inv.Status)
	assert.Equal(t, int64(2000), inv.AmountPaid)
}

// startBillingWorker runs billflow's tenant, invoice, grace and balance sync workflows with
// their activities on st, on a task queue of the test's own, and returns a
// billing client for that queue.
func startBillingWorker(t *testing.T, st *store.Store) *billing.Client {
	t.Helper()
	tc, queue := testkit.TemporalClient(t), testkit.TaskQueue(t)
	bc := billing.New(tc, queue)
	w := worker.New(tc, queue, worker.Options{})
	w.RegisterWorkflow(workflows.InvoicePayment)
	w.RegisterWorkflow(workflows.GraceWindow)
	w.RegisterWorkflow(workflows.TenantBilling)
	w.RegisterWorkflow(workflows.BalanceSync)
	w.RegisterActivity(&activities.Activities{Store: st, Notify: bc})
	require.NoError(t, w.Start())
	t.Cleanup(w.Stop)
	return bc
}

// The webhook of the charge that paid the invoice, which the card rail
// recorded already (the rail settles what it takes), is a payment the store
// has: it is not reported to the invoice's workflow. Before, it was, by
// signal-with-start: with Stripe's usual delay the workflow had finished,
// and a new run was started only to record a duplicate.
func TestStripeWebhookForTheRecordedChargeReportsNothing(t *testing.T) {
	ctx := context.Background()
	const whsec = "whsec_api_test"
	signedAt := time.Unix(1_760_000_000, 0)
	st, hs, id := newPaymentsHarness(t, whsec, signedAt)
	_, err := st.Settle(ctx, store.PaymentReport{InvoiceID: id, Rail: store.RailStripe, Reference: "pi_rail", Amount: 2000, Currency: "usd", ReceivedAt: signedAt})
	require.NoError(t, err)

	payload, err := json.Marshal(map[string]any{
		"id": "evt_rail", "object": "event", "api_version": stripe.APIVersion, "created": signedAt.Unix(),
		"type": "payment_intent.succeeded", "livemode": false, "pending_webhooks": 1,
		"data": map[string]any{"object": map[string]any{
			"id": "pi_rail", "object": "payment_intent", "amount": 2000, "amount_received": 2000, "currency": "usd",
			"status": "succeeded", "metadata": map[string]string{"invoice_id": id},
		}},
	})
	require.NoError(t, err)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, hs.URL+"/webhooks/stripe", bytes.NewReader(payload))
	req.Header.Set("Stripe-Signature", stripesandbox.SignatureHeader(payload, whsec, signedAt))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	var processed int
	require.NoError(t, st.Pool().QueryRow(ctx, `SELECT count(*) FROM stripe_events WHERE id = 'evt_rail'`).Scan(&processed))
	assert.Equal(t, 1, processed, "the event is taken")
	_, err = testkit.TemporalClient(t).DescribeWorkflowExecution(ctx, workflows.InvoiceWorkflowID(id), "")
	var nf *serviceerror.NotFound
	require.ErrorAs(t, err, &nf, "no workflow run was started for the duplicate")
	pays, err := st.Payments(ctx, id)
	require.NoError(t, err)
	assert.Len(t, pays, 1)
}

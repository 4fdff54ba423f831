//go:build integration

package paypage_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/billing"
	"github.com/billflow/billflow/internal/testkit"
	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/paypage"
	"github.com/billflow/billflow/paypage/links"
	"github.com/billflow/billflow/rails/card"
	stripesandbox "github.com/billflow/billflow/sandbox/stripe"
	"github.com/billflow/billflow/store"
)

const key = "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e"

type fixture struct {
	st     *store.Store
	stripe *stripesandbox.Server
	srv    *httptest.Server
	links  *links.Issuer
	inv    store.Invoice
}

// newFixture is a 20.00 USD invoice of a tenant whose Stripe customer has
// the given card, and the pages served against it. No worker runs: the
// pages read the store, and a payment report only starts the invoice's
// workflow.
func newFixture(t *testing.T, pm string) fixture {
	ctx := context.Background()
	st := testkit.NewStore(t)
	sb, err := stripesandbox.Start(ctx, stripesandbox.Options{APIKey: "sk_test_pages",
		Customers: []stripesandbox.Customer{{ID: "cus_pages", PaymentMethods: []stripesandbox.PaymentMethod{{ID: pm}}, DefaultPaymentMethod: pm}}})
	require.NoError(t, err)
	t.Cleanup(sb.Close)
	cc, err := card.New(card.Config{APIKey: "sk_test_pages", BackendURL: sb.URL()})
	require.NoError(t, err)

	tenant := testkit.NewTenantID(t)
	_, _, err = st.EnsureTenant(ctx, tenant, "usd", 600)
	require.NoError(t, err)
	anchor := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	_, err = st.RecordActivity(ctx, tenant, models.Activity{ID: "a1", Type: models.ResourceCreated, ResourceID: "r1", PlanID: "pro", At: anchor}, false)
	require.NoError(t, err)
	claim, err := st.Claim(ctx, store.ClaimParams{TenantID: tenant, ClaimKey: "k1", Period: models.Period{Start: anchor, End: anchor.Add(10 * time.Minute)}})
	require.NoError(t, err)
	require.NoError(t, st.SetStripeCustomer(ctx, tenant, "cus_pages"))

	var h http.Handler
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(ts.Close)
	li, err := links.New(st, key, ts.URL)
	require.NoError(t, err)
	mux := http.NewServeMux()
	(&paypage.Server{Links: li, Store: st, Cards: cc, Billing: billing.New(testkit.TemporalClient(t), testkit.TaskQueue(t))}).Mount(mux)
	h = mux
	return fixture{st: st, stripe: sb, srv: ts, links: li, inv: *claim.Invoice}
}

func (f fixture) link(t *testing.T) string {
	u, err := f.links.InvoiceURL(context.Background(), f.inv.ID)
	require.NoError(t, err)
	return u
}

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func post(t *testing.T, url string) string {
	resp, err := noRedirect.Post(url, "application/x-www-form-urlencoded", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	return resp.Header.Get("Location")
}

// Many clicks at once (tabs, a double click, a retried request) charge the
// card once: they share the key invoice/<id>/card/page-1.
func TestPayByCardConcurrentClicksChargeOnce(t *testing.T) {
	f := newFixture(t, stripesandbox.CardVisa)
	link := f.link(t)
	var wg sync.WaitGroup
	outcomes := make([]string, 6)
	for i := range outcomes {
		wg.Go(func() { outcomes[i] = post(t, link+"/card") })
	}
	wg.Wait()
	for _, o := range outcomes {
		require.Contains(t, o, "card=succeeded")
	}
	require.Equal(t, 1, f.stripe.ChargeCount(f.inv.ID), "one charge for six clicks")
	charges, err := f.st.PageCharges(context.Background(), f.inv.ID)
	require.NoError(t, err)
	require.Len(t, charges, 1)
	require.Equal(t, "succeeded", charges[0].Outcome)
	require.EqualValues(t, 2000, charges[0].Amount)
	cps, err := f.st.CardPayments(context.Background(), f.inv.ID)
	require.NoError(t, err)
	require.Len(t, cps, 1, "recorded where reconciliation looks")
	require.Equal(t, "invoice/"+f.inv.ID+"/card/page-1", cps[0].IdempotencyKey)
}

// A declined card may be tried again (after the payer fixed it): a new key.
func TestPayByCardDeclinedThenNewKey(t *testing.T) {
	f := newFixture(t, stripesandbox.CardDeclined)
	link := f.link(t)
	require.Contains(t, post(t, link+"/card"), "card=declined")
	require.Contains(t, post(t, link+"/card"), "card=declined")
	charges, err := f.st.PageCharges(context.Background(), f.inv.ID)
	require.NoError(t, err)
	require.Len(t, charges, 2)
	require.Equal(t, "invoice/"+f.inv.ID+"/card/page-2", charges[1].IdempotencyKey)
	resp, err := http.Get(link + "?card=declined")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Contains(t, string(body), "Your card was declined.")
}

// While the cascade's own card charge is processing, the page does not
// charge again.
func TestPayByCardWaitsForCascadeCharge(t *testing.T) {
	f := newFixture(t, stripesandbox.CardVisa)
	require.NoError(t, f.st.RecordCardPayment(context.Background(), store.CardPayment{PaymentIntentID: "pi_cascade", InvoiceID: f.inv.ID,
		IdempotencyKey: card.IdempotencyKey(f.inv.ID, 1), Attempt: 1, Amount: 2000, Currency: "usd", Status: "processing", Outcome: "processing"}))
	require.Contains(t, post(t, f.link(t)+"/card"), "card=pending")
	require.Zero(t, f.stripe.ChargeCount(f.inv.ID))
}

// The page of a live token, and 404 for a wrong, an invoice-id, an
// account-kind or a revoked token; the status JSON holds no tenant data.
func TestInvoicePageTokens(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, stripesandbox.CardVisa)
	link := f.link(t)
	get := func(u string) (int, string) {
		resp, err := http.Get(u)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	code, body := get(link)
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "20.00 USD")
	require.Contains(t, body, `id="pay-card"`)
	require.NotContains(t, body, string(f.inv.TenantID))
	require.NotContains(t, body, "cus_pages")
	require.NotContains(t, body, "<script>", "no inline script")
	code, body = get(link + "/status")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, `"status":"open"`)
	require.NotContains(t, body, string(f.inv.TenantID))

	account, err := f.links.AccountURL(ctx, f.inv.TenantID)
	require.NoError(t, err)
	for _, bad := range []string{f.srv.URL + "/pay/" + f.inv.ID, f.srv.URL + "/pay/" + strings.Repeat("x", 43),
		f.srv.URL + "/pay/" + strings.TrimPrefix(account, f.srv.URL+"/account/")} {
		code, _ := get(bad)
		require.Equal(t, http.StatusNotFound, code, bad)
	}
	code, body = get(account)
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, link, "the account page links the open invoice")
	_, err = f.links.Revoke(ctx, store.PageInvoice, f.inv.ID)
	require.NoError(t, err)
	code, _ = get(link)
	require.Equal(t, http.StatusNotFound, code)
}

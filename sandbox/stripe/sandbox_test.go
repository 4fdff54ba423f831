package stripesandbox_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/client"
	"github.com/stripe/stripe-go/v76/webhook"

	stripesandbox "github.com/billflow/billflow/sandbox/stripe"
)

const (
	apiKey        = "sk_test_51SandboxSelfTestKey000000000000"
	webhookSecret = "whsec_SandboxSelfTestSecret"
)

func start(t *testing.T, opts stripesandbox.Options) *stripesandbox.Server {
	t.Helper()
	opts.APIKey = apiKey
	if opts.WebhookURL != "" {
		opts.WebhookSecret = webhookSecret
	}
	srv, err := stripesandbox.Start(t.Context(), opts)
	require.NoError(t, err)
	t.Cleanup(srv.Close)
	return srv
}

// stripeClient is stripe-go pointed at the sandbox, retries off so every
// call is one request.
func stripeClient(t *testing.T, srv *stripesandbox.Server) *client.API {
	t.Helper()
	backend := stripe.GetBackendWithConfig(stripe.APIBackend, &stripe.BackendConfig{
		URL: stripe.String(srv.URL()), MaxNetworkRetries: stripe.Int64(0),
		LeveledLogger: &stripe.LeveledLogger{Level: stripe.LevelNull},
	})
	return client.New(apiKey, &stripe.Backends{API: backend, Connect: backend, Uploads: backend})
}

// rawResponse is an HTTP answer read in full.
type rawResponse struct {
	status int
	header http.Header
	body   []byte
}

func (r rawResponse) errorObject(t *testing.T) map[string]any {
	t.Helper()
	var v struct {
		Error map[string]any `json:"error"`
	}
	require.NoError(t, json.Unmarshal(r.body, &v), string(r.body))
	require.NotNil(t, v.Error, string(r.body))
	return v.Error
}

// do sends one form-encoded request the way stripe-go does.
func do(t *testing.T, srv *stripesandbox.Server, method, path string, form url.Values, headers map[string]string) rawResponse {
	t.Helper()
	var body io.Reader
	if method == http.MethodPost {
		body = strings.NewReader(form.Encode())
	} else if len(form) > 0 {
		path += "?" + form.Encode()
	}
	req, err := http.NewRequestWithContext(t.Context(), method, srv.URL()+path, body)
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+apiKey)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range headers {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return rawResponse{status: resp.StatusCode, header: resp.Header, body: b}
}

func chargeForm(amount string) url.Values {
	return url.Values{
		"amount": {amount}, "currency": {"usd"}, "payment_method": {stripesandbox.CardVisa}, "confirm": {"true"},
		"off_session": {"true"}, "metadata[invoice_id]": {"inv-1"}, "payment_method_types[0]": {"card"},
	}
}

func TestStartValidatesOptions(t *testing.T) {
	_, err := stripesandbox.Start(t.Context(), stripesandbox.Options{})
	require.Error(t, err)
	_, err = stripesandbox.Start(t.Context(), stripesandbox.Options{APIKey: apiKey, WebhookURL: "http://127.0.0.1:1"})
	require.Error(t, err, "a webhook URL needs a signing secret")
	_, err = stripesandbox.Start(t.Context(), stripesandbox.Options{APIKey: apiKey, Customers: []stripesandbox.Customer{
		{ID: "cus_x", PaymentMethods: []stripesandbox.PaymentMethod{{ID: "pm_x", Card: "pm_card_nonsense"}}}}})
	require.Error(t, err, "unknown test card")
	_, err = stripesandbox.Start(t.Context(), stripesandbox.Options{APIKey: apiKey, Customers: []stripesandbox.Customer{
		{ID: "cus_x", DefaultPaymentMethod: "pm_elsewhere"}}})
	require.Error(t, err, "default must be one of the customer's cards")
}

func TestAPIKeyCheck(t *testing.T) {
	srv := start(t, stripesandbox.Options{Customers: []stripesandbox.Customer{{ID: "cus_a"}}})

	r := do(t, srv, http.MethodGet, "/v1/customers/cus_a", nil, map[string]string{"Authorization": ""})
	assert.Equal(t, http.StatusUnauthorized, r.status)
	assert.Contains(t, r.errorObject(t)["message"], "did not provide an API key")

	wrong := "sk_test_51SomeoneElsesKeyABCDEFGH1234"
	r = do(t, srv, http.MethodGet, "/v1/customers/cus_a", nil, map[string]string{"Authorization": "Bearer " + wrong})
	assert.Equal(t, http.StatusUnauthorized, r.status)
	assert.Equal(t, "invalid_request_error", r.errorObject(t)["type"])
	assert.NotContains(t, string(r.body), wrong, "Stripe masks the key it refuses")
	assert.Contains(t, string(r.body), "sk_test_****1234")

	basic := "Basic " + base64([]byte(apiKey+":"))
	r = do(t, srv, http.MethodGet, "/v1/customers/cus_a", nil, map[string]string{"Authorization": basic})
	assert.Equal(t, http.StatusOK, r.status, "curl -u KEY: works as with Stripe")
	assert.Equal(t, 1, srv.Requests(), "refused requests are not counted")
}

func base64(b []byte) string {
	const enc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	var out strings.Builder
	for i := 0; i < len(b); i += 3 {
		var n uint32
		k := min(3, len(b)-i)
		for j := range k {
			n |= uint32(b[i+j]) << (16 - 8*j)
		}
		for j := range 4 {
			if j <= k {
				out.WriteByte(enc[(n>>(18-6*j))&63])
			} else {
				out.WriteByte('=')
			}
		}
	}
	return out.String()
}

func TestIdempotencyReplayAndMismatch(t *testing.T) {
	srv := start(t, stripesandbox.Options{})
	key := map[string]string{"Idempotency-Key": "invoice/inv-1/card/1"}

	first := do(t, srv, http.MethodPost, "/v1/payment_intents", chargeForm("500"), key)
	require.Equal(t, http.StatusOK, first.status, string(first.body))
	assert.Empty(t, first.header.Get("Idempotent-Replayed"))

	again := do(t, srv, http.MethodPost, "/v1/payment_intents", chargeForm("500"), key)
	assert.Equal(t, first.status, again.status)
	assert.Equal(t, first.body, again.body, "byte-for-byte the first response")
	assert.Equal(t, "true", again.header.Get("Idempotent-Replayed"))
	assert.Equal(t, first.header.Get("Request-Id"), again.header.Get("Original-Request"))
	assert.NotEqual(t, first.header.Get("Request-Id"), again.header.Get("Request-Id"))

	other := do(t, srv, http.MethodPost, "/v1/payment_intents", chargeForm("501"), key)
	assert.Equal(t, http.StatusBadRequest, other.status)
	assert.Equal(t, "idempotency_error", other.errorObject(t)["type"])

	// A card decline is a result Stripe keeps under the key, too.
	declineKey := map[string]string{"Idempotency-Key": "decline"}
	form := chargeForm("500")
	form.Set("payment_method", stripesandbox.CardInsufficientFunds)
	d1 := do(t, srv, http.MethodPost, "/v1/payment_intents", form, declineKey)
	d2 := do(t, srv, http.MethodPost, "/v1/payment_intents", form, declineKey)
	assert.Equal(t, http.StatusPaymentRequired, d1.status)
	assert.Equal(t, d1.body, d2.body)
	assert.Equal(t, "true", d2.header.Get("Idempotent-Replayed"))
	errObj := d1.errorObject(t)
	assert.Equal(t, "card_error", errObj["type"])
	assert.Equal(t, "card_declined", errObj["code"])
	assert.Equal(t, "insufficient_funds", errObj["decline_code"])
	assert.Equal(t, "requires_payment_method", errObj["payment_intent"].(map[string]any)["status"])

	assert.Equal(t, 1, srv.ChargeCount("inv-1"))
	assert.Equal(t, 2, srv.PaymentIntentCount("inv-1"))
}

func TestValidationFailuresAreNotKeptUnderTheKey(t *testing.T) {
	srv := start(t, stripesandbox.Options{})
	key := map[string]string{"Idempotency-Key": "k-validation"}
	bad := chargeForm("500")
	bad.Del("amount")
	r := do(t, srv, http.MethodPost, "/v1/payment_intents", bad, key)
	assert.Equal(t, http.StatusBadRequest, r.status)
	assert.Equal(t, "parameter_missing", r.errorObject(t)["code"])

	// Stripe saves nothing for a request that failed validation: the fixed
	// request with the same key runs.
	r = do(t, srv, http.MethodPost, "/v1/payment_intents", chargeForm("500"), key)
	assert.Equal(t, http.StatusOK, r.status, string(r.body))
	assert.Empty(t, r.header.Get("Idempotent-Replayed"))
}

func TestPaymentIntentParameterChecks(t *testing.T) {
	srv := start(t, stripesandbox.Options{Customers: []stripesandbox.Customer{{ID: "cus_a"}}})
	for _, tc := range []struct {
		name   string
		mutate func(url.Values)
		param  string
	}{
		{"unknown parameter", func(v url.Values) { v.Set("amout", "5") }, "amout"},
		{"bad amount", func(v url.Values) { v.Set("amount", "5.00") }, "amount"},
		{"zero amount", func(v url.Values) { v.Set("amount", "0") }, "amount"},
		{"bad currency", func(v url.Values) { v.Set("currency", "USD") }, "currency"},
		{"unknown customer", func(v url.Values) { v.Set("customer", "cus_nobody") }, "customer"},
		{"unknown payment method", func(v url.Values) { v.Set("payment_method", "pm_nothing") }, "payment_method"},
		{"off_session without confirm", func(v url.Values) { v.Del("confirm") }, "off_session"},
		{"bad boolean", func(v url.Values) { v.Set("confirm", "yes") }, "confirm"},
		{"confirm needs return_url without payment_method_types", func(v url.Values) { v.Del("payment_method_types[0]") }, "return_url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := chargeForm("500")
			v.Set("customer", "cus_a")
			tc.mutate(v)
			r := do(t, srv, http.MethodPost, "/v1/payment_intents", v, nil)
			require.Equal(t, http.StatusBadRequest, r.status, string(r.body))
			e := r.errorObject(t)
			assert.Equal(t, "invalid_request_error", e["type"])
			assert.Equal(t, tc.param, e["param"])
		})
	}
	v := chargeForm("500")
	v.Del("payment_method_types[0]")
	v.Set("automatic_payment_methods[enabled]", "true")
	v.Set("automatic_payment_methods[allow_redirects]", "never")
	r := do(t, srv, http.MethodPost, "/v1/payment_intents", v, nil)
	assert.Equal(t, http.StatusOK, r.status, "redirects off: no return_url needed")
	assert.Zero(t, srv.ChargeCount("other"))
}

func TestStripeGoCustomerFlow(t *testing.T) {
	srv := start(t, stripesandbox.Options{})
	sc := stripeClient(t, srv)

	cust, err := sc.Customers.New(&stripe.CustomerParams{Email: stripe.String("a@example.com")})
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(cust.ID, "cus_"))

	// Attaching a test id makes a new card, as in Stripe.
	pm, err := sc.PaymentMethods.Attach(stripesandbox.CardVisa, &stripe.PaymentMethodAttachParams{Customer: stripe.String(cust.ID)})
	require.NoError(t, err)
	assert.NotEqual(t, stripesandbox.CardVisa, pm.ID)
	assert.Equal(t, "4242", pm.Card.Last4)
	assert.Equal(t, cust.ID, pm.Customer.ID)

	_, err = sc.Customers.Update(cust.ID, &stripe.CustomerParams{InvoiceSettings: &stripe.CustomerInvoiceSettingsParams{
		DefaultPaymentMethod: stripe.String(pm.ID)}})
	require.NoError(t, err)

	params := &stripe.CustomerParams{}
	params.AddExpand("invoice_settings.default_payment_method")
	got, err := sc.Customers.Get(cust.ID, params)
	require.NoError(t, err)
	require.NotNil(t, got.InvoiceSettings.DefaultPaymentMethod)
	assert.Equal(t, pm.ID, got.InvoiceSettings.DefaultPaymentMethod.ID)
	assert.Equal(t, stripe.PaymentMethodTypeCard, got.InvoiceSettings.DefaultPaymentMethod.Type)
	assert.Equal(t, "a@example.com", got.Email)

	list := sc.PaymentMethods.List(&stripe.PaymentMethodListParams{Customer: stripe.String(cust.ID), Type: stripe.String("card")})
	var ids []string
	for list.Next() {
		ids = append(ids, list.PaymentMethod().ID)
	}
	require.NoError(t, list.Err())
	assert.Equal(t, []string{pm.ID}, ids)

	// A card that needs authentication, confirmed on-session, asks for it.
	pi, err := sc.PaymentIntents.New(&stripe.PaymentIntentParams{
		Amount: stripe.Int64(800), Currency: stripe.String("eur"), Customer: stripe.String(cust.ID),
		PaymentMethodTypes: stripe.StringSlice([]string{"card"}),
	})
	require.NoError(t, err)
	assert.Equal(t, stripe.PaymentIntentStatusRequiresPaymentMethod, pi.Status)
	pi, err = sc.PaymentIntents.Confirm(pi.ID, &stripe.PaymentIntentConfirmParams{PaymentMethod: stripe.String(stripesandbox.CardAuthenticationRequired)})
	require.NoError(t, err)
	assert.Equal(t, stripe.PaymentIntentStatusRequiresAction, pi.Status)
	require.NotNil(t, pi.NextAction)

	_, err = sc.Customers.Get("cus_missing", nil)
	var se *stripe.Error
	require.ErrorAs(t, err, &se)
	assert.Equal(t, stripe.ErrorCodeResourceMissing, se.Code)
	assert.Equal(t, http.StatusNotFound, se.HTTPStatusCode)
}

func TestEventsAPIAndSignedDeliveries(t *testing.T) {
	got := make(chan *http.Request, 8)
	bodies := make(chan []byte, 8)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- r
		bodies <- b
	}))
	t.Cleanup(rcv.Close)
	srv := start(t, stripesandbox.Options{WebhookURL: rcv.URL, EnabledEvents: []string{"payment_intent.succeeded"}})
	sc := stripeClient(t, srv)

	_, err := sc.PaymentIntents.New(chargeParams(stripesandbox.CardInsufficientFunds))
	require.Error(t, err, "declined")
	pi, err := sc.PaymentIntents.New(chargeParams(stripesandbox.CardVisa))
	require.NoError(t, err)

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var req *http.Request
	var body []byte
	select {
	case req = <-got:
		body = <-bodies
	case <-ctx.Done():
		t.Fatal("no delivery")
	}
	// Verified by stripe-go itself, independently of the card rail.
	ev, err := webhook.ConstructEvent(body, req.Header.Get("Stripe-Signature"), webhookSecret)
	require.NoError(t, err)
	assert.Equal(t, stripe.EventType("payment_intent.succeeded"), ev.Type, "payment_failed is not enabled for this endpoint")
	assert.Equal(t, pi.ID, ev.GetObjectValue("id"))
	assert.Equal(t, "inv-ev", ev.GetObjectValue("metadata", "invoice_id"))
	require.NotNil(t, ev.Request)
	assert.Equal(t, "key-"+stripesandbox.CardVisa, ev.Request.IdempotencyKey)

	// Both events are listed, newest first; the type filter works.
	it := sc.Events.List(&stripe.EventListParams{})
	var types []string
	for it.Next() {
		types = append(types, string(it.Event().Type))
	}
	require.NoError(t, it.Err())
	assert.Equal(t, []string{"payment_intent.succeeded", "payment_intent.payment_failed"}, types)

	it = sc.Events.List(&stripe.EventListParams{Type: stripe.String("payment_intent.payment_failed")})
	require.True(t, it.Next())
	failed := it.Event()
	assert.False(t, it.Next())
	again, err := sc.Events.Get(failed.ID, nil)
	require.NoError(t, err)
	assert.Equal(t, failed.ID, again.ID)
	assert.Equal(t, "insufficient_funds", again.GetObjectValue("last_payment_error", "decline_code"))
}

func chargeParams(pm string) *stripe.PaymentIntentParams {
	p := &stripe.PaymentIntentParams{
		Amount: stripe.Int64(500), Currency: stripe.String("usd"), PaymentMethod: stripe.String(pm),
		PaymentMethodTypes: stripe.StringSlice([]string{"card"}), Confirm: stripe.Bool(true), OffSession: stripe.Bool(true),
		Metadata: map[string]string{"invoice_id": "inv-ev"},
	}
	p.SetIdempotencyKey("key-" + pm)
	return p
}

func TestWebhookDeliveryGivesUp(t *testing.T) {
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusInternalServerError)
	}))
	t.Cleanup(rcv.Close)
	srv := start(t, stripesandbox.Options{WebhookURL: rcv.URL, WebhookAttempts: 3, WebhookRetryDelay: time.Millisecond})
	_, err := stripeClient(t, srv).PaymentIntents.New(chargeParams(stripesandbox.CardVisa))
	require.NoError(t, err)
	require.NoError(t, srv.WaitWebhooks(t.Context()))
	var statuses []int
	for _, d := range srv.Deliveries() {
		statuses = append(statuses, d.Status)
	}
	assert.Equal(t, []int{500, 500, 500}, statuses)

	err = srv.Redeliver(t.Context(), "evt_unknown")
	require.ErrorIs(t, err, stripesandbox.ErrUnknownEvent)
}

func TestFailureInjectionMatchesAndCounts(t *testing.T) {
	srv := start(t, stripesandbox.Options{Customers: []stripesandbox.Customer{{ID: "cus_a"}}})
	require.NoError(t, srv.FailNext(stripesandbox.Failure{Count: 2, Status: 503, Method: http.MethodPost, Path: "/v1/payment_intents"}))
	require.Error(t, srv.FailNext(stripesandbox.Failure{Status: 200}))

	assert.Equal(t, http.StatusOK, do(t, srv, http.MethodGet, "/v1/customers/cus_a", nil, nil).status, "other paths unaffected")
	for range 2 {
		r := do(t, srv, http.MethodPost, "/v1/payment_intents", chargeForm("500"), map[string]string{"Idempotency-Key": "k"})
		assert.Equal(t, http.StatusServiceUnavailable, r.status)
		assert.Equal(t, "api_error", r.errorObject(t)["type"])
	}
	r := do(t, srv, http.MethodPost, "/v1/payment_intents", chargeForm("500"), map[string]string{"Idempotency-Key": "k"})
	assert.Equal(t, http.StatusOK, r.status, "the failure is used up, and was not kept under the key")
	assert.Equal(t, 1, srv.ChargeCount("inv-1"))
}

func TestAdminEndpoints(t *testing.T) {
	srv := start(t, stripesandbox.Options{})
	admin := func(method, path string, body any, key string) rawResponse {
		t.Helper()
		var rd io.Reader
		if body != nil {
			b, err := json.Marshal(body)
			require.NoError(t, err)
			rd = bytes.NewReader(b)
		}
		req, err := http.NewRequestWithContext(t.Context(), method, srv.URL()+path, rd)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return rawResponse{status: resp.StatusCode, body: b}
	}
	r := admin(http.MethodPost, "/_sandbox/customers", stripesandbox.Customer{ID: "cus_admin",
		PaymentMethods: []stripesandbox.PaymentMethod{{ID: "pm_admin", Card: stripesandbox.CardVisa}}, DefaultPaymentMethod: "pm_admin"}, "wrong")
	assert.Equal(t, http.StatusUnauthorized, r.status)
	r = admin(http.MethodPost, "/_sandbox/customers", stripesandbox.Customer{ID: "cus_admin",
		PaymentMethods: []stripesandbox.PaymentMethod{{ID: "pm_admin", Card: stripesandbox.CardVisa}}, DefaultPaymentMethod: "pm_admin"}, apiKey)
	require.Equal(t, http.StatusOK, r.status, string(r.body))

	c, err := stripeClient(t, srv).Customers.Get("cus_admin", nil)
	require.NoError(t, err)
	assert.Equal(t, "pm_admin", c.InvoiceSettings.DefaultPaymentMethod.ID)

	r = admin(http.MethodPost, "/_sandbox/failures", stripesandbox.Failure{Status: 429}, apiKey)
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	assert.Equal(t, http.StatusTooManyRequests, do(t, srv, http.MethodGet, "/v1/customers/cus_admin", nil, nil).status)

	form := chargeForm("500")
	form.Set("customer", "cus_admin")
	form.Set("payment_method", "pm_admin")
	require.Equal(t, http.StatusOK, do(t, srv, http.MethodPost, "/v1/payment_intents", form, nil).status)
	r = admin(http.MethodGet, "/_sandbox/charges?invoice_id=inv-1", nil, apiKey)
	require.Equal(t, http.StatusOK, r.status)
	assert.JSONEq(t, `{"charges": 1, "payment_intents": 1}`, string(r.body))

	r = admin(http.MethodPost, "/_sandbox/webhooks", map[string]any{"drop": true, "url": "http://127.0.0.1:1/hook"}, apiKey)
	assert.Equal(t, http.StatusBadRequest, r.status, "no signing secret configured")
	r = admin(http.MethodPost, "/_sandbox/webhooks", map[string]any{"drop": true}, apiKey)
	assert.Equal(t, http.StatusOK, r.status)
	r = admin(http.MethodPost, "/_sandbox/customers", map[string]any{"id": "cus_x", "bogus": 1}, apiKey)
	assert.Equal(t, http.StatusBadRequest, r.status, "unknown JSON fields are refused")
}

func TestUnknownRoute(t *testing.T) {
	srv := start(t, stripesandbox.Options{})
	r := do(t, srv, http.MethodGet, "/v1/charges", nil, nil)
	assert.Equal(t, http.StatusNotFound, r.status)
	assert.Contains(t, r.errorObject(t)["message"], "Unrecognized request URL")
}

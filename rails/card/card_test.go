package card_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/billflow/billflow/models"
	"github.com/billflow/billflow/rails/card"
	stripesandbox "github.com/billflow/billflow/sandbox/stripe"
)

// These tests run the rail's real stripe-go client against the Stripe
// sandbox over real sockets: every request is form-encoded, authenticated
// and answered the way Stripe answers it.

const (
	apiKey        = "sk_test_51BillflowCardRailTestKey0123456789"
	webhookSecret = "whsec_BillflowCardRailSigningSecret0123"
)

// customers seeded into every sandbox.
var customers = []stripesandbox.Customer{
	{ID: "cus_default", PaymentMethods: []stripesandbox.PaymentMethod{
		{ID: "pm_default_visa", Card: stripesandbox.CardVisa},
		{ID: "pm_default_mc", Card: stripesandbox.CardMastercard},
	}, DefaultPaymentMethod: "pm_default_mc"},
	{ID: "cus_single", PaymentMethods: []stripesandbox.PaymentMethod{{ID: "pm_single_visa", Card: stripesandbox.CardVisa}}},
	{ID: "cus_two", PaymentMethods: []stripesandbox.PaymentMethod{
		{ID: "pm_two_a", Card: stripesandbox.CardVisa},
		{ID: "pm_two_b", Card: stripesandbox.CardMastercard},
	}},
	{ID: "cus_none"},
	{ID: "cus_poor", PaymentMethods: []stripesandbox.PaymentMethod{{ID: "pm_poor", Card: stripesandbox.CardInsufficientFunds}},
		DefaultPaymentMethod: "pm_poor"},
}

func startSandbox(t *testing.T, opts stripesandbox.Options) *stripesandbox.Server {
	t.Helper()
	opts.APIKey = apiKey
	if opts.Customers == nil {
		opts.Customers = customers
	}
	if opts.WebhookURL != "" {
		opts.WebhookSecret = webhookSecret
	}
	srv, err := stripesandbox.Start(t.Context(), opts)
	require.NoError(t, err)
	t.Cleanup(srv.Close)
	return srv
}

func newClient(t *testing.T, url string) *card.Client {
	t.Helper()
	c, err := card.New(card.Config{APIKey: apiKey, BackendURL: url, Timeout: 10 * time.Second})
	require.NoError(t, err)
	return c
}

func charge(invoice, pm string, amount int64) card.ChargeRequest {
	return card.ChargeRequest{CustomerID: "cus_none", PaymentMethodID: pm, AmountMinor: amount, Currency: "usd",
		InvoiceID: invoice, IdempotencyKey: card.IdempotencyKey(invoice, 1)}
}

// requireNoSecret asserts no secret appears in an error's text.
func requireNoSecret(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	for _, secret := range []string{apiKey, webhookSecret, apiKey[len(apiKey)-12:], webhookSecret[len(webhookSecret)-12:]} {
		require.NotContains(t, err.Error(), secret, "error text leaks a secret: %v", err)
	}
}

func TestNewValidatesConfig(t *testing.T) {
	for name, cfg := range map[string]card.Config{
		"no key":           {BackendURL: "http://127.0.0.1:1"},
		"bad url":          {APIKey: apiKey, BackendURL: "127.0.0.1:1"},
		"negative timeout": {APIKey: apiKey, Timeout: -time.Second},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := card.New(cfg)
			var ve *models.ValidationError
			require.ErrorAs(t, err, &ve)
			requireNoSecret(t, err)
		})
	}
	c, err := card.New(card.Config{APIKey: apiKey})
	require.NoError(t, err, "the real Stripe URL is the default")
	require.NotNil(t, c)
}

func TestDefaultPaymentMethod(t *testing.T) {
	srv := startSandbox(t, stripesandbox.Options{})
	c := newClient(t, srv.URL())
	for _, tc := range []struct {
		customer string
		want     string
		found    bool
	}{
		{"cus_default", "pm_default_mc", true}, // invoice_settings default wins over other cards
		{"cus_single", "pm_single_visa", true}, // no default: the only card
		{"cus_two", "", false},                 // no default, two cards: do not guess
		{"cus_none", "", false},                // no card at all
	} {
		t.Run(tc.customer, func(t *testing.T) {
			pm, found, err := c.DefaultPaymentMethod(t.Context(), tc.customer)
			require.NoError(t, err)
			assert.Equal(t, tc.found, found)
			assert.Equal(t, tc.want, pm)
		})
	}

	_, _, err := c.DefaultPaymentMethod(t.Context(), "cus_missing")
	require.ErrorIs(t, err, card.ErrNotFound)
	var apiErr *card.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, http.StatusNotFound, apiErr.StatusCode)

	_, _, err = c.DefaultPaymentMethod(t.Context(), " ")
	var ve *models.ValidationError
	require.ErrorAs(t, err, &ve)
}

func TestChargeOutcomes(t *testing.T) {
	srv := startSandbox(t, stripesandbox.Options{})
	c := newClient(t, srv.URL())
	for _, tc := range []struct {
		name, pm    string
		outcome     card.Outcome
		status      string
		declineCode string
		charged     int
	}{
		{"succeeded", stripesandbox.CardVisa, card.OutcomeSucceeded, "succeeded", "", 1},
		{"insufficient funds", stripesandbox.CardInsufficientFunds, card.OutcomeDeclined, "requires_payment_method", "insufficient_funds", 0},
		{"generic decline", stripesandbox.CardDeclined, card.OutcomeDeclined, "requires_payment_method", "generic_decline", 0},
		{"authentication required", stripesandbox.CardAuthenticationRequired, card.OutcomeAuthenticationRequired, "requires_payment_method", "authentication_required", 0},
		{"processing", stripesandbox.CardProcessing, card.OutcomeProcessing, "processing", "", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			invoice := "inv-" + strings.ReplaceAll(tc.name, " ", "-")
			res, err := c.ChargeOffSession(t.Context(), charge(invoice, tc.pm, 1250))
			require.NoError(t, err, "a decline is an outcome, not an error")
			assert.Equal(t, tc.outcome, res.Outcome)
			assert.Equal(t, tc.status, res.Status)
			assert.Equal(t, tc.declineCode, res.DeclineCode)
			assert.False(t, res.Replayed)
			require.True(t, strings.HasPrefix(res.PaymentIntentID, "pi_"), "payment intent id %q", res.PaymentIntentID)
			if tc.outcome == card.OutcomeDeclined || tc.outcome == card.OutcomeAuthenticationRequired {
				assert.NotEmpty(t, res.Message)
			}
			assert.Equal(t, tc.charged, srv.ChargeCount(invoice))
			assert.Equal(t, 1, srv.PaymentIntentCount(invoice))

			pi, err := c.RetrievePaymentIntent(t.Context(), res.PaymentIntentID)
			require.NoError(t, err)
			assert.Equal(t, res.PaymentIntentID, pi.ID)
			assert.Equal(t, tc.status, pi.Status)
			assert.Equal(t, tc.outcome, pi.Outcome, "reconciliation classifies the PaymentIntent as the charge did")
			assert.Equal(t, int64(1250), pi.AmountMinor)
			assert.Equal(t, "usd", pi.Currency)
			assert.Equal(t, invoice, pi.InvoiceID)
			assert.Equal(t, "cus_none", pi.CustomerID)
			assert.Equal(t, tc.pm, pi.PaymentMethodID)
			assert.Equal(t, tc.declineCode, pi.DeclineCode)
		})
	}
}

func TestChargeSavedDefaultCard(t *testing.T) {
	srv := startSandbox(t, stripesandbox.Options{})
	c := newClient(t, srv.URL())
	for _, tc := range []struct {
		customer string
		outcome  card.Outcome
	}{{"cus_default", card.OutcomeSucceeded}, {"cus_poor", card.OutcomeDeclined}} {
		pm, found, err := c.DefaultPaymentMethod(t.Context(), tc.customer)
		require.NoError(t, err)
		require.True(t, found)
		req := charge("inv-"+tc.customer, pm, 900)
		req.CustomerID = tc.customer
		res, err := c.ChargeOffSession(t.Context(), req)
		require.NoError(t, err)
		assert.Equal(t, tc.outcome, res.Outcome, tc.customer)
	}

	// A card saved for another customer cannot be charged for this one.
	req := charge("inv-foreign", "pm_default_visa", 900)
	req.CustomerID = "cus_single"
	_, err := c.ChargeOffSession(t.Context(), req)
	var apiErr *card.APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, "invalid_request_error", apiErr.Type)
	assert.Equal(t, 0, srv.PaymentIntentCount("inv-foreign"))
}

func TestChargeIdempotentReplay(t *testing.T) {
	srv := startSandbox(t, stripesandbox.Options{})
	c := newClient(t, srv.URL())
	for _, pm := range []string{stripesandbox.CardVisa, stripesandbox.CardInsufficientFunds} {
		t.Run(pm, func(t *testing.T) {
			invoice := "inv-replay-" + pm
			first, err := c.ChargeOffSession(t.Context(), charge(invoice, pm, 700))
			require.NoError(t, err)
			for range 3 {
				again, err := c.ChargeOffSession(t.Context(), charge(invoice, pm, 700))
				require.NoError(t, err)
				assert.True(t, again.Replayed, "Stripe answered from its idempotency cache")
				again.Replayed = false
				assert.Equal(t, first, again, "a retry returns the first attempt's result")
			}
			assert.Equal(t, 1, srv.PaymentIntentCount(invoice), "one PaymentIntent for one key")
		})
	}
	assert.Equal(t, 1, srv.ChargeCount("inv-replay-"+stripesandbox.CardVisa), "charged exactly once")

	// A new attempt (new key) for the same invoice is a new charge: the key,
	// not the invoice, is what Stripe de-duplicates.
	req := charge("inv-replay-"+stripesandbox.CardVisa, stripesandbox.CardVisa, 700)
	req.IdempotencyKey = card.IdempotencyKey(req.InvoiceID, 2)
	res, err := c.ChargeOffSession(t.Context(), req)
	require.NoError(t, err)
	assert.False(t, res.Replayed)
	assert.Equal(t, 2, srv.ChargeCount(req.InvoiceID))
}

func TestChargeConcurrentSameKeyChargesOnce(t *testing.T) {
	srv := startSandbox(t, stripesandbox.Options{})
	c := newClient(t, srv.URL())
	const workers = 8
	results := make([]card.ChargeResult, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = c.ChargeOffSession(t.Context(), charge("inv-race", stripesandbox.CardVisa, 500))
		}()
	}
	wg.Wait()
	for i := range workers {
		if errs[i] != nil {
			// A request racing the first one's execution is told to retry
			// (409 idempotency_key_in_use), never charged.
			var re *card.RetryableError
			require.ErrorAs(t, errs[i], &re)
			assert.Equal(t, http.StatusConflict, re.StatusCode)
			continue
		}
		assert.Equal(t, card.OutcomeSucceeded, results[i].Outcome)
	}
	assert.Equal(t, 1, srv.ChargeCount("inv-race"))
	assert.Equal(t, 1, srv.PaymentIntentCount("inv-race"))
}

func TestChargeSameKeyDifferentAmountIsIdempotencyConflict(t *testing.T) {
	srv := startSandbox(t, stripesandbox.Options{})
	c := newClient(t, srv.URL())
	_, err := c.ChargeOffSession(t.Context(), charge("inv-conflict", stripesandbox.CardVisa, 500))
	require.NoError(t, err)

	_, err = c.ChargeOffSession(t.Context(), charge("inv-conflict", stripesandbox.CardVisa, 501))
	require.ErrorIs(t, err, card.ErrIdempotencyConflict)
	var apiErr *card.APIError
	require.ErrorAs(t, err, &apiErr, "not retryable: the caller reused a key for a different charge")
	var re *card.RetryableError
	require.False(t, errors.As(err, &re))
	assert.Equal(t, http.StatusBadRequest, apiErr.StatusCode)
	assert.Contains(t, err.Error(), "idempotency_error")
	requireNoSecret(t, err)
	assert.Equal(t, 1, srv.ChargeCount("inv-conflict"))
}

func TestChargeRetryableFailures(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fail   stripesandbox.Failure
		status int
		code   string
	}{
		{"429 rate limit", stripesandbox.Failure{Status: 429}, 429, "rate_limit"},
		{"429 lock timeout", stripesandbox.Failure{Status: 429, Code: "lock_timeout"}, 429, "lock_timeout"},
		{"500", stripesandbox.Failure{Status: 500}, 500, ""},
		{"503", stripesandbox.Failure{Status: 503}, 503, ""},
		{"network", stripesandbox.Failure{Disconnect: true}, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startSandbox(t, stripesandbox.Options{})
			c := newClient(t, srv.URL())
			tc.fail.Path = "/v1/payment_intents"
			require.NoError(t, srv.FailNext(tc.fail))

			req := charge("inv-retry", stripesandbox.CardVisa, 500)
			_, err := c.ChargeOffSession(t.Context(), req)
			var re *card.RetryableError
			require.ErrorAs(t, err, &re)
			assert.Equal(t, tc.status, re.StatusCode)
			assert.Equal(t, tc.code, re.Code)
			assert.False(t, re.Replayed)
			requireNoSecret(t, err)
			// stripe-go made one request and no retry of its own: Temporal
			// owns retries.
			assert.Equal(t, 1, srv.Requests())
			assert.Equal(t, 0, srv.PaymentIntentCount("inv-retry"), "refused before executing")

			// The caller's retry with the same key charges once.
			res, err := c.ChargeOffSession(t.Context(), req)
			require.NoError(t, err)
			assert.Equal(t, card.OutcomeSucceeded, res.Outcome)
			assert.Equal(t, 1, srv.ChargeCount("inv-retry"))
		})
	}
}

// TestChargeLostResponse is the case idempotency keys exist for: Stripe
// charged, the answer never arrived. The retry with the same key returns the
// first charge instead of charging again.
func TestChargeLostResponse(t *testing.T) {
	srv := startSandbox(t, stripesandbox.Options{})
	c := newClient(t, srv.URL())
	require.NoError(t, srv.FailNext(stripesandbox.Failure{Disconnect: true, AfterExecute: true, Path: "/v1/payment_intents"}))

	req := charge("inv-lost", stripesandbox.CardVisa, 500)
	_, err := c.ChargeOffSession(t.Context(), req)
	var re *card.RetryableError
	require.ErrorAs(t, err, &re)
	assert.Zero(t, re.StatusCode)
	assert.Equal(t, 1, srv.ChargeCount("inv-lost"), "the charge happened")

	res, err := c.ChargeOffSession(t.Context(), req)
	require.NoError(t, err)
	assert.Equal(t, card.OutcomeSucceeded, res.Outcome)
	assert.True(t, res.Replayed)
	assert.Equal(t, 1, srv.ChargeCount("inv-lost"), "and only once")
}

// TestChargeCached500 is Stripe saving a 500 under the key once execution
// began: every retry replays it, and RetryableError.Replayed says so, so
// the caller reconciles instead of retrying forever.
func TestChargeCached500(t *testing.T) {
	srv := startSandbox(t, stripesandbox.Options{})
	c := newClient(t, srv.URL())
	require.NoError(t, srv.FailNext(stripesandbox.Failure{Status: 500, AfterExecute: true, Path: "/v1/payment_intents"}))

	req := charge("inv-500", stripesandbox.CardVisa, 500)
	_, err := c.ChargeOffSession(t.Context(), req)
	var re *card.RetryableError
	require.ErrorAs(t, err, &re)
	assert.False(t, re.Replayed)

	_, err = c.ChargeOffSession(t.Context(), req)
	require.ErrorAs(t, err, &re)
	assert.Equal(t, 500, re.StatusCode)
	assert.True(t, re.Replayed, "the retry replays the saved 500")
	assert.Contains(t, re.Error(), "replayed")
	assert.Equal(t, 1, srv.ChargeCount("inv-500"))
}

func TestChargeValidationSendsNothing(t *testing.T) {
	srv := startSandbox(t, stripesandbox.Options{})
	c := newClient(t, srv.URL())
	valid := charge("inv-valid", stripesandbox.CardVisa, 500)
	for name, mutate := range map[string]func(*card.ChargeRequest){
		"empty idempotency key":    func(r *card.ChargeRequest) { r.IdempotencyKey = "" },
		"padded idempotency key":   func(r *card.ChargeRequest) { r.IdempotencyKey = " k " },
		"long idempotency key":     func(r *card.ChargeRequest) { r.IdempotencyKey = strings.Repeat("k", 256) },
		"non-ascii idempotency":    func(r *card.ChargeRequest) { r.IdempotencyKey = "invoice/é" },
		"zero amount":              func(r *card.ChargeRequest) { r.AmountMinor = 0 },
		"negative amount":          func(r *card.ChargeRequest) { r.AmountMinor = -5 },
		"bad currency":             func(r *card.ChargeRequest) { r.Currency = "dollars" },
		"no customer":              func(r *card.ChargeRequest) { r.CustomerID = "" },
		"no payment method":        func(r *card.ChargeRequest) { r.PaymentMethodID = "" },
		"no invoice":               func(r *card.ChargeRequest) { r.InvoiceID = "" },
		"idempotency key newline":  func(r *card.ChargeRequest) { r.IdempotencyKey = "a\nb" },
		"idempotency key with tab": func(r *card.ChargeRequest) { r.IdempotencyKey = "a\tb" },
	} {
		t.Run(name, func(t *testing.T) {
			req := valid
			mutate(&req)
			_, err := c.ChargeOffSession(t.Context(), req)
			var ve *models.ValidationError
			require.ErrorAs(t, err, &ve)
		})
	}
	assert.Equal(t, 0, srv.Requests(), "nothing reached Stripe")

	// Upper-case currency is normalised, not refused.
	valid.Currency = "USD"
	res, err := c.ChargeOffSession(t.Context(), valid)
	require.NoError(t, err)
	assert.Equal(t, card.OutcomeSucceeded, res.Outcome)
}

func TestRetrievePaymentIntentNotFound(t *testing.T) {
	srv := startSandbox(t, stripesandbox.Options{})
	c := newClient(t, srv.URL())
	_, err := c.RetrievePaymentIntent(t.Context(), "pi_missing")
	require.ErrorIs(t, err, card.ErrNotFound)
	_, err = c.RetrievePaymentIntent(t.Context(), "")
	var ve *models.ValidationError
	require.ErrorAs(t, err, &ve)
}

func TestRetrievePaymentIntentAfterProcessingSettles(t *testing.T) {
	srv := startSandbox(t, stripesandbox.Options{})
	c := newClient(t, srv.URL())
	res, err := c.ChargeOffSession(t.Context(), charge("inv-slow", stripesandbox.CardProcessing, 500))
	require.NoError(t, err)
	require.Equal(t, card.OutcomeProcessing, res.Outcome)
	require.NoError(t, srv.SettleProcessing(res.PaymentIntentID, true))
	pi, err := c.RetrievePaymentIntent(t.Context(), res.PaymentIntentID)
	require.NoError(t, err)
	assert.Equal(t, card.OutcomeSucceeded, pi.Outcome)
	assert.Equal(t, int64(500), pi.AmountReceived)
}

func TestWrongAPIKeyIsUnauthorizedWithoutEchoingIt(t *testing.T) {
	srv := startSandbox(t, stripesandbox.Options{})
	wrongKey := "sk_test_51WrongKeyThatMustNotLeak9876543210"
	c, err := card.New(card.Config{APIKey: wrongKey, BackendURL: srv.URL()})
	require.NoError(t, err)

	_, _, err = c.DefaultPaymentMethod(t.Context(), "cus_default")
	require.ErrorIs(t, err, card.ErrUnauthorized)
	require.NotContains(t, err.Error(), wrongKey)
	require.NotContains(t, err.Error(), wrongKey[len(wrongKey)-4:], "not even the masked tail Stripe quotes")

	_, err = c.ChargeOffSession(t.Context(), charge("inv-unauth", stripesandbox.CardVisa, 500))
	require.ErrorIs(t, err, card.ErrUnauthorized)
	require.NotContains(t, err.Error(), wrongKey)
}

func TestTimeoutIsRetryable(t *testing.T) {
	// A server that accepts the request and never answers until the test
	// ends: the call must end by its own deadline, as unknown (retryable).
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(hang.Close)
	t.Cleanup(func() { close(release) })

	c, err := card.New(card.Config{APIKey: apiKey, BackendURL: hang.URL, Timeout: 50 * time.Millisecond})
	require.NoError(t, err)
	_, err = c.ChargeOffSession(t.Context(), charge("inv-hang", stripesandbox.CardVisa, 500))
	var re *card.RetryableError
	require.ErrorAs(t, err, &re)
	requireNoSecret(t, err)

	// The caller's own deadline bounds the call too.
	c, err = card.New(card.Config{APIKey: apiKey, BackendURL: hang.URL, Timeout: time.Hour})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err = c.RetrievePaymentIntent(ctx, "pi_x")
	require.ErrorAs(t, err, &re)
	require.ErrorIs(t, err, context.DeadlineExceeded)
}

func TestConnectionRefusedIsRetryable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close()) // nothing listens there now
	c, err := card.New(card.Config{APIKey: apiKey, BackendURL: "http://" + addr})
	require.NoError(t, err)
	_, _, err = c.DefaultPaymentMethod(t.Context(), "cus_default")
	var re *card.RetryableError
	require.ErrorAs(t, err, &re)
	assert.Zero(t, re.StatusCode)
	requireNoSecret(t, err)
}

func TestIdempotencyKeyIsDeterministic(t *testing.T) {
	assert.Equal(t, "invoice/inv-1/card/1", card.IdempotencyKey("inv-1", 1))
	assert.Equal(t, card.IdempotencyKey("inv-1", 2), card.IdempotencyKey("inv-1", 2))
	assert.NotEqual(t, card.IdempotencyKey("inv-1", 1), card.IdempotencyKey("inv-1", 2))
}

// TestDefaultPaymentMethodEdgeCases serves canned Stripe objects the sandbox
// does not model: a default that is not a card, and a deleted customer.
func TestDefaultPaymentMethodEdgeCases(t *testing.T) {
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/customers/cus_sepa":
			_, _ = w.Write([]byte(`{"id":"cus_sepa","object":"customer","invoice_settings":{"default_payment_method":
				{"id":"pm_sepa","object":"payment_method","type":"sepa_debit"}}}`))
		case "/v1/customers/cus_gone":
			_, _ = w.Write([]byte(`{"id":"cus_gone","object":"customer","deleted":true}`))
		case "/v1/payment_methods":
			if r.URL.Query().Get("type") != "card" || r.URL.Query().Get("customer") != "cus_sepa" {
				w.WriteHeader(http.StatusBadRequest)
				_, _ = w.Write([]byte(`{"error":{"type":"invalid_request_error","message":"unexpected list"}}`))
				return
			}
			_, _ = w.Write([]byte(`{"object":"list","url":"/v1/payment_methods","has_more":false,"data":[
				{"id":"pm_card_only","object":"payment_method","type":"card","customer":"cus_sepa"}]}`))
		default:
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":{"type":"invalid_request_error","code":"resource_missing","message":"No such thing"}}`))
		}
	}))
	t.Cleanup(fake.Close)
	c := newClient(t, fake.URL)

	pm, found, err := c.DefaultPaymentMethod(t.Context(), "cus_sepa")
	require.NoError(t, err)
	assert.True(t, found, "a non-card default is skipped for the only saved card")
	assert.Equal(t, "pm_card_only", pm)

	pm, found, err = c.DefaultPaymentMethod(t.Context(), "cus_gone")
	require.NoError(t, err)
	assert.False(t, found, "a deleted customer has no card")
	assert.Empty(t, pm)
}

// TestNonStripeErrorBodyIsRetryable: a proxy's HTML 502 is not Stripe's
// JSON; whether the request ran is unknown, so it is retryable.
func TestNonStripeErrorBodyIsRetryable(t *testing.T) {
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = w.Write([]byte("<html>502 Bad Gateway</html>"))
	}))
	t.Cleanup(proxy.Close)
	_, err := newClient(t, proxy.URL).ChargeOffSession(t.Context(), charge("inv-502", stripesandbox.CardVisa, 500))
	var re *card.RetryableError
	require.ErrorAs(t, err, &re)
	requireNoSecret(t, err)
}

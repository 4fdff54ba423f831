package stripesandbox_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v76"

	stripesandbox "github.com/billflow/billflow/sandbox/stripe"
)

// TestStripeRetryDelayGrows checks the shape of the schedule: a minute,
// doubling, capped at twelve hours.
func TestStripeRetryDelayGrows(t *testing.T) {
	assert.Equal(t, time.Minute, stripesandbox.StripeRetryDelay(1))
	assert.Equal(t, 2*time.Minute, stripesandbox.StripeRetryDelay(2))
	assert.Equal(t, 512*time.Minute, stripesandbox.StripeRetryDelay(10))
	assert.Equal(t, 12*time.Hour, stripesandbox.StripeRetryDelay(11))
	assert.Equal(t, 12*time.Hour, stripesandbox.StripeRetryDelay(40))
}

// TestWebhookRetriesPastFiveAttempts: with Stripe's schedule (scaled down) a
// delivery that fails seven times is retried until the endpoint takes it;
// the legacy schedule gave up after five.
func TestWebhookRetriesPastFiveAttempts(t *testing.T) {
	var calls atomic.Int32
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 7 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(rcv.Close)
	srv := start(t, stripesandbox.Options{WebhookURL: rcv.URL, WebhookTimeScale: 0.00001})
	_, err := stripeClient(t, srv).PaymentIntents.New(chargeParams(stripesandbox.CardVisa))
	require.NoError(t, err)
	require.NoError(t, srv.WaitWebhooks(t.Context()))
	var statuses []int
	for _, d := range srv.Deliveries() {
		statuses = append(statuses, d.Status)
	}
	assert.Equal(t, []int{503, 503, 503, 503, 503, 503, 503, 200}, statuses)
}

// TestStateSurvivesRestart: a sandbox restarted on its state file still has
// its charges, events and idempotency keys: a retried charge replays
// instead of charging twice.
func TestStateSurvivesRestart(t *testing.T) {
	state := filepath.Join(t.TempDir(), "stripe.json")
	cust := []stripesandbox.Customer{{ID: "cus_a", DefaultPaymentMethod: "pm_a",
		PaymentMethods: []stripesandbox.PaymentMethod{{ID: "pm_a", Card: stripesandbox.CardVisa}}}}
	first := start(t, stripesandbox.Options{StateFile: state, Customers: cust})
	form := chargeForm("700")
	form.Set("customer", "cus_a")
	form.Set("payment_method", "pm_a")
	r := do(t, first, http.MethodPost, "/v1/payment_intents", form, map[string]string{"Idempotency-Key": "invoice/inv-1/card/1"})
	require.Equal(t, http.StatusOK, r.status, string(r.body))
	var pi struct{ ID string }
	require.NoError(t, json.Unmarshal(r.body, &pi))
	first.Close()

	second := start(t, stripesandbox.Options{StateFile: state, Customers: cust})
	assert.Equal(t, 1, second.ChargeCount("inv-1"))
	again := do(t, second, http.MethodPost, "/v1/payment_intents", form, map[string]string{"Idempotency-Key": "invoice/inv-1/card/1"})
	assert.Equal(t, http.StatusOK, again.status)
	assert.Equal(t, "true", again.header.Get("Idempotent-Replayed"))
	assert.Equal(t, 1, second.ChargeCount("inv-1"), "the replay charged nothing")
	got, err := stripeClient(t, second).PaymentIntents.Get(pi.ID, nil)
	require.NoError(t, err)
	assert.Equal(t, stripe.PaymentIntentStatusSucceeded, got.Status)
	assert.Len(t, second.Events(), 1)
	pm, err := stripeClient(t, second).PaymentMethods.Get("pm_a", nil)
	require.NoError(t, err)
	assert.Equal(t, "cus_a", pm.Customer.ID)
}

// TestRetryingDeliveryResumesAfterRestart: a delivery still being retried
// when the sandbox stops is retried by the next one, from where it stood.
func TestRetryingDeliveryResumesAfterRestart(t *testing.T) {
	var up atomic.Bool
	got := make(chan string, 10)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !up.Load() {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		var ev struct{ ID string }
		_ = json.NewDecoder(r.Body).Decode(&ev)
		got <- ev.ID
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(rcv.Close)
	state := filepath.Join(t.TempDir(), "stripe.json")
	// Scale 1: the second attempt is a minute away, so the first sandbox is
	// closed with the delivery pending.
	first := start(t, stripesandbox.Options{StateFile: state, WebhookURL: rcv.URL, WebhookTimeScale: 1})
	_, err := stripeClient(t, first).PaymentIntents.New(chargeParams(stripesandbox.CardVisa))
	require.NoError(t, err)
	for len(first.Deliveries()) == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	evID := first.Events()[0].ID
	first.Close()
	require.Len(t, first.Deliveries(), 1)

	up.Store(true)
	// The restarted sandbox's clock runs two minutes ahead, so the second
	// attempt, due a minute after the first, is due at once.
	second := start(t, stripesandbox.Options{StateFile: state, WebhookURL: rcv.URL, WebhookTimeScale: 1,
		Now: func() time.Time { return time.Now().Add(2 * time.Minute) }})
	require.NoError(t, second.WaitWebhooks(t.Context()))
	assert.Equal(t, evID, <-got)
	ds := second.Deliveries()
	require.Len(t, ds, 1)
	assert.Equal(t, 2, ds[0].Attempt, "resumed at the second attempt")
	assert.Equal(t, http.StatusOK, ds[0].Status)
}

// TestProcessingChargeSettledByLaterWebhook: with SettleProcessingAfter, a
// processing charge succeeds on its own later and only the
// payment_intent.succeeded webhook says so.
func TestProcessingChargeSettledByLaterWebhook(t *testing.T) {
	types := make(chan string, 10)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var ev struct{ Type string }
		_ = json.NewDecoder(r.Body).Decode(&ev)
		types <- ev.Type
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(rcv.Close)
	srv := start(t, stripesandbox.Options{WebhookURL: rcv.URL, SettleProcessingAfter: time.Millisecond})
	pi, err := stripeClient(t, srv).PaymentIntents.New(chargeParams(stripesandbox.CardProcessing))
	require.NoError(t, err)
	assert.Equal(t, stripe.PaymentIntentStatusProcessing, pi.Status)
	// Deliveries run concurrently: like Stripe's, they may arrive in any order.
	assert.ElementsMatch(t, []string{"payment_intent.processing", "payment_intent.succeeded"}, []string{<-types, <-types})
	got, err := stripeClient(t, srv).PaymentIntents.Get(pi.ID, nil)
	require.NoError(t, err)
	assert.Equal(t, stripe.PaymentIntentStatusSucceeded, got.Status)
	assert.Equal(t, 1, srv.ChargeCount("inv-ev"))
}

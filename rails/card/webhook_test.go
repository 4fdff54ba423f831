package card_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"github.com/stripe/stripe-go/v76"

	"github.com/billflow/billflow/rails/card"
	stripesandbox "github.com/billflow/billflow/sandbox/stripe"
)

// delivery is one webhook request as the endpoint received it.
type delivery struct {
	body      []byte
	signature string
}

// receiver is a webhook endpoint: it records deliveries and answers with
// the statuses it is given in turn (200 once they run out).
type receiver struct {
	url        string
	deliveries chan delivery
	statuses   chan int
}

func newReceiver(t *testing.T, statuses ...int) *receiver {
	t.Helper()
	r := &receiver{deliveries: make(chan delivery, 64), statuses: make(chan int, len(statuses))}
	for _, s := range statuses {
		r.statuses <- s
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		r.deliveries <- delivery{body: body, signature: req.Header.Get("Stripe-Signature")}
		select {
		case s := <-r.statuses:
			w.WriteHeader(s)
		default:
			w.WriteHeader(http.StatusOK)
		}
	}))
	t.Cleanup(srv.Close)
	r.url = srv.URL
	return r
}

// next waits for the next delivery; the deadline only guards a broken test.
func (r *receiver) next(t *testing.T) delivery {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	select {
	case d := <-r.deliveries:
		return d
	case <-ctx.Done():
		t.Fatal("no webhook delivery arrived")
		return delivery{}
	}
}

func verify(t *testing.T, d delivery) card.Event {
	t.Helper()
	ev, err := card.VerifyWebhook(d.body, d.signature, webhookSecret, time.Now())
	require.NoError(t, err)
	return ev
}

func TestWebhookSucceededAndFailedEvents(t *testing.T) {
	rcv := newReceiver(t)
	srv := startSandbox(t, stripesandbox.Options{WebhookURL: rcv.url})
	c := newClient(t, srv.URL())

	ok, err := c.ChargeOffSession(t.Context(), charge("inv-hook-ok", stripesandbox.CardVisa, 1999))
	require.NoError(t, err)
	declined, err := c.ChargeOffSession(t.Context(), charge("inv-hook-declined", stripesandbox.CardInsufficientFunds, 2999))
	require.NoError(t, err)

	byType := map[string]card.Event{}
	for range 2 {
		ev := verify(t, rcv.next(t))
		byType[ev.Type] = ev
	}

	succeeded := byType[card.EventPaymentIntentSucceeded]
	require.NotNil(t, succeeded.PaymentIntent, "payment_intent.succeeded delivered")
	assert.True(t, strings.HasPrefix(succeeded.ID, "evt_"))
	assert.Equal(t, stripe.APIVersion, succeeded.APIVersion)
	assert.Equal(t, ok.PaymentIntentID, succeeded.PaymentIntent.ID)
	assert.Equal(t, int64(1999), succeeded.PaymentIntent.AmountMinor)
	assert.Equal(t, int64(1999), succeeded.PaymentIntent.AmountReceived)
	assert.Equal(t, "inv-hook-ok", succeeded.PaymentIntent.InvoiceID)
	assert.Equal(t, card.OutcomeSucceeded, succeeded.PaymentIntent.Outcome)

	failed := byType[card.EventPaymentIntentPaymentFailed]
	require.NotNil(t, failed.PaymentIntent, "payment_intent.payment_failed delivered")
	assert.Equal(t, declined.PaymentIntentID, failed.PaymentIntent.ID)
	assert.Equal(t, int64(2999), failed.PaymentIntent.AmountMinor)
	assert.Equal(t, "inv-hook-declined", failed.PaymentIntent.InvoiceID)
	assert.Equal(t, card.OutcomeDeclined, failed.PaymentIntent.Outcome)
	assert.Equal(t, "insufficient_funds", failed.PaymentIntent.DeclineCode)

	// The payload kept for storage is the event without the client secret.
	for _, ev := range []card.Event{succeeded, failed} {
		var stored struct {
			ID   string `json:"id"`
			Data struct {
				Object map[string]any `json:"object"`
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal(ev.Payload, &stored))
		assert.Equal(t, ev.ID, stored.ID)
		assert.Equal(t, ev.PaymentIntent.ID, stored.Data.Object["id"])
		assert.NotContains(t, stored.Data.Object, "client_secret")
		assert.NotContains(t, string(ev.Payload), "_secret_")
	}
}

func TestWebhookRetriedUntil2xx(t *testing.T) {
	rcv := newReceiver(t, http.StatusInternalServerError, http.StatusServiceUnavailable)
	srv := startSandbox(t, stripesandbox.Options{WebhookURL: rcv.url, WebhookRetryDelay: time.Millisecond})
	c := newClient(t, srv.URL())
	_, err := c.ChargeOffSession(t.Context(), charge("inv-hook-retry", stripesandbox.CardVisa, 500))
	require.NoError(t, err)

	var ids []string
	for range 3 {
		ids = append(ids, verify(t, rcv.next(t)).ID)
	}
	assert.Equal(t, ids[0], ids[1], "the same event is retried")
	assert.Equal(t, ids[0], ids[2])
	require.NoError(t, srv.WaitWebhooks(t.Context()))
	var statuses []int
	for _, d := range srv.Deliveries() {
		statuses = append(statuses, d.Status)
	}
	assert.Equal(t, []int{500, 503, 200}, statuses)
}

// TestWebhookReplayVerifies: a redelivered (or replayed) event verifies
// again with the same id; acting on it once is the store's job
// (store.RecordStripeEvent, tested in store/).
func TestWebhookReplayVerifies(t *testing.T) {
	rcv := newReceiver(t)
	srv := startSandbox(t, stripesandbox.Options{WebhookURL: rcv.url, DropWebhooks: true})
	c := newClient(t, srv.URL())
	res, err := c.ChargeOffSession(t.Context(), charge("inv-hook-replay", stripesandbox.CardVisa, 500))
	require.NoError(t, err)

	events := srv.Events()
	require.Len(t, events, 1)
	assert.Empty(t, srv.Deliveries(), "dropped: nothing delivered")

	require.NoError(t, srv.Redeliver(t.Context(), events[0].ID))
	require.NoError(t, srv.Redeliver(t.Context(), events[0].ID))
	first, second := verify(t, rcv.next(t)), verify(t, rcv.next(t))
	assert.Equal(t, events[0].ID, first.ID)
	assert.Equal(t, first.ID, second.ID)
	assert.Equal(t, res.PaymentIntentID, second.PaymentIntent.ID)
}

func TestVerifyWebhookRejections(t *testing.T) {
	signedAt := time.Unix(1_760_000_000, 0)
	payload := eventPayload(t, stripe.APIVersion)
	header := stripesandbox.SignatureHeader(payload, webhookSecret, signedAt)

	ev, err := card.VerifyWebhook(payload, header, webhookSecret, signedAt)
	require.NoError(t, err, "the control: a genuine delivery verifies")
	assert.Equal(t, "evt_test_1", ev.ID)
	assert.Equal(t, "inv-42", ev.PaymentIntent.InvoiceID)
	assert.Equal(t, int64(4200), ev.PaymentIntent.AmountMinor)
	_, err = card.VerifyWebhook(payload, header, webhookSecret, signedAt.Add(card.WebhookTolerance))
	require.NoError(t, err, "still inside the tolerance window")

	otherVersion := eventPayload(t, "2020-08-27")
	for _, tc := range []struct {
		name           string
		payload        []byte
		header, secret string
		now            time.Time
		want           error
	}{
		{"wrong secret", payload, stripesandbox.SignatureHeader(payload, "whsec_other", signedAt), webhookSecret, signedAt, card.ErrWebhookSignature},
		{"tampered body", []byte(strings.Replace(string(payload), "4200", "1", 1)), header, webhookSecret, signedAt, card.ErrWebhookSignature},
		{"signature for another timestamp", payload, strings.Replace(header, "t=1760000000", "t=1760000001", 1), webhookSecret, signedAt, card.ErrWebhookSignature},
		{"no v1 signature", payload, "t=1760000000", webhookSecret, signedAt, card.ErrWebhookSignature},
		{"too old", payload, header, webhookSecret, signedAt.Add(card.WebhookTolerance + time.Second), card.ErrWebhookTooOld},
		{"no header", payload, "", webhookSecret, signedAt, card.ErrWebhookMalformed},
		{"garbage header", payload, "garbage", webhookSecret, signedAt, card.ErrWebhookMalformed},
		{"bad timestamp", payload, "t=soon,v1=abcd", webhookSecret, signedAt, card.ErrWebhookMalformed},
		{"body not json", []byte("not json"), stripesandbox.SignatureHeader([]byte("not json"), webhookSecret, signedAt), webhookSecret, signedAt, card.ErrWebhookMalformed},
		{"other api version", otherVersion, stripesandbox.SignatureHeader(otherVersion, webhookSecret, signedAt), webhookSecret, signedAt, card.ErrWebhookAPIVersion},
		{"no secret configured", payload, header, "", signedAt, card.ErrWebhookNoSecret},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := card.VerifyWebhook(tc.payload, tc.header, tc.secret, tc.now)
			require.ErrorIs(t, err, tc.want)
			var we *card.WebhookError
			require.ErrorAs(t, err, &we)
			requireNoSecret(t, err)
			_, sig, _ := strings.Cut(header, "v1=")
			assert.NotContains(t, err.Error(), sig, "no signature in the error")
			assert.NotContains(t, err.Error(), "4200", "no payload in the error")
		})
	}
}

// eventPayload is a payment_intent.succeeded event as Stripe renders it.
func eventPayload(t *testing.T, apiVersion string) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"id": "evt_test_1", "object": "event", "api_version": apiVersion, "created": 1_760_000_000,
		"type": "payment_intent.succeeded", "livemode": false, "pending_webhooks": 1,
		"data": map[string]any{"object": map[string]any{
			"id": "pi_test_1", "object": "payment_intent", "amount": 4200, "amount_received": 4200, "currency": "usd",
			"status": "succeeded", "client_secret": "pi_test_1_secret_x", "metadata": map[string]string{"invoice_id": "inv-42"},
		}},
	})
	require.NoError(t, err)
	return b
}

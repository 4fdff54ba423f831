package card_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stripe/stripe-go/v76"

	"github.com/billflow/billflow/rails/card"
	stripesandbox "github.com/billflow/billflow/sandbox/stripe"
)

// fuzzSignedAt is when the fuzzer's deliveries are signed and received.
var fuzzSignedAt = time.Unix(1_760_000_000, 0)

// FuzzVerifyWebhook feeds Stripe webhook bodies to VerifyWebhook, as the
// api's /webhooks/stripe receives them, in two ways:
//
//   - the body with a genuine signature (the part of the parser an attacker
//     reaches only through Stripe, or with the signing secret): it is either
//     refused as malformed or of another API version, never as a bad
//     signature, or accepted as an event with an id and a type whose stored
//     payload is JSON without the PaymentIntent's client_secret, whose
//     PaymentIntent (for payment_intent.* events) has an id and amounts
//     that are not negative, and which verifies again, unchanged, from its
//     own stored payload (parse -> store -> parse);
//   - the same body with one byte changed, under the genuine signature:
//     always ErrWebhookSignature;
//   - the body under the fuzzer's own Stripe-Signature header: accepted only
//     when that header carries the genuine signature.
//
// No refusal is anything but a *WebhookError, and none contains the secret
// or the signature.
func FuzzVerifyWebhook(f *testing.F) {
	f.Add(fuzzEvent(f, "payment_intent.succeeded", stripe.APIVersion, map[string]any{
		"id": "pi_1", "object": "payment_intent", "amount": 4200, "amount_received": 4200, "currency": "usd",
		"status": "succeeded", "client_secret": "pi_1_secret_x", "metadata": map[string]string{"invoice_id": "inv-42"},
	}), "", uint16(7))
	f.Add(fuzzEvent(f, "payment_intent.payment_failed", stripe.APIVersion, map[string]any{
		"id": "pi_2", "object": "payment_intent", "amount": 100, "amount_received": 0, "currency": "eur", "status": "requires_payment_method",
		"last_payment_error": map[string]any{"type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds", "message": "Your card has insufficient funds."},
		"metadata":           map[string]string{"invoice_id": "inv-7"},
	}), "t=1760000000,v1=00", uint16(0))
	f.Add(fuzzEvent(f, "customer.created", stripe.APIVersion, map[string]any{"id": "cus_1", "object": "customer"}), "t=1,v0=ab", uint16(1))
	f.Add(fuzzEvent(f, "payment_intent.succeeded", "2020-08-27", map[string]any{"id": "pi_3"}), "garbage", uint16(3))
	f.Add([]byte(`{}`), "", uint16(0))
	f.Add([]byte(``), "t=1760000000", uint16(0))

	secrets := []string{webhookSecret, webhookSecret[len(webhookSecret)-12:]}
	f.Fuzz(func(t *testing.T, body []byte, header string, flip uint16) {
		genuine := stripesandbox.SignatureHeader(body, webhookSecret, fuzzSignedAt)
		_, sig, _ := strings.Cut(genuine, "v1=")
		refusal := func(err error) *card.WebhookError {
			t.Helper()
			var we *card.WebhookError
			if !errors.As(err, &we) {
				t.Fatalf("refusal is a %T, not a *card.WebhookError: %v", err, err)
			}
			for _, s := range append(secrets, sig) {
				if strings.Contains(err.Error(), s) {
					t.Fatalf("refusal %q contains a secret or the signature", err)
				}
			}
			return we
		}

		ev, err := card.VerifyWebhook(body, genuine, webhookSecret, fuzzSignedAt)
		if err != nil {
			if we := refusal(err); we.Reason != card.ErrWebhookMalformed && we.Reason != card.ErrWebhookAPIVersion {
				t.Fatalf("a genuinely signed body was refused as %v", err)
			}
		} else {
			checkEvent(t, body, ev)
		}

		if len(body) > 0 {
			tampered := bytes.Clone(body)
			tampered[int(flip)%len(body)] ^= 1 << (flip / 256 % 8)
			_, err := card.VerifyWebhook(tampered, genuine, webhookSecret, fuzzSignedAt)
			if !errors.Is(err, card.ErrWebhookSignature) {
				t.Fatalf("a body changed after signing gave %v, want ErrWebhookSignature", err)
			}
			refusal(err)
		}

		if _, err := card.VerifyWebhook(body, header, webhookSecret, fuzzSignedAt); err != nil {
			refusal(err)
		} else if !strings.Contains(header, sig) {
			t.Fatalf("accepted a delivery whose header %q lacks the genuine signature", header)
		}
	})
}

// checkEvent holds an accepted event to what the api relies on.
func checkEvent(t *testing.T, body []byte, ev card.Event) {
	t.Helper()
	if ev.ID == "" || ev.Type == "" || ev.APIVersion != stripe.APIVersion {
		t.Fatalf("accepted an event without id, type or the pinned API version: %+v", ev)
	}
	var stored struct {
		Data struct {
			Object map[string]json.RawMessage `json:"object"`
		} `json:"data"`
	}
	if err := json.Unmarshal(ev.Payload, &stored); err != nil {
		t.Fatalf("stored payload is not a JSON event: %v", err)
	}
	// encoding/json (and so stripe-go) matches keys without regard to case.
	for k := range stored.Data.Object {
		if strings.EqualFold(k, "client_secret") {
			t.Fatalf("stored payload keeps the PaymentIntent's client_secret (as %q)", k)
		}
	}
	pi := ev.PaymentIntent
	if strings.HasPrefix(ev.Type, "payment_intent.") != (pi != nil) {
		t.Fatalf("event %q has PaymentIntent %v", ev.Type, pi)
	}
	if pi != nil && (pi.ID == "" || pi.AmountMinor < 0 || pi.AmountReceived < 0) {
		t.Fatalf("accepted a PaymentIntent without id or with a negative amount: %+v", pi)
	}

	// The stored payload is what a later reading (or an operator's replay)
	// parses: it must verify as the same event and store unchanged.
	again, err := card.VerifyWebhook(ev.Payload, stripesandbox.SignatureHeader(ev.Payload, webhookSecret, fuzzSignedAt), webhookSecret, fuzzSignedAt)
	if err != nil {
		t.Fatalf("the stored payload of an accepted event is refused: %v\nbody:   %q\nstored: %q", err, body, ev.Payload)
	}
	if again.ID != ev.ID || again.Type != ev.Type || !again.Created.Equal(ev.Created) || again.Livemode != ev.Livemode ||
		(pi == nil) != (again.PaymentIntent == nil) || (pi != nil && *pi != *again.PaymentIntent) || !bytes.Equal(again.Payload, ev.Payload) {
		t.Fatalf("parse -> store -> parse changed the event:\n%+v\n%+v", ev, again)
	}
}

// fuzzEvent is an event body as Stripe renders it.
func fuzzEvent(f *testing.F, typ, apiVersion string, object map[string]any) []byte {
	b, err := json.Marshal(map[string]any{
		"id": "evt_fuzz", "object": "event", "api_version": apiVersion, "created": 1_760_000_000,
		"type": typ, "livemode": false, "pending_webhooks": 1, "data": map[string]any{"object": object},
	})
	if err != nil {
		f.Fatal(err)
	}
	return b
}

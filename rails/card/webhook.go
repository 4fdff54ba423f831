package card

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/stripe/stripe-go/v76"
	"github.com/stripe/stripe-go/v76/webhook"
)

// Event types the card rail acts on.
const (
	EventPaymentIntentSucceeded     = "payment_intent.succeeded"
	EventPaymentIntentPaymentFailed = "payment_intent.payment_failed"
)

// WebhookTolerance is how old a signature may be: Stripe's default window,
// which bounds how long a captured delivery can be replayed.
const WebhookTolerance = webhook.DefaultTolerance

// WebhookFutureSkew is how far ahead of this host's clock a signature's
// timestamp may be: clock skew between Stripe and us, no more.
const WebhookFutureSkew = 5 * time.Minute

// Sentinels a *WebhookError matches with errors.Is. All mean "answer 400
// and do nothing": the delivery was not proven to come from Stripe, or
// cannot be understood.
var (
	// ErrWebhookMalformed: no or unparsable Stripe-Signature header, or a
	// body that is not an event.
	ErrWebhookMalformed = errors.New("malformed stripe webhook")
	// ErrWebhookSignature: no v1 signature matches the payload and secret.
	ErrWebhookSignature = errors.New("stripe webhook signature does not match")
	// ErrWebhookTooOld: the signature's timestamp is older than
	// WebhookTolerance (a replayed capture, or a badly wrong clock).
	ErrWebhookTooOld = errors.New("stripe webhook timestamp outside the tolerance window")
	// ErrWebhookFromFuture: the signature's timestamp is more than
	// WebhookFutureSkew ahead of now. stripe-go's tolerance only bounds the
	// past, so a capture signed with a future timestamp would stay
	// replayable for as long as its timestamp is ahead.
	ErrWebhookFromFuture = errors.New("stripe webhook timestamp is in the future")
	// ErrWebhookAPIVersion: the event was rendered for another API version
	// than stripe-go's, so its objects may not decode as expected; the
	// webhook endpoint must be pinned to stripe.APIVersion.
	ErrWebhookAPIVersion = errors.New("stripe webhook API version differs from stripe-go's")
	// ErrWebhookNoSecret: no signing secret was configured.
	ErrWebhookNoSecret = errors.New("stripe webhook signing secret not configured")
)

// WebhookError is a rejected delivery. Its text never contains the secret,
// the signature or the payload.
type WebhookError struct {
	// Reason is one of the ErrWebhook... sentinels.
	Reason error
	// Detail adds what was wrong.
	Detail string
}

func (e *WebhookError) Error() string {
	if e.Detail == "" {
		return e.Reason.Error()
	}
	return e.Reason.Error() + ": " + e.Detail
}

// Unwrap returns the sentinel.
func (e *WebhookError) Unwrap() error { return e.Reason }

// Event is a verified Stripe event.
type Event struct {
	ID         string    `json:"id"`
	Type       string    `json:"type"`
	Created    time.Time `json:"created"`
	APIVersion string    `json:"api_version"`
	Livemode   bool      `json:"livemode"`
	// PaymentIntent is set for payment_intent.* events.
	PaymentIntent *PaymentIntent `json:"payment_intent,omitempty"`
	// Payload is the verified event JSON for storage, with the
	// PaymentIntent's client_secret removed.
	Payload json.RawMessage `json:"payload"`
}

// VerifyWebhook checks a delivery's Stripe-Signature header against the raw
// request body (exactly as received: re-encoding breaks the signature) and
// the endpoint's signing secret, at time now, and decodes the event. A
// redelivered event verifies again with the same ID: de-duplication is the
// store's job (store.RecordStripeEvent).
func VerifyWebhook(payload []byte, sigHeader string, secret string, now time.Time) (Event, error) {
	if secret == "" {
		return Event{}, &WebhookError{Reason: ErrWebhookNoSecret}
	}
	signedAt, err := signatureTime(sigHeader)
	if err != nil {
		return Event{}, err
	}
	// The tolerance is checked below against now rather than by stripe-go
	// (which reads the wall clock), and the API version is compared here
	// rather than parsed out of stripe-go's error text; the signature check
	// itself is stripe-go's.
	ev, err := webhook.ConstructEventWithOptions(payload, sigHeader, secret, webhook.ConstructEventOptions{
		IgnoreTolerance:          true,
		IgnoreAPIVersionMismatch: true,
	})
	switch {
	case errors.Is(err, webhook.ErrNoValidSignature):
		return Event{}, &WebhookError{Reason: ErrWebhookSignature}
	case errors.Is(err, webhook.ErrNotSigned), errors.Is(err, webhook.ErrInvalidHeader):
		return Event{}, &WebhookError{Reason: ErrWebhookMalformed, Detail: "bad Stripe-Signature header"}
	case err != nil:
		return Event{}, &WebhookError{Reason: ErrWebhookMalformed, Detail: "body is not a JSON event"}
	}
	if ahead := signedAt.Sub(now); ahead > WebhookFutureSkew {
		return Event{}, &WebhookError{Reason: ErrWebhookFromFuture, Detail: fmt.Sprintf("signed %s after now, allowed skew %s", ahead.Round(time.Second), WebhookFutureSkew)}
	}
	if age := now.Sub(signedAt); age > WebhookTolerance {
		return Event{}, &WebhookError{Reason: ErrWebhookTooOld, Detail: fmt.Sprintf("signed %s before now, tolerance %s", age.Round(time.Second), WebhookTolerance)}
	}
	if ev.APIVersion != stripe.APIVersion {
		return Event{}, &WebhookError{Reason: ErrWebhookAPIVersion, Detail: fmt.Sprintf("event has %q, stripe-go expects %q", ev.APIVersion, stripe.APIVersion)}
	}
	if ev.ID == "" || ev.Type == "" || ev.Data == nil {
		return Event{}, &WebhookError{Reason: ErrWebhookMalformed, Detail: "event lacks id, type or data"}
	}
	out := Event{ID: ev.ID, Type: string(ev.Type), Created: time.Unix(ev.Created, 0).UTC(), APIVersion: ev.APIVersion, Livemode: ev.Livemode}
	if strings.HasPrefix(out.Type, "payment_intent.") {
		var pi stripe.PaymentIntent
		if err := json.Unmarshal(ev.Data.Raw, &pi); err != nil || pi.ID == "" {
			return Event{}, &WebhookError{Reason: ErrWebhookMalformed, Detail: "data.object is not a PaymentIntent"}
		}
		// Stripe's amounts are never negative; one that is would reach the
		// settlement as a refund nobody asked for (a FuzzVerifyWebhook property;
		// testdata/fuzz/FuzzVerifyWebhook/negative_amount_received).
		if pi.Amount < 0 || pi.AmountReceived < 0 {
			return Event{}, &WebhookError{Reason: ErrWebhookMalformed, Detail: "data.object has a negative amount"}
		}
		summary := summarise(&pi, "")
		out.PaymentIntent = &summary
	}
	out.Payload, err = withoutClientSecret(payload)
	if err != nil {
		return Event{}, &WebhookError{Reason: ErrWebhookMalformed, Detail: "body is not a JSON object"}
	}
	return out, nil
}

// signatureTime reads t= from a Stripe-Signature header
// ("t=1700000000,v1=<hex>,v1=<hex>").
func signatureTime(header string) (time.Time, error) {
	if header == "" {
		return time.Time{}, &WebhookError{Reason: ErrWebhookMalformed, Detail: "no Stripe-Signature header"}
	}
	for _, part := range strings.Split(header, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if ok && k == "t" {
			sec, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				break
			}
			return time.Unix(sec, 0), nil
		}
	}
	return time.Time{}, &WebhookError{Reason: ErrWebhookMalformed, Detail: "Stripe-Signature header has no valid timestamp"}
}

// withoutClientSecret drops data.object.client_secret: a PaymentIntent's
// client secret lets its holder complete the payment client-side, so it is
// not kept in the database. Keys match without regard to case, as
// encoding/json (and so stripe-go) matches them: a "Client_Secret" is read
// as the client secret, so it is dropped too.
func withoutClientSecret(payload []byte) (json.RawMessage, error) {
	var ev map[string]json.RawMessage
	if err := json.Unmarshal(payload, &ev); err != nil {
		return nil, err
	}
	changed := false
	for dk, raw := range ev {
		var data map[string]json.RawMessage
		if !strings.EqualFold(dk, "data") || json.Unmarshal(raw, &data) != nil {
			continue
		}
		dataChanged := false
		for ok, oraw := range data {
			var obj map[string]json.RawMessage
			if !strings.EqualFold(ok, "object") || json.Unmarshal(oraw, &obj) != nil {
				continue
			}
			objChanged := false
			for k := range obj {
				if strings.EqualFold(k, "client_secret") {
					delete(obj, k)
					objChanged = true
				}
			}
			if objChanged {
				b, err := json.Marshal(obj)
				if err != nil {
					return nil, err
				}
				data[ok], dataChanged = b, true
			}
		}
		if dataChanged {
			b, err := json.Marshal(data)
			if err != nil {
				return nil, err
			}
			ev[dk], changed = b, true
		}
	}
	if !changed {
		return payload, nil
	}
	return json.Marshal(ev)
}

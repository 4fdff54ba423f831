package stripesandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
)

// ChargeCount is how many charges of the invoice moved money (or are
// moving it: processing): PaymentIntents with metadata invoice_id whose
// charge succeeded. Tests use it to prove an invoice is charged exactly once.
func (s *Server) ChargeCount(invoiceID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, pi := range s.paymentIntents {
		if pi.charged && pi.Metadata["invoice_id"] == invoiceID {
			n++
		}
	}
	return n
}

// PaymentIntentCount is how many PaymentIntents carry the invoice's id,
// whatever their outcome.
func (s *Server) PaymentIntentCount(invoiceID string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, pi := range s.paymentIntents {
		if pi.Metadata["invoice_id"] == invoiceID {
			n++
		}
	}
	return n
}

// Requests is how many authenticated API requests arrived.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// Event is an emitted event as tests see it.
type Event struct {
	ID   string
	Type string
	// Payload is the JSON delivered to the webhook URL.
	Payload []byte
}

// Events returns every event emitted so far, oldest first.
func (s *Server) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Event, len(s.events))
	for i, ev := range s.events {
		out[i] = Event{ID: ev.ID, Type: ev.Type, Payload: ev.body}
	}
	return out
}

// ErrUnknownPaymentIntent is returned for a PaymentIntent id the sandbox
// does not have.
var ErrUnknownPaymentIntent = errors.New("stripe sandbox: no such payment intent")

// SettleProcessing decides a processing PaymentIntent (CardProcessing):
// succeeded, or failed back to requires_payment_method, emitting the event.
func (s *Server) SettleProcessing(id string, succeeded bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	pi, found := s.paymentIntents[id]
	if !found {
		return fmt.Errorf("%w: %s", ErrUnknownPaymentIntent, id)
	}
	if pi.Status != "processing" {
		return fmt.Errorf("stripe sandbox: payment intent %s is %s, not processing", id, pi.Status)
	}
	if succeeded {
		pi.Status, pi.AmountReceived = "succeeded", pi.Amount
		s.emitLocked("payment_intent.succeeded", pi.render(), nil)
		return nil
	}
	pi.Status, pi.charged = "requires_payment_method", false
	pi.LastPaymentError = &apiError{Type: "card_error", Code: "card_declined", DeclineCode: "generic_decline",
		Message: "Your card was declined.", Charge: pi.LatestCharge}
	s.emitLocked("payment_intent.payment_failed", pi.render(), nil)
	return nil
}

// adminRoutes expose the test helpers over HTTP for the standalone server,
// under /_sandbox/ (a prefix Stripe never uses), behind the same API key.
//
//	POST /_sandbox/customers                     body: Customer
//	POST /_sandbox/failures                      body: Failure
//	POST /_sandbox/webhooks                      body: {"url": "...", "drop": bool} (either optional)
//	POST /_sandbox/events/{id}/redeliver
//	POST /_sandbox/payment_intents/{id}/settle   body: {"succeeded": bool}
//	GET  /_sandbox/charges?invoice_id=...        -> {"charges": n, "payment_intents": n}
func (s *Server) adminRoutes(mux *http.ServeMux) {
	admin := func(pattern string, h func(r *http.Request) (any, error)) {
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			if ok, _ := s.authorized(r); !ok {
				writeJSON(w, http.StatusUnauthorized, errorBody(invalidRequest("", "Invalid API Key provided.")))
				return
			}
			v, err := h(r)
			if err == nil && r.Method == http.MethodPost {
				err = s.saveState()
			}
			if err != nil {
				writeJSON(w, http.StatusBadRequest, errorBody(invalidRequest("", err.Error())))
				return
			}
			writeJSON(w, http.StatusOK, v)
		})
	}
	admin("POST /_sandbox/customers", func(r *http.Request) (any, error) {
		var c Customer
		if err := decodeBody(r, &c); err != nil {
			return nil, err
		}
		if c.ID == "" {
			c.ID = newID("cus")
		}
		if err := s.AddCustomer(c); err != nil {
			return nil, err
		}
		return map[string]string{"id": c.ID}, nil
	})
	admin("POST /_sandbox/failures", func(r *http.Request) (any, error) {
		var f Failure
		if err := decodeBody(r, &f); err != nil {
			return nil, err
		}
		return map[string]bool{"ok": true}, s.FailNext(f)
	})
	admin("POST /_sandbox/webhooks", func(r *http.Request) (any, error) {
		var body struct {
			URL  *string `json:"url"`
			Drop *bool   `json:"drop"`
		}
		if err := decodeBody(r, &body); err != nil {
			return nil, err
		}
		if body.URL != nil {
			if err := s.SetWebhookURL(*body.URL); err != nil {
				return nil, err
			}
		}
		if body.Drop != nil {
			s.SetDropWebhooks(*body.Drop)
		}
		return map[string]bool{"ok": true}, nil
	})
	admin("POST /_sandbox/events/{id}/redeliver", func(r *http.Request) (any, error) {
		return map[string]bool{"ok": true}, s.Redeliver(r.Context(), r.PathValue("id"))
	})
	admin("POST /_sandbox/payment_intents/{id}/settle", func(r *http.Request) (any, error) {
		var body struct {
			Succeeded bool `json:"succeeded"`
		}
		if err := decodeBody(r, &body); err != nil {
			return nil, err
		}
		return map[string]bool{"ok": true}, s.SettleProcessing(r.PathValue("id"), body.Succeeded)
	})
	admin("GET /_sandbox/charges", func(r *http.Request) (any, error) {
		inv := r.URL.Query().Get("invoice_id")
		if inv == "" {
			return nil, errors.New("invoice_id is required")
		}
		return map[string]int{"charges": s.ChargeCount(inv), "payment_intents": s.PaymentIntentCount(inv)}, nil
	})
}

func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("bad JSON body: %w", err)
	}
	return nil
}

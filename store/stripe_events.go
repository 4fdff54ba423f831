package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/billflow/billflow/models"
)

// StripeEvent is a verified Stripe webhook event as billflow keeps it.
type StripeEvent struct {
	// ID is Stripe's event id (evt_...): the de-duplication key.
	ID string `json:"id"`
	// Type is the event type, e.g. payment_intent.succeeded.
	Type string `json:"type"`
	// PaymentIntentID and InvoiceID are empty when the event concerns no
	// PaymentIntent or carries no invoice_id metadata.
	PaymentIntentID string `json:"payment_intent_id,omitempty"`
	InvoiceID       string `json:"invoice_id,omitempty"`
	// ReceivedAt is set by RecordStripeEvent on the first delivery.
	ReceivedAt time.Time `json:"received_at"`
	// Payload is the event's JSON object.
	Payload json.RawMessage `json:"payload"`
}

// RecordStripeEvent stores a webhook event the first time its id is seen.
// fresh is false for a redelivered or replayed event, which the caller must
// then not act on again: Stripe delivers at least once, and money must move
// at most once per event. Concurrent deliveries of one id see exactly one
// fresh=true, because the PRIMARY KEY decides, not a prior SELECT.
func (s *Store) RecordStripeEvent(ctx context.Context, ev StripeEvent) (fresh bool, err error) {
	switch {
	case ev.ID == "":
		return false, &models.ValidationError{Field: "stripe_event.id", Reason: "must not be empty"}
	case ev.Type == "":
		return false, &models.ValidationError{Field: "stripe_event.type", Reason: "must not be empty"}
	case !isJSONObject(ev.Payload):
		return false, &models.ValidationError{Field: "stripe_event.payload", Reason: "must be a JSON object"}
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO stripe_events (id, type, payment_intent_id, invoice_id, received_at, payload)
		VALUES ($1, $2, NULLIF($3, ''), NULLIF($4, ''), $5, $6)
		ON CONFLICT (id) DO NOTHING`,
		ev.ID, ev.Type, ev.PaymentIntentID, ev.InvoiceID, s.Now().UTC().Truncate(time.Microsecond), []byte(ev.Payload))
	if err != nil {
		return false, fmt.Errorf("record stripe event %s: %w", ev.ID, err)
	}
	return tag.RowsAffected() == 1, nil
}

// GetStripeEvent reads a recorded event; ErrNotFound when its id was never
// recorded.
func (s *Store) GetStripeEvent(ctx context.Context, id string) (StripeEvent, error) {
	var ev StripeEvent
	var payload []byte
	err := s.pool.QueryRow(ctx, `SELECT id, type, coalesce(payment_intent_id, ''), coalesce(invoice_id, ''), received_at, payload
		FROM stripe_events WHERE id = $1`, id).
		Scan(&ev.ID, &ev.Type, &ev.PaymentIntentID, &ev.InvoiceID, &ev.ReceivedAt, &payload)
	if errors.Is(err, pgx.ErrNoRows) {
		return StripeEvent{}, ErrNotFound
	}
	if err != nil {
		return StripeEvent{}, fmt.Errorf("get stripe event %s: %w", id, err)
	}
	ev.ReceivedAt = ev.ReceivedAt.UTC()
	ev.Payload = payload
	return ev, nil
}

// isJSONObject reports whether b is one well-formed JSON object, so a bad
// payload is a validation error rather than a Postgres one.
func isJSONObject(b []byte) bool {
	var m map[string]json.RawMessage
	return json.Unmarshal(b, &m) == nil && m != nil
}

package activities

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/billflow/billflow/outbound"
)

// DeliverEventsInput bounds one delivery batch.
type DeliverEventsInput struct {
	Limit int `json:"limit"`
}

// DeliverEventsResult reports a batch.
type DeliverEventsResult struct {
	Delivered int `json:"delivered"`
	// More is true when the batch was full: call again.
	More bool `json:"more"`
}

// eventEnvelope is the JSON body an application receives.
type eventEnvelope struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	TenantID  string          `json:"tenant_id"`
	SubjectID string          `json:"subject_id"`
	CreatedAt time.Time       `json:"created_at"`
	Data      json.RawMessage `json:"data"`
	// PaymentURL is the invoice's hosted payment page (invoice.created,
	// when the pages are configured).
	PaymentURL string `json:"payment_url,omitempty"`
}

// DeliverEvents posts pending outbound events, oldest first, to the
// application's webhook. With no webhook configured, events stay in the
// table for the application to read and nothing is sent. A failed delivery
// fails the activity so Temporal retries it with back-off; events delivered
// before the failure are not sent again.
func (a *Activities) DeliverEvents(ctx context.Context, in DeliverEventsInput) (DeliverEventsResult, error) {
	if a.Webhook == nil {
		return DeliverEventsResult{}, nil
	}
	limit := in.Limit
	if limit <= 0 {
		limit = 100
	}
	events, err := a.Store.PendingEvents(ctx, limit)
	if err != nil {
		return DeliverEventsResult{}, err
	}
	var out DeliverEventsResult
	for _, e := range events {
		page, err := a.eventPaymentURL(ctx, e.Type, e.SubjectID)
		if err != nil {
			return out, err
		}
		body, err := json.Marshal(eventEnvelope{ID: e.ID, Type: e.Type, TenantID: string(e.TenantID), SubjectID: e.SubjectID, CreatedAt: e.CreatedAt.UTC(), Data: e.Payload, PaymentURL: page})
		if err != nil {
			return out, err
		}
		if err := a.Webhook.Deliver(ctx, outbound.Event{ID: e.ID, Type: e.Type, Body: body}); err != nil {
			return out, fmt.Errorf("deliver event %s (%s): %w", e.ID, e.Type, err)
		}
		if err := a.Store.MarkEventDelivered(ctx, e.ID, time.Now()); err != nil {
			return out, err
		}
		out.Delivered++
		activity.RecordHeartbeat(ctx, out.Delivered)
	}
	out.More = len(events) == limit
	return out, nil
}

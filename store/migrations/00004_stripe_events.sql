-- +goose Up
-- Stripe delivers webhooks at least once and may redeliver an event at any
-- time; the event id as PRIMARY KEY makes acting on one event at most once
-- (INSERT ... ON CONFLICT DO NOTHING tells the handler whether it is new).
CREATE TABLE stripe_events (
    id                text PRIMARY KEY CHECK (id <> ''),
    type              text NOT NULL CHECK (type <> ''),
    payment_intent_id text,
    invoice_id        text,
    received_at       timestamptz NOT NULL DEFAULT now(),
    payload           jsonb NOT NULL CHECK (jsonb_typeof(payload) = 'object')
);

-- Reconciliation looks events up by the PaymentIntent or invoice they concern.
CREATE INDEX stripe_events_payment_intent ON stripe_events (payment_intent_id) WHERE payment_intent_id IS NOT NULL;
CREATE INDEX stripe_events_invoice ON stripe_events (invoice_id) WHERE invoice_id IS NOT NULL;

-- +goose Down
DROP TABLE stripe_events;

-- +goose Up
-- Collection: Lightning invoices issued for billflow invoices, card charges,
-- every payment received (the first settles, later ones are overpayments to
-- refund), entitlements, discount-code slots, cascade attempts and the
-- Lightning settlement stream's cursor. Idempotency lives in the keys below.

-- Set when a card charge needs the customer present (3-D Secure); cleared by payment.
ALTER TABLE invoices
    ADD COLUMN needs_action_at timestamptz,
    ADD COLUMN closed_at       timestamptz,
    ADD COLUMN closed_reason   text,
    ADD CONSTRAINT invoices_closed_consistent CHECK ((status IN ('void', 'uncollectible')) = (closed_at IS NOT NULL));

CREATE TABLE bolt11_invoices (
    payment_hash    text PRIMARY KEY CHECK (payment_hash ~ '^[0-9a-f]{64}$'),
    invoice_id      text NOT NULL REFERENCES invoices (id),
    payment_request text NOT NULL UNIQUE,
    amount_msat     bigint NOT NULL CHECK (amount_msat > 0),
    -- The fiat amount and currency the rate source priced: a quote cannot be
    -- recomputed later, so it is kept with what it priced.
    quote_amount    bigint NOT NULL CHECK (quote_amount > 0),
    quote_currency  text NOT NULL,
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz NOT NULL CHECK (expires_at > created_at),
    -- Set before the tenant's wallet is asked to pay, so a retried attempt
    -- that finds the invoice settled knows the money came over NWC.
    nwc_requested_at timestamptz,
    -- An expired, unpaid invoice is replaced by a new one and superseded.
    superseded_at   timestamptz,
    settled_at      timestamptz,
    amt_paid_msat   bigint,
    settle_index    bigint,
    CHECK ((settled_at IS NULL) = (amt_paid_msat IS NULL))
);
-- At most one payable Lightning invoice per billflow invoice.
CREATE UNIQUE INDEX bolt11_one_live ON bolt11_invoices (invoice_id) WHERE settled_at IS NULL AND superseded_at IS NULL;
CREATE INDEX bolt11_invoice ON bolt11_invoices (invoice_id);

CREATE TABLE card_payments (
    payment_intent_id text PRIMARY KEY CHECK (payment_intent_id LIKE 'pi_%'),
    invoice_id        text NOT NULL REFERENCES invoices (id),
    -- invoice/<id>/card/<attempt>: one charge per attempt, whatever the retries.
    idempotency_key   text NOT NULL UNIQUE,
    attempt           integer NOT NULL CHECK (attempt > 0),
    amount            bigint NOT NULL CHECK (amount > 0),
    currency          text NOT NULL,
    status            text NOT NULL,
    outcome           text NOT NULL,
    decline_code      text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX card_payments_invoice ON card_payments (invoice_id);

CREATE TABLE payments (
    id          text PRIMARY KEY,
    invoice_id  text NOT NULL REFERENCES invoices (id),
    tenant_id   text NOT NULL REFERENCES tenants (id),
    rail        text NOT NULL CHECK (rail IN ('nwc', 'lightning', 'oob', 'stripe', 'manual')),
    -- What identifies the money, whichever rail reported it first:
    -- lightning:<payment hash> (nwc, lightning and oob are one Lightning
    -- payment), stripe:<payment intent>, manual:<invoice>/<reference>.
    money_ref   text NOT NULL UNIQUE,
    reference   text NOT NULL,
    amount      bigint CHECK (amount > 0),
    currency    text,
    amount_msat bigint CHECK (amount_msat > 0),
    received_at timestamptz NOT NULL,
    -- applied: this payment settled the invoice. Otherwise it arrived for an
    -- invoice already paid or closed and is owed back.
    applied     boolean NOT NULL,
    refund_status text CHECK (refund_status IN ('to_refund', 'refunded')),
    CHECK (applied = (refund_status IS NULL))
);
CREATE UNIQUE INDEX payments_one_applied ON payments (invoice_id) WHERE applied;
CREATE INDEX payments_to_refund ON payments (tenant_id) WHERE refund_status = 'to_refund';

-- What a paid invoice grants: exactly one per invoice.
CREATE TABLE entitlements (
    invoice_id   text PRIMARY KEY REFERENCES invoices (id),
    tenant_id    text NOT NULL REFERENCES tenants (id),
    period_start timestamptz NOT NULL,
    period_end   timestamptz NOT NULL,
    granted_at   timestamptz NOT NULL
);

-- Limited-use discount codes: a slot is reserved for an invoice while it is
-- collected, consumed when it is paid, released when it is voided or written off.
CREATE TABLE discount_codes (
    code            text PRIMARY KEY CHECK (code ~ '^[A-Za-z0-9_-]{1,64}$'),
    max_redemptions integer NOT NULL CHECK (max_redemptions > 0),
    reserved        integer NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    redeemed        integer NOT NULL DEFAULT 0 CHECK (redeemed >= 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    CHECK (reserved + redeemed <= max_redemptions)
);
CREATE TABLE discount_reservations (
    invoice_id  text PRIMARY KEY REFERENCES invoices (id),
    code        text NOT NULL REFERENCES discount_codes (code),
    status      text NOT NULL CHECK (status IN ('reserved', 'consumed', 'released')),
    reserved_at timestamptz NOT NULL,
    resolved_at timestamptz,
    CHECK ((status = 'reserved') = (resolved_at IS NULL))
);

-- One row per rail per cascade attempt, for operators and the starter CLI.
CREATE TABLE payment_attempts (
    invoice_id text NOT NULL REFERENCES invoices (id),
    attempt    integer NOT NULL CHECK (attempt > 0),
    rail       text NOT NULL CHECK (rail IN ('nwc', 'card', 'dm')),
    outcome    text NOT NULL,
    detail     text NOT NULL DEFAULT '',
    at         timestamptz NOT NULL,
    PRIMARY KEY (invoice_id, attempt, rail)
);

-- Where a settlement stream resumes: the last settle_index it handed on.
CREATE TABLE settlement_cursors (
    name         text PRIMARY KEY,
    settle_index bigint NOT NULL CHECK (settle_index >= 0),
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE settlement_cursors;
DROP TABLE payment_attempts;
DROP TABLE discount_reservations;
DROP TABLE discount_codes;
DROP TABLE entitlements;
DROP TABLE payments;
DROP TABLE card_payments;
DROP TABLE bolt11_invoices;
ALTER TABLE invoices
    DROP CONSTRAINT invoices_closed_consistent,
    DROP COLUMN closed_reason,
    DROP COLUMN closed_at,
    DROP COLUMN needs_action_at;

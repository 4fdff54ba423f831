-- +goose Up
-- Hosted invoice and account pages (issue 14).
--
-- page_tokens: capability tokens for /pay/{token} (kind 'invoice', subject
-- an invoice id) and /account/{token} (kind 'account', subject a tenant id).
-- A token is derived (HMAC) from BILLFLOW_SECRET_KEY, the kind, the subject
-- and the version, so the links can be printed again without storing them;
-- the table keeps only sha256(token), looked up by equality, so a wrong
-- token costs the same index probe as a right one. Revoking sets revoked_at;
-- the next link is the next version, a different token.
CREATE TABLE page_tokens (
    token_hash bytea PRIMARY KEY CHECK (length(token_hash) = 32),
    kind       text NOT NULL CHECK (kind IN ('invoice', 'account')),
    subject    text NOT NULL CHECK (subject <> ''),
    version    integer NOT NULL CHECK (version > 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    UNIQUE (kind, subject, version)
);
-- At most one live token per invoice or tenant.
CREATE UNIQUE INDEX page_tokens_live ON page_tokens (kind, subject) WHERE revoked_at IS NULL;

-- page_card_charges: "pay by card" on the invoice page. Each row is one
-- charge with the idempotency key invoice/<id>/card/page-<n>; the key is
-- UNIQUE and a new n is taken only after the previous charge was declined,
-- so repeated clicks, two tabs or a retried request send the same key and
-- Stripe charges at most once per n.
CREATE TABLE page_card_charges (
    invoice_id        text NOT NULL REFERENCES invoices (id),
    n                 integer NOT NULL CHECK (n > 0),
    idempotency_key   text NOT NULL UNIQUE,
    amount            bigint NOT NULL CHECK (amount > 0),
    currency          text NOT NULL REFERENCES currencies (code),
    payment_intent_id text CHECK (payment_intent_id LIKE 'pi_%'),
    -- '' until Stripe answered; then the card rail's outcome.
    outcome           text NOT NULL DEFAULT '',
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (invoice_id, n)
);

-- +goose Down
DROP TABLE page_card_charges;
DROP TABLE page_tokens;

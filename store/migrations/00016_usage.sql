-- +goose Up
-- Metered usage sessions (issue 10). A signed receipt is paid by a promise
-- on the payer's wallet (wallet_entries kind 'promise', source key = the
-- receipt id) and a usage_receipts row, in one transaction; the session's
-- promised total is settled at its end (settle entry keyed usage/<session>).

-- The sessions, so a paid top-up finds the payer's sessions waiting for funds.
CREATE TABLE usage_sessions (
    id         text PRIMARY KEY,
    payer      text NOT NULL REFERENCES tenants (id),
    service_id text NOT NULL,
    state      text NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'waiting_funds', 'ended')),
    started_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);
CREATE INDEX usage_sessions_waiting ON usage_sessions (payer) WHERE state = 'waiting_funds';

-- Every receipt paid, once (its id is the wallet promise's key).
CREATE TABLE usage_receipts (
    receipt_id  text PRIMARY KEY,
    session_id  text NOT NULL REFERENCES usage_sessions (id),
    seq         bigint NOT NULL CHECK (seq > 0),
    payer       text NOT NULL REFERENCES tenants (id),
    service_id  text NOT NULL,
    unit        text NOT NULL CHECK (unit IN ('SEC', 'B')),
    units       bigint NOT NULL CHECK (units > 0),
    value       bigint NOT NULL CHECK (value >= 0),
    currency    text NOT NULL,
    -- The payer's signed Nostr event over the receipt, and the engine's.
    payer_event  jsonb NOT NULL,
    engine_event jsonb NOT NULL,
    paid_at     timestamptz NOT NULL,
    UNIQUE (session_id, seq)
);

-- Grace bans: a grace that ended unpaid bans the payer from grace for this
-- service until expires_at; an operator lifts one by deleting it.
CREATE TABLE usage_bans (
    service_id text NOT NULL,
    payer      text NOT NULL,
    expires_at timestamptz NOT NULL,
    reason     text NOT NULL DEFAULT '',
    banned_at  timestamptz NOT NULL,
    PRIMARY KEY (service_id, payer)
);

-- Remain service: covered units a payer paid for and did not use, per unit.
CREATE TABLE usage_remain (
    payer      text NOT NULL,
    service_id text NOT NULL,
    unit       text NOT NULL CHECK (unit IN ('SEC', 'B')),
    units      bigint NOT NULL CHECK (units >= 0),
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (payer, service_id, unit)
);

-- Statistics per (service, payer, mode).
CREATE TABLE usage_stats (
    service_id     text NOT NULL,
    payer          text NOT NULL,
    mode           text NOT NULL CHECK (mode IN ('paid', 'free', 'grace')),
    seconds        bigint NOT NULL DEFAULT 0 CHECK (seconds >= 0),
    bytes_received bigint NOT NULL DEFAULT 0 CHECK (bytes_received >= 0),
    bytes_sent     bigint NOT NULL DEFAULT 0 CHECK (bytes_sent >= 0),
    units          bigint NOT NULL DEFAULT 0 CHECK (units >= 0),
    value          bigint NOT NULL DEFAULT 0 CHECK (value >= 0),
    sessions       bigint NOT NULL DEFAULT 0 CHECK (sessions >= 0),
    updated_at     timestamptz NOT NULL,
    PRIMARY KEY (service_id, payer, mode)
);

-- Each statistics write (a receipt id, a remain take, <session>/end), once.
CREATE TABLE usage_writes (
    write_key  text PRIMARY KEY,
    -- units: what a remain take took, so its retry answers the same.
    units      bigint NOT NULL DEFAULT 0,
    at         timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE usage_writes;
DROP TABLE usage_stats;
DROP TABLE usage_remain;
DROP TABLE usage_bans;
DROP TABLE usage_receipts;
DROP TABLE usage_sessions;

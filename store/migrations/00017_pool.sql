-- +goose Up
-- The free-tier generosity pool (issue 11). One pool, in one currency: its
-- balance can never go negative (the CHECK backs the conditional UPDATEs
-- that debit it), and it is credited a share of every paid invoice.
CREATE TABLE pool (
    id          smallint PRIMARY KEY DEFAULT 1 CHECK (id = 1),
    currency    text NOT NULL REFERENCES currencies (code),
    balance     bigint NOT NULL DEFAULT 0 CHECK (balance >= 0),
    -- The share of every paid invoice credited to the pool, in basis points;
    -- stored here so that every process settling invoices credits the same.
    share_bps   bigint NOT NULL DEFAULT 0 CHECK (share_bps BETWEEN 0 AND 10000),
    low_floor   bigint NOT NULL DEFAULT 0 CHECK (low_floor >= 0),
    updated_at  timestamptz NOT NULL
);

-- Money into the pool, once per key: an operator's top-up (its own key) or
-- the share of a paid invoice (key invoice:<id>, once per invoice).
CREATE TABLE pool_credits (
    credit_key  text PRIMARY KEY,
    invoice_id  text UNIQUE REFERENCES invoices (id),
    amount      bigint NOT NULL CHECK (amount > 0),
    note        text NOT NULL DEFAULT '',
    credited_at timestamptz NOT NULL,
    CHECK ((invoice_id IS NULL) = (credit_key NOT LIKE 'invoice:%'))
);

-- Each payer's absorbed amount in its current 24-hour window. It moves in
-- the same transaction as the pool.
CREATE TABLE pool_daily (
    payer        text PRIMARY KEY REFERENCES tenants (id),
    window_start timestamptz NOT NULL,
    absorbed     bigint NOT NULL CHECK (absorbed >= 0)
);

-- Tiers pinned by an operator (derived from paid history otherwise).
CREATE TABLE pool_tier_pins (
    payer     text PRIMARY KEY REFERENCES tenants (id),
    tier      text NOT NULL CHECK (tier IN ('new', 'established', 'trusted', 'elite')),
    reason    text NOT NULL DEFAULT '',
    pinned_at timestamptz NOT NULL
);

-- The audit: one row per grant, keyed by its request key, so reserving,
-- recording and releasing each happen once whatever the retries.
CREATE TABLE pool_grants (
    request_key text PRIMARY KEY,
    payer       text NOT NULL REFERENCES tenants (id),
    tier        text NOT NULL CHECK (tier IN ('new', 'established', 'trusted', 'elite')),
    serve       text NOT NULL CHECK (serve IN ('free', 'partial')),
    currency    text NOT NULL,
    estimated   bigint NOT NULL CHECK (estimated > 0),
    -- reserved: debited from the pool; absorbed: what the pool finally paid;
    -- released: what went back to the pool (over-reservation or all of it).
    reserved    bigint NOT NULL CHECK (reserved >= 0 AND reserved <= estimated),
    absorbed    bigint NOT NULL DEFAULT 0 CHECK (absorbed >= 0),
    released    bigint NOT NULL DEFAULT 0 CHECK (released >= 0),
    -- reserved: debited, not yet recorded; recorded: absorbed is final;
    -- released: all of it went back; unfunded: a partial grant that found
    -- nothing left (pool drained or budget used): the payer pays instead.
    outcome     text NOT NULL CHECK (outcome IN ('reserved', 'recorded', 'released', 'unfunded')),
    reason      text NOT NULL DEFAULT '',
    reserved_at timestamptz NOT NULL,
    settled_at  timestamptz,
    CHECK (absorbed + released <= reserved),
    CHECK (outcome <> 'recorded' OR absorbed + released = reserved),
    CHECK (outcome <> 'released' OR (absorbed = 0 AND released = reserved)),
    CHECK (outcome <> 'unfunded' OR reserved = 0),
    CHECK ((settled_at IS NULL) = (outcome = 'reserved'))
);
CREATE INDEX pool_grants_payer ON pool_grants (payer, reserved_at);
CREATE INDEX pool_grants_reserved_at ON pool_grants (reserved_at);
CREATE INDEX pool_grants_open ON pool_grants (reserved_at) WHERE outcome = 'reserved';

-- +goose Down
DROP TABLE pool_grants;
DROP TABLE pool_tier_pins;
DROP TABLE pool_daily;
DROP TABLE pool_credits;
DROP TABLE pool;

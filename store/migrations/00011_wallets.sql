-- +goose Up
-- Prepaid wallets (issue 9): one wallet per tenant in its currency, an
-- append-only ledger, and the running totals every write updates in the same
-- transaction. The arithmetic and consumption rules are models/wallet.go.

-- An invoice is a subscription invoice (claimed items) or a top-up of a
-- wallet: a paid top-up becomes a deposit, never a subscription entitlement.
ALTER TABLE invoices ADD COLUMN kind text NOT NULL DEFAULT 'subscription' CHECK (kind IN ('subscription', 'top_up'));
ALTER TABLE invoice_items DROP CONSTRAINT invoice_items_kind_check;
ALTER TABLE invoice_items ADD CONSTRAINT invoice_items_kind_check CHECK (kind IN ('proration', 'renewal', 'restore', 'top_up'));
-- A top-up item (the one item of a top-up invoice) is no plan's price.
ALTER TABLE invoice_items ALTER COLUMN plan_id DROP NOT NULL;
ALTER TABLE invoice_items ADD CONSTRAINT invoice_items_plan_unless_top_up CHECK ((plan_id IS NULL) = (kind = 'top_up'));

-- The running totals of the ledger. Writes that need room (promise,
-- withdraw) are one conditional UPDATE on this row; the CHECKs make a
-- negative spendable (funds - unsettled) impossible whatever the statement.
CREATE TABLE wallets (
    tenant_id           text PRIMARY KEY REFERENCES tenants (id),
    currency            text NOT NULL REFERENCES currencies (code),
    deposits            bigint NOT NULL DEFAULT 0 CHECK (deposits >= 0),
    grants              bigint NOT NULL DEFAULT 0 CHECK (grants >= 0),
    promised            bigint NOT NULL DEFAULT 0 CHECK (promised >= 0),
    settled             bigint NOT NULL DEFAULT 0 CHECK (settled >= 0),
    settled_from_grants bigint NOT NULL DEFAULT 0 CHECK (settled_from_grants >= 0),
    withdrawn           bigint NOT NULL DEFAULT 0 CHECK (withdrawn >= 0),
    expired             bigint NOT NULL DEFAULT 0 CHECK (expired >= 0),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT wallets_settled_promised CHECK (settled <= promised),
    CONSTRAINT wallets_settled_from_grants CHECK (settled_from_grants <= settled),
    CONSTRAINT wallets_deposit_remainder CHECK (deposits - (settled - settled_from_grants) - withdrawn >= 0),
    CONSTRAINT wallets_grant_remainder CHECK (grants - settled_from_grants - expired >= 0),
    -- spendable = (deposits + grants - settled - withdrawn - expired) - (promised - settled)
    CONSTRAINT wallets_spendable_not_negative CHECK (deposits + grants - withdrawn - expired - promised >= 0)
);

-- Grants as settlements and expiry consume them (grants first, earliest expiry first).
CREATE TABLE wallet_grants (
    tenant_id  text NOT NULL REFERENCES wallets (tenant_id),
    grant_key  text NOT NULL,
    seq        bigserial,
    amount     bigint NOT NULL CHECK (amount > 0),
    expires_at timestamptz,
    used       bigint NOT NULL DEFAULT 0 CHECK (used >= 0),
    expired    bigint NOT NULL DEFAULT 0 CHECK (expired >= 0),
    expired_at timestamptz,
    PRIMARY KEY (tenant_id, grant_key),
    CHECK (used + expired <= amount),
    CHECK (expired = 0 OR expired_at IS NOT NULL),
    CHECK (expired_at IS NULL OR expires_at IS NOT NULL)
);
CREATE INDEX wallet_grants_open ON wallet_grants (tenant_id, expires_at, seq) WHERE used + expired < amount;
CREATE INDEX wallet_grants_due ON wallet_grants (expires_at) WHERE expired_at IS NULL AND expires_at IS NOT NULL;

-- The ledger: append-only, one row per source key and kind per wallet, so a
-- retried write is a no-op. Source keys: deposit the payment's money
-- reference, grant the caller's key, promise the receipt id, settle the
-- settlement id, withdraw the request id, expire the grant's key.
CREATE TABLE wallet_entries (
    seq         bigserial PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES wallets (tenant_id),
    kind        text NOT NULL CHECK (kind IN ('deposit', 'grant', 'promise', 'settle', 'withdraw', 'expire')),
    source_key  text NOT NULL CHECK (source_key <> '' AND length(source_key) <= 200),
    -- expire may remove nothing (all its remainder was promised); every other entry moves money.
    amount      bigint NOT NULL CHECK (amount > 0 OR (kind = 'expire' AND amount = 0)),
    currency    text NOT NULL REFERENCES currencies (code),
    -- grant: its expiry, if any.
    expires_at  timestamptz,
    -- settle: the part grants covered (the rest came from deposits).
    from_grants bigint NOT NULL DEFAULT 0 CHECK (from_grants >= 0 AND from_grants <= amount),
    -- deposit written by a paid top-up: its invoice (one deposit per invoice).
    invoice_id  text REFERENCES invoices (id),
    at          timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, kind, source_key),
    CHECK (expires_at IS NULL OR kind = 'grant'),
    CHECK (from_grants = 0 OR kind = 'settle'),
    CHECK (invoice_id IS NULL OR kind = 'deposit')
);
CREATE UNIQUE INDEX wallet_entries_one_deposit_per_invoice ON wallet_entries (invoice_id) WHERE invoice_id IS NOT NULL;
CREATE INDEX wallet_entries_page ON wallet_entries (tenant_id, seq);

-- Append-only: entries are never changed or removed.
-- +goose StatementBegin
CREATE FUNCTION wallet_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'wallet ledger entries are append-only (% of entry %)', TG_OP, OLD.seq
        USING ERRCODE = 'integrity_constraint_violation';
END;
$$;
-- +goose StatementEnd
CREATE TRIGGER wallet_entries_append_only BEFORE UPDATE OR DELETE ON wallet_entries
    FOR EACH ROW EXECUTE FUNCTION wallet_entries_append_only();

-- +goose Down
DROP TRIGGER wallet_entries_append_only ON wallet_entries;
DROP FUNCTION wallet_entries_append_only();
DROP TABLE wallet_entries;
DROP TABLE wallet_grants;
DROP TABLE wallets;
-- Top-up invoices and their items must be gone before this runs.
ALTER TABLE invoice_items DROP CONSTRAINT invoice_items_plan_unless_top_up;
ALTER TABLE invoice_items ALTER COLUMN plan_id SET NOT NULL;
ALTER TABLE invoice_items DROP CONSTRAINT invoice_items_kind_check;
ALTER TABLE invoice_items ADD CONSTRAINT invoice_items_kind_check CHECK (kind IN ('proration', 'renewal', 'restore'));
ALTER TABLE invoices DROP COLUMN kind;

-- +goose Up
-- Free-tier grants on invoices (issue 11), optional per plan: a plan with
-- free_tier set makes the claim of a tenant's items ask the pool, and a
-- free-tier grant appears on the invoice as a credit item (kind free_tier),
-- so the invoice's total is still the sum of its items. The pool is debited
-- when the invoice's remaining charge is paid (in the settlement), re-checking
-- the payer's daily budget; what it cannot fund then comes back as an
-- outstanding item (kind free_tier, positive) for the next claim.
ALTER TABLE plans ADD COLUMN free_tier boolean NOT NULL DEFAULT false;
ALTER TABLE invoice_items DROP CONSTRAINT invoice_items_kind_check,
    ADD CONSTRAINT invoice_items_kind_check CHECK (kind IN ('proration', 'renewal', 'restore', 'top_up', 'free_tier'));

CREATE TABLE invoice_pool_credits (
    invoice_id   text PRIMARY KEY REFERENCES invoices (id),
    payer        text NOT NULL REFERENCES tenants (id),
    item_id      text NOT NULL UNIQUE REFERENCES invoice_items (id),
    -- amount: the credit item's (positive) size; estimated: the claim's
    -- total before it; the tier and its daily budget when it was decided.
    amount       bigint NOT NULL CHECK (amount > 0),
    estimated    bigint NOT NULL CHECK (estimated > amount),
    tier         text NOT NULL,
    daily_budget bigint NOT NULL CHECK (daily_budget >= 0),
    -- funded: what the pool paid at settlement; shortfall = amount - funded,
    -- charged on the next claim.
    funded       bigint CHECK (funded >= 0 AND funded <= amount),
    funded_at    timestamptz,
    CHECK ((funded IS NULL) = (funded_at IS NULL))
);

-- +goose Down
DROP TABLE invoice_pool_credits;
-- Credit items already written stay (their invoices' totals rely on them).
ALTER TABLE invoice_items DROP CONSTRAINT invoice_items_kind_check,
    ADD CONSTRAINT invoice_items_kind_check CHECK (kind IN ('proration', 'renewal', 'restore', 'top_up', 'free_tier')) NOT VALID;
ALTER TABLE plans DROP COLUMN free_tier;

-- +goose Up
-- Usage receipts the free-tier pool paid (issue 11): what the pool's grant
-- (pool_grants, request key = the receipt id) paid of each receipt, and the
-- decision. The payer's wallet promise (key: the receipt id) is the rest,
-- value - pool_absorbed (none for a free receipt).
ALTER TABLE usage_receipts
    ADD COLUMN pool_serve    text   NOT NULL DEFAULT 'gate' CHECK (pool_serve IN ('free', 'partial', 'gate')),
    ADD COLUMN pool_absorbed bigint NOT NULL DEFAULT 0 CHECK (pool_absorbed >= 0),
    ADD CONSTRAINT usage_receipts_pool_part CHECK (pool_absorbed <= value
        AND (pool_serve <> 'free' OR pool_absorbed = value)
        AND (pool_serve <> 'gate' OR pool_absorbed = 0));

-- +goose Down
ALTER TABLE usage_receipts DROP CONSTRAINT usage_receipts_pool_part, DROP COLUMN pool_absorbed, DROP COLUMN pool_serve;

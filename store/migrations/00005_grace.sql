-- +goose Up
-- Grace window and suspension state. banned_until outlives the grace window
-- that caused it: while it lies in the future a failed collection suspends at
-- once instead of granting a new grace window.
ALTER TABLE tenants
    ADD COLUMN grace_started_at timestamptz,
    ADD COLUMN grace_expires_at timestamptz,
    ADD COLUMN suspended_at     timestamptz,
    ADD COLUMN banned_until     timestamptz,
    ADD CONSTRAINT tenants_grace_consistent CHECK ((status = 'grace') = (grace_expires_at IS NOT NULL)),
    ADD CONSTRAINT tenants_suspension_consistent CHECK ((status = 'suspended') = (suspended_at IS NOT NULL));

-- +goose Down
ALTER TABLE tenants
    DROP CONSTRAINT tenants_suspension_consistent,
    DROP CONSTRAINT tenants_grace_consistent,
    DROP COLUMN banned_until,
    DROP COLUMN suspended_at,
    DROP COLUMN grace_expires_at,
    DROP COLUMN grace_started_at;

-- +goose Up
-- A tenant whose billing step failed for good (a boundary renewal or claim
-- that needs an operator) is marked here; the tenant workflow keeps running
-- and retries on a signal or at the next boundary.
ALTER TABLE tenants
    ADD COLUMN needs_action_at     timestamptz,
    ADD COLUMN needs_action_reason text;

-- A suspended tenant is not renewed; when it is restored, each resource
-- active on a paid plan gets one 'restore' item: the prorated price of the
-- rest of the current period. Like a renewal it has no activity, and it is
-- written at most once per resource and period.
ALTER TABLE invoice_items DROP CONSTRAINT invoice_items_kind_check;
ALTER TABLE invoice_items ADD CONSTRAINT invoice_items_kind_check CHECK (kind IN ('proration', 'renewal', 'restore'));
CREATE UNIQUE INDEX invoice_items_restore_once ON invoice_items (tenant_id, resource_id, period_start) WHERE kind = 'restore';

-- +goose Down
DROP INDEX invoice_items_restore_once;
DELETE FROM invoice_items WHERE kind = 'restore';
ALTER TABLE invoice_items DROP CONSTRAINT invoice_items_kind_check;
ALTER TABLE invoice_items ADD CONSTRAINT invoice_items_kind_check CHECK (kind IN ('proration', 'renewal'));
ALTER TABLE tenants
    DROP COLUMN needs_action_reason,
    DROP COLUMN needs_action_at;

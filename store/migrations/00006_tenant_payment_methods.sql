-- +goose Up
-- How a tenant pays automatically. The NWC connection URL holds a secret, so
-- only its AES-256-GCM sealed form is stored (see package secret); the
-- wallet's public key is kept in clear for display.
ALTER TABLE tenants
    ADD COLUMN nwc_connection_sealed text,
    ADD COLUMN nwc_wallet_pubkey     text,
    ADD COLUMN nwc_last_error        text,
    ADD COLUMN nwc_error_at          timestamptz,
    ADD COLUMN stripe_customer_id    text,
    ADD CONSTRAINT tenants_nwc_sealed_form CHECK (nwc_connection_sealed IS NULL OR nwc_connection_sealed LIKE 'v1:%'),
    ADD CONSTRAINT tenants_nwc_pair CHECK ((nwc_connection_sealed IS NULL) = (nwc_wallet_pubkey IS NULL));

-- +goose Down
ALTER TABLE tenants
    DROP CONSTRAINT tenants_nwc_pair,
    DROP CONSTRAINT tenants_nwc_sealed_form,
    DROP COLUMN stripe_customer_id,
    DROP COLUMN nwc_error_at,
    DROP COLUMN nwc_last_error,
    DROP COLUMN nwc_wallet_pubkey,
    DROP COLUMN nwc_connection_sealed;

-- +goose Up
-- Wallet settings (issue 9): auto-recharge (a top-up of auto_recharge_amount
-- when spendable falls below auto_recharge_threshold; both NULL = off; the
-- threshold also decides wallet.low_balance) and whether the wallet pays
-- open invoices as the first rail.
ALTER TABLE wallets ADD COLUMN auto_recharge_threshold bigint CHECK (auto_recharge_threshold IS NULL OR auto_recharge_threshold >= 0);
ALTER TABLE wallets ADD COLUMN auto_recharge_amount bigint CHECK (auto_recharge_amount IS NULL OR auto_recharge_amount > 0);
ALTER TABLE wallets ADD COLUMN pay_invoices_from_wallet boolean NOT NULL DEFAULT true;

-- What the BalanceSync workflow last published for a wallet: the spendable
-- of the last wallet.balance_changed event, so "changed" is decided here,
-- in the transaction that writes the event, and a retried or concurrent
-- sync never publishes the same change twice. low is whether spendable was
-- below the threshold then (wallet.low_balance is written on the crossing).
CREATE TABLE wallet_balance_published (
    tenant_id  text PRIMARY KEY REFERENCES wallets (tenant_id),
    spendable  bigint NOT NULL CHECK (spendable >= 0),
    low        boolean NOT NULL DEFAULT false,
    -- seq numbers the wallet.balance_changed events (their subject ids).
    seq        bigint NOT NULL DEFAULT 0 CHECK (seq >= 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE wallet_balance_published;
ALTER TABLE wallets DROP COLUMN pay_invoices_from_wallet;
ALTER TABLE wallets DROP COLUMN auto_recharge_amount;
ALTER TABLE wallets DROP COLUMN auto_recharge_threshold;

-- +goose Up
-- Wallet as the first rail (issue 9): an open invoice the tenant's wallet
-- covers in full is paid from it (store.PayFromWallet) before NWC. Its
-- payment is recorded with rail 'wallet' and money reference
-- 'wallet:<invoice id>' (one wallet payment per invoice), and the cascade's
-- attempt table lists the wallet's turn.
ALTER TABLE payments DROP CONSTRAINT payments_rail_check;
ALTER TABLE payments ADD CONSTRAINT payments_rail_check CHECK (rail IN ('nwc', 'lightning', 'oob', 'stripe', 'manual', 'wallet'));
ALTER TABLE payments ADD CONSTRAINT payments_wallet_money_ref CHECK ((rail = 'wallet') = (money_ref = 'wallet:' || invoice_id));
ALTER TABLE payment_attempts DROP CONSTRAINT payment_attempts_rail_check;
ALTER TABLE payment_attempts ADD CONSTRAINT payment_attempts_rail_check CHECK (rail IN ('nwc', 'card', 'dm', 'wallet'));

-- +goose Down
-- Wallet payments and attempts must be gone before this runs.
ALTER TABLE payment_attempts DROP CONSTRAINT payment_attempts_rail_check;
ALTER TABLE payment_attempts ADD CONSTRAINT payment_attempts_rail_check CHECK (rail IN ('nwc', 'card', 'dm'));
ALTER TABLE payments DROP CONSTRAINT payments_wallet_money_ref;
ALTER TABLE payments DROP CONSTRAINT payments_rail_check;
ALTER TABLE payments ADD CONSTRAINT payments_rail_check CHECK (rail IN ('nwc', 'lightning', 'oob', 'stripe', 'manual'));

-- +goose Up
-- Withdrawal payouts (issue 9): a withdrawal leaves spendable when it is
-- requested (its withdraw entry) and is then paid out, over Lightning by the
-- engine's node or by an operator with a reference. A payout that fails
-- gives the amount back with a withdraw_return entry keyed by the request,
-- so it returns once.
ALTER TABLE wallet_entries DROP CONSTRAINT wallet_entries_kind_check;
ALTER TABLE wallet_entries ADD CONSTRAINT wallet_entries_kind_check
    CHECK (kind IN ('deposit', 'grant', 'promise', 'settle', 'withdraw', 'withdraw_return', 'expire'));

CREATE TABLE wallet_withdrawals (
    tenant_id        text NOT NULL REFERENCES wallets (tenant_id),
    -- The request id: the source key of its withdraw (and withdraw_return) entry.
    request_key      text NOT NULL,
    amount           bigint NOT NULL CHECK (amount > 0),
    currency         text NOT NULL REFERENCES currencies (code),
    method           text NOT NULL CHECK (method IN ('lightning', 'manual')),
    -- lightning: the tenant's BOLT11 as validated at request time.
    bolt11           text,
    payment_hash     text,
    amount_msat      bigint CHECK (amount_msat > 0),
    status           text NOT NULL DEFAULT 'requested' CHECK (status IN ('requested', 'paid_out', 'failed')),
    -- paid_out: the payment's preimage (lightning) or the operator's reference.
    payout_reference text,
    fee_msat         bigint NOT NULL DEFAULT 0 CHECK (fee_msat >= 0),
    failure          text,
    requested_at     timestamptz NOT NULL,
    finished_at      timestamptz,
    PRIMARY KEY (tenant_id, request_key),
    CHECK ((method = 'lightning') = (bolt11 IS NOT NULL AND payment_hash IS NOT NULL AND amount_msat IS NOT NULL)),
    CHECK ((status = 'requested') = (finished_at IS NULL)),
    CHECK (status <> 'paid_out' OR coalesce(payout_reference, '') <> ''),
    CHECK (status <> 'failed' OR coalesce(failure, '') <> '')
);
-- A BOLT11 is paid out at most once, whatever request carries it.
CREATE UNIQUE INDEX wallet_withdrawals_payment_hash ON wallet_withdrawals (payment_hash) WHERE payment_hash IS NOT NULL;
CREATE INDEX wallet_withdrawals_open ON wallet_withdrawals (tenant_id, requested_at) WHERE status = 'requested';

-- Withdrawals recorded before payouts existed were paid out by an operator
-- under their reference, which was their key.
INSERT INTO wallet_withdrawals (tenant_id, request_key, amount, currency, method, status, payout_reference, requested_at, finished_at)
SELECT tenant_id, source_key, amount, currency, 'manual', 'paid_out', source_key, at, at FROM wallet_entries WHERE kind = 'withdraw';

-- +goose Down
DROP TABLE wallet_withdrawals;
-- Returned withdrawals must be gone before this runs.
ALTER TABLE wallet_entries DROP CONSTRAINT wallet_entries_kind_check;
ALTER TABLE wallet_entries ADD CONSTRAINT wallet_entries_kind_check
    CHECK (kind IN ('deposit', 'grant', 'promise', 'settle', 'withdraw', 'expire'));

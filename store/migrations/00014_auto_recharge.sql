-- +goose Up
-- Auto-recharge (issue 9): a top-up started by the balance sync because
-- spendable fell below the wallet's threshold is marked auto_recharge. At
-- most one of them per wallet is open at a time (the database enforces it:
-- a concurrent second start fails on this index and takes the open one),
-- so a failed auto top-up is left to its own InvoicePayment dunning instead
-- of a new one being started on every sync.
ALTER TABLE invoices ADD COLUMN auto_recharge boolean NOT NULL DEFAULT false;
CREATE UNIQUE INDEX invoices_one_open_auto_recharge ON invoices (tenant_id)
    WHERE kind = 'top_up' AND auto_recharge AND status IN ('open', 'collecting', 'awaiting_payment');

-- +goose Down
DROP INDEX invoices_one_open_auto_recharge;
ALTER TABLE invoices DROP COLUMN auto_recharge;

-- +goose Up
-- Money checks in the schema (issue 8).
--
-- 1. Supported currencies. One table of ISO 4217 codes and minor-unit
-- exponents, the same rows as models/currency.go (a store test compares
-- them), and every currency column billflow prices in references it: a
-- code must be three lowercase letters and one billflow can format and
-- convert. Adding a
-- currency is a row here (in a new migration) and an entry in the Go table.
CREATE TABLE currencies (
    code        text PRIMARY KEY CHECK (code ~ '^[a-z]{3}$'),
    minor_units smallint NOT NULL CHECK (minor_units BETWEEN 0 AND 3)
);
INSERT INTO currencies (code, minor_units) VALUES
    ('aed', 2), ('afn', 2), ('all', 2), ('amd', 2), ('ang', 2), ('aoa', 2), ('ars', 2), ('aud', 2),
    ('awg', 2), ('azn', 2), ('bam', 2), ('bbd', 2), ('bdt', 2), ('bgn', 2), ('bhd', 3), ('bif', 0),
    ('bmd', 2), ('bnd', 2), ('bob', 2), ('brl', 2), ('bsd', 2), ('btn', 2), ('bwp', 2), ('byn', 2),
    ('bzd', 2), ('cad', 2), ('cdf', 2), ('chf', 2), ('clp', 0), ('cny', 2), ('cop', 2), ('crc', 2),
    ('cup', 2), ('cve', 2), ('czk', 2), ('djf', 0), ('dkk', 2), ('dop', 2), ('dzd', 2), ('egp', 2),
    ('ern', 2), ('etb', 2), ('eur', 2), ('fjd', 2), ('fkp', 2), ('gbp', 2), ('gel', 2), ('ghs', 2),
    ('gip', 2), ('gmd', 2), ('gnf', 0), ('gtq', 2), ('gyd', 2), ('hkd', 2), ('hnl', 2), ('htg', 2),
    ('huf', 2), ('idr', 2), ('ils', 2), ('inr', 2), ('iqd', 3), ('irr', 2), ('isk', 0), ('jmd', 2),
    ('jod', 3), ('jpy', 0), ('kes', 2), ('kgs', 2), ('khr', 2), ('kmf', 0), ('kpw', 2), ('krw', 0),
    ('kwd', 3), ('kyd', 2), ('kzt', 2), ('lak', 2), ('lbp', 2), ('lkr', 2), ('lrd', 2), ('lsl', 2),
    ('lyd', 3), ('mad', 2), ('mdl', 2), ('mga', 2), ('mkd', 2), ('mmk', 2), ('mnt', 2), ('mop', 2),
    ('mru', 2), ('mur', 2), ('mvr', 2), ('mwk', 2), ('mxn', 2), ('myr', 2), ('mzn', 2), ('nad', 2),
    ('ngn', 2), ('nio', 2), ('nok', 2), ('npr', 2), ('nzd', 2), ('omr', 3), ('pab', 2), ('pen', 2),
    ('pgk', 2), ('php', 2), ('pkr', 2), ('pln', 2), ('pyg', 0), ('qar', 2), ('ron', 2), ('rsd', 2),
    ('rub', 2), ('rwf', 0), ('sar', 2), ('sbd', 2), ('scr', 2), ('sdg', 2), ('sek', 2), ('sgd', 2),
    ('shp', 2), ('sle', 2), ('sos', 2), ('srd', 2), ('ssp', 2), ('stn', 2), ('svc', 2), ('syp', 2),
    ('szl', 2), ('thb', 2), ('tjs', 2), ('tmt', 2), ('tnd', 3), ('top', 2), ('try', 2), ('ttd', 2),
    ('twd', 2), ('tzs', 2), ('uah', 2), ('ugx', 0), ('usd', 2), ('uyu', 2), ('uzs', 2), ('ved', 2),
    ('ves', 2), ('vnd', 0), ('vuv', 0), ('wst', 2), ('xaf', 0), ('xcd', 2), ('xcg', 2), ('xof', 0),
    ('xpf', 0), ('yer', 2), ('zar', 2), ('zmw', 2), ('zwg', 2);

ALTER TABLE plans ADD CONSTRAINT plans_currency_supported FOREIGN KEY (currency) REFERENCES currencies (code);
ALTER TABLE tenants ADD CONSTRAINT tenants_currency_supported FOREIGN KEY (currency) REFERENCES currencies (code);
ALTER TABLE invoices ADD CONSTRAINT invoices_currency_supported FOREIGN KEY (currency) REFERENCES currencies (code);
ALTER TABLE invoice_items ADD CONSTRAINT invoice_items_currency_supported FOREIGN KEY (currency) REFERENCES currencies (code);
ALTER TABLE bolt11_invoices ADD CONSTRAINT bolt11_invoices_quote_currency_supported FOREIGN KEY (quote_currency) REFERENCES currencies (code);
ALTER TABLE card_payments ADD CONSTRAINT card_payments_currency_supported FOREIGN KEY (currency) REFERENCES currencies (code);
-- payments.currency is what a rail reported, a fact from outside: money in a
-- currency billflow does not bill in is still recorded (to refund), so it is
-- only held to the shape of a code.
ALTER TABLE payments ADD CONSTRAINT payments_currency_code CHECK (currency ~ '^[a-z]{3}$');

-- 2. Partial payments. amount_paid is what applied payments have credited
-- to the invoice, in its currency; due = total - amount_paid. An invoice is
-- paid exactly when it is paid in full.
ALTER TABLE invoices ADD COLUMN amount_paid bigint NOT NULL DEFAULT 0;
UPDATE invoices SET amount_paid = total WHERE status = 'paid';
ALTER TABLE invoices
    ADD CONSTRAINT invoices_amount_paid_range CHECK (amount_paid >= 0 AND amount_paid <= total),
    ADD CONSTRAINT invoices_paid_in_full CHECK ((status = 'paid') = (amount_paid = total));

-- A payment credits applied_amount (invoice currency, minor units) to its
-- invoice; whatever it does not credit is owed back: refund_amount in the
-- payment's own currency (fiat rails) or refund_msat (Lightning), with the
-- reason. A payment may be both: the part of an overpayment beyond the
-- amount due. Several payments may now apply to one invoice (partial
-- payments), so the one-applied-payment index goes; the sum rule below
-- replaces it.
ALTER TABLE payments
    ADD COLUMN applied_amount bigint NOT NULL DEFAULT 0 CHECK (applied_amount >= 0),
    ADD COLUMN refund_amount  bigint CHECK (refund_amount > 0),
    ADD COLUMN refund_msat    bigint CHECK (refund_msat > 0),
    ADD COLUMN refund_reason  text CHECK (refund_reason IN ('overpaid', 'invoice_settled', 'currency_mismatch', 'unpriced', 'below_minor_unit', 'invoice_voided'));
UPDATE payments p SET applied_amount = i.total FROM invoices i WHERE p.invoice_id = i.id AND p.applied;
UPDATE payments SET refund_amount = amount, refund_msat = amount_msat, refund_reason = 'invoice_settled' WHERE refund_status IS NOT NULL;
DROP INDEX payments_one_applied;
ALTER TABLE payments
    DROP CONSTRAINT payments_check,
    ADD CONSTRAINT payments_applied_amount CHECK (applied = (applied_amount > 0)),
    ADD CONSTRAINT payments_applied_or_refunded CHECK (applied OR refund_status IS NOT NULL),
    ADD CONSTRAINT payments_refund_reason CHECK ((refund_status IS NULL) = (refund_reason IS NULL));
CREATE INDEX payments_invoice ON payments (invoice_id);

-- An invoice's amount_paid is the sum of its payments' applied amounts,
-- checked at commit (Settle writes the payment and the invoice in one
-- transaction, in either order).
-- +goose StatementBegin
CREATE FUNCTION invoice_paid_matches_payments() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    inv     text;
    paid    bigint;
    applied numeric;
BEGIN
    IF TG_TABLE_NAME = 'invoices' THEN
        inv := NEW.id;
    ELSIF TG_OP = 'DELETE' THEN
        inv := OLD.invoice_id;
    ELSE
        inv := NEW.invoice_id;
    END IF;
    SELECT amount_paid INTO paid FROM invoices WHERE id = inv;
    SELECT coalesce(sum(applied_amount), 0) INTO applied FROM payments WHERE invoice_id = inv;
    IF paid IS NOT NULL AND applied <> paid THEN
        RAISE EXCEPTION 'invoice % amount_paid % does not equal the sum of its applied payments %', inv, paid, applied
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd
CREATE CONSTRAINT TRIGGER invoice_paid_matches_payments
    AFTER INSERT OR UPDATE OF amount_paid ON invoices
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION invoice_paid_matches_payments();
CREATE CONSTRAINT TRIGGER payments_keep_invoice_paid
    AFTER INSERT OR UPDATE OF applied_amount, invoice_id OR DELETE ON payments
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION invoice_paid_matches_payments();

-- +goose Down
DROP TRIGGER payments_keep_invoice_paid ON payments;
DROP TRIGGER invoice_paid_matches_payments ON invoices;
DROP FUNCTION invoice_paid_matches_payments();
DROP INDEX payments_invoice;
ALTER TABLE payments
    DROP CONSTRAINT payments_refund_reason,
    DROP CONSTRAINT payments_applied_or_refunded,
    DROP CONSTRAINT payments_applied_amount,
    DROP COLUMN refund_reason,
    DROP COLUMN refund_msat,
    DROP COLUMN refund_amount,
    DROP COLUMN applied_amount,
    ADD CONSTRAINT payments_check CHECK (applied = (refund_status IS NULL));
CREATE UNIQUE INDEX payments_one_applied ON payments (invoice_id) WHERE applied;
ALTER TABLE invoices
    DROP CONSTRAINT invoices_paid_in_full,
    DROP CONSTRAINT invoices_amount_paid_range,
    DROP COLUMN amount_paid;
ALTER TABLE plans DROP CONSTRAINT plans_currency_supported;
ALTER TABLE tenants DROP CONSTRAINT tenants_currency_supported;
ALTER TABLE invoices DROP CONSTRAINT invoices_currency_supported;
ALTER TABLE invoice_items DROP CONSTRAINT invoice_items_currency_supported;
ALTER TABLE bolt11_invoices DROP CONSTRAINT bolt11_invoices_quote_currency_supported;
ALTER TABLE card_payments DROP CONSTRAINT card_payments_currency_supported;
ALTER TABLE payments DROP CONSTRAINT payments_currency_code;
DROP TABLE currencies;

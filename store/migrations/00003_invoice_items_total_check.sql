-- +goose Up
-- Moving, changing or deleting items must keep every affected invoice's total
-- equal to the sum of its items, checked at commit.
-- +goose StatementBegin
CREATE FUNCTION invoice_items_keep_totals() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    inv text;
    inv_total bigint;
    items_total bigint;
BEGIN
    FOREACH inv IN ARRAY ARRAY[
        CASE WHEN TG_OP IN ('UPDATE', 'DELETE') THEN OLD.invoice_id END,
        CASE WHEN TG_OP IN ('INSERT', 'UPDATE') THEN NEW.invoice_id END]
    LOOP
        CONTINUE WHEN inv IS NULL;
        SELECT total INTO inv_total FROM invoices WHERE id = inv;
        CONTINUE WHEN NOT FOUND;
        SELECT coalesce(sum(amount), 0) INTO items_total FROM invoice_items WHERE invoice_id = inv;
        IF items_total <> inv_total THEN
            RAISE EXCEPTION 'invoice % total % does not equal the sum of its items %', inv, inv_total, items_total
                USING ERRCODE = 'check_violation';
        END IF;
    END LOOP;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd
CREATE CONSTRAINT TRIGGER invoice_items_keep_totals
    AFTER INSERT OR UPDATE OF invoice_id, amount OR DELETE ON invoice_items
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION invoice_items_keep_totals();

-- +goose Down
DROP TRIGGER invoice_items_keep_totals ON invoice_items;
DROP FUNCTION invoice_items_keep_totals();

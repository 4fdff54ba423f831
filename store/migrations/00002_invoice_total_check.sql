-- +goose Up
-- An invoice's total must equal the sum of its items. Checked at commit, so the
-- claim can insert the invoice before moving its items onto it.
-- +goose StatementBegin
CREATE FUNCTION invoice_total_matches_items() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    items_total bigint;
BEGIN
    SELECT coalesce(sum(amount), 0) INTO items_total FROM invoice_items WHERE invoice_id = NEW.id;
    IF items_total <> NEW.total THEN
        RAISE EXCEPTION 'invoice % total % does not equal the sum of its items %', NEW.id, NEW.total, items_total
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END;
$$;
-- +goose StatementEnd
CREATE CONSTRAINT TRIGGER invoice_total_matches_items
    AFTER INSERT OR UPDATE OF total ON invoices
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION invoice_total_matches_items();

-- +goose Down
DROP TRIGGER invoice_total_matches_items ON invoices;
DROP FUNCTION invoice_total_matches_items();

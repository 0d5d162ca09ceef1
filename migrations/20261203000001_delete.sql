-- Deleting a dataset. The row turns `deleting` at once (every page hides its
-- data), a `delete` request goes through the same outbox as syncs, and the
-- DatasetSync object's `delete` handler drops the lakehouse tables and files,
-- removes the local Parquet file and then the row. Browsers hear of the row's
-- removal on the same channel as status changes.

ALTER TYPE sync_status ADD VALUE 'deleting';
ALTER TYPE sync_reason ADD VALUE 'delete';

CREATE FUNCTION notify_dataset_removed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('dataset_status', json_build_object(
        'dataset_id', OLD.id,
        'tenant_id', OLD.tenant_id,
        'removed', true)::text);
    RETURN OLD;
END;
$$;
CREATE TRIGGER datasets_notify_removed
    AFTER DELETE ON datasets
    FOR EACH ROW EXECUTE FUNCTION notify_dataset_removed();

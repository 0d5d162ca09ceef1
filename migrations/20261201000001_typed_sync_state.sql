-- One owner for sync state (server/src/sync/ledger.rs), typed all the way:
-- the step and the outcome become enums like the status; the table names get
-- columns of their own; the seed's `metadata` keys are derived from the typed
-- columns by a trigger, so nothing writes them by hand.

CREATE TYPE sync_step AS ENUM ('queued', 'bronze', 'silver', 'metadata');
CREATE TYPE step_outcome AS ENUM ('running', 'succeeded', 'retrying', 'failed');
CREATE TYPE sync_reason AS ENUM ('upload', 'retry', 'bulk');

ALTER TABLE datasets
    ADD COLUMN bronze_table text,
    ADD COLUMN silver_table text;
UPDATE datasets
   SET bronze_table = metadata->>'bronze_table', silver_table = metadata->>'silver_table';

-- The status trigger names sync_step; it is recreated as it was around the change.
DROP TRIGGER datasets_notify_status ON datasets;
ALTER TABLE datasets DROP CONSTRAINT datasets_sync_step_check;
ALTER TABLE datasets
    ALTER COLUMN sync_step TYPE sync_step USING sync_step::sync_step,
    -- A dataset is at one of the sync's own steps; `queued` is only a timeline row.
    ADD CONSTRAINT datasets_sync_step_check CHECK (sync_step <> 'queued');
CREATE TRIGGER datasets_notify_status
    AFTER INSERT OR UPDATE OF sync_status, sync_step, sync_attempt, sync_next_retry_at, sync_error
    ON datasets
    FOR EACH ROW EXECUTE FUNCTION notify_dataset_status();

ALTER TABLE sync_events DROP CONSTRAINT sync_events_outcome_check;
ALTER TABLE sync_events
    ALTER COLUMN step TYPE sync_step USING step::sync_step,
    ALTER COLUMN outcome TYPE step_outcome USING outcome::step_outcome;

ALTER TABLE sync_requests DROP CONSTRAINT sync_requests_reason_check;
ALTER TABLE sync_requests
    ALTER COLUMN reason TYPE sync_reason USING reason::sync_reason;

-- The seed's keys, for readers of `metadata`: derived on every write.
CREATE FUNCTION derive_dataset_metadata() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.metadata := COALESCE(NEW.metadata, '{}'::jsonb) || jsonb_build_object(
        'databricks_enabled', NEW.sync_status <> 'local_only',
        'sync_status', NEW.sync_status,
        'bronze_table', NEW.bronze_table,
        'silver_table', NEW.silver_table,
        'last_sync_at', to_char(NEW.last_sync_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
        'last_error', NEW.sync_error,
        'attempts', NEW.sync_attempt);
    RETURN NEW;
END;
$$;
CREATE TRIGGER datasets_derive_metadata
    BEFORE INSERT OR UPDATE ON datasets
    FOR EACH ROW EXECUTE FUNCTION derive_dataset_metadata();
UPDATE datasets SET metadata = metadata;

-- What the pages list: one composite row type (the view's), read whole.
CREATE VIEW dataset_summaries AS
SELECT id, tenant_id, name, file_name, source_format, row_count, size_bytes,
       jsonb_array_length(schema)::bigint AS column_count,
       sync_status, sync_step, sync_attempt, sync_max_attempts, sync_next_retry_at, sync_error,
       bronze_table, silver_table, last_sync_at, created_at, updated_at
  FROM datasets;

-- The live listener re-reads datasets changed since a gap.
CREATE INDEX datasets_updated_idx ON datasets (updated_at);

-- New versions of a dataset. A dataset's rows are those of its versions from
-- `base_version` (its first upload or its latest replace) to `version`; the
-- local Parquet file holds exactly those rows, and the lakehouse's bronze
-- table holds every version ever synced, tagged with `_version`.

CREATE TYPE version_mode AS ENUM ('initial', 'replace', 'append');

ALTER TABLE datasets
    ADD COLUMN version        integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    ADD COLUMN base_version   integer NOT NULL DEFAULT 1,
    -- The version silver was last built at (NULL: never).
    ADD COLUMN synced_version integer,
    ADD CONSTRAINT datasets_base_version_check CHECK (base_version BETWEEN 1 AND version),
    ADD CONSTRAINT datasets_synced_version_check CHECK (synced_version BETWEEN 1 AND version);
UPDATE datasets SET synced_version = 1 WHERE sync_status = 'synced';

-- One row per version: what was uploaded, how, by whom and when.
CREATE TABLE dataset_versions (
    dataset_id    uuid NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    version       integer NOT NULL CHECK (version >= 1),
    tenant_id     uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    mode          version_mode NOT NULL,
    file_name     text NOT NULL,
    source_format text NOT NULL,
    -- The version's own file's schema (the dataset's is in datasets.schema).
    schema        jsonb NOT NULL CHECK (jsonb_typeof(schema) = 'array'),
    row_count     bigint NOT NULL CHECK (row_count >= 0),
    size_bytes    bigint NOT NULL CHECK (size_bytes >= 0),
    uploaded_by   uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (dataset_id, version)
);
INSERT INTO dataset_versions
    (dataset_id, version, tenant_id, mode, file_name, source_format, schema, row_count,
     size_bytes, created_at)
SELECT id, 1, tenant_id, 'initial', file_name, source_format, schema, row_count, size_bytes,
       created_at
  FROM datasets;

-- A file uploaded as a possible next version, converted and kept until its
-- uploader chooses replace or append after seeing the schema difference.
-- Its Parquet file is `datasets/<dataset_id>.staged-<id>.parquet`.
CREATE TABLE staged_versions (
    id            uuid PRIMARY KEY,
    tenant_id     uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    dataset_id    uuid NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    file_name     text NOT NULL,
    source_format text NOT NULL,
    schema        jsonb NOT NULL CHECK (jsonb_typeof(schema) = 'array'),
    row_count     bigint NOT NULL CHECK (row_count >= 0),
    size_bytes    bigint NOT NULL CHECK (size_bytes >= 0),
    uploaded_by   uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX staged_versions_created_idx ON staged_versions (created_at);

-- The pages' row type gains the version (columns go last: the view is read
-- as one composite value).
CREATE OR REPLACE VIEW dataset_summaries AS
SELECT id, tenant_id, name, file_name, source_format, row_count, size_bytes,
       jsonb_array_length(schema)::bigint AS column_count,
       sync_status, sync_step, sync_attempt, sync_max_attempts, sync_next_retry_at, sync_error,
       bronze_table, silver_table, last_sync_at, created_at, updated_at,
       version, synced_version
  FROM datasets;

-- The dataset catalogue: tenants, datasets and their typed sync status.

CREATE TABLE tenants (
    id         uuid PRIMARY KEY,
    slug       text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    name       text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TYPE sync_status AS ENUM (
    'local_only', 'pending', 'queued', 'syncing', 'retrying', 'synced', 'failed'
);

CREATE TABLE datasets (
    id            uuid PRIMARY KEY,
    tenant_id     uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name          text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    file_name     text NOT NULL CHECK (char_length(file_name) BETWEEN 1 AND 255),
    source_format text NOT NULL,
    -- [{name, normalized_name, type, nullable}]
    schema        jsonb NOT NULL CHECK (jsonb_typeof(schema) = 'array'),
    row_count     bigint NOT NULL CHECK (row_count >= 0),
    -- Bytes as uploaded (before conversion to Parquet).
    size_bytes    bigint NOT NULL CHECK (size_bytes >= 0),
    -- The seed's keys: databricks_enabled, sync_status, bronze_table, silver_table, last_sync_at.
    metadata      jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(metadata) = 'object'),
    sync_status   sync_status NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- The datasets page lists a tenant's datasets newest first.
CREATE INDEX datasets_tenant_created_idx ON datasets (tenant_id, created_at DESC, id DESC);
-- Bulk operations pick a tenant's datasets by status (e.g. everything not synced).
CREATE INDEX datasets_tenant_status_idx ON datasets (tenant_id, sync_status);

CREATE FUNCTION set_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END;
$$;

CREATE TRIGGER datasets_set_updated_at
    BEFORE UPDATE ON datasets
    FOR EACH ROW
    WHEN (OLD.* IS DISTINCT FROM NEW.*)
    EXECUTE FUNCTION set_updated_at();

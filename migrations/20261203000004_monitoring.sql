-- The monitoring page reads a tenant's step attempts by when they ended.
CREATE INDEX sync_events_tenant_finished_idx ON sync_events (tenant_id, finished_at);

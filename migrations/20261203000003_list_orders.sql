-- The datasets list sorts by name and by size too (keyset pagination in each
-- order), and searches names.
CREATE INDEX datasets_tenant_name_idx ON datasets (tenant_id, lower(name), id);
CREATE INDEX datasets_tenant_size_idx ON datasets (tenant_id, size_bytes DESC, id DESC);

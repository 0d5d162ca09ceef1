-- The query page's per-user history: what ran, where, and how it ended.
CREATE TABLE query_history (
    id          bigserial PRIMARY KEY,
    tenant_id   uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    sql         text NOT NULL,
    engine      text NOT NULL CHECK (engine IN ('auto', 'local', 'lakehouse')),
    -- Where it ran (NULL when it did not).
    ran_on      text CHECK (ran_on IN ('local', 'lakehouse')),
    row_count   integer,
    elapsed_ms  bigint,
    error       text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX query_history_user_idx ON query_history (user_id, created_at DESC);

-- Durable lakehouse sync: the outbox of sync requests, the timeline of sync
-- events, the live state of a dataset's sync, and NOTIFY for both.

-- Live sync state next to the typed status (the UI renders badges from it).
ALTER TABLE datasets
    -- bronze | silver | metadata while syncing or retrying.
    ADD COLUMN sync_step          text CHECK (sync_step IN ('bronze', 'silver', 'metadata')),
    -- Attempt n of sync_max_attempts of the current step.
    ADD COLUMN sync_attempt       integer CHECK (sync_attempt >= 1),
    ADD COLUMN sync_max_attempts  integer CHECK (sync_max_attempts >= 1),
    ADD COLUMN sync_next_retry_at timestamptz,
    ADD COLUMN sync_error         text,
    ADD COLUMN last_sync_at       timestamptz;

-- The outbox: a request is committed with its dataset (or by a retry / bulk
-- action) and a dispatcher submits it to Restate until Restate accepts it.
CREATE TABLE sync_requests (
    id              uuid PRIMARY KEY,
    tenant_id       uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    dataset_id      uuid NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    -- upload | retry | bulk
    reason          text NOT NULL CHECK (reason IN ('upload', 'retry', 'bulk')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- Submission attempts to the Restate ingress, and when to try next.
    dispatch_attempts integer NOT NULL DEFAULT 0,
    next_dispatch_at  timestamptz NOT NULL DEFAULT now(),
    last_dispatch_error text,
    -- Set once Restate accepted the request.
    dispatched_at   timestamptz,
    invocation_id   text
);

-- The dispatcher's queue: undispatched requests in order of their next attempt.
CREATE INDEX sync_requests_undispatched_idx
    ON sync_requests (next_dispatch_at, created_at) WHERE dispatched_at IS NULL;
CREATE INDEX sync_requests_dataset_idx ON sync_requests (dataset_id, created_at DESC);

-- The timeline. One row per step attempt; `finished_at`/`error` are filled in
-- when it ends. The unique key makes every write idempotent under replay.
CREATE TABLE sync_events (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id     uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    dataset_id    uuid NOT NULL REFERENCES datasets (id) ON DELETE CASCADE,
    request_id    uuid NOT NULL,
    -- queued | bronze | silver | metadata | synced | failed
    step          text NOT NULL,
    attempt       integer NOT NULL CHECK (attempt >= 1),
    max_attempts  integer NOT NULL CHECK (max_attempts >= 1),
    -- running | succeeded | retrying | failed
    outcome       text NOT NULL CHECK (outcome IN ('running', 'succeeded', 'retrying', 'failed')),
    started_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz,
    next_retry_at timestamptz,
    error         text,
    detail        jsonb,
    UNIQUE (request_id, step, attempt)
);
CREATE INDEX sync_events_dataset_idx ON sync_events (dataset_id, id);

-- Wakes the dispatcher(s) as soon as a request is committed.
CREATE FUNCTION notify_sync_request() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('sync_requests', NEW.id::text);
    RETURN NEW;
END;
$$;
CREATE TRIGGER sync_requests_notify
    AFTER INSERT ON sync_requests
    FOR EACH ROW EXECUTE FUNCTION notify_sync_request();

-- Live status for every server replica: a dataset's sync state changed, or a
-- new timeline row appeared. The payload is small JSON; listeners look up the rest.
CREATE FUNCTION notify_dataset_status() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('dataset_status', json_build_object(
        'dataset_id', NEW.id,
        'tenant_id', NEW.tenant_id,
        'status', NEW.sync_status)::text);
    RETURN NEW;
END;
$$;
CREATE TRIGGER datasets_notify_status
    AFTER INSERT OR UPDATE OF sync_status, sync_step, sync_attempt, sync_next_retry_at, sync_error
    ON datasets
    FOR EACH ROW EXECUTE FUNCTION notify_dataset_status();

CREATE FUNCTION notify_sync_event() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('dataset_status', json_build_object(
        'dataset_id', NEW.dataset_id,
        'tenant_id', NEW.tenant_id,
        'event_id', NEW.id)::text);
    RETURN NEW;
END;
$$;
CREATE TRIGGER sync_events_notify
    AFTER INSERT OR UPDATE ON sync_events
    FOR EACH ROW EXECUTE FUNCTION notify_sync_event();

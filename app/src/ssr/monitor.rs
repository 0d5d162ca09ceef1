//! The sync monitoring page's figures, for one tenant and one window, all
//! read from `sync_events` (one row per step attempt), the outbox
//! (`sync_requests`) and the datasets' live status. `/metrics` exports the
//! same quantities for every tenant together.

use super::catalog::rfc3339;
use crate::{
    domain::SyncStep,
    model::{FailureCause, MonitorBucket, MonitorWindow, SlowSync, StepTiming, SyncMonitor},
};
use sqlx::PgPool;
use uuid::Uuid;

/// How many causes and slow syncs the page lists.
const TOP: i64 = 10;

pub async fn sync_monitor(
    db: &PgPool,
    tenant_id: Uuid,
    window: MonitorWindow,
) -> Result<SyncMonitor, sqlx::Error> {
    let (span, bucket) = window.span_and_bucket_secs();
    let (span, bucket) = (span as f64, bucket as f64);
    // Buckets are aligned to the epoch, so a bar keeps its place between
    // two visits; the first may start a little before the window.
    let buckets = sqlx::query!(
        r#"WITH b AS (
             SELECT generate_series(
               date_bin(make_interval(secs => $3), now() - make_interval(secs => $2), timestamptz 'epoch'),
               now(), make_interval(secs => $3)) AS start),
           e AS (
             SELECT date_bin(make_interval(secs => $3), finished_at, timestamptz 'epoch') AS start,
                    count(*) FILTER (WHERE step = 'metadata' AND outcome = 'succeeded') AS succeeded,
                    count(*) FILTER (WHERE outcome = 'failed') AS failed,
                    count(*) FILTER (WHERE outcome = 'retrying') AS retries
             FROM sync_events
             WHERE tenant_id = $1 AND finished_at >= (SELECT min(start) FROM b)
             GROUP BY 1)
           SELECT b.start AS "start!", COALESCE(e.succeeded, 0) AS "succeeded!",
                  COALESCE(e.failed, 0) AS "failed!", COALESCE(e.retries, 0) AS "retries!"
           FROM b LEFT JOIN e USING (start) ORDER BY b.start"#,
        tenant_id,
        span,
        bucket,
    )
    .fetch_all(db)
    .await?;
    let causes = sqlx::query!(
        r#"SELECT step AS "step!: SyncStep",
                  regexp_replace(COALESCE(error, 'no error recorded'), ' \(reference [0-9a-f]+\)$', '') AS "cause!",
                  count(*) AS "count!"
           FROM sync_events
           WHERE tenant_id = $1 AND finished_at >= now() - make_interval(secs => $2)
             AND outcome IN ('retrying', 'failed')
           GROUP BY 1, 2 ORDER BY 3 DESC, 2 LIMIT $3"#,
        tenant_id,
        span,
        TOP,
    )
    .fetch_all(db)
    .await?;
    let steps = sqlx::query!(
        r#"SELECT step AS "step!: SyncStep", count(*) AS "count!",
                  percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS "p50!",
                  percentile_cont(0.95) WITHIN GROUP (ORDER BY ms) AS "p95!"
           FROM (SELECT step, (EXTRACT(EPOCH FROM finished_at - started_at) * 1000)::float8 AS ms
                 FROM sync_events
                 WHERE tenant_id = $1 AND outcome = 'succeeded'
                   AND finished_at >= now() - make_interval(secs => $2)) s
           GROUP BY step ORDER BY step"#,
        tenant_id,
        span,
    )
    .fetch_all(db)
    .await?;
    let outbox = sqlx::query!(
        r#"SELECT count(*) AS "depth!",
                  EXTRACT(EPOCH FROM now() - min(created_at))::bigint AS oldest_secs,
                  (SELECT count(*) FROM datasets WHERE tenant_id = $1
                     AND sync_status IN ('queued', 'syncing', 'retrying')) AS "in_flight!"
           FROM sync_requests WHERE tenant_id = $1 AND dispatched_at IS NULL"#,
        tenant_id,
    )
    .fetch_one(db)
    .await?;
    let slowest = sqlx::query!(
        r#"SELECT r.dataset_id, d.name, r.id AS request_id, r.invocation_id, r.created_at,
                  (EXTRACT(EPOCH FROM e.finished_at - r.created_at) * 1000)::bigint AS "duration_ms!"
           FROM sync_events e
           JOIN sync_requests r ON r.id = e.request_id
           JOIN datasets d ON d.id = r.dataset_id
           WHERE e.tenant_id = $1 AND e.step = 'metadata' AND e.outcome = 'succeeded'
             AND e.finished_at >= now() - make_interval(secs => $2)
           ORDER BY 6 DESC, r.created_at DESC LIMIT $3"#,
        tenant_id,
        span,
        TOP,
    )
    .fetch_all(db)
    .await?;
    let buckets: Vec<MonitorBucket> = buckets
        .into_iter()
        .map(|b| MonitorBucket {
            start: rfc3339(b.start),
            succeeded: b.succeeded,
            failed: b.failed,
            retries: b.retries,
        })
        .collect();
    Ok(SyncMonitor {
        window,
        succeeded: buckets.iter().map(|b| b.succeeded).sum(),
        failed: buckets.iter().map(|b| b.failed).sum(),
        buckets,
        causes: causes
            .into_iter()
            .map(|c| FailureCause {
                step: c.step,
                cause: c.cause,
                count: c.count,
            })
            .collect(),
        steps: steps
            .into_iter()
            .map(|s| StepTiming {
                step: s.step,
                count: s.count,
                p50_ms: s.p50,
                p95_ms: s.p95,
            })
            .collect(),
        outbox_depth: outbox.depth,
        outbox_oldest_secs: outbox.oldest_secs,
        in_flight: outbox.in_flight,
        slowest: slowest
            .into_iter()
            .map(|s| SlowSync {
                dataset_id: s.dataset_id,
                dataset_name: s.name,
                request_id: s.request_id,
                invocation_id: s.invocation_id,
                requested_at: rfc3339(s.created_at),
                duration_ms: s.duration_ms,
            })
            .collect(),
    })
}

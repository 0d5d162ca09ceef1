//! Postgres writes made by the sync workflow and the dispatcher. Each one is
//! idempotent: run twice (a replayed `ctx.run`, a resent request) it leaves the
//! same rows. Timeline rows are keyed by (request, step, attempt).

use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

/// The three journaled steps of a sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Step {
    Bronze,
    Silver,
    Metadata,
}

impl Step {
    /// The value stored in `datasets.sync_step` and `sync_events.step`.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Bronze => "bronze",
            Step::Silver => "silver",
            Step::Metadata => "metadata",
        }
    }

    /// The name of the step's `ctx.run` in the Restate journal.
    pub fn run_name(self) -> &'static str {
        match self {
            Step::Bronze => "sync_to_bronze",
            Step::Silver => "transform_to_silver",
            Step::Metadata => "update_dataset_metadata",
        }
    }
}

/// What the workflow needs to know about a dataset, read once per sync.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DatasetRef {
    pub tenant_id: Uuid,
    pub name: String,
    pub schema: serde_json::Value,
}

/// Identifies one attempt of one step of one sync request.
#[derive(Debug, Clone, Copy)]
pub struct Attempt {
    pub dataset_id: Uuid,
    pub request_id: Uuid,
    pub step: Step,
    pub attempt: u32,
    pub max_attempts: u32,
}

#[derive(Clone)]
pub struct SyncStore {
    db: PgPool,
}

fn int(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

impl SyncStore {
    pub fn new(db: PgPool) -> Self {
        Self { db }
    }

    pub async fn load_dataset(&self, dataset_id: Uuid) -> Result<Option<DatasetRef>, sqlx::Error> {
        let row: Option<(Uuid, String, serde_json::Value)> =
            sqlx::query_as("SELECT tenant_id, name, schema FROM datasets WHERE id = $1")
                .bind(dataset_id)
                .fetch_optional(&self.db)
                .await?;
        Ok(row.map(|(tenant_id, name, schema)| DatasetRef {
            tenant_id,
            name,
            schema,
        }))
    }

    /// The dispatcher's mark: Restate accepted the request. Only a `pending`
    /// dataset becomes `queued`, so a sync that already started is not set back.
    pub async fn mark_queued(
        &self,
        request_id: Uuid,
        invocation_id: &str,
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.db.begin().await?;
        let row: Option<(Uuid, Uuid, OffsetDateTime)> = sqlx::query_as(
            "UPDATE sync_requests SET dispatched_at = COALESCE(dispatched_at, now()),
               invocation_id = $2, last_dispatch_error = NULL
             WHERE id = $1 RETURNING tenant_id, dataset_id, created_at",
        )
        .bind(request_id)
        .bind(invocation_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((tenant_id, dataset_id, requested_at)) = row else {
            // The dataset (and so its request) was deleted meanwhile.
            return tx.commit().await;
        };
        sqlx::query(
            "UPDATE datasets SET sync_status = 'queued',
               metadata = metadata || '{\"sync_status\": \"queued\"}'
             WHERE id = $1 AND sync_status = 'pending'",
        )
        .bind(dataset_id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            // From the request to its acceptance by Restate. The sync may
            // already be running, so this row can be written after the first
            // step's; the timeline orders by start time.
            "INSERT INTO sync_events (tenant_id, dataset_id, request_id, step, attempt, max_attempts,
               outcome, started_at, finished_at, detail)
             VALUES ($1, $2, $3, 'queued', 1, 1, 'succeeded', $5, now(),
               jsonb_build_object('invocation_id', $4::text))
             ON CONFLICT (request_id, step, attempt) DO NOTHING",
        )
        .bind(tenant_id)
        .bind(dataset_id)
        .bind(request_id)
        .bind(invocation_id)
        .bind(requested_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// A step attempt starts: the dataset is `syncing` (step, attempt n of N).
    pub async fn step_started(&self, tenant_id: Uuid, a: Attempt) -> Result<(), sqlx::Error> {
        let mut tx = self.db.begin().await?;
        sqlx::query(
            "UPDATE datasets SET sync_status = 'syncing', sync_step = $2, sync_attempt = $3,
               sync_max_attempts = $4, sync_next_retry_at = NULL,
               metadata = metadata || jsonb_build_object('sync_status', 'syncing', 'attempts', $3)
             WHERE id = $1",
        )
        .bind(a.dataset_id)
        .bind(a.step.as_str())
        .bind(int(a.attempt))
        .bind(int(a.max_attempts))
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO sync_events (tenant_id, dataset_id, request_id, step, attempt, max_attempts, outcome)
             VALUES ($1, $2, $3, $4, $5, $6, 'running')
             ON CONFLICT (request_id, step, attempt) DO NOTHING",
        )
        .bind(tenant_id)
        .bind(a.dataset_id)
        .bind(a.request_id)
        .bind(a.step.as_str())
        .bind(int(a.attempt))
        .bind(int(a.max_attempts))
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// Closes a step attempt's timeline row (first write wins).
    async fn finish_event(
        tx: &mut sqlx::PgConnection,
        a: Attempt,
        outcome: &str,
        error: Option<&str>,
        next_retry_at: Option<OffsetDateTime>,
        detail: Option<&serde_json::Value>,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE sync_events SET outcome = $4, finished_at = now(), error = $5,
               next_retry_at = $6, detail = $7
             WHERE request_id = $1 AND step = $2 AND attempt = $3 AND finished_at IS NULL",
        )
        .bind(a.request_id)
        .bind(a.step.as_str())
        .bind(int(a.attempt))
        .bind(outcome)
        .bind(error)
        .bind(next_retry_at)
        .bind(detail)
        .execute(tx)
        .await?;
        Ok(())
    }

    pub async fn step_succeeded(
        &self,
        a: Attempt,
        detail: &serde_json::Value,
    ) -> Result<(), sqlx::Error> {
        let mut conn = self.db.acquire().await?;
        Self::finish_event(&mut conn, a, "succeeded", None, None, Some(detail)).await
    }

    /// A step attempt failed and another is scheduled at `next_retry_at`;
    /// written before the wait begins, so the UI shows `retrying` at once.
    pub async fn step_retrying(
        &self,
        a: Attempt,
        error: &str,
        next_retry_at: OffsetDateTime,
    ) -> Result<(), sqlx::Error> {
        self.attempt_failed(a, error, Some(next_retry_at)).await
    }

    /// The sync gave up: retries are exhausted or the error is terminal.
    pub async fn step_failed(&self, a: Attempt, error: &str) -> Result<(), sqlx::Error> {
        self.attempt_failed(a, error, None).await
    }

    /// Records a failed attempt on the dataset and closes its timeline row:
    /// `retrying` when another attempt is scheduled, otherwise `failed`.
    async fn attempt_failed(
        &self,
        a: Attempt,
        error: &str,
        next_retry_at: Option<OffsetDateTime>,
    ) -> Result<(), sqlx::Error> {
        let status = if next_retry_at.is_some() {
            "retrying"
        } else {
            "failed"
        };
        let mut tx = self.db.begin().await?;
        sqlx::query(
            "UPDATE datasets SET sync_status = $7::sync_status, sync_step = $2, sync_attempt = $3,
               sync_max_attempts = $4, sync_next_retry_at = $5, sync_error = $6,
               metadata = metadata || jsonb_build_object(
                 'sync_status', $7::text, 'attempts', $3, 'last_error', $6::text)
             WHERE id = $1",
        )
        .bind(a.dataset_id)
        .bind(a.step.as_str())
        .bind(int(a.attempt))
        .bind(int(a.max_attempts))
        .bind(next_retry_at)
        .bind(error)
        .bind(status)
        .execute(&mut *tx)
        .await?;
        Self::finish_event(&mut tx, a, status, Some(error), next_retry_at, None).await?;
        tx.commit().await
    }

    /// The seed's `update_dataset_metadata`: both table names, `synced`, and
    /// when. Also closes the metadata step's timeline row.
    pub async fn mark_synced(
        &self,
        a: Attempt,
        bronze_table: &str,
        silver_table: &str,
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.db.begin().await?;
        sqlx::query(
            "UPDATE datasets SET sync_status = 'synced', sync_step = NULL, sync_attempt = NULL,
               sync_max_attempts = NULL, sync_next_retry_at = NULL, sync_error = NULL,
               last_sync_at = now(),
               metadata = metadata || jsonb_build_object(
                 'databricks_enabled', true,
                 'sync_status', 'synced',
                 'bronze_table', $2::text,
                 'silver_table', $3::text,
                 'last_sync_at', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),
                 'last_error', NULL)
             WHERE id = $1",
        )
        .bind(a.dataset_id)
        .bind(bronze_table)
        .bind(silver_table)
        .execute(&mut *tx)
        .await?;
        let detail =
            serde_json::json!({"bronze_table": bronze_table, "silver_table": silver_table});
        Self::finish_event(&mut tx, a, "succeeded", None, None, Some(&detail)).await?;
        tx.commit().await
    }

    /// Requests not yet accepted by Restate (the outbox depth).
    pub async fn outbox_depth(&self) -> Result<i64, sqlx::Error> {
        sqlx::query_scalar("SELECT count(*) FROM sync_requests WHERE dispatched_at IS NULL")
            .fetch_one(&self.db)
            .await
    }

    pub fn db(&self) -> &PgPool {
        &self.db
    }
}

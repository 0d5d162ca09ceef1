//! THE owner of a dataset's sync status. Every transition is written here and
//! nowhere else: `pending` (a request stored, at upload, retry or bulk sync),
//! `queued` (Restate accepted it), `syncing` (a step runs), `retrying`,
//! `failed` and `synced`, each with its timeline row in `sync_events`. The
//! seed's `metadata` keys follow from these columns by a trigger.
//!
//! Every write is idempotent: run twice (a replayed `ctx.run`, a resent
//! request) it leaves the same rows. Timeline rows are keyed by (request,
//! step, attempt); closing one only touches it while it is open; `queued`
//! only replaces `pending`, so it never sets back a sync that already started.

use app::{
    domain::{StepOutcome, SyncStatus, SyncStep},
    ssr::{
        sync::{BoxFuture, ResyncOutcome},
        SyncControl,
    },
};
use serde::{Deserialize, Serialize};
use sqlx::{PgPool, Postgres, Transaction};
use time::OffsetDateTime;
use uuid::Uuid;

/// Why a sync was requested (`sync_requests.reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::Type)]
#[sqlx(type_name = "sync_reason", rename_all = "snake_case")]
pub enum SyncReason {
    Upload,
    Retry,
    Bulk,
    /// Not a sync: the dataset is to be deleted (the `delete` handler).
    Delete,
}

/// Whether the deployment syncs at all, and whether uploads sync by themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SyncMode {
    /// Sync is enabled and an MCP server is configured: retry and bulk sync work.
    pub available: bool,
    /// New uploads are queued for sync (`DATABRICKS_AUTO_SYNC`).
    pub auto: bool,
}

impl SyncMode {
    /// The status a new upload starts in.
    pub fn initial_status(self) -> SyncStatus {
        if self.auto {
            SyncStatus::Pending
        } else {
            SyncStatus::LocalOnly
        }
    }
}

/// What [`Ledger::step_started`] found.
#[derive(Debug)]
pub enum StepStart {
    /// Do the attempt's work.
    Run,
    /// The dataset is gone or being deleted.
    Stop,
    /// The attempt already ended; this is its outcome.
    Recorded {
        outcome: StepOutcome,
        error: Option<String>,
        detail: Option<serde_json::Value>,
    },
}

/// Identifies one attempt of one step of one sync request.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Attempt {
    pub tenant_id: Uuid,
    pub dataset_id: Uuid,
    pub request_id: Uuid,
    pub step: SyncStep,
    pub attempt: u32,
    pub max_attempts: u32,
}

impl Attempt {
    fn attempt(&self) -> i32 {
        i32::try_from(self.attempt).unwrap_or(i32::MAX)
    }

    fn max_attempts(&self) -> i32 {
        i32::try_from(self.max_attempts).unwrap_or(i32::MAX)
    }
}

#[derive(Clone)]
pub struct Ledger {
    db: PgPool,
}

impl Ledger {
    pub fn new(db: PgPool) -> Self {
        Self { db }
    }

    pub fn db(&self) -> &PgPool {
        &self.db
    }

    /// What a sync needs to know about its dataset, if it still exists
    /// (and is not being deleted).
    pub async fn load_dataset(
        &self,
        dataset_id: Uuid,
    ) -> Result<Option<super::service::DatasetRef>, sqlx::Error> {
        let row = sqlx::query!(
            "SELECT tenant_id, name, schema, version, base_version FROM datasets
             WHERE id = $1 AND sync_status <> 'deleting'",
            dataset_id,
        )
        .fetch_optional(&self.db)
        .await?;
        Ok(row.map(|r| super::service::DatasetRef {
            tenant_id: r.tenant_id,
            name: r.name,
            schema: r.schema,
            version: r.version,
            base_version: r.base_version,
        }))
    }

    /// [`Self::load_dataset`] for many datasets at once (the dispatcher's
    /// round): those that still exist and are not being deleted.
    pub async fn load_datasets(
        &self,
        ids: &[Uuid],
    ) -> Result<std::collections::HashMap<Uuid, super::service::DatasetRef>, sqlx::Error> {
        let rows = sqlx::query!(
            "SELECT id, tenant_id, name, schema, version, base_version FROM datasets
             WHERE id = ANY($1) AND sync_status <> 'deleting'",
            ids,
        )
        .fetch_all(&self.db)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let dataset = super::service::DatasetRef {
                    tenant_id: r.tenant_id,
                    name: r.name,
                    schema: r.schema,
                    version: r.version,
                    base_version: r.base_version,
                };
                (r.id, dataset)
            })
            .collect())
    }

    /// The tenant's dataset's status, its row locked until `tx` ends; `None`
    /// when the tenant has no such dataset.
    async fn lock_status(
        tx: &mut Transaction<'_, Postgres>,
        tenant_id: Uuid,
        dataset_id: Uuid,
    ) -> Result<Option<SyncStatus>, sqlx::Error> {
        sqlx::query_scalar!(
            r#"SELECT sync_status AS "status: SyncStatus" FROM datasets
               WHERE tenant_id = $1 AND id = $2 FOR UPDATE"#,
            tenant_id,
            dataset_id,
        )
        .fetch_optional(&mut **tx)
        .await
    }

    /// The upload's sync request, inside the transaction that inserts the
    /// dataset (already `pending`): both commit or neither. Returns the
    /// request id, which is also the Restate idempotency key.
    pub async fn request_upload_sync(
        tx: &mut Transaction<'_, Postgres>,
        tenant_id: Uuid,
        dataset_id: Uuid,
    ) -> Result<Uuid, sqlx::Error> {
        let id = Uuid::new_v4();
        sqlx::query!(
            "INSERT INTO sync_requests (id, tenant_id, dataset_id, reason) VALUES ($1, $2, $3, $4)",
            id,
            tenant_id,
            dataset_id,
            SyncReason::Upload as SyncReason,
        )
        .execute(&mut **tx)
        .await?;
        Ok(id)
    }

    /// A manual retry or re-sync of one dataset: `pending` and a new request,
    /// unless a sync is already on its way.
    pub async fn request_resync(
        &self,
        tenant_id: Uuid,
        dataset_id: Uuid,
    ) -> Result<ResyncOutcome, sqlx::Error> {
        let mut tx = self.db.begin().await?;
        let status = Self::lock_status(&mut tx, tenant_id, dataset_id).await?;
        let Some(status) = status else {
            return Ok(ResyncOutcome::NotFound);
        };
        if status.is_deleting() {
            return Ok(ResyncOutcome::Deleting);
        }
        if status.in_progress() {
            return Ok(ResyncOutcome::AlreadyInProgress);
        }
        let requested = Self::request(&mut tx, tenant_id, &[dataset_id], SyncReason::Retry).await?;
        tx.commit().await?;
        Ok(requested
            .first()
            .map_or(ResyncOutcome::NotFound, |id| ResyncOutcome::Requested(*id)))
    }

    /// A sync of every dataset of the tenant that is `local_only` or
    /// `failed`; returns how many were requested.
    pub async fn request_bulk_sync(&self, tenant_id: Uuid) -> Result<u64, sqlx::Error> {
        let mut tx = self.db.begin().await?;
        let ids = sqlx::query_scalar!(
            "SELECT id FROM datasets
             WHERE tenant_id = $1 AND sync_status IN ('local_only', 'failed')
             ORDER BY created_at
             FOR UPDATE",
            tenant_id,
        )
        .fetch_all(&mut *tx)
        .await?;
        let requested = Self::request(&mut tx, tenant_id, &ids, SyncReason::Bulk).await?;
        tx.commit().await?;
        Ok(requested.len() as u64)
    }

    /// `pending` with a clean slate, and one request per dataset.
    async fn request(
        tx: &mut Transaction<'_, Postgres>,
        tenant_id: Uuid,
        ids: &[Uuid],
        reason: SyncReason,
    ) -> Result<Vec<Uuid>, sqlx::Error> {
        sqlx::query!(
            "UPDATE datasets SET
               sync_status = 'pending', sync_step = NULL, sync_attempt = NULL,
               sync_max_attempts = NULL, sync_next_retry_at = NULL, sync_error = NULL
             WHERE tenant_id = $1 AND id = ANY($2)",
            tenant_id,
            ids,
        )
        .execute(&mut **tx)
        .await?;
        sqlx::query_scalar!(
            "INSERT INTO sync_requests (id, tenant_id, dataset_id, reason)
             SELECT gen_random_uuid(), $1::uuid, d, $3::sync_reason FROM unnest($2::uuid[]) AS d
             RETURNING id",
            tenant_id,
            ids,
            reason as SyncReason,
        )
        .fetch_all(&mut **tx)
        .await
    }

    /// Restate accepted these requests (request id, invocation id): each
    /// dataset `queued` (only from `pending`), and the timeline's `queued`
    /// row from the request to its acceptance. One statement for a whole
    /// round, idempotent: writing it again changes nothing.
    pub async fn mark_queued(&self, accepted: &[(Uuid, String)]) -> Result<(), sqlx::Error> {
        if accepted.is_empty() {
            return Ok(());
        }
        let (ids, invocations): (Vec<Uuid>, Vec<String>) = accepted.iter().cloned().unzip();
        // The sync may already be running, so its `queued` row can be
        // written after the first step's; the timeline orders by start time.
        // A request deleted meanwhile (with its dataset) matches nothing.
        sqlx::query!(
            "WITH accepted AS (
               SELECT * FROM unnest($1::uuid[], $2::text[]) AS a(id, invocation_id)),
             request AS (
               UPDATE sync_requests r SET dispatched_at = COALESCE(r.dispatched_at, now()),
                 invocation_id = a.invocation_id, last_dispatch_error = NULL
               FROM accepted a WHERE r.id = a.id
               RETURNING r.id, r.tenant_id, r.dataset_id, r.created_at, r.invocation_id),
             queued AS (
               UPDATE datasets d SET sync_status = 'queued'
               FROM request r WHERE d.id = r.dataset_id AND d.sync_status = 'pending')
             INSERT INTO sync_events (tenant_id, dataset_id, request_id, step, attempt, max_attempts,
               outcome, started_at, finished_at, detail)
             SELECT tenant_id, dataset_id, id, 'queued', 1, 1, 'succeeded', created_at, now(),
               jsonb_build_object('invocation_id', invocation_id)
             FROM request
             ON CONFLICT (request_id, step, attempt) DO NOTHING",
            &ids,
            &invocations,
        )
        .execute(&self.db)
        .await?;
        Ok(())
    }

    /// A step attempt starts: `syncing` (step, attempt n of N) and an open
    /// timeline row. [`StepStart::Stop`] when the dataset is gone or being
    /// deleted: the sync must stop. [`StepStart::Recorded`] when this very
    /// attempt already ended (its journaled action ran, the ledger wrote the
    /// outcome, and the process died before Restate journaled it): the
    /// outcome stands and the work is not done again, so each step's effect
    /// and its timeline row happen once.
    ///
    /// One statement (its own transaction, one round trip): the recorded
    /// outcome if there is one; otherwise the dataset row and the timeline
    /// row, both only if the dataset is still there and not being deleted.
    pub async fn step_started(&self, a: Attempt) -> Result<StepStart, sqlx::Error> {
        let row = sqlx::query!(
            r#"WITH recorded AS (
                 SELECT outcome, error, detail FROM sync_events
                 WHERE request_id = $1 AND step = $2 AND attempt = $3 AND finished_at IS NOT NULL),
               live AS (
                 UPDATE datasets SET sync_status = 'syncing', sync_step = $2, sync_attempt = $3,
                   sync_max_attempts = $4, sync_next_retry_at = NULL
                 WHERE id = $5 AND sync_status <> 'deleting' AND NOT EXISTS (SELECT 1 FROM recorded)
                 RETURNING id),
               opened AS (
                 INSERT INTO sync_events (tenant_id, dataset_id, request_id, step, attempt, max_attempts, outcome)
                 SELECT $6, id, $1, $2, $3, $4, 'running' FROM live
                 ON CONFLICT (request_id, step, attempt) DO NOTHING)
               SELECT r.outcome AS "outcome?: StepOutcome", r.error, r.detail,
                 EXISTS (SELECT 1 FROM live) AS "live!"
               FROM (SELECT 1) one LEFT JOIN recorded r ON true"#,
            a.request_id,
            a.step as SyncStep,
            a.attempt(),
            a.max_attempts(),
            a.dataset_id,
            a.tenant_id,
        )
        .fetch_one(&self.db)
        .await?;
        Ok(match (row.outcome, row.live) {
            (Some(outcome), _) => StepStart::Recorded {
                outcome,
                error: row.error,
                detail: row.detail,
            },
            (None, true) => StepStart::Run,
            (None, false) => StepStart::Stop,
        })
    }

    /// Closes a step attempt's timeline row (first write wins).
    async fn close_event(
        conn: &mut sqlx::PgConnection,
        a: Attempt,
        outcome: StepOutcome,
        error: Option<&str>,
        next_retry_at: Option<OffsetDateTime>,
        detail: Option<&serde_json::Value>,
    ) -> Result<(), sqlx::Error> {
        sqlx::query!(
            "UPDATE sync_events SET outcome = $4, finished_at = now(), error = $5,
               next_retry_at = $6, detail = $7
             WHERE request_id = $1 AND step = $2 AND attempt = $3 AND finished_at IS NULL",
            a.request_id,
            a.step as SyncStep,
            a.attempt(),
            outcome as StepOutcome,
            error,
            next_retry_at,
            detail,
        )
        .execute(conn)
        .await?;
        Ok(())
    }

    /// A step attempt succeeded (the dataset stays `syncing` until the next
    /// step starts or the sync ends).
    pub async fn step_succeeded(
        &self,
        a: Attempt,
        detail: &serde_json::Value,
    ) -> Result<(), sqlx::Error> {
        let mut conn = self.db.acquire().await?;
        Self::close_event(
            &mut conn,
            a,
            StepOutcome::Succeeded,
            None,
            None,
            Some(detail),
        )
        .await
    }

    /// A step attempt failed and another is scheduled at `next_retry_at`:
    /// `retrying`, written before the wait begins so the UI shows it at once.
    pub async fn step_retrying(
        &self,
        a: Attempt,
        error: &str,
        next_retry_at: OffsetDateTime,
    ) -> Result<(), sqlx::Error> {
        self.attempt_failed(a, error, Some(next_retry_at)).await
    }

    /// The sync gave up (retries exhausted, a terminal error, or an operator
    /// cancel): `failed` with the error.
    pub async fn step_failed(&self, a: Attempt, error: &str) -> Result<(), sqlx::Error> {
        self.attempt_failed(a, error, None).await
    }

    async fn attempt_failed(
        &self,
        a: Attempt,
        error: &str,
        next_retry_at: Option<OffsetDateTime>,
    ) -> Result<(), sqlx::Error> {
        let (status, outcome) = match next_retry_at {
            Some(_) => (SyncStatus::Retrying, StepOutcome::Retrying),
            None => (SyncStatus::Failed, StepOutcome::Failed),
        };
        let mut tx = self.db.begin().await?;
        sqlx::query!(
            "UPDATE datasets SET sync_status = $2, sync_step = $3, sync_attempt = $4,
               sync_max_attempts = $5, sync_next_retry_at = $6, sync_error = $7
             WHERE id = $1 AND sync_status <> 'deleting'",
            a.dataset_id,
            status as SyncStatus,
            a.step as SyncStep,
            a.attempt(),
            a.max_attempts(),
            next_retry_at,
            error,
        )
        .execute(&mut *tx)
        .await?;
        Self::close_event(&mut tx, a, outcome, Some(error), next_retry_at, None).await?;
        tx.commit().await
    }

    /// `transform_to_silver` succeeded, and with it the sync: in one
    /// transaction, its timeline row closes with `detail`, the seed's
    /// `update_dataset_metadata` step is recorded, and the dataset gets both
    /// table names, the version silver holds, and when. `synced` only if that
    /// is the current version; a newer version uploaded meanwhile keeps the
    /// status of its own sync request (`pending` or `queued`; `local_only`
    /// when sync is manual). The synced version only moves forward. One
    /// write instead of a step of its own saves the sync a round trip to
    /// Restate and one to Postgres.
    pub async fn finish_sync(
        &self,
        silver: Attempt,
        detail: &serde_json::Value,
        bronze_table: &str,
        silver_table: &str,
        version: i32,
    ) -> Result<(), sqlx::Error> {
        let metadata = serde_json::json!({"bronze_table": bronze_table,
            "silver_table": silver_table, "version": version});
        // One statement: its own transaction, one round trip.
        sqlx::query!(
            "WITH closed AS (
               UPDATE sync_events SET outcome = 'succeeded', finished_at = now(), detail = $6
               WHERE request_id = $5 AND step = $7 AND attempt = $8 AND finished_at IS NULL),
             recorded AS (
               INSERT INTO sync_events (tenant_id, dataset_id, request_id, step, attempt, max_attempts,
                 outcome, finished_at, detail)
               VALUES ($9, $1, $5, 'metadata', 1, 1, 'succeeded', now(), $10)
               ON CONFLICT (request_id, step, attempt) DO NOTHING)
             UPDATE datasets SET
               sync_status = CASE WHEN version <= $4 THEN 'synced'::sync_status
                 ELSE COALESCE(
                   (SELECT CASE WHEN r.dispatched_at IS NULL THEN 'pending' ELSE 'queued' END::sync_status
                      FROM sync_requests r
                     WHERE r.dataset_id = $1 AND r.reason <> 'delete' AND r.created_at >
                           (SELECT created_at FROM sync_requests WHERE id = $5)
                     ORDER BY r.created_at DESC LIMIT 1),
                   'local_only') END,
               sync_step = NULL, sync_attempt = NULL,
               sync_max_attempts = NULL, sync_next_retry_at = NULL, sync_error = NULL,
               bronze_table = $2, silver_table = $3, last_sync_at = now(),
               synced_version = GREATEST(COALESCE(synced_version, 0), LEAST($4, version))
             WHERE id = $1 AND sync_status <> 'deleting'",
            silver.dataset_id,
            bronze_table,
            silver_table,
            version,
            silver.request_id,
            detail,
            silver.step as SyncStep,
            silver.attempt(),
            silver.tenant_id,
            metadata,
        )
        .execute(&self.db)
        .await?;
        Ok(())
    }
}

/// The answer to a delete request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteRequest {
    /// `deleting` now, with this outbox request for the `delete` handler.
    Requested(Uuid),
    /// Already `deleting`: the request before this one is on its way.
    AlreadyDeleting,
    NotFound,
}

/// Deletion: `deleting` (hidden at once) → the lakehouse clean-up, retried
/// (`sync_error` and `sync_next_retry_at` say why and when) → the row goes.
impl Ledger {
    /// Marks the dataset `deleting` and stores the `delete` request, in one
    /// transaction; sync requests not yet sent to Restate are withdrawn.
    pub async fn request_delete(
        &self,
        tenant_id: Uuid,
        dataset_id: Uuid,
    ) -> Result<DeleteRequest, sqlx::Error> {
        let mut tx = self.db.begin().await?;
        let status = Self::lock_status(&mut tx, tenant_id, dataset_id).await?;
        match status {
            None => return Ok(DeleteRequest::NotFound),
            Some(SyncStatus::Deleting) => {
                // Asking again retries a clean-up that stopped (a terminal
                // error, an operator's cancel), unless a request still waits.
                let waiting = sqlx::query_scalar!(
                    r#"SELECT EXISTS (SELECT 1 FROM sync_requests
                         WHERE dataset_id = $1 AND reason = 'delete' AND dispatched_at IS NULL) AS "waiting!""#,
                    dataset_id,
                )
                .fetch_one(&mut *tx)
                .await?;
                if waiting {
                    return Ok(DeleteRequest::AlreadyDeleting);
                }
            }
            Some(_) => {}
        }
        sqlx::query!(
            "UPDATE datasets SET sync_status = 'deleting', sync_step = NULL, sync_attempt = NULL,
               sync_max_attempts = NULL, sync_next_retry_at = NULL, sync_error = NULL
             WHERE id = $1",
            dataset_id,
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query!(
            "DELETE FROM sync_requests WHERE dataset_id = $1 AND dispatched_at IS NULL",
            dataset_id,
        )
        .execute(&mut *tx)
        .await?;
        let id = Uuid::new_v4();
        sqlx::query!(
            "INSERT INTO sync_requests (id, tenant_id, dataset_id, reason) VALUES ($1, $2, $3, $4)",
            id,
            tenant_id,
            dataset_id,
            SyncReason::Delete as SyncReason,
        )
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(DeleteRequest::Requested(id))
    }

    /// The tenant of a dataset that is `deleting`; `None` when the row is
    /// gone (a replayed delete) or not being deleted.
    pub async fn load_deletion(&self, dataset_id: Uuid) -> Result<Option<Uuid>, sqlx::Error> {
        sqlx::query_scalar!(
            "SELECT tenant_id FROM datasets WHERE id = $1 AND sync_status = 'deleting'",
            dataset_id,
        )
        .fetch_optional(&self.db)
        .await
    }

    /// The lakehouse clean-up failed: why, and when it runs again (`None`:
    /// not by itself; deleting again retries it).
    pub async fn delete_failed(
        &self,
        dataset_id: Uuid,
        error: &str,
        attempt: u32,
        next_retry_at: Option<OffsetDateTime>,
    ) -> Result<(), sqlx::Error> {
        sqlx::query!(
            "UPDATE datasets SET sync_error = $2, sync_attempt = $3, sync_next_retry_at = $4
             WHERE id = $1 AND sync_status = 'deleting'",
            dataset_id,
            error,
            i32::try_from(attempt).unwrap_or(i32::MAX),
            next_retry_at,
        )
        .execute(&self.db)
        .await?;
        Ok(())
    }

    /// The last step: the row goes (with its timeline and requests).
    pub async fn finish_delete(&self, dataset_id: Uuid) -> Result<bool, sqlx::Error> {
        let deleted = sqlx::query!(
            "DELETE FROM datasets WHERE id = $1 AND sync_status = 'deleting'",
            dataset_id,
        )
        .execute(&self.db)
        .await?
        .rows_affected();
        Ok(deleted == 1)
    }

    /// Without a lakehouse sync there is nothing to clean up there: the row
    /// goes at once. Returns whether it existed.
    pub async fn delete_now(&self, tenant_id: Uuid, dataset_id: Uuid) -> Result<bool, sqlx::Error> {
        let deleted = sqlx::query!(
            "DELETE FROM datasets WHERE tenant_id = $1 AND id = $2",
            tenant_id,
            dataset_id,
        )
        .execute(&self.db)
        .await?
        .rows_affected();
        Ok(deleted == 1)
    }
}

impl SyncControl for Ledger {
    fn request_resync(
        &self,
        tenant_id: Uuid,
        dataset_id: Uuid,
    ) -> BoxFuture<'_, Result<ResyncOutcome, sqlx::Error>> {
        Box::pin(Ledger::request_resync(self, tenant_id, dataset_id))
    }

    fn request_bulk_sync(&self, tenant_id: Uuid) -> BoxFuture<'_, Result<u64, sqlx::Error>> {
        Box::pin(Ledger::request_bulk_sync(self, tenant_id))
    }
}

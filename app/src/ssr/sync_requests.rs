//! The sync outbox in Postgres: a request row is written in the same
//! transaction as the change that asks for a sync (a new dataset, a manual
//! retry, a bulk sync), so a request is never lost; the server's dispatcher
//! hands each one to Restate until Restate accepts it.

use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

/// Why a sync was requested (stored in `sync_requests.reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncReason {
    Upload,
    Retry,
    Bulk,
}

impl SyncReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Upload => "upload",
            Self::Retry => "retry",
            Self::Bulk => "bulk",
        }
    }
}

/// Whether the deployment syncs at all, and whether uploads sync by themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SyncMode {
    /// Sync is enabled and an MCP server is configured: retry and bulk sync work.
    pub available: bool,
    /// New uploads are queued for sync (`DATABRICKS_AUTO_SYNC`).
    pub auto: bool,
}

/// Adds a sync request for `dataset_id` inside `tx`; returns its id, which is
/// also the Restate idempotency key.
pub async fn enqueue(
    tx: &mut Transaction<'_, Postgres>,
    tenant_id: Uuid,
    dataset_id: Uuid,
    reason: SyncReason,
) -> Result<Uuid, sqlx::Error> {
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO sync_requests (id, tenant_id, dataset_id, reason) VALUES ($1, $2, $3, $4)",
    )
    .bind(id)
    .bind(tenant_id)
    .bind(dataset_id)
    .bind(reason.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(id)
}

/// The answer to a manual retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResyncOutcome {
    /// A new request is stored; the dataset is `pending` again.
    Requested(Uuid),
    /// The dataset is already waiting for or running a sync.
    AlreadyInProgress,
    NotFound,
}

/// Requests a fresh sync of one dataset (a manual retry or a re-sync).
pub async fn request_resync(
    db: &PgPool,
    tenant_id: Uuid,
    dataset_id: Uuid,
) -> Result<ResyncOutcome, sqlx::Error> {
    let mut tx = db.begin().await?;
    let status: Option<String> = sqlx::query_scalar(
        "SELECT sync_status::text FROM datasets WHERE tenant_id = $1 AND id = $2 FOR UPDATE",
    )
    .bind(tenant_id)
    .bind(dataset_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(status) = status else {
        return Ok(ResyncOutcome::NotFound);
    };
    // A sync is already underway; a new request would only queue behind it.
    if matches!(
        status.as_str(),
        "pending" | "queued" | "syncing" | "retrying"
    ) {
        return Ok(ResyncOutcome::AlreadyInProgress);
    }
    mark_pending(&mut tx, tenant_id, &[dataset_id]).await?;
    let id = enqueue(&mut tx, tenant_id, dataset_id, SyncReason::Retry).await?;
    tx.commit().await?;
    Ok(ResyncOutcome::Requested(id))
}

/// Requests a sync of every dataset of the tenant that is not synced and not
/// already on its way (`local_only` or `failed`); returns how many.
pub async fn request_bulk_sync(db: &PgPool, tenant_id: Uuid) -> Result<u64, sqlx::Error> {
    let mut tx = db.begin().await?;
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT id FROM datasets
         WHERE tenant_id = $1 AND sync_status IN ('local_only', 'failed')
         ORDER BY created_at
         FOR UPDATE",
    )
    .bind(tenant_id)
    .fetch_all(&mut *tx)
    .await?;
    mark_pending(&mut tx, tenant_id, &ids).await?;
    sqlx::query(
        "INSERT INTO sync_requests (id, tenant_id, dataset_id, reason)
         SELECT gen_random_uuid(), $1, d, 'bulk' FROM unnest($2::uuid[]) AS d",
    )
    .bind(tenant_id)
    .bind(&ids)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(ids.len() as u64)
}

async fn mark_pending(
    tx: &mut Transaction<'_, Postgres>,
    tenant_id: Uuid,
    ids: &[Uuid],
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE datasets SET
           sync_status = 'pending', sync_step = NULL, sync_attempt = NULL,
           sync_max_attempts = NULL, sync_next_retry_at = NULL, sync_error = NULL,
           metadata = metadata || jsonb_build_object(
             'databricks_enabled', true, 'sync_status', 'pending', 'last_error', NULL)
         WHERE tenant_id = $1 AND id = ANY($2)",
    )
    .bind(tenant_id)
    .bind(ids)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

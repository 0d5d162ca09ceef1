//! The dataset catalogue in Postgres. Every query takes the tenant explicitly.

use crate::{
    domain::{DatasetName, SyncStatus},
    model::{ColumnSchema, DatasetSummary, SyncEvent, SyncState},
};
use sqlx::{types::Json, FromRow, PgPool, Postgres, Transaction};
use uuid::Uuid;

/// The slug of the tenant that exists until accounts do.
pub const DEFAULT_TENANT_SLUG: &str = "default";

/// Creates the default tenant on first start and returns its id.
pub async fn ensure_default_tenant(db: &PgPool) -> Result<Uuid, sqlx::Error> {
    let id = sqlx::query_scalar!(
        r#"INSERT INTO tenants (id, slug, name) VALUES ($1, $2, 'Default')
           ON CONFLICT (slug) DO UPDATE SET slug = EXCLUDED.slug
           RETURNING id"#,
        Uuid::new_v4(),
        DEFAULT_TENANT_SLUG,
    )
    .fetch_one(db)
    .await?;
    Ok(id)
}

/// A dataset whose Parquet file is already in place.
pub struct NewDataset<'a> {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub name: &'a DatasetName,
    pub file_name: &'a str,
    pub source_format: &'a str,
    pub schema: &'a [ColumnSchema],
    pub row_count: i64,
    pub size_bytes: i64,
    pub sync_status: SyncStatus,
    pub metadata: serde_json::Value,
}

/// RFC 3339 in UTC with milliseconds, as every timestamp the app shows.
macro_rules! rfc3339 {
    ($col:literal) => {
        concat!(
            "to_char(",
            $col,
            " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
        )
    };
}

/// The columns of a [`DatasetSummary`] (with its [`SyncState`]).
const SUMMARY_COLUMNS: &str = concat!(
    "id, name, file_name, source_format, row_count, size_bytes,
     jsonb_array_length(schema)::bigint AS column_count,
     sync_status, sync_step, sync_attempt, sync_max_attempts,
     metadata->>'bronze_table' AS bronze_table, metadata->>'silver_table' AS silver_table,
     sync_error, ",
    rfc3339!("sync_next_retry_at"),
    " AS next_retry_at, ",
    rfc3339!("last_sync_at"),
    " AS last_sync_at, ",
    rfc3339!("created_at"),
    " AS created_at"
);

#[derive(FromRow)]
struct SummaryRow {
    id: Uuid,
    name: String,
    file_name: String,
    source_format: String,
    row_count: i64,
    size_bytes: i64,
    column_count: i64,
    sync_status: SyncStatus,
    sync_step: Option<String>,
    sync_attempt: Option<i32>,
    sync_max_attempts: Option<i32>,
    bronze_table: Option<String>,
    silver_table: Option<String>,
    sync_error: Option<String>,
    next_retry_at: Option<String>,
    last_sync_at: Option<String>,
    created_at: String,
}

impl From<SummaryRow> for DatasetSummary {
    fn from(r: SummaryRow) -> Self {
        DatasetSummary {
            id: r.id,
            name: r.name,
            file_name: r.file_name,
            source_format: r.source_format,
            row_count: r.row_count,
            column_count: r.column_count,
            size_bytes: r.size_bytes,
            sync: SyncState {
                dataset_id: r.id,
                status: r.sync_status,
                step: r.sync_step,
                attempt: r.sync_attempt,
                max_attempts: r.sync_max_attempts,
                next_retry_at: r.next_retry_at,
                error: r.sync_error,
                bronze_table: r.bronze_table,
                silver_table: r.silver_table,
                last_sync_at: r.last_sync_at,
            },
            created_at: r.created_at,
        }
    }
}

pub async fn insert_dataset(
    tx: &mut Transaction<'_, Postgres>,
    new: &NewDataset<'_>,
) -> Result<DatasetSummary, sqlx::Error> {
    let row: SummaryRow = sqlx::query_as(&format!(
        "INSERT INTO datasets
           (id, tenant_id, name, file_name, source_format, schema, row_count, size_bytes,
            metadata, sync_status)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         RETURNING {SUMMARY_COLUMNS}"
    ))
    .bind(new.id)
    .bind(new.tenant_id)
    .bind(new.name.as_str())
    .bind(new.file_name)
    .bind(new.source_format)
    .bind(Json(new.schema))
    .bind(new.row_count)
    .bind(new.size_bytes)
    .bind(&new.metadata)
    .bind(new.sync_status)
    .fetch_one(&mut **tx)
    .await?;
    Ok(row.into())
}

/// The tenant's datasets, newest first.
pub async fn list_datasets(
    db: &PgPool,
    tenant_id: Uuid,
) -> Result<Vec<DatasetSummary>, sqlx::Error> {
    let rows: Vec<SummaryRow> = sqlx::query_as(&format!(
        "SELECT {SUMMARY_COLUMNS} FROM datasets
         WHERE tenant_id = $1
         ORDER BY created_at DESC, id DESC"
    ))
    .bind(tenant_id)
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// One dataset of the tenant with its schema, if it exists.
pub async fn find_dataset(
    db: &PgPool,
    tenant_id: Uuid,
    id: Uuid,
) -> Result<Option<(DatasetSummary, Vec<ColumnSchema>)>, sqlx::Error> {
    #[derive(FromRow)]
    struct Row {
        #[sqlx(flatten)]
        summary: SummaryRow,
        schema: Json<Vec<ColumnSchema>>,
    }
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT {SUMMARY_COLUMNS}, schema FROM datasets WHERE tenant_id = $1 AND id = $2"
    ))
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| (r.summary.into(), r.schema.0)))
}

/// The sync state of one dataset of the tenant (or of any tenant, for the
/// live-event fan-out, which learns the tenant from the row).
pub async fn sync_state(db: &PgPool, id: Uuid) -> Result<Option<(Uuid, SyncState)>, sqlx::Error> {
    #[derive(FromRow)]
    struct Row {
        tenant_id: Uuid,
        #[sqlx(flatten)]
        summary: SummaryRow,
    }
    let row: Option<Row> = sqlx::query_as(&format!(
        "SELECT tenant_id, {SUMMARY_COLUMNS} FROM datasets WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| (r.tenant_id, DatasetSummary::from(r.summary).sync)))
}

/// Datasets (of every tenant) whose row changed at or after `since`, with
/// their tenant: what a live-event listener re-reads after a gap.
pub async fn sync_states_changed_since(
    db: &PgPool,
    since: time::OffsetDateTime,
) -> Result<Vec<(Uuid, SyncState)>, sqlx::Error> {
    #[derive(FromRow)]
    struct Row {
        tenant_id: Uuid,
        #[sqlx(flatten)]
        summary: SummaryRow,
    }
    let rows: Vec<Row> = sqlx::query_as(&format!(
        "SELECT tenant_id, {SUMMARY_COLUMNS} FROM datasets WHERE updated_at >= $1"
    ))
    .bind(since)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.tenant_id, DatasetSummary::from(r.summary).sync))
        .collect())
}

/// A dataset's sync timeline, oldest first.
pub async fn sync_events(
    db: &PgPool,
    tenant_id: Uuid,
    dataset_id: Uuid,
) -> Result<Vec<SyncEvent>, sqlx::Error> {
    #[derive(FromRow)]
    struct Row {
        id: i64,
        request_id: Uuid,
        step: String,
        attempt: i32,
        max_attempts: i32,
        outcome: String,
        started_at: String,
        finished_at: Option<String>,
        duration_ms: Option<i64>,
        next_retry_at: Option<String>,
        error: Option<String>,
    }
    let rows: Vec<Row> = sqlx::query_as(concat!(
        "SELECT id, request_id, step, attempt, max_attempts, outcome, ",
        rfc3339!("started_at"),
        " AS started_at, ",
        rfc3339!("finished_at"),
        " AS finished_at,
         (EXTRACT(EPOCH FROM (finished_at - started_at)) * 1000)::bigint AS duration_ms, ",
        rfc3339!("next_retry_at"),
        " AS next_retry_at, error
         FROM sync_events WHERE tenant_id = $1 AND dataset_id = $2
         ORDER BY started_at, id"
    ))
    .bind(tenant_id)
    .bind(dataset_id)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| SyncEvent {
            id: r.id,
            request_id: r.request_id,
            step: r.step,
            attempt: r.attempt,
            max_attempts: r.max_attempts,
            outcome: r.outcome,
            started_at: r.started_at,
            finished_at: r.finished_at,
            duration_ms: r.duration_ms,
            next_retry_at: r.next_retry_at,
            error: r.error,
        })
        .collect())
}

//! The write side of the dataset catalogue: tenants and new dataset rows.
//! (Reads live in [`app::ssr::catalog`]; sync status belongs to the ledger.)

use app::{
    domain::{DatasetName, SyncStatus},
    model::{ColumnSchema, DatasetSummary},
    ssr::catalog::SummaryRecord,
};
use sqlx::{types::Json, PgPool, Postgres, Transaction};
use uuid::Uuid;

/// The slug of the tenant that exists until accounts do.
pub const DEFAULT_TENANT_SLUG: &str = "default";

/// Creates the default tenant on first start and returns its id.
pub async fn ensure_default_tenant(db: &PgPool) -> Result<Uuid, sqlx::Error> {
    sqlx::query_scalar!(
        r#"INSERT INTO tenants (id, slug, name) VALUES ($1, $2, 'Default')
           ON CONFLICT (slug) DO UPDATE SET slug = EXCLUDED.slug
           RETURNING id"#,
        Uuid::new_v4(),
        DEFAULT_TENANT_SLUG,
    )
    .fetch_one(db)
    .await
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
    /// `pending` or `local_only` ([`crate::sync::ledger::SyncMode::initial_status`]).
    pub sync_status: SyncStatus,
    /// The user who uploaded it (version 1's uploader).
    pub uploaded_by: Option<Uuid>,
    /// The client's `Idempotency-Key`, if it sent one.
    pub upload_key: Option<&'a str>,
}

/// Inserts the row inside `tx` and returns it as the pages show it.
pub async fn insert_dataset(
    tx: &mut Transaction<'_, Postgres>,
    new: &NewDataset<'_>,
) -> Result<DatasetSummary, sqlx::Error> {
    sqlx::query!(
        "INSERT INTO datasets
           (id, tenant_id, name, file_name, source_format, schema, row_count, size_bytes, sync_status,
            upload_key)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        new.id,
        new.tenant_id,
        new.name.as_str(),
        new.file_name,
        new.source_format,
        Json(new.schema) as _,
        new.row_count,
        new.size_bytes,
        new.sync_status as SyncStatus,
        new.upload_key,
    )
    .execute(&mut **tx)
    .await?;
    sqlx::query!(
        "INSERT INTO dataset_versions
           (dataset_id, version, tenant_id, mode, file_name, source_format, schema, row_count,
            size_bytes, uploaded_by)
         VALUES ($1, 1, $2, 'initial', $3, $4, $5, $6, $7, $8)",
        new.id,
        new.tenant_id,
        new.file_name,
        new.source_format,
        Json(new.schema) as _,
        new.row_count,
        new.size_bytes,
        new.uploaded_by,
    )
    .execute(&mut **tx)
    .await?;
    let row = sqlx::query_scalar!(
        r#"SELECT s AS "s!: SummaryRecord" FROM dataset_summaries s WHERE s.id = $1"#,
        new.id,
    )
    .fetch_one(&mut **tx)
    .await?;
    Ok(row.into())
}

/// The dataset a tenant's earlier upload with this `Idempotency-Key` made.
pub async fn find_by_upload_key(
    db: &PgPool,
    tenant_id: Uuid,
    key: &str,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar!(
        "SELECT id FROM datasets WHERE tenant_id = $1 AND upload_key = $2",
        tenant_id,
        key,
    )
    .fetch_optional(db)
    .await
}

/// Whether `e` is the unique violation of a repeated `Idempotency-Key`.
pub fn is_upload_key_conflict(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.constraint() == Some("datasets_upload_key"))
}

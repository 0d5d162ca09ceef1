//! The dataset catalogue in Postgres. Every query takes the tenant explicitly.

use crate::{
    domain::{DatasetName, SyncStatus},
    model::{ColumnSchema, DatasetSummary},
};
use sqlx::{types::Json, PgPool, Postgres, Transaction};
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

pub async fn insert_dataset(
    tx: &mut Transaction<'_, Postgres>,
    new: &NewDataset<'_>,
) -> Result<DatasetSummary, sqlx::Error> {
    sqlx::query_as!(
        DatasetSummary,
        r#"INSERT INTO datasets
             (id, tenant_id, name, file_name, source_format, schema, row_count, size_bytes,
              metadata, sync_status)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
           RETURNING id, name, file_name, source_format, row_count, size_bytes,
             jsonb_array_length(schema)::bigint AS "column_count!",
             sync_status AS "sync_status: SyncStatus",
             to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS "created_at!""#,
        new.id,
        new.tenant_id,
        new.name.as_str(),
        new.file_name,
        new.source_format,
        Json(new.schema) as _,
        new.row_count,
        new.size_bytes,
        new.metadata,
        new.sync_status as SyncStatus,
    )
    .fetch_one(&mut **tx)
    .await
}

/// The tenant's datasets, newest first.
pub async fn list_datasets(
    db: &PgPool,
    tenant_id: Uuid,
) -> Result<Vec<DatasetSummary>, sqlx::Error> {
    sqlx::query_as!(
        DatasetSummary,
        r#"SELECT id, name, file_name, source_format, row_count, size_bytes,
             jsonb_array_length(schema)::bigint AS "column_count!",
             sync_status AS "sync_status: SyncStatus",
             to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS "created_at!"
           FROM datasets
           WHERE tenant_id = $1
           ORDER BY created_at DESC, id DESC"#,
        tenant_id,
    )
    .fetch_all(db)
    .await
}

/// One dataset of the tenant with its schema, if it exists.
pub async fn find_dataset(
    db: &PgPool,
    tenant_id: Uuid,
    id: Uuid,
) -> Result<Option<(DatasetSummary, Vec<ColumnSchema>)>, sqlx::Error> {
    let row = sqlx::query!(
        r#"SELECT id, name, file_name, source_format, row_count, size_bytes,
             jsonb_array_length(schema)::bigint AS "column_count!",
             sync_status AS "sync_status: SyncStatus",
             to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS "created_at!",
             schema AS "schema: Json<Vec<ColumnSchema>>"
           FROM datasets
           WHERE tenant_id = $1 AND id = $2"#,
        tenant_id,
        id,
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| {
        (
            DatasetSummary {
                id: r.id,
                name: r.name,
                file_name: r.file_name,
                source_format: r.source_format,
                row_count: r.row_count,
                column_count: r.column_count,
                size_bytes: r.size_bytes,
                sync_status: r.sync_status,
                created_at: r.created_at,
            },
            r.schema.0,
        )
    }))
}

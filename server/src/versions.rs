//! New versions of a dataset: a file uploaded onto an existing dataset is
//! converted and *staged* first, so its uploader sees the schema difference
//! before choosing; then it is *committed* as the next version, replacing
//! the dataset's rows or appending to them.
//!
//! **Files** (all in `datasets/`, shared by every replica; see
//! [`crate::storage::StoredFile`]): the staged file; each version's own rows
//! (`<id>.v<n>.parquet`, which the sync stages in bronze); and the current
//! rows (`<id>.parquet`, which pages and queries read). A commit writes the
//! version's file and the next current file, commits the catalogue, then
//! renames the next file over the current one. A crash between the commit
//! and the rename is finished at start-up ([`crate::storage::reconcile`]);
//! files of a commit that did not happen are removed there too.
//!
//! **One commit at a time per dataset:** the dataset's row is locked for
//! the whole commit, across replicas.

use crate::{
    http::datasets::{convert_received, remove_quietly, Received, UploadError},
    state::ServerState,
    storage::Storage,
    sync::ledger::Ledger,
};
use app::{
    domain::{appended_schema, schema_diff, SyncStatus, VersionMode},
    model::{ColumnSchema, StagedVersion, VersionCommitted},
    ssr::{
        auth::Principal,
        catalog,
        sql::{quote_ident, quote_literal},
    },
};
use contract::PARQUET_OPTIONS;
use sqlx::types::Json;
use std::path::Path;
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum VersionError {
    #[error("the tenant has no such dataset")]
    NotFound,
    #[error("this dataset is being deleted")]
    Deleting,
    #[error("that staged file is gone (it expired, or a version was already made of it); upload it again")]
    StagedGone,
    #[error("the file cannot be appended: {}. Replace the dataset instead, or fix the file", .0.join("; "))]
    Incompatible(Vec<String>),
    #[error("something went wrong on our side; it has been logged")]
    Internal(#[source] anyhow::Error),
}

impl From<sqlx::Error> for VersionError {
    fn from(e: sqlx::Error) -> Self {
        Self::Internal(e.into())
    }
}

/// Converts the received file next to the tenant's dataset and records it
/// as staged: nothing about the dataset changes yet.
pub async fn stage(
    state: &ServerState,
    who: &Principal,
    dataset_id: Uuid,
    received: Received,
) -> Result<StagedVersion, UploadError> {
    let status = sqlx::query_scalar!(
        r#"SELECT sync_status AS "status: SyncStatus" FROM datasets WHERE id = $1 AND tenant_id = $2"#,
        dataset_id,
        who.tenant_id,
    )
    .fetch_optional(state.db())
    .await
    .map_err(|e| UploadError::Internal(e.into()))?;
    match status {
        None => return Err(UploadError::Version(VersionError::NotFound)),
        Some(s) if s.is_deleting() => return Err(UploadError::Version(VersionError::Deleting)),
        Some(_) => {}
    }
    let staged_id = Uuid::new_v4();
    let dest = state.storage.staged_path(dataset_id, staged_id);
    let size = received.file.size;
    let file_name = received.file_name.clone();
    let converted = convert_received(state, staged_id, received, &dest).await?;
    let inserted = sqlx::query!(
        "INSERT INTO staged_versions
           (id, tenant_id, dataset_id, file_name, source_format, schema, row_count, size_bytes,
            uploaded_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        staged_id,
        who.tenant_id,
        dataset_id,
        file_name,
        converted.format,
        Json(&converted.schema) as _,
        converted.row_count,
        i64::try_from(size).unwrap_or(i64::MAX),
        who.user_id,
    )
    .execute(state.db())
    .await;
    if let Err(e) = inserted {
        // Also when the dataset was deleted meanwhile (the foreign key).
        remove_quietly(&dest).await;
        return Err(UploadError::Internal(e.into()));
    }
    catalog::staged_version(state.db(), who.tenant_id, dataset_id, staged_id)
        .await
        .map_err(|e| UploadError::Internal(e.into()))?
        .ok_or(UploadError::Version(VersionError::Deleting))
}

/// Throws a staged file away (the uploader chose neither). Harmless when it
/// is gone already.
pub async fn discard(
    state: &ServerState,
    who: &Principal,
    dataset_id: Uuid,
    staged_id: Uuid,
) -> Result<(), VersionError> {
    let gone = sqlx::query!(
        "DELETE FROM staged_versions WHERE id = $1 AND dataset_id = $2 AND tenant_id = $3",
        staged_id,
        dataset_id,
        who.tenant_id,
    )
    .execute(state.db())
    .await?
    .rows_affected();
    if gone == 1 {
        remove_quietly(&state.storage.staged_path(dataset_id, staged_id)).await;
    }
    Ok(())
}

/// Makes the staged file the dataset's next version, by `mode`: `replace`
/// (the dataset becomes this file's rows, whatever its schema) or `append`
/// (its rows join the dataset's; refused with the columns that conflict).
/// A new sync is requested when uploads sync by themselves.
pub async fn commit(
    state: &ServerState,
    who: &Principal,
    dataset_id: Uuid,
    staged_id: Uuid,
    mode: VersionMode,
) -> Result<VersionCommitted, VersionError> {
    let mut tx = state.db().begin().await?;
    let dataset = sqlx::query!(
        r#"SELECT version, base_version, row_count, size_bytes,
                  sync_status AS "status: SyncStatus",
                  schema AS "schema!: Json<Vec<ColumnSchema>>"
           FROM datasets WHERE id = $1 AND tenant_id = $2 FOR UPDATE"#,
        dataset_id,
        who.tenant_id,
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(VersionError::NotFound)?;
    if dataset.status.is_deleting() {
        return Err(VersionError::Deleting);
    }
    let staged = sqlx::query!(
        r#"SELECT file_name, source_format, row_count, size_bytes, uploaded_by,
                  schema AS "schema!: Json<Vec<ColumnSchema>>"
           FROM staged_versions WHERE id = $1 AND dataset_id = $2 AND tenant_id = $3"#,
        staged_id,
        dataset_id,
        who.tenant_id,
    )
    .fetch_optional(&mut *tx)
    .await?
    .ok_or(VersionError::StagedGone)?;
    let current = dataset.schema.0;
    let diff = schema_diff(&current, &staged.schema.0);
    let (schema, row_count, size_bytes, base_version) = match mode {
        VersionMode::Append => {
            let conflicts = diff.append_conflicts();
            if !conflicts.is_empty() {
                return Err(VersionError::Incompatible(conflicts));
            }
            (
                appended_schema(&current, &staged.schema.0),
                dataset.row_count + staged.row_count,
                dataset.size_bytes.saturating_add(staged.size_bytes),
                dataset.base_version,
            )
        }
        VersionMode::Replace | VersionMode::Initial => (
            staged.schema.0.clone(),
            staged.row_count,
            staged.size_bytes,
            dataset.version + 1,
        ),
    };
    let version = dataset.version + 1;

    // The files first: the version's own rows and the next current rows.
    let storage = state.storage.clone();
    let plan = FilePlan {
        dataset_id,
        staged_id,
        version,
        mode,
        current: current.clone(),
        new: staged.schema.0.clone(),
        merged: schema.clone(),
    };
    let written = tokio::task::spawn_blocking(move || plan.write(&storage))
        .await
        .map_err(|e| VersionError::Internal(e.into()))?;
    if let Err(e) = written {
        // Nothing is committed: put the files back as they were.
        remove_quietly(&state.storage.next_path(dataset_id, version)).await;
        return Err(VersionError::Internal(e));
    }

    let initial = state.sync_mode.initial_status();
    sqlx::query!(
        "UPDATE datasets SET version = $2, base_version = $3, schema = $4, row_count = $5,
           size_bytes = $6, file_name = $7, source_format = $8, sync_status = $9,
           sync_step = NULL, sync_attempt = NULL, sync_max_attempts = NULL,
           sync_next_retry_at = NULL, sync_error = NULL
         WHERE id = $1",
        dataset_id,
        version,
        base_version,
        Json(&schema) as _,
        row_count,
        size_bytes,
        staged.file_name,
        staged.source_format,
        initial as SyncStatus,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!(
        "INSERT INTO dataset_versions
           (dataset_id, version, tenant_id, mode, file_name, source_format, schema, row_count,
            size_bytes, uploaded_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        dataset_id,
        version,
        who.tenant_id,
        mode as VersionMode,
        staged.file_name,
        staged.source_format,
        Json(&staged.schema.0) as _,
        staged.row_count,
        staged.size_bytes,
        staged.uploaded_by,
    )
    .execute(&mut *tx)
    .await?;
    sqlx::query!("DELETE FROM staged_versions WHERE id = $1", staged_id)
        .execute(&mut *tx)
        .await?;
    if state.sync_mode.auto {
        Ledger::request_upload_sync(&mut tx, who.tenant_id, dataset_id).await?;
    }
    if let Err(e) = tx.commit().await {
        // Whether it took effect is unknown: start-up reconciliation
        // finishes the rename if it did and removes the files if not.
        tracing::error!(error = %e, dataset = %dataset_id, version, "committing a new version failed");
        return Err(VersionError::Internal(e.into()));
    }
    let next = state.storage.next_path(dataset_id, version);
    match tokio::fs::rename(&next, state.storage.parquet_path(dataset_id)).await {
        // Another replica's start-up may have finished it first.
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            tracing::error!(error = %e, dataset = %dataset_id, version,
                "a new version is committed but its file could not be made current; start-up will finish it");
        }
        _ => {}
    }
    remove_quietly(&state.storage.staged_path(dataset_id, staged_id)).await;
    tracing::info!(dataset = %dataset_id, version, mode = mode.as_str(), rows = row_count,
        "new dataset version");
    let (dataset, _) = catalog::find_dataset(state.db(), who.tenant_id, dataset_id)
        .await?
        .ok_or(VersionError::NotFound)?;
    Ok(VersionCommitted {
        dataset,
        version,
        mode,
        diff,
    })
}

/// The files of one commit, written before the catalogue commits.
struct FilePlan {
    dataset_id: Uuid,
    staged_id: Uuid,
    version: i32,
    mode: VersionMode,
    current: Vec<ColumnSchema>,
    new: Vec<ColumnSchema>,
    merged: Vec<ColumnSchema>,
}

impl FilePlan {
    /// Blocking: call it from `spawn_blocking`.
    fn write(&self, storage: &Storage) -> anyhow::Result<()> {
        let id = self.dataset_id;
        let current_file = storage.parquet_path(id);
        // Version 1's rows live only in the current file until a second
        // version comes: keep them under their own name (a hard link, no copy).
        let first = storage.version_path(id, 1);
        if self.version == 2 && !first.exists() {
            link(&current_file, &first)?;
        }
        let staged = storage.staged_path(id, self.staged_id);
        let own = storage.version_path(id, self.version);
        let next = storage.next_path(id, self.version);
        let _ = std::fs::remove_file(&next);
        match self.mode {
            VersionMode::Append => {
                let conn = storage.connection()?;
                // The version's own rows, under the dataset's column names
                // (the same column may be spelled `Customer ID` in one
                // file and `customer_id` in the next).
                let renamed: Vec<String> = self
                    .new
                    .iter()
                    .map(|c| {
                        let target = self
                            .current
                            .iter()
                            .find(|d| d.normalized_name == c.normalized_name)
                            .map_or(&c.name, |d| &d.name);
                        format!("{} AS {}", quote_ident(&c.name), quote_ident(target))
                    })
                    .collect();
                let partial = own.with_extension("parquet.partial");
                conn.execute_batch(&format!(
                    "COPY (SELECT {} FROM read_parquet({})) TO {} ({PARQUET_OPTIONS})",
                    renamed.join(", "),
                    quote_literal(&staged.to_string_lossy()),
                    quote_literal(&partial.to_string_lossy()),
                ))?;
                std::fs::rename(&partial, &own)?;
                // The dataset's rows after it: every column cast to the
                // merged type; a column one side lacks is NULL there.
                let side = |file: &Path, has: &[ColumnSchema]| {
                    let cols: Vec<String> = self
                        .merged
                        .iter()
                        .map(|m| {
                            let name = quote_ident(&m.name);
                            if has.iter().any(|c| c.normalized_name == m.normalized_name) {
                                format!("CAST({name} AS {}) AS {name}", m.data_type)
                            } else {
                                format!("CAST(NULL AS {}) AS {name}", m.data_type)
                            }
                        })
                        .collect();
                    format!(
                        "SELECT {} FROM read_parquet({})",
                        cols.join(", "),
                        quote_literal(&file.to_string_lossy())
                    )
                };
                // In the new version's file the shared columns already carry
                // the dataset's names.
                let renamed_new: Vec<ColumnSchema> = self
                    .new
                    .iter()
                    .map(|c| {
                        self.merged
                            .iter()
                            .find(|m| m.normalized_name == c.normalized_name)
                            .cloned()
                            .unwrap_or_else(|| c.clone())
                    })
                    .collect();
                let partial = next.with_extension("parquet.partial");
                conn.execute_batch(&format!(
                    "COPY ({} UNION ALL {}) TO {} ({PARQUET_OPTIONS})",
                    side(&current_file, &self.current),
                    side(&own, &renamed_new),
                    quote_literal(&partial.to_string_lossy()),
                ))?;
                std::fs::rename(&partial, &next)?;
                let _ = std::fs::remove_file(&staged);
            }
            VersionMode::Replace | VersionMode::Initial => {
                std::fs::rename(&staged, &own)?;
                if let Err(e) = link(&own, &next) {
                    // Back to staged, so the choice can be made again.
                    let _ = std::fs::rename(&own, &staged);
                    return Err(e.into());
                }
            }
        }
        Ok(())
    }
}

/// A hard link, or a copy where the file system has none.
fn link(from: &Path, to: &Path) -> std::io::Result<()> {
    match std::fs::hard_link(from, to) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(_) => std::fs::copy(from, to).map(|_| ()),
    }
}

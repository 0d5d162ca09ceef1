//! Server functions. Each acts for the request's tenant, taken from `AppState`.

use crate::{
    error::AppError,
    model::{DatasetDetail, DatasetSummary},
};
use leptos::prelude::*;
use uuid::Uuid;

/// Rows shown in a dataset's preview.
pub const PREVIEW_ROWS: usize = 100;

/// The tenant's datasets, newest first.
#[server(endpoint = "list_datasets")]
pub async fn list_datasets() -> Result<Vec<DatasetSummary>, AppError> {
    use crate::ssr::{catalog, AppState};
    let state = expect_context::<AppState>();
    catalog::list_datasets(&state.db, state.tenant_id)
        .await
        .map_err(|e| AppError::internal("listing datasets failed", e))
}

/// One dataset with its schema, a preview of its first rows and column statistics.
#[server(endpoint = "get_dataset")]
pub async fn get_dataset(id: Uuid) -> Result<DatasetDetail, AppError> {
    use crate::ssr::{catalog, AppState, StorageError};
    let state = expect_context::<AppState>();
    let (summary, schema) = catalog::find_dataset(&state.db, state.tenant_id, id)
        .await
        .map_err(|e| AppError::internal("loading a dataset failed", e))?
        .ok_or(AppError::NotFound)?;

    let storage = state.storage.clone();
    let columns = schema.clone();
    let read = tokio::task::spawn_blocking(move || {
        let preview = storage.preview(id, &columns, PREVIEW_ROWS)?;
        let stats = storage.column_stats(id, &columns)?;
        Ok::<_, StorageError>((preview, stats))
    })
    .await
    .map_err(|e| AppError::internal("the preview task panicked", e))?;
    let (preview, stats) = match read {
        Ok(found) => found,
        Err(StorageError::Missing(_)) => return Err(AppError::DataFileMissing),
        Err(e) => return Err(AppError::internal("reading a dataset's Parquet failed", e)),
    };
    Ok(DatasetDetail {
        summary,
        schema,
        preview,
        stats,
    })
}

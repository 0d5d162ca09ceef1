//! Server functions. Each acts for the request's tenant, taken from `AppState`.

use crate::{
    error::AppError,
    model::{DatasetDetail, DatasetSummary, SyncDetail},
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

/// Syncs one dataset again (after `failed`, or to refresh a synced one).
#[server(endpoint = "retry_sync")]
pub async fn retry_sync(id: Uuid) -> Result<(), AppError> {
    use crate::ssr::{
        sync_requests::{request_resync, ResyncOutcome},
        AppState,
    };
    let state = expect_context::<AppState>();
    if !state.sync.available {
        return Err(AppError::SyncUnavailable);
    }
    match request_resync(&state.db, state.tenant_id, id)
        .await
        .map_err(|e| AppError::internal("requesting a sync failed", e))?
    {
        ResyncOutcome::Requested(request) => {
            tracing::info!(dataset = %id, %request, "sync requested");
            Ok(())
        }
        ResyncOutcome::AlreadyInProgress => Err(AppError::SyncInProgress),
        ResyncOutcome::NotFound => Err(AppError::NotFound),
    }
}

/// Requests a sync of every dataset that is `local_only` or `failed`; returns how many.
#[server(endpoint = "sync_all")]
pub async fn sync_all() -> Result<u64, AppError> {
    use crate::ssr::{sync_requests::request_bulk_sync, AppState};
    let state = expect_context::<AppState>();
    if !state.sync.available {
        return Err(AppError::SyncUnavailable);
    }
    let count = request_bulk_sync(&state.db, state.tenant_id)
        .await
        .map_err(|e| AppError::internal("requesting a bulk sync failed", e))?;
    tracing::info!(count, "bulk sync requested");
    Ok(count)
}

/// The dataset page's Sync section: current state and the timeline.
#[server(endpoint = "get_sync_detail")]
pub async fn get_sync_detail(id: Uuid) -> Result<SyncDetail, AppError> {
    use crate::ssr::{catalog, AppState};
    let state = expect_context::<AppState>();
    let (summary, _) = catalog::find_dataset(&state.db, state.tenant_id, id)
        .await
        .map_err(|e| AppError::internal("loading a dataset failed", e))?
        .ok_or(AppError::NotFound)?;
    let events = catalog::sync_events(&state.db, state.tenant_id, id)
        .await
        .map_err(|e| AppError::internal("loading the sync timeline failed", e))?;
    let catalog_explorer_url = match (&state.databricks_host, &summary.sync.silver_table) {
        (Some(host), Some(table)) => Some(format!(
            "{}/explore/data/{}",
            host.trim_end_matches('/'),
            table.replace('.', "/")
        )),
        _ => None,
    };
    Ok(SyncDetail {
        state: summary.sync,
        events,
        available: state.sync.available,
        catalog_explorer_url,
    })
}

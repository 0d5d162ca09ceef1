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
    use crate::{error::ResultExt, ssr::catalog};
    let state = expect_context::<crate::ssr::AppState>();
    catalog::list_datasets(&state.db, state.tenant_id)
        .await
        .context("listing datasets")
}

/// One dataset with its schema, a preview of its first rows and column statistics.
#[server(endpoint = "get_dataset")]
pub async fn get_dataset(id: Uuid) -> Result<DatasetDetail, AppError> {
    use crate::{
        error::ResultExt,
        ssr::{catalog, ReadError},
    };
    let state = expect_context::<crate::ssr::AppState>();
    let (summary, schema) = catalog::find_dataset(&state.db, state.tenant_id, id)
        .await
        .context("loading a dataset")?
        .ok_or(AppError::NotFound)?;

    let reader = state.reader.clone();
    let columns = schema.clone();
    let read = tokio::task::spawn_blocking(move || {
        let preview = reader.preview(id, &columns, PREVIEW_ROWS)?;
        let stats = reader.column_stats(id, &columns)?;
        Ok::<_, ReadError>((preview, stats))
    })
    .await
    .context("the preview task")?;
    let (preview, stats) = match read {
        Ok(found) => found,
        Err(ReadError::Missing(_)) => return Err(AppError::DataFileMissing),
        Err(e) => return Err(e).context("reading a dataset's Parquet"),
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
    use crate::{error::ResultExt, ssr::ResyncOutcome};
    let state = expect_context::<crate::ssr::AppState>();
    let sync = state.sync.as_ref().ok_or(AppError::SyncUnavailable)?;
    match sync
        .request_resync(state.tenant_id, id)
        .await
        .context("requesting a sync")?
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
    use crate::error::ResultExt;
    let state = expect_context::<crate::ssr::AppState>();
    let sync = state.sync.as_ref().ok_or(AppError::SyncUnavailable)?;
    let count = sync
        .request_bulk_sync(state.tenant_id)
        .await
        .context("requesting a bulk sync")?;
    tracing::info!(count, "bulk sync requested");
    Ok(count)
}

/// The dataset page's Sync section: current state and the timeline.
#[server(endpoint = "get_sync_detail")]
pub async fn get_sync_detail(id: Uuid) -> Result<SyncDetail, AppError> {
    use crate::{error::ResultExt, ssr::catalog};
    let state = expect_context::<crate::ssr::AppState>();
    let (summary, _) = catalog::find_dataset(&state.db, state.tenant_id, id)
        .await
        .context("loading a dataset")?
        .ok_or(AppError::NotFound)?;
    let events = catalog::sync_events(&state.db, state.tenant_id, id)
        .await
        .context("loading the sync timeline")?;
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
        available: state.sync.is_some(),
        catalog_explorer_url,
    })
}

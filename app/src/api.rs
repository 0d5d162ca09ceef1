//! Server functions. Each acts for the request's principal (its tenant and
//! user, [`crate::ssr::auth::principal`]): another tenant's dataset is not
//! found. Errors answer with their own HTTP status ([`AppError::status`]).

use crate::{
    error::AppError,
    model::{
        DatasetDetail, DatasetList, Me, QueryAnswer, QueryHistoryEntry, QueryTable, StagedVersion,
        SyncDetail, SyncMonitor, TeamPage, TokensPage,
    },
};
use leptos::prelude::*;
use uuid::Uuid;

/// Rows shown in a dataset's preview.
pub const PREVIEW_ROWS: usize = 100;

/// Datasets per page of the list.
pub const DATASETS_PER_PAGE: u32 = 50;

/// One page of the tenant's datasets: the first page, or the one after the
/// `after` token an earlier page gave (an unknown token starts from the
/// top). `q` narrows to names containing it (any case), `status` to one sync
/// status, `sort` orders by `date` (newest first, the default), `name` or
/// `size` (largest first).
#[server(endpoint = "list_datasets")]
pub async fn list_datasets(
    after: Option<String>,
    q: Option<String>,
    status: Option<String>,
    sort: Option<String>,
) -> Result<DatasetList, AppError> {
    use crate::{
        domain::SyncStatus,
        error::ResultExt,
        model::DatasetSort,
        ssr::catalog::{self, ListCursor, ListQuery},
    };
    crate::error::answer(
        async {
            let who = crate::ssr::auth::principal()?;
            let state = expect_context::<crate::ssr::AppState>();
            let sort = match sort.as_deref().filter(|s| !s.is_empty()) {
                None => DatasetSort::Date,
                Some(s) => DatasetSort::parse(s).ok_or_else(|| {
                    AppError::Invalid(format!("there is no order {s:?}; use date, name or size"))
                })?,
            };
            let status = match status.as_deref().filter(|s| !s.is_empty()) {
                None => None,
                Some(s) => Some(
                    SyncStatus::ALL
                        .iter()
                        .copied()
                        .find(|v| v.as_str() == s)
                        .ok_or_else(|| {
                            AppError::Invalid(format!("there is no sync status {s:?}"))
                        })?,
                ),
            };
            let search = q
                .map(|q| q.trim().to_owned())
                .filter(|q| !q.is_empty())
                .map(|q| q.chars().take(200).collect());
            let query = ListQuery {
                search,
                status,
                sort,
            };
            let after = after.as_deref().and_then(|t| ListCursor::parse(t, sort));
            let (datasets, next) = catalog::browse_datasets(
                &state.db,
                who.tenant_id,
                &query,
                after,
                DATASETS_PER_PAGE,
            )
            .await
            .context("listing datasets")?;
            Ok(DatasetList {
                datasets,
                next: next.map(|c| c.token()),
            })
        }
        .await,
    )
}

/// One dataset with its schema, a preview of its first rows and column statistics.
#[server(endpoint = "get_dataset")]
pub async fn get_dataset(id: Uuid) -> Result<DatasetDetail, AppError> {
    crate::error::answer(dataset_detail(id).await)
}

#[cfg(feature = "ssr")]
async fn dataset_detail(id: Uuid) -> Result<DatasetDetail, AppError> {
    use crate::{
        error::ResultExt,
        ssr::{catalog, ReadError},
    };
    let who = crate::ssr::auth::principal()?;
    let state = expect_context::<crate::ssr::AppState>();
    let (summary, schema) = catalog::find_dataset(&state.db, who.tenant_id, id)
        .await
        .context("loading a dataset")?
        .ok_or(AppError::NotFound)?;
    // Hidden from the moment deletion is asked for.
    if summary.sync.status.is_deleting() {
        return Err(AppError::Deleting);
    }

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
    let versions = catalog::dataset_versions(&state.db, who.tenant_id, id)
        .await
        .context("loading a dataset's versions")?;
    Ok(DatasetDetail {
        summary,
        schema,
        preview,
        stats,
        versions,
    })
}

/// A file uploaded onto a dataset and waiting for the choice between
/// replace and append, with its schema difference.
#[server(endpoint = "get_staged_version")]
pub async fn get_staged_version(
    dataset_id: Uuid,
    staged_id: Uuid,
) -> Result<StagedVersion, AppError> {
    use crate::{error::ResultExt, ssr::catalog};
    crate::error::answer(
        async {
            let who = crate::ssr::auth::principal()?;
            let state = expect_context::<crate::ssr::AppState>();
            catalog::staged_version(&state.db, who.tenant_id, dataset_id, staged_id)
                .await
                .context("loading a staged version")?
                .ok_or(AppError::NotFound)
        }
        .await,
    )
}

/// Syncs one dataset again (after `failed`, or to refresh a synced one).
#[server(endpoint = "retry_sync")]
pub async fn retry_sync(id: Uuid) -> Result<(), AppError> {
    crate::error::answer(resync(id).await)
}

#[cfg(feature = "ssr")]
async fn resync(id: Uuid) -> Result<(), AppError> {
    use crate::{
        error::ResultExt,
        ssr::{catalog, ResyncOutcome},
    };
    let who = crate::ssr::auth::principal()?;
    let state = expect_context::<crate::ssr::AppState>();
    // Another tenant's dataset is not found, whether or not sync is on.
    catalog::find_dataset(&state.db, who.tenant_id, id)
        .await
        .context("loading a dataset")?
        .ok_or(AppError::NotFound)?;
    let sync = state.sync.as_ref().ok_or(AppError::SyncUnavailable)?;
    match sync
        .request_resync(who.tenant_id, id)
        .await
        .context("requesting a sync")?
    {
        ResyncOutcome::Requested(request) => {
            tracing::info!(dataset = %id, %request, "sync requested");
            Ok(())
        }
        ResyncOutcome::AlreadyInProgress => Err(AppError::SyncInProgress),
        ResyncOutcome::Deleting => Err(AppError::Deleting),
        ResyncOutcome::NotFound => Err(AppError::NotFound),
    }
}

/// Deletes a dataset: hidden at once, then its lakehouse tables and files,
/// its local file and its row go (in the background when sync is on). A
/// form post without JavaScript is sent back to the list.
#[server(endpoint = "delete_dataset")]
pub async fn delete_dataset(id: Uuid) -> Result<(), AppError> {
    use crate::{error::ResultExt, ssr::DeleteOutcome};
    crate::error::answer(
        async {
            let who = crate::ssr::auth::principal()?;
            let state = expect_context::<crate::ssr::AppState>();
            match state
                .removal
                .delete(who.tenant_id, id)
                .await
                .context("deleting a dataset")?
            {
                DeleteOutcome::Deleting | DeleteOutcome::Deleted => {
                    tracing::info!(dataset = %id, user = %who.user_id, "dataset deletion requested");
                    // A form post without JavaScript lands on the list
                    // (302); a script or the hydrated page gets 200.
                    leptos_axum::redirect("/");
                    Ok(())
                }
                DeleteOutcome::NotFound => Err(AppError::NotFound),
            }
        }
        .await,
    )
}

/// The tenant's datasets as tables of the query page.
#[server(endpoint = "query_tables")]
pub async fn query_tables() -> Result<Vec<QueryTable>, AppError> {
    use crate::{error::ResultExt, ssr::catalog};
    crate::error::answer(
        async {
            let who = crate::ssr::auth::principal()?;
            let state = expect_context::<crate::ssr::AppState>();
            let datasets = catalog::query_datasets(&state.db, who.tenant_id)
                .await
                .context("listing the query tables")?;
            Ok(crate::ssr::query::query_tables(datasets, &state.reader)
                .into_iter()
                .map(|(t, _)| t)
                .collect())
        }
        .await,
    )
}

/// The signed-in user's latest queries on the query page, newest first.
#[server(endpoint = "query_history")]
pub async fn query_history() -> Result<Vec<QueryHistoryEntry>, AppError> {
    use crate::{error::ResultExt, ssr::catalog};
    crate::error::answer(
        async {
            let who = crate::ssr::auth::principal()?;
            let state = expect_context::<crate::ssr::AppState>();
            catalog::query_history(&state.db, who.user_id)
                .await
                .context("reading the query history")
        }
        .await,
    )
}

/// Runs one read-only query over the tenant's datasets: `engine` is `auto`,
/// `local` or `lakehouse`. The answer says which engine ran it and why.
#[server(endpoint = "run_query")]
pub async fn run_query(sql: String, engine: String) -> Result<QueryAnswer, AppError> {
    crate::error::answer(query(sql, engine).await)
}

#[cfg(feature = "ssr")]
async fn query(sql: String, engine: String) -> Result<QueryAnswer, AppError> {
    use crate::{
        error::ResultExt,
        model::QueryEngine,
        ssr::{
            catalog,
            query::{route, QueryError, RouteError},
        },
    };
    let who = crate::ssr::auth::principal()?;
    let state = expect_context::<crate::ssr::AppState>();
    let engine = QueryEngine::parse(&engine).ok_or_else(|| {
        AppError::Query(format!(
            "there is no engine {engine:?}; choose auto, local or lakehouse"
        ))
    })?;
    if sql.trim().is_empty() {
        return Err(AppError::Query("write a query first".to_owned()));
    }
    if sql.len() > 100_000 {
        return Err(AppError::Query(
            "the query is longer than 100,000 bytes".to_owned(),
        ));
    }
    let datasets = catalog::query_datasets(&state.db, who.tenant_id)
        .await
        .context("listing the query tables")?;
    let tables = crate::ssr::query::query_tables(datasets, &state.reader);
    let sha = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        sql.hash(&mut h);
        h.finish()
    };
    let outcome = route(
        tables,
        sql.clone(),
        engine,
        state.query_limits.clone(),
        state.lakehouse.clone(),
        who.tenant_id,
    )
    .await;
    match &outcome {
        Ok(a) => tracing::info!(target: "audit", tenant = %who.tenant_id, user = %who.user_id,
            sql_hash = format!("{sha:016x}"), engine = a.engine.as_str(), rows = a.rows.len(),
            elapsed_ms = a.elapsed_ms, "page query"),
        Err(e) => tracing::info!(target: "audit", tenant = %who.tenant_id, user = %who.user_id,
            sql_hash = format!("{sha:016x}"), error = %e, "page query refused or failed"),
    }
    let shown = outcome.as_ref().map_err(ToString::to_string);
    if let Err(e) = catalog::record_query(
        &state.db,
        who.tenant_id,
        who.user_id,
        &sql,
        engine,
        shown.as_ref().copied().map_err(String::as_str),
    )
    .await
    {
        // The answer matters more than its history line.
        tracing::warn!(error = %e, "could not record a query in the history");
    }
    outcome.map_err(|e| match e {
        RouteError::Local(QueryError::Busy | QueryError::Unavailable)
        | RouteError::NoLakehouse
        | RouteError::Lakehouse(_) => AppError::QueryUnavailable(e.to_string()),
        other => AppError::Query(other.to_string()),
    })
}

/// Requests a sync of every dataset that is `local_only` or `failed`; returns how many.
#[server(endpoint = "sync_all")]
pub async fn sync_all() -> Result<u64, AppError> {
    use crate::error::ResultExt;
    crate::error::answer(
        async {
            let who = crate::ssr::auth::principal()?;
            let state = expect_context::<crate::ssr::AppState>();
            let sync = state.sync.as_ref().ok_or(AppError::SyncUnavailable)?;
            let count = sync
                .request_bulk_sync(who.tenant_id)
                .await
                .context("requesting a bulk sync")?;
            tracing::info!(count, tenant = %who.tenant_id, "bulk sync requested");
            Ok(count)
        }
        .await,
    )
}

/// The tenant's sync monitoring figures over `window` (`1h`, `24h`, the
/// default, or `7d`).
#[server(endpoint = "sync_monitor")]
pub async fn get_sync_monitor(window: Option<String>) -> Result<SyncMonitor, AppError> {
    use crate::{error::ResultExt, model::MonitorWindow};
    crate::error::answer(
        async {
            let window = match window.as_deref().filter(|w| !w.is_empty()) {
                None => MonitorWindow::default(),
                Some(w) => MonitorWindow::parse(w).ok_or_else(|| {
                    AppError::Invalid(format!("unknown window {w:?}: use 1h, 24h or 7d"))
                })?,
            };
            let who = crate::ssr::auth::principal()?;
            let state = expect_context::<crate::ssr::AppState>();
            crate::ssr::monitor::sync_monitor(&state.db, who.tenant_id, window)
                .await
                .context("reading the sync monitoring figures")
        }
        .await,
    )
}

/// The dataset page's Sync section: current state and the timeline.
#[server(endpoint = "get_sync_detail")]
pub async fn get_sync_detail(id: Uuid) -> Result<SyncDetail, AppError> {
    crate::error::answer(sync_detail(id).await)
}

#[cfg(feature = "ssr")]
async fn sync_detail(id: Uuid) -> Result<SyncDetail, AppError> {
    use crate::{error::ResultExt, ssr::catalog};
    let who = crate::ssr::auth::principal()?;
    let state = expect_context::<crate::ssr::AppState>();
    let (summary, _) = catalog::find_dataset(&state.db, who.tenant_id, id)
        .await
        .context("loading a dataset")?
        .ok_or(AppError::NotFound)?;
    let events = catalog::sync_events(&state.db, who.tenant_id, id)
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

/// The signed-in user (the header's menu); `None` when nobody is.
#[server(endpoint = "current_user")]
pub async fn current_user() -> Result<Option<Me>, AppError> {
    use crate::{error::ResultExt, ssr::account};
    // The 404 fallback renders the shell outside the app's routes, without
    // the app's state: then the menu is simply not shown.
    let (Ok(who), Some(state)) = (
        crate::ssr::auth::principal(),
        use_context::<crate::ssr::AppState>(),
    ) else {
        return Ok(None);
    };
    crate::error::answer(
        account::me(&state.db, who.user_id)
            .await
            .context("loading the user"),
    )
}

/// The Settings page: the user's personal access tokens, and the secret of
/// the one just created.
#[server(endpoint = "personal_tokens")]
pub async fn personal_tokens() -> Result<TokensPage, AppError> {
    crate::error::answer(tokens_page(crate::domain::TokenKind::Personal).await)
}

/// The Connect-an-assistant page: the user's MCP tokens, the secret of the
/// one just created, and the MCP server's URL.
#[server(endpoint = "assistant_tokens")]
pub async fn assistant_tokens() -> Result<TokensPage, AppError> {
    crate::error::answer(tokens_page(crate::domain::TokenKind::Mcp).await)
}

#[cfg(feature = "ssr")]
async fn tokens_page(kind: crate::domain::TokenKind) -> Result<TokensPage, AppError> {
    use crate::{
        domain::TokenKind,
        error::ResultExt,
        ssr::{account, auth},
    };
    let who = auth::principal()?;
    let state = expect_context::<crate::ssr::AppState>();
    let tokens = account::tokens(&state.db, who.user_id, kind)
        .await
        .context("listing tokens")?;
    Ok(TokensPage {
        tokens,
        new_secret: auth::take_flash(kind.as_str()).await,
        mcp_url: (kind == TokenKind::Mcp)
            .then(|| state.mcp_public_url.clone())
            .flatten(),
    })
}

/// The Team page (admins): members, invitations, and the link just created.
#[server(endpoint = "team")]
pub async fn team() -> Result<TeamPage, AppError> {
    crate::error::answer(team_page().await)
}

#[cfg(feature = "ssr")]
async fn team_page() -> Result<TeamPage, AppError> {
    use crate::{
        error::ResultExt,
        ssr::{account, auth},
    };
    let who = auth::admin()?;
    let state = expect_context::<crate::ssr::AppState>();
    let me = account::me(&state.db, who.user_id)
        .await
        .context("loading the user")?
        .ok_or(AppError::Unauthorized)?;
    Ok(TeamPage {
        team: me.team,
        members: account::members(&state.db, who.tenant_id)
            .await
            .context("listing members")?,
        invitations: account::invitations(&state.db, who.tenant_id)
            .await
            .context("listing invitations")?,
        new_link: auth::take_flash("invitation").await,
    })
}

//! `GET /api/query/download?sql=…&format=csv|parquet`: the whole result of
//! one query-page query (no row cap), run by the local engine in its
//! sandbox, as a file. DuckDB writes the result to a scratch file in this
//! process's scratch space (its memory is the query's budget whatever the
//! size; the file is capped at `QUERY_MAX_DOWNLOAD_BYTES`), the file is
//! unlinked as soon as it is open, and its bytes stream to the client in
//! small chunks, so neither side holds the result in memory and nothing is
//! left on disk, even if the client goes away half-way.

use crate::state::ServerState;
use app::ssr::{
    auth::Principal,
    catalog,
    query::{export_isolated, query_tables, ExportFormat, QueryError},
};
use axum::{
    body::Body,
    extract::{Query, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Extension, Router,
};
use serde::Deserialize;
use uuid::Uuid;

pub fn router() -> Router<ServerState> {
    Router::new().route("/api/query/download", get(download))
}

#[derive(Debug, Deserialize)]
struct DownloadParams {
    sql: Option<String>,
    format: Option<String>,
}

/// Longest query text, in bytes (the page's own limit).
const MAX_SQL_BYTES: usize = 100_000;

async fn download(
    State(state): State<ServerState>,
    Extension(who): Extension<Principal>,
    Query(params): Query<DownloadParams>,
) -> Response {
    let asked = params.format.as_deref().unwrap_or("csv");
    let Some(format) = ExportFormat::parse(asked) else {
        return super::error_response(
            StatusCode::BAD_REQUEST,
            "invalid_format",
            format!("There is no download format {asked:?}; use csv or parquet."),
        );
    };
    let sql = params.sql.unwrap_or_default();
    if sql.trim().is_empty() {
        return super::error_response(
            StatusCode::BAD_REQUEST,
            "missing_sql",
            "Say which query to download: the sql parameter is empty.",
        );
    }
    if sql.len() > MAX_SQL_BYTES {
        return super::error_response(
            StatusCode::BAD_REQUEST,
            "sql_too_long",
            "The query is longer than 100,000 bytes.",
        );
    }
    let app = &state.app;
    let datasets = match catalog::query_datasets(&app.db, who.tenant_id).await {
        Ok(d) => d,
        Err(e) => return internal(&e, "listing the query tables"),
    };
    let tables: Vec<_> = query_tables(datasets, &app.reader)
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    let limits = app.query_limits.clone();
    let Ok(permit) = limits.slots.clone().try_acquire_owned() else {
        return refused(&QueryError::Busy);
    };
    let dest = state.storage.tmp_dir().join(format!(
        "download-{}.{}",
        Uuid::new_v4().simple(),
        format.extension()
    ));
    let started = std::time::Instant::now();
    let written = export_isolated(&limits, tables, sql, format, dest.clone()).await;
    drop(permit);
    // Opened, then unlinked: the open file keeps its bytes for the stream,
    // and nothing stays on disk however the download ends.
    let opened = match &written {
        Ok(_) => tokio::fs::File::open(&dest).await.map(Some),
        Err(_) => Ok(None),
    };
    if let Err(e) = tokio::fs::remove_file(&dest).await {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(error = %e, "could not remove a download's scratch file");
        }
    }
    let rows = match written {
        Ok(rows) => rows,
        Err(e) => {
            tracing::info!(target: "audit", tenant = %who.tenant_id, user = %who.user_id,
                error = %e, "query download refused or failed");
            return refused(&e);
        }
    };
    let file = match opened {
        Ok(Some(file)) => file,
        Ok(None) => unreachable!("opened whenever the export succeeded"),
        Err(e) => return internal(&e, "opening a query download"),
    };
    let size = match file.metadata().await {
        Ok(m) => m.len(),
        Err(e) => return internal(&e, "reading a query download's size"),
    };
    tracing::info!(target: "audit", tenant = %who.tenant_id, user = %who.user_id,
        rows, bytes = size, format = format.extension(),
        elapsed_ms = started.elapsed().as_millis() as u64, "query download");
    let stamp = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year][month][day]-[hour][minute][second]"
        ))
        .unwrap_or_default();
    (
        [
            (header::CONTENT_TYPE, format.content_type().to_owned()),
            (header::CONTENT_LENGTH, size.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"query-{stamp}.{}\"",
                    format.extension()
                ),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
            (
                header::HeaderName::from_static("x-row-count"),
                rows.to_string(),
            ),
        ],
        Body::from_stream(tokio_util::io::ReaderStream::with_capacity(file, 64 * 1024)),
    )
        .into_response()
}

/// A query the sandbox refused or could not run: 503 when it may work in a
/// moment, else 422 with the reason (the query page's statuses).
fn refused(e: &QueryError) -> Response {
    let (status, code) = match e {
        QueryError::Busy => (StatusCode::SERVICE_UNAVAILABLE, "busy"),
        QueryError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        QueryError::Timeout(_) => (StatusCode::UNPROCESSABLE_ENTITY, "timeout"),
        QueryError::TooLarge(_) => (StatusCode::UNPROCESSABLE_ENTITY, "too_large"),
        _ => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_query"),
    };
    super::error_response(status, code, e.to_string())
}

fn internal(e: &dyn std::fmt::Display, doing: &str) -> Response {
    tracing::error!(error = %e, "{doing} failed");
    super::error_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "Something went wrong on our side; it has been logged.",
    )
}

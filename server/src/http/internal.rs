//! `GET /internal/storage/datasets/{file_name}`: the MCP server downloads a
//! dataset's Parquet file from here (the seed's internal storage endpoint).
//!
//! Checked in this order, before the file system is touched: the bearer key
//! (`MCP_API_KEY`, compared in constant time) → 401; the name, which must be
//! `<uuid>.parquet` in canonical form → 400. Then only a regular file directly
//! in the datasets directory is served (a symlink is not followed) → else 404.
//! Ranges (`Range: bytes=…`) and HEAD are supported.

use super::error_response;
use crate::state::ServerState;
use axum::{
    extract::{Path, Request, State},
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};
use contract::process::bearer_matches;
use tower::ServiceExt;
use tower_http::services::ServeFile;
use uuid::Uuid;

pub fn router() -> Router<ServerState> {
    Router::new().route("/internal/storage/datasets/{file_name}", get(serve))
}

/// `<uuid>.parquet`, the UUID lowercase and hyphenated, as the server names files.
pub fn parse_file_name(name: &str) -> Option<Uuid> {
    let stem = name.strip_suffix(".parquet")?;
    let id = Uuid::try_parse(stem).ok()?;
    (id.hyphenated().to_string() == stem).then_some(id)
}

async fn serve(
    State(state): State<ServerState>,
    Path(file_name): Path<String>,
    request: Request,
) -> Response {
    let authorized = state
        .internal_key
        .as_ref()
        .is_some_and(|key| bearer_matches(request.headers(), key));
    if !authorized {
        let mut response = error_response(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid bearer token is required",
        );
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return response;
    }
    let Some(id) = parse_file_name(&file_name) else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "bad_file_name",
            "the file name must be <dataset uuid>.parquet",
        );
    };
    let path = state.storage.parquet_path(id);
    match tokio::fs::symlink_metadata(&path).await {
        Ok(meta) if meta.file_type().is_file() => {}
        _ => return error_response(StatusCode::NOT_FOUND, "not_found", "no such dataset file"),
    }
    match ServeFile::new(&path).oneshot(request).await {
        Ok(response) => response.into_response(),
        Err(e) => {
            tracing::error!(error = %e, path = %path.display(), "serving a dataset file failed");
            error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the file could not be read; it has been logged",
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_file_name;

    #[test]
    fn only_canonical_uuid_parquet_names_pass() {
        let id = "6f1c1f9e-8c63-4e3b-9a57-2f4f7d1e0c11";
        assert!(parse_file_name(&format!("{id}.parquet")).is_some());
        for bad in [
            "6F1C1F9E-8C63-4E3B-9A57-2F4F7D1E0C11.parquet",
            "6f1c1f9e8c634e3b9a572f4f7d1e0c11.parquet",
            "6f1c1f9e-8c63-4e3b-9a57-2f4f7d1e0c11",
            "../6f1c1f9e-8c63-4e3b-9a57-2f4f7d1e0c11.parquet",
            "/etc/passwd",
            "..",
            "x.parquet",
            "",
        ] {
            assert!(parse_file_name(bad).is_none(), "{bad}");
        }
    }
}

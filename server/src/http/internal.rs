//! `GET /internal/storage/datasets/{file_name}`: the MCP server downloads a
//! dataset's Parquet file from here (the seed's internal storage endpoint).
//!
//! Checked in this order, before the file system is touched: the bearer key
//! (`MCP_API_KEY`, compared in constant time) → 401; the name, which must be
//! `<uuid>.parquet` in canonical form → 400. Then only a regular file directly
//! in the datasets directory is served (a symlink is not followed) → else 404.
//! Ranges (`Range: bytes=…`) and HEAD are supported.

use axum::{
    extract::{Path, Request, State},
    http::{header, HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use secrecy::{ExposeSecret, SecretString};
use std::{path::PathBuf, sync::Arc};
use subtle::ConstantTimeEq;
use tower::ServiceExt;
use tower_http::services::ServeFile;
use uuid::Uuid;

#[derive(Clone)]
pub struct InternalFiles(Arc<Inner>);

struct Inner {
    datasets_dir: PathBuf,
    /// `None` when no key is configured: every request is refused.
    api_key: Option<SecretString>,
}

impl InternalFiles {
    pub fn new(datasets_dir: PathBuf, api_key: Option<SecretString>) -> Self {
        Self(Arc::new(Inner {
            datasets_dir,
            api_key,
        }))
    }
}

pub fn router<S>(files: InternalFiles) -> Router<S> {
    Router::new()
        .route("/internal/storage/datasets/{file_name}", get(serve))
        .with_state(files)
}

fn refuse(status: StatusCode, message: &str) -> Response {
    let mut response = (status, Json(serde_json::json!({ "error": message }))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

fn authorized(headers: &HeaderMap, key: Option<&SecretString>) -> bool {
    let Some(key) = key else { return false };
    let Some(given) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    given
        .as_bytes()
        .ct_eq(key.expose_secret().as_bytes())
        .into()
}

/// `<uuid>.parquet`, the UUID lowercase and hyphenated, as the server names files.
pub fn parse_file_name(name: &str) -> Option<Uuid> {
    let stem = name.strip_suffix(".parquet")?;
    let id = Uuid::try_parse(stem).ok()?;
    (id.hyphenated().to_string() == stem).then_some(id)
}

async fn serve(
    State(files): State<InternalFiles>,
    Path(file_name): Path<String>,
    request: Request,
) -> Response {
    if !authorized(request.headers(), files.0.api_key.as_ref()) {
        return refuse(StatusCode::UNAUTHORIZED, "a valid bearer token is required");
    }
    let Some(id) = parse_file_name(&file_name) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "the file name must be <dataset uuid>.parquet",
        );
    };
    let path = files.0.datasets_dir.join(format!("{id}.parquet"));
    match tokio::fs::symlink_metadata(&path).await {
        Ok(meta) if meta.file_type().is_file() => {}
        _ => return refuse(StatusCode::NOT_FOUND, "no such dataset file"),
    }
    match ServeFile::new(&path).oneshot(request).await {
        Ok(response) => response.into_response(),
        Err(e) => {
            tracing::error!(error = %e, path = %path.display(), "serving a dataset file failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
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

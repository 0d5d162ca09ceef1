//! The internal listener (`INTERNAL_ADDR`, loopback by default): what only
//! the MCP server and operators reach, never the public port.
//!
//! - `GET /internal/storage/datasets/{file_name}?tenant=…&expires=…&signature=…`:
//!   the MCP server downloads a dataset's Parquet file with a URL the sync
//!   signed for that tenant and dataset ([`crate::auth::signed_url`]).
//!   Checked in this order, before the file system is touched: the name,
//!   which must be `<uuid>.parquet` in canonical form → 400; the signature
//!   and expiry → 403. Then only a regular file directly in the datasets
//!   directory is served (a symlink is not followed) → else 404. Ranges
//!   (`Range: bytes=…`) and HEAD are supported.
//! - `POST /internal/mcp/introspect` (bearer `MCP_API_KEY`): which tenant an
//!   assistant's token acts for ([`contract::access`]).
//! - `GET /metrics`: Prometheus text.

use super::error_response;
use crate::{auth::tokens, state::ServerState};
use app::domain::TokenKind;
use axum::{
    extract::{Path, Query, Request, State},
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use contract::{
    access::{IntrospectRequest, IntrospectResponse, INTROSPECT_PATH},
    process::bearer_matches,
};
use serde::Deserialize;
use tower::ServiceExt;
use tower_http::services::ServeFile;
use uuid::Uuid;

/// The routes of the internal listener.
pub fn router() -> Router<ServerState> {
    Router::new()
        .route("/internal/storage/datasets/{file_name}", get(serve))
        .route(INTROSPECT_PATH, post(introspect))
        .merge(super::metrics::router())
        .merge(super::health::router())
}

fn unauthorized() -> Response {
    let mut response = error_response(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "a valid bearer token is required",
    );
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

async fn introspect(
    State(state): State<ServerState>,
    headers: axum::http::HeaderMap,
    body: Result<Json<IntrospectRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let authorized = state
        .internal_key
        .as_ref()
        .is_some_and(|key| bearer_matches(&headers, key));
    if !authorized {
        return unauthorized();
    }
    let Ok(Json(body)) = body else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "expected JSON {\"token\": \"st_mcp_…\"}",
        );
    };
    match tokens::resolve(state.db(), &body.token, TokenKind::Mcp).await {
        Ok(Some(p)) => {
            let token_id = match p.via {
                app::ssr::auth::Credential::Token(id) => id.to_string(),
                app::ssr::auth::Credential::Session => String::new(),
            };
            Json(IntrospectResponse {
                tenant_id: p.tenant_id.to_string(),
                token_id,
            })
            .into_response()
        }
        Ok(None) => error_response(
            StatusCode::NOT_FOUND,
            "unknown_token",
            "the token is unknown, revoked or expired",
        ),
        Err(e) => {
            tracing::error!(error = %e, "token introspection failed");
            error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "tokens cannot be checked right now",
            )
        }
    }
}

/// The signed part of a download URL.
#[derive(Deserialize)]
struct Signed {
    /// The dataset version whose own rows are wanted (default 1).
    version: Option<i32>,
    tenant: Option<Uuid>,
    expires: Option<i64>,
    signature: Option<String>,
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
    signed: Result<Query<Signed>, axum::extract::rejection::QueryRejection>,
    request: Request,
) -> Response {
    let Some(id) = parse_file_name(&file_name) else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "bad_file_name",
            "the file name must be <dataset uuid>.parquet",
        );
    };
    let verdict = match signed.ok().map(|Query(s)| s) {
        Some(Signed {
            version,
            tenant: Some(tenant),
            expires: Some(expires),
            signature: Some(signature),
        }) => {
            let version = version.unwrap_or(1);
            state
                .signer
                .verify(tenant, id, version, expires, &signature)
                .map(|()| version)
                .map_err(|e| e.to_string())
        }
        _ => Err("the link is not signed (tenant, expires and signature are required)".to_owned()),
    };
    let version = match verdict {
        Ok(v) => v,
        Err(why) => return error_response(StatusCode::FORBIDDEN, "bad_signature", why),
    };
    let Some(path) = state.storage.version_file(id, version) else {
        return error_response(StatusCode::NOT_FOUND, "not_found", "no such dataset file");
    };
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

//! New versions of a dataset over HTTP (see [`crate::versions`]):
//!
//! - `POST /api/datasets/{id}/versions`: multipart `file` and `mode`:
//!   - `preview` (the default) stages the file: 200 with the staged version
//!     and its schema difference, nothing about the dataset changed;
//!   - `replace` or `append` stage and commit at once: 201 with the new
//!     version, or 409 naming the columns an append cannot take (and the
//!     staged file is dropped).
//! - `POST /api/datasets/{id}/versions/staged/{staged}` (form `mode`):
//!   commits a staged file as `replace` or `append` (201, or 409 and the
//!   staged file stays, so the other choice can still be made).
//! - `DELETE /api/datasets/{id}/versions/staged/{staged}`: throws it away.
//!
//! Script clients send `Accept: application/json`; a plain HTML form gets a
//! 303 redirect: to the staged version's page, or to the dataset's, with
//! the error in the query when there is one.

use super::datasets::{open_multipart, receive, wants_json, UploadError};
use crate::{auth::edge::percent_encode, state::ServerState, versions::VersionError};
use app::{domain::VersionMode, ssr::auth::Principal};
use axum::{
    extract::{DefaultBodyLimit, Path, Request, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
    routing::post,
    Extension, Form, Json, Router,
};
use serde::Deserialize;
use uuid::Uuid;

pub fn router() -> Router<ServerState> {
    Router::new()
        .route(
            "/api/datasets/{id}/versions",
            post(upload_version).layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/api/datasets/{id}/versions/staged/{staged}",
            post(commit_staged).delete(discard_staged),
        )
}

pub(crate) fn status(e: &VersionError) -> StatusCode {
    match e {
        VersionError::NotFound | VersionError::StagedGone => StatusCode::NOT_FOUND,
        VersionError::Deleting => StatusCode::GONE,
        VersionError::Incompatible(_) => StatusCode::CONFLICT,
        VersionError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

pub(crate) fn code(e: &VersionError) -> &'static str {
    match e {
        VersionError::NotFound => "not_found",
        VersionError::StagedGone => "staged_gone",
        VersionError::Deleting => "deleting",
        VersionError::Incompatible(_) => "incompatible_schema",
        VersionError::Internal(_) => "internal",
    }
}

/// What a new version's `mode` asks for.
enum Wanted {
    Preview,
    Commit(VersionMode),
}

fn parse_mode(text: Option<&str>, preview_ok: bool) -> Result<Wanted, UploadError> {
    match text.map(str::trim).filter(|m| !m.is_empty()) {
        None | Some("preview") if preview_ok => Ok(Wanted::Preview),
        Some(m) => VersionMode::parse_new(m)
            .map(Wanted::Commit)
            .ok_or_else(|| {
                UploadError::Body(format!(
                    "there is no mode {m:?}; use {}replace or append",
                    if preview_ok { "preview, " } else { "" }
                ))
            }),
        None => Err(UploadError::Body(
            "say how to make the new version: mode replace or append".to_owned(),
        )),
    }
}

fn dataset_id(text: &str) -> Result<Uuid, UploadError> {
    Uuid::parse_str(text).map_err(|_| UploadError::Version(VersionError::NotFound))
}

async fn upload_version(
    State(state): State<ServerState>,
    Extension(who): Extension<Principal>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    let json = wants_json(request.headers());
    let outcome = match crate::http::datasets::upload_permit(&state).await {
        Ok(_permit) => receive_version(&state, &who, &id, request).await,
        Err(e) => Err(e),
    };
    match (outcome, json) {
        (Ok(Made::Staged(s)), true) => (StatusCode::OK, Json(s)).into_response(),
        (Ok(Made::Staged(s)), false) => {
            Redirect::to(&format!("/datasets/{}/versions/{}", s.dataset_id, s.id)).into_response()
        }
        (Ok(Made::Committed(c)), true) => (StatusCode::CREATED, Json(c)).into_response(),
        (Ok(Made::Committed(c)), false) => {
            Redirect::to(&format!("/datasets/{}#versions", c.dataset.id)).into_response()
        }
        (Err(e), true) => e.into_response(),
        (Err(e), false) => back_to_dataset(&id, e),
    }
}

enum Made {
    Staged(app::model::StagedVersion),
    Committed(app::model::VersionCommitted),
}

async fn receive_version(
    state: &ServerState,
    who: &Principal,
    id: &str,
    request: Request,
) -> Result<Made, UploadError> {
    let dataset = dataset_id(id)?;
    let (multipart, declared) = open_multipart(state, request).await?;
    let scratch_id = Uuid::new_v4();
    let received = receive(state, scratch_id, multipart, declared).await?;
    let wanted = parse_mode(received.mode.as_deref(), true)?;
    // Like an upload: the work finishes (or cleans up) even if the client
    // goes away now.
    let (state, who) = (state.clone(), who.clone());
    tokio::spawn(async move {
        let staged = crate::versions::stage(&state, &who, dataset, received).await?;
        match wanted {
            Wanted::Preview => Ok(Made::Staged(staged)),
            Wanted::Commit(mode) => {
                match crate::versions::commit(&state, &who, dataset, staged.id, mode).await {
                    Ok(c) => Ok(Made::Committed(c)),
                    Err(e) => {
                        // Asked for at once, refused at once: nothing stays.
                        let _ = crate::versions::discard(&state, &who, dataset, staged.id).await;
                        Err(e.into())
                    }
                }
            }
        }
    })
    .await
    .map_err(|e| UploadError::Internal(e.into()))?
}

#[derive(Debug, Deserialize)]
struct ModeForm {
    mode: Option<String>,
}

async fn commit_staged(
    State(state): State<ServerState>,
    Extension(who): Extension<Principal>,
    Path((id, staged)): Path<(String, String)>,
    headers: HeaderMap,
    form: Result<Form<ModeForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let json = wants_json(&headers);
    let outcome = async {
        let dataset = dataset_id(&id)?;
        let staged =
            Uuid::parse_str(&staged).map_err(|_| UploadError::Version(VersionError::StagedGone))?;
        let Wanted::Commit(mode) =
            parse_mode(form.as_ref().ok().and_then(|f| f.mode.as_deref()), false)?
        else {
            unreachable!("preview is not offered here")
        };
        let (state, who) = (state.clone(), who.clone());
        tokio::spawn(
            async move { crate::versions::commit(&state, &who, dataset, staged, mode).await },
        )
        .await
        .map_err(|e| UploadError::Internal(e.into()))?
        .map_err(UploadError::from)
    }
    .await;
    match (outcome, json) {
        (Ok(c), true) => (StatusCode::CREATED, Json(c)).into_response(),
        (Ok(c), false) => {
            Redirect::to(&format!("/datasets/{}#versions", c.dataset.id)).into_response()
        }
        (Err(e), true) => e.into_response(),
        (Err(e), false) => {
            let message = e.body().message;
            let _ = e.into_response(); // logs it
            Redirect::to(&format!(
                "/datasets/{id}/versions/{staged}?error={}",
                percent_encode(&message)
            ))
            .into_response()
        }
    }
}

async fn discard_staged(
    State(state): State<ServerState>,
    Extension(who): Extension<Principal>,
    Path((id, staged)): Path<(String, String)>,
) -> Response {
    let (Ok(dataset), Ok(staged)) = (Uuid::parse_str(&id), Uuid::parse_str(&staged)) else {
        return StatusCode::NO_CONTENT.into_response();
    };
    match crate::versions::discard(&state, &who, dataset, staged).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => UploadError::from(e).into_response(),
    }
}

fn back_to_dataset(id: &str, e: UploadError) -> Response {
    let message = e.body().message;
    let _ = e.into_response(); // logs it
    let id = Uuid::parse_str(id)
        .map(|u| u.to_string())
        .unwrap_or_default();
    Redirect::to(&format!(
        "/datasets/{id}?version_error={}#versions",
        percent_encode(&message)
    ))
    .into_response()
}

//! `POST /api/datasets`: a multipart upload (`file`, optional `name`) streamed
//! to a scratch file, checked as it arrives, converted to Parquet, and only
//! then recorded in the catalogue (with its sync request, when sync is
//! automatic).
//!
//! Script and XHR clients send `Accept: application/json` and get JSON (201 or
//! an error status with `{code, message}`). A plain HTML form post gets a 303
//! redirect: to the dataset page, or back to `/` with the error in the query.

use crate::{
    auth::edge::percent_encode,
    catalog::{self, NewDataset},
    ingest::{self, ConvertJob, Converted, IngestError, ReceiveError, ReceivedFile, ScratchFile},
    state::ServerState,
    storage::OneThread,
    sync::ledger::Ledger,
};
use app::{
    domain::{name_from_file_name, DatasetName, NameError},
    model::{ErrorBody, UploadResponse},
    ssr::auth::Principal,
};
use axum::{
    extract::{
        multipart::MultipartError, DefaultBodyLimit, FromRequest, Multipart, Request, State,
    },
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
    routing::{delete, post},
    Extension, Json, Router,
};
use std::path::Path;
use uuid::Uuid;

/// Longest file name accepted, in characters.
pub const MAX_FILE_NAME_CHARS: usize = 255;
/// Longest `Idempotency-Key` accepted, in characters.
pub const IDEMPOTENCY_KEY_MAX: usize = 255;
/// Multipart framing and the small `name` field on top of the file itself.
const MULTIPART_OVERHEAD: u64 = 64 * 1024;
/// The `name` field, in bytes (200 characters of up to 4 bytes, and room).
const MAX_NAME_FIELD_BYTES: usize = 4 * 1024;
/// Any other field (ignored), in bytes.
const MAX_OTHER_FIELD_BYTES: usize = 64 * 1024;

pub fn router() -> Router<ServerState> {
    Router::new()
        .route(
            "/api/datasets",
            // The cap is enforced while streaming (see `receive_file`), with a
            // clear message, rather than by axum's generic body limit.
            post(upload).layer(DefaultBodyLimit::disable()),
        )
        .route("/api/datasets/{id}", delete(delete_dataset))
}

/// `DELETE /api/datasets/{id}`: 202 `{"id", "status": "deleting"}` while the
/// lakehouse clean-up runs (sync on), 200 `{"id", "status": "deleted"}` when
/// it is gone already (sync off), 404 for an id the tenant does not have.
/// Asking again is harmless.
async fn delete_dataset(
    State(state): State<ServerState>,
    Extension(who): Extension<Principal>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    let Ok(id) = Uuid::parse_str(&id) else {
        return super::error_response(
            StatusCode::NOT_FOUND,
            "not_found",
            "No dataset has that id (a dataset id is a UUID).",
        );
    };
    match state.removal.delete(who.tenant_id, id).await {
        Ok(app::ssr::DeleteOutcome::Deleting) => (
            StatusCode::ACCEPTED,
            Json(serde_json::json!({"id": id, "status": "deleting"})),
        )
            .into_response(),
        Ok(app::ssr::DeleteOutcome::Deleted) => (
            StatusCode::OK,
            Json(serde_json::json!({"id": id, "status": "deleted"})),
        )
            .into_response(),
        Ok(app::ssr::DeleteOutcome::NotFound) => super::error_response(
            StatusCode::NOT_FOUND,
            "not_found",
            "No dataset has that id.",
        ),
        Err(e) => {
            tracing::error!(error = %e, dataset = %id, "deleting a dataset failed");
            super::error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Something went wrong on our side; it has been logged.",
            )
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("the file is larger than the upload limit of {}", app::format::human_bytes(*max as i64))]
    TooLarge { max: u64 },
    #[error("expected a multipart/form-data upload with a `file` field")]
    NotMultipart,
    #[error("no file was sent; put it in the `file` field")]
    MissingFile,
    #[error("the file name is {len} characters long; the limit is {max}")]
    FileNameTooLong { len: usize, max: usize },
    #[error("{0}")]
    InvalidName(#[from] NameError),
    #[error("the upload was interrupted or malformed: {0}")]
    Body(String),
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error(
        "the server is busy with {0} other uploads and more waiting; try again in a few seconds"
    )]
    Busy(usize),
    #[error(
        "the server is short of disk space for this upload; nothing was kept, try again later"
    )]
    InsufficientStorage,
    #[error("the upload sent nothing for {0} s and was ended; nothing was kept")]
    Stalled(u64),
    #[error(transparent)]
    Version(#[from] crate::versions::VersionError),
    #[error(
        "the Idempotency-Key header must be 1 to {IDEMPOTENCY_KEY_MAX} visible ASCII characters"
    )]
    InvalidIdempotencyKey,
    /// Another upload with the same key committed first (resolved in `store`).
    #[error("another upload with this Idempotency-Key was stored first")]
    KeyTaken,
    #[error("something went wrong on our side; it has been logged")]
    Internal(#[source] anyhow::Error),
}

impl UploadError {
    fn status(&self) -> StatusCode {
        match self {
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::NotMultipart => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::MissingFile
            | Self::FileNameTooLong { .. }
            | Self::InvalidName(_)
            | Self::InvalidIdempotencyKey
            | Self::Body(_) => StatusCode::BAD_REQUEST,
            Self::KeyTaken => StatusCode::CONFLICT,
            Self::Ingest(e) => ingest_status(e),
            Self::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::InsufficientStorage => StatusCode::INSUFFICIENT_STORAGE,
            Self::Stalled(_) => StatusCode::REQUEST_TIMEOUT,
            Self::Version(e) => crate::http::versions::status(e),
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "too_large",
            Self::NotMultipart => "not_multipart",
            Self::MissingFile => "missing_file",
            Self::FileNameTooLong { .. } => "file_name_too_long",
            Self::InvalidName(_) => "invalid_name",
            Self::Body(_) => "bad_body",
            Self::InvalidIdempotencyKey => "invalid_idempotency_key",
            Self::KeyTaken => "idempotency_key_taken",
            Self::Ingest(e) => e.code(),
            Self::Busy(_) => "busy",
            Self::InsufficientStorage => "insufficient_storage",
            Self::Stalled(_) => "upload_stalled",
            Self::Version(e) => crate::http::versions::code(e),
            Self::Internal(_) => "internal",
        }
    }

    pub(crate) fn body(&self) -> ErrorBody {
        ErrorBody::new(self.code(), capitalise(&self.to_string()))
    }

    fn from_multipart(e: MultipartError, max: u64) -> Self {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Self::TooLarge { max }
        } else {
            Self::Body(e.body_text())
        }
    }

    fn from_receive(e: ReceiveError, max: u64) -> Self {
        match e {
            ReceiveError::TooLarge { max } => Self::TooLarge { max },
            ReceiveError::Body(e) => Self::from_multipart(e, max),
            ReceiveError::Ingest(e) => Self::Ingest(e),
            ReceiveError::DiskFull => Self::InsufficientStorage,
            ReceiveError::Stalled(secs) => Self::Stalled(secs),
            e @ (ReceiveError::Io(_) | ReceiveError::WriterGone) => Self::Internal(e.into()),
        }
    }
}

/// What an ingest failure means over HTTP: the uploader's content (422), a
/// compression we do not read (415), or our own fault (500).
fn ingest_status(e: &IngestError) -> StatusCode {
    match e {
        IngestError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        IngestError::UnsupportedCompression { .. } | IngestError::GzippedParquet => {
            StatusCode::UNSUPPORTED_MEDIA_TYPE
        }
        IngestError::DecompressedTooLarge { .. }
        | IngestError::ParquetDecodesTooLarge { .. }
        | IngestError::OutOfMemory => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

impl IntoResponse for UploadError {
    fn into_response(self) -> Response {
        match &self {
            Self::Internal(cause)
            | Self::Version(crate::versions::VersionError::Internal(cause)) => {
                tracing::error!(error = ?cause, "upload failed")
            }
            Self::Ingest(IngestError::Internal(cause)) => {
                tracing::error!(error = ?cause, "conversion failed")
            }
            other => tracing::info!(code = other.code(), error = %other, "upload rejected"),
        }
        let busy = matches!(self, Self::Busy(_));
        let mut response = (self.status(), Json(self.body())).into_response();
        if busy {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("5"),
            );
        }
        response
    }
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A turn to receive an upload: at once when one is free, else after
/// waiting up to `UPLOAD_QUEUE_WAIT_SECS` (the body stays unread meanwhile,
/// so the client is held back by TCP, not buffered); then `Busy`.
pub(crate) async fn upload_permit(
    state: &ServerState,
) -> Result<tokio::sync::OwnedSemaphorePermit, UploadError> {
    let busy = || UploadError::Busy(state.upload_max_concurrent);
    if let Ok(permit) = state.uploads.clone().try_acquire_owned() {
        return Ok(permit);
    }
    match tokio::time::timeout(
        state.upload_queue_wait,
        state.uploads.clone().acquire_owned(),
    )
    .await
    {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(busy()),
    }
}

pub(crate) fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"))
}

/// What a stored upload answers: the dataset made now, or the one an earlier
/// upload with the same `Idempotency-Key` made.
pub struct Stored {
    pub response: UploadResponse,
    pub replayed: bool,
}

/// The `Idempotency-Key` header: absent, or 1–255 visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, UploadError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .map_err(|_| UploadError::InvalidIdempotencyKey)?;
    let valid =
        (1..=IDEMPOTENCY_KEY_MAX).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic());
    if valid {
        Ok(Some(key.to_owned()))
    } else {
        Err(UploadError::InvalidIdempotencyKey)
    }
}

/// The dataset an earlier upload of the tenant's with `key` made, if any.
async fn replay(
    state: &ServerState,
    tenant_id: Uuid,
    key: &str,
) -> Result<Option<Stored>, UploadError> {
    let internal = |e: sqlx::Error| UploadError::Internal(e.into());
    let Some(id) = catalog::find_by_upload_key(state.db(), tenant_id, key)
        .await
        .map_err(internal)?
    else {
        return Ok(None);
    };
    let found = app::ssr::catalog::find_dataset(state.db(), tenant_id, id)
        .await
        .map_err(internal)?;
    Ok(found.map(|(dataset, schema)| Stored {
        response: UploadResponse { dataset, schema },
        replayed: true,
    }))
}

#[tracing::instrument(skip_all, fields(dataset_id))]
async fn upload(
    State(state): State<ServerState>,
    Extension(who): Extension<Principal>,
    request: Request,
) -> Response {
    let json = wants_json(request.headers());
    let outcome = match idempotency_key(request.headers()) {
        Err(e) => Err(e),
        Ok(key) => {
            // A repeat of an upload that was stored: its dataset, at once,
            // without reading the body or waiting for a turn.
            let earlier = match &key {
                Some(key) => replay(&state, who.tenant_id, key).await,
                None => Ok(None),
            };
            match earlier {
                Ok(Some(stored)) => Ok(stored),
                Err(e) => Err(e),
                // At most UPLOAD_MAX_CONCURRENT at once; beyond it an upload
                // waits its turn for a while, then gets 503 with Retry-After,
                // rather than every upload slowing to a crawl (or the disk
                // filling).
                Ok(None) => match upload_permit(&state).await {
                    Ok(_permit) => receive_and_store(&state, &who, key, request).await,
                    Err(e) => Err(e),
                },
            }
        }
    };
    match (outcome, json) {
        (Ok(Stored { response, replayed }), true) => {
            let status = if replayed {
                StatusCode::OK
            } else {
                StatusCode::CREATED
            };
            let mut answer = (status, Json(response)).into_response();
            if replayed {
                answer.headers_mut().insert(
                    "idempotent-replayed",
                    axum::http::HeaderValue::from_static("true"),
                );
            }
            answer
        }
        (Ok(done), false) => {
            Redirect::to(&format!("/datasets/{}", done.response.dataset.id)).into_response()
        }
        (Err(e), true) => e.into_response(),
        (Err(e), false) => {
            let message = e.body().message;
            let _ = e.into_response(); // logs it
            Redirect::to(&format!(
                "/?upload_error={}#upload",
                percent_encode(&message)
            ))
            .into_response()
        }
    }
}

/// The form, received: the optional name and mode, and the inspected file.
pub struct Received {
    pub file: ReceivedFile,
    pub file_name: String,
    pub name: Option<String>,
    /// A new version's `mode` field (`preview`, `replace` or `append`).
    pub mode: Option<String>,
}

/// Refuses a body whose declared length is past the cap before reading a
/// byte (bodies without a length are counted while they stream), and opens
/// it as multipart.
pub(crate) async fn open_multipart(
    state: &ServerState,
    request: Request,
) -> Result<(Multipart, u64), UploadError> {
    let max = state.upload_max_bytes;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max.saturating_add(MULTIPART_OVERHEAD)) {
        return Err(UploadError::TooLarge { max });
    }
    let multipart = Multipart::from_request(request, state)
        .await
        .map_err(|_| UploadError::NotMultipart)?;
    Ok((multipart, declared.unwrap_or(0)))
}

async fn receive_and_store(
    state: &ServerState,
    who: &Principal,
    key: Option<String>,
    request: Request,
) -> Result<Stored, UploadError> {
    let (multipart, declared) = open_multipart(state, request).await?;
    let id = Uuid::new_v4();
    tracing::Span::current().record("dataset_id", tracing::field::display(id));
    let started = std::time::Instant::now();
    let received = receive(state, id, multipart, declared).await?;
    tracing::info!(
        bytes = received.file.size,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "upload received"
    );

    // Conversion and the catalogue insert run in their own task: if the client
    // goes away now, the work still finishes (or cleans up) instead of being
    // dropped halfway.
    let state = state.clone();
    let (tenant_id, user_id) = (who.tenant_id, who.user_id);
    tokio::spawn(async move { store(&state, tenant_id, user_id, id, key, received).await })
        .await
        .map_err(|e| UploadError::Internal(e.into()))?
}

/// Reads the form's fields: `name` and `mode` (small), `file` (streamed to
/// scratch); anything else is drained and ignored.
pub(crate) async fn receive(
    state: &ServerState,
    id: Uuid,
    mut multipart: Multipart,
    expected_bytes: u64,
) -> Result<Received, UploadError> {
    let max = state.upload_max_bytes;
    let multipart_err = |e| UploadError::from_multipart(e, max);
    let mut name = None;
    let mut mode = None;
    let mut file = None;
    let idle = state.upload_idle_timeout;
    let chunk_err = |e: ReceiveError| UploadError::from_receive(e, max);
    loop {
        let next = tokio::time::timeout(idle, multipart.next_field())
            .await
            .map_err(|_| UploadError::Stalled(idle.as_secs()))?;
        let Some(mut field) = next.map_err(multipart_err)? else {
            break;
        };
        let field_name = field.name().map(str::to_owned);
        match field_name.as_deref() {
            Some("mode") => {
                let mut bytes = Vec::new();
                while let Some(chunk) = ingest::next_chunk(&mut field, idle)
                    .await
                    .map_err(chunk_err)?
                {
                    bytes.extend_from_slice(&chunk);
                    if bytes.len() > 64 {
                        return Err(UploadError::Body(
                            "the mode field is longer than any mode; use preview, replace or append"
                                .to_owned(),
                        ));
                    }
                }
                mode = Some(String::from_utf8_lossy(&bytes).trim().to_owned());
            }
            Some("name") => {
                // Bounded while it streams: a huge `name` is refused at its
                // first bytes over the cap, never buffered whole.
                let mut bytes = Vec::new();
                while let Some(chunk) = ingest::next_chunk(&mut field, idle)
                    .await
                    .map_err(chunk_err)?
                {
                    if bytes.len() + chunk.len() > MAX_NAME_FIELD_BYTES {
                        return Err(NameError::TooLong {
                            len: (bytes.len() + chunk.len()).max(MAX_NAME_FIELD_BYTES + 1),
                            max: app::domain::MAX_DATASET_NAME_CHARS,
                        }
                        .into());
                    }
                    bytes.extend_from_slice(&chunk);
                }
                let text = String::from_utf8(bytes).map_err(|_| {
                    UploadError::Body("the name field is not UTF-8 text".to_owned())
                })?;
                name = Some(text);
            }
            Some("file") if file.is_none() => {
                let file_name = field
                    .file_name()
                    .map(|n| n.rsplit(['/', '\\']).next().unwrap_or(n).trim().to_owned())
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| "upload".to_owned());
                let len = file_name.chars().count();
                if len > MAX_FILE_NAME_CHARS {
                    return Err(UploadError::FileNameTooLong {
                        len,
                        max: MAX_FILE_NAME_CHARS,
                    });
                }
                let scratch =
                    ScratchFile::new(state.storage.tmp_dir().join(format!("{id}.upload")));
                let floor = ingest::DiskFloor {
                    storage: &state.storage,
                    min_free: state.upload_min_free_disk,
                    expected: expected_bytes,
                };
                let limits = ingest::ReceiveLimits {
                    max,
                    max_decompressed: state.upload_max_decompressed_bytes,
                    idle: state.upload_idle_timeout,
                };
                let early = (state.upload_stream_below > 0).then(|| {
                    ingest::EarlyConvert::new(
                        state.storage.clone(),
                        id.to_string(),
                        state.upload_stream_below,
                    )
                });
                let received = ingest::receive_file(&mut field, scratch, limits, &floor, early)
                    .await
                    .map_err(|e| UploadError::from_receive(e, max))?;
                file = Some((received, file_name));
            }
            // Unknown fields (and a second file) are drained and ignored, up
            // to a small cap each: nobody sends megabytes we do not read.
            other => {
                let mut drained = 0usize;
                while let Some(chunk) = ingest::next_chunk(&mut field, idle)
                    .await
                    .map_err(chunk_err)?
                {
                    drained += chunk.len();
                    if drained > MAX_OTHER_FIELD_BYTES {
                        return Err(UploadError::Body(format!(
                            "the form field {:?} is larger than {} KiB; send only `file` and `name`",
                            other.unwrap_or(""),
                            MAX_OTHER_FIELD_BYTES / 1024
                        )));
                    }
                }
            }
        }
    }
    let (file, file_name) = file.ok_or(UploadError::MissingFile)?;
    Ok(Received {
        file,
        file_name,
        name,
        mode,
    })
}

async fn store(
    state: &ServerState,
    tenant_id: Uuid,
    user_id: Uuid,
    id: Uuid,
    key: Option<String>,
    received: Received,
) -> Result<Stored, UploadError> {
    let name = match received.name.as_deref().map(str::trim) {
        Some(n) if !n.is_empty() => DatasetName::parse(n)?,
        _ => DatasetName::parse(name_from_file_name(&received.file_name))?,
    };
    let dest = state.storage.parquet_path(id);
    let size = received.file.size;
    let file_name = received.file_name.clone();
    let converted = convert_received(state, id, received, &dest).await?;

    // The Parquet file is in place; from here a failure must remove it again.
    let committed = insert(
        state,
        NewDataset {
            id,
            tenant_id,
            name: &name,
            file_name: &file_name,
            source_format: &converted.format,
            schema: &converted.schema,
            row_count: converted.row_count,
            size_bytes: i64::try_from(size).map_err(|e| UploadError::Internal(e.into()))?,
            sync_status: state.sync_mode.initial_status(),
            uploaded_by: Some(user_id),
            upload_key: key.as_deref(),
        },
    )
    .await;
    match committed {
        Ok(response) => Ok(Stored {
            response,
            replayed: false,
        }),
        // The same key, sent twice at once: the other one committed first,
        // so its dataset is the answer and this file goes.
        Err(UploadError::KeyTaken) => {
            remove_quietly(&dest).await;
            let key = key.as_deref().unwrap_or_default();
            replay(state, tenant_id, key)
                .await?
                .ok_or_else(|| UploadError::Internal(anyhow::anyhow!("the key's dataset vanished")))
        }
        Err(e) => match settle_ambiguous_commit(state, tenant_id, id).await {
            // The server committed though the client saw an error: the
            // dataset exists, so it is the answer and its file stays.
            Some(Some(response)) => {
                tracing::warn!(error = %e, dataset = %id, "the commit reported an error but took effect");
                Ok(Stored {
                    response,
                    replayed: false,
                })
            }
            Some(None) => {
                remove_quietly(&dest).await;
                Err(e)
            }
            // Unknown: a row may exist, so the file stays; start-up
            // reconciliation removes it if no row does.
            None => {
                tracing::warn!(dataset = %id, "could not tell whether the dataset was committed; its file is kept");
                Err(e)
            }
        },
    }
}

/// Converts the received upload to Parquet at `dest` (whole or not at all)
/// and removes the upload.
pub(crate) async fn convert_received(
    state: &ServerState,
    id: Uuid,
    received: Received,
    dest: &Path,
) -> Result<Converted, UploadError> {
    let decoded_from = received.file.decoded_from;
    let mut converted = convert_stored_text(state, id, received, dest).await?;
    if let Some(encoding) = decoded_from {
        converted.format.push_str(&format!(" (from {encoding})"));
    }
    Ok(converted)
}

/// [`convert_received`] of the file as stored (UTF-8 text, gzip or Parquet).
async fn convert_stored_text(
    state: &ServerState,
    id: Uuid,
    received: Received,
    dest: &Path,
) -> Result<Converted, UploadError> {
    let storage = state.storage.clone();
    let dest = dest.to_owned();
    let scratch_parquet = ScratchFile::new(storage.tmp_dir().join(format!("{id}.parquet.partial")));
    let source = received.file.file.path().to_path_buf();
    let file_name = received.file_name.clone();
    let detected = received.file.detected;
    let scratch_path = scratch_parquet.path().to_path_buf();
    let dest_path = dest.clone();
    let max_decoded = state.upload_max_decompressed_bytes;
    let started = std::time::Instant::now();
    let mut received = received;
    let mut sniffed = None;
    match received.file.early.take() {
        // Arrived too fast to convert as it came; its first rows are sniffed.
        Some(ingest::Early::Sniffed(dialect)) => sniffed = Some(dialect),
        Some(ingest::Early::Converted(early)) => {
            // Converted while it arrived: only the finish is left.
            let (conn_storage, dest_path) = (storage.clone(), dest_path.clone());
            let finished = tokio::task::spawn_blocking(move || {
                let conn = conn_storage
                    .connection()
                    .map_err(|e| IngestError::Internal(e.into()))?;
                ingest::convert_early(&conn, early, &dest_path)
            })
            .await
            .map_err(|e| UploadError::Internal(e.into()))?;
            match finished {
                Ok(converted) => {
                    tracing::info!(
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "converted to Parquet while it arrived"
                    );
                    received.file.file.remove_in_background();
                    return Ok(converted);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "finishing the early conversion failed; converting again")
                }
            }
        }
        None => {}
    }
    let run = |alone: bool| {
        let (storage, source, file_name, scratch_path, dest_path, sniffed) = (
            storage.clone(),
            source.clone(),
            file_name.clone(),
            scratch_path.clone(),
            dest_path.clone(),
            sniffed.clone(),
        );
        async move {
            tokio::task::spawn_blocking(move || {
                let conn = storage
                    .connection()
                    .map_err(|e| IngestError::Internal(e.into()))?;
                let _one_thread = alone
                    .then(|| OneThread::set(&conn))
                    .transpose()
                    .map_err(|e| IngestError::Internal(e.into()))?;
                ingest::convert(
                    &conn,
                    &ConvertJob {
                        source: &source,
                        detected,
                        original_name: &file_name,
                        scratch: &scratch_path,
                        dest: &dest_path,
                        sniffed: sniffed.as_ref(),
                        max_decoded,
                    },
                )
            })
            .await
            .map_err(|e| UploadError::Internal(e.into()))?
            .map_err(UploadError::from)
        }
    };
    // Conversions share the engine's memory limit. One that runs out beside
    // others is tried again with the engine to itself, on one thread (each
    // thread holds buffers of every column: a thousand columns fit so);
    // only a file too big even then is refused (413).
    let shared = storage.conversions.clone().read_owned().await;
    let converted: Converted = match run(false).await {
        Err(UploadError::Ingest(IngestError::OutOfMemory)) => {
            drop(shared);
            tracing::warn!("a conversion ran out of memory beside others; trying it alone");
            let _alone = storage.conversions.clone().write_owned().await;
            run(true).await?
        }
        other => other?,
    };
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "converted to Parquet"
    );
    received.file.file.remove_in_background();
    drop(scratch_parquet);
    Ok(converted)
}

/// After a failed commit: whether the dataset row exists after all
/// (`Some(Some(..))`), surely does not (`Some(None)`), or cannot be told
/// (`None`). A few short tries, each with a deadline.
async fn settle_ambiguous_commit(
    state: &ServerState,
    tenant_id: Uuid,
    id: Uuid,
) -> Option<Option<UploadResponse>> {
    for attempt in 0..3u32 {
        if attempt > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(500 * u64::from(attempt))).await;
        }
        let found = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            app::ssr::catalog::find_dataset(state.db(), tenant_id, id),
        )
        .await;
        if let Ok(Ok(found)) = found {
            return Some(found.map(|(dataset, schema)| UploadResponse { dataset, schema }));
        }
    }
    None
}

/// Inserts the dataset row (and its sync request, when sync is automatic)
/// in one transaction.
async fn insert(state: &ServerState, new: NewDataset<'_>) -> Result<UploadResponse, UploadError> {
    let internal = |e: sqlx::Error| UploadError::Internal(e.into());
    let mut tx = state.db().begin().await.map_err(internal)?;
    let dataset = catalog::insert_dataset(&mut tx, &new).await.map_err(|e| {
        if catalog::is_upload_key_conflict(&e) {
            UploadError::KeyTaken
        } else {
            internal(e)
        }
    })?;
    if state.sync_mode.auto {
        // The outbox: the sync request commits with the dataset or not at all.
        Ledger::request_upload_sync(&mut tx, new.tenant_id, new.id)
            .await
            .map_err(internal)?;
    }
    tx.commit().await.map_err(internal)?;
    tracing::info!(rows = dataset.row_count, format = %dataset.source_format, "dataset stored");
    Ok(UploadResponse {
        dataset,
        schema: new.schema.to_vec(),
    })
}

pub(crate) async fn remove_quietly(path: &Path) {
    if let Err(e) = tokio::fs::remove_file(path).await {
        tracing::warn!(path = %path.display(), error = %e, "could not remove an uncommitted dataset file");
    }
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_messages_are_encoded() {
        assert_eq!(percent_encode("a b/é"), "a%20b%2F%C3%A9");
    }
}

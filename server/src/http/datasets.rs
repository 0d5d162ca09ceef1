//! `POST /api/datasets`: a multipart upload (`file`, optional `name`) streamed
//! to a scratch file, checked as it arrives, converted to Parquet, and only
//! then recorded in the catalogue.
//!
//! Script and XHR clients send `Accept: application/json` and get JSON (201 or
//! an error status with `{code, message}`). A plain HTML form post gets a 303
//! redirect: to the dataset page, or back to `/` with the error in the query.

use crate::ingest::{self, Converted, Detected, IngestError, Inspector};
use app::{
    domain::{name_from_file_name, DatasetName, NameError, SyncStatus},
    model::{ApiErrorBody, UploadResponse},
    ssr::{
        catalog,
        sync_requests::{self, SyncReason},
        AppState,
    },
};
use axum::{
    extract::{
        multipart::MultipartError, DefaultBodyLimit, FromRequest, Multipart, Request, State,
    },
    http::{header, HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
    routing::post,
    Json, Router,
};
use serde_json::json;
use std::path::{Path, PathBuf};
use uuid::Uuid;

/// Longest file name accepted, in characters.
pub const MAX_FILE_NAME_CHARS: usize = 255;
/// Multipart framing and the small `name` field on top of the file itself.
const MULTIPART_OVERHEAD: u64 = 64 * 1024;

pub fn router() -> Router<AppState> {
    Router::new().route(
        "/api/datasets",
        // The cap is enforced while streaming (see `receive`), with a clear
        // message, rather than by axum's generic body limit.
        post(upload).layer(DefaultBodyLimit::disable()),
    )
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
            | Self::Body(_) => StatusCode::BAD_REQUEST,
            Self::Ingest(e) => e.status(),
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
            Self::Ingest(e) => e.code(),
            Self::Internal(_) => "internal",
        }
    }

    fn body(&self) -> ApiErrorBody {
        ApiErrorBody {
            code: self.code().to_owned(),
            message: capitalise(&self.to_string()),
        }
    }

    fn from_multipart(e: MultipartError, max: u64) -> Self {
        let text = e.body_text();
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Self::TooLarge { max }
        } else {
            Self::Body(text)
        }
    }
}

impl IntoResponse for UploadError {
    fn into_response(self) -> Response {
        match &self {
            Self::Internal(cause) => tracing::error!(error = ?cause, "upload failed"),
            Self::Ingest(IngestError::Internal(cause)) => {
                tracing::error!(error = ?cause, "conversion failed")
            }
            other => tracing::info!(code = other.code(), error = %other, "upload rejected"),
        }
        (self.status(), Json(self.body())).into_response()
    }
}

fn capitalise(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"))
}

#[tracing::instrument(skip_all, fields(dataset_id))]
async fn upload(State(state): State<AppState>, request: Request) -> Response {
    let json = wants_json(request.headers());
    let outcome = receive_and_store(&state, request).await;
    match (outcome, json) {
        (Ok(done), true) => (StatusCode::CREATED, Json(done)).into_response(),
        (Ok(done), false) => {
            Redirect::to(&format!("/datasets/{}", done.dataset.id)).into_response()
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

async fn receive_and_store(
    state: &AppState,
    request: Request,
) -> Result<UploadResponse, UploadError> {
    let max = state.upload_max_bytes;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max.saturating_add(MULTIPART_OVERHEAD)) {
        // Refuse before reading a byte. Bodies without a length are counted below.
        return Err(UploadError::TooLarge { max });
    }
    let multipart = Multipart::from_request(request, state)
        .await
        .map_err(|_| UploadError::NotMultipart)?;

    let id = Uuid::new_v4();
    tracing::Span::current().record("dataset_id", tracing::field::display(id));
    let started = std::time::Instant::now();
    let received = receive(state, id, multipart).await?;
    tracing::info!(
        bytes = received.size,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "upload received"
    );

    // Conversion and the catalogue insert run in their own task: if the client
    // goes away now, the work still finishes (or cleans up) instead of being
    // dropped halfway.
    let state = state.clone();
    tokio::spawn(async move { store(&state, id, received).await })
        .await
        .map_err(|e| UploadError::Internal(e.into()))?
}

/// A file under the scratch directory that is deleted when dropped, unless it
/// has been consumed.
struct ScratchFile(PathBuf);

impl Drop for ScratchFile {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.0) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %self.0.display(), error = %e, "could not remove scratch file");
            }
        }
    }
}

impl ScratchFile {
    /// Removes the file on a blocking thread, without waiting. Deleting a large
    /// upload also drops its cached pages (about 60 ms for 1 GB), and nothing
    /// in the response depends on it. Should the process die first, start-up
    /// empties the scratch directory.
    fn remove_in_background(self) {
        tokio::task::spawn_blocking(move || drop(self));
    }
}

/// Writes the upload to its scratch file on a blocking thread of its own, fed
/// the received chunks as they are (no copy), so receiving and writing run
/// side by side. A bounded queue keeps memory flat: when the disk is slower
/// than the network, receiving waits.
struct ScratchWriter {
    chunks: Option<tokio::sync::mpsc::Sender<bytes::Bytes>>,
    task: tokio::task::JoinHandle<Result<(), UploadError>>,
}

impl ScratchWriter {
    /// Chunks queued at most (hyper and multer yield up to ~400 KiB each).
    const QUEUE: usize = 16;

    /// Creates the file here, so that it exists before anything can try to
    /// remove it again (the scratch guard, on an early error).
    async fn create(path: &Path) -> Result<Self, UploadError> {
        let file = tokio::fs::File::create(path)
            .await
            .map_err(|e| UploadError::Internal(e.into()))?
            .into_std()
            .await;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(Self::QUEUE);
        let task = tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let io = |e: std::io::Error| UploadError::Internal(e.into());
            // Chunks are large (tens to hundreds of KiB): written as they
            // come, without another copy through a buffer.
            let mut out = file;
            while let Some(chunk) = rx.blocking_recv() {
                out.write_all(&chunk).map_err(io)?;
            }
            out.flush().map_err(io)
        });
        Ok(Self {
            chunks: Some(tx),
            task,
        })
    }

    async fn write(&mut self, chunk: bytes::Bytes) -> Result<(), UploadError> {
        let sent = match &self.chunks {
            Some(tx) => tx.send(chunk).await.is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        // The writer stopped: its error says why.
        self.chunks = None;
        match (&mut self.task).await {
            Ok(Err(e)) => Err(e),
            Ok(Ok(())) => Err(UploadError::Internal(anyhow::anyhow!(
                "the scratch writer stopped early"
            ))),
            Err(e) => Err(UploadError::Internal(e.into())),
        }
    }

    /// Waits until everything is written and the file closed.
    async fn finish(mut self) -> Result<(), UploadError> {
        self.chunks = None;
        (&mut self.task)
            .await
            .map_err(|e| UploadError::Internal(e.into()))?
    }
}

struct Received {
    file: ScratchFile,
    file_name: String,
    name: Option<String>,
    size: u64,
    detected: Detected,
}

async fn receive(
    state: &AppState,
    id: Uuid,
    mut multipart: Multipart,
) -> Result<Received, UploadError> {
    let max = state.upload_max_bytes;
    let mut name = None;
    let mut file = None;
    while let Some(mut field) = multipart
        .next_field()
        .await
        .map_err(|e| UploadError::from_multipart(e, max))?
    {
        let field_name = field.name().map(str::to_owned);
        match field_name.as_deref() {
            Some("name") => {
                let text = field
                    .text()
                    .await
                    .map_err(|e| UploadError::from_multipart(e, max))?;
                if text.len() > 4 * 1024 {
                    return Err(NameError::TooLong {
                        len: text.chars().count(),
                        max: app::domain::MAX_DATASET_NAME_CHARS,
                    }
                    .into());
                }
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
                let scratch = ScratchFile(state.storage.tmp_dir().join(format!("{id}.upload")));
                let mut out = ScratchWriter::create(&scratch.0).await?;
                let mut inspector = Inspector::new();
                let mut chunks = 0u64;
                while let Some(chunk) = field
                    .chunk()
                    .await
                    .map_err(|e| UploadError::from_multipart(e, max))?
                {
                    if inspector.total() + chunk.len() as u64 > max {
                        return Err(UploadError::TooLarge { max });
                    }
                    inspector.feed(&chunk)?;
                    chunks += 1;
                    out.write(chunk).await?;
                }
                out.finish().await?;
                let size = inspector.total();
                let detected = inspector.finish()?;
                tracing::debug!(chunks, bytes = size, "file field received");
                file = Some((scratch, file_name, size, detected));
            }
            // Unknown fields (and a second file) are drained and ignored.
            _ => {
                while field
                    .chunk()
                    .await
                    .map_err(|e| UploadError::from_multipart(e, max))?
                    .is_some()
                {}
            }
        }
    }
    let (file, file_name, size, detected) = file.ok_or(UploadError::MissingFile)?;
    Ok(Received {
        file,
        file_name,
        name,
        size,
        detected,
    })
}

async fn store(
    state: &AppState,
    id: Uuid,
    received: Received,
) -> Result<UploadResponse, UploadError> {
    let name = match received.name.as_deref().map(str::trim) {
        Some(n) if !n.is_empty() => DatasetName::parse(n)?,
        _ => DatasetName::parse(name_from_file_name(&received.file_name))?,
    };

    let storage = state.storage.clone();
    let dest = storage.parquet_path(id);
    let scratch_parquet = ScratchFile(storage.tmp_dir().join(format!("{id}.parquet.partial")));
    let source = received.file.0.clone();
    let file_name = received.file_name.clone();
    let detected = received.detected;
    let scratch_path = scratch_parquet.0.clone();
    let dest_path = dest.clone();
    let started = std::time::Instant::now();
    let converted: Converted = tokio::task::spawn_blocking(move || {
        let conn = storage
            .connection()
            .map_err(|e| IngestError::Internal(e.into()))?;
        ingest::convert(
            &conn,
            &source,
            detected,
            &file_name,
            &scratch_path,
            &dest_path,
        )
    })
    .await
    .map_err(|e| UploadError::Internal(e.into()))??;
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "converted to Parquet"
    );
    received.file.remove_in_background();
    drop(scratch_parquet);

    // The Parquet file is in place; from here a failure must remove it again.
    let committed = insert(
        state,
        id,
        &name,
        &received.file_name,
        received.size,
        &converted,
    )
    .await;
    if committed.is_err() {
        remove_quietly(&dest).await;
    }
    committed
}

async fn insert(
    state: &AppState,
    id: Uuid,
    name: &DatasetName,
    file_name: &str,
    size: u64,
    converted: &Converted,
) -> Result<UploadResponse, UploadError> {
    let auto_sync = state.sync.available && state.sync.auto;
    let status = if auto_sync {
        SyncStatus::Pending
    } else {
        SyncStatus::LocalOnly
    };
    let metadata = json!({
        "databricks_enabled": state.sync.available,
        "sync_status": status.as_str(),
        "bronze_table": null,
        "silver_table": null,
        "last_sync_at": null,
    });
    let internal = |e: sqlx::Error| UploadError::Internal(e.into());
    let mut tx = state.db.begin().await.map_err(internal)?;
    let dataset = catalog::insert_dataset(
        &mut tx,
        &catalog::NewDataset {
            id,
            tenant_id: state.tenant_id,
            name,
            file_name,
            source_format: &converted.format,
            schema: &converted.schema,
            row_count: converted.row_count,
            size_bytes: i64::try_from(size).map_err(|e| UploadError::Internal(e.into()))?,
            sync_status: status,
            metadata,
        },
    )
    .await
    .map_err(internal)?;
    if auto_sync {
        // The outbox: the sync request commits with the dataset or not at all.
        sync_requests::enqueue(&mut tx, state.tenant_id, id, SyncReason::Upload)
            .await
            .map_err(internal)?;
    }
    tx.commit().await.map_err(internal)?;
    tracing::info!(rows = dataset.row_count, format = %dataset.source_format, "dataset stored");
    Ok(UploadResponse {
        dataset,
        schema: converted.schema.clone(),
    })
}

async fn remove_quietly(path: &Path) {
    if let Err(e) = tokio::fs::remove_file(path).await {
        tracing::warn!(path = %path.display(), error = %e, "could not remove an uncommitted dataset file");
    }
}

/// Percent-encodes everything but unreserved characters (RFC 3986).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_messages_are_encoded() {
        assert_eq!(percent_encode("a b/é"), "a%20b%2F%C3%A9");
    }
}

//! Receiving an upload's file field: every chunk goes, by a bounded queue,
//! to a blocking thread that runs it through the [`Inspector`] (UTF-16 and
//! windows-1252 decoded to UTF-8 first, format detection, UTF-8 checks, gzip
//! decompression: CPU work kept off the async
//! runtime) and appends it to a scratch file, so receiving and writing
//! overlap and bad input fails while it streams. The byte cap and the disk
//! floor are counted as the bytes arrive.

use super::{
    encoding::Decoding, Compression, Detected, Early, EarlyConvert, IngestError, Inspector,
    SourceKind,
};
use axum::extract::multipart::{Field, MultipartError};
use std::path::{Path, PathBuf};

/// Why a file field could not be received.
#[derive(Debug, thiserror::Error)]
pub enum ReceiveError {
    #[error("the file is larger than the upload limit")]
    TooLarge { max: u64 },
    #[error("the upload was interrupted or malformed")]
    Body(#[from] MultipartError),
    #[error(transparent)]
    Ingest(#[from] IngestError),
    #[error("writing the scratch file failed")]
    Io(#[from] std::io::Error),
    #[error("the scratch writer stopped unexpectedly")]
    WriterGone,
    #[error("the server is short of disk space")]
    DiskFull,
    #[error("the upload sent nothing for {0} s")]
    Stalled(u64),
}

/// The next chunk of `field`, or [`ReceiveError::Stalled`] after `idle` of silence.
pub async fn next_chunk(
    field: &mut Field<'_>,
    idle: std::time::Duration,
) -> Result<Option<bytes::Bytes>, ReceiveError> {
    match tokio::time::timeout(idle, field.chunk()).await {
        Ok(chunk) => Ok(chunk?),
        Err(_) => Err(ReceiveError::Stalled(idle.as_secs())),
    }
}

/// The free-space floor an upload must not push the disk under: checked
/// before the first byte and again every [`DiskFloor::EVERY`] bytes.
pub struct DiskFloor<'a> {
    pub storage: &'a crate::storage::Storage,
    /// `UPLOAD_MIN_FREE_DISK`.
    pub min_free: u64,
    /// What the client says it will send (`Content-Length`), if anything.
    pub expected: u64,
}

impl DiskFloor<'_> {
    const EVERY: u64 = 64 << 20;

    /// Refuses when `more` bytes would breach the floor. A file system that
    /// cannot tell its free space does not stop uploads.
    fn check(&self, more: u64) -> Result<(), ReceiveError> {
        match self.storage.would_breach(more, self.min_free) {
            Ok(true) => Err(ReceiveError::DiskFull),
            Ok(false) => Ok(()),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the free disk space");
                Ok(())
            }
        }
    }
}

/// How much an upload may send, and how long it may go silent.
#[derive(Debug, Clone, Copy)]
pub struct ReceiveLimits {
    pub max: u64,
    pub max_decompressed: u64,
    pub idle: std::time::Duration,
}

/// A file under the scratch directory that is deleted when dropped.
pub struct ScratchFile(PathBuf);

impl ScratchFile {
    pub fn new(path: PathBuf) -> Self {
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Removes the file on a blocking thread, without waiting. Deleting a large
    /// upload also drops its cached pages (about 60 ms for 1 GB), and nothing
    /// in the response depends on it. Should the process die first, start-up
    /// empties the scratch directory.
    pub fn remove_in_background(self) {
        tokio::task::spawn_blocking(move || drop(self));
    }
}

impl Drop for ScratchFile {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.0) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %self.0.display(), error = %e, "could not remove scratch file");
            }
        }
    }
}

/// Inspects and writes the upload on a blocking thread of its own, fed the
/// received chunks as they are (no copy), so receiving, inspecting and
/// writing run side by side. A bounded queue keeps memory flat: when the
/// disk (or decompression) is slower than the network, receiving waits.
struct ScratchWriter {
    chunks: Option<tokio::sync::mpsc::Sender<bytes::Bytes>>,
    /// Set before the queue closes when the upload arrived whole; a queue
    /// closed without it is an upload that failed.
    complete: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Taken when awaited.
    task: Option<tokio::task::JoinHandle<Result<Written, ReceiveError>>>,
}

/// What the writer thread made of a complete upload.
struct Written {
    detected: Detected,
    early: Option<Early>,
    decoded_from: Option<&'static str>,
}

impl ScratchWriter {
    /// Chunks queued at most (hyper and multer yield up to ~400 KiB each).
    const QUEUE: usize = 16;

    /// Creates the file here, so that it exists before anything can try to
    /// remove it again (the scratch guard, on an early error).
    async fn create(
        path: &Path,
        mut inspector: Inspector,
        mut early: Option<EarlyConvert>,
    ) -> Result<Self, ReceiveError> {
        let file = tokio::fs::File::create(path).await?.into_std().await;
        let (tx, mut rx) = tokio::sync::mpsc::channel::<bytes::Bytes>(Self::QUEUE);
        let complete = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let arrived = complete.clone();
        let task = tokio::task::spawn_blocking(move || {
            use std::io::Write;
            // Chunks are large (tens to hundreds of KiB): written as they
            // come, without another copy through a buffer.
            let mut out = file;
            let mut decoding = Decoding::default();
            let mut take = |bytes: &[u8]| -> Result<(), ReceiveError> {
                if bytes.is_empty() {
                    return Ok(());
                }
                inspector.feed(bytes)?;
                out.write_all(bytes)?;
                if let Some(early) = &mut early {
                    early.feed(bytes, inspector.plain_delimited());
                }
                Ok(())
            };
            while let Some(chunk) = rx.blocking_recv() {
                take(&decoding.feed(&chunk)?)?;
            }
            if !arrived.load(std::sync::atomic::Ordering::Acquire) {
                // The upload failed; nobody waits for this.
                return Err(ReceiveError::WriterGone);
            }
            take(&decoding.finish()?)?;
            out.flush()?;
            let detected = inspector.finish()?;
            let delimited = Detected::new(SourceKind::Delimited, Compression::None);
            let early = early
                .filter(|_| detected == delimited)
                .and_then(EarlyConvert::finish);
            Ok(Written {
                detected,
                early,
                decoded_from: decoding.decoded_from(),
            })
        });
        Ok(Self {
            chunks: Some(tx),
            complete,
            task: Some(task),
        })
    }

    async fn write(&mut self, chunk: bytes::Bytes) -> Result<(), ReceiveError> {
        if let Some(tx) = &self.chunks {
            if tx.send(chunk).await.is_ok() {
                return Ok(());
            }
        }
        // The writer stopped: its outcome says why.
        self.finish().await?;
        Err(ReceiveError::WriterGone)
    }

    /// Stops the writer after a failed upload and waits until it has
    /// cleaned up.
    async fn abort(&mut self) {
        self.chunks = None;
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Waits until everything is inspected, written and the file closed.
    async fn finish(&mut self) -> Result<Written, ReceiveError> {
        self.complete
            .store(true, std::sync::atomic::Ordering::Release);
        self.chunks = None;
        match self.task.take() {
            Some(task) => task.await.unwrap_or(Err(ReceiveError::WriterGone)),
            None => Err(ReceiveError::WriterGone),
        }
    }
}

/// A file field, received in full and inspected.
pub struct ReceivedFile {
    pub file: ScratchFile,
    pub size: u64,
    pub detected: Detected,
    /// The Parquet file, when it was converted while it arrived, or the
    /// dialect and types of its first rows, when it arrived too fast for that.
    pub early: Option<Early>,
    /// The encoding the text was decoded from (`UTF-16LE`, `windows-1252`),
    /// when it was not UTF-8; the scratch file holds it as UTF-8.
    pub decoded_from: Option<&'static str>,
}

/// Streams `field` into `scratch` (which is removed again on any error),
/// refusing more than `max` bytes, or gzip data that decompresses to more
/// than `max_decompressed`; `early`, if given, converts it as it arrives.
pub async fn receive_file(
    field: &mut Field<'_>,
    scratch: ScratchFile,
    limits: ReceiveLimits,
    floor: &DiskFloor<'_>,
    early: Option<EarlyConvert>,
) -> Result<ReceivedFile, ReceiveError> {
    let ReceiveLimits {
        max,
        max_decompressed,
        idle,
    } = limits;
    // The upload is stored twice for a moment (as sent, then as Parquet).
    floor.check(floor.expected.saturating_mul(2))?;
    let inspector = Inspector::with_decompressed_limit(max_decompressed);
    let mut out = ScratchWriter::create(scratch.path(), inspector, early).await?;
    let mut chunks = 0u64;
    let mut size = 0u64;
    let mut next_check = DiskFloor::EVERY;
    let received = async {
        while let Some(chunk) = next_chunk(field, idle).await? {
            if size + chunk.len() as u64 > max {
                return Err(ReceiveError::TooLarge { max });
            }
            size += chunk.len() as u64;
            if size >= next_check {
                next_check += DiskFloor::EVERY;
                floor.check(DiskFloor::EVERY)?;
            }
            chunks += 1;
            out.write(chunk).await?;
        }
        Ok(())
    }
    .await;
    if let Err(e) = received {
        // The writer drops what it made (an early conversion's file too)
        // before the uploader hears of the failure.
        out.abort().await;
        return Err(e);
    }
    let Written {
        detected,
        early,
        decoded_from,
    } = out.finish().await?;
    tracing::debug!(
        chunks,
        bytes = size,
        converted = matches!(early, Some(Early::Converted(_))),
        "file field received"
    );
    Ok(ReceivedFile {
        file: scratch,
        size,
        detected,
        early,
        decoded_from,
    })
}

//! Fetches the dataset's Parquet file: only from the app's internal listener
//! (`MCP_INTERNAL_BASE_URL`), with the link the sync signed for that one
//! dataset, without any credential of ours and without following
//! redirects; streamed to a temporary file with a size cap, and checked to
//! be Parquet before anything trusts it.

use futures::StreamExt;
use std::path::Path;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

const MAGIC: &[u8; 4] = b"PAR1";

#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("parquet_url must be an http:// or https:// URL")]
    BadUrl,
    #[error("parquet_url must be a ServiceTsunami download link (under MCP_INTERNAL_BASE_URL)")]
    NotAllowed,
    #[error("could not reach the file server: {reason}")]
    Unreachable { reason: String },
    #[error("the file server answered {status}")]
    Status { status: u16 },
    #[error("the file is larger than the {limit}-byte limit (MCP_MAX_DOWNLOAD_BYTES)")]
    TooLarge { limit: u64 },
    #[error("the downloaded file is not Parquet (no PAR1 header and footer)")]
    NotParquet,
    #[error("could not store the download: {0}")]
    Io(#[from] std::io::Error),
}

/// Downloads `url` into `dest`, returning the byte count.
/// Whether `url` is a download link under `base`: same scheme, host and
/// port, and a path under `{base path}/internal/storage/datasets/`.
pub fn allowed(url: &reqwest::Url, base: &str) -> bool {
    let Ok(base) = reqwest::Url::parse(base) else {
        return false;
    };
    let prefix = format!(
        "{}/internal/storage/datasets/",
        base.path().trim_end_matches('/')
    );
    url.scheme() == base.scheme()
        && url.host_str() == base.host_str()
        && url.port_or_known_default() == base.port_or_known_default()
        && url.username().is_empty()
        && url.password().is_none()
        && url.path().starts_with(&prefix)
        && !url.path()[prefix.len()..].contains('/')
}

/// Downloads `url` (which must be under `base`) into `dest`, returning the byte count.
pub async fn fetch_parquet(
    client: &reqwest::Client,
    url: &str,
    base: &str,
    limit: u64,
    dest: &Path,
) -> Result<u64, DownloadError> {
    let parsed = reqwest::Url::parse(url).map_err(|_| DownloadError::BadUrl)?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(DownloadError::BadUrl);
    }
    if !allowed(&parsed, base) {
        return Err(DownloadError::NotAllowed);
    }
    let unreachable = |e: reqwest::Error| DownloadError::Unreachable {
        reason: without_url(&e),
    };
    let response = client.get(parsed).send().await.map_err(unreachable)?;
    if !response.status().is_success() {
        return Err(DownloadError::Status {
            status: response.status().as_u16(),
        });
    }
    if response.content_length().is_some_and(|n| n > limit) {
        return Err(DownloadError::TooLarge { limit });
    }
    let mut file = tokio::fs::File::create(dest).await?;
    let mut written: u64 = 0;
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(unreachable)?;
        written += chunk.len() as u64;
        // Checked while streaming: Content-Length may be absent or wrong.
        if written > limit {
            drop(file);
            let _ = tokio::fs::remove_file(dest).await;
            return Err(DownloadError::TooLarge { limit });
        }
        file.write_all(&chunk).await?;
    }
    file.flush().await?;
    file.sync_all().await?;
    drop(file);
    if !is_parquet(dest).await? {
        let _ = tokio::fs::remove_file(dest).await;
        return Err(DownloadError::NotParquet);
    }
    Ok(written)
}

/// A Parquet file starts and ends with `PAR1` and is at least 12 bytes long.
pub async fn is_parquet(path: &Path) -> std::io::Result<bool> {
    let mut file = tokio::fs::File::open(path).await?;
    let len = file.metadata().await?.len();
    if len < 12 {
        return Ok(false);
    }
    let mut head = [0u8; 4];
    file.read_exact(&mut head).await?;
    file.seek(std::io::SeekFrom::End(-4)).await?;
    let mut tail = [0u8; 4];
    file.read_exact(&mut tail).await?;
    Ok(&head == MAGIC && &tail == MAGIC)
}

/// reqwest's messages embed the full URL (query string included); callers
/// see our shortened one instead.
fn without_url(e: &reqwest::Error) -> String {
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let mut reason = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "connection failed".to_owned()
    } else {
        "request failed".to_owned()
    };
    while let Some(s) = source {
        reason = format!("{reason}: {s}");
        source = s.source();
    }
    reason
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_links_under_the_internal_base_are_fetched() {
        let base = "http://127.0.0.1:3010";
        let ok = |u: &str| allowed(&reqwest::Url::parse(u).unwrap(), base);
        assert!(ok("http://127.0.0.1:3010/internal/storage/datasets/x.parquet?tenant=a&expires=1&signature=00"));
        for bad in [
            "http://127.0.0.1:3000/internal/storage/datasets/x.parquet",
            "http://localhost:3010/internal/storage/datasets/x.parquet",
            "https://127.0.0.1:3010/internal/storage/datasets/x.parquet",
            "http://169.254.169.254/latest/meta-data/",
            "http://127.0.0.1:3010/metrics",
            "http://127.0.0.1:3010/internal/storage/datasets/../../metrics",
            "http://user:pw@127.0.0.1:3010/internal/storage/datasets/x.parquet",
            "http://127.0.0.1:3010/internal/storage/datasets/a/b.parquet",
        ] {
            assert!(!ok(bad), "{bad}");
        }
        assert!(allowed(
            &reqwest::Url::parse("https://app.internal/st/internal/storage/datasets/x.parquet")
                .unwrap(),
            "https://app.internal/st/"
        ));
    }

    #[tokio::test]
    async fn magic_bytes_decide() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good");
        std::fs::write(&good, b"PAR1 some pages PAR1").unwrap();
        assert!(is_parquet(&good).await.unwrap());
        let csv = dir.path().join("csv");
        std::fs::write(&csv, b"a,b,c\n1,2,3\n4,5,6\n").unwrap();
        assert!(!is_parquet(&csv).await.unwrap());
        let short = dir.path().join("short");
        std::fs::write(&short, b"PAR1PAR1").unwrap();
        assert!(!is_parquet(&short).await.unwrap());
    }
}

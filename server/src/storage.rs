//! The write side of local dataset storage: `DATA_STORAGE_PATH/datasets/`
//! holds each dataset's Parquet file, `DATA_STORAGE_PATH/tmp/` the uploads in
//! flight (same file system, so renames are atomic), and one embedded DuckDB
//! instance converts uploads. Pages read the files through their own
//! instance ([`app::ssr::DatasetReader`]).

use app::ssr::{reader::open_engine, DatasetReader, EngineLimits};
use duckdb::Connection;
use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};
use uuid::Uuid;

#[derive(Clone)]
pub struct Storage {
    datasets_dir: PathBuf,
    tmp_dir: PathBuf,
    /// The conversion instance's first connection; each upload works on its
    /// own clone (`try_clone` shares the database, not the connection state).
    engine: Arc<Mutex<Connection>>,
}

impl Storage {
    /// Creates the directories if needed, empties the scratch directory (what
    /// is there belongs to uploads that died with an earlier process) and
    /// starts the conversion engine.
    pub fn open(root: &Path, limits: &EngineLimits) -> anyhow::Result<Self> {
        let datasets_dir = datasets_dir_of(root);
        let tmp_dir = root.join("tmp");
        std::fs::create_dir_all(&datasets_dir)?;
        if tmp_dir.exists() {
            std::fs::remove_dir_all(&tmp_dir)?;
        }
        std::fs::create_dir_all(&tmp_dir)?;
        let engine = open_engine(limits, &tmp_dir.join("duckdb-spill"))?;
        Ok(Self {
            datasets_dir,
            tmp_dir,
            engine: Arc::new(Mutex::new(engine)),
        })
    }

    /// A reader of the same files for the pages, with its own engine and limits.
    pub fn reader(&self, limits: &EngineLimits) -> anyhow::Result<DatasetReader> {
        Ok(DatasetReader::open(
            self.datasets_dir.clone(),
            limits,
            &self.tmp_dir.join("duckdb-read-spill"),
        )?)
    }

    pub fn datasets_dir(&self) -> &Path {
        &self.datasets_dir
    }

    pub fn tmp_dir(&self) -> &Path {
        &self.tmp_dir
    }

    /// Bytes free (for unprivileged writers) on the storage's file system.
    pub fn free_bytes(&self) -> std::io::Result<u64> {
        let stat = rustix::fs::statvfs(&self.datasets_dir)?;
        Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
    }

    /// Whether writing `more` bytes would leave less than `floor` free.
    pub fn would_breach(&self, more: u64, floor: u64) -> std::io::Result<bool> {
        Ok(self.free_bytes()? < floor.saturating_add(more))
    }

    /// Where the dataset's Parquet file lives once committed.
    pub fn parquet_path(&self, id: Uuid) -> PathBuf {
        self.datasets_dir.join(format!("{id}.parquet"))
    }

    /// A new connection to the conversion engine. Blocking: call it from
    /// `spawn_blocking`.
    pub fn connection(&self) -> Result<Connection, duckdb::Error> {
        let base = self
            .engine
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        base.try_clone()
    }
}

/// What start-up reconciliation found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Reconciled {
    /// Files of datasets no row names (an upload that died between its file
    /// and its commit, or a commit that did not happen): removed.
    pub orphans_removed: Vec<Uuid>,
    /// Datasets whose file is gone: reported, never invented.
    pub missing: Vec<Uuid>,
}

/// `DATA_STORAGE_PATH/datasets`: where committed Parquet files live.
pub fn datasets_dir_of(root: &Path) -> PathBuf {
    root.join("datasets")
}

/// Removes a dataset's Parquet file; a file already gone is fine.
pub async fn remove_dataset_file(datasets_dir: &Path, id: Uuid) -> std::io::Result<()> {
    match tokio::fs::remove_file(datasets_dir.join(format!("{id}.parquet"))).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// A file younger than this may belong to an upload still committing (in
/// this process or another one sharing the storage): it is left alone.
pub const ORPHAN_GRACE: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Compares the files in `datasets/` with the catalogue: removes (and logs)
/// orphan files older than `grace`, and reports (logs) datasets without a
/// file. Files that are not `<uuid>.parquet` are not ours to judge.
pub async fn reconcile(
    db: &sqlx::PgPool,
    storage: &Storage,
    grace: std::time::Duration,
) -> anyhow::Result<Reconciled> {
    let ids: std::collections::HashSet<Uuid> = sqlx::query_scalar!("SELECT id FROM datasets")
        .fetch_all(db)
        .await?
        .into_iter()
        .collect();
    let mut on_disk = std::collections::HashSet::new();
    let mut report = Reconciled::default();
    let mut entries = tokio::fs::read_dir(storage.datasets_dir()).await?;
    while let Some(entry) = entries.next_entry().await? {
        let path = entry.path();
        let Some(id) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".parquet"))
            .and_then(|stem| Uuid::parse_str(stem).ok())
        else {
            continue;
        };
        on_disk.insert(id);
        if ids.contains(&id) {
            continue;
        }
        let age = entry
            .metadata()
            .await?
            .modified()?
            .elapsed()
            .unwrap_or_default();
        if age < grace {
            continue;
        }
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {
                tracing::warn!(dataset = %id, "removed a dataset file no catalogue row names");
                report.orphans_removed.push(id);
            }
            Err(e) => {
                tracing::warn!(dataset = %id, error = %e, "could not remove an orphan dataset file")
            }
        }
    }
    report.missing = ids.difference(&on_disk).copied().collect();
    report.missing.sort();
    if !report.missing.is_empty() {
        tracing::error!(
            count = report.missing.len(),
            datasets = ?report.missing.iter().take(20).collect::<Vec<_>>(),
            "datasets in the catalogue have no Parquet file in DATA_STORAGE_PATH"
        );
    }
    Ok(report)
}

//! The write side of local dataset storage: `DATA_STORAGE_PATH/datasets/`
//! holds each dataset's Parquet file, `DATA_STORAGE_PATH/tmp/` the uploads in
//! flight (same file system, so renames are atomic), and one embedded DuckDB
//! instance converts uploads. Pages read the files through their own
//! instance ([`app::ssr::DatasetReader`]).
//!
//! **Scratch space per process.** Replicas may share one storage path, so
//! each process works in its own `tmp/p-<uuid>/` and holds an exclusive lock
//! on `tmp/p-<uuid>.lock` for as long as it lives. At start-up a process
//! removes only the scratch directories whose lock it can take: their owner
//! died (the kernel drops a dead process's locks), so what is there belongs
//! to uploads that died with it. A live replica's uploads are never touched.

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
    /// This process's own scratch directory (see the module's notes).
    tmp_dir: PathBuf,
    /// Held, locked, for the process's life: it marks `tmp_dir` as in use.
    _scratch_lock: Arc<std::fs::File>,
    /// The conversion instance's first connection; each upload works on its
    /// own clone (`try_clone` shares the database, not the connection state).
    engine: Arc<Mutex<Connection>>,
    /// Conversions take it shared; one that ran out of memory beside others
    /// takes it exclusively for its second try.
    pub conversions: Arc<tokio::sync::RwLock<()>>,
}

impl Storage {
    /// Creates the directories if needed, claims a scratch directory of its
    /// own, removes those of processes that died (what is there belongs to
    /// uploads that died with them) and starts the conversion engine.
    pub fn open(root: &Path, limits: &EngineLimits) -> anyhow::Result<Self> {
        let datasets_dir = datasets_dir_of(root);
        let scratch_root = root.join("tmp");
        std::fs::create_dir_all(&datasets_dir)?;
        std::fs::create_dir_all(&scratch_root)?;
        let (tmp_dir, lock) = claim_scratch(&scratch_root)?;
        sweep_scratch(&scratch_root);
        let engine = open_engine(limits, &tmp_dir.join("duckdb-spill"))?;
        Ok(Self {
            datasets_dir,
            tmp_dir,
            _scratch_lock: Arc::new(lock),
            engine: Arc::new(Mutex::new(engine)),
            conversions: Arc::new(tokio::sync::RwLock::new(())),
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

    /// Where the dataset's Parquet file lives once committed: the rows of
    /// its current version (see [`version_path`](Self::version_path)).
    pub fn parquet_path(&self, id: Uuid) -> PathBuf {
        self.datasets_dir.join(format!("{id}.parquet"))
    }

    /// One version's own rows, which the sync stages in bronze:
    /// `<id>.v<n>.parquet`. Version 1 of a dataset that never had another
    /// lives at [`parquet_path`](Self::parquet_path) alone (a hard link
    /// keeps it at both once a second version comes).
    pub fn version_path(&self, id: Uuid, version: i32) -> PathBuf {
        self.datasets_dir.join(format!("{id}.v{version}.parquet"))
    }

    /// The file holding `version`'s own rows, if there is one.
    pub fn version_file(&self, id: Uuid, version: i32) -> Option<PathBuf> {
        let own = self.version_path(id, version);
        if own.is_file() {
            Some(own)
        } else if version == 1 {
            Some(self.parquet_path(id)).filter(|p| p.is_file())
        } else {
            None
        }
    }

    /// A converted upload waiting for its uploader to choose replace or
    /// append: `<dataset>.staged-<staged id>.parquet`.
    pub fn staged_path(&self, dataset: Uuid, staged: Uuid) -> PathBuf {
        self.datasets_dir
            .join(format!("{dataset}.staged-{}.parquet", staged.simple()))
    }

    /// The dataset's next current file, written before the catalogue
    /// commits version `version` and renamed over
    /// [`parquet_path`](Self::parquet_path) after it (start-up finishes or
    /// undoes a rename a crash interrupted).
    pub fn next_path(&self, id: Uuid, version: i32) -> PathBuf {
        self.datasets_dir
            .join(format!("{id}.next-v{version}.parquet"))
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

/// The conversion engine on one thread until dropped: each thread holds
/// its own buffers of every column, so a file of a thousand columns that
/// runs out of memory on two converts on one. The setting is the engine's:
/// only while nothing else converts (the `conversions` lock held for
/// writing).
pub struct OneThread<'a> {
    conn: &'a Connection,
    threads: i64,
}

impl<'a> OneThread<'a> {
    pub fn set(conn: &'a Connection) -> Result<Self, duckdb::Error> {
        let threads = conn.query_row("SELECT current_setting('threads')", [], |row| row.get(0))?;
        conn.execute_batch("SET threads = 1")?;
        Ok(Self { conn, threads })
    }
}

impl Drop for OneThread<'_> {
    fn drop(&mut self) {
        if let Err(e) = self
            .conn
            .execute_batch(&format!("SET threads = {}", self.threads))
        {
            tracing::error!(error = %e, threads = self.threads, "could not restore the conversion engine's threads");
        }
    }
}

/// A new scratch directory for this process, and its lock, taken before
/// the lock file gets its name (a rename is atomic), so no sweeper ever sees
/// the name unlocked while its owner lives.
fn claim_scratch(scratch_root: &Path) -> anyhow::Result<(PathBuf, std::fs::File)> {
    let name = format!("p-{}", Uuid::new_v4().simple());
    let pending = scratch_root.join(format!(".{name}.lock"));
    let lock = std::fs::File::create(&pending)?;
    try_lock(&lock).map_err(|e| anyhow::anyhow!("locking a new scratch lock file: {e}"))?;
    std::fs::rename(&pending, scratch_root.join(format!("{name}.lock")))?;
    let dir = scratch_root.join(&name);
    std::fs::create_dir_all(&dir)?;
    Ok((dir, lock))
}

/// Removes the scratch directories (and lock files) of processes that are
/// gone: those whose lock can be taken. Entries of the layout before
/// per-process scratch (files straight under `tmp/`) are removed too.
/// Failures are logged: a leftover is wasted space, not an error.
fn sweep_scratch(scratch_root: &Path) {
    let Ok(entries) = std::fs::read_dir(scratch_root) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let removed = if let Some(owner) = name.strip_suffix(".lock") {
            if owner.starts_with('.') {
                // Being claimed right now, or a claim that died half-way:
                // only a stale one goes.
                if older_than(&path, ORPHAN_GRACE) {
                    std::fs::remove_file(&path)
                } else {
                    continue;
                }
            } else {
                let Ok(file) = std::fs::OpenOptions::new().write(true).open(&path) else {
                    continue;
                };
                if try_lock(&file).is_err() {
                    continue; // its owner lives
                }
                let dir = scratch_root.join(owner);
                let gone = match std::fs::remove_dir_all(&dir) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                    _ => Ok(()),
                };
                gone.and_then(|()| std::fs::remove_file(&path))
            }
        } else if name.starts_with("p-") {
            if scratch_root.join(format!("{name}.lock")).exists() {
                continue; // judged by its lock file
            }
            std::fs::remove_dir_all(&path)
        } else if entry.file_type().is_ok_and(|t| t.is_dir()) {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        match removed {
            Ok(()) => {
                tracing::info!(entry = %name, "removed scratch space of a process that is gone")
            }
            Err(e) => {
                tracing::warn!(entry = %name, error = %e, "could not remove old scratch space")
            }
        }
    }
}

/// An exclusive `flock` without waiting; released when the file closes
/// (and by the kernel when its process dies).
fn try_lock(file: &std::fs::File) -> std::io::Result<()> {
    rustix::fs::flock(file, rustix::fs::FlockOperation::NonBlockingLockExclusive)
        .map_err(std::io::Error::from)
}

fn older_than(path: &Path, age: std::time::Duration) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t.elapsed().unwrap_or_default() > age)
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

/// What a file in `datasets/` is, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredFile {
    /// `<id>.parquet`: the current rows.
    Current(Uuid),
    /// `<id>.v<n>.parquet`: one version's own rows.
    Version(Uuid, i32),
    /// `<id>.next-v<n>.parquet`: the current rows of version n, before the
    /// rename that makes them current.
    Next(Uuid, i32),
    /// `<id>.staged-<staged id>.parquet`: a possible next version.
    Staged(Uuid, Uuid),
}

impl StoredFile {
    pub fn parse(name: &str) -> Option<Self> {
        let stem = name.strip_suffix(".parquet")?;
        let (id, rest) = match stem.split_once('.') {
            Some((id, rest)) => (id, Some(rest)),
            None => (stem, None),
        };
        // Only the canonical hyphenated lowercase form is ours.
        let id = Uuid::parse_str(id)
            .ok()
            .filter(|u| u.hyphenated().to_string() == id)?;
        let version = |v: &str| v.parse::<i32>().ok().filter(|v| *v >= 1);
        match rest {
            None => Some(Self::Current(id)),
            Some(r) => {
                if let Some(v) = r.strip_prefix("next-v") {
                    version(v).map(|v| Self::Next(id, v))
                } else if let Some(s) = r.strip_prefix("staged-") {
                    Uuid::try_parse(s).ok().map(|s| Self::Staged(id, s))
                } else {
                    r.strip_prefix('v')
                        .and_then(version)
                        .map(|v| Self::Version(id, v))
                }
            }
        }
    }

    pub fn dataset(self) -> Uuid {
        match self {
            Self::Current(id) | Self::Version(id, _) | Self::Next(id, _) | Self::Staged(id, _) => {
                id
            }
        }
    }
}

/// Removes every file of a dataset (current, versions, next, staged); files
/// already gone are fine.
pub async fn remove_dataset_file(datasets_dir: &Path, id: Uuid) -> std::io::Result<()> {
    let mut entries = tokio::fs::read_dir(datasets_dir).await?;
    while let Some(entry) = entries.next_entry().await? {
        let name = entry.file_name();
        let ours = name
            .to_str()
            .and_then(StoredFile::parse)
            .is_some_and(|f| f.dataset() == id);
        if !ours {
            continue;
        }
        match tokio::fs::remove_file(entry.path()).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// A file younger than this may belong to an upload still committing (in
/// this process or another one sharing the storage): it is left alone.
pub const ORPHAN_GRACE: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// How long a staged version waits for its uploader's choice.
pub const STAGED_TTL_HOURS: i32 = 24;

/// Compares the files in `datasets/` with the catalogue, and:
/// - removes (and logs) files of datasets no row names, older than `grace`;
/// - finishes a new version's commit that a crash cut between the
///   catalogue's commit and the rename of its current file (`next-v<n>` of
///   the catalogue's version), and removes the files of commits that did not
///   happen (a `next-v` or `v<n>` past the catalogue's version, and older
///   than `grace`);
/// - removes staged versions older than [`STAGED_TTL_HOURS`], and staged
///   files no row names;
/// - reports (logs) datasets without a current file.
///
/// Files whose names are not ours are not ours to judge.
pub async fn reconcile(
    db: &sqlx::PgPool,
    storage: &Storage,
    grace: std::time::Duration,
) -> anyhow::Result<Reconciled> {
    let expired = sqlx::query!(
        "DELETE FROM staged_versions WHERE created_at < now() - make_interval(hours => $1)
         RETURNING id, dataset_id",
        STAGED_TTL_HOURS,
    )
    .fetch_all(db)
    .await?;
    for e in &expired {
        let _ = tokio::fs::remove_file(storage.staged_path(e.dataset_id, e.id)).await;
    }
    let versions: std::collections::HashMap<Uuid, i32> =
        sqlx::query!("SELECT id, version FROM datasets")
            .fetch_all(db)
            .await?
            .into_iter()
            .map(|r| (r.id, r.version))
            .collect();
    let staged: std::collections::HashSet<Uuid> =
        sqlx::query_scalar!("SELECT id FROM staged_versions")
            .fetch_all(db)
            .await?
            .into_iter()
            .collect();
    let mut on_disk = std::collections::HashSet::new();
    let mut report = Reconciled::default();
    let mut entries = tokio::fs::read_dir(storage.datasets_dir()).await?;
    while let Some(entry) = entries.next_entry().await? {
        let path = entry.path();
        let Some(file) = entry.file_name().to_str().and_then(StoredFile::parse) else {
            continue;
        };
        let id = file.dataset();
        let age = entry
            .metadata()
            .await?
            .modified()?
            .elapsed()
            .unwrap_or_default();
        let old = age >= grace;
        let current = versions.get(&id).copied();
        let verdict = match (file, current) {
            (StoredFile::Current(_), Some(_)) => {
                on_disk.insert(id);
                continue;
            }
            (StoredFile::Next(_, v), Some(c)) if v == c => {
                // Committed, not yet current: finish the rename.
                match tokio::fs::rename(&path, storage.parquet_path(id)).await {
                    Ok(()) => {
                        tracing::warn!(dataset = %id, version = v, "finished a new version's interrupted commit");
                        on_disk.insert(id);
                    }
                    Err(e) => {
                        tracing::warn!(dataset = %id, error = %e, "could not finish a new version's commit")
                    }
                }
                continue;
            }
            (StoredFile::Next(_, v) | StoredFile::Version(_, v), Some(c)) if v > c && old => {
                "removed a new version's file whose commit did not happen"
            }
            (StoredFile::Next(_, v), Some(c)) if v < c => "removed a superseded next file",
            (StoredFile::Staged(_, s), Some(_)) if !staged.contains(&s) && old => {
                "removed a staged version no row names"
            }
            (_, None) if old => "removed a dataset file no catalogue row names",
            _ => continue,
        };
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {
                tracing::warn!(dataset = %id, file = %path.display(), "{verdict}");
                if current.is_none() && !report.orphans_removed.contains(&id) {
                    report.orphans_removed.push(id);
                }
            }
            Err(e) => {
                tracing::warn!(dataset = %id, error = %e, "could not remove an orphan dataset file")
            }
        }
    }
    report.missing = versions
        .keys()
        .filter(|id| !on_disk.contains(id))
        .copied()
        .collect();
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

#[cfg(test)]
mod tests {
    use super::Storage;
    use app::ssr::EngineLimits;

    fn limits() -> EngineLimits {
        EngineLimits {
            threads: 1,
            memory_limit: "64MB".to_owned(),
        }
    }

    /// Two processes (here two instances, each with its own lock) share one
    /// storage path: the second's start-up leaves the first's uploads in
    /// flight alone, and a later start-up clears what the first left once it
    /// is gone, along with the layout from before per-process scratch.
    #[test]
    fn stored_file_names_parse_only_in_their_canonical_forms() {
        use super::StoredFile;
        use uuid::Uuid;
        let id = Uuid::parse_str("6f1c1f9e-8c63-4e3b-9a57-2f4f7d1e0c11").unwrap();
        let staged = Uuid::parse_str("0f1c1f9e-8c63-4e3b-9a57-2f4f7d1e0c11").unwrap();
        assert_eq!(
            StoredFile::parse(&format!("{id}.parquet")),
            Some(StoredFile::Current(id))
        );
        assert_eq!(
            StoredFile::parse(&format!("{id}.v12.parquet")),
            Some(StoredFile::Version(id, 12))
        );
        assert_eq!(
            StoredFile::parse(&format!("{id}.next-v3.parquet")),
            Some(StoredFile::Next(id, 3))
        );
        assert_eq!(
            StoredFile::parse(&format!("{id}.staged-{}.parquet", staged.simple())),
            Some(StoredFile::Staged(id, staged))
        );
        for bad in [
            format!("{id}.v0.parquet"),
            format!("{id}.v-1.parquet"),
            format!("{id}.vx.parquet"),
            format!("{id}.parquet.partial"),
            format!("{}.parquet", id.simple()),
            format!("{}.parquet", id.hyphenated().to_string().to_uppercase()),
            "notes.parquet".to_owned(),
        ] {
            assert_eq!(StoredFile::parse(&bad), None, "{bad}");
        }
    }

    #[test]
    fn start_up_removes_only_the_scratch_of_processes_that_are_gone() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("tmp")).unwrap();
        let legacy = root.path().join("tmp/123.upload");
        std::fs::write(&legacy, b"old layout").unwrap();

        let first = Storage::open(root.path(), &limits()).unwrap();
        let in_flight = first.tmp_dir().join("abc.upload");
        std::fs::write(&in_flight, b"half an upload").unwrap();
        assert!(!legacy.exists(), "the old layout's leftovers go");

        let second = Storage::open(root.path(), &limits()).unwrap();
        assert_ne!(first.tmp_dir(), second.tmp_dir());
        assert!(in_flight.exists(), "a live replica's upload is kept");

        let first_dir = first.tmp_dir().to_owned();
        drop(first);
        let third = Storage::open(root.path(), &limits()).unwrap();
        assert!(!first_dir.exists(), "a dead process's scratch goes");
        assert!(second.tmp_dir().exists() && third.tmp_dir().exists());
        let left: Vec<String> = std::fs::read_dir(root.path().join("tmp"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left.len(), 4, "two directories and their locks: {left:?}");
    }
}

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
        let datasets_dir = root.join("datasets");
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

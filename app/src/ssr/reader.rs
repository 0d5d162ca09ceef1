//! Reading the local dataset files (`DATA_STORAGE_PATH/datasets/{id}.parquet`)
//! for pages: previews and column statistics, through an embedded DuckDB
//! instance of its own. Uploads convert through another instance (the
//! server's), so a heavy page read and an upload never compete for one
//! memory budget.

use super::sql::{quote_ident, quote_literal};
use crate::model::{ColumnSchema, ColumnStats, Preview};
use duckdb::Connection;
use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("the Parquet file of dataset {0} is missing")]
    Missing(Uuid),
    #[error("DuckDB failed")]
    DuckDb(#[from] duckdb::Error),
}

/// Longest preview cell shown, in characters; longer ones end in `…`.
pub const MAX_CELL_CHARS: usize = 1_000;
/// Longest min/max shown in the column statistics.
pub const MAX_STAT_CHARS: usize = 200;

/// `expr` (text) cut to `max` characters in SQL, marked with `…` when cut.
pub(crate) fn bounded_text(expr: &str, max: usize) -> String {
    format!("CASE WHEN length({expr}) > {max} THEN left({expr}, {max}) || '…' ELSE {expr} END")
}

/// DuckDB resource limits of one embedded instance.
#[derive(Debug, Clone)]
pub struct EngineLimits {
    pub threads: usize,
    pub memory_limit: String,
}

/// Opens an in-memory DuckDB instance within `limits`, spilling to `spill_dir`.
/// Without async I/O threads: DuckDB 2.0 can deadlock when a `COPY … TO`
/// that hands its writes to them fails or is stopped half-way (the aborting
/// writer waits for a write task that waits for the writer's lock), and a
/// conversion that fails (a value the sample did not foresee) or is stopped
/// (an upload cut off) is routine. The statement's own threads write instead.
pub fn open_engine(limits: &EngineLimits, spill_dir: &Path) -> Result<Connection, duckdb::Error> {
    let conn = Connection::open_in_memory()?;
    conn.execute_batch(&format!(
        "SET threads = {}; SET memory_limit = {}; SET temp_directory = {}; \
         SET enable_progress_bar = false; SET async_threads = 0;",
        limits.threads.max(1),
        quote_literal(&limits.memory_limit),
        quote_literal(&spill_dir.to_string_lossy()),
    ))?;
    Ok(conn)
}

/// The page-side reader of the dataset files. Cheap to clone.
#[derive(Clone)]
pub struct DatasetReader {
    datasets_dir: PathBuf,
    /// The instance's first connection; every read works on its own clone
    /// (`try_clone` shares the database, not the connection state).
    engine: Arc<Mutex<Connection>>,
}

impl DatasetReader {
    /// Reads files in `datasets_dir`, with its own DuckDB instance.
    pub fn open(
        datasets_dir: PathBuf,
        limits: &EngineLimits,
        spill_dir: &Path,
    ) -> Result<Self, duckdb::Error> {
        Ok(Self {
            datasets_dir,
            engine: Arc::new(Mutex::new(open_engine(limits, spill_dir)?)),
        })
    }

    /// Where a dataset's Parquet file lives.
    pub fn parquet_path(&self, id: Uuid) -> PathBuf {
        self.datasets_dir.join(format!("{id}.parquet"))
    }

    fn connection(&self) -> Result<Connection, ReadError> {
        let base = self
            .engine
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Ok(base.try_clone()?)
    }

    fn existing_parquet(&self, id: Uuid) -> Result<String, ReadError> {
        let path = self.parquet_path(id);
        if !path.is_file() {
            return Err(ReadError::Missing(id));
        }
        Ok(quote_literal(&path.to_string_lossy()))
    }

    /// The first `limit` rows, every value cast to text and cut to
    /// [`MAX_CELL_CHARS`] in SQL (so a file of huge strings cannot make a
    /// preview cost more than its page shows), read [`COLUMNS_PER_SCAN`]
    /// columns at a time. Blocking.
    pub fn preview(
        &self,
        id: Uuid,
        columns: &[ColumnSchema],
        limit: usize,
    ) -> Result<Preview, ReadError> {
        let file = self.existing_parquet(id)?;
        let conn = self.connection()?;
        let mut rows: Vec<Vec<Option<String>>> = Vec::new();
        for batch in columns.chunks(COLUMNS_PER_SCAN) {
            let cells: Vec<String> = batch
                .iter()
                .map(|c| {
                    bounded_text(
                        &format!("{}::VARCHAR", quote_ident(&c.name)),
                        MAX_CELL_CHARS,
                    )
                })
                .collect();
            let mut stmt = conn.prepare(&format!(
                // `OFFSET 0` keeps the cut below the LIMIT: otherwise DuckDB
                // reads the first rows whole first (late materialisation),
                // and a few 20 MB strings exhaust the read instance.
                "SELECT * FROM (SELECT {} FROM read_parquet({file}) OFFSET 0) LIMIT {limit}",
                cells.join(", ")
            ))?;
            let mut result = stmt.query([])?;
            let mut at = 0;
            while let Some(row) = result.next()? {
                if at == rows.len() {
                    rows.push(Vec::with_capacity(columns.len()));
                }
                for i in 0..batch.len() {
                    rows[at].push(row.get::<_, Option<String>>(i)?);
                }
                at += 1;
            }
        }
        Ok(Preview {
            columns: columns.iter().map(|c| c.name.clone()).collect(),
            rows,
        })
    }

    /// Null count, approximate distinct count, min and max of every column,
    /// in one scan of the file per [`COLUMNS_PER_SCAN`] columns, and
    /// histograms of the numeric ones. Blocking.
    pub fn column_stats(
        &self,
        id: Uuid,
        columns: &[ColumnSchema],
    ) -> Result<Vec<ColumnStats>, ReadError> {
        let file = self.existing_parquet(id)?;
        let conn = self.connection()?;
        let mut stats = Vec::with_capacity(columns.len());
        for batch in columns.chunks(COLUMNS_PER_SCAN) {
            let exprs: Vec<String> = batch
                .iter()
                .map(|c| {
                    let col = quote_ident(&c.name);
                    // Text is compared by its first characters (the order of
                    // prefixes is the order of the strings), so min and max
                    // never hold a whole huge value.
                    let (min, max) = if c.data_type == "VARCHAR" {
                        let prefix = format!("left({col}, {})", MAX_STAT_CHARS + 1);
                        (format!("min({prefix})"), format!("max({prefix})"))
                    } else {
                        (
                            format!("min({col})::VARCHAR"),
                            format!("max({col})::VARCHAR"),
                        )
                    };
                    format!(
                        "count(*) - count({col}), approx_count_distinct({col}), {}, {}",
                        bounded_text(&min, MAX_STAT_CHARS),
                        bounded_text(&max, MAX_STAT_CHARS)
                    )
                })
                .collect();
            let sql = format!("SELECT {} FROM read_parquet({file})", exprs.join(", "));
            let found = conn.query_row(&sql, [], |row| {
                batch
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        Ok(ColumnStats {
                            name: c.name.clone(),
                            null_count: row.get(i * 4)?,
                            approx_distinct: row.get(i * 4 + 1)?,
                            min: row.get(i * 4 + 2)?,
                            max: row.get(i * 4 + 3)?,
                            histogram: None,
                        })
                    })
                    .collect::<Result<Vec<_>, duckdb::Error>>()
            })?;
            stats.extend(found);
        }
        self.add_histograms(&conn, &file, columns, &mut stats)?;
        Ok(stats)
    }

    /// Equal-width histograms ([`HISTOGRAM_BINS`] bins between min and max) of
    /// the numeric columns, in one more scan per [`HISTOGRAMS_PER_SCAN`] of
    /// them; those a scan cannot compute are left out (logged).
    fn add_histograms(
        &self,
        conn: &Connection,
        file: &str,
        columns: &[ColumnSchema],
        stats: &mut [ColumnStats],
    ) -> Result<(), ReadError> {
        let bins = HISTOGRAM_BINS as f64;
        let mut numeric = Vec::new();
        let mut exprs = Vec::new();
        for (i, (c, st)) in columns.iter().zip(stats.iter()).enumerate() {
            if !is_numeric(&c.data_type) {
                continue;
            }
            let (Some(min), Some(max)) = (
                st.min.as_deref().and_then(|v| v.parse::<f64>().ok()),
                st.max.as_deref().and_then(|v| v.parse::<f64>().ok()),
            ) else {
                continue;
            };
            if !(min.is_finite() && max.is_finite()) {
                continue;
            }
            let col = quote_ident(&c.name);
            let width = if max > min { (max - min) / bins } else { 1.0 };
            exprs.push(format!(
                "to_json(histogram(least(greatest(floor((CAST({col} AS DOUBLE) - {min:?}) / {width:?}), 0), {last})::INTEGER) \
                 FILTER (WHERE {col} IS NOT NULL AND isfinite(CAST({col} AS DOUBLE))))::VARCHAR",
                last = HISTOGRAM_BINS - 1,
            ));
            numeric.push(i);
        }
        for (batch, of) in exprs
            .chunks(HISTOGRAMS_PER_SCAN)
            .zip(numeric.chunks(HISTOGRAMS_PER_SCAN))
        {
            let sql = format!("SELECT {} FROM read_parquet({file})", batch.join(", "));
            let found = conn.query_row(&sql, [], |row| {
                (0..batch.len())
                    .map(|k| row.get(k))
                    .collect::<Result<Vec<Option<String>>, _>>()
            });
            let maps = match found {
                Ok(maps) => maps,
                Err(e) => {
                    // The sparklines are an aid: a page without some still
                    // shows the rest of its statistics.
                    tracing::warn!(error = %e, columns = batch.len(), "histograms not computed");
                    continue;
                }
            };
            for (&i, map) in of.iter().zip(maps) {
                let mut counts = vec![0i64; HISTOGRAM_BINS];
                if let Some(map) = map {
                    let parsed: std::collections::HashMap<String, i64> =
                        serde_json::from_str(&map).unwrap_or_default();
                    for (bin, n) in parsed {
                        if let Some(slot) =
                            bin.parse::<usize>().ok().and_then(|b| counts.get_mut(b))
                        {
                            *slot += n;
                        }
                    }
                }
                stats[i].histogram = Some(counts);
            }
        }
        Ok(())
    }
}

/// Most columns one scan of a dataset's file reads for a page. The Parquet
/// reader holds buffers for every column it reads: the page of a dataset of
/// 1,000 columns ran out of the read instance's memory (128 MB) in one
/// scan, and takes five now. Narrower datasets are still read in one.
pub const COLUMNS_PER_SCAN: usize = 200;

/// Most histograms one scan computes: each filtered `histogram` holds
/// buffers of its own, and 50 of them ran out of the read instance's
/// 128 MB on a file of 8,000 rows.
pub const HISTOGRAMS_PER_SCAN: usize = 20;

/// Bins of the numeric columns' histograms (the sparklines on the dataset page).
pub const HISTOGRAM_BINS: usize = 20;

fn is_numeric(data_type: &str) -> bool {
    let t = data_type.to_ascii_uppercase();
    matches!(
        t.as_str(),
        "TINYINT"
            | "SMALLINT"
            | "INTEGER"
            | "BIGINT"
            | "HUGEINT"
            | "UTINYINT"
            | "USMALLINT"
            | "UINTEGER"
            | "UBIGINT"
            | "UHUGEINT"
            | "FLOAT"
            | "DOUBLE"
    ) || t.starts_with("DECIMAL")
}

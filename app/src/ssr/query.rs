//! The query page's local engine: DuckDB over the tenant's own Parquet files,
//! in a fresh in-memory instance per query that holds only the datasets the
//! query names, as views under their normalised names (the names silver
//! uses). Like the MCP server's sandbox: the instance may open exactly those
//! files (`allowed_paths`, external access off: no other file, directory
//! listing, URL, ATTACH or COPY), loads and installs no extension, has its
//! own `memory_limit` and `threads` and no spill directory, and then locks
//! its configuration. A timer interrupts it at the timeout, and at most
//! `slots` queries run at once.
//!
//! Each query runs in a process of its own ([`contract::isolate`]: the
//! server binary started as `query-worker`), whose memory is capped at
//! [`contract::isolate::duckdb_cap`]: DuckDB's `memory_limit` does not bound a value a query
//! makes (`repeat('x', 1500000000)`, `range(300000000)`), and such a value
//! must cost the query, not the server.

use super::sql::{quote_ident, quote_literal};
use crate::model::{ColumnSchema, QueryColumn};
use duckdb::Connection;
use serde::{Deserialize, Serialize};
use std::{collections::HashMap, path::PathBuf, sync::Arc, time::Duration};
use uuid::Uuid;

/// What one query may use.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QueryBounds {
    pub memory_bytes: u64,
    pub threads: usize,
    pub timeout: Duration,
    /// Rows shown; the result says when there were more.
    pub max_rows: usize,
    /// Largest file a download of a whole result may write.
    pub max_download_bytes: u64,
}

/// How the server runs queries: their bounds, how many at once, and the
/// processes they run in.
#[derive(Debug, Clone)]
pub struct QueryLimits {
    pub bounds: QueryBounds,
    /// One permit per query that may run at once.
    pub slots: Arc<tokio::sync::Semaphore>,
    pub workers: Arc<contract::isolate::Workers>,
}

/// How long after its own timeout a query's process is killed: it stops
/// itself at the timeout; this is for one that cannot.
const KILL_AFTER: Duration = Duration::from_secs(5);

/// One of the tenant's datasets as a table of the query page.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LocalTable {
    /// Its SQL name: the normalised dataset name (made unique).
    pub name: String,
    pub dataset_id: Uuid,
    pub file: PathBuf,
    pub columns: Vec<ColumnSchema>,
}

#[derive(Debug, thiserror::Error, Serialize, Deserialize)]
pub enum QueryError {
    #[error("the result is larger than {0} MiB, the most one download may be; narrow the query")]
    TooLarge(u64),
    #[error("as many queries as this server runs at once are running; try again in a moment")]
    Busy,
    #[error("the query ran longer than {0} s and was stopped")]
    Timeout(u64),
    #[error("only one SELECT (or WITH … SELECT) statement can run here")]
    NotReadOnly,
    #[error("table functions (read_csv, glob, duckdb_settings, …) are not available here; query your datasets by name")]
    TableFunction,
    #[error("the query needs more than its {0} MiB of memory")]
    OutOfMemory(u64),
    /// Its process ended without an answer (it crashed, or the system
    /// stopped it); the cause is logged.
    #[error("the query stopped before it answered (it may need more than its {0} MiB of memory); narrow it, and if it persists, the cause has been logged")]
    Stopped(u64),
    #[error("the query could not be started on our side; it has been logged")]
    Unavailable,
    #[error("{0}")]
    Sql(String),
}

/// A finished query's columns and rows (values as text, long ones cut).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalResult {
    pub columns: Vec<QueryColumn>,
    pub rows: Vec<Vec<Option<String>>>,
    pub truncated: bool,
}

/// Longest cell shown, in characters: the preview's.
pub const MAX_QUERY_CELL_CHARS: usize = super::reader::MAX_CELL_CHARS;

/// SQL names for datasets, in the order given (oldest first, so a name does
/// not move when a newer dataset takes the same one): the normalised name,
/// then `_2`, `_3`, … for repeats.
pub fn table_names(names: &[String]) -> Vec<String> {
    let mut taken: HashMap<String, usize> = HashMap::new();
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let base = crate::domain::normalize_identifier(name);
        let mut candidate = base.clone();
        let mut n = taken.get(&base).copied().unwrap_or(1);
        while taken.contains_key(&candidate) {
            n += 1;
            candidate = format!("{base}_{n}");
        }
        taken.insert(base.clone(), n);
        taken.insert(candidate.clone(), 1);
        out.push(candidate);
    }
    out
}

/// The tables a query may name: those whose name appears in it as a word
/// (case-insensitive). Naming more is harmless: only these are made.
pub fn named_in<'a>(sql: &str, tables: &'a [LocalTable]) -> Vec<&'a LocalTable> {
    let lower = sql.to_lowercase();
    let words: std::collections::HashSet<&str> = lower
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect();
    tables
        .iter()
        .filter(|t| words.contains(t.name.to_lowercase().as_str()))
        .collect()
}

fn sql_error(e: duckdb::Error, tables: &[&LocalTable], limits: &QueryBounds) -> QueryError {
    let text = e.to_string();
    if text.contains("INTERRUPT") || text.contains("Interrupted") {
        return QueryError::Timeout(limits.timeout.as_secs());
    }
    if text.contains("Out of Memory") {
        return QueryError::OutOfMemory(limits.memory_bytes >> 20);
    }
    // DuckDB's own words help the author of the query; the files' paths
    // are ours, not theirs.
    let mut text = text;
    for t in tables {
        text = text.replace(&t.file.to_string_lossy().into_owned(), &t.name);
    }
    QueryError::Sql(text)
}

/// Opens the sandbox with `tables` and nothing else, locked. `writable` is
/// the one file an export may write.
fn sandbox(
    tables: &[&LocalTable],
    limits: &QueryBounds,
    writable: Option<&std::path::Path>,
) -> Result<Connection, duckdb::Error> {
    // No async I/O threads: DuckDB 2.0 can deadlock when a COPY that hands
    // its writes to them is stopped or fails half-way (the aborting writer
    // waits for a write task that waits for the writer's lock), and stopping
    // a download at its cap or deadline is routine here. Writes are made by
    // the query's own threads instead.
    let config = duckdb::Config::default()
        .enable_autoload_extension(false)?
        .with("autoinstall_known_extensions", "false")?
        .with("threads", limits.threads.max(1).to_string())?
        .with("memory_limit", format!("{}B", limits.memory_bytes))?
        // No spill directory: a query that outgrows its memory fails.
        .with("temp_directory", "")?
        .with("async_threads", "0")?;
    let conn = Connection::open_in_memory_with_flags(config)?;
    let files: Vec<String> = tables
        .iter()
        .map(|t| quote_literal(&t.file.to_string_lossy()))
        .chain(writable.map(|w| quote_literal(&w.to_string_lossy())))
        .collect();
    // Each file's footer is read once, not again for every bind (the
    // view's, then the query's).
    let mut setup = String::from("SET parquet_metadata_cache = true;");
    for t in tables {
        let select: Vec<String> = t
            .columns
            .iter()
            .map(|c| {
                format!(
                    "{} AS {}",
                    quote_ident(&c.name),
                    quote_ident(&c.normalized_name)
                )
            })
            .collect();
        setup.push_str(&format!(
            "CREATE VIEW {} AS SELECT {} FROM read_parquet({});",
            quote_ident(&t.name),
            if select.is_empty() {
                "*".to_owned()
            } else {
                select.join(", ")
            },
            quote_literal(&t.file.to_string_lossy())
        ));
    }
    setup.push_str(&format!(
        "SET allowed_directories = []; SET allowed_paths = [{}]; \
         SET enable_external_access = false; SET lock_configuration = true;",
        files.join(", ")
    ));
    conn.execute_batch(&setup)?;
    Ok(conn)
}

/// Exactly one statement, and one DuckDB can serialise, which it does only
/// for SELECT (and WITH … SELECT).
fn read_only(conn: &Connection, sql: &str) -> Result<(), QueryError> {
    let tree: String = conn
        .query_row(
            "SELECT json_serialize_sql(?::VARCHAR)::VARCHAR",
            [sql],
            |r| r.get(0),
        )
        .map_err(|_| QueryError::NotReadOnly)?;
    let tree: serde_json::Value =
        serde_json::from_str(&tree).map_err(|_| QueryError::NotReadOnly)?;
    if tree["error"] == serde_json::Value::Bool(false)
        && tree["statements"].as_array().map(Vec::len) == Some(1)
    {
        return if has_table_function(&tree) {
            Err(QueryError::TableFunction)
        } else {
            Ok(())
        };
    }
    match tree["error_message"].as_str() {
        // A syntax error is worth showing as it is.
        Some(m) if tree["error_type"] == "parser" => Err(QueryError::Sql(m.to_owned())),
        _ => Err(QueryError::NotReadOnly),
    }
}

/// Whether the parse tree reads from a table function anywhere.
fn has_table_function(node: &serde_json::Value) -> bool {
    match node {
        serde_json::Value::Object(map) => {
            map.get("type").and_then(|t| t.as_str()) == Some("TABLE_FUNCTION")
                || map.values().any(has_table_function)
        }
        serde_json::Value::Array(items) => items.iter().any(has_table_function),
        _ => false,
    }
}

/// Runs `sql` over the tenant's `tables` in a fresh sandbox. Blocking: call
/// it from `spawn_blocking` (the caller holds a slot); the server runs it in
/// a worker process ([`run_isolated`]).
pub fn run_local(
    tables: &[LocalTable],
    sql: &str,
    limits: &QueryBounds,
) -> Result<LocalResult, QueryError> {
    let sql = sql.trim().trim_end_matches(';').trim();
    let named = named_in(sql, tables);
    let conn = sandbox(&named, limits, None).map_err(|e| sql_error(e, &named, limits))?;
    read_only(&conn, sql)?;
    let interrupt = conn.interrupt_handle();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let timeout = limits.timeout;
    let timer = std::thread::spawn(move || {
        if done_rx.recv_timeout(timeout).is_err() {
            interrupt.interrupt();
        }
    });
    let result = (|| {
        // One statement gives the rows and the columns: each row carries its
        // columns' types (`typeof`, folded to constants when the query is
        // bound) before its values as text, under the names DESCRIBE would
        // give. Only an empty result pays for a DESCRIBE.
        let mut stmt = conn.prepare(&format!(
            "SELECT * FROM (SELECT typeof(COLUMNS(*)), {} FROM ({sql}\n) q LIMIT {}) OFFSET 0",
            super::reader::bounded_text("COLUMNS(*)::VARCHAR", MAX_QUERY_CELL_CHARS),
            limits.max_rows + 1
        ))?;
        let mut result = stmt.query([])?;
        let names = result
            .as_ref()
            .map(|s| s.column_names())
            .unwrap_or_default();
        let width = names.len() / 2;
        let mut types = None;
        let mut rows = Vec::new();
        while let Some(row) = result.next()? {
            if types.is_none() {
                types = Some(
                    (0..width)
                        .map(|i| row.get::<_, String>(i))
                        .collect::<Result<Vec<_>, _>>()?,
                );
            }
            let mut values = Vec::with_capacity(width);
            for i in width..2 * width {
                values.push(row.get::<_, Option<String>>(i)?);
            }
            rows.push(values);
        }
        let columns = match types {
            Some(types) => names
                .into_iter()
                .zip(types)
                .map(|(name, data_type)| QueryColumn { name, data_type })
                .collect(),
            None => {
                let mut describe = conn.prepare(&format!("DESCRIBE SELECT * FROM ({sql}\n) q"))?;
                let mut found = describe.query([])?;
                let mut columns = Vec::new();
                while let Some(row) = found.next()? {
                    columns.push(QueryColumn {
                        name: row.get(0)?,
                        data_type: row.get(1)?,
                    });
                }
                columns
            }
        };
        Ok::<_, duckdb::Error>((columns, rows))
    })();
    let _ = done_tx.send(());
    let _ = timer.join();
    let (columns, mut rows) = result.map_err(|e| sql_error(e, &named, limits))?;
    let truncated = rows.len() > limits.max_rows;
    rows.truncate(limits.max_rows);
    Ok(LocalResult {
        columns,
        rows,
        truncated,
    })
}

/// The formats a query's whole result downloads as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExportFormat {
    Csv,
    Parquet,
}

impl ExportFormat {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "csv" => Some(Self::Csv),
            "parquet" => Some(Self::Parquet),
            _ => None,
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Parquet => "parquet",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Csv => "text/csv; charset=utf-8",
            Self::Parquet => "application/vnd.apache.parquet",
        }
    }

    fn copy_options(self) -> &'static str {
        match self {
            Self::Csv => "FORMAT csv, HEADER true",
            Self::Parquet => contract::PARQUET_OPTIONS,
        }
    }
}

/// Writes the whole result of `sql` (no row cap) to `dest`, a new file in
/// the server's scratch space, with the sandbox of [`run_local`]: `dest` is
/// the one file it may write. DuckDB streams the result to the file, so the
/// memory used is the query's own budget whatever the size; the file may
/// grow to `max_download_bytes`, then the query is stopped. Returns the
/// rows written.
/// Blocking: call it from `spawn_blocking` (the caller holds a slot); the
/// server runs it in a worker process ([`export_isolated`]).
pub fn export_local(
    tables: &[LocalTable],
    sql: &str,
    limits: &QueryBounds,
    format: ExportFormat,
    dest: &std::path::Path,
) -> Result<u64, QueryError> {
    let max_bytes = limits.max_download_bytes;
    let sql = sql.trim().trim_end_matches(';').trim();
    let named = named_in(sql, tables);
    let conn = sandbox(&named, limits, Some(dest)).map_err(|e| sql_error(e, &named, limits))?;
    read_only(&conn, sql)?;
    let interrupt = conn.interrupt_handle();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let deadline = std::time::Instant::now() + limits.timeout;
    let watched = dest.to_owned();
    // Stops the query at its deadline, or as soon as the file outgrows
    // `max_bytes`; says which.
    let watcher = std::thread::spawn(move || loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match done_rx.recv_timeout(left.min(Duration::from_millis(50))) {
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                if left.is_zero() {
                    interrupt.interrupt();
                    return None;
                }
                if std::fs::metadata(&watched).is_ok_and(|m| m.len() > max_bytes) {
                    interrupt.interrupt();
                    return Some(QueryError::TooLarge(max_bytes >> 20));
                }
            }
            _ => return None,
        }
    });
    // The newline ends a trailing `--` comment before the closing parenthesis.
    let written = conn.execute(
        &format!(
            "COPY (SELECT * FROM ({sql}\n) q) TO {} ({})",
            quote_literal(&dest.to_string_lossy()),
            format.copy_options()
        ),
        [],
    );
    let _ = done_tx.send(());
    let stopped = watcher.join().ok().flatten();
    let outgrown = std::fs::metadata(dest).is_ok_and(|m| m.len() > max_bytes);
    match (written, stopped) {
        (_, Some(too_large)) => Err(too_large),
        // Finished between two looks at the file.
        (Ok(_), None) if outgrown => Err(QueryError::TooLarge(max_bytes >> 20)),
        (Ok(rows), None) => Ok(rows as u64),
        (Err(e), None) => Err(sql_error(e, &named, limits)),
    }
}

/// A query for a worker process.
#[derive(Debug, Serialize, Deserialize)]
pub enum Job {
    /// [`run_local`].
    Rows {
        tables: Vec<LocalTable>,
        sql: String,
        bounds: QueryBounds,
    },
    /// [`export_local`] to `dest`.
    Export {
        tables: Vec<LocalTable>,
        sql: String,
        bounds: QueryBounds,
        format: ExportFormat,
        dest: PathBuf,
    },
}

/// A worker's answer to a [`Job`].
#[derive(Debug, Serialize, Deserialize)]
pub enum Answer {
    Rows(Result<LocalResult, QueryError>),
    Export(Result<u64, QueryError>),
}

/// What a worker process does with its job (the server binary's
/// `query-worker` command hands it to [`contract::isolate::serve_one`]).
pub fn work(job: Job) -> Answer {
    match job {
        Job::Rows {
            tables,
            sql,
            bounds,
        } => Answer::Rows(run_local(&tables, &sql, &bounds)),
        Job::Export {
            tables,
            sql,
            bounds,
            format,
            dest,
        } => Answer::Export(export_local(&tables, &sql, &bounds, format, &dest)),
    }
}

/// What a spare worker does before its job arrives: a query through a
/// sandbox like the job's, so DuckDB's code and the allocator are warm in
/// this process when the job comes (a cold one took longer than the query).
pub fn warm_up() {
    let bounds = QueryBounds {
        memory_bytes: 64 << 20,
        threads: 1,
        timeout: Duration::from_secs(5),
        max_rows: 1,
        max_download_bytes: 0,
    };
    let _ = run_local(&[], "SELECT 1 AS warm", &bounds);
}

async fn in_worker(limits: &QueryLimits, job: Job) -> Result<Answer, QueryError> {
    let bounds = &limits.bounds;
    let memory_mib = bounds.memory_bytes >> 20;
    limits
        .workers
        .run(&job, bounds.timeout + KILL_AFTER)
        .await
        .map_err(|e| {
            use contract::isolate::WorkerError;
            match e {
                WorkerError::Timeout(_) => QueryError::Timeout(bounds.timeout.as_secs()),
                WorkerError::Died { .. } => {
                    tracing::warn!(error = %e, "a query's process stopped without an answer");
                    QueryError::Stopped(memory_mib)
                }
                other => {
                    tracing::error!(error = %other, "a query's process could not be used");
                    QueryError::Unavailable
                }
            }
        })
}

/// [`run_local`] in a worker process of its own (the caller holds a slot).
pub async fn run_isolated(
    limits: &QueryLimits,
    tables: Vec<LocalTable>,
    sql: String,
) -> Result<LocalResult, QueryError> {
    let job = Job::Rows {
        tables,
        sql,
        bounds: limits.bounds.clone(),
    };
    match in_worker(limits, job).await? {
        Answer::Rows(result) => result,
        Answer::Export(_) => Err(QueryError::Unavailable),
    }
}

/// [`export_local`] in a worker process of its own (the caller holds a
/// slot). `dest` may be left behind by a worker that was killed: the caller
/// removes it.
pub async fn export_isolated(
    limits: &QueryLimits,
    tables: Vec<LocalTable>,
    sql: String,
    format: ExportFormat,
    dest: PathBuf,
) -> Result<u64, QueryError> {
    let job = Job::Export {
        tables,
        sql,
        bounds: limits.bounds.clone(),
        format,
        dest,
    };
    match in_worker(limits, job).await? {
        Answer::Export(result) => result,
        Answer::Rows(_) => Err(QueryError::Unavailable),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalised_and_unique_in_upload_order() {
        let names: Vec<String> = ["Sales 2024", "sales_2024", "Sales 2024", "Flights"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        assert_eq!(
            table_names(&names),
            ["sales_2024", "sales_2024_2", "sales_2024_3", "flights"]
        );
    }

    fn limits() -> QueryBounds {
        QueryBounds {
            memory_bytes: 256 << 20,
            threads: 1,
            timeout: Duration::from_secs(5),
            max_rows: 2,
            max_download_bytes: 1 << 20,
        }
    }

    /// Two datasets' files: one the query may see, one it may not.
    fn tables(dir: &std::path::Path) -> (Vec<LocalTable>, PathBuf) {
        let own = dir.join("own.parquet");
        let other = dir.join("other.parquet");
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(&format!(
            "COPY (SELECT * FROM (VALUES (1, 'Ada'), (2, 'Grace'), (3, NULL)) t(\"Customer ID\", \"Name\")) TO {};
             COPY (SELECT 'secret' AS s) TO {};",
            quote_literal(&own.to_string_lossy()),
            quote_literal(&other.to_string_lossy())
        ))
        .unwrap();
        let columns = vec![
            ColumnSchema {
                name: "Customer ID".into(),
                normalized_name: "customer_id".into(),
                data_type: "INTEGER".into(),
                nullable: false,
            },
            ColumnSchema {
                name: "Name".into(),
                normalized_name: "name".into(),
                data_type: "VARCHAR".into(),
                nullable: true,
            },
        ];
        (
            vec![LocalTable {
                name: "customers".into(),
                dataset_id: Uuid::nil(),
                file: own,
                columns,
            }],
            other,
        )
    }

    #[test]
    fn reads_the_tenants_tables_by_their_silver_names_and_caps_rows() {
        let dir = tempfile::tempdir().unwrap();
        let (tables, _) = tables(dir.path());
        let out = run_local(
            &tables,
            "SELECT customer_id, name FROM customers ORDER BY customer_id;",
            &limits(),
        )
        .unwrap();
        assert_eq!(out.columns[0].name, "customer_id");
        assert_eq!(out.columns[0].data_type, "INTEGER");
        assert_eq!(
            out.rows,
            [
                vec![Some("1".to_owned()), Some("Ada".to_owned())],
                vec![Some("2".to_owned()), Some("Grace".to_owned())]
            ]
        );
        assert!(out.truncated);
    }

    #[test]
    fn nothing_but_the_tenants_tables_can_be_reached_or_changed() {
        let dir = tempfile::tempdir().unwrap();
        let (tables, other) = tables(dir.path());
        let other = quote_literal(&other.to_string_lossy());
        for sql in [
            format!("SELECT * FROM {other}"),
            format!("SELECT * FROM read_parquet({other})"),
            "SELECT * FROM read_csv('/etc/passwd')".to_owned(),
            format!(
                "SELECT * FROM glob({})",
                quote_literal(&format!("{}/*", dir.path().display()))
            ),
            "SELECT * FROM 'http://127.0.0.1:9/x.parquet'".to_owned(),
            "SELECT * FROM duckdb_settings() WHERE name = 'allowed_paths'".to_owned(),
            "COPY (SELECT 1) TO '/tmp/x.csv'".to_owned(),
            "SET enable_external_access = true".to_owned(),
            "INSTALL httpfs".to_owned(),
            "ATTACH '/tmp/x.db' AS x".to_owned(),
            "DROP VIEW customers".to_owned(),
            "SELECT 1; SELECT 2".to_owned(),
            "SELECT * FROM customers) q; SELECT * FROM (SELECT 1".to_owned(),
            "PRAGMA database_list".to_owned(),
            "CALL pragma_version()".to_owned(),
        ] {
            let outcome = run_local(&tables, &sql, &limits());
            if let Ok(out) = outcome {
                panic!("{sql} ran: {:?}", out.rows);
            }
        }
    }

    #[test]
    fn exports_write_the_whole_result_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let (tables, other) = tables(dir.path());
        let csv = dir.path().join("out.csv");
        let rows = export_local(
            &tables,
            "SELECT customer_id, name FROM customers ORDER BY customer_id -- all of them",
            &limits(),
            ExportFormat::Csv,
            &csv,
        )
        .unwrap();
        assert_eq!(rows, 3, "no row cap on a download");
        assert_eq!(
            std::fs::read_to_string(&csv).unwrap(),
            "customer_id,name\n1,Ada\n2,Grace\n3,\n"
        );
        let parquet = dir.path().join("out.parquet");
        export_local(
            &tables,
            "SELECT * FROM customers",
            &limits(),
            ExportFormat::Parquet,
            &parquet,
        )
        .unwrap();
        let count: i64 = Connection::open_in_memory()
            .unwrap()
            .query_row(
                &format!(
                    "SELECT count(*) FROM read_parquet({})",
                    quote_literal(&parquet.to_string_lossy())
                ),
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(count, 3);

        // The sandbox holds: no other file, and nothing but a query.
        let other = quote_literal(&other.to_string_lossy());
        for sql in [
            format!("SELECT * FROM {other}"),
            format!("SELECT 1) q) TO {other} (FORMAT csv); SELECT (1"),
            "SELECT 1; COPY customers TO '/tmp/x.csv'".to_owned(),
        ] {
            let out = dir.path().join("refused.csv");
            assert!(
                export_local(&tables, &sql, &limits(), ExportFormat::Csv, &out).is_err(),
                "{sql} ran"
            );
        }
        // A result that outgrows the cap is stopped.
        let big = dir.path().join("big.csv");
        let err = export_local(
            &tables,
            &format!(
                "SELECT repeat('x', 100) AS pad FROM {}",
                (0..15)
                    .map(|i| format!("customers c{i}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            &QueryBounds {
                timeout: Duration::from_secs(30),
                ..limits()
            },
            ExportFormat::Csv,
            &big,
        )
        .unwrap_err();
        assert!(matches!(err, QueryError::TooLarge(1)), "{err}");
    }

    #[test]
    fn errors_name_the_problem_without_our_paths() {
        let dir = tempfile::tempdir().unwrap();
        let (tables, _) = tables(dir.path());
        let err = run_local(&tables, "SELECT nope FROM customers", &limits()).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("nope"), "{text}");
        assert!(
            !text.contains(&dir.path().to_string_lossy().into_owned()),
            "{text}"
        );
        assert!(matches!(
            run_local(&tables, "DELETE FROM customers", &limits()),
            Err(QueryError::NotReadOnly | QueryError::Sql(_))
        ));
        let slow = QueryBounds {
            timeout: Duration::from_millis(300),
            ..limits()
        };
        let err = run_local(
            &tables,
            "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 100000000000) SELECT count(*) FROM r, customers",
            &slow,
        )
        .unwrap_err();
        assert!(matches!(err, QueryError::Timeout(_)), "{err}");
    }
}

/// The lakehouse side of the query page. The server implements it with the
/// MCP tools (`dataset_status` for a silver table's name, `query`); errors
/// are sentences for the page.
pub trait LakehouseQuery: Send + Sync + 'static {
    /// The dataset's silver table, quoted for the lakehouse's SQL dialect,
    /// if it exists.
    fn silver_table(
        &self,
        tenant_id: Uuid,
        dataset_id: Uuid,
    ) -> super::sync::BoxFuture<'_, Result<Option<String>, String>>;

    /// Runs one read-only statement over the tenant's lakehouse tables.
    fn query(
        &self,
        tenant_id: Uuid,
        sql: String,
        limit: u32,
    ) -> super::sync::BoxFuture<'_, Result<LocalResult, String>>;
}

/// `sql` with each `(name, table)` defined first as a CTE `name AS (SELECT *
/// FROM table)`, so the query's dataset names resolve to the silver tables.
/// A query that starts with its own `WITH [RECURSIVE]` gets them in front of
/// its own. `quote` is the lakehouse's identifier quote (`"` or `` ` ``).
pub fn with_tables(sql: &str, tables: &[(String, String)], quote: char) -> String {
    if tables.is_empty() {
        return sql.to_owned();
    }
    let q = |name: &str| {
        let doubled = format!("{quote}{quote}");
        format!("{quote}{}{quote}", name.replace(quote, &doubled))
    };
    let defs: Vec<String> = tables
        .iter()
        .map(|(name, table)| format!("{} AS (SELECT * FROM {table})", q(name)))
        .collect();
    let defs = defs.join(", ");
    let trimmed = sql.trim_start();
    let starts_with_word = |text: &str, word: &str| {
        text.len() > word.len()
            && text[..word.len()].eq_ignore_ascii_case(word)
            && text[word.len()..].starts_with(|c: char| c.is_whitespace())
    };
    if starts_with_word(trimmed, "with") {
        let rest = trimmed[4..].trim_start();
        if starts_with_word(rest, "recursive") {
            return format!("WITH RECURSIVE {defs}, {}", rest[9..].trim_start());
        }
        return format!("WITH {defs}, {rest}");
    }
    format!("WITH {defs} {trimmed}")
}

#[cfg(test)]
mod routing_tests {
    use super::with_tables;

    #[test]
    fn dataset_names_become_ctes_over_the_silver_tables() {
        let t = vec![(
            "people".to_owned(),
            "`lh`.`acme_silver`.`people_1a2b3c4d`".to_owned(),
        )];
        assert_eq!(
            with_tables("SELECT count(*) FROM people", &t, '`'),
            "WITH `people` AS (SELECT * FROM `lh`.`acme_silver`.`people_1a2b3c4d`) SELECT count(*) FROM people"
        );
        assert_eq!(
            with_tables("  with x AS (SELECT 1) SELECT * FROM x, people", &t, '"'),
            "WITH \"people\" AS (SELECT * FROM `lh`.`acme_silver`.`people_1a2b3c4d`), x AS (SELECT 1) SELECT * FROM x, people"
        );
        assert_eq!(
            with_tables("WITH RECURSIVE r AS (SELECT 1) SELECT * FROM r", &t, '"'),
            "WITH RECURSIVE \"people\" AS (SELECT * FROM `lh`.`acme_silver`.`people_1a2b3c4d`), r AS (SELECT 1) SELECT * FROM r"
        );
        assert_eq!(with_tables("SELECT 1", &[], '"'), "SELECT 1");
        // A column called `without` is not a WITH.
        assert!(with_tables("without", &t, '"').starts_with("WITH \"people\""));
    }
}

/// The tenant's datasets as query tables: their SQL names, columns and files.
pub fn query_tables(
    datasets: Vec<super::catalog::QueryDataset>,
    reader: &super::DatasetReader,
) -> Vec<(crate::model::QueryTable, LocalTable)> {
    let names = table_names(&datasets.iter().map(|d| d.name.clone()).collect::<Vec<_>>());
    datasets
        .into_iter()
        .zip(names)
        .map(|(d, name)| {
            let page = crate::model::QueryTable {
                name: name.clone(),
                dataset_id: d.id,
                dataset_name: d.name,
                columns: d
                    .schema
                    .iter()
                    .map(|c| QueryColumn {
                        name: c.normalized_name.clone(),
                        data_type: c.data_type.clone(),
                    })
                    .collect(),
                status: d.status,
                lakehouse_current: d.lakehouse_current,
            };
            let local = LocalTable {
                name,
                dataset_id: d.id,
                file: reader.parquet_path(d.id),
                columns: d.schema,
            };
            (page, local)
        })
        .collect()
}

/// Why a query could not run where it was asked to.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error(transparent)]
    Local(#[from] QueryError),
    #[error("the lakehouse is not available on this server (sync is off)")]
    NoLakehouse,
    #[error("the lakehouse has no current copy of {0}: sync it first, or run the query locally")]
    NotSynced(String),
    #[error("the lakehouse: {0}")]
    Lakehouse(String),
}

/// Runs `sql` where `engine` says (`auto`: the lakehouse when every dataset
/// the query names is synced at its current version, locally otherwise, and locally too when the
/// lakehouse does not answer), and says which engine ran and why.
pub async fn route(
    tables: Vec<(crate::model::QueryTable, LocalTable)>,
    sql: String,
    engine: crate::model::QueryEngine,
    limits: QueryLimits,
    lakehouse: Option<Arc<dyn LakehouseQuery>>,
    tenant_id: Uuid,
) -> Result<crate::model::QueryAnswer, RouteError> {
    use crate::domain::SyncStatus;
    use crate::model::{QueryAnswer, QueryEngine};
    let started = std::time::Instant::now();
    let local_tables: Vec<LocalTable> = tables.iter().map(|(_, l)| l.clone()).collect();
    let named: Vec<(crate::model::QueryTable, Uuid)> = {
        let names: std::collections::HashSet<String> = named_in(&sql, &local_tables)
            .into_iter()
            .map(|t| t.name.clone())
            .collect();
        tables
            .iter()
            .filter(|(t, _)| names.contains(&t.name))
            .map(|(t, l)| (t.clone(), l.dataset_id))
            .collect()
    };
    let unsynced: Vec<String> = named
        .iter()
        .filter(|(t, _)| !t.lakehouse_current)
        .map(|(t, _)| match t.status {
            SyncStatus::Synced => format!("{} (synced at an older version)", t.name),
            other => format!("{} ({})", t.name, other.label()),
        })
        .collect();

    let lake_plan: Result<(Arc<dyn LakehouseQuery>, String), RouteError> = match &lakehouse {
        None => Err(RouteError::NoLakehouse),
        Some(_) if !unsynced.is_empty() => Err(RouteError::NotSynced(unsynced.join(", "))),
        Some(_) if named.is_empty() => Err(RouteError::NotSynced(
            "the tables this query names (it names none of your datasets)".to_owned(),
        )),
        Some(lake) => Ok((lake.clone(), "every dataset it names is synced".to_owned())),
    };
    let (lake_reason, fallback) = match (engine, lake_plan) {
        (QueryEngine::Local, _) => (None, "local, as asked".to_owned()),
        (QueryEngine::Lakehouse, Err(e)) => return Err(e),
        (QueryEngine::Lakehouse, Ok((lake, _))) => (
            Some((lake, "lakehouse, as asked".to_owned())),
            String::new(),
        ),
        (QueryEngine::Auto, Ok((lake, why))) => {
            (Some((lake, format!("auto: {why}"))), String::new())
        }
        (QueryEngine::Auto, Err(e)) => (None, format!("auto: local, because {e}")),
    };
    if let Some((lake, reason)) = lake_reason {
        let ran = run_on_lakehouse(&*lake, tenant_id, &sql, &named, limits.bounds.max_rows).await;
        match ran {
            Ok(result) => {
                return Ok(QueryAnswer {
                    engine: QueryEngine::Lakehouse,
                    reason,
                    columns: result.columns,
                    rows: result.rows,
                    truncated: result.truncated,
                    elapsed_ms: started.elapsed().as_millis() as u64,
                })
            }
            Err(e) if engine == QueryEngine::Lakehouse => return Err(RouteError::Lakehouse(e)),
            Err(e) => {
                tracing::warn!(error = %e, "the lakehouse did not answer a query; running it locally");
                return run_here(
                    local_tables,
                    sql,
                    limits,
                    format!("auto: local, because the lakehouse did not answer ({e})"),
                    started,
                )
                .await;
            }
        }
    }
    run_here(local_tables, sql, limits, fallback, started).await
}

async fn run_on_lakehouse(
    lake: &dyn LakehouseQuery,
    tenant_id: Uuid,
    sql: &str,
    named: &[(crate::model::QueryTable, Uuid)],
    max_rows: usize,
) -> Result<LocalResult, String> {
    let mut defs = Vec::new();
    let mut quote = '"';
    for (table, dataset) in named {
        let silver = lake
            .silver_table(tenant_id, *dataset)
            .await?
            .ok_or_else(|| format!("{} has no silver table", table.name))?;
        if silver.starts_with('`') {
            quote = '`';
        }
        defs.push((table.name.clone(), silver));
    }
    let sql = sql.trim().trim_end_matches(';');
    lake.query(
        tenant_id,
        with_tables(sql, &defs, quote),
        u32::try_from(max_rows).unwrap_or(u32::MAX),
    )
    .await
}

async fn run_here(
    tables: Vec<LocalTable>,
    sql: String,
    limits: QueryLimits,
    reason: String,
    started: std::time::Instant,
) -> Result<crate::model::QueryAnswer, RouteError> {
    let Ok(_permit) = limits.slots.clone().try_acquire_owned() else {
        return Err(QueryError::Busy.into());
    };
    let result = run_isolated(&limits, tables, sql).await?;
    Ok(crate::model::QueryAnswer {
        engine: crate::model::QueryEngine::Local,
        reason,
        columns: result.columns,
        rows: result.rows,
        truncated: result.truncated,
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

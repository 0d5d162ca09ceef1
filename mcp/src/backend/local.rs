//! The embedded lakehouse: `LAKEHOUSE_PATH/volumes/…` for staged files and a
//! DuckDB database file named after the catalog, so DuckDB's own
//! `catalog.schema.table` names match Unity Catalog's three levels.
//!
//! Catalog changes go through one writer connection per tenant (an async
//! mutex, held across the blocking call): a tenant's changes are serialised,
//! and tenants never wait on each other, since their schemas and views are
//! disjoint and DuckDB's optimistic concurrency commits disjoint writes side
//! by side. Heavy work (silver's rows, statistics) runs on read connections
//! cloned from the same database instance, alongside writes under MVCC; a
//! writer is held only for the short catalog change.
//!
//! **Every table is Parquet files in the tenant's own directories.** Bronze
//! is a view over the staged file (`volumes/<catalog>/<tenant>_bronze/raw/…`),
//! silver a view over the file the transform wrote
//! (`volumes/<catalog>/<tenant>_silver/tables/<table>/<stamp>.parquet`),
//! reported as MANAGED as Unity Catalog's managed tables are. The DuckDB file
//! holds the catalog (names, views, notes), not tenants' rows. That is what
//! lets `query` run in a [`crate::sandbox`]: a fresh DuckDB instance that
//! holds only the views the query names, may open only their files, and
//! cannot change that; and it runs in a process of its own, whose memory is
//! capped ([`QueryJob`], [`contract::isolate`]), since DuckDB's
//! `memory_limit` does not bound a value a query makes.

use super::{
    layer_of, silver_name_for, silver_unchanged, Backend, BronzeRequest, BronzeResult, ColumnInfo,
    DatasetStatus, DropResult, QueryRequest, QueryResult, SilverResult, SilverVersions,
    TableDescription, TableList, TableStatus, TableSummary,
};
use crate::config::SandboxLimits;
use crate::domain::{DatasetId, Ident, TableName, TenantId};
use crate::error::{BackendError, ToolError};
use crate::plan::{self, Dialect, SilverPlan, VersionRange, BRONZE_LINEAGE};
use crate::sandbox::{Sandbox, SandboxView};
use contract::PARQUET_OPTIONS;
use duckdb::Connection;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

const D: Dialect = Dialect::DuckDb;
/// The volume inside each tenant's bronze schema that holds raw files.
pub const VOLUME: &str = "raw";

type Writer = Arc<tokio::sync::Mutex<Connection>>;

pub struct LocalLakehouse {
    root: PathBuf,
    catalog: Ident,
    /// Each tenant's connection for catalog changes, made on first use.
    writers: Mutex<std::collections::HashMap<TenantId, Writer>>,
    /// Template for read connections (cloning is cheap and shares the database).
    readers: Mutex<Connection>,
    /// What one `query` may use.
    sandbox: SandboxLimits,
    /// The processes queries run in.
    workers: contract::isolate::Workers,
}

/// How long after its own timeout a query's process is killed: it stops
/// itself at the timeout; this is for one that cannot.
const KILL_AFTER: std::time::Duration = std::time::Duration::from_secs(5);

/// One `query`, as its process gets it: everything the sandbox needs.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub struct QueryJob {
    limits: SandboxLimits,
    catalog: String,
    tenant: String,
    /// Every view of the tenant; the sandbox holds those the query names.
    views: Vec<SandboxView>,
    sql: String,
    limit: u32,
    timeout: std::time::Duration,
}

/// A query's process's answer.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub enum QueryOutcome {
    Rows(QueryResult),
    Rejected(crate::query_guard::Rejected),
    NotFound(String),
    Timeout(u64),
    OutOfMemory,
    /// Anything else, in full: the parent logs it, the caller gets a summary.
    Failed(String),
}

impl From<QueryOutcome> for Result<QueryResult, ToolError> {
    fn from(outcome: QueryOutcome) -> Self {
        match outcome {
            QueryOutcome::Rows(rows) => Ok(rows),
            QueryOutcome::Rejected(r) => Err(ToolError::QueryRejected(r)),
            QueryOutcome::NotFound(name) => Err(ToolError::NotFound(name)),
            QueryOutcome::Timeout(secs) => Err(ToolError::Timeout(secs)),
            QueryOutcome::OutOfMemory => Err(ToolError::OutOfMemory),
            QueryOutcome::Failed(text) => Err(ToolError::Backend(BackendError::Worker(text))),
        }
    }
}

/// What a spare query process does before its job arrives: a query through
/// a sandbox like the job's, so DuckDB's code is warm in this process when
/// the job comes.
pub fn warm_up() {
    if let Ok(sandbox) = Sandbox::open(SandboxLimits {
        memory_bytes: 64 << 20,
        threads: 1,
    }) {
        let _ = run_query(sandbox.connection(), "SELECT 1 AS warm", 1);
    }
}

/// What a query's process does with its job (the binary's
/// [`crate::QUERY_WORKER_COMMAND`] hands it to
/// [`contract::isolate::serve_one`]): the guard, the sandbox with the views
/// the query names, the rows, and a timer that interrupts it.
pub fn serve_query(job: QueryJob) -> QueryOutcome {
    let outcome = (|| {
        let catalog = Ident::parse(&job.catalog)?;
        let tenant = TenantId::parse(&job.tenant)?;
        let sandbox = Sandbox::open(job.limits)?;
        let checked = crate::query_guard::check(sandbox.connection(), &catalog, &tenant, &job.sql)?;
        let named: Vec<SandboxView> = job
            .views
            .into_iter()
            .filter(|v| checked.tables.contains(&v.key()))
            .collect();
        // A name the tenant has no table for: say so, in its words.
        if let Some((schema, table)) = checked
            .tables
            .iter()
            .find(|t| !named.iter().any(|v| v.key() == **t))
        {
            return Err(ToolError::NotFound(format!("{schema}.{table}")));
        }
        let conn = sandbox.admit(&catalog, &tenant, &named)?;
        let interrupt = sandbox.interrupt_handle();
        let (done, finished) = std::sync::mpsc::channel::<()>();
        let timeout = job.timeout;
        let timer = std::thread::spawn(move || {
            let expired = finished.recv_timeout(timeout).is_err();
            if expired {
                interrupt.interrupt();
            }
            expired
        });
        let rows = run_query(conn, &checked.sql, job.limit);
        let _ = done.send(());
        if timer.join().unwrap_or(false) && rows.is_err() {
            return Err(ToolError::Timeout(timeout.as_secs()));
        }
        rows
    })();
    match outcome {
        Ok(rows) => QueryOutcome::Rows(rows),
        Err(ToolError::QueryRejected(r)) => QueryOutcome::Rejected(r),
        Err(ToolError::NotFound(name)) => QueryOutcome::NotFound(name),
        Err(ToolError::Timeout(secs)) => QueryOutcome::Timeout(secs),
        Err(ToolError::OutOfMemory) => QueryOutcome::OutOfMemory,
        Err(ToolError::Backend(e)) => QueryOutcome::Failed(e.to_string()),
        Err(other) => QueryOutcome::Failed(other.to_string()),
    }
}

fn blocking_err(_: tokio::task::JoinError) -> ToolError {
    ToolError::Backend(BackendError::Join)
}

fn db(e: duckdb::Error) -> ToolError {
    ToolError::Backend(e.into())
}

fn io(e: std::io::Error) -> ToolError {
    ToolError::Backend(BackendError::Io(e))
}

fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// Table comments carry our bookkeeping (DuckDB keeps no modification time).
#[derive(serde::Serialize, serde::Deserialize)]
struct TableNote {
    dataset_id: String,
    updated_at: String,
    /// Bronze: the newest version staged. Silver: the newest it holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<u32>,
    /// Silver: the first version it holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    base_version: Option<u32>,
}

impl LocalLakehouse {
    /// Runs queries in `program` (started with [`crate::QUERY_WORKER_COMMAND`])
    /// rather than in this binary: for a process that embeds the lakehouse
    /// but is not built to serve its queries (a test, the stack harness).
    pub fn with_query_worker(mut self, program: PathBuf) -> Self {
        self.workers = contract::isolate::Workers::new(
            program,
            &[crate::QUERY_WORKER_COMMAND],
            contract::isolate::duckdb_cap(self.sandbox.memory_bytes),
        );
        self
    }

    /// Opens (or creates) the lakehouse under `root`. The instance may read
    /// and write files only under `root`, loads no extension it was not
    /// built with, and cannot be reconfigured afterwards.
    pub fn open(root: &Path, catalog: Ident, sandbox: SandboxLimits) -> Result<Self, BackendError> {
        std::fs::create_dir_all(root.join("volumes"))?;
        let root = root.canonicalize()?;
        // No async I/O threads: DuckDB 2.0 can deadlock when a `COPY … TO`
        // that hands its writes to them fails half-way (the aborting writer
        // waits for a write task that waits for the writer's lock).
        let config = duckdb::Config::default()
            .enable_autoload_extension(false)?
            .with("autoinstall_known_extensions", "false")?
            .with("async_threads", "0")?;
        let conn =
            Connection::open_with_flags(root.join(format!("{}.duckdb", catalog.as_str())), config)?;
        conn.execute_batch(&format!(
            "SET allowed_directories = [{}]; SET enable_external_access = false; SET lock_configuration = true;",
            D.literal(&format!("{}/", root.to_string_lossy()))
        ))?;
        let lake = Self {
            root,
            catalog,
            writers: Mutex::new(Default::default()),
            readers: Mutex::new(conn.try_clone()?),
            sandbox,
            workers: contract::isolate::Workers::new(
                std::env::current_exe()?,
                &[crate::QUERY_WORKER_COMMAND],
                contract::isolate::duckdb_cap(sandbox.memory_bytes),
            ),
        };
        lake.upgrade_silver_tables(&conn)?;
        Ok(lake)
    }

    /// Lakehouses made before silver moved to files kept silver rows in
    /// DuckDB tables: write each to its file and make it a view, once.
    fn upgrade_silver_tables(&self, conn: &Connection) -> Result<(), BackendError> {
        let mut stmt = conn.prepare(
            "SELECT schema_name, table_name, comment FROM duckdb_tables()
             WHERE database_name = ? AND ends_with(schema_name, '_silver')",
        )?;
        let tables = stmt
            .query_map([self.catalog.as_str()], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        for (schema, table, comment) in tables {
            let (Ok(schema), Ok(table)) = (Ident::parse(&schema), Ident::parse(&table)) else {
                continue;
            };
            let name = TableName::new(self.catalog.clone(), schema, table);
            let file = self.silver_file(&name);
            std::fs::create_dir_all(file.parent().unwrap_or(&self.root))?;
            conn.execute_batch(&format!(
                "COPY (SELECT * FROM {}) TO {} ({PARQUET_OPTIONS})",
                D.table(&name),
                D.literal(&file.to_string_lossy())
            ))?;
            conn.execute_batch("BEGIN TRANSACTION")?;
            let swapped = conn.execute_batch(&format!(
                "DROP TABLE {table}; {view}{note}",
                table = D.table(&name),
                view = silver_view_sql(&name, &file.to_string_lossy()),
                note = comment.map_or(String::new(), |c| format!(
                    "; COMMENT ON VIEW {} IS {}",
                    D.table(&name),
                    D.literal(&c)
                ))
            ));
            match swapped {
                Ok(()) => conn.execute_batch("COMMIT")?,
                Err(e) => {
                    let _ = conn.execute_batch("ROLLBACK");
                    let _ = std::fs::remove_file(&file);
                    return Err(e.into());
                }
            }
            tracing::info!(table = %name, "silver table moved to its Parquet file");
        }
        Ok(())
    }

    /// A new file for `silver`'s rows: one per transform, named by time so
    /// the newest sorts last.
    fn silver_file(&self, silver: &TableName) -> PathBuf {
        let stamp = OffsetDateTime::now_utc().unix_timestamp_nanos();
        self.root
            .join("volumes")
            .join(self.catalog.as_str())
            .join(silver.schema.as_str())
            .join("tables")
            .join(silver.table.as_str())
            .join(format!("{stamp}.parquet"))
    }

    /// The directories a tenant's files live in: the only places its
    /// queries may read.
    fn tenant_dirs(&self, tenant: &TenantId) -> [PathBuf; 2] {
        let base = self.root.join("volumes").join(self.catalog.as_str());
        [
            base.join(tenant.bronze_schema().as_str()),
            base.join(tenant.silver_schema().as_str()),
        ]
    }

    fn reader(&self) -> Result<Connection, ToolError> {
        let template = self.readers.lock().map_err(|_| {
            ToolError::Backend(BackendError::Invariant(
                "the reader template lock is poisoned",
            ))
        })?;
        template.try_clone().map_err(db)
    }

    /// Runs `f` on a fresh read connection on the blocking pool.
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, ToolError> + Send + 'static,
    ) -> Result<T, ToolError> {
        let conn = self.reader()?;
        tokio::task::spawn_blocking(move || f(&conn))
            .await
            .map_err(blocking_err)?
    }

    /// Runs `f` with `tenant`'s writer, on the blocking pool.
    async fn write<T: Send + 'static>(
        &self,
        tenant: &TenantId,
        f: impl FnOnce(&Connection) -> Result<T, ToolError> + Send + 'static,
    ) -> Result<T, ToolError> {
        let writer = {
            let mut writers = self.writers.lock().map_err(|_| {
                ToolError::Backend(BackendError::Invariant("the writers' lock is poisoned"))
            })?;
            match writers.get(tenant) {
                Some(writer) => writer.clone(),
                None => {
                    let writer: Writer = Arc::new(tokio::sync::Mutex::new(self.reader()?));
                    writers.insert(tenant.clone(), writer.clone());
                    writer
                }
            }
        };
        let guard = writer.lock_owned().await;
        tokio::task::spawn_blocking(move || f(&guard))
            .await
            .map_err(blocking_err)?
    }

    pub fn volume_file(&self, tenant: &TenantId, dataset: &DatasetId, version: u32) -> PathBuf {
        self.dataset_dir(tenant, dataset)
            .join(format!("v{version}"))
            .join("data.parquet")
    }

    /// Where a dataset's staged versions live, one `v<N>/` each.
    fn dataset_dir(&self, tenant: &TenantId, dataset: &DatasetId) -> PathBuf {
        self.root
            .join("volumes")
            .join(self.catalog.as_str())
            .join(tenant.bronze_schema().as_str())
            .join(VOLUME)
            .join(dataset.as_str())
    }
}

impl Backend for LocalLakehouse {
    fn catalog(&self) -> &Ident {
        &self.catalog
    }

    async fn create_bronze(&self, req: BronzeRequest) -> Result<BronzeResult, ToolError> {
        let staged = self.volume_file(&req.tenant, &req.dataset, req.version.get());
        let parent = staged.parent().ok_or_else(|| {
            ToolError::Backend(BackendError::Invariant("a staged file has no directory"))
        })?;
        tokio::fs::create_dir_all(parent).await.map_err(io)?;
        // A staged version is immutable: bronze reads it in place, so a repeat
        // call keeps the first file rather than rewriting it under the table.
        if tokio::fs::try_exists(&staged).await.map_err(io)? {
            let _ = tokio::fs::remove_file(&req.download).await;
        } else {
            // Into the lakehouse first (a rename, or a copy across file
            // systems), under a name no view reads.
            let partial = staged.with_extension("parquet.partial");
            if tokio::fs::rename(&req.download, &partial).await.is_err() {
                tokio::fs::copy(&req.download, &partial).await.map_err(io)?;
                let _ = tokio::fs::remove_file(&req.download).await;
            }
            // The file's own columns must leave room for lineage: checked
            // before it is staged, so a refused file stays out of every
            // later version's bronze.
            let path = partial.to_string_lossy().into_owned();
            let checked = self
                .read(move |conn| {
                    let columns = describe(
                        conn,
                        &format!("SELECT * FROM read_parquet({})", D.literal(&path)),
                    )?;
                    match columns
                        .iter()
                        .find(|c| BRONZE_LINEAGE.contains(&c.name.as_str()))
                    {
                        Some(clash) => Err(ToolError::ReservedColumn {
                            column: clash.name.clone(),
                        }),
                        None => Ok(()),
                    }
                })
                .await;
            if let Err(e) = checked {
                let _ = tokio::fs::remove_file(&partial).await;
                return Err(e);
            }
            tokio::fs::rename(&partial, &staged).await.map_err(io)?;
        }
        let name = TableName::new(
            self.catalog.clone(),
            req.tenant.bronze_schema(),
            req.table.clone(),
        );
        // Bronze keeps every staged version, this one and any other.
        let versions = staged_versions(&self.dataset_dir(&req.tenant, &req.dataset)).await?;
        let newest = versions.last().map_or(req.version.get(), |v| v.version);
        let (tenant, dataset) = (req.tenant.clone(), req.dataset.clone());
        let volume_path = staged.to_string_lossy().into_owned();
        let table = name.clone();
        let (columns, row_count) = self
            .write(&req.tenant, move |conn| {
                let create = |casts: &[Vec<String>]| {
                    in_transaction(conn, |conn| {
                        for schema in [tenant.bronze_schema(), tenant.silver_schema()] {
                            conn.execute_batch(&format!(
                                "CREATE SCHEMA IF NOT EXISTS {}.{}",
                                D.ident(table.catalog.as_str()),
                                D.ident(schema.as_str())
                            ))
                            .map_err(db)?;
                        }
                        conn.execute_batch(&bronze_sql(&table, dataset.as_str(), &versions, casts))
                            .map_err(db)?;
                        set_note(conn, "VIEW", &table, dataset.as_str(), Some((newest, 1)))
                    })
                };
                if let Err(first) = create(&[]) {
                    // Versions that disagree on a column's type (a replace
                    // may change any): bronze keeps that column as text.
                    let casts = conflicting_columns(conn, &versions)?;
                    if casts.is_empty() || create(&casts).is_err() {
                        return Err(first);
                    }
                }
                // Parquet keeps its row count in the footer: no scan.
                Ok((
                    describe(conn, &format!("SELECT * FROM {}", D.table(&table)))?,
                    count(conn, &table)?,
                ))
            })
            .await?;
        Ok(req.result(&name, volume_path, row_count, columns))
    }

    async fn transform_to_silver(
        &self,
        tenant: TenantId,
        bronze: TableName,
        versions: SilverVersions,
    ) -> Result<SilverResult, ToolError> {
        let silver = silver_name_for(&self.catalog, &tenant, &bronze)?;
        // Statistics are a read: many datasets can be profiled at once.
        let (source, current) = (bronze.clone(), silver.clone());
        let prepared = self
            .read(move |conn| {
                let columns = table_columns(conn, &source)?;
                if columns.is_empty() {
                    return Err(ToolError::NotFound(source.to_string()));
                }
                if let Some(position) = plan::unnamed_column(&columns) {
                    return Err(ToolError::EmptyColumnName {
                        table: source.to_string(),
                        position,
                    });
                }
                let ViewEntry { sql, note } = view_entry(conn, &source)?;
                let range = if columns.iter().any(|c| c.name == plan::VERSION_COLUMN) {
                    let newest = match note.as_ref().and_then(|n| n.version) {
                        Some(v) => v,
                        None => newest_version(conn, &source)?,
                    };
                    let range = VersionRange::new(versions.base_version, versions.version, newest);
                    // A newer sync built silver already: leave it be.
                    if let Some(held) = view_entry(conn, &current)?
                        .note
                        .filter(|n| n.version.is_some_and(|v| v > range.version))
                    {
                        let typed = table_columns(conn, &current)?;
                        return Ok(Prepared::Unchanged(silver_unchanged(
                            &current,
                            count(conn, &current)?,
                            &typed,
                            held.version.unwrap_or(range.version),
                            held.base_version.unwrap_or(1),
                        )));
                    }
                    Some(range)
                } else {
                    None
                };
                // A replace may have dropped columns: silver has those of
                // the versions it reads (and lineage).
                let columns = match (range, sql) {
                    (Some(range), Some(sql)) => {
                        let mut present = std::collections::HashSet::new();
                        for file in parquet_paths(&sql) {
                            if staged_version_of(&file).is_some_and(|v| range.contains(v)) {
                                let select =
                                    format!("SELECT * FROM read_parquet({})", D.literal(&file));
                                present
                                    .extend(describe(conn, &select)?.into_iter().map(|c| c.name));
                            }
                        }
                        if present.is_empty() {
                            columns
                        } else {
                            columns
                                .into_iter()
                                .filter(|c| {
                                    present.contains(&c.name)
                                        || BRONZE_LINEAGE.contains(&c.name.as_str())
                                })
                                .collect()
                        }
                    }
                    _ => columns,
                };
                let (bronze_rows, source_columns) = measure(conn, &source, range, &columns)?;
                let dataset_id = match note {
                    Some(note) => note.dataset_id,
                    // A bronze view made by hand carries no note: scan for it.
                    None => conn
                        .query_row(
                            &format!("SELECT any_value(_dataset_id) FROM {}", D.table(&source)),
                            [],
                            |r| r.get::<_, Option<String>>(0),
                        )
                        .map_err(db)?
                        .unwrap_or_default(),
                };
                Ok(Prepared::Build {
                    columns: source_columns,
                    bronze_rows,
                    dataset_id,
                    range,
                })
            })
            .await?;
        let (source_columns, bronze_rows, dataset_id, range) = match prepared {
            Prepared::Unchanged(result) => return Ok(result),
            Prepared::Build {
                columns,
                bronze_rows,
                dataset_id,
                range,
            } => (columns, bronze_rows, dataset_id, range),
        };
        let plan = SilverPlan::new(
            bronze,
            silver.clone(),
            range,
            plan::now_timestamp(),
            &source_columns,
        );
        // The rows go to a new file (a read: it runs beside other syncs'
        // writes), then one short write points the view at it.
        let file = self.silver_file(&silver);
        let dir = file
            .parent()
            .ok_or(ToolError::Backend(BackendError::Invariant(
                "a silver file has no directory",
            )))?
            .to_path_buf();
        tokio::fs::create_dir_all(&dir).await.map_err(io)?;
        let partial = file.with_extension("parquet.partial");
        let copy = format!(
            "COPY ({}) TO {} ({PARQUET_OPTIONS})",
            plan.select_sql(D),
            D.literal(&partial.to_string_lossy())
        );
        let written = self
            .read(move |conn| conn.execute_batch(&copy).map_err(db))
            .await;
        if let Err(e) = written {
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(e);
        }
        tokio::fs::rename(&partial, &file).await.map_err(io)?;
        let target = silver.clone();
        let view = silver_view_sql(&silver, &file.to_string_lossy());
        let swapped = self
            .write(&tenant, move |conn| {
                in_transaction(conn, |conn| {
                    conn.execute_batch(&view).map_err(db)?;
                    set_note(
                        conn,
                        "VIEW",
                        &target,
                        &dataset_id,
                        range.map(|r| (r.version, r.base)),
                    )
                })
            })
            .await;
        if let Err(e) = swapped {
            let _ = tokio::fs::remove_file(&file).await;
            return Err(e);
        }
        remove_older_files(&dir, &file).await;
        let null_sql = plan.null_counts_sql(D);
        let width = plan.columns.len() + 1;
        let typed_table = silver.clone();
        let (counts, typed): (Vec<u64>, _) = self
            .read(move |conn| {
                let counts = conn
                    .query_row(&null_sql, [], |row| {
                        (0..width)
                            .map(|i| row.get::<_, i64>(i).map(|v| u64::try_from(v).unwrap_or(0)))
                            .collect()
                    })
                    .map_err(db)?;
                Ok((counts, table_columns(conn, &typed_table)?))
            })
            .await?;
        Ok(plan.result(&counts, &typed, bronze_rows))
    }

    async fn dataset_status(
        &self,
        tenant: TenantId,
        dataset: DatasetId,
    ) -> Result<DatasetStatus, ToolError> {
        let catalog = self.catalog.clone();
        let suffix = format!("_{}", dataset.short_id());
        let id = dataset.to_string();
        self.read(move |conn| {
            let mut status = DatasetStatus {
                dataset_id: id,
                bronze: TableStatus::default(),
                silver: TableStatus::default(),
            };
            for (schema, slot) in [
                (tenant.bronze_schema(), &mut status.bronze),
                (tenant.silver_schema(), &mut status.silver),
            ] {
                let found: Option<(String, Option<String>)> = conn
                    .query_row(
                        "SELECT name, comment FROM (
                           SELECT table_name AS name, comment FROM duckdb_tables() WHERE database_name = ? AND schema_name = ?
                           UNION ALL
                           SELECT view_name, comment FROM duckdb_views() WHERE database_name = ? AND schema_name = ?
                         ) WHERE ends_with(name, ?) ORDER BY name LIMIT 1",
                        duckdb::params![catalog.as_str(), schema.as_str(), catalog.as_str(), schema.as_str(), suffix],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .map(Some)
                    .or_else(|e| match e {
                        duckdb::Error::QueryReturnedNoRows => Ok(None),
                        e => Err(db(e)),
                    })?;
                if let Some((table, comment)) = found {
                    let name = TableName::new(catalog.clone(), schema, Ident::parse(&table)?);
                    *slot = TableStatus {
                        exists: true,
                        full_name: Some(name.to_string()),
                        sql_name: Some(D.table(&name)),
                        row_count: Some(count(conn, &name)?),
                        updated_at: comment
                            .and_then(|c| serde_json::from_str::<TableNote>(&c).ok())
                            .map(|n| n.updated_at),
                    };
                }
            }
            Ok(status)
        })
        .await
    }

    async fn drop_dataset(
        &self,
        tenant: TenantId,
        dataset: DatasetId,
    ) -> Result<DropResult, ToolError> {
        let catalog = self.catalog.clone();
        let suffix = format!("_{}", dataset.short_id());
        let id = dataset.to_string();
        let schemas = [tenant.bronze_schema(), tenant.silver_schema()];
        // The views go first (one transaction), so no query or status sees
        // a table whose files are gone; then the files.
        let dropped = self
            .write(&tenant, move |conn| {
                let mut found = Vec::new();
                for schema in schemas {
                    let mut stmt = conn
                        .prepare(
                            "SELECT name, comment, kind FROM (
                               SELECT table_name AS name, comment, 'TABLE' AS kind FROM duckdb_tables()
                                 WHERE database_name = ? AND schema_name = ?
                               UNION ALL
                               SELECT view_name, comment, 'VIEW' FROM duckdb_views()
                                 WHERE database_name = ? AND schema_name = ?
                             ) WHERE ends_with(name, ?) ORDER BY name",
                        )
                        .map_err(db)?;
                    let rows = stmt
                        .query_map(
                            duckdb::params![
                                catalog.as_str(),
                                schema.as_str(),
                                catalog.as_str(),
                                schema.as_str(),
                                suffix
                            ],
                            |r| {
                                Ok((
                                    r.get::<_, String>(0)?,
                                    r.get::<_, Option<String>>(1)?,
                                    r.get::<_, String>(2)?,
                                ))
                            },
                        )
                        .map_err(db)?
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(db)?;
                    for (name, comment, kind) in rows {
                        // The short id could collide; the note names the dataset.
                        let note = comment.and_then(|c| serde_json::from_str::<TableNote>(&c).ok());
                        if note.is_some_and(|n| n.dataset_id != id) {
                            continue;
                        }
                        let table =
                            TableName::new(catalog.clone(), schema.clone(), Ident::parse(&name)?);
                        found.push((table, kind));
                    }
                }
                in_transaction(conn, |conn| {
                    for (table, kind) in &found {
                        conn.execute_batch(&format!("DROP {kind} IF EXISTS {}", D.table(table)))
                            .map_err(db)?;
                    }
                    Ok(())
                })?;
                Ok(found.into_iter().map(|(t, _)| t).collect::<Vec<_>>())
            })
            .await?;
        let mut dirs = vec![self
            .volume_file(&tenant, &dataset, 1)
            .parent()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .ok_or(ToolError::Backend(BackendError::Invariant(
                "a staged file has no dataset directory",
            )))?];
        for table in dropped
            .iter()
            .filter(|t| t.schema == tenant.silver_schema())
        {
            dirs.push(
                self.root
                    .join("volumes")
                    .join(self.catalog.as_str())
                    .join(table.schema.as_str())
                    .join("tables")
                    .join(table.table.as_str()),
            );
        }
        let mut removed_files = 0;
        for dir in dirs {
            removed_files += remove_tree(&dir).await.map_err(io)?;
        }
        Ok(DropResult {
            dataset_id: dataset.to_string(),
            dropped_tables: dropped.iter().map(ToString::to_string).collect(),
            removed_files,
        })
    }

    async fn list_tables(&self, tenant: TenantId) -> Result<TableList, ToolError> {
        let catalog = self.catalog.clone();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = ? AND schema_name IN (?, ?)
                     UNION ALL
                     SELECT schema_name, view_name FROM duckdb_views() WHERE database_name = ? AND schema_name IN (?, ?)
                     ORDER BY 1, 2",
                )
                .map_err(db)?;
            let (b, s) = (tenant.bronze_schema(), tenant.silver_schema());
            let rows = stmt
                .query_map(
                    duckdb::params![catalog.as_str(), b.as_str(), s.as_str(), catalog.as_str(), b.as_str(), s.as_str()],
                    |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
                )
                .map_err(db)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(db)?;
            let tables = rows
                .into_iter()
                .filter_map(|(schema, table)| {
                    let schema = Ident::parse(&schema).ok()?;
                    let layer = layer_of(&tenant, &schema)?;
                    let name = TableName::new(catalog.clone(), schema, Ident::parse(&table).ok()?);
                    Some(TableSummary {
                        full_name: name.to_string(),
                        sql_name: D.table(&name),
                        layer: layer.to_owned(),
                        table_type: table_type(&name).to_owned(),
                    })
                })
                .collect();
            Ok(TableList { tables })
        })
        .await
    }

    async fn describe_table(&self, table: TableName) -> Result<TableDescription, ToolError> {
        if table.catalog != self.catalog {
            return Err(ToolError::NotFound(table.to_string()));
        }
        self.read(move |conn| {
            let columns = table_columns(conn, &table)?;
            if columns.is_empty() {
                return Err(ToolError::NotFound(table.to_string()));
            }
            let (comment, sql): (Option<String>, Option<String>) = conn
                .query_row(
                    "SELECT comment, NULL FROM duckdb_tables() WHERE database_name = ? AND schema_name = ? AND table_name = ?
                     UNION ALL
                     SELECT comment, sql FROM duckdb_views() WHERE database_name = ? AND schema_name = ? AND view_name = ?",
                    duckdb::params![
                        table.catalog.as_str(),
                        table.schema.as_str(),
                        table.table.as_str(),
                        table.catalog.as_str(),
                        table.schema.as_str(),
                        table.table.as_str()
                    ],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(db)?;
            // Bronze reads every version's file: the newest is its location.
            let storage_location = sql.and_then(|s| parquet_paths(&s).into_iter().last());
            Ok(TableDescription {
                full_name: table.to_string(),
                sql_name: D.table(&table),
                table_type: table_type(&table).to_owned(),
                row_count: Some(count(conn, &table)?),
                columns,
                storage_location,
                updated_at: comment
                    .and_then(|c| serde_json::from_str::<TableNote>(&c).ok())
                    .map(|n| n.updated_at),
            })
        })
        .await
    }

    async fn query(&self, request: QueryRequest) -> Result<QueryResult, ToolError> {
        // What the sandbox may hold: the tenant's views, each with the files
        // it reads, and only files inside the tenant's own directories.
        let (catalog, tenant) = (self.catalog.clone(), request.tenant.clone());
        let dirs = self.tenant_dirs(&tenant);
        let views = self
            .read(move |conn| tenant_views(conn, &catalog, &tenant, &dirs))
            .await?;
        let job = QueryJob {
            limits: self.sandbox,
            catalog: self.catalog.as_str().to_owned(),
            tenant: request.tenant.as_str().to_owned(),
            views,
            sql: request.sql,
            limit: request.limit,
            timeout: request.timeout,
        };
        let seconds = request.timeout.as_secs();
        match self
            .workers
            .run::<_, QueryOutcome>(&job, request.timeout + KILL_AFTER)
            .await
        {
            Ok(outcome) => outcome.into(),
            Err(contract::isolate::WorkerError::Timeout(_)) => Err(ToolError::Timeout(seconds)),
            Err(e) => Err(ToolError::Backend(BackendError::Worker(e.to_string()))),
        }
    }
}

/// Runs a checked statement, at most `limit` rows of it, as JSON objects.
fn run_query(conn: &Connection, sql: &str, limit: u32) -> Result<QueryResult, ToolError> {
    let columns = describe(conn, &format!("SELECT * FROM (\n{sql}\n) AS q")).map_err(query_err)?;
    let limit = u64::from(limit);
    let wrapped = format!(
        "SELECT to_json(q)::VARCHAR FROM (\n{sql}\n) AS q LIMIT {}",
        limit + 1
    );
    let mut stmt = conn.prepare(&wrapped).map_err(db).map_err(query_err)?;
    let mut rows = Vec::new();
    let mut truncated = false;
    let mut cursor = stmt.query([]).map_err(db).map_err(query_err)?;
    while let Some(row) = cursor.next().map_err(db).map_err(query_err)? {
        if rows.len() as u64 == limit {
            truncated = true;
            break;
        }
        let json: String = row.get(0).map_err(db)?;
        rows.push(
            serde_json::from_str(&non_finite_as_text(&json))
                .map_err(|e| ToolError::Backend(BackendError::Json(e)))?,
        );
    }
    Ok(QueryResult {
        columns,
        row_count: rows.len() as u64,
        rows,
        truncated,
    })
}

/// DuckDB's `to_json` writes a DOUBLE that is not finite as a bare `NaN`,
/// `Infinity` or `-Infinity`, which JSON has no word for (the row would not
/// parse). Each is answered as that word in a string, as Databricks answers
/// it: neither lost nor taken for a null.
fn non_finite_as_text(json: &str) -> std::borrow::Cow<'_, str> {
    const WORDS: [&str; 3] = ["-Infinity", "Infinity", "NaN"];
    if !WORDS[1..].iter().any(|word| json.contains(word)) {
        return json.into();
    }
    let bytes = json.as_bytes();
    let mut out = String::with_capacity(json.len() + 16);
    let (mut in_string, mut escaped, mut copied, mut at) = (false, false, 0, 0);
    while at < bytes.len() {
        let byte = bytes[at];
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
        } else if byte == b'"' {
            in_string = true;
        } else if let Some(word) = WORDS
            .iter()
            .find(|word| bytes[at..].starts_with(word.as_bytes()))
        {
            // Outside strings every byte is ASCII, so `at` is a char boundary.
            out.push_str(&json[copied..at]);
            out.push('"');
            out.push_str(word);
            out.push('"');
            at += word.len();
            copied = at;
            continue;
        }
        at += 1;
    }
    out.push_str(&json[copied..]);
    out.into()
}

/// A query that ran out of its memory is the caller's to narrow, not ours
/// to retry.
fn query_err(e: ToolError) -> ToolError {
    match e {
        ToolError::Backend(BackendError::DuckDb(inner))
            if inner.to_string().contains("Out of Memory Error") =>
        {
            ToolError::OutOfMemory
        }
        other => other,
    }
}

/// Every view in the tenant's two schemas with the files it reads. A view
/// reading anything outside `dirs` is left out (the lakehouse never makes
/// one; a hand-made one must not widen what a query can open).
fn tenant_views(
    conn: &Connection,
    catalog: &Ident,
    tenant: &TenantId,
    dirs: &[PathBuf; 2],
) -> Result<Vec<SandboxView>, ToolError> {
    let mut stmt = conn
        .prepare(
            "SELECT schema_name, view_name, sql FROM duckdb_views()
             WHERE database_name = ? AND schema_name IN (?, ?)",
        )
        .map_err(db)?;
    let (b, s) = (tenant.bronze_schema(), tenant.silver_schema());
    let rows = stmt
        .query_map(
            duckdb::params![catalog.as_str(), b.as_str(), s.as_str()],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            },
        )
        .map_err(db)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(db)?;
    let inside = |file: &str| {
        let path = Path::new(file);
        !file.contains("..") && dirs.iter().any(|d| path.starts_with(d))
    };
    Ok(rows
        .into_iter()
        .filter_map(|(schema, name, sql)| {
            let files = parquet_paths(&sql);
            (!files.is_empty() && files.iter().all(|f| inside(f))).then_some(SandboxView {
                schema,
                name,
                sql,
                files,
            })
        })
        .collect())
}

/// The literal paths inside `read_parquet('…')` calls of a view's SQL.
pub fn parquet_paths(sql: &str) -> Vec<String> {
    const OPEN: &str = "read_parquet('";
    let mut paths = Vec::new();
    let mut rest = sql;
    while let Some(start) = rest.find(OPEN) {
        let body = &rest[start + OPEN.len()..];
        // The literal ends at a quote not doubled.
        let bytes = body.as_bytes();
        let mut i = 0;
        let mut value = String::new();
        let mut closed = false;
        while i < bytes.len() {
            if bytes[i] == b'\'' {
                if bytes.get(i + 1) == Some(&b'\'') {
                    value.push('\'');
                    i += 2;
                    continue;
                }
                closed = true;
                break;
            }
            let ch = body[i..].chars().next().unwrap_or_default();
            value.push(ch);
            i += ch.len_utf8();
        }
        if !closed {
            break;
        }
        paths.push(value);
        rest = &body[i + 1..];
    }
    paths
}

/// `MANAGED` for silver (its files are the lakehouse's to manage), as Unity
/// Catalog reports it; bronze is an external table over the staged file.
fn table_type(table: &TableName) -> &'static str {
    if table.schema.as_str().ends_with("_silver") {
        "MANAGED"
    } else {
        "EXTERNAL"
    }
}

/// The silver view over its file.
fn silver_view_sql(table: &TableName, path: &str) -> String {
    format!(
        "CREATE OR REPLACE VIEW {} AS SELECT * FROM read_parquet({})",
        D.table(table),
        D.literal(path)
    )
}

/// After a transform: the table's earlier files, no longer read by its view,
/// and any partial file a killed transform left.
async fn remove_older_files(dir: &Path, keep: &Path) {
    let Ok(mut entries) = tokio::fs::read_dir(dir).await else {
        return;
    };
    while let Ok(Some(entry)) = entries.next_entry().await {
        let path = entry.path();
        if path != keep {
            if let Err(e) = tokio::fs::remove_file(&path).await {
                tracing::warn!(error = %e, file = %path.display(), "could not remove an old silver file");
            }
        }
    }
}

/// Removes a directory and everything under it; returns how many files went.
/// A directory that is already gone counts as removed.
async fn remove_tree(dir: &Path) -> std::io::Result<u64> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        fn walk(dir: &Path, removed: &mut u64) -> std::io::Result<()> {
            let entries = match std::fs::read_dir(dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e),
            };
            for entry in entries {
                let entry = entry?;
                if entry.file_type()?.is_dir() {
                    walk(&entry.path(), removed)?;
                } else {
                    match std::fs::remove_file(entry.path()) {
                        Ok(()) => *removed += 1,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e),
                    }
                }
            }
            match std::fs::remove_dir(dir) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        }
        let mut removed = 0;
        walk(&dir, &mut removed)?;
        Ok(removed)
    })
    .await
    .unwrap_or_else(|e| Err(std::io::Error::other(e)))
}

/// One staged version of a dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedVersion {
    pub version: u32,
    pub path: String,
    /// When it was staged, as a TIMESTAMP literal (the file's modification
    /// time: a staged file is never rewritten).
    pub staged_at: String,
}

/// The staged versions under a dataset's directory, oldest first.
async fn staged_versions(dir: &Path) -> Result<Vec<StagedVersion>, ToolError> {
    let mut found = Vec::new();
    let mut entries = match tokio::fs::read_dir(dir).await {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
        Err(e) => return Err(io(e)),
    };
    while let Some(entry) = entries.next_entry().await.map_err(io)? {
        let name = entry.file_name();
        let Some(version) = name
            .to_str()
            .and_then(|n| n.strip_prefix('v'))
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let file = entry.path().join("data.parquet");
        let Ok(meta) = tokio::fs::metadata(&file).await else {
            continue;
        };
        let staged_at = meta
            .modified()
            .map(OffsetDateTime::from)
            .unwrap_or_else(|_| OffsetDateTime::now_utc());
        found.push(StagedVersion {
            version,
            path: file.to_string_lossy().into_owned(),
            staged_at: plan::timestamp_literal(staged_at),
        });
    }
    found.sort_by_key(|v| v.version);
    Ok(found)
}

/// For each staged version, its columns whose type differs from another
/// version's (empty when none differs).
fn conflicting_columns(
    conn: &Connection,
    versions: &[StagedVersion],
) -> Result<Vec<Vec<String>>, ToolError> {
    let mut per_version = Vec::with_capacity(versions.len());
    let mut types: std::collections::HashMap<String, std::collections::HashSet<String>> =
        Default::default();
    for v in versions {
        let select = format!("SELECT * FROM read_parquet({})", D.literal(&v.path));
        let columns = describe(conn, &select)?;
        for c in &columns {
            types
                .entry(c.name.clone())
                .or_default()
                .insert(c.data_type.clone());
        }
        per_version.push(columns);
    }
    let conflicting = |name: &str| types.get(name).is_some_and(|t| t.len() > 1);
    let casts: Vec<Vec<String>> = per_version
        .into_iter()
        .map(|columns| {
            columns
                .into_iter()
                .filter(|c| conflicting(&c.name))
                .map(|c| c.name)
                .collect()
        })
        .collect();
    Ok(if casts.iter().all(Vec::is_empty) {
        Vec::new()
    } else {
        casts
    })
}

/// The bronze "external table": a view over every staged version's file,
/// read in place, each row with its lineage (`_dataset_id`,
/// `_source_file`, `_version`, `_ingested_at`). Versions with different
/// columns line up by name; `casts[i]` are version `i`'s columns read as
/// text (none when `casts` is empty).
/// The rows silver reads from `bronze` (`range` of its versions), and each
/// of `columns` with its statistics, for [`SilverPlan::new`]: the text
/// columns measured in one scan, by column ([`plan::stats_by_column_sql`]).
pub fn measure(
    conn: &Connection,
    bronze: &TableName,
    range: Option<VersionRange>,
    columns: &[ColumnInfo],
) -> Result<(u64, Vec<plan::SourceColumn>), ToolError> {
    let rows: i64 = conn
        .query_row(&plan::count_sql(D, bronze, range), [], |row| row.get(0))
        .map_err(db)?;
    let strings = plan::string_columns(D, columns);
    let mut stats = std::collections::HashMap::new();
    if !strings.is_empty() {
        let mut stmt = conn
            .prepare(&plan::stats_by_column_sql(D, bronze, range, &strings))
            .map_err(db)?;
        let mut found = stmt.query([]).map_err(db)?;
        while let Some(row) = found.next().map_err(db)? {
            let values = (1..=plan::STATS_PER_COLUMN)
                .map(|i| row.get::<_, i64>(i).map(|v| u64::try_from(v).unwrap_or(0)))
                .collect::<Result<Vec<u64>, _>>()
                .map_err(db)?;
            let name: String = row.get(0).map_err(db)?;
            stats.insert(name, plan::StringStats::from_values(&values));
        }
    }
    Ok((
        u64::try_from(rows).unwrap_or(0),
        plan::with_stats(columns, &strings, stats),
    ))
}

pub fn bronze_sql(
    table: &TableName,
    dataset_id: &str,
    versions: &[StagedVersion],
    casts: &[Vec<String>],
) -> String {
    let parts: Vec<String> = versions
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let casts = casts.get(i).map_or(&[][..], Vec::as_slice);
            let replace = if casts.is_empty() {
                String::new()
            } else {
                let casts: Vec<String> = casts
                    .iter()
                    .map(|c| format!("CAST({0} AS VARCHAR) AS {0}", D.ident(c)))
                    .collect();
                format!(" REPLACE ({})", casts.join(", "))
            };
            format!(
                "SELECT *{replace}, {} AS {}, {} AS {}, CAST({} AS INTEGER) AS {}, CAST({} AS TIMESTAMP) AS {} FROM read_parquet({})",
                D.literal(dataset_id),
                D.ident(plan::DATASET_ID_COLUMN),
                D.literal(&v.path),
                D.ident(plan::SOURCE_FILE_COLUMN),
                v.version,
                D.ident(plan::VERSION_COLUMN),
                D.literal(&v.staged_at),
                D.ident(plan::INGESTED_AT_COLUMN),
                D.literal(&v.path)
            )
        })
        .collect();
    let body = match parts.as_slice() {
        [one] => one.clone(),
        _ => {
            // By name, then lineage moved after every version's columns.
            let lineage: Vec<String> = BRONZE_LINEAGE.iter().map(|c| D.ident(c)).collect();
            format!(
                "SELECT * EXCLUDE ({0}), {0} FROM ({1}) AS versions",
                lineage.join(", "),
                parts.join(" UNION ALL BY NAME ")
            )
        }
    };
    format!("CREATE OR REPLACE VIEW {} AS {body}", D.table(table))
}

fn set_note(
    conn: &Connection,
    kind: &str,
    table: &TableName,
    dataset_id: &str,
    versions: Option<(u32, u32)>,
) -> Result<(), ToolError> {
    let note = serde_json::to_string(&TableNote {
        dataset_id: dataset_id.to_owned(),
        updated_at: now_rfc3339(),
        version: versions.map(|(v, _)| v),
        base_version: versions.map(|(_, b)| b),
    })
    .unwrap_or_default();
    conn.execute_batch(&format!(
        "COMMENT ON {kind} {} IS {}",
        D.table(table),
        D.literal(&note)
    ))
    .map_err(db)
}

/// What `transform_to_silver` found before it builds.
enum Prepared {
    Unchanged(SilverResult),
    Build {
        columns: Vec<plan::SourceColumn>,
        bronze_rows: u64,
        dataset_id: String,
        range: Option<VersionRange>,
    },
}

/// The version of a staged file, from its `…/v<N>/data.parquet` path.
fn staged_version_of(path: &str) -> Option<u32> {
    Path::new(path)
        .parent()?
        .file_name()?
        .to_str()?
        .strip_prefix('v')?
        .parse()
        .ok()
}

/// The newest `_version` a bronze view holds (1 when it holds none).
fn newest_version(conn: &Connection, bronze: &TableName) -> Result<u32, ToolError> {
    let newest: Option<i64> = conn
        .query_row(
            &format!(
                "SELECT max({}) FROM {}",
                D.ident(plan::VERSION_COLUMN),
                D.table(bronze)
            ),
            [],
            |r| r.get(0),
        )
        .map_err(db)?;
    Ok(newest.and_then(|v| u32::try_from(v).ok()).unwrap_or(1))
}

/// A view as the catalog keeps it: its SQL and the note the lakehouse left
/// on it (bronze or silver); both `None` when there is no such view.
struct ViewEntry {
    sql: Option<String>,
    note: Option<TableNote>,
}

fn view_entry(conn: &Connection, view: &TableName) -> Result<ViewEntry, ToolError> {
    let (sql, comment): (Option<String>, Option<String>) = conn
        .query_row(
            "SELECT any_value(sql), any_value(comment) FROM duckdb_views()
             WHERE database_name = ? AND schema_name = ? AND view_name = ?",
            duckdb::params![
                view.catalog.as_str(),
                view.schema.as_str(),
                view.table.as_str()
            ],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(db)?;
    Ok(ViewEntry {
        sql,
        note: comment.and_then(|c| serde_json::from_str(&c).ok()),
    })
}

/// Runs `f` as one transaction, so its statements become visible together and
/// cost one commit (one WAL flush) instead of one each.
fn in_transaction<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, ToolError>,
) -> Result<T, ToolError> {
    conn.execute_batch("BEGIN TRANSACTION").map_err(db)?;
    let outcome = f(conn).and_then(|value| {
        conn.execute_batch("COMMIT").map_err(db)?;
        Ok(value)
    });
    if outcome.is_err() {
        // Nothing to undo if the failed COMMIT already ended it.
        let _ = conn.execute_batch("ROLLBACK");
    }
    outcome
}

fn describe(conn: &Connection, select: &str) -> Result<Vec<ColumnInfo>, ToolError> {
    let mut stmt = conn.prepare(&format!("DESCRIBE {select}")).map_err(db)?;
    let rows = stmt
        .query_map([], |r| {
            Ok(ColumnInfo {
                name: r.get(0)?,
                data_type: r.get(1)?,
            })
        })
        .map_err(db)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(db)?;
    Ok(rows)
}

fn table_columns(conn: &Connection, table: &TableName) -> Result<Vec<ColumnInfo>, ToolError> {
    let mut stmt = conn
        .prepare(
            "SELECT column_name, data_type FROM information_schema.columns
             WHERE table_catalog = ? AND table_schema = ? AND table_name = ? ORDER BY ordinal_position",
        )
        .map_err(db)?;
    let rows = stmt
        .query_map(
            duckdb::params![
                table.catalog.as_str(),
                table.schema.as_str(),
                table.table.as_str()
            ],
            |r| {
                Ok(ColumnInfo {
                    name: r.get(0)?,
                    data_type: r.get(1)?,
                })
            },
        )
        .map_err(db)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(db)?;
    Ok(rows)
}

fn count(conn: &Connection, table: &TableName) -> Result<u64, ToolError> {
    let n: i64 = conn
        .query_row(
            &format!("SELECT count(*) FROM {}", D.table(table)),
            [],
            |r| r.get(0),
        )
        .map_err(db)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::non_finite_as_text;
    use serde_json::{json, Value};

    #[test]
    fn numbers_that_are_not_finite_are_answered_as_text() {
        let row = r#"{"a":NaN,"b":"NaN, \"Infinity\" \\","c":[-Infinity,-1.5],"d":{"e":Infinity},"Ünï":"ü"}"#;
        let parsed: Value = serde_json::from_str(&non_finite_as_text(row)).unwrap();
        assert_eq!(
            parsed,
            json!({"a": "NaN", "b": "NaN, \"Infinity\" \\", "c": ["-Infinity", -1.5],
                   "d": {"e": "Infinity"}, "Ünï": "ü"})
        );
        let finite = r#"{"a":1,"b":"x"}"#;
        assert!(matches!(
            non_finite_as_text(finite),
            std::borrow::Cow::Borrowed(_)
        ));
    }
}

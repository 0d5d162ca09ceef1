//! The embedded lakehouse: `LAKEHOUSE_PATH/volumes/…` for staged files and a
//! DuckDB database file named after the catalog, so DuckDB's own
//! `catalog.schema.table` names match Unity Catalog's three levels.
//!
//! DuckDB allows one writer per database, so every catalog change goes
//! through `writer` (an async mutex, held across the blocking call); reads
//! use their own connections cloned from the same database instance and run
//! alongside writes under DuckDB's MVCC.

use super::{
    layer_of, silver_name_for, Backend, BronzeRequest, BronzeResult, ColumnInfo, DatasetStatus,
    QueryRequest, QueryResult, SilverResult, TableDescription, TableList, TableStatus,
    TableSummary,
};
use crate::domain::{DatasetId, Ident, TableName, TenantId};
use crate::error::{BackendError, ToolError};
use crate::plan::{self, Dialect, SilverPlan, BRONZE_LINEAGE};
use duckdb::Connection;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

const D: Dialect = Dialect::DuckDb;
/// The volume inside each tenant's bronze schema that holds raw files.
pub const VOLUME: &str = "raw";

pub struct LocalLakehouse {
    root: PathBuf,
    catalog: Ident,
    /// The only connection that changes the catalog.
    writer: Arc<tokio::sync::Mutex<Connection>>,
    /// Template for read connections (cloning is cheap and shares the database).
    readers: Mutex<Connection>,
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
}

impl LocalLakehouse {
    /// Opens (or creates) the lakehouse under `root`.
    pub fn open(root: &Path, catalog: Ident) -> Result<Self, BackendError> {
        std::fs::create_dir_all(root.join("volumes"))?;
        let root = root.canonicalize()?;
        let conn = Connection::open(root.join(format!("{}.duckdb", catalog.as_str())))?;
        let readers = conn.try_clone()?;
        Ok(Self {
            root,
            catalog,
            writer: Arc::new(tokio::sync::Mutex::new(conn)),
            readers: Mutex::new(readers),
        })
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

    /// Runs `f` with the single writer, on the blocking pool.
    async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, ToolError> + Send + 'static,
    ) -> Result<T, ToolError> {
        let guard = self.writer.clone().lock_owned().await;
        tokio::task::spawn_blocking(move || f(&guard))
            .await
            .map_err(blocking_err)?
    }

    pub fn volume_file(&self, tenant: &TenantId, dataset: &DatasetId, version: u32) -> PathBuf {
        self.root
            .join("volumes")
            .join(self.catalog.as_str())
            .join(tenant.bronze_schema().as_str())
            .join(VOLUME)
            .join(dataset.as_str())
            .join(format!("v{version}"))
            .join("data.parquet")
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
        } else if tokio::fs::rename(&req.download, &staged).await.is_err() {
            // Different file systems: copy to a sibling, then rename atomically.
            let partial = staged.with_extension("parquet.partial");
            tokio::fs::copy(&req.download, &partial).await.map_err(io)?;
            tokio::fs::rename(&partial, &staged).await.map_err(io)?;
            let _ = tokio::fs::remove_file(&req.download).await;
        }
        let name = TableName::new(
            self.catalog.clone(),
            req.tenant.bronze_schema(),
            req.table.clone(),
        );
        let (tenant, dataset) = (req.tenant.clone(), req.dataset.clone());
        let path = staged.to_string_lossy().into_owned();
        let volume_path = path.clone();
        let table = name.clone();
        let (columns, row_count) = self
            .write(move |conn| {
                let file_columns = describe(
                    conn,
                    &format!("SELECT * FROM read_parquet({})", D.literal(&path)),
                )?;
                if let Some(clash) = file_columns
                    .iter()
                    .find(|c| BRONZE_LINEAGE.contains(&c.name.as_str()))
                {
                    return Err(ToolError::ReservedColumn {
                        column: clash.name.clone(),
                    });
                }
                in_transaction(conn, |conn| {
                    for schema in [tenant.bronze_schema(), tenant.silver_schema()] {
                        conn.execute_batch(&format!(
                            "CREATE SCHEMA IF NOT EXISTS {}.{}",
                            D.ident(table.catalog.as_str()),
                            D.ident(schema.as_str())
                        ))
                        .map_err(db)?;
                    }
                    conn.execute_batch(&bronze_sql(&table, dataset.as_str(), &path))
                        .map_err(db)?;
                    set_note(conn, "VIEW", &table, dataset.as_str())
                })?;
                // Parquet keeps its row count in the footer: no scan.
                Ok((
                    describe(conn, &format!("SELECT * FROM {}", D.table(&table)))?,
                    count(conn, &table)?,
                ))
            })
            .await?;
        Ok(BronzeRequest::result(
            &name,
            volume_path,
            row_count,
            columns,
        ))
    }

    async fn transform_to_silver(
        &self,
        tenant: TenantId,
        bronze: TableName,
    ) -> Result<SilverResult, ToolError> {
        let silver = silver_name_for(&self.catalog, &tenant, &bronze)?;
        // Statistics are a read: many datasets can be profiled at once.
        let source = bronze.clone();
        let (source_columns, bronze_rows, dataset_id) = self
            .read(move |conn| {
                let columns = table_columns(conn, &source)?;
                if columns.is_empty() {
                    return Err(ToolError::NotFound(source.to_string()));
                }
                let strings = plan::string_columns(D, &columns);
                let sql = plan::stats_sql(D, &source, &strings);
                let values: Vec<u64> = conn
                    .query_row(&sql, [], |row| {
                        (0..plan::stats_width(&strings))
                            .map(|i| row.get::<_, i64>(i).map(|v| u64::try_from(v).unwrap_or(0)))
                            .collect()
                    })
                    .map_err(db)?;
                let source_columns =
                    plan::source_columns(&columns, &strings, &values).ok_or(ToolError::Backend(
                        BackendError::Invariant("the statistics row has the wrong width"),
                    ))?;
                let dataset_id = match bronze_note(conn, &source)? {
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
                Ok((source_columns, values[0], dataset_id))
            })
            .await?;
        let plan = SilverPlan::new(
            bronze,
            silver.clone(),
            plan::now_timestamp(),
            &source_columns,
        );
        let create = plan.create_sql(D);
        let target = silver.clone();
        self.write(move |conn| {
            in_transaction(conn, |conn| {
                conn.execute_batch(&create).map_err(db)?;
                set_note(conn, "TABLE", &target, &dataset_id)
            })
        })
        .await?;
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

    async fn list_tables(&self, tenant: TenantId) -> Result<TableList, ToolError> {
        let catalog = self.catalog.clone();
        self.read(move |conn| {
            let mut stmt = conn
                .prepare(
                    "SELECT schema_name, table_name, 'MANAGED' FROM duckdb_tables() WHERE database_name = ? AND schema_name IN (?, ?)
                     UNION ALL
                     SELECT schema_name, view_name, 'EXTERNAL' FROM duckdb_views() WHERE database_name = ? AND schema_name IN (?, ?)
                     ORDER BY 1, 2",
                )
                .map_err(db)?;
            let (b, s) = (tenant.bronze_schema(), tenant.silver_schema());
            let rows = stmt
                .query_map(
                    duckdb::params![catalog.as_str(), b.as_str(), s.as_str(), catalog.as_str(), b.as_str(), s.as_str()],
                    |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?)),
                )
                .map_err(db)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(db)?;
            let tables = rows
                .into_iter()
                .filter_map(|(schema, table, table_type)| {
                    let schema = Ident::parse(&schema).ok()?;
                    let layer = layer_of(&tenant, &schema)?;
                    let name = TableName::new(catalog.clone(), schema, Ident::parse(&table).ok()?);
                    Some(TableSummary {
                        full_name: name.to_string(),
                        layer: layer.to_owned(),
                        table_type,
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
            let (kind, comment, sql): (String, Option<String>, Option<String>) = conn
                .query_row(
                    "SELECT 'MANAGED', comment, NULL FROM duckdb_tables() WHERE database_name = ? AND schema_name = ? AND table_name = ?
                     UNION ALL
                     SELECT 'EXTERNAL', comment, sql FROM duckdb_views() WHERE database_name = ? AND schema_name = ? AND view_name = ?",
                    duckdb::params![
                        table.catalog.as_str(),
                        table.schema.as_str(),
                        table.table.as_str(),
                        table.catalog.as_str(),
                        table.schema.as_str(),
                        table.table.as_str()
                    ],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .map_err(db)?;
            let storage_location = sql.and_then(|s| {
                let start = s.find("read_parquet('")? + "read_parquet('".len();
                let end = s[start..].find("')")?;
                Some(s[start..start + end].replace("''", "'"))
            });
            Ok(TableDescription {
                full_name: table.to_string(),
                table_type: kind,
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
        let catalog = self.catalog.clone();
        let conn = self.reader()?;
        let interrupt = conn.interrupt_handle();
        let seconds = request.timeout.as_secs();
        let work = tokio::task::spawn_blocking(move || {
            conn.execute_batch(&format!("USE {}", D.ident(catalog.as_str())))
                .map_err(db)?;
            let sql = crate::query_guard::check(&conn, &catalog, &request.tenant, &request.sql)?;
            let columns = describe(&conn, &format!("SELECT * FROM (\n{sql}\n) AS q"))?;
            let limit = u64::from(request.limit);
            let wrapped = format!(
                "SELECT to_json(q)::VARCHAR FROM (\n{sql}\n) AS q LIMIT {}",
                limit + 1
            );
            let mut stmt = conn.prepare(&wrapped).map_err(db)?;
            let mut rows = Vec::new();
            let mut truncated = false;
            let mut cursor = stmt.query([]).map_err(db)?;
            while let Some(row) = cursor.next().map_err(db)? {
                if rows.len() as u64 == limit {
                    truncated = true;
                    break;
                }
                let json: String = row.get(0).map_err(db)?;
                rows.push(
                    serde_json::from_str(&json)
                        .map_err(|e| ToolError::Backend(BackendError::Json(e)))?,
                );
            }
            Ok(QueryResult {
                columns,
                row_count: rows.len() as u64,
                rows,
                truncated,
            })
        });
        match tokio::time::timeout(request.timeout, work).await {
            Ok(joined) => joined.map_err(blocking_err)?,
            Err(_) => {
                // DuckDB checks the flag between vectors, so the worker
                // thread stops soon after; nobody waits for it.
                interrupt.interrupt();
                Err(ToolError::Timeout(seconds))
            }
        }
    }
}

/// The bronze "external table": a view over the staged file, read in place.
pub fn bronze_sql(table: &TableName, dataset_id: &str, path: &str) -> String {
    format!(
        "CREATE OR REPLACE VIEW {} AS SELECT *, {} AS {}, {} AS {} FROM read_parquet({})",
        D.table(table),
        D.literal(dataset_id),
        D.ident(plan::DATASET_ID_COLUMN),
        D.literal(path),
        D.ident(plan::SOURCE_FILE_COLUMN),
        D.literal(path)
    )
}

fn set_note(
    conn: &Connection,
    kind: &str,
    table: &TableName,
    dataset_id: &str,
) -> Result<(), ToolError> {
    let note = serde_json::to_string(&TableNote {
        dataset_id: dataset_id.to_owned(),
        updated_at: now_rfc3339(),
    })
    .unwrap_or_default();
    conn.execute_batch(&format!(
        "COMMENT ON {kind} {} IS {}",
        D.table(table),
        D.literal(&note)
    ))
    .map_err(db)
}

/// The note `create_dataset` left on a bronze view, if any.
fn bronze_note(conn: &Connection, view: &TableName) -> Result<Option<TableNote>, ToolError> {
    let comment: Option<String> = conn
        .query_row(
            "SELECT any_value(comment) FROM duckdb_views()
             WHERE database_name = ? AND schema_name = ? AND view_name = ?",
            duckdb::params![
                view.catalog.as_str(),
                view.schema.as_str(),
                view.table.as_str()
            ],
            |r| r.get(0),
        )
        .map_err(db)?;
    Ok(comment.and_then(|c| serde_json::from_str(&c).ok()))
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

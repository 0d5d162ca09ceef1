//! Bronze and silver on Unity Catalog: the volume file, the bronze CTAS over
//! `read_files`, the silver plan rendered as Databricks SQL, and the
//! read-only tools, all through [`super::client`].

use super::client::{
    millis_to_rfc3339, DatabricksClient, DatabricksError, StatementResult, UcColumn,
};
use crate::backend::{
    layer_of, silver_name_for, silver_unchanged, Backend, BronzeRequest, BronzeResult, ColumnInfo,
    DatasetStatus, DropResult, QueryRequest, QueryResult, SilverResult, SilverVersions,
    TableDescription, TableList, TableStatus, TableSummary,
};
use crate::config::DatabricksSettings;
use crate::domain::{DatasetId, Ident, TableName, TenantId};
use crate::error::{BackendError, ToolError};
use crate::plan::{
    self, Dialect, SilverPlan, VersionRange, BASE_VERSION_PROPERTY, VERSION_PROPERTY,
};
use serde_json::Value;
use std::time::Duration;

const D: Dialect = Dialect::Databricks;
/// Delta's table property for column mapping.
const COLUMN_MAPPING: &str = "delta.columnMapping.mode";
/// The column `read_files` adds for values that did not fit the schema
/// (Databricks: "What is the rescued data column?"). Bronze keeps it; silver
/// does not.
pub const RESCUED_DATA_COLUMN: &str = "_rescued_data";

pub struct DatabricksLakehouse {
    client: DatabricksClient,
    /// One client per tenant's read-only principal, when configured.
    query_clients: Option<std::collections::HashMap<String, DatabricksClient>>,
    settings: DatabricksSettings,
}

fn backend(e: DatabricksError) -> ToolError {
    ToolError::Backend(BackendError::Databricks(e))
}

impl DatabricksLakehouse {
    pub fn new(settings: DatabricksSettings) -> Result<Self, DatabricksError> {
        let query_clients = match &settings.query_principals {
            None => None,
            Some(principals) => Some(
                principals
                    .iter()
                    .map(|(tenant, auth)| {
                        Ok((
                            tenant.clone(),
                            DatabricksClient::new(&settings.host, auth.clone())?,
                        ))
                    })
                    .collect::<Result<_, DatabricksError>>()?,
            ),
        };
        Ok(Self {
            client: DatabricksClient::new(&settings.host, settings.auth.clone())?,
            query_clients,
            settings,
        })
    }

    /// For tests: shorter backoff against the contract double.
    pub fn with_backoff(mut self, backoff: Duration) -> Self {
        self.client.backoff = backoff;
        for client in self.query_clients.iter_mut().flat_map(|m| m.values_mut()) {
            client.backoff = backoff;
        }
        self
    }

    /// The client `query` runs as for `tenant`: its read-only principal when
    /// principals are configured (and none for a tenant without one), else
    /// the service principal.
    fn query_client(&self, tenant: &TenantId) -> Result<&DatabricksClient, ToolError> {
        match &self.query_clients {
            None => Ok(&self.client),
            Some(clients) => clients.get(tenant.as_str()).ok_or(ToolError::Forbidden(
                "this team has no read-only Databricks principal (DATABRICKS_QUERY_PRINCIPALS)",
            )),
        }
    }

    async fn run(&self, sql: &str) -> Result<StatementResult, ToolError> {
        let deadline = Duration::from_secs(self.settings.statement_timeout_secs);
        self.client
            .execute(
                &self.settings.warehouse_id,
                self.settings.catalog.as_str(),
                sql,
                deadline,
            )
            .await
            .map_err(backend)
    }

    fn volume_path(&self, tenant: &TenantId, dataset: &DatasetId, version: u32) -> String {
        format!(
            "/Volumes/{}/{}/{}/{}/v{version}/data.parquet",
            self.settings.catalog,
            tenant.bronze_schema(),
            self.settings.volume,
            dataset.as_str()
        )
    }

    /// The bronze CTAS over every staged version of the dataset. Unity
    /// Catalog forbids tables defined on /Volumes paths, so bronze copies
    /// the staged files with `read_files` (schemas merged by name, so a
    /// replaced version may add or drop columns); with an external location
    /// it is an EXTERNAL table there instead. Each row's `_version` comes
    /// from its file's `v<N>` directory and `_ingested_at` from when that
    /// file was staged (`_metadata`, the file metadata column).
    ///
    /// Bronze keeps the file's column names as uploaded ("Customer ID"), so
    /// it is created with Delta column mapping by name: without it Delta
    /// refuses spaces and `,;{}()\n\t=` in names
    /// (`DELTA_INVALID_CHARACTERS_IN_COLUMN_NAMES`). Silver renames to
    /// normalised names and needs no mapping.
    pub fn bronze_sql(&self, table: &TableName, dataset_id: &str, staged_glob: &str) -> String {
        let location = self
            .settings
            .external_location
            .as_ref()
            .map(|base| {
                format!(
                    " LOCATION {}",
                    D.literal(&format!("{base}/{}/{}", table.schema, table.table))
                )
            })
            .unwrap_or_default();
        format!(
            "CREATE OR REPLACE TABLE {}{location} TBLPROPERTIES ({} = 'name') AS SELECT *, {} AS {}, \
             _metadata.file_path AS {}, CAST(regexp_extract(_metadata.file_path, {}, 1) AS INT) AS {}, \
             _metadata.file_modification_time AS {} FROM read_files({}, format => 'parquet', mergeSchema => true)",
            D.table(table),
            D.literal(COLUMN_MAPPING),
            D.literal(dataset_id),
            D.ident(plan::DATASET_ID_COLUMN),
            D.ident(plan::SOURCE_FILE_COLUMN),
            D.literal(VERSION_IN_PATH),
            D.ident(plan::VERSION_COLUMN),
            D.ident(plan::INGESTED_AT_COLUMN),
            D.literal(staged_glob)
        )
    }

    /// The dataset a table's rows belong to (its `_dataset_id`); `None` for
    /// an empty table.
    async fn owner_of(&self, table: &TableName) -> Result<Option<String>, ToolError> {
        let found = self
            .run(&format!(
                "SELECT {} FROM {} LIMIT 1",
                D.ident(plan::DATASET_ID_COLUMN),
                D.table(table)
            ))
            .await?;
        Ok(found
            .rows
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next().flatten()))
    }

    /// The dataset directory in the volume: `…/<dataset>`.
    fn dataset_dir(&self, tenant: &TenantId, dataset: &DatasetId) -> String {
        let staged = self.volume_path(tenant, dataset, 1);
        staged
            .strip_suffix("/v1/data.parquet")
            .unwrap_or(&staged)
            .to_owned()
    }
}

/// A glob over the staged files of `versions` (every version when `None`):
/// `…/<dataset>/v*/data.parquet`, or `…/v{2,3}/data.parquet` for a range.
pub fn versions_glob(dataset_dir: &str, versions: Option<VersionRange>) -> String {
    let pick = match versions {
        None => "v*".to_owned(),
        Some(r) => format!(
            "v{{{}}}",
            (r.base..=r.version)
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(",")
        ),
    };
    format!("{dataset_dir}/{pick}/data.parquet")
}

/// The regular expression that takes a staged file's version from its path.
const VERSION_IN_PATH: &str = "/v([0-9]+)/data[.]parquet$";

impl Backend for DatabricksLakehouse {
    fn catalog(&self) -> &Ident {
        &self.settings.catalog
    }

    async fn create_bronze(&self, req: BronzeRequest) -> Result<BronzeResult, ToolError> {
        let catalog = &self.settings.catalog;
        for schema in [req.tenant.bronze_schema(), req.tenant.silver_schema()] {
            self.run(&format!(
                "CREATE SCHEMA IF NOT EXISTS {}.{}",
                D.ident(catalog.as_str()),
                D.ident(schema.as_str())
            ))
            .await?;
        }
        self.run(&format!(
            "CREATE VOLUME IF NOT EXISTS {}.{}.{}",
            D.ident(catalog.as_str()),
            D.ident(req.tenant.bronze_schema().as_str()),
            D.ident(self.settings.volume.as_str())
        ))
        .await?;
        let volume_path = self.volume_path(&req.tenant, &req.dataset, req.version.get());
        self.client
            .upload(&volume_path, &req.download)
            .await
            .map_err(backend)?;
        let table = TableName::new(
            catalog.clone(),
            req.tenant.bronze_schema(),
            req.table.clone(),
        );
        let glob = versions_glob(&self.dataset_dir(&req.tenant, &req.dataset), None);
        self.run(&self.bronze_sql(&table, req.dataset.as_str(), &glob))
            .await?;
        let row_count = self
            .run(&format!("SELECT count(*) FROM {}", D.table(&table)))
            .await?
            .numbers()
            .first()
            .copied()
            .unwrap_or(0);
        let columns = self
            .client
            .get_table(&table)
            .await
            .map_err(backend)?
            .map(|t| t.columns.iter().map(UcColumn::info).collect())
            .unwrap_or_default();
        Ok(req.result(&table, volume_path, row_count, columns))
    }

    async fn transform_to_silver(
        &self,
        tenant: TenantId,
        bronze: TableName,
        versions: SilverVersions,
    ) -> Result<SilverResult, ToolError> {
        let silver = silver_name_for(&self.settings.catalog, &tenant, &bronze)?;
        let source = self
            .client
            .get_table(&bronze)
            .await
            .map_err(backend)?
            .ok_or_else(|| ToolError::NotFound(bronze.to_string()))?;
        let mut columns: Vec<ColumnInfo> = source
            .columns
            .iter()
            .filter(|c| !c.name.eq_ignore_ascii_case(RESCUED_DATA_COLUMN))
            .map(UcColumn::info)
            .collect();
        if let Some(position) = plan::unnamed_column(&columns) {
            return Err(ToolError::EmptyColumnName {
                table: bronze.to_string(),
                position,
            });
        }
        let range = if columns.iter().any(|c| c.name == plan::VERSION_COLUMN) {
            let newest = self
                .run(&format!(
                    "SELECT max({}) FROM {}",
                    D.ident(plan::VERSION_COLUMN),
                    D.table(&bronze)
                ))
                .await?
                .numbers()
                .first()
                .copied()
                .and_then(|v| u32::try_from(v).ok())
                .filter(|v| *v > 0)
                .unwrap_or(1);
            let range = VersionRange::new(versions.base_version, versions.version, newest);
            // A newer sync built silver already: leave it be.
            if let Some(current) = self.client.get_table(&silver).await.map_err(backend)? {
                let held = |key: &str| {
                    current
                        .properties
                        .as_ref()
                        .and_then(|p| p.get(key))
                        .and_then(|v| v.parse::<u32>().ok())
                };
                if let Some(version) = held(VERSION_PROPERTY).filter(|v| *v > range.version) {
                    let rows = self
                        .run(&format!("SELECT count(*) FROM {}", D.table(&silver)))
                        .await?
                        .numbers();
                    let typed: Vec<ColumnInfo> =
                        current.columns.iter().map(UcColumn::info).collect();
                    return Ok(silver_unchanged(
                        &silver,
                        rows.first().copied().unwrap_or(0),
                        &typed,
                        version,
                        held(BASE_VERSION_PROPERTY).unwrap_or(1),
                    ));
                }
            }
            // A replace may have dropped columns: silver has those of the
            // versions it reads (and lineage).
            if range.base > 1 || range.version < newest {
                // Bronze names its dataset only by a short id; its rows
                // carry the whole one.
                let dir = self
                    .owner_of(&bronze)
                    .await?
                    .and_then(|id| DatasetId::parse(&id).ok())
                    .map(|dataset| self.dataset_dir(&tenant, &dataset));
                if let Some(dir) = dir {
                    let glob = versions_glob(&dir, Some(range));
                    let described = self
                        .run(&format!(
                            "DESCRIBE QUERY SELECT * FROM read_files({}, format => 'parquet', mergeSchema => true)",
                            D.literal(&glob)
                        ))
                        .await?;
                    let present: std::collections::HashSet<String> = described
                        .rows
                        .iter()
                        .filter_map(|r| r.first().cloned().flatten())
                        .collect();
                    if !present.is_empty() {
                        columns.retain(|c| {
                            present.contains(&c.name)
                                || plan::BRONZE_LINEAGE.contains(&c.name.as_str())
                        });
                    }
                }
            }
            Some(range)
        } else {
            None
        };
        let bronze_rows = self
            .run(&plan::count_sql(D, &bronze, range))
            .await?
            .numbers()
            .first()
            .copied()
            .unwrap_or(0);
        let strings = plan::string_columns(D, &columns);
        let mut stats = std::collections::HashMap::new();
        if !strings.is_empty() {
            let measured = self
                .run(&plan::stats_by_column_sql(D, &bronze, range, &strings))
                .await?;
            for row in measured.rows {
                let mut cells = row.into_iter();
                let Some(Some(name)) = cells.next() else {
                    continue;
                };
                let values: Vec<u64> = cells
                    .map(|c| c.and_then(|v| v.parse().ok()).unwrap_or(0))
                    .collect();
                stats.insert(name, plan::StringStats::from_values(&values));
            }
        }
        let source_columns = plan::with_stats(&columns, &strings, stats);
        let plan = SilverPlan::new(
            bronze,
            silver.clone(),
            range,
            plan::now_timestamp(),
            &source_columns,
        );
        self.run(&plan.create_sql(D)).await?;
        let counts = self.run(&plan.null_counts_sql(D)).await?.numbers();
        let typed: Vec<ColumnInfo> = self
            .client
            .get_table(&silver)
            .await
            .map_err(backend)?
            .map(|t| t.columns.iter().map(UcColumn::info).collect())
            .unwrap_or_default();
        Ok(plan.result(&counts, &typed, bronze_rows))
    }

    async fn dataset_status(
        &self,
        tenant: TenantId,
        dataset: DatasetId,
    ) -> Result<DatasetStatus, ToolError> {
        let suffix = format!("_{}", dataset.short_id());
        let mut status = DatasetStatus {
            dataset_id: dataset.to_string(),
            bronze: TableStatus::default(),
            silver: TableStatus::default(),
        };
        for (schema, slot) in [
            (tenant.bronze_schema(), &mut status.bronze),
            (tenant.silver_schema(), &mut status.silver),
        ] {
            let tables = self
                .client
                .list_tables(&self.settings.catalog, &schema)
                .await
                .map_err(backend)?;
            let Some(found) = tables.into_iter().find(|t| t.name.ends_with(&suffix)) else {
                continue;
            };
            let name = TableName::new(
                self.settings.catalog.clone(),
                schema,
                Ident::parse(&found.name)?,
            );
            let detail = self.client.get_table(&name).await.map_err(backend)?;
            let rows = self
                .run(&format!("SELECT count(*) FROM {}", D.table(&name)))
                .await?
                .numbers();
            *slot = TableStatus {
                exists: true,
                full_name: Some(name.to_string()),
                sql_name: Some(D.table(&name)),
                row_count: rows.first().copied(),
                updated_at: detail
                    .and_then(|d| d.updated_at)
                    .and_then(millis_to_rfc3339),
            };
        }
        Ok(status)
    }

    async fn drop_dataset(
        &self,
        tenant: TenantId,
        dataset: DatasetId,
    ) -> Result<DropResult, ToolError> {
        let suffix = format!("_{}", dataset.short_id());
        let id = dataset.to_string();
        let mut dropped = Vec::new();
        for schema in [tenant.bronze_schema(), tenant.silver_schema()] {
            let tables = self
                .client
                .list_tables(&self.settings.catalog, &schema)
                .await
                .map_err(backend)?;
            for found in tables.into_iter().filter(|t| t.name.ends_with(&suffix)) {
                let name = TableName::new(
                    self.settings.catalog.clone(),
                    schema.clone(),
                    Ident::parse(&found.name)?,
                );
                // The short id could collide: both layers carry
                // `_dataset_id`, which names the owner (an empty table is
                // taken as ours).
                if self.owner_of(&name).await?.is_some_and(|owner| owner != id) {
                    continue;
                }
                self.run(&format!("DROP TABLE IF EXISTS {}", D.table(&name)))
                    .await?;
                dropped.push(name.to_string());
            }
        }
        let dir = self.dataset_dir(&tenant, &dataset);
        let removed_files = self.client.remove_tree(&dir).await.map_err(backend)?;
        Ok(DropResult {
            dataset_id: id,
            dropped_tables: dropped,
            removed_files,
        })
    }

    async fn list_tables(&self, tenant: TenantId) -> Result<TableList, ToolError> {
        let mut tables = Vec::new();
        for schema in [tenant.bronze_schema(), tenant.silver_schema()] {
            let layer = layer_of(&tenant, &schema).unwrap_or("");
            for t in self
                .client
                .list_tables(&self.settings.catalog, &schema)
                .await
                .map_err(backend)?
            {
                let Ok(table) = Ident::parse(&t.name) else {
                    continue;
                };
                let name = TableName::new(self.settings.catalog.clone(), schema.clone(), table);
                tables.push(TableSummary {
                    full_name: name.to_string(),
                    sql_name: D.table(&name),
                    layer: layer.to_owned(),
                    table_type: t.table_type.unwrap_or_default(),
                });
            }
        }
        Ok(TableList { tables })
    }

    async fn describe_table(&self, table: TableName) -> Result<TableDescription, ToolError> {
        let found = self
            .client
            .get_table(&table)
            .await
            .map_err(backend)?
            .ok_or_else(|| ToolError::NotFound(table.to_string()))?;
        Ok(TableDescription {
            full_name: table.to_string(),
            sql_name: D.table(&table),
            table_type: found.table_type.clone().unwrap_or_default(),
            columns: found.columns.iter().map(UcColumn::info).collect(),
            row_count: None,
            storage_location: found.storage_location.clone(),
            updated_at: found.updated_at.and_then(millis_to_rfc3339),
        })
    }

    async fn query(&self, request: QueryRequest) -> Result<QueryResult, ToolError> {
        let client = self.query_client(&request.tenant)?;
        let catalog = self.settings.catalog.clone();
        let tenant = request.tenant.clone();
        let raw = request.sql.clone();
        // Lexed once by Spark's rules; the guard checks the DuckDB rendering
        // and Spark runs the Spark rendering of the same tokens.
        let sql = tokio::task::spawn_blocking(move || {
            let canonical = crate::spark_sql::canonicalize(&raw)?;
            let conn =
                duckdb::Connection::open_in_memory().map_err(|e| ToolError::Backend(e.into()))?;
            crate::query_guard::check(&conn, &catalog, &tenant, &canonical.duckdb)?;
            Ok::<_, ToolError>(canonical.spark)
        })
        .await
        .map_err(|_| ToolError::Backend(BackendError::Join))??;
        let limit = request.limit;
        let wrapped = format!(
            "SELECT * FROM (\n{sql}\n) AS q LIMIT {}",
            u64::from(limit) + 1
        );
        let result = client
            .execute_limited(
                &self.settings.warehouse_id,
                self.settings.catalog.as_str(),
                &wrapped,
                request.timeout,
                Some(u64::from(limit)),
            )
            .await
            .map_err(|e| match e {
                DatabricksError::Timeout(s) => ToolError::Timeout(s),
                e => backend(e),
            })?;
        let truncated = result.truncated || result.rows.len() > limit as usize;
        let rows: Vec<Value> = result
            .rows
            .iter()
            .take(limit as usize)
            .map(|row| {
                Value::Object(
                    result
                        .columns
                        .iter()
                        .zip(row)
                        .map(|(c, v)| {
                            (c.name.clone(), v.clone().map_or(Value::Null, Value::String))
                        })
                        .collect(),
                )
            })
            .collect();
        Ok(QueryResult {
            columns: result.columns,
            row_count: rows.len() as u64,
            rows,
            truncated,
        })
    }
}

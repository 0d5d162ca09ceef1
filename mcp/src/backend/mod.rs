//! The lakehouse behind the tools. Both backends implement [`Lakehouse`];
//! the tools never know which one they talk to.

pub mod databricks;
pub mod local;

use crate::domain::{DatasetId, DatasetVersion, Ident, TableName, TenantId};
use crate::error::ToolError;
use futures::future::BoxFuture;
use schemars::JsonSchema;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Duration;

/// A downloaded, verified Parquet file waiting to be staged.
#[derive(Debug)]
pub struct BronzeRequest {
    pub tenant: TenantId,
    pub dataset: DatasetId,
    pub version: DatasetVersion,
    pub table: Ident,
    /// A temporary file the backend may move or read; it is deleted afterwards.
    pub download: PathBuf,
}

#[derive(Debug, Clone, Serialize, JsonSchema, PartialEq, Eq)]
pub struct ColumnInfo {
    pub name: String,
    pub data_type: String,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct BronzeResult {
    /// Three-level name, `catalog.schema.table`.
    pub bronze_table: String,
    /// Where the staged Parquet file lives.
    pub volume_path: String,
    pub row_count: u64,
    pub columns: Vec<ColumnInfo>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SilverColumn {
    pub name: String,
    pub data_type: String,
    /// The bronze column it came from (lineage columns have none).
    pub source_column: Option<String>,
    pub null_count: u64,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SilverResult {
    pub silver_table: String,
    pub row_count: u64,
    pub columns: Vec<SilverColumn>,
    pub duplicates_removed: u64,
}

#[derive(Debug, Clone, Serialize, JsonSchema, Default)]
pub struct TableStatus {
    pub exists: bool,
    pub full_name: Option<String>,
    pub row_count: Option<u64>,
    /// RFC 3339.
    pub updated_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct DatasetStatus {
    pub dataset_id: String,
    pub bronze: TableStatus,
    pub silver: TableStatus,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct TableSummary {
    pub full_name: String,
    /// `bronze` or `silver`.
    pub layer: String,
    /// `VIEW`/`EXTERNAL` for bronze, `MANAGED` for silver.
    pub table_type: String,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct TableList {
    pub tables: Vec<TableSummary>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct TableDescription {
    pub full_name: String,
    pub table_type: String,
    pub columns: Vec<ColumnInfo>,
    pub row_count: Option<u64>,
    pub storage_location: Option<String>,
    pub updated_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct QueryResult {
    pub columns: Vec<ColumnInfo>,
    /// One JSON object per row, keyed by column name.
    pub rows: Vec<serde_json::Value>,
    pub row_count: u64,
    /// True when more rows existed than the limit allowed.
    pub truncated: bool,
}

/// A read-only query that passed the guard, with its limits.
#[derive(Debug, Clone)]
pub struct QueryRequest {
    pub tenant: TenantId,
    pub sql: String,
    pub limit: u32,
    pub timeout: Duration,
}

pub type LakeResult<'a, T> = BoxFuture<'a, Result<T, ToolError>>;

/// One lakehouse: an embedded DuckDB catalog or Databricks Unity Catalog.
pub trait Lakehouse: Send + Sync + 'static {
    fn catalog(&self) -> &Ident;
    /// Stages the file in the tenant's volume and (re)creates the bronze table.
    fn create_bronze(&self, request: BronzeRequest) -> LakeResult<'_, BronzeResult>;
    /// Builds the silver table from a bronze table of the same tenant.
    fn transform_to_silver(
        &self,
        tenant: TenantId,
        bronze: TableName,
    ) -> LakeResult<'_, SilverResult>;
    fn dataset_status(&self, tenant: TenantId, dataset: DatasetId)
        -> LakeResult<'_, DatasetStatus>;
    fn list_tables(&self, tenant: TenantId) -> LakeResult<'_, TableList>;
    fn describe_table(&self, table: TableName) -> LakeResult<'_, TableDescription>;
    fn query(&self, request: QueryRequest) -> LakeResult<'_, QueryResult>;
}

/// Which schema layer a table belongs to, checked against the tenant.
pub fn layer_of(tenant: &TenantId, schema: &Ident) -> Option<&'static str> {
    if *schema == tenant.bronze_schema() {
        Some("bronze")
    } else if *schema == tenant.silver_schema() {
        Some("silver")
    } else {
        None
    }
}

/// The bronze table must belong to the caller's tenant and catalog; silver
/// takes the same table name in the tenant's silver schema.
pub fn silver_name_for(
    catalog: &Ident,
    tenant: &TenantId,
    bronze: &TableName,
) -> Result<TableName, ToolError> {
    if bronze.catalog != *catalog || bronze.schema != tenant.bronze_schema() {
        return Err(ToolError::BadRequest(format!(
            "bronze_table {bronze} is not in {catalog}.{} (the tenant's bronze schema)",
            tenant.bronze_schema()
        )));
    }
    Ok(TableName::new(
        catalog.clone(),
        tenant.silver_schema(),
        bronze.table.clone(),
    ))
}

//! The lakehouse behind the tools. Both backends implement [`Lakehouse`];
//! the tools never know which one they talk to.

pub mod databricks;
pub mod local;

use crate::domain::{DatasetId, DatasetVersion, Ident, TableName, TenantId};
use crate::error::ToolError;
pub use contract::tools::{
    BronzeResult, ColumnInfo, DatasetStatus, DropResult, QueryResult, SilverColumn, SilverResult,
    TableDescription, TableList, TableStatus, TableSummary,
};
use futures::future::BoxFuture;
use std::future::Future;
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

/// Which bronze versions silver is built from (see
/// [`crate::plan::VersionRange`]); `None` takes the default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SilverVersions {
    pub version: Option<u32>,
    pub base_version: Option<u32>,
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

/// One lakehouse as the tools see it: an embedded DuckDB catalog or
/// Databricks Unity Catalog, chosen at start-up and held as `Arc<dyn
/// Lakehouse>`. Backends implement [`Backend`] with plain `async fn`s; the
/// blanket impl below boxes their futures, once for all of them.
pub trait Lakehouse: Send + Sync + 'static {
    fn catalog(&self) -> &Ident;
    /// Stages the file in the tenant's volume and (re)creates the bronze table.
    fn create_bronze(&self, request: BronzeRequest) -> LakeResult<'_, BronzeResult>;
    /// Builds the silver table from versions of a bronze table of the same
    /// tenant; a call for a version older than silver's changes nothing.
    fn transform_to_silver(
        &self,
        tenant: TenantId,
        bronze: TableName,
        versions: SilverVersions,
    ) -> LakeResult<'_, SilverResult>;
    fn dataset_status(&self, tenant: TenantId, dataset: DatasetId)
        -> LakeResult<'_, DatasetStatus>;
    fn list_tables(&self, tenant: TenantId) -> LakeResult<'_, TableList>;
    fn describe_table(&self, table: TableName) -> LakeResult<'_, TableDescription>;
    fn query(&self, request: QueryRequest) -> LakeResult<'_, QueryResult>;
    /// Drops the dataset's bronze and silver tables and removes its staged
    /// files (every version). Idempotent.
    fn drop_dataset(&self, tenant: TenantId, dataset: DatasetId) -> LakeResult<'_, DropResult>;
}

/// What a backend implements; see [`Lakehouse`] for each operation.
pub trait Backend: Send + Sync + 'static {
    fn catalog(&self) -> &Ident;
    fn create_bronze(
        &self,
        request: BronzeRequest,
    ) -> impl Future<Output = Result<BronzeResult, ToolError>> + Send;
    fn transform_to_silver(
        &self,
        tenant: TenantId,
        bronze: TableName,
        versions: SilverVersions,
    ) -> impl Future<Output = Result<SilverResult, ToolError>> + Send;
    fn dataset_status(
        &self,
        tenant: TenantId,
        dataset: DatasetId,
    ) -> impl Future<Output = Result<DatasetStatus, ToolError>> + Send;
    fn list_tables(
        &self,
        tenant: TenantId,
    ) -> impl Future<Output = Result<TableList, ToolError>> + Send;
    fn describe_table(
        &self,
        table: TableName,
    ) -> impl Future<Output = Result<TableDescription, ToolError>> + Send;
    fn query(
        &self,
        request: QueryRequest,
    ) -> impl Future<Output = Result<QueryResult, ToolError>> + Send;
    fn drop_dataset(
        &self,
        tenant: TenantId,
        dataset: DatasetId,
    ) -> impl Future<Output = Result<DropResult, ToolError>> + Send;
}

impl<B: Backend> Lakehouse for B {
    fn catalog(&self) -> &Ident {
        Backend::catalog(self)
    }
    fn create_bronze(&self, request: BronzeRequest) -> LakeResult<'_, BronzeResult> {
        Box::pin(Backend::create_bronze(self, request))
    }
    fn transform_to_silver(
        &self,
        tenant: TenantId,
        bronze: TableName,
        versions: SilverVersions,
    ) -> LakeResult<'_, SilverResult> {
        Box::pin(Backend::transform_to_silver(self, tenant, bronze, versions))
    }
    fn dataset_status(
        &self,
        tenant: TenantId,
        dataset: DatasetId,
    ) -> LakeResult<'_, DatasetStatus> {
        Box::pin(Backend::dataset_status(self, tenant, dataset))
    }
    fn list_tables(&self, tenant: TenantId) -> LakeResult<'_, TableList> {
        Box::pin(Backend::list_tables(self, tenant))
    }
    fn describe_table(&self, table: TableName) -> LakeResult<'_, TableDescription> {
        Box::pin(Backend::describe_table(self, table))
    }
    fn query(&self, request: QueryRequest) -> LakeResult<'_, QueryResult> {
        Box::pin(Backend::query(self, request))
    }
    fn drop_dataset(&self, tenant: TenantId, dataset: DatasetId) -> LakeResult<'_, DropResult> {
        Box::pin(Backend::drop_dataset(self, tenant, dataset))
    }
}

impl BronzeRequest {
    /// What `create_dataset` reports once `table` exists.
    pub fn result(
        &self,
        table: &TableName,
        volume_path: String,
        row_count: u64,
        columns: Vec<ColumnInfo>,
    ) -> BronzeResult {
        BronzeResult {
            bronze_table: table.to_string(),
            volume_path,
            row_count,
            columns,
            version: self.version.get(),
        }
    }
}

/// What `transform_to_silver` reports when silver already holds a newer
/// version than the call asked for: the table as it is, unchanged.
pub fn silver_unchanged(
    silver: &TableName,
    row_count: u64,
    columns: &[ColumnInfo],
    version: u32,
    base_version: u32,
) -> SilverResult {
    SilverResult {
        silver_table: silver.to_string(),
        row_count,
        columns: columns
            .iter()
            .map(|c| SilverColumn {
                name: c.name.clone(),
                data_type: c.data_type.clone(),
                // Not known without the plan that built it.
                source_column: None,
                null_count: 0,
            })
            .collect(),
        duplicates_removed: 0,
        version,
        base_version,
    }
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
        return Err(ToolError::NotTenantsBronze {
            table: bronze.to_string(),
            schema: format!("{catalog}.{}", tenant.bronze_schema()),
        });
    }
    Ok(TableName::new(
        catalog.clone(),
        tenant.silver_schema(),
        bronze.table.clone(),
    ))
}

//! The MCP tools. Their names, arguments and results are the contract's
//! ([`contract::tools`]); each tool parses its input into domain types, calls
//! the lakehouse and returns structured output (`Json<T>`; lists are wrapped
//! in an object). Failures the caller can fix are tool errors, not protocol
//! errors.

use crate::access::principal_of;
use crate::backend::{BronzeRequest, Lakehouse, QueryRequest, SilverVersions};
use crate::domain::{table_ident, DatasetId, DatasetVersion, TableName, TenantId};
use crate::download;
use crate::error::ToolError;
use axum::http::request::Parts;
use contract::tools::{
    BronzeResult, CreateDatasetArgs, DatasetStatus, DescribeArgs, DropArgs, DropResult, QueryArgs,
    QueryResult, SilverResult, StatusArgs, TableDescription, TableList, TenantArgs, TransformArgs,
};
use rmcp::handler::server::{router::tool::ToolRouter, tool::Extension, wrapper::Parameters};
use rmcp::{tool, tool_handler, tool_router, Json};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Shared by every MCP session.
pub struct Context {
    /// The embedded or Databricks lakehouse.
    pub lakehouse: Arc<dyn Lakehouse>,
    /// For Parquet downloads (connection pool shared by all calls).
    pub http: reqwest::Client,
    /// The app's internal listener: the only place downloads come from.
    pub internal_base_url: String,
    pub max_download_bytes: u64,
    /// Where downloads land before staging.
    pub scratch_dir: PathBuf,
    pub query_timeout: Duration,
    pub query_max_rows: u32,
    /// One permit per query that may run at once (`MCP_QUERY_MAX_CONCURRENT`).
    pub query_slots: Arc<tokio::sync::Semaphore>,
}

#[derive(Clone)]
pub struct LakehouseTools {
    ctx: Arc<Context>,
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl LakehouseTools {
    pub fn new(ctx: Arc<Context>) -> Self {
        Self {
            ctx,
            tool_router: Self::tool_router(),
        }
    }

    #[tool(
        description = "Download a dataset's Parquet file, stage it in the tenant's volume as the given version (default 1) \
                       and (re)create its bronze table over every staged version, with lineage columns _dataset_id, \
                       _source_file, _version, _ingested_at. Repeating the call for the same dataset_id and version \
                       gives the same table and no duplicate rows.",
        annotations(
            title = "Create bronze table",
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    #[tracing::instrument(skip_all, fields(tenant = %args.tenant_id, dataset_id = %args.dataset_id))]
    async fn create_dataset(
        &self,
        Extension(http): Extension<Parts>,
        Parameters(args): Parameters<CreateDatasetArgs>,
    ) -> Result<Json<BronzeResult>, ToolError> {
        principal_of(&http)?.require_service()?;
        let tenant = TenantId::parse(&args.tenant_id)?;
        let dataset = DatasetId::parse(&args.dataset_id)?;
        let version = DatasetVersion::parse(args.version)?;
        let table = table_ident(&args.dataset_name, &dataset)?;
        tokio::fs::create_dir_all(&self.ctx.scratch_dir)
            .await
            .map_err(|e| ToolError::Backend(e.into()))?;
        let download = tempfile::Builder::new()
            .prefix("download-")
            .suffix(".parquet")
            .tempfile_in(&self.ctx.scratch_dir)
            .map_err(|e| ToolError::Backend(e.into()))?
            .into_temp_path();
        download::fetch_parquet(
            &self.ctx.http,
            &args.parquet_url,
            &self.ctx.internal_base_url,
            self.ctx.max_download_bytes,
            &download,
        )
        .await?;
        let result = self
            .ctx
            .lakehouse
            .create_bronze(BronzeRequest {
                tenant,
                dataset,
                version,
                table,
                download: download.to_path_buf(),
            })
            .await?;
        // The backend moved or consumed the file; closing the TempPath
        // removes whatever is left.
        drop(download);
        tracing::info!(table = %result.bronze_table, rows = result.row_count, "bronze ready");
        Ok(Json(result))
    }

    #[tool(
        description = "Create the silver table from a bronze table: snake_case unique column names, trimmed strings, \
                       null tokens ('', NULL, null, N/A, NA, n/a, -, NaN, nan, #N/A, <NA>, \\N) as NULL, string columns retyped only when every \
                       value converts (leading-zero identifiers stay text), exact duplicates removed, lineage columns \
                       _dataset_id, _source_file, _version, _ingested_at. Silver holds bronze versions \
                       base_version..=version (defaults: 1 and the newest staged); a call for a version older \
                       than silver's changes nothing.",
        annotations(
            title = "Create silver table",
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    #[tracing::instrument(skip_all, fields(tenant = %args.tenant_id, bronze = %args.bronze_table))]
    async fn transform_to_silver(
        &self,
        Extension(http): Extension<Parts>,
        Parameters(args): Parameters<TransformArgs>,
    ) -> Result<Json<SilverResult>, ToolError> {
        principal_of(&http)?.require_service()?;
        let tenant = TenantId::parse(&args.tenant_id)?;
        let bronze = TableName::parse(&args.bronze_table)?;
        let result = self
            .ctx
            .lakehouse
            .transform_to_silver(
                tenant,
                bronze,
                SilverVersions {
                    version: args.version,
                    base_version: args.base_version,
                },
            )
            .await?;
        tracing::info!(table = %result.silver_table, rows = result.row_count, "silver ready");
        Ok(Json(result))
    }

    #[tool(
        description = "Whether a dataset's bronze and silver tables exist, with row counts and last update time.",
        annotations(
            title = "Dataset status",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    #[tracing::instrument(skip_all, fields(tenant = %args.tenant_id, dataset_id = %args.dataset_id))]
    async fn dataset_status(
        &self,
        Extension(http): Extension<Parts>,
        Parameters(args): Parameters<StatusArgs>,
    ) -> Result<Json<DatasetStatus>, ToolError> {
        let tenant = principal_of(&http)?.tenant(&args.tenant_id)?;
        let dataset = DatasetId::parse(&args.dataset_id)?;
        Ok(Json(
            self.ctx.lakehouse.dataset_status(tenant, dataset).await?,
        ))
    }

    #[tool(
        description = "List the tenant's bronze and silver tables.",
        annotations(
            title = "List tables",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    #[tracing::instrument(skip_all, fields(tenant = %args.tenant_id))]
    async fn list_tables(
        &self,
        Extension(http): Extension<Parts>,
        Parameters(args): Parameters<TenantArgs>,
    ) -> Result<Json<TableList>, ToolError> {
        let tenant = principal_of(&http)?.tenant(&args.tenant_id)?;
        Ok(Json(self.ctx.lakehouse.list_tables(tenant).await?))
    }

    #[tool(
        description = "Columns, types, row count and storage of one of the tenant's tables (catalog.schema.table). \
                       An assistant's token sees only its own tenant's tables; pass tenant_id to say which tenant \
                       (it must be the token's).",
        annotations(
            title = "Describe table",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    #[tracing::instrument(skip_all, fields(table = %args.full_name))]
    async fn describe_table(
        &self,
        Extension(http): Extension<Parts>,
        Parameters(args): Parameters<DescribeArgs>,
    ) -> Result<Json<TableDescription>, ToolError> {
        let principal = principal_of(&http)?;
        let table = TableName::parse(&args.full_name)?;
        // The tenant asked for (a token's own by default): a table outside
        // its schemas is not found, exactly as a missing one.
        let tenant = match (&principal, args.tenant_id.as_deref()) {
            (_, Some(asked)) => Some(principal.tenant(asked)?),
            (crate::access::Principal::Tenant { tenant, .. }, None) => Some(tenant.clone()),
            (crate::access::Principal::Service, None) => None,
        };
        if let Some(tenant) = tenant {
            if !tenant.owns_schema(table.schema.as_str()) {
                return Err(ToolError::NotFound(args.full_name));
            }
        }
        Ok(Json(self.ctx.lakehouse.describe_table(table).await?))
    }

    #[tool(
        description = "Run one read-only SELECT/WITH statement over the tenant's bronze and silver schemas \
                       (qualify tables as schema.table). Rows are capped and the query has a timeout.",
        annotations(
            title = "Query",
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    #[tracing::instrument(skip_all, fields(tenant = %args.tenant_id))]
    async fn query(
        &self,
        Extension(http): Extension<Parts>,
        Parameters(args): Parameters<QueryArgs>,
    ) -> Result<Json<QueryResult>, ToolError> {
        let principal = principal_of(&http)?;
        // The audit line: who asked (tenant, token), what (the SQL's
        // SHA-256, not the text), and how it ended.
        let sql_sha256 = {
            use sha2::Digest;
            hex_digest(&sha2::Sha256::digest(args.sql.as_bytes()))
        };
        let token = principal.token_id().unwrap_or("service").to_owned();
        let tenant = match principal.tenant(&args.tenant_id) {
            Ok(t) => t,
            Err(e) => {
                tracing::info!(target: "audit", tenant = %args.tenant_id, %token, %sql_sha256, outcome = "refused", "query");
                return Err(e);
            }
        };
        let limit = args
            .limit
            .unwrap_or(self.ctx.query_max_rows)
            .clamp(1, self.ctx.query_max_rows);
        let request = QueryRequest {
            tenant: tenant.clone(),
            sql: args.sql,
            limit,
            timeout: self.ctx.query_timeout,
        };
        // Beyond the cap the caller is told to come back, not queued behind
        // queries that may each run to the timeout.
        let result = match self.ctx.query_slots.clone().try_acquire_owned() {
            Ok(_permit) => self.ctx.lakehouse.query(request).await,
            Err(_) => Err(ToolError::Busy),
        };
        let outcome = match &result {
            Ok(_) => "ok",
            Err(ToolError::QueryRejected(_)) => "rejected",
            Err(ToolError::Timeout(_)) => "timeout",
            Err(ToolError::Busy) => "busy",
            Err(_) => "error",
        };
        let rows = result.as_ref().map_or(0, |r| r.rows.len());
        tracing::info!(target: "audit", tenant = %tenant, %token, %sql_sha256, outcome, rows, "query");
        Ok(Json(result?))
    }

    #[tool(
        description = "Drop a dataset's bronze and silver tables and remove its staged files. Idempotent: \
                       a repeated call drops nothing and succeeds.",
        annotations(
            title = "Drop dataset",
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true,
            open_world_hint = false
        )
    )]
    #[tracing::instrument(skip_all, fields(tenant = %args.tenant_id, dataset_id = %args.dataset_id))]
    async fn drop_dataset(
        &self,
        Extension(http): Extension<Parts>,
        Parameters(args): Parameters<DropArgs>,
    ) -> Result<Json<DropResult>, ToolError> {
        principal_of(&http)?.require_service()?;
        let tenant = TenantId::parse(&args.tenant_id)?;
        let dataset = DatasetId::parse(&args.dataset_id)?;
        let result = self.ctx.lakehouse.drop_dataset(tenant, dataset).await?;
        tracing::info!(tables = ?result.dropped_tables, files = result.removed_files, "dataset dropped");
        Ok(Json(result))
    }
}

fn hex_digest(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// The router is built once per session (in `new`), not on every call.
#[tool_handler(
    router = self.tool_router,
    name = "servicetsunami-mcp",
    instructions = "ServiceTsunami lakehouse: create_dataset (bronze) → transform_to_silver (silver); \
                    inspect with dataset_status, list_tables, describe_table and read-only query; \
                    drop_dataset removes a dataset's tables and files."
)]
impl rmcp::ServerHandler for LakehouseTools {}

#[cfg(test)]
mod tests {
    #[test]
    fn the_router_serves_exactly_the_contracts_tools() {
        let mut served: Vec<String> = super::LakehouseTools::tool_router()
            .list_all()
            .into_iter()
            .map(|t| t.name.to_string())
            .collect();
        served.sort();
        let mut contract: Vec<&str> = contract::tools::ALL.to_vec();
        contract.sort_unstable();
        assert_eq!(served, contract);
    }

    /// The silver tool's description spells the null tokens out for the
    /// model reading it; it must name exactly the ones silver cleans.
    #[test]
    fn the_silver_description_names_every_null_token() {
        let tool = super::LakehouseTools::tool_router()
            .list_all()
            .into_iter()
            .find(|t| t.name == <contract::tools::TransformToSilver as contract::tools::Tool>::NAME)
            .expect("the silver tool is served");
        let description = tool.description.expect("it has a description");
        let listed = description
            .split_once("null tokens (")
            .and_then(|(_, rest)| rest.split_once(") as NULL"))
            .map(|(list, _)| list)
            .expect("the description lists the null tokens");
        let listed: Vec<&str> = listed.split(", ").collect();
        let tokens: Vec<&str> = contract::NULL_TOKENS
            .iter()
            .map(|t| if t.is_empty() { "''" } else { t })
            .collect();
        assert_eq!(listed, tokens);
    }
}

//! ServiceTsunami's MCP server: datasets in, bronze and silver tables out.
//!
//! A tour, one line per module:
//! - [`config`]: typed settings from the environment (`MCP_*`, `LAKEHOUSE_*`, `DATABRICKS_*`).
//! - [`startup`]: the axum app: `/mcp` behind the bearer check, `/healthz`, graceful shutdown.
//! - [`access`]: who is calling: the service key, or an assistant's token bound to one tenant.
//! - [`tools`]: the MCP tools (`create_dataset`, `transform_to_silver`, `dataset_status`,
//!   `list_tables`, `describe_table`, `query`).
//! - [`domain`]: parsed names (`TenantId`, `DatasetId`, `Ident`, `TableName`); nothing reaches SQL unparsed.
//! - [`download`]: streams the Parquet file (only from the app's internal listener) with a size
//!   cap and checks it really is Parquet.
//! - [`plan`]: the silver plan, computed once from column statistics and rendered per SQL dialect.
//! - [`query_guard`]: proves a `query` is one read-only statement over the tenant's schemas.
//! - [`sandbox`]: where the embedded lakehouse runs a `query`: a locked DuckDB instance that
//!   holds only the tenant's views the query names and may open only their files, in a
//!   process of its own with its memory capped (`backend::local::serve_query`).
//! - [`backend`]: the `Lakehouse` trait and its two implementations, `local` (DuckDB) and `databricks`.
//! - [`error`]: the tool-boundary error enum.
//! - [`telemetry`]: tracing setup.

/// The argument that starts a binary embedding this server as a query's
/// process (`backend::local::serve_query`, through `contract::isolate`).
pub const QUERY_WORKER_COMMAND: &str = "mcp-query-worker";

pub mod access;
pub mod backend;
pub mod config;
pub mod domain;
pub mod download;
pub mod error;
pub mod plan;
pub mod query_guard;
pub mod sandbox;
pub mod spark_sql;
pub mod startup;
pub mod telemetry;
pub mod tools;

//! Databricks Unity Catalog through its REST APIs: the Files API stages the
//! Parquet file in a volume, the SQL Statement Execution API runs every
//! statement, and the Unity Catalog tables API answers status questions.
//!
//! - [`client`]: the REST client (auth, retries, errors, statements, files, tables).
//! - [`lakehouse`]: bronze, silver and the read-only tools on top of it.

pub mod client;
pub mod lakehouse;

pub use client::{explain, DatabricksClient, DatabricksError, StatementResult, UcColumn, UcTable};
pub use lakehouse::DatabricksLakehouse;

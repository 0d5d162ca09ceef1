//! Errors at the tool boundary. A `ToolError` is something the caller can act
//! on (a bad URL, not Parquet, a bad name, an unknown table, a refused query);
//! it becomes an MCP tool result with `isError: true`, a clear message and
//! the retry verdict in `_meta` ([`contract::RETRYABLE_META_KEY`]).
//!
//! **Backend text is not sent to callers.** A failure inside the lakehouse
//! (a DuckDB error, a Databricks answer, a file-system error) can carry
//! paths, host names and SQL. The caller gets a summary in our own words
//! (for Databricks, what the service's error code means) and a reference;
//! the full error goes to this server's log under the same reference.

use crate::domain::ParseError;
use crate::query_guard::Rejected;
use contract::RETRYABLE_META_KEY;
use rmcp::model::ContentBlock;

#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error(transparent)]
    InvalidInput(#[from] ParseError),
    #[error("the file has a column named {column}, which is reserved for lineage")]
    ReservedColumn { column: String },
    #[error("bronze table {table} has a column with an empty name (column {position}), which SQL cannot name; give it a name in the file")]
    EmptyColumnName { table: String, position: usize },
    #[error("bronze_table {table} is not in {schema} (the tenant's bronze schema)")]
    NotTenantsBronze { table: String, schema: String },
    #[error("download failed: {0}")]
    Download(#[from] crate::download::DownloadError),
    #[error("table {0} does not exist")]
    NotFound(String),
    #[error("not allowed: {0}")]
    Forbidden(&'static str),
    #[error("query rejected: {0}")]
    QueryRejected(#[from] Rejected),
    #[error("query timed out after {0} s")]
    Timeout(u64),
    #[error("the lakehouse is busy with other queries (MCP_QUERY_MAX_CONCURRENT); retry in a few seconds")]
    Busy,
    #[error("the query needs more memory than a query may use (MCP_QUERY_MEMORY_LIMIT); filter or aggregate more")]
    OutOfMemory,
    #[error("lakehouse error: {}", .0.summary())]
    Backend(#[from] BackendError),
}

/// Failures inside a backend. Their `Display` is for the log; callers see
/// [`BackendError::summary`].
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// Boxed: DuckDB's error type is large and would bloat every `Result`.
    #[error("{0}")]
    DuckDb(Box<duckdb::Error>),
    #[error("Databricks: {0}")]
    Databricks(#[from] crate::backend::databricks::DatabricksError),
    #[error("file system: {0}")]
    Io(#[from] std::io::Error),
    #[error("a result could not be read as JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("the worker thread stopped unexpectedly")]
    Join,
    /// A query's process (`crate::backend::local`) failed: DuckDB's error,
    /// or how the process ended.
    #[error("the query's process: {0}")]
    Worker(String),
    /// Something that cannot happen unless our own code is wrong.
    #[error("internal invariant broken: {0}")]
    Invariant(&'static str),
}

impl From<duckdb::Error> for BackendError {
    fn from(e: duckdb::Error) -> Self {
        Self::DuckDb(Box::new(e))
    }
}

impl BackendError {
    /// What a caller may be told: no paths, hosts, SQL or credentials.
    pub fn summary(&self) -> String {
        match self {
            Self::DuckDb(_) | Self::Worker(_) => {
                "the embedded lakehouse could not run the statement".to_owned()
            }
            Self::Databricks(e) => e.summary(),
            Self::Io(_) => "the lakehouse could not read or write its files".to_owned(),
            Self::Json(_) | Self::Join | Self::Invariant(_) => {
                "the MCP server met an internal error".to_owned()
            }
        }
    }
}

impl ToolError {
    pub fn retryable(&self) -> bool {
        use crate::download::DownloadError as D;
        match self {
            ToolError::InvalidInput(_)
            | ToolError::ReservedColumn { .. }
            | ToolError::EmptyColumnName { .. }
            | ToolError::NotTenantsBronze { .. }
            | ToolError::NotFound(_)
            | ToolError::Forbidden(_)
            | ToolError::QueryRejected(_) => false,
            ToolError::Download(D::BadUrl | D::NotAllowed | D::TooLarge { .. } | D::NotParquet) => {
                false
            }
            // 408, 429 and 5xx are the file server's passing trouble; any other
            // answer (401, 404, …) will not change by asking again.
            ToolError::Download(D::Status { status, .. }) => {
                matches!(status, 408 | 429) || *status >= 500
            }
            ToolError::Download(D::Unreachable { .. } | D::Io(_)) => true,
            ToolError::Timeout(_) | ToolError::Busy => true,
            ToolError::OutOfMemory => false,
            ToolError::Backend(BackendError::Databricks(e)) => e.retryable(),
            ToolError::Backend(_) => true,
        }
    }
}

impl rmcp::handler::server::tool::IntoCallToolResult for ToolError {
    fn into_call_tool_result(self) -> Result<rmcp::model::CallToolResponse, rmcp::ErrorData> {
        let text = match &self {
            ToolError::Backend(cause) => {
                let reference = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
                tracing::error!(error = %cause, reference, "tool failed");
                format!("{self} (reference {reference} in the MCP server's log)")
            }
            other => {
                tracing::info!(error = %other, "tool rejected the call");
                other.to_string()
            }
        };
        let mut meta = rmcp::model::JsonObject::new();
        meta.insert(RETRYABLE_META_KEY.to_owned(), self.retryable().into());
        Ok(
            rmcp::model::CallToolResult::error(vec![ContentBlock::text(text)])
                .with_meta(Some(rmcp::model::MetaObject(meta)))
                .into(),
        )
    }
}

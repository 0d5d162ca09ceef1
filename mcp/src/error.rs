//! Errors at the tool boundary. A `ToolError` is something the caller can act
//! on (bad URL, not Parquet, bad name, unknown table); it becomes an MCP tool
//! result with `isError: true` and a clear message. Internal causes are logged
//! and summarised, never dumped on the caller.

use crate::domain::ParseError;
use rmcp::model::ContentBlock;

#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error(transparent)]
    InvalidInput(#[from] ParseError),
    #[error("{0}")]
    BadRequest(String),
    #[error("download failed: {0}")]
    Download(#[from] crate::download::DownloadError),
    #[error("table {0} does not exist")]
    NotFound(String),
    #[error("query rejected: {0}")]
    QueryRejected(String),
    #[error("query timed out after {0} s")]
    Timeout(u64),
    #[error("lakehouse error: {0}")]
    Backend(#[from] BackendError),
}

/// Failures inside a backend.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// Boxed: DuckDB's error type is large and would bloat every `Result`.
    #[error("{0}")]
    DuckDb(Box<duckdb::Error>),
    #[error("Databricks: {0}")]
    Databricks(#[from] crate::backend::databricks::DatabricksError),
    #[error("file system: {0}")]
    Io(#[from] std::io::Error),
    #[error("the worker thread stopped unexpectedly")]
    Join,
    #[error("{0}")]
    Unexpected(String),
}

impl From<duckdb::Error> for BackendError {
    fn from(e: duckdb::Error) -> Self {
        Self::DuckDb(Box::new(e))
    }
}

/// The `_meta` key of a tool error that tells a caller whether calling again
/// later may succeed (`true`: unreachable file server, lakehouse hiccup) or
/// not (`false`: bad input, not Parquet, unknown table).
pub const RETRYABLE_META_KEY: &str = "servicetsunami/retryable";

impl ToolError {
    pub fn retryable(&self) -> bool {
        use crate::download::DownloadError as D;
        match self {
            ToolError::InvalidInput(_)
            | ToolError::BadRequest(_)
            | ToolError::NotFound(_)
            | ToolError::QueryRejected(_) => false,
            ToolError::Download(D::BadUrl | D::TooLarge { .. } | D::NotParquet) => false,
            // 408, 429 and 5xx are the file server's passing trouble; any other
            // answer (401, 404, …) will not change by asking again.
            ToolError::Download(D::Status { status, .. }) => {
                matches!(status, 408 | 429) || *status >= 500
            }
            ToolError::Download(D::Unreachable { .. } | D::Io(_)) => true,
            ToolError::Timeout(_) | ToolError::Backend(_) => true,
        }
    }
}

impl rmcp::handler::server::tool::IntoCallToolResult for ToolError {
    fn into_call_tool_result(self) -> Result<rmcp::model::CallToolResponse, rmcp::ErrorData> {
        if matches!(self, ToolError::Backend(_)) {
            tracing::error!(error = %self, "tool failed");
        } else {
            tracing::info!(error = %self, "tool rejected the call");
        }
        let mut meta = rmcp::model::JsonObject::new();
        meta.insert(RETRYABLE_META_KEY.to_owned(), self.retryable().into());
        Ok(
            rmcp::model::CallToolResult::error(vec![ContentBlock::text(self.to_string())])
                .with_meta(Some(rmcp::model::MetaObject(meta)))
                .into(),
        )
    }
}

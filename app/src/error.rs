//! The error type of every server function. Internal causes are logged on the
//! server and never sent; the browser gets a short, specific message.

use leptos::server_fn::{
    codec::JsonEncoding,
    error::{FromServerFnError, ServerFnErrorErr},
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AppError {
    #[error("dataset not found")]
    NotFound,
    #[error("the dataset's data file is missing; it may have been removed from storage")]
    DataFileMissing,
    #[error("lakehouse sync is not configured on this server (DATABRICKS_SYNC_ENABLED and MCP_SERVER_URL)")]
    SyncUnavailable,
    #[error("a sync of this dataset is already pending or running")]
    SyncInProgress,
    #[error("something went wrong on our side; it has been logged")]
    Internal,
    #[error("{0}")]
    ServerFn(ServerFnErrorErr),
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        AppError::ServerFn(value)
    }
}

/// `.context("loading a dataset")` on any server-side failure: logs the cause
/// with what was being done, and turns it into the opaque [`AppError::Internal`].
#[cfg(feature = "ssr")]
pub trait ResultExt<T> {
    fn context(self, doing: &'static str) -> Result<T, AppError>;
}

#[cfg(feature = "ssr")]
impl<T, E: std::fmt::Display> ResultExt<T> for Result<T, E> {
    fn context(self, doing: &'static str) -> Result<T, AppError> {
        self.map_err(|cause| {
            tracing::error!(error = %cause, "{doing} failed");
            AppError::Internal
        })
    }
}

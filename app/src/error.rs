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
    #[error("sign in first: your session has ended or was never started")]
    Unauthorized,
    #[error("only an admin of your team can do that")]
    Forbidden,
    #[error("the dataset's data file is missing; it may have been removed from storage")]
    DataFileMissing,
    #[error("lakehouse sync is not configured on this server (DATABRICKS_SYNC_ENABLED and MCP_SERVER_URL)")]
    SyncUnavailable,
    #[error("a sync of this dataset is already pending or running")]
    SyncInProgress,
    #[error("this dataset is being deleted")]
    Deleting,
    /// A request parameter is wrong (the message says which and why).
    #[error("{0}")]
    Invalid(String),
    /// The query cannot run as written (the message says why).
    #[error("{0}")]
    Query(String),
    /// The query's engine is busy or unavailable now; trying later may work.
    #[error("{0}")]
    QueryUnavailable(String),
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

impl AppError {
    /// The HTTP status a server function answers with this error.
    pub fn status(&self) -> u16 {
        match self {
            Self::NotFound => 404,
            Self::Unauthorized => 401,
            Self::Forbidden => 403,
            Self::DataFileMissing => 410,
            Self::SyncUnavailable => 503,
            Self::SyncInProgress => 409,
            Self::Deleting => 410,
            Self::Invalid(_) => 400,
            Self::Query(_) => 422,
            Self::QueryUnavailable(_) => 503,
            Self::Internal => 500,
            Self::ServerFn(_) => 400,
        }
    }
}

/// Ends a server function: on error, sets the response status to the
/// error's ([`AppError::status`]) so scripts see 404/401/403…, not 500.
#[cfg(feature = "ssr")]
pub fn answer<T>(result: Result<T, AppError>) -> Result<T, AppError> {
    if let Err(e) = &result {
        if let Some(response) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>() {
            if let Ok(status) = axum::http::StatusCode::from_u16(e.status()) {
                response.set_status(status);
            }
        }
    }
    result
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

//! The one error envelope of every HTTP route outside Leptos's server
//! functions, on both servers: `{"code": "...", "message": "..."}`. `code` is
//! stable and machine-readable; `message` is a sentence for people.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
        }
    }
}

/// The `_meta` key of an MCP tool error that says whether calling again later
/// may succeed (`true`: an unreachable file server, a lakehouse hiccup) or
/// not (`false`: bad input, not Parquet, an unknown table).
pub const RETRYABLE_META_KEY: &str = "servicetsunami/retryable";

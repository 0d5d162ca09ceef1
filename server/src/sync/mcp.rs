//! The MCP client the sync steps use: one short MCP session per tool call
//! (initialize, call, close), so a restarted MCP server never leaves a stale
//! session behind.

use rmcp::{
    model::CallToolRequestParams,
    transport::{
        streamable_http_client::StreamableHttpClientTransportConfig, StreamableHttpClientTransport,
    },
    ServiceExt,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;

/// The `_meta` key the MCP server sets on tool errors (see `mcp/src/error.rs`).
const RETRYABLE_META_KEY: &str = "servicetsunami/retryable";

/// Why a step did not succeed, and whether trying again later may help.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepFailure {
    pub retryable: bool,
    pub message: String,
}

impl StepFailure {
    pub fn retryable(message: impl Into<String>) -> Self {
        Self {
            retryable: true,
            message: message.into(),
        }
    }

    pub fn terminal(message: impl Into<String>) -> Self {
        Self {
            retryable: false,
            message: message.into(),
        }
    }
}

#[derive(Clone)]
pub struct McpClient {
    url: String,
    api_key: SecretString,
    /// Upper bound for one tool call, handshake included.
    call_timeout: Duration,
}

impl McpClient {
    pub fn new(url: String, api_key: SecretString, call_timeout: Duration) -> Self {
        Self {
            url,
            api_key,
            call_timeout,
        }
    }

    /// Calls `tool` and returns its structured output. A tool error carries the
    /// server's verdict on retrying; a transport failure (MCP down, timeout)
    /// is always worth retrying.
    pub async fn call(&self, tool: &str, arguments: Value) -> Result<Value, StepFailure> {
        match tokio::time::timeout(self.call_timeout, self.call_inner(tool, arguments)).await {
            Ok(result) => result,
            Err(_) => Err(StepFailure::retryable(format!(
                "MCP tool {tool} did not answer within {} s",
                self.call_timeout.as_secs()
            ))),
        }
    }

    async fn call_inner(&self, tool: &str, arguments: Value) -> Result<Value, StepFailure> {
        let Value::Object(arguments) = arguments else {
            return Err(StepFailure::terminal(
                "tool arguments must be a JSON object",
            ));
        };
        let config = StreamableHttpClientTransportConfig::with_uri(self.url.clone())
            .auth_header(self.api_key.expose_secret());
        let client =
            ().serve(StreamableHttpClientTransport::from_config(config))
                .await
                .map_err(|e| {
                    StepFailure::retryable(format!(
                        "cannot reach the MCP server at {}: {}",
                        self.url,
                        root_cause(&e)
                    ))
                })?;
        let result = client
            .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments))
            .await;
        // Ends the MCP session; failing to do so only leaves it to expire.
        let _ = client.cancel().await;
        let result = result.map_err(|e| {
            StepFailure::retryable(format!("MCP tool {tool} failed: {}", root_cause(&e)))
        })?;
        if result.is_error == Some(true) {
            let message = result
                .content
                .iter()
                .filter_map(|c| c.as_text().map(|t| t.text.clone()))
                .collect::<Vec<_>>()
                .join("\n");
            let retryable = result
                .meta
                .as_ref()
                .and_then(|m| m.0.get(RETRYABLE_META_KEY))
                .and_then(Value::as_bool)
                // An MCP server that does not say: assume a passing problem.
                .unwrap_or(true);
            return Err(StepFailure {
                retryable,
                message: format!("{tool}: {message}"),
            });
        }
        result
            .structured_content
            .ok_or_else(|| StepFailure::terminal(format!("{tool} returned no structured output")))
    }
}

/// The innermost cause ("Connection refused (os error 111)"), which says more
/// to a person than the transport layers wrapped around it.
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

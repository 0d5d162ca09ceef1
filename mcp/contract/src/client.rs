//! The typed MCP client: `call::<CreateDataset>(&args)` gives a
//! `BronzeResult` or a [`CallError`] that says whether trying again may help.
//! Each call is one short MCP session (initialize, call, close), so a
//! restarted MCP server never leaves a caller with a stale session.

use crate::{tools::Tool, RETRYABLE_META_KEY};
use rmcp::{
    model::{CallToolRequestParams, CallToolResult},
    service::RunningService,
    transport::{
        streamable_http_client::StreamableHttpClientTransportConfig, StreamableHttpClientTransport,
    },
    RoleClient, ServiceExt,
};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use std::time::Duration;

/// Why a tool call did not give a result.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    #[error("cannot reach the MCP server at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("MCP tool {tool} did not answer within {secs} s")]
    Timeout { tool: &'static str, secs: u64 },
    #[error("MCP tool {tool} failed: {reason}")]
    Transport { tool: String, reason: String },
    /// The tool ran and reported an error; `retryable` is the MCP server's verdict.
    #[error("{tool}: {message}")]
    Tool {
        tool: String,
        message: String,
        retryable: bool,
    },
    #[error("MCP tool {tool} returned an unexpected result: {reason}")]
    BadOutput { tool: String, reason: String },
}

impl CallError {
    /// Whether calling again later may succeed. A server that is down, slow
    /// or drops the connection may come back; a tool that said no because of
    /// its input will say no again.
    pub fn retryable(&self) -> bool {
        match self {
            Self::Unreachable { .. } | Self::Timeout { .. } | Self::Transport { .. } => true,
            Self::Tool { retryable, .. } => *retryable,
            Self::BadOutput { .. } => false,
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

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Calls tool `T` with `args`.
    pub async fn call<T: Tool>(&self, args: &T::Args) -> Result<T::Output, CallError> {
        let arguments = serde_json::to_value(args).map_err(|e| CallError::BadOutput {
            tool: T::NAME.to_owned(),
            reason: format!("the arguments do not serialise: {e}"),
        })?;
        let output = self.call_json(T::NAME, arguments).await?;
        serde_json::from_value(output).map_err(|e| CallError::BadOutput {
            tool: T::NAME.to_owned(),
            reason: e.to_string(),
        })
    }

    /// Calls a tool by name with JSON arguments; returns its structured output.
    pub async fn call_json(
        &self,
        tool: &'static str,
        arguments: Value,
    ) -> Result<Value, CallError> {
        let work = async {
            let session = connect(&self.url, &self.api_key).await?;
            let result = call_on(&session, tool, arguments).await;
            // Ends the MCP session; failing to do so only leaves it to expire.
            let _ = session.cancel().await;
            result
        };
        match tokio::time::timeout(self.call_timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(CallError::Timeout {
                tool,
                secs: self.call_timeout.as_secs(),
            }),
        }
    }
}

/// Opens an MCP session at `url` with `key` as the bearer token.
pub async fn connect(
    url: &str,
    key: &SecretString,
) -> Result<RunningService<RoleClient, ()>, CallError> {
    let config = StreamableHttpClientTransportConfig::with_uri(url.to_owned())
        .auth_header(key.expose_secret());
    ().serve(StreamableHttpClientTransport::from_config(config))
        .await
        .map_err(|e| CallError::Unreachable {
            url: url.to_owned(),
            reason: root_cause(&e),
        })
}

/// Calls `tool` on an open session. A tool error becomes
/// [`CallError::Tool`] with the server's retry verdict (a server that gives
/// none is assumed to have met a passing problem).
pub async fn call_on(
    session: &RunningService<RoleClient, ()>,
    tool: &str,
    arguments: Value,
) -> Result<Value, CallError> {
    let Value::Object(arguments) = arguments else {
        return Err(CallError::BadOutput {
            tool: tool.to_owned(),
            reason: "tool arguments must be a JSON object".to_owned(),
        });
    };
    let result: CallToolResult = session
        .call_tool(CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments))
        .await
        .map_err(|e| CallError::Transport {
            tool: tool.to_owned(),
            reason: root_cause(&e),
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
            .unwrap_or(true);
        return Err(CallError::Tool {
            tool: tool.to_owned(),
            message,
            retryable,
        });
    }
    result
        .structured_content
        .ok_or_else(|| CallError::BadOutput {
            tool: tool.to_owned(),
            reason: "no structured output".to_owned(),
        })
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

//! The typed MCP client: `call::<CreateDataset>(&args)` gives a
//! `BronzeResult` or a [`CallError`] that says whether trying again may help.
//! Each call is one short MCP session (initialize, call, close), so a
//! restarted MCP server never leaves a caller with a stale session.
//!
//! **Every phase has a deadline** ([`Deadlines`]): connecting, the
//! handshake, and the tool call, which is sized to the tool (a silver
//! transform may take many minutes; a status read may not). A connection
//! that drops mid-call fails the call at once (the transport does not
//! reconnect to a response stream a restarted server no longer has), and a
//! peer that goes silent fails it once no byte, not even the server's 15 s
//! keep-alive, has come for [`Deadlines::idle`]. Both are retryable.

use crate::{tools::Tool, RETRYABLE_META_KEY};
use rmcp::transport::common::client_side_sse::NeverRetry;
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
    /// The MCP server answered, and refused the bearer token (401/403): the
    /// two sides hold different `MCP_API_KEY`s.
    #[error("the MCP server at {url} refused the API key")]
    Refused { url: String },
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
            // A refused key is a configuration that an operator puts right
            // (or a key rotated on one side before the other): later tries
            // succeed once both hold the same key.
            Self::Unreachable { .. }
            | Self::Refused { .. }
            | Self::Timeout { .. }
            | Self::Transport { .. } => true,
            Self::Tool { retryable, .. } => *retryable,
            Self::BadOutput { .. } => false,
        }
    }
}

/// How long each phase of a tool call may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    /// Opening the TCP connection.
    pub connect: Duration,
    /// `initialize` and its answer.
    pub handshake: Duration,
    /// Silence on a connection (the MCP server sends a keep-alive every 15 s
    /// while a tool runs, so a live server is never this quiet).
    pub idle: Duration,
    /// `create_dataset`: a download and a bronze table.
    pub create_dataset: Duration,
    /// `transform_to_silver`: statistics and a full rewrite.
    pub transform: Duration,
    /// Every other tool: catalogue reads.
    pub read: Duration,
}

impl Default for Deadlines {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(5),
            handshake: Duration::from_secs(15),
            idle: Duration::from_secs(45),
            create_dataset: Duration::from_secs(30 * 60),
            transform: Duration::from_secs(60 * 60),
            read: Duration::from_secs(120),
        }
    }
}

impl Deadlines {
    /// The deadline for one call of `tool`, handshake excluded.
    pub fn for_tool(&self, tool: &str) -> Duration {
        use crate::tools::{CreateDataset, TransformToSilver};
        if tool == CreateDataset::NAME {
            self.create_dataset
        } else if tool == TransformToSilver::NAME {
            self.transform
        } else {
            self.read
        }
    }

    /// The longest any one call may take, handshake included.
    pub fn longest(&self) -> Duration {
        self.handshake + self.create_dataset.max(self.transform).max(self.read)
    }
}

#[derive(Clone)]
pub struct McpClient {
    url: String,
    api_key: SecretString,
    deadlines: Deadlines,
    http: reqwest_mcp::Client,
}

impl McpClient {
    pub fn new(url: String, api_key: SecretString, deadlines: Deadlines) -> Self {
        Self {
            url,
            api_key,
            deadlines,
            http: http_client(&deadlines),
        }
    }

    pub fn deadlines(&self) -> &Deadlines {
        &self.deadlines
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
        let handshake = self.deadlines.handshake;
        let session = match tokio::time::timeout(
            handshake,
            connect_with(self.http.clone(), &self.url, &self.api_key),
        )
        .await
        {
            Ok(session) => session?,
            Err(_) => {
                return Err(CallError::Unreachable {
                    url: self.url.clone(),
                    reason: format!(
                        "no answer to the handshake within {} s",
                        handshake.as_secs()
                    ),
                })
            }
        };
        let deadline = self.deadlines.for_tool(tool);
        let result = match tokio::time::timeout(deadline, call_on(&session, tool, arguments)).await
        {
            Ok(result) => result,
            Err(_) => Err(CallError::Timeout {
                tool,
                secs: deadline.as_secs(),
            }),
        };
        // Ends the MCP session (bounded: a dead server must not hold us
        // here); failing to do so only leaves it to expire.
        let _ = tokio::time::timeout(Duration::from_secs(5), session.cancel()).await;
        result
    }
}

/// The HTTP client under the MCP transport: a connect deadline, and a read
/// deadline that ends a connection gone silent.
fn http_client(deadlines: &Deadlines) -> reqwest_mcp::Client {
    reqwest_mcp::Client::builder()
        .connect_timeout(deadlines.connect)
        .read_timeout(deadlines.idle)
        .pool_max_idle_per_host(0)
        .redirect(reqwest_mcp::redirect::Policy::none())
        .build()
        .expect("a client without TLS settings always builds")
}

/// Opens an MCP session at `url` with `key` as the bearer token, with the
/// default deadlines.
pub async fn connect(
    url: &str,
    key: &SecretString,
) -> Result<RunningService<RoleClient, ()>, CallError> {
    connect_with(http_client(&Deadlines::default()), url, key).await
}

async fn connect_with(
    http: reqwest_mcp::Client,
    url: &str,
    key: &SecretString,
) -> Result<RunningService<RoleClient, ()>, CallError> {
    let mut config = StreamableHttpClientTransportConfig::with_uri(url.to_owned())
        .auth_header(key.expose_secret());
    // A response stream that drops is not resumed: the call fails at once,
    // and the caller's retry starts over with a new session.
    config.retry_config = std::sync::Arc::new(NeverRetry::default());
    ().serve(StreamableHttpClientTransport::with_client(http, config))
        .await
        .map_err(|e| {
            if e.auth_challenge().is_some() {
                CallError::Refused {
                    url: url.to_owned(),
                }
            } else {
                CallError::Unreachable {
                    url: url.to_owned(),
                    reason: root_cause(&e),
                }
            }
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

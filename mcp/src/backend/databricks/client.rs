//! The Databricks REST client: authentication (PAT or OAuth M2M with a
//! cached token), retries, error mapping, the SQL Statement Execution API,
//! the Files API and the Unity Catalog tables API. It knows nothing about
//! bronze or silver; [`super::lakehouse`] does.
//!
//! Each rule below follows a documented contract:
//! - Statements (docs.databricks.com/api/statement-execution/v1): submitted
//!   with a `wait_timeout` of at most 50 s (0 when less time is left), then
//!   polled to a terminal state until our own deadline, which cancels the
//!   statement. SUCCEEDED reads every result chunk (`next_chunk_internal_link`,
//!   get-result-data.md) and `manifest.truncated`; FAILED, CANCELED and
//!   CLOSED (result no longer available) are errors. A failure's
//!   `error_code` is a service code (`BAD_REQUEST`, …); the SQL error class
//!   is the `[CLASS]` that opens `message`, beside `sql_state`.
//! - Retries (databricks-sdk-go `apierr` and `retries`, databricks-sdk-py
//!   `_base_client`): 429 and 503 (honouring `Retry-After`) and the SDK's
//!   transient messages, for a bounded total time. Other 5xx are retried only
//!   for idempotent calls: a statement is never POSTed again after a 500,
//!   since it may already be running. A connection that never opened is
//!   always retried; the token request too.
//! - Errors: `error_code` may be a string or a number (a 403 answers
//!   `{"error_code": 403, "message": "Invalid access token."}`), and a proxy
//!   may answer HTML. An OAuth token is refreshed once on 401, and on a 400
//!   or 403 whose message is about the token.
//! - Files API (files/upload.md): one `PUT` of at most 5000 MiB, stopped when it
//!   makes no progress for [`STALL_TIMEOUT`].
//! - Tables API (unity-catalog/tables/list.md): pages with `max_results` and
//!   `next_page_token`; a page may be empty and still carry a token.

use crate::backend::ColumnInfo;
use crate::config::DatabricksAuth;
use crate::domain::{Ident, TableName};
use futures::StreamExt;
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use time::OffsetDateTime;

const MAX_ATTEMPTS: u32 = 6;
/// Refresh OAuth tokens this long before they expire.
const TOKEN_MARGIN: Duration = Duration::from_secs(120);
/// The Files API's limit for one `PUT`: 5000 MiB (docs "Upload large files
/// with multipart upload"; multipart needs Files API 3.0, a Beta preview).
pub const MAX_SINGLE_UPLOAD: u64 = 5000 * 1024 * 1024;
/// An upload or response that moves no byte for this long is abandoned.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(120);
/// Tables per `list_tables` page.
const PAGE_SIZE: u32 = 100;
/// Messages the SDKs retry whatever the status (databricks-sdk-go
/// apierr/error_overrides.go, `allTransientErrors`).
const TRANSIENT_MESSAGES: &[&str] = &[
    "com.databricks.backend.manager.util.UnknownWorkerEnvironmentException",
    "does not have any associated worker environments",
    "There is no worker environment with id",
    "Unknown worker environment",
    "ClusterNotReadyException",
];

#[derive(Debug, thiserror::Error)]
pub enum DatabricksError {
    #[error("{message} ({code})")]
    Api {
        code: String,
        status: u16,
        message: String,
    },
    #[error("statement {state}: {message} ({code})")]
    Statement {
        state: String,
        /// The service code (`BAD_REQUEST`, …).
        code: String,
        /// The SQL error class, e.g. `TABLE_OR_VIEW_NOT_FOUND`.
        class: Option<String>,
        sql_state: Option<String>,
        message: String,
    },
    #[error("statement did not finish within {0} s and was cancelled")]
    Timeout(u64),
    #[error("could not reach Databricks: {0}")]
    Transport(String),
    #[error("unexpected response: {0}")]
    Protocol(String),
    #[error("OAuth token request failed: {0}")]
    OAuth(String),
    #[error("the staged file is {size} bytes; one Files API upload takes at most {max}")]
    TooLarge { size: u64, max: u64 },
}

impl DatabricksError {
    /// What an MCP caller may be told: our sentence for the error's class or
    /// code, never the warehouse's own text (it can quote SQL and paths).
    pub fn summary(&self) -> String {
        match self {
            Self::Api { code, status, .. } => {
                format!("Databricks: {} (HTTP {status}, {code})", explain(code))
            }
            Self::Statement {
                state,
                code,
                class,
                sql_state,
                ..
            } => {
                let reason = class
                    .as_deref()
                    .and_then(explain_class)
                    .or_else(|| sql_state.as_deref().and_then(explain_sql_state))
                    .unwrap_or_else(|| explain(code));
                let shown = class.as_deref().unwrap_or(code);
                format!("Databricks: the statement ended {state}: {reason} ({shown})")
            }
            Self::Timeout(secs) => format!(
                "Databricks: the statement did not finish within {secs} s and was cancelled \
                 (DATABRICKS_STATEMENT_TIMEOUT_SECS)"
            ),
            Self::Transport(_) => "Databricks could not be reached".to_owned(),
            Self::Protocol(_) => "Databricks answered in an unexpected form".to_owned(),
            Self::OAuth(_) => "Databricks refused the OAuth token request".to_owned(),
            Self::TooLarge { .. } => self.to_string(),
        }
    }

    /// Whether the same call may succeed later. The client has already
    /// retried what the SDKs retry; what is left (a warehouse still
    /// starting, a token being rotated, a missing grant being added) may be
    /// fixed by the next sync attempt. A file too large never fits.
    pub fn retryable(&self) -> bool {
        !matches!(self, Self::TooLarge { .. })
    }
}

/// A clear sentence for the service error codes callers actually meet.
pub fn explain(code: &str) -> &'static str {
    match code {
        "TABLE_OR_VIEW_NOT_FOUND"
        | "TABLE_DOES_NOT_EXIST"
        | "NOT_FOUND"
        | "RESOURCE_DOES_NOT_EXIST" => "the table, schema or volume does not exist",
        "SCHEMA_NOT_FOUND" => "the schema does not exist",
        "PERMISSION_DENIED" | "INSUFFICIENT_PERMISSIONS" => {
            "the service principal lacks permission for this object"
        }
        "UNAUTHENTICATED" | "INVALID_TOKEN" => {
            "Databricks rejected the credentials (check DATABRICKS_TOKEN or the OAuth client)"
        }
        "PARSE_SYNTAX_ERROR" | "INVALID_PARAMETER_VALUE" | "BAD_REQUEST" => {
            "Databricks rejected the request as invalid"
        }
        "TEMPORARILY_UNAVAILABLE"
        | "REQUEST_LIMIT_EXCEEDED"
        | "SERVICE_UNDER_MAINTENANCE"
        | "WORKSPACE_TEMPORARILY_UNAVAILABLE" => {
            "Databricks is throttling or unavailable; try again later"
        }
        "RESOURCE_EXHAUSTED" => "the warehouse is out of capacity; try again later",
        "ALREADY_EXISTS" => "the object already exists",
        "DEADLINE_EXCEEDED" => "the warehouse gave up waiting",
        "CANCELLED" | "CANCELED" | "ABORTED" => "the statement was cancelled",
        "CLOSED" => "the statement's result was closed before it was read",
        _ => "Databricks reported an error",
    }
}

/// A clear sentence for the SQL error classes a sync or query meets.
fn explain_class(class: &str) -> Option<&'static str> {
    let top = class.split('.').next().unwrap_or(class);
    Some(match top {
        "TABLE_OR_VIEW_NOT_FOUND" => "table not found",
        "SCHEMA_NOT_FOUND" => "schema not found",
        "CATALOG_NOT_FOUND" | "NO_SUCH_CATALOG_EXCEPTION" => "catalog not found",
        "UNRESOLVED_COLUMN" | "UNRESOLVED_FIELD" => "a column the statement names does not exist",
        "INSUFFICIENT_PERMISSIONS" | "PERMISSION_DENIED" | "UNAUTHORIZED_ACCESS" => {
            "permission denied: the principal lacks a grant for this object"
        }
        "PARSE_SYNTAX_ERROR" | "PARSE_EMPTY_STATEMENT" => "the SQL has a syntax error",
        "DELTA_INVALID_CHARACTERS_IN_COLUMN_NAMES" => {
            "a column name has characters Delta stores only with column mapping"
        }
        "TABLE_OR_VIEW_ALREADY_EXISTS" | "SCHEMA_ALREADY_EXISTS" => "the object already exists",
        "DIVIDE_BY_ZERO" | "CAST_INVALID_INPUT" | "NUMERIC_VALUE_OUT_OF_RANGE" => {
            "a value could not be computed or converted"
        }
        _ => return None,
    })
}

/// The SQLSTATE classes worth a sentence (ISO/IEC 9075 and Spark's
/// `error-states.json`).
fn explain_sql_state(state: &str) -> Option<&'static str> {
    Some(match state {
        "42P01" | "42S02" => "table not found",
        "3F000" => "schema not found",
        "42704" => "an object the statement names does not exist",
        "42703" => "a column the statement names does not exist",
        "42501" => "permission denied: the principal lacks a grant for this object",
        "42601" => "the SQL has a syntax error",
        _ => return None,
    })
}

/// `[CLASS.SUBCLASS] text…` → `CLASS.SUBCLASS`.
fn error_class(message: &str) -> Option<String> {
    let rest = message.trim_start().strip_prefix('[')?;
    let (class, _) = rest.split_once(']')?;
    let valid = !class.is_empty()
        && class
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_' || c == '.');
    valid.then(|| class.to_owned())
}

/// The code a status stands for when the body does not name one.
fn status_code_name(status: StatusCode) -> String {
    match status.as_u16() {
        400 => "BAD_REQUEST".into(),
        401 => "UNAUTHENTICATED".into(),
        403 => "PERMISSION_DENIED".into(),
        404 => "NOT_FOUND".into(),
        409 => "ALREADY_EXISTS".into(),
        429 => "REQUEST_LIMIT_EXCEEDED".into(),
        503 => "TEMPORARILY_UNAVAILABLE".into(),
        other => format!("HTTP_{other}"),
    }
}

/// An error answer: JSON with a string or numeric `error_code`, or
/// anything else (an HTML page from a proxy), named by its status.
fn api_error(status: StatusCode, body: &str) -> DatabricksError {
    let parsed: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let code = match &parsed["error_code"] {
        Value::String(code) if !code.is_empty() => code.clone(),
        _ => status_code_name(status),
    };
    let detail = match parsed["message"].as_str() {
        Some(message) => message.chars().take(300).collect::<String>(),
        None if !body.trim().is_empty() && parsed.is_null() => {
            "the answer was not JSON (an HTML error page?)".to_owned()
        }
        None => String::new(),
    };
    DatabricksError::Api {
        message: if detail.is_empty() {
            format!("{} (HTTP {})", explain(&code), status.as_u16())
        } else {
            format!("{}: {detail}", explain(&code))
        },
        status: status.as_u16(),
        code,
    }
}

/// An answer that says the token itself is bad or expired.
fn token_rejected(status: StatusCode, body: &str) -> bool {
    let lower = body.to_ascii_lowercase();
    let about_token = lower.contains("token") || lower.contains("credential");
    status == StatusCode::UNAUTHORIZED
        || (matches!(status.as_u16(), 400 | 403)
            && about_token
            && (lower.contains("invalid") || lower.contains("expired")))
}

fn transient(body: &str) -> bool {
    TRANSIENT_MESSAGES.iter().any(|m| body.contains(m))
}

struct CachedToken {
    value: SecretString,
    refresh_at: Instant,
}

/// The REST client: auth, retries and error mapping in one place.
pub struct DatabricksClient {
    http: reqwest::Client,
    host: String,
    auth: DatabricksAuth,
    token: tokio::sync::Mutex<Option<CachedToken>>,
    /// First backoff step; tests shorten it.
    pub backoff: Duration,
    /// Longest a call keeps retrying; tests shorten it.
    pub retry_budget: Duration,
    /// Longest an upload may make no progress; tests shorten it.
    pub stall_timeout: Duration,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: Option<u64>,
}

/// A request body, rebuilt for each retry.
#[derive(Clone, Copy)]
enum Body<'a> {
    None,
    Json(&'a Value),
    File(&'a std::path::Path),
}

/// What one attempt came to.
enum Attempt {
    Done(StatusCode, String),
    /// Worth another try after the pause (or the backoff when `None`).
    Retry(Option<Duration>, DatabricksError),
    Fail(DatabricksError),
}

impl DatabricksClient {
    pub fn new(host: &str, auth: DatabricksAuth) -> Result<Self, DatabricksError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(15))
            // An inactivity bound on answers; statements have our deadline,
            // uploads the stall watchdog.
            .read_timeout(STALL_TIMEOUT)
            .build()
            .map_err(|e| DatabricksError::Transport(e.to_string()))?;
        Ok(Self {
            http,
            host: host.trim_end_matches('/').to_owned(),
            auth,
            token: tokio::sync::Mutex::new(None),
            backoff: Duration::from_millis(500),
            retry_budget: Duration::from_secs(300),
            stall_timeout: STALL_TIMEOUT,
        })
    }

    fn pause(&self, attempt: u32) -> Duration {
        (self.backoff * 2u32.pow(attempt.saturating_sub(1).min(6))).min(Duration::from_secs(30))
    }

    async fn bearer(&self, force_refresh: bool) -> Result<SecretString, DatabricksError> {
        let (client_id, secret) = match &self.auth {
            DatabricksAuth::Pat(token) => return Ok(token.clone()),
            DatabricksAuth::OAuth {
                client_id,
                client_secret,
            } => (client_id, client_secret),
        };
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref() {
            if !force_refresh && Instant::now() < token.refresh_at {
                return Ok(token.value.clone());
            }
        }
        let started = Instant::now();
        let mut attempt = 0;
        let body: TokenResponse = loop {
            attempt += 1;
            let sent = self
                .http
                .post(format!("{}/oidc/v1/token", self.host))
                .basic_auth(client_id, Some(secret.expose_secret()))
                .form(&[("grant_type", "client_credentials"), ("scope", "all-apis")])
                .timeout(Duration::from_secs(30))
                .send()
                .await;
            let retry = match sent {
                // The token endpoint is idempotent: any transport failure
                // may be retried.
                Err(e) => DatabricksError::OAuth(e.to_string()),
                Ok(r) if r.status().is_success() => {
                    break r
                        .json()
                        .await
                        .map_err(|e| DatabricksError::OAuth(e.to_string()))?
                }
                Ok(r)
                    if r.status() == StatusCode::TOO_MANY_REQUESTS
                        || r.status().is_server_error() =>
                {
                    DatabricksError::OAuth(format!("HTTP {}", r.status().as_u16()))
                }
                Ok(r) => {
                    return Err(DatabricksError::OAuth(format!(
                        "HTTP {} (check the OAuth client id and secret)",
                        r.status().as_u16()
                    )))
                }
            };
            if attempt >= MAX_ATTEMPTS || started.elapsed() >= self.retry_budget {
                return Err(retry);
            }
            tokio::time::sleep(self.pause(attempt)).await;
        };
        let lifetime = Duration::from_secs(body.expires_in.unwrap_or(3600));
        let value = SecretString::from(body.access_token);
        *cached = Some(CachedToken {
            value: value.clone(),
            refresh_at: Instant::now() + lifetime.saturating_sub(TOKEN_MARGIN),
        });
        Ok(value)
    }

    /// One attempt of one call.
    async fn attempt(
        &self,
        method: &Method,
        url: &str,
        body: Body<'_>,
        token: &SecretString,
        idempotent: bool,
    ) -> Attempt {
        let mut request = self
            .http
            .request(method.clone(), url)
            .bearer_auth(token.expose_secret());
        let progress = Arc::new(AtomicU64::new(0));
        request = match body {
            Body::None => request,
            Body::Json(v) => request.json(v),
            Body::File(path) => {
                let file = match tokio::fs::File::open(path).await {
                    Ok(f) => f,
                    Err(e) => {
                        return Attempt::Fail(DatabricksError::Transport(format!(
                            "reading the staged file: {e}"
                        )))
                    }
                };
                let len = file.metadata().await.map(|m| m.len()).unwrap_or(0);
                let seen = progress.clone();
                let stream = tokio_util::io::ReaderStream::new(file).inspect(move |chunk| {
                    if let Ok(bytes) = chunk {
                        seen.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                    }
                });
                request
                    .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                    .header(reqwest::header::CONTENT_LENGTH, len)
                    .body(reqwest::Body::wrap_stream(stream))
            }
        };
        // Every call is watched: one whose bytes (for an upload) or answer
        // (for anything else) do not move for `stall_timeout` is abandoned.
        let sent = tokio::select! {
            sent = request.send() => sent,
            () = stalled(&progress, self.stall_timeout) => {
                let error = DatabricksError::Transport(format!(
                    "the call made no progress for {} ms",
                    self.stall_timeout.as_millis()
                ));
                return if idempotent { Attempt::Retry(None, error) } else { Attempt::Fail(error) };
            }
        };
        let response = match sent {
            Ok(r) => r,
            // Never connected: nothing reached Databricks.
            Err(e) if e.is_connect() => {
                return Attempt::Retry(None, DatabricksError::Transport(e.to_string()))
            }
            Err(e) if idempotent => {
                return Attempt::Retry(None, DatabricksError::Transport(e.to_string()))
            }
            Err(e) => return Attempt::Fail(DatabricksError::Transport(e.to_string())),
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|secs| Duration::from_secs(secs.min(60)));
        let text = match response.text().await {
            Ok(t) => t,
            Err(e) if idempotent => {
                return Attempt::Retry(None, DatabricksError::Transport(e.to_string()))
            }
            Err(e) => return Attempt::Fail(DatabricksError::Transport(e.to_string())),
        };
        if status.is_success() {
            return Attempt::Done(status, text);
        }
        let error = api_error(status, &text);
        let throttled =
            status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE;
        if throttled || transient(&text) {
            Attempt::Retry(retry_after, error)
        } else if status.is_server_error() && idempotent {
            Attempt::Retry(None, error)
        } else {
            Attempt::Fail(error)
        }
    }

    /// Sends one API call with auth and the SDKs' retries. Returns the
    /// status and body text of a success.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Body<'_>,
    ) -> Result<(StatusCode, String), DatabricksError> {
        let url = format!("{}{path}", self.host);
        // A statement POST may start work; cancelling twice is harmless.
        let idempotent = method != Method::POST || path.ends_with("/cancel");
        let started = Instant::now();
        let mut refreshed = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let token = self.bearer(false).await?;
            let (wait, error) = match self.attempt(&method, &url, body, &token, idempotent).await {
                Attempt::Done(status, text) => return Ok((status, text)),
                Attempt::Fail(DatabricksError::Api {
                    status,
                    code,
                    message,
                }) if matches!(self.auth, DatabricksAuth::OAuth { .. })
                    && !refreshed
                    && StatusCode::from_u16(status).is_ok_and(|s| token_rejected(s, &message)) =>
                {
                    // The cached token expired early or was revoked: one
                    // fresh token, one more try.
                    tracing::info!(status, code, "Databricks refused the token; refreshing it");
                    refreshed = true;
                    self.bearer(true).await?;
                    continue;
                }
                Attempt::Fail(e) => return Err(e),
                Attempt::Retry(wait, e) => (wait, e),
            };
            let wait = wait.unwrap_or_else(|| self.pause(attempt));
            if attempt >= MAX_ATTEMPTS || started.elapsed() + wait > self.retry_budget {
                return Err(error);
            }
            tracing::warn!(error = %error, ?wait, attempt, "Databricks call will be retried");
            tokio::time::sleep(wait).await;
        }
    }

    async fn json(
        &self,
        method: Method,
        path: &str,
        body: Body<'_>,
    ) -> Result<Value, DatabricksError> {
        let (_, text) = self.call(method, path, body).await?;
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|e| DatabricksError::Protocol(e.to_string()))
    }

    /// Runs one statement to completion and returns its rows (as strings).
    /// `catalog` is the statement's default catalog (the Statement Execution
    /// API's `catalog` field), so `schema.table` never resolves in the
    /// workspace's default catalog instead of ours.
    pub async fn execute(
        &self,
        warehouse_id: &str,
        catalog: &str,
        statement: &str,
        deadline: Duration,
    ) -> Result<StatementResult, DatabricksError> {
        self.execute_limited(warehouse_id, catalog, statement, deadline, None)
            .await
    }

    /// [`Self::execute`] with the API's `row_limit`: at most that many rows
    /// come back, and `truncated` says whether there were more.
    pub async fn execute_limited(
        &self,
        warehouse_id: &str,
        catalog: &str,
        statement: &str,
        deadline: Duration,
        row_limit: Option<u64>,
    ) -> Result<StatementResult, DatabricksError> {
        let started = Instant::now();
        // wait_timeout is 0 or 5–50 s: wait inline as long as the deadline
        // allows, then poll until it.
        let wait = match deadline.as_secs() {
            s if s < 5 => 0,
            s => s.min(50),
        };
        let mut request = json!({
            "warehouse_id": warehouse_id,
            "catalog": catalog,
            "statement": statement,
            "wait_timeout": format!("{wait}s"),
            "on_wait_timeout": "CONTINUE",
            "disposition": "INLINE",
            "format": "JSON_ARRAY",
        });
        if let Some(limit) = row_limit {
            request["row_limit"] = json!(limit);
        }
        let mut response = tokio::time::timeout(
            deadline + Duration::from_secs(10),
            self.json(
                Method::POST,
                "/api/2.0/sql/statements",
                Body::Json(&request),
            ),
        )
        .await
        .map_err(|_| DatabricksError::Timeout(deadline.as_secs()))??;
        let id = response["statement_id"]
            .as_str()
            .ok_or_else(|| DatabricksError::Protocol("no statement_id".into()))?
            .to_owned();
        let mut pause = self.backoff;
        loop {
            let state = response["status"]["state"]
                .as_str()
                .unwrap_or("")
                .to_owned();
            match state.as_str() {
                "SUCCEEDED" => return self.read_result(&id, &response).await,
                "PENDING" | "RUNNING" => {}
                _ => return Err(statement_error(state, &response["status"])),
            }
            if started.elapsed() >= deadline {
                let cancel = format!("/api/2.0/sql/statements/{id}/cancel");
                if let Err(e) = self.call(Method::POST, &cancel, Body::None).await {
                    tracing::warn!(error = %e, statement_id = %id, "cancel failed");
                }
                return Err(DatabricksError::Timeout(deadline.as_secs()));
            }
            tokio::time::sleep(pause.min(deadline.saturating_sub(started.elapsed()))).await;
            pause = (pause * 2).min(Duration::from_secs(5));
            response = self
                .json(
                    Method::GET,
                    &format!("/api/2.0/sql/statements/{id}"),
                    Body::None,
                )
                .await?;
        }
    }

    /// Every chunk of a SUCCEEDED statement's result, in order.
    async fn read_result(
        &self,
        id: &str,
        response: &Value,
    ) -> Result<StatementResult, DatabricksError> {
        let mut result = StatementResult::from_manifest(&response["manifest"]);
        let mut chunk = response["result"].clone();
        let mut fetched = 0usize;
        if chunk.is_null()
            && response["manifest"]["total_chunk_count"]
                .as_u64()
                .unwrap_or(0)
                > 0
        {
            chunk = self
                .json(
                    Method::GET,
                    &format!("/api/2.0/sql/statements/{id}/result/chunks/0"),
                    Body::None,
                )
                .await?;
        }
        loop {
            result.append(&chunk);
            let Some(next) = chunk["next_chunk_internal_link"]
                .as_str()
                .map(str::to_owned)
            else {
                break;
            };
            if !next.starts_with("/api/") {
                return Err(DatabricksError::Protocol(format!(
                    "a chunk link outside the API: {next}"
                )));
            }
            fetched += 1;
            if fetched > 100_000 {
                return Err(DatabricksError::Protocol("too many result chunks".into()));
            }
            chunk = self.json(Method::GET, &next, Body::None).await?;
        }
        Ok(result)
    }

    pub async fn upload(
        &self,
        volume_path: &str,
        file: &std::path::Path,
    ) -> Result<(), DatabricksError> {
        let size = tokio::fs::metadata(file)
            .await
            .map_err(|e| DatabricksError::Transport(format!("reading the staged file: {e}")))?
            .len();
        if size > MAX_SINGLE_UPLOAD {
            return Err(DatabricksError::TooLarge {
                size,
                max: MAX_SINGLE_UPLOAD,
            });
        }
        if let Some((dir, _)) = volume_path.rsplit_once('/') {
            self.call(
                Method::PUT,
                &format!("/api/2.0/fs/directories{dir}"),
                Body::None,
            )
            .await?;
        }
        self.call(
            Method::PUT,
            &format!("/api/2.0/fs/files{volume_path}?overwrite=true"),
            Body::File(file),
        )
        .await?;
        Ok(())
    }

    /// Removes a volume directory and everything under it (Files API: list
    /// the directory page by page, `DELETE` each file, then each directory,
    /// which must be empty by then). Returns how many files went; what is
    /// already gone (404) counts as removed, so a repeat is harmless.
    pub async fn remove_tree(&self, dir: &str) -> Result<u64, DatabricksError> {
        let mut removed = 0;
        // Depth-first without recursion: directories are removed after
        // their contents, deepest first.
        let mut pending = vec![dir.trim_end_matches('/').to_owned()];
        let mut directories = Vec::new();
        while let Some(current) = pending.pop() {
            if directories.len() > 10_000 {
                return Err(DatabricksError::Protocol(
                    "the volume directory never ended".into(),
                ));
            }
            let mut page_token: Option<String> = None;
            loop {
                let mut path = format!("/api/2.0/fs/directories{current}?page_size={PAGE_SIZE}");
                if let Some(token) = &page_token {
                    path.push_str("&page_token=");
                    path.push_str(&query_escape(token));
                }
                let page = match self.json(Method::GET, &path, Body::None).await {
                    Ok(v) => v,
                    Err(DatabricksError::Api { status: 404, .. }) => break,
                    Err(e) => return Err(e),
                };
                for entry in page["contents"].as_array().into_iter().flatten() {
                    let Some(child) = entry["path"].as_str() else {
                        continue;
                    };
                    // Only what lies under the directory we were asked to remove.
                    if !child.starts_with(&format!("{current}/")) {
                        return Err(DatabricksError::Protocol(format!(
                            "the listing of {current} named {child}"
                        )));
                    }
                    if entry["is_directory"].as_bool().unwrap_or(false) {
                        pending.push(child.trim_end_matches('/').to_owned());
                    } else {
                        match self
                            .call(
                                Method::DELETE,
                                &format!("/api/2.0/fs/files{child}"),
                                Body::None,
                            )
                            .await
                        {
                            Ok(_) => removed += 1,
                            Err(DatabricksError::Api { status: 404, .. }) => {}
                            Err(e) => return Err(e),
                        }
                    }
                }
                page_token = page["next_page_token"]
                    .as_str()
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned);
                if page_token.is_none() {
                    break;
                }
            }
            directories.push(current);
        }
        for dir in directories.iter().rev() {
            match self
                .call(
                    Method::DELETE,
                    &format!("/api/2.0/fs/directories{dir}"),
                    Body::None,
                )
                .await
            {
                Ok(_) | Err(DatabricksError::Api { status: 404, .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(removed)
    }

    /// `None` when the table does not exist.
    pub async fn get_table(&self, table: &TableName) -> Result<Option<UcTable>, DatabricksError> {
        match self
            .json(
                Method::GET,
                &format!("/api/2.1/unity-catalog/tables/{table}"),
                Body::None,
            )
            .await
        {
            Ok(v) => serde_json::from_value(v)
                .map(Some)
                .map_err(|e| DatabricksError::Protocol(e.to_string())),
            Err(DatabricksError::Api { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every table in the schema, page by page.
    pub async fn list_tables(
        &self,
        catalog: &Ident,
        schema: &Ident,
    ) -> Result<Vec<UcTable>, DatabricksError> {
        let mut tables = Vec::new();
        let mut page_token: Option<String> = None;
        for _ in 0..10_000 {
            let mut path = format!(
                "/api/2.1/unity-catalog/tables?catalog_name={catalog}&schema_name={schema}&max_results={PAGE_SIZE}"
            );
            if let Some(token) = &page_token {
                path.push_str("&page_token=");
                path.push_str(&query_escape(token));
            }
            let page = match self.json(Method::GET, &path, Body::None).await {
                Ok(v) => v,
                Err(DatabricksError::Api { status: 404, .. }) => return Ok(vec![]),
                Err(e) => return Err(e),
            };
            let listed = page.get("tables").cloned().unwrap_or(Value::Array(vec![]));
            let listed: Vec<UcTable> = serde_json::from_value(listed)
                .map_err(|e| DatabricksError::Protocol(e.to_string()))?;
            tables.extend(listed);
            page_token = page["next_page_token"]
                .as_str()
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            if page_token.is_none() {
                return Ok(tables);
            }
        }
        Err(DatabricksError::Protocol(
            "the table list never ended".into(),
        ))
    }
}

/// `text` for a query string: unreserved characters kept, the rest %XX.
fn query_escape(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Resolves once `progress` has not moved for `limit`.
async fn stalled(progress: &AtomicU64, limit: Duration) {
    let tick = (limit / 4).max(Duration::from_millis(10));
    let mut last = progress.load(Ordering::Relaxed);
    let mut still = Instant::now();
    loop {
        tokio::time::sleep(tick).await;
        let now = progress.load(Ordering::Relaxed);
        if now != last {
            last = now;
            still = Instant::now();
        } else if still.elapsed() >= limit {
            return;
        }
    }
}

/// A FAILED, CANCELED or CLOSED statement (or an unknown state) as an error.
fn statement_error(state: String, status: &Value) -> DatabricksError {
    let error = &status["error"];
    let code = match &error["error_code"] {
        Value::String(c) if !c.is_empty() => c.clone(),
        _ if state == "CLOSED" => "CLOSED".to_owned(),
        _ if state == "CANCELED" => "CANCELLED".to_owned(),
        _ => "UNKNOWN".to_owned(),
    };
    let text = error["message"].as_str().unwrap_or("");
    let class = error_class(text);
    let detail = text.chars().take(400).collect::<String>();
    DatabricksError::Statement {
        message: if detail.is_empty() {
            explain(&code).to_owned()
        } else {
            format!("{}: {detail}", explain(&code))
        },
        sql_state: status["sql_state"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
        class,
        state,
        code,
    }
}

/// The subset of a Unity Catalog table we use.
#[derive(Debug, Clone, Deserialize)]
pub struct UcTable {
    pub name: String,
    #[serde(default)]
    pub full_name: Option<String>,
    #[serde(default)]
    pub table_type: Option<String>,
    #[serde(default)]
    pub columns: Vec<UcColumn>,
    #[serde(default)]
    pub storage_location: Option<String>,
    /// Milliseconds since the epoch.
    #[serde(default)]
    pub updated_at: Option<i64>,
    /// The table's properties (`TBLPROPERTIES`), as the API lists them.
    #[serde(default)]
    pub properties: Option<std::collections::HashMap<String, String>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct UcColumn {
    pub name: String,
    #[serde(default)]
    pub type_text: Option<String>,
    #[serde(default)]
    pub type_name: Option<String>,
}

impl UcColumn {
    pub fn info(&self) -> ColumnInfo {
        ColumnInfo {
            name: self.name.clone(),
            data_type: self.data_type(),
        }
    }

    pub fn data_type(&self) -> String {
        self.type_text
            .clone()
            .or_else(|| self.type_name.clone())
            .unwrap_or_default()
            .to_ascii_uppercase()
    }
}

pub fn millis_to_rfc3339(ms: i64) -> Option<String> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()?
        .format(&time::format_description::well_known::Rfc3339)
        .ok()
}

#[derive(Debug, Clone, Default)]
pub struct StatementResult {
    pub columns: Vec<ColumnInfo>,
    pub rows: Vec<Vec<Option<String>>>,
    /// The API's `manifest.truncated`: `row_limit` cut the result.
    pub truncated: bool,
}

impl StatementResult {
    fn from_manifest(manifest: &Value) -> Self {
        let columns = manifest["schema"]["columns"]
            .as_array()
            .map(|cols| {
                cols.iter()
                    .map(|c| ColumnInfo {
                        name: c["name"].as_str().unwrap_or("").to_owned(),
                        data_type: c["type_text"]
                            .as_str()
                            .or(c["type_name"].as_str())
                            .unwrap_or("")
                            .to_owned(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            columns,
            rows: Vec::new(),
            truncated: manifest["truncated"].as_bool().unwrap_or(false),
        }
    }

    /// Adds one chunk's rows (`data_array`; nulls are JSON null).
    fn append(&mut self, chunk: &Value) {
        let Some(rows) = chunk["data_array"].as_array() else {
            return;
        };
        self.rows.extend(rows.iter().map(|row| {
            row.as_array()
                .map(|cells| {
                    cells
                        .iter()
                        .map(|c| c.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default()
        }));
    }

    pub fn numbers(&self) -> Vec<u64> {
        self.rows
            .first()
            .map(|r| {
                r.iter()
                    .map(|c| c.as_deref().and_then(|s| s.parse().ok()).unwrap_or(0))
                    .collect()
            })
            .unwrap_or_default()
    }
}

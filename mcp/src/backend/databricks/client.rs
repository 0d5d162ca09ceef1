//! The Databricks REST client: authentication (PAT or OAuth M2M with a
//! cached token), retries, error mapping, the SQL Statement Execution API,
//! the Files API and the Unity Catalog tables API. It knows nothing about
//! bronze or silver; [`super::lakehouse`] does.
//!
//! Statements are submitted with a `wait_timeout`, then polled to a terminal
//! state; a statement that fails in the warehouse still answers HTTP 200 with
//! state FAILED, which is an error here. 429/503 back off (honouring
//! `Retry-After`), other 5xx retry with backoff, and our own deadline cancels
//! the statement.

use crate::backend::ColumnInfo;
use crate::config::DatabricksAuth;
use crate::domain::{Ident, TableName};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

const MAX_ATTEMPTS: u32 = 5;
/// Refresh OAuth tokens this long before they expire.
const TOKEN_MARGIN: Duration = Duration::from_secs(120);

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
        code: String,
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
}

impl DatabricksError {
    /// What an MCP caller may be told: our sentence for the service's error
    /// code, never the warehouse's own text (it can quote SQL and paths).
    pub fn summary(&self) -> String {
        match self {
            Self::Api { code, status, .. } => {
                format!("Databricks: {} (HTTP {status}, {code})", explain(code))
            }
            Self::Statement { state, code, .. } => {
                format!(
                    "Databricks: the statement ended {state}: {} ({code})",
                    explain(code)
                )
            }
            Self::Timeout(secs) => {
                format!(
                    "Databricks: the statement did not finish within {secs} s and was cancelled"
                )
            }
            Self::Transport(_) => "Databricks could not be reached".to_owned(),
            Self::Protocol(_) => "Databricks answered in an unexpected form".to_owned(),
            Self::OAuth(_) => "Databricks refused the OAuth token request".to_owned(),
        }
    }

    /// Whether the same call may succeed later. Every failure counts as
    /// passing: the client has already retried what the SDKs retry, and what
    /// is left (a warehouse still starting, a token being rotated, a missing
    /// grant being added) may be fixed by the next sync attempt.
    pub fn retryable(&self) -> bool {
        true
    }
}

/// A clear sentence for the error codes callers actually meet.
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
        "TEMPORARILY_UNAVAILABLE" | "REQUEST_LIMIT_EXCEEDED" => {
            "Databricks is throttling requests; try again later"
        }
        "RESOURCE_EXHAUSTED" => "the warehouse is out of capacity; try again later",
        "ALREADY_EXISTS" => "the object already exists",
        "CANCELLED" | "CANCELED" => "the statement was cancelled",
        _ => "Databricks reported an error",
    }
}

fn api_error(status: StatusCode, body: &str) -> DatabricksError {
    let parsed: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let code = parsed["error_code"]
        .as_str()
        .unwrap_or("UNKNOWN")
        .to_owned();
    let detail = parsed["message"]
        .as_str()
        .unwrap_or("")
        .chars()
        .take(300)
        .collect::<String>();
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

impl DatabricksClient {
    pub fn new(host: &str, auth: DatabricksAuth) -> Result<Self, DatabricksError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(15))
            .timeout(Duration::from_secs(600))
            .build()
            .map_err(|e| DatabricksError::Transport(e.to_string()))?;
        Ok(Self {
            http,
            host: host.trim_end_matches('/').to_owned(),
            auth,
            token: tokio::sync::Mutex::new(None),
            backoff: Duration::from_millis(500),
        })
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
        let response = self
            .http
            .post(format!("{}/oidc/v1/token", self.host))
            .basic_auth(client_id, Some(secret.expose_secret()))
            .form(&[("grant_type", "client_credentials"), ("scope", "all-apis")])
            .send()
            .await
            .map_err(|e| DatabricksError::OAuth(e.to_string()))?;
        if !response.status().is_success() {
            return Err(DatabricksError::OAuth(format!(
                "HTTP {}",
                response.status().as_u16()
            )));
        }
        let body: TokenResponse = response
            .json()
            .await
            .map_err(|e| DatabricksError::OAuth(e.to_string()))?;
        let lifetime = Duration::from_secs(body.expires_in.unwrap_or(3600));
        let value = SecretString::from(body.access_token);
        *cached = Some(CachedToken {
            value: value.clone(),
            refresh_at: Instant::now() + lifetime.saturating_sub(TOKEN_MARGIN),
        });
        Ok(value)
    }

    /// Sends one API call with auth, retrying throttling, 5xx and one
    /// expired OAuth token. Returns the status and body text of a success.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Body<'_>,
    ) -> Result<(StatusCode, String), DatabricksError> {
        let url = format!("{}{path}", self.host);
        let mut refreshed = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let token = self.bearer(false).await?;
            let mut request = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(token.expose_secret());
            request = match body {
                Body::None => request,
                Body::Json(v) => request.json(v),
                Body::File(path) => {
                    let file = tokio::fs::File::open(path).await.map_err(|e| {
                        DatabricksError::Transport(format!("reading the staged file: {e}"))
                    })?;
                    let len = file.metadata().await.map(|m| m.len()).unwrap_or(0);
                    request
                        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                        .header(reqwest::header::CONTENT_LENGTH, len)
                        .body(reqwest::Body::wrap_stream(
                            tokio_util::io::ReaderStream::new(file),
                        ))
                }
            };
            let response = match request.send().await {
                Ok(r) => r,
                Err(e) if attempt < MAX_ATTEMPTS && (e.is_connect() || e.is_timeout()) => {
                    tokio::time::sleep(self.backoff * 2u32.pow(attempt - 1)).await;
                    continue;
                }
                Err(e) => return Err(DatabricksError::Transport(e.to_string())),
            };
            let status = response.status();
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            let text = response
                .text()
                .await
                .map_err(|e| DatabricksError::Transport(e.to_string()))?;
            if status.is_success() {
                return Ok((status, text));
            }
            if status == StatusCode::UNAUTHORIZED
                && matches!(self.auth, DatabricksAuth::OAuth { .. })
                && !refreshed
            {
                // The cached token expired early or was revoked: one fresh try.
                refreshed = true;
                self.bearer(true).await?;
                continue;
            }
            let throttled = status == StatusCode::TOO_MANY_REQUESTS
                || status == StatusCode::SERVICE_UNAVAILABLE;
            if attempt < MAX_ATTEMPTS && (throttled || status.is_server_error()) {
                let wait = match retry_after {
                    Some(secs) if throttled => Duration::from_secs(secs.min(60)),
                    _ => self.backoff * 2u32.pow(attempt - 1),
                };
                tracing::warn!(
                    status = status.as_u16(),
                    ?wait,
                    attempt,
                    "Databricks asked us to retry"
                );
                tokio::time::sleep(wait).await;
                continue;
            }
            return Err(api_error(status, &text));
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
        let started = Instant::now();
        let request = json!({
            "warehouse_id": warehouse_id,
            "catalog": catalog,
            "statement": statement,
            "wait_timeout": "30s",
            "on_wait_timeout": "CONTINUE",
            "disposition": "INLINE",
            "format": "JSON_ARRAY",
        });
        let mut response = self
            .json(
                Method::POST,
                "/api/2.0/sql/statements",
                Body::Json(&request),
            )
            .await?;
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
                "SUCCEEDED" => return Ok(StatementResult::from_response(&response)),
                "PENDING" | "RUNNING" => {}
                _ => {
                    let error = &response["status"]["error"];
                    let code = error["error_code"].as_str().unwrap_or("UNKNOWN").to_owned();
                    let detail = error["message"]
                        .as_str()
                        .unwrap_or("")
                        .chars()
                        .take(400)
                        .collect::<String>();
                    return Err(DatabricksError::Statement {
                        message: if detail.is_empty() {
                            explain(&code).to_owned()
                        } else {
                            format!("{}: {detail}", explain(&code))
                        },
                        state,
                        code,
                    });
                }
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

    pub async fn upload(
        &self,
        volume_path: &str,
        file: &std::path::Path,
    ) -> Result<(), DatabricksError> {
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

    pub async fn list_tables(
        &self,
        catalog: &Ident,
        schema: &Ident,
    ) -> Result<Vec<UcTable>, DatabricksError> {
        let path =
            format!("/api/2.1/unity-catalog/tables?catalog_name={catalog}&schema_name={schema}");
        match self.json(Method::GET, &path, Body::None).await {
            Ok(v) => {
                let tables = v.get("tables").cloned().unwrap_or(Value::Array(vec![]));
                serde_json::from_value(tables).map_err(|e| DatabricksError::Protocol(e.to_string()))
            }
            Err(DatabricksError::Api { status: 404, .. }) => Ok(vec![]),
            Err(e) => Err(e),
        }
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
}

impl StatementResult {
    fn from_response(v: &Value) -> Self {
        let columns = v["manifest"]["schema"]["columns"]
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
        let rows = v["result"]["data_array"]
            .as_array()
            .map(|rows| {
                rows.iter()
                    .map(|row| {
                        row.as_array()
                            .map(|cells| {
                                cells
                                    .iter()
                                    .map(|c| c.as_str().map(str::to_owned))
                                    .collect()
                            })
                            .unwrap_or_default()
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self { columns, rows }
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

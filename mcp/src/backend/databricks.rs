//! Databricks Unity Catalog through its REST APIs: the Files API stages the
//! Parquet file in a volume, the SQL Statement Execution API runs every
//! statement, and the Unity Catalog tables API answers status questions.
//!
//! Statements are submitted with a `wait_timeout`, then polled to a terminal
//! state; a statement that fails in the warehouse still answers HTTP 200 with
//! state FAILED, which is an error here. 429/503 back off (honouring
//! `Retry-After`), other 5xx retry with backoff, and our own deadline cancels
//! the statement.

use super::{
    layer_of, silver_name_for, BronzeRequest, BronzeResult, ColumnInfo, DatasetStatus, LakeResult,
    Lakehouse, QueryRequest, QueryResult, SilverColumn, SilverResult, TableDescription, TableList,
    TableStatus, TableSummary,
};
use crate::config::{DatabricksAuth, DatabricksSettings};
use crate::domain::{DatasetId, Ident, TableName, TenantId};
use crate::error::{BackendError, ToolError};
use crate::plan::{self, Dialect, SilverPlan, SourceColumn, BRONZE_LINEAGE};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use time::OffsetDateTime;

const D: Dialect = Dialect::Databricks;
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
    pub async fn execute(
        &self,
        warehouse_id: &str,
        statement: &str,
        deadline: Duration,
    ) -> Result<StatementResult, DatabricksError> {
        let started = Instant::now();
        let request = json!({
            "warehouse_id": warehouse_id,
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
    fn data_type(&self) -> String {
        self.type_text
            .clone()
            .or_else(|| self.type_name.clone())
            .unwrap_or_default()
            .to_ascii_uppercase()
    }
}

fn millis_to_rfc3339(ms: i64) -> Option<String> {
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

    fn numbers(&self) -> Vec<u64> {
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

pub struct DatabricksLakehouse {
    client: DatabricksClient,
    settings: DatabricksSettings,
}

fn backend(e: DatabricksError) -> ToolError {
    ToolError::Backend(BackendError::Databricks(e))
}

impl DatabricksLakehouse {
    pub fn new(settings: DatabricksSettings) -> Result<Self, DatabricksError> {
        Ok(Self {
            client: DatabricksClient::new(&settings.host, settings.auth.clone())?,
            settings,
        })
    }

    /// For tests: shorter backoff against the contract double.
    pub fn with_backoff(mut self, backoff: Duration) -> Self {
        self.client.backoff = backoff;
        self
    }

    async fn run(&self, sql: &str) -> Result<StatementResult, ToolError> {
        let deadline = Duration::from_secs(self.settings.statement_timeout_secs);
        self.client
            .execute(&self.settings.warehouse_id, sql, deadline)
            .await
            .map_err(backend)
    }

    fn volume_path(&self, tenant: &TenantId, dataset: &DatasetId, version: u32) -> String {
        format!(
            "/Volumes/{}/{}/{}/{}/v{version}/data.parquet",
            self.settings.catalog,
            tenant.bronze_schema(),
            self.settings.volume,
            dataset.as_str()
        )
    }

    /// The bronze CTAS. Unity Catalog forbids tables defined on /Volumes
    /// paths, so bronze copies the staged file with `read_files`; with an
    /// external location it is an EXTERNAL table there instead.
    pub fn bronze_sql(&self, table: &TableName, dataset_id: &str, volume_path: &str) -> String {
        let location = self
            .settings
            .external_location
            .as_ref()
            .map(|base| {
                format!(
                    " LOCATION {}",
                    D.literal(&format!("{base}/{}/{}", table.schema, table.table))
                )
            })
            .unwrap_or_default();
        format!(
            "CREATE OR REPLACE TABLE {}{location} AS SELECT *, {} AS {}, _metadata.file_path AS {} FROM read_files({}, format => 'parquet')",
            D.table(table),
            D.literal(dataset_id),
            D.ident(plan::DATASET_ID_COLUMN),
            D.ident(plan::SOURCE_FILE_COLUMN),
            D.literal(volume_path)
        )
    }

    async fn create_bronze_impl(&self, req: BronzeRequest) -> Result<BronzeResult, ToolError> {
        let catalog = &self.settings.catalog;
        for schema in [req.tenant.bronze_schema(), req.tenant.silver_schema()] {
            self.run(&format!(
                "CREATE SCHEMA IF NOT EXISTS {}.{}",
                D.ident(catalog.as_str()),
                D.ident(schema.as_str())
            ))
            .await?;
        }
        self.run(&format!(
            "CREATE VOLUME IF NOT EXISTS {}.{}.{}",
            D.ident(catalog.as_str()),
            D.ident(req.tenant.bronze_schema().as_str()),
            D.ident(self.settings.volume.as_str())
        ))
        .await?;
        let volume_path = self.volume_path(&req.tenant, &req.dataset, req.version.get());
        self.client
            .upload(&volume_path, &req.download)
            .await
            .map_err(backend)?;
        let table = TableName::new(
            catalog.clone(),
            req.tenant.bronze_schema(),
            req.table.clone(),
        );
        self.run(&self.bronze_sql(&table, req.dataset.as_str(), &volume_path))
            .await?;
        let row_count = self
            .run(&format!("SELECT count(*) FROM {}", D.table(&table)))
            .await?
            .numbers()
            .first()
            .copied()
            .unwrap_or(0);
        let columns = self
            .client
            .get_table(&table)
            .await
            .map_err(backend)?
            .map(|t| {
                t.columns
                    .iter()
                    .map(|c| ColumnInfo {
                        name: c.name.clone(),
                        data_type: c.data_type(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(BronzeResult {
            bronze_table: table.to_string(),
            volume_path,
            row_count,
            columns,
        })
    }

    async fn silver_impl(
        &self,
        tenant: TenantId,
        bronze: TableName,
    ) -> Result<SilverResult, ToolError> {
        let silver = silver_name_for(&self.settings.catalog, &tenant, &bronze)?;
        let source = self
            .client
            .get_table(&bronze)
            .await
            .map_err(backend)?
            .ok_or_else(|| ToolError::NotFound(bronze.to_string()))?;
        let strings: Vec<String> = source
            .columns
            .iter()
            .filter(|c| {
                D.is_string_type(&c.data_type()) && !BRONZE_LINEAGE.contains(&c.name.as_str())
            })
            .map(|c| c.name.clone())
            .collect();
        let values = self
            .run(&plan::stats_sql(D, &bronze, &strings))
            .await?
            .numbers();
        let stats = plan::stats_from_row(&values, strings.len()).ok_or_else(|| {
            ToolError::Backend(BackendError::Unexpected(
                "statistics row has the wrong width".into(),
            ))
        })?;
        let mut stats: std::collections::HashMap<_, _> =
            strings.iter().cloned().zip(stats).collect();
        let source_columns: Vec<SourceColumn> = source
            .columns
            .iter()
            .map(|c| SourceColumn {
                name: c.name.clone(),
                data_type: c.data_type(),
                stats: stats.remove(&c.name),
            })
            .collect();
        let ingested_at = OffsetDateTime::now_utc()
            .format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]:[second].[subsecond digits:6]"
            ))
            .unwrap_or_default();
        let plan = SilverPlan::new(bronze, silver.clone(), ingested_at, &source_columns);
        self.run(&plan.create_sql(D)).await?;
        let counts = self.run(&plan.null_counts_sql(D)).await?.numbers();
        let typed = self.client.get_table(&silver).await.map_err(backend)?;
        let type_of = |name: &str| {
            typed
                .as_ref()
                .and_then(|t| t.columns.iter().find(|c| c.name == name))
                .map(UcColumn::data_type)
                .unwrap_or_default()
        };
        let row_count = counts.first().copied().unwrap_or(0);
        let mut columns: Vec<SilverColumn> = plan
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| SilverColumn {
                name: c.target.to_string(),
                data_type: type_of(c.target.as_str()),
                source_column: Some(c.source.clone()),
                null_count: counts.get(i + 1).copied().unwrap_or(0),
            })
            .collect();
        columns.extend(plan::LINEAGE_COLUMNS.iter().map(|l| SilverColumn {
            name: (*l).to_owned(),
            data_type: type_of(l),
            source_column: None,
            null_count: 0,
        }));
        Ok(SilverResult {
            silver_table: silver.to_string(),
            row_count,
            columns,
            duplicates_removed: values
                .first()
                .copied()
                .unwrap_or(0)
                .saturating_sub(row_count),
        })
    }

    async fn status_impl(
        &self,
        tenant: TenantId,
        dataset: DatasetId,
    ) -> Result<DatasetStatus, ToolError> {
        let suffix = format!("_{}", dataset.short_id());
        let mut status = DatasetStatus {
            dataset_id: dataset.to_string(),
            bronze: TableStatus::default(),
            silver: TableStatus::default(),
        };
        for (schema, slot) in [
            (tenant.bronze_schema(), &mut status.bronze),
            (tenant.silver_schema(), &mut status.silver),
        ] {
            let tables = self
                .client
                .list_tables(&self.settings.catalog, &schema)
                .await
                .map_err(backend)?;
            let Some(found) = tables.into_iter().find(|t| t.name.ends_with(&suffix)) else {
                continue;
            };
            let name = TableName::new(
                self.settings.catalog.clone(),
                schema,
                Ident::parse(&found.name)?,
            );
            let detail = self.client.get_table(&name).await.map_err(backend)?;
            let rows = self
                .run(&format!("SELECT count(*) FROM {}", D.table(&name)))
                .await?
                .numbers();
            *slot = TableStatus {
                exists: true,
                full_name: Some(name.to_string()),
                row_count: rows.first().copied(),
                updated_at: detail
                    .and_then(|d| d.updated_at)
                    .and_then(millis_to_rfc3339),
            };
        }
        Ok(status)
    }

    async fn list_impl(&self, tenant: TenantId) -> Result<TableList, ToolError> {
        let mut tables = Vec::new();
        for schema in [tenant.bronze_schema(), tenant.silver_schema()] {
            let layer = layer_of(&tenant, &schema).unwrap_or("");
            for t in self
                .client
                .list_tables(&self.settings.catalog, &schema)
                .await
                .map_err(backend)?
            {
                let Ok(table) = Ident::parse(&t.name) else {
                    continue;
                };
                tables.push(TableSummary {
                    full_name: TableName::new(self.settings.catalog.clone(), schema.clone(), table)
                        .to_string(),
                    layer: layer.to_owned(),
                    table_type: t.table_type.unwrap_or_default(),
                });
            }
        }
        Ok(TableList { tables })
    }

    async fn describe_impl(&self, table: TableName) -> Result<TableDescription, ToolError> {
        let found = self
            .client
            .get_table(&table)
            .await
            .map_err(backend)?
            .ok_or_else(|| ToolError::NotFound(table.to_string()))?;
        Ok(TableDescription {
            full_name: table.to_string(),
            table_type: found.table_type.clone().unwrap_or_default(),
            columns: found
                .columns
                .iter()
                .map(|c| ColumnInfo {
                    name: c.name.clone(),
                    data_type: c.data_type(),
                })
                .collect(),
            row_count: None,
            storage_location: found.storage_location.clone(),
            updated_at: found.updated_at.and_then(millis_to_rfc3339),
        })
    }

    async fn query_impl(&self, request: QueryRequest) -> Result<QueryResult, ToolError> {
        let catalog = self.settings.catalog.clone();
        let tenant = request.tenant.clone();
        let raw = request.sql.clone();
        // The guard parses with DuckDB; Spark's backticks become DuckDB quotes
        // for the check only. Anything DuckDB cannot parse is refused.
        let sql = tokio::task::spawn_blocking(move || {
            let conn =
                duckdb::Connection::open_in_memory().map_err(|e| ToolError::Backend(e.into()))?;
            crate::query_guard::check(&conn, &catalog, &tenant, &raw.replace('`', "\""))
                .map_err(|e| ToolError::QueryRejected(e.to_string()))?;
            Ok::<_, ToolError>(
                raw.trim()
                    .trim_end_matches(|c: char| c == ';' || c.is_whitespace())
                    .to_owned(),
            )
        })
        .await
        .map_err(|_| ToolError::Backend(BackendError::Join))??;
        let limit = request.limit;
        let wrapped = format!(
            "SELECT * FROM (\n{sql}\n) AS q LIMIT {}",
            u64::from(limit) + 1
        );
        let result = self
            .client
            .execute(&self.settings.warehouse_id, &wrapped, request.timeout)
            .await
            .map_err(|e| match e {
                DatabricksError::Timeout(s) => ToolError::Timeout(s),
                e => backend(e),
            })?;
        let truncated = result.rows.len() > limit as usize;
        let rows: Vec<Value> = result
            .rows
            .iter()
            .take(limit as usize)
            .map(|row| {
                Value::Object(
                    result
                        .columns
                        .iter()
                        .zip(row)
                        .map(|(c, v)| {
                            (c.name.clone(), v.clone().map_or(Value::Null, Value::String))
                        })
                        .collect(),
                )
            })
            .collect();
        Ok(QueryResult {
            columns: result.columns,
            row_count: rows.len() as u64,
            rows,
            truncated,
        })
    }
}

impl Lakehouse for DatabricksLakehouse {
    fn catalog(&self) -> &Ident {
        &self.settings.catalog
    }

    fn create_bronze(&self, request: BronzeRequest) -> LakeResult<'_, BronzeResult> {
        Box::pin(self.create_bronze_impl(request))
    }

    fn transform_to_silver(
        &self,
        tenant: TenantId,
        bronze: TableName,
    ) -> LakeResult<'_, SilverResult> {
        Box::pin(self.silver_impl(tenant, bronze))
    }

    fn dataset_status(
        &self,
        tenant: TenantId,
        dataset: DatasetId,
    ) -> LakeResult<'_, DatasetStatus> {
        Box::pin(self.status_impl(tenant, dataset))
    }

    fn list_tables(&self, tenant: TenantId) -> LakeResult<'_, TableList> {
        Box::pin(self.list_impl(tenant))
    }

    fn describe_table(&self, table: TableName) -> LakeResult<'_, TableDescription> {
        Box::pin(self.describe_impl(table))
    }

    fn query(&self, request: QueryRequest) -> LakeResult<'_, QueryResult> {
        Box::pin(self.query_impl(request))
    }
}

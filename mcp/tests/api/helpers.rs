//! Test harness: the real server on port 0 with its own temporary lakehouse,
//! a file server standing in for the app's internal listener (its
//! `MCP_INTERNAL_BASE_URL`; the app's own signed links are tested in the
//! server's suite), and an rmcp client.

use axum::{
    extract::{Path, State},
    http::{header, HeaderMap, StatusCode},
    response::IntoResponse,
    routing::get,
    Router,
};
use rmcp::{
    service::RunningService,
    transport::{
        streamable_http_client::StreamableHttpClientTransportConfig, StreamableHttpClientTransport,
    },
    RoleClient, ServiceExt,
};
use serde_json::{json, Value};
use servicetsunami_mcp::{config::Settings, startup::Application};
use std::collections::HashMap;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

pub const API_KEY: &str = "test-key-0123456789abcdef";

pub struct TestApp {
    pub mcp_url: String,
    pub base_url: String,
    pub files: FileServer,
    pub lakehouse: tempfile::TempDir,
    stop: CancellationToken,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

pub async fn spawn_app_with(extra: &[(&str, &str)]) -> TestApp {
    spawn_app_at(tempfile::tempdir().unwrap(), extra).await
}

/// The server on an existing lakehouse directory.
pub async fn spawn_app_at(lakehouse: tempfile::TempDir, extra: &[(&str, &str)]) -> TestApp {
    let mut vars: HashMap<String, String> = HashMap::from([
        ("MCP_API_KEY".into(), API_KEY.into()),
        ("MCP_BIND_ADDR".into(), "127.0.0.1:0".into()),
        (
            "LAKEHOUSE_PATH".into(),
            lakehouse.path().to_string_lossy().into_owned(),
        ),
    ]);
    let files = FileServer::start().await;
    vars.insert("MCP_INTERNAL_BASE_URL".into(), files.url.clone());
    // This test binary is not the server: queries run in the real one.
    vars.insert(
        "MCP_QUERY_WORKER_PROGRAM".into(),
        env!("CARGO_BIN_EXE_servicetsunami-mcp").into(),
    );
    for (k, v) in extra {
        vars.insert((*k).into(), (*v).into());
    }
    let settings = Settings::from_lookup(move |k| vars.get(k).cloned()).expect("test settings");
    let app = Application::build(settings).await.expect("build app");
    let addr = app.addr();
    let stop = app.shutdown_token();
    tokio::spawn(app.run_until_stopped());
    TestApp {
        mcp_url: format!("http://{addr}/mcp"),
        base_url: format!("http://{addr}"),
        files,
        lakehouse,
        stop,
    }
}

impl TestApp {
    pub async fn client(&self) -> RunningService<RoleClient, ()> {
        self.client_with_key(API_KEY)
            .await
            .expect("client connects")
    }

    pub async fn client_with_key(
        &self,
        key: &str,
    ) -> Result<RunningService<RoleClient, ()>, String> {
        let config =
            StreamableHttpClientTransportConfig::with_uri(self.mcp_url.clone()).auth_header(key);
        let transport = StreamableHttpClientTransport::from_config(config);
        ().serve(transport).await.map_err(|e| e.to_string())
    }
}

/// Calls a tool; returns the structured result or the tool error text.
pub async fn call(
    client: &RunningService<RoleClient, ()>,
    tool: &str,
    args: Value,
) -> Result<Value, String> {
    match contract::client::call_on(client, tool, args).await {
        Ok(output) => Ok(output),
        Err(contract::client::CallError::Tool { message, .. }) => Err(message),
        Err(other) => panic!("protocol-level failure: {other}"),
    }
}

/// Serves generated files where the app serves datasets
/// (`/internal/storage/datasets/{name}`), and records every request's
/// `Authorization` header (the MCP server must send none).
pub struct FileServer {
    pub url: String,
    dir: Arc<tempfile::TempDir>,
    pub authorizations: Arc<std::sync::Mutex<Vec<String>>>,
}

#[derive(Clone)]
struct Served {
    dir: Arc<tempfile::TempDir>,
    authorizations: Arc<std::sync::Mutex<Vec<String>>>,
}

impl FileServer {
    pub async fn start() -> Self {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let authorizations = Arc::new(std::sync::Mutex::new(Vec::new()));
        let router = Router::new()
            .route("/internal/storage/datasets/{name}", get(serve_file))
            .route("/elsewhere/{name}", get(serve_file))
            .with_state(Served {
                dir: dir.clone(),
                authorizations: authorizations.clone(),
            });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self {
            url,
            dir,
            authorizations,
        }
    }

    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    pub fn url_of(&self, name: &str) -> String {
        format!("{}/internal/storage/datasets/{name}", self.url)
    }

    /// Writes a Parquet file produced by a DuckDB query.
    pub fn parquet(&self, name: &str, select: &str) -> String {
        let conn = duckdb::Connection::open_in_memory().unwrap();
        let path = self.path(name);
        conn.execute_batch(&format!(
            "COPY ({select}) TO '{}' (FORMAT parquet)",
            path.to_string_lossy().replace('\'', "''")
        ))
        .unwrap();
        self.url_of(name)
    }
}

async fn serve_file(
    State(served): State<Served>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> impl IntoResponse {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        served
            .authorizations
            .lock()
            .unwrap()
            .push(value.to_str().unwrap_or("?").to_owned());
    }
    if name == "redirect.parquet" {
        return (
            StatusCode::FOUND,
            [(header::LOCATION, "/elsewhere/messy.parquet")],
            Vec::new(),
        )
            .into_response();
    }
    match std::fs::read(served.dir.path().join(&name)) {
        Ok(bytes) => (StatusCode::OK, bytes).into_response(),
        Err(_) => (StatusCode::NOT_FOUND, Vec::new()).into_response(),
    }
}

/// A messy dataset exercising every silver rule; 6 rows, two of which
/// become exact duplicates once trimmed. Null tokens include a database
/// export's `\N`.
pub const MESSY_SELECT: &str = "SELECT * FROM (VALUES
    ('007', '12.50', '1',  'yes',  '2024-01-31', '2024-01-31 10:00:00', '  hello ', 1.5::DOUBLE, 'Ann'),
    ('010', ' 3.25 ', '2', 'no',   '2024-02-29', '2024-02-29T11:30:00', 'n/a',       2.5::DOUBLE, 'Bob'),
    ('123', 'N/A',   '-',  'NULL', '',           'NaN',                 'x',         NULL,        'Cy'),
    ('123', 'N/A',   '-',  'NULL', '',           'NaN',                 ' x ',       NULL,        'Cy'),
    ('042', '7',     '30', 'y',    '2023-12-01', '2023-12-01 00:00:00', 'NA',        4.0::DOUBLE, 'Di'),
    ('099', '-1.5',  '4',  'n',    '2023-12-02', '2023-12-02 23:59:59', '\\N',       5.0::DOUBLE, 'Ed')
  ) AS t(\"Customer ID\", \"Amount\", \"Qty\", \"Is Active\", \"SignupDate\", \"Last Seen At\", \"Note\", \"score\", \"name \")";

pub fn create_args(tenant: &str, dataset_id: &str, name: &str, url: &str) -> Value {
    json!({
        "tenant_id": tenant,
        "dataset_id": dataset_id,
        "dataset_name": name,
        "parquet_url": url,
        "schema": {},
    })
}

/// A sync as the app's workflow makes it: `create_dataset` of the Parquet
/// file at `url` (version 1), then `transform_to_silver` of its bronze
/// table. The two tools' answers, bronze's then silver's.
pub async fn bronze_and_silver(
    client: &RunningService<RoleClient, ()>,
    tenant: &str,
    dataset_id: &str,
    name: &str,
    url: &str,
) -> (Value, Value) {
    let bronze = call(
        client,
        "create_dataset",
        create_args(tenant, dataset_id, name, url),
    )
    .await
    .unwrap_or_else(|e| panic!("create_dataset {tenant}/{dataset_id}: {e}"));
    let silver = call(
        client,
        "transform_to_silver",
        json!({"tenant_id": tenant, "bronze_table": bronze["bronze_table"]}),
    )
    .await
    .unwrap_or_else(|e| panic!("transform_to_silver {tenant}/{dataset_id}: {e}"));
    (bronze, silver)
}

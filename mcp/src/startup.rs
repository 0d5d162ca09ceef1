//! Wires the HTTP server: `/mcp` (rmcp Streamable HTTP, behind the bearer
//! check), `GET /healthz`, graceful shutdown. `Application::build` binds
//! first and records the real port, so tests can ask for port 0.

use crate::backend::{databricks::DatabricksLakehouse, local::LocalLakehouse, Lakehouse};
use crate::config::{BackendSettings, Settings};
use crate::tools::{Context, LakehouseTools};
use anyhow::Context as _;
use axum::{
    extract::{Request, State},
    http::{header, StatusCode},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use contract::{process::bearer_matches, ErrorBody};
use rmcp::transport::streamable_http_server::{
    session::local::LocalSessionManager, StreamableHttpServerConfig, StreamableHttpService,
};
use secrecy::SecretString;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub struct Application {
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: CancellationToken,
    addr: SocketAddr,
}

/// Builds the configured lakehouse.
pub fn build_lakehouse(settings: &Settings) -> anyhow::Result<Arc<dyn Lakehouse>> {
    Ok(match &settings.backend {
        BackendSettings::Local { path, catalog } => Arc::new(
            LocalLakehouse::open(path, catalog.clone()).with_context(|| {
                format!(
                    "Failed to open the local lakehouse at {} (LAKEHOUSE_PATH)",
                    path.display()
                )
            })?,
        ),
        BackendSettings::Databricks(d) => Arc::new(
            DatabricksLakehouse::new(d.clone())
                .context("Failed to set up the Databricks client")?,
        ),
    })
}

fn scratch_dir(settings: &Settings) -> std::path::PathBuf {
    match &settings.backend {
        // Downloads land next to the volumes so staging is a rename.
        BackendSettings::Local { path, .. } => path.join("tmp"),
        BackendSettings::Databricks(_) => std::env::temp_dir().join("servicetsunami-mcp"),
    }
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let lakehouse = build_lakehouse(&settings)?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(120))
            .build()
            .context("Failed to build the HTTP client")?;
        let ctx = Arc::new(Context {
            lakehouse,
            http,
            api_key: settings.api_key.clone(),
            max_download_bytes: settings.max_download_bytes,
            scratch_dir: scratch_dir(&settings),
            query_timeout: Duration::from_secs(settings.query_timeout_secs),
            query_max_rows: settings.query_max_rows,
        });
        let shutdown = CancellationToken::new();
        let mcp = StreamableHttpService::new(
            move || Ok(LakehouseTools::new(ctx.clone())),
            LocalSessionManager::default().into(),
            StreamableHttpServerConfig::default()
                .with_allowed_hosts(settings.allowed_hosts.clone())
                .with_cancellation_token(shutdown.child_token()),
        );
        let router = Router::new()
            .nest_service("/mcp", mcp)
            .layer(middleware::from_fn_with_state(
                Arc::new(settings.api_key.clone()),
                require_bearer,
            ))
            .route("/healthz", get(|| async { "ok" }));
        let listener = tokio::net::TcpListener::bind(settings.bind_addr)
            .await
            .with_context(|| format!("Failed to bind {} (MCP_BIND_ADDR)", settings.bind_addr))?;
        let addr = listener.local_addr()?;
        Ok(Self {
            listener,
            router,
            shutdown,
            addr,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Cancelling this token stops the server gracefully.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        tracing::info!(addr = %self.addr, "MCP server listening on /mcp");
        let token = self.shutdown.clone();
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(async move { token.cancelled().await })
            .await
            .context("server error")
    }
}

/// Every request under `/mcp` must carry `Authorization: Bearer <MCP_API_KEY>`
/// (compared in constant time); anything else gets 401 with the error envelope.
async fn require_bearer(
    State(key): State<Arc<SecretString>>,
    request: Request,
    next: Next,
) -> Response {
    if bearer_matches(request.headers(), &key) {
        next.run(request).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            Json(ErrorBody::new(
                "unauthorized",
                "a valid bearer token is required (Authorization: Bearer <MCP_API_KEY>)",
            )),
        )
            .into_response()
    }
}

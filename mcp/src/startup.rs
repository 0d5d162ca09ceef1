//! Wires the HTTP server: `/mcp` (rmcp Streamable HTTP, behind the bearer
//! check of [`crate::access`]), `GET /healthz`, graceful shutdown. `Application::build` binds
//! first and records the real port, so tests can ask for port 0.

use crate::access::{require_bearer, Authenticator};
use crate::backend::{databricks::DatabricksLakehouse, local::LocalLakehouse, Lakehouse};
use crate::config::{BackendSettings, Settings};
use crate::tools::{Context, LakehouseTools};
use anyhow::Context as _;
use axum::{middleware, routing::get, Router};
use rmcp::transport::streamable_http_server::{
    session::local::LocalSessionManager, StreamableHttpServerConfig, StreamableHttpService,
};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long open connections may finish after a shutdown signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

pub struct Application {
    limits: contract::serve::ConnectionLimits,
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: CancellationToken,
    addr: SocketAddr,
}

/// Builds the configured lakehouse.
pub fn build_lakehouse(settings: &Settings) -> anyhow::Result<Arc<dyn Lakehouse>> {
    Ok(match &settings.backend {
        BackendSettings::Local {
            path,
            catalog,
            sandbox,
            query_worker,
        } => {
            let lake =
                LocalLakehouse::open(path, catalog.clone(), *sandbox).with_context(|| {
                    format!(
                        "Failed to open the local lakehouse at {} (LAKEHOUSE_PATH)",
                        path.display()
                    )
                })?;
            Arc::new(match query_worker {
                Some(program) => lake.with_query_worker(program.clone()),
                None => lake,
            })
        }
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

/// Downloads a killed process left behind (each call removes its own on
/// every path). The local lakehouse holds its DuckDB file's lock by now, so
/// no other process downloads into its `tmp/`: all of it goes. Databricks'
/// scratch directory may be shared, so there only files older than an hour.
fn clean_scratch(settings: &Settings, dir: &std::path::Path) -> usize {
    let min_age = match settings.backend {
        BackendSettings::Local { .. } => Duration::ZERO,
        BackendSettings::Databricks(_) => Duration::from_secs(3600),
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.filter_map(Result::ok) {
        let old_enough = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age >= min_age);
        let is_ours = entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.starts_with("download-"));
        if is_ours && old_enough && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let lakehouse = build_lakehouse(&settings)?;
        let scratch = scratch_dir(&settings);
        let removed = clean_scratch(&settings, &scratch);
        if removed > 0 {
            tracing::info!(removed, dir = %scratch.display(), "removed downloads left by an earlier process");
        }
        // Downloads follow no redirect: a link must be fetched where it points.
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(120))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("Failed to build the HTTP client")?;
        let ctx = Arc::new(Context {
            lakehouse,
            http,
            internal_base_url: settings.internal_base_url.clone(),
            max_download_bytes: settings.max_download_bytes,
            scratch_dir: scratch,
            query_timeout: Duration::from_secs(settings.query_timeout_secs),
            query_max_rows: settings.query_max_rows,
            query_slots: Arc::new(tokio::sync::Semaphore::new(
                settings.query_max_concurrent as usize,
            )),
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
                Arc::new(Authenticator::new(
                    settings.api_key.clone(),
                    &settings.internal_base_url,
                    Duration::from_secs(settings.token_cache_secs),
                )),
                require_bearer,
            ))
            .route("/healthz", get(|| async { "ok" }));
        let listener = tokio::net::TcpListener::bind(settings.bind_addr)
            .await
            .with_context(|| format!("Failed to bind {} (MCP_BIND_ADDR)", settings.bind_addr))?;
        let addr = listener.local_addr()?;
        Ok(Self {
            limits: contract::serve::ConnectionLimits {
                max_connections: settings.max_connections,
                ..Default::default()
            },
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
        let drained = self.shutdown.clone();
        let served = contract::serve::serve(self.listener, self.router, self.limits, async move {
            token.cancelled().await
        });
        // Open connections get a while to finish, not forever.
        tokio::select! {
            () = served => {}
            () = async move {
                drained.cancelled().await;
                tokio::time::sleep(SHUTDOWN_GRACE).await;
            } => tracing::warn!("connections still open after the shutdown grace; closing them"),
        }
        Ok(())
    }
}

//! Assembles the application: database, migrations, storage, state, router.

use crate::{
    config::Settings,
    http,
    live::LiveHub,
    sync::{dispatcher::Dispatcher, metrics::SyncMetrics, store::SyncStore, SyncEndpoint},
};
use anyhow::Context;
use app::ssr::{catalog, storage::EngineLimits, AppState, AppStateInner, Storage};
use axum::Router;
use leptos_axum::{generate_route_list, LeptosRoutes};
use secrecy::ExposeSecret;
use sqlx::{postgres::PgPoolOptions, PgPool};
use std::{net::SocketAddr, sync::Arc, time::Duration};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::trace::TraceLayer;

pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
    /// Present when sync is available: the Restate endpoint and the outbox dispatcher.
    sync: Option<(SyncEndpoint, Dispatcher)>,
    live: LiveHub,
    stop: CancellationToken,
}

impl Application {
    /// Connects, migrates, opens storage and binds the listen address (port 0
    /// picks a free port; [`Application::local_addr`] tells which).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let db = connect_and_migrate(&settings).await?;
        let tenant_id = catalog::ensure_default_tenant(&db)
            .await
            .context("Failed to create the default tenant")?;
        let storage = Storage::open(
            &settings.data_storage_path,
            &EngineLimits {
                threads: settings.duckdb_threads,
                memory_limit: settings.duckdb_memory_limit.clone(),
            },
        )
        .with_context(|| {
            format!(
                "Failed to open DATA_STORAGE_PATH {}",
                settings.data_storage_path.display()
            )
        })?;

        let listener = TcpListener::bind(settings.leptos.site_addr)
            .await
            .with_context(|| {
                format!(
                    "Failed to bind LEPTOS_SITE_ADDR {}",
                    settings.leptos.site_addr
                )
            })?;
        let mut leptos_options = settings.leptos.clone();
        leptos_options.site_addr = listener.local_addr()?;

        let metrics = Arc::new(SyncMetrics::default());
        let store = SyncStore::new(db.clone());
        let internal_files = http::internal::InternalFiles::new(
            storage.datasets_dir().to_path_buf(),
            settings.sync.mcp_api_key.clone(),
        );
        let sync = if settings.sync.mode().available {
            let endpoint = SyncEndpoint::bind(
                &settings,
                db.clone(),
                leptos_options.site_addr,
                metrics.clone(),
            )
            .await?;
            let dispatcher = Dispatcher {
                store: store.clone(),
                http: crate::sync::http_client(),
                ingress_url: settings.sync.restate_ingress_url.clone(),
                metrics: metrics.clone(),
            };
            Some((endpoint, dispatcher))
        } else {
            None
        };

        let state = AppState::new(AppStateInner {
            db,
            storage,
            tenant_id,
            leptos_options,
            upload_max_bytes: settings.upload_max_bytes,
            sync: settings.sync.mode(),
            databricks_host: settings.sync.databricks_host.clone(),
        });
        let live = LiveHub::default();
        let stop = CancellationToken::new();
        let extra = Router::new()
            .merge(http::events::router(live.clone(), stop.clone()))
            .merge(http::internal::router(internal_files))
            .merge(http::metrics::router(http::metrics::MetricsState {
                metrics,
                store,
            }));
        let router = router(state.clone(), extra);
        Ok(Self {
            listener,
            router,
            state,
            sync,
            live,
            stop,
        })
    }

    /// The address the Restate endpoint listens on, when sync is available.
    pub fn sync_endpoint_addr(&self) -> Option<SocketAddr> {
        self.sync
            .as_ref()
            .and_then(|(endpoint, _)| endpoint.local_addr().ok())
    }

    /// Cancelling it stops the server as SIGTERM would.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.state.leptos_options.site_addr
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until SIGINT/SIGTERM (or the shutdown token), then lets
    /// in-flight requests finish.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let stop = self.stop.clone();
        let mut background = vec![tokio::spawn(
            self.live.clone().run(self.state.db.clone(), stop.clone()),
        )];
        if let Some((endpoint, dispatcher)) = self.sync {
            background.push(tokio::spawn(endpoint.serve(stop.clone())));
            background.push(tokio::spawn(dispatcher.run(stop.clone())));
        }
        let signalled = stop.clone();
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(async move {
                tokio::select! {
                    () = shutdown_signal() => {},
                    () = signalled.cancelled() => {},
                }
                signalled.cancel();
            })
            .await?;
        stop.cancel();
        for task in background {
            let _ = task.await;
        }
        self.state.db.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

async fn connect_and_migrate(settings: &Settings) -> anyhow::Result<PgPool> {
    let db = PgPoolOptions::new()
        .max_connections(settings.database_max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect(settings.database_url.expose_secret())
        .await
        .context("Failed to connect to DATABASE_URL")?;
    sqlx::migrate!("../migrations")
        .run(&db)
        .await
        .context("Failed to run database migrations")?;
    Ok(db)
}

/// `servicetsunami worker`: only the Restate endpoint (DatasetSync), so sync
/// workers scale apart from the web servers.
pub struct Worker {
    endpoint: SyncEndpoint,
    db: PgPool,
    stop: CancellationToken,
}

impl Worker {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        anyhow::ensure!(
            settings.sync.mode().available,
            "the worker needs DATABRICKS_SYNC_ENABLED=true and MCP_SERVER_URL"
        );
        let db = connect_and_migrate(&settings).await?;
        let endpoint = SyncEndpoint::bind(
            &settings,
            db.clone(),
            settings.leptos.site_addr,
            Arc::new(SyncMetrics::default()),
        )
        .await?;
        Ok(Self {
            endpoint,
            db,
            stop: CancellationToken::new(),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    pub fn shutdown_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    pub async fn run_until_stopped(self) {
        let stop = self.stop.clone();
        tokio::spawn(async move {
            shutdown_signal().await;
            stop.cancel();
        });
        self.endpoint.serve(self.stop).await;
        self.db.close().await;
        tracing::info!("worker stopped");
    }
}

/// The whole HTTP surface: API and operational routes (plus `extra`, routes
/// with state of their own), then the Leptos pages and server functions, then
/// static files.
pub fn router(state: AppState, extra: Router<AppState>) -> Router {
    let routes = generate_route_list(app::App);
    let leptos_options = state.leptos_options.clone();
    Router::new()
        .merge(http::datasets::router())
        .merge(http::health::router())
        .merge(extra)
        .leptos_routes_with_context(
            &state,
            routes,
            || (),
            move || app::shell(leptos_options.clone()),
        )
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(
            app::shell,
        ))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

//! Assembles the application: database, migrations, storage, state, router.

use crate::{config::Settings, http};
use anyhow::Context;
use app::ssr::{catalog, storage::EngineLimits, AppState, AppStateInner, Storage};
use axum::Router;
use leptos_axum::{generate_route_list, LeptosRoutes};
use secrecy::ExposeSecret;
use sqlx::{postgres::PgPoolOptions, PgPool};
use std::{net::SocketAddr, time::Duration};
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
}

impl Application {
    /// Connects, migrates, opens storage and binds the listen address (port 0
    /// picks a free port; [`Application::local_addr`] tells which).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let db = connect(&settings).await?;
        sqlx::migrate!("../migrations")
            .run(&db)
            .await
            .context("Failed to run database migrations")?;
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

        let state = AppState::new(AppStateInner {
            db,
            storage,
            tenant_id,
            leptos_options,
            upload_max_bytes: settings.upload_max_bytes,
            sync_enabled: settings.sync.auto_sync_applies(),
        });
        let router = router(state.clone());
        Ok(Self {
            listener,
            router,
            state,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.state.leptos_options.site_addr
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until SIGINT/SIGTERM, then lets in-flight requests finish.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        axum::serve(self.listener, self.router)
            .with_graceful_shutdown(shutdown_signal())
            .await?;
        self.state.db.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

async fn connect(settings: &Settings) -> anyhow::Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(settings.database_max_connections)
        .acquire_timeout(Duration::from_secs(5))
        .connect(settings.database_url.expose_secret())
        .await
        .context("Failed to connect to DATABASE_URL")
}

/// The whole HTTP surface: API and operational routes, then the Leptos pages
/// and server functions, then static files.
pub fn router(state: AppState) -> Router {
    let routes = generate_route_list(app::App);
    let leptos_options = state.leptos_options.clone();
    Router::new()
        .merge(http::datasets::router())
        .merge(http::health::router())
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

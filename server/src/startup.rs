//! Assembles the application: database, migrations, storage, state, router.

use crate::{
    auth::{
        accounts::{self, FirstAdmin},
        edge::{self, EdgePolicy},
        limiter::LoginLimiter,
        signed_url::UrlSigner,
    },
    catalog,
    config::Settings,
    http,
    live::LiveHub,
    state::{ServerState, ServerStateInner},
    storage::Storage,
    sync::{
        dispatcher::Dispatcher, ledger::Ledger, metrics::SyncMetrics, reconciler::Reconciler,
        SyncEndpoint,
    },
};
use anyhow::Context;
use app::ssr::{AppState, AppStateInner, EngineLimits, SyncControl};
use axum::Router;
use contract::process::shutdown_signal;
use leptos::prelude::provide_context;
use leptos_axum::{generate_route_list, LeptosRoutes};
use secrecy::ExposeSecret;
use sqlx::{postgres::PgPoolOptions, PgPool};
use std::{net::SocketAddr, sync::Arc, time::Duration};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::trace::TraceLayer;
use tower_sessions::{cookie::SameSite, Expiry, SessionManagerLayer};
use tower_sessions_sqlx_store::PostgresStore;

/// A session ends after this many days without a request.
pub const SESSION_IDLE_DAYS: i64 = 14;

pub struct Application {
    listener: TcpListener,
    /// The internal listener (`INTERNAL_ADDR`) and its routes.
    internal: (TcpListener, Router),
    router: Router,
    state: ServerState,
    /// Present when sync is available: the Restate endpoint, the outbox
    /// dispatcher and the invocation reconciler.
    sync: Option<(SyncEndpoint, Dispatcher, Reconciler)>,
    /// `SHUTDOWN_GRACE_SECS`.
    shutdown_grace: Duration,
    /// `HTTP_MAX_CONNECTIONS`, and the header deadline.
    limits: contract::serve::ConnectionLimits,
}

impl Application {
    /// Connects, migrates, opens storage and binds the listen address (port 0
    /// picks a free port; [`Application::local_addr`] tells which).
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        warn_if_files_are_short(settings.http_max_connections);
        let db = connect_and_migrate(&settings).await?;
        let default_tenant = catalog::ensure_default_tenant(&db)
            .await
            .context("Failed to create the default tenant")?;
        let first_admin = settings
            .accounts
            .first_admin
            .as_ref()
            .map(|(email, password)| (email.as_str(), password.expose_secret()));
        match accounts::ensure_first_admin(&db, default_tenant, first_admin)
            .await
            .context("Failed to set up the first admin")?
        {
            FirstAdmin::Exists => {}
            FirstAdmin::Created => tracing::info!("created the first admin from ADMIN_EMAIL"),
            FirstAdmin::Invitation(code) => tracing::warn!(
                link = %format!("{}/signup?invite={code}", settings.accounts.public_url),
                "no account exists yet: open this one-time link (valid 24 h) to create the first admin, \
                 or set ADMIN_EMAIL and ADMIN_PASSWORD"
            ),
        }
        let limits = |memory_limit: &str| EngineLimits {
            threads: settings.duckdb_threads,
            memory_limit: memory_limit.to_owned(),
        };
        let storage = Storage::open(
            &settings.data_storage_path,
            &limits(&settings.duckdb_memory_limit),
        )
        .with_context(|| {
            format!(
                "Failed to open DATA_STORAGE_PATH {}",
                settings.data_storage_path.display()
            )
        })?;
        let reader = storage
            .reader(&limits(&settings.duckdb_read_memory_limit))
            .context("Failed to start the DuckDB reader")?;

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
        let internal_listener = TcpListener::bind(settings.accounts.internal_addr)
            .await
            .with_context(|| {
                format!(
                    "Failed to bind INTERNAL_ADDR {}",
                    settings.accounts.internal_addr
                )
            })?;

        let metrics = Arc::new(SyncMetrics::default());
        // Storage and catalogue agree before anything is served.
        let grace = settings.storage_orphan_grace;
        match crate::storage::reconcile(&db, &storage, grace).await {
            Ok(found) => {
                let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
                metrics.storage_orphans_removed.store(
                    count(found.orphans_removed.len()),
                    std::sync::atomic::Ordering::Relaxed,
                );
                metrics.storage_missing_files.store(
                    count(found.missing.len()),
                    std::sync::atomic::Ordering::Relaxed,
                );
            }
            Err(e) => tracing::warn!(error = %e, "could not reconcile storage with the catalogue"),
        }
        let ledger = Ledger::new(db.clone());
        let sync_mode = settings.sync.mode();
        let sync = if sync_mode.available {
            let endpoint = SyncEndpoint::bind(&settings, db.clone(), metrics.clone()).await?;
            let dispatcher = Dispatcher {
                ledger: ledger.clone(),
                http: crate::sync::http_client(),
                ingress_url: settings.sync.restate_ingress_url.clone(),
                metrics: metrics.clone(),
                retry_attempts: settings.sync.retry_attempts,
                retry_interval: std::time::Duration::from_secs(settings.sync.retry_interval_secs),
            };
            let reconciler = Reconciler {
                ledger: ledger.clone(),
                http: crate::sync::http_client(),
                admin_url: settings.sync.restate_admin_url.clone(),
                every: std::time::Duration::from_secs(settings.sync.reconcile_interval_secs),
                grace: std::time::Duration::from_secs(settings.sync.reconcile_grace_secs),
            };
            Some((endpoint, dispatcher, reconciler))
        } else {
            None
        };

        let removal = Arc::new(crate::removal::Removal {
            ledger: ledger.clone(),
            datasets_dir: storage.datasets_dir().to_path_buf(),
            via_sync: sync_mode.available,
        });
        let app = AppState::new(AppStateInner {
            db,
            reader,
            leptos_options: leptos_options.clone(),
            sync: sync_mode
                .available
                .then(|| Arc::new(ledger) as Arc<dyn SyncControl>),
            removal: removal.clone(),
            query_limits: app::ssr::query::QueryLimits {
                bounds: app::ssr::query::QueryBounds {
                    memory_bytes: settings.query.memory_bytes,
                    threads: settings.query.threads,
                    timeout: std::time::Duration::from_secs(settings.query.timeout_secs),
                    max_rows: settings.query.max_rows,
                    max_download_bytes: settings.query.max_download_bytes,
                },
                slots: Arc::new(tokio::sync::Semaphore::new(settings.query.max_concurrent)),
                workers: Arc::new(contract::isolate::Workers::new(
                    settings.query.worker_program.clone(),
                    &[crate::QUERY_WORKER_COMMAND],
                    contract::isolate::duckdb_cap(settings.query.memory_bytes),
                )),
            },
            lakehouse: if sync_mode.available {
                let (url, key) = crate::sync::mcp_settings(&settings.sync)?;
                Some(Arc::new(crate::sync::lakehouse_query::McpQuery {
                    mcp: contract::client::McpClient::new(url, key, crate::sync::mcp_deadlines()),
                })
                    as Arc<dyn app::ssr::query::LakehouseQuery>)
            } else {
                None
            },
            databricks_host: settings.sync.databricks_host.clone(),
            mcp_public_url: settings.sync.mcp_public_url.clone(),
        });
        // Without MCP_API_KEY nothing is synced, so nothing is signed: a
        // random key then verifies no link at all.
        let signing_secret = settings.sync.mcp_api_key.clone().unwrap_or_else(|| {
            secrecy::SecretString::from(crate::auth::secrets::random_secret(""))
        });
        let state = ServerState::new(ServerStateInner {
            app,
            removal,
            storage,
            upload_max_bytes: settings.upload_max_bytes,
            upload_max_decompressed_bytes: settings.upload_max_decompressed_bytes,
            upload_min_free_disk: settings.upload_min_free_disk,
            upload_idle_timeout: settings.upload_idle_timeout,
            upload_stream_below: settings.upload_stream_below,
            uploads: Arc::new(tokio::sync::Semaphore::new(settings.upload_max_concurrent)),
            upload_max_concurrent: settings.upload_max_concurrent,
            upload_queue_wait: settings.upload_queue_wait,
            sync_mode,
            hub: LiveHub::default(),
            stop: CancellationToken::new(),
            metrics,
            internal_key: settings.sync.mcp_api_key.clone(),
            signer: UrlSigner::new(&signing_secret),
            edge: EdgePolicy::new(
                &settings.accounts.public_url,
                leptos_options.site_addr,
                &settings.accounts.allowed_hosts,
            ),
            login_limiter: LoginLimiter::default(),
            signup_open: settings.accounts.signup_open,
            public_url: settings.accounts.public_url.clone(),
        });
        let router = router(state.clone());
        let internal = http::internal::router()
            .layer(TraceLayer::new_for_http())
            .with_state(state.clone());
        Ok(Self {
            internal: (internal_listener, internal),
            listener,
            router,
            state,
            sync,
            shutdown_grace: settings.shutdown_grace,
            limits: contract::serve::ConnectionLimits {
                max_connections: settings.http_max_connections,
                ..Default::default()
            },
        })
    }

    /// The address the Restate endpoint listens on, when sync is available.
    pub fn sync_endpoint_addr(&self) -> Option<SocketAddr> {
        self.sync
            .as_ref()
            .and_then(|(endpoint, _, _)| endpoint.local_addr().ok())
    }

    /// Cancelling it stops the server as SIGTERM would.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.state.stop.clone()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.state.app.leptos_options.site_addr
    }

    /// The internal listener's address (`INTERNAL_ADDR`; port 0 picks one).
    pub fn internal_addr(&self) -> SocketAddr {
        self.internal
            .0
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn state(&self) -> &ServerState {
        &self.state
    }

    /// Serves until SIGINT/SIGTERM (or the shutdown token), then lets
    /// in-flight requests finish.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let stop = self.state.stop.clone();
        let mut background = vec![
            tokio::spawn(
                self.state
                    .hub
                    .clone()
                    .run(self.state.db().clone(), stop.clone()),
            ),
            tokio::spawn(delete_expired_sessions(
                self.state.db().clone(),
                stop.clone(),
            )),
        ];
        if let Some((endpoint, dispatcher, reconciler)) = self.sync {
            background.push(tokio::spawn(endpoint.serve(stop.clone())));
            background.push(tokio::spawn(dispatcher.run(stop.clone())));
            background.push(tokio::spawn(reconciler.run(stop.clone())));
        }
        let (internal_listener, internal_router) = self.internal;
        let internal_stop = stop.clone();
        let internal_limits = self.limits;
        background.push(tokio::spawn(async move {
            contract::serve::serve(
                internal_listener,
                internal_router,
                internal_limits,
                internal_stop.cancelled_owned(),
            )
            .await;
        }));
        let signalled = stop.clone();
        let serve = contract::serve::serve(self.listener, self.router, self.limits, async move {
            tokio::select! {
                () = shutdown_signal() => {},
                () = signalled.cancelled() => {},
            }
            signalled.cancel();
        });
        // Draining waits for every open connection; a client trickling a
        // body would hold shutdown forever, so it gets SHUTDOWN_GRACE_SECS.
        let grace = self.shutdown_grace;
        let drained = stop.clone();
        tokio::select! {
            () = serve => {}
            () = async move {
                drained.cancelled().await;
                tokio::time::sleep(grace).await;
            } => tracing::warn!(grace_secs = grace.as_secs(), "connections still open after the shutdown grace; closing them"),
        }
        stop.cancel();
        for task in background {
            let _ = task.await;
        }
        self.state.db().close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Hourly: removes sessions past their expiry (they are refused anyway;
/// this keeps the table small).
async fn delete_expired_sessions(db: PgPool, stop: CancellationToken) {
    use tower_sessions::ExpiredDeletion;
    let store = PostgresStore::new(db);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(3600)) => {}
        }
        if let Err(e) = store.delete_expired().await {
            tracing::warn!(error = %e, "deleting expired sessions failed");
        }
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
        let endpoint =
            SyncEndpoint::bind(&settings, db.clone(), Arc::new(SyncMetrics::default())).await?;
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

/// The public HTTP surface: API and account routes, then the Leptos pages
/// and server functions (which get [`AppState`] as context), then static
/// files; all behind the edge (Host, CSRF, principal, headers) and the
/// session layer.
pub fn router(state: ServerState) -> Router {
    let routes = generate_route_list(app::App);
    let leptos_options = state.app.leptos_options.clone();
    let app_state = state.app.clone();
    let sessions = SessionManagerLayer::new(PostgresStore::new(state.db().clone()))
        .with_name("st_session")
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(state.edge.https)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(time::Duration::days(
            SESSION_IDLE_DAYS,
        )));
    Router::new()
        .merge(http::datasets::router())
        .merge(http::events::router())
        .merge(http::query::router())
        .merge(http::versions::router())
        .merge(http::account::router())
        .merge(http::health::router())
        .leptos_routes_with_context(
            &state,
            routes,
            move || provide_context(app_state.clone()),
            move || app::shell(leptos_options.clone()),
        )
        .fallback(leptos_axum::file_and_error_handler::<ServerState, _>(
            app::shell,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            edge::edge,
        ))
        .layer(sessions)
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Each connection is a file descriptor: warns when the process's soft
/// open-file limit (`/proc/self/limits`) is below `HTTP_MAX_CONNECTIONS`
/// plus room for the database, DuckDB and scratch files, since the
/// connections past it would fail to be accepted rather than wait.
fn warn_if_files_are_short(max_connections: usize) {
    let Ok(limits) = std::fs::read_to_string("/proc/self/limits") else {
        return;
    };
    let soft = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse::<usize>().ok());
    if let Some(soft) = soft.filter(|soft| *soft < max_connections + 256) {
        tracing::warn!(
            open_file_limit = soft,
            http_max_connections = max_connections,
            "the open-file limit is below HTTP_MAX_CONNECTIONS + 256: raise it (ulimit -n, LimitNOFILE) or lower HTTP_MAX_CONNECTIONS"
        );
    }
}

//! The durable lakehouse sync (the seed's steps 2–9, on Restate).
//!
//! - [`ledger`]: THE owner of sync status: every transition and its timeline row.
//! - [`service`]: the `DatasetSync` virtual object and its journaled steps; it
//!   calls the MCP tools through the contract's typed client
//!   ([`contract::client`]).
//! - [`dispatcher`]: the outbox → Restate ingress loop.
//! - [`registration`]: registers the endpoint with the Restate admin API.
//! - [`metrics`]: counters and step durations for `GET /metrics`.

pub mod dispatcher;
pub mod failure;
pub mod lakehouse_query;
pub mod ledger;
pub mod metrics;
pub mod reconciler;
pub mod registration;
pub mod service;

use crate::config::{Settings, SyncSettings};
use anyhow::Context;
use restate_sdk::{
    endpoint::{Endpoint, ServiceOptions},
    service::IntoServiceDefinition,
};
use secrecy::SecretString;
use sqlx::PgPool;
use std::{net::SocketAddr, sync::Arc, time::Duration};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Each phase of an MCP call has its deadline (see
/// [`contract::client::Deadlines`]): a handshake or a silent connection
/// fails in seconds, a silver transform may run for an hour.
pub fn mcp_deadlines() -> contract::client::Deadlines {
    contract::client::Deadlines::default()
}

/// The Restate endpoint of this process, bound but not yet serving.
pub struct SyncEndpoint {
    listener: TcpListener,
    deps: Arc<service::SyncDeps>,
    /// The URL Restate calls this revision of the endpoint at.
    pub endpoint_url: String,
    admin_url: String,
    /// restate-server's request identity key (`RESTATE_IDENTITY_KEY`).
    identity_key: Option<String>,
}

impl SyncEndpoint {
    /// Binds `RESTATE_ENDPOINT_ADDR`. The MCP server downloads files from
    /// `INTERNAL_BASE_URL` (default: the internal listener, `INTERNAL_ADDR`).
    pub async fn bind(
        settings: &Settings,
        db: PgPool,
        metrics: Arc<metrics::SyncMetrics>,
    ) -> anyhow::Result<Self> {
        let sync = &settings.sync;
        let (url, key) = mcp_settings(sync)?;
        let listener = TcpListener::bind(sync.restate_endpoint_addr)
            .await
            .with_context(|| {
                format!(
                    "Failed to bind RESTATE_ENDPOINT_ADDR {}",
                    sync.restate_endpoint_addr
                )
            })?;
        let bound = listener.local_addr()?;
        let revision = sync
            .restate_deployment_revision
            .clone()
            .unwrap_or_else(registration::default_revision);
        let endpoint_url = registration::deployment_url(
            sync.restate_endpoint_url
                .as_deref()
                .unwrap_or(&format!("http://{bound}")),
            &revision,
        );
        let internal_base_url = sync
            .internal_base_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", settings.accounts.internal_addr));
        let identity_key = sync.restate_identity_key.clone();
        if let Some(k) = &identity_key {
            // Checked now, so a bad key stops start-up with its name.
            Endpoint::builder()
                .identity_key(k)
                .map_err(|e| anyhow::anyhow!("RESTATE_IDENTITY_KEY is invalid: {e}"))?;
        } else {
            tracing::warn!(
                "RESTATE_IDENTITY_KEY is not set: the DatasetSync endpoint accepts unsigned requests; \
                 keep RESTATE_ENDPOINT_ADDR on loopback or set the key"
            );
        }
        let deps = Arc::new(service::SyncDeps {
            ledger: ledger::Ledger::new(db),
            signer: crate::auth::signed_url::UrlSigner::new(&key),
            mcp: contract::client::McpClient::new(url, key, mcp_deadlines()),
            internal_base_url,
            retry_attempts: sync.retry_attempts,
            retry_interval: Duration::from_secs(sync.retry_interval_secs),
            metrics,
            datasets_dir: crate::storage::datasets_dir_of(&settings.data_storage_path),
        });
        Ok(Self {
            listener,
            deps,
            endpoint_url,
            admin_url: sync.restate_admin_url.clone(),
            identity_key,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves the endpoint and registers it with Restate (in the background,
    /// retrying) until `stop` is cancelled.
    pub async fn serve(self, stop: CancellationToken) {
        let options = ServiceOptions::default()
            // A step may run long (a large silver transform): let it, rather
            // than have Restate abort and retry it midway.
            .inactivity_timeout(mcp_deadlines().longest() + Duration::from_secs(60))
            .abort_timeout(Duration::from_secs(60))
            // Operators can read a finished sync's steps (`restate invocations describe`).
            .journal_retention(Duration::from_secs(7 * 24 * 3600));
        let mut builder = Endpoint::builder();
        if let Some(key) = &self.identity_key {
            builder = builder.identity_key(key).expect("checked in bind");
        }
        let endpoint = builder
            .bind(
                service::DatasetSync::new(self.deps)
                    .into_service_definition()
                    .options(options),
            )
            .build();
        tokio::spawn(registration::register_until_done(
            http_client(),
            self.admin_url,
            self.endpoint_url,
            stop.clone(),
        ));
        serve_endpoint(self.listener, endpoint, stop).await;
    }
}

/// Serves a Restate endpoint over HTTP/2 (cleartext, bidirectional streams)
/// until `stop` is cancelled, then lets open invocations finish for up to
/// 10 s. The SDK's own `HttpServer` does the same but leaves Nagle's
/// algorithm on: a journal entry written while the previous one is not yet
/// acknowledged then waits for Restate's delayed ACK, about 40 ms, and a
/// sync writes several. Measured with `sync_bench`: the gaps between a
/// sync's steps, and Restate's own three-step floor, jumped between ~8 and
/// ~48 ms from run to run with it on.
pub async fn serve_endpoint(listener: TcpListener, endpoint: Endpoint, stop: CancellationToken) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let service = restate_sdk::hyper::HyperEndpoint::new(endpoint);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, remote)) => {
                    if let Err(e) = stream.set_nodelay(true) {
                        tracing::debug!(error = %e, "could not set TCP_NODELAY on the Restate endpoint");
                    }
                    let connection = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service.clone());
                    let connection = graceful.watch(connection);
                    tokio::spawn(async move {
                        if let Err(e) = connection.await {
                            tracing::debug!(%remote, error = %e, "a Restate connection ended with an error");
                        }
                    });
                }
                Err(e) => {
                    // Out of file descriptors, typically: wait, do not spin.
                    tracing::warn!(error = %e, "accepting a Restate connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            () = stop.cancelled() => break,
        }
    }
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(Duration::from_secs(10)) => {
            tracing::warn!("invocations still open on the Restate endpoint after 10 s; closing");
        }
    }
}

pub fn mcp_settings(sync: &SyncSettings) -> anyhow::Result<(String, SecretString)> {
    let url = sync
        .mcp_server_url
        .clone()
        .context("MCP_SERVER_URL is required when DATABRICKS_SYNC_ENABLED=true")?;
    let key = sync
        .mcp_api_key
        .clone()
        .context("MCP_API_KEY is required when DATABRICKS_SYNC_ENABLED=true")?;
    Ok((url, key))
}

/// The HTTP client for Restate's ingress and admin APIs.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(15))
        .build()
        .expect("a TLS backend is compiled in")
}

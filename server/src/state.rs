//! `ServerState`: the one state of every route outside Leptos. Extractors
//! take the part they need through `FromRef`; server functions get the
//! app's part, [`AppState`], as context.

use crate::{
    auth::{edge::EdgePolicy, limiter::LoginLimiter, signed_url::UrlSigner},
    live::LiveHub,
    storage::Storage,
    sync::{ledger::SyncMode, metrics::SyncMetrics},
};
use app::ssr::AppState;
use axum::extract::FromRef;
use leptos::prelude::LeptosOptions;
use secrecy::SecretString;
use sqlx::PgPool;
use std::{ops::Deref, sync::Arc};
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
pub struct ServerState(Arc<ServerStateInner>);

pub struct ServerStateInner {
    /// What pages and server functions use: the pool, the file reader, the
    /// tenant, the site options and the sync port.
    pub app: AppState,
    /// Deletes datasets (the API route; pages reach it through `app`).
    pub removal: Arc<crate::removal::Removal>,
    /// Where uploads are written and converted.
    pub storage: Storage,
    /// Largest upload accepted, in bytes, counted while streaming.
    pub upload_max_bytes: u64,
    /// Most bytes a gzip upload may decompress to, counted while streaming.
    pub upload_max_decompressed_bytes: u64,
    /// Free space an upload must leave on the storage's file system.
    pub upload_min_free_disk: u64,
    /// Longest silence inside an upload's body.
    pub upload_idle_timeout: std::time::Duration,
    /// Bytes per second below which delimited text converts as it arrives.
    pub upload_stream_below: u64,
    /// Uploads running at once (`UPLOAD_MAX_CONCURRENT` permits).
    pub uploads: Arc<tokio::sync::Semaphore>,
    pub upload_max_concurrent: usize,
    /// How long an upload waits for a permit before it is told to retry.
    pub upload_queue_wait: std::time::Duration,
    /// Whether sync is available, and whether uploads queue one by themselves.
    pub sync_mode: SyncMode,
    /// Live sync states fanned out to `GET /api/events`.
    pub hub: LiveHub,
    /// Cancelled at shutdown; ends every event stream so draining does not wait on them.
    pub stop: CancellationToken,
    /// Sync counters and step durations for `GET /metrics`.
    pub metrics: Arc<SyncMetrics>,
    /// `MCP_API_KEY`: the MCP server's bearer on the internal listener
    /// (token introspection). `None` refuses every introspection.
    pub internal_key: Option<SecretString>,
    /// Verifies the download links the sync signs.
    pub signer: UrlSigner,
    /// Host allow-list, CSRF origins, HTTPS.
    pub edge: EdgePolicy,
    pub login_limiter: LoginLimiter,
    /// `SIGNUP_OPEN`.
    pub signup_open: bool,
    /// `PUBLIC_URL`, for links the app hands out (invitations).
    pub public_url: String,
}

impl ServerState {
    pub fn new(inner: ServerStateInner) -> Self {
        Self(Arc::new(inner))
    }

    pub fn db(&self) -> &PgPool {
        &self.app.db
    }

    /// The sign-up link of an invitation code.
    pub fn signup_link(&self, code: &str) -> String {
        format!("{}/signup?invite={code}", self.public_url)
    }
}

impl Deref for ServerState {
    type Target = ServerStateInner;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl FromRef<ServerState> for AppState {
    fn from_ref(state: &ServerState) -> Self {
        state.app.clone()
    }
}

impl FromRef<ServerState> for LeptosOptions {
    fn from_ref(state: &ServerState) -> Self {
        state.app.leptos_options.clone()
    }
}

use super::{sync_requests::SyncMode, Storage};
use axum::extract::FromRef;
use leptos::prelude::LeptosOptions;
use sqlx::PgPool;
use std::{ops::Deref, sync::Arc};
use uuid::Uuid;

/// Everything a handler or server function needs, cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<AppStateInner>);

pub struct AppStateInner {
    /// Connection pool of the dataset catalogue.
    pub db: PgPool,
    /// Local dataset files and the DuckDB engine that reads and writes them.
    pub storage: Storage,
    /// The tenant every request acts for until accounts exist (created on first start).
    pub tenant_id: Uuid,
    /// Site options for SSR and the static file handler.
    pub leptos_options: LeptosOptions,
    /// Largest upload accepted, in bytes, counted while streaming.
    pub upload_max_bytes: u64,
    /// Whether datasets sync to the lakehouse, and whether uploads do so by themselves.
    pub sync: SyncMode,
    /// `DATABRICKS_HOST` when `LAKEHOUSE_BACKEND=databricks`: links to Catalog Explorer.
    pub databricks_host: Option<String>,
}

impl AppState {
    pub fn new(inner: AppStateInner) -> Self {
        Self(Arc::new(inner))
    }
}

impl Deref for AppState {
    type Target = AppStateInner;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        state.leptos_options.clone()
    }
}

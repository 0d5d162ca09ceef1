use super::{DatasetReader, DatasetRemoval, SyncControl};
use leptos::prelude::LeptosOptions;
use sqlx::PgPool;
use std::{ops::Deref, sync::Arc};

/// What server functions and pages need, cheap to clone. The server provides
/// it as context to every Leptos request.
#[derive(Clone)]
pub struct AppState(Arc<AppStateInner>);

pub struct AppStateInner {
    /// Connection pool of the dataset catalogue.
    pub db: PgPool,
    /// Reads the local dataset files (previews, statistics).
    pub reader: DatasetReader,
    /// Site options for SSR.
    pub leptos_options: LeptosOptions,
    /// Sync requests, when sync is available on this server.
    pub sync: Option<Arc<dyn SyncControl>>,
    /// Deletes datasets (through the sync when it is available).
    pub removal: Arc<dyn DatasetRemoval>,
    /// What one query of the query page may use.
    pub query_limits: super::query::QueryLimits,
    /// The query page's lakehouse engine, when sync is available.
    pub lakehouse: Option<Arc<dyn super::query::LakehouseQuery>>,
    /// `DATABRICKS_HOST` when `LAKEHOUSE_BACKEND=databricks`: links to Catalog Explorer.
    pub databricks_host: Option<String>,
    /// The MCP server's URL as assistants reach it (`MCP_PUBLIC_URL`, default
    /// `MCP_SERVER_URL`), for the Connect-an-assistant page.
    pub mcp_public_url: Option<String>,
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

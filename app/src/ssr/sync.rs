//! What the pages may ask of the lakehouse sync. The server owns the sync
//! (its ledger performs every status transition) and hands an implementation
//! to [`super::AppState`]; the pages only ask.

use std::{future::Future, pin::Pin};
use uuid::Uuid;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The answer to a manual retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResyncOutcome {
    /// A new request is stored; the dataset is `pending` again.
    Requested(Uuid),
    /// The dataset is already waiting for or running a sync.
    AlreadyInProgress,
    /// The dataset is being deleted.
    Deleting,
    NotFound,
}

/// Sync requests made from the pages, for one tenant at a time.
pub trait SyncControl: Send + Sync + 'static {
    /// Syncs one dataset again (after `failed`, or to refresh a synced one).
    fn request_resync(
        &self,
        tenant_id: Uuid,
        dataset_id: Uuid,
    ) -> BoxFuture<'_, Result<ResyncOutcome, sqlx::Error>>;

    /// Requests a sync of every dataset of the tenant that is `local_only` or
    /// `failed`; returns how many.
    fn request_bulk_sync(&self, tenant_id: Uuid) -> BoxFuture<'_, Result<u64, sqlx::Error>>;
}

/// The answer to a delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteOutcome {
    /// The dataset is `deleting` (hidden now); its lakehouse tables and
    /// files, its local file and then its row go in the background.
    Deleting,
    /// Gone already: nothing was left to clean up in a lakehouse.
    Deleted,
    NotFound,
}

/// Deleting datasets, for one tenant at a time. Available whether or not
/// sync is.
pub trait DatasetRemoval: Send + Sync + 'static {
    fn delete(
        &self,
        tenant_id: Uuid,
        dataset_id: Uuid,
    ) -> BoxFuture<'_, Result<DeleteOutcome, sqlx::Error>>;
}

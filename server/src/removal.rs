//! Deleting a dataset: the one path behind the page's Delete button, the
//! `delete_dataset` server function and `DELETE /api/datasets/{id}`.
//!
//! With sync available the dataset turns `deleting` at once (every page hides
//! its data) and a `delete` request goes through the outbox to the
//! `DatasetSync` object, which drops the lakehouse tables and files (MCP
//! `drop_dataset`, retried until it succeeds), removes the local file and
//! then the row. Without sync there is no lakehouse to clean: the row goes
//! at once, then the file (a file left by a crash in between is an orphan
//! that start-up's reconciliation removes).

use crate::sync::ledger::{DeleteRequest, Ledger};
use app::ssr::{sync::BoxFuture, DatasetRemoval, DeleteOutcome};
use std::path::PathBuf;
use uuid::Uuid;

pub struct Removal {
    pub ledger: Ledger,
    pub datasets_dir: PathBuf,
    /// Sync is available: deletion goes through it.
    pub via_sync: bool,
}

impl Removal {
    pub async fn delete(
        &self,
        tenant_id: Uuid,
        dataset_id: Uuid,
    ) -> Result<DeleteOutcome, sqlx::Error> {
        if self.via_sync {
            return Ok(
                match self.ledger.request_delete(tenant_id, dataset_id).await? {
                    DeleteRequest::Requested(request) => {
                        tracing::info!(dataset = %dataset_id, %request, "delete requested");
                        DeleteOutcome::Deleting
                    }
                    DeleteRequest::AlreadyDeleting => DeleteOutcome::Deleting,
                    DeleteRequest::NotFound => DeleteOutcome::NotFound,
                },
            );
        }
        if !self.ledger.delete_now(tenant_id, dataset_id).await? {
            return Ok(DeleteOutcome::NotFound);
        }
        if let Err(e) = crate::storage::remove_dataset_file(&self.datasets_dir, dataset_id).await {
            // The row is gone, so the file is an orphan start-up removes.
            tracing::warn!(error = %e, dataset = %dataset_id, "could not remove a deleted dataset's file");
        }
        tracing::info!(dataset = %dataset_id, "dataset deleted");
        Ok(DeleteOutcome::Deleted)
    }
}

impl DatasetRemoval for Removal {
    fn delete(
        &self,
        tenant_id: Uuid,
        dataset_id: Uuid,
    ) -> BoxFuture<'_, Result<DeleteOutcome, sqlx::Error>> {
        Box::pin(Removal::delete(self, tenant_id, dataset_id))
    }
}

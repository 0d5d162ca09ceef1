//! The invocation reconciler: finds syncs whose Restate invocation is gone
//! and settles them, so no dataset stays `queued`, `syncing` or `retrying`
//! forever (where Retry answers "already in progress" and bulk sync skips
//! it).
//!
//! An invocation can vanish without its handler ever recording an end: an
//! operator kills it (`restate invocations kill`) or purges it, or
//! Restate's data is lost. Every `SYNC_RECONCILE_INTERVAL_SECS` (and at
//! start-up) the reconciler takes each dataset's latest request that Restate
//! accepted more than `SYNC_RECONCILE_GRACE_SECS` ago while the dataset is
//! still in flight, and asks Restate's introspection SQL (`POST /query` on
//! the admin API, `sys_invocation`) about their invocations. An invocation
//! that is missing, or completed although the dataset never heard of its
//! end, is settled:
//! - a sync is marked `failed`, with the reason and the invocation id, so
//!   Retry (or bulk sync) starts it again;
//! - a delete is requested again (a deletion is never dropped).
//!
//! Restate unreachable: nothing is decided this round. Several servers may
//! run it at once: each write checks the state it read.

use super::ledger::{Ledger, SyncReason};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

pub struct Reconciler {
    pub ledger: Ledger,
    pub http: reqwest::Client,
    pub admin_url: String,
    pub every: Duration,
    /// How long after Restate accepted a request its invocation must be
    /// visible (and a handler must have started recording).
    pub grace: Duration,
}

/// What one round settled.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Settled {
    /// Syncs marked `failed` because their invocation is gone.
    pub failed: Vec<Uuid>,
    /// Deletes requested again.
    pub redispatched: Vec<Uuid>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    #[error("Restate's admin API: {0}")]
    Restate(String),
}

#[derive(serde::Deserialize)]
struct QueryAnswer {
    rows: Vec<InvocationRow>,
}

#[derive(serde::Deserialize)]
struct InvocationRow {
    id: String,
    status: String,
}

/// Invocation ids are `inv_` and base62: anything else is not embedded in SQL.
fn plausible_invocation_id(id: &str) -> bool {
    id.starts_with("inv_")
        && id.len() < 64
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Reconciler {
    pub async fn run(self, stop: CancellationToken) {
        loop {
            match self.reconcile_once().await {
                Ok(s) if s != Settled::default() => {
                    tracing::warn!(
                        failed = s.failed.len(),
                        redispatched = s.redispatched.len(),
                        "settled syncs whose Restate invocation is gone"
                    )
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "invocation reconciliation skipped this round")
                }
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(self.every) => {}
            }
        }
    }

    /// One round: see the module's notes.
    pub async fn reconcile_once(&self) -> Result<Settled, ReconcileError> {
        let db = self.ledger.db();
        let in_flight = sqlx::query!(
            r#"SELECT r.id, r.tenant_id, r.dataset_id, r.invocation_id AS "invocation_id!",
                      r.reason AS "reason: SyncReason"
               FROM sync_requests r JOIN datasets d ON d.id = r.dataset_id
               WHERE r.invocation_id IS NOT NULL
                 AND r.dispatched_at < now() - make_interval(secs => $1)
                 AND d.sync_status IN ('queued', 'syncing', 'retrying', 'deleting')
                 AND NOT EXISTS (SELECT 1 FROM sync_requests n
                                 WHERE n.dataset_id = r.dataset_id AND n.created_at > r.created_at)
               LIMIT 500"#,
            self.grace.as_secs_f64(),
        )
        .fetch_all(db)
        .await?;
        let ids: Vec<&str> = in_flight
            .iter()
            .map(|r| r.invocation_id.as_str())
            .filter(|id| plausible_invocation_id(id))
            .collect();
        if ids.is_empty() {
            return Ok(Settled::default());
        }
        let sql = format!(
            "SELECT id, status FROM sys_invocation WHERE id IN ({})",
            ids.iter()
                .map(|id| format!("'{id}'"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let response = self
            .http
            .post(format!("{}/query", self.admin_url.trim_end_matches('/')))
            .header("Accept", "application/json")
            .json(&serde_json::json!({ "query": sql }))
            .send()
            .await
            .map_err(|e| ReconcileError::Restate(e.to_string()))?;
        if !response.status().is_success() {
            return Err(ReconcileError::Restate(format!(
                "POST /query answered {}",
                response.status()
            )));
        }
        let known: std::collections::HashMap<String, String> = response
            .json::<QueryAnswer>()
            .await
            .map_err(|e| ReconcileError::Restate(e.to_string()))?
            .rows
            .into_iter()
            .map(|r| (r.id, r.status))
            .collect();
        let mut settled = Settled::default();
        for r in in_flight {
            if !plausible_invocation_id(&r.invocation_id) {
                continue;
            }
            let gone = match known.get(&r.invocation_id).map(String::as_str) {
                None => "is gone (purged, or lost by Restate)",
                Some("completed") => "ended without finishing the sync (killed?)",
                Some(_) => continue, // pending, scheduled, running, backing-off, suspended…
            };
            if r.reason == SyncReason::Delete {
                let again = sqlx::query!(
                    "INSERT INTO sync_requests (id, tenant_id, dataset_id, reason)
                     SELECT $1, $2, $3, 'delete' FROM datasets
                     WHERE id = $3 AND sync_status = 'deleting'
                       AND NOT EXISTS (SELECT 1 FROM sync_requests n
                                       WHERE n.dataset_id = $3 AND n.created_at >
                                         (SELECT created_at FROM sync_requests WHERE id = $4))",
                    Uuid::new_v4(),
                    r.tenant_id,
                    r.dataset_id,
                    r.id,
                )
                .execute(db)
                .await?
                .rows_affected();
                if again == 1 {
                    tracing::warn!(dataset = %r.dataset_id, invocation = %r.invocation_id,
                        "a delete's Restate invocation {gone}; requested it again");
                    settled.redispatched.push(r.dataset_id);
                }
                continue;
            }
            let message = format!(
                "the sync was lost: its workflow invocation {} {gone}. Retry sync starts it again",
                r.invocation_id
            );
            let failed = sqlx::query!(
                "UPDATE datasets SET sync_status = 'failed', sync_error = $2,
                   sync_next_retry_at = NULL
                 WHERE id = $1 AND sync_status IN ('queued', 'syncing', 'retrying')
                   AND NOT EXISTS (SELECT 1 FROM sync_requests n
                                   WHERE n.dataset_id = $1 AND n.created_at >
                                     (SELECT created_at FROM sync_requests WHERE id = $3))",
                r.dataset_id,
                message,
                r.id,
            )
            .execute(db)
            .await?
            .rows_affected();
            if failed == 1 {
                sqlx::query!(
                    "UPDATE sync_events SET outcome = 'failed', finished_at = now(), error = $2
                     WHERE request_id = $1 AND finished_at IS NULL",
                    r.id,
                    message,
                )
                .execute(db)
                .await?;
                tracing::warn!(dataset = %r.dataset_id, invocation = %r.invocation_id, "{message}");
                settled.failed.push(r.dataset_id);
            }
        }
        Ok(settled)
    }
}

#[cfg(test)]
mod tests {
    use super::plausible_invocation_id;

    #[test]
    fn only_restate_shaped_ids_reach_the_sql() {
        assert!(plausible_invocation_id(
            "inv_11bj9fDxgKpN0wd0y60rHwnrgKhagZueCG"
        ));
        for bad in ["inv_1' OR '1'='1", "x", "inv_a b", "", "11bj9fDxg"] {
            assert!(!plausible_invocation_id(bad), "{bad}");
        }
    }
}

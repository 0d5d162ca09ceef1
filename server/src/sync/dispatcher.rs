//! The outbox dispatcher: hands every stored sync request to the Restate
//! ingress (`POST /restate/send/DatasetSync/{dataset}/sync`, or `/delete` for
//! a delete request; idempotency key = request id), and has the ledger mark
//! it `queued` once Restate accepts it.
//!
//! Woken by `NOTIFY sync_requests` and by a periodic sweep. Each round claims
//! due requests in a short transaction (`FOR UPDATE SKIP LOCKED`, then a lease
//! that moves their next attempt out), commits, and only then calls Restate,
//! so no row lock is held across HTTP calls. While Restate is unreachable a
//! request backs off (1 s doubling to 60 s); requests stay in Postgres, so
//! nothing is lost across restarts, and the idempotency key means a request
//! sent twice (say, by a dispatcher that died after Restate accepted it, once
//! its lease ran out) runs once. Several servers can dispatch at once.

use super::{
    ledger::{Ledger, SyncReason},
    metrics::SyncMetrics,
    service::{Plan, SyncInput},
};
use futures::{stream, StreamExt};
use sqlx::{postgres::PgListener, PgPool};
use std::{sync::Arc, time::Duration};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// How often the outbox is swept even without a notification.
const SWEEP_EVERY: Duration = Duration::from_secs(5);
/// Requests claimed per round, and submitted concurrently.
const BATCH: i64 = 200;
const CONCURRENCY: usize = 16;
/// How long a claim keeps other dispatchers off a request. Longer than a
/// round of submissions can take (the HTTP client's 15 s timeout).
const LEASE: Duration = Duration::from_secs(60);

pub struct Dispatcher {
    pub ledger: Ledger,
    pub http: reqwest::Client,
    pub ingress_url: String,
    pub metrics: Arc<SyncMetrics>,
    /// The retry policy each sync is sent with (`DATABRICKS_RETRY_*`).
    pub retry_attempts: u32,
    pub retry_interval: Duration,
}

/// Why Restate did not accept a sync request.
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("cannot reach the Restate ingress at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("the Restate ingress answered {status}: {body}")]
    Refused { status: u16, body: String },
    #[error("unexpected answer from the Restate ingress: {0}")]
    BadAnswer(String),
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct SendResponse {
    invocation_id: String,
}

/// Requests not yet accepted by Restate (the outbox depth).
pub async fn outbox_depth(db: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(r#"SELECT count(*) AS "n!" FROM sync_requests WHERE dispatched_at IS NULL"#)
        .fetch_one(db)
        .await
}

impl Dispatcher {
    /// Runs until `stop` is cancelled.
    pub async fn run(self, stop: CancellationToken) {
        let mut listener = None;
        loop {
            if listener.is_none() {
                listener = match PgListener::connect_with(self.ledger.db()).await {
                    Ok(mut l) => match l.listen("sync_requests").await {
                        Ok(()) => Some(l),
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot LISTEN sync_requests; sweeping only");
                            None
                        }
                    },
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot connect the outbox listener; sweeping only");
                        None
                    }
                };
            }
            let wait = match self.dispatch_due().await {
                Ok(wait) => wait,
                Err(e) => {
                    tracing::warn!(error = %e, "reading the sync outbox failed");
                    Duration::from_secs(1)
                }
            };
            if wait.is_zero() {
                continue;
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
                notified = async {
                    match listener.as_mut() {
                        Some(l) => l.recv().await.map(|_| ()),
                        None => std::future::pending().await,
                    }
                } => {
                    if let Err(e) = notified {
                        tracing::warn!(error = %e, "the outbox listener failed; reconnecting");
                        listener = None;
                    }
                }
            }
        }
    }

    /// Submits every due request; returns how long until the next one is due
    /// (zero if there may be more right now).
    pub async fn dispatch_due(&self) -> Result<Duration, sqlx::Error> {
        let db = self.ledger.db();
        let due = sqlx::query!(
            "WITH due AS (
               SELECT id FROM sync_requests
               WHERE dispatched_at IS NULL AND next_dispatch_at <= now()
               ORDER BY next_dispatch_at, created_at
               LIMIT $1
               FOR UPDATE SKIP LOCKED)
             UPDATE sync_requests r SET next_dispatch_at = now() + make_interval(secs => $2)
             FROM due WHERE r.id = due.id
             RETURNING r.id, r.dataset_id, r.dispatch_attempts,
               r.reason AS \"reason: SyncReason\"",
            BATCH,
            LEASE.as_secs_f64(),
        )
        .fetch_all(db)
        .await?;
        let claimed = due.len() as i64;
        // Each sync is sent with what it syncs, read here for the whole
        // round at once, so that it needs no journaled action to read it.
        let syncs: Vec<Uuid> = due
            .iter()
            .filter(|d| d.reason != SyncReason::Delete)
            .map(|d| d.dataset_id)
            .collect();
        let mut datasets = match self.ledger.load_datasets(&syncs).await {
            Ok(datasets) => datasets,
            Err(e) => {
                // Sent without: each handler reads its own.
                tracing::warn!(error = %e, "reading the round's datasets failed");
                std::collections::HashMap::new()
            }
        };
        let results: Vec<_> = stream::iter(due)
            .map(|d| {
                let (handler, plan) = match d.reason {
                    SyncReason::Delete => ("delete", None),
                    _ => (
                        "sync",
                        datasets.remove(&d.dataset_id).map(|dataset| Plan {
                            dataset: Some(dataset),
                            max_attempts: self.retry_attempts,
                            retry_interval_ms: self.retry_interval.as_millis() as u64,
                        }),
                    ),
                };
                async move {
                    let input = SyncInput {
                        request_id: d.id,
                        plan,
                    };
                    let sent = self.send(&input, d.dataset_id, handler).await;
                    (d, sent)
                }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let (mut accepted, mut refused) = (Vec::new(), Vec::new());
        for (d, sent) in results {
            match sent {
                Ok(invocation_id) => {
                    SyncMetrics::inc(&self.metrics.dispatched);
                    tracing::info!(request = %d.id, dataset = %d.dataset_id, invocation = %invocation_id, "sync request accepted");
                    accepted.push((d.id, invocation_id));
                }
                Err(e) => refused.push((d, e)),
            }
        }
        // Restate has these now: record that first, even if Postgres is
        // restarting (requests left unmarked are sent again when their lease
        // ends, and Restate answers each with the same invocation).
        let mut wait = Duration::from_millis(100);
        for tries_left in (0..6).rev() {
            match self.ledger.mark_queued(&accepted).await {
                Ok(()) => break,
                Err(e) if tries_left == 0 => {
                    tracing::warn!(requests = accepted.len(), error = %e,
                        "could not record accepted sync requests; they are sent again when their lease ends");
                }
                Err(_) => {
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
            }
        }
        for (d, e) in refused {
            SyncMetrics::inc(&self.metrics.dispatch_errors);
            let backoff = backoff(d.dispatch_attempts);
            tracing::warn!(request = %d.id, dataset = %d.dataset_id, error = %e,
                retry_in_ms = backoff.as_millis() as u64, "Restate did not accept a sync request");
            sqlx::query!(
                "UPDATE sync_requests SET dispatch_attempts = dispatch_attempts + 1,
                   last_dispatch_error = $2,
                   next_dispatch_at = now() + make_interval(secs => $3)
                 WHERE id = $1 AND dispatched_at IS NULL",
                d.id,
                e.to_string(),
                backoff.as_secs_f64(),
            )
            .execute(db)
            .await?;
        }
        if claimed == BATCH {
            return Ok(Duration::ZERO);
        }
        let next = sqlx::query_scalar!(
            "SELECT EXTRACT(EPOCH FROM (min(next_dispatch_at) - now()))::float8
             FROM sync_requests WHERE dispatched_at IS NULL",
        )
        .fetch_one(db)
        .await?;
        Ok(match next {
            None => SWEEP_EVERY,
            Some(secs) if secs <= 0.0 => Duration::ZERO,
            Some(secs) => Duration::from_secs_f64(secs).min(SWEEP_EVERY),
        })
    }

    async fn send(
        &self,
        input: &SyncInput,
        dataset_id: Uuid,
        handler: &str,
    ) -> Result<String, DispatchError> {
        let url = format!(
            "{}/restate/send/DatasetSync/{dataset_id}/{handler}",
            self.ingress_url
        );
        let response = self
            .http
            .post(&url)
            .header("idempotency-key", input.request_id.to_string())
            .json(input)
            .send()
            .await
            .map_err(|e| DispatchError::Unreachable {
                url: self.ingress_url.clone(),
                reason: e.to_string(),
            })?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(DispatchError::Refused {
                status: status.as_u16(),
                body: body.trim().to_owned(),
            });
        }
        let body: SendResponse = response
            .json()
            .await
            .map_err(|e| DispatchError::BadAnswer(e.to_string()))?;
        Ok(body.invocation_id)
    }
}

/// 1 s, 2 s, 4 s, … up to 60 s.
fn backoff(previous_attempts: i32) -> Duration {
    let exp = previous_attempts.clamp(0, 6) as u32;
    Duration::from_secs(1u64 << exp).min(Duration::from_secs(60))
}

#[cfg(test)]
mod tests {
    use super::backoff;
    use std::time::Duration;

    #[test]
    fn backoff_doubles_up_to_a_minute() {
        assert_eq!(backoff(0), Duration::from_secs(1));
        assert_eq!(backoff(3), Duration::from_secs(8));
        assert_eq!(backoff(6), Duration::from_secs(60));
        assert_eq!(backoff(40), Duration::from_secs(60));
    }
}

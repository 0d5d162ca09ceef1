//! Live sync status for browsers: the server's single `PgListener` on the
//! `dataset_status` channel (fed by triggers on `datasets` and `sync_events`)
//! turns each notification into the dataset's current [`SyncState`], read
//! once, serialised once, and fanned out through a broadcast channel to every
//! `GET /api/events` stream.
//!
//! After the listener loses its connection it reconnects by itself and re-reads
//! every dataset changed since just before the gap, so no change is missed.

use app::{
    model::{LiveEvent, SyncState},
    ssr::catalog,
};
use sqlx::{postgres::PgListener, PgPool};
use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Events buffered for subscribers; a subscriber further behind is dropped
/// (its browser reconnects and gets a fresh snapshot).
const CHANNEL_CAPACITY: usize = 1024;

/// One status change, ready to send.
#[derive(Debug)]
pub struct Published {
    pub seq: u64,
    pub tenant_id: Uuid,
    /// The SSE event name: `status` or `removed`.
    pub event: &'static str,
    /// The `LiveEvent` JSON.
    pub json: String,
}

#[derive(Clone)]
pub struct LiveHub(Arc<HubInner>);

struct HubInner {
    tx: broadcast::Sender<Arc<Published>>,
    seq: AtomicU64,
}

impl Default for LiveHub {
    fn default() -> Self {
        let (tx, _) = broadcast::channel(CHANNEL_CAPACITY);
        Self(Arc::new(HubInner {
            tx,
            seq: AtomicU64::new(0),
        }))
    }
}

impl LiveHub {
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Published>> {
        self.0.tx.subscribe()
    }

    /// The sequence number of the latest event (a snapshot taken after
    /// subscribing is at least this fresh).
    pub fn current_seq(&self) -> u64 {
        self.0.seq.load(Ordering::SeqCst)
    }

    pub fn subscribers(&self) -> usize {
        self.0.tx.receiver_count()
    }

    fn publish(&self, tenant_id: Uuid, state: SyncState) {
        self.send(tenant_id, "status", |seq| LiveEvent::Status { seq, state });
    }

    fn publish_removed(&self, tenant_id: Uuid, dataset_id: Uuid) {
        self.send(tenant_id, "removed", |seq| LiveEvent::Removed {
            seq,
            dataset_id,
        });
    }

    fn send(&self, tenant_id: Uuid, event: &'static str, make: impl FnOnce(u64) -> LiveEvent) {
        let seq = self.0.seq.fetch_add(1, Ordering::SeqCst) + 1;
        let json = serde_json::to_string(&make(seq)).expect("a LiveEvent always serialises");
        // No subscribers is fine.
        let _ = self.0.tx.send(Arc::new(Published {
            seq,
            tenant_id,
            event,
            json,
        }));
    }

    /// Listens until `stop` is cancelled, reconnecting with backoff.
    pub async fn run(self, db: PgPool, stop: CancellationToken) {
        let mut gap_since: Option<time::OffsetDateTime> = None;
        let mut delay = Duration::from_millis(200);
        loop {
            let connected_at = time::OffsetDateTime::now_utc();
            match self.listen(&db, &mut gap_since, &stop).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64,
                        "the live status listener lost Postgres; reconnecting");
                    // Re-read everything changed since this connection began,
                    // with a margin for clock skew between us and Postgres.
                    let since = connected_at - Duration::from_secs(5);
                    gap_since = Some(gap_since.map_or(since, |g| g.min(since)));
                }
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(Duration::from_secs(10));
        }
    }

    async fn listen(
        &self,
        db: &PgPool,
        gap_since: &mut Option<time::OffsetDateTime>,
        stop: &CancellationToken,
    ) -> Result<(), sqlx::Error> {
        let mut listener = PgListener::connect_with(db).await?;
        // Errors surface instead of a silent reconnect, so the gap is re-read.
        listener.ignore_pool_close_event(false);
        listener.listen("dataset_status").await?;
        if let Some(since) = gap_since.take() {
            let changed = catalog::sync_states_changed_since(db, since).await?;
            tracing::info!(count = changed.len(), "re-read dataset states after a gap");
            for (tenant_id, state) in changed {
                self.publish(tenant_id, state);
            }
        }
        loop {
            let notification = tokio::select! {
                () = stop.cancelled() => return Ok(()),
                n = listener.try_recv() => n?,
            };
            let Some(notification) = notification else {
                // The connection dropped (try_recv reports it once).
                return Err(sqlx::Error::PoolClosed);
            };
            // Every notification already here, each dataset once: one
            // transaction notifies twice (its dataset row and its timeline
            // row), and a busy sync round many times over; one read of the
            // current state answers them all.
            let mut changed: Vec<(Uuid, Uuid)> = Vec::new();
            let mut next = Some(notification);
            while let Some(n) = next.take() {
                match ids(n.payload()) {
                    Some(pair) if !changed.contains(&pair) => changed.push(pair),
                    Some(_) => {}
                    None => {
                        tracing::warn!(payload = n.payload(), "unreadable dataset_status payload")
                    }
                }
                if changed.len() < COALESCE_AT_MOST {
                    next = listener.next_buffered();
                }
            }
            // Nobody listens: nothing to read. A subscriber that arrives
            // later subscribes first and then reads its snapshot, which
            // has every change committed before it.
            if self.subscribers() == 0 {
                continue;
            }
            for (id, tenant) in changed {
                match catalog::sync_state(db, id).await {
                    Ok(Some((tenant_id, state))) => self.publish(tenant_id, state),
                    // Deleted (this notification says so, or a later one will).
                    Ok(None) => self.publish_removed(tenant, id),
                    Err(e) => return Err(e),
                }
            }
        }
    }
}

/// The most datasets read for one batch of notifications (the rest wait for
/// the next batch, so a flood cannot delay every event behind it).
const COALESCE_AT_MOST: usize = 256;

/// The dataset and tenant a notification is about.
fn ids(payload: &str) -> Option<(Uuid, Uuid)> {
    let v: serde_json::Value = serde_json::from_str(payload).ok()?;
    let id = |key: &str| v.get(key)?.as_str()?.parse().ok();
    Some((id("dataset_id")?, id("tenant_id")?))
}

#[cfg(test)]
mod tests {
    use super::ids;

    #[test]
    fn reads_the_ids_of_every_payload_kind() {
        let id = "6f1c1f9e-8c63-4e3b-9a57-2f4f7d1e0c11";
        let tenant = "0b7e6d2a-1c1e-4f0a-9e55-7d0f6c3b2a19";
        for payload in [
            format!(r#"{{"dataset_id":"{id}","tenant_id":"{tenant}","status":"queued"}}"#),
            format!(r#"{{"dataset_id":"{id}","tenant_id":"{tenant}","event_id":7}}"#),
            format!(r#"{{"dataset_id":"{id}","tenant_id":"{tenant}","removed":true}}"#),
        ] {
            let (d, t) = ids(&payload).unwrap();
            assert_eq!(
                (d.to_string().as_str(), t.to_string().as_str()),
                (id, tenant)
            );
        }
        assert!(ids("not json").is_none());
        assert!(ids(&format!(r#"{{"dataset_id":"{id}"}}"#)).is_none());
    }
}

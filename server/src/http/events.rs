//! `GET /api/events`: Server-Sent Events with the live sync state of the
//! requesting tenant's datasets.
//!
//! Every connection (a reconnect too, whatever its `Last-Event-ID`) starts
//! with `snapshot` events holding every dataset's current state, read after
//! subscribing, so no change between the two is lost: one event per
//! [`SNAPSHOT_PAGE`] datasets, each page read by keyset only when the client
//! has taken the one before (a tenant with 100,000 datasets costs no more
//! memory per connection than one with 500). Then one `status` event per
//! change. Memory per connection is bounded: events are shared `Arc`s in
//! one broadcast channel, and a client that falls `CHANNEL_CAPACITY` events
//! behind is disconnected (its browser reconnects and gets a new snapshot)
//! rather than slowing anyone else. Keep-alive comments every 15 s.

use super::error_response;
use crate::state::ServerState;
use app::{
    model::LiveEvent,
    ssr::{auth::Principal, catalog},
};
use axum::{
    extract::State,
    http::StatusCode,
    response::{
        sse::{Event, KeepAlive, Sse},
        IntoResponse, Response,
    },
    routing::get,
    Extension, Router,
};
use futures::{stream, StreamExt};
use std::{convert::Infallible, time::Duration};
use tokio::sync::broadcast::error::RecvError;

/// Datasets per `snapshot` event.
pub const SNAPSHOT_PAGE: u32 = 500;

fn snapshot_event(seq: u64, datasets: Vec<app::model::DatasetSummary>) -> Event {
    let snapshot = LiveEvent::Snapshot {
        seq,
        states: datasets.into_iter().map(|d| d.sync).collect(),
    };
    Event::default()
        .event("snapshot")
        .id(seq.to_string())
        .json_data(&snapshot)
        .expect("a snapshot always serialises")
}

pub fn router() -> Router<ServerState> {
    Router::new().route("/api/events", get(events))
}

async fn events(
    State(state): State<ServerState>,
    Extension(who): Extension<Principal>,
) -> Response {
    let tenant_id = who.tenant_id;
    let rx = state.hub.subscribe();
    let seq = state.hub.current_seq();
    // The first page is read now, so a catalogue that cannot be read is a
    // 503 the browser retries, not a stream that ends at once.
    let first = match catalog::list_datasets(state.db(), tenant_id, None, SNAPSHOT_PAGE).await {
        Ok(page) => page,
        Err(e) => {
            tracing::error!(error = %e, "reading the snapshot for /api/events failed");
            return error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the dataset catalogue cannot be read right now; the browser retries by itself",
            );
        }
    };
    let db = state.db().clone();
    let snapshot = stream::unfold(Some(Ok(first)), move |page| {
        let db = db.clone();
        async move {
            let page = match page? {
                Ok(page) => page,
                Err(e) => {
                    // The stream ends; the browser reconnects for a new snapshot.
                    tracing::warn!(error = %e, "reading a snapshot page for /api/events failed");
                    return None;
                }
            };
            let event = snapshot_event(seq, page.datasets);
            let next = match page.next {
                Some(after) => {
                    Some(catalog::list_datasets(&db, tenant_id, Some(after), SNAPSHOT_PAGE).await)
                }
                None => None,
            };
            Some((event, next))
        }
    });

    let changes = stream::unfold(rx, move |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(p) if p.tenant_id == tenant_id => {
                    let event = Event::default()
                        .event(p.event)
                        .id(p.seq.to_string())
                        .data(p.json.as_str());
                    return Some((event, rx));
                }
                Ok(_) => continue,
                Err(RecvError::Lagged(missed)) => {
                    tracing::info!(missed, "an event stream fell behind; closing it");
                    return None;
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    let stream = snapshot
        .chain(changes)
        // Ends with the server, so a graceful shutdown does not wait on it.
        .take_until(state.stop.clone().cancelled_owned())
        .map(Ok::<_, Infallible>);
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

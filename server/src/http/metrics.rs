//! `GET /metrics`: sync counters, step durations and the outbox depth in the
//! Prometheus text format.

use crate::sync::{metrics::SyncMetrics, store::SyncStore};
use axum::{extract::State, http::header, response::IntoResponse, routing::get, Router};
use std::sync::Arc;

#[derive(Clone)]
pub struct MetricsState {
    pub metrics: Arc<SyncMetrics>,
    pub store: SyncStore,
}

pub fn router<S>(state: MetricsState) -> Router<S> {
    Router::new()
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn metrics(State(state): State<MetricsState>) -> impl IntoResponse {
    let depth = match state.store.outbox_depth().await {
        Ok(depth) => Some(depth),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the outbox depth for /metrics");
            None
        }
    };
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(depth),
    )
}

//! `GET /metrics`: sync counters, step durations and the outbox depth in the
//! Prometheus text format.

use crate::{state::ServerState, sync::dispatcher::outbox_depth};
use axum::{extract::State, http::header, response::IntoResponse, routing::get, Router};

pub fn router() -> Router<ServerState> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics(State(state): State<ServerState>) -> impl IntoResponse {
    let depth = match outbox_depth(state.db()).await {
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

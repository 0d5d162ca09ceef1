//! Routes outside Leptos, grouped by resource; each module exposes `router()`.
//! Every error they answer is the contract's envelope, `{code, message}`.

pub mod account;
pub mod datasets;
pub mod events;
pub mod health;
pub mod internal;
pub mod metrics;
pub mod query;
pub mod versions;

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use contract::ErrorBody;

/// An error answer with the envelope every route uses.
pub fn error_response(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (status, Json(ErrorBody::new(code, message))).into_response()
}

//! Routes outside Leptos, grouped by resource; each module exposes `router()`.

pub mod datasets;
pub mod events;
pub mod health;
pub mod internal;
pub mod metrics;

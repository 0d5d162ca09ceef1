//! The `servicetsunami` server: the Leptos app over axum, dataset uploads and
//! the operational endpoints.
//!
//! A tour, one line per module:
//! - [`config`]: typed settings from the environment; errors name the variable.
//! - [`telemetry`]: tracing subscriber (pretty or JSON logs).
//! - [`startup`]: builds the application (pool, migrations, storage, router) and runs it.
//! - [`http`]: the non-Leptos routes, one module per resource (`datasets`, `health`).
//! - [`ingest`]: format detection while an upload streams, then DuckDB → Parquet.
//! - [`live`]: one Postgres listener fanning sync-state changes out to SSE streams.
//! - [`sync`]: the durable lakehouse sync on Restate (service, outbox dispatcher, MCP client).

pub mod config;
pub mod http;
pub mod ingest;
pub mod live;
pub mod startup;
pub mod sync;
pub mod telemetry;

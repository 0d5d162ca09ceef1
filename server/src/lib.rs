//! The `servicetsunami` server: the Leptos app over axum, dataset uploads,
//! the live status stream, the durable sync and the operational endpoints.
//!
//! A tour, one line per module:
//! - [`config`]: typed settings from the environment; errors name the variable.
//! - [`auth`]: accounts, sessions, tokens, signed download links, and the edge middleware
//!   (Host allow-list, CSRF, security headers, the request's principal).
//! - [`telemetry`]: tracing subscriber (pretty or JSON logs).
//! - [`startup`]: builds the application (pool, migrations, storage, state, router) and runs it.
//! - [`state`]: `ServerState`, the one state of the routes outside Leptos.
//! - [`http`]: the routes outside Leptos, one module per resource: `POST /api/datasets`,
//!   `GET /api/events`, the account forms (`/auth/…`, `/account/…`), `GET /healthz`,
//!   `GET /readyz`; and the internal listener's signed downloads, token introspection
//!   and `GET /metrics`.
//! - [`ingest`]: receiving an upload (format detection while it streams), then DuckDB → Parquet.
//! - [`storage`]: where uploads are written, and the DuckDB instance that converts them.
//! - [`catalog`]: the write side of the catalogue (tenants, new dataset rows).
//! - [`live`]: one Postgres listener fanning sync-state changes out to SSE streams.
//! - [`sync`]: the durable lakehouse sync on Restate (ledger, service, outbox dispatcher).

/// The argument that starts this binary as a query's worker process
/// (`app::ssr::query::work`, through `contract::isolate`).
pub const QUERY_WORKER_COMMAND: &str = "query-worker";

pub mod auth;
pub mod catalog;
pub mod config;
pub mod http;
pub mod ingest;
pub mod live;
pub mod removal;
pub mod startup;
pub mod state;
pub mod storage;
pub mod sync;
pub mod telemetry;
pub mod versions;

//! The ServiceTsunami web application, shared by the server (feature `ssr`) and
//! the browser bundle (feature `hydrate`).
//!
//! A tour, one line per module:
//! - [`domain`]: parsed domain types (`DatasetName`, `ColumnName`, sync status) and
//!   column-name normalisation. Pure code, compiled on both sides.
//! - [`model`]: the data transfer types the pages render and server functions return.
//! - [`error`]: `AppError`, the one error type server functions return; it survives the wire.
//! - [`api`]: the server functions (list datasets, dataset detail, sync detail, retry, sync all).
//! - [`pages`]: the Leptos components, one module per page, plus the shell.
//! - [`format`]: display helpers shared by SSR and hydration so both render the same text.
//! - `ssr` (server only): `AppState`, the Postgres catalogue and the DuckDB reader of the
//!   local Parquet files.
// The dataset page's view type is deep; the browser build needs more than 128.
#![recursion_limit = "256"]

pub mod api;
pub mod domain;
pub mod error;
pub mod format;
pub mod model;
pub mod pages;
#[cfg(feature = "ssr")]
pub mod ssr;

pub use pages::{shell, App};

/// Entry point of the browser bundle. The pages are islands: the server
/// renders everything, and only the interactive islands hydrate (see
/// `pages/mod.rs`); the last one, `HydrationDone`, marks the page ready.
#[cfg(feature = "hydrate")]
pub fn hydrate() {
    leptos::mount::hydrate_islands();
}

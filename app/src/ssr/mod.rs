//! Server-only code the pages need: the application state, reading the
//! Postgres catalogue, reading the local Parquet files, and the port through
//! which pages ask for syncs. Writes (uploads, sync transitions) live in the
//! server crate.

pub mod account;
pub mod auth;
pub mod catalog;
pub mod monitor;
pub mod query;
pub mod reader;
pub mod sql;
mod state;
pub mod sync;

pub use reader::{DatasetReader, EngineLimits, ReadError};
pub use state::{AppState, AppStateInner};
pub use sync::{DatasetRemoval, DeleteOutcome, ResyncOutcome, SyncControl};

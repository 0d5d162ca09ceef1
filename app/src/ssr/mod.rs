//! Server-only code: application state, the Postgres catalogue and the DuckDB
//! engine over the local Parquet files.

pub mod catalog;
pub mod sql;
mod state;
pub mod storage;
pub mod sync_requests;

pub use state::{AppState, AppStateInner};
pub use storage::{Storage, StorageError};

//! The contract between the ServiceTsunami server and its MCP server, and the
//! small pieces both binaries share. The core is serde-only and compiles for
//! the browser too (the upload page shows [`names`]' output).
//!
//! A tour, one line per module:
//! - [`access`]: token introspection (which tenant an assistant's token acts for).
//! - [`tools`]: the MCP tools' names, typed arguments and typed results.
//! - [`names`]: THE column-name normaliser (dlt's snake_case, letters kept).
//! - [`error`]: the `{code, message}` error envelope and the retryable marker.
//! - [`env`]: typed settings from the environment (`Env`, `ConfigError`, byte sizes).
//! - `process` (feature `server`): `shutdown_signal` and the constant-time bearer check.
//! - `isolate` (feature `server`): one job in a child process with a hard memory cap.
//! - `client` (feature `client`): the typed MCP client with deadlines.

pub mod access;
pub mod env;
pub mod error;
pub mod names;
/// THE null tokens: cells (after trimming) that mean "no value". The
/// upload reads CSV with them as NULL and silver cleans with them, so the
/// preview, the column statistics and silver agree. Besides R's `NA` and
/// the usual words: Excel's and Google Sheets' `#N/A` (a lookup that found
/// nothing, exported as text), and pandas' `nan` and `<NA>` (a missing value
/// written with `astype(str)`), which would otherwise turn a column of
/// numbers into text. And `\N`, the null of MySQL's `SELECT … INTO
/// OUTFILE` and mysqldump `--tab`, PostgreSQL's `COPY` in text format and
/// Hive's exports (an upload whose quoted values escape with `\` keeps it
/// as text, since DuckDB takes no escape character inside a null string;
/// silver cleans it still). Not `None`: it is a real answer ("allergies:
/// None").
pub const NULL_TOKENS: [&str; 12] = [
    "", "NULL", "null", "N/A", "NA", "n/a", "-", "NaN", "nan", "#N/A", "<NA>", "\\N",
];
/// How every Parquet file of the project is written (`COPY … TO … (…)`):
/// the app's uploads, versions and downloads, and the local lakehouse's
/// silver files. zstd, and row groups of DuckDB's 122,880 rows or 32 MB
/// held in memory, whichever comes first. The writer holds a row group of
/// every column until it is full: for a file of hundreds of columns a whole
/// default row group is hundreds of MB, more than an engine's memory limit
/// (at 192 MB, 250 columns converted 4.6x slower, spilling, and 500 not at
/// all). Narrow files fill their rows first, so their files are unchanged.
pub const PARQUET_OPTIONS: &str = "FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE_BYTES '32MB'";
pub mod tools;

#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "server")]
pub mod isolate;
#[cfg(feature = "server")]
pub mod process;
#[cfg(feature = "server")]
pub mod serve;

pub use error::{ErrorBody, RETRYABLE_META_KEY};

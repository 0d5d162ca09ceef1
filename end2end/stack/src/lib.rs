//! The one way to start ServiceTsunami's services outside production: the
//! Rust integration tests, the benchmarks, the Playwright suite (through the
//! `stack` CLI), `.ci/serve` and the MCP client check all use it.
//!
//! A tour, one line per module:
//! - [`locate`]: where the binaries are (restate-server's own binary, never
//!   npm's Node wrapper, so a kill really kills it; ours next to the caller).
//! - [`wait`]: free ports and condition polling with a deadline.
//! - [`restate`]: restate-server with its own data dir and ports, and the `restate` CLI.
//! - [`mcp`]: the MCP server, as a process or in-process (a library with
//!   `Application::build`), stoppable and restartable on the same port.
//! - [`app`]: the `servicetsunami` binary as a process.
//! - [`db`]: test databases cloned from one migrated template, dropped after use.
//! - [`postgres`]: a PostgreSQL server of its own, to restart or crash.
//! - [`proxy`]: a TCP proxy that can be told to cut and refuse connections.
//! - [`faults`]: the fault-injection run over all of them (the `faults` binary).
//! - [`files`]: real-world test files (nulls as `NA`, time-zone timestamps).
//! - [`report`]: the benchmark report, its slopes and plots (the `bench-report` binary).

pub mod app;
pub mod db;
pub mod faults;
pub mod files;
pub mod locate;
pub mod mcp;
pub mod postgres;
pub mod proxy;
pub mod report;
pub mod restate;
pub mod slow;
pub mod wait;

pub use app::AppProcess;
pub use db::TestDb;
pub use mcp::Mcp;
pub use restate::{Restate, RestateCluster};

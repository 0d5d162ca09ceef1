//! Integration tests: the real router on a real port, against a real Postgres
//! (one database per test) and real DuckDB.

mod helpers;
mod pages;
mod upload;
mod upload_rejects;

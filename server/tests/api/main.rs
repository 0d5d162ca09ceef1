//! Integration tests: the real router on a real port, against a real Postgres
//! (one database per test) and real DuckDB.

mod abuse;
mod accounts;
mod delete;
mod events;
mod helpers;
mod internal;
mod monitoring;
mod pages;
mod query;
mod sync;
mod tenancy;
mod upload;
mod upload_rejects;
mod versions;

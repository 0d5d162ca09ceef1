//! Where the embedded lakehouse runs a tenant's `query`: a fresh in-memory
//! DuckDB instance per query, so that a bug in [`crate::query_guard`] is not
//! a breach.
//!
//! The instance holds the tenant's views that the query names and nothing
//! else (no lakehouse file is attached, so no other tenant's table exists
//! in it), may open exactly the Parquet files those views read
//! (`allowed_paths`, with `enable_external_access = false`: no other file,
//! no directory listing, no URL, no ATTACH, no COPY), loads and installs no
//! extension, has its own `memory_limit` and `threads` and no spill
//! directory, and then `lock_configuration = true`: nothing the query says
//! can change any of it.

use crate::config::SandboxLimits;
use crate::domain::{Ident, TenantId};
use crate::error::{BackendError, ToolError};
use crate::plan::Dialect;
use duckdb::{Connection, InterruptHandle};
use std::sync::Arc;

const D: Dialect = Dialect::DuckDb;

/// One of the tenant's views as the lakehouse defines it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SandboxView {
    pub schema: String,
    pub name: String,
    /// Its `CREATE VIEW "schema"."name" AS …` (DuckDB keeps the schema, not
    /// the catalog, in a view's SQL).
    pub sql: String,
    /// The Parquet files it reads.
    pub files: Vec<String>,
}

impl SandboxView {
    /// How [`crate::query_guard::Checked::tables`] names it.
    pub fn key(&self) -> (String, String) {
        (self.schema.to_lowercase(), self.name.to_lowercase())
    }
}

pub struct Sandbox {
    conn: Connection,
}

fn db(e: duckdb::Error) -> ToolError {
    ToolError::Backend(BackendError::DuckDb(Box::new(e)))
}

impl Sandbox {
    /// A new, empty instance with the limits applied (not yet locked: the
    /// guard parses on it, then [`Sandbox::admit`] fills and locks it).
    pub fn open(limits: SandboxLimits) -> Result<Self, ToolError> {
        let config = duckdb::Config::default()
            .enable_autoload_extension(false)
            .and_then(|c| c.with("autoinstall_known_extensions", "false"))
            .and_then(|c| c.with("threads", limits.threads.to_string()))
            .and_then(|c| c.with("memory_limit", format!("{}B", limits.memory_bytes)))
            // In memory and no spill directory: a query that outgrows its
            // memory fails instead of writing to disk.
            .and_then(|c| c.with("temp_directory", ""))
            .map_err(db)?;
        let conn = Connection::open_in_memory_with_flags(config).map_err(db)?;
        Ok(Self { conn })
    }

    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    pub fn interrupt_handle(&self) -> Arc<InterruptHandle> {
        self.conn.interrupt_handle()
    }

    /// Creates the catalog, the tenant's two schemas and `views` (the
    /// catalog's names, so `schema.table` and `catalog.schema.table` both
    /// resolve), allows exactly their files, shuts every other door and
    /// locks the configuration.
    pub fn admit(
        &self,
        catalog: &Ident,
        tenant: &TenantId,
        views: &[SandboxView],
    ) -> Result<&Connection, ToolError> {
        let files: Vec<String> = views
            .iter()
            .flat_map(|v| v.files.iter().map(|f| D.literal(f)))
            .collect();
        let mut setup = format!(
            "ATTACH ':memory:' AS {cat}; USE {cat}; CREATE SCHEMA {b}; CREATE SCHEMA {s};
             SET allowed_directories = []; SET allowed_paths = [{files}];
             SET enable_external_access = false;",
            cat = D.ident(catalog.as_str()),
            b = D.ident(tenant.bronze_schema().as_str()),
            s = D.ident(tenant.silver_schema().as_str()),
            files = files.join(", "),
        );
        for view in views {
            setup.push_str(&view.sql);
            if !view.sql.trim_end().ends_with(';') {
                setup.push(';');
            }
        }
        setup.push_str("SET lock_configuration = true;");
        self.conn.execute_batch(&setup).map_err(db)?;
        Ok(&self.conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant() -> TenantId {
        TenantId::parse("acme").unwrap()
    }

    /// Two Parquet files: one the tenant's view reads, one it does not.
    fn files(dir: &std::path::Path) -> (String, String) {
        let own = dir.join("own.parquet").to_string_lossy().into_owned();
        let other = dir.join("other.parquet").to_string_lossy().into_owned();
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(&format!(
            "COPY (SELECT 1 AS id, 'mine' AS who) TO {}; COPY (SELECT 2 AS id, 'theirs' AS who) TO {};",
            D.literal(&own),
            D.literal(&other)
        ))
        .unwrap();
        (own, other)
    }

    fn admitted(own: &str) -> Sandbox {
        let sandbox = Sandbox::open(SandboxLimits::default()).unwrap();
        let view = SandboxView {
            schema: "acme_silver".into(),
            name: "t".into(),
            sql: format!(
                "CREATE VIEW acme_silver.t AS SELECT * FROM read_parquet({})",
                D.literal(own)
            ),
            files: vec![own.to_owned()],
        };
        sandbox
            .admit(&Ident::parse("lh").unwrap(), &tenant(), &[view])
            .unwrap();
        sandbox
    }

    #[test]
    fn reads_its_views_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let (own, other) = files(dir.path());
        let sandbox = admitted(&own);
        let conn = sandbox.connection();
        let who: String = conn
            .query_row("SELECT who FROM lh.acme_silver.t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(who, "mine");
        let dir_glob = format!("{}/*.parquet", dir.path().display());
        for sql in [
            format!("SELECT * FROM {}", D.literal(&other)),
            format!("SELECT * FROM read_parquet({})", D.literal(&dir_glob)),
            format!("SELECT * FROM glob({})", D.literal(&dir_glob)),
            "SELECT * FROM read_csv('/etc/passwd')".to_owned(),
            "SELECT * FROM 'http://127.0.0.1:9/x.parquet'".to_owned(),
            format!("COPY (SELECT 1) TO {}", D.literal(&own)),
            format!(
                "ATTACH {} AS x",
                D.literal(&dir.path().join("x.db").to_string_lossy())
            ),
            "SET enable_external_access = true".to_owned(),
            "SET memory_limit = '20GB'".to_owned(),
            "SET allowed_directories = ['/']".to_owned(),
            "LOAD httpfs".to_owned(),
            "INSTALL httpfs".to_owned(),
        ] {
            assert!(conn.execute_batch(&sql).is_err(), "{sql} ran");
        }
        // What exists is the tenant's own view and the empty schemas.
        let views: Vec<String> = conn
            .prepare(
                "SELECT schema_name || '.' || view_name FROM duckdb_views() WHERE NOT internal",
            )
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(views, ["acme_silver.t"]);
    }

    #[test]
    fn a_view_outside_the_allowed_files_cannot_be_made() {
        let dir = tempfile::tempdir().unwrap();
        let (own, other) = files(dir.path());
        let sandbox = Sandbox::open(SandboxLimits::default()).unwrap();
        let view = SandboxView {
            schema: "acme_silver".into(),
            name: "t".into(),
            sql: format!(
                "CREATE VIEW acme_silver.t AS SELECT * FROM read_parquet({})",
                D.literal(&other)
            ),
            files: vec![own],
        };
        assert!(sandbox
            .admit(&Ident::parse("lh").unwrap(), &tenant(), &[view])
            .is_err());
    }

    #[test]
    fn memory_is_bounded() {
        let sandbox = Sandbox::open(SandboxLimits {
            memory_bytes: 32 << 20,
            threads: 1,
        })
        .unwrap();
        let conn = sandbox
            .admit(&Ident::parse("lh").unwrap(), &tenant(), &[])
            .unwrap();
        let err = conn
            .query_row(
                "SELECT count(DISTINCT repeat('x', 200) || i) FROM range(5000000) t(i)",
                [],
                |r| r.get::<_, i64>(0),
            )
            .unwrap_err();
        assert!(err.to_string().contains("Out of Memory"), "{err}");
    }
}

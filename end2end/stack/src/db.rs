//! Test databases: each one a clone of a template database that holds the
//! migrated schema, so a test pays for `CREATE DATABASE … TEMPLATE`, not for
//! running every migration. The template is named after a hash of the
//! migrations, built once (under an advisory lock, so parallel tests and
//! processes build it once between them), and rebuilt when they change.

use sqlx::{Connection, Executor, PgConnection};
use uuid::Uuid;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");

/// The Postgres server tests create databases on (`TEST_DATABASE_URL`).
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// `url` with its database replaced by `db`.
pub fn with_database(url: &str, db: &str) -> String {
    let base = url.rsplit_once('/').map_or(url, |(base, _)| base);
    format!("{base}/{db}")
}

/// The template's name: `st_template_` and a hash of every migration.
fn template_name() -> String {
    let mut all = String::new();
    for m in MIGRATOR.iter() {
        all.push_str(&m.version.to_string());
        all.push_str(&String::from_utf8_lossy(&m.checksum));
    }
    format!("st_template_{}", contract::names::fnv1a_hex(&all))
}

/// Creates the template unless it exists; returns its name.
async fn ensure_template(admin: &mut PgConnection) -> anyhow::Result<String> {
    let name = template_name();
    // Any constant key: one builder at a time across processes.
    admin.execute("SELECT pg_advisory_lock(724011)").await?;
    let built = async {
        let exists: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                .bind(&name)
                .fetch_one(&mut *admin)
                .await?;
        if !exists {
            let building = format!("{name}_building");
            admin
                .execute(format!(r#"DROP DATABASE IF EXISTS "{building}" WITH (FORCE)"#).as_str())
                .await?;
            admin
                .execute(format!(r#"CREATE DATABASE "{building}""#).as_str())
                .await?;
            let mut conn = PgConnection::connect(&with_database(&admin_url(), &building)).await?;
            MIGRATOR.run(&mut conn).await?;
            conn.close().await?;
            admin
                .execute(format!(r#"ALTER DATABASE "{building}" RENAME TO "{name}""#).as_str())
                .await?;
            // Templates of older migrations are of no use any more.
            let stale: Vec<String> = sqlx::query_scalar(
                "SELECT datname FROM pg_database WHERE datname LIKE 'st\\_template\\_%' AND datname <> $1",
            )
            .bind(&name)
            .fetch_all(&mut *admin)
            .await?;
            for old in stale {
                let _ = admin
                    .execute(format!(r#"DROP DATABASE IF EXISTS "{old}" WITH (FORCE)"#).as_str())
                    .await;
            }
        }
        anyhow::Ok(())
    }
    .await;
    admin.execute("SELECT pg_advisory_unlock(724011)").await?;
    built?;
    Ok(name)
}

/// A database of one's own, migrated, dropped when this is dropped.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    /// A fresh database named `{prefix}_{uuid}`.
    pub async fn create(prefix: &str) -> anyhow::Result<Self> {
        let mut admin = PgConnection::connect(&admin_url()).await?;
        let template = ensure_template(&mut admin).await?;
        let name = format!("{prefix}_{}", Uuid::new_v4().simple());
        admin
            .execute(format!(r#"CREATE DATABASE "{name}" TEMPLATE "{template}""#).as_str())
            .await?;
        admin.close().await?;
        Ok(Self {
            url: with_database(&admin_url(), &name),
            name,
        })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop runs outside async context; a small runtime of its own does the work.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                if let Ok(mut admin) = PgConnection::connect(&admin_url()).await {
                    let _ = admin
                        .execute(
                            format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#).as_str(),
                        )
                        .await;
                }
            });
        })
        .join();
    }
}

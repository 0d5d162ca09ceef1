//! What the benchmarks share: a `servicetsunami` server started fresh, with a
//! database of its own, and stopped (database dropped) at the end.

use anyhow::Context;
use std::{
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};

pub struct BenchServer {
    process: tokio::process::Child,
    pub pid: u32,
    pub port: u16,
    /// The server's own database, e.g. to seed rows. (Each example compiles
    /// this module on its own, and not every one seeds rows.)
    #[allow(dead_code)]
    pub database_url: String,
    admin: sqlx::PgConnection,
    db_name: String,
}

impl BenchServer {
    /// Creates a database on the Postgres at `TEST_DATABASE_URL` (default
    /// postgres://postgres@127.0.0.1:5432/postgres), starts the server binary
    /// next to the examples' directory with `env` added to the database,
    /// address and data directory, and waits until `/readyz` answers.
    pub async fn start(data: &Path, env: &[(&str, String)], stdout: Stdio) -> anyhow::Result<Self> {
        let admin_url = std::env::var("TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let base = admin_url
            .rsplit_once('/')
            .map_or(admin_url.as_str(), |(b, _)| b)
            .to_owned();
        let db_name = format!("st_bench_{}", uuid::Uuid::new_v4().simple());
        let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url).await?;
        sqlx::Executor::execute(
            &mut admin,
            format!("CREATE DATABASE \"{db_name}\"").as_str(),
        )
        .await?;
        let database_url = format!("{base}/{db_name}");

        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let exe = server_binary()?;
        let process = tokio::process::Command::new(&exe)
            .env("DATABASE_URL", &database_url)
            .env("DATA_STORAGE_PATH", data)
            .env("LEPTOS_SITE_ADDR", format!("127.0.0.1:{port}"))
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(stdout)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("Failed to start {}", exe.display()))?;
        let pid = process.id().context("server pid")?;
        let server = Self {
            process,
            pid,
            port,
            database_url,
            admin,
            db_name,
        };

        let client = reqwest::Client::new();
        let ready = format!("http://127.0.0.1:{port}/readyz");
        for attempt in 0.. {
            let up = client
                .get(&ready)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if up {
                break;
            }
            anyhow::ensure!(attempt < 300, "server did not become ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(server)
    }

    /// SIGTERM (so the server shuts down as it would in production), then
    /// drops its database.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status();
        if tokio::time::timeout(Duration::from_secs(10), self.process.wait())
            .await
            .is_err()
        {
            let _ = self.process.kill().await;
        }
        sqlx::Executor::execute(
            &mut self.admin,
            format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.db_name).as_str(),
        )
        .await?;
        Ok(())
    }
}

/// Examples live in target/debug/examples; the server binary one level up.
fn server_binary() -> anyhow::Result<PathBuf> {
    Ok(std::env::current_exe()?
        .parent()
        .and_then(Path::parent)
        .context("target directory")?
        .join("servicetsunami"))
}

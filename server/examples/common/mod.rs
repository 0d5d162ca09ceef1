//! What the benchmarks share: a `servicetsunami` server process started fresh
//! through the stack harness, with a database of its own (cloned from the
//! migrated template), and stopped (database dropped) at the end.

use stack::{AppProcess, TestDb};
use std::{collections::HashMap, path::Path, process::Stdio, time::Duration};

pub struct BenchServer {
    app: AppProcess,
    pub pid: u32,
    pub port: u16,
    /// The server's own database (`database.url`, e.g. to seed rows).
    pub database: TestDb,
}

impl BenchServer {
    /// Starts the server binary with `env` added to its database and data
    /// directory, and waits until `/readyz` answers.
    pub async fn start(data: &Path, env: &[(&str, String)], stdout: Stdio) -> anyhow::Result<Self> {
        let database = TestDb::create("st_bench").await?;
        let mut vars: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        vars.insert("DATABASE_URL".into(), database.url.clone());
        vars.insert("DATA_STORAGE_PATH".into(), data.display().to_string());
        let port = stack::wait::free_port();
        let app = AppProcess::start(port, &vars, stdout, Duration::from_secs(30)).await?;
        Ok(Self {
            pid: app.pid(),
            port,
            app,
            database,
        })
    }

    /// SIGTERM (so the server shuts down as it would in production), then
    /// drops its database.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.app.stop(Duration::from_secs(10)).await;
        drop(self.database);
        Ok(())
    }
}

//! What the benchmarks share: a `servicetsunami` server process started fresh
//! through the stack harness, with a database of its own (cloned from the
//! migrated template) and a personal access token of its first admin, and
//! stopped (database dropped) at the end.

use stack::{AppProcess, TestDb};
use std::{collections::HashMap, path::Path, process::Stdio, time::Duration};

pub struct BenchServer {
    app: AppProcess,
    pub pid: u32,
    pub port: u16,
    /// The server's own database (`database.url`, e.g. to seed rows).
    pub database: TestDb,
    /// A personal access token of the first admin (default tenant).
    pub token: String,
}

const ADMIN_EMAIL: &str = "bench@example.org";
const ADMIN_PASSWORD: &str = "bench admin password";

/// A client that sends the token on every request.
pub fn authed_client(token: &str, http1_only: bool) -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("authorization", format!("Bearer {token}").parse()?);
    let mut builder = reqwest::Client::builder().default_headers(headers);
    if http1_only {
        builder = builder.http1_only();
    }
    Ok(builder.build()?)
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
        vars.insert("ADMIN_EMAIL".into(), ADMIN_EMAIL.into());
        vars.insert("ADMIN_PASSWORD".into(), ADMIN_PASSWORD.into());
        vars.insert(
            "INTERNAL_ADDR".into(),
            format!("127.0.0.1:{}", stack::wait::free_port()),
        );
        let port = stack::wait::free_port();
        let app = AppProcess::start(port, &vars, stdout, Duration::from_secs(30)).await?;
        let token = stack::app::personal_token(
            &format!("http://127.0.0.1:{port}"),
            ADMIN_EMAIL,
            ADMIN_PASSWORD,
        )
        .await?;
        Ok(Self {
            pid: app.pid(),
            port,
            app,
            database,
            token,
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

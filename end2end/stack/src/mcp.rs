//! The MCP server (`servicetsunami-mcp`) with its own local lakehouse, as a
//! process (killable, for the end-to-end suite and benchmarks) or in-process
//! (the library's `Application`, for the server's tests: no process to
//! spawn), stoppable and restartable on the same port and lakehouse.

use crate::{locate, restate::DataDir, wait};
use anyhow::Context;
use contract::client::{CallError, McpClient};
use secrecy::SecretString;
use serde_json::Value;
use std::{
    collections::HashMap,
    process::{Child, Command, Stdio},
    time::Duration,
};
use tokio_util::sync::CancellationToken;

/// The key tests and benchmarks use unless they pick their own.
pub const TEST_KEY: &str = "stack-test-key-0123456789abcdef";

enum Running {
    Stopped,
    Process(Child),
    InProcess {
        stop: CancellationToken,
        task: tokio::task::JoinHandle<anyhow::Result<()>>,
    },
}

pub struct Mcp {
    pub port: u16,
    /// The app's internal listener the server downloads from and checks
    /// assistants' tokens at (`MCP_INTERNAL_BASE_URL`); give the app
    /// `INTERNAL_ADDR=127.0.0.1:<this>`.
    pub app_internal_port: u16,
    key: String,
    pub lakehouse: DataDir,
    in_process: bool,
    /// More settings (`MCP_*`, `LAKEHOUSE_*`, `DATABRICKS_*`).
    pub env: HashMap<String, String>,
    running: Running,
}

impl Mcp {
    fn new(in_process: bool) -> Self {
        Self {
            port: wait::free_port(),
            app_internal_port: wait::free_port(),
            key: TEST_KEY.to_owned(),
            lakehouse: DataDir::temp(),
            in_process,
            env: HashMap::new(),
            running: Running::Stopped,
        }
    }

    /// The server as a library inside this process, not started yet.
    pub fn in_process() -> Self {
        Self::new(true)
    }

    /// The `servicetsunami-mcp` binary, not started yet.
    pub fn process() -> Self {
        Self::new(false)
    }

    pub fn with_key(mut self, key: &str) -> Self {
        key.clone_into(&mut self.key);
        self
    }

    pub fn with_port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    pub fn with_app_internal_port(mut self, port: u16) -> Self {
        self.app_internal_port = port;
        self
    }

    pub fn with_lakehouse(mut self, dir: DataDir) -> Self {
        self.lakehouse = dir;
        self
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn pid(&self) -> Option<u32> {
        match &self.running {
            Running::Process(child) => Some(child.id()),
            _ => None,
        }
    }

    pub fn is_running(&self) -> bool {
        !matches!(self.running, Running::Stopped)
    }

    /// Every variable the server is started with.
    pub fn vars(&self) -> HashMap<String, String> {
        let mut vars = HashMap::from([
            ("MCP_API_KEY".to_owned(), self.key.clone()),
            (
                "MCP_BIND_ADDR".to_owned(),
                format!("127.0.0.1:{}", self.port),
            ),
            (
                "LAKEHOUSE_PATH".to_owned(),
                self.lakehouse.path().display().to_string(),
            ),
            (
                "MCP_INTERNAL_BASE_URL".to_owned(),
                format!("http://127.0.0.1:{}", self.app_internal_port),
            ),
        ]);
        vars.extend(self.env.clone());
        vars
    }

    /// Starts it and waits until `/healthz` answers.
    pub async fn start(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(!self.is_running(), "the MCP server is already running");
        let vars = self.vars();
        self.running = if self.in_process {
            // This binary is not the MCP server: its queries run in the real one.
            let worker = locate::cargo_bin("servicetsunami-mcp")?
                .to_string_lossy()
                .into_owned();
            let settings = servicetsunami_mcp::config::Settings::from_lookup(|k| {
                vars.get(k)
                    .cloned()
                    .or_else(|| (k == "MCP_QUERY_WORKER_PROGRAM").then(|| worker.clone()))
            })?;
            let app = servicetsunami_mcp::startup::Application::build(settings).await?;
            let stop = app.shutdown_token();
            let task = tokio::spawn(app.run_until_stopped());
            Running::InProcess { stop, task }
        } else {
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.lakehouse.path().join("mcp.log"))?;
            let child = Command::new(locate::cargo_bin("servicetsunami-mcp")?)
                .envs(&vars)
                .env(
                    "RUST_LOG",
                    std::env::var("MCP_RUST_LOG").unwrap_or_else(|_| "warn".to_owned()),
                )
                .stdin(Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .spawn()
                .context("servicetsunami-mcp starts")?;
            Running::Process(child)
        };
        wait::http_ok(
            &format!("http://127.0.0.1:{}/healthz", self.port),
            "servicetsunami-mcp",
            Duration::from_secs(30),
        )
        .await
    }

    /// A process is killed (SIGKILL); an in-process server is cancelled and
    /// awaited. Either way the port is closed when this returns.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        match std::mem::replace(&mut self.running, Running::Stopped) {
            Running::Stopped => {}
            Running::Process(mut child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            Running::InProcess { stop, task } => {
                stop.cancel();
                task.await??;
            }
        }
        wait::port_closed(self.port, Duration::from_secs(10)).await
    }

    /// A typed client for this server.
    pub fn client(&self) -> McpClient {
        McpClient::new(
            self.url(),
            SecretString::from(self.key.clone()),
            contract::client::Deadlines::default(),
        )
    }

    /// Calls a tool by name; the structured output or why it failed.
    pub async fn call(&self, tool: &'static str, args: Value) -> Result<Value, CallError> {
        self.client().call_json(tool, args).await
    }
}

impl Drop for Mcp {
    fn drop(&mut self) {
        match std::mem::replace(&mut self.running, Running::Stopped) {
            Running::Stopped => {}
            Running::Process(mut child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            Running::InProcess { stop, .. } => stop.cancel(),
        }
    }
}

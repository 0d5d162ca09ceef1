//! restate-server with its own data directory and ports, restartable on the
//! same ones (a restart keeps its journal), and the `restate` CLI against it.
//! Every port, the cluster-internal node port included, is bound to loopback.

use crate::{locate, wait};
use anyhow::Context;
use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

/// Where a service keeps its data: a temporary directory removed with it, or
/// a directory of the caller's that is kept.
pub enum DataDir {
    Temp(tempfile::TempDir),
    Kept(PathBuf),
}

impl DataDir {
    pub fn temp() -> Self {
        Self::Temp(tempfile::tempdir().expect("a temporary directory"))
    }

    pub fn path(&self) -> &Path {
        match self {
            Self::Temp(dir) => dir.path(),
            Self::Kept(path) => path,
        }
    }
}

pub struct Restate {
    pub ingress_port: u16,
    pub admin_port: u16,
    node_port: u16,
    pub data: DataDir,
    child: Option<Child>,
}

impl Default for Restate {
    fn default() -> Self {
        Self::new()
    }
}

impl Restate {
    /// Free ports and a temporary data directory, not started yet.
    pub fn new() -> Self {
        Self::at(
            wait::free_port(),
            wait::free_port(),
            wait::free_port(),
            DataDir::temp(),
        )
    }

    /// Given ports and data directory, not started yet.
    pub fn at(ingress_port: u16, admin_port: u16, node_port: u16, data: DataDir) -> Self {
        Self {
            ingress_port,
            admin_port,
            node_port,
            data,
            child: None,
        }
    }

    /// A new server, started.
    pub async fn started() -> anyhow::Result<Self> {
        let mut restate = Self::new();
        restate.start().await?;
        Ok(restate)
    }

    pub fn ingress_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ingress_port)
    }

    pub fn admin_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.admin_port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn log_path(&self) -> PathBuf {
        self.data.path().join("restate.log")
    }

    /// Starts the server and waits until its admin API and ingress answer.
    pub async fn start(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.child.is_none(), "restate-server is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .context("the restate-server log")?;
        let child = Command::new(locate::restate_server_bin()?)
            .arg("--base-dir")
            .arg(self.data.path())
            .arg("--no-logo")
            .env(
                "RESTATE_INGRESS__BIND_ADDRESS",
                format!("127.0.0.1:{}", self.ingress_port),
            )
            .env(
                "RESTATE_ADMIN__BIND_ADDRESS",
                format!("127.0.0.1:{}", self.admin_port),
            )
            // The node port is cluster-internal: loopback only.
            .env(
                "RESTATE_BIND_ADDRESS",
                format!("127.0.0.1:{}", self.node_port),
            )
            .env(
                "RESTATE_LOG_FILTER",
                std::env::var("RESTATE_LOG_FILTER").unwrap_or_else(|_| "warn".to_owned()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("restate-server starts")?;
        self.child = Some(child);
        let within = Duration::from_secs(30);
        wait::http_ok(
            &format!("{}/health", self.admin_url()),
            "restate-server admin",
            within,
        )
        .await?;
        wait::http_ok(
            &format!("{}/restate/health", self.ingress_url()),
            "restate-server ingress",
            within,
        )
        .await
    }

    /// SIGKILL: no chance to flush or shut down cleanly.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Runs the real `restate` CLI against this server; returns its stdout.
    pub fn cli(&self, args: &[&str]) -> anyhow::Result<String> {
        let output = Command::new(locate::restate_cli_bin()?)
            .args(args)
            .env("RESTATE_ADMIN_URL", self.admin_url())
            .env("RESTATE_INGRESS_URL", self.ingress_url())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .context("the restate CLI runs")?;
        anyhow::ensure!(
            output.status.success(),
            "restate {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

impl Drop for Restate {
    fn drop(&mut self) {
        self.kill();
    }
}

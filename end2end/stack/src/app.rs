//! The `servicetsunami` binary as a process: for the benchmarks (which
//! measure the real process), the end-to-end suite and `.ci/serve`.

use crate::{locate, wait};
use anyhow::Context;
use std::{
    collections::HashMap,
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

pub struct AppProcess {
    child: Child,
    pub port: u16,
}

impl AppProcess {
    /// Starts the server on `port` with `env` (which must hold at least
    /// `DATABASE_URL` and `DATA_STORAGE_PATH`), its output to `stdout`, and
    /// waits until `/readyz` answers.
    pub async fn start(
        port: u16,
        env: &HashMap<String, String>,
        stdout: Stdio,
        within: Duration,
    ) -> anyhow::Result<Self> {
        let exe = locate::cargo_bin("servicetsunami")?;
        let child = Command::new(&exe)
            .envs(env)
            .env("LEPTOS_SITE_ADDR", format!("127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(stdout)
            .spawn()
            .with_context(|| format!("Failed to start {}", exe.display()))?;
        let app = Self { child, port };
        wait::http_ok(&format!("{}/readyz", app.url()), "servicetsunami", within).await?;
        Ok(app)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no chance to finish a request, commit, or clean up.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM (a graceful shutdown, as in production), then SIGKILL if it
    /// has not stopped within `grace`.
    pub async fn stop(mut self, grace: Duration) {
        terminate(self.child.id());
        let exited = wait::until(grace, "servicetsunami to stop", || {
            let done = matches!(self.child.try_wait(), Ok(Some(_)));
            async move { done.then_some(()) }
        })
        .await;
        if exited.is_err() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for AppProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Sends SIGTERM to `pid`.
pub fn terminate(pid: u32) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
}

/// Reads a process's `VmRSS` (KiB).
pub fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// Reads a process's `VmHWM` (KiB): the most it has held resident.
pub fn peak_rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmHWM:")
}

fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Signs in at `base` through the log-in form and makes a personal access
/// token (valid a day) through the Tokens form, as a person would.
pub async fn personal_token(base: &str, email: &str, password: &str) -> anyhow::Result<String> {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("origin", base.parse()?);
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .default_headers(headers)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()?;
    browser
        .post(format!("{base}/auth/login"))
        .form(&[("email", email), ("password", password)])
        .send()
        .await?;
    let made = browser
        .post(format!("{base}/account/tokens"))
        .form(&[("name", "stack"), ("expires_in_days", "1")])
        .send()
        .await?;
    // The form answers with a redirect to the page that shows the token once.
    let page = made
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .unwrap_or("/settings")
        .to_owned();
    let html = browser
        .get(format!("{base}{page}"))
        .send()
        .await?
        .text()
        .await?;
    let start = html
        .find("id=\"new-secret\"")
        .with_context(|| format!("no token on {page}"))?;
    let rest = &html[start..];
    let open = rest.find('>').map_or(rest.len(), |i| i + 1);
    let rest = &rest[open..];
    Ok(rest[..rest.find('<').unwrap_or(rest.len())].to_owned())
}

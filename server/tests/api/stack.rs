//! The rest of the sync stack as real processes on free ports: restate-server
//! (npm `@restatedev/restate-server`), the `restate` CLI, and the MCP server
//! binary `servicetsunami-mcp` with the embedded lakehouse.

use rmcp::{
    model::CallToolRequestParams,
    transport::{
        streamable_http_client::StreamableHttpClientTransportConfig, StreamableHttpClientTransport,
    },
    ServiceExt,
};
use serde_json::Value;
use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

pub const MCP_KEY: &str = "sync-test-key-0123456789abcdef";

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn npm_bin(name: &str) -> PathBuf {
    let path = repo_root().join("end2end/node_modules/.bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `npm ci` in end2end/ (bash .ci/test does)",
        path.display()
    );
    path
}

/// restate-server's own binary from its npm platform package. The package's
/// `.bin` entry is a Node wrapper that does not pass SIGKILL on: killing it
/// would leave the server running, orphaned (and a "killed" server serving).
fn restate_server_bin() -> PathBuf {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "x64",
        "aarch64" => "arm64",
        other => other,
    };
    let path = repo_root()
        .join("end2end/node_modules/@restatedev")
        .join(format!("restate-server-{}-{arch}", std::env::consts::OS))
        .join("bin/restate-server");
    assert!(
        path.exists(),
        "{} is missing: run `npm ci` in end2end/ (bash .ci/test does)",
        path.display()
    );
    path
}

/// The directory cargo puts this package's binaries in (next to `deps/`).
fn cargo_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the workspace's server-side packages together (bash .ci/test)",
        path.display()
    );
    path
}

async fn wait_until_answers(url: &str, what: &str) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client.get(url).send().await {
            if r.status().is_success() {
                return;
            }
        }
        assert!(Instant::now() < deadline, "{what} did not start ({url})");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// restate-server with its own data dir and ports; restartable on the same ones.
pub struct Restate {
    pub ingress_port: u16,
    pub admin_port: u16,
    node_port: u16,
    pub base_dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Restate {
    /// Picks ports without starting the server.
    pub fn new() -> Self {
        Self {
            ingress_port: free_port(),
            admin_port: free_port(),
            node_port: free_port(),
            base_dir: tempfile::tempdir().unwrap(),
            child: None,
        }
    }

    pub async fn started() -> Self {
        let mut r = Self::new();
        r.start().await;
        r
    }

    pub fn ingress_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ingress_port)
    }

    pub fn admin_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.admin_port)
    }

    pub async fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::File::create(self.base_dir.path().join("restate.log")).unwrap();
        let child = Command::new(restate_server_bin())
            .arg("--base-dir")
            .arg(self.base_dir.path())
            .arg("--no-logo")
            .env(
                "RESTATE_INGRESS__BIND_ADDRESS",
                format!("127.0.0.1:{}", self.ingress_port),
            )
            .env(
                "RESTATE_ADMIN__BIND_ADDRESS",
                format!("127.0.0.1:{}", self.admin_port),
            )
            .env(
                "RESTATE_BIND_ADDRESS",
                format!("127.0.0.1:{}", self.node_port),
            )
            .env("RESTATE_LOG_FILTER", "warn")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("restate-server starts");
        self.child = Some(child);
        wait_until_answers(
            &format!("{}/health", self.admin_url()),
            "restate-server admin",
        )
        .await;
        wait_until_answers(
            &format!("{}/restate/health", self.ingress_url()),
            "restate-server ingress",
        )
        .await;
    }

    /// SIGKILL: no chance to flush or shut down cleanly.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Runs the real `restate` CLI against this server; returns stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let output = Command::new(npm_bin("restate"))
            .args(args)
            .env("RESTATE_ADMIN_URL", self.admin_url())
            .env("RESTATE_INGRESS_URL", self.ingress_url())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .output()
            .expect("restate CLI runs");
        assert!(
            output.status.success(),
            "restate {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for Restate {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The MCP server binary with its own lakehouse directory.
pub struct Mcp {
    pub port: u16,
    pub lakehouse: tempfile::TempDir,
    child: Option<Child>,
}

impl Mcp {
    pub fn new() -> Self {
        Self {
            port: free_port(),
            lakehouse: tempfile::tempdir().unwrap(),
            child: None,
        }
    }

    pub async fn started() -> Self {
        let mut m = Self::new();
        m.start().await;
        m
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    pub async fn start(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = std::fs::File::create(self.lakehouse.path().join("mcp.log")).unwrap();
        let child = Command::new(cargo_bin("servicetsunami-mcp"))
            .env("MCP_API_KEY", MCP_KEY)
            .env("MCP_BIND_ADDR", format!("127.0.0.1:{}", self.port))
            .env("LAKEHOUSE_PATH", self.lakehouse.path())
            .env("RUST_LOG", "warn")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("servicetsunami-mcp starts");
        self.child = Some(child);
        wait_until_answers(
            &format!("http://127.0.0.1:{}/healthz", self.port),
            "servicetsunami-mcp",
        )
        .await;
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Calls a tool and returns its structured output (panics on any error).
    pub async fn call(&self, tool: &str, args: Value) -> Value {
        let config = StreamableHttpClientTransportConfig::with_uri(self.url()).auth_header(MCP_KEY);
        let client =
            ().serve(StreamableHttpClientTransport::from_config(config))
                .await
                .expect("MCP client connects");
        let result = client
            .call_tool(
                CallToolRequestParams::new(tool.to_owned())
                    .with_arguments(args.as_object().cloned().unwrap()),
            )
            .await
            .expect("tool call");
        let _ = client.cancel().await;
        assert_ne!(
            result.is_error,
            Some(true),
            "{tool} failed: {:?}",
            result.content
        );
        result.structured_content.expect("structured output")
    }
}

impl Drop for Mcp {
    fn drop(&mut self) {
        self.stop();
    }
}

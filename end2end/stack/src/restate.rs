//! restate-server with its own data directory and ports, restartable on the
//! same ones (a restart keeps its journal), and the `restate` CLI against it.
//! Every port, the cluster-internal node port included, is bound to loopback.
//! It signs its requests to service endpoints with an ed25519 key of its data
//! directory ([`Restate::identity_key`] is the public half, for the app's
//! `RESTATE_IDENTITY_KEY`).

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
    /// `publickeyv1_…`: what the DatasetSync endpoint verifies requests with.
    pub identity_key: String,
}

/// The PKCS#8 DER prefix of an ed25519 private key (RFC 8410); the 32-byte
/// seed follows.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// The request-identity key pair in `dir` (created once, as `identity.pem`);
/// returns the public key in Restate's `publickeyv1_<base58>` form.
pub fn ensure_identity_key(dir: &Path) -> anyhow::Result<String> {
    use base64::{engine::general_purpose::STANDARD, Engine as _};
    let pem_path = identity_pem(dir);
    let seed: [u8; 32] = if pem_path.exists() {
        let pem = std::fs::read_to_string(&pem_path)?;
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = STANDARD
            .decode(body.trim())
            .context("identity.pem is not base64")?;
        der.get(16..48)
            .and_then(|s| s.try_into().ok())
            .context("identity.pem is not an ed25519 key")?
    } else {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        let mut der = ED25519_PKCS8_PREFIX.to_vec();
        der.extend_from_slice(&seed);
        std::fs::create_dir_all(dir)?;
        std::fs::write(
            &pem_path,
            format!(
                "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
                STANDARD.encode(der)
            ),
        )?;
        seed
    };
    let public = ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key();
    Ok(format!(
        "publickeyv1_{}",
        bs58::encode(public.to_bytes()).into_string()
    ))
}

fn identity_pem(dir: &Path) -> PathBuf {
    dir.join("identity.pem")
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
        let identity_key =
            ensure_identity_key(data.path()).expect("the identity key in the data directory");
        Self {
            ingress_port,
            admin_port,
            node_port,
            data,
            child: None,
            identity_key,
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
            // Every request to a service endpoint is signed with this key.
            .env(
                "RESTATE_WORKER__INVOKER__REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE",
                identity_pem(self.data.path()),
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

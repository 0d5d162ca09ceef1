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
    /// Where `identity.pem` is: the data directory, or a cluster's shared one.
    key_dir: PathBuf,
    /// Set for a node of a [`RestateCluster`].
    membership: Option<Membership>,
}

/// A node's place in a cluster, written to its configuration file.
#[derive(Debug, Clone)]
struct Membership {
    cluster_name: String,
    node_name: String,
    /// Exactly one node provisions the cluster; the others join it.
    auto_provision: bool,
    /// Every node's node-to-node port (the metadata servers' addresses).
    peers: Vec<u16>,
    replication: usize,
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
        let key_dir = data.path().to_path_buf();
        Self {
            ingress_port,
            admin_port,
            node_port,
            data,
            child: None,
            identity_key,
            key_dir,
            membership: None,
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
        self.spawn()?;
        self.wait_ready().await
    }

    /// The configuration file of a cluster node: its name, the cluster's,
    /// the metadata servers, and the replication of logs and partitions.
    fn write_cluster_config(&self, m: &Membership) -> anyhow::Result<PathBuf> {
        let peers: Vec<String> = m
            .peers
            .iter()
            .map(|p| format!("\"http://127.0.0.1:{p}/\""))
            .collect();
        let config = format!(
            "cluster-name = \"{}\"\nnode-name = \"{}\"\nauto-provision = {}\n\
             advertised-address = \"http://127.0.0.1:{}/\"\ndefault-replication = {}\n\n\
             [metadata-client]\naddresses = [{}]\n",
            m.cluster_name,
            m.node_name,
            m.auto_provision,
            self.node_port,
            m.replication,
            peers.join(", ")
        );
        let path = self.data.path().join("cluster.toml");
        std::fs::write(&path, config).context("the node's configuration file")?;
        Ok(path)
    }

    /// Starts the process without waiting for it.
    pub fn spawn(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(self.child.is_none(), "restate-server is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .context("the restate-server log")?;
        let mut command = Command::new(locate::restate_server_bin()?);
        if let Some(m) = &self.membership {
            command
                .arg("--config-file")
                .arg(self.write_cluster_config(m)?);
        }
        let child = command
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
                identity_pem(&self.key_dir),
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
        Ok(())
    }

    /// Waits until the admin API and the ingress answer.
    pub async fn wait_ready(&self) -> anyhow::Result<()> {
        // A node joining a cluster waits for the one that provisions it.
        let within = Duration::from_secs(if self.membership.is_some() { 60 } else { 30 });
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

/// A cluster of restate-server nodes on loopback, formed by restate-server's
/// own clustering: every node runs every role (metadata server, log server,
/// worker, admin, ingress), the first provisions the cluster, and logs and
/// partitions are replicated on `replication` nodes, so a cluster of 3 with
/// replication 2 keeps working when one node dies. All nodes sign requests
/// to service endpoints with one shared key.
pub struct RestateCluster {
    pub nodes: Vec<Restate>,
    pub identity_key: String,
    _keys: tempfile::TempDir,
}

impl RestateCluster {
    /// `size` nodes, started, each with its own ports and data directory.
    pub async fn started(size: usize, replication: usize) -> anyhow::Result<Self> {
        anyhow::ensure!(
            size >= replication && replication >= 1,
            "{size} nodes cannot hold {replication} replicas"
        );
        let keys = tempfile::tempdir()?;
        let identity_key = ensure_identity_key(keys.path())?;
        let ports: Vec<(u16, u16, u16)> = (0..size)
            .map(|_| (wait::free_port(), wait::free_port(), wait::free_port()))
            .collect();
        let peers: Vec<u16> = ports.iter().map(|(_, _, node)| *node).collect();
        let mut suffix = [0u8; 4];
        getrandom::fill(&mut suffix).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        let cluster_name = format!("st-{}", bs58::encode(suffix).into_string());
        let mut nodes = Vec::with_capacity(size);
        for (i, (ingress, admin, node)) in ports.into_iter().enumerate() {
            let mut restate = Restate::at(ingress, admin, node, DataDir::temp());
            restate.identity_key = identity_key.clone();
            restate.key_dir = keys.path().to_path_buf();
            restate.membership = Some(Membership {
                cluster_name: cluster_name.clone(),
                node_name: format!("n{}", i + 1),
                auto_provision: i == 0,
                peers: peers.clone(),
                replication,
            });
            nodes.push(restate);
        }
        // All at once: the first provisions, the others join it.
        for node in &mut nodes {
            node.spawn()?;
        }
        for node in &nodes {
            node.wait_ready().await?;
        }
        Ok(Self {
            nodes,
            identity_key,
            _keys: keys,
        })
    }
}

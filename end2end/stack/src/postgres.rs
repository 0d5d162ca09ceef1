//! A PostgreSQL server of its own (`initdb`, `pg_ctl`) in a temporary
//! directory on a free loopback port: for runs that restart or crash the
//! database, which must never touch the machine's shared server.

use crate::wait;
use anyhow::Context;
use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

pub struct PrivatePostgres {
    pub port: u16,
    bindir: PathBuf,
    dir: tempfile::TempDir,
    /// Run as the `postgres` user when we are root (initdb refuses root).
    as_postgres: bool,
}

/// The newest `/usr/lib/postgresql/<version>/bin` (Debian's layout), or the
/// directory `pg_ctl` is in on the `PATH`.
fn bindir() -> anyhow::Result<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    let which = Command::new("sh")
        .args(["-c", "command -v pg_ctl"])
        .output()
        .context("looking for pg_ctl")?;
    let path = String::from_utf8_lossy(&which.stdout).trim().to_owned();
    anyhow::ensure!(
        !path.is_empty(),
        "PostgreSQL's server programs (initdb, pg_ctl) are not installed: apt-get install postgresql"
    );
    Ok(Path::new(&path)
        .parent()
        .context("pg_ctl's directory")?
        .to_path_buf())
}

impl PrivatePostgres {
    /// Creates a cluster (trust auth, user `postgres`) and starts it.
    pub async fn started() -> anyhow::Result<Self> {
        let bindir = bindir()?;
        let dir = tempfile::Builder::new().prefix("st-pg-").tempdir()?;
        let as_postgres = is_root();
        if as_postgres {
            let status = Command::new("chown")
                .arg("postgres")
                .arg(dir.path())
                .status()?;
            anyhow::ensure!(status.success(), "chown postgres {}", dir.path().display());
        }
        let pg = Self {
            port: wait::free_port(),
            bindir,
            dir,
            as_postgres,
        };
        pg.run(
            "initdb",
            &[
                "-D",
                &pg.data().display().to_string(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        )?;
        pg.start().await?;
        Ok(pg)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn command(&self, program: &str) -> Command {
        let exe = self.bindir.join(program);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    fn run(&self, program: &str, args: &[&str]) -> anyhow::Result<()> {
        let out = self
            .command(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {program}"))?;
        anyhow::ensure!(
            out.status.success(),
            "{program} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }

    fn pg_ctl_start(&self) -> anyhow::Result<()> {
        let data = self.data().display().to_string();
        let log = self.dir.path().join("server.log").display().to_string();
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            self.port,
            self.dir.path().display()
        );
        self.run(
            "pg_ctl",
            &["start", "-D", &data, "-l", &log, "-w", "-o", &options],
        )
    }

    fn pg_ctl_stop_immediately(&self) -> anyhow::Result<()> {
        let data = self.data().display().to_string();
        self.run("pg_ctl", &["stop", "-D", &data, "-m", "immediate", "-w"])
    }

    async fn start(&self) -> anyhow::Result<()> {
        self.pg_ctl_start()?;
        self.wait_ready().await
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        let url = self.url("postgres");
        wait::until(Duration::from_secs(30), "the private Postgres", || async {
            use sqlx::Connection;
            sqlx::PgConnection::connect(&url).await.ok().map(|_| ())
        })
        .await
    }

    /// `postgres://postgres@127.0.0.1:<port>/<database>`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates `name` (empty; the app migrates it) and returns its URL.
    pub async fn create_database(&self, name: &str) -> anyhow::Result<String> {
        use sqlx::{Connection, Executor};
        let mut admin = sqlx::PgConnection::connect(&self.url("postgres")).await?;
        admin
            .execute(format!(r#"CREATE DATABASE "{name}""#).as_str())
            .await?;
        Ok(self.url(name))
    }

    /// Stops it the way a crash would (`-m immediate`: no checkpoint, every
    /// connection cut; recovery replays the WAL) and starts it again.
    pub async fn restart(&self) -> anyhow::Result<()> {
        self.pg_ctl_stop_immediately()?;
        self.start().await
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self.pg_ctl_stop_immediately();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

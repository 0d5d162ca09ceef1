//! `stack`: starts ServiceTsunami's services for `.ci/serve`, the Playwright
//! suite (`.ci/e2e-server`) and the MCP client check, the same way the Rust
//! tests do (it is the `stack` library's CLI).
//!
//! ```text
//! stack up --state DIR [--data DIR] [--services restate,mcp,app] [--fixed-ports]
//!          [--app-port N] [--fresh-database NAME] [--mcp-key-file FILE]
//! stack mcp-stop  --state DIR     # SIGKILL the MCP server `up` started
//! stack mcp-start --state DIR     # start it again, same port and lakehouse
//! ```
//!
//! `up` starts what `--services` names (default: all three), writes
//! `DIR/stack.json` (ports, URLs, pids, the MCP key), and runs until SIGINT or
//! SIGTERM (or the app exits), then stops everything it started. Settings
//! the services read (`DATABRICKS_RETRY_*`, `DATABASE_URL`, `RUST_LOG`, …)
//! pass through from the environment. With `--fixed-ports`, the ports are the
//! README's defaults (restate 8080/9070, MCP 8765, endpoint 9080, app 3000)
//! unless `RESTATE_INGRESS_URL`, `RESTATE_ADMIN_URL`, `MCP_BIND_ADDR`,
//! `RESTATE_ENDPOINT_ADDR` or `LEPTOS_SITE_ADDR` say otherwise, and a service
//! that already answers there is used as it is; otherwise every port is free.

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use stack::{
    app::AppProcess,
    mcp::Mcp,
    restate::{DataDir, Restate},
    wait,
};
use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

/// What `up` wrote, for `mcp-stop`/`mcp-start` and the end-to-end tests.
#[derive(Debug, Default, Serialize, Deserialize)]
struct StackFile {
    restate: Option<RestateInfo>,
    mcp: Option<McpInfo>,
    app: Option<AppInfo>,
}

#[derive(Debug, Serialize, Deserialize)]
struct RestateInfo {
    ingress_url: String,
    admin_url: String,
    pid: Option<u32>,
}

#[derive(Debug, Serialize, Deserialize)]
struct McpInfo {
    url: String,
    port: u16,
    key: String,
    pid: Option<u32>,
    /// Everything it runs with (for a restart).
    env: HashMap<String, String>,
    log: PathBuf,
}

#[derive(Debug, Serialize, Deserialize)]
struct AppInfo {
    url: String,
    pid: u32,
}

struct Options {
    state: PathBuf,
    data: Option<PathBuf>,
    restate: bool,
    mcp: bool,
    app: bool,
    fixed_ports: bool,
    app_port: Option<u16>,
    fresh_database: Option<String>,
    mcp_key_file: Option<PathBuf>,
}

fn usage() -> &'static str {
    "usage: stack up --state DIR [--data DIR] [--services restate,mcp,app] [--fixed-ports] \
     [--app-port N] [--fresh-database NAME] [--mcp-key-file FILE]\n       \
     stack mcp-stop --state DIR\n       stack mcp-start --state DIR"
}

fn parse(args: &[String]) -> anyhow::Result<Options> {
    let mut options = Options {
        state: PathBuf::new(),
        data: None,
        restate: true,
        mcp: true,
        app: true,
        fixed_ports: false,
        app_port: None,
        fresh_database: None,
        mcp_key_file: None,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--state" => options.state = PathBuf::from(value()?),
            "--data" => options.data = Some(PathBuf::from(value()?)),
            "--services" => {
                let list = value()?.clone();
                let names: Vec<&str> = list.split(',').map(str::trim).collect();
                for name in &names {
                    anyhow::ensure!(
                        matches!(*name, "restate" | "mcp" | "app"),
                        "unknown service {name:?}; use restate, mcp or app"
                    );
                }
                options.restate = names.contains(&"restate");
                options.mcp = names.contains(&"mcp");
                options.app = names.contains(&"app");
            }
            "--fixed-ports" => options.fixed_ports = true,
            "--app-port" => options.app_port = Some(value()?.parse().context("--app-port")?),
            "--fresh-database" => options.fresh_database = Some(value()?.clone()),
            "--mcp-key-file" => options.mcp_key_file = Some(PathBuf::from(value()?)),
            other => bail!("unknown argument {other:?}\n{}", usage()),
        }
    }
    anyhow::ensure!(
        !options.state.as_os_str().is_empty(),
        "--state DIR is required\n{}",
        usage()
    );
    Ok(options)
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// The port of `127.0.0.1:8080` or `http://127.0.0.1:8080`.
fn port_of(addr: &str) -> anyhow::Result<u16> {
    addr.trim_end_matches('/')
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .with_context(|| format!("no port in {addr:?}"))
}

/// A configured port (fixed mode), or a free one.
fn port(fixed: bool, var: &str, default: u16) -> anyhow::Result<u16> {
    match (fixed, env(var)) {
        (true, Some(value)) => port_of(&value),
        (true, None) => Ok(default),
        (false, _) => Ok(wait::free_port()),
    }
}

fn random_key() -> String {
    format!("dev-{}", uuid::Uuid::new_v4().simple())
}

/// The MCP key: the file's (created once), the environment's, or a new one.
fn mcp_key(file: Option<&Path>) -> anyhow::Result<String> {
    if let Some(file) = file {
        if let Ok(key) = std::fs::read_to_string(file) {
            if !key.trim().is_empty() {
                return Ok(key.trim().to_owned());
            }
        }
        let key = random_key();
        std::fs::write(file, &key).with_context(|| format!("writing {}", file.display()))?;
        return Ok(key);
    }
    Ok(env("MCP_API_KEY").unwrap_or_else(random_key))
}

fn read_stack(state: &Path) -> anyhow::Result<StackFile> {
    let path = state.join("stack.json");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("{} (is `stack up` running?)", path.display()))?;
    Ok(serde_json::from_str(&text)?)
}

fn write_stack(state: &Path, stack: &StackFile) -> anyhow::Result<()> {
    let path = state.join("stack.json");
    let partial = state.join("stack.json.partial");
    std::fs::write(&partial, serde_json::to_vec_pretty(stack)?)?;
    std::fs::rename(partial, path)?;
    Ok(())
}

async fn fresh_database(name: &str) -> anyhow::Result<String> {
    use sqlx::{Connection, Executor};
    let admin_url = stack::db::admin_url();
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .with_context(|| format!("connecting to {admin_url}"))?;
    admin
        .execute(format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#).as_str())
        .await?;
    admin
        .execute(format!(r#"CREATE DATABASE "{name}""#).as_str())
        .await?;
    Ok(stack::db::with_database(&admin_url, name))
}

async fn up(options: Options) -> anyhow::Result<()> {
    std::fs::create_dir_all(&options.state)?;
    let data = match &options.data {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            DataDir::Kept(dir.canonicalize()?)
        }
        None => DataDir::temp(),
    };
    let fixed = options.fixed_ports;
    let mut stack_file = StackFile::default();

    let mut restate = None;
    let (ingress_url, admin_url) = if options.restate {
        let ingress = port(fixed, "RESTATE_INGRESS_URL", 8080)?;
        let admin = port(fixed, "RESTATE_ADMIN_URL", 9070)?;
        let node = port(fixed, "RESTATE_NODE_PORT", 5122)?;
        let dir = data.path().join("restate");
        std::fs::create_dir_all(&dir)?;
        let mut r = Restate::at(ingress, admin, node, DataDir::Kept(dir));
        let admin_health = format!("{}/health", r.admin_url());
        if fixed && wait::answers(&admin_health).await {
            eprintln!("stack: restate-server already answers at {}", r.admin_url());
        } else {
            eprintln!(
                "stack: starting restate-server (log {})",
                r.log_path().display()
            );
            r.start().await?;
        }
        let urls = (r.ingress_url(), r.admin_url());
        stack_file.restate = Some(RestateInfo {
            ingress_url: urls.0.clone(),
            admin_url: urls.1.clone(),
            pid: r.pid(),
        });
        restate = Some(r);
        urls
    } else {
        (
            env("RESTATE_INGRESS_URL").unwrap_or_else(|| "http://127.0.0.1:8080".into()),
            env("RESTATE_ADMIN_URL").unwrap_or_else(|| "http://127.0.0.1:9070".into()),
        )
    };

    let mut mcp = None;
    let key = mcp_key(options.mcp_key_file.as_deref())?;
    // The app's internal listener: the MCP server downloads from it.
    let internal_port = port(fixed, "INTERNAL_ADDR", 3010)?;
    if options.mcp {
        let lakehouse = data.path().join("lakehouse");
        std::fs::create_dir_all(&lakehouse)?;
        let mut m = Mcp::process()
            .with_key(&key)
            .with_port(port(fixed, "MCP_BIND_ADDR", 8765)?)
            .with_app_internal_port(internal_port)
            .with_lakehouse(DataDir::Kept(lakehouse.clone()));
        for name in [
            "LAKEHOUSE_BACKEND",
            "LAKEHOUSE_CATALOG",
            "MCP_ALLOWED_HOSTS",
            "MCP_INTERNAL_BASE_URL",
        ] {
            if let Some(v) = env(name) {
                m.env.insert(name.to_owned(), v);
            }
        }
        let health = format!("http://127.0.0.1:{}/healthz", m.port);
        if fixed && wait::answers(&health).await {
            eprintln!("stack: an MCP server already answers on port {}", m.port);
        } else {
            eprintln!(
                "stack: starting servicetsunami-mcp (lakehouse {})",
                lakehouse.display()
            );
            m.start().await?;
        }
        stack_file.mcp = Some(McpInfo {
            url: m.url(),
            port: m.port,
            key: key.clone(),
            pid: m.pid(),
            env: m.vars(),
            log: lakehouse.join("mcp.log"),
        });
        mcp = Some(m);
    }
    write_stack(&options.state, &stack_file)?;

    let mut app = None;
    if options.app {
        let app_port = match options.app_port {
            Some(p) => p,
            None => port(fixed, "LEPTOS_SITE_ADDR", 3000)?,
        };
        let mut vars: HashMap<String, String> = HashMap::new();
        let database_url = match &options.fresh_database {
            Some(name) => fresh_database(name).await?,
            None => env("DATABASE_URL").context("DATABASE_URL is required for the app")?,
        };
        vars.insert("DATABASE_URL".into(), database_url);
        let set_default = |vars: &mut HashMap<String, String>, name: &str, value: String| {
            if env(name).is_none() {
                vars.insert(name.to_owned(), value);
            }
        };
        set_default(
            &mut vars,
            "DATA_STORAGE_PATH",
            data.path().join("storage").display().to_string(),
        );
        set_default(&mut vars, "RESTATE_INGRESS_URL", ingress_url.clone());
        set_default(&mut vars, "RESTATE_ADMIN_URL", admin_url.clone());
        set_default(
            &mut vars,
            "RESTATE_ENDPOINT_ADDR",
            format!("127.0.0.1:{}", port(fixed, "RESTATE_ENDPOINT_ADDR", 9080)?),
        );
        set_default(
            &mut vars,
            "INTERNAL_ADDR",
            format!("127.0.0.1:{internal_port}"),
        );
        if let Some(r) = &restate {
            set_default(&mut vars, "RESTATE_IDENTITY_KEY", r.identity_key.clone());
        }
        if let Some(info) = &stack_file.mcp {
            set_default(&mut vars, "MCP_SERVER_URL", info.url.clone());
            set_default(&mut vars, "DATABRICKS_SYNC_ENABLED", "true".into());
            set_default(&mut vars, "DATABRICKS_AUTO_SYNC", "true".into());
        }
        vars.insert("MCP_API_KEY".into(), key.clone());
        let a =
            AppProcess::start(app_port, &vars, Stdio::inherit(), Duration::from_secs(120)).await?;
        eprintln!("stack: serving at {}", a.url());
        stack_file.app = Some(AppInfo {
            url: a.url(),
            pid: a.pid(),
        });
        write_stack(&options.state, &stack_file)?;
        app = Some(a);
    }

    // Run until told to stop, or until the app exits by itself.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let app_pid = app.as_ref().map(AppProcess::pid);
    let app_gone = async {
        match app_pid {
            Some(pid) => {
                while Path::new("/proc").join(pid.to_string()).exists() && !is_zombie(pid) {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
        () = app_gone => eprintln!("stack: the app exited"),
    }

    eprintln!("stack: stopping");
    if let Some(a) = app {
        a.stop(Duration::from_secs(10)).await;
    }
    // The MCP server may have been restarted by `mcp-start`: stop that one too.
    if let Ok(StackFile {
        mcp: Some(McpInfo { pid: Some(pid), .. }),
        ..
    }) = read_stack(&options.state)
    {
        if mcp.as_ref().and_then(Mcp::pid) != Some(pid) {
            kill(pid);
        }
    }
    drop(mcp);
    drop(restate);
    Ok(())
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(true)
}

fn kill(pid: u32) {
    let _ = Command::new("kill")
        .arg("-KILL")
        .arg(pid.to_string())
        .status();
}

async fn mcp_stop(state: &Path) -> anyhow::Result<()> {
    let stack_file = read_stack(state)?;
    let info = stack_file.mcp.context("`stack up` started no MCP server")?;
    if let Some(pid) = info.pid {
        kill(pid);
    }
    wait::port_closed(info.port, Duration::from_secs(10)).await
}

async fn mcp_start(state: &Path) -> anyhow::Result<()> {
    let mut stack_file = read_stack(state)?;
    let info = stack_file
        .mcp
        .as_mut()
        .context("`stack up` started no MCP server")?;
    let health = format!("http://127.0.0.1:{}/healthz", info.port);
    if wait::answers(&health).await {
        return Ok(());
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&info.log)?;
    // Not waited for: it outlives this command; `stack up` stops it at the end.
    let child = Command::new(stack::locate::cargo_bin("servicetsunami-mcp")?)
        .envs(&info.env)
        .env(
            "RUST_LOG",
            env("MCP_RUST_LOG").unwrap_or_else(|| "warn".into()),
        )
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("servicetsunami-mcp starts")?;
    info.pid = Some(child.id());
    write_stack(state, &stack_file)?;
    wait::http_ok(&health, "servicetsunami-mcp", Duration::from_secs(20)).await
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((command, rest)) = args.split_first() else {
        bail!("{}", usage());
    };
    let options = parse(rest)?;
    match command.as_str() {
        "up" => up(options).await,
        "mcp-stop" => mcp_stop(&options.state).await,
        "mcp-start" => mcp_start(&options.state).await,
        other => bail!("unknown command {other:?}\n{}", usage()),
    }
}

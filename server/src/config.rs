//! Typed settings read from the environment once, at start-up. Every variable
//! is listed in `.env.example`; a missing or invalid one stops start-up with an
//! error that names it.

use crate::sync::ledger::SyncMode;
pub use contract::env::{parse_byte_size, ConfigError, Env};
use leptos::prelude::LeptosOptions;
use secrecy::SecretString;
use std::{net::SocketAddr, path::PathBuf};

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Lakehouse sync settings: the seed's names (`DATABRICKS_SYNC_ENABLED`,
/// `DATABRICKS_AUTO_SYNC`, `DATABRICKS_RETRY_*`, `MCP_*`) and where Restate is.
/// They apply whichever lakehouse the MCP server writes to.
#[derive(Debug, Clone)]
pub struct SyncSettings {
    pub databricks_sync_enabled: bool,
    pub databricks_auto_sync: bool,
    pub mcp_server_url: Option<String>,
    pub mcp_api_key: Option<SecretString>,
    /// `DATABRICKS_RETRY_ATTEMPTS` (default 3): attempts per sync step, first included.
    pub retry_attempts: u32,
    /// `DATABRICKS_RETRY_INTERVAL` (default 300): seconds between attempts.
    pub retry_interval_secs: u64,
    /// `SYNC_RECONCILE_INTERVAL_SECS` (default 60): how often syncs whose
    /// Restate invocation vanished are looked for.
    pub reconcile_interval_secs: u64,
    /// `SYNC_RECONCILE_GRACE_SECS` (default 120): how long after Restate
    /// accepted a request its invocation is first looked for.
    pub reconcile_grace_secs: u64,
    /// `RESTATE_INGRESS_URL` (default http://127.0.0.1:8080): where sync requests are sent.
    pub restate_ingress_url: String,
    /// `RESTATE_ADMIN_URL` (default http://127.0.0.1:9070): where the endpoint is registered.
    pub restate_admin_url: String,
    /// `RESTATE_ENDPOINT_ADDR` (default 127.0.0.1:9080): the DatasetSync endpoint (HTTP/2).
    pub restate_endpoint_addr: SocketAddr,
    /// `RESTATE_ENDPOINT_URL` (default `http://` + the endpoint address): the
    /// URL Restate calls the endpoint at, when that differs from the bind address.
    pub restate_endpoint_url: Option<String>,
    /// `RESTATE_DEPLOYMENT_REVISION` (default: the crate version and a hash
    /// of the workflow's source): the endpoint registers as
    /// `<RESTATE_ENDPOINT_URL>/r/<revision>`, a deployment of its own.
    pub restate_deployment_revision: Option<String>,
    /// `INTERNAL_BASE_URL` (default `http://` + `INTERNAL_ADDR`): how the MCP
    /// server reaches this server's internal listener (signed downloads,
    /// token introspection).
    pub internal_base_url: Option<String>,
    /// `RESTATE_IDENTITY_KEY` (`publickeyv1_…`): restate-server's request
    /// identity public key. When set, the DatasetSync endpoint refuses
    /// requests Restate did not sign.
    pub restate_identity_key: Option<String>,
    /// `MCP_PUBLIC_URL` (default `MCP_SERVER_URL`): the MCP server's URL as
    /// assistants reach it, shown on the Connect-an-assistant page.
    pub mcp_public_url: Option<String>,
    /// `DATABRICKS_HOST`, when `LAKEHOUSE_BACKEND=databricks` (the MCP
    /// server's setting too): the UI links tables to Catalog Explorer.
    pub databricks_host: Option<String>,
}

impl SyncSettings {
    /// Sync works only when it is on and there is an MCP server to sync
    /// through; new uploads sync by themselves only when it is also automatic.
    pub fn mode(&self) -> SyncMode {
        let available = self.databricks_sync_enabled && self.mcp_server_url.is_some();
        SyncMode {
            available,
            auto: available && self.databricks_auto_sync,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// `DATABASE_URL`: Postgres holding the dataset catalogue.
    pub database_url: SecretString,
    /// `DATABASE_MAX_CONNECTIONS` (default 10).
    pub database_max_connections: u32,
    /// `DATA_STORAGE_PATH` (default `./data`): Parquet files and upload scratch space.
    pub data_storage_path: PathBuf,
    /// `UPLOAD_MAX_BYTES` (default 2 GiB): the cap enforced while streaming an upload.
    pub upload_max_bytes: u64,
    /// `UPLOAD_MAX_DECOMPRESSED_BYTES` (default 16 GiB): what a gzip upload
    /// may decompress to (a gzip bomb is refused as it streams), and what a
    /// Parquet upload's values may take decoded (a Parquet bomb is refused
    /// from its footer).
    pub upload_max_decompressed_bytes: u64,
    /// `UPLOAD_MAX_CONCURRENT` (default twice the CPUs, at least 2): uploads
    /// received and converted at once.
    pub upload_max_concurrent: usize,
    /// `UPLOAD_QUEUE_WAIT_SECS` (default 30): how long an upload beyond
    /// `UPLOAD_MAX_CONCURRENT` waits for its turn (its body unread, held back
    /// by TCP) before it gets 503 with `Retry-After`; 0 refuses at once.
    pub upload_queue_wait: std::time::Duration,
    /// `UPLOAD_MIN_FREE_DISK` (default 1GiB): an upload that would leave less
    /// free space than this on `DATA_STORAGE_PATH`'s file system is refused
    /// (507) and nothing of it kept.
    pub upload_min_free_disk: u64,
    /// `UPLOAD_IDLE_TIMEOUT_SECS` (default 30): an upload whose body sends
    /// nothing for this long is ended (408); a trickling client cannot hold
    /// an upload slot, a scratch file and a connection forever.
    pub upload_idle_timeout: std::time::Duration,
    /// `UPLOAD_STREAM_BELOW` (default 200MB, per second; 0 = never): delimited
    /// text arriving slower than this is converted while it arrives
    /// (`ingest::EarlyConvert`); faster, it is converted once received.
    pub upload_stream_below: u64,
    /// `HTTP_MAX_CONNECTIONS` (default 4096): connections open at once on the
    /// public port (a request's headers must arrive within 30 s). Every open
    /// page holds one for its live status, so this is above the open pages
    /// plus the uploads expected at once; the process's open-file limit must
    /// allow it (checked at start-up).
    pub http_max_connections: usize,
    /// `SHUTDOWN_GRACE_SECS` (default 30): on SIGTERM, how long in-flight
    /// requests may finish before their connections are closed anyway.
    pub shutdown_grace: std::time::Duration,
    /// `STORAGE_ORPHAN_GRACE_SECS` (default 900): at start-up, dataset files
    /// no catalogue row names are removed once older than this.
    pub storage_orphan_grace: std::time::Duration,
    /// `DUCKDB_THREADS` (default: the number of CPUs).
    pub duckdb_threads: usize,
    /// `DUCKDB_MEMORY_LIMIT` (default `192MB`): the upload conversion's DuckDB
    /// instance spills to disk beyond it.
    pub duckdb_memory_limit: String,
    /// `DUCKDB_READ_MEMORY_LIMIT` (default `128MB`): the page reads' own
    /// instance (previews, statistics), so reads and uploads never starve
    /// each other.
    pub duckdb_read_memory_limit: String,
    /// The query page's local engine (`QUERY_MEMORY_LIMIT` 512 MiB,
    /// `QUERY_THREADS` 1, `QUERY_TIMEOUT_SECS` 30, `QUERY_MAX_ROWS` 1,000,
    /// `QUERY_MAX_CONCURRENT` 4, `QUERY_MAX_DOWNLOAD_BYTES` 2 GiB,
    /// `QUERY_WORKER_PROGRAM` this binary).
    pub query: QuerySettings,
    /// `LOG_FORMAT` (`pretty` | `json`, default `pretty`); the filter is `RUST_LOG`.
    pub log_format: LogFormat,
    /// Leptos site options; `LEPTOS_SITE_ADDR` (default 127.0.0.1:3000) is the listen address.
    pub leptos: LeptosOptions,
    pub sync: SyncSettings,
    pub accounts: AccountSettings,
}

/// What one query of the query page may use.
#[derive(Debug, Clone)]
pub struct QuerySettings {
    pub memory_bytes: u64,
    pub threads: usize,
    pub timeout_secs: u64,
    pub max_rows: usize,
    pub max_concurrent: usize,
    pub max_download_bytes: u64,
    /// The program each query runs in, started with
    /// [`crate::QUERY_WORKER_COMMAND`]: this binary, unless a test or a
    /// wrapper names another.
    pub worker_program: std::path::PathBuf,
}

/// Accounts and the edge.
#[derive(Debug, Clone)]
pub struct AccountSettings {
    /// `PUBLIC_URL` (default `http://` + `LEPTOS_SITE_ADDR`): the origin
    /// browsers use. CSRF checks compare against it; `https://` makes
    /// cookies Secure.
    pub public_url: String,
    /// `ALLOWED_HOSTS` (comma-separated `host[:port]`): more names the app
    /// answers for, besides `PUBLIC_URL`'s (and loopback names when it
    /// listens on loopback).
    pub allowed_hosts: Vec<String>,
    /// `SIGNUP_OPEN` (default false): anyone may sign up (and gets a team of
    /// their own); otherwise sign-up is by invitation link only.
    pub signup_open: bool,
    /// `ADMIN_EMAIL` and `ADMIN_PASSWORD`: the first admin, created at the
    /// first start. Without them, start-up logs a one-time sign-up link.
    pub first_admin: Option<(String, SecretString)>,
    /// `INTERNAL_ADDR` (default 127.0.0.1:3010): the internal listener
    /// (signed downloads, token introspection, `/metrics`).
    pub internal_addr: SocketAddr,
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(lookup);
        let database_url = env.raw("DATABASE_URL").ok_or(ConfigError::Missing {
            name: "DATABASE_URL",
            hint: "e.g. postgres://postgres@127.0.0.1:5432/servicetsunami",
        })?;
        if !(database_url.starts_with("postgres://") || database_url.starts_with("postgresql://")) {
            return Err(ConfigError::Invalid {
                name: "DATABASE_URL",
                value: "<hidden>".to_owned(),
                reason: "expected a postgres:// URL".to_owned(),
            });
        }

        let upload_max_bytes = env.byte_size("UPLOAD_MAX_BYTES", 2 << 30)?;
        let upload_max_decompressed_bytes =
            env.byte_size("UPLOAD_MAX_DECOMPRESSED_BYTES", 16 << 30)?;
        let cpus = std::thread::available_parallelism().map_or(2, usize::from);
        let upload_max_concurrent =
            env.parse_at_least("UPLOAD_MAX_CONCURRENT", (2 * cpus).max(2), 1)?;
        let duckdb_threads = env.parse_at_least("DUCKDB_THREADS", cpus, 1)?;
        let upload_min_free_disk = env.byte_size("UPLOAD_MIN_FREE_DISK", 1 << 30)?;
        let upload_queue_wait =
            std::time::Duration::from_secs(env.parse("UPLOAD_QUEUE_WAIT_SECS", 30u64)?);
        let upload_idle_timeout = std::time::Duration::from_secs(env.parse_at_least(
            "UPLOAD_IDLE_TIMEOUT_SECS",
            30u64,
            1,
        )?);
        let shutdown_grace =
            std::time::Duration::from_secs(env.parse("SHUTDOWN_GRACE_SECS", 30u64)?);
        let storage_orphan_grace =
            std::time::Duration::from_secs(env.parse("STORAGE_ORPHAN_GRACE_SECS", 900u64)?);
        // DuckDB reads these itself: checked to be byte sizes, kept as written.
        let byte_size = |v: &str| parse_byte_size(v).map(|_| v.to_owned());
        let duckdb_memory_limit = env.checked("DUCKDB_MEMORY_LIMIT", "192MB", byte_size)?;
        let duckdb_read_memory_limit =
            env.checked("DUCKDB_READ_MEMORY_LIMIT", "128MB", byte_size)?;

        let log_format = match env.raw("LOG_FORMAT").as_deref() {
            None | Some("pretty") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "LOG_FORMAT",
                    value: other.to_owned(),
                    reason: "expected pretty or json".to_owned(),
                })
            }
        };

        let site_addr: SocketAddr =
            env.parse("LEPTOS_SITE_ADDR", SocketAddr::from(([127, 0, 0, 1], 3000)))?;
        let leptos_env = match env.raw("LEPTOS_ENV").as_deref() {
            None | Some("PROD") | Some("prod") | Some("production") => leptos::config::Env::PROD,
            Some("DEV") | Some("dev") | Some("development") => leptos::config::Env::DEV,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "LEPTOS_ENV",
                    value: other.to_owned(),
                    reason: "expected DEV or PROD".to_owned(),
                })
            }
        };
        let leptos = LeptosOptions::builder()
            .output_name(
                env.raw("LEPTOS_OUTPUT_NAME")
                    .unwrap_or_else(|| "servicetsunami".to_owned()),
            )
            .site_root(
                env.raw("LEPTOS_SITE_ROOT")
                    .unwrap_or_else(|| "target/site".to_owned()),
            )
            .site_pkg_dir(
                env.raw("LEPTOS_SITE_PKG_DIR")
                    .unwrap_or_else(|| "pkg".to_owned()),
            )
            .site_addr(site_addr)
            .reload_port(env.parse("LEPTOS_RELOAD_PORT", 3001u32)?)
            .env(leptos_env)
            .build();

        let mcp_server_url = env.optional_http_url("MCP_SERVER_URL")?;
        let sync = SyncSettings {
            databricks_sync_enabled: env.flag("DATABRICKS_SYNC_ENABLED", false)?,
            databricks_auto_sync: env.flag("DATABRICKS_AUTO_SYNC", true)?,
            mcp_server_url,
            mcp_api_key: env.raw("MCP_API_KEY").map(SecretString::from),
            retry_attempts: env.parse_at_least("DATABRICKS_RETRY_ATTEMPTS", 3u32, 1)?,
            retry_interval_secs: env.parse("DATABRICKS_RETRY_INTERVAL", 300u64)?,
            reconcile_interval_secs: env.parse_at_least(
                "SYNC_RECONCILE_INTERVAL_SECS",
                60u64,
                1,
            )?,
            reconcile_grace_secs: env.parse("SYNC_RECONCILE_GRACE_SECS", 120u64)?,
            restate_ingress_url: env.http_url("RESTATE_INGRESS_URL", "http://127.0.0.1:8080")?,
            restate_admin_url: env.http_url("RESTATE_ADMIN_URL", "http://127.0.0.1:9070")?,
            restate_endpoint_addr: env.parse(
                "RESTATE_ENDPOINT_ADDR",
                SocketAddr::from(([127, 0, 0, 1], 9080)),
            )?,
            restate_endpoint_url: env.optional_http_url("RESTATE_ENDPOINT_URL")?,
            restate_deployment_revision: match env.raw("RESTATE_DEPLOYMENT_REVISION") {
                Some(r)
                    if r.len() <= 64
                        && r.chars()
                            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) =>
                {
                    Some(r)
                }
                Some(r) => {
                    return Err(ConfigError::invalid(
                        "RESTATE_DEPLOYMENT_REVISION",
                        r,
                        "1 to 64 letters, digits, '.', '_' or '-'",
                    ))
                }
                None => None,
            },
            internal_base_url: env.optional_http_url("INTERNAL_BASE_URL")?,
            restate_identity_key: env.raw("RESTATE_IDENTITY_KEY"),
            mcp_public_url: match env.optional_http_url("MCP_PUBLIC_URL")? {
                Some(url) => Some(url),
                None => env.optional_http_url("MCP_SERVER_URL")?,
            },
            databricks_host: match env.raw("LAKEHOUSE_BACKEND").as_deref() {
                Some("databricks") => env.optional_http_url("DATABRICKS_HOST")?,
                _ => None,
            },
        };
        if sync.databricks_sync_enabled
            && sync.mcp_server_url.is_some()
            && sync.mcp_api_key.is_none()
        {
            return Err(ConfigError::Missing {
                name: "MCP_API_KEY",
                hint: "required when DATABRICKS_SYNC_ENABLED=true and MCP_SERVER_URL is set",
            });
        }

        let public_url = match env.optional_http_url("PUBLIC_URL")? {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{site_addr}"),
        };
        let first_admin = match (env.raw("ADMIN_EMAIL"), env.raw("ADMIN_PASSWORD")) {
            (Some(email), Some(password)) => {
                app::domain::Email::parse(&email).map_err(|reason| ConfigError::Invalid {
                    name: "ADMIN_EMAIL",
                    value: email.clone(),
                    reason: reason.to_owned(),
                })?;
                if password.chars().count() < app::domain::MIN_PASSWORD_CHARS {
                    return Err(ConfigError::Invalid {
                        name: "ADMIN_PASSWORD",
                        value: "<hidden>".to_owned(),
                        reason: format!(
                            "must be at least {} characters",
                            app::domain::MIN_PASSWORD_CHARS
                        ),
                    });
                }
                Some((email, SecretString::from(password)))
            }
            (None, None) => None,
            (Some(_), None) => {
                return Err(ConfigError::Missing {
                    name: "ADMIN_PASSWORD",
                    hint: "set it together with ADMIN_EMAIL (at least 10 characters)",
                })
            }
            (None, Some(_)) => {
                return Err(ConfigError::Missing {
                    name: "ADMIN_EMAIL",
                    hint: "set it together with ADMIN_PASSWORD",
                })
            }
        };
        let accounts = AccountSettings {
            public_url,
            allowed_hosts: env
                .raw("ALLOWED_HOSTS")
                .map(|v| {
                    v.split(',')
                        .map(|h| h.trim().to_owned())
                        .filter(|h| !h.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            signup_open: env.flag("SIGNUP_OPEN", false)?,
            first_admin,
            internal_addr: env.parse("INTERNAL_ADDR", SocketAddr::from(([127, 0, 0, 1], 3010)))?,
        };

        Ok(Self {
            accounts,
            database_url: SecretString::from(database_url),
            database_max_connections: env.parse("DATABASE_MAX_CONNECTIONS", 10u32)?,
            data_storage_path: PathBuf::from(
                env.raw("DATA_STORAGE_PATH")
                    .unwrap_or_else(|| "./data".to_owned()),
            ),
            upload_max_bytes,
            upload_max_decompressed_bytes,
            upload_max_concurrent,
            upload_queue_wait,
            upload_min_free_disk,
            upload_idle_timeout,
            upload_stream_below: env.byte_size("UPLOAD_STREAM_BELOW", 200_000_000)?,
            http_max_connections: env.parse_at_least("HTTP_MAX_CONNECTIONS", 4096usize, 1)?,
            shutdown_grace,
            storage_orphan_grace,
            duckdb_threads,
            query: QuerySettings {
                memory_bytes: env.byte_size("QUERY_MEMORY_LIMIT", 512 << 20)?,
                threads: env.parse_at_least("QUERY_THREADS", 1usize, 1)?,
                timeout_secs: env.parse_at_least("QUERY_TIMEOUT_SECS", 30u64, 1)?,
                max_rows: env.parse_at_least("QUERY_MAX_ROWS", 1000usize, 1)?,
                max_concurrent: env.parse_at_least("QUERY_MAX_CONCURRENT", 4usize, 1)?,
                max_download_bytes: env.byte_size("QUERY_MAX_DOWNLOAD_BYTES", 2 << 30)?,
                worker_program: match env.raw("QUERY_WORKER_PROGRAM") {
                    Some(program) => program.into(),
                    None => std::env::current_exe().map_err(|e| {
                        ConfigError::invalid(
                            "QUERY_WORKER_PROGRAM",
                            "",
                            format!("this binary's path is unknown ({e}); name the program"),
                        )
                    })?,
                },
            },
            duckdb_memory_limit,
            duckdb_read_memory_limit,
            log_format,
            leptos,
            sync,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(move |k| map.get(k).cloned())
    }

    const DB: (&str, &str) = ("DATABASE_URL", "postgres://postgres@127.0.0.1/x");

    #[test]
    fn database_url_is_required_and_named() {
        let err = settings(&[]).unwrap_err().to_string();
        assert!(err.starts_with("DATABASE_URL is required"), "{err}");
    }

    #[test]
    fn defaults_are_sensible() {
        let s = settings(&[DB]).unwrap();
        assert_eq!(s.upload_max_bytes, 2 << 30);
        assert_eq!(s.leptos.site_addr.to_string(), "127.0.0.1:3000");
        assert!(!s.sync.mode().available);
        assert_eq!(s.sync.retry_attempts, 3);
        assert_eq!(s.sync.retry_interval_secs, 300);
    }

    #[test]
    fn invalid_values_name_the_variable() {
        for (name, value) in [
            ("UPLOAD_MAX_BYTES", "lots"),
            ("UPLOAD_MAX_BYTES", "0"),
            ("DATABRICKS_SYNC_ENABLED", "maybe"),
            ("LEPTOS_SITE_ADDR", "localhost"),
            ("LOG_FORMAT", "xml"),
            ("DUCKDB_THREADS", "0"),
            ("MCP_SERVER_URL", "ftp://x"),
            ("PUBLIC_URL", "example.org"),
            ("INTERNAL_ADDR", "nowhere"),
            ("SIGNUP_OPEN", "perhaps"),
        ] {
            let err = settings(&[DB, (name, value)]).unwrap_err().to_string();
            assert!(err.starts_with(name), "{name}: {err}");
        }
    }

    #[test]
    fn the_first_admin_comes_whole_or_not_at_all() {
        let err = |vars: &[(&str, &str)]| settings(vars).unwrap_err().to_string();
        assert!(err(&[DB, ("ADMIN_EMAIL", "a@b.org")]).starts_with("ADMIN_PASSWORD"));
        assert!(err(&[DB, ("ADMIN_PASSWORD", "long enough pw")]).starts_with("ADMIN_EMAIL"));
        assert!(err(&[
            DB,
            ("ADMIN_EMAIL", "nope"),
            ("ADMIN_PASSWORD", "long enough pw")
        ])
        .starts_with("ADMIN_EMAIL"));
        assert!(
            err(&[DB, ("ADMIN_EMAIL", "a@b.org"), ("ADMIN_PASSWORD", "short")])
                .starts_with("ADMIN_PASSWORD")
        );
        let s = settings(&[
            DB,
            ("ADMIN_EMAIL", "a@b.org"),
            ("ADMIN_PASSWORD", "long enough pw"),
        ])
        .unwrap();
        assert_eq!(s.accounts.first_admin.unwrap().0, "a@b.org");
        assert_eq!(s.accounts.public_url, "http://127.0.0.1:3000");
        assert_eq!(s.accounts.internal_addr.to_string(), "127.0.0.1:3010");
        assert!(!s.accounts.signup_open);
    }

    #[test]
    fn sync_needs_a_key_when_mcp_is_configured() {
        let err = settings(&[
            DB,
            ("DATABRICKS_SYNC_ENABLED", "true"),
            ("MCP_SERVER_URL", "http://127.0.0.1:8000/mcp"),
        ])
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("MCP_API_KEY"), "{err}");
    }
}

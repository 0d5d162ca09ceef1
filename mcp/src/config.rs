//! Typed settings read from the environment once, at start-up. Every
//! variable is documented in `.env.example`; a missing or invalid one stops
//! start-up with an error that names it. Secrets are `SecretString`s so they
//! never reach logs or `Debug` output.

use crate::domain::Ident;
pub use contract::env::{ConfigError, Env};
use secrecy::SecretString;
use std::{collections::HashMap, net::SocketAddr, path::PathBuf};

/// How the Databricks backend authenticates.
#[derive(Debug, Clone)]
pub enum DatabricksAuth {
    /// `DATABRICKS_TOKEN`
    Pat(SecretString),
    /// `DATABRICKS_CLIENT_ID` / `DATABRICKS_CLIENT_SECRET` (OAuth M2M).
    OAuth {
        client_id: String,
        client_secret: SecretString,
    },
}

#[derive(Debug, Clone)]
pub struct DatabricksSettings {
    /// `DATABRICKS_HOST`, e.g. `https://adb-123.4.azuredatabricks.net` (no trailing slash).
    pub host: String,
    pub auth: DatabricksAuth,
    /// `DATABRICKS_WAREHOUSE_ID`
    pub warehouse_id: String,
    /// `DATABRICKS_CATALOG` (default `servicetsunami`)
    pub catalog: Ident,
    /// `DATABRICKS_VOLUME` (default `raw`): the volume in each bronze schema.
    pub volume: Ident,
    /// `DATABRICKS_EXTERNAL_LOCATION`: when set, bronze is an EXTERNAL table under it.
    pub external_location: Option<String>,
    /// `DATABRICKS_STATEMENT_TIMEOUT_SECS` (default 1500): our own deadline
    /// per statement, after which it is cancelled. Under the app's 30-minute
    /// deadline for `create_dataset`, so a long bronze or silver CTAS is
    /// cancelled by us (and the sync retried) rather than abandoned.
    pub statement_timeout_secs: u64,
    /// `DATABRICKS_QUERY_PRINCIPALS`: a JSON file mapping each tenant id to
    /// the credentials of a principal that may only read that tenant's
    /// schemas (`{"<tenant>": {"token": "dapi…"}}` or `{"<tenant>":
    /// {"client_id": "…", "client_secret": "…"}}`). When set, `query` runs
    /// as the tenant's own principal, so Unity Catalog's grants, not only
    /// the guard, keep tenants apart; a tenant missing from it cannot query.
    /// When unset, `query` runs as the service principal.
    pub query_principals: Option<HashMap<String, DatabricksAuth>>,
}

/// What one `query` may use in the embedded lakehouse's sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SandboxLimits {
    /// `MCP_QUERY_MEMORY_LIMIT` (default 512MiB): DuckDB's `memory_limit` for one query.
    pub memory_bytes: u64,
    /// `MCP_QUERY_THREADS` (default 1): DuckDB's `threads` for one query.
    pub threads: u32,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        Self {
            memory_bytes: 512 << 20,
            threads: 1,
        }
    }
}

#[derive(Debug, Clone)]
pub enum BackendSettings {
    Local {
        path: PathBuf,
        catalog: Ident,
        sandbox: SandboxLimits,
        /// `MCP_QUERY_WORKER_PROGRAM`: the program a `query` runs in
        /// (started with `mcp-query-worker`); unset, this binary.
        query_worker: Option<PathBuf>,
    },
    Databricks(DatabricksSettings),
}

#[derive(Debug, Clone)]
pub struct Settings {
    /// `MCP_API_KEY` (required): the service credential. The ServiceTsunami
    /// server calls with it (it alone may create tables for any tenant), and
    /// this server sends it to the app's internal listener to introspect
    /// assistants' tokens. It is never sent anywhere else.
    pub api_key: SecretString,
    /// `MCP_INTERNAL_BASE_URL` (default http://127.0.0.1:3010): the app's
    /// internal listener. Parquet downloads come only from here, and
    /// assistants' tokens are checked here.
    pub internal_base_url: String,
    /// `MCP_TOKEN_CACHE_SECS` (default 30; 0 = no cache): how long an
    /// assistant token's tenant is remembered (a revoked token stops within it).
    pub token_cache_secs: u64,
    /// `MCP_BIND_ADDR` (default 127.0.0.1:8765).
    pub bind_addr: SocketAddr,
    /// `MCP_MAX_CONNECTIONS` (default 1024): connections open at once (a
    /// request's headers must arrive within 30 s).
    pub max_connections: usize,
    /// `MCP_ALLOWED_HOSTS` (default localhost,127.0.0.1,::1): accepted `Host` headers.
    pub allowed_hosts: Vec<String>,
    /// `MCP_MAX_DOWNLOAD_BYTES` (default 4GiB).
    pub max_download_bytes: u64,
    /// `MCP_QUERY_TIMEOUT_SECS` (default 30) and `MCP_QUERY_MAX_ROWS` (default 1000).
    pub query_timeout_secs: u64,
    pub query_max_rows: u32,
    /// `MCP_QUERY_MAX_CONCURRENT` (default 4): queries running at once; one
    /// more is refused as busy (retryable) rather than queued.
    pub query_max_concurrent: u32,
    /// `LAKEHOUSE_BACKEND` (local | databricks) and its settings.
    pub backend: BackendSettings,
}

/// `LAKEHOUSE_CATALOG`-style identifiers.
fn ident<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
    name: &'static str,
    default: &str,
) -> Result<Ident, ConfigError> {
    env.checked(name, default, |v| {
        Ident::parse(v).map_err(|e| e.reason.to_owned())
    })
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env(lookup);
        let api_key = env.required("MCP_API_KEY", "the bearer token MCP clients must send")?;
        if api_key.len() < 16 {
            return Err(ConfigError::Invalid {
                name: "MCP_API_KEY",
                value: "<hidden>".into(),
                reason: "use at least 16 characters".into(),
            });
        }
        let allowed_hosts: Vec<String> = env
            .raw("MCP_ALLOWED_HOSTS")
            .unwrap_or_else(|| "localhost,127.0.0.1,::1".to_owned())
            .split(',')
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .collect();
        if allowed_hosts.is_empty() {
            return Err(ConfigError::Invalid {
                name: "MCP_ALLOWED_HOSTS",
                value: String::new(),
                reason: "list at least one host".into(),
            });
        }
        let max_download_bytes = env.byte_size("MCP_MAX_DOWNLOAD_BYTES", 4 << 30)?;
        let backend = match env.raw("LAKEHOUSE_BACKEND").as_deref() {
            None | Some("local") => BackendSettings::Local {
                path: PathBuf::from(
                    env.raw("LAKEHOUSE_PATH")
                        .unwrap_or_else(|| "./data/lakehouse".to_owned()),
                ),
                catalog: ident(&env, "LAKEHOUSE_CATALOG", "servicetsunami")?,
                sandbox: SandboxLimits {
                    memory_bytes: {
                        let bytes = env.byte_size(
                            "MCP_QUERY_MEMORY_LIMIT",
                            SandboxLimits::default().memory_bytes,
                        )?;
                        if bytes < 16 << 20 {
                            return Err(ConfigError::Invalid {
                                name: "MCP_QUERY_MEMORY_LIMIT",
                                value: bytes.to_string(),
                                reason: "use at least 16MiB".into(),
                            });
                        }
                        bytes
                    },
                    threads: env.parse_at_least("MCP_QUERY_THREADS", 1u32, 1)?,
                },
                query_worker: env.raw("MCP_QUERY_WORKER_PROGRAM").map(PathBuf::from),
            },
            Some("databricks") => BackendSettings::Databricks(databricks(&env)?),
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "LAKEHOUSE_BACKEND",
                    value: other.to_owned(),
                    reason: "expected local or databricks".into(),
                })
            }
        };
        Ok(Self {
            api_key: SecretString::from(api_key),
            internal_base_url: env.http_url("MCP_INTERNAL_BASE_URL", "http://127.0.0.1:3010")?,
            token_cache_secs: env.parse("MCP_TOKEN_CACHE_SECS", 30u64)?,
            bind_addr: env.parse("MCP_BIND_ADDR", SocketAddr::from(([127, 0, 0, 1], 8765)))?,
            allowed_hosts,
            max_connections: env.parse_at_least("MCP_MAX_CONNECTIONS", 1024usize, 1)?,
            max_download_bytes,
            query_timeout_secs: env.parse_at_least("MCP_QUERY_TIMEOUT_SECS", 30u64, 1)?,
            query_max_rows: env.parse_at_least("MCP_QUERY_MAX_ROWS", 1000u32, 1)?,
            query_max_concurrent: env.parse_at_least("MCP_QUERY_MAX_CONCURRENT", 4u32, 1)?,
            backend,
        })
    }
}

fn databricks<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
) -> Result<DatabricksSettings, ConfigError> {
    let host = env.required(
        "DATABRICKS_HOST",
        "the workspace URL, e.g. https://adb-123.4.azuredatabricks.net",
    )?;
    // Plain http:// would send the token in the clear: only a loopback
    // host (a local test double) may use it.
    let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
        .iter()
        .any(|prefix| {
            host.strip_prefix(prefix)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with([':', '/']))
        });
    if !(host.starts_with("https://") || loopback) {
        return Err(ConfigError::Invalid {
            name: "DATABRICKS_HOST",
            value: host,
            reason: "expected an https:// URL (http:// only for a loopback test host)".into(),
        });
    }
    let auth = match (env.raw("DATABRICKS_TOKEN"), env.raw("DATABRICKS_CLIENT_ID")) {
        (Some(token), _) => DatabricksAuth::Pat(SecretString::from(token)),
        (None, Some(client_id)) => DatabricksAuth::OAuth {
            client_id,
            client_secret: SecretString::from(env.required(
                "DATABRICKS_CLIENT_SECRET",
                "required with DATABRICKS_CLIENT_ID (OAuth M2M)",
            )?),
        },
        (None, None) => {
            return Err(ConfigError::Missing {
                name: "DATABRICKS_TOKEN",
                hint: "or DATABRICKS_CLIENT_ID and DATABRICKS_CLIENT_SECRET",
            })
        }
    };
    Ok(DatabricksSettings {
        host: host.trim_end_matches('/').to_owned(),
        auth,
        warehouse_id: env.required(
            "DATABRICKS_WAREHOUSE_ID",
            "the SQL warehouse that runs statements",
        )?,
        catalog: ident(env, "DATABRICKS_CATALOG", "servicetsunami")?,
        volume: ident(env, "DATABRICKS_VOLUME", "raw")?,
        external_location: env
            .raw("DATABRICKS_EXTERNAL_LOCATION")
            .map(|l| l.trim_end_matches('/').to_owned()),
        statement_timeout_secs: env.parse("DATABRICKS_STATEMENT_TIMEOUT_SECS", 1500u64)?,
        query_principals: env
            .raw("DATABRICKS_QUERY_PRINCIPALS")
            .map(|path| query_principals(&path))
            .transpose()?,
    })
}

/// Reads the `DATABRICKS_QUERY_PRINCIPALS` file (see [`DatabricksSettings`]).
fn query_principals(path: &str) -> Result<HashMap<String, DatabricksAuth>, ConfigError> {
    let invalid = |reason: String| ConfigError::Invalid {
        name: "DATABRICKS_QUERY_PRINCIPALS",
        value: path.to_owned(),
        reason,
    };
    let text =
        std::fs::read_to_string(path).map_err(|e| invalid(format!("cannot read it: {e}")))?;
    let entries: HashMap<String, serde_json::Value> = serde_json::from_str(&text)
        .map_err(|e| invalid(format!("expected a JSON object of tenants: {e}")))?;
    entries
        .into_iter()
        .map(|(tenant, creds)| {
            let tenant = crate::domain::TenantId::parse(&tenant)
                .map_err(|e| invalid(format!("{tenant:?} is not a tenant id: {e}")))?;
            let text = |key: &str| creds.get(key).and_then(|v| v.as_str()).map(str::to_owned);
            let auth = match (text("token"), text("client_id"), text("client_secret")) {
                (Some(token), None, None) => DatabricksAuth::Pat(SecretString::from(token)),
                (None, Some(client_id), Some(secret)) => DatabricksAuth::OAuth {
                    client_id,
                    client_secret: SecretString::from(secret),
                },
                _ => {
                    return Err(invalid(format!(
                        "tenant {}: give either \"token\" or \"client_id\" and \"client_secret\"",
                        tenant.as_str()
                    )))
                }
            };
            Ok((tenant.as_str().to_owned(), auth))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const KEY: (&str, &str) = ("MCP_API_KEY", "0123456789abcdef0123");

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(move |k| map.get(k).cloned())
    }

    #[test]
    fn api_key_is_required_and_named() {
        let err = settings(&[]).unwrap_err().to_string();
        assert!(err.starts_with("MCP_API_KEY is required"), "{err}");
    }

    #[test]
    fn defaults_are_local_and_loopback() {
        let s = settings(&[KEY]).unwrap();
        assert_eq!(s.bind_addr.to_string(), "127.0.0.1:8765");
        assert_eq!(s.allowed_hosts, ["localhost", "127.0.0.1", "::1"]);
        let BackendSettings::Local {
            path,
            catalog,
            sandbox,
            query_worker,
        } = s.backend
        else {
            panic!("expected local")
        };
        assert_eq!(sandbox, SandboxLimits::default());
        assert_eq!(query_worker, None);
        assert_eq!(s.query_max_concurrent, 4);
        assert_eq!(path, PathBuf::from("./data/lakehouse"));
        assert_eq!(catalog.as_str(), "servicetsunami");
        assert!(!format!("{:?}", s.api_key).contains("0123456789"));
    }

    #[test]
    fn invalid_values_name_the_variable() {
        for (name, value) in [
            ("MCP_BIND_ADDR", "localhost"),
            ("MCP_MAX_DOWNLOAD_BYTES", "lots"),
            ("LAKEHOUSE_BACKEND", "snowflake"),
            ("LAKEHOUSE_CATALOG", "my-catalog; drop"),
            ("MCP_QUERY_MAX_ROWS", "-1"),
            ("MCP_QUERY_MAX_ROWS", "0"),
            ("MCP_QUERY_TIMEOUT_SECS", "0"),
            ("MCP_QUERY_MAX_CONCURRENT", "0"),
            ("MCP_QUERY_THREADS", "0"),
            ("MCP_QUERY_MEMORY_LIMIT", "1MiB"),
            ("MCP_QUERY_MEMORY_LIMIT", "much"),
        ] {
            let err = settings(&[KEY, (name, value)]).unwrap_err().to_string();
            assert!(err.starts_with(name), "{name}: {err}");
        }
    }

    #[test]
    fn databricks_names_what_is_missing() {
        let err = settings(&[KEY, ("LAKEHOUSE_BACKEND", "databricks")])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("DATABRICKS_HOST"), "{err}");
        let base = [
            KEY,
            ("LAKEHOUSE_BACKEND", "databricks"),
            ("DATABRICKS_HOST", "https://x.cloud.databricks.com/"),
        ];
        let err = settings(&base).unwrap_err().to_string();
        assert!(err.starts_with("DATABRICKS_TOKEN"), "{err}");
        let err = settings(&[base[0], base[1], base[2], ("DATABRICKS_CLIENT_ID", "id")])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("DATABRICKS_CLIENT_SECRET"), "{err}");
        let err = settings(&[base[0], base[1], base[2], ("DATABRICKS_TOKEN", "dapi")])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("DATABRICKS_WAREHOUSE_ID"), "{err}");
        let ok = settings(&[
            base[0],
            base[1],
            base[2],
            ("DATABRICKS_TOKEN", "dapi"),
            ("DATABRICKS_WAREHOUSE_ID", "w1"),
        ])
        .unwrap();
        let BackendSettings::Databricks(d) = ok.backend else {
            panic!("expected databricks")
        };
        assert_eq!(d.host, "https://x.cloud.databricks.com");
        assert!(!format!("{d:?}").contains("dapi"));
    }

    #[test]
    fn query_principals_are_read_from_their_file_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let with_file = |text: &str| {
            let path = dir.path().join("principals.json");
            std::fs::write(&path, text).unwrap();
            let path = path.to_string_lossy().into_owned();
            settings(&[
                KEY,
                ("LAKEHOUSE_BACKEND", "databricks"),
                ("DATABRICKS_HOST", "https://x.cloud.databricks.com"),
                ("DATABRICKS_TOKEN", "dapi"),
                ("DATABRICKS_WAREHOUSE_ID", "w1"),
                ("DATABRICKS_QUERY_PRINCIPALS", &path),
            ])
        };
        let ok = with_file(
            r#"{"acme": {"token": "dapi-acme"}, "globex": {"client_id": "g", "client_secret": "s"}}"#,
        )
        .unwrap();
        let BackendSettings::Databricks(d) = ok.backend else {
            panic!("expected databricks")
        };
        let principals = d.query_principals.unwrap();
        assert!(matches!(principals["acme"], DatabricksAuth::Pat(_)));
        assert!(matches!(principals["globex"], DatabricksAuth::OAuth { .. }));
        for bad in [
            "not json",
            r#"{"acme": {}}"#,
            r#"{"acme": {"token": "t", "client_id": "c"}}"#,
            r#"{"no such tenant!": {"token": "t"}}"#,
        ] {
            let err = with_file(bad).unwrap_err().to_string();
            assert!(
                err.starts_with("DATABRICKS_QUERY_PRINCIPALS"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn databricks_host_must_be_https_unless_loopback() {
        let with_host = |host: &str| {
            settings(&[
                KEY,
                ("LAKEHOUSE_BACKEND", "databricks"),
                ("DATABRICKS_HOST", host),
                ("DATABRICKS_TOKEN", "dapi"),
                ("DATABRICKS_WAREHOUSE_ID", "w1"),
            ])
        };
        for refused in [
            "http://adb-1.azuredatabricks.net",
            "http://127.0.0.1.evil.example",
            "http://localhost.evil.example",
            "ftp://x",
        ] {
            let err = with_host(refused).unwrap_err().to_string();
            assert!(err.starts_with("DATABRICKS_HOST"), "{refused}: {err}");
        }
        for accepted in [
            "https://adb-1.azuredatabricks.net",
            "http://127.0.0.1:8080",
            "http://localhost:1234",
            "http://[::1]:9",
        ] {
            assert!(with_host(accepted).is_ok(), "{accepted}");
        }
    }
}

//! The Databricks backend against a contract double built from the
//! documented API: it checks method, path, headers and body fields of every
//! call and behaves as the documentation says the service does. It is a test
//! double only, never a shipped backend. Each rule names its source:
//!
//! - Statement Execution API (docs.databricks.com/api/statement-execution/v1,
//!   `object.md`, `execute-statement.md`, `get-result-data.md`): states
//!   PENDING, RUNNING, SUCCEEDED (inline within `wait_timeout`), FAILED,
//!   CANCELED, CLOSED; `wait_timeout` 0 or 5–50 s; `catalog` sets the default
//!   catalog (without it `schema.table` is not found); `row_limit` sets
//!   `manifest.truncated`; results come in chunks linked by
//!   `next_chunk_internal_link`; a failure's `error_code` is a service code
//!   (`BAD_REQUEST`, …) with the SQL error class opening `message` and the
//!   SQLSTATE in `sql_state`.
//! - Auth (docs "Authentication for Databricks automation", databricks-sdk-go
//!   `apierr`): a bad token answers 403 `{"error_code": 403, "message":
//!   "Invalid access token."}` (a number), or 401, or a proxy's HTML page; an
//!   expired OAuth token may come back as 400.
//! - Retries (databricks-sdk-go `apierr/error_overrides.go`): 429/503 with
//!   `Retry-After`, and transient messages such as `ClusterNotReadyException`.
//! - Files API (`files/upload.md`, `files/create-directory.md`, "Upload large
//!   files with multipart upload"): PUT into a volume that exists, at most
//!   5000 MiB in one PUT; `files/list-directory-contents.md` (`contents` of
//!   `{path, is_directory, …}`, `next_page_token`), `files/delete.md` and
//!   `files/delete-directory.md` ("Deletes an empty directory. To delete a
//!   non-empty directory, first delete all of its contents"); 404 for what
//!   does not exist.
//! - Unity Catalog tables (`unity-catalog/tables/list.md`): pages of at most
//!   a server-chosen size with `next_page_token`; a page may be empty and
//!   still carry a token.
//! - Delta (docs "Rename and drop columns with Delta Lake column mapping"):
//!   spaces and `,;{}()\n\t=` in column names need
//!   `'delta.columnMapping.mode' = 'name'`, else
//!   `DELTA_INVALID_CHARACTERS_IN_COLUMN_NAMES` (SQLSTATE 42K05).
//! - `read_files` on Parquet (docs "read_files table-valued function",
//!   "rescued data column"): adds `_rescued_data STRING` after the file's
//!   columns.

use axum::{
    body::Bytes,
    extract::{Path, Query, State},
    http::{HeaderMap, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
    routing::{any, get, post},
    Json, Router,
};
use secrecy::SecretString;
use serde_json::{json, Value};
use servicetsunami_mcp::backend::databricks::{
    DatabricksClient, DatabricksError, DatabricksLakehouse,
};
use servicetsunami_mcp::backend::{BronzeRequest, Lakehouse};
use servicetsunami_mcp::config::{DatabricksAuth, DatabricksSettings};
use servicetsunami_mcp::domain::{
    table_ident, DatasetId, DatasetVersion, Ident, TableName, TenantId,
};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PAT: &str = "dapi-test-token";
const WAREHOUSE: &str = "wh-1";
/// Tokens of tenants' read-only principals.
const READER_PREFIX: &str = "dapi-reader-";
const CATALOG: &str = "main_cat";
/// The server-configured page size for table lists.
const SERVER_PAGE: usize = 2;
/// Characters Delta refuses in column names without column mapping.
const DELTA_INVALID: &[char] = &[' ', ',', ';', '{', '}', '(', ')', '\n', '\t', '='];

#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    path: String,
    auth: String,
    body: String,
}

/// How the double answers a request whose token it does not accept.
#[derive(Debug, Clone, Copy, Default)]
enum AuthAnswer {
    /// 401 `{"error_code": "UNAUTHENTICATED", …}`.
    #[default]
    Json401,
    /// 403 `{"error_code": 403, "message": "Invalid access token."}`.
    Numeric403,
    /// 401 with a proxy's HTML page.
    Html401,
    /// 400 `{"error_code": "INVALID_PARAMETER_VALUE", "message": "… token expired …"}`.
    Expired400,
}

#[derive(Default)]
struct Double {
    log: Vec<Recorded>,
    tokens_issued: u32,
    /// Tokens the double treats as expired.
    expired: Vec<String>,
    auth_answer: AuthAnswer,
    /// Requests refused for their token.
    refused: u32,
    /// The token endpoint answers 503 this many times first.
    token_errors_remaining: u32,
    throttle_remaining: u32,
    /// Statement submissions answered 503 / 500 / a transient 400.
    unavailable_remaining: u32,
    errors_remaining: u32,
    transient_remaining: u32,
    /// Polls answered 500 first.
    poll_errors_remaining: u32,
    /// A stopped warehouse: statements stay PENDING for this many polls.
    warehouse_starting_polls: u32,
    /// Rows per result chunk (0: 1,000).
    chunk_rows: usize,
    /// Rows the `AS q` query produces (0: 3).
    query_rows: usize,
    /// statement id → (statement, polls so far, rows, row_limit)
    statements: HashMap<String, Statement>,
    cancelled: Vec<String>,
    volumes: HashSet<String>,
    uploads: HashMap<String, Vec<u8>>,
    /// Tables bronze CTAS made: full name → columns (name, type).
    tables: HashMap<String, Vec<(String, String)>>,
    /// The `_dataset_id` each CTAS wrote: full name → dataset id.
    owners: HashMap<String, String>,
    /// Tables dropped (canned ones included).
    dropped: HashSet<String>,
    /// The newest `_version` each bronze CTAS read: full name → version.
    versions: HashMap<String, u32>,
    /// `TBLPROPERTIES` silver CTAS set: full name → properties.
    properties: HashMap<String, HashMap<String, String>>,
    /// Directories made with `PUT /api/2.0/fs/directories…`.
    directories: HashSet<String>,
    files_dir: Option<tempfile::TempDir>,
}

struct Statement {
    text: String,
    polls: u32,
    row_limit: Option<usize>,
}

type Shared = Arc<Mutex<Double>>;

fn err(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error_code": code, "message": message})),
    )
        .into_response()
}

/// The Authorization header when it carries a valid (unexpired) token.
fn authorized(state: &Double, headers: &HeaderMap) -> Option<String> {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let token = auth.strip_prefix("Bearer ")?;
    let valid = token == PAT
        || token.starts_with(READER_PREFIX)
        || (token.starts_with("oauth-") && !state.expired.iter().any(|e| e == token));
    valid.then_some(auth)
}

fn unauthorized(state: &mut Double) -> Response {
    state.refused += 1;
    match state.auth_answer {
        AuthAnswer::Json401 => err(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "missing, invalid or expired token",
        ),
        AuthAnswer::Numeric403 => (
            StatusCode::FORBIDDEN,
            Json(json!({"error_code": 403, "message": "Invalid access token."})),
        )
            .into_response(),
        AuthAnswer::Html401 => (
            StatusCode::UNAUTHORIZED,
            [("content-type", "text/html")],
            "<html><head><title>Error 401 Unauthorized</title></head><body><h2>HTTP ERROR 401</h2></body></html>",
        )
            .into_response(),
        AuthAnswer::Expired400 => err(
            StatusCode::BAD_REQUEST,
            "INVALID_PARAMETER_VALUE",
            "Invalid access token: the token expired",
        ),
    }
}

async fn token(State(s): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let mut st = s.lock().unwrap();
    // Basic base64("client-1:secret-1")
    assert_eq!(
        headers.get("authorization").and_then(|v| v.to_str().ok()),
        Some("Basic Y2xpZW50LTE6c2VjcmV0LTE="),
        "client credentials go in HTTP basic auth"
    );
    assert!(
        body.contains("grant_type=client_credentials") && body.contains("scope=all-apis"),
        "{body}"
    );
    if st.token_errors_remaining > 0 {
        st.token_errors_remaining -= 1;
        return err(
            StatusCode::SERVICE_UNAVAILABLE,
            "TEMPORARILY_UNAVAILABLE",
            "try again",
        );
    }
    st.tokens_issued += 1;
    Json(json!({"access_token": format!("oauth-{}", st.tokens_issued), "token_type": "Bearer", "expires_in": 3600}))
        .into_response()
}

/// A FAILED statement as the API reports it.
fn failed(id: &str, code: &str, class: &str, sql_state: &str, text: &str) -> Value {
    json!({
        "statement_id": id,
        "status": {
            "state": "FAILED",
            "sql_state": sql_state,
            "error": {"error_code": code, "message": format!("[{class}] {text} SQLSTATE: {sql_state}")}
        }
    })
}

/// Whether a staged file's path matches a `read_files` path: equal, or a
/// glob whose version directory is `v*` or `v{a,b,…}` (Databricks globs, as
/// in "read_files table-valued function": `*` and `{ab,cd}`).
fn glob_matches(glob: &str, path: &str) -> bool {
    if glob == path {
        return true;
    }
    let (Some((gdir, grest)), Some((pdir, prest))) =
        (glob.rsplit_once("/v"), path.rsplit_once("/v"))
    else {
        return false;
    };
    let (Some((gv, gfile)), Some((pv, pfile))) = (grest.split_once('/'), prest.split_once('/'))
    else {
        return false;
    };
    gdir == pdir
        && gfile == pfile
        && (gv == "*"
            || gv
                .strip_prefix('{')
                .and_then(|g| g.strip_suffix('}'))
                .is_some_and(|list| list.split(',').any(|v| v == pv)))
}

/// Spark's type text for a DuckDB type of the staged Parquet file.
fn spark_type(duckdb_type: &str) -> String {
    match duckdb_type {
        "VARCHAR" => "string".into(),
        "INTEGER" => "int".into(),
        other => other.to_ascii_lowercase(),
    }
}

impl Double {
    /// The staged files a `read_files` path names: one file, or a glob over
    /// a dataset's version directories (`…/v*/data.parquet`,
    /// `…/v{2,3}/data.parquet`), oldest version first.
    fn matching(&self, path: &str) -> Vec<(u32, String)> {
        let mut found: Vec<(u32, String)> = self
            .uploads
            .keys()
            .filter_map(|p| {
                let version = p
                    .rsplit_once("/v")
                    .and_then(|(_, rest)| rest.split_once('/'))
                    .and_then(|(v, _)| v.parse::<u32>().ok())?;
                glob_matches(path, p).then(|| (version, p.clone()))
            })
            .collect();
        found.sort();
        found
    }

    /// The columns `read_files(path, format => 'parquet', mergeSchema =>
    /// true)` produces: every matched file's columns, merged by name in the
    /// order they first appear, then the rescue column.
    fn read_files(&mut self, path: &str) -> Option<Vec<(String, String)>> {
        let files = self.matching(path);
        if files.is_empty() {
            return None;
        }
        let dir = self
            .files_dir
            .get_or_insert_with(|| tempfile::tempdir().unwrap())
            .path()
            .to_path_buf();
        let mut columns: Vec<(String, String)> = Vec::new();
        for (i, (_, upload)) in files.iter().enumerate() {
            let file = dir.join(format!("staged-{i}.parquet"));
            std::fs::write(&file, &self.uploads[upload]).unwrap();
            let conn = duckdb::Connection::open_in_memory().unwrap();
            let mut stmt = conn
                .prepare(&format!(
                    "DESCRIBE SELECT * FROM read_parquet('{}')",
                    file.display()
                ))
                .ok()?;
            let these: Vec<(String, String)> = stmt
                .query_map([], |r| {
                    Ok((r.get::<_, String>(0)?, spark_type(&r.get::<_, String>(1)?)))
                })
                .ok()?
                .collect::<Result<_, _>>()
                .ok()?;
            for column in these {
                if !columns.iter().any(|(n, _)| *n == column.0) {
                    columns.push(column);
                }
            }
        }
        columns.push(("_rescued_data".into(), "string".into()));
        Some(columns)
    }

    /// What the "warehouse" answers, by statement shape: `Ok(rows)` or a
    /// FAILED answer.
    fn run(&mut self, id: &str, statement: &str) -> Result<Vec<Vec<Value>>, Value> {
        if statement.contains("FAIL_ME") {
            return Err(failed(
                id,
                "BAD_REQUEST",
                "TABLE_OR_VIEW_NOT_FOUND",
                "42P01",
                "The table or view `FAIL_ME` cannot be found.",
            ));
        }
        if let Some(rest) = statement.strip_prefix("CREATE VOLUME IF NOT EXISTS ") {
            let path = rest.replace('`', "").replace('.', "/");
            self.volumes.insert(format!("/Volumes/{path}"));
            return Ok(vec![]);
        }
        if statement.contains(" AS SELECT *, ") && statement.contains("read_files(") {
            return self.bronze(id, statement).map(|()| vec![]);
        }
        if let Some(rest) = statement.strip_prefix("DESCRIBE QUERY SELECT * FROM read_files('") {
            let path = rest.split('\'').next().unwrap();
            let Some(columns) = self.read_files(path) else {
                return Err(failed(
                    id,
                    "BAD_REQUEST",
                    "PATH_NOT_FOUND",
                    "42K03",
                    &format!("Path does not exist: {path}."),
                ));
            };
            // DESCRIBE QUERY answers col_name, data_type, comment.
            return Ok(columns
                .into_iter()
                .map(|(n, t)| vec![Value::String(n), Value::String(t), Value::Null])
                .collect());
        }
        if let Some(rest) = statement.strip_prefix("SELECT max(`_version`) FROM ") {
            let table = rest.replace('`', "");
            return Ok(vec![vec![self
                .versions
                .get(&table)
                .map_or(Value::Null, |v| Value::String(v.to_string()))]]);
        }
        if statement.starts_with("CREATE OR REPLACE TABLE ")
            && statement.contains("TBLPROPERTIES ('servicetsunami.version'")
        {
            // A silver CTAS: the double keeps the properties it sets.
            let table = statement
                .strip_prefix("CREATE OR REPLACE TABLE ")
                .and_then(|r| r.split(' ').next())
                .unwrap()
                .replace('`', "");
            let inside = statement
                .split("TBLPROPERTIES (")
                .nth(1)
                .and_then(|r| r.split(')').next())
                .unwrap();
            let properties = inside
                .split(", ")
                .filter_map(|pair| pair.split_once(" = "))
                .map(|(k, v)| {
                    (
                        k.trim_matches('\'').to_owned(),
                        v.trim_matches('\'').to_owned(),
                    )
                })
                .collect();
            self.properties.insert(table, properties);
            return Ok(vec![]);
        }
        if let Some(table) = statement.strip_prefix("DROP TABLE IF EXISTS ") {
            let table = table.replace('`', "");
            self.tables.remove(&table);
            self.dropped.insert(table);
            return Ok(vec![]);
        }
        if let Some(rest) = statement.strip_prefix("SELECT `_dataset_id` FROM ") {
            let table = rest.trim_end_matches(" LIMIT 1").replace('`', "");
            if self.dropped.contains(&table) {
                return Err(failed(
                    id,
                    "BAD_REQUEST",
                    "TABLE_OR_VIEW_NOT_FOUND",
                    "42P01",
                    &format!("The table or view `{table}` cannot be found."),
                ));
            }
            // A table the double did not make with an owner reads as empty.
            return Ok(self
                .owners
                .get(&table)
                .map(|owner| vec![Value::String(owner.clone())])
                .into_iter()
                .collect());
        }
        let text = |v: &[&str]| -> Vec<Vec<Value>> {
            vec![v.iter().map(|s| Value::String((*s).to_owned())).collect()]
        };
        if statement.contains(" UNPIVOT (value FOR name IN (") {
            // The statistics, a row per text column that holds a value (the
            // warehouse answers every value as a string): `Customer ID`: 6
            // integers, 2 with leading zeros; `Amount`: 5 values, 1 integer
            // and 4 decimals, up to 2+2 digits.
            let row = |name: &str, stats: [u64; 10]| -> Vec<Value> {
                std::iter::once(Value::String(name.into()))
                    .chain(stats.iter().map(|v| Value::String(v.to_string())))
                    .collect()
            };
            return Ok(vec![
                row("Customer ID", [6, 6, 0, 2, 6, 0, 0, 0, 3, 0]),
                row("Amount", [5, 1, 4, 0, 5, 0, 0, 0, 2, 2]),
            ]);
        }
        if statement.starts_with("SELECT COUNT(*) FROM ") {
            // The rows silver reads.
            return Ok(text(&["6"]));
        }
        if statement.contains("COUNT(*) - COUNT(") {
            return Ok(text(&["5", "0", "1", "0"]));
        }
        if statement.starts_with("SELECT count(*)") {
            return Ok(text(&["6"]));
        }
        if statement.contains(") AS q LIMIT ") {
            let limit: usize = statement
                .rsplit("LIMIT ")
                .next()
                .and_then(|n| n.trim().parse().ok())
                .unwrap();
            let rows = if self.query_rows == 0 {
                3
            } else {
                self.query_rows
            };
            return Ok((1..=rows.min(limit))
                .map(|i| vec![Value::String(i.to_string())])
                .collect());
        }
        Ok(vec![])
    }

    /// A bronze CTAS over `read_files`: the staged file must exist, and its
    /// column names must suit Delta (or column mapping must be on).
    fn bronze(&mut self, id: &str, statement: &str) -> Result<(), Value> {
        let table = statement
            .strip_prefix("CREATE OR REPLACE TABLE ")
            .and_then(|r| r.split(' ').next())
            .unwrap()
            .replace('`', "");
        let path = statement
            .split("read_files('")
            .nth(1)
            .and_then(|r| r.split('\'').next())
            .unwrap();
        let Some(mut columns) = self.read_files(path) else {
            return Err(failed(
                id,
                "BAD_REQUEST",
                "PATH_NOT_FOUND",
                "42K03",
                &format!("Path does not exist: {path}."),
            ));
        };
        let mapped = statement.contains("TBLPROPERTIES ('delta.columnMapping.mode' = 'name')");
        if !mapped && columns.iter().any(|(n, _)| n.contains(DELTA_INVALID)) {
            return Err(failed(
                id,
                "BAD_REQUEST",
                "DELTA_INVALID_CHARACTERS_IN_COLUMN_NAMES",
                "42K05",
                "Found invalid character(s) among ' ,;{}()\\n\\t=' in the column names of your schema.",
            ));
        }
        columns.push(("_dataset_id".into(), "string".into()));
        columns.push(("_source_file".into(), "string".into()));
        columns.push(("_version".into(), "int".into()));
        columns.push(("_ingested_at".into(), "timestamp".into()));
        if let Some(newest) = self.matching(path).last().map(|(v, _)| *v) {
            self.versions.insert(table.clone(), newest);
        }
        let owner = statement
            .split(", '")
            .nth(1)
            .and_then(|r| r.split('\'').next())
            .unwrap_or_default()
            .to_owned();
        self.dropped.remove(&table);
        self.owners.insert(table.clone(), owner);
        self.tables.insert(table, columns);
        Ok(())
    }

    /// A SUCCEEDED answer: the manifest and the first chunk of `rows`.
    fn succeeded(&self, id: &str, rows: &[Vec<Value>], row_limit: Option<usize>) -> Value {
        let truncated = row_limit.is_some_and(|l| rows.len() > l);
        let rows = &rows[..row_limit.map_or(rows.len(), |l| l.min(rows.len()))];
        let per = if self.chunk_rows == 0 {
            1000
        } else {
            self.chunk_rows
        };
        let chunks = rows.len().div_ceil(per).max(1);
        let width = rows.first().map_or(1, Vec::len);
        let columns: Vec<Value> = (0..width)
            .map(|i| {
                let name = if i == 0 {
                    "id".to_owned()
                } else {
                    format!("c{i}")
                };
                json!({"name": name, "type_text": "BIGINT", "type_name": "LONG", "position": i})
            })
            .collect();
        json!({
            "statement_id": id,
            "status": {"state": "SUCCEEDED"},
            "manifest": {
                "format": "JSON_ARRAY",
                "schema": {"column_count": width, "columns": columns},
                "total_chunk_count": chunks,
                "total_row_count": rows.len(),
                "truncated": truncated,
            },
            "result": self.chunk(id, rows, 0),
        })
    }

    fn chunk(&self, id: &str, rows: &[Vec<Value>], index: usize) -> Value {
        let per = if self.chunk_rows == 0 {
            1000
        } else {
            self.chunk_rows
        };
        let start = (index * per).min(rows.len());
        let end = (start + per).min(rows.len());
        let mut chunk = json!({
            "chunk_index": index,
            "row_offset": start,
            "row_count": end - start,
            "data_array": rows[start..end],
        });
        if end < rows.len() {
            chunk["next_chunk_index"] = json!(index + 1);
            chunk["next_chunk_internal_link"] = json!(format!(
                "/api/2.0/sql/statements/{id}/result/chunks/{}",
                index + 1
            ));
        }
        chunk
    }
}

async fn submit(State(s): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let mut st = s.lock().unwrap();
    let Some(auth) = authorized(&st, &headers) else {
        return unauthorized(&mut st);
    };
    st.log.push(Recorded {
        method: "POST".into(),
        path: "/api/2.0/sql/statements".into(),
        auth,
        body: body.clone(),
    });
    let request: Value = serde_json::from_str(&body).expect("JSON body");
    assert_eq!(request["warehouse_id"], WAREHOUSE);
    let wait = request["wait_timeout"].as_str().expect("wait_timeout");
    let secs: u32 = wait
        .strip_suffix('s')
        .and_then(|n| n.parse().ok())
        .expect("wait_timeout like 30s");
    if secs != 0 && !(5..=50).contains(&secs) {
        return err(
            StatusCode::BAD_REQUEST,
            "INVALID_PARAMETER_VALUE",
            "wait_timeout must be 0 or between 5s and 50s",
        );
    }
    assert!(matches!(
        request["on_wait_timeout"].as_str(),
        Some("CONTINUE" | "CANCEL")
    ));
    assert_eq!(request["disposition"], "INLINE");
    assert_eq!(request["format"], "JSON_ARRAY");
    let statement = request["statement"].as_str().expect("statement").to_owned();
    if st.throttle_remaining > 0 {
        st.throttle_remaining -= 1;
        let mut r = err(
            StatusCode::TOO_MANY_REQUESTS,
            "REQUEST_LIMIT_EXCEEDED",
            "slow down",
        );
        r.headers_mut().insert("retry-after", "1".parse().unwrap());
        return r;
    }
    if st.unavailable_remaining > 0 {
        st.unavailable_remaining -= 1;
        return err(
            StatusCode::SERVICE_UNAVAILABLE,
            "TEMPORARILY_UNAVAILABLE",
            "the service is temporarily unavailable",
        );
    }
    if st.transient_remaining > 0 {
        st.transient_remaining -= 1;
        return err(
            StatusCode::BAD_REQUEST,
            "INVALID_STATE",
            "com.databricks.backend.manager.util.ClusterNotReadyException: warming up",
        );
    }
    if st.errors_remaining > 0 {
        // The statement may or may not have started: the caller cannot know.
        st.errors_remaining -= 1;
        return err(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
            "try again",
        );
    }
    let id = format!("s-{}", st.statements.len() + 1);
    let row_limit = request["row_limit"].as_u64().map(|n| n as usize);
    st.statements.insert(
        id.clone(),
        Statement {
            text: statement.clone(),
            polls: 0,
            row_limit,
        },
    );
    // Without our catalog, `schema.table` resolves in the workspace's
    // default catalog, where it is not found.
    if request["catalog"] != CATALOG {
        return Json(failed(
            &id,
            "BAD_REQUEST",
            "TABLE_OR_VIEW_NOT_FOUND",
            "42P01",
            "The table or view cannot be found.",
        ))
        .into_response();
    }
    let slow = statement.contains("SLOW")
        || statement.contains("CANCEL_ME")
        || statement.contains("CLOSE_ME");
    if secs == 0 || slow || st.warehouse_starting_polls > 0 {
        return Json(json!({"statement_id": id, "status": {"state": "PENDING"}})).into_response();
    }
    // Finished within wait_timeout: the answer carries the result.
    match st.run(&id, &statement) {
        Ok(rows) => Json(st.succeeded(&id, &rows, row_limit)).into_response(),
        Err(failed) => Json(failed).into_response(),
    }
}

async fn poll(State(s): State<Shared>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let mut st = s.lock().unwrap();
    let Some(auth) = authorized(&st, &headers) else {
        return unauthorized(&mut st);
    };
    st.log.push(Recorded {
        method: "GET".into(),
        path: format!("/api/2.0/sql/statements/{id}"),
        auth,
        body: String::new(),
    });
    if st.poll_errors_remaining > 0 {
        st.poll_errors_remaining -= 1;
        return (
            StatusCode::BAD_GATEWAY,
            [("content-type", "text/html")],
            "<html><body><h1>502 Bad Gateway</h1></body></html>",
        )
            .into_response();
    }
    let starting = st.warehouse_starting_polls;
    let Some(statement) = st.statements.get_mut(&id) else {
        return err(
            StatusCode::NOT_FOUND,
            "RESOURCE_DOES_NOT_EXIST",
            "no such statement",
        );
    };
    statement.polls += 1;
    let (text, polls, row_limit) = (statement.text.clone(), statement.polls, statement.row_limit);
    if polls <= starting {
        return Json(json!({"statement_id": id, "status": {"state": "PENDING"}})).into_response();
    }
    if text.contains("SLOW") || polls <= starting + 1 {
        return Json(json!({"statement_id": id, "status": {"state": "RUNNING"}})).into_response();
    }
    if text.contains("CANCEL_ME") {
        return Json(json!({"statement_id": id, "status": {"state": "CANCELED"}})).into_response();
    }
    if text.contains("CLOSE_ME") {
        return Json(json!({"statement_id": id, "status": {"state": "CLOSED"}})).into_response();
    }
    match st.run(&id, &text) {
        Ok(rows) => Json(st.succeeded(&id, &rows, row_limit)).into_response(),
        Err(failed) => Json(failed).into_response(),
    }
}

async fn result_chunk(
    State(s): State<Shared>,
    Path((id, index)): Path<(String, usize)>,
    headers: HeaderMap,
) -> Response {
    let mut st = s.lock().unwrap();
    let Some(auth) = authorized(&st, &headers) else {
        return unauthorized(&mut st);
    };
    st.log.push(Recorded {
        method: "GET".into(),
        path: format!("/api/2.0/sql/statements/{id}/result/chunks/{index}"),
        auth,
        body: String::new(),
    });
    let Some(statement) = st.statements.get(&id) else {
        return err(StatusCode::NOT_FOUND, "NOT_FOUND", "no such statement");
    };
    let (text, row_limit) = (statement.text.clone(), statement.row_limit);
    let rows = st.run(&id, &text).unwrap();
    let rows = &rows[..row_limit.map_or(rows.len(), |l| l.min(rows.len()))];
    Json(st.chunk(&id, rows, index)).into_response()
}

async fn cancel(State(s): State<Shared>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let mut st = s.lock().unwrap();
    if authorized(&st, &headers).is_none() {
        return unauthorized(&mut st);
    }
    st.cancelled.push(id);
    Json(json!({})).into_response()
}

/// The volume a `/Volumes/<catalog>/<schema>/<volume>/…` path lies in.
fn volume_of(path: &str) -> String {
    path.split('/').take(5).collect::<Vec<_>>().join("/")
}

async fn files(
    State(s): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut st = s.lock().unwrap();
    let Some(auth) = authorized(&st, &headers) else {
        return unauthorized(&mut st);
    };
    let path = uri.path().to_owned();
    st.log.push(Recorded {
        method: method.to_string(),
        path: path.clone(),
        auth,
        body: String::new(),
    });
    let is_file = path.starts_with("/api/2.0/fs/files");
    let target = path
        .strip_prefix("/api/2.0/fs/files")
        .or_else(|| path.strip_prefix("/api/2.0/fs/directories"))
        .unwrap()
        .to_owned();
    assert!(target.starts_with("/Volumes/"), "{target}");
    let not_found = || {
        err(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The file or directory does not exist.",
        )
    };
    if !st.volumes.contains(&volume_of(&target)) {
        return err(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The volume does not exist.",
        );
    }
    match (method, is_file) {
        (Method::PUT, true) => {
            assert_eq!(uri.query(), Some("overwrite=true"));
            assert_eq!(
                headers.get("content-type").and_then(|v| v.to_str().ok()),
                Some("application/octet-stream")
            );
            let length: u64 = headers
                .get("content-length")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .expect("content-length");
            if length > 5000 * 1024 * 1024 {
                return err(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "INVALID_PARAMETER_VALUE",
                    "files larger than 5000 MiB need a multipart upload",
                );
            }
            st.uploads.insert(target, body.to_vec());
        }
        (Method::PUT, false) => {
            // Creates missing parents too (`mkdir -p`).
            let mut dir = target.trim_end_matches('/').to_owned();
            while dir.len() > volume_of(&target).len() {
                st.directories.insert(dir.clone());
                dir = dir.rsplit_once('/').map(|(p, _)| p.to_owned()).unwrap();
            }
        }
        (Method::DELETE, true) => {
            if st.uploads.remove(&target).is_none() {
                return not_found();
            }
        }
        (Method::DELETE, false) => {
            let prefix = format!("{}/", target.trim_end_matches('/'));
            if !st.directories.contains(target.trim_end_matches('/')) {
                return not_found();
            }
            let occupied = st.uploads.keys().any(|k| k.starts_with(&prefix))
                || st.directories.iter().any(|d| d.starts_with(&prefix));
            if occupied {
                return err(
                    StatusCode::BAD_REQUEST,
                    "BAD_REQUEST",
                    "The directory is not empty.",
                );
            }
            st.directories.remove(target.trim_end_matches('/'));
        }
        (Method::GET, false) => {
            let dir = target.trim_end_matches('/').to_owned();
            if !st.directories.contains(&dir) {
                return not_found();
            }
            let prefix = format!("{dir}/");
            // Immediate children only, one per page, so paging is followed.
            let mut children: Vec<(String, bool)> = st
                .uploads
                .keys()
                .map(|k| (k.clone(), false))
                .chain(st.directories.iter().map(|d| (d.clone(), true)))
                .filter(|(p, _)| p.strip_prefix(&prefix).is_some_and(|r| !r.contains('/')))
                .collect();
            children.sort();
            let page: usize = uri
                .query()
                .unwrap_or("")
                .split('&')
                .find_map(|kv| kv.strip_prefix("page_token="))
                .map_or(0, |t| t.parse().unwrap());
            let mut answer = json!({"contents": children.iter().skip(page).take(1).map(|(p, d)| json!({
                "path": p, "is_directory": d, "name": p.rsplit('/').next().unwrap(),
            })).collect::<Vec<_>>()});
            if page + 1 < children.len() {
                answer["next_page_token"] = json!((page + 1).to_string());
            }
            return Json(answer).into_response();
        }
        (other, _) => panic!("the Files API has no {other} here"),
    }
    StatusCode::NO_CONTENT.into_response()
}

/// Tables the double always holds (made outside the tests' own flows).
fn canned_table(full_name: &str) -> Option<Vec<(String, String)>> {
    let cols = |c: &[(&str, &str)]| {
        Some(
            c.iter()
                .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
                .collect(),
        )
    };
    if full_name.contains("_bronze.") {
        return cols(&[
            ("Customer ID", "string"),
            ("Amount", "string"),
            ("score", "double"),
            ("_rescued_data", "string"),
            ("_dataset_id", "string"),
            ("_source_file", "string"),
        ]);
    }
    if full_name.contains("_silver.") {
        return cols(&[
            ("customer_id", "string"),
            ("amount", "decimal(4,2)"),
            ("score", "double"),
            ("_dataset_id", "string"),
            ("_source_file", "string"),
            ("_ingested_at", "timestamp"),
        ]);
    }
    None
}

fn uc_table(st: &Double, full_name: &str) -> Option<Value> {
    let name = full_name.rsplit('.').next()?;
    let columns = st
        .tables
        .get(full_name)
        .cloned()
        .or_else(|| canned_table(full_name))?;
    if full_name.contains("missing") {
        return None;
    }
    Some(json!({
        "name": name, "full_name": full_name, "table_type": "MANAGED", "updated_at": 1_767_225_600_000_i64,
        "columns": columns.iter().enumerate().map(|(i, (n, t))| json!({"name": n, "type_text": t, "position": i})).collect::<Vec<_>>(),
        "properties": st.properties.get(full_name).cloned().unwrap_or_default()
    }))
}

async fn get_table(
    State(s): State<Shared>,
    Path(full_name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let mut st = s.lock().unwrap();
    let Some(auth) = authorized(&st, &headers) else {
        return unauthorized(&mut st);
    };
    st.log.push(Recorded {
        method: "GET".into(),
        path: format!("/api/2.1/unity-catalog/tables/{full_name}"),
        auth,
        body: String::new(),
    });
    assert_eq!(full_name.split('.').count(), 3, "three-level name");
    match uc_table(&st, &full_name) {
        Some(t) => Json(t).into_response(),
        None => err(
            StatusCode::NOT_FOUND,
            "TABLE_DOES_NOT_EXIST",
            "Table does not exist",
        ),
    }
}

/// Pages of at most [`SERVER_PAGE`] tables; the first page is empty and
/// still carries a token, as the API allows.
async fn list_tables(
    State(s): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut st = s.lock().unwrap();
    let Some(auth) = authorized(&st, &headers) else {
        return unauthorized(&mut st);
    };
    st.log.push(Recorded {
        method: "GET".into(),
        path: format!(
            "/api/2.1/unity-catalog/tables?page_token={}",
            q.get("page_token").map_or("", String::as_str)
        ),
        auth,
        body: String::new(),
    });
    assert!(q.contains_key("max_results"), "list pages are asked for");
    let (catalog, schema) = (q["catalog_name"].clone(), q["schema_name"].clone());
    let mut names: Vec<String> = ["other_1", "sales_e40c292c", "zeta_2"]
        .iter()
        .map(|t| format!("{catalog}.{schema}.{t}"))
        .collect();
    names.retain(|n| !st.dropped.contains(n));
    names.extend(
        st.tables
            .keys()
            .filter(|k| k.starts_with(&format!("{catalog}.{schema}.")) && !names.contains(k))
            .cloned()
            .collect::<Vec<_>>(),
    );
    let page: usize = match q.get("page_token").map(String::as_str) {
        None => 0,
        Some(t) => t.strip_prefix("p").and_then(|n| n.parse().ok()).unwrap(),
    };
    let tables: Vec<Value> = if page == 0 {
        vec![]
    } else {
        names
            .iter()
            .skip((page - 1) * SERVER_PAGE)
            .take(SERVER_PAGE)
            .filter_map(|n| uc_table(&st, n))
            .collect()
    };
    let mut answer = json!({"tables": tables});
    if page * SERVER_PAGE < names.len() {
        answer["next_page_token"] = json!(format!("p{}", page + 1));
    }
    Json(answer).into_response()
}

async fn start_double(double: Double) -> (String, Shared) {
    let shared: Shared = Arc::new(Mutex::new(double));
    let router = Router::new()
        .route("/oidc/v1/token", post(token))
        .route("/api/2.0/sql/statements", post(submit))
        .route("/api/2.0/sql/statements/{id}", get(poll))
        .route("/api/2.0/sql/statements/{id}/cancel", post(cancel))
        .route(
            "/api/2.0/sql/statements/{id}/result/chunks/{index}",
            get(result_chunk),
        )
        .route("/api/2.0/fs/{*rest}", any(files))
        .route("/api/2.1/unity-catalog/tables", get(list_tables))
        .route("/api/2.1/unity-catalog/tables/{full_name}", get(get_table))
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, shared)
}

fn pat() -> DatabricksAuth {
    DatabricksAuth::Pat(SecretString::from(PAT))
}

fn oauth() -> DatabricksAuth {
    DatabricksAuth::OAuth {
        client_id: "client-1".into(),
        client_secret: SecretString::from("secret-1"),
    }
}

fn client(url: &str, auth: DatabricksAuth) -> DatabricksClient {
    let mut c = DatabricksClient::new(url, auth).unwrap();
    c.backoff = Duration::from_millis(20);
    c.retry_budget = Duration::from_secs(10);
    c
}

fn calls(double: &Shared) -> Vec<(String, String)> {
    double
        .lock()
        .unwrap()
        .log
        .iter()
        .map(|r| (r.method.clone(), r.path.clone()))
        .collect()
}

fn posts(double: &Shared) -> usize {
    calls(double).iter().filter(|(m, _)| m == "POST").count()
}

async fn run(
    url: &str,
    auth: DatabricksAuth,
    sql: &str,
) -> Result<Vec<Vec<Option<String>>>, DatabricksError> {
    client(url, auth)
        .execute(WAREHOUSE, CATALOG, sql, Duration::from_secs(10))
        .await
        .map(|r| r.rows)
}

#[tokio::test]
async fn a_quick_statement_succeeds_inline_within_wait_timeout() {
    let (url, double) = start_double(Double::default()).await;
    let rows = run(&url, pat(), "SELECT count(*) FROM t").await.unwrap();
    assert_eq!(rows, vec![vec![Some("6".to_owned())]]);
    assert_eq!(
        calls(&double),
        [("POST".to_owned(), "/api/2.0/sql/statements".to_owned())]
    );
    let st = double.lock().unwrap();
    assert_eq!(st.log[0].auth, format!("Bearer {PAT}"));
    let body: Value = serde_json::from_str(&st.log[0].body).unwrap();
    assert_eq!(body["statement"], "SELECT count(*) FROM t");
    assert_eq!(body["catalog"], CATALOG);
    // The deadline is 10 s: wait inline for all of it.
    assert_eq!(body["wait_timeout"], "10s");
}

#[tokio::test]
async fn a_stopped_warehouse_is_polled_until_the_deadline_not_for_a_fixed_wait() {
    let (url, double) = start_double(Double {
        warehouse_starting_polls: 3,
        ..Default::default()
    })
    .await;
    let rows = client(&url, pat())
        .execute(
            WAREHOUSE,
            CATALOG,
            "SELECT count(*) FROM t",
            Duration::from_secs(120),
        )
        .await
        .unwrap()
        .rows;
    assert_eq!(rows, vec![vec![Some("6".to_owned())]]);
    let st = double.lock().unwrap();
    let body: Value = serde_json::from_str(&st.log[0].body).unwrap();
    assert_eq!(body["wait_timeout"], "50s", "at most the API's 50 s");
    // PENDING ×3, RUNNING, SUCCEEDED.
    assert_eq!(st.log.iter().filter(|r| r.method == "GET").count(), 5);
}

#[tokio::test]
async fn a_short_deadline_submits_without_waiting() {
    let (url, double) = start_double(Double::default()).await;
    client(&url, pat())
        .execute(
            WAREHOUSE,
            CATALOG,
            "SELECT count(*) FROM t",
            Duration::from_secs(3),
        )
        .await
        .unwrap();
    let st = double.lock().unwrap();
    let body: Value = serde_json::from_str(&st.log[0].body).unwrap();
    assert_eq!(body["wait_timeout"], "0s");
}

#[tokio::test]
async fn every_result_chunk_is_read_and_row_limit_reports_truncation() {
    let (url, double) = start_double(Double {
        chunk_rows: 3,
        query_rows: 8,
        ..Default::default()
    })
    .await;
    let c = client(&url, pat());
    let all = c
        .execute(
            WAREHOUSE,
            CATALOG,
            "SELECT * FROM (\nSELECT 1\n) AS q LIMIT 100",
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    let ids: Vec<String> = all.rows.iter().map(|r| r[0].clone().unwrap()).collect();
    assert_eq!(ids, (1..=8).map(|i| i.to_string()).collect::<Vec<_>>());
    assert!(!all.truncated);
    let chunk_gets: Vec<String> = calls(&double)
        .into_iter()
        .filter(|(_, p)| p.contains("/result/chunks/"))
        .map(|(_, p)| p)
        .collect();
    assert_eq!(
        chunk_gets,
        [
            "/api/2.0/sql/statements/s-1/result/chunks/1",
            "/api/2.0/sql/statements/s-1/result/chunks/2"
        ]
    );
    let limited = c
        .execute_limited(
            WAREHOUSE,
            CATALOG,
            "SELECT * FROM (\nSELECT 1\n) AS q LIMIT 100",
            Duration::from_secs(10),
            Some(5),
        )
        .await
        .unwrap();
    assert_eq!(limited.rows.len(), 5);
    assert!(limited.truncated, "manifest.truncated is honoured");
}

#[tokio::test]
async fn failed_at_http_200_is_explained_from_its_error_class() {
    let (url, _) = start_double(Double::default()).await;
    let err = run(&url, pat(), "SELECT FAIL_ME").await.unwrap_err();
    let DatabricksError::Statement {
        state,
        code,
        class,
        sql_state,
        ..
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!((state.as_str(), code.as_str()), ("FAILED", "BAD_REQUEST"));
    assert_eq!(class.as_deref(), Some("TABLE_OR_VIEW_NOT_FOUND"));
    assert_eq!(sql_state.as_deref(), Some("42P01"));
    assert_eq!(
        err.summary(),
        "Databricks: the statement ended FAILED: table not found (TABLE_OR_VIEW_NOT_FOUND)"
    );
}

#[tokio::test]
async fn canceled_and_closed_statements_are_errors() {
    let (url, _) = start_double(Double::default()).await;
    for (sql, state) in [
        ("SELECT CANCEL_ME", "CANCELED"),
        ("SELECT CLOSE_ME", "CLOSED"),
    ] {
        let err = run(&url, pat(), sql).await.unwrap_err();
        assert!(
            matches!(&err, DatabricksError::Statement { state: s, .. } if s == state),
            "{err:?}"
        );
        assert!(err.summary().contains(state), "{}", err.summary());
    }
}

#[tokio::test]
async fn a_statement_without_our_catalog_is_not_found() {
    let (url, _) = start_double(Double::default()).await;
    let err = client(&url, pat())
        .execute(
            WAREHOUSE,
            "other",
            "SELECT count(*) FROM acme_silver.t",
            Duration::from_secs(10),
        )
        .await
        .unwrap_err();
    assert!(
        err.summary().contains("table not found"),
        "{}",
        err.summary()
    );
}

#[tokio::test]
async fn throttling_honours_retry_after() {
    let (url, double) = start_double(Double {
        throttle_remaining: 1,
        ..Default::default()
    })
    .await;
    let started = Instant::now();
    run(&url, pat(), "SELECT 1").await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited {:?}",
        started.elapsed()
    );
    assert_eq!(posts(&double), 2);
}

#[tokio::test]
async fn unavailable_and_transient_answers_are_retried() {
    let (url, double) = start_double(Double {
        unavailable_remaining: 2,
        transient_remaining: 1,
        ..Default::default()
    })
    .await;
    run(&url, pat(), "SELECT 1").await.unwrap();
    assert_eq!(posts(&double), 4);
}

#[tokio::test]
async fn a_statement_is_never_posted_again_after_a_500() {
    let (url, double) = start_double(Double {
        errors_remaining: 1,
        ..Default::default()
    })
    .await;
    let err = run(&url, pat(), "SELECT 1").await.unwrap_err();
    assert!(
        matches!(&err, DatabricksError::Api { status: 500, code, .. } if code == "INTERNAL_ERROR"),
        "{err:?}"
    );
    assert_eq!(posts(&double), 1, "it may already be running");
}

#[tokio::test]
async fn polls_are_retried_through_a_proxy_error_page() {
    let (url, double) = start_double(Double {
        poll_errors_remaining: 2,
        warehouse_starting_polls: 1,
        ..Default::default()
    })
    .await;
    let rows = run(&url, pat(), "SELECT count(*) FROM t").await.unwrap();
    assert_eq!(rows, vec![vec![Some("6".to_owned())]]);
    assert_eq!(posts(&double), 1);
}

#[tokio::test]
async fn retries_stop_within_the_budget() {
    let (url, double) = start_double(Double {
        unavailable_remaining: 1_000,
        ..Default::default()
    })
    .await;
    let mut c = client(&url, pat());
    c.retry_budget = Duration::from_millis(300);
    let started = Instant::now();
    let err = c
        .execute(WAREHOUSE, CATALOG, "SELECT 1", Duration::from_secs(10))
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(
        matches!(err, DatabricksError::Api { status: 503, .. }),
        "{err:?}"
    );
    assert!(posts(&double) >= 2);
}

#[tokio::test]
async fn an_expired_oauth_token_is_refreshed_once_however_it_is_refused() {
    for answer in [
        AuthAnswer::Json401,
        AuthAnswer::Numeric403,
        AuthAnswer::Html401,
        AuthAnswer::Expired400,
    ] {
        let (url, double) = start_double(Double {
            expired: vec!["oauth-1".into()],
            auth_answer: answer,
            ..Default::default()
        })
        .await;
        let c = client(&url, oauth());
        c.execute(WAREHOUSE, CATALOG, "SELECT 1", Duration::from_secs(10))
            .await
            .unwrap_or_else(|e| panic!("{answer:?}: {e:?}"));
        // The fresh token is cached: a second statement needs no new token.
        c.execute(WAREHOUSE, CATALOG, "SELECT 2", Duration::from_secs(10))
            .await
            .unwrap();
        let st = double.lock().unwrap();
        assert_eq!(st.tokens_issued, 2, "{answer:?}");
        assert!(
            st.log.iter().all(|r| r.auth == "Bearer oauth-2"),
            "{answer:?}: {:?}",
            st.log
        );
    }
}

#[tokio::test]
async fn a_refused_pat_is_explained_whatever_shape_the_refusal_takes() {
    for (answer, code) in [
        (AuthAnswer::Numeric403, "PERMISSION_DENIED"),
        (AuthAnswer::Html401, "UNAUTHENTICATED"),
        (AuthAnswer::Json401, "UNAUTHENTICATED"),
    ] {
        let (url, double) = start_double(Double {
            auth_answer: answer,
            ..Default::default()
        })
        .await;
        let err = run(
            &url,
            DatabricksAuth::Pat(SecretString::from("dapi-wrong")),
            "SELECT 1",
        )
        .await
        .unwrap_err();
        let DatabricksError::Api { code: got, .. } = &err else {
            panic!("{answer:?}: {err:?}")
        };
        assert_eq!(got, code, "{answer:?}");
        assert!(!err.summary().contains("<html"), "{}", err.summary());
        assert_eq!(
            double.lock().unwrap().refused,
            1,
            "{answer:?}: a refused token is not retried"
        );
    }
}

#[tokio::test]
async fn the_token_request_is_retried() {
    let (url, double) = start_double(Double {
        token_errors_remaining: 2,
        ..Default::default()
    })
    .await;
    run(&url, oauth(), "SELECT 1").await.unwrap();
    assert_eq!(double.lock().unwrap().tokens_issued, 1);
}

#[tokio::test]
async fn our_own_timeout_cancels_the_statement() {
    let (url, double) = start_double(Double::default()).await;
    let err = client(&url, pat())
        .execute(
            WAREHOUSE,
            CATALOG,
            "SELECT SLOW",
            Duration::from_millis(300),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, DatabricksError::Timeout(_)), "{err:?}");
    assert_eq!(double.lock().unwrap().cancelled, ["s-1"]);
}

#[tokio::test]
async fn table_lists_follow_every_page_even_after_an_empty_one() {
    let (url, double) = start_double(Double::default()).await;
    let tables = client(&url, pat())
        .list_tables(
            &Ident::parse(CATALOG).unwrap(),
            &Ident::parse("acme_silver").unwrap(),
        )
        .await
        .unwrap();
    let names: Vec<&str> = tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["other_1", "sales_e40c292c", "zeta_2"]);
    let pages: Vec<String> = calls(&double).into_iter().map(|(_, p)| p).collect();
    assert_eq!(pages.len(), 3, "{pages:?}");
}

#[tokio::test]
async fn uploads_need_the_volume_and_fit_one_put() {
    let (url, double) = start_double(Double::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small.parquet");
    std::fs::write(&small, b"PAR1").unwrap();
    let c = client(&url, pat());
    let err = c
        .upload(
            "/Volumes/main_cat/acme_bronze/nowhere/a/v1/data.parquet",
            &small,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, DatabricksError::Api { status: 404, .. }),
        "{err:?}"
    );

    // One byte past the Files API's 5000 MiB (a sparse file): refused before
    // any byte is sent, and not worth retrying.
    let huge = dir.path().join("huge.parquet");
    std::fs::File::create(&huge)
        .unwrap()
        .set_len(5000 * 1024 * 1024 + 1)
        .unwrap();
    let before = calls(&double).len();
    let err = c
        .upload("/Volumes/main_cat/acme_bronze/raw/a/v1/data.parquet", &huge)
        .await
        .unwrap_err();
    assert!(matches!(err, DatabricksError::TooLarge { .. }), "{err:?}");
    assert!(!err.retryable());
    assert_eq!(calls(&double).len(), before);
}

#[tokio::test]
async fn an_upload_that_stops_moving_is_abandoned() {
    // A server that makes directories, then takes a file's first bytes and
    // reads no more.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut head = vec![0u8; 4096];
            let n = socket.read(&mut head).await.unwrap_or(0);
            if head[..n].starts_with(b"PUT /api/2.0/fs/directories") {
                let _ = socket
                    .write_all(b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n")
                    .await;
            } else {
                held.push(socket);
            }
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.parquet");
    std::fs::write(&file, vec![7u8; 64 * 1024 * 1024]).unwrap();
    let mut c = client(&url, pat());
    c.stall_timeout = Duration::from_millis(400);
    c.retry_budget = Duration::from_millis(500);
    let started = Instant::now();
    let err = c
        .upload("/Volumes/main_cat/acme_bronze/raw/a/v1/data.parquet", &file)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("made no progress"), "{err:?}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

fn settings(url: &str, external_location: Option<&str>) -> DatabricksSettings {
    DatabricksSettings {
        host: url.to_owned(),
        auth: pat(),
        warehouse_id: WAREHOUSE.into(),
        catalog: Ident::parse(CATALOG).unwrap(),
        volume: Ident::parse("raw").unwrap(),
        external_location: external_location.map(str::to_owned),
        statement_timeout_secs: 10,
        query_principals: None,
    }
}

/// A real Parquet file with names as people upload them.
fn sales_parquet(dir: &std::path::Path) -> std::path::PathBuf {
    let file = dir.join("d.parquet");
    let conn = duckdb::Connection::open_in_memory().unwrap();
    conn.execute_batch(&format!(
        "COPY (SELECT * FROM (VALUES ('007', '1.50', 0.5::DOUBLE), ('008', NULL, -2.25::DOUBLE)) \
         t(\"Customer ID\", \"Amount\", score)) TO '{}' (FORMAT parquet)",
        file.display()
    ))
    .unwrap();
    file
}

fn statements(double: &Shared) -> Vec<String> {
    double
        .lock()
        .unwrap()
        .log
        .iter()
        .filter(|r| r.method == "POST" && r.path == "/api/2.0/sql/statements")
        .map(|r| {
            serde_json::from_str::<Value>(&r.body).unwrap()["statement"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

#[tokio::test]
async fn bronze_and_silver_follow_the_documented_flow() {
    let (url, double) = start_double(Double::default()).await;
    let lake = DatabricksLakehouse::new(settings(&url, None))
        .unwrap()
        .with_backoff(Duration::from_millis(20));
    let dir = tempfile::tempdir().unwrap();
    let download = sales_parquet(dir.path());
    let size = std::fs::metadata(&download).unwrap().len() as usize;
    let dataset = DatasetId::parse("a").unwrap();
    let bronze = lake
        .create_bronze(BronzeRequest {
            tenant: TenantId::parse("acme").unwrap(),
            table: table_ident("Sales", &dataset).unwrap(),
            dataset,
            version: DatasetVersion::parse(Some(2)).unwrap(),
            download,
        })
        .await
        .unwrap();
    assert_eq!(bronze.bronze_table, "main_cat.acme_bronze.sales_e40c292c");
    assert_eq!(
        bronze.volume_path,
        "/Volumes/main_cat/acme_bronze/raw/a/v2/data.parquet"
    );
    assert_eq!(bronze.row_count, 6);
    let names: Vec<&str> = bronze.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "Customer ID",
            "Amount",
            "score",
            "_rescued_data",
            "_dataset_id",
            "_source_file",
            "_version",
            "_ingested_at"
        ]
    );
    assert_eq!(bronze.version, 2);

    let silver = lake
        .transform_to_silver(
            TenantId::parse("acme").unwrap(),
            TableName::parse(&bronze.bronze_table).unwrap(),
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(silver.silver_table, "main_cat.acme_silver.sales_e40c292c");
    assert_eq!((silver.base_version, silver.version), (1, 2));
    assert_eq!(silver.duplicates_removed, 1);
    assert_eq!(silver.columns[1].data_type, "DECIMAL(4,2)");
    assert_eq!(silver.columns[1].null_count, 1);

    assert_eq!(
        double
            .lock()
            .unwrap()
            .uploads
            .get("/Volumes/main_cat/acme_bronze/raw/a/v2/data.parquet")
            .map(Vec::len),
        Some(size)
    );
    let statements = statements(&double);
    assert_eq!(
        statements[..3],
        [
            "CREATE SCHEMA IF NOT EXISTS `main_cat`.`acme_bronze`",
            "CREATE SCHEMA IF NOT EXISTS `main_cat`.`acme_silver`",
            "CREATE VOLUME IF NOT EXISTS `main_cat`.`acme_bronze`.`raw`"
        ]
    );
    assert_eq!(
        statements[3],
        "CREATE OR REPLACE TABLE `main_cat`.`acme_bronze`.`sales_e40c292c` \
         TBLPROPERTIES ('delta.columnMapping.mode' = 'name') AS SELECT *, 'a' AS `_dataset_id`, \
         _metadata.file_path AS `_source_file`, \
         CAST(regexp_extract(_metadata.file_path, '/v([0-9]+)/data[.]parquet$', 1) AS INT) AS `_version`, \
         _metadata.file_modification_time AS `_ingested_at` \
         FROM read_files('/Volumes/main_cat/acme_bronze/raw/a/v*/data.parquet', format => 'parquet', mergeSchema => true)"
    );
    let ctas = statements
        .iter()
        .find(|s| {
            s.starts_with("CREATE OR REPLACE TABLE `main_cat`.`acme_silver`.`sales_e40c292c`")
        })
        .unwrap();
    assert!(
        ctas.contains("END AS `customer_id`"),
        "leading zeros keep Customer ID a string: {ctas}"
    );
    assert!(!ctas.contains("AS BIGINT) AS `customer_id`"), "{ctas}");
    assert!(ctas.contains("AS DECIMAL(4,2)) AS `amount`"), "{ctas}");
    assert!(ctas.contains("`score` AS `score`"), "{ctas}");
    assert!(
        ctas.contains("WHERE `_version` BETWEEN 1 AND 2) AS d GROUP BY `customer_id`, `amount`, `score`, `_dataset_id`"),
        "{ctas}"
    );
    assert!(
        ctas.contains(
            "TBLPROPERTIES ('servicetsunami.version' = '2', 'servicetsunami.base_version' = '1')"
        ),
        "{ctas}"
    );
    assert!(
        !ctas.contains("_rescued_data"),
        "read_files' rescue column stays in bronze: {ctas}"
    );
}

/// A Parquet file of the sales rows, plus a `legacy` column when asked.
fn sales_parquet_with(dir: &std::path::Path, name: &str, legacy: bool) -> std::path::PathBuf {
    let file = dir.join(name);
    let extra = if legacy { ", 7::DOUBLE AS legacy" } else { "" };
    let conn = duckdb::Connection::open_in_memory().unwrap();
    conn.execute_batch(&format!(
        "COPY (SELECT *{extra} FROM (VALUES ('007', '1.50', 0.5::DOUBLE), ('008', NULL, -2.25::DOUBLE)) \
         t(\"Customer ID\", \"Amount\", score)) TO '{}' (FORMAT parquet)",
        file.display()
    ))
    .unwrap();
    file
}

#[tokio::test]
async fn bronze_keeps_every_version_and_silver_reads_its_range_never_going_back() {
    use servicetsunami_mcp::backend::SilverVersions;
    let (url, double) = start_double(Double::default()).await;
    let lake = DatabricksLakehouse::new(settings(&url, None))
        .unwrap()
        .with_backoff(Duration::from_millis(20));
    let dir = tempfile::tempdir().unwrap();
    let tenant = || TenantId::parse("acme").unwrap();
    let dataset = DatasetId::parse("a").unwrap();
    // Version 1 has a column that version 2 (a replace) dropped.
    let mut bronze = None;
    for (version, legacy) in [(1, true), (2, false)] {
        let made = lake
            .create_bronze(BronzeRequest {
                tenant: tenant(),
                table: table_ident("Sales", &dataset).unwrap(),
                dataset: dataset.clone(),
                version: DatasetVersion::parse(Some(version)).unwrap(),
                download: sales_parquet_with(dir.path(), &format!("v{version}.parquet"), legacy),
            })
            .await
            .unwrap();
        assert_eq!(made.version, version);
        bronze = Some(made);
    }
    let bronze = bronze.unwrap();
    let names: Vec<&str> = bronze.columns.iter().map(|c| c.name.as_str()).collect();
    assert!(
        names.contains(&"legacy"),
        "bronze keeps version 1's columns: {names:?}"
    );
    assert_eq!(
        double.lock().unwrap().uploads.len(),
        2,
        "both versions stay staged"
    );

    // The replace: silver reads version 2 alone, so `legacy` is not in it.
    let table = TableName::parse(&bronze.bronze_table).unwrap();
    let silver = lake
        .transform_to_silver(
            tenant(),
            table.clone(),
            SilverVersions {
                version: Some(2),
                base_version: Some(2),
            },
        )
        .await
        .unwrap();
    assert_eq!((silver.base_version, silver.version), (2, 2));
    let sent = statements(&double);
    assert!(
        sent.iter().any(|s| s
            == "DESCRIBE QUERY SELECT * FROM read_files('/Volumes/main_cat/acme_bronze/raw/a/v{2}/data.parquet', \
                format => 'parquet', mergeSchema => true)"),
        "{sent:#?}"
    );
    let ctas = sent
        .iter()
        .find(|s| s.contains("`acme_silver`.`sales_e40c292c` TBLPROPERTIES"))
        .unwrap()
        .clone();
    assert!(!ctas.contains("legacy"), "{ctas}");
    assert!(ctas.contains("WHERE `_version` BETWEEN 2 AND 2)"), "{ctas}");
    assert!(
        ctas.contains("('servicetsunami.version' = '2', 'servicetsunami.base_version' = '2')"),
        "{ctas}"
    );

    // A late sync of version 1 changes nothing and says what silver holds.
    let before = statements(&double).len();
    let late = lake
        .transform_to_silver(
            tenant(),
            table,
            SilverVersions {
                version: Some(1),
                base_version: Some(1),
            },
        )
        .await
        .unwrap();
    assert_eq!((late.base_version, late.version), (2, 2));
    assert!(
        !statements(&double)[before..]
            .iter()
            .any(|s| s.starts_with("CREATE")),
        "no table is rebuilt"
    );
}

#[tokio::test]
async fn drop_dataset_removes_its_tables_and_every_staged_version_only() {
    let (url, double) = start_double(Double::default()).await;
    let lake = DatabricksLakehouse::new(settings(&url, None))
        .unwrap()
        .with_backoff(Duration::from_millis(20));
    let dir = tempfile::tempdir().unwrap();
    let tenant = || TenantId::parse("acme").unwrap();
    let dataset = DatasetId::parse("a").unwrap();
    for version in [1, 2] {
        let bronze = lake
            .create_bronze(BronzeRequest {
                tenant: tenant(),
                table: table_ident("Sales", &dataset).unwrap(),
                dataset: dataset.clone(),
                version: DatasetVersion::parse(Some(version)).unwrap(),
                download: sales_parquet(dir.path()),
            })
            .await
            .unwrap();
        lake.transform_to_silver(
            tenant(),
            TableName::parse(&bronze.bronze_table).unwrap(),
            Default::default(),
        )
        .await
        .unwrap();
    }
    // Another dataset's staged file, and a table whose name ends in the same
    // short id but whose rows belong to another dataset.
    let other = DatasetId::parse("b").unwrap();
    lake.create_bronze(BronzeRequest {
        tenant: tenant(),
        table: table_ident("Other", &other).unwrap(),
        dataset: other.clone(),
        version: DatasetVersion::parse(Some(1)).unwrap(),
        download: sales_parquet(dir.path()),
    })
    .await
    .unwrap();
    {
        let mut st = double.lock().unwrap();
        let clash = "main_cat.acme_bronze.clash_e40c292c".to_owned();
        st.tables.insert(clash.clone(), vec![]);
        st.owners.insert(clash, "zz".into());
    }

    let dropped = lake.drop_dataset(tenant(), dataset.clone()).await.unwrap();
    assert_eq!(
        dropped.dropped_tables,
        [
            "main_cat.acme_bronze.sales_e40c292c",
            "main_cat.acme_silver.sales_e40c292c"
        ]
    );
    assert_eq!(dropped.removed_files, 2, "both staged versions");
    {
        let st = double.lock().unwrap();
        let staged: Vec<&String> = st.uploads.keys().collect();
        assert_eq!(
            staged,
            [&format!(
                "/Volumes/main_cat/acme_bronze/raw/{other}/v1/data.parquet"
            )],
            "only the other dataset's file is left"
        );
        assert!(
            !st.directories.iter().any(|d| d.ends_with("/raw/a")),
            "{:?}",
            st.directories
        );
        assert!(st
            .tables
            .contains_key("main_cat.acme_bronze.clash_e40c292c"));
    }
    let status = lake
        .dataset_status(tenant(), dataset.clone())
        .await
        .unwrap();
    assert!(!status.silver.exists, "{status:?}");
    assert_ne!(
        status.bronze.full_name.as_deref(),
        Some("main_cat.acme_bronze.sales_e40c292c"),
        "{status:?}"
    );

    // Idempotent: a repeat finds nothing and succeeds.
    let again = lake.drop_dataset(tenant(), dataset).await.unwrap();
    assert!(again.dropped_tables.is_empty(), "{again:?}");
    assert_eq!(again.removed_files, 0);
}

#[tokio::test]
async fn the_double_refuses_names_delta_cannot_store_without_column_mapping() {
    // What bronze would meet without column mapping: the rule the double
    // enforces, checked directly.
    let (url, double) = start_double(Double::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = sales_parquet(dir.path());
    let c = client(&url, pat());
    c.execute(
        WAREHOUSE,
        CATALOG,
        "CREATE VOLUME IF NOT EXISTS `main_cat`.`acme_bronze`.`raw`",
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    c.upload("/Volumes/main_cat/acme_bronze/raw/a/v1/data.parquet", &file)
        .await
        .unwrap();
    let err = c
        .execute(
            WAREHOUSE,
            CATALOG,
            "CREATE OR REPLACE TABLE `main_cat`.`acme_bronze`.`t_1` AS SELECT *, 'a' AS `_dataset_id` \
             FROM read_files('/Volumes/main_cat/acme_bronze/raw/a/v1/data.parquet', format => 'parquet')",
            Duration::from_secs(10),
        )
        .await
        .unwrap_err();
    assert!(
        err.summary()
            .contains("column mapping (DELTA_INVALID_CHARACTERS_IN_COLUMN_NAMES)"),
        "{}",
        err.summary()
    );
    assert!(double.lock().unwrap().tables.is_empty());
}

#[tokio::test]
async fn a_bronze_column_without_a_name_is_refused_before_silver() {
    let (url, double) = start_double(Double::default()).await;
    double.lock().unwrap().tables.insert(
        "main_cat.acme_bronze.odd_e40c292c".into(),
        vec![("".into(), "string".into()), ("a".into(), "string".into())],
    );
    let lake = DatabricksLakehouse::new(settings(&url, None))
        .unwrap()
        .with_backoff(Duration::from_millis(20));
    let err = lake
        .transform_to_silver(
            TenantId::parse("acme").unwrap(),
            TableName::parse("main_cat.acme_bronze.odd_e40c292c").unwrap(),
            Default::default(),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("empty name (column 1)"), "{err}");
    assert!(statements(&double).is_empty());
}

#[tokio::test]
async fn external_location_makes_bronze_external_and_status_uses_uc() {
    let (url, _) = start_double(Double::default()).await;
    let lake = DatabricksLakehouse::new(settings(
        &url,
        Some("abfss://lake@acct.dfs.core.windows.net/st"),
    ))
    .unwrap()
    .with_backoff(Duration::from_millis(20));
    let table = TableName::parse("main_cat.acme_bronze.sales_e40c292c").unwrap();
    let sql = lake.bronze_sql(
        &table,
        "a",
        "/Volumes/main_cat/acme_bronze/raw/a/v*/data.parquet",
    );
    assert!(
        sql.contains("LOCATION 'abfss://lake@acct.dfs.core.windows.net/st/acme_bronze/sales_e40c292c' TBLPROPERTIES"),
        "{sql}"
    );
    let status = lake
        .dataset_status(
            TenantId::parse("acme").unwrap(),
            DatasetId::parse("a").unwrap(),
        )
        .await
        .unwrap();
    assert!(status.bronze.exists && status.silver.exists);
    assert_eq!(
        status.silver.updated_at.as_deref(),
        Some("2026-01-01T00:00:00Z")
    );
    let missing = lake
        .describe_table(TableName::parse("main_cat.acme_bronze.missing_1").unwrap())
        .await
        .unwrap_err();
    assert!(missing.to_string().contains("does not exist"), "{missing}");
}

#[tokio::test]
async fn databricks_query_is_guarded_and_capped() {
    let (url, double) = start_double(Double::default()).await;
    let lake = DatabricksLakehouse::new(settings(&url, None))
        .unwrap()
        .with_backoff(Duration::from_millis(20));
    let request = |sql: &str| servicetsunami_mcp::backend::QueryRequest {
        tenant: TenantId::parse("acme").unwrap(),
        sql: sql.to_owned(),
        limit: 2,
        timeout: Duration::from_secs(5),
    };
    let ok = lake
        .query(request("SELECT id FROM `acme_silver`.`t` -- mine"))
        .await
        .unwrap();
    assert_eq!((ok.row_count, ok.truncated), (2, true));
    assert_eq!(ok.rows[0]["id"], "1");
    // Spark runs the canonical rendering: comments gone, names backquoted.
    let sent = statements(&double);
    assert_eq!(
        sent.last().unwrap(),
        "SELECT * FROM (\nSELECT id FROM `acme_silver` . `t`\n) AS q LIMIT 3"
    );
    let body: Value =
        serde_json::from_str(&double.lock().unwrap().log.last().unwrap().body).unwrap();
    assert_eq!(body["row_limit"], 2);
    let err = lake
        .query(request("DROP TABLE acme_silver.t"))
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("query rejected"), "{err}");
    for sql in [
        "SELECT * FROM rival_silver.t",
        // Spark reads one string, then a foreign table; DuckDB alone would
        // have read two strings.
        "SELECT 'x\\' AS a, ' AS b, * FROM system.information_schema.tables /*\n' AS d -- */",
        "SELECT * FROM acme_silver.t /* a /* nested */ */ JOIN rival_silver.u USING (id)",
    ] {
        let err = lake.query(request(sql)).await.unwrap_err();
        assert!(
            err.to_string().contains("outside this tenant"),
            "{sql}: {err}"
        );
    }
    let err = lake
        .query(request("SELECT secret('scope', 'key') FROM acme_silver.t"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("secret() is not allowed"), "{err}");
    assert_eq!(
        statements(&double).len(),
        1,
        "nothing refused reached Spark"
    );
}

#[tokio::test]
async fn with_read_only_principals_query_runs_as_the_tenants_own() {
    let (url, double) = start_double(Double::default()).await;
    let mut settings = settings(&url, None);
    settings.query_principals = Some(
        [(
            "acme".to_owned(),
            DatabricksAuth::Pat(SecretString::from(format!("{READER_PREFIX}acme"))),
        )]
        .into_iter()
        .collect(),
    );
    let lake = DatabricksLakehouse::new(settings)
        .unwrap()
        .with_backoff(Duration::from_millis(20));
    let request = |tenant: &str| servicetsunami_mcp::backend::QueryRequest {
        tenant: TenantId::parse(tenant).unwrap(),
        sql: format!("SELECT id FROM {tenant}_silver.t"),
        limit: 10,
        timeout: Duration::from_secs(5),
    };
    lake.query(request("acme")).await.unwrap();
    assert_eq!(
        double.lock().unwrap().log.last().unwrap().auth,
        format!("Bearer {READER_PREFIX}acme")
    );
    let err = lake.query(request("rival")).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("no read-only Databricks principal"),
        "{err}"
    );
    assert_eq!(statements(&double).len(), 1);
}

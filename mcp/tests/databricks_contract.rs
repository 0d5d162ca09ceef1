//! The Databricks backend against a contract double built from the
//! documented API shapes (see DESIGN.md): it checks method, path, headers and
//! body fields of every call and simulates the warehouse's behaviours we
//! must handle. It is a test double only, never a shipped backend.

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
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PAT: &str = "dapi-test-token";
const WAREHOUSE: &str = "wh-1";

#[derive(Debug, Clone)]
struct Recorded {
    method: String,
    path: String,
    auth: String,
    body: String,
}

#[derive(Default)]
struct Double {
    log: Vec<Recorded>,
    tokens_issued: u32,
    /// Tokens the double treats as expired.
    expired: Vec<String>,
    throttle_remaining: u32,
    errors_remaining: u32,
    /// statement id → (statement, polls so far)
    statements: HashMap<String, (String, u32)>,
    cancelled: Vec<String>,
    uploads: HashMap<String, usize>,
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
    let valid =
        token == PAT || (token.starts_with("oauth-") && !state.expired.iter().any(|e| e == token));
    valid.then_some(auth)
}

fn unauthorized() -> Response {
    err(
        StatusCode::UNAUTHORIZED,
        "UNAUTHENTICATED",
        "missing, invalid or expired token",
    )
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
    st.tokens_issued += 1;
    Json(json!({"access_token": format!("oauth-{}", st.tokens_issued), "token_type": "Bearer", "expires_in": 3600}))
        .into_response()
}

/// What the "warehouse" answers, by statement shape.
fn result_for(statement: &str) -> Value {
    if statement.contains("COALESCE(SUM(") {
        // 6 rows; `Customer ID`: 6 integers, 2 with leading zeros; `Amount`:
        // 5 values, 1 integer and 4 decimals, up to 2+2 digits.
        let row: Vec<String> = [
            6, 6, 6, 0, 2, 6, 0, 0, 0, 3, 0, 5, 1, 4, 0, 5, 0, 0, 0, 2, 2,
        ]
        .iter()
        .map(u64::to_string)
        .collect();
        return json!({"manifest": {"schema": {"columns": []}}, "result": {"data_array": [row]}});
    }
    if statement.contains("COUNT(*) - COUNT(") {
        return json!({"result": {"data_array": [["5", "0", "1", "0"]]}});
    }
    if statement.starts_with("SELECT count(*)") {
        return json!({"result": {"data_array": [["6"]]}});
    }
    if statement.contains("AS q LIMIT") {
        return json!({
            "manifest": {"schema": {"columns": [{"name": "id", "type_text": "BIGINT"}]}},
            "result": {"data_array": [["1"], ["2"], ["3"]]}
        });
    }
    json!({})
}

async fn submit(State(s): State<Shared>, headers: HeaderMap, body: String) -> Response {
    let mut st = s.lock().unwrap();
    let Some(auth) = authorized(&st, &headers) else {
        return unauthorized();
    };
    st.log.push(Recorded {
        method: "POST".into(),
        path: "/api/2.0/sql/statements".into(),
        auth,
        body: body.clone(),
    });
    let request: Value = serde_json::from_str(&body).expect("JSON body");
    assert_eq!(request["warehouse_id"], WAREHOUSE);
    // Statement Execution API: `catalog` sets the default catalog, so an
    // unqualified `schema.table` resolves in ours, not the workspace's.
    assert_eq!(
        request["catalog"], "main_cat",
        "every statement names its catalog"
    );
    let wait = request["wait_timeout"].as_str().expect("wait_timeout");
    let secs: u32 = wait
        .strip_suffix('s')
        .and_then(|n| n.parse().ok())
        .expect("wait_timeout like 30s");
    assert!(secs == 0 || (5..=50).contains(&secs), "{wait}");
    assert!(matches!(
        request["on_wait_timeout"].as_str(),
        Some("CONTINUE" | "CANCEL")
    ));
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
    if st.errors_remaining > 0 {
        st.errors_remaining -= 1;
        return err(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL_ERROR",
            "try again",
        );
    }
    if statement.contains("FAIL_ME") {
        return Json(json!({
            "statement_id": "s-fail",
            "status": {"state": "FAILED", "error": {"error_code": "TABLE_OR_VIEW_NOT_FOUND", "message": "[TABLE_OR_VIEW_NOT_FOUND] FAIL_ME"}}
        }))
        .into_response();
    }
    let id = format!("s-{}", st.statements.len() + 1);
    st.statements.insert(id.clone(), (statement, 0));
    Json(json!({"statement_id": id, "status": {"state": "PENDING"}})).into_response()
}

async fn poll(State(s): State<Shared>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let mut st = s.lock().unwrap();
    let Some(auth) = authorized(&st, &headers) else {
        return unauthorized();
    };
    st.log.push(Recorded {
        method: "GET".into(),
        path: format!("/api/2.0/sql/statements/{id}"),
        auth,
        body: String::new(),
    });
    let Some((statement, polls)) = st.statements.get_mut(&id) else {
        return err(
            StatusCode::NOT_FOUND,
            "RESOURCE_DOES_NOT_EXIST",
            "no such statement",
        );
    };
    *polls += 1;
    if statement.contains("SLOW") || *polls < 2 {
        return Json(json!({"statement_id": id, "status": {"state": "RUNNING"}})).into_response();
    }
    let mut body = result_for(statement);
    body["statement_id"] = json!(id);
    body["status"] = json!({"state": "SUCCEEDED"});
    Json(body).into_response()
}

async fn cancel(State(s): State<Shared>, Path(id): Path<String>, headers: HeaderMap) -> Response {
    let mut st = s.lock().unwrap();
    if authorized(&st, &headers).is_none() {
        return unauthorized();
    }
    st.cancelled.push(id);
    Json(json!({})).into_response()
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
        return unauthorized();
    };
    assert_eq!(method, Method::PUT);
    let path = uri.path().to_owned();
    st.log.push(Recorded {
        method: "PUT".into(),
        path: path.clone(),
        auth,
        body: String::new(),
    });
    if let Some(volume_path) = path.strip_prefix("/api/2.0/fs/files") {
        assert!(volume_path.starts_with("/Volumes/"), "{volume_path}");
        assert_eq!(uri.query(), Some("overwrite=true"));
        assert_eq!(
            headers.get("content-type").and_then(|v| v.to_str().ok()),
            Some("application/octet-stream")
        );
        st.uploads.insert(volume_path.to_owned(), body.len());
    } else {
        assert!(
            path.starts_with("/api/2.0/fs/directories/Volumes/"),
            "{path}"
        );
    }
    StatusCode::NO_CONTENT.into_response()
}

fn uc_table(full_name: &str) -> Option<Value> {
    let name = full_name.rsplit('.').next()?;
    if full_name.contains("_bronze.") {
        return Some(json!({
            "name": name, "full_name": full_name, "table_type": "MANAGED", "updated_at": 1_767_225_600_000_i64,
            "columns": [
                {"name": "Customer ID", "type_text": "string"},
                {"name": "Amount", "type_text": "string"},
                {"name": "score", "type_text": "double"},
                {"name": "_dataset_id", "type_text": "string"},
                {"name": "_source_file", "type_text": "string"}
            ]
        }));
    }
    if full_name.contains("_silver.") {
        return Some(json!({
            "name": name, "full_name": full_name, "table_type": "MANAGED", "updated_at": 1_767_225_600_000_i64,
            "columns": [
                {"name": "customer_id", "type_text": "string"},
                {"name": "amount", "type_text": "decimal(4,2)"},
                {"name": "score", "type_text": "double"},
                {"name": "_dataset_id", "type_text": "string"},
                {"name": "_source_file", "type_text": "string"},
                {"name": "_ingested_at", "type_text": "timestamp"}
            ]
        }));
    }
    None
}

async fn get_table(
    State(s): State<Shared>,
    Path(full_name): Path<String>,
    headers: HeaderMap,
) -> Response {
    let mut st = s.lock().unwrap();
    let Some(auth) = authorized(&st, &headers) else {
        return unauthorized();
    };
    st.log.push(Recorded {
        method: "GET".into(),
        path: format!("/api/2.1/unity-catalog/tables/{full_name}"),
        auth,
        body: String::new(),
    });
    assert_eq!(full_name.split('.').count(), 3, "three-level name");
    match uc_table(&full_name) {
        Some(t) if !full_name.contains("missing") => Json(t).into_response(),
        _ => err(
            StatusCode::NOT_FOUND,
            "TABLE_DOES_NOT_EXIST",
            "Table does not exist",
        ),
    }
}

async fn list_tables(
    State(s): State<Shared>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let st = s.lock().unwrap();
    if authorized(&st, &headers).is_none() {
        return unauthorized();
    }
    let (catalog, schema) = (q["catalog_name"].clone(), q["schema_name"].clone());
    let full = format!("{catalog}.{schema}.sales_e40c292c");
    Json(json!({"tables": [uc_table(&full)]})).into_response()
}

async fn start_double(double: Double) -> (String, Shared) {
    let shared: Shared = Arc::new(Mutex::new(double));
    let router = Router::new()
        .route("/oidc/v1/token", post(token))
        .route("/api/2.0/sql/statements", post(submit))
        .route("/api/2.0/sql/statements/{id}", get(poll))
        .route("/api/2.0/sql/statements/{id}/cancel", post(cancel))
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
    c
}

#[tokio::test]
async fn statement_goes_pending_running_succeeded() {
    let (url, double) = start_double(Double::default()).await;
    let result = client(&url, pat())
        .execute(
            WAREHOUSE,
            "main_cat",
            "SELECT count(*) FROM t",
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    assert_eq!(result.rows, vec![vec![Some("6".to_owned())]]);
    let log = double.lock().unwrap().log.clone();
    let calls: Vec<(&str, &str)> = log
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str()))
        .collect();
    assert_eq!(
        calls,
        [
            ("POST", "/api/2.0/sql/statements"),
            ("GET", "/api/2.0/sql/statements/s-1"),
            ("GET", "/api/2.0/sql/statements/s-1")
        ]
    );
    assert!(log.iter().all(|r| r.auth == format!("Bearer {PAT}")));
    let body: Value = serde_json::from_str(&log[0].body).unwrap();
    assert_eq!(body["statement"], "SELECT count(*) FROM t");
}

#[tokio::test]
async fn failed_at_http_200_is_an_error_with_a_clear_message() {
    let (url, _) = start_double(Double::default()).await;
    let err = client(&url, pat())
        .execute(
            WAREHOUSE,
            "main_cat",
            "SELECT FAIL_ME",
            Duration::from_secs(10),
        )
        .await
        .unwrap_err();
    let DatabricksError::Statement {
        state,
        code,
        message,
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(
        (state.as_str(), code.as_str()),
        ("FAILED", "TABLE_OR_VIEW_NOT_FOUND")
    );
    assert!(
        message.starts_with("the table, schema or volume does not exist"),
        "{message}"
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
    client(&url, pat())
        .execute(WAREHOUSE, "main_cat", "SELECT 1", Duration::from_secs(10))
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited {:?}",
        started.elapsed()
    );
    let posts = double
        .lock()
        .unwrap()
        .log
        .iter()
        .filter(|r| r.method == "POST")
        .count();
    assert_eq!(posts, 2);
}

#[tokio::test]
async fn a_server_error_then_success_is_retried() {
    let (url, double) = start_double(Double {
        errors_remaining: 2,
        ..Default::default()
    })
    .await;
    client(&url, pat())
        .execute(WAREHOUSE, "main_cat", "SELECT 1", Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(
        double
            .lock()
            .unwrap()
            .log
            .iter()
            .filter(|r| r.method == "POST")
            .count(),
        3
    );
}

#[tokio::test]
async fn an_expired_oauth_token_is_refreshed_once() {
    let (url, double) = start_double(Double {
        expired: vec!["oauth-1".into()],
        ..Default::default()
    })
    .await;
    let c = client(&url, oauth());
    c.execute(WAREHOUSE, "main_cat", "SELECT 1", Duration::from_secs(10))
        .await
        .unwrap();
    // The fresh token is cached: a second statement needs no new token.
    c.execute(WAREHOUSE, "main_cat", "SELECT 2", Duration::from_secs(10))
        .await
        .unwrap();
    let st = double.lock().unwrap();
    assert_eq!(st.tokens_issued, 2);
    assert!(
        st.log.iter().all(|r| r.auth == "Bearer oauth-2"),
        "{:?}",
        st.log
    );
}

#[tokio::test]
async fn our_own_timeout_cancels_the_statement() {
    let (url, double) = start_double(Double::default()).await;
    let err = client(&url, pat())
        .execute(
            WAREHOUSE,
            "main_cat",
            "SELECT SLOW",
            Duration::from_millis(300),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, DatabricksError::Timeout(_)), "{err:?}");
    assert_eq!(double.lock().unwrap().cancelled, ["s-1"]);
}

fn settings(url: &str, external_location: Option<&str>) -> DatabricksSettings {
    DatabricksSettings {
        host: url.to_owned(),
        auth: pat(),
        warehouse_id: WAREHOUSE.into(),
        catalog: Ident::parse("main_cat").unwrap(),
        volume: Ident::parse("raw").unwrap(),
        external_location: external_location.map(str::to_owned),
        statement_timeout_secs: 10,
    }
}

#[tokio::test]
async fn bronze_and_silver_follow_the_documented_flow() {
    let (url, double) = start_double(Double::default()).await;
    let lake = DatabricksLakehouse::new(settings(&url, None))
        .unwrap()
        .with_backoff(Duration::from_millis(20));
    let dir = tempfile::tempdir().unwrap();
    let download = dir.path().join("d.parquet");
    std::fs::write(&download, b"PAR1 pretend pages PAR1").unwrap();
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
    assert_eq!(bronze.columns.len(), 5);

    let silver = lake
        .transform_to_silver(
            TenantId::parse("acme").unwrap(),
            TableName::parse(&bronze.bronze_table).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(silver.silver_table, "main_cat.acme_silver.sales_e40c292c");
    assert_eq!(silver.duplicates_removed, 1);
    assert_eq!(silver.columns[1].data_type, "DECIMAL(4,2)");
    assert_eq!(silver.columns[1].null_count, 1);

    let st = double.lock().unwrap();
    assert_eq!(
        st.uploads
            .get("/Volumes/main_cat/acme_bronze/raw/a/v2/data.parquet"),
        Some(&23)
    );
    let statements: Vec<String> = st
        .log
        .iter()
        .filter(|r| r.method == "POST")
        .map(|r| {
            serde_json::from_str::<Value>(&r.body).unwrap()["statement"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        statements[0],
        "CREATE SCHEMA IF NOT EXISTS `main_cat`.`acme_bronze`"
    );
    assert_eq!(
        statements[1],
        "CREATE SCHEMA IF NOT EXISTS `main_cat`.`acme_silver`"
    );
    assert_eq!(
        statements[2],
        "CREATE VOLUME IF NOT EXISTS `main_cat`.`acme_bronze`.`raw`"
    );
    assert_eq!(
        statements[3],
        "CREATE OR REPLACE TABLE `main_cat`.`acme_bronze`.`sales_e40c292c` AS SELECT *, 'a' AS `_dataset_id`, \
         _metadata.file_path AS `_source_file` FROM read_files('/Volumes/main_cat/acme_bronze/raw/a/v2/data.parquet', format => 'parquet')"
    );
    let ctas = statements
        .iter()
        .find(|s| s.contains("`acme_silver`.`sales_e40c292c` AS"))
        .unwrap();
    assert!(
        ctas.contains("END AS `customer_id`"),
        "leading zeros keep Customer ID a string: {ctas}"
    );
    assert!(!ctas.contains("AS BIGINT) AS `customer_id`"), "{ctas}");
    assert!(ctas.contains("AS DECIMAL(4,2)) AS `amount`"), "{ctas}");
    assert!(ctas.contains("`score` AS `score`"), "{ctas}");
    assert!(ctas.contains("SELECT DISTINCT"), "{ctas}");
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
        "/Volumes/main_cat/acme_bronze/raw/a/v1/data.parquet",
    );
    assert!(
        sql.contains("LOCATION 'abfss://lake@acct.dfs.core.windows.net/st/acme_bronze/sales_e40c292c' AS SELECT"),
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
    let (url, _) = start_double(Double::default()).await;
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
        .query(request("SELECT id FROM `acme_silver`.`t`"))
        .await
        .unwrap();
    assert_eq!((ok.row_count, ok.truncated), (2, true));
    assert_eq!(ok.rows[0]["id"], "1");
    let err = lake
        .query(request("DROP TABLE acme_silver.t"))
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("query rejected"), "{err}");
    let err = lake
        .query(request("SELECT * FROM rival_silver.t"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("outside this tenant"), "{err}");
}

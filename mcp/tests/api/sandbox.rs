//! The adversarial corpus for `query`: each case is refused, or returns
//! only the asking tenant's own rows. Two tenants hold data (acme, rival),
//! and a file outside the lakehouse holds a secret; no answer (nor error)
//! may carry rival's rows, rival's names, the file's contents, or another
//! directory's listing.

use crate::helpers::{bronze_and_silver, call, create_args, spawn_app, spawn_app_with};
use serde_json::{json, Value};

const RIVAL_SECRET: &str = "RIVAL-SECRET-7731";
const FILE_SECRET: &str = "FILE-SECRET-4410";

struct Corpus {
    acme_bronze: String,
    acme_silver: String,
    rival_silver: String,
    lake: String,
    secret_dir: tempfile::TempDir,
}

async fn two_tenants(
    app: &crate::helpers::TestApp,
    client: &rmcp::service::RunningService<rmcp::RoleClient, ()>,
) -> Corpus {
    let mut names = Vec::new();
    for (tenant, dataset, marker) in [("acme", "a1", "acme-row"), ("rival", "r1", RIVAL_SECRET)] {
        let url = app.files.parquet(
            &format!("{tenant}.parquet"),
            &format!("SELECT range AS id, '{marker}' AS secret FROM range(3)"),
        );
        let (bronze, silver) = bronze_and_silver(client, tenant, dataset, "Orders", &url).await;
        let table = |answer: &Value, key: &str| answer[key].as_str().unwrap().to_owned();
        names.push((
            table(&bronze, "bronze_table"),
            table(&silver, "silver_table"),
        ));
    }
    let secret_dir = tempfile::tempdir().unwrap();
    std::fs::write(
        secret_dir.path().join("secret.csv"),
        format!("a,b\n1,{FILE_SECRET}\n"),
    )
    .unwrap();
    std::fs::write(
        secret_dir.path().join("secret.json"),
        format!("[{{\"a\": \"{FILE_SECRET}\"}}]"),
    )
    .unwrap();
    let lake = app
        .lakehouse
        .path()
        .canonicalize()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    Corpus {
        acme_bronze: names[0].0.clone(),
        acme_silver: names[0].1.clone(),
        rival_silver: names[1].1.clone(),
        lake,
        secret_dir,
    }
}

impl Corpus {
    fn cases(&self) -> Vec<String> {
        let s = &self.acme_silver;
        let b = &self.acme_bronze;
        let rs = &self.rival_silver;
        let rs_short = rs.trim_start_matches("servicetsunami.");
        let rival_table = rs.rsplit('.').next().unwrap();
        let lake = &self.lake;
        let rival_files = format!("{lake}/volumes/servicetsunami/rival_silver/tables/*/*.parquet");
        let rival_bronze_file =
            format!("{lake}/volumes/servicetsunami/rival_bronze/raw/r1/v1/data.parquet");
        let all_files = format!("{lake}/volumes/**/*.parquet");
        let db_file = format!("{lake}/servicetsunami.duckdb");
        let csv = self
            .secret_dir
            .path()
            .join("secret.csv")
            .to_string_lossy()
            .into_owned();
        let json_file = self
            .secret_dir
            .path()
            .join("secret.json")
            .to_string_lossy()
            .into_owned();
        vec![
            // 1. A CTE's name reused outside its scope.
            format!("SELECT * FROM '{all_files}', (WITH \"{all_files}\" AS (SELECT 1) SELECT 1) z"),
            format!("SELECT * FROM '{rival_files}', (WITH \"{rival_files}\" AS (SELECT 1) SELECT 1) z"),
            format!("SELECT * FROM '{csv}', (WITH \"{csv}\" AS (SELECT 1) SELECT 1) z"),
            "SELECT * FROM duckdb_views, (WITH duckdb_views AS (SELECT 1) SELECT 1) z".into(),
            "SELECT * FROM duckdb_tables, (WITH duckdb_tables AS (SELECT 1) SELECT 1) z".into(),
            format!("SELECT * FROM {s} WHERE EXISTS (WITH t AS (SELECT 1) SELECT 1) UNION ALL SELECT * FROM '{rival_bronze_file}'"),
            format!("SELECT (WITH x AS (SELECT 1) SELECT 1), * FROM \"{rival_bronze_file}\""),
            // 2. SHOW / DESCRIBE / SUMMARIZE / PRAGMA / SET / CALL anywhere.
            "SELECT * FROM (SHOW ALL TABLES)".into(),
            "SELECT * FROM (SHOW TABLES)".into(),
            format!("SELECT * FROM (DESCRIBE {rs})"),
            format!("SELECT * FROM (SUMMARIZE {rs})"),
            "SHOW ALL TABLES".into(),
            "PRAGMA show_tables".into(),
            "PRAGMA database_list".into(),
            "SET enable_external_access = true".into(),
            "CALL duckdb_settings()".into(),
            "SELECT * FROM duckdb_settings()".into(),
            // 3. Data-modifying statements and CTEs.
            format!("WITH d AS (DELETE FROM {s} RETURNING *) SELECT * FROM d"),
            format!("WITH d AS (UPDATE {s} SET secret = 'x' RETURNING *) SELECT * FROM d"),
            format!("WITH d AS (INSERT INTO {s} VALUES (9, 'x') RETURNING *) SELECT * FROM d"),
            format!("DROP VIEW {s}"),
            format!("COPY (SELECT * FROM {s}) TO '{lake}/out.csv'"),
            format!("ATTACH '{db_file}' AS stolen"),
            "INSTALL httpfs".into(),
            "LOAD httpfs".into(),
            format!("EXPORT DATABASE '{lake}/dump'"),
            "CREATE MACRO m() AS 1".into(),
            // 4. Files, globs and URLs, directly or through functions.
            format!("SELECT * FROM '{rival_bronze_file}'"),
            format!("SELECT * FROM read_parquet('{all_files}')"),
            format!("SELECT * FROM read_csv('{csv}')"),
            format!("SELECT * FROM read_json('{json_file}')"),
            "SELECT * FROM read_text('/etc/passwd')".into(),
            format!("SELECT * FROM glob('{lake}/**')"),
            format!("SELECT * FROM parquet_metadata('{rival_bronze_file}')"),
            "SELECT * FROM 'http://127.0.0.1:9/x.parquet'".into(),
            format!("SELECT * FROM query_table('{rs}')"),
            format!("SELECT * FROM query('SELECT * FROM {rs}')"),
            // 5. Other tenants, catalogs and system schemas, in every position.
            format!("SELECT * FROM {rs}"),
            format!("SELECT * FROM {rs_short}"),
            format!("SELECT * FROM \"RIVAL_SILVER\".\"{rival_table}\""),
            format!("SELECT * FROM {s} UNION ALL SELECT * FROM {rs}"),
            format!("SELECT * FROM {s} WHERE id IN (SELECT id FROM {rs})"),
            format!("SELECT (SELECT max(secret) FROM {rs}) AS x FROM {s}"),
            format!("SELECT * FROM {s} a JOIN {rs} b USING (id)"),
            format!("WITH RECURSIVE r AS (SELECT * FROM {rs} UNION ALL SELECT * FROM r) SELECT * FROM r LIMIT 1"),
            "SELECT * FROM information_schema.tables".into(),
            "SELECT * FROM system.main.duckdb_tables".into(),
            "SELECT * FROM memory.main.anything".into(),
            "SELECT * FROM pg_catalog.pg_tables".into(),
            "SELECT * FROM other_catalog.acme_silver.orders".into(),
            // 6. Stacking and comments.
            format!("SELECT 1; SELECT * FROM {rs}"),
            format!("SELECT 1 /* ; */ ; ATTACH '{db_file}'"),
            format!("SELECT * FROM {s} -- \n; SELECT * FROM {rs}"),
            // 7. The tenant's own data, by every name the tools give: allowed.
            format!("SELECT * FROM {s}"),
            format!("SELECT * FROM {b} JOIN {s} USING (id)"),
            "SELECT current_setting('allowed_paths') AS p".into(),
            "SELECT current_setting('enable_external_access') AS e".into(),
        ]
    }
}

/// Whether an answer carries anything not acme's own. Errors may echo the
/// caller's own SQL (names it typed), so for them only data counts; rows
/// may not even name rival's schemas or the catalog file.
fn leaks(outcome: &Result<Value, String>) -> Option<&'static str> {
    let data = [
        (RIVAL_SECRET, "rival's rows"),
        (FILE_SECRET, "a file outside the lakehouse"),
        ("root:", "/etc/passwd"),
    ];
    let names = [("rival_", "rival's names"), (".duckdb", "the catalog file")];
    match outcome {
        Ok(v) => {
            let text = v.to_string();
            data.iter()
                .chain(names.iter())
                .find(|(needle, _)| text.contains(needle))
                .map(|(_, what)| *what)
        }
        Err(e) => data
            .iter()
            .find(|(needle, _)| e.contains(needle))
            .map(|(_, what)| *what),
    }
}

#[tokio::test]
async fn the_adversarial_corpus_is_refused_or_sees_only_its_own_tenant() {
    let app = spawn_app().await;
    let client = app.client().await;
    let corpus = two_tenants(&app, &client).await;
    let cases = corpus.cases();
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let (mut refused, mut answered) = (0, 0);
    for sql in &cases {
        let outcome = call(&client, "query", json!({"tenant_id": "acme", "sql": sql})).await;
        if let Some(what) = leaks(&outcome) {
            panic!("{sql}\nleaked {what}: {outcome:?}");
        }
        match outcome {
            Ok(_) => answered += 1,
            Err(_) => refused += 1,
        }
    }
    // Nothing was written anywhere a query could reach.
    assert!(!std::path::Path::new(&format!("{}/out.csv", corpus.lake)).exists());
    assert!(!std::path::Path::new(&format!("{}/dump", corpus.lake)).exists());
    // The tenant's own queries did run, with its own rows.
    assert!(answered >= 3, "{answered} answered, {refused} refused");
    let own = call(
        &client,
        "query",
        json!({"tenant_id": "acme", "sql": format!("SELECT DISTINCT secret FROM {}", corpus.acme_silver)}),
    )
    .await
    .unwrap();
    assert_eq!(own["rows"], json!([{"secret": "acme-row"}]));
    // rival's data is intact and its own.
    let theirs = call(
        &client,
        "query",
        json!({"tenant_id": "rival", "sql": format!("SELECT count(*) AS n FROM {}", corpus.rival_silver)}),
    )
    .await
    .unwrap();
    assert_eq!(theirs["rows"][0]["n"], 3);
    println!(
        "{} cases: {refused} refused, {answered} answered with acme's own data",
        cases.len()
    );
}

#[tokio::test]
async fn names_the_tools_return_work_as_typed_in_query() {
    let app = spawn_app().await;
    let client = app.client().await;
    // A tenant id as the app sends it: a UUID, so the schema starts with a digit.
    let tenant = "3f2504e0-4f89-11d3-9a0c-0305e82c3301";
    let url = app
        .files
        .parquet("u.parquet", "SELECT range AS id FROM range(4)");
    bronze_and_silver(&client, tenant, "u1", "Sales 2026", &url).await;
    let listed = call(&client, "list_tables", json!({"tenant_id": tenant}))
        .await
        .unwrap();
    let tables = listed["tables"].as_array().unwrap();
    assert_eq!(tables.len(), 2);
    let status = call(
        &client,
        "dataset_status",
        json!({"tenant_id": tenant, "dataset_id": "u1"}),
    )
    .await
    .unwrap();
    let mut names: Vec<Value> = tables.iter().map(|t| t["sql_name"].clone()).collect();
    names.push(status["silver"]["sql_name"].clone());
    for table in tables {
        let described = call(
            &client,
            "describe_table",
            json!({"tenant_id": tenant, "full_name": table["sql_name"]}),
        )
        .await
        .unwrap();
        assert_eq!(described["full_name"], table["full_name"]);
        names.push(described["sql_name"].clone());
    }
    for name in names {
        let name = name.as_str().expect("every answer names the table for SQL");
        let rows = call(
            &client,
            "query",
            json!({"tenant_id": tenant, "sql": format!("SELECT count(*) AS n FROM {name}")}),
        )
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(rows["rows"][0]["n"], 4, "{name}");
    }
    // Silver is a managed table, bronze an external one over the staged file.
    let types: Vec<(&str, &str)> = tables
        .iter()
        .map(|t| {
            (
                t["layer"].as_str().unwrap(),
                t["table_type"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(types, [("bronze", "EXTERNAL"), ("silver", "MANAGED")]);
}

#[tokio::test]
async fn queries_beyond_the_cap_are_told_to_retry_and_memory_is_bounded() {
    let app = spawn_app_with(&[
        ("MCP_QUERY_MAX_CONCURRENT", "1"),
        ("MCP_QUERY_TIMEOUT_SECS", "4"),
        ("MCP_QUERY_MEMORY_LIMIT", "32MiB"),
    ])
    .await;
    let client = app.client().await;
    let url = app
        .files
        .parquet("t.parquet", "SELECT range AS id FROM range(3000)");
    let bronze = call(
        &client,
        "create_dataset",
        create_args("acme", "d1", "t", &url),
    )
    .await
    .unwrap();
    let t = bronze["bronze_table"].as_str().unwrap().to_owned();
    let slow = format!(
        "SELECT count(*) FROM {t} a, {t} b, {t} c WHERE (a.id * 7 + b.id * 13 + c.id) % 1000003 = 17"
    );
    let first = {
        let client = app.client().await;
        tokio::spawn(async move {
            call(&client, "query", json!({"tenant_id": "acme", "sql": slow})).await
        })
    };
    // The first holds the only slot until its timeout.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let busy = call(
        &client,
        "query",
        json!({"tenant_id": "acme", "sql": format!("SELECT count(*) FROM {t}")}),
    )
    .await
    .unwrap_err();
    assert!(busy.contains("busy") && busy.contains("retry"), "{busy}");
    let first = first.await.unwrap().unwrap_err();
    assert!(first.contains("timed out"), "{first}");
    // With the slot free again, a query that needs more than 32 MiB is told so.
    let big = format!(
        "SELECT count(DISTINCT repeat('x', 300) || a.id || '-' || b.id) AS n FROM {t} a, {t} b"
    );
    let err = call(&client, "query", json!({"tenant_id": "acme", "sql": big}))
        .await
        .unwrap_err();
    assert!(err.contains("MCP_QUERY_MEMORY_LIMIT"), "{err}");
}

/// This process's peak resident memory (the MCP server under test runs in it).
fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmHWM")
        * 1024
}

/// DuckDB's `memory_limit` bounds its buffer pool, not a value a query
/// makes (`range(300000000)` as a list is 2.4 GB, `repeat` as much as
/// asked). A query runs in a process of its own whose memory is capped
/// (twice `MCP_QUERY_MEMORY_LIMIT` and 256 MiB), so such a query is told it
/// needs more memory, the server does not grow, and the next query runs.
#[tokio::test]
async fn a_value_made_outside_duckdbs_pool_is_capped_with_its_query() {
    let app = spawn_app_with(&[("MCP_QUERY_MEMORY_LIMIT", "32MiB")]).await;
    let client = app.client().await;
    let url = app
        .files
        .parquet("t.parquet", "SELECT range AS id FROM range(3000)");
    let bronze = call(
        &client,
        "create_dataset",
        create_args("acme", "d1", "t", &url),
    )
    .await
    .unwrap();
    let t = bronze["bronze_table"].as_str().unwrap().to_owned();
    let before = peak_rss_bytes();
    for sql in [
        format!("SELECT len(range(300000000)) AS n FROM {t} LIMIT 1"),
        format!("SELECT length(repeat('x', 1500000000)) AS n FROM {t} LIMIT 1"),
        format!("SELECT sum(len(range(60000000 + id))) AS n FROM {t}"),
    ] {
        let err = call(&client, "query", json!({"tenant_id": "acme", "sql": sql}))
            .await
            .unwrap_err();
        assert!(err.contains("MCP_QUERY_MEMORY_LIMIT"), "{sql}: {err}");
    }
    let grown = peak_rss_bytes().saturating_sub(before);
    assert!(grown < 3 << 29, "the server grew by {} MiB", grown >> 20);
    let rows = call(
        &client,
        "query",
        json!({"tenant_id": "acme", "sql": format!("SELECT count(*) AS n FROM {t}")}),
    )
    .await
    .unwrap();
    assert_eq!(rows["rows"][0]["n"], 3000, "{rows}");
}

//! The query page's server function (`POST /api/run_query`): local queries
//! over the tenant's own files only, the sandbox's refusals and limits, and
//! routing to the lakehouse when every dataset a query names is synced.

use crate::helpers::{spawn_app, spawn_app_with, Options, TestApp};
use crate::sync::{spawn_synced_app, started_mcp, upload, wait_for, Sync};
use app::domain::SyncStatus;
use serde_json::Value;
use stack::Restate;
use std::time::Duration;

/// Nulls as `NA`, negative numbers, a name with spaces and capitals.
const CSV: &str = "City Name,Population,Delta\nOslo,709037,-1.5\nBergen,NA,2\nLyon,522250,-3\n";

async fn run(app: &TestApp, client: &reqwest::Client, sql: &str, engine: &str) -> (u16, Value) {
    let response = client
        .post(app.url("/api/run_query"))
        .header("Accept", "application/json")
        .form(&[("sql", sql), ("engine", engine)])
        .send()
        .await
        .expect("sent");
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn local_queries_read_the_tenants_datasets_by_their_normalised_names() {
    let app = spawn_app().await;
    app.upload("cities.csv", CSV.as_bytes().to_vec(), Some("World Cities"))
        .await
        .expect_ok();
    let (status, answer) = run(
        &app,
        &app.client,
        "SELECT city_name, population, delta FROM world_cities ORDER BY delta",
        "auto",
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["engine"], "local");
    assert!(
        answer["reason"].as_str().unwrap().contains("sync is off"),
        "{answer}"
    );
    assert_eq!(answer["columns"][1]["data_type"], "BIGINT");
    assert_eq!(
        answer["rows"],
        serde_json::json!([
            ["Lyon", "522250", "-3.0"],
            ["Oslo", "709037", "-1.5"],
            ["Bergen", null, "2.0"]
        ])
    );
    assert_eq!(answer["truncated"], false);

    // The page lists it as a table with its columns.
    let tables: Value = app
        .client
        .post(app.url("/api/query_tables"))
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(tables[0]["name"], "world_cities");
    assert_eq!(tables[0]["columns"][0]["name"], "city_name");

    // The lakehouse, asked for by name, is not there without sync.
    let (status, body) = run(&app, &app.client, "SELECT 1 FROM world_cities", "lakehouse").await;
    assert_eq!(status, 503, "{body}");

    // The page itself renders the result without JavaScript.
    let page = app
        .get_text("/query?sql=SELECT+count(*)+AS+n+FROM+world_cities&engine=local")
        .await;
    assert!(page.contains("id=\"query-result\""), "{page}");
    assert!(page.contains("local, as asked"), "{page}");
}

#[tokio::test]
async fn another_tenants_tables_files_and_settings_are_out_of_reach() {
    let app = spawn_app().await;
    let a = app
        .upload("cities.csv", CSV.as_bytes().to_vec(), Some("Secret Cities"))
        .await
        .expect_ok()
        .dataset
        .id;
    let b = app.new_tenant("b@example.org").await;
    let (status, body) = run(&app, &b, "SELECT * FROM secret_cities", "local").await;
    assert_eq!(status, 422, "{body}");
    assert!(body.to_string().contains("secret_cities"), "{body}");

    let file = app.parquet_path(a).to_string_lossy().into_owned();
    for sql in [
        format!("SELECT * FROM '{file}'"),
        format!("SELECT * FROM read_parquet('{file}')"),
        "SELECT * FROM read_csv('/etc/passwd')".to_owned(),
        "SELECT * FROM glob('/**')".to_owned(),
        "SELECT * FROM duckdb_settings()".to_owned(),
        "COPY (SELECT 1) TO '/tmp/out.csv'".to_owned(),
        "ATTACH '/tmp/x.duckdb' AS x".to_owned(),
        "CREATE TABLE t AS SELECT 1".to_owned(),
        "SELECT 1; SELECT 2".to_owned(),
    ] {
        let (status, body) = run(&app, &b, &sql, "local").await;
        assert_eq!(status, 422, "{sql}: {body}");
        assert!(!body.to_string().contains("Oslo"), "{sql}: {body}");
        // A path the query itself names may be quoted back; no other.
        assert!(
            sql.contains(&file) || !body.to_string().contains(&file),
            "{sql} shows our path: {body}"
        );
    }
    let (status, body) = run(&app, &b, "", "local").await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = run(&app, &b, "SELECT 1", "warp").await;
    assert_eq!(status, 422, "{body}");
}

#[tokio::test]
async fn a_query_past_its_time_is_stopped_and_one_past_the_cap_is_told_to_wait() {
    let app = spawn_app_with(Options {
        env: vec![
            ("QUERY_TIMEOUT_SECS", "1".to_owned()),
            ("QUERY_MAX_CONCURRENT", "1".to_owned()),
        ],
        ..Options::default()
    })
    .await;
    app.upload("cities.csv", CSV.as_bytes().to_vec(), Some("Cities"))
        .await
        .expect_ok();
    let slow = "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 100000000000) SELECT count(*) FROM r, cities";
    let started = std::time::Instant::now();
    let (first, second) = tokio::join!(run(&app, &app.client, slow, "local"), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        run(&app, &app.client, "SELECT 1 FROM cities", "local").await
    });
    assert_eq!(first.0, 422, "{}", first.1);
    assert!(
        first.1.to_string().contains("longer than 1 s"),
        "{}",
        first.1
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(second.0, 503, "{}", second.1);
    assert!(second.1.to_string().contains("try again"), "{}", second.1);
    // Free again once the first has stopped.
    let (status, _) = run(&app, &app.client, "SELECT 1 FROM cities", "local").await;
    assert_eq!(status, 200);
}

/// This process's peak resident memory (the app under test runs in it).
fn peak_rss_bytes() -> u64 {
    stack::app::peak_rss_kib(std::process::id()) * 1024
}

/// DuckDB's `memory_limit` bounds its buffer pool, not a value a query
/// makes: `range(50000000)` as a list took 3.5 GB in DuckDB 2.0.1 (so
/// `range(300000000)` would take about 21 GB), `repeat` and `list_resize`
/// as much as asked. Each query runs in a process of its own whose memory is capped,
/// so such a query fails alone, saying it needs more memory, and the
/// server (this process) does not grow; the next query runs as usual.
#[tokio::test]
async fn a_value_past_the_memory_cap_stops_its_own_query_and_not_the_server() {
    let app = spawn_app().await;
    app.upload("cities.csv", CSV.as_bytes().to_vec(), Some("Cities"))
        .await
        .expect_ok();
    let before = peak_rss_bytes();
    let hostile = [
        "SELECT len(range(300000000)) AS n FROM cities",
        "SELECT length(repeat('x', 1500000000)) AS n FROM cities",
        "SELECT len(list_resize([1], 400000000)) AS n FROM cities",
        "SELECT sum(len(range(60000000 + length(a.city_name) + length(b.city_name)))) AS n FROM cities a, cities b",
    ];
    let answers = futures::future::join_all(
        hostile
            .iter()
            .map(|sql| run(&app, &app.client, sql, "local")),
    )
    .await;
    for (sql, (status, body)) in hostile.iter().zip(answers) {
        assert_eq!(status, 422, "{sql}: {body}");
        assert!(body.to_string().contains("MiB of memory"), "{sql}: {body}");
    }
    let response = download(
        &app,
        &app.client,
        "SELECT repeat('x', 1500000000) AS x FROM cities",
        "csv",
    )
    .await;
    assert_eq!(response.status(), 422);
    let body = response.text().await.unwrap();
    assert!(body.contains("MiB of memory"), "{body}");
    // Together these asked for tens of GB; the server's peak moved by less
    // than 1.5 GiB (other tests run in this process too).
    let grown = peak_rss_bytes().saturating_sub(before);
    assert!(grown < 3 << 29, "the server grew by {} MiB", grown >> 20);
    let (status, body) = run(
        &app,
        &app.client,
        "SELECT count(*) AS n FROM cities",
        "local",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.to_string().contains('3'), "{body}");
}

/// The processes whose program is `program` (as their argv[0] names it).
fn processes_of(program: &std::path::Path) -> Vec<u32> {
    let program = program.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|cmd| cmd.split(|b| *b == 0).next() == Some(program.as_bytes()))
        })
        .collect()
}

/// A query's process killed (`kill -9`) in the middle of its query: the
/// page is told the query stopped before it answered (422, not a 500 and
/// not a hang), the server goes on, and the next query gets a new process.
#[tokio::test]
async fn a_query_whose_process_is_killed_mid_call_is_answered_and_the_next_one_runs() {
    // The workers of this app alone, by their own name: other tests in this
    // process run queries too.
    let dir = tempfile::tempdir().unwrap();
    let program = dir.path().join("servicetsunami-killed-query");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_servicetsunami"), &program).unwrap();
    let app = spawn_app_with(Options {
        env: vec![
            ("QUERY_TIMEOUT_SECS", "30".to_owned()),
            (
                "QUERY_WORKER_PROGRAM",
                program.to_string_lossy().into_owned(),
            ),
        ],
        ..Options::default()
    })
    .await;
    app.upload("cities.csv", CSV.as_bytes().to_vec(), Some("Cities"))
        .await
        .expect_ok();
    let slow = "WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 100000000000) SELECT count(*) FROM r, cities";
    let started = std::time::Instant::now();
    let ((status, body), killed) = tokio::join!(run(&app, &app.client, slow, "local"), async {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        // The one running and the spare beside it.
        let pids = processes_of(&program);
        for pid in &pids {
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status();
        }
        pids.len()
    });
    assert!(killed >= 1, "no worker process was running");
    assert_eq!(status, 422, "{body}");
    assert!(
        body.to_string().contains("stopped before it answered"),
        "{body}"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    let (status, body) = run(
        &app,
        &app.client,
        "SELECT count(*) AS n FROM cities",
        "local",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.to_string().contains('3'), "{body}");
}

#[tokio::test]
async fn auto_runs_on_the_lakehouse_once_every_named_dataset_is_synced() {
    let restate = Restate::started().await.unwrap();
    let mcp = started_mcp().await;
    let app = spawn_synced_app(&restate, &mcp, Sync::default()).await;
    let id = upload(&app, "cities", CSV).await;
    wait_for(&app, id, SyncStatus::Synced, Duration::from_secs(60)).await;

    let sql =
        "WITH t AS (SELECT * FROM cities) SELECT city_name, population FROM t ORDER BY city_name";
    let (status, answer) = run(&app, &app.client, sql, "auto").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["engine"], "lakehouse", "{answer}");
    assert!(
        answer["reason"].as_str().unwrap().contains("synced"),
        "{answer}"
    );
    // Silver: NA is NULL, the numbers typed.
    assert_eq!(
        answer["rows"],
        serde_json::json!([["Bergen", null], ["Lyon", "522250"], ["Oslo", "709037"]])
    );
    let (status, local) = run(&app, &app.client, sql, "local").await;
    assert_eq!(status, 200, "{local}");
    assert_eq!(local["engine"], "local");
    assert_eq!(local["rows"], answer["rows"]);

    // Stop the lakehouse: auto falls back to local and says why.
    drop(mcp);
    let (status, answer) = run(&app, &app.client, sql, "auto").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["engine"], "local");
    assert!(
        answer["reason"]
            .as_str()
            .unwrap()
            .contains("did not answer"),
        "{answer}"
    );
    let (status, body) = run(&app, &app.client, sql, "lakehouse").await;
    assert_eq!(status, 503, "{body}");
}

/// GETs a download of `sql`'s whole result.
async fn download(
    app: &TestApp,
    client: &reqwest::Client,
    sql: &str,
    format: &str,
) -> reqwest::Response {
    client
        .get(app.url("/api/query/download"))
        .query(&[("sql", sql), ("format", format)])
        .send()
        .await
        .expect("sent")
}

/// A download is the whole result, not the page's capped view: a million
/// rows (about 30 MB of CSV) pass through a 16 MiB query budget, because
/// DuckDB streams them to a scratch file that then streams to the client in
/// chunks; nothing is left on disk afterwards.
#[tokio::test]
async fn a_download_of_a_million_rows_streams_in_bounded_memory() {
    let app = spawn_app_with(Options {
        env: vec![
            ("QUERY_MEMORY_LIMIT", "16MiB".to_owned()),
            ("QUERY_MAX_ROWS", "10".to_owned()),
        ],
        ..Options::default()
    })
    .await;
    // Real-world shapes: nulls as NA, negative decimals.
    let mut csv = String::from("id,name,delta\n");
    for i in 0..2000 {
        let name = if i % 7 == 0 {
            "NA".to_owned()
        } else {
            format!("city {i}")
        };
        csv.push_str(&format!("{i},{name},{}\n", -(i as f64) / 4.0));
    }
    app.upload("numbers.csv", csv.into_bytes(), Some("Numbers"))
        .await
        .expect_ok();
    let sql =
        "SELECT a.id AS a, b.id AS b, a.name, b.delta FROM numbers a, numbers b WHERE b.id < 500";

    let response = download(&app, &app.client, sql, "csv").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/csv; charset=utf-8"
    );
    assert_eq!(response.headers()["x-row-count"], "1000000");
    assert!(response.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .starts_with("attachment; filename=\"query-"));
    let length: u64 = response.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        length > 16 << 20,
        "bigger than the query's memory: {length}"
    );
    let mut body = response.bytes_stream();
    let (mut bytes, mut lines, mut chunks, mut head) = (0u64, 0u64, 0u64, Vec::new());
    while let Some(chunk) = futures::StreamExt::next(&mut body).await {
        let chunk = chunk.expect("a chunk");
        if head.len() < 64 {
            head.extend_from_slice(&chunk[..chunk.len().min(64)]);
        }
        bytes += chunk.len() as u64;
        lines += memchr::memchr_iter(b'\n', &chunk).count() as u64;
        chunks += 1;
    }
    assert_eq!(bytes, length);
    assert_eq!(lines, 1_000_001, "a header and every row");
    assert!(chunks > 1, "streamed, not sent whole");
    assert!(
        String::from_utf8_lossy(&head).starts_with("a,b,name,delta\n"),
        "{}",
        String::from_utf8_lossy(&head)
    );

    // Parquet: the same rows, typed.
    let response = download(&app, &app.client, sql, "parquet").await;
    assert_eq!(response.status(), 200);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("result.parquet");
    std::fs::write(&file, response.bytes().await.unwrap()).unwrap();
    let conn = duckdb::Connection::open_in_memory().unwrap();
    let (rows, nulls, min): (i64, i64, f64) = conn
        .query_row(
            &format!(
                "SELECT count(*), count(*) FILTER (WHERE name IS NULL), min(delta) FROM read_parquet('{}')",
                file.display()
            ),
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((rows, nulls, min), (1_000_000, 286 * 500, -124.75));

    // No scratch file stays behind.
    let left: Vec<_> = app
        .stored_files()
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("download-"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn downloads_refuse_bad_formats_other_tenants_tables_and_files() {
    let app = spawn_app().await;
    let a = app
        .upload("cities.csv", CSV.as_bytes().to_vec(), Some("Secret Cities"))
        .await
        .expect_ok()
        .dataset
        .id;
    let response = download(&app, &app.client, "SELECT * FROM secret_cities", "xlsx").await;
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("csv or parquet"));
    let response = download(&app, &app.client, " ", "csv").await;
    assert_eq!(response.status(), 400);

    let b = app.new_tenant("b@example.org").await;
    let response = download(&app, &b, "SELECT * FROM secret_cities", "csv").await;
    assert_eq!(response.status(), 422);
    let text = response.text().await.unwrap();
    assert!(
        text.contains("secret_cities") && !text.contains("Oslo"),
        "{text}"
    );
    let file = app.parquet_path(a).to_string_lossy().into_owned();
    for sql in [
        format!("SELECT * FROM '{file}'"),
        "SELECT * FROM read_csv('/etc/passwd')".to_owned(),
        format!("SELECT 1) q) TO '{file}' (FORMAT csv); SELECT (1"),
        "COPY (SELECT 1) TO '/tmp/out.csv'".to_owned(),
    ] {
        let response = download(&app, &b, &sql, "csv").await;
        assert_eq!(response.status(), 422, "{sql}");
        assert!(!response.text().await.unwrap().contains("Oslo"), "{sql}");
    }
    // Signed out: nothing.
    let anonymous = reqwest::Client::new();
    let response = download(&app, &anonymous, "SELECT * FROM secret_cities", "csv").await;
    assert_eq!(response.status(), 401);
    // The owner's file is intact after the attempt to overwrite it.
    let (_, rows) = crate::helpers::read_parquet(&app.parquet_path(a));
    assert_eq!(rows.len(), 3);
}

//! The durable sync end to end: real restate-server, real MCP server (local
//! lakehouse), real Postgres, the server's own Restate endpoint and dispatcher.

use crate::{
    helpers::{spawn_app_with, Options, TestApp},
    stack::{Mcp, Restate, MCP_KEY},
};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use uuid::Uuid;

const CSV: &str = "id,name,amount\n1, Ada ,10.5\n2,Grace,N/A\n2,Grace,N/A\n3,Linus,7\n";

struct Sync {
    attempts: u32,
    interval_secs: u64,
}

impl Default for Sync {
    fn default() -> Self {
        Self {
            attempts: 3,
            interval_secs: 1,
        }
    }
}

async fn spawn_synced_app(restate: &Restate, mcp: &Mcp, sync: Sync) -> TestApp {
    spawn_app_with(Options {
        env: vec![
            ("DATABRICKS_SYNC_ENABLED", "true".to_owned()),
            ("DATABRICKS_AUTO_SYNC", "true".to_owned()),
            ("MCP_SERVER_URL", mcp.url()),
            ("MCP_API_KEY", MCP_KEY.to_owned()),
            ("RESTATE_INGRESS_URL", restate.ingress_url()),
            ("RESTATE_ADMIN_URL", restate.admin_url()),
            ("DATABRICKS_RETRY_ATTEMPTS", sync.attempts.to_string()),
            ("DATABRICKS_RETRY_INTERVAL", sync.interval_secs.to_string()),
        ],
        ..Options::default()
    })
    .await
}

async fn status(app: &TestApp, id: Uuid) -> (String, Option<String>, Value) {
    sqlx::query_as::<_, (String, Option<String>, Value)>(
        "SELECT sync_status::text, sync_step, metadata FROM datasets WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&app.db)
    .await
    .expect("dataset row")
}

/// Polls until the dataset's status is `want` (panics after `within`).
async fn wait_for(app: &TestApp, id: Uuid, want: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (status, _, metadata) = status(app, id).await;
        if status == want {
            return metadata;
        }
        assert!(
            Instant::now() < deadline,
            "dataset {id} is {status}, not {want}, after {within:?}; metadata {metadata}; events {:?}",
            events(app, id).await
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// (step, attempt, outcome, error) of the timeline, in order.
async fn events(app: &TestApp, id: Uuid) -> Vec<(String, i32, String, Option<String>)> {
    sqlx::query_as(
        "SELECT step, attempt, outcome, error FROM sync_events WHERE dataset_id = $1 ORDER BY started_at, id",
    )
    .bind(id)
    .fetch_all(&app.db)
    .await
    .expect("events")
}

/// `a.b.c` → `"a"."b"."c"` (tenant schemas may start with a digit).
fn quoted(table: &str) -> String {
    table
        .split('.')
        .map(|part| format!("\"{part}\""))
        .collect::<Vec<_>>()
        .join(".")
}

async fn upload(app: &TestApp, name: &str, csv: &str) -> Uuid {
    app.upload(&format!("{name}.csv"), csv.as_bytes().to_vec(), None)
        .await
        .expect_ok()
        .dataset
        .id
}

#[tokio::test]
async fn an_upload_ends_synced_and_its_tables_are_queryable() {
    let restate = Restate::started().await;
    let mcp = Mcp::started().await;
    let app = spawn_synced_app(&restate, &mcp, Sync::default()).await;

    let id = upload(&app, "people", CSV).await;
    let metadata = wait_for(&app, id, "synced", Duration::from_secs(60)).await;

    let bronze = metadata["bronze_table"]
        .as_str()
        .expect("bronze_table")
        .to_owned();
    let silver = metadata["silver_table"]
        .as_str()
        .expect("silver_table")
        .to_owned();
    assert_eq!(metadata["sync_status"], "synced");
    assert_eq!(metadata["databricks_enabled"], true);
    assert!(metadata["last_sync_at"].is_string(), "{metadata}");

    let tenant: Uuid = sqlx::query_scalar("SELECT tenant_id FROM datasets WHERE id = $1")
        .bind(id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    let query = |sql: String| {
        let mcp = &mcp;
        async move {
            mcp.call(
                "query",
                json!({"tenant_id": tenant.to_string(), "sql": sql}),
            )
            .await
        }
    };
    let raw = query(format!("SELECT count(*) AS n FROM {}", quoted(&bronze))).await;
    assert_eq!(
        raw["rows"][0]["n"],
        json!(4),
        "bronze keeps every row: {raw}"
    );
    let clean = query(format!("SELECT count(*) AS n FROM {}", quoted(&silver))).await;
    assert_eq!(
        clean["rows"][0]["n"],
        json!(3),
        "silver drops the duplicate: {clean}"
    );

    let steps: Vec<(String, String)> = events(&app, id)
        .await
        .into_iter()
        .map(|(step, _, outcome, _)| (step, outcome))
        .collect();
    assert_eq!(
        steps,
        [
            ("queued", "succeeded"),
            ("bronze", "succeeded"),
            ("silver", "succeeded"),
            ("metadata", "succeeded")
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );

    // Operators see the invocation and the object's state through the real CLI.
    let invocation: String =
        sqlx::query_scalar("SELECT invocation_id FROM sync_requests WHERE dataset_id = $1")
            .bind(id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    let listed = restate.cli(&["invocations", "list", "--all"]);
    assert!(listed.contains("DatasetSync"), "{listed}");
    let described = restate.cli(&["invocations", "describe", &invocation]);
    assert!(described.contains("sync_to_bronze"), "{described}");
    // The object's state is written as the invocation ends, just after the
    // metadata step made the dataset `synced` in Postgres: allow for that.
    let mut state = String::new();
    for _ in 0..50 {
        state = restate.cli(&["kv", "get", "DatasetSync", &id.to_string()]);
        if state.contains("synced") && state.contains(&silver) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        state.contains("synced") && state.contains(&silver),
        "{state}"
    );

    let metrics = app.get_text("/metrics").await;
    assert!(
        metrics.contains("servicetsunami_syncs_succeeded_total 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("servicetsunami_sync_outbox_depth 0\n"),
        "{metrics}"
    );
}

#[tokio::test]
async fn mcp_down_at_first_is_retried_until_synced() {
    let restate = Restate::started().await;
    let mut mcp = Mcp::new(); // not started yet
    let app = spawn_synced_app(
        &restate,
        &mcp,
        Sync {
            attempts: 10,
            interval_secs: 1,
        },
    )
    .await;

    let id = upload(&app, "late", CSV).await;
    let metadata = wait_for(&app, id, "retrying", Duration::from_secs(30)).await;
    assert!(
        metadata["last_error"].as_str().unwrap().contains("MCP"),
        "{metadata}"
    );
    let (next_retry, attempt): (Option<time::OffsetDateTime>, Option<i32>) =
        sqlx::query_as("SELECT sync_next_retry_at, sync_attempt FROM datasets WHERE id = $1")
            .bind(id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(
        next_retry.is_some() && attempt.is_some(),
        "retrying shows when and which attempt"
    );

    mcp.start().await;
    wait_for(&app, id, "synced", Duration::from_secs(60)).await;
    let bronze: Vec<(i32, String)> = events(&app, id)
        .await
        .into_iter()
        .filter(|(step, ..)| step == "bronze")
        .map(|(_, attempt, outcome, _)| (attempt, outcome))
        .collect();
    assert!(bronze.len() >= 2, "{bronze:?}");
    assert!(
        bronze[..bronze.len() - 1]
            .iter()
            .all(|(_, o)| o == "retrying"),
        "{bronze:?}"
    );
    assert_eq!(bronze.last().unwrap().1, "succeeded");
    let metrics = app.get_text("/metrics").await;
    assert!(
        !metrics.contains("servicetsunami_sync_step_retries_total 0\n"),
        "{metrics}"
    );
}

#[tokio::test]
async fn mcp_down_for_good_fails_after_the_attempts_and_a_retry_then_syncs() {
    let restate = Restate::started().await;
    let mut mcp = Mcp::new();
    let app = spawn_synced_app(
        &restate,
        &mcp,
        Sync {
            attempts: 2,
            interval_secs: 1,
        },
    )
    .await;

    let id = upload(&app, "never", CSV).await;
    let metadata = wait_for(&app, id, "failed", Duration::from_secs(60)).await;
    assert!(
        metadata["last_error"].as_str().unwrap().contains("MCP"),
        "{metadata}"
    );
    let timeline = events(&app, id).await;
    let bronze: Vec<_> = timeline.iter().filter(|e| e.0 == "bronze").collect();
    assert_eq!(bronze.len(), 2, "{timeline:?}");
    assert_eq!(bronze[0].2, "retrying");
    assert_eq!(bronze[1].2, "failed");
    assert!(bronze[1].3.is_some(), "the error is kept");

    // The manual retry (the dataset page's "Sync again" server function).
    mcp.start().await;
    let response = app
        .client
        .post(app.url("/api/retry_sync"))
        .form(&[("id", id.to_string())])
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success() || response.status().is_redirection());
    wait_for(&app, id, "synced", Duration::from_secs(60)).await;
    let requests: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sync_requests WHERE dataset_id = $1")
            .bind(id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(requests, 2);
}

#[tokio::test]
async fn a_terminal_error_fails_at_once() {
    let mut restate = Restate::new();
    let mcp = Mcp::started().await;
    let app = spawn_synced_app(
        &restate,
        &mcp,
        Sync {
            attempts: 5,
            interval_secs: 1,
        },
    )
    .await;
    // Restate starts only once the Parquet file is gone, so the sync finds a
    // 404 on the internal endpoint: retrying cannot fix that.
    let id = upload(&app, "vanished", CSV).await;
    std::fs::remove_file(app.parquet_path(id)).unwrap();
    restate.start().await;
    let metadata = wait_for(&app, id, "failed", Duration::from_secs(30)).await;
    let error = metadata["last_error"].as_str().unwrap();
    assert!(error.contains("404"), "{error}");
    let bronze: Vec<_> = events(&app, id)
        .await
        .into_iter()
        .filter(|e| e.0 == "bronze")
        .collect();
    assert_eq!(bronze.len(), 1, "no retry for a missing file: {bronze:?}");
}

#[tokio::test]
async fn restate_down_at_upload_leaves_it_pending_until_restate_starts() {
    let mut restate = Restate::new(); // not started yet
    let mcp = Mcp::started().await;
    let app = spawn_synced_app(&restate, &mcp, Sync::default()).await;

    let id = upload(&app, "patient", CSV).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status_now, ..) = status(&app, id).await;
    assert_eq!(status_now, "pending");
    let (attempts, error): (i32, Option<String>) = sqlx::query_as(
        "SELECT dispatch_attempts, last_dispatch_error FROM sync_requests WHERE dataset_id = $1",
    )
    .bind(id)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert!(attempts >= 1, "the dispatcher tried");
    assert!(error.unwrap().contains("Restate"));

    restate.start().await;
    wait_for(&app, id, "synced", Duration::from_secs(90)).await;
}

#[tokio::test]
async fn restate_killed_mid_sync_completes_with_each_table_created_once() {
    let mut restate = Restate::started().await;
    let mcp = Mcp::started().await;
    let app = spawn_synced_app(&restate, &mcp, Sync::default()).await;

    // Big enough that the silver transform takes a moment.
    let mut csv = String::from("id,code,amount,when\n");
    for i in 0..300_000 {
        csv.push_str(&format!(
            "{i},{:05},{}.5,2024-01-{:02}\n",
            i % 977,
            i % 1000,
            i % 28 + 1
        ));
    }
    let id = upload(&app, "big", &csv).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (s, step, _) = status(&app, id).await;
        if s == "syncing" && step.as_deref() == Some("silver") {
            break;
        }
        assert!(
            s != "synced" && Instant::now() < deadline,
            "never saw the silver step: {s}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    restate.kill();
    tokio::time::sleep(Duration::from_millis(500)).await;
    restate.start().await;
    let metadata = wait_for(&app, id, "synced", Duration::from_secs(120)).await;

    let timeline = events(&app, id).await;
    let succeeded = |step: &str| {
        timeline
            .iter()
            .filter(|e| e.0 == step && e.2 == "succeeded")
            .count()
    };
    assert_eq!(succeeded("bronze"), 1, "{timeline:?}");
    assert_eq!(succeeded("silver"), 1, "{timeline:?}");
    // The bronze step is journaled: replay did not call MCP again.
    let metrics = app.get_text("/metrics").await;
    assert!(
        metrics.contains("servicetsunami_sync_step_duration_seconds_count{step=\"bronze\"} 1\n"),
        "{metrics}"
    );
    let tenant: Uuid = sqlx::query_scalar("SELECT tenant_id FROM datasets WHERE id = $1")
        .bind(id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    let tables = mcp
        .call("list_tables", json!({"tenant_id": tenant.to_string()}))
        .await;
    let names: Vec<&str> = tables["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["full_name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "one bronze and one silver table: {names:?}");
    let silver = metadata["silver_table"].as_str().unwrap();
    let count = mcp
        .call(
            "query",
            json!({"tenant_id": tenant.to_string(), "sql": format!("SELECT count(*) AS n FROM {}", quoted(silver))}),
        )
        .await;
    assert_eq!(
        count["rows"][0]["n"],
        json!(300_000),
        "no duplicated rows: {count}"
    );
}

#[tokio::test]
async fn two_sync_requests_for_one_dataset_are_serialised() {
    let restate = Restate::started().await;
    let mcp = Mcp::started().await;
    let app = spawn_synced_app(&restate, &mcp, Sync::default()).await;
    let id = upload(&app, "twice", CSV).await;
    // A second request for the same dataset at once (as a second replica or a
    // bulk sync racing the upload would add).
    sqlx::query(
        "INSERT INTO sync_requests (id, tenant_id, dataset_id, reason)
         SELECT $1, tenant_id, id, 'retry' FROM datasets WHERE id = $2",
    )
    .bind(Uuid::new_v4())
    .bind(id)
    .execute(&app.db)
    .await
    .unwrap();

    let deadline = Instant::now() + Duration::from_secs(60);
    let spans = loop {
        let spans: Vec<(Uuid, time::OffsetDateTime, Option<time::OffsetDateTime>, i64)> = sqlx::query_as(
            "SELECT request_id, min(started_at), max(finished_at), count(*) FILTER (WHERE step = 'metadata' AND outcome = 'succeeded')
             FROM sync_events WHERE dataset_id = $1 AND step <> 'queued'
             GROUP BY request_id ORDER BY 2",
        )
        .bind(id)
        .fetch_all(&app.db)
        .await
        .unwrap();
        if spans.len() == 2 && spans.iter().all(|s| s.3 == 1) {
            break spans;
        }
        assert!(
            Instant::now() < deadline,
            "both syncs did not finish: {spans:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let first_end = spans[0].2.expect("first finished");
    assert!(
        first_end <= spans[1].1,
        "the second sync started only after the first ended: {spans:?}"
    );
    assert_eq!(status(&app, id).await.0, "synced");
}

#[tokio::test]
async fn an_operator_cancel_through_the_cli_marks_the_dataset_failed() {
    let restate = Restate::started().await;
    let mcp = Mcp::new(); // down: the sync waits to retry
    let app = spawn_synced_app(
        &restate,
        &mcp,
        Sync {
            attempts: 3,
            interval_secs: 300,
        },
    )
    .await;
    let id = upload(&app, "cancelled", CSV).await;
    wait_for(&app, id, "retrying", Duration::from_secs(30)).await;
    let invocation: String =
        sqlx::query_scalar("SELECT invocation_id FROM sync_requests WHERE dataset_id = $1")
            .bind(id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    let out = restate.cli(&["invocations", "cancel", "--yes", &invocation]);
    assert!(out.contains("Cancelled 1"), "{out}");
    let metadata = wait_for(&app, id, "failed", Duration::from_secs(30)).await;
    assert!(
        metadata["last_error"].as_str().unwrap().contains("stopped"),
        "{metadata}"
    );
}

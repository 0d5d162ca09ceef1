//! The durable sync end to end: real restate-server, the real MCP server
//! (in-process, local lakehouse), real Postgres, the server's own Restate
//! endpoint and dispatcher.

use crate::helpers::{eventually, spawn_app_with, Options, TestApp};
use app::domain::{StepOutcome, SyncStatus, SyncStep};
use serde_json::{json, Value};
use stack::{Mcp, Restate};
use std::time::Duration;
use uuid::Uuid;

const CSV: &str = "id,name,amount\n1, Ada ,10.5\n2,Grace,N/A\n2,Grace,N/A\n3,Linus,7\n";

pub struct Sync {
    pub attempts: u32,
    pub interval_secs: u64,
}

impl Default for Sync {
    fn default() -> Self {
        Self {
            attempts: 3,
            interval_secs: 1,
        }
    }
}

/// The app with sync through `restate` and `mcp`: its internal listener where
/// the MCP server downloads from, and Restate's request identity checked.
pub async fn spawn_synced_app(restate: &Restate, mcp: &Mcp, sync: Sync) -> TestApp {
    spawn_app_with(Options {
        env: vec![
            (
                "INTERNAL_ADDR",
                format!("127.0.0.1:{}", mcp.app_internal_port),
            ),
            ("RESTATE_IDENTITY_KEY", restate.identity_key.clone()),
            ("DATABRICKS_SYNC_ENABLED", "true".to_owned()),
            ("DATABRICKS_AUTO_SYNC", "true".to_owned()),
            ("MCP_SERVER_URL", mcp.url()),
            ("MCP_API_KEY", mcp.key().to_owned()),
            ("RESTATE_INGRESS_URL", restate.ingress_url()),
            ("RESTATE_ADMIN_URL", restate.admin_url()),
            ("DATABRICKS_RETRY_ATTEMPTS", sync.attempts.to_string()),
            ("DATABRICKS_RETRY_INTERVAL", sync.interval_secs.to_string()),
            // The invocation reconciler checks every sync of every test.
            ("SYNC_RECONCILE_INTERVAL_SECS", "1".to_owned()),
            ("SYNC_RECONCILE_GRACE_SECS", "2".to_owned()),
        ],
        ..Options::default()
    })
    .await
}

pub async fn started_mcp() -> Mcp {
    let mut mcp = Mcp::in_process();
    mcp.start().await.expect("the MCP server starts");
    mcp
}

/// A dataset's typed sync columns.
#[derive(Debug, sqlx::FromRow)]
pub struct Row {
    pub sync_status: SyncStatus,
    pub sync_step: Option<SyncStep>,
    pub sync_attempt: Option<i32>,
    pub sync_next_retry_at: Option<time::OffsetDateTime>,
    pub sync_error: Option<String>,
    pub bronze_table: Option<String>,
    pub silver_table: Option<String>,
    pub last_sync_at: Option<time::OffsetDateTime>,
    pub metadata: Value,
}

async fn row(app: &TestApp, id: Uuid) -> Row {
    sqlx::query_as(
        "SELECT sync_status, sync_step, sync_attempt, sync_next_retry_at, sync_error,
                bronze_table, silver_table, last_sync_at, metadata
         FROM datasets WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&app.db)
    .await
    .expect("dataset row")
}

/// Polls until the dataset's status is `want` (panics after `within`,
/// showing where it stands and its timeline).
pub async fn wait_for(app: &TestApp, id: Uuid, want: SyncStatus, within: Duration) -> Row {
    let found = stack::wait::until(within, "", || async {
        let r = row(app, id).await;
        (r.sync_status == want).then_some(r)
    })
    .await;
    match found {
        Ok(r) => r,
        Err(_) => panic!(
            "dataset {id} is not {want:?} after {within:?}: {:?}; events {:?}",
            row(app, id).await,
            events(app, id).await
        ),
    }
}

/// (step, attempt, outcome, error) of the timeline, in order.
async fn events(app: &TestApp, id: Uuid) -> Vec<(SyncStep, i32, StepOutcome, Option<String>)> {
    sqlx::query_as(
        "SELECT step, attempt, outcome, error FROM sync_events WHERE dataset_id = $1 ORDER BY started_at, id",
    )
    .bind(id)
    .fetch_all(&app.db)
    .await
    .expect("events")
}

pub async fn tenant_of(app: &TestApp, id: Uuid) -> String {
    let tenant: Uuid = sqlx::query_scalar("SELECT tenant_id FROM datasets WHERE id = $1")
        .bind(id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    tenant.to_string()
}

async fn invocation_of(app: &TestApp, id: Uuid) -> String {
    sqlx::query_scalar("SELECT invocation_id FROM sync_requests WHERE dataset_id = $1")
        .bind(id)
        .fetch_one(&app.db)
        .await
        .unwrap()
}

/// `a.b.c` → `"a"."b"."c"` (tenant schemas may start with a digit).
pub fn quoted(table: &str) -> String {
    table
        .split('.')
        .map(|part| format!("\"{part}\""))
        .collect::<Vec<_>>()
        .join(".")
}

async fn count_rows(mcp: &Mcp, tenant: &str, table: &str) -> Value {
    let sql = format!("SELECT count(*) AS n FROM {}", quoted(table));
    query_rows(mcp, tenant, sql).await[0]["n"].clone()
}

/// The rows of `sql`, run for `tenant` by the MCP server's `query` tool.
async fn query_rows(mcp: &Mcp, tenant: &str, sql: String) -> Value {
    let out = mcp
        .call("query", json!({"tenant_id": tenant, "sql": sql}))
        .await
        .expect("query");
    out["rows"].clone()
}

/// `rows` rows of four columns: big enough that a sync's steps take a moment.
pub fn big_csv(rows: usize) -> String {
    let mut csv = String::from("id,code,amount,when\n");
    for i in 0..rows {
        csv.push_str(&format!(
            "{i},{:05},{}.5,2024-01-{:02}\n",
            i % 977,
            i % 1000,
            i % 28 + 1
        ));
    }
    csv
}

pub async fn upload(app: &TestApp, name: &str, csv: &str) -> Uuid {
    app.upload(&format!("{name}.csv"), csv.as_bytes().to_vec(), None)
        .await
        .expect_ok()
        .dataset
        .id
}

#[tokio::test]
async fn an_upload_ends_synced_and_its_tables_are_queryable() {
    let restate = Restate::started().await.unwrap();
    let mcp = started_mcp().await;
    let app = spawn_synced_app(&restate, &mcp, Sync::default()).await;

    let id = upload(&app, "people", CSV).await;
    let synced = wait_for(&app, id, SyncStatus::Synced, Duration::from_secs(60)).await;

    let bronze = synced.bronze_table.clone().expect("bronze_table");
    let silver = synced.silver_table.clone().expect("silver_table");
    assert!(synced.last_sync_at.is_some());
    assert!(synced.sync_error.is_none() && synced.sync_step.is_none());
    // The seed's metadata keys follow the typed columns.
    assert_eq!(synced.metadata["sync_status"], "synced");
    assert_eq!(synced.metadata["databricks_enabled"], true);
    assert_eq!(synced.metadata["bronze_table"], bronze.as_str());
    assert_eq!(synced.metadata["silver_table"], silver.as_str());
    assert!(
        synced.metadata["last_sync_at"].is_string(),
        "{:?}",
        synced.metadata
    );

    let tenant = tenant_of(&app, id).await;
    assert_eq!(
        count_rows(&mcp, &tenant, &bronze).await,
        json!(4),
        "bronze keeps every row"
    );
    assert_eq!(
        count_rows(&mcp, &tenant, &silver).await,
        json!(3),
        "silver drops the duplicate"
    );

    let steps: Vec<(SyncStep, StepOutcome)> = events(&app, id)
        .await
        .into_iter()
        .map(|(step, _, outcome, _)| (step, outcome))
        .collect();
    assert_eq!(
        steps,
        [
            SyncStep::Queued,
            SyncStep::Bronze,
            SyncStep::Silver,
            SyncStep::Metadata
        ]
        .map(|step| (step, StepOutcome::Succeeded))
    );

    // Operators see the invocation and the object's record through the real CLI.
    let invocation = invocation_of(&app, id).await;
    let listed = restate.cli(&["invocations", "list", "--all"]).unwrap();
    assert!(listed.contains("DatasetSync"), "{listed}");
    let described = restate
        .cli(&["invocations", "describe", &invocation])
        .unwrap();
    assert!(described.contains("sync_to_bronze"), "{described}");
    // The object's record is written as the invocation ends, just after the
    // metadata step made the dataset `synced` in Postgres: allow for that.
    eventually(
        Duration::from_secs(10),
        "the object's record to say synced",
        || async {
            let record = restate
                .cli(&["kv", "get", "DatasetSync", &id.to_string()])
                .unwrap();
            (record.contains("synced") && record.contains(&silver)).then_some(())
        },
    )
    .await;

    let metrics = app.internal_text("/metrics").await;
    assert!(
        metrics.contains("servicetsunami_syncs_succeeded_total 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("servicetsunami_sync_outbox_depth 0\n"),
        "{metrics}"
    );
}

/// JSON as people upload it syncs: lists and objects inside records, the
/// records inside an API's object (or deeper, as GraphQL answers), a
/// member null throughout, text in
/// windows-1252. Bronze keeps every row, silver the distinct ones, and the
/// nested values arrive whole.
#[tokio::test]
async fn nested_json_and_windows_1252_text_sync() {
    let restate = Restate::started().await.unwrap();
    let mcp = started_mcp().await;
    let app = spawn_synced_app(&restate, &mcp, Sync::default()).await;
    let json = r#"{"count": 3, "next": null, "results": [
        {"id": 1, "name": "Anna", "tags": ["a", "b"], "address": {"city": "Oslo", "zip": -1}},
        {"id": 2, "name": null, "tags": [], "address": {"city": "Bergen", "zip": 5003}},
        {"id": 2, "name": null, "tags": [], "address": {"city": "Bergen", "zip": 5003}}
    ]}"#;
    let nested = app
        .upload("page.json", json, None)
        .await
        .expect_ok()
        .dataset
        .id;
    // Records deeper in the object (GraphQL), a member beside them kept
    // under its path: silver's name for it is data_users_total_count.
    // A partial answer: what failed is in `errors`, kept beside each record.
    let graphql = r#"{"errors": [{"message": "timeout", "path": ["users", "groups"]}],
        "data": {"users": {"totalCount": 3, "nodes": [
        {"id": 1, "name": "Anna"}, {"id": 2, "name": "Bo"}, {"id": 2, "name": "Bo"}]}}}"#;
    let deeper = app
        .upload("users.json", graphql, None)
        .await
        .expect_ok()
        .dataset
        .id;
    let latin1 = crate::helpers::windows_1252("id;name;amount\r\n1;Müller;3,5\r\n2;Größe;NA\r\n");
    let text = app
        .upload("export.csv", latin1, None)
        .await
        .expect_ok()
        .dataset
        .id;
    for (id, bronze_rows, silver_rows) in [(nested, 3, 2), (text, 2, 2), (deeper, 3, 2)] {
        let synced = wait_for(&app, id, SyncStatus::Synced, Duration::from_secs(60)).await;
        let tenant = tenant_of(&app, id).await;
        let bronze = synced.bronze_table.expect("bronze_table");
        let silver = synced.silver_table.expect("silver_table");
        assert_eq!(count_rows(&mcp, &tenant, &bronze).await, json!(bronze_rows));
        assert_eq!(count_rows(&mcp, &tenant, &silver).await, json!(silver_rows));
    }
    // The nested values arrive whole; the member beside GraphQL's records
    // is in every row.
    for (id, select, where_id, expected) in [
        (
            nested,
            "tags[2] AS tag, address.city AS city, address.zip AS zip",
            1,
            json!({"tag": "b", "city": "Oslo", "zip": -1}),
        ),
        (
            deeper,
            "name, data_users_total_count AS total, errors[1].message AS error",
            2,
            json!({"name": "Bo", "total": 3, "error": "timeout"}),
        ),
    ] {
        let silver = row(&app, id).await.silver_table.expect("silver_table");
        let tenant = tenant_of(&app, id).await;
        let sql = format!(
            "SELECT {select} FROM {} WHERE id = {where_id}",
            quoted(&silver)
        );
        assert_eq!(query_rows(&mcp, &tenant, sql).await, json!([expected]));
    }
}

#[tokio::test]
async fn mcp_down_at_first_is_retried_until_synced() {
    let restate = Restate::started().await.unwrap();
    let mut mcp = Mcp::in_process(); // not started yet
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
    let retrying = wait_for(&app, id, SyncStatus::Retrying, Duration::from_secs(30)).await;
    assert!(
        retrying.sync_error.as_deref().unwrap().contains("MCP"),
        "{retrying:?}"
    );
    assert!(
        retrying.sync_next_retry_at.is_some() && retrying.sync_attempt.is_some(),
        "retrying shows when and which attempt"
    );
    assert_eq!(retrying.sync_step, Some(SyncStep::Bronze));

    mcp.start().await.unwrap();
    wait_for(&app, id, SyncStatus::Synced, Duration::from_secs(60)).await;
    let bronze: Vec<(i32, StepOutcome)> = events(&app, id)
        .await
        .into_iter()
        .filter(|(step, ..)| *step == SyncStep::Bronze)
        .map(|(_, attempt, outcome, _)| (attempt, outcome))
        .collect();
    assert!(bronze.len() >= 2, "{bronze:?}");
    assert!(
        bronze[..bronze.len() - 1]
            .iter()
            .all(|(_, o)| *o == StepOutcome::Retrying),
        "{bronze:?}"
    );
    assert_eq!(bronze.last().unwrap().1, StepOutcome::Succeeded);
    let metrics = app.internal_text("/metrics").await;
    assert!(
        !metrics.contains("servicetsunami_sync_step_retries_total 0\n"),
        "{metrics}"
    );
}

#[tokio::test]
async fn mcp_down_for_good_fails_after_the_attempts_and_a_retry_then_syncs() {
    let restate = Restate::started().await.unwrap();
    let mut mcp = Mcp::in_process();
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
    let failed = wait_for(&app, id, SyncStatus::Failed, Duration::from_secs(60)).await;
    assert!(
        failed.sync_error.as_deref().unwrap().contains("MCP"),
        "{failed:?}"
    );
    let timeline = events(&app, id).await;
    let bronze: Vec<_> = timeline
        .iter()
        .filter(|e| e.0 == SyncStep::Bronze)
        .collect();
    assert_eq!(bronze.len(), 2, "{timeline:?}");
    assert_eq!(bronze[0].2, StepOutcome::Retrying);
    assert_eq!(bronze[1].2, StepOutcome::Failed);
    assert!(bronze[1].3.is_some(), "the error is kept");

    // The manual retry (the dataset page's "Retry sync" server function).
    mcp.start().await.unwrap();
    let response = app
        .client
        .post(app.url("/api/retry_sync"))
        .form(&[("id", id.to_string())])
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success() || response.status().is_redirection());
    wait_for(&app, id, SyncStatus::Synced, Duration::from_secs(60)).await;
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
    let mcp = started_mcp().await;
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
    restate.start().await.unwrap();
    let failed = wait_for(&app, id, SyncStatus::Failed, Duration::from_secs(30)).await;
    let error = failed.sync_error.unwrap();
    assert!(error.contains("404"), "{error}");
    let bronze: Vec<_> = events(&app, id)
        .await
        .into_iter()
        .filter(|e| e.0 == SyncStep::Bronze)
        .collect();
    assert_eq!(bronze.len(), 1, "no retry for a missing file: {bronze:?}");
}

#[tokio::test]
async fn restate_down_at_upload_leaves_it_pending_until_restate_starts() {
    let mut restate = Restate::new(); // not started yet
    let mcp = started_mcp().await;
    let app = spawn_synced_app(&restate, &mcp, Sync::default()).await;

    let id = upload(&app, "patient", CSV).await;
    let (attempts, error): (i32, Option<String>) = eventually(
        Duration::from_secs(10),
        "the dispatcher to try Restate",
        || async {
            let found: (i32, Option<String>) = sqlx::query_as(
                "SELECT dispatch_attempts, last_dispatch_error FROM sync_requests WHERE dataset_id = $1",
            )
            .bind(id)
            .fetch_one(&app.db)
            .await
            .unwrap();
            (found.0 >= 1).then_some(found)
        },
    )
    .await;
    assert!(attempts >= 1);
    assert!(error.unwrap().contains("Restate"));
    assert_eq!(row(&app, id).await.sync_status, SyncStatus::Pending);

    restate.start().await.unwrap();
    wait_for(&app, id, SyncStatus::Synced, Duration::from_secs(90)).await;
}

#[tokio::test]
async fn restate_killed_mid_sync_completes_with_each_table_created_once() {
    let mut restate = Restate::started().await.unwrap();
    let mcp = started_mcp().await;
    let app = spawn_synced_app(&restate, &mcp, Sync::default()).await;

    // Big enough that the silver transform takes a moment.
    let csv = big_csv(300_000);
    let id = upload(&app, "big", &csv).await;
    eventually(
        Duration::from_secs(60),
        "the silver step to run",
        || async {
            let r = row(&app, id).await;
            assert_ne!(
                r.sync_status,
                SyncStatus::Synced,
                "never saw the silver step"
            );
            (r.sync_status == SyncStatus::Syncing && r.sync_step == Some(SyncStep::Silver))
                .then_some(())
        },
    )
    .await;
    restate.kill();
    restate.start().await.unwrap();
    let synced = wait_for(&app, id, SyncStatus::Synced, Duration::from_secs(120)).await;

    let timeline = events(&app, id).await;
    let succeeded = |step: SyncStep| {
        timeline
            .iter()
            .filter(|e| e.0 == step && e.2 == StepOutcome::Succeeded)
            .count()
    };
    assert_eq!(succeeded(SyncStep::Bronze), 1, "{timeline:?}");
    assert_eq!(succeeded(SyncStep::Silver), 1, "{timeline:?}");
    // The bronze step is journaled: replay did not call MCP again.
    let metrics = app.internal_text("/metrics").await;
    assert!(
        metrics.contains("servicetsunami_sync_step_duration_seconds_count{step=\"bronze\"} 1\n"),
        "{metrics}"
    );
    let tenant = tenant_of(&app, id).await;
    let tables = mcp
        .call("list_tables", json!({"tenant_id": tenant}))
        .await
        .unwrap();
    let names: Vec<&str> = tables["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["full_name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "one bronze and one silver table: {names:?}");
    assert_eq!(
        count_rows(&mcp, &tenant, &synced.silver_table.unwrap()).await,
        json!(300_000),
        "no duplicated rows"
    );
}

#[tokio::test]
async fn two_sync_requests_for_one_dataset_are_serialised() {
    let restate = Restate::started().await.unwrap();
    let mcp = started_mcp().await;
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

    type Span = (
        Uuid,
        time::OffsetDateTime,
        Option<time::OffsetDateTime>,
        i64,
    );
    let spans: Vec<Span> = eventually(Duration::from_secs(60), "both syncs to finish", || async {
        let spans: Vec<Span> = sqlx::query_as(
            "SELECT request_id, min(started_at), max(finished_at),
                    count(*) FILTER (WHERE step = 'metadata' AND outcome = 'succeeded')
             FROM sync_events WHERE dataset_id = $1 AND step <> 'queued'
             GROUP BY request_id ORDER BY 2",
        )
        .bind(id)
        .fetch_all(&app.db)
        .await
        .unwrap();
        (spans.len() == 2 && spans.iter().all(|s| s.3 == 1)).then_some(spans)
    })
    .await;
    let first_end = spans[0].2.expect("first finished");
    assert!(
        first_end <= spans[1].1,
        "the second sync started only after the first ended: {spans:?}"
    );
    assert_eq!(row(&app, id).await.sync_status, SyncStatus::Synced);
}

#[tokio::test]
async fn an_operator_cancel_through_the_cli_marks_the_dataset_failed() {
    let restate = Restate::started().await.unwrap();
    let mcp = Mcp::in_process(); // down: the sync waits to retry
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
    wait_for(&app, id, SyncStatus::Retrying, Duration::from_secs(30)).await;
    let invocation = invocation_of(&app, id).await;
    let out = restate
        .cli(&["invocations", "cancel", "--yes", &invocation])
        .unwrap();
    assert!(out.contains("Cancelled 1"), "{out}");
    let failed = wait_for(&app, id, SyncStatus::Failed, Duration::from_secs(30)).await;
    assert!(
        failed.sync_error.as_deref().unwrap().contains("stopped"),
        "{failed:?}"
    );
}

/// The MCP server is killed (SIGKILL) while a tool call runs: the step fails
/// at once as retryable (the badge says `retrying` within seconds, not when
/// some hour-long deadline passes), and the sync completes once it is back.
#[tokio::test]
async fn mcp_killed_mid_call_is_retrying_within_seconds_then_synced() {
    let restate = Restate::started().await.unwrap();
    let mut mcp = Mcp::process();
    mcp.start().await.expect("the MCP server starts");
    let app = spawn_synced_app(
        &restate,
        &mcp,
        Sync {
            attempts: 30,
            interval_secs: 1,
        },
    )
    .await;
    let csv = big_csv(400_000);
    let id = upload(&app, "killed", &csv).await;
    eventually(
        Duration::from_secs(60),
        "a tool call to be running",
        || async {
            let r = row(&app, id).await;
            assert_ne!(r.sync_status, SyncStatus::Synced, "never saw a step run");
            (r.sync_status == SyncStatus::Syncing
                && matches!(r.sync_step, Some(SyncStep::Bronze | SyncStep::Silver)))
            .then_some(())
        },
    )
    .await;
    mcp.stop().await.unwrap();
    let retrying = wait_for(&app, id, SyncStatus::Retrying, Duration::from_secs(10)).await;
    assert!(retrying.sync_error.is_some(), "{retrying:?}");
    mcp.start().await.unwrap();
    let synced = wait_for(&app, id, SyncStatus::Synced, Duration::from_secs(120)).await;
    let tenant = tenant_of(&app, id).await;
    assert_eq!(
        count_rows(&mcp, &tenant, &synced.silver_table.unwrap()).await,
        json!(400_000)
    );
}

/// An operator kills a sync's invocation while it waits to retry: the
/// reconciler sees the invocation ended without the sync, marks the dataset
/// `failed` with the reason, and Retry then syncs it.
#[tokio::test]
async fn a_sync_whose_invocation_was_killed_is_failed_with_the_reason_and_can_be_retried() {
    let restate = Restate::started().await.unwrap();
    let mut mcp = Mcp::in_process(); // down: the sync waits in `retrying`
    let app = spawn_synced_app(
        &restate,
        &mcp,
        Sync {
            attempts: 100,
            interval_secs: 1,
        },
    )
    .await;
    let id = upload(&app, "killed", CSV).await;
    wait_for(&app, id, SyncStatus::Retrying, Duration::from_secs(30)).await;
    let invocation = invocation_of(&app, id).await;
    let killed = reqwest::Client::new()
        .patch(format!(
            "{}/invocations/{invocation}/kill",
            restate.admin_url()
        ))
        .send()
        .await
        .unwrap();
    assert!(killed.status().is_success(), "{:?}", killed.text().await);

    let failed = wait_for(&app, id, SyncStatus::Failed, Duration::from_secs(30)).await;
    let error = failed.sync_error.unwrap();
    assert!(
        error.contains(&invocation) && error.contains("killed"),
        "{error}"
    );
    // Its open timeline row is closed too.
    let open: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sync_events WHERE dataset_id = $1 AND finished_at IS NULL",
    )
    .bind(id)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(open, 0);

    mcp.start().await.unwrap();
    let response = app
        .client
        .post(app.url("/api/retry_sync"))
        .header("Accept", "application/json")
        .form(&[("id", id.to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
    wait_for(&app, id, SyncStatus::Synced, Duration::from_secs(60)).await;
}

/// Two replicas behind one Postgres and one storage path, each with its own
/// dispatcher and Restate endpoint: uploads to either sync, each exactly
/// once (one request, one accepted dispatch, one succeeded attempt per
/// step), and the live events of one replica report the syncs of uploads
/// made to the other.
#[tokio::test]
async fn two_replicas_share_the_work_and_every_sync_runs_exactly_once() {
    use crate::events::Events;
    let restate = Restate::started().await.unwrap();
    let mcp = started_mcp().await;
    let a = spawn_synced_app(&restate, &mcp, Sync::default()).await;
    let b = a.replica().await;
    let mut events = Events::open_as(&a, &a.client).await;

    let mut ids = Vec::new();
    for i in 0..6 {
        let url = if i % 2 == 0 {
            a.url("/api/datasets")
        } else {
            b.url("/api/datasets")
        };
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(CSV.as_bytes().to_vec()).file_name(format!("r{i}.csv")),
        );
        let response = a
            .client
            .post(url)
            .header("Accept", "application/json")
            .multipart(form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.unwrap();
        ids.push(Uuid::parse_str(body["dataset"]["id"].as_str().unwrap()).unwrap());
    }
    for id in &ids {
        wait_for(&a, *id, SyncStatus::Synced, Duration::from_secs(60)).await;
    }
    for id in &ids {
        let (requests, dispatched): (i64, i64) = sqlx::query_as(
            "SELECT count(*), count(*) FILTER (WHERE invocation_id IS NOT NULL)
             FROM sync_requests WHERE dataset_id = $1",
        )
        .bind(id)
        .fetch_one(&a.db)
        .await
        .unwrap();
        assert_eq!((requests, dispatched), (1, 1), "{id}");
        let steps: Vec<(SyncStep, i64)> = sqlx::query_as(
            "SELECT step, count(*) FROM sync_events
             WHERE dataset_id = $1 AND outcome = 'succeeded' GROUP BY step ORDER BY step",
        )
        .bind(id)
        .fetch_all(&a.db)
        .await
        .unwrap();
        assert_eq!(
            steps,
            [
                (SyncStep::Queued, 1),
                (SyncStep::Bronze, 1),
                (SyncStep::Silver, 1),
                (SyncStep::Metadata, 1)
            ],
            "{id}"
        );
    }
    // Replica a's stream saw the datasets uploaded to b reach `synced`.
    let mut waiting: std::collections::HashSet<String> =
        ids.iter().skip(1).step_by(2).map(Uuid::to_string).collect();
    while !waiting.is_empty() {
        let (name, data) = events
            .next(Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("no synced event for {waiting:?}"));
        if name == "status" && data["state"]["status"] == "synced" {
            waiting.remove(data["state"]["dataset_id"].as_str().unwrap_or_default());
        }
    }
}

#[tokio::test]
async fn a_restate_cluster_node_killed_mid_sync_loses_no_sync_and_runs_each_once() {
    // Three nodes, logs and partitions on two of them each: one may die.
    let mut cluster = stack::RestateCluster::started(3, 2).await.unwrap();
    let mcp = started_mcp().await;
    let app = spawn_synced_app(&cluster.nodes[0], &mcp, Sync::default()).await;

    // Several datasets, so their keys fall on partitions led by every node.
    let rows = 60_000;
    let csv = big_csv(rows);
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(upload(&app, &format!("part{i}"), &csv).await);
    }
    eventually(Duration::from_secs(60), "a sync to be running", || async {
        let mut running = false;
        for id in &ids {
            running |= row(&app, *id).await.sync_status == SyncStatus::Syncing;
        }
        running.then_some(())
    })
    .await;
    // Not the node the app talks to: the partitions it led fail over.
    cluster.nodes[2].kill();

    let tenant = tenant_of(&app, ids[0]).await;
    for id in &ids {
        let synced = wait_for(&app, *id, SyncStatus::Synced, Duration::from_secs(180)).await;
        let timeline = events(&app, *id).await;
        for step in [SyncStep::Bronze, SyncStep::Silver, SyncStep::Metadata] {
            let succeeded = timeline
                .iter()
                .filter(|e| e.0 == step && e.2 == StepOutcome::Succeeded)
                .count();
            assert_eq!(succeeded, 1, "{step:?} of {id}: {timeline:?}");
        }
        assert_eq!(
            count_rows(&mcp, &tenant, &synced.silver_table.unwrap()).await,
            json!(rows),
            "no row lost or doubled"
        );
    }
    let tables = mcp
        .call("list_tables", json!({"tenant_id": tenant}))
        .await
        .unwrap();
    assert_eq!(
        tables["tables"].as_array().unwrap().len(),
        2 * ids.len(),
        "one bronze and one silver table each: {tables:#}"
    );
    let undispatched: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sync_requests WHERE dispatched_at IS NULL")
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(undispatched, 0);
    // The surviving nodes' CLI shows nothing left running (its query may
    // be refused while the cluster still tries the dead node: asked again).
    let listed = eventually(
        Duration::from_secs(60),
        "the CLI to list invocations",
        || async { cluster.nodes[1].cli(&["invocations", "list"]).ok() },
    )
    .await;
    assert!(!listed.contains("DatasetSync/sync"), "{listed}");
}

//! Deleting a dataset: at once without sync; through the `DatasetSync`
//! object's `delete` handler with sync (lakehouse tables and files, the local
//! file, then the row), while a sync runs, and while the MCP server is down.

use crate::events::Events;
use crate::helpers::{eventually, spawn_app, TestApp};
use crate::sync::{big_csv, spawn_synced_app, started_mcp, tenant_of, upload, wait_for, Sync};
use app::domain::{SyncStatus, SyncStep};
use serde_json::{json, Value};
use stack::{Mcp, Restate};
use std::time::Duration;
use uuid::Uuid;

const CSV: &str = "id,name,amount\n1,Ada,10.5\n2,Grace,NA\n3,Linus,-7\n";

async fn delete(app: &TestApp, client: &reqwest::Client, id: &str) -> (u16, Value) {
    let response = client
        .delete(app.url(&format!("/api/datasets/{id}")))
        .send()
        .await
        .expect("sent");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON body"))
}

async fn status_of(app: &TestApp, id: Uuid) -> Option<(SyncStatus, Option<String>)> {
    sqlx::query_as("SELECT sync_status, sync_error FROM datasets WHERE id = $1")
        .bind(id)
        .fetch_optional(&app.db)
        .await
        .unwrap()
}

async fn gone(app: &TestApp, id: Uuid, within: Duration) {
    eventually(within, "the dataset's row to go", || async {
        status_of(app, id).await.is_none().then_some(())
    })
    .await;
}

/// Whether either lakehouse table of the dataset still exists.
async fn lakehouse_tables(mcp: &Mcp, tenant: &str, id: Uuid) -> (bool, bool) {
    let status = mcp
        .call(
            "dataset_status",
            json!({"tenant_id": tenant, "dataset_id": id.to_string()}),
        )
        .await
        .expect("dataset_status");
    (
        status["bronze"]["exists"].as_bool().unwrap(),
        status["silver"]["exists"].as_bool().unwrap(),
    )
}

/// Files under the MCP server's lakehouse volumes whose path names `id`.
fn lakehouse_files_of(mcp: &Mcp, id: Uuid) -> Vec<std::path::PathBuf> {
    fn walk(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&mcp.lakehouse.path().join("volumes"), &mut files);
    files.retain(|f| f.to_string_lossy().contains(&id.to_string()));
    files
}

#[tokio::test]
async fn without_sync_a_delete_removes_the_row_and_the_file_at_once() {
    let app = spawn_app().await;
    let id = upload(&app, "people", CSV).await;
    let other = upload(&app, "kept", CSV).await;
    assert!(app.parquet_path(id).exists());
    let mut events = Events::open_as(&app, &app.client).await;

    // Another tenant cannot see it, so cannot delete it.
    let b = app.new_tenant("b@example.org").await;
    let (status, body) = delete(&app, &b, &id.to_string()).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    assert!(app.parquet_path(id).exists());

    let (status, body) = delete(&app, &app.client, &id.to_string()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "deleted");
    assert!(status_of(&app, id).await.is_none());
    assert!(!app.parquet_path(id).exists());
    assert!(app.parquet_path(other).exists(), "only that dataset goes");

    // Every open list hears of it.
    loop {
        let (name, data) = events
            .next(Duration::from_secs(10))
            .await
            .expect("a removed event");
        if name == "removed" {
            assert_eq!(data["dataset_id"], id.to_string());
            break;
        }
    }

    // Again: not found. A malformed id: not found, with a message.
    let (status, _) = delete(&app, &app.client, &id.to_string()).await;
    assert_eq!(status, 404);
    let (status, body) = delete(&app, &app.client, "not-a-uuid").await;
    assert_eq!(status, 404);
    assert!(body["message"].as_str().unwrap().contains("UUID"), "{body}");
    let page = app
        .client
        .get(app.url(&format!("/datasets/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 404);
}

#[tokio::test]
async fn a_delete_without_the_apps_origin_is_refused() {
    let app = spawn_app().await;
    let id = upload(&app, "people", CSV).await;
    // The signed-in browser's cookie, but a foreign page's Origin.
    let response = app
        .client
        .delete(app.url(&format!("/api/datasets/{id}")))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert!(status_of(&app, id).await.is_some());
}

#[tokio::test]
async fn a_synced_dataset_is_hidden_at_once_then_removed_everywhere() {
    let restate = Restate::started().await.unwrap();
    let mcp = started_mcp().await;
    let app = spawn_synced_app(&restate, &mcp, Sync::default()).await;
    let id = upload(&app, "people", CSV).await;
    wait_for(&app, id, SyncStatus::Synced, Duration::from_secs(60)).await;
    let tenant = tenant_of(&app, id).await;
    assert_eq!(lakehouse_tables(&mcp, &tenant, id).await, (true, true));
    assert!(!lakehouse_files_of(&mcp, id).is_empty());
    let mut events = Events::open_as(&app, &app.client).await;

    let (status, body) = delete(&app, &app.client, &id.to_string()).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "deleting");
    // Hidden at once: the page and its data answer 410 while the clean-up runs
    // (or 404 once it is done).
    let page = app
        .client
        .get(app.url(&format!("/datasets/{id}")))
        .send()
        .await
        .unwrap();
    assert!(
        matches!(page.status().as_u16(), 404 | 410),
        "{}",
        page.status()
    );
    // A retry is refused while it goes.
    if status_of(&app, id).await.is_some() {
        let retry = app
            .client
            .post(app.url("/api/retry_sync"))
            .header("Accept", "application/json")
            .form(&[("id", id.to_string())])
            .send()
            .await
            .unwrap();
        assert!(
            matches!(retry.status().as_u16(), 404 | 410),
            "{}",
            retry.status()
        );
    }

    gone(&app, id, Duration::from_secs(60)).await;
    assert_eq!(lakehouse_tables(&mcp, &tenant, id).await, (false, false));
    assert_eq!(
        lakehouse_files_of(&mcp, id),
        Vec::<std::path::PathBuf>::new()
    );
    assert!(!app.parquet_path(id).exists());
    let mut saw_deleting = false;
    loop {
        let (name, data) = events
            .next(Duration::from_secs(10))
            .await
            .expect("a removed event");
        if name == "status" && data["state"]["dataset_id"] == id.to_string() {
            saw_deleting |= data["state"]["status"] == "deleting";
        }
        if name == "removed" && data["dataset_id"] == id.to_string() {
            break;
        }
    }
    assert!(saw_deleting, "the badge showed deleting first");
    // Nothing of it is left in the outbox or the timeline.
    let left: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM sync_requests WHERE dataset_id = $1)
              + (SELECT count(*) FROM sync_events WHERE dataset_id = $1)",
    )
    .bind(id)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(left, 0);
}

#[tokio::test]
async fn deleting_while_a_sync_runs_waits_for_it_and_leaves_no_table() {
    let restate = Restate::started().await.unwrap();
    let mcp = started_mcp().await;
    let app = spawn_synced_app(&restate, &mcp, Sync::default()).await;
    let id = upload(&app, "big", &big_csv(300_000)).await;
    eventually(Duration::from_secs(60), "a sync step to run", || async {
        let step: Option<(SyncStatus, Option<SyncStep>)> =
            sqlx::query_as("SELECT sync_status, sync_step FROM datasets WHERE id = $1")
                .bind(id)
                .fetch_optional(&app.db)
                .await
                .unwrap();
        matches!(
            step,
            Some((
                SyncStatus::Syncing,
                Some(SyncStep::Bronze | SyncStep::Silver)
            ))
        )
        .then_some(())
    })
    .await;
    let tenant = tenant_of(&app, id).await;
    let (status, _) = delete(&app, &app.client, &id.to_string()).await;
    assert_eq!(status, 202);
    // The running sync's own writes never set it back from `deleting`.
    let (now, _) = status_of(&app, id).await.expect("still there");
    assert_eq!(now, SyncStatus::Deleting);
    gone(&app, id, Duration::from_secs(120)).await;
    assert_eq!(lakehouse_tables(&mcp, &tenant, id).await, (false, false));
    assert!(lakehouse_files_of(&mcp, id).is_empty());
    assert!(!app.parquet_path(id).exists());
}

#[tokio::test]
async fn the_mcp_server_down_during_a_delete_is_retried_until_done() {
    let restate = Restate::started().await.unwrap();
    let mut mcp = Mcp::process();
    mcp.start().await.expect("the MCP server starts");
    let app = spawn_synced_app(&restate, &mcp, Sync::default()).await;
    let id = upload(&app, "people", CSV).await;
    wait_for(&app, id, SyncStatus::Synced, Duration::from_secs(60)).await;
    let tenant = tenant_of(&app, id).await;

    mcp.stop().await.unwrap();
    let (status, _) = delete(&app, &app.client, &id.to_string()).await;
    assert_eq!(status, 202);
    // The clean-up fails, says why, and stays hidden; the local file is kept
    // until the lakehouse is clean, so nothing is half done.
    let error = eventually(
        Duration::from_secs(30),
        "a failed clean-up attempt",
        || async {
            match status_of(&app, id).await {
                Some((SyncStatus::Deleting, Some(error))) => Some(error),
                _ => None,
            }
        },
    )
    .await;
    assert!(error.contains("MCP"), "{error}");
    assert!(app.parquet_path(id).exists());

    mcp.start().await.unwrap();
    gone(&app, id, Duration::from_secs(60)).await;
    assert_eq!(lakehouse_tables(&mcp, &tenant, id).await, (false, false));
    assert!(lakehouse_files_of(&mcp, id).is_empty());
    assert!(!app.parquet_path(id).exists());
}

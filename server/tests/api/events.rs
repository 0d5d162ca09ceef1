//! `GET /api/events`: the snapshot, live status events, tenant filtering, and
//! catching up after the server's Postgres listener loses its connection.

use crate::helpers::{spawn_app, TestApp};
use futures::StreamExt;
use serde_json::Value;
use std::time::Duration;
use uuid::Uuid;

/// Reads SSE frames as (event name, JSON data).
pub struct Events {
    body: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buffer: String,
}

impl Events {
    async fn open(app: &TestApp) -> Self {
        Self::open_as(app, &app.client).await
    }

    /// The stream as `client` (another tenant's browser, say) sees it.
    pub async fn open_as(app: &TestApp, client: &reqwest::Client) -> Self {
        let response = client
            .get(app.url("/api/events"))
            .header("Accept", "text/event-stream")
            .send()
            .await
            .expect("connected");
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Self {
            body: Box::pin(response.bytes_stream()),
            buffer: String::new(),
        }
    }

    /// The next event (keep-alive comments skipped), or `None` after `within`.
    pub async fn next(&mut self, within: Duration) -> Option<(String, Value)> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                let mut name = String::new();
                let mut data = String::new();
                for line in frame.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim().to_owned();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim_start());
                    }
                }
                if data.is_empty() {
                    continue; // a keep-alive comment
                }
                return Some((name, serde_json::from_str(&data).expect("JSON data")));
            }
            let chunk = tokio::time::timeout_at(deadline, self.body.next())
                .await
                .ok()??;
            self.buffer
                .push_str(&String::from_utf8_lossy(&chunk.expect("stream chunk")));
        }
    }

    /// Skips events until one about `id` with `status` arrives.
    pub async fn until_status(&mut self, id: Uuid, status: &str) -> Value {
        loop {
            let (name, data) = self
                .next(Duration::from_secs(10))
                .await
                .unwrap_or_else(|| panic!("no {status} event for {id}"));
            if name == "status"
                && data["state"]["dataset_id"] == id.to_string()
                && data["state"]["status"] == status
            {
                return data;
            }
        }
    }
}

pub async fn set_status(app: &TestApp, id: Uuid, status: &str, error: Option<&str>) {
    sqlx::query("UPDATE datasets SET sync_status = $2::sync_status, sync_error = $3 WHERE id = $1")
        .bind(id)
        .bind(status)
        .bind(error)
        .execute(&app.db)
        .await
        .expect("status update");
}

async fn uploaded(app: &TestApp) -> Uuid {
    app.upload("e.csv", "a,b\n1,2\n", None)
        .await
        .expect_ok()
        .dataset
        .id
}

#[tokio::test]
async fn a_stream_starts_with_a_snapshot_then_follows_changes() {
    let app = spawn_app().await;
    let id = uploaded(&app).await;
    let mut events = Events::open(&app).await;

    let (name, snapshot) = events.next(Duration::from_secs(5)).await.expect("snapshot");
    assert_eq!(name, "snapshot");
    assert_eq!(snapshot["type"], "snapshot");
    let states = snapshot["states"].as_array().unwrap();
    assert_eq!(states.len(), 1);
    assert_eq!(states[0]["dataset_id"], id.to_string());
    assert_eq!(states[0]["status"], "local_only");

    set_status(&app, id, "failed", Some("boom")).await;
    let event = events.until_status(id, "failed").await;
    assert_eq!(event["state"]["error"], "boom");
    assert!(event["seq"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn another_tenants_changes_are_not_sent() {
    let app = spawn_app().await;
    let mine = uploaded(&app).await;
    // A dataset of a second tenant in the same database.
    let other_tenant = Uuid::new_v4();
    let theirs = Uuid::new_v4();
    sqlx::query("INSERT INTO tenants (id, slug, name) VALUES ($1, 'other', 'Other')")
        .bind(other_tenant)
        .execute(&app.db)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO datasets (id, tenant_id, name, file_name, source_format, schema, row_count,
           size_bytes, sync_status) VALUES ($1, $2, 'theirs', 't.csv', 'csv', '[]', 0, 0, 'local_only')",
    )
    .bind(theirs)
    .bind(other_tenant)
    .execute(&app.db)
    .await
    .unwrap();

    let mut events = Events::open(&app).await;
    let (_, snapshot) = events.next(Duration::from_secs(5)).await.unwrap();
    assert_eq!(
        snapshot["states"].as_array().unwrap().len(),
        1,
        "{snapshot}"
    );
    set_status(&app, theirs, "failed", Some("not yours")).await;
    set_status(&app, mine, "failed", Some("yours")).await;
    let (_, event) = events
        .next(Duration::from_secs(10))
        .await
        .expect("an event");
    assert_eq!(event["state"]["dataset_id"], mine.to_string(), "{event}");
}

#[tokio::test]
async fn changes_made_while_the_listener_was_disconnected_are_still_sent() {
    let app = spawn_app().await;
    let id = uploaded(&app).await;
    let mut events = Events::open(&app).await;
    events.next(Duration::from_secs(5)).await.expect("snapshot");

    // Cut the server's LISTEN connection, and change the status right away,
    // before it has reconnected and listens again.
    let cut: i64 = sqlx::query_scalar(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
         WHERE datname = current_database() AND query ILIKE 'LISTEN%'",
    )
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert!(cut >= 1, "found the listener's connection");
    set_status(&app, id, "failed", Some("during the gap")).await;

    let event = events.until_status(id, "failed").await;
    assert_eq!(event["state"]["error"], "during the gap");
}

/// A tenant with 1,200 datasets gets its snapshot in pages of 500 (each
/// read when the one before was taken), every dataset exactly once, then
/// live changes as usual.
#[tokio::test]
async fn a_large_snapshot_comes_in_keyset_pages() {
    let app = spawn_app().await;
    let tenant = app.tenant_of_user(crate::helpers::ADMIN_EMAIL).await;
    sqlx::query(
        "INSERT INTO datasets (id, tenant_id, name, file_name, source_format, schema, row_count, size_bytes, sync_status, created_at)
         SELECT gen_random_uuid(), $1, 'd' || i, 'd.csv', 'csv', '[]', 0, 0, 'local_only',
                timestamptz '2026-01-01' + make_interval(secs => i / 3)
         FROM generate_series(1, 1200) i",
    )
    .bind(tenant)
    .execute(&app.db)
    .await
    .unwrap();
    let mut events = Events::open(&app).await;
    let mut sizes = Vec::new();
    let mut ids = std::collections::HashSet::new();
    for _ in 0..3 {
        let (name, snapshot) = events
            .next(Duration::from_secs(5))
            .await
            .expect("a snapshot page");
        assert_eq!(name, "snapshot");
        let states = snapshot["states"].as_array().unwrap();
        sizes.push(states.len());
        ids.extend(
            states
                .iter()
                .map(|s| s["dataset_id"].as_str().unwrap().to_owned()),
        );
    }
    assert_eq!(sizes, vec![500, 500, 200]);
    assert_eq!(ids.len(), 1200, "each dataset once");
    let one: Uuid = ids.iter().next().unwrap().parse().unwrap();
    set_status(&app, one, "failed", Some("changed")).await;
    let (name, _) = events
        .next(Duration::from_secs(5))
        .await
        .expect("the change");
    assert_eq!(name, "status");
}

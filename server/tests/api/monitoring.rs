//! The sync monitoring page's figures (`POST /api/sync_monitor`), drawn from
//! real syncs: one that fails for good while the MCP server is down, then
//! two that succeed, through real restate-server and the real MCP server.

use crate::sync::{spawn_synced_app, upload, wait_for, Sync};
use app::domain::SyncStatus;
use serde_json::Value;
use stack::{Mcp, Restate};
use std::time::Duration;

async fn monitor(
    app: &crate::helpers::TestApp,
    client: &reqwest::Client,
    window: &str,
) -> (u16, Value) {
    let response = client
        .post(app.url("/api/sync_monitor"))
        .header("Accept", "application/json")
        .form(&[("window", window)])
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn the_figures_count_outcomes_causes_steps_and_the_slowest_syncs() {
    let restate = Restate::started().await.unwrap();
    let mut mcp = Mcp::in_process(); // down at first
    let app = spawn_synced_app(
        &restate,
        &mcp,
        Sync {
            attempts: 2,
            interval_secs: 1,
        },
    )
    .await;
    let csv = "id,amount\n1,-2.5\n2,NA\n";
    let lost = upload(&app, "lost", csv).await;
    wait_for(&app, lost, SyncStatus::Failed, Duration::from_secs(60)).await;
    mcp.start().await.unwrap();
    for name in ["first", "second"] {
        let id = upload(&app, name, csv).await;
        wait_for(&app, id, SyncStatus::Synced, Duration::from_secs(60)).await;
    }

    let (status, m) = monitor(&app, &app.client, "1h").await;
    assert_eq!(status, 200, "{m}");
    assert_eq!(m["window"], "1h");
    assert_eq!(
        (m["succeeded"].as_i64(), m["failed"].as_i64()),
        (Some(2), Some(1)),
        "{m}"
    );
    // Every bucket of the hour (5 minutes each), empty ones too.
    let buckets = m["buckets"].as_array().unwrap();
    assert!((12..=13).contains(&buckets.len()), "{}", buckets.len());
    let sum = |k: &str| buckets.iter().map(|b| b[k].as_i64().unwrap()).sum::<i64>();
    assert_eq!((sum("succeeded"), sum("failed")), (2, 1));
    assert_eq!(sum("retries"), 1, "one retried attempt before the failure");
    // The cause, without its log reference, counted per step.
    let cause = &m["causes"][0];
    assert_eq!(cause["step"], "bronze");
    assert_eq!(cause["count"], 2, "{m}");
    let text = cause["cause"].as_str().unwrap();
    assert!(
        text.contains("cannot be reached") && !text.contains("reference"),
        "{text}"
    );
    // p50/p95 of each step that succeeded.
    let steps: Vec<&str> = m["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["queued", "bronze", "silver", "metadata"]);
    for s in m["steps"].as_array().unwrap() {
        assert!(
            s["p95_ms"].as_f64().unwrap() >= s["p50_ms"].as_f64().unwrap(),
            "{s}"
        );
    }
    // The slowest syncs, with their Restate invocations.
    let slowest = m["slowest"].as_array().unwrap();
    assert_eq!(slowest.len(), 2);
    assert!(slowest[0]["duration_ms"].as_i64() >= slowest[1]["duration_ms"].as_i64());
    assert!(
        slowest[0]["invocation_id"]
            .as_str()
            .unwrap()
            .starts_with("inv_"),
        "{m}"
    );
    assert_eq!(m["outbox_depth"], 0);
    assert_eq!(m["in_flight"], 0);

    // The page draws it.
    let page = app.get_text("/monitoring?window=1h").await;
    assert!(page.contains("id=\"success-rate\">66.7 %<"), "{page}");
    assert!(page.contains("class=\"ok\""), "{page}");

    // Another tenant sees none of it, and a window that does not exist is a 400.
    let other = app.new_tenant("b@example.org").await;
    let (status, m) = monitor(&app, &other, "24h").await;
    assert_eq!(status, 200);
    assert_eq!(
        (m["succeeded"].as_i64(), m["failed"].as_i64()),
        (Some(0), Some(0))
    );
    assert_eq!(m["slowest"], serde_json::json!([]));
    let (status, body) = monitor(&app, &app.client, "1y").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("1h, 24h or 7d"), "{body}");
}

//! Orchestration benchmark for the durable sync: a real restate-server, the
//! real MCP server (local lakehouse), real Postgres and the server's endpoint
//! and dispatcher, all started here on free ports.
//!
//! 1. **Latency:** N uploads of a 1 KB CSV, one after another, each timed from
//!    the start of the upload to the `synced` notification (LISTEN on
//!    `dataset_status`). Reference, same run, same datasets: the upload's own
//!    time plus the two MCP tool calls made directly (no outbox, no Restate,
//!    no status writes), under a separate tenant so the tables are new.
//! 2. **Throughput:** M datasets stored with auto-sync off, then one bulk sync
//!    (`sync_all`); time until every one is `synced`. Reference: the same
//!    tool calls made directly, 16 at a time.
//!
//! ```sh
//! source .ci/lib.sh && cargo build "${CARGO_PACKAGES[@]}" --lib --tests --examples && \
//!   "$CARGO_TARGET_DIR/debug/examples/sync_bench" [--syncs 200] [--queued 500]
//! ```

#[expect(dead_code, reason = "the benchmark uses only part of the test helpers")]
#[path = "../tests/api/helpers.rs"]
mod helpers;

use anyhow::Context;
use contract::tools::{CreateDataset, CreateDatasetArgs, TransformArgs, TransformToSilver};
use futures::{stream, StreamExt};
use helpers::{spawn_app_with, Options, TestApp};
use secrecy::SecretString;
use serde_json::{json, Value};
use servicetsunami_server::auth::signed_url::UrlSigner;
use sqlx::postgres::PgListener;
use stack::{Mcp, Restate};
use std::{
    collections::HashSet,
    time::{Duration, Instant},
};
use uuid::Uuid;

/// The reference's tenant: a schema of its own, so its tables are new.
const REFERENCE_TENANT: &str = "5e1ec7ed-0000-4000-8000-00000000be4c";

fn csv_1kb(i: usize) -> String {
    let mut csv = String::from("id,name,amount,day\n");
    let mut row = 0;
    while csv.len() < 1000 {
        csv.push_str(&format!(
            "{row},name-{i}-{row},{}.25,2024-03-{:02}\n",
            row * 7,
            row % 28 + 1
        ));
        row += 1;
    }
    csv
}

async fn app(restate: &Restate, mcp: &Mcp, auto_sync: bool) -> TestApp {
    spawn_app_with(Options {
        env: vec![
            (
                "INTERNAL_ADDR",
                format!("127.0.0.1:{}", mcp.app_internal_port),
            ),
            ("RESTATE_IDENTITY_KEY", restate.identity_key.clone()),
            ("DATABRICKS_SYNC_ENABLED", "true".to_owned()),
            ("DATABRICKS_AUTO_SYNC", auto_sync.to_string()),
            ("MCP_SERVER_URL", mcp.url()),
            ("MCP_API_KEY", mcp.key().to_owned()),
            ("RESTATE_INGRESS_URL", restate.ingress_url()),
            ("RESTATE_ADMIN_URL", restate.admin_url()),
            ("RUST_LOG", "warn".to_owned()),
        ],
        ..Options::default()
    })
    .await
}

/// Waits for `synced` notifications of every id in `pending`; returns the
/// instant each arrived.
async fn wait_synced(
    listener: &mut PgListener,
    pending: &mut HashSet<Uuid>,
    app: &TestApp,
) -> anyhow::Result<Vec<(Uuid, Instant)>> {
    let mut done = Vec::new();
    while !pending.is_empty() {
        let n = tokio::time::timeout(Duration::from_secs(120), listener.recv())
            .await
            .context("no notification within 120 s")??;
        let at = Instant::now();
        let v: Value = serde_json::from_str(n.payload())?;
        if v["status"] == "synced" {
            let id: Uuid = v["dataset_id"].as_str().unwrap_or_default().parse()?;
            if pending.remove(&id) {
                done.push((id, at));
            }
        } else if v["status"] == "failed" {
            let id = v["dataset_id"].as_str().unwrap_or_default();
            let err: Option<String> =
                sqlx::query_scalar("SELECT sync_error FROM datasets WHERE id = $1::uuid")
                    .bind(id)
                    .fetch_one(&app.db)
                    .await?;
            anyhow::bail!("sync of {id} failed: {err:?}");
        }
    }
    Ok(done)
}

/// The lakehouse work of one sync, called directly: the time of each of the
/// two tool calls (bronze, silver).
async fn direct_sync(mcp: &Mcp, app: &TestApp, id: Uuid) -> (Duration, Duration) {
    let started = Instant::now();
    let client = mcp.client();
    let bronze = client
        .call::<CreateDataset>(&CreateDatasetArgs {
            tenant_id: REFERENCE_TENANT.to_owned(),
            dataset_id: id.to_string(),
            dataset_name: format!("ref {id}"),
            // Signed as the sync signs it (with the key the app shares with
            // the MCP server), on the internal listener the MCP server trusts.
            parquet_url: UrlSigner::new(&SecretString::from(mcp.key().to_owned())).sign(
                &app.internal_url(""),
                REFERENCE_TENANT.parse().expect("a UUID"),
                id,
                1,
            ),
            schema: json!([]),
            version: Some(1),
        })
        .await
        .expect("create_dataset");
    let bronze_time = started.elapsed();
    let started = Instant::now();
    client
        .call::<TransformToSilver>(&TransformArgs {
            tenant_id: REFERENCE_TENANT.to_owned(),
            bronze_table: bronze.bronze_table,
            version: None,
            base_version: None,
        })
        .await
        .expect("transform_to_silver");
    (bronze_time, started.elapsed())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut syncs = 200usize;
    let mut queued = 500usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--syncs" => syncs = args.next().context("--syncs N")?.parse()?,
            "--queued" => queued = args.next().context("--queued N")?.parse()?,
            "--bench" => {}
            other => anyhow::bail!("unknown argument {other}"),
        }
    }

    let restate = Restate::started().await?;
    // A process of its own, as in production.
    let mut mcp = Mcp::process();
    mcp.start().await?;

    // --- Latency -------------------------------------------------------------
    let a = app(&restate, &mcp, true).await;
    let mut listener = PgListener::connect_with(&a.db).await?;
    listener.listen("dataset_status").await?;
    let mut sync_times = Vec::new();
    let mut upload_times = Vec::new();
    let mut ids = Vec::new();
    let warmup = 5;
    for i in 0..syncs + warmup {
        let started = Instant::now();
        let id = a
            .upload(&format!("bench-{i}.csv"), csv_1kb(i), None)
            .await
            .expect_ok()
            .dataset
            .id;
        let uploaded = started.elapsed();
        let mut pending = HashSet::from([id]);
        let done = wait_synced(&mut listener, &mut pending, &a).await?;
        if i >= warmup {
            sync_times.push(done[0].1 - started);
            upload_times.push(uploaded);
            ids.push(id);
        }
    }
    let mut reference = Vec::new();
    let (mut bronze_times, mut silver_times) = (Vec::new(), Vec::new());
    for (id, uploaded) in ids.iter().zip(&upload_times) {
        let (bronze, silver) = direct_sync(&mcp, &a, *id).await;
        reference.push(*uploaded + bronze + silver);
        bronze_times.push(bronze);
        silver_times.push(silver);
    }
    for times in [
        &mut sync_times,
        &mut reference,
        &mut upload_times,
        &mut bronze_times,
        &mut silver_times,
    ] {
        times.sort();
    }
    a.stop.cancel();
    drop(listener);

    // --- Throughput ------------------------------------------------------------
    let b = app(&restate, &mcp, false).await;
    let mut listener = PgListener::connect_with(&b.db).await?;
    listener.listen("dataset_status").await?;
    let mut pending = HashSet::new();
    for i in 0..queued {
        let id = b
            .upload(&format!("queued-{i}.csv"), csv_1kb(i), None)
            .await
            .expect_ok()
            .dataset
            .id;
        pending.insert(id);
    }
    let queued_ids: Vec<Uuid> = pending.iter().copied().collect();
    let started = Instant::now();
    let response = b
        .client
        .post(b.url("/api/sync_all"))
        .header("Accept", "application/json")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("")
        .send()
        .await?;
    anyhow::ensure!(
        response.status().is_success(),
        "sync_all: {}",
        response.status()
    );
    wait_synced(&mut listener, &mut pending, &b).await?;
    let bulk = started.elapsed();
    let started = Instant::now();
    stream::iter(&queued_ids)
        .for_each_concurrent(16, |id| {
            let (mcp, b) = (&mcp, &b);
            async move {
                direct_sync(mcp, b, *id).await;
            }
        })
        .await;
    let direct_bulk = started.elapsed();

    let rate = |n: usize, d: Duration| n as f64 / d.as_secs_f64();
    println!();
    println!("Sync orchestration, {syncs} sequential syncs of a 1 KB CSV (local lakehouse)");
    println!("| measurement | p50 | p99 | ratio p50 / p99 |");
    println!("|---|---|---|---|");
    println!(
        "| reference: upload + direct MCP create_dataset + transform_to_silver | {} | {} | 1.00 / 1.00 |",
        ms(percentile(&reference, 50.0)),
        ms(percentile(&reference, 99.0))
    );
    println!(
        "| upload → synced through outbox, Restate, journaled steps, status writes | {} | {} | {:.2} / {:.2} |",
        ms(percentile(&sync_times, 50.0)),
        ms(percentile(&sync_times, 99.0)),
        percentile(&sync_times, 50.0).as_secs_f64() / percentile(&reference, 50.0).as_secs_f64(),
        percentile(&sync_times, 99.0).as_secs_f64() / percentile(&reference, 99.0).as_secs_f64(),
    );
    println!(
        "| orchestration overhead (sync − reference) | {} | {} | targets: p50 ≤ 25 ms, p99 ≤ 60 ms |",
        ms(percentile(&sync_times, 50.0).saturating_sub(percentile(&reference, 50.0))),
        ms(percentile(&sync_times, 99.0).saturating_sub(percentile(&reference, 99.0))),
    );
    println!();
    println!("Parts of the reference (each sorted on its own)");
    println!("| part | p50 | p99 |");
    println!("|---|---|---|");
    for (part, times) in [
        (
            "upload (HTTP, DuckDB conversion, catalogue insert)",
            &upload_times,
        ),
        (
            "MCP create_dataset (download, stage, bronze)",
            &bronze_times,
        ),
        ("MCP transform_to_silver", &silver_times),
    ] {
        println!(
            "| {part} | {} | {} |",
            ms(percentile(times, 50.0)),
            ms(percentile(times, 99.0))
        );
    }
    println!();
    println!("Throughput, {queued} syncs queued at once (one bulk sync)");
    println!("| measurement | wall | syncs/s | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| reference: direct MCP calls, 16 at a time | {:.2} s | {:.1} | 1.00 |",
        direct_bulk.as_secs_f64(),
        rate(queued, direct_bulk)
    );
    println!(
        "| bulk sync through outbox and Restate | {:.2} s | {:.1} | {:.2} |",
        bulk.as_secs_f64(),
        rate(queued, bulk),
        bulk.as_secs_f64() / direct_bulk.as_secs_f64()
    );
    Ok(())
}

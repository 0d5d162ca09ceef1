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
//!    tool calls made directly at the concurrency the bulk sync reached
//!    (the most syncs whose lakehouse steps overlapped), and 16 at a time.
//! 3. **Where the time goes:** the gaps between the timestamps the sync's own
//!    rows record, and Restate's own floor on this machine: a virtual object
//!    whose handler does three empty journaled steps, called through the
//!    same restate-server's ingress (the engine's cost with nothing of ours).
//!
//! ```sh
//! source .ci/lib.sh && cargo build "${CARGO_PACKAGES[@]}" --lib --tests --examples && \
//!   "$CARGO_TARGET_DIR/debug/examples/sync_bench" [--syncs 200] [--queued 500] [--json FILE]
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
/// The second bulk reference's (16 at a time): new tables again.
const REFERENCE_TENANT_16: &str = "5e1ec7ed-0000-4000-8000-0000000016be";

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

/// Restate's own floor: three empty journaled steps in a virtual object's
/// handler, which is the shape of a sync (one object per dataset, a
/// journaled action per step) with none of its work.
mod floor {
    use restate_sdk::prelude::*;

    pub struct Floor;

    #[restate_sdk::object]
    impl Floor {
        #[handler]
        async fn run(&self, ctx: ObjectContext<'_>) -> Result<(), HandlerError> {
            for _ in 0..3 {
                ctx.run(|| async { Ok(()) }).await?;
            }
            Ok(())
        }
    }
}

/// Serves [`floor::Floor`] on a free port, registers it, and calls it `n` times
/// one after another (each on a key of its own) after a few unmeasured
/// calls; the sorted latencies of the calls.
async fn restate_floor(restate: &Restate, n: usize) -> anyhow::Result<Vec<Duration>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let endpoint = restate_sdk::prelude::Endpoint::builder()
        .bind(floor::Floor)
        .build();
    let stop = tokio_util::sync::CancellationToken::new();
    // Served as the app serves its own endpoint (TCP_NODELAY on), so the
    // floor is the engine's, not Nagle's.
    let server = tokio::spawn(servicetsunami_server::sync::serve_endpoint(
        listener,
        endpoint,
        stop.clone(),
    ));
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    servicetsunami_server::sync::registration::register(&http, &restate.admin_url(), &url)
        .await
        .map_err(|e| anyhow::anyhow!("registering the floor service: {e}"))?;
    let mut times = Vec::with_capacity(n);
    for i in 0..n + 5 {
        let started = Instant::now();
        let response = http
            .post(format!(
                "{}/Floor/{}/run",
                restate.ingress_url(),
                Uuid::new_v4()
            ))
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success(),
            "the floor service answered {}",
            response.status()
        );
        if i >= 5 {
            times.push(started.elapsed());
        }
    }
    stop.cancel();
    let _ = server.await;
    times.sort();
    Ok(times)
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
async fn direct_sync(mcp: &Mcp, app: &TestApp, id: Uuid, tenant: &str) -> (Duration, Duration) {
    let started = Instant::now();
    let client = mcp.client();
    let bronze = client
        .call::<CreateDataset>(&CreateDatasetArgs {
            tenant_id: tenant.to_owned(),
            dataset_id: id.to_string(),
            dataset_name: format!("ref {id}"),
            // Signed as the sync signs it (with the key the app shares with
            // the MCP server), on the internal listener the MCP server trusts.
            parquet_url: UrlSigner::new(&SecretString::from(mcp.key().to_owned())).sign(
                &app.internal_url(""),
                tenant.parse().expect("a UUID"),
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
            tenant_id: tenant.to_owned(),
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

/// Where a sync's time goes: the gaps between the timestamps its own rows
/// record (each a transaction's start), p50 and p99 in ms over `ids`.
const BREAKDOWN: &str = "
WITH t AS (
  SELECT r.created_at AS requested,
         (SELECT min(e.started_at) FROM sync_events e
           WHERE e.request_id = r.id AND e.step = 'bronze') AS bronze_start,
         (SELECT max(e.finished_at) FROM sync_events e
           WHERE e.request_id = r.id AND e.step = 'bronze') AS bronze_end,
         (SELECT min(e.started_at) FROM sync_events e
           WHERE e.request_id = r.id AND e.step = 'silver') AS silver_start,
         (SELECT max(e.finished_at) FROM sync_events e
           WHERE e.request_id = r.id AND e.step = 'silver') AS silver_end,
         (SELECT min(e.started_at) FROM sync_events e
           WHERE e.request_id = r.id AND e.step = 'metadata') AS metadata_start,
         d.last_sync_at AS synced
  FROM sync_requests r JOIN datasets d ON d.id = r.dataset_id
  WHERE r.dataset_id = ANY($1)
)
SELECT g.ord, g.gap,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM g.span) * 1000),
       percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM g.span) * 1000)
FROM t, LATERAL (VALUES
  (1, 'upload commit → bronze step starts (NOTIFY, claim, ingress, invocation, load run)',
      bronze_start - requested),
  (2, 'bronze step (MCP create_dataset, ledger writes)', bronze_end - bronze_start),
  (3, 'bronze ends → silver starts (run ack, state write, ledger)', silver_start - bronze_end),
  (4, 'silver step (MCP transform_to_silver, ledger writes)', silver_end - silver_start),
  (5, 'silver ends → metadata starts (run ack, state write, ledger)', metadata_start - silver_end),
  (6, 'metadata step → synced committed', synced - metadata_start)
) AS g(ord, gap, span)
GROUP BY g.ord, g.gap ORDER BY g.ord";

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut syncs = 200usize;
    let mut queued = 500usize;
    let mut json: Option<std::path::PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--syncs" => syncs = args.next().context("--syncs N")?.parse()?,
            "--queued" => queued = args.next().context("--queued N")?.parse()?,
            "--json" => json = Some(args.next().context("--json FILE")?.into()),
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
        let (bronze, silver) = direct_sync(&mcp, &a, *id, REFERENCE_TENANT).await;
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
    let breakdown: Vec<(i32, String, f64, f64)> = sqlx::query_as(BREAKDOWN)
        .bind(&ids)
        .fetch_all(&a.db)
        .await?;
    a.stop.cancel();
    drop(listener);

    let floor = restate_floor(&restate, syncs).await?;

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
    // How many syncs of the bulk ran at once at most (their lakehouse steps
    // overlapping): the references run at that concurrency, and at 16.
    let peak: i32 = sqlx::query_scalar(
        "WITH s AS (
           SELECT r.id, min(e.started_at) AS a, max(e.finished_at) AS b
           FROM sync_requests r
           JOIN sync_events e ON e.request_id = r.id AND e.step IN ('bronze', 'silver')
           WHERE r.dataset_id = ANY($1) AND r.reason = 'bulk'
           GROUP BY r.id)
         SELECT COALESCE(max(n), 1)::int FROM (
           SELECT (SELECT count(*) FROM s s2 WHERE s2.a <= s1.a AND s2.b > s1.a) AS n FROM s s1) x",
    )
    .bind(&queued_ids)
    .fetch_one(&b.db)
    .await?;
    let peak = usize::try_from(peak).unwrap_or(1).max(1);
    // The bulk's course, from its requests' commit: when Restate had them
    // all, when the first and last lakehouse steps began, the last synced.
    let course: (f64, f64, f64, f64) = sqlx::query_as(
        "WITH r AS (SELECT * FROM sync_requests WHERE dataset_id = ANY($1) AND reason = 'bulk'),
              t0 AS (SELECT min(created_at) AS t FROM r)
         SELECT (extract(epoch FROM (SELECT max(dispatched_at) FROM r) - t0.t) * 1000)::float8,
                (extract(epoch FROM (SELECT min(e.started_at) FROM sync_events e JOIN r ON e.request_id = r.id
                   WHERE e.step = 'bronze') - t0.t) * 1000)::float8,
                (extract(epoch FROM (SELECT max(e.started_at) FROM sync_events e JOIN r ON e.request_id = r.id
                   WHERE e.step = 'bronze') - t0.t) * 1000)::float8,
                (extract(epoch FROM (SELECT max(last_sync_at) FROM datasets WHERE id = ANY($1)) - t0.t) * 1000)::float8
         FROM t0",
    )
    .bind(&queued_ids)
    .fetch_one(&b.db)
    .await?;
    let direct_at = |concurrency: usize, tenant: &'static str| {
        let (mcp, b, ids) = (&mcp, &b, &queued_ids);
        async move {
            let started = Instant::now();
            stream::iter(ids)
                .for_each_concurrent(concurrency, |id| async move {
                    direct_sync(mcp, b, *id, tenant).await;
                })
                .await;
            started.elapsed()
        }
    };
    let direct_same = direct_at(peak, REFERENCE_TENANT).await;
    let direct_bulk = direct_at(16, REFERENCE_TENANT_16).await;

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
    let overhead_p50 = percentile(&sync_times, 50.0).saturating_sub(percentile(&reference, 50.0));
    let overhead_p99 = percentile(&sync_times, 99.0).saturating_sub(percentile(&reference, 99.0));
    println!(
        "| Restate's own floor: a virtual object's 3 empty journaled steps, called through the ingress | {} | {} | overhead / floor: {:.2} / {:.2} |",
        ms(percentile(&floor, 50.0)),
        ms(percentile(&floor, 99.0)),
        overhead_p50.as_secs_f64() / percentile(&floor, 50.0).as_secs_f64(),
        overhead_p99.as_secs_f64() / percentile(&floor, 99.0).as_secs_f64(),
    );
    println!();
    println!("Where the sync's time goes (from its own rows' timestamps; each sorted on its own)");
    println!("| gap | p50 | p99 |");
    println!("|---|---|---|");
    for (_, gap, p50, p99) in &breakdown {
        println!("| {gap} | {p50:.1} ms | {p99:.1} ms |");
    }
    println!();
    println!("Throughput, {queued} syncs queued at once (one bulk sync)");
    println!("| measurement | wall | syncs/s | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| reference: direct MCP calls at the bulk sync's own concurrency ({peak} at a time) | {:.2} s | {:.1} | 1.00 |",
        direct_same.as_secs_f64(),
        rate(queued, direct_same)
    );
    println!(
        "| bulk sync through outbox and Restate | {:.2} s | {:.1} | {:.2} (target ≤ 1.10) |",
        bulk.as_secs_f64(),
        rate(queued, bulk),
        bulk.as_secs_f64() / direct_same.as_secs_f64()
    );
    println!(
        "\nThe bulk's course, from its requests' commit: all accepted by Restate at {:.0} ms; \
         first bronze step began at {:.0} ms, last at {:.0} ms; last synced at {:.0} ms.\n",
        course.0, course.1, course.2, course.3
    );
    println!(
        "| for comparison: direct MCP calls, 16 at a time | {:.2} s | {:.1} | bulk / this: {:.2} |",
        direct_bulk.as_secs_f64(),
        rate(queued, direct_bulk),
        bulk.as_secs_f64() / direct_bulk.as_secs_f64()
    );
    if let Some(json) = json {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let figure = |name: &str, reference_name: &str, unit: &str, measured, reference, target| {
            stack::report::Figure::new(name, reference_name, unit, measured, reference)
                .target(target)
        };
        let (p50, p99) = (percentile(&sync_times, 50.0), percentile(&sync_times, 99.0));
        let (r50, r99) = (percentile(&reference, 50.0), percentile(&reference, 99.0));
        stack::report::write(
            &json,
            &[stack::report::Measurement {
                bench: "orchestration".into(),
                size: queued as f64,
                size_unit: "syncs in the bulk sync".into(),
                figures: vec![
                    figure(
                        "upload → synced, p50",
                        "upload + direct MCP calls, p50",
                        "ms",
                        ms(p50),
                        ms(r50),
                        // overhead p50 ≤ 25 ms over the reference
                        Some((ms(r50) + 25.0) / ms(r50)),
                    ),
                    figure(
                        "upload → synced, p99",
                        "upload + direct MCP calls, p99",
                        "ms",
                        ms(p99),
                        ms(r99),
                        Some((ms(r99) + 60.0) / ms(r99)),
                    ),
                    figure(
                        "orchestration overhead (sync − reference), p50",
                        "Restate's own 3-step floor, p50",
                        "ms",
                        ms(overhead_p50),
                        ms(percentile(&floor, 50.0)),
                        None,
                    ),
                    figure(
                        "bulk sync, wall time",
                        "direct MCP calls at the bulk's concurrency",
                        "s",
                        bulk.as_secs_f64(),
                        direct_same.as_secs_f64(),
                        Some(1.1),
                    ),
                    figure(
                        "bulk sync vs direct calls 16 at a time",
                        "direct MCP calls, 16 at a time",
                        "s",
                        bulk.as_secs_f64(),
                        direct_bulk.as_secs_f64(),
                        None,
                    ),
                ],
            }],
        )?;
    }
    Ok(())
}

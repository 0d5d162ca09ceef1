//! Live-status fan-out benchmark: a fresh `servicetsunami` server process, N
//! Server-Sent-Event subscribers (default 1,000) on `/api/events`, and status
//! changes committed to Postgres one after another. Each change's latency is
//! measured from just before its commit to its receipt at every subscriber.
//!
//! Reference, same run: the same changes received by a single subscriber.
//! Memory: the server's resident set with N subscribers against with none.
//!
//! ```sh
//! source .ci/lib.sh && cargo build "${CARGO_PACKAGES[@]}" --lib --tests --examples && \
//!   "$CARGO_TARGET_DIR/debug/examples/sse_bench" [--clients 1000] [--changes 100]
//! ```

mod common;

use anyhow::Context;
use common::BenchServer;
use futures::StreamExt;
use stack::app::rss_kib;
use std::{
    process::Stdio,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};
use tokio::sync::Notify;
use uuid::Uuid;

/// Receipts: (change number, when), per subscriber.
type Receipts = Arc<Mutex<Vec<(usize, Instant)>>>;

/// Opens one subscriber; returns once its snapshot arrived. Every `status`
/// event whose error reads `bench-<k>` is recorded as change k.
async fn subscribe(
    client: &reqwest::Client,
    url: &str,
    receipts: Receipts,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let response = client.get(url).send().await?.error_for_status()?;
    let mut body = response.bytes_stream();
    let ready = Arc::new(Notify::new());
    let ready_tx = ready.clone();
    let ready_wait = ready.notified();
    let task = tokio::spawn(async move {
        let mut buffer = Vec::<u8>::new();
        while let Some(Ok(chunk)) = body.next().await {
            let at = Instant::now();
            buffer.extend_from_slice(&chunk);
            while let Some(end) = buffer.windows(2).position(|w| w == b"\n\n") {
                let frame: Vec<u8> = buffer.drain(..end + 2).collect();
                let text = String::from_utf8_lossy(&frame);
                if text.contains("event: snapshot") || text.contains("event:snapshot") {
                    ready_tx.notify_one();
                } else if let Some(pos) = text.find("\"error\":\"bench-") {
                    let rest = &text[pos + 15..];
                    if let Some(k) = rest.split('"').next().and_then(|n| n.parse().ok()) {
                        receipts.lock().unwrap().push((k, at));
                    }
                }
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(60), ready_wait)
        .await
        .context("no snapshot within 60 s")?;
    Ok(task)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Commits `changes` status changes ~20 ms apart and returns each one's
/// commit start time; `tag` keeps markers unique across rounds.
async fn commit_changes(
    db: &sqlx::PgPool,
    dataset: Uuid,
    changes: usize,
    offset: usize,
) -> anyhow::Result<Vec<Instant>> {
    let mut starts = Vec::new();
    for k in 0..changes {
        let started = Instant::now();
        sqlx::query("UPDATE datasets SET sync_status = 'failed', sync_error = $2 WHERE id = $1")
            .bind(dataset)
            .bind(format!("bench-{}", offset + k))
            .execute(db)
            .await?;
        starts.push(started);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(starts)
}

async fn latencies(
    receipts: &[Receipts],
    starts: &[Instant],
    offset: usize,
    expected_per_client: usize,
) -> anyhow::Result<Vec<Duration>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let complete = receipts.iter().all(|r| {
            r.lock()
                .unwrap()
                .iter()
                .filter(|(k, _)| *k >= offset)
                .count()
                >= expected_per_client
        });
        if complete {
            break;
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "not every subscriber got every change"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut all = Vec::new();
    for r in receipts {
        for (k, at) in r.lock().unwrap().iter() {
            if *k >= offset {
                all.push(*at - starts[*k - offset]);
            }
        }
    }
    all.sort();
    Ok(all)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut clients = 1000usize;
    let mut changes = 100usize;
    let mut json: Option<std::path::PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--clients" => clients = args.next().context("--clients N")?.parse()?,
            "--changes" => changes = args.next().context("--changes N")?.parse()?,
            "--json" => json = Some(args.next().context("--json FILE")?.into()),
            "--bench" => {}
            other => anyhow::bail!("unknown argument {other}"),
        }
    }

    let data = tempfile::tempdir()?;
    let server = BenchServer::start(
        data.path(),
        &[("RUST_LOG", "warn".to_owned())],
        Stdio::null(),
    )
    .await?;
    let (pid, port) = (server.pid, server.port);
    let http = common::authed_client(&server.token, true)?;

    // One dataset to change the status of.
    let db = sqlx::PgPool::connect(&server.database.url).await?;
    let dataset = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO datasets (id, tenant_id, name, file_name, source_format, schema, row_count,
           size_bytes, sync_status)
         SELECT $1, id, 'bench', 'bench.csv', 'csv', '[]', 0, 0, 'local_only'
         FROM tenants WHERE slug = 'default'",
    )
    .bind(dataset)
    .execute(&db)
    .await?;

    let url = format!("http://127.0.0.1:{port}/api/events");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let idle_rss = rss_kib(pid);

    // Reference: one subscriber.
    let single: Receipts = Arc::default();
    let single_task = subscribe(&http, &url, single.clone()).await?;
    let starts = commit_changes(&db, dataset, changes, 0).await?;
    let reference = latencies(std::slice::from_ref(&single), &starts, 0, changes).await?;
    single_task.abort();

    // N subscribers.
    let mut receipts = Vec::new();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let r: Receipts = Arc::default();
        tasks.push(subscribe(&http, &url, r.clone()).await?);
        receipts.push(r);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let loaded_rss = rss_kib(pid);
    let starts = commit_changes(&db, dataset, changes, changes).await?;
    let fanned = latencies(&receipts, &starts, changes, changes).await?;
    let peak_rss = rss_kib(pid).max(loaded_rss);
    for t in tasks {
        t.abort();
    }
    db.close().await;
    server.stop().await?;

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let (r50, r99) = (percentile(&reference, 50.0), percentile(&reference, 99.0));
    let (f50, f99) = (percentile(&fanned, 50.0), percentile(&fanned, 99.0));
    println!();
    println!("SSE fan-out: {changes} committed status changes, latency commit → receipt");
    println!("| subscribers | deliveries | p50 | p99 | ratio p50 / p99 |");
    println!("|---|---|---|---|---|");
    println!(
        "| 1 (reference) | {} | {:.1} ms | {:.1} ms | 1.00 / 1.00 |",
        reference.len(),
        ms(r50),
        ms(r99)
    );
    println!(
        "| {clients} | {} | {:.1} ms | {:.1} ms | {:.2} / {:.2} (target p99 ≤ 100 ms) |",
        fanned.len(),
        ms(f50),
        ms(f99),
        f50.as_secs_f64() / r50.as_secs_f64(),
        f99.as_secs_f64() / r99.as_secs_f64()
    );
    println!();
    println!("| server memory (RSS) | MiB | ratio |");
    println!("|---|---|---|");
    println!(
        "| no subscribers (reference) | {:.1} | 1.00 |",
        idle_rss as f64 / 1024.0
    );
    println!(
        "| {clients} subscribers | {:.1} | {:.2} |",
        peak_rss as f64 / 1024.0,
        peak_rss as f64 / idle_rss.max(1) as f64
    );
    println!(
        "| difference | {:.1} | (target ≤ 50 MB for {clients}) |",
        peak_rss.saturating_sub(idle_rss) as f64 / 1024.0
    );
    if let Some(json) = json {
        stack::report::write(
            &json,
            &[stack::report::Measurement {
                bench: "SSE fan-out".into(),
                size: clients as f64,
                size_unit: "subscribers".into(),
                figures: vec![
                    stack::report::Figure::new(
                        "commit → receipt, p50",
                        "one subscriber, p50",
                        "ms",
                        ms(f50),
                        ms(r50),
                    ),
                    stack::report::Figure::new(
                        "commit → receipt, p99",
                        "one subscriber, p99",
                        "ms",
                        ms(f99),
                        ms(r99),
                    ),
                    stack::report::Figure::new(
                        "server RSS with the subscribers",
                        "server RSS with none",
                        "MiB",
                        peak_rss as f64 / 1024.0,
                        idle_rss as f64 / 1024.0,
                    ),
                ],
            }],
        )?;
    }
    Ok(())
}

//! Load: a fresh `servicetsunami` server process under
//! 1. a burst of N concurrent uploads of an S MB CSV (default 100 × 10 MB),
//!    while M Server-Sent-Event clients (default 1,000) stay subscribed;
//! 2. a steady stream of small uploads for D seconds (default 60) at R per
//!    second (default 5), with the same subscribers.
//!
//! Every request must succeed. The server admits `UPLOAD_MAX_CONCURRENT`
//! uploads at once and answers the rest `503` with `Retry-After`, as the API
//! documents; the client here does what that answer asks (waits, then sends
//! again), so such an answer is counted as deferred, not as an error, and the
//! latency of an upload runs from its first attempt to its `201`. An error is
//! anything else: another status, a dropped connection, a subscriber that
//! lost its stream.
//!
//! References, same run: the same large upload alone on the idle server, and
//! the same small upload alone. Each figure is reported against them.
//!
//! ```sh
//! source .ci/lib.sh && cargo build "${CARGO_PACKAGES[@]}" --lib --tests --examples && \
//!   "$CARGO_TARGET_DIR/debug/examples/load_bench" [--uploads 100] [--mb 10] \
//!     [--clients 1000] [--seconds 60] [--rate 5]
//! ```

mod common;

use anyhow::Context;
use common::BenchServer;
use futures::StreamExt;
use std::{
    process::Stdio,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

/// A real-world shape: nulls as `NA`, negative amounts, a timestamp with a
/// time zone, quoted text with a comma.
fn csv_of(bytes: usize, salt: usize) -> Vec<u8> {
    let mut csv = String::from("id,customer,amount,seen_at,note\n");
    let mut i = 0usize;
    while csv.len() < bytes {
        let amount = if i.is_multiple_of(7) {
            "NA".to_owned()
        } else {
            format!("{}.{:02}", (i as i64 % 2000) - 1000, i % 100)
        };
        csv.push_str(&format!(
            "{i},C{:05},{amount},2024-03-{:02}T{:02}:15:00+02:00,\"batch {salt}, row {i}\"\n",
            i % 50_000,
            i % 28 + 1,
            i % 24
        ));
        i += 1;
    }
    csv.into_bytes()
}

/// What one upload came to.
struct Outcome {
    latency: Duration,
    deferred: usize,
    error: Option<String>,
}

/// Uploads `csv` until it is accepted: a 503 waits its `Retry-After` (at
/// least 100 ms) and tries again; anything else but 201 is an error.
async fn upload(client: &reqwest::Client, url: &str, csv: Arc<Vec<u8>>, name: String) -> Outcome {
    let started = Instant::now();
    let mut deferred = 0;
    loop {
        let part = reqwest::multipart::Part::bytes(csv.as_ref().clone()).file_name(name.clone());
        let form = reqwest::multipart::Form::new().part("file", part);
        let sent = client
            .post(url)
            .header("Accept", "application/json")
            .multipart(form)
            .timeout(Duration::from_secs(600))
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                return Outcome {
                    latency: started.elapsed(),
                    deferred,
                    error: Some(format!("{e}")),
                }
            }
        };
        let status = response.status().as_u16();
        if status == 503 {
            let wait = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .map_or(Duration::from_secs(1), Duration::from_secs)
                .max(Duration::from_millis(100));
            deferred += 1;
            // Drain the answer so the connection is reused.
            let _ = response.bytes().await;
            tokio::time::sleep(wait).await;
            continue;
        }
        let body = response.text().await.unwrap_or_default();
        return Outcome {
            latency: started.elapsed(),
            deferred,
            error: (status != 201).then(|| format!("{status}: {body}")),
        };
    }
}

/// Opens `count` subscribers; each counts the events it receives and flags
/// itself when its stream ends. Returns once every snapshot arrived.
async fn subscribe(
    client: &reqwest::Client,
    url: &str,
    count: usize,
    received: Arc<AtomicUsize>,
    dropped: Arc<AtomicUsize>,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut tasks = Vec::with_capacity(count);
    for _ in 0..count {
        let response = client.get(url).send().await?.error_for_status()?;
        let mut body = response.bytes_stream();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<()>();
        let (received, dropped) = (received.clone(), dropped.clone());
        tasks.push(tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            let mut buffer = Vec::<u8>::new();
            while let Some(chunk) = body.next().await {
                let Ok(chunk) = chunk else { break };
                buffer.extend_from_slice(&chunk);
                while let Some(end) = buffer.windows(2).position(|w| w == b"\n\n") {
                    let frame: Vec<u8> = buffer.drain(..end + 2).collect();
                    let text = String::from_utf8_lossy(&frame);
                    if text.contains("event: snapshot") || text.contains("event:snapshot") {
                        if let Some(tx) = ready.take() {
                            let _ = tx.send(());
                        }
                    } else if text.contains("data:") {
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            dropped.fetch_add(1, Ordering::Relaxed);
        }));
        ready_rx.await.context("a subscriber's snapshot")?;
    }
    Ok(tasks)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

struct Phase {
    name: String,
    outcomes: Vec<Outcome>,
    reference: Duration,
    wall: Duration,
}

impl Phase {
    fn row(&self) -> String {
        let mut latencies: Vec<Duration> = self.outcomes.iter().map(|o| o.latency).collect();
        latencies.sort();
        let errors = self.outcomes.iter().filter(|o| o.error.is_some()).count();
        let deferred: usize = self.outcomes.iter().map(|o| o.deferred).sum();
        let s = |d: Duration| d.as_secs_f64();
        let (p50, p95, p99) = (
            percentile(&latencies, 50.0),
            percentile(&latencies, 95.0),
            percentile(&latencies, 99.0),
        );
        let ratio = |d: Duration| s(d) / s(self.reference).max(1e-9);
        format!(
            "| {:<34} | {:>5} | {:>6} | {:>8} | {:>7.2} | {:>7.2} | {:>7.2} | {:>7.2} | {:>9.2} | {:>6.1}× | {:>6.1}× | {:>6.1} |",
            self.name,
            self.outcomes.len(),
            errors,
            deferred,
            s(self.reference),
            s(p50),
            s(p95),
            s(p99),
            s(latencies.last().copied().unwrap_or_default()),
            ratio(p50),
            ratio(p99),
            self.outcomes.len() as f64 / s(self.wall).max(1e-9),
        )
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (mut uploads, mut mb, mut clients, mut seconds, mut rate) =
        (100usize, 10usize, 1000usize, 60u64, 5u64);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--uploads" => uploads = value()?.parse()?,
            "--mb" => mb = value()?.parse()?,
            "--clients" => clients = value()?.parse()?,
            "--seconds" => seconds = value()?.parse()?,
            "--rate" => rate = value()?.parse::<u64>()?.max(1),
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
    let base = format!("http://127.0.0.1:{}", server.port);
    let upload_url = format!("{base}/api/datasets");
    // Uploads over HTTP/1.1 connections of their own, as browsers send them.
    let http = common::authed_client(&server.token, true)?;
    let big = Arc::new(csv_of(mb << 20, 0));
    let small = Arc::new(csv_of(4 << 10, 1));

    // References: each upload alone on the idle server (after a warm-up).
    upload(&http, &upload_url, small.clone(), "warm.csv".into()).await;
    let alone = |csv: Arc<Vec<u8>>, name: &'static str| {
        let http = http.clone();
        let url = upload_url.clone();
        async move {
            let mut runs = Vec::new();
            for _ in 0..3 {
                let o = upload(&http, &url, csv.clone(), name.into()).await;
                anyhow::ensure!(o.error.is_none(), "reference upload failed: {:?}", o.error);
                runs.push(o.latency);
            }
            runs.sort();
            Ok::<_, anyhow::Error>(runs[1])
        }
    };
    let big_alone = alone(big.clone(), "big.csv").await?;
    let small_alone = alone(small.clone(), "small.csv").await?;

    // The subscribers, held through both phases.
    let received = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(AtomicUsize::new(0));
    let sse_started = Instant::now();
    let subscribers = subscribe(
        &http,
        &format!("{base}/api/events"),
        clients,
        received.clone(),
        dropped.clone(),
    )
    .await?;
    let sse_connect = sse_started.elapsed();

    // 1. The burst.
    let started = Instant::now();
    let mut burst = tokio::task::JoinSet::new();
    for i in 0..uploads {
        let (http, url, csv) = (http.clone(), upload_url.clone(), big.clone());
        burst.spawn(async move { upload(&http, &url, csv, format!("burst-{i}.csv")).await });
    }
    let mut outcomes = Vec::with_capacity(uploads);
    while let Some(done) = burst.join_next().await {
        outcomes.push(done?);
    }
    let burst = Phase {
        name: format!("{uploads} concurrent uploads of {mb} MB"),
        outcomes,
        reference: big_alone,
        wall: started.elapsed(),
    };

    // 2. The steady stream.
    let started = Instant::now();
    let mut stream = tokio::task::JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate));
    let mut sent = 0usize;
    while started.elapsed() < Duration::from_secs(seconds) {
        tick.tick().await;
        let (http, url, csv) = (http.clone(), upload_url.clone(), small.clone());
        sent += 1;
        stream.spawn(async move { upload(&http, &url, csv, format!("steady-{sent}.csv")).await });
    }
    let mut outcomes = Vec::with_capacity(sent);
    while let Some(done) = stream.join_next().await {
        outcomes.push(done?);
    }
    let steady = Phase {
        name: format!("{seconds} s of small uploads, {rate}/s"),
        outcomes,
        reference: small_alone,
        wall: started.elapsed(),
    };

    tokio::time::sleep(Duration::from_millis(500)).await;
    let lost_streams = dropped.load(Ordering::Relaxed);
    let events = received.load(Ordering::Relaxed);
    for task in subscribers {
        task.abort();
    }
    let rss = stack::app::rss_kib(server.pid);
    server.stop().await?;

    println!(
        "load benchmark: {} cores, server with its defaults (UPLOAD_MAX_CONCURRENT = 2 × cores)",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    println!(
        "| phase                              | sent  | errors | deferred | alone s | p50 s   | p95 s   | p99 s   | max s     | p50/alone | p99/alone | per s  |"
    );
    println!(
        "|------------------------------------|-------|--------|----------|---------|---------|---------|---------|-----------|-----------|-----------|--------|"
    );
    println!("{}", burst.row());
    println!("{}", steady.row());
    println!();
    println!(
        "{clients} SSE subscribers connected in {:.2} s, held through both phases: {lost_streams} lost their stream, {events} events received in all; server RSS at the end {} MiB",
        sse_connect.as_secs_f64(),
        rss / 1024
    );
    let errors: Vec<&String> = burst
        .outcomes
        .iter()
        .chain(&steady.outcomes)
        .filter_map(|o| o.error.as_ref())
        .collect();
    if !errors.is_empty() || lost_streams > 0 {
        for e in errors.iter().take(5) {
            eprintln!("error: {e}");
        }
        anyhow::bail!(
            "{} failed requests, {lost_streams} lost streams: the error rate must be 0",
            errors.len()
        );
    }
    println!("error rate: 0");
    Ok(())
}

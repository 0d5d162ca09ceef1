//! Query page benchmark: a 3.4 M-row flights table shaped like the BTS
//! on-time data (dates, carriers, airports, delays with nulls, cancellations,
//! distances), uploaded to a fresh `servicetsunami` server, then five
//! analytical queries run through the query page's server function
//! (`POST /api/run_query`, engine `local`) and through DuckDB directly on the
//! same stored Parquet file with the same threads and memory, in one run.
//!
//! Reference, same run: DuckDB alone. Target: median ratio ≤ 1.2.
//!
//! ```sh
//! source .ci/lib.sh && cargo build "${CARGO_PACKAGES[@]}" --lib --tests --examples && \
//!   "$CARGO_TARGET_DIR/debug/examples/query_bench" [--rows 3400000] [--runs 5]
//! ```

mod common;

use anyhow::Context;
use common::{authed_client, BenchServer};
use std::{
    process::Stdio,
    time::{Duration, Instant},
};

const THREADS: usize = 2;
const MEMORY: &str = "1GiB";

const QUERIES: [(&str, &str); 5] = [
    (
        "flights per carrier",
        "SELECT carrier, count(*) AS flights FROM flights GROUP BY carrier ORDER BY flights DESC",
    ),
    (
        "worst origins by mean delay",
        "SELECT origin, avg(dep_delay) AS mean_delay, count(*) AS n FROM flights \
         WHERE NOT cancelled GROUP BY origin HAVING count(*) > 1000 ORDER BY mean_delay DESC LIMIT 10",
    ),
    (
        "cancellations per month",
        "SELECT date_trunc('month', fl_date) AS month, avg(cancelled::INTEGER) AS rate \
         FROM flights GROUP BY month ORDER BY month",
    ),
    (
        "delay percentiles by distance band",
        "SELECT (distance // 500) * 500 AS band, quantile_cont(arr_delay, 0.5) AS p50, \
         quantile_cont(arr_delay, 0.95) AS p95 FROM flights GROUP BY band ORDER BY band",
    ),
    (
        "busiest routes",
        "SELECT origin, dest, count(*) AS flights, avg(arr_delay) AS mean_arr_delay FROM flights \
         GROUP BY origin, dest ORDER BY flights DESC LIMIT 20",
    ),
];

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Writes the flights table as Parquet (what an analyst would upload).
fn flights(path: &std::path::Path, rows: usize) -> anyhow::Result<()> {
    let conn = duckdb::Connection::open_in_memory()?;
    conn.execute_batch(&format!(
        "COPY (
           SELECT DATE '2023-01-01' + CAST(i % 365 AS INTEGER) AS fl_date,
                  ['AA','DL','UA','WN','B6','AS','NK','F9','G4','HA','MQ','OO','YX','9E','OH','QX','ZW','C5','PT','G7'][CAST(1 + hash(i) % 20 AS BIGINT)] AS carrier,
                  CAST(hash(i * 7) % 9000 AS INTEGER) AS flight_number,
                  'A' || lpad(CAST(hash(i * 3) % 300 AS VARCHAR), 2, '0') AS origin,
                  'A' || lpad(CAST(hash(i * 5) % 300 AS VARCHAR), 2, '0') AS dest,
                  CASE WHEN hash(i * 11) % 50 = 0 THEN NULL ELSE CAST(hash(i * 13) % 240 AS DOUBLE) - 20 END AS dep_delay,
                  CASE WHEN hash(i * 11) % 50 = 0 THEN NULL ELSE CAST(hash(i * 17) % 260 AS DOUBLE) - 30 END AS arr_delay,
                  CAST(100 + hash(i * 19) % 2700 AS INTEGER) AS distance,
                  hash(i * 23) % 60 = 0 AS cancelled
           FROM range({rows}) t(i)
         ) TO '{}' (FORMAT parquet, COMPRESSION zstd)",
        path.display()
    ))?;
    Ok(())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// DuckDB alone: the same SQL over a view of the stored file, every row fetched.
fn direct(file: &std::path::Path, sql: &str) -> anyhow::Result<(Duration, usize)> {
    let started = Instant::now();
    let conn = duckdb::Connection::open_in_memory()?;
    conn.execute_batch(&format!(
        "SET threads = {THREADS}; SET memory_limit = '{MEMORY}';
         CREATE VIEW flights AS SELECT * FROM read_parquet('{}');",
        file.display()
    ))?;
    let mut stmt = conn.prepare(sql)?;
    let mut rows = stmt.query([])?;
    let mut n = 0;
    while let Some(row) = rows.next()? {
        let _first: duckdb::types::Value = row.get(0)?;
        n += 1;
    }
    Ok((started.elapsed(), n))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rows = arg("--rows", 3_400_000);
    let runs = arg("--runs", 5).max(1);
    let dir = tempfile::tempdir()?;
    let source = dir.path().join("flights.parquet");
    flights(&source, rows)?;
    let data = dir.path().join("data");
    let server = BenchServer::start(
        &data,
        &[
            ("QUERY_THREADS", THREADS.to_string()),
            ("QUERY_MEMORY_LIMIT", MEMORY.to_owned()),
            ("QUERY_TIMEOUT_SECS", "300".to_owned()),
        ],
        Stdio::null(),
    )
    .await?;
    let base = format!("http://127.0.0.1:{}", server.port);
    let client = authed_client(&server.token, false)?;
    let form = reqwest::multipart::Form::new()
        .text("name", "Flights")
        .part(
            "file",
            reqwest::multipart::Part::bytes(std::fs::read(&source)?).file_name("flights.parquet"),
        );
    let uploaded: serde_json::Value = client
        .post(format!("{base}/api/datasets"))
        .header("Accept", "application/json")
        .multipart(form)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let id = uploaded["dataset"]["id"]
        .as_str()
        .context("the upload's answer has no id")?;
    let stored = data.join("datasets").join(format!("{id}.parquet"));

    println!(
        "query page vs DuckDB alone: {rows} flights, {runs} runs each, {THREADS} threads, {MEMORY}"
    );
    println!("| query | DuckDB alone (median) | query page (median) | ratio |");
    println!("|---|---:|---:|---:|");
    let mut ratios = Vec::new();
    let (mut alone_total, mut page_total) = (0.0, 0.0);
    for (label, sql) in QUERIES {
        let (mut alone, mut page) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let (took, expected) = direct(&stored, sql)?;
            alone.push(took);
            let started = Instant::now();
            let answer: serde_json::Value = client
                .post(format!("{base}/api/run_query"))
                .header("Accept", "application/json")
                .form(&[("sql", sql), ("engine", "local")])
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            page.push(started.elapsed());
            let got = answer["rows"].as_array().map_or(0, Vec::len);
            anyhow::ensure!(
                got == expected,
                "{label}: the page returned {got} rows, DuckDB {expected}"
            );
        }
        let (a, p) = (median(alone), median(page));
        let ratio = p.as_secs_f64() / a.as_secs_f64();
        ratios.push(ratio);
        alone_total += a.as_secs_f64() * 1e3;
        page_total += p.as_secs_f64() * 1e3;
        println!(
            "| {label} | {:.1} ms | {:.1} ms | {ratio:.2} |",
            a.as_secs_f64() * 1e3,
            p.as_secs_f64() * 1e3
        );
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "\nmedian ratio: {:.2} (target ≤ 1.20); server resident set after the queries: {} MiB",
        ratios[ratios.len() / 2],
        stack::app::rss_kib(server.pid) / 1024
    );
    let args: Vec<String> = std::env::args().collect();
    if let Some(json) = args
        .iter()
        .position(|a| a == "--json")
        .and_then(|i| args.get(i + 1))
    {
        stack::report::write(
            std::path::Path::new(json),
            &[stack::report::Measurement {
                bench: "query routing".into(),
                size: rows as f64,
                size_unit: "rows".into(),
                figures: vec![stack::report::Figure {
                    name: format!("query page, {} queries (sum of medians)", QUERIES.len()),
                    reference_name: "DuckDB alone on the stored file".into(),
                    unit: "ms".into(),
                    measured: page_total,
                    reference: alone_total,
                    target_ratio: Some(1.2),
                }],
            }],
        )?;
    }
    server.stop().await?;
    Ok(())
}

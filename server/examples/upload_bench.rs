//! Upload benchmark: generates a CSV (default 1 GB), uploads it over HTTP to a
//! freshly started `servicetsunami` server, and compares with DuckDB converting
//! the same file directly, in the same run, with the same engine limits. The
//! two sides alternate for `--rounds` rounds (default 3) after a warm-up round;
//! the ratio is taken between the medians, and the best of each side is shown
//! beside it. With `--pyarrow PYTHON` (a Python with pyarrow), pyarrow's
//! CSV → Parquet is a second reference, in the same rounds. The server's peak
//! memory is compared with DuckDB's COPY alone in a process of its own.
//!
//! ```sh
//! source .ci/lib.sh && cargo build "${CARGO_PACKAGES[@]}" --lib --tests --examples && \
//!   "$CARGO_TARGET_DIR/debug/examples/upload_bench" [--size 1GB] [--rounds 3] [--shape simple|real] \
//!     [--dir /tmp/x] [--pyarrow PYTHON] [--json FILE]
//! ```
//! Needs Postgres at `TEST_DATABASE_URL` (default postgres://postgres@127.0.0.1:5432/postgres)
//! and the `servicetsunami` binary built (it is looked up in the target directory).

mod common;

use anyhow::{bail, Context};
use common::BenchServer;
use std::{
    io::{BufWriter, Write},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

const THREADS: usize = 2;
const MEMORY_LIMIT: &str = "192MB";

/// What the generated CSV looks like.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// Six tidy columns.
    Simple,
    /// A real-world export: 19 columns, nulls written as `NA`, timestamps
    /// with time zones, negative numbers, free text with quotes.
    Real,
}

struct Args {
    shape: Shape,
    size: u64,
    dir: PathBuf,
    rounds: usize,
    pyarrow: Option<PathBuf>,
    json: Option<PathBuf>,
    /// The client's sending rate in bytes per second (curl's
    /// `--limit-rate`): an upload over a network rather than loopback.
    rate: Option<u64>,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut size: u64 = 1_000_000_000;
    let mut dir = std::env::temp_dir().join("servicetsunami-upload-bench");
    let mut rounds = 3;
    let mut shape = Shape::Simple;
    let (mut pyarrow, mut json, mut rate) = (None, None, None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--size" => {
                let v = args.next().context("--size needs a value")?;
                size = parse_size(&v).with_context(|| format!("bad --size {v}"))?;
            }
            "--dir" => dir = PathBuf::from(args.next().context("--dir needs a value")?),
            "--rounds" => {
                let v = args.next().context("--rounds needs a value")?;
                rounds = v.parse().with_context(|| format!("bad --rounds {v}"))?;
                anyhow::ensure!(rounds > 0, "--rounds must be at least 1");
            }
            "--shape" => {
                shape = match args.next().as_deref() {
                    Some("simple") => Shape::Simple,
                    Some("real") => Shape::Real,
                    other => bail!("--shape takes simple or real, not {other:?}"),
                }
            }
            "--pyarrow" => pyarrow = Some(PathBuf::from(args.next().context("--pyarrow PYTHON")?)),
            "--json" => json = Some(PathBuf::from(args.next().context("--json FILE")?)),
            "--rate" => {
                let v = args
                    .next()
                    .context("--rate needs a value, e.g. 100MB (per second)")?;
                rate = Some(parse_size(&v).with_context(|| format!("bad --rate {v}"))?);
            }
            "--bench" => {} // passed by `cargo bench`
            other => bail!("unknown argument {other}"),
        }
    }
    Ok(Args {
        shape,
        size,
        dir,
        rounds,
        pyarrow,
        json,
        rate,
    })
}

fn parse_size(v: &str) -> anyhow::Result<u64> {
    let v = v.trim().to_ascii_uppercase();
    let (num, mult) = if let Some(n) = v.strip_suffix("GB") {
        (n, 1_000_000_000)
    } else if let Some(n) = v.strip_suffix("MB") {
        (n, 1_000_000)
    } else if let Some(n) = v.strip_suffix("KB") {
        (n, 1_000)
    } else {
        (v.as_str(), 1)
    };
    Ok(num.trim().parse::<u64>()? * mult)
}

/// A real-world export of `size` bytes: 19 columns, a quarter of some of
/// them `NA`, timestamps with time zones, negative amounts, quoted text.
fn generate_real_csv(path: &Path, size: u64) -> anyhow::Result<u64> {
    let file = std::fs::File::create(path)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let header = b"trip_id,vendor,pickup_at,dropoff_at,passengers,distance_km,rate_code,store_flag,pickup_zone,dropoff_zone,payment,fare,extra,tax,tip,tolls,surcharge,total,notes\n";
    out.write_all(header)?;
    let mut written = header.len() as u64;
    let zones = ["Midtown", "JFK Airport", "Harlem", "SoHo", "Astoria", "NA"];
    let notes = ["", "NA", "\"left bag, \"\"blue\"\"\"", "cash only", "N/A"];
    let mut i: u64 = 0;
    let mut line = String::with_capacity(256);
    while written < size {
        line.clear();
        use std::fmt::Write as _;
        let minute = i % 60;
        let hour = (i / 60) % 24;
        let day = 1 + (i / 1440) % 28;
        let na = |k: u64| i.wrapping_mul(2654435761).wrapping_add(k).is_multiple_of(4);
        let num = |k: u64, v: String| if na(k) { "NA".to_owned() } else { v };
        let fare = (i * 37) % 9_000;
        writeln!(
            line,
            "{i},{},2024-03-{day:02}T{hour:02}:{minute:02}:00+01:00,2024-03-{day:02}T{hour:02}:{:02}:30-05:00,{},{},{},{},{},{},{},{}.{:02},{},{},{},{},{},{},{}",
            1 + i % 2,
            (minute + 7) % 60,
            num(1, (1 + i % 5).to_string()),
            num(2, format!("{}.{}", (i * 13) % 40, i % 10)),
            1 + i % 6,
            if i.is_multiple_of(7) { "Y" } else { "N" },
            zones[(i % 6) as usize],
            zones[((i / 6) % 6) as usize],
            ["card", "cash", "NA"][(i % 3) as usize],
            fare / 100,
            fare % 100,
            num(3, "0.5".to_owned()),
            num(4, "-0.5".to_owned()),
            num(5, format!("{}.{:02}", (i * 3) % 20, i % 100)),
            num(6, "6.55".to_owned()),
            num(7, "-2.5".to_owned()),
            num(8, format!("{}.{:02}", fare / 100 + 3, fare % 100)),
            notes[(i % 5) as usize]
        )?;
        out.write_all(line.as_bytes())?;
        written += line.len() as u64;
        i += 1;
    }
    out.flush()?;
    Ok(i)
}

/// A realistic mixed-type CSV: ids, names, amounts, dates, flags, free text.
fn generate_csv(path: &Path, size: u64) -> anyhow::Result<u64> {
    let file = std::fs::File::create(path)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let header = b"id,customer,amount,ordered_on,express,comment\n";
    out.write_all(header)?;
    let mut written = header.len() as u64;
    let names = [
        "Ada Lovelace",
        "Grace Hopper",
        "Alan Turing",
        "Edsger Dijkstra",
        "Barbara Liskov",
    ];
    let comments = [
        "",
        "leave at the door",
        "\"fragile, handle with care\"",
        "gift",
        "call first",
    ];
    let mut i: u64 = 0;
    let mut line = String::with_capacity(128);
    while written < size {
        line.clear();
        use std::fmt::Write as _;
        let day = 1 + (i % 28);
        let month = 1 + (i / 28) % 12;
        writeln!(
            line,
            "{i},{},{}.{:02},2024-{month:02}-{day:02},{},{}",
            names[(i % 5) as usize],
            (i * 7919) % 100_000,
            i % 100,
            i.is_multiple_of(3),
            comments[(i % 5) as usize]
        )?;
        out.write_all(line.as_bytes())?;
        written += line.len() as u64;
        i += 1;
    }
    out.flush()?;
    Ok(i)
}

/// The file read ahead on a thread of its own in 1 MiB pieces, as a browser
/// streams an upload: reading does not wait for the network, nor the network
/// for reading. (reqwest's own file body reads 8 KiB at a time, in turn with
/// sending, and made this client the slowest part of the measurement.)
fn file_body(path: &Path) -> reqwest::Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(8);
    let path = path.to_owned();
    std::thread::spawn(move || {
        use std::io::Read;
        let mut file = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        };
        loop {
            let mut buf = vec![0u8; 1 << 20];
            let piece = match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    buf.truncate(n);
                    Ok(bytes::Bytes::from(buf))
                }
                Err(e) => Err(e),
            };
            let failed = piece.is_err();
            if tx.blocking_send(piece).is_err() || failed {
                break;
            }
        }
    });
    reqwest::Body::wrap_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
}

/// The upload as curl sends it (a client that streams the file in large
/// pieces, as browsers do). Returns the status and the response body.
async fn upload_with_curl(
    url: &str,
    token: &str,
    csv: &Path,
    rate: Option<u64>,
) -> anyhow::Result<(u16, serde_json::Value)> {
    let mut curl = tokio::process::Command::new("curl");
    if let Some(rate) = rate {
        curl.arg("--limit-rate").arg(rate.to_string());
    }
    let out = curl
        .arg("-H")
        .arg(format!("Authorization: Bearer {token}"))
        .args([
            "-sS",
            "-H",
            "Accept: application/json",
            "-F",
            "name=upload bench",
        ])
        .arg("-F")
        .arg(format!("file=@{};filename=bench.csv", csv.display()))
        .args(["-w", "\n%{http_code}", url])
        .output()
        .await?;
    anyhow::ensure!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout)?;
    let (body, code) = text.rsplit_once('\n').context("curl printed no status")?;
    Ok((code.trim().parse()?, serde_json::from_str(body)?))
}

/// The same upload through reqwest, for machines without curl.
async fn upload_with_reqwest(
    client: &reqwest::Client,
    url: &str,
    csv: &Path,
    bytes: u64,
) -> anyhow::Result<(u16, serde_json::Value)> {
    let part =
        reqwest::multipart::Part::stream_with_length(file_body(csv), bytes).file_name("bench.csv");
    let form = reqwest::multipart::Form::new()
        .text("name", "upload bench")
        .part("file", part);
    let response = client
        .post(url)
        .header("Accept", "application/json")
        .multipart(form)
        .send()
        .await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await?))
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// CPU time from `/proc/{pid}/stat`, in seconds: the process's own
/// (`utime + stime`, every thread) and its waited-for children's (`cutime +
/// cstime`). Linux counts both in USER_HZ ticks, 100 a second.
fn cpu_seconds(pid: u32) -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold
    // spaces; the first of them is field 3 (the state).
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i - 3)?.parse::<f64>().ok();
    let own = ticks(14)? + ticks(15)?;
    let children = ticks(16)? + ticks(17)?;
    Some((own / 100.0, children / 100.0))
}

/// The CPU time spent between two readings of [`cpu_seconds`].
fn cpu_spent(before: Option<(f64, f64)>, after: Option<(f64, f64)>) -> (f64, f64) {
    match (before, after) {
        (Some(b), Some(a)) => (a.0 - b.0, a.1 - b.1),
        _ => (0.0, 0.0),
    }
}

/// CPU seconds one round spent on each side.
struct Cpu {
    /// DuckDB's COPY, direct.
    reference: f64,
    /// The server over the upload: receipt, inspection, conversion, catalogue.
    server: f64,
    /// The client sending the upload.
    client: f64,
}

/// pyarrow's CSV → Parquet (read_csv, then write_table with zstd) on the same
/// threads; its own clock around the two calls, as DuckDB's is around COPY.
const PYARROW: &str = r#"
import sys, time
import pyarrow as pa, pyarrow.csv as csv, pyarrow.parquet as pq
threads = int(sys.argv[3])
pa.set_cpu_count(threads)
pa.set_io_thread_count(threads)
started = time.perf_counter()
table = csv.read_csv(sys.argv[1])
pq.write_table(table, sys.argv[2], compression="zstd")
print(time.perf_counter() - started, table.num_rows)
"#;

fn pyarrow_direct(python: &Path, csv: &Path, out: &Path) -> anyhow::Result<(Duration, u64)> {
    let output = std::process::Command::new(python)
        .arg("-c")
        .arg(PYARROW)
        .arg(csv)
        .arg(out)
        .arg(THREADS.to_string())
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    anyhow::ensure!(
        output.status.success(),
        "pyarrow failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout)?;
    let mut parts = text.split_whitespace();
    let seconds: f64 = parts.next().context("pyarrow printed no time")?.parse()?;
    let rows: u64 = parts.next().context("pyarrow printed no rows")?.parse()?;
    Ok((Duration::from_secs_f64(seconds), rows))
}

/// DuckDB's COPY alone in a fresh process (this binary with `--copy-alone`):
/// its peak resident set is the memory reference.
fn duckdb_alone_peak_kib(csv: &Path, out: &Path) -> anyhow::Result<u64> {
    let output = std::process::Command::new(std::env::current_exe()?)
        .arg("--copy-alone")
        .arg(csv)
        .arg(out)
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "DuckDB alone failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let _ = std::fs::remove_file(out);
    Ok(String::from_utf8(output.stdout)?.trim().parse()?)
}

fn duckdb_direct(csv: &Path, out: &Path) -> anyhow::Result<(Duration, u64)> {
    let conn = duckdb::Connection::open_in_memory()?;
    conn.execute_batch(&format!(
        "SET threads = {THREADS}; SET memory_limit = '{MEMORY_LIMIT}';"
    ))?;
    let started = Instant::now();
    let rows = conn.execute(
        &format!(
            "COPY (SELECT * FROM read_csv('{}')) TO '{}' (FORMAT parquet, COMPRESSION zstd)",
            csv.display(),
            out.display()
        ),
        [],
    )?;
    Ok((started.elapsed(), rows as u64))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("--copy-alone") {
        let (csv, out) = (argv.get(2).context("CSV")?, argv.get(3).context("OUT")?);
        duckdb_direct(Path::new(csv), Path::new(out))?;
        println!("{}", peak_rss_kib(std::process::id()).unwrap_or(0));
        return Ok(());
    }
    let args = parse_args()?;
    std::fs::create_dir_all(&args.dir)?;
    let csv = args.dir.join("bench.csv");
    eprintln!("generating {} bytes of CSV at {}", args.size, csv.display());
    let rows = match args.shape {
        Shape::Simple => generate_csv(&csv, args.size)?,
        Shape::Real => generate_real_csv(&csv, args.size)?,
    };
    let bytes = std::fs::metadata(&csv)?.len();
    let mb = bytes as f64 / 1e6;

    // Each measurement starts with nothing waiting to be written back to disk
    // (the generated CSV, the other side's output), so neither pays for the
    // other's writes.
    let settle = || std::process::Command::new("sync").status();

    // The server, started fresh with its own database.
    let data = args.dir.join("data");
    let _ = std::fs::remove_dir_all(&data);
    let server = BenchServer::start(
        &data,
        &[
            ("UPLOAD_MAX_BYTES", (bytes * 2).to_string()),
            ("DUCKDB_THREADS", THREADS.to_string()),
            ("DUCKDB_MEMORY_LIMIT", MEMORY_LIMIT.to_owned()),
            ("RUST_LOG", "servicetsunami_server=debug,warn".to_owned()),
        ],
        std::fs::File::create(args.dir.join("server.log"))?.into(),
    )
    .await?;
    let (pid, port) = (server.pid, server.port);
    let client = common::authed_client(&server.token, false)?;
    let idle_rss = peak_rss_kib(pid).unwrap_or(0);

    let url = format!("http://127.0.0.1:{port}/api/datasets");
    let use_curl = std::process::Command::new("curl")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    anyhow::ensure!(
        use_curl || args.rate.is_none(),
        "--rate needs curl, which is not installed"
    );
    // Rounds alternate the two sides, so that what the machine does meanwhile
    // (other load, the hypervisor reclaiming freed memory) falls on both. A
    // first round that is not counted warms both up: the file cache, DuckDB,
    // the server's connection pools.
    let reference_out = args.dir.join("reference.parquet");
    let mut measured = Vec::with_capacity(args.rounds);
    let mut cpu: Vec<Cpu> = Vec::with_capacity(args.rounds);
    let mut pyarrow_times = Vec::with_capacity(args.rounds);
    for round in 0..=args.rounds {
        settle()?;
        let me = std::process::id();
        let before = cpu_seconds(me);
        let (reference, reference_rows) = duckdb_direct(&csv, &reference_out)?;
        let (reference_cpu, _) = cpu_spent(before, cpu_seconds(me));
        std::fs::remove_file(&reference_out)?;
        anyhow::ensure!(
            reference_rows == rows,
            "DuckDB read {reference_rows} rows, expected {rows}"
        );

        settle()?;
        let (server_before, client_before) = (cpu_seconds(pid), cpu_seconds(me));
        let started = Instant::now();
        let (status, body) = if use_curl {
            upload_with_curl(&url, &server.token, &csv, args.rate).await?
        } else {
            upload_with_reqwest(&client, &url, &csv, bytes).await?
        };
        let upload = started.elapsed();
        let (server_cpu, _) = cpu_spent(server_before, cpu_seconds(pid));
        // The client is curl (a child of this process) or reqwest (this
        // process, otherwise idle meanwhile).
        let client_cpu = {
            let (own, children) = cpu_spent(client_before, cpu_seconds(me));
            own + children
        };
        anyhow::ensure!(status == 201, "upload failed: {status} {body}");
        let uploaded_rows = body["dataset"]["row_count"].as_u64().unwrap_or(0);
        anyhow::ensure!(
            uploaded_rows == rows,
            "server stored {uploaded_rows} rows, expected {rows}"
        );
        eprintln!(
            "{}: reference {:.2} s (CPU {reference_cpu:.2} s), upload {:.2} s (CPU: server {server_cpu:.2} s, client {client_cpu:.2} s)",
            if round == 0 {
                "warm-up (not counted)".to_owned()
            } else {
                format!("round {round}")
            },
            reference.as_secs_f64(),
            upload.as_secs_f64()
        );
        if round > 0 {
            measured.push((reference, upload));
            cpu.push(Cpu {
                reference: reference_cpu,
                server: server_cpu,
                client: client_cpu,
            });
        }
        if let Some(python) = &args.pyarrow {
            settle()?;
            let (took, pyarrow_rows) = pyarrow_direct(python, &csv, &reference_out)?;
            std::fs::remove_file(&reference_out)?;
            anyhow::ensure!(
                pyarrow_rows == rows,
                "pyarrow read {pyarrow_rows} rows, expected {rows}"
            );
            eprintln!("  pyarrow {:.2} s", took.as_secs_f64());
            if round > 0 {
                pyarrow_times.push(took.as_secs_f64());
            }
        }
    }
    let peak_rss = peak_rss_kib(pid).unwrap_or(0);
    settle()?;
    let alone_rss = duckdb_alone_peak_kib(&csv, &reference_out)?;

    server.stop().await?;
    let _ = std::fs::remove_dir_all(&data);
    std::fs::remove_file(&csv)?;

    let seconds = |pick: fn(&(Duration, Duration)) -> Duration| {
        let mut v: Vec<f64> = measured.iter().map(|m| pick(m).as_secs_f64()).collect();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        (v[0], (v[(n - 1) / 2] + v[n / 2]) / 2.0)
    };
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        let n = v.len();
        (v[(n - 1) / 2] + v[n / 2]) / 2.0
    };
    let reference_cpu = median(cpu.iter().map(|c| c.reference).collect());
    let server_cpu = median(cpu.iter().map(|c| c.server).collect());
    let client_cpu = median(cpu.iter().map(|c| c.client).collect());
    let upload_cpu = median(cpu.iter().map(|c| c.server + c.client).collect());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (reference_best, reference_median) = seconds(|m| m.0);
    let (upload_best, upload_median) = seconds(|m| m.1);
    let ratio = upload_median / reference_median;
    pyarrow_times.sort_by(f64::total_cmp);
    let pyarrow_median = (!pyarrow_times.is_empty()).then(|| {
        let n = pyarrow_times.len();
        (pyarrow_times[(n - 1) / 2] + pyarrow_times[n / 2]) / 2.0
    });
    println!();
    println!(
        "upload benchmark: {mb:.0} MB CSV, {rows} rows, DuckDB threads={THREADS} memory_limit={MEMORY_LIMIT}, client {}{}, {} rounds",
        if use_curl { "curl" } else { "reqwest" },
        args.rate
            .map(|r| format!(" sending at most {:.0} MB/s", r as f64 / 1e6))
            .unwrap_or_default(),
        args.rounds
    );
    println!("| measurement                          | median (s) | best (s) | MB/s (median) | ratio vs DuckDB (median / best) |");
    println!("|--------------------------------------|-----------:|---------:|--------------:|--------------------------------:|");
    println!(
        "| DuckDB CSV → Parquet, direct (ref.)  | {reference_median:>10.2} | {reference_best:>8.2} | {:>13.1} | {:>31} |",
        mb / reference_median,
        "1.00 / 1.00"
    );
    println!(
        "| HTTP upload → Parquet + catalogue    | {upload_median:>10.2} | {upload_best:>8.2} | {:>13.1} | {:>31} |",
        mb / upload_median,
        format!("{ratio:.2} / {:.2}", upload_best / reference_best)
    );
    if let Some(pyarrow) = pyarrow_median {
        println!(
            "| pyarrow read_csv → write_table        | {pyarrow:>10.2} | {:>8.2} | {:>13.1} | {:>31} |",
            pyarrow_times[0],
            mb / pyarrow,
            format!("upload / pyarrow {:.2}", upload_median / pyarrow)
        );
    }
    println!();
    println!("| CPU time (median)                    | CPU s    | ratio vs DuckDB |");
    println!("|--------------------------------------|---------:|----------------:|");
    println!(
        "| DuckDB's COPY, direct (ref.)         | {reference_cpu:>8.2} | {:>15} |",
        "1.00"
    );
    println!(
        "| the server over the upload           | {server_cpu:>8.2} | {:>15.2} |",
        server_cpu / reference_cpu
    );
    println!(
        "| the client sending it                | {client_cpu:>8.2} | {:>15.2} |",
        client_cpu / reference_cpu
    );
    println!(
        "| upload, server + client              | {upload_cpu:>8.2} | {:>15.2} |",
        upload_cpu / reference_cpu
    );
    println!(
        "On {cores} cores the upload cannot finish before (server + client CPU) / {cores} = {:.2} s \
         ({:.2}x the reference's median wall time), however well receipt and conversion overlap; \
         DuckDB's COPY kept {:.2} of the {cores} cores busy.",
        upload_cpu / cores as f64,
        upload_cpu / cores as f64 / reference_median,
        reference_cpu / reference_median
    );
    println!();
    println!("| server memory                        | MiB      |");
    println!("|--------------------------------------|---------:|");
    println!(
        "| RSS when ready (peak so far)         | {:>8.1} |",
        idle_rss as f64 / 1024.0
    );
    println!(
        "| peak RSS over the uploads            | {:>8.1} |",
        peak_rss as f64 / 1024.0
    );
    println!(
        "| DuckDB's COPY alone, peak RSS (ref.) | {:>8.1} |",
        alone_rss as f64 / 1024.0
    );
    println!();
    println!(
        "targets: median ratio ≤ 1.25 → {}; peak RSS ≤ 300 MiB → {}",
        if ratio <= 1.25 { "met" } else { "NOT met" },
        if peak_rss <= 300 * 1024 {
            "met"
        } else {
            "NOT met"
        }
    );
    if let Some(json) = &args.json {
        let bench = match args.shape {
            Shape::Simple => "ingest",
            Shape::Real => "ingest, real-world file",
        };
        let figure = |name: &str, reference_name: &str, unit: &str, measured, reference, target| {
            stack::report::Figure::new(name, reference_name, unit, measured, reference)
                .target(target)
        };
        let mut figures = vec![figure(
            "HTTP upload → Parquet + catalogue",
            "DuckDB COPY, direct",
            "s",
            upload_median,
            reference_median,
            Some(1.0),
        )];
        if let Some(pyarrow) = pyarrow_median {
            figures.push(figure(
                "HTTP upload vs pyarrow",
                "pyarrow read_csv → write_table",
                "s",
                upload_median,
                pyarrow,
                None,
            ));
        }
        let memory = figure(
            "server peak RSS over the uploads",
            "DuckDB COPY alone, peak RSS",
            "MiB",
            peak_rss as f64 / 1024.0,
            alone_rss as f64 / 1024.0,
            None,
        );
        let cpu = figure(
            "CPU time, server + client",
            "DuckDB COPY, CPU time",
            "CPU s",
            upload_cpu,
            reference_cpu,
            None,
        );
        let at = |bench: &str, figures| stack::report::Measurement {
            bench: bench.into(),
            size: mb,
            size_unit: "MB of CSV".into(),
            figures,
        };
        stack::report::write(
            json,
            &[
                at(bench, figures),
                at(&format!("upload memory ({bench})"), vec![memory]),
                at(&format!("upload CPU ({bench})"), vec![cpu]),
            ],
        )?;
    }
    Ok(())
}

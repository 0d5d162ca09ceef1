//! Fault injection over the whole stack: the app, restate-server, the MCP
//! server (local lakehouse) and a PostgreSQL server of the run's own, each a
//! real process. Clients upload a mix of datasets (CSV, TSV, JSON, NDJSON,
//! Parquet, gzip; small to several MB; a few that must be refused) with
//! auto-sync on, while the run, one after another:
//! - `kill -9`s the app in the middle of uploads and syncs, then restarts it;
//! - `kill -9`s restate-server mid-sync, then restarts it (same journal);
//! - `kill -9`s the MCP server mid-call, then restarts it;
//! - restarts Postgres the way a crash does (`pg_ctl stop -m immediate`);
//! - makes every Parquet download fail for a while (a proxy between the MCP
//!   server and the app's internal listener cuts and refuses connections);
//! - fills the disk past the upload floor for a while (a real file
//!   allocated on the data directory's file system).
//!
//! Clients behave as the API asks: each upload carries an `Idempotency-Key`,
//! and an answer lost to a dropped connection or a 5xx is sent again with
//! the same key; `503` waits its `Retry-After`, `507` a moment.
//!
//! At the end every promise is checked (see [`Report::checks`]) and a table
//! of the faults and their outcomes is written. The `faults` binary runs it
//! on demand; `tests/faults.rs` runs a shortened form in CI.

use crate::{
    app::{personal_token, AppProcess},
    mcp::Mcp,
    postgres::PrivatePostgres,
    proxy::FaultyProxy,
    restate::{DataDir, Restate},
    wait,
};
use anyhow::Context;
use serde_json::{json, Value};
use sqlx::PgPool;
use std::{
    collections::{BTreeMap, HashMap, HashSet, VecDeque},
    io::Write,
    path::{Path, PathBuf},
    process::Stdio,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};
use uuid::Uuid;

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Uploads in all (about one in twenty is a file that must be refused).
    pub datasets: usize,
    /// Clients uploading at once.
    pub clients: usize,
    /// How long the faults that last "a while" last (failing downloads, a
    /// full disk).
    pub window: Duration,
    /// Where the run keeps its data and logs; a temporary directory if not
    /// given (kept when a check fails).
    pub dir: Option<PathBuf>,
}

impl Default for Plan {
    fn default() -> Self {
        Self {
            datasets: 200,
            clients: 20,
            window: Duration::from_secs(10),
            dir: None,
        }
    }
}

/// One fault as it happened.
#[derive(Debug, Clone)]
pub struct FaultOutcome {
    pub fault: String,
    /// Since the run started.
    pub at: Duration,
    /// How long the process was down, or the fault held.
    pub lasted: Duration,
    /// What was in flight when it hit, and what clients and syncs saw.
    pub during: String,
    /// From the fault's end until the next sync completed (`None`: none
    /// was pending, or none completed within two minutes).
    pub recovered_in: Option<Duration>,
    /// Whether it was injected and the stack came back from it.
    pub injected: bool,
}

/// One promise, checked at the end.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: &'static str,
    pub passed: bool,
    pub detail: String,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub plan: Plan,
    pub faults: Vec<FaultOutcome>,
    pub checks: Vec<Check>,
    pub tally: Tally,
    pub elapsed: Duration,
    /// Where the logs are.
    pub dir: PathBuf,
}

/// What the clients saw, attempt by attempt.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    pub attempts: usize,
    pub created: usize,
    pub replayed: usize,
    pub refused_as_meant: usize,
    pub busy: usize,
    pub disk_full: usize,
    pub lost: usize,
    pub server_errors: usize,
    pub unexpected: Vec<String>,
    pub by_format: BTreeMap<&'static str, usize>,
    pub bytes: u64,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.passed) && self.faults.iter().all(|f| f.injected)
    }

    /// The outcome table and the checks, as Markdown.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let t = &self.tally;
        let formats: Vec<String> = t
            .by_format
            .iter()
            .map(|(f, n)| format!("{n} {f}"))
            .collect();
        out.push_str(&format!(
            "Fault run: {} uploads ({}; {:.1} MB in all) from {} clients, auto-sync on, \
             finished in {:.0} s. Logs: `{}`.\n\n",
            self.plan.datasets,
            formats.join(", "),
            t.bytes as f64 / 1e6,
            self.plan.clients,
            self.elapsed.as_secs_f64(),
            self.dir.display()
        ));
        out.push_str(&format!(
            "Client attempts: {} — {} created, {} answered again from their key, {} refused as \
             meant (bad files), {} waited for a turn (503), {} refused for disk (507), {} lost \
             their answer (connection), {} got a 5xx; {} unexpected.\n\n",
            t.attempts,
            t.created,
            t.replayed,
            t.refused_as_meant,
            t.busy,
            t.disk_full,
            t.lost,
            t.server_errors,
            t.unexpected.len()
        ));
        out.push_str("| fault | at | lasted | in flight, and what it caused | recovered (next sync done) |\n");
        out.push_str("|---|---:|---:|---|---:|\n");
        for f in &self.faults {
            out.push_str(&format!(
                "| {} | {:.1} s | {:.1} s | {} | {} |\n",
                f.fault,
                f.at.as_secs_f64(),
                f.lasted.as_secs_f64(),
                f.during,
                f.recovered_in
                    .map_or("nothing pending".to_owned(), |d| format!(
                        "{:.1} s",
                        d.as_secs_f64()
                    ))
            ));
        }
        out.push_str("\n| check | result | detail |\n|---|---|---|\n");
        for c in &self.checks {
            out.push_str(&format!(
                "| {} | {} | {} |\n",
                c.name,
                if c.passed { "pass" } else { "**FAIL**" },
                c.detail.replace('|', "\\|").replace('\n', " ")
            ));
        }
        if !t.unexpected.is_empty() {
            out.push_str("\nUnexpected answers:\n");
            for u in t.unexpected.iter().take(20) {
                out.push_str(&format!("- {u}\n"));
            }
        }
        out
    }
}

// ---------------------------------------------------------------------------
// The uploads

/// One upload the clients make.
struct Spec {
    key: String,
    file_name: String,
    format: &'static str,
    bytes: Vec<u8>,
    /// The rows it holds; `None` for a file that must be refused (4xx).
    rows: Option<i64>,
}

/// Row `i` of dataset `salt`: unique by `id`, nulls, negative amounts, a
/// time zone, text with a comma and a quote.
struct Row {
    id: i64,
    customer: String,
    amount: Option<f64>,
    seen_at: String,
    note: String,
}

fn row(i: usize, salt: usize) -> Row {
    Row {
        id: i as i64,
        customer: format!("C{:05}", (i * 7 + salt) % 50_000),
        amount: (!i.is_multiple_of(7)).then(|| ((i as f64) % 2000.0 - 1000.0) + 0.25),
        seen_at: format!(
            "2024-03-{:02}T{:02}:15:00+02:00",
            i % 28 + 1,
            (i + salt) % 24
        ),
        note: format!("batch {salt}, row {i} \"ok\""),
    }
}

fn delimited(rows: usize, salt: usize, sep: char) -> Vec<u8> {
    let mut out = format!("id{sep}customer{sep}amount{sep}seen_at{sep}note\n");
    for i in 0..rows {
        let r = row(i, salt);
        let amount = r.amount.map_or("NA".to_owned(), |a| a.to_string());
        let note = if sep == ',' {
            format!("\"{}\"", r.note.replace('"', "\"\""))
        } else {
            r.note.replace('"', "'")
        };
        out.push_str(&format!(
            "{}{sep}{}{sep}{amount}{sep}{}{sep}{note}\n",
            r.id, r.customer, r.seen_at
        ));
    }
    out.into_bytes()
}

fn json_row(r: &Row) -> Value {
    json!({"id": r.id, "customer": r.customer, "amount": r.amount, "seen_at": r.seen_at, "note": r.note})
}

fn ndjson(rows: usize, salt: usize) -> Vec<u8> {
    let mut out = String::new();
    for i in 0..rows {
        out.push_str(&json_row(&row(i, salt)).to_string());
        out.push('\n');
    }
    out.into_bytes()
}

fn json_array(rows: usize, salt: usize) -> Vec<u8> {
    let all: Vec<Value> = (0..rows).map(|i| json_row(&row(i, salt))).collect();
    serde_json::to_vec(&all).expect("JSON")
}

fn parquet(rows: usize, salt: usize) -> anyhow::Result<Vec<u8>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("data.parquet");
    let conn = duckdb::Connection::open_in_memory()?;
    conn.execute_batch(&format!(
        "COPY (SELECT i AS id, printf('C%05d', (i * 7 + {salt}) % 50000) AS customer,
                      CASE WHEN i % 7 = 0 THEN NULL ELSE (i % 2000) - 1000 + 0.25 END AS amount,
                      to_timestamp(1709280900 + (i % 500) * 3600) AS seen_at,
                      printf('batch {salt}, row %d \"ok\"', i) AS note
                 FROM range({rows}) t(i))
           TO '{}' (FORMAT parquet)",
        path.display()
    ))?;
    Ok(std::fs::read(&path)?)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).expect("gzip in memory");
    encoder.finish().expect("gzip in memory")
}

/// The run's uploads: formats in turn, mostly small, some medium, every
/// tenth several MB, and every twentieth a file that must be refused.
fn specs(count: usize) -> anyhow::Result<Vec<Spec>> {
    let mut specs = Vec::with_capacity(count);
    for i in 0..count {
        let key = Uuid::new_v4().to_string();
        if i % 20 == 19 {
            let (file_name, bytes): (&str, Vec<u8>) = match (i / 20) % 3 {
                0 => ("ragged.csv", b"a,b\n1,2\n3,4,5\n6,7\n".to_vec()),
                1 => ("binary.csv", (0u8..=255).cycle().take(4096).collect()),
                _ => ("empty.csv", Vec::new()),
            };
            specs.push(Spec {
                key,
                file_name: format!("{i:03}-{file_name}"),
                format: "bad",
                bytes,
                rows: None,
            });
            continue;
        }
        let rows = match i % 10 {
            9 => 120_000,
            3 | 6 => 15_000,
            _ => 50 + (i * 37) % 2_000,
        };
        let (format, ext, bytes) = match i % 7 {
            0 => ("csv", "csv", delimited(rows, i, ',')),
            1 => ("tsv", "tsv", delimited(rows, i, '\t')),
            2 => ("json", "json", json_array(rows, i)),
            3 => ("ndjson", "ndjson", ndjson(rows, i)),
            4 => ("parquet", "parquet", parquet(rows, i)?),
            5 => ("csv.gz", "csv.gz", gzip(&delimited(rows, i, ','))),
            _ => ("ndjson.gz", "ndjson.gz", gzip(&ndjson(rows, i))),
        };
        specs.push(Spec {
            key,
            file_name: format!("{i:03}-orders.{ext}"),
            format,
            bytes,
            rows: Some(rows as i64),
        });
    }
    Ok(specs)
}

/// The uploads in batches of `batch`, the biggest spread so that each batch
/// (while they last) starts with one: its upload and sync take long enough
/// for the fault to meet them.
fn biggest_first_in_each_batch(specs: Vec<Spec>, batch: usize) -> Vec<Spec> {
    let mut by_size: Vec<Spec> = specs;
    by_size.sort_by_key(|s| std::cmp::Reverse(s.bytes.len()));
    let batches = by_size.len().div_ceil(batch).max(1);
    let mut bins: Vec<Vec<Spec>> = (0..batches).map(|_| Vec::new()).collect();
    // Round-robin from the biggest down: each batch gets its share of big
    // and small ones, the biggest first.
    for (i, spec) in by_size.into_iter().enumerate() {
        bins[i % batches].push(spec);
    }
    bins.into_iter().flatten().collect()
}

/// How one upload ended.
#[derive(Debug, Clone)]
enum Ending {
    Stored { id: Uuid, rows: i64 },
    Refused { status: u16, code: String },
    GaveUp(String),
}

/// One attempt's answer, when it came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Created,
    Replayed,
    RefusedAsMeant,
    Busy,
    DiskFull,
    Lost,
    ServerError,
    Unexpected,
}

struct Shared {
    started: Instant,
    base: String,
    client: reqwest::Client,
    queue: Mutex<VecDeque<Spec>>,
    endings: Mutex<Vec<(Spec, Ending)>>,
    attempts: Mutex<Vec<(Duration, Answer)>>,
    unexpected: Mutex<Vec<String>>,
    in_flight: AtomicUsize,
    done: AtomicUsize,
    /// How many of the queue's uploads clients may take so far: the run
    /// releases them in batches, one before each fault, so every fault
    /// meets uploads and syncs in progress.
    released: AtomicUsize,
    taken: AtomicUsize,
}

impl Shared {
    fn note(&self, answer: Answer) {
        self.attempts
            .lock()
            .expect("attempts")
            .push((self.started.elapsed(), answer));
    }
}

/// Sends one upload until it has a definite answer.
async fn upload_one(shared: &Shared, spec: &Spec) -> Ending {
    let deadline = Instant::now() + Duration::from_secs(600);
    let url = format!("{}/api/datasets", shared.base);
    loop {
        if Instant::now() > deadline {
            return Ending::GaveUp("no definite answer within 10 minutes".to_owned());
        }
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(spec.bytes.clone()).file_name(spec.file_name.clone()),
        );
        shared.in_flight.fetch_add(1, Ordering::SeqCst);
        let sent = shared
            .client
            .post(&url)
            .header("Accept", "application/json")
            .header("Idempotency-Key", &spec.key)
            .multipart(form)
            .send()
            .await;
        let answered = match sent {
            Ok(r) => {
                let status = r.status().as_u16();
                let retry_after = r
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok());
                r.text().await.map(|body| (status, retry_after, body))
            }
            Err(e) => Err(e),
        };
        shared.in_flight.fetch_sub(1, Ordering::SeqCst);
        let (status, retry_after, body) = match answered {
            Ok(a) => a,
            Err(_) => {
                // The connection dropped (the app was killed): send it again
                // with its key once something answers.
                shared.note(Answer::Lost);
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let parsed: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        match status {
            200 | 201 => {
                shared.note(if status == 201 {
                    Answer::Created
                } else {
                    Answer::Replayed
                });
                let id = parsed["dataset"]["id"]
                    .as_str()
                    .and_then(|s| Uuid::parse_str(s).ok());
                let rows = parsed["dataset"]["row_count"].as_i64();
                return match (id, rows) {
                    (Some(id), Some(rows)) => Ending::Stored { id, rows },
                    _ => Ending::GaveUp(format!("{status} without a dataset: {body}")),
                };
            }
            503 => {
                shared.note(Answer::Busy);
                let wait = retry_after.map_or(Duration::from_secs(1), Duration::from_secs);
                tokio::time::sleep(wait.min(Duration::from_secs(5))).await;
            }
            507 => {
                shared.note(Answer::DiskFull);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            400..=499 if spec.rows.is_none() => {
                shared.note(Answer::RefusedAsMeant);
                return Ending::Refused {
                    status,
                    code: parsed["code"].as_str().unwrap_or_default().to_owned(),
                };
            }
            500..=599 => {
                // The server's passing trouble (Postgres restarting): again,
                // with the same key.
                shared.note(Answer::ServerError);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            _ => {
                shared.note(Answer::Unexpected);
                shared.unexpected.lock().expect("unexpected").push(format!(
                    "{} ({}): {status} {body}",
                    spec.file_name, spec.format
                ));
                return Ending::GaveUp(format!("{status} {body}"));
            }
        }
    }
}

async fn client_loop(shared: Arc<Shared>) {
    loop {
        let next = {
            let mut queue = shared.queue.lock().expect("queue");
            if queue.is_empty() {
                return;
            }
            if shared.taken.load(Ordering::SeqCst) < shared.released.load(Ordering::SeqCst) {
                shared.taken.fetch_add(1, Ordering::SeqCst);
                queue.pop_front()
            } else {
                None
            }
        };
        let Some(spec) = next else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        let ending = upload_one(&shared, &spec).await;
        shared.done.fetch_add(1, Ordering::SeqCst);
        shared.endings.lock().expect("endings").push((spec, ending));
    }
}

// ---------------------------------------------------------------------------
// The stack

struct Stack {
    pg: PrivatePostgres,
    db: PgPool,
    restate: Restate,
    mcp: Mcp,
    proxy: FaultyProxy,
    app: Option<AppProcess>,
    app_port: u16,
    app_env: HashMap<String, String>,
    app_log: PathBuf,
    data: PathBuf,
    lakehouse: PathBuf,
}

const ADMIN_EMAIL: &str = "faults@example.org";
const ADMIN_PASSWORD: &str = "fault run admin password";
/// Headroom under the free space at start for what the run itself writes.
const DISK_HEADROOM: u64 = 4 << 30;

fn free_bytes(path: &Path) -> anyhow::Result<u64> {
    let out = std::process::Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(path)
        .output()
        .context("df")?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .context("df's answer")
}

impl Stack {
    async fn start(dir: &Path) -> anyhow::Result<Self> {
        let pg = PrivatePostgres::started().await?;
        let database_url = pg.create_database("faults").await?;

        let restate_dir = dir.join("restate");
        std::fs::create_dir_all(&restate_dir)?;
        let mut restate = Restate::at(
            wait::free_port(),
            wait::free_port(),
            wait::free_port(),
            DataDir::Kept(restate_dir),
        );
        restate.start().await?;

        let internal_port = wait::free_port();
        let proxy = FaultyProxy::start(([127, 0, 0, 1], internal_port).into()).await?;
        let lakehouse = dir.join("lakehouse");
        std::fs::create_dir_all(&lakehouse)?;
        let mut mcp = Mcp::process()
            .with_app_internal_port(proxy.port)
            .with_lakehouse(DataDir::Kept(lakehouse.clone()));
        mcp.start().await?;

        let data = dir.join("data");
        std::fs::create_dir_all(&data)?;
        let floor = free_bytes(&data)?.saturating_sub(DISK_HEADROOM);
        let vars: HashMap<String, String> = [
            ("DATABASE_URL", database_url.clone()),
            ("DATA_STORAGE_PATH", data.display().to_string()),
            ("ADMIN_EMAIL", ADMIN_EMAIL.to_owned()),
            ("ADMIN_PASSWORD", ADMIN_PASSWORD.to_owned()),
            ("RESTATE_INGRESS_URL", restate.ingress_url()),
            ("RESTATE_ADMIN_URL", restate.admin_url()),
            ("RESTATE_IDENTITY_KEY", restate.identity_key.clone()),
            // The same endpoint across restarts, as a deployment has.
            (
                "RESTATE_ENDPOINT_ADDR",
                format!("127.0.0.1:{}", wait::free_port()),
            ),
            ("INTERNAL_ADDR", format!("127.0.0.1:{internal_port}")),
            // The MCP server downloads through the proxy.
            ("INTERNAL_BASE_URL", proxy.url()),
            ("MCP_SERVER_URL", mcp.url()),
            ("MCP_API_KEY", mcp.key().to_owned()),
            ("DATABRICKS_SYNC_ENABLED", "true".to_owned()),
            ("DATABRICKS_AUTO_SYNC", "true".to_owned()),
            // A step retries for a minute, longer than any fault here lasts.
            ("DATABRICKS_RETRY_ATTEMPTS", "30".to_owned()),
            ("DATABRICKS_RETRY_INTERVAL", "2".to_owned()),
            ("SYNC_RECONCILE_INTERVAL_SECS", "5".to_owned()),
            ("SYNC_RECONCILE_GRACE_SECS", "20".to_owned()),
            // One process, so at start-up no upload of another is in flight:
            // a file a killed upload left is removed at once.
            ("STORAGE_ORPHAN_GRACE_SECS", "0".to_owned()),
            ("UPLOAD_MIN_FREE_DISK", floor.to_string()),
            ("RUST_LOG", "info".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let mut stack = Self {
            db: sqlx::postgres::PgPoolOptions::new()
                .max_connections(4)
                .acquire_timeout(Duration::from_secs(10))
                .connect_lazy(&database_url)?,
            pg,
            restate,
            mcp,
            proxy,
            app: None,
            app_port: wait::free_port(),
            app_env: vars,
            app_log: dir.join("app.log"),
            data,
            lakehouse,
        };
        stack.start_app().await?;
        Ok(stack)
    }

    async fn start_app(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.app_log)?;
        self.app = Some(
            AppProcess::start(
                self.app_port,
                &self.app_env,
                Stdio::from(log),
                Duration::from_secs(60),
            )
            .await?,
        );
        Ok(())
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.app_port)
    }

    async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(&self.db)
            .await
            .unwrap_or(-1)
    }

    async fn synced(&self) -> i64 {
        self.count("SELECT count(*) FROM datasets WHERE sync_status::text = 'synced'")
            .await
    }

    async fn syncing(&self) -> i64 {
        self.count(
            "SELECT count(*) FROM datasets WHERE sync_status::text IN ('queued', 'syncing', 'retrying')",
        )
        .await
    }
}

// ---------------------------------------------------------------------------
// The faults

#[derive(Debug, Clone, Copy)]
enum Fault {
    KillApp,
    KillRestate,
    KillMcp,
    RestartPostgres,
    FailDownloads,
    FillDisk,
}

const FAULTS: [Fault; 6] = [
    Fault::KillApp,
    Fault::KillRestate,
    Fault::KillMcp,
    Fault::RestartPostgres,
    Fault::FailDownloads,
    Fault::FillDisk,
];

/// Waits until a sync is under way and, if `upload` is set, an upload too,
/// so a fault hits work in progress, not an idle stack; after `within`,
/// either will do (and after twice that, nothing). Says what was in flight.
async fn until_busy(stack: &Stack, shared: &Shared, upload: bool, within: Duration) -> String {
    let started = Instant::now();
    loop {
        let syncing = stack.syncing().await;
        let uploading = shared.in_flight.load(Ordering::SeqCst);
        let waited = started.elapsed();
        let both = syncing > 0 && (!upload || uploading > 0);
        let either = syncing > 0 || uploading > 0;
        if both || (waited > within && either) || waited > 2 * within {
            return format!("{uploading} uploads and {syncing} syncs in flight");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// From now until the next sync completes, if one is pending.
async fn recovery(stack: &Stack, since: Instant) -> Option<Duration> {
    let before = stack.synced().await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if stack.synced().await > before {
            return Some(since.elapsed());
        }
        if stack.syncing().await == 0
            && stack
                .count("SELECT count(*) FROM datasets WHERE sync_status::text = 'pending'")
                .await
                <= 0
        {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

/// What clients and syncs saw from `from` on.
async fn consequences(stack: &Stack, shared: &Shared, from: Duration, to: Duration) -> String {
    let attempts = shared.attempts.lock().expect("attempts").clone();
    let count = |what: Answer| {
        attempts
            .iter()
            .filter(|(at, a)| *a == what && *at >= from && *at <= to)
            .count()
    };
    let mut seen = Vec::new();
    for (what, label) in [
        (
            Answer::Lost,
            "lost their answer (sent again with their key)",
        ),
        (Answer::ServerError, "got a 5xx (sent again)"),
        (Answer::DiskFull, "were refused 507 (sent again later)"),
        (Answer::Busy, "waited for a turn"),
    ] {
        let n = count(what);
        if n > 0 {
            seen.push(format!("{n} uploads {label}"));
        }
    }
    let since_ms = (to.saturating_sub(from)).as_millis() as i64;
    let retried: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM sync_events WHERE outcome = 'retrying'
           AND started_at >= now() - make_interval(secs => $1::double precision / 1000)",
    )
    .bind(since_ms + 2_000)
    .fetch_one(&stack.db)
    .await
    .unwrap_or(0);
    if retried > 0 {
        seen.push(format!("{retried} sync steps failed and were retried"));
    }
    if seen.is_empty() {
        "nothing visible to clients".to_owned()
    } else {
        seen.join("; ")
    }
}

async fn inject(
    fault: Fault,
    stack: &mut Stack,
    shared: &Shared,
    window: Duration,
) -> anyhow::Result<FaultOutcome> {
    let busy_within = Duration::from_secs(10);
    let (name, in_flight, held) = match fault {
        Fault::KillApp => {
            let in_flight = until_busy(stack, shared, true, busy_within).await;
            let app = stack.app.take().context("the app runs")?;
            let pid = app.pid();
            let down = Instant::now();
            app.kill();
            tokio::time::sleep(Duration::from_secs(1)).await;
            stack.start_app().await?;
            (
                format!("`kill -9` the app (pid {pid}), restart"),
                in_flight,
                down.elapsed(),
            )
        }
        Fault::KillRestate => {
            let in_flight = until_busy(stack, shared, false, busy_within).await;
            let pid = stack.restate.pid().unwrap_or(0);
            let down = Instant::now();
            stack.restate.kill();
            tokio::time::sleep(Duration::from_secs(1)).await;
            stack.restate.start().await?;
            (
                format!("`kill -9` restate-server (pid {pid}), restart"),
                in_flight,
                down.elapsed(),
            )
        }
        Fault::KillMcp => {
            let in_flight = until_busy(stack, shared, false, busy_within).await;
            let pid = stack.mcp.pid().unwrap_or(0);
            let down = Instant::now();
            stack.mcp.stop().await?;
            tokio::time::sleep(Duration::from_secs(1)).await;
            stack.mcp.start().await?;
            (
                format!("`kill -9` the MCP server (pid {pid}), restart"),
                in_flight,
                down.elapsed(),
            )
        }
        Fault::RestartPostgres => {
            let in_flight = until_busy(stack, shared, true, busy_within).await;
            let down = Instant::now();
            stack.pg.restart().await?;
            (
                "restart Postgres (`pg_ctl stop -m immediate`, start)".to_owned(),
                in_flight,
                down.elapsed(),
            )
        }
        Fault::FailDownloads => {
            let in_flight = until_busy(stack, shared, false, busy_within).await;
            let before = stack.proxy.refused();
            let held = Instant::now();
            stack.proxy.set_failing(true);
            tokio::time::sleep(window).await;
            stack.proxy.set_failing(false);
            let refused = stack.proxy.refused() - before;
            (
                "the MCP server's Parquet downloads fail (cut and 503)".to_owned(),
                format!("{in_flight}; {refused} download connections cut or refused"),
                held.elapsed(),
            )
        }
        Fault::FillDisk => {
            let in_flight = until_busy(stack, shared, true, busy_within).await;
            let floor: u64 = stack.app_env["UPLOAD_MIN_FREE_DISK"].parse()?;
            let ballast = stack.data.join("ballast");
            let size = free_bytes(&stack.data)?.saturating_sub(floor) + (64 << 20);
            let held = Instant::now();
            let status = std::process::Command::new("fallocate")
                .args(["-l", &size.to_string()])
                .arg(&ballast)
                .status()
                .context("fallocate")?;
            anyhow::ensure!(
                status.success(),
                "fallocate -l {size} {}",
                ballast.display()
            );
            tokio::time::sleep(window).await;
            std::fs::remove_file(&ballast)?;
            (
                format!(
                    "the disk filled past the upload floor ({:.1} GB allocated)",
                    size as f64 / 1e9
                ),
                in_flight,
                held.elapsed(),
            )
        }
    };
    let ended = Instant::now();
    let at = ended.duration_since(shared.started).saturating_sub(held);
    let recovered_in = recovery(stack, ended).await;
    let to = shared.started.elapsed();
    let during = format!(
        "{in_flight} → {}",
        consequences(stack, shared, at, to).await
    );
    Ok(FaultOutcome {
        fault: name,
        at,
        lasted: held,
        during,
        recovered_in,
        injected: true,
    })
}

// ---------------------------------------------------------------------------
// The checks

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

fn check(name: &'static str, passed: bool, detail: impl Into<String>) -> Check {
    Check {
        name,
        passed,
        detail: detail.into(),
    }
}

/// `a.b.c` → `"a"."b"."c"`.
fn quoted(table: &str) -> String {
    table
        .split('.')
        .map(|p| format!("\"{}\"", p.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(".")
}

/// A dataset's row, as the checks read it.
#[derive(sqlx::FromRow)]
struct DatasetRow {
    id: Uuid,
    upload_key: Option<String>,
    status: String,
    row_count: i64,
    bronze_table: Option<String>,
    silver_table: Option<String>,
    sync_error: Option<String>,
}

async fn checks(stack: &Stack, endings: &[(Spec, Ending)]) -> anyhow::Result<Vec<Check>> {
    let mut out = Vec::new();
    let db = &stack.db;

    // Every upload had a definite answer, the one it was meant to have.
    let gave_up: Vec<String> = endings
        .iter()
        .filter_map(|(s, e)| match e {
            Ending::GaveUp(why) => Some(format!("{}: {why}", s.file_name)),
            Ending::Refused { status, code } if s.rows.is_some() => {
                Some(format!("{}: refused {status} {code}", s.file_name))
            }
            Ending::Stored { .. } if s.rows.is_none() => Some(format!("{}: stored", s.file_name)),
            _ => None,
        })
        .collect();
    let stored: Vec<(&Spec, Uuid, i64)> = endings
        .iter()
        .filter_map(|(s, e)| match e {
            Ending::Stored { id, rows } => Some((s, *id, *rows)),
            _ => None,
        })
        .collect();
    out.push(check(
        "every upload got its answer (201, or 4xx for a bad file)",
        gave_up.is_empty(),
        if gave_up.is_empty() {
            format!(
                "{} stored, {} refused as meant",
                stored.len(),
                endings.len() - stored.len()
            )
        } else {
            gave_up.join("; ")
        },
    ));

    // No upload that got a 201 is lost; each made exactly one dataset.
    let rows: Vec<DatasetRow> = sqlx::query_as(
            "SELECT id, upload_key, sync_status::text AS status, row_count, bronze_table, silver_table, sync_error
               FROM datasets",
        )
        .fetch_all(db)
        .await?;
    let by_id: HashMap<Uuid, _> = rows.iter().map(|r| (r.id, r)).collect();
    let mut lost = Vec::new();
    for (spec, id, rows_answered) in &stored {
        match by_id.get(id) {
            None => lost.push(format!("{} ({id})", spec.file_name)),
            Some(r)
                if r.upload_key.as_deref() != Some(spec.key.as_str())
                    || r.row_count != *rows_answered
                    || Some(r.row_count) != spec.rows =>
            {
                lost.push(format!(
                    "{}: stored {} rows under key {:?}",
                    spec.file_name, r.row_count, r.upload_key
                ))
            }
            Some(_) => {}
        }
    }
    out.push(check(
        "no upload that got a 201 is lost (row count as sent)",
        lost.is_empty(),
        if lost.is_empty() {
            format!("{} of {} present", stored.len(), stored.len())
        } else {
            lost.join("; ")
        },
    ));
    let mut per_key: HashMap<Option<&str>, usize> = HashMap::new();
    for r in &rows {
        *per_key.entry(r.upload_key.as_deref()).or_default() += 1;
    }
    let doubled: Vec<String> = per_key
        .iter()
        .filter(|(k, n)| k.is_none() || **n > 1)
        .map(|(k, n)| format!("{k:?}: {n}"))
        .collect();
    out.push(check(
        "one dataset per upload, none doubled by a retry",
        doubled.is_empty() && rows.len() == stored.len(),
        format!(
            "{} datasets for {} stored uploads{}",
            rows.len(),
            stored.len(),
            if doubled.is_empty() {
                String::new()
            } else {
                format!("; {}", doubled.join(", "))
            }
        ),
    ));
    let refused_keys: HashSet<&str> = endings
        .iter()
        .filter(|(_, e)| matches!(e, Ending::Refused { .. }))
        .map(|(s, _)| s.key.as_str())
        .collect();
    let left: Vec<&str> = rows
        .iter()
        .filter_map(|r| r.upload_key.as_deref())
        .filter(|k| refused_keys.contains(k))
        .collect();
    out.push(check(
        "an upload that got an error left no dataset behind",
        left.is_empty(),
        format!("{} refused, {} left a row", refused_keys.len(), left.len()),
    ));

    // Synced, with one bronze and one silver table of the right size.
    let not_synced: Vec<String> = rows
        .iter()
        .filter(|r| r.status != "synced")
        .map(|r| {
            format!(
                "{} {}: {}",
                r.id,
                r.status,
                r.sync_error.clone().unwrap_or_default()
            )
        })
        .collect();
    out.push(check(
        "every dataset is synced",
        not_synced.is_empty(),
        if not_synced.is_empty() {
            format!("{} of {}", rows.len(), rows.len())
        } else {
            not_synced.join("; ")
        },
    ));
    let tenant: Option<Uuid> = sqlx::query_scalar("SELECT tenant_id FROM datasets LIMIT 1")
        .fetch_optional(db)
        .await?;
    if let Some(tenant) = tenant {
        let tables = stack
            .mcp
            .call("list_tables", json!({"tenant_id": tenant.to_string()}))
            .await
            .map_err(|e| anyhow::anyhow!("list_tables: {e}"))?;
        let listed: HashSet<String> = tables["tables"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["full_name"].as_str().map(str::to_owned))
            .collect();
        let listed_count = tables["tables"].as_array().map_or(0, Vec::len);
        let expected: HashSet<String> = rows
            .iter()
            .flat_map(|r| [r.bronze_table.clone(), r.silver_table.clone()])
            .flatten()
            .collect();
        let mut wrong = Vec::new();
        for r in &rows {
            let expected = r.row_count;
            for table in [&r.bronze_table, &r.silver_table] {
                let Some(table) = table else {
                    wrong.push(format!("{}: a table is missing", r.id));
                    continue;
                };
                let counted = stack
                    .mcp
                    .call(
                        "query",
                        json!({"tenant_id": tenant.to_string(), "sql": format!("SELECT count(*) AS n FROM {}", quoted(table))}),
                    )
                    .await;
                match counted {
                    Ok(v) if v["rows"][0]["n"].as_i64() == Some(expected) => {}
                    Ok(v) => wrong.push(format!(
                        "{table}: {} rows, expected {expected}",
                        v["rows"][0]["n"]
                    )),
                    Err(e) => wrong.push(format!("{table}: {e}")),
                }
            }
        }
        let named_ok = listed == expected;
        out.push(check(
            "exactly one bronze and one silver table each, every row once",
            wrong.is_empty() && listed_count == 2 * rows.len() && named_ok,
            format!(
                "{listed_count} tables listed for {} datasets{}",
                rows.len(),
                if wrong.is_empty() {
                    String::new()
                } else {
                    format!("; {}", wrong.join("; "))
                }
            ),
        ));
    }

    // Each step succeeded once per sync.
    let repeated: Vec<(Uuid, String, i64)> = sqlx::query_as(
        "SELECT dataset_id, step::text, count(*) FROM sync_events
          WHERE outcome::text = 'succeeded' AND step::text IN ('bronze', 'silver', 'metadata')
          GROUP BY 1, 2 HAVING count(*) <> 1",
    )
    .fetch_all(db)
    .await?;
    out.push(check(
        "each sync step succeeded exactly once",
        repeated.is_empty(),
        if repeated.is_empty() {
            "bronze, silver and metadata once each per dataset".to_owned()
        } else {
            repeated
                .iter()
                .map(|(d, s, n)| format!("{d} {s}: {n}"))
                .collect::<Vec<_>>()
                .join("; ")
        },
    ));

    // No orphan or temporary file.
    let ids: HashSet<Uuid> = rows.iter().map(|r| r.id).collect();
    let strays: Vec<String> = files_under(&stack.data.join("datasets"))
        .into_iter()
        .filter(|p| {
            let stem = p
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".parquet"));
            !stem
                .and_then(|s| Uuid::parse_str(s).ok())
                .is_some_and(|id| ids.contains(&id))
        })
        .chain(
            files_under(&stack.data.join("tmp"))
                .into_iter()
                .filter(|p| p.extension().is_none_or(|e| e != "lock")),
        )
        .chain(files_under(&stack.lakehouse).into_iter().filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            name.ends_with(".partial") || p.starts_with(stack.lakehouse.join("tmp"))
        }))
        .map(|p| p.display().to_string())
        .collect();
    let dataset_files = files_under(&stack.data.join("datasets")).len();
    out.push(check(
        "no orphan or temporary file",
        strays.is_empty() && dataset_files == rows.len(),
        if strays.is_empty() {
            format!(
                "{dataset_files} dataset files for {} datasets; scratch and lakehouse tmp empty",
                rows.len()
            )
        } else {
            strays.join(", ")
        },
    ));

    let undispatched = stack
        .count("SELECT count(*) FROM sync_requests WHERE dispatched_at IS NULL")
        .await;
    out.push(check(
        "no sync request left undispatched",
        undispatched == 0,
        format!("{undispatched} undispatched"),
    ));
    let listed = stack
        .restate
        .cli(&["invocations", "list"])
        .unwrap_or_else(|e| format!("{e}"));
    let stuck = listed.lines().filter(|l| l.contains("DatasetSync")).count();
    out.push(check(
        "`restate invocations list` shows no stuck invocation",
        stuck == 0 && !listed.contains("failed:"),
        if stuck == 0 {
            "none listed".to_owned()
        } else {
            format!("{stuck}: {listed}")
        },
    ));
    Ok(out)
}

// ---------------------------------------------------------------------------
// The run

/// Runs the plan: starts the stack, uploads while injecting every fault once,
/// waits for every sync to settle, then checks.
pub async fn run(plan: Plan) -> anyhow::Result<Report> {
    let started = Instant::now();
    let (dir, temp) = match &plan.dir {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            (d.clone(), None)
        }
        None => {
            let t = tempfile::Builder::new().prefix("st-faults-").tempdir()?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    let batch = plan.datasets.div_ceil(FAULTS.len() + 1).max(1);
    let specs = biggest_first_in_each_batch(specs(plan.datasets)?, batch);
    let mut tally = Tally::default();
    for s in &specs {
        *tally.by_format.entry(s.format).or_default() += 1;
        tally.bytes += s.bytes.len() as u64;
    }
    let mut stack = Stack::start(&dir).await?;
    let token = personal_token(&stack.base(), ADMIN_EMAIL, ADMIN_PASSWORD).await?;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("authorization", format!("Bearer {token}").parse()?);
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(180))
        .build()?;
    let shared = Arc::new(Shared {
        started,
        base: stack.base(),
        client,
        queue: Mutex::new(specs.into()),
        endings: Mutex::new(Vec::new()),
        attempts: Mutex::new(Vec::new()),
        unexpected: Mutex::new(Vec::new()),
        in_flight: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
        released: AtomicUsize::new(0),
        taken: AtomicUsize::new(0),
    });
    let clients: Vec<_> = (0..plan.clients)
        .map(|_| tokio::spawn(client_loop(shared.clone())))
        .collect();

    // A batch of uploads before each fault, and the rest after the last.
    let mut faults = Vec::new();
    for (k, fault) in FAULTS.into_iter().enumerate() {
        shared.released.store((k + 1) * batch, Ordering::SeqCst);
        match inject(fault, &mut stack, &shared, plan.window).await {
            Ok(outcome) => faults.push(outcome),
            Err(e) => faults.push(FaultOutcome {
                fault: format!("{fault:?}: could not be injected or recovered from: {e:#}"),
                at: started.elapsed(),
                lasted: Duration::ZERO,
                during: String::new(),
                recovered_in: None,
                injected: false,
            }),
        }
    }
    shared.released.store(usize::MAX, Ordering::SeqCst);
    for c in clients {
        c.await?;
    }

    // Every sync settles (synced or failed for good) and the outbox drains.
    let _ = wait::until(Duration::from_secs(600), "every sync to settle", || async {
        let unsettled = stack
            .count(
                "SELECT count(*) FROM datasets WHERE sync_status::text NOT IN ('synced', 'failed')",
            )
            .await;
        let undispatched = stack
            .count("SELECT count(*) FROM sync_requests WHERE dispatched_at IS NULL")
            .await;
        (unsettled == 0 && undispatched == 0).then_some(())
    })
    .await;

    let endings = std::mem::take(&mut *shared.endings.lock().expect("endings"));
    let checks = checks(&stack, &endings).await?;
    for (_, answer) in shared.attempts.lock().expect("attempts").iter() {
        tally.attempts += 1;
        match answer {
            Answer::Created => tally.created += 1,
            Answer::Replayed => tally.replayed += 1,
            Answer::RefusedAsMeant => tally.refused_as_meant += 1,
            Answer::Busy => tally.busy += 1,
            Answer::DiskFull => tally.disk_full += 1,
            Answer::Lost => tally.lost += 1,
            Answer::ServerError => tally.server_errors += 1,
            Answer::Unexpected => {}
        }
    }
    tally.unexpected = shared.unexpected.lock().expect("unexpected").clone();
    if let Some(app) = stack.app.take() {
        app.stop(Duration::from_secs(10)).await;
    }
    let report = Report {
        plan,
        faults,
        checks,
        tally,
        elapsed: started.elapsed(),
        dir: dir.clone(),
    };
    if !report.passed() {
        // Keep the logs of a failed run.
        if let Some(t) = temp {
            let _ = t.keep();
        }
    }
    Ok(report)
}

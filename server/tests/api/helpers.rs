//! `spawn_app()`: a server on port 0 with its own database (cloned from the
//! migrated template) and data directory, both removed when the `TestApp` is
//! dropped. Its first admin is created from `ADMIN_EMAIL`/`ADMIN_PASSWORD`,
//! and `TestApp::client` is signed in as them through the real log-in form
//! (a cookie jar, and the app's `Origin` on every request, as a browser).

use app::model::{ErrorBody, UploadResponse};
use servicetsunami_server::{config::Settings, startup::Application};
use sqlx::PgPool;
use stack::TestDb;
use std::{collections::HashMap, net::SocketAddr, path::PathBuf, time::Duration};
use uuid::Uuid;

/// The first admin every test app has.
pub const ADMIN_EMAIL: &str = "admin@test.example.org";
pub const ADMIN_PASSWORD: &str = "admin test password";

pub struct TestApp {
    pub addr: SocketAddr,
    /// The internal listener (signed downloads, introspection, metrics).
    pub internal_addr: SocketAddr,
    /// The DatasetSync endpoint, when sync is on.
    pub sync_addr: Option<SocketAddr>,
    /// Signed in as the first admin (tenant A in the tenancy tests).
    pub client: reqwest::Client,
    pub db: PgPool,
    pub data_dir: tempfile::TempDir,
    /// Cancelling it stops the server (web, Restate endpoint, dispatcher).
    pub stop: tokio_util::sync::CancellationToken,
    /// Between the app and Postgres when `Options::cut_commits` asked for it.
    pub commit_cutter: Option<CommitCutter>,
    /// The settings it was started with (a replica starts from them).
    vars: HashMap<&'static str, String>,
    /// Dropped last: the database goes once the pool has closed.
    _database: TestDb,
}

/// A second server process on the same database and storage path (see
/// [`TestApp::replica`]); stopped when dropped.
pub struct Replica {
    pub addr: SocketAddr,
    pub stop: tokio_util::sync::CancellationToken,
}

impl Replica {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The server binary: cargo names it to tests; an example (the benches that
/// share these helpers) finds it built beside itself.
pub fn server_binary() -> String {
    if let Some(exe) = option_env!("CARGO_BIN_EXE_servicetsunami") {
        return exe.to_owned();
    }
    let me = std::env::current_exe().expect("this executable's path");
    me.ancestors()
        .skip(1)
        .take(3)
        .map(|dir| dir.join("servicetsunami"))
        .find(|candidate| candidate.is_file())
        .expect("the servicetsunami binary is built beside this one (cargo build --bins)")
        .to_string_lossy()
        .into_owned()
}

pub struct Options {
    pub upload_max_bytes: u64,
    /// More settings, e.g. the sync's (`DATABRICKS_SYNC_ENABLED`, `MCP_SERVER_URL`, …).
    pub env: Vec<(&'static str, String)>,
    /// Whether `client` signs in (false: it stays signed out).
    pub sign_in: bool,
    /// The app reaches Postgres through a [`CommitCutter`].
    pub cut_commits: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            upload_max_bytes: 64 << 20,
            env: Vec::new(),
            sign_in: true,
            cut_commits: false,
        }
    }
}

/// A TCP proxy in front of Postgres that, when armed, drops the connection
/// in place of Postgres's answer to the next COMMIT: the ambiguous commit
/// (the server committed, the client saw an error).
#[derive(Clone)]
pub struct CommitCutter {
    pub armed: std::sync::Arc<std::sync::atomic::AtomicBool>,
    pub cuts: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl CommitCutter {
    async fn start(upstream: SocketAddr) -> (u16, Self) {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cutter = Self {
            armed: Default::default(),
            cuts: Default::default(),
        };
        let shared = cutter.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                    continue;
                };
                let cutter = shared.clone();
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    let forth = tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                    });
                    // Postgres's answers, watched for the CommandComplete of a
                    // COMMIT: when armed, that one is swallowed and the
                    // connection dropped.
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match server_read.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let chunk = &buf[..n];
                        let committed = chunk.windows(7).any(|w| w == b"COMMIT\0");
                        if committed && cutter.armed.swap(false, Ordering::SeqCst) {
                            cutter.cuts.fetch_add(1, Ordering::SeqCst);
                            break;
                        }
                        if client_write.write_all(chunk).await.is_err() {
                            break;
                        }
                    }
                    forth.abort();
                });
            }
        });
        (port, cutter)
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

pub async fn spawn_app_with(options: Options) -> TestApp {
    let database = TestDb::create("st_test")
        .await
        .expect("Postgres for tests is reachable");
    let mut database_url = database.url.clone();
    let mut commit_cutter = None;
    if options.cut_commits {
        let mut url = reqwest::Url::parse(&database_url).expect("a database URL");
        let upstream: SocketAddr = format!(
            "{}:{}",
            url.host_str().expect("a host"),
            url.port().unwrap_or(5432)
        )
        .parse()
        .expect("a numeric host");
        let (port, cutter) = CommitCutter::start(upstream).await;
        url.set_port(Some(port)).expect("a port");
        // Plain text, so the proxy can see the COMMIT go by.
        url.query_pairs_mut().append_pair("sslmode", "disable");
        database_url = url.to_string();
        commit_cutter = Some(cutter);
    }
    let data_dir = tempfile::tempdir().expect("temp dir");

    let mut vars: HashMap<&'static str, String> = HashMap::from([
        ("DATABASE_URL", database_url.clone()),
        ("DATA_STORAGE_PATH", data_dir.path().display().to_string()),
        ("LEPTOS_SITE_ADDR", "127.0.0.1:0".to_owned()),
        ("UPLOAD_MAX_BYTES", options.upload_max_bytes.to_string()),
        ("DUCKDB_THREADS", "2".to_owned()),
        // Loopback is faster than any network: convert large CSVs as they
        // arrive anyway, so the tests go the way a remote client's upload goes.
        ("UPLOAD_STREAM_BELOW", "1000GB".to_owned()),
        ("RESTATE_ENDPOINT_ADDR", "127.0.0.1:0".to_owned()),
        ("INTERNAL_ADDR", "127.0.0.1:0".to_owned()),
        ("ADMIN_EMAIL", ADMIN_EMAIL.to_owned()),
        ("ADMIN_PASSWORD", ADMIN_PASSWORD.to_owned()),
        ("SIGNUP_OPEN", "true".to_owned()),
        // This test binary is not the server: queries run in the real one.
        ("QUERY_WORKER_PROGRAM", server_binary()),
    ]);
    vars.extend(options.env);
    // An empty value unsets a default (e.g. `ADMIN_EMAIL` for a first start
    // without an admin).
    vars.retain(|_, v| !v.is_empty());
    let settings = Settings::from_lookup(|k| vars.get(k).cloned()).expect("test settings");
    let started_with = vars.clone();
    let app = Application::build(settings)
        .await
        .expect("application starts");
    let addr = app.local_addr();
    let internal_addr = app.internal_addr();
    let sync_addr = app.sync_endpoint_addr();
    let stop = app.shutdown_token();
    tokio::spawn(app.run_until_stopped());

    let db = PgPool::connect(&database.url).await.expect("test pool");
    let mut app = TestApp {
        addr,
        internal_addr,
        sync_addr,
        client: bare_client(),
        db,
        data_dir,
        stop,
        commit_cutter,
        vars: started_with,
        _database: database,
    };
    app.client = if options.sign_in {
        app.sign_in(ADMIN_EMAIL, ADMIN_PASSWORD).await
    } else {
        app.browser()
    };
    app
}

/// No cookies, no default headers, no redirects followed.
pub fn bare_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(120))
        .build()
        .expect("client")
}

/// The value between `id="{id}">` and the next `<` in a page.
pub fn element_text(html: &str, id: &str) -> Option<String> {
    let start = html.find(&format!("id=\"{id}\""))?;
    let rest = &html[start..];
    let open = rest.find('>')? + 1;
    let close = rest[open..].find('<')?;
    Some(rest[open..open + close].to_owned())
}

impl TestApp {
    /// Another replica of this server, as behind one load balancer: the same
    /// database, storage path and settings, its own listeners. Its public
    /// URL is this one's (so browsers' origins match), and the download
    /// links its syncs sign point at this one's internal listener, which
    /// serves the same shared files.
    pub async fn replica(&self) -> Replica {
        let mut vars = self.vars.clone();
        for key in ["LEPTOS_SITE_ADDR", "INTERNAL_ADDR", "RESTATE_ENDPOINT_ADDR"] {
            vars.insert(key, "127.0.0.1:0".to_owned());
        }
        vars.insert("PUBLIC_URL", self.url(""));
        vars.insert(
            "INTERNAL_BASE_URL",
            format!("http://{}", self.internal_addr),
        );
        let settings = Settings::from_lookup(|k| vars.get(k).cloned()).expect("replica settings");
        let app = Application::build(settings)
            .await
            .expect("the replica starts");
        let addr = app.local_addr();
        let stop = app.shutdown_token();
        tokio::spawn(app.run_until_stopped());
        Replica { addr, stop }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// What an upload answered.
// One value per upload in a test: its size does not matter.
#[expect(clippy::large_enum_variant)]
pub enum Uploaded {
    Ok(UploadResponse),
    Rejected { status: u16, body: ErrorBody },
}

impl Uploaded {
    #[track_caller]
    pub fn expect_ok(self) -> UploadResponse {
        match self {
            Uploaded::Ok(r) => r,
            Uploaded::Rejected { status, body } => panic!("upload rejected: {status} {body:?}"),
        }
    }

    #[track_caller]
    pub fn expect_rejected(self) -> (u16, ErrorBody) {
        match self {
            Uploaded::Ok(r) => panic!("upload accepted: {:?}", r.dataset),
            Uploaded::Rejected { status, body } => (status, body),
        }
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn internal_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.internal_addr)
    }

    /// A browser: its own cookie jar, and this app's `Origin` on every request.
    pub fn browser(&self) -> reqwest::Client {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            "origin",
            self.url("").parse().expect("an origin is a header value"),
        );
        reqwest::Client::builder()
            .cookie_store(true)
            .default_headers(headers)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(120))
            .build()
            .expect("client")
    }

    /// A browser signed in through the log-in form.
    pub async fn sign_in(&self, email: &str, password: &str) -> reqwest::Client {
        let browser = self.browser();
        let response = browser
            .post(self.url("/auth/login"))
            .form(&[("email", email), ("password", password), ("next", "/")])
            .send()
            .await
            .expect("log-in sent");
        assert_eq!(response.status(), 303, "log-in answers with a redirect");
        assert_eq!(
            response.headers()["location"],
            "/",
            "log-in as {email} succeeded"
        );
        browser
    }

    /// A new team (tenant) of its own, through open sign-up; its admin's browser.
    pub async fn new_tenant(&self, email: &str) -> reqwest::Client {
        let browser = self.browser();
        let response = browser
            .post(self.url("/auth/signup"))
            .form(&[
                ("email", email),
                ("password", "another long password"),
                ("team", "Team B"),
            ])
            .send()
            .await
            .expect("sign-up sent");
        assert_eq!(response.status(), 303);
        assert_eq!(response.headers()["location"], "/", "signed up as {email}");
        browser
    }

    /// A personal access token (`kind` "tokens") or an assistant token
    /// ("assistant-tokens") made by `browser`'s user through the real form.
    pub async fn token(&self, browser: &reqwest::Client, kind: &str) -> String {
        let response = browser
            .post(self.url(&format!("/account/{kind}")))
            .form(&[("name", "test token"), ("expires_in_days", "30")])
            .send()
            .await
            .expect("token form sent");
        assert_eq!(response.status(), 303);
        let page = response.headers()["location"].to_str().unwrap().to_owned();
        assert!(!page.contains("error"), "{page}");
        let html = browser
            .get(self.url(&page))
            .send()
            .await
            .expect("page")
            .text()
            .await
            .expect("body");
        element_text(&html, "new-secret").expect("the new token is shown once")
    }

    /// The tenant of the user with this e-mail address.
    pub async fn tenant_of_user(&self, email: &str) -> Uuid {
        sqlx::query_scalar::<_, Uuid>("SELECT tenant_id FROM users WHERE email = $1")
            .bind(email)
            .fetch_one(&self.db)
            .await
            .expect("the user exists")
    }

    /// GETs `path` and returns the body as text.
    pub async fn get_text(&self, path: &str) -> String {
        let response = self
            .client
            .get(self.url(path))
            .send()
            .await
            .expect("request sent");
        response.text().await.expect("body")
    }

    /// GETs `path` on the internal listener and returns the body as text.
    pub async fn internal_text(&self, path: &str) -> String {
        bare_client()
            .get(self.internal_url(path))
            .send()
            .await
            .expect("request sent")
            .text()
            .await
            .expect("body")
    }

    /// Uploads `bytes` as `file_name` the way the browser's XHR does.
    pub async fn upload(
        &self,
        file_name: &str,
        bytes: impl Into<Vec<u8>>,
        name: Option<&str>,
    ) -> Uploaded {
        let mut form = reqwest::multipart::Form::new();
        if let Some(name) = name {
            form = form.text("name", name.to_owned());
        }
        form = form.part(
            "file",
            reqwest::multipart::Part::bytes(bytes.into()).file_name(file_name.to_owned()),
        );
        self.upload_form(form).await
    }

    /// Sends `form` to `POST /api/datasets` as the JSON client does, and
    /// reads the answer. The server may answer before the client has sent
    /// everything (a rejection mid-stream); the answer is then the rejection.
    pub async fn upload_form(&self, form: reqwest::multipart::Form) -> Uploaded {
        let response = self
            .client
            .post(self.url("/api/datasets"))
            .header("Accept", "application/json")
            .multipart(form)
            .send()
            .await
            .expect("an answer");
        Self::read_upload(response).await
    }

    pub async fn read_upload(response: reqwest::Response) -> Uploaded {
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        if status == 201 {
            Uploaded::Ok(
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad body {text}: {e}")),
            )
        } else {
            Uploaded::Rejected {
                status,
                body: serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("bad error body {status} {text}: {e}")),
            }
        }
    }

    pub async fn dataset_count(&self) -> i64 {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM datasets")
            .fetch_one(&self.db)
            .await
            .expect("count")
    }

    /// Every file left under the data directory: datasets, and scratch files
    /// in any process's scratch directory (not the directories themselves,
    /// nor the lock files that mark a process's scratch as in use).
    pub fn stored_files(&self) -> Vec<PathBuf> {
        fn walk(dir: &std::path::Path, files: &mut Vec<PathBuf>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    walk(&path, files);
                } else if path.extension().is_none_or(|e| e != "lock") {
                    files.push(path);
                }
            }
        }
        let mut files = Vec::new();
        for dir in ["datasets", "tmp"] {
            walk(&self.data_dir.path().join(dir), &mut files);
        }
        files
    }

    /// Waits until no scratch file is left (the consumed upload is removed
    /// in the background, right after the answer). The DuckDB engines' own
    /// spill directories are not an upload's: once an engine has spilled,
    /// its owner file stays there for the process's life (start-up removes
    /// a dead process's scratch directory whole).
    pub async fn wait_scratch_gone(&self) {
        let tmp = self.data_dir.path().join("tmp");
        let engines = |p: &std::path::Path| {
            p.components().any(|c| {
                matches!(
                    c.as_os_str().to_str(),
                    Some("duckdb-spill" | "duckdb-read-spill")
                )
            })
        };
        eventually(
            Duration::from_secs(5),
            "the scratch files to go",
            || async {
                self.stored_files()
                    .iter()
                    .all(|p| !p.starts_with(&tmp) || engines(p))
                    .then_some(())
            },
        )
        .await;
    }

    /// Uploads `file_name` chunked (no length the server could check
    /// first): `header`, then `line` repeated 512 times in each of 4,096
    /// chunks. Returns the rejection it must get.
    pub async fn upload_chunked(
        &self,
        file_name: &str,
        header: &'static [u8],
        line: &str,
    ) -> (u16, ErrorBody) {
        let chunk = bytes::Bytes::from(line.repeat(512));
        let chunks = std::iter::once(Ok::<_, std::io::Error>(bytes::Bytes::from_static(header)))
            .chain((0..4096).map(move |_| Ok(chunk.clone())));
        let body = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
        let part = reqwest::multipart::Part::stream(body).file_name(file_name.to_owned());
        let form = reqwest::multipart::Form::new().part("file", part);
        self.upload_form(form).await.expect_rejected()
    }

    pub fn parquet_path(&self, id: Uuid) -> PathBuf {
        self.data_dir
            .path()
            .join("datasets")
            .join(format!("{id}.parquet"))
    }

    #[track_caller]
    pub fn assert_nothing_persisted_sync(&self, count: i64) {
        assert_eq!(count, 0, "no dataset row");
        let files = self.stored_files();
        assert!(files.is_empty(), "no files left behind: {files:?}");
    }

    pub async fn assert_nothing_persisted(&self) {
        let count = self.dataset_count().await;
        self.assert_nothing_persisted_sync(count);
    }
}

/// Reads a Parquet file back with DuckDB: column names and all rows as text.
pub fn read_parquet(path: &std::path::Path) -> (Vec<String>, Vec<Vec<Option<String>>>) {
    let conn = duckdb::Connection::open_in_memory().expect("duckdb");
    let file = path.display().to_string().replace('\'', "''");
    let mut stmt = conn
        .prepare(&format!("DESCRIBE SELECT * FROM read_parquet('{file}')"))
        .expect("describe");
    let names: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .expect("names")
        .collect::<Result<_, _>>()
        .expect("names");
    let mut stmt = conn
        .prepare(&format!(
            "SELECT COLUMNS(*)::VARCHAR FROM read_parquet('{file}')"
        ))
        .expect("select");
    let n = names.len();
    let rows = stmt
        .query_map([], |r| {
            (0..n)
                .map(|i| r.get::<_, Option<String>>(i))
                .collect::<Result<Vec<_>, _>>()
        })
        .expect("rows")
        .collect::<Result<Vec<_>, _>>()
        .expect("rows");
    (names, rows)
}

/// Column `i` of rows read by [`read_parquet`], as text (None for null).
pub fn column(rows: &[Vec<Option<String>>], i: usize) -> Vec<Option<&str>> {
    rows.iter().map(|r| r[i].as_deref()).collect()
}

/// `text` as UTF-16, little- or big-endian, with or without a byte-order mark.
pub fn utf16(text: &str, big_endian: bool, bom: bool) -> Vec<u8> {
    let units = (bom.then_some(0xFEFF_u16).into_iter()).chain(text.encode_utf16());
    units
        .flat_map(|u| {
            if big_endian {
                u.to_be_bytes()
            } else {
                u.to_le_bytes()
            }
        })
        .collect()
}

/// `text` in windows-1252; panics on a character it has no byte for.
pub fn windows_1252(text: &str) -> Vec<u8> {
    // Bytes 0x80..=0x9F; the rest are Latin-1's (their own code points).
    const HIGH: &str = "€\u{81}‚ƒ„…†‡ˆ‰Š‹Œ\u{8d}Ž\u{8f}\u{90}‘’“”•–—˜™š›œ\u{9d}žŸ";
    text.chars()
        .map(|c| match HIGH.chars().position(|h| h == c) {
            Some(i) if u32::from(c) > 0xFF => 0x80 + i as u8,
            _ => u8::try_from(u32::from(c)).expect("a windows-1252 character"),
        })
        .collect()
}

/// Writes a Parquet file with DuckDB from a SELECT and returns its bytes.
pub fn parquet_from_sql(select: &str) -> Vec<u8> {
    parquet_from_sql_with(select, "")
}

/// [`parquet_from_sql`] with more of COPY's options (`, ROW_GROUP_SIZE 10`).
pub fn parquet_from_sql_with(select: &str, options: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("x.parquet");
    let conn = duckdb::Connection::open_in_memory().expect("duckdb");
    conn.execute_batch(&format!(
        "COPY ({select}) TO '{}' (FORMAT parquet{options})",
        path.display()
    ))
    .expect("write parquet");
    std::fs::read(&path).expect("read parquet")
}

/// Uploads, expects a rejection with `status` and `code`, returns the message,
/// and checks that no row and no file remain.
pub async fn rejected(
    app: &TestApp,
    file_name: &str,
    bytes: impl Into<Vec<u8>>,
    status: u16,
    code: &str,
) -> String {
    let (got_status, body) = app.upload(file_name, bytes, None).await.expect_rejected();
    assert_eq!(
        (got_status, body.code.as_str()),
        (status, code),
        "{file_name}: {}",
        body.message
    );
    app.assert_nothing_persisted().await;
    body.message
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).expect("gzip");
    enc.finish().expect("gzip")
}

/// Polls `check` every 20 ms until it yields `Some`; panics after `within`
/// saying what did not happen.
#[track_caller]
pub fn eventually<'a, T, F, Fut>(
    within: Duration,
    what: &'a str,
    check: F,
) -> impl std::future::Future<Output = T> + 'a
where
    T: 'a,
    F: FnMut() -> Fut + 'a,
    Fut: std::future::Future<Output = Option<T>> + 'a,
{
    let caller = std::panic::Location::caller();
    async move {
        stack::wait::until(within, what, check)
            .await
            .unwrap_or_else(|e| panic!("{e} (at {caller})"))
    }
}

//! Uploads meant to exhaust the server: a huge `name` field, large unknown
//! fields, a gzip bomb, a header of 300,000 columns, more uploads at once
//! than allowed. Each is refused early with a 4xx/503 that names the problem,
//! and leaves nothing behind.

use crate::helpers::{
    gzip, parquet_from_sql_with, rejected, spawn_app, spawn_app_with, Options, TestApp,
};
use futures::StreamExt;
use std::time::Duration;

/// A multipart form whose `field` streams `total` bytes of `byte`, then a file.
fn streamed_field(field: &str, total: usize, byte: u8) -> reqwest::multipart::Form {
    let chunk = bytes::Bytes::from(vec![byte; 64 * 1024]);
    let chunks = total / chunk.len();
    let stream =
        futures::stream::iter((0..chunks).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
    reqwest::multipart::Form::new()
        .part(
            field.to_owned(),
            reqwest::multipart::Part::stream(reqwest::Body::wrap_stream(stream)),
        )
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"a\n1\n".to_vec()).file_name("a.csv"),
        )
}

async fn post(app: &TestApp, form: reqwest::multipart::Form) -> reqwest::Response {
    app.client
        .post(app.url("/api/datasets"))
        .header("Accept", "application/json")
        .multipart(form)
        .send()
        .await
        .expect("request sent")
}

async fn code_of(response: reqwest::Response) -> (u16, String, String) {
    let status = response.status().as_u16();
    let body: app::model::ErrorBody = response.json().await.expect("the error envelope");
    (status, body.code, body.message)
}

#[tokio::test]
async fn a_huge_name_field_is_refused_at_its_first_bytes_over_the_cap() {
    let app = spawn_app().await;
    // 256 MiB announced by streaming; refused after 4 KiB.
    let (status, code, message) =
        code_of(post(&app, streamed_field("name", 256 << 20, b'a')).await).await;
    assert_eq!((status, code.as_str()), (400, "invalid_name"), "{message}");
    app.assert_nothing_persisted().await;
}

#[tokio::test]
async fn a_large_unknown_field_is_refused() {
    let app = spawn_app().await;
    let (status, code, message) =
        code_of(post(&app, streamed_field("comment", 8 << 20, b'x')).await).await;
    assert_eq!((status, code.as_str()), (400, "bad_body"), "{message}");
    assert!(message.contains("\"comment\""), "{message}");
    app.assert_nothing_persisted().await;
}

#[tokio::test]
async fn a_gzip_bomb_is_refused_by_its_decompressed_size() {
    let app = spawn_app_with(Options {
        env: vec![("UPLOAD_MAX_DECOMPRESSED_BYTES", "8MiB".to_owned())],
        ..Options::default()
    })
    .await;
    // 64 MiB of one-column CSV: about 64 KiB compressed (1000:1).
    let mut csv = b"n\n".to_vec();
    csv.extend(std::iter::repeat_n(*b"1\n", 32 << 20).flatten());
    let bomb = gzip(&csv);
    assert!(bomb.len() < 1 << 20, "{} bytes compressed", bomb.len());
    let msg = rejected(&app, "bomb.csv.gz", bomb, 413, "decompressed_too_large").await;
    assert!(msg.contains("UPLOAD_MAX_DECOMPRESSED_BYTES"), "{msg}");
    // Under the cap, the same kind of file is fine.
    let small = gzip(b"n\n1\n2\n");
    app.upload("ok.csv.gz", small, None).await.expect_ok();
}

#[tokio::test]
async fn a_parquet_bomb_is_refused_by_its_decoded_size_before_a_page_is_read() {
    let app = spawn_app_with(Options {
        env: vec![("UPLOAD_MAX_DECOMPRESSED_BYTES", "8MiB".to_owned())],
        ..Options::default()
    })
    .await;
    // Ten million rows of one repeated value in one row group: dictionary
    // and run-length encoded, under a kilobyte, 80 MB decoded.
    let parquet = |rows: u64| {
        parquet_from_sql_with(
            &format!("SELECT 7::INTEGER AS n, 'same' AS s FROM range({rows})"),
            &format!(", ROW_GROUP_SIZE {rows}"),
        )
    };
    let bomb = parquet(10_000_000);
    assert!(bomb.len() < 1024, "{} bytes", bomb.len());
    let msg = rejected(&app, "bomb.parquet", bomb, 413, "decompressed_too_large").await;
    assert!(
        msg.contains("80000000 bytes decoded") && msg.contains("UPLOAD_MAX_DECOMPRESSED_BYTES"),
        "{msg}"
    );
    // Under the cap (800 KB decoded), the same kind of file is a dataset.
    let done = app
        .upload("fine.parquet", parquet(100_000), None)
        .await
        .expect_ok();
    assert_eq!(done.dataset.row_count, 100_000);
}

#[tokio::test]
async fn a_header_of_300_000_columns_is_refused_before_the_sniffer() {
    let app = spawn_app().await;
    let header: Vec<String> = (0..300_000).map(|i| format!("c{i}")).collect();
    let csv = format!("{}\n{}\n", header.join(","), vec!["1"; 300_000].join(","));
    let (status, body) = app.upload("wide.csv", csv, None).await.expect_rejected();
    assert_eq!(
        (status, body.code.as_str()),
        (422, "too_many_columns"),
        "{}",
        body.message
    );
    assert!(body.message.contains("1000"), "{}", body.message);
    app.assert_nothing_persisted().await;
    // The same width in tabs, gzip-compressed, too.
    let tsv = format!("{}\n", header.join("\t"));
    let (status, body) = app
        .upload("wide.tsv.gz", gzip(tsv.as_bytes()), None)
        .await
        .expect_rejected();
    assert_eq!((status, body.code.as_str()), (422, "too_many_columns"));
    // 20,000 columns: the README's 422, not a 500.
    let twenty: Vec<String> = (0..20_000).map(|i| format!("col_{i}")).collect();
    let csv = format!("{}\n{}\n", twenty.join(","), vec!["7"; 20_000].join(","));
    let (status, body) = app.upload("twenty.csv", csv, None).await.expect_rejected();
    assert_eq!(
        (status, body.code.as_str()),
        (422, "too_many_columns"),
        "{}",
        body.message
    );
    // JSON on one long line is not a header: it is not counted this way.
    let json = format!("[{}]", vec![r#"{"a":1}"#; 5_000].join(","));
    app.upload("rows.json", json, None).await.expect_ok();
}

#[tokio::test]
async fn uploads_beyond_the_concurrency_cap_get_503_with_retry_after() {
    let app = spawn_app_with(Options {
        env: vec![
            ("UPLOAD_MAX_CONCURRENT", "1".to_owned()),
            ("UPLOAD_QUEUE_WAIT_SECS", "1".to_owned()),
        ],
        ..Options::default()
    })
    .await;
    // The first upload holds its permit while its body trickles in.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
    let body = reqwest::Body::wrap_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::stream(body).file_name("slow.csv"),
    );
    let client = app.client.clone();
    let url = app.url("/api/datasets");
    let first = tokio::spawn(async move {
        client
            .post(url)
            .header("Accept", "application/json")
            .multipart(form)
            .send()
            .await
            .expect("sent")
            .status()
            .as_u16()
    });
    tx.send(Ok(bytes::Bytes::from_static(b"a,b\n1,2\n")))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let second = app.upload("b.csv", "x\n1\n", None).await;
    let response_status = match second {
        crate::helpers::Uploaded::Rejected { status, body } => {
            assert_eq!(body.code, "busy", "{}", body.message);
            status
        }
        crate::helpers::Uploaded::Ok(_) => panic!("the second upload was let in"),
    };
    assert_eq!(response_status, 503);
    let retry = post(
        &app,
        reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(b"x\n1\n".to_vec()).file_name("c.csv"),
        ),
    )
    .await;
    assert_eq!(retry.status(), 503);
    assert_eq!(retry.headers()["retry-after"], "5");

    tx.send(Ok(bytes::Bytes::from_static(b"3,4\n")))
        .await
        .unwrap();
    drop(tx);
    assert_eq!(first.await.unwrap(), 201);
    // The permit is back.
    app.upload("d.csv", "x\n1\n", None).await.expect_ok();
}

#[tokio::test]
async fn an_html_page_or_xml_saved_as_csv_is_named_and_refused() {
    let app = spawn_app().await;
    for (name, text, what) in [
        (
            "page.csv",
            "<!DOCTYPE html>\n<html><head><title>404</title></head><body>Not found</body></html>\n",
            "an HTML page",
        ),
        (
            "page.csv",
            "\n  <html lang=\"en\">\n<body>x,y</body></html>",
            "an HTML page",
        ),
        (
            "feed.csv",
            "<?xml version=\"1.0\"?>\n<rss><channel/></rss>\n",
            "an XML document",
        ),
    ] {
        let (status, body) = app.upload(name, text, None).await.expect_rejected();
        assert_eq!((status, body.code.as_str()), (422, "markup_file"), "{text}");
        assert!(body.message.contains(what), "{}", body.message);
    }
    let (status, body) = app
        .upload("page.csv.gz", gzip(b"<!doctype html><p>hi</p>"), None)
        .await
        .expect_rejected();
    assert_eq!((status, body.code.as_str()), (422, "markup_file"));
    app.assert_nothing_persisted().await;
    // A CSV whose values hold markup is still a CSV.
    app.upload("ok.csv", "html,n\n<b>bold</b>,1\n", None)
        .await
        .expect_ok();
}

/// An upload that would leave less than `UPLOAD_MIN_FREE_DISK` free is refused
/// with 507 before its bytes are kept; the same upload passes with a floor
/// the disk clears.
#[tokio::test]
async fn a_disk_below_the_free_space_floor_refuses_uploads_with_507() {
    let app = spawn_app_with(Options {
        env: vec![("UPLOAD_MIN_FREE_DISK", "1000000GiB".to_owned())],
        ..Options::default()
    })
    .await;
    let (status, body) = app
        .upload("small.csv", "a,b\n1,2\n", None)
        .await
        .expect_rejected();
    assert_eq!((status, body.code.as_str()), (507, "insufficient_storage"));
    assert!(body.message.contains("disk space"), "{}", body.message);
    app.assert_nothing_persisted().await;

    let roomy = spawn_app_with(Options {
        env: vec![("UPLOAD_MIN_FREE_DISK", "1MiB".to_owned())],
        ..Options::default()
    })
    .await;
    roomy
        .upload("small.csv", "a,b\n1,2\n", None)
        .await
        .expect_ok();
}

/// Start-up reconciliation: a dataset file no row names (older than the
/// grace period) is removed, a younger one is left to the upload that may
/// still be committing it, and a row whose file is gone is reported.
#[tokio::test]
async fn storage_is_reconciled_with_the_catalogue() {
    use servicetsunami_server::storage::{reconcile, Storage};
    let app = spawn_app().await;
    let kept = app.upload("kept.csv", "a\n1\n", None).await.expect_ok();
    let lost = app.upload("lost.csv", "a\n2\n", None).await.expect_ok();
    std::fs::remove_file(app.parquet_path(lost.dataset.id)).unwrap();
    let old_orphan = uuid::Uuid::new_v4();
    let young_orphan = uuid::Uuid::new_v4();
    for orphan in [old_orphan, young_orphan] {
        std::fs::write(app.parquet_path(orphan), b"PAR1").unwrap();
    }
    std::fs::File::options()
        .write(true)
        .open(app.parquet_path(old_orphan))
        .unwrap()
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
    let limits = app::ssr::EngineLimits {
        threads: 1,
        memory_limit: "64MB".to_owned(),
    };
    let storage = Storage::open(app.data_dir.path(), &limits).unwrap();
    let found = reconcile(&app.db, &storage, Duration::from_secs(15 * 60))
        .await
        .unwrap();
    assert_eq!(found.orphans_removed, vec![old_orphan]);
    assert_eq!(found.missing, vec![lost.dataset.id]);
    assert!(!app.parquet_path(old_orphan).exists());
    assert!(
        app.parquet_path(young_orphan).exists(),
        "too young to judge"
    );
    assert!(app.parquet_path(kept.dataset.id).exists());
}

/// A body that stops sending (a client trickling or gone quiet) is ended
/// after `UPLOAD_IDLE_TIMEOUT_SECS` with 408, and nothing of it is kept.
#[tokio::test]
async fn an_upload_body_that_goes_quiet_is_ended_with_408() {
    let app = spawn_app_with(Options {
        env: vec![("UPLOAD_IDLE_TIMEOUT_SECS", "1".to_owned())],
        ..Options::default()
    })
    .await;
    // The first rows arrive, then nothing more.
    let first = bytes::Bytes::from_static(b"id,name\n1,Ada\n");
    let stream =
        futures::stream::iter([Ok::<_, std::io::Error>(first)]).chain(futures::stream::pending());
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::stream(reqwest::Body::wrap_stream(stream)).file_name("slow.csv"),
    );
    let started = std::time::Instant::now();
    let response = tokio::time::timeout(Duration::from_secs(20), post(&app, form))
        .await
        .expect("the server answers a quiet upload");
    let (status, code, message) = code_of(response).await;
    assert_eq!(
        (status, code.as_str()),
        (408, "upload_stalled"),
        "{message}"
    );
    assert!(started.elapsed() < Duration::from_secs(15));
    app.assert_nothing_persisted().await;
}

/// 200 connections trickling request headers (a byte every 5 s) are closed
/// by the app and by the MCP server within 40 s, and both keep answering
/// meanwhile.
#[tokio::test]
async fn servers_close_connections_that_trickle_headers() {
    let app = spawn_app().await;
    let mut mcp = stack::Mcp::in_process();
    mcp.start().await.expect("the MCP server starts");
    let mcp_addr: std::net::SocketAddr = format!("127.0.0.1:{}", mcp.port).parse().unwrap();
    let within = Duration::from_secs(45);
    let every = Duration::from_secs(5);
    let app_slow = tokio::spawn(stack::slow::trickle_headers(app.addr, 200, every, within));
    let mcp_slow = tokio::spawn(stack::slow::trickle_headers(mcp_addr, 200, every, within));
    // Both still answer while the slow clients hold their connections.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let healthy = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(healthy.status(), 200);
    let healthy = reqwest::get(format!("http://{mcp_addr}/healthz"))
        .await
        .unwrap();
    assert_eq!(healthy.status(), 200);
    for (server, slow) in [("app", app_slow), ("MCP", mcp_slow)] {
        let closed_after = slow
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("{server}: {e}"));
        assert!(
            closed_after <= Duration::from_secs(40),
            "{server}: {closed_after:?}"
        );
    }
}

#[tokio::test]
async fn an_upload_beyond_the_cap_waits_its_turn_and_is_stored() {
    let app = spawn_app_with(Options {
        env: vec![
            ("UPLOAD_MAX_CONCURRENT", "1".to_owned()),
            ("UPLOAD_QUEUE_WAIT_SECS", "30".to_owned()),
        ],
        ..Options::default()
    })
    .await;
    // The first upload holds the only turn while its body trickles in.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
    let body = reqwest::Body::wrap_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::stream(body).file_name("slow.csv"),
    );
    let (client, url) = (app.client.clone(), app.url("/api/datasets"));
    let first = tokio::spawn(async move {
        let response = client
            .post(url)
            .header("Accept", "application/json")
            .multipart(form)
            .send()
            .await
            .expect("sent");
        response.status().as_u16()
    });
    tx.send(Ok(bytes::Bytes::from_static(b"a,b\n1,2\n")))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The second waits rather than being refused…
    let (client, url) = (app.client.clone(), app.url("/api/datasets"));
    let second = tokio::spawn(async move {
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(b"x,y\n-1,NA\n".to_vec()).file_name("second.csv"),
        );
        let response = client
            .post(url)
            .header("Accept", "application/json")
            .multipart(form)
            .send()
            .await
            .expect("sent");
        response.status().as_u16()
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!second.is_finished(), "the second upload should be waiting");
    // …and is stored once the first one is done.
    tx.send(Ok(bytes::Bytes::from_static(b"3,4\n")))
        .await
        .unwrap();
    drop(tx);
    assert_eq!(first.await.unwrap(), 201);
    assert_eq!(second.await.unwrap(), 201);
    assert_eq!(app.dataset_count().await, 2);
}

use crate::helpers::{call, create_args, spawn_app, spawn_app_with, API_KEY};
use serde_json::json;

#[tokio::test]
async fn unreachable_url_is_a_tool_error() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let app = spawn_app_with(&[("MCP_INTERNAL_BASE_URL", &base)]).await;
    let client = app.client().await;
    let err = call(
        &client,
        "create_dataset",
        create_args(
            "acme",
            "d1",
            "x",
            &format!("{base}/internal/storage/datasets/f.parquet"),
        ),
    )
    .await
    .unwrap_err();
    assert!(err.contains("could not reach"), "{err}");
    assert!(!err.contains(&base), "no URL in: {err}");
    assert!(!err.contains(API_KEY));
    let err = call(
        &client,
        "create_dataset",
        create_args("acme", "d1", "x", "file:///etc/passwd"),
    )
    .await
    .unwrap_err();
    assert!(err.contains("http"), "{err}");
}

#[tokio::test]
async fn file_server_404_is_reported() {
    let app = spawn_app().await;
    let client = app.client().await;
    let err = call(
        &client,
        "create_dataset",
        create_args("acme", "d1", "x", &app.files.url_of("missing.parquet")),
    )
    .await
    .unwrap_err();
    assert!(err.contains("404"), "{err}");
    assert!(
        !err.contains("127.0.0.1") && !err.contains("http"),
        "no URL in: {err}"
    );
}

#[tokio::test]
async fn downloads_come_only_from_the_internal_base_without_a_key_or_redirects() {
    let app = spawn_app().await;
    let client = app.client().await;
    app.files.parquet("messy.parquet", "SELECT 1 AS a");
    // Another server that records whatever reaches it.
    let elsewhere = crate::helpers::FileServer::start().await;
    elsewhere.parquet("messy.parquet", "SELECT 1 AS a");
    let outside = [
        elsewhere.url_of("messy.parquet"),
        format!("{}/elsewhere/messy.parquet", app.files.url),
        format!(
            "{}/internal/storage/datasets/../../elsewhere/messy.parquet",
            app.files.url
        ),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        app.files
            .url_of("messy.parquet")
            .replace("127.0.0.1", "localhost"),
    ];
    for url in outside {
        let err = call(
            &client,
            "create_dataset",
            create_args("acme", "d1", "x", &url),
        )
        .await
        .unwrap_err();
        assert!(err.contains("MCP_INTERNAL_BASE_URL"), "{url}: {err}");
    }
    assert!(
        elsewhere.authorizations.lock().unwrap().is_empty(),
        "nothing reached another server"
    );
    // Under the base, a redirect is not followed.
    let err = call(
        &client,
        "create_dataset",
        create_args("acme", "d1", "x", &app.files.url_of("redirect.parquet")),
    )
    .await
    .unwrap_err();
    assert!(err.contains("302"), "{err}");
    // The real download carries no credential of ours.
    call(
        &client,
        "create_dataset",
        create_args("acme", "d1", "x", &app.files.url_of("messy.parquet")),
    )
    .await
    .expect("the download under the base works");
    assert!(
        app.files.authorizations.lock().unwrap().is_empty(),
        "no Authorization header was sent: {:?}",
        app.files.authorizations.lock().unwrap()
    );
}

#[tokio::test]
async fn non_parquet_and_oversized_downloads_are_refused() {
    let app = spawn_app_with(&[("MCP_MAX_DOWNLOAD_BYTES", "64KiB")]).await;
    let client = app.client().await;
    std::fs::write(app.files.path("data.csv"), "a,b\n1,2\n3,4\n5,6\n").unwrap();
    let err = call(
        &client,
        "create_dataset",
        create_args("acme", "d1", "x", &app.files.url_of("data.csv")),
    )
    .await
    .unwrap_err();
    assert!(err.contains("not Parquet"), "{err}");
    let big = app.files.parquet(
        "big.parquet",
        "SELECT md5(range::VARCHAR) AS h FROM range(20000)",
    );
    let err = call(
        &client,
        "create_dataset",
        create_args("acme", "d2", "x", &big),
    )
    .await
    .unwrap_err();
    assert!(err.contains("larger than"), "{err}");
    let leftovers: Vec<_> = std::fs::read_dir(app.lakehouse.path().join("tmp"))
        .unwrap()
        .collect();
    assert!(
        leftovers.is_empty(),
        "downloads are cleaned up: {leftovers:?}"
    );
}

#[tokio::test]
async fn injection_attempts_in_names_are_neutralised() {
    let app = spawn_app().await;
    let client = app.client().await;
    let select = r#"SELECT 1 AS "id"", 1); DROP TABLE x; --", 'a''b' AS "it's", 2 AS "Robert'); DROP TABLE students;--""#;
    let url = app.files.parquet("evil.parquet", select);

    for tenant in [
        "acme'; DROP SCHEMA x; --",
        "acme\"",
        "acme_bronze.x",
        "../../etc",
    ] {
        let err = call(
            &client,
            "create_dataset",
            create_args(tenant, "d1", "x", &url),
        )
        .await
        .unwrap_err();
        assert!(err.contains("tenant_id"), "{tenant}: {err}");
    }
    let err = call(
        &client,
        "create_dataset",
        create_args("acme", "d1'--", "x", &url),
    )
    .await
    .unwrap_err();
    assert!(err.contains("dataset_id"), "{err}");

    let bronze = call(
        &client,
        "create_dataset",
        create_args("acme", "d1", "x\"; DROP TABLE y; --", &url),
    )
    .await
    .unwrap();
    let table = bronze["bronze_table"].as_str().unwrap();
    assert!(
        table.starts_with("servicetsunami.acme_bronze.x_drop_table_yxxx_"),
        "{table}"
    );
    let silver = call(
        &client,
        "transform_to_silver",
        json!({"tenant_id": "acme", "bronze_table": table}),
    )
    .await
    .unwrap();
    let names: Vec<&str> = silver["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names[..3],
        [
            "id_1_drop_table_xxxx",
            "it_s",
            "robert_drop_table_studentsxxx"
        ]
    );
    let rows = call(
        &client,
        "query",
        json!({"tenant_id": "acme", "sql": format!("SELECT it_s FROM {}", silver["silver_table"].as_str().unwrap())}),
    )
    .await
    .unwrap();
    assert_eq!(rows["rows"][0]["it_s"], "a'b");

    let err = call(
        &client,
        "transform_to_silver",
        json!({"tenant_id": "acme", "bronze_table": format!("{table}; DROP TABLE t")}),
    )
    .await
    .unwrap_err();
    assert!(err.contains("table name"), "{err}");
    // Another tenant's bronze table cannot be transformed into yours.
    let err = call(
        &client,
        "transform_to_silver",
        json!({"tenant_id": "other", "bronze_table": table}),
    )
    .await
    .unwrap_err();
    assert!(err.contains("tenant's bronze schema"), "{err}");
}

#[tokio::test]
async fn query_refuses_writes_and_other_tenants() {
    let app = spawn_app().await;
    let client = app.client().await;
    let url = app
        .files
        .parquet("q.parquet", "SELECT range AS id FROM range(5)");
    let bronze = call(
        &client,
        "create_dataset",
        create_args("acme", "d1", "q", &url),
    )
    .await
    .unwrap();
    let table = bronze["bronze_table"].as_str().unwrap().to_owned();
    call(
        &client,
        "create_dataset",
        create_args("rival", "d2", "q", &url),
    )
    .await
    .unwrap();

    for sql in [
        format!("DROP VIEW {table}"),
        format!("DELETE FROM {table}"),
        format!("SELECT 1; DROP VIEW {table}"),
        "CREATE TABLE acme_silver.x AS SELECT 1".to_owned(),
        "COPY (SELECT 1) TO '/tmp/x.csv'".to_owned(),
        "SELECT * FROM read_csv('/etc/passwd')".to_owned(),
        "SELECT * FROM rival_bronze.q_6e2f8a4c".to_owned(),
        "SELECT * FROM servicetsunami.main.anything".to_owned(),
        "ATTACH ':memory:' AS x".to_owned(),
    ] {
        let err = call(&client, "query", json!({"tenant_id": "acme", "sql": sql}))
            .await
            .unwrap_err();
        assert!(err.starts_with("query rejected"), "{sql}: {err}");
    }
    let ok = call(
        &client,
        "query",
        json!({"tenant_id": "acme", "sql": format!("SELECT count(*) AS n FROM {table}")}),
    )
    .await
    .unwrap();
    assert_eq!(ok["rows"][0]["n"], 5, "the table survived");
    let capped = call(
        &client,
        "query",
        json!({"tenant_id": "acme", "sql": format!("SELECT id FROM {table}"), "limit": 2}),
    )
    .await
    .unwrap();
    assert_eq!(
        (capped["row_count"].as_u64(), capped["truncated"].as_bool()),
        (Some(2), Some(true))
    );
}

#[tokio::test]
async fn slow_queries_time_out() {
    let app = spawn_app_with(&[("MCP_QUERY_TIMEOUT_SECS", "1")]).await;
    let client = app.client().await;
    let url = app
        .files
        .parquet("t.parquet", "SELECT range AS id FROM range(3000)");
    let bronze = call(
        &client,
        "create_dataset",
        create_args("acme", "d1", "t", &url),
    )
    .await
    .unwrap();
    let t = bronze["bronze_table"].as_str().unwrap();
    // Modular arithmetic defeats statistics-based pruning: ~27e9 real combinations.
    let sql = format!(
        "SELECT count(*) FROM {t} a, {t} b, {t} c WHERE (a.id * 7 + b.id * 13 + c.id) % 1000003 = 17"
    );
    let err = call(&client, "query", json!({"tenant_id": "acme", "sql": sql}))
        .await
        .unwrap_err();
    assert!(err.contains("timed out"), "{err}");
}

#[tokio::test]
async fn downloads_left_by_a_killed_process_are_removed_at_start() {
    let lakehouse = tempfile::tempdir().unwrap();
    let tmp = lakehouse.path().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::write(tmp.join("download-abc123.parquet"), b"half a file").unwrap();
    std::fs::write(tmp.join("notes.txt"), b"not ours").unwrap();
    let app = crate::helpers::spawn_app_at(lakehouse, &[]).await;
    assert!(!app
        .lakehouse
        .path()
        .join("tmp/download-abc123.parquet")
        .exists());
    assert!(app.lakehouse.path().join("tmp/notes.txt").exists());
}

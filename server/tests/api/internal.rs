//! `/internal/storage/datasets/{file_name}`: the MCP server's download URL.

use crate::helpers::{spawn_app_with, Options, TestApp};
use reqwest::StatusCode;

const KEY: &str = "internal-test-key-0123456789";

async fn app_with_key() -> TestApp {
    spawn_app_with(Options {
        env: vec![("MCP_API_KEY", KEY.to_owned())],
        ..Options::default()
    })
    .await
}

async fn get(app: &TestApp, path: &str, key: Option<&str>) -> reqwest::Response {
    let mut request = app.client.get(app.url(path));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.expect("request sent")
}

#[tokio::test]
async fn serves_a_dataset_file_to_the_key_holder_with_ranges() {
    let app = app_with_key().await;
    let id = app
        .upload("a.csv", "x,y\n1,2\n3,4\n", None)
        .await
        .expect_ok()
        .dataset
        .id;
    let on_disk = std::fs::read(app.parquet_path(id)).unwrap();
    let path = format!("/internal/storage/datasets/{id}.parquet");

    let whole = get(&app, &path, Some(KEY)).await;
    assert_eq!(whole.status(), StatusCode::OK);
    assert_eq!(whole.bytes().await.unwrap().as_ref(), on_disk.as_slice());

    let tail = app
        .client
        .get(app.url(&path))
        .bearer_auth(KEY)
        .header("Range", "bytes=-8")
        .send()
        .await
        .unwrap();
    assert_eq!(tail.status(), StatusCode::PARTIAL_CONTENT);
    let len = on_disk.len();
    assert_eq!(
        tail.headers()["content-range"].to_str().unwrap(),
        format!("bytes {}-{}/{len}", len - 8, len - 1)
    );
    let bytes = tail.bytes().await.unwrap();
    assert_eq!(&bytes[..], &on_disk[len - 8..]);
    assert_eq!(&bytes[4..], b"PAR1", "the Parquet footer magic");
}

#[tokio::test]
async fn refuses_without_the_right_key_before_looking_at_the_name() {
    let app = app_with_key().await;
    for key in [None, Some("wrong-key"), Some("")] {
        let response = get(&app, "/internal/storage/datasets/../../etc/passwd", key).await;
        assert!(
            matches!(
                response.status(),
                StatusCode::UNAUTHORIZED | StatusCode::NOT_FOUND
            ),
            "{key:?}: {}",
            response.status()
        );
        let response = get(
            &app,
            "/internal/storage/datasets/6f1c1f9e-8c63-4e3b-9a57-2f4f7d1e0c11.parquet",
            key,
        )
        .await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{key:?}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
    }
}

#[tokio::test]
async fn a_server_without_a_key_serves_nothing() {
    let app = crate::helpers::spawn_app().await;
    let response = get(
        &app,
        "/internal/storage/datasets/6f1c1f9e-8c63-4e3b-9a57-2f4f7d1e0c11.parquet",
        Some(""),
    )
    .await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn rejects_names_that_are_not_a_dataset_file() {
    let app = app_with_key().await;
    // A file outside the datasets directory that must never be served.
    std::fs::write(
        app.data_dir.path().join("secret.parquet"),
        b"PAR1secretPAR1",
    )
    .unwrap();
    for name in [
        "..%2Fsecret.parquet",
        "%2E%2E%2Fsecret.parquet",
        "%2Fetc%2Fpasswd",
        "..%5Csecret.parquet",
        "secret.parquet",
        "6f1c1f9e-8c63-4e3b-9a57-2f4f7d1e0c11.csv",
        "6F1C1F9E-8C63-4E3B-9A57-2F4F7D1E0C11.parquet",
        "6f1c1f9e-8c63-4e3b-9a57-2f4f7d1e0c11.parquet%00",
    ] {
        let response = get(
            &app,
            &format!("/internal/storage/datasets/{name}"),
            Some(KEY),
        )
        .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{name}");
    }
    // Paths that leave the route altogether reach no file either.
    for path in [
        "/internal/storage/datasets/../secret.parquet",
        "/internal/storage/datasets//etc/passwd",
        "/internal/storage/secret.parquet",
    ] {
        let response = get(&app, path, Some(KEY)).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        let body = response.text().await.unwrap();
        assert!(!body.contains("secret"), "{path}: {body}");
    }
}

#[tokio::test]
async fn a_missing_file_or_a_symlink_is_not_found() {
    let app = app_with_key().await;
    let missing = uuid::Uuid::new_v4();
    let response = get(
        &app,
        &format!("/internal/storage/datasets/{missing}.parquet"),
        Some(KEY),
    )
    .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    let outside = app.data_dir.path().join("outside.parquet");
    std::fs::write(&outside, b"PAR1outsidePAR1").unwrap();
    let linked = uuid::Uuid::new_v4();
    std::os::unix::fs::symlink(&outside, app.parquet_path(linked)).unwrap();
    let response = get(
        &app,
        &format!("/internal/storage/datasets/{linked}.parquet"),
        Some(KEY),
    )
    .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn every_refusal_is_the_error_envelope() {
    let app = app_with_key().await;
    let missing = uuid::Uuid::new_v4();
    for (path, key, status, code) in [
        (
            format!("/internal/storage/datasets/{missing}.parquet"),
            None,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        ),
        (
            "/internal/storage/datasets/x.parquet".to_owned(),
            Some(KEY),
            StatusCode::BAD_REQUEST,
            "bad_file_name",
        ),
        (
            format!("/internal/storage/datasets/{missing}.parquet"),
            Some(KEY),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ] {
        let response = get(&app, &path, key).await;
        assert_eq!(response.status(), status, "{path}");
        let body: app::model::ErrorBody = response.json().await.expect("the envelope");
        assert_eq!(body.code, code);
        assert!(!body.message.is_empty());
    }
}

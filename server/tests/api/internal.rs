//! The internal listener: signed dataset downloads for the MCP server, token
//! introspection, `/metrics`; none of it on the public port.

use crate::helpers::{bare_client, spawn_app_with, Options, TestApp, ADMIN_EMAIL};
use reqwest::StatusCode;
use secrecy::SecretString;
use servicetsunami_server::auth::signed_url::UrlSigner;
use uuid::Uuid;

const KEY: &str = "internal-test-key-0123456789";

async fn app_with_key() -> TestApp {
    spawn_app_with(Options {
        env: vec![("MCP_API_KEY", KEY.to_owned())],
        ..Options::default()
    })
    .await
}

fn signer() -> UrlSigner {
    UrlSigner::new(&SecretString::from(KEY))
}

/// The signed link the sync would hand the MCP server.
fn link(app: &TestApp, tenant: Uuid, dataset: Uuid) -> String {
    signer().sign(&app.internal_url(""), tenant, dataset, 1)
}

async fn get(url: &str) -> reqwest::Response {
    bare_client().get(url).send().await.expect("request sent")
}

async fn uploaded(app: &TestApp) -> (Uuid, Uuid) {
    let id = app
        .upload("a.csv", "x,y\n1,2\n3,4\n", None)
        .await
        .expect_ok()
        .dataset
        .id;
    (app.tenant_of_user(ADMIN_EMAIL).await, id)
}

#[tokio::test]
async fn a_signed_link_serves_its_dataset_file_with_ranges() {
    let app = app_with_key().await;
    let (tenant, id) = uploaded(&app).await;
    let on_disk = std::fs::read(app.parquet_path(id)).unwrap();
    let url = link(&app, tenant, id);

    let whole = get(&url).await;
    assert_eq!(whole.status(), StatusCode::OK);
    assert_eq!(whole.bytes().await.unwrap().as_ref(), on_disk.as_slice());

    let tail = bare_client()
        .get(&url)
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
    assert_eq!(&bytes[4..], b"PAR1", "the Parquet footer magic");
}

#[tokio::test]
async fn a_tampered_foreign_expired_or_unsigned_link_gets_403() {
    let app = app_with_key().await;
    let (tenant, id) = uploaded(&app).await;
    let good = link(&app, tenant, id);
    let (path, query) = good.split_once('?').unwrap();
    let param = |name: &str| {
        query
            .split('&')
            .find_map(|p| p.strip_prefix(&format!("{name}=")))
            .unwrap()
            .to_owned()
    };
    let (expires, signature) = (param("expires"), param("signature"));
    let mut flipped = signature.clone().into_bytes();
    flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
    let flipped = String::from_utf8(flipped).unwrap();
    let other = Uuid::new_v4();
    let past = time::OffsetDateTime::now_utc().unix_timestamp() - 10;
    let cases = [
        format!("{path}?tenant={tenant}&expires={expires}&signature={flipped}"),
        format!("{path}?tenant={other}&expires={expires}&signature={signature}"),
        format!(
            "{path}?tenant={tenant}&expires={}&signature={signature}",
            past
        ),
        format!("{path}?tenant={tenant}&expires={expires}"),
        path.to_owned(),
        // Signed for another dataset: opens nothing else.
        link(&app, tenant, other).replace(&other.to_string(), &id.to_string()),
        // Signed with another secret.
        UrlSigner::new(&SecretString::from("some other secret 0123")).sign(
            &app.internal_url(""),
            tenant,
            id,
            1,
        ),
    ];
    for url in cases {
        let response = get(&url).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{url}");
        let body: app::model::ErrorBody = response.json().await.expect("the envelope");
        assert_eq!(body.code, "bad_signature");
    }
    // The same request with the bearer key of old opens nothing either.
    let response = bare_client()
        .get(path)
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_public_port_serves_no_internal_route() {
    let app = app_with_key().await;
    let (tenant, id) = uploaded(&app).await;
    let internal = link(&app, tenant, id);
    let public = internal.replace(&app.internal_addr.to_string(), &app.addr.to_string());
    for client in [bare_client(), app.client.clone()] {
        for url in [public.clone(), app.url("/metrics")] {
            let response = client.get(&url).send().await.unwrap();
            assert_ne!(response.status(), StatusCode::OK, "{url}");
            let body = response.text().await.unwrap();
            assert!(
                !body.starts_with("PAR1") && !body.contains("servicetsunami_sync"),
                "{url}"
            );
        }
    }
    let metrics = get(&app.internal_url("/metrics")).await;
    assert_eq!(metrics.status(), StatusCode::OK);
}

#[tokio::test]
async fn names_that_are_not_a_dataset_file_are_refused() {
    let app = app_with_key().await;
    std::fs::write(
        app.data_dir.path().join("secret.parquet"),
        b"PAR1secretPAR1",
    )
    .unwrap();
    let signed = link(&app, Uuid::new_v4(), Uuid::new_v4());
    let query = signed.split_once('?').unwrap().1.to_owned();
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
        let url = app.internal_url(&format!("/internal/storage/datasets/{name}?{query}"));
        assert_eq!(get(&url).await.status(), StatusCode::BAD_REQUEST, "{name}");
    }
    for path in [
        "/internal/storage/datasets/../secret.parquet",
        "/internal/storage/datasets//etc/passwd",
        "/internal/storage/secret.parquet",
    ] {
        let response = get(&app.internal_url(path)).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(!response.text().await.unwrap().contains("secret"), "{path}");
    }
}

#[tokio::test]
async fn a_missing_file_or_a_symlink_is_not_found() {
    let app = app_with_key().await;
    let tenant = app.tenant_of_user(ADMIN_EMAIL).await;
    let missing = Uuid::new_v4();
    assert_eq!(
        get(&link(&app, tenant, missing)).await.status(),
        StatusCode::NOT_FOUND
    );

    let outside = app.data_dir.path().join("outside.parquet");
    std::fs::write(&outside, b"PAR1outsidePAR1").unwrap();
    let linked = Uuid::new_v4();
    std::fs::create_dir_all(app.parquet_path(linked).parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&outside, app.parquet_path(linked)).unwrap();
    assert_eq!(
        get(&link(&app, tenant, linked)).await.status(),
        StatusCode::NOT_FOUND
    );
}

async fn introspect(app: &TestApp, key: Option<&str>, token: &str) -> reqwest::Response {
    let mut request = bare_client()
        .post(app.internal_url("/internal/mcp/introspect"))
        .json(&serde_json::json!({ "token": token }));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.expect("request sent")
}

#[tokio::test]
async fn introspection_names_a_live_assistant_tokens_tenant_to_the_service_only() {
    let app = app_with_key().await;
    let token = app.token(&app.client, "assistant-tokens").await;
    assert!(token.starts_with("st_mcp_"), "{token}");
    let tenant = app.tenant_of_user(ADMIN_EMAIL).await;

    for key in [None, Some("wrong key 0123456789"), Some("")] {
        assert_eq!(
            introspect(&app, key, &token).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let answer = introspect(&app, Some(KEY), &token).await;
    assert_eq!(answer.status(), StatusCode::OK);
    let body: contract::access::IntrospectResponse = answer.json().await.unwrap();
    assert_eq!(body.tenant_id, tenant.to_string());

    // A personal access token is not an assistant's, and guesses are unknown.
    let pat = app.token(&app.client, "tokens").await;
    for other in [pat.as_str(), "st_mcp_guess", &token[..token.len() - 1]] {
        assert_eq!(
            introspect(&app, Some(KEY), other).await.status(),
            StatusCode::NOT_FOUND,
            "{other}"
        );
    }

    // Revoked through the page's form: unknown from then on.
    let id: Uuid = sqlx::query_scalar("SELECT id FROM api_tokens WHERE kind = 'mcp'")
        .fetch_one(&app.db)
        .await
        .unwrap();
    let revoked = app
        .client
        .post(app.url(&format!("/account/assistant-tokens/{id}/revoke")))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 303);
    assert_eq!(
        introspect(&app, Some(KEY), &token).await.status(),
        StatusCode::NOT_FOUND
    );
}

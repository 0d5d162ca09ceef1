use crate::helpers::{spawn_app, API_KEY};

async fn post_initialize(url: &str, auth: Option<&str>) -> reqwest::StatusCode {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("Accept", "application/json, text/event-stream")
        .header("Content-Type", "application/json")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}"#);
    if let Some(value) = auth {
        request = request.header("Authorization", value);
    }
    request.send().await.unwrap().status()
}

#[tokio::test]
async fn missing_or_wrong_api_key_gets_401() {
    let app = spawn_app().await;
    assert_eq!(post_initialize(&app.mcp_url, None).await, 401);
    assert_eq!(
        post_initialize(&app.mcp_url, Some("Bearer wrong-key")).await,
        401
    );
    assert_eq!(
        post_initialize(&app.mcp_url, Some(&format!("Bearer {API_KEY}x"))).await,
        401
    );
    assert_eq!(
        post_initialize(&app.mcp_url, Some(API_KEY)).await,
        401,
        "scheme is required"
    );
    assert_eq!(
        post_initialize(&app.mcp_url, Some(&format!("Bearer {API_KEY}"))).await,
        200
    );
    assert!(app.client_with_key("not-the-key").await.is_err());
}

/// The app's client tells a refused key from a server that cannot be
/// reached, so the sync's message names the cause (the two sides hold
/// different `MCP_API_KEY`s) instead of blaming the network.
#[tokio::test]
async fn the_client_names_a_refused_key() {
    use contract::client::{connect, CallError};
    let app = spawn_app().await;
    let wrong = secrecy::SecretString::from("not-the-key");
    match connect(&app.mcp_url, &wrong).await {
        Err(e @ CallError::Refused { .. }) => assert!(e.retryable()),
        Err(e) => panic!("expected the key to be refused, got {e}"),
        Ok(_) => panic!("a wrong key was accepted"),
    }
    let right = secrecy::SecretString::from(API_KEY);
    assert!(connect(&app.mcp_url, &right).await.is_ok());
    // A port nobody listens on is unreachable, not refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let closed = format!("http://127.0.0.1:{port}/mcp");
    assert!(matches!(
        connect(&closed, &right).await,
        Err(CallError::Unreachable { .. })
    ));
}

#[tokio::test]
async fn healthz_needs_no_key() {
    let app = spawn_app().await;
    let response = reqwest::get(format!("{}/healthz", app.base_url))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap(), "ok");
}

#[tokio::test]
async fn unlisted_host_header_is_refused() {
    let app = spawn_app().await;
    let status = reqwest::Client::new()
        .post(&app.mcp_url)
        .header("Host", "evil.example")
        .header("Authorization", format!("Bearer {API_KEY}"))
        .header("Accept", "application/json, text/event-stream")
        .header("Content-Type", "application/json")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}"#)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 403);
}

#[tokio::test]
async fn a_401_is_the_error_envelope() {
    let app = spawn_app().await;
    let response = reqwest::Client::new()
        .post(&app.mcp_url)
        .header("Authorization", "Bearer wrong-key")
        .header("Content-Type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    let body: contract::ErrorBody = response.json().await.expect("JSON envelope");
    assert_eq!(body.code, "unauthorized");
    assert!(body.message.contains("bearer"), "{}", body.message);
}

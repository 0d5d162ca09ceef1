//! The cross-tenant suite: tenant B (a signed-in browser, a personal access
//! token, an assistant's token) asks for tenant A's dataset through every
//! page, server function, API route, the event stream and every MCP tool,
//! and gets not found (or the tool's refusal); nothing of A reaches B.

use crate::{
    events::{set_status, Events},
    helpers::{bare_client, spawn_app, TestApp, ADMIN_EMAIL},
    sync::{quoted, spawn_synced_app, started_mcp, Sync},
};
use app::domain::SyncStatus;
use contract::client::{CallError, McpClient};
use secrecy::SecretString;
use serde_json::{json, Value};
use stack::{Mcp, Restate};
use std::time::Duration;
use uuid::Uuid;

const B_EMAIL: &str = "b-admin@other.example.org";

/// A's dataset, named like markup so a leak would also show in pages.
async fn a_dataset(app: &TestApp) -> Uuid {
    app.upload(
        "a.csv",
        "secret_col,amount\nalpha,1\nbeta,2\n",
        Some("A's ledger"),
    )
    .await
    .expect_ok()
    .dataset
    .id
}

/// A request as B: a browser (cookie) or a script (bearer).
enum B<'a> {
    Browser(&'a reqwest::Client),
    Token(&'a str),
}

impl B<'_> {
    fn get(&self, app: &TestApp, path: &str) -> reqwest::RequestBuilder {
        match self {
            B::Browser(client) => client.get(app.url(path)),
            B::Token(token) => bare_client().get(app.url(path)).bearer_auth(token),
        }
    }

    fn post(&self, app: &TestApp, path: &str) -> reqwest::RequestBuilder {
        match self {
            B::Browser(client) => client.post(app.url(path)),
            B::Token(token) => bare_client().post(app.url(path)).bearer_auth(token),
        }
    }
}

/// Every route that takes a dataset id, asked by `who` for `id`: all 404.
async fn assert_not_found_everywhere(app: &TestApp, who: &B<'_>, id: Uuid) {
    let page = who
        .get(app, &format!("/datasets/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 404, "the dataset page");
    let html = page.text().await.unwrap();
    assert!(!html.contains("A&#x27;s ledger") && !html.contains("secret_col"));
    for function in ["get_dataset", "get_sync_detail", "retry_sync"] {
        let response = who
            .post(app, &format!("/api/{function}"))
            .form(&[("id", id.to_string())])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 404, "server function {function}");
        assert!(!response.text().await.unwrap().contains("secret_col"));
    }
    let list = who.post(app, "/api/list_datasets").send().await.unwrap();
    assert_eq!(list.status(), 200);
    let list: app::model::DatasetList = list.json().await.unwrap();
    assert!(list.datasets.iter().all(|d| d.id != id), "not listed");
    let home = who
        .get(app, "/")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!home.contains(&id.to_string()), "not on the datasets page");
}

#[tokio::test]
async fn another_tenant_finds_nothing_of_a_through_pages_functions_and_tokens() {
    let app = spawn_app().await;
    let id = a_dataset(&app).await;
    // A sees it.
    let mine = app
        .client
        .get(app.url(&format!("/datasets/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(mine.status(), 200);

    let b = app.new_tenant(B_EMAIL).await;
    assert_ne!(
        app.tenant_of_user(B_EMAIL).await,
        app.tenant_of_user(ADMIN_EMAIL).await
    );
    assert_not_found_everywhere(&app, &B::Browser(&b), id).await;
    let token = app.token(&b, "tokens").await;
    assert_not_found_everywhere(&app, &B::Token(&token), id).await;

    // B's upload lands in B's tenant, and A does not see it.
    let theirs = bare_client()
        .post(app.url("/api/datasets"))
        .bearer_auth(&token)
        .header("Accept", "application/json")
        .multipart(reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(b"x\n1\n".to_vec()).file_name("b.csv"),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(theirs.status(), 201);
    let theirs: app::model::UploadResponse = theirs.json().await.unwrap();
    let owner: Uuid = sqlx::query_scalar("SELECT tenant_id FROM datasets WHERE id = $1")
        .bind(theirs.dataset.id)
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(owner, app.tenant_of_user(B_EMAIL).await);
    let a_page = app
        .client
        .get(app.url(&format!("/datasets/{}", theirs.dataset.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(a_page.status(), 404, "and the other way round");

    // A's tokens are not B's to see or revoke.
    let a_token_id: Uuid = sqlx::query_scalar(
        "SELECT id FROM api_tokens WHERE user_id = (SELECT id FROM users WHERE email = $1)",
    )
    .bind(B_EMAIL)
    .fetch_one(&app.db)
    .await
    .unwrap();
    let revoke = app
        .client
        .post(app.url(&format!("/account/tokens/{a_token_id}/revoke")))
        .send()
        .await
        .unwrap();
    assert!(revoke.headers()["location"]
        .to_str()
        .unwrap()
        .contains("error=no%20such%20token"));
    let still: Option<time::OffsetDateTime> =
        sqlx::query_scalar("SELECT revoked_at FROM api_tokens WHERE id = $1")
            .bind(a_token_id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert!(still.is_none(), "another user's token cannot be revoked");
}

#[tokio::test]
async fn another_tenants_event_stream_never_carries_a_s_events() {
    let app = spawn_app().await;
    let id = a_dataset(&app).await;
    let b = app.new_tenant(B_EMAIL).await;
    let mut a_events = Events::open_as(&app, &app.client).await;
    let mut b_events = Events::open_as(&app, &b).await;
    let (name, snapshot) = b_events
        .next(Duration::from_secs(5))
        .await
        .expect("B's snapshot");
    assert_eq!(name, "snapshot");
    assert_eq!(snapshot["states"], json!([]), "B's snapshot is empty");
    let (_, a_snapshot) = a_events
        .next(Duration::from_secs(5))
        .await
        .expect("A's snapshot");
    assert_eq!(a_snapshot["states"][0]["dataset_id"], id.to_string());

    set_status(&app, id, "failed", Some("boom")).await;
    a_events.until_status(id, "failed").await;
    // By the time A has it, B would have it too: B gets nothing.
    assert!(b_events.next(Duration::from_millis(500)).await.is_none());
}

fn mcp_as(mcp: &Mcp, token: &str) -> McpClient {
    McpClient::new(
        mcp.url(),
        SecretString::from(token.to_owned()),
        contract::client::Deadlines::default(),
    )
}

/// The tool's refusal text (a tool error, not a protocol failure).
async fn refused(client: &McpClient, tool: &'static str, args: Value) -> String {
    match client.call_json(tool, args.clone()).await {
        Err(CallError::Tool { message, .. }) => message,
        Ok(out) => panic!("{tool} {args} was allowed: {out}"),
        Err(other) => panic!("{tool}: not a tool error: {other}"),
    }
}

#[tokio::test]
async fn an_assistant_token_acts_only_for_its_own_tenant_on_every_mcp_tool() {
    let mut restate = Restate::new();
    restate.start().await.unwrap();
    let mcp = started_mcp().await;
    let app = spawn_synced_app(&restate, &mcp, Sync::default()).await;
    let id = a_dataset(&app).await;
    let synced = crate::sync::wait_for(&app, id, SyncStatus::Synced, Duration::from_secs(90)).await;
    let (bronze, silver) = (synced.bronze_table.unwrap(), synced.silver_table.unwrap());
    let a_tenant = app.tenant_of_user(ADMIN_EMAIL).await.to_string();

    let b = app.new_tenant(B_EMAIL).await;
    let b_tenant = app.tenant_of_user(B_EMAIL).await.to_string();
    let b_mcp = mcp_as(&mcp, &app.token(&b, "assistant-tokens").await);

    // Naming A's tenant is refused on every tool that takes one.
    for (tool, args) in [
        ("list_tables", json!({"tenant_id": a_tenant})),
        (
            "dataset_status",
            json!({"tenant_id": a_tenant, "dataset_id": id.to_string()}),
        ),
        ("query", json!({"tenant_id": a_tenant, "sql": "SELECT 1"})),
        (
            "describe_table",
            json!({"full_name": silver, "tenant_id": a_tenant}),
        ),
    ] {
        let why = refused(&b_mcp, tool, args).await;
        assert!(
            why.contains("not the tenant this token belongs to"),
            "{tool}: {why}"
        );
    }
    // A's tables are not found from B's own tenant.
    for table in [&bronze, &silver] {
        let why = refused(&b_mcp, "describe_table", json!({"full_name": table})).await;
        assert!(why.contains("does not exist"), "{why}");
        let why = refused(
            &b_mcp,
            "query",
            json!({"tenant_id": b_tenant, "sql": format!("SELECT * FROM {}", quoted(table))}),
        )
        .await;
        assert!(why.contains("rejected"), "{why}");
    }
    let listed = b_mcp
        .call_json("list_tables", json!({"tenant_id": b_tenant}))
        .await
        .unwrap();
    assert!(
        !listed.to_string().contains(&id.simple().to_string()[..8]),
        "{listed}"
    );
    let status = b_mcp
        .call_json(
            "dataset_status",
            json!({"tenant_id": b_tenant, "dataset_id": id.to_string()}),
        )
        .await
        .unwrap();
    assert_eq!(status["bronze"]["exists"], false, "{status}");
    // Writes are the service's alone, even for B's own tenant.
    for (tool, args) in [
        (
            "create_dataset",
            json!({"tenant_id": b_tenant, "dataset_id": Uuid::new_v4().to_string(), "dataset_name": "x",
                   "parquet_url": "http://127.0.0.1:1/internal/storage/datasets/x.parquet", "schema": {}}),
        ),
        (
            "transform_to_silver",
            json!({"tenant_id": b_tenant, "bronze_table": bronze}),
        ),
        (
            "drop_dataset",
            json!({"tenant_id": a_tenant, "dataset_id": id.to_string()}),
        ),
        (
            "drop_dataset",
            json!({"tenant_id": b_tenant, "dataset_id": id.to_string()}),
        ),
    ] {
        let why = refused(&b_mcp, tool, args).await;
        assert!(
            why.contains("only the ServiceTsunami server"),
            "{tool}: {why}"
        );
    }

    // A's own assistant token reads A's tables, and nothing else.
    let a_mcp = mcp_as(&mcp, &app.token(&app.client, "assistant-tokens").await);
    let described = a_mcp
        .call_json("describe_table", json!({"full_name": silver}))
        .await
        .unwrap();
    assert_eq!(described["row_count"], 2);
    let rows = a_mcp
        .call_json(
            "query",
            json!({"tenant_id": a_tenant, "sql": format!("SELECT count(*) AS n FROM {}", quoted(&silver))}),
        )
        .await
        .unwrap();
    assert_eq!(rows["rows"][0]["n"], 2, "{rows}");

    // A revoked or unknown token opens nothing at the MCP server.
    for token in ["st_mcp_unknown", "not-a-token"] {
        assert!(mcp_as(&mcp, token)
            .call_json("list_tables", json!({"tenant_id": b_tenant}))
            .await
            .is_err());
    }

    // B's bulk sync and retry leave A's dataset alone.
    set_status(&app, id, "failed", Some("boom")).await;
    let bulk = b.post(app.url("/api/sync_all")).send().await.unwrap();
    assert_eq!(bulk.status(), 200);
    assert_eq!(bulk.text().await.unwrap(), "0");
    let retry = b
        .post(app.url("/api/retry_sync"))
        .form(&[("id", id.to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(retry.status(), 404);
    let requests: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sync_requests WHERE dataset_id = $1")
            .bind(id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(requests, 1, "only A's upload asked for a sync");
}

#[tokio::test]
async fn the_sync_endpoint_refuses_requests_restate_did_not_sign() {
    let mut restate = Restate::new();
    restate.start().await.unwrap();
    let mcp = started_mcp().await;
    let app = spawn_synced_app(&restate, &mcp, Sync::default()).await;
    let endpoint = app.sync_addr.expect("sync is on");
    let http2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    for (method, path) in [
        ("GET", "/discover".to_owned()),
        (
            "POST",
            format!("/invoke/DatasetSync/{}/sync", Uuid::new_v4()),
        ),
    ] {
        let response = http2
            .request(method.parse().unwrap(), format!("http://{endpoint}{path}"))
            .header("content-type", "application/vnd.restate.invocation.v1")
            .header("x-restate-signature-scheme", "v1")
            .header("x-restate-jwt-v1", "e30.e30.c2lnbmF0dXJl")
            .body(Vec::new())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{method} {path}");
    }
    // Restate itself, which signs, gets through: an upload syncs.
    let id = a_dataset(&app).await;
    crate::sync::wait_for(&app, id, SyncStatus::Synced, Duration::from_secs(90)).await;
}

//! Server-rendered pages and operational endpoints.

use crate::helpers::spawn_app;

#[tokio::test]
async fn health_and_readiness() {
    let app = spawn_app().await;
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["database"], "ok");
}

#[tokio::test]
async fn datasets_page_lists_uploads_without_javascript() {
    let app = spawn_app().await;
    let empty = app.get_text("/").await;
    assert!(empty.contains("No datasets yet"), "{empty}");

    let done = app
        .upload(
            "cities.csv",
            "city,pop\nOslo,709037\n",
            Some("Nordic <cities>"),
        )
        .await
        .expect_ok();
    let page = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("Nordic &lt;cities&gt;"),
        "the name is listed and escaped"
    );
    assert!(html.contains(&format!("/datasets/{}", done.dataset.id)));
    assert!(html.contains("local only"), "the sync badge is rendered");
    assert!(
        html.contains(r#"action="/api/datasets""#),
        "the upload form works without JavaScript"
    );
}

#[tokio::test]
async fn dataset_page_shows_schema_preview_and_statistics() {
    let app = spawn_app().await;
    let csv = "Customer ID,amount\n7,10.5\n8,\n9,30.25\n";
    let done = app
        .upload("orders.csv", csv, Some("Orders"))
        .await
        .expect_ok();

    let html = app
        .get_text(&format!("/datasets/{}", done.dataset.id))
        .await;
    assert!(html.contains("customer_id"), "normalised name shown");
    assert!(html.contains("Customer ID"), "original name shown");
    assert!(html.contains("DOUBLE"), "type shown");
    assert!(html.contains("30.25"), "preview value shown");
    assert!(
        html.contains(r#"<td class="null">NULL</td>"#),
        "NULL shown as such"
    );
    // amount: one null, min 10.5, max 30.25
    assert!(
        html.contains("<td class=\"num\">1</td>"),
        "null count shown"
    );
    assert!(html.contains("10.5"), "min shown");
}

#[tokio::test]
async fn unknown_dataset_and_unknown_page() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(app.url("/datasets/00000000-0000-0000-0000-000000000000"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let html = response.text().await.unwrap();
    assert!(html.contains("dataset not found"), "{html}");
    let missing = app
        .client
        .get(app.url("/no/such/page"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn list_datasets_server_function_is_tenant_scoped() {
    let app = spawn_app().await;
    app.upload("a.csv", "x\n1\n", Some("mine"))
        .await
        .expect_ok();
    // A dataset of another tenant, inserted directly.
    let other: uuid::Uuid = sqlx::query_scalar("INSERT INTO tenants (id, slug, name) VALUES (gen_random_uuid(), 'other', 'Other') RETURNING id")
        .fetch_one(&app.db)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO datasets (id, tenant_id, name, file_name, source_format, schema, row_count, size_bytes, sync_status)
         VALUES (gen_random_uuid(), $1, 'theirs', 't.csv', 'csv', '[]', 0, 0, 'local_only')",
    )
    .bind(other)
    .execute(&app.db)
    .await
    .unwrap();

    let response = app
        .client
        .post(app.url("/api/list_datasets"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let list: Vec<app::model::DatasetSummary> = response.json().await.unwrap();
    let names: Vec<&str> = list.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, vec!["mine"]);
}

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
    let list: app::model::DatasetList = response.json().await.unwrap();
    let names: Vec<&str> = list.datasets.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, vec!["mine"]);
    assert_eq!(list.next, None);
}

/// 120 datasets (ten of them sharing one timestamp) come in pages of 50,
/// newest first, each exactly once, by following `next`; the page links
/// work without JavaScript.
#[tokio::test]
async fn the_dataset_list_is_paged_by_keyset() {
    let app = spawn_app().await;
    let tenant = app.tenant_of_user(crate::helpers::ADMIN_EMAIL).await;
    sqlx::query(
        "INSERT INTO datasets (id, tenant_id, name, file_name, source_format, schema, row_count, size_bytes, sync_status, created_at)
         SELECT gen_random_uuid(), $1, 'd' || i, 'd.csv', 'csv', '[]', 0, 0, 'local_only',
                timestamptz '2026-01-01' + make_interval(secs => CASE WHEN i <= 10 THEN 0 ELSE i END)
         FROM generate_series(1, 120) i",
    )
    .bind(tenant)
    .execute(&app.db)
    .await
    .unwrap();
    let mut seen = Vec::new();
    let mut pages = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut form = vec![];
        if let Some(token) = &after {
            form.push(("after", token.clone()));
        }
        let page: app::model::DatasetList = app
            .client
            .post(app.url("/api/list_datasets"))
            .form(&form)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        pages.push(page.datasets.len());
        seen.extend(page.datasets.into_iter().map(|d| (d.created_at, d.id)));
        match page.next {
            Some(token) => after = Some(token),
            None => break,
        }
    }
    assert_eq!(pages, vec![50, 50, 20]);
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(seen.len(), 120);
    sorted.dedup();
    assert_eq!(sorted.len(), 120, "each dataset once");
    assert!(seen.windows(2).all(|w| w[0].0 >= w[1].0), "newest first");
    // Without JavaScript: the first page links to the next one.
    let html = app.get_text("/").await;
    let href = html
        .split("id=\"older-page\"")
        .next()
        .and_then(|before| before.rsplit("href=\"").next())
        .and_then(|rest| rest.split('"').next())
        .expect("a link to older datasets")
        .replace("&amp;", "&");
    let older = app.get_text(&href).await;
    assert!(older.contains("id=\"newest-page\""), "{href}");
    assert!(
        older.contains("d60") || older.contains("d61"),
        "the second page: {href}"
    );
}

/// Every page of the list for `form` (filters and order), following `next`.
async fn all_pages(
    app: &crate::helpers::TestApp,
    form: &[(&str, &str)],
) -> Vec<app::model::DatasetSummary> {
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut fields: Vec<(&str, String)> =
            form.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        if let Some(token) = &after {
            fields.push(("after", token.clone()));
        }
        let page: app::model::DatasetList = app
            .client
            .post(app.url("/api/list_datasets"))
            .form(&fields)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        seen.extend(page.datasets);
        match page.next {
            Some(token) => after = Some(token),
            None => return seen,
        }
    }
}

/// 130 datasets: searched by name (wildcards literal), filtered by status,
/// ordered by name or size, each order paged by its own keyset; a bad
/// order or status is a 400 that names it.
#[tokio::test]
async fn the_dataset_list_searches_filters_and_sorts() {
    let app = spawn_app().await;
    let tenant = app.tenant_of_user(crate::helpers::ADMIN_EMAIL).await;
    sqlx::query(
        "INSERT INTO datasets (id, tenant_id, name, file_name, source_format, schema, row_count, size_bytes, sync_status, created_at)
         SELECT gen_random_uuid(), $1,
                CASE WHEN i % 10 = 0 THEN 'Sales 50%_' || i ELSE 'item ' || lpad(i::text, 3, '0') END,
                'd.csv', 'csv', '[]', 0, (i * 37) % 101,
                (CASE WHEN i % 3 = 0 THEN 'failed' ELSE 'local_only' END)::sync_status,
                timestamptz '2026-01-01' + make_interval(secs => i)
         FROM generate_series(1, 130) i",
    )
    .bind(tenant)
    .execute(&app.db)
    .await
    .unwrap();

    let by_name = all_pages(&app, &[("sort", "name")]).await;
    assert_eq!(by_name.len(), 130);
    let names: Vec<String> = by_name.iter().map(|d| d.name.to_lowercase()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "A to Z across pages");

    let by_size = all_pages(&app, &[("sort", "size")]).await;
    assert_eq!(by_size.len(), 130);
    assert!(
        by_size
            .windows(2)
            .all(|w| w[0].size_bytes >= w[1].size_bytes),
        "largest first"
    );
    let mut ids: Vec<_> = by_size.iter().map(|d| d.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 130, "each dataset once, ties included");

    // `%` and `_` are literal: only the 13 "Sales 50%_…" match.
    let sales = all_pages(&app, &[("q", "50%_"), ("sort", "name")]).await;
    assert_eq!(sales.len(), 13);
    assert!(sales.iter().all(|d| d.name.starts_with("Sales 50%_")));
    let none = all_pages(&app, &[("q", "5_%")]).await;
    assert!(
        none.is_empty(),
        "{:?}",
        none.iter().map(|d| &d.name).collect::<Vec<_>>()
    );

    let failed = all_pages(&app, &[("status", "failed"), ("q", "sales")]).await;
    assert_eq!(
        failed.len(),
        (1..=130).filter(|i| i % 10 == 0 && i % 3 == 0).count()
    );
    assert!(failed
        .iter()
        .all(|d| d.sync.status == app::domain::SyncStatus::Failed));

    for (field, value, names) in [("sort", "colour", "colour"), ("status", "lost", "lost")] {
        let response = app
            .client
            .post(app.url("/api/list_datasets"))
            .form(&[(field, value)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
        assert!(response.text().await.unwrap().contains(names));
    }

    // Without JavaScript: the form's view is a link, and its pages keep it.
    let html = app.get_text("/?q=item&sort=size").await;
    assert!(html.contains("id=\"list-filters\""));
    let next = html
        .split("id=\"older-page\"")
        .next()
        .and_then(|before| before.rsplit("href=\"").next())
        .and_then(|rest| rest.split('"').next())
        .expect("a next-page link")
        .replace("&amp;", "&");
    assert!(
        next.contains("q=item") && next.contains("sort=size"),
        "{next}"
    );
    let second = app.get_text(&next).await;
    assert!(second.contains("item "), "{next}");
    assert!(!second.contains("Sales 50%"), "{next}");
}

/// A small Parquet file whose one dictionary-encoded string is 20 MB: it
/// converts, and its page (preview and statistics) is served with the cells
/// cut, within the read instance's memory, while uploads still work.
#[tokio::test]
async fn a_file_of_huge_strings_previews_with_cells_cut() {
    let app = spawn_app().await;
    let parquet = crate::helpers::parquet_from_sql(
        "SELECT i AS id, repeat('x', 20000000) AS blob FROM range(200) t(i)",
    );
    assert!(
        parquet.len() < 4 << 20,
        "dictionary-encoded: {} bytes",
        parquet.len()
    );
    let done = app.upload("blobs.parquet", parquet, None).await.expect_ok();
    let page = app
        .client
        .get(app.url(&format!("/datasets/{}", done.dataset.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let cut = format!("{}…", "x".repeat(app::ssr::reader::MAX_CELL_CHARS));
    assert!(html.contains(&cut), "the preview cell is cut");
    assert!(!html.contains(&"x".repeat(app::ssr::reader::MAX_CELL_CHARS + 1)));
    // Another upload is not starved by the page read.
    app.upload("after.csv", "a\n1\n", None).await.expect_ok();
}

//! New versions of a dataset: the schema difference before the choice,
//! replace (any schema), append (compatible schemas only, else 409 naming
//! the columns), the history, the files on disk, and the plain-form flow.

use crate::helpers::{read_parquet, spawn_app, TestApp, ADMIN_EMAIL};
use serde_json::Value;
use uuid::Uuid;

/// Real-world shapes: nulls as `NA`, negative decimals, a header with a
/// space and capitals.
const V1: &str = "Customer ID,Name,Amount\n1,Ada,-2.5\n2,NA,10\n3,Linus,NA\n";

async fn first_version(app: &TestApp) -> Uuid {
    app.upload("customers.csv", V1.as_bytes().to_vec(), Some("Customers"))
        .await
        .expect_ok()
        .dataset
        .id
}

/// Posts `csv` as a new version with `mode`; the status and the JSON answer.
async fn post_version(
    app: &TestApp,
    client: &reqwest::Client,
    id: Uuid,
    file_name: &str,
    csv: &str,
    mode: &str,
) -> (u16, Value) {
    let form = reqwest::multipart::Form::new()
        .text("mode", mode.to_owned())
        .part(
            "file",
            reqwest::multipart::Part::bytes(csv.as_bytes().to_vec())
                .file_name(file_name.to_owned()),
        );
    let response = client
        .post(app.url(&format!("/api/datasets/{id}/versions")))
        .header("Accept", "application/json")
        .multipart(form)
        .send()
        .await
        .expect("sent");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON answer"))
}

async fn commit_staged(app: &TestApp, id: Uuid, staged: &str, mode: &str) -> (u16, Value) {
    let response = app
        .client
        .post(app.url(&format!("/api/datasets/{id}/versions/staged/{staged}")))
        .header("Accept", "application/json")
        .form(&[("mode", mode)])
        .send()
        .await
        .expect("sent");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON answer"))
}

async fn dataset(app: &TestApp, id: Uuid) -> Value {
    app.client
        .post(app.url("/api/get_dataset"))
        .header("Accept", "application/json")
        .form(&[("id", id.to_string())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn names(columns: &Value) -> Vec<String> {
    columns
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_difference_shows_first_then_replace_takes_any_schema() {
    let app = spawn_app().await;
    let id = first_version(&app).await;
    // A different shape: Amount gone, Region added, Customer ID now text.
    let v2 = "customer_id,Name,Region\nA-1,Grace,EU\nA-2,NA,US\n";
    let (status, staged) =
        post_version(&app, &app.client, id, "customers-2.csv", v2, "preview").await;
    assert_eq!(status, 200, "{staged}");
    assert_eq!(staged["current_version"], 1);
    assert_eq!(names(&staged["diff"]["added"]), ["Region"]);
    assert_eq!(names(&staged["diff"]["removed"]), ["Amount"]);
    assert_eq!(staged["diff"]["changed"][0]["name"], "customer_id");
    assert_eq!(staged["diff"]["changed"][0]["from"], "BIGINT");
    assert_eq!(staged["diff"]["changed"][0]["to"], "VARCHAR");
    let conflicts = staged["append_conflicts"].to_string();
    assert!(
        conflicts.contains("Amount") && conflicts.contains("customer_id"),
        "{conflicts}"
    );
    // Nothing about the dataset changed yet.
    let before = dataset(&app, id).await;
    assert_eq!(before["summary"]["version"], 1);
    assert_eq!(before["summary"]["row_count"], 3);
    let staged_id = staged["id"].as_str().unwrap().to_owned();

    // Append is refused, naming the columns; the staged file stays.
    let (status, body) = commit_staged(&app, id, &staged_id, "append").await;
    assert_eq!(status, 409, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("\"Amount\" (DOUBLE) is missing"),
        "{message}"
    );
    assert!(
        message.contains("\"customer_id\" changes type from BIGINT to VARCHAR"),
        "{message}"
    );

    // Replace takes it.
    let (status, done) = commit_staged(&app, id, &staged_id, "replace").await;
    assert_eq!(status, 201, "{done}");
    assert_eq!(done["version"], 2);
    assert_eq!(done["mode"], "replace");
    let after = dataset(&app, id).await;
    assert_eq!(after["summary"]["version"], 2);
    assert_eq!(after["summary"]["row_count"], 2);
    assert_eq!(names(&after["schema"]), ["customer_id", "Name", "Region"]);
    assert_eq!(
        after["preview"]["rows"],
        serde_json::json!([["A-1", "Grace", "EU"], ["A-2", null, "US"]])
    );
    // The history, newest first, with who and how.
    let versions = after["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(versions[0]["version"], 2);
    assert_eq!(versions[0]["mode"], "replace");
    assert_eq!(versions[0]["row_count"], 2);
    assert_eq!(versions[0]["uploaded_by"], ADMIN_EMAIL);
    assert_eq!(versions[1]["mode"], "initial");
    assert_eq!(versions[1]["row_count"], 3);

    // Each version keeps its own rows for the lakehouse; the staged file is gone.
    let datasets = app.data_dir.path().join("datasets");
    let (_, v1_rows) = read_parquet(&datasets.join(format!("{id}.v1.parquet")));
    assert_eq!(v1_rows.len(), 3);
    let (v2_cols, _) = read_parquet(&datasets.join(format!("{id}.v2.parquet")));
    assert_eq!(v2_cols, ["customer_id", "Name", "Region"]);
    let staged_left: Vec<_> = app
        .stored_files()
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("staged"))
        .collect();
    assert!(staged_left.is_empty(), "{staged_left:?}");
    // The staged id is spent.
    let (status, _) = commit_staged(&app, id, &staged_id, "replace").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn append_adds_rows_and_widens_or_is_refused_with_409_leaving_nothing() {
    let app = spawn_app().await;
    let id = first_version(&app).await;
    // The same columns spelled differently, an added one, and an integer
    // Amount (the dataset's is DOUBLE: it widens).
    let v2 = "customer_id,name,Amount,Note\n4,Barbara,-7,first order\n";
    let (status, done) = post_version(&app, &app.client, id, "more.csv", v2, "append").await;
    assert_eq!(status, 201, "{done}");
    assert_eq!(done["version"], 2);
    assert_eq!(names(&done["diff"]["added"]), ["Note"]);
    let after = dataset(&app, id).await;
    assert_eq!(after["summary"]["row_count"], 4);
    assert_eq!(
        names(&after["schema"]),
        ["Customer ID", "Name", "Amount", "Note"]
    );
    assert_eq!(after["schema"][3]["nullable"], true);
    let (columns, rows) = read_parquet(&app.parquet_path(id));
    assert_eq!(columns, ["Customer ID", "Name", "Amount", "Note"]);
    assert_eq!(rows.len(), 4);
    assert_eq!(
        rows[3],
        [
            Some("4".to_owned()),
            Some("Barbara".to_owned()),
            Some("-7.0".to_owned()),
            Some("first order".to_owned())
        ]
    );
    assert_eq!(rows[0][3], None, "earlier rows have no Note");
    // The version's own rows carry the dataset's column names.
    let (v2_cols, v2_rows) = read_parquet(
        &app.data_dir
            .path()
            .join("datasets")
            .join(format!("{id}.v2.parquet")),
    );
    assert_eq!(v2_cols, ["Customer ID", "Name", "Amount", "Note"]);
    assert_eq!(v2_rows.len(), 1);

    // A type that does not widen, and a missing column: 409, and nothing kept.
    let bad = "Customer ID,Name\nx-9,Eve\n";
    let (status, body) = post_version(&app, &app.client, id, "bad.csv", bad, "append").await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "incompatible_schema");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("\"Customer ID\" changes type from BIGINT to VARCHAR"),
        "{message}"
    );
    assert!(message.contains("\"Amount\""), "{message}");
    assert_eq!(dataset(&app, id).await["summary"]["version"], 2);
    let staged: i64 = sqlx::query_scalar("SELECT count(*) FROM staged_versions")
        .fetch_one(&app.db)
        .await
        .unwrap();
    assert_eq!(staged, 0);
    assert!(
        !app.stored_files()
            .iter()
            .any(|p| p.to_string_lossy().contains("staged") || p.to_string_lossy().contains(".v3.")),
        "{:?}",
        app.stored_files()
    );
    // A bad mode and an unreadable file are 4xx that say so.
    let (status, body) = post_version(&app, &app.client, id, "more.csv", v2, "merge").await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("replace or append"));
    let (status, body) = post_version(
        &app,
        &app.client,
        id,
        "broken.json",
        "{\"a\": [1,",
        "append",
    )
    .await;
    assert!((400..500).contains(&status), "{status} {body}");
}

#[tokio::test]
async fn versions_belong_to_the_tenant_and_go_with_the_dataset() {
    let app = spawn_app().await;
    let id = first_version(&app).await;
    let other = app.new_tenant("b@example.org").await;
    let (status, _) = post_version(&app, &other, id, "x.csv", V1, "replace").await;
    assert_eq!(status, 404);
    let (status, staged) = post_version(&app, &app.client, id, "v2.csv", V1, "preview").await;
    assert_eq!(status, 200);
    assert_eq!(staged["append_conflicts"], serde_json::json!([]));
    let staged_id = staged["id"].as_str().unwrap();
    // Another tenant cannot see or commit it.
    let response = other
        .post(app.url(&format!("/api/datasets/{id}/versions/staged/{staged_id}")))
        .header("Accept", "application/json")
        .form(&[("mode", "append")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let (status, done) = commit_staged(&app, id, staged_id, "append").await;
    assert_eq!(status, 201, "{done}");
    assert_eq!(done["dataset"]["row_count"], 6);

    // Deleting the dataset removes every version's file.
    let response = app
        .client
        .delete(app.url(&format!("/api/datasets/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let left: Vec<_> = app
        .stored_files()
        .into_iter()
        .filter(|p| p.starts_with(app.data_dir.path().join("datasets")))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Without JavaScript: the form stages and lands on the difference page,
/// whose buttons commit and land on the dataset page.
#[tokio::test]
async fn the_plain_form_flow_stages_shows_the_difference_and_commits() {
    let app = spawn_app().await;
    let id = first_version(&app).await;
    let form = reqwest::multipart::Form::new()
        .text("mode", "preview")
        .part(
            "file",
            reqwest::multipart::Part::bytes(
                b"Customer ID,Name,Amount,Tier\n9,Ken,1.5,gold\n".to_vec(),
            )
            .file_name("tiers.csv"),
        );
    let response = app
        .client
        .post(app.url(&format!("/api/datasets/{id}/versions")))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with(&format!("/datasets/{id}/versions/")),
        "{location}"
    );
    let page = app.get_text(&location).await;
    assert!(page.contains("id=\"schema-diff\""), "{page}");
    assert!(page.contains("Tier"), "{page}");
    assert!(page.contains("id=\"append-version\""), "{page}");

    let staged = location.rsplit('/').next().unwrap();
    let response = app
        .client
        .post(app.url(&format!("/api/datasets/{id}/versions/staged/{staged}")))
        .form(&[("mode", "append")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    assert_eq!(
        response.headers()["location"],
        format!("/datasets/{id}#versions")
    );
    let page = app.get_text(&format!("/datasets/{id}")).await;
    assert!(page.contains("id=\"version-history\""), "{page}");
    assert!(page.contains("tiers.csv"), "{page}");
}

/// Waits until the lakehouse holds `version` of the dataset.
async fn wait_synced_version(app: &TestApp, id: Uuid, version: i32) {
    let found = stack::wait::until(
        std::time::Duration::from_secs(90),
        "the synced version",
        || async {
            let (status, synced): (String, Option<i32>) = sqlx::query_as(
                "SELECT sync_status::text, synced_version FROM datasets WHERE id = $1",
            )
            .bind(id)
            .fetch_one(&app.db)
            .await
            .unwrap();
            (status == "synced" && synced == Some(version)).then_some(())
        },
    )
    .await;
    assert!(found.is_ok(), "version {version} of {id} was not synced");
}

/// Rows per `_version` of a lakehouse table, through MCP's `query`.
async fn rows_per_version(mcp: &stack::Mcp, tenant: &str, table: &str) -> Vec<(i64, i64)> {
    let out = mcp
        .call(
            "query",
            serde_json::json!({"tenant_id": tenant, "sql": format!(
                "SELECT _version, count(*) AS n FROM {} GROUP BY _version ORDER BY _version",
                crate::sync::quoted(table)
            )}),
        )
        .await
        .expect("query");
    out["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["_version"].as_i64().unwrap(), r["n"].as_i64().unwrap()))
        .collect()
}

#[tokio::test]
async fn the_lakehouse_keeps_every_version_in_bronze_and_silver_follows_append_and_replace() {
    use crate::sync::{spawn_synced_app, started_mcp, tenant_of, Sync};
    let restate = stack::Restate::started().await.unwrap();
    let mcp = started_mcp().await;
    let app = spawn_synced_app(&restate, &mcp, Sync::default()).await;
    let id = first_version(&app).await;
    wait_synced_version(&app, id, 1).await;
    let tenant = tenant_of(&app, id).await;

    // Append: two rows more, one with NA, one negative.
    let (status, body) = post_version(
        &app,
        &app.client,
        id,
        "more.csv",
        "Customer ID,Name,Amount\n4,Grace,1.25\n5,NA,-7\n",
        "append",
    )
    .await;
    assert_eq!(status, 201, "{body}");
    wait_synced_version(&app, id, 2).await;
    let (bronze, silver): (String, String) =
        sqlx::query_as("SELECT bronze_table, silver_table FROM datasets WHERE id = $1")
            .bind(id)
            .fetch_one(&app.db)
            .await
            .unwrap();
    assert_eq!(
        rows_per_version(&mcp, &tenant, &bronze).await,
        [(1, 3), (2, 2)]
    );
    assert_eq!(
        rows_per_version(&mcp, &tenant, &silver).await,
        [(1, 3), (2, 2)]
    );

    // Replace with other columns: bronze keeps all three versions, silver
    // holds version 3 alone, with its columns only.
    let (status, body) = post_version(
        &app,
        &app.client,
        id,
        "cities.csv",
        "Customer ID,City\n9,Oslo\n",
        "replace",
    )
    .await;
    assert_eq!(status, 201, "{body}");
    wait_synced_version(&app, id, 3).await;
    assert_eq!(
        rows_per_version(&mcp, &tenant, &bronze).await,
        [(1, 3), (2, 2), (3, 1)]
    );
    assert_eq!(rows_per_version(&mcp, &tenant, &silver).await, [(3, 1)]);
    let described = mcp
        .call(
            "describe_table",
            serde_json::json!({"full_name": silver, "tenant_id": tenant}),
        )
        .await
        .expect("describe_table");
    assert_eq!(
        names(&described["columns"]),
        [
            "customer_id",
            "city",
            "_dataset_id",
            "_source_file",
            "_version",
            "_ingested_at"
        ]
    );

    // The query page's auto engine runs on the lakehouse: silver holds the
    // current version.
    let response = app
        .client
        .post(app.url("/api/run_query"))
        .header("Accept", "application/json")
        .form(&[("sql", "SELECT city FROM customers"), ("engine", "auto")])
        .send()
        .await
        .unwrap();
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["engine"], "lakehouse", "{answer}");
    assert_eq!(answer["rows"], serde_json::json!([["Oslo"]]));
}

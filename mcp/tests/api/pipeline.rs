use crate::helpers::{call, create_args, spawn_app, MESSY_SELECT};
use serde_json::{json, Value};

fn column<'a>(result: &'a Value, name: &str) -> &'a Value {
    result["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no column {name} in {result:#}"))
}

#[tokio::test]
async fn tools_list_has_schemas_and_annotations() {
    let app = spawn_app().await;
    let client = app.client().await;
    let tools = client.list_all_tools().await.unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    for expected in [
        "create_dataset",
        "transform_to_silver",
        "dataset_status",
        "list_tables",
        "describe_table",
        "query",
        "drop_dataset",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    for tool in &tools {
        assert_eq!(
            tool.input_schema.get("type"),
            Some(&json!("object")),
            "{}",
            tool.name
        );
        let output = tool
            .output_schema
            .as_ref()
            .unwrap_or_else(|| panic!("{} has no output schema", tool.name));
        assert_eq!(output.get("type"), Some(&json!("object")), "{}", tool.name);
        assert!(
            tool.annotations.is_some(),
            "{} has no annotations",
            tool.name
        );
    }
    let create = tools.iter().find(|t| t.name == "create_dataset").unwrap();
    let required = create.input_schema["required"].as_array().unwrap();
    for field in ["tenant_id", "dataset_id", "dataset_name", "parquet_url"] {
        assert!(required.contains(&json!(field)), "{field} not required");
    }
    let query = tools.iter().find(|t| t.name == "query").unwrap();
    assert_eq!(
        query.annotations.as_ref().unwrap().read_only_hint,
        Some(true)
    );
    let silver = tools
        .iter()
        .find(|t| t.name == "transform_to_silver")
        .unwrap();
    let a = silver.annotations.as_ref().unwrap();
    assert_eq!(
        (a.read_only_hint, a.idempotent_hint),
        (Some(false), Some(true))
    );
}

#[tokio::test]
async fn bronze_then_silver_cleans_and_types_the_data() {
    let app = spawn_app().await;
    let client = app.client().await;
    let url = app.files.parquet("messy.parquet", MESSY_SELECT);

    let bronze = call(
        &client,
        "create_dataset",
        create_args("acme", "ds-1", "Q3 Customers!", &url),
    )
    .await
    .unwrap();
    let bronze_table = bronze["bronze_table"].as_str().unwrap();
    assert!(
        bronze_table.starts_with("servicetsunami.acme_bronze.q3_customersx_"),
        "{bronze_table}"
    );
    assert_eq!(bronze["row_count"], 6);
    assert!(bronze["volume_path"]
        .as_str()
        .unwrap()
        .ends_with("/acme_bronze/raw/ds-1/v1/data.parquet"));
    assert_eq!(column(&bronze, "Customer ID")["data_type"], "VARCHAR");
    assert_eq!(column(&bronze, "_source_file")["data_type"], "VARCHAR");

    let silver = call(
        &client,
        "transform_to_silver",
        json!({"tenant_id": "acme", "bronze_table": bronze_table}),
    )
    .await
    .unwrap();
    let silver_table = silver["silver_table"].as_str().unwrap();
    assert_eq!(
        silver_table,
        bronze_table.replace("acme_bronze", "acme_silver")
    );
    assert_eq!(silver["duplicates_removed"], 1);
    assert_eq!(silver["row_count"], 5);
    for (name, ty) in [
        ("customer_id", "VARCHAR"),
        ("amount", "DECIMAL(4,2)"),
        ("qty", "BIGINT"),
        ("is_active", "BOOLEAN"),
        ("signup_date", "DATE"),
        ("last_seen_at", "TIMESTAMP"),
        ("note", "VARCHAR"),
        ("score", "DOUBLE"),
        ("name", "VARCHAR"),
        ("_dataset_id", "VARCHAR"),
        ("_source_file", "VARCHAR"),
        ("_ingested_at", "TIMESTAMP"),
    ] {
        assert_eq!(column(&silver, name)["data_type"], ty, "{name}");
    }
    assert_eq!(column(&silver, "amount")["null_count"], 1);
    assert_eq!(column(&silver, "note")["null_count"], 3);
    assert_eq!(column(&silver, "customer_id")["null_count"], 0);

    // The data itself, read back through the query tool.
    let rows = call(
        &client,
        "query",
        json!({"tenant_id": "acme", "sql": format!("SELECT * FROM {silver_table} ORDER BY customer_id")}),
    )
    .await
    .unwrap();
    let rows = rows["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 5);
    let ids: Vec<&str> = rows
        .iter()
        .map(|r| r["customer_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["007", "010", "042", "099", "123"],
        "leading zeros kept"
    );
    let first = &rows[0];
    assert_eq!(first["amount"], json!(12.5));
    assert_eq!(first["qty"], json!(1));
    assert_eq!(first["is_active"], json!(true));
    assert_eq!(first["signup_date"], json!("2024-01-31"));
    assert_eq!(first["note"], json!("hello"), "trimmed");
    assert_eq!(first["_dataset_id"], json!("ds-1"));
    assert!(first["_source_file"]
        .as_str()
        .unwrap()
        .ends_with("data.parquet"));
    assert!(first["_ingested_at"].is_string());
    let dup = &rows[4];
    assert_eq!(dup["note"], json!("x"));
    for token_column in ["amount", "qty", "is_active", "signup_date", "last_seen_at"] {
        assert!(
            dup[token_column].is_null(),
            "{token_column} should be NULL: {dup}"
        );
    }
    assert_eq!(rows[1]["amount"], json!(3.25));
    assert_eq!(rows[1]["last_seen_at"], json!("2024-02-29 11:30:00"));
    assert_eq!(rows[3]["amount"], json!(-1.5));
}

#[tokio::test]
async fn create_dataset_is_idempotent_per_version() {
    let app = spawn_app().await;
    let client = app.client().await;
    let url = app.files.parquet(
        "small.parquet",
        "SELECT range AS id, 'v' || range AS label FROM range(10)",
    );
    let args = create_args("acme", "ds-idem", "Small", &url);
    let first = call(&client, "create_dataset", args.clone()).await.unwrap();
    let staged = std::fs::metadata(first["volume_path"].as_str().unwrap())
        .unwrap()
        .modified()
        .unwrap();
    let second = call(&client, "create_dataset", args).await.unwrap();
    assert_eq!(first["bronze_table"], second["bronze_table"]);
    assert_eq!(second["row_count"], 10, "no duplicated rows");
    let again = std::fs::metadata(second["volume_path"].as_str().unwrap())
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(staged, again, "the staged file is never rewritten");

    let bronze = first["bronze_table"].as_str().unwrap();
    let s1 = call(
        &client,
        "transform_to_silver",
        json!({"tenant_id": "acme", "bronze_table": bronze}),
    )
    .await
    .unwrap();
    let s2 = call(
        &client,
        "transform_to_silver",
        json!({"tenant_id": "acme", "bronze_table": bronze}),
    )
    .await
    .unwrap();
    assert_eq!(s1["silver_table"], s2["silver_table"]);
    assert_eq!(s2["row_count"], 10);

    let tables = call(&client, "list_tables", json!({"tenant_id": "acme"}))
        .await
        .unwrap();
    assert_eq!(tables["tables"].as_array().unwrap().len(), 2, "{tables:#}");

    let status = call(
        &client,
        "dataset_status",
        json!({"tenant_id": "acme", "dataset_id": "ds-idem"}),
    )
    .await
    .unwrap();
    assert_eq!(status["bronze"]["exists"], true);
    assert_eq!(status["silver"]["row_count"], 10);
    assert!(status["silver"]["updated_at"]
        .as_str()
        .unwrap()
        .starts_with("20"));
    let missing = call(
        &client,
        "dataset_status",
        json!({"tenant_id": "acme", "dataset_id": "nope"}),
    )
    .await
    .unwrap();
    assert_eq!(missing["bronze"]["exists"], false);

    let described = call(&client, "describe_table", json!({"full_name": bronze}))
        .await
        .unwrap();
    assert_eq!(described["row_count"], 10);
    assert!(described["storage_location"]
        .as_str()
        .unwrap()
        .ends_with("v1/data.parquet"));

    // A new version is staged beside the old one and replaces the table.
    let url2 = app.files.parquet(
        "small2.parquet",
        "SELECT range AS id, 'w' AS label FROM range(3)",
    );
    let mut args2 = create_args("acme", "ds-idem", "Small", &url2);
    args2["version"] = json!(2);
    let v2 = call(&client, "create_dataset", args2).await.unwrap();
    assert_eq!(v2["bronze_table"], first["bronze_table"]);
    assert_eq!(v2["row_count"], 3);
    assert!(v2["volume_path"]
        .as_str()
        .unwrap()
        .ends_with("/v2/data.parquet"));
}

#[tokio::test]
async fn twenty_datasets_concurrently() {
    let app = spawn_app().await;
    let client = std::sync::Arc::new(app.client().await);
    let mut tasks = Vec::new();
    for i in 0..20u64 {
        let url = app.files.parquet(
            &format!("d{i}.parquet"),
            &format!(
                "SELECT range AS id, CAST(range * {i} AS VARCHAR) AS amount FROM range({})",
                100 + i
            ),
        );
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let tenant = if i % 2 == 0 { "even" } else { "odd" };
            let bronze = call(
                &client,
                "create_dataset",
                create_args(tenant, &format!("c-{i}"), &format!("Data {i}"), &url),
            )
            .await
            .unwrap();
            let silver = call(
                &client,
                "transform_to_silver",
                json!({"tenant_id": tenant, "bronze_table": bronze["bronze_table"]}),
            )
            .await
            .unwrap();
            let listed = call(&client, "list_tables", json!({"tenant_id": tenant}))
                .await
                .unwrap();
            assert!(!listed["tables"].as_array().unwrap().is_empty());
            (i, silver)
        }));
    }
    for task in tasks {
        let (i, silver) = task.await.unwrap();
        assert_eq!(silver["row_count"], 100 + i);
        assert_eq!(column(&silver, "amount")["data_type"], "BIGINT");
    }
    let even = call(&client, "list_tables", json!({"tenant_id": "even"}))
        .await
        .unwrap();
    assert_eq!(
        even["tables"].as_array().unwrap().len(),
        20,
        "10 bronze + 10 silver"
    );
}

#[tokio::test]
async fn drop_dataset_removes_both_tables_and_every_file_of_the_dataset_only() {
    let app = spawn_app().await;
    let client = app.client().await;
    let url = app.files.parquet("messy.parquet", MESSY_SELECT);
    let mut silver_tables = Vec::new();
    for (dataset, version) in [("ds-1", 1), ("ds-1", 2), ("ds-2", 1)] {
        let mut args = create_args("acme", dataset, "Customers", &url);
        args["version"] = json!(version);
        let bronze = call(&client, "create_dataset", args).await.unwrap();
        let silver = call(
            &client,
            "transform_to_silver",
            json!({"tenant_id": "acme", "bronze_table": bronze["bronze_table"]}),
        )
        .await
        .unwrap();
        silver_tables.push(silver["silver_table"].as_str().unwrap().to_owned());
    }
    let volumes = app.lakehouse.path().join("volumes/servicetsunami");
    let files_under = |dir: &std::path::Path| -> usize {
        fn walk(dir: &std::path::Path) -> usize {
            std::fs::read_dir(dir).map_or(0, |entries| {
                entries
                    .map(|e| e.unwrap().path())
                    .map(|p| if p.is_dir() { walk(&p) } else { 1 })
                    .sum()
            })
        }
        walk(dir)
    };
    assert_eq!(files_under(&volumes.join("acme_bronze/raw/ds-1")), 2);

    let dropped = call(
        &client,
        "drop_dataset",
        json!({"tenant_id": "acme", "dataset_id": "ds-1"}),
    )
    .await
    .unwrap();
    let tables = dropped["dropped_tables"].as_array().unwrap();
    assert_eq!(tables.len(), 2, "{dropped}");
    assert_eq!(tables[1], json!(silver_tables[0]));
    assert_eq!(
        dropped["removed_files"], 3,
        "two staged versions, one silver file"
    );
    assert!(!volumes.join("acme_bronze/raw/ds-1").exists());
    let silver_name = silver_tables[0].rsplit('.').next().unwrap();
    assert!(!volumes
        .join("acme_silver/tables")
        .join(silver_name)
        .exists());

    let status = call(
        &client,
        "dataset_status",
        json!({"tenant_id": "acme", "dataset_id": "ds-1"}),
    )
    .await
    .unwrap();
    assert_eq!(status["bronze"]["exists"], false, "{status}");
    assert_eq!(status["silver"]["exists"], false, "{status}");
    let gone = call(
        &client,
        "query",
        json!({"tenant_id": "acme", "sql": format!("SELECT count(*) FROM {}", silver_tables[0])}),
    )
    .await
    .unwrap_err();
    assert!(!gone.is_empty());

    // The other dataset is untouched and still answers.
    let other = call(
        &client,
        "query",
        json!({"tenant_id": "acme", "sql": format!("SELECT count(*) AS n FROM {}", silver_tables[2])}),
    )
    .await
    .unwrap();
    assert_eq!(other["rows"][0]["n"], 5);
    assert_eq!(files_under(&volumes.join("acme_bronze/raw/ds-2")), 1);

    // Idempotent.
    let again = call(
        &client,
        "drop_dataset",
        json!({"tenant_id": "acme", "dataset_id": "ds-1"}),
    )
    .await
    .unwrap();
    assert_eq!(again["dropped_tables"], json!([]));
    assert_eq!(again["removed_files"], 0);
}

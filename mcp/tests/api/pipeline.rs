use crate::helpers::{bronze_and_silver, call, create_args, spawn_app, MESSY_SELECT};
use rmcp::{service::RunningService, RoleClient};
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

    let (bronze, silver) = bronze_and_silver(&client, "acme", "ds-1", "Q3 Customers!", &url).await;
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

/// A DOUBLE that is not finite (an export's NaN, a sensor's Infinity) is
/// answered by `query` as its word in a string, as Databricks answers it:
/// DuckDB writes it as a bare `NaN`, which no JSON reader takes, and the
/// whole query failed with an internal error.
#[tokio::test]
async fn numbers_that_are_not_finite_are_answered_as_text() {
    let app = spawn_app().await;
    let client = app.client().await;
    let url = app.files.parquet(
        "readings.parquet",
        "SELECT * FROM (VALUES
            (1, 'nan'::DOUBLE, 'NaN as text', ['inf'::DOUBLE, 2.5]),
            (2, 'inf'::DOUBLE, 'Infinity', []),
            (3, '-inf'::DOUBLE, NULL, NULL),
            (4, -1.5, 'x', [-0.5])
        ) AS t(id, reading, note, series)",
    );
    let (bronze, silver) = bronze_and_silver(&client, "acme", "ds-nan", "Readings", &url).await;
    assert_eq!(silver["row_count"], 4);
    for table in [&bronze["bronze_table"], &silver["silver_table"]] {
        let sql = format!(
            "SELECT id, reading, note, series FROM {} ORDER BY id",
            table.as_str().unwrap()
        );
        let answer = call(&client, "query", json!({"tenant_id": "acme", "sql": sql}))
            .await
            .unwrap_or_else(|e| panic!("{table}: {e}"));
        assert_eq!(
            answer["rows"],
            json!([
                {"id": 1, "reading": "NaN", "note": "NaN as text", "series": ["Infinity", 2.5]},
                {"id": 2, "reading": "Infinity", "note": "Infinity", "series": []},
                {"id": 3, "reading": "-Infinity", "note": null, "series": null},
                {"id": 4, "reading": -1.5, "note": "x", "series": [-0.5]},
            ]),
            "{table}"
        );
    }
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

    // A new version is staged beside the old one; bronze keeps both.
    let url2 = app.files.parquet(
        "small2.parquet",
        "SELECT range AS id, 'w' AS label, range * 2 AS extra FROM range(3)",
    );
    let mut args2 = create_args("acme", "ds-idem", "Small", &url2);
    args2["version"] = json!(2);
    let v2 = call(&client, "create_dataset", args2).await.unwrap();
    assert_eq!(v2["bronze_table"], first["bronze_table"]);
    assert_eq!(v2["version"], 2);
    assert_eq!(v2["row_count"], 13, "version 1's 10 rows and version 2's 3");
    assert!(v2["volume_path"]
        .as_str()
        .unwrap()
        .ends_with("/v2/data.parquet"));
}

/// Rows per `_version` of a table, through the query tool.
async fn rows_per_version(client: &RunningService<RoleClient, ()>, table: &str) -> Vec<(i64, i64)> {
    let counted = call(
        client,
        "query",
        json!({"tenant_id": "acme", "sql": format!(
            "SELECT _version, count(*) AS n FROM {table} GROUP BY _version ORDER BY _version"
        )}),
    )
    .await
    .unwrap();
    counted["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["_version"].as_i64().unwrap(), r["n"].as_i64().unwrap()))
        .collect()
}

#[tokio::test]
async fn bronze_keeps_every_version_and_silver_holds_its_range() {
    let app = spawn_app().await;
    let client = app.client().await;
    let silver_of = |bronze: &str, version: u32, base: u32| json!({"tenant_id": "acme", "bronze_table": bronze, "version": version, "base_version": base});
    let stage = |name: &str, sql: &str, version: u32| {
        let url = app.files.parquet(name, sql);
        let mut args = create_args("acme", "ds-v", "Versions", &url);
        args["version"] = json!(version);
        args
    };
    // Version 1: three rows with NA for a missing amount.
    let v1 = call(
        &client,
        "create_dataset",
        stage(
            "v1.parquet",
            "SELECT * FROM (VALUES (1, '10.5', 'old'), (2, 'NA', 'old'), (3, '-2', 'old')) t(id, amount, note)",
            1,
        ),
    )
    .await
    .unwrap();
    let bronze = v1["bronze_table"].as_str().unwrap().to_owned();
    let s1 = call(&client, "transform_to_silver", silver_of(&bronze, 1, 1))
        .await
        .unwrap();
    assert_eq!(
        (s1["base_version"].as_u64(), s1["version"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(s1["row_count"], 3);

    // Version 2, appended: a row repeated from version 1 is kept once.
    call(
        &client,
        "create_dataset",
        stage(
            "v2.parquet",
            "SELECT * FROM (VALUES (3, '-2', 'old'), (4, '7', 'new')) t(id, amount, note)",
            2,
        ),
    )
    .await
    .unwrap();
    let s2 = call(&client, "transform_to_silver", silver_of(&bronze, 2, 1))
        .await
        .unwrap();
    assert_eq!(
        (s2["base_version"].as_u64(), s2["version"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(s2["row_count"], 4);
    assert_eq!(s2["duplicates_removed"], 1);
    assert_eq!(column(&s2, "amount")["data_type"], "DECIMAL(3,1)");
    let silver = s2["silver_table"].as_str().unwrap().to_owned();
    assert_eq!(rows_per_version(&client, &bronze).await, [(1, 3), (2, 2)]);
    assert_eq!(
        rows_per_version(&client, &silver).await,
        [(1, 3), (2, 1)],
        "the repeated row keeps version 1's lineage"
    );

    // Version 3 replaces: other columns, `id` now text. Bronze keeps every
    // version (the clashing column as text); silver is version 3 alone.
    let v3 = call(
        &client,
        "create_dataset",
        stage(
            "v3.parquet",
            "SELECT * FROM (VALUES ('A-1', DATE '2024-01-31')) t(id, seen)",
            3,
        ),
    )
    .await
    .unwrap();
    assert_eq!(v3["row_count"], 6);
    assert_eq!(column(&v3, "id")["data_type"], "VARCHAR");
    assert_eq!(
        rows_per_version(&client, &bronze).await,
        [(1, 3), (2, 2), (3, 1)]
    );
    let s3 = call(&client, "transform_to_silver", silver_of(&bronze, 3, 3))
        .await
        .unwrap();
    assert_eq!(
        (s3["base_version"].as_u64(), s3["version"].as_u64()),
        (Some(3), Some(3))
    );
    assert_eq!(s3["row_count"], 1);
    let names: Vec<&str> = s3["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "id",
            "seen",
            "_dataset_id",
            "_source_file",
            "_version",
            "_ingested_at"
        ],
        "only version 3's columns"
    );

    // A late sync of version 2 changes nothing and says what silver holds.
    let late = call(&client, "transform_to_silver", silver_of(&bronze, 2, 1))
        .await
        .unwrap();
    assert_eq!(
        (late["base_version"].as_u64(), late["version"].as_u64()),
        (Some(3), Some(3))
    );
    assert_eq!(late["row_count"], 1);
    assert_eq!(rows_per_version(&client, &silver).await, [(3, 1)]);

    // Bronze's lineage names its staging time per version.
    let times = call(
        &client,
        "query",
        json!({"tenant_id": "acme", "sql": format!(
            "SELECT count(DISTINCT _ingested_at) AS n, min(_ingested_at) IS NOT NULL AS known FROM {bronze}"
        )}),
    )
    .await
    .unwrap();
    assert_eq!(times["rows"][0]["known"], true);
    assert!(times["rows"][0]["n"].as_i64().unwrap() >= 1);
}

#[tokio::test]
async fn a_file_with_a_lineage_column_name_is_refused_by_name_and_not_staged() {
    let app = spawn_app().await;
    let client = app.client().await;
    let url = app
        .files
        .parquet("clash.parquet", "SELECT 1 AS id, 2 AS _version");
    let err = call(
        &client,
        "create_dataset",
        create_args("acme", "ds-clash", "Clash", &url),
    )
    .await
    .unwrap_err();
    assert!(
        err.contains("_version") && err.contains("reserved"),
        "{err}"
    );
    let staged = app
        .lakehouse
        .path()
        .join("volumes/servicetsunami/acme_bronze/raw/ds-clash/v1/data.parquet");
    assert!(!staged.exists(), "a refused file is not staged");
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
            let (_, silver) = bronze_and_silver(
                &client,
                tenant,
                &format!("c-{i}"),
                &format!("Data {i}"),
                &url,
            )
            .await;
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

#[tokio::test]
async fn a_small_tenants_sync_finishes_while_a_big_one_runs() {
    let app = spawn_app().await;
    let client = std::sync::Arc::new(app.client().await);
    let big = app.files.parquet(
        "big.parquet",
        "SELECT range AS id, lpad(CAST(range % 100000 AS VARCHAR), 6, '0') AS code, \
         CAST(range % 977 AS VARCHAR) || '.25' AS amount, 'NA' AS note, \
         CAST(DATE '2024-01-01' + CAST(range % 365 AS INTEGER) AS VARCHAR) AS day FROM range(3000000)",
    );
    let small = app.files.parquet(
        "small.parquet",
        "SELECT range AS id, CAST(-range AS VARCHAR) AS amount FROM range(10)",
    );
    let sync = |tenant: &'static str, dataset: &'static str, url: String| {
        let client = client.clone();
        tokio::spawn(async move {
            bronze_and_silver(&client, tenant, dataset, dataset, &url).await;
            std::time::Instant::now()
        })
    };
    let big_sync = sync("bigco", "big", big);
    // The big one is past its bronze and into silver's rows.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let small_done = sync("smallco", "small", small).await.unwrap();
    assert!(!big_sync.is_finished(), "the big sync should still run");
    let big_done = big_sync.await.unwrap();
    assert!(small_done < big_done);
}

/// A spreadsheet export at the documented width, 1,000 columns, every one
/// text as a CSV's are until silver types them: each column is measured
/// and typed by its own values, whatever its neighbours hold. Measured
/// column by column in one query (the wide form, one expression per column,
/// took DuckDB 64 s to plan and run on 334 text columns of 8,000 rows, and
/// `IN (null tokens)` became a join per column).
#[tokio::test]
async fn a_thousand_text_columns_are_each_typed_by_their_own_values() {
    let app = spawn_app().await;
    let client = app.client().await;
    // Column i holds, by i % 8: integers with NA, negative decimals, dates,
    // yes/no, codes with leading zeros, words, timestamps, nothing but NA.
    let kinds = [
        "CASE WHEN r % 10 = 0 THEN 'NA' ELSE CAST(r * 7 - 500 AS VARCHAR) END",
        "CAST(r % 100 - 50 AS VARCHAR) || '.25'",
        "strftime(DATE '2024-01-01' + CAST(r AS INTEGER), '%Y-%m-%d')",
        "CASE WHEN r % 2 = 0 THEN 'yes' ELSE 'no' END",
        "lpad(CAST(r % 1000 AS VARCHAR), 5, '0')",
        "'word ' || CAST(r % 97 AS VARCHAR)",
        "strftime(TIMESTAMP '2024-01-01 08:00:00' + to_minutes(r), '%Y-%m-%d %H:%M:%S')",
        "' n/a '",
    ];
    let columns: Vec<String> = (0..1000)
        .map(|i| format!("{} AS \"col {i}\"", kinds[i % kinds.len()]))
        .collect();
    let url = app.files.parquet(
        "survey.parquet",
        &format!("SELECT {} FROM range(2000) AS t(r)", columns.join(", ")),
    );

    let (bronze, silver) = bronze_and_silver(&client, "acme", "ds-wide", "Survey", &url).await;
    assert_eq!(bronze["row_count"], 2000);
    assert_eq!(silver["row_count"], 2000);
    let expected = [
        "BIGINT",
        "DECIMAL(4,2)",
        "DATE",
        "BOOLEAN",
        "VARCHAR",
        "VARCHAR",
        "TIMESTAMP",
        "VARCHAR",
    ];
    for i in 0..1000 {
        let name = format!("col_{i}");
        assert_eq!(
            column(&silver, &name)["data_type"],
            expected[i % expected.len()],
            "{name}"
        );
    }
    assert_eq!(column(&silver, "col_0")["null_count"], 200, "NA is null");
    assert_eq!(column(&silver, "col_998")["null_count"], 0);
    assert_eq!(column(&silver, "col_999")["null_count"], 2000, "only NA");
    let rows = call(
        &client,
        "query",
        json!({"tenant_id": "acme", "sql": format!(
            "SELECT col_1, col_4, col_992 FROM {} ORDER BY col_992 LIMIT 1",
            silver["silver_table"].as_str().unwrap()
        )}),
    )
    .await
    .unwrap();
    assert_eq!(
        rows["rows"][0],
        json!({"col_1": -49.25, "col_4": "00001", "col_992": -493})
    );

    // Silver's file is written as the app writes its files (one owner,
    // `contract::PARQUET_OPTIONS`): zstd, row groups capped by bytes.
    let files = app
        .lakehouse
        .path()
        .join("volumes/*/acme_silver/tables/*/*.parquet");
    let files = files.display().to_string().replace('\'', "''");
    let conn = duckdb::Connection::open_in_memory().unwrap();
    let codecs: Vec<String> = conn
        .prepare(&format!(
            "SELECT DISTINCT compression FROM parquet_metadata('{files}')"
        ))
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(codecs, ["ZSTD"]);
}

//! The Spark tier: what goes to Databricks, checked against real Spark
//! (pyspark, local; Delta Lake's jars come from Maven, which is not
//! reachable here, so tables are plain Spark views over Parquet).
//!
//! ## The query guard against Spark's own parser
//!
//! Every query of the corpus goes through what `query` does for Databricks:
//! lexed by Spark's rules (`spark_sql::canonicalize`), checked by the guard on
//! the DuckDB rendering. Every query it accepts is then parsed, as the Spark
//! rendering that would be sent, by Spark itself
//! (`spark.sessionState.sqlParser`, through pyspark): each relation Spark
//! reads must be the tenant's own (`acme_bronze`/`acme_silver`, in our
//! catalog) or a CTE of the query, and no table-valued function may appear.
//!
//! ## The silver plan on Spark
//!
//! The Databricks-dialect silver plan, rendered by the project, runs on Spark
//! over the same bronze Parquet the local backend turns into silver, and
//! both silvers must match row for row.

use servicetsunami_mcp::domain::{Ident, TenantId};
use servicetsunami_mcp::{query_guard, spark_sql};
mod spark;

const CATALOG: &str = "main_cat";
/// How many of the corpus's first queries are the tenant's own.
const TENANT_OWN: usize = 17;

/// Written from the families the guard must hold against: Spark's string
/// escapes and double-quoted strings, backticks, comments (nested, line
/// continuations, hints), stacking, other tenants and catalogs, system
/// schemas, file paths, table-valued functions, CTE scope, and plain queries
/// that must keep working.
const CORPUS: &[&str] = &[
    // Plain tenant queries: accepted, and Spark must agree they are the tenant's.
    "SELECT * FROM acme_silver.orders",
    "SELECT count(*) FROM main_cat.acme_bronze.orders",
    "SELECT `Customer ID` FROM `acme_bronze`.`orders` WHERE amount > 1.5e-3",
    "WITH a AS (SELECT * FROM acme_silver.t) SELECT * FROM a",
    "WITH a AS (SELECT * FROM acme_silver.t), b AS (SELECT * FROM a) SELECT * FROM b JOIN acme_bronze.u USING (id)",
    "SELECT * FROM acme_silver.t WHERE id IN (SELECT id FROM acme_bronze.t)",
    "SELECT (SELECT max(x) FROM acme_silver.t) AS m",
    "SELECT * FROM acme_silver.t WHERE EXISTS (SELECT 1 FROM acme_bronze.u WHERE u.id = t.id)",
    "SELECT name FROM acme_silver.t WHERE name LIKE 'a\\_%' ESCAPE '\\\\'",
    "SELECT \"a double-quoted string\" AS s FROM acme_silver.t",
    "SELECT 'it''s' AS s FROM acme_silver.t",
    "SELECT /*+ BROADCAST(u) */ * FROM acme_silver.t JOIN acme_silver.u USING (id)",
    "SELECT * FROM acme_silver.t -- trailing comment",
    "SELECT * FROM acme_silver.t /* a /* nested */ comment */ WHERE x = 1",
    "SELECT * FROM acme_silver.t;",
    "SELECT a.* FROM acme_silver.t AS a ORDER BY 1 LIMIT 5",
    "SELECT id, CASE WHEN x > 0 THEN 'pos' ELSE 'neg' END FROM acme_silver.t UNION ALL SELECT id, 'b' FROM acme_bronze.t",
    // Backslash escapes: Spark reads one string where DuckDB reads two.
    "SELECT 'x\\' AS a, ' AS b, * FROM system.information_schema.tables /*\n' AS d -- */",
    "SELECT 'x\\' FROM acme_silver.t UNION SELECT * FROM rival_silver.t -- '",
    "SELECT * FROM acme_silver.t WHERE s = '\\' OR 1=1 UNION SELECT * FROM rival_silver.secrets --'",
    "SELECT 'a\\\\' , * FROM rival_bronze.t",
    // Double-quoted strings: a string to Spark, a name to DuckDB.
    "SELECT * FROM acme_silver.t WHERE name = \"x\" UNION SELECT * FROM rival_silver.t",
    "SELECT \"abc\\\" FROM rival_silver.t \" FROM acme_silver.t",
    // Backticks.
    "SELECT * FROM `rival_silver`.`t`",
    "SELECT * FROM `acme_silver.t`",
    "SELECT * FROM `main_cat`.`rival_silver`.`t`",
    "SELECT * FROM acme_silver.`t` JOIN `rival_silver`.t USING (id)",
    "SELECT * FROM `acme_silver`.`x``y`",
    // Comments that end differently for Spark.
    "SELECT * FROM acme_silver.t /* outer /* inner */ UNION SELECT * FROM rival_silver.t */",
    "SELECT * FROM acme_silver.t -- continued \\\nUNION SELECT * FROM rival_silver.t",
    "SELECT * FROM acme_silver.t /* unclosed",
    "SELECT /*+ REPARTITION(3) */ * FROM rival_silver.t",
    // Several statements.
    "SELECT 1; SELECT * FROM rival_silver.t",
    "SELECT * FROM acme_silver.t; DROP TABLE acme_silver.t",
    "SELECT 1 ; ; SELECT 2",
    // Other tenants, catalogs and system schemas.
    "SELECT * FROM rival_silver.t",
    "SELECT * FROM other_cat.acme_silver.t",
    "SELECT * FROM system.information_schema.tables",
    "SELECT * FROM information_schema.tables",
    "SELECT * FROM default.t",
    "SELECT * FROM t",
    "SELECT * FROM acme_silver.t, rival_bronze.u",
    "SELECT * FROM acme_silver.t WHERE id IN (SELECT id FROM rival_silver.t)",
    // Files and functions.
    "SELECT * FROM parquet.`/Volumes/main_cat/rival_bronze/raw/x.parquet`",
    "SELECT * FROM json.`s3://bucket/path`",
    "SELECT * FROM read_files('/Volumes/main_cat/rival_bronze/raw')",
    "SELECT * FROM range(10)",
    "SELECT * FROM IDENTIFIER('rival_silver.t')",
    "SELECT reflect('java.lang.System', 'getenv', 'HOME')",
    "SELECT secret('scope', 'key')",
    "SELECT http_request(conn => 'c', method => 'GET', path => '/')",
    "SELECT '${spark.databricks.token}' FROM acme_silver.t",
    // CTE scope: a name not in scope is a table to Spark.
    "WITH t AS (SELECT * FROM t) SELECT * FROM t",
    "WITH a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a",
    "SELECT * FROM x, (WITH x AS (SELECT 1) SELECT 1) z",
    "WITH rival_silver AS (SELECT 1) SELECT * FROM rival_silver.t",
    // Statements that are not queries.
    "DESCRIBE acme_silver.t",
    "SHOW TABLES IN rival_silver",
    "SET spark.sql.ansi.enabled = false",
    "USE rival_silver",
    "INSERT INTO acme_silver.t SELECT * FROM rival_silver.t",
];

fn decide(conn: &duckdb::Connection, sql: &str) -> Result<String, String> {
    let canonical = spark_sql::canonicalize(sql).map_err(|e| e.to_string())?;
    query_guard::check(
        conn,
        &Ident::parse(CATALOG).unwrap(),
        &TenantId::parse("acme").unwrap(),
        &canonical.duckdb,
    )
    .map_err(|e| e.to_string())?;
    Ok(canonical.spark)
}

fn tenant_relation(parts: &[String], ctes: &[String]) -> bool {
    let lower: Vec<String> = parts.iter().map(|p| p.to_lowercase()).collect();
    let tenant_schema = |s: &str| s == "acme_bronze" || s == "acme_silver";
    match lower.as_slice() {
        [name] => ctes.iter().any(|c| c.eq_ignore_ascii_case(name)),
        [schema, _] => tenant_schema(schema),
        [catalog, schema, _] => catalog == CATALOG && tenant_schema(schema),
        _ => false,
    }
}

#[test]
fn spark_reads_every_accepted_query_as_touching_only_the_tenant() {
    assert!(CORPUS.len() >= 40);
    let conn = duckdb::Connection::open_in_memory().unwrap();
    let decisions: Vec<(&str, Result<String, String>)> = CORPUS
        .iter()
        .map(|sql| (*sql, decide(&conn, sql)))
        .collect();
    let accepted: Vec<(&str, String)> = decisions
        .iter()
        .filter_map(|(sql, d)| d.as_ref().ok().map(|spark| (*sql, spark.clone())))
        .collect();
    // The corpus's first 17 queries are the tenant's own and must pass.
    // Some attacks pass too, once read as Spark reads them (the "hidden"
    // part is inside a string or a comment): Spark below says what they
    // touch.
    for (sql, decision) in &decisions[..TENANT_OWN] {
        assert!(decision.is_ok(), "{sql}: {decision:?}");
    }
    eprintln!(
        "{} of {} queries accepted, {} refused",
        accepted.len(),
        CORPUS.len(),
        CORPUS.len() - accepted.len()
    );

    let Some(session) = spark::session() else {
        return;
    };
    let mut session = session.lock().unwrap();
    for (sql, spark) in &accepted {
        let read = session.parse(spark);
        assert!(
            read["error"].is_null(),
            "Spark cannot parse the rendering of {sql:?}: {spark}: {}",
            read["error"]
        );
        let strings = |key: &str| -> Vec<Vec<String>> {
            serde_json::from_value(read[key].clone()).unwrap_or_default()
        };
        let ctes: Vec<String> = serde_json::from_value(read["ctes"].clone()).unwrap();
        assert!(strings("functions").is_empty(), "{sql}: {read}");
        let relations = strings("relations");
        if CORPUS[..TENANT_OWN].contains(sql) {
            assert!(
                !relations.is_empty(),
                "{sql}: Spark read no table at all: {read}"
            );
        }
        for relation in relations {
            assert!(
                tenant_relation(&relation, &ctes),
                "Spark reads {relation:?} in {spark:?} (from {sql:?})"
            );
        }
    }
}

/// Bronze as uploads leave it: names with spaces, unicode, a leading digit
/// and a clash after normalising; 'NA', a database export's '\N' (each
/// dialect writes its backslash its own way) and other null tokens; zip
/// codes with leading zeros; amounts as text; an exact duplicate row;
/// timestamps (one column as text, one typed, with a time zone) and a time
/// of day, which uploads write as text. (The bundled DuckDB has no ICU, so no
/// TIMESTAMPTZ here; Spark reads the typed column in its session's UTC.)
const BRONZE_SQL: &str = "SELECT * FROM (VALUES \
    ('007', '02134', ' 1.50 ', '2024-05-01 09:30:00', TIMESTAMP '2024-05-01 07:30:00', '09:30:00', 'yes', 'Zoë', 'a', 'A', 1.5::DOUBLE), \
    ('008', '10001', '\\N', '2024-05-02 10:00:00', TIMESTAMP '2024-05-02 23:59:59', '17:45:30', 'no', 'NA', 'b', 'B', -2.25::DOUBLE), \
    ('009', '00501', '-3', 'N/A', NULL, NULL, '', 'Ærø', 'c', 'C', NULL), \
    ('007', '02134', ' 1.50 ', '2024-05-01 09:30:00', TIMESTAMP '2024-05-01 07:30:00', '09:30:00', 'yes', 'Zoë', 'a', 'A', 1.5::DOUBLE), \
    ('010', '99950', '12', '2024-12-31 23:59:59', TIMESTAMP '2024-12-31 17:00:00.123456', '00:00:00', 'NA', '-', 'd', 'D', 0.0::DOUBLE)) \
    t(\"Customer ID\", \"Zip Code\", \"Amount\", \"Signed Up\", \"Seen At\", \"Opens\", \"Active\", \"Ünïcödé Näme\", \"1st Place\", \"1st place\", \"Score (%)\")";

#[tokio::test]
async fn the_databricks_silver_plan_on_spark_matches_the_local_silver_row_for_row() {
    use servicetsunami_mcp::backend::local::LocalLakehouse;
    use servicetsunami_mcp::backend::{BronzeRequest, ColumnInfo, Lakehouse};
    use servicetsunami_mcp::config::SandboxLimits;
    use servicetsunami_mcp::domain::{table_ident, DatasetId, DatasetVersion, TableName};
    use servicetsunami_mcp::plan::{self, Dialect, SilverPlan};

    let Some(session) = spark::session() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bronze.parquet");
    let conn = duckdb::Connection::open_in_memory().unwrap();
    conn.execute_batch(&format!(
        "COPY ({BRONZE_SQL}) TO '{}' (FORMAT parquet)",
        file.display()
    ))
    .unwrap();

    // The local backend: bronze and silver as a sync makes them.
    let lake = LocalLakehouse::open(
        &dir.path().join("lake"),
        Ident::parse("lh").unwrap(),
        SandboxLimits::default(),
    )
    .unwrap();
    let dataset = DatasetId::parse("ds-1").unwrap();
    let download = dir.path().join("download.parquet");
    std::fs::copy(&file, &download).unwrap();
    let bronze = lake
        .create_bronze(BronzeRequest {
            tenant: TenantId::parse("acme").unwrap(),
            table: table_ident("People", &dataset).unwrap(),
            dataset: dataset.clone(),
            version: DatasetVersion::parse(Some(1)).unwrap(),
            download,
        })
        .await
        .unwrap();
    let silver = lake
        .transform_to_silver(
            TenantId::parse("acme").unwrap(),
            TableName::parse(&bronze.bronze_table).unwrap(),
            Default::default(),
        )
        .await
        .unwrap();
    assert_eq!(silver.duplicates_removed, 1);
    let silver_glob = dir
        .path()
        .join("lake/volumes/lh/acme_silver/tables/**/*.parquet");
    let local = duckdb_rows(&conn, &format!("read_parquet('{}')", silver_glob.display()));

    // Spark: the same file as the bronze table (a view: no Delta here), then
    // the project's Databricks statements, as the backend would send them.
    let mut spark = session.lock().unwrap();
    let spark_bronze = TableName::parse("spark_catalog.acme_bronze.people").unwrap();
    let spark_silver = TableName::parse("spark_catalog.acme_silver.people").unwrap();
    spark.sql("CREATE DATABASE IF NOT EXISTS acme_bronze");
    spark.sql("DROP TABLE IF EXISTS acme_bronze.people_file");
    spark.sql(&format!(
        "CREATE TABLE acme_bronze.people_file USING parquet OPTIONS (path '{}')",
        file.display()
    ));
    spark.sql(&format!(
        "CREATE OR REPLACE VIEW {} AS SELECT *, 'ds-1' AS `_dataset_id`, 'bronze.parquet' AS `_source_file`, \
         CAST(regexp_extract('/x/v1/data.parquet', '/v([0-9]+)/data[.]parquet$', 1) AS INT) AS `_version`, \
         current_timestamp() AS `_ingested_at` FROM acme_bronze.people_file",
        Dialect::Databricks.table(&spark_bronze)
    ));
    let described = spark.sql(&format!(
        "SELECT * FROM {} LIMIT 0",
        Dialect::Databricks.table(&spark_bronze)
    ));
    let columns: Vec<ColumnInfo> = described["columns"]
        .as_array()
        .unwrap()
        .iter()
        .zip(described["types"].as_array().unwrap())
        .map(|(name, ty)| ColumnInfo {
            name: name.as_str().unwrap().to_owned(),
            data_type: ty.as_str().unwrap().to_ascii_uppercase(),
        })
        .collect();
    let strings = plan::string_columns(Dialect::Databricks, &columns);
    let range = Some(plan::VersionRange::new(Some(1), Some(1), 1));
    let measured = spark.sql(&plan::stats_by_column_sql(
        Dialect::Databricks,
        &spark_bronze,
        range,
        &strings,
    ));
    // A row per text column: its name, then its statistics (as text).
    let stats: std::collections::HashMap<String, plan::StringStats> = measured["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let row = row.as_array().unwrap();
            let values: Vec<u64> = row[1..]
                .iter()
                .map(|v| v.as_str().and_then(|s| s.parse().ok()).unwrap_or(0))
                .collect();
            (
                row[0].as_str().unwrap().to_owned(),
                plan::StringStats::from_values(&values),
            )
        })
        .collect();
    assert_eq!(
        stats.len(),
        strings.len(),
        "every text column holds a value"
    );
    let source = plan::with_stats(&columns, &strings, stats);
    let plan = SilverPlan::new(
        spark_bronze,
        spark_silver,
        range,
        plan::now_timestamp(),
        &source,
    );
    let answer = spark.sql(&plan.select_sql(Dialect::Databricks));
    let spark_rows = rows_of(&answer);
    // The plan typed what it should, on Spark too.
    let typed: Vec<(String, String)> =
        serde_json::from_value::<Vec<String>>(answer["columns"].clone())
            .unwrap()
            .into_iter()
            .zip(serde_json::from_value::<Vec<String>>(answer["types"].clone()).unwrap())
            .collect();
    for (column, ty) in [
        ("customer_id", "string"),
        ("zip_code", "string"),
        ("amount", "decimal(4,2)"),
        ("signed_up", "timestamp"),
        ("opens", "string"),
        ("active", "boolean"),
    ] {
        assert!(
            typed.contains(&(column.to_owned(), ty.to_owned())),
            "{column} should be {ty}: {typed:?}"
        );
    }

    // Same columns, in order, with the same types' values, row for row
    // (sorted; the lineage columns that name files and times differ).
    let names = |rows: &Table| rows.0.clone();
    assert_eq!(names(&local), names(&spark_rows));
    assert_eq!(
        comparable(&local),
        comparable(&spark_rows),
        "local silver (left) and Spark's (right) differ"
    );
    assert_eq!(local.1.len(), 4, "5 rows, one duplicate");
}

/// Column names and rows as text.
type Table = (Vec<String>, Vec<Vec<Option<String>>>);

fn duckdb_rows(conn: &duckdb::Connection, from: &str) -> Table {
    let mut stmt = conn
        .prepare(&format!("DESCRIBE SELECT * FROM {from}"))
        .unwrap();
    let names: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let casts: Vec<String> = names
        .iter()
        .map(|n| format!("CAST(\"{}\" AS VARCHAR)", n.replace('"', "\"\"")))
        .collect();
    let mut stmt = conn
        .prepare(&format!("SELECT {} FROM {from}", casts.join(", ")))
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            (0..names.len())
                .map(|i| r.get::<_, Option<String>>(i))
                .collect::<Result<Vec<_>, _>>()
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    (names, rows)
}

fn rows_of(answer: &serde_json::Value) -> Table {
    let names = serde_json::from_value(answer["columns"].clone()).unwrap();
    let rows = serde_json::from_value(answer["rows"].clone()).unwrap();
    (names, rows)
}

/// Sorted rows without the lineage columns that differ by design
/// (`_source_file`, `_ingested_at`).
fn comparable(table: &Table) -> Vec<Vec<Option<String>>> {
    let keep: Vec<usize> = (0..table.0.len())
        .filter(|&i| !matches!(table.0[i].as_str(), "_source_file" | "_ingested_at"))
        .collect();
    let mut rows: Vec<Vec<Option<String>>> = table
        .1
        .iter()
        .map(|row| keep.iter().map(|&i| row[i].clone()).collect())
        .collect();
    rows.sort();
    rows
}

//! Bronze + silver through the local backend against the same SQL run
//! directly in DuckDB, in one run, on one generated dataset.
//!
//! `cargo run -p servicetsunami-mcp --bin lakehouse-bench -- --rows 10000000`

use anyhow::{bail, Context};
use servicetsunami_mcp::backend::ColumnInfo;
use servicetsunami_mcp::backend::{local::LocalLakehouse, BronzeRequest, Lakehouse};
use servicetsunami_mcp::domain::{
    table_ident, DatasetId, DatasetVersion, Ident, TableName, TenantId,
};
use servicetsunami_mcp::plan::{self, Dialect, SilverPlan};
use std::time::{Duration, Instant};

fn parse_args() -> anyhow::Result<(u64, usize, Option<std::path::PathBuf>)> {
    let mut args = std::env::args().skip(1);
    let mut rows = 10_000_000;
    let mut rounds = 2;
    let mut json = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--rows" => {
                rows = args
                    .next()
                    .context("--rows needs a number")?
                    .parse()
                    .context("--rows needs a number")?
            }
            "--rounds" => {
                rounds = args
                    .next()
                    .context("--rounds needs a number")?
                    .parse()
                    .context("--rounds needs a number")?
            }
            "--json" => json = Some(args.next().context("--json needs a file")?.into()),
            other => {
                bail!(
                    "unknown argument {other:?}; usage: lakehouse-bench [--rows N] [--rounds N] [--json FILE]"
                )
            }
        }
    }
    Ok((rows, rounds.max(1), json))
}

/// A sales-like table: ids with leading zeros, decimals and dates as text,
/// null tokens, padding, and ~2% exact duplicates.
fn generate(path: &std::path::Path, rows: u64) -> anyhow::Result<()> {
    let conn = duckdb::Connection::open_in_memory()?;
    conn.execute_batch(&format!(
        "COPY (
           SELECT lpad(CAST(i % 900000 AS VARCHAR), 7, '0')              AS \"Customer ID\",
                  CAST(i AS VARCHAR)                                   AS \"Order Number\",
                  CASE WHEN i % 50 = 0 THEN 'N/A' ELSE CAST(round((i % 100000) / 7.0, 2) AS VARCHAR) END AS \"Amount\",
                  CASE WHEN i % 3 = 0 THEN ' yes ' ELSE 'no' END        AS \"Is Member\",
                  CAST(DATE '2020-01-01' + CAST(i % 1500 AS INTEGER) AS VARCHAR) AS \"Order Date\",
                  CASE WHEN i % 7 = 0 THEN '' ELSE 'region-' || (i % 40) END AS \"Region\",
                  (i % 1000) * 1.5                                       AS \"score\"
           FROM (SELECT CASE WHEN range % 50 = 1 THEN range - 1 ELSE range END AS i FROM range({rows}))
         ) TO {} (FORMAT parquet, ROW_GROUP_SIZE 1000000)",
        Dialect::DuckDb.literal(&path.to_string_lossy())
    ))?;
    Ok(())
}

fn secs(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (rows, rounds, json) = parse_args()?;
    let work = tempfile::tempdir()?;
    let source = work.path().join("source.parquet");
    let t = Instant::now();
    generate(&source, rows)?;
    let size = std::fs::metadata(&source)?.len();
    println!(
        "generated {rows} rows, {:.1} MiB of Parquet in {} s",
        size as f64 / 1048576.0,
        secs(t.elapsed())
    );

    let lake = LocalLakehouse::open(
        &work.path().join("lakehouse"),
        Ident::parse("servicetsunami")?,
        servicetsunami_mcp::config::SandboxLimits::default(),
    )?;
    let conn = duckdb::Connection::open(work.path().join("direct.duckdb"))?;
    // Several rounds of backend then direct, on fresh tables each time; each
    // side's best round is reported, so neither is judged by a cold start.
    let mut best: Option<[Duration; 4]> = None;
    let mut last = None;
    for round in 1..=rounds {
        // 1. Through the backend (what the MCP tools call).
        let download = work.path().join("download.parquet");
        std::fs::copy(&source, &download)?;
        let tenant = TenantId::parse("bench")?;
        let dataset = DatasetId::parse(&format!("bench-{round}"))?;
        let t = Instant::now();
        let bronze = lake
            .create_bronze(BronzeRequest {
                tenant: tenant.clone(),
                table: table_ident("Bench Sales", &dataset)?,
                dataset: dataset.clone(),
                version: DatasetVersion::parse(None)?,
                download,
            })
            .await?;
        let backend_bronze = t.elapsed();
        let t = Instant::now();
        let silver = lake
            .transform_to_silver(
                tenant,
                TableName::parse(&bronze.bronze_table)?,
                Default::default(),
            )
            .await?;
        let backend_silver = t.elapsed();

        // 2. The same SQL straight into DuckDB: view, statistics, CTAS, null counts.
        let staged = work.path().join(format!("direct-{round}.parquet"));
        std::fs::copy(&source, &staged)?;
        let bronze_name = TableName::parse(&format!("direct.bench_bronze.sales_{round}"))?;
        let silver_name = TableName::parse(&format!("direct.bench_silver.sales_{round}"))?;
        let d = Dialect::DuckDb;
        let t = Instant::now();
        conn.execute_batch(
            "CREATE SCHEMA IF NOT EXISTS bench_bronze; CREATE SCHEMA IF NOT EXISTS bench_silver;",
        )?;
        let staged_version = servicetsunami_mcp::backend::local::StagedVersion {
            version: 1,
            path: staged.to_string_lossy().into_owned(),
            staged_at: plan::now_timestamp(),
        };
        conn.execute_batch(&servicetsunami_mcp::backend::local::bronze_sql(
            &bronze_name,
            &format!("bench-{round}"),
            &[staged_version],
            &[],
        ))?;
        let range = Some(plan::VersionRange::new(None, None, 1));
        let _: i64 = conn.query_row(
            &format!("SELECT count(*) FROM {}", d.table(&bronze_name)),
            [],
            |r| r.get(0),
        )?;
        let direct_bronze = t.elapsed();
        let t = Instant::now();
        let mut stmt =
            conn.prepare(&format!("DESCRIBE SELECT * FROM {}", d.table(&bronze_name)))?;
        let columns: Vec<ColumnInfo> = stmt
            .query_map([], |r| {
                Ok(ColumnInfo {
                    name: r.get(0)?,
                    data_type: r.get(1)?,
                })
            })?
            .collect::<Result<_, _>>()?;
        // As the backend measures: the rows and each text column's statistics.
        let (_, source_columns) =
            servicetsunami_mcp::backend::local::measure(&conn, &bronze_name, range, &columns)?;
        let plan = SilverPlan::new(
            bronze_name,
            silver_name,
            range,
            "2026-01-01 00:00:00.000000".into(),
            &source_columns,
        );
        // As the backend does: the rows to a Parquet file, a view over it.
        let silver_file = work.path().join(format!("direct-silver-{round}.parquet"));
        let silver_file = silver_file.to_string_lossy();
        conn.execute_batch(&format!(
            "COPY ({}) TO {} (FORMAT parquet); CREATE OR REPLACE VIEW {} AS SELECT * FROM read_parquet({})",
            plan.select_sql(d),
            d.literal(&silver_file),
            d.table(&plan.silver),
            d.literal(&silver_file)
        ))?;
        let direct_rows: i64 = conn.query_row(&plan.null_counts_sql(d), [], |r| r.get(0))?;
        let direct_silver = t.elapsed();

        if direct_rows as u64 != silver.row_count {
            bail!(
                "row counts differ: backend {} vs direct {direct_rows}",
                silver.row_count
            );
        }
        println!(
            "round {round}: backend bronze {} s, silver {} s; direct bronze {} s, silver {} s",
            secs(backend_bronze),
            secs(backend_silver),
            secs(direct_bronze),
            secs(direct_silver)
        );
        let times = [backend_bronze, backend_silver, direct_bronze, direct_silver];
        best = Some(match best {
            None => times,
            Some(b) => std::array::from_fn(|i| b[i].min(times[i])),
        });
        last = Some((bronze, silver));
    }
    let [backend_bronze, backend_silver, direct_bronze, direct_silver] =
        best.context("at least one round")?;
    let (bronze, silver) = last.context("at least one round")?;
    let backend_total = backend_bronze + backend_silver;
    let direct_total = direct_bronze + direct_silver;
    println!();
    println!("best of {rounds} round(s), {rows} rows");
    println!("| step   | backend (s) | direct DuckDB (s) | ratio |");
    println!("|--------|-------------|-------------------|-------|");
    for (name, b, dd) in [
        ("bronze", backend_bronze, direct_bronze),
        ("silver", backend_silver, direct_silver),
        ("total", backend_total, direct_total),
    ] {
        println!(
            "| {name:<6} | {:>11} | {:>17} | {:>5.2} |",
            secs(b),
            secs(dd),
            b.as_secs_f64() / dd.as_secs_f64()
        );
    }
    println!();
    println!(
        "bronze rows {}, silver rows {}, duplicates removed {}",
        bronze.row_count, silver.row_count, silver.duplicates_removed
    );
    if let Some(json) = json {
        // The benchmark report's shape (end2end/stack/src/report.rs).
        let figure = |name: &str, backend: Duration, direct: Duration| {
            serde_json::json!({
                "name": name,
                "reference_name": "the same SQL straight into DuckDB",
                "unit": "s",
                "measured": backend.as_secs_f64(),
                "reference": direct.as_secs_f64(),
                "target_ratio": null,
            })
        };
        let measurement = serde_json::json!([{
            "bench": "bronze + silver",
            "size": rows as f64,
            "size_unit": "rows",
            "figures": [
                figure("bronze (local backend)", backend_bronze, direct_bronze),
                figure("silver (local backend)", backend_silver, direct_silver),
                figure("bronze + silver", backend_total, direct_total),
            ],
        }]);
        std::fs::write(&json, serde_json::to_vec_pretty(&measurement)?)
            .with_context(|| format!("writing {}", json.display()))?;
    }
    Ok(())
}

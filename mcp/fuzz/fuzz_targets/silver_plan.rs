//! For any bronze columns (arbitrary names, types and statistics), the
//! silver plan's DuckDB SELECT parses, and every column it references is
//! one of the bronze columns or a name the plan itself gives an expression
//! (`… AS "x"`, read by the outer query): no name, however hostile, becomes SQL.
//! The statistics statement over the same names parses as one statement.
#![no_main]

use libfuzzer_sys::fuzz_target;
use servicetsunami_mcp::{
    domain::TableName,
    plan::{self, Dialect, SilverPlan},
};
use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

fn conn() -> &'static Mutex<duckdb::Connection> {
    static CONN: OnceLock<Mutex<duckdb::Connection>> = OnceLock::new();
    CONN.get_or_init(|| Mutex::new(duckdb::Connection::open_in_memory().unwrap()))
}

const TYPES: [&str; 6] = ["VARCHAR", "BIGINT", "DOUBLE", "DATE", "BOOLEAN", "TIMESTAMP"];

/// DuckDB's parse tree of `sql`, which must parse as one statement.
fn one_statement(conn: &duckdb::Connection, sql: &str) -> serde_json::Value {
    let serialized: String = conn
        .query_row("SELECT json_serialize_sql(?)::VARCHAR", [sql], |r| r.get(0))
        .unwrap();
    let tree: serde_json::Value = serde_json::from_str(&serialized).unwrap();
    assert_eq!(tree["error"], false, "{sql}\n{serialized}");
    assert_eq!(tree["statements"].as_array().map(Vec::len), Some(1), "{sql}");
    tree
}

/// Every `column_names` entry of the parse tree's column references.
fn referenced(node: &serde_json::Value, out: &mut Vec<String>) {
    match node {
        serde_json::Value::Object(map) => {
            if map.get("class").and_then(|c| c.as_str()) == Some("COLUMN_REF") {
                if let Some(names) = map.get("column_names").and_then(|n| n.as_array()) {
                    if let Some(last) = names.last().and_then(|n| n.as_str()) {
                        out.push(last.to_owned());
                    }
                }
            }
            map.values().for_each(|v| referenced(v, out));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| referenced(v, out)),
        _ => {}
    }
}

/// Every alias the parse tree gives an expression or a subquery.
fn aliases(node: &serde_json::Value, out: &mut Vec<String>) {
    match node {
        serde_json::Value::Object(map) => {
            if let Some(alias) = map.get("alias").and_then(|a| a.as_str()) {
                if !alias.is_empty() {
                    out.push(alias.to_owned());
                }
            }
            map.values().for_each(|v| aliases(v, out));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| aliases(v, out)),
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let text = String::from_utf8_lossy(&data[1..]);
    let names: Vec<&str> = text.split('\n').take(16).collect();
    let columns: Vec<(String, String)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let ty = TYPES[(usize::from(data[0]) + i) % TYPES.len()];
            ((*n).to_owned(), ty.to_owned())
        })
        .collect();
    let infos: Vec<contract::tools::ColumnInfo> = columns
        .iter()
        .map(|(name, data_type)| contract::tools::ColumnInfo {
            name: name.clone(),
            data_type: data_type.clone(),
        })
        .collect();
    // A column with an empty name is refused before any plan is made.
    if plan::unnamed_column(&infos).is_some() {
        return;
    }
    let strings = plan::string_columns(Dialect::DuckDb, &infos);
    // Statistics from the input's bytes: any mix of what values convert to.
    let stats = strings
        .iter()
        .enumerate()
        .map(|(c, name)| {
            let values: Vec<u64> = (0..plan::STATS_PER_COLUMN)
                .map(|i| u64::from(data[(c * plan::STATS_PER_COLUMN + i + 1) % data.len()]) % 8)
                .collect();
            (name.clone(), plan::StringStats::from_values(&values))
        })
        .collect();
    let source = plan::with_stats(&infos, &strings, stats);
    let plan = SilverPlan::new(
        TableName::parse("lh.acme_bronze.t").unwrap(),
        TableName::parse("lh.acme_silver.t").unwrap(),
        Some(plan::VersionRange::new(Some(1), Some(2), 2)),
        "2026-01-01 00:00:00.000000".into(),
        &source,
    );
    let select = plan.select_sql(Dialect::DuckDb);
    let conn = conn().lock().unwrap();
    let tree = one_statement(&conn, &select);
    let mut refs = Vec::new();
    referenced(&tree, &mut refs);
    let mut allowed: HashSet<String> = columns.iter().map(|(n, _)| n.to_lowercase()).collect();
    // Bronze's lineage columns, which silver carries on.
    allowed.extend(plan::BRONZE_LINEAGE.iter().map(|c| c.to_lowercase()));
    // Names the plan defines (the cleaned columns' aliases), never a bronze
    // name copied in: an alias is a normalised name or ours.
    let mut defined = Vec::new();
    aliases(&tree, &mut defined);
    for alias in &defined {
        assert!(
            alias.chars().all(|c| c.is_alphanumeric() || c == '_'),
            "{alias:?} is not a normalised name in {select}"
        );
    }
    allowed.extend(defined.iter().map(|a| a.to_lowercase()));
    for r in refs {
        assert!(allowed.contains(&r.to_lowercase()), "{r:?} is not a bronze column in {select}");
    }

    // The statistics statement over the same names is one statement too.
    if !strings.is_empty() {
        let bronze = TableName::parse("lh.acme_bronze.t").unwrap();
        let stats = plan::stats_by_column_sql(Dialect::DuckDb, &bronze, None, &strings);
        one_statement(&conn, &stats);
    }
});

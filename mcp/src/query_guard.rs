//! The read-only gate in front of `query`. DuckDB's own parser serialises the
//! statement (`json_serialize_sql` accepts only SELECT), so we inspect a real
//! syntax tree rather than guessing with regular expressions: exactly one
//! statement, every table reference inside the tenant's schemas, and no table
//! functions (which could read arbitrary files or catalogs).

use crate::domain::{Ident, TenantId};
use serde_json::Value;
use std::collections::HashSet;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Rejected {
    #[error("only a single SELECT or WITH statement is allowed")]
    NotSelect,
    #[error("only one statement is allowed")]
    MultipleStatements,
    #[error("the statement could not be parsed: {0}")]
    Parse(String),
    #[error("table {0} is outside this tenant's schemas; qualify tables as schema.table or catalog.schema.table")]
    ForeignTable(String),
    #[error("table functions such as {0}() are not allowed")]
    TableFunction(String),
    #[error("the query is empty")]
    Empty,
}

/// The statement with trailing semicolons and whitespace removed, ready to be
/// wrapped in `SELECT … FROM (<sql>)`.
pub fn check(
    conn: &duckdb::Connection,
    catalog: &Ident,
    tenant: &TenantId,
    sql: &str,
) -> Result<String, Rejected> {
    let sql = sql
        .trim()
        .trim_end_matches(|c: char| c == ';' || c.is_whitespace())
        .to_owned();
    if sql.is_empty() {
        return Err(Rejected::Empty);
    }
    let first = first_keyword(&sql).to_ascii_uppercase();
    if first != "SELECT" && first != "WITH" {
        return Err(Rejected::NotSelect);
    }
    let serialized: String = conn
        .query_row("SELECT json_serialize_sql(?)::VARCHAR", [&sql], |r| {
            r.get(0)
        })
        .map_err(|e| Rejected::Parse(e.to_string()))?;
    let tree: Value =
        serde_json::from_str(&serialized).map_err(|e| Rejected::Parse(e.to_string()))?;
    if tree["error"].as_bool() == Some(true) {
        let message = tree["error_message"].as_str().unwrap_or("unknown error");
        if message.contains("Only SELECT") {
            return Err(Rejected::NotSelect);
        }
        return Err(Rejected::Parse(message.to_owned()));
    }
    let statements = tree["statements"].as_array().map_or(0, Vec::len);
    if statements == 0 {
        return Err(Rejected::Empty);
    }
    if statements > 1 {
        return Err(Rejected::MultipleStatements);
    }
    let mut ctes = HashSet::new();
    collect_ctes(&tree, &mut ctes);
    check_refs(&tree, catalog, tenant, &ctes)?;
    Ok(sql)
}

/// The first word after any leading comments or parentheses.
fn first_keyword(sql: &str) -> &str {
    let mut rest = sql.trim_start();
    loop {
        if let Some(r) = rest.strip_prefix("--") {
            rest = r
                .split_once('\n')
                .map_or("", |(_, after)| after)
                .trim_start();
        } else if let Some(r) = rest.strip_prefix("/*") {
            rest = r
                .split_once("*/")
                .map_or("", |(_, after)| after)
                .trim_start();
        } else {
            break;
        }
    }
    let end = rest
        .find(|c: char| !c.is_ascii_alphabetic())
        .unwrap_or(rest.len());
    &rest[..end]
}

fn collect_ctes(node: &Value, names: &mut HashSet<String>) {
    match node {
        Value::Object(map) => {
            if let Some(entries) = map
                .get("cte_map")
                .and_then(|m| m.get("map"))
                .and_then(Value::as_array)
            {
                for entry in entries {
                    if let Some(key) = entry.get("key").and_then(Value::as_str) {
                        names.insert(key.to_ascii_lowercase());
                    }
                }
            }
            map.values().for_each(|v| collect_ctes(v, names));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_ctes(v, names)),
        _ => {}
    }
}

fn check_refs(
    node: &Value,
    catalog: &Ident,
    tenant: &TenantId,
    ctes: &HashSet<String>,
) -> Result<(), Rejected> {
    match node {
        Value::Object(map) => {
            match map.get("type").and_then(Value::as_str) {
                Some("BASE_TABLE") => {
                    let text =
                        |k: &str| map.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
                    let (cat, schema, table) = (
                        text("catalog_name"),
                        text("schema_name"),
                        text("table_name"),
                    );
                    let is_cte = cat.is_empty()
                        && schema.is_empty()
                        && ctes.contains(&table.to_ascii_lowercase());
                    let catalog_ok = cat.is_empty() || cat.eq_ignore_ascii_case(catalog.as_str());
                    let allowed = is_cte || (catalog_ok && tenant.owns_schema(&schema));
                    if !allowed {
                        let shown = [cat, schema, table]
                            .into_iter()
                            .filter(|s| !s.is_empty())
                            .collect::<Vec<_>>()
                            .join(".");
                        return Err(Rejected::ForeignTable(shown));
                    }
                }
                Some("TABLE_FUNCTION") => {
                    let name = map
                        .get("function")
                        .and_then(|f| f.get("function_name"))
                        .and_then(Value::as_str)
                        .unwrap_or("a table function");
                    return Err(Rejected::TableFunction(name.to_owned()));
                }
                _ => {}
            }
            map.values()
                .try_for_each(|v| check_refs(v, catalog, tenant, ctes))
        }
        Value::Array(items) => items
            .iter()
            .try_for_each(|v| check_refs(v, catalog, tenant, ctes)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(sql: &str) -> Result<String, Rejected> {
        let conn = duckdb::Connection::open_in_memory().unwrap();
        check(
            &conn,
            &Ident::parse("lh").unwrap(),
            &TenantId::parse("acme").unwrap(),
            sql,
        )
    }

    #[test]
    fn allows_tenant_selects() {
        assert!(guard("SELECT * FROM acme_silver.t WHERE x = 1;").is_ok());
        assert!(
            guard("-- hi\nWITH a AS (SELECT * FROM lh.acme_bronze.t) SELECT count(*) FROM a")
                .is_ok()
        );
        assert!(guard("SELECT * FROM acme_silver.t JOIN acme_bronze.u USING (id)").is_ok());
    }

    #[test]
    fn rejects_writes_and_stacking() {
        for sql in [
            "DELETE FROM acme_silver.t",
            "DROP TABLE acme_silver.t",
            "INSERT INTO acme_silver.t VALUES (1)",
            "CREATE TABLE acme_silver.x AS SELECT 1",
            "COPY acme_silver.t TO '/tmp/x.csv'",
            "ATTACH '/tmp/x.db'",
            "SET threads = 1",
        ] {
            assert_eq!(guard(sql), Err(Rejected::NotSelect), "{sql}");
        }
        // DuckDB refuses to serialise the DROP before statements are counted.
        assert_eq!(
            guard("SELECT 1; DROP TABLE acme_silver.t"),
            Err(Rejected::NotSelect)
        );
        assert_eq!(
            guard("SELECT 1; SELECT 2"),
            Err(Rejected::MultipleStatements)
        );
    }

    #[test]
    fn rejects_other_tenants_and_files() {
        assert!(matches!(
            guard("SELECT * FROM other_silver.t"),
            Err(Rejected::ForeignTable(_))
        ));
        assert!(matches!(
            guard("SELECT * FROM t"),
            Err(Rejected::ForeignTable(_))
        ));
        assert!(matches!(
            guard("SELECT * FROM x.acme_silver.t"),
            Err(Rejected::ForeignTable(_))
        ));
        assert!(matches!(
            guard("SELECT * FROM acme_silver.t WHERE id IN (SELECT id FROM other_bronze.t)"),
            Err(Rejected::ForeignTable(_))
        ));
        assert!(matches!(
            guard("SELECT * FROM '/etc/passwd'"),
            Err(Rejected::ForeignTable(_))
        ));
        assert!(matches!(
            guard("SELECT * FROM read_csv('/etc/passwd')"),
            Err(Rejected::TableFunction(_))
        ));
        assert!(matches!(
            guard("SELECT * FROM information_schema.tables"),
            Err(Rejected::ForeignTable(_))
        ));
        assert!(matches!(
            guard("SELECT * FROM duckdb_tables()"),
            Err(Rejected::TableFunction(_))
        ));
    }
}

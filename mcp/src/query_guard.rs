//! The read-only gate in front of `query`. DuckDB's own parser serialises the
//! statement (`json_serialize_sql` accepts only SELECT), so we inspect a real
//! syntax tree rather than guessing with regular expressions: exactly one
//! statement, every table reference inside the tenant's schemas, and no table
//! functions (which could read arbitrary files or catalogs).

use crate::domain::{Ident, TenantId};
use serde_json::Value;
use std::collections::HashSet;

#[derive(Debug, thiserror::Error, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
    #[error("SHOW, DESCRIBE and SUMMARIZE are not allowed in a query; use list_tables and describe_table")]
    Show,
    #[error("data-modifying statements (INSERT, UPDATE, DELETE, MERGE) are not allowed, in a CTE or anywhere")]
    Modifying,
    #[error("the query is empty")]
    Empty,
    #[error("the statement could not be read: {0}")]
    Lexical(String),
    #[error("the function {0}() is not allowed: it reaches outside the tenant's tables")]
    Function(String),
}

/// A statement the guard let through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The statement with trailing semicolons and whitespace removed, ready
    /// to be wrapped in `SELECT … FROM (<sql>)`.
    pub sql: String,
    /// The tenant's tables it names, as lower-case `(schema, table)`: the
    /// only tables the sandbox needs to hold.
    pub tables: HashSet<(String, String)>,
}

pub fn check(
    conn: &duckdb::Connection,
    catalog: &Ident,
    tenant: &TenantId,
    sql: &str,
) -> Result<Checked, Rejected> {
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
    let mut tables = HashSet::new();
    check_refs(&tree, catalog, tenant, &mut Vec::new(), &mut tables)?;
    Ok(Checked { sql, tables })
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

/// The CTEs a query node defines (its own `WITH`, not nested ones), in
/// order: lower-case name and body.
fn own_ctes(map: &serde_json::Map<String, Value>) -> Vec<(String, &Value)> {
    map.get("cte_map")
        .and_then(|m| m.get("map"))
        .and_then(Value::as_array)
        .map(|entries| {
            entries
                .iter()
                .filter_map(|e| {
                    let name = e.get("key").and_then(Value::as_str)?;
                    Some((name.to_ascii_lowercase(), e.get("value")?))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Walks the tree with the CTE names in scope: a node's `WITH` names are
/// visible inside that node only (its FROM, its subqueries, the bodies of
/// later CTEs), never to a sibling or an enclosing query. A CTE's body sees
/// only the CTEs defined before it, and itself only when it is recursive:
/// Spark resolves any other name there as a table, so the guard checks it as
/// one. So a reference that bears the name of a CTE not in scope is checked
/// as the table (or file, or view) it really names.
fn check_refs(
    node: &Value,
    catalog: &Ident,
    tenant: &TenantId,
    scopes: &mut Vec<HashSet<String>>,
    found: &mut HashSet<(String, String)>,
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
                        && scopes
                            .iter()
                            .any(|scope| scope.contains(&table.to_ascii_lowercase()));
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
                    if !is_cte {
                        found.insert((schema.to_lowercase(), table.to_lowercase()));
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
                // SHOW / DESCRIBE / SUMMARIZE in any position, and the
                // internal table references a user query never needs.
                Some("SHOW_REF") => return Err(Rejected::Show),
                // Query nodes: only reading ones (a CTE may hold a DELETE …
                // RETURNING, which DuckDB serialises as a node of its own).
                Some(kind)
                    if kind.ends_with("_NODE")
                        && !matches!(
                            kind,
                            "SELECT_NODE"
                                | "SET_OPERATION_NODE"
                                | "RECURSIVE_CTE_NODE"
                                | "CTE_NODE"
                        ) =>
                {
                    return Err(Rejected::Modifying)
                }
                Some("COLUMN_DATA" | "DELIM_GET") => {
                    return Err(Rejected::TableFunction("an internal table".to_owned()))
                }
                _ => {}
            }
            let mut visible = HashSet::new();
            for (name, body) in own_ctes(map) {
                let recursive = body
                    .get("query_node")
                    .and_then(|n| n.get("type"))
                    .and_then(Value::as_str)
                    == Some("RECURSIVE_CTE_NODE");
                let mut scope = visible.clone();
                if recursive {
                    scope.insert(name.clone());
                }
                scopes.push(scope);
                let result = check_refs(body, catalog, tenant, scopes, found);
                scopes.pop();
                result?;
                visible.insert(name);
            }
            scopes.push(visible);
            let result = map
                .iter()
                .filter(|(key, _)| key.as_str() != "cte_map")
                .try_for_each(|(_, v)| check_refs(v, catalog, tenant, scopes, found));
            scopes.pop();
            result
        }
        Value::Array(items) => items
            .iter()
            .try_for_each(|v| check_refs(v, catalog, tenant, scopes, found)),
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
        .map(|c| c.sql)
    }

    #[test]
    fn names_the_tables_a_query_reads() {
        let conn = duckdb::Connection::open_in_memory().unwrap();
        let checked = check(
            &conn,
            &Ident::parse("lh").unwrap(),
            &TenantId::parse("acme").unwrap(),
            "WITH a AS (SELECT * FROM \"ACME_silver\".\"Orders\") SELECT * FROM a JOIN lh.acme_bronze.t USING (id)",
        )
        .unwrap();
        let mut tables: Vec<_> = checked.tables.into_iter().collect();
        tables.sort();
        assert_eq!(
            tables,
            [
                ("acme_bronze".to_owned(), "t".to_owned()),
                ("acme_silver".to_owned(), "orders".to_owned())
            ]
        );
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

    #[test]
    fn a_cte_name_is_in_scope_only_where_it_is_defined() {
        // Outer references bearing a name a subquery's WITH defines.
        for sql in [
            "SELECT * FROM duckdb_views, (WITH duckdb_views AS (SELECT 1) SELECT 1) z",
            "SELECT * FROM '/tmp/lake/volumes/x.parquet', (WITH \"/tmp/lake/volumes/x.parquet\" AS (SELECT 1) SELECT 1) z",
            "SELECT * FROM t WHERE EXISTS (WITH t AS (SELECT 1) SELECT * FROM t)",
            "SELECT (WITH secrets AS (SELECT 1) SELECT 1), * FROM secrets",
            "WITH a AS (SELECT 1) SELECT * FROM a, (WITH b AS (SELECT 2) SELECT 2) y, b",
            // A CTE's own body, or an earlier CTE's, does not see it (Spark
            // reads the name as a table there).
            "WITH t AS (SELECT * FROM t) SELECT * FROM t",
            "WITH a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a",
        ] {
            assert!(matches!(guard(sql), Err(Rejected::ForeignTable(_))), "{sql}: {:?}", guard(sql));
        }
        // Where they are defined, CTEs work, nested and chained.
        for sql in [
            "WITH a AS (SELECT * FROM acme_silver.t), b AS (SELECT * FROM a) SELECT * FROM b",
            "SELECT * FROM (WITH a AS (SELECT * FROM acme_silver.t) SELECT * FROM a) z",
            "WITH a AS (SELECT 1 AS x) SELECT * FROM acme_silver.t WHERE id IN (SELECT x FROM a)",
        ] {
            assert!(guard(sql).is_ok(), "{sql}: {:?}", guard(sql));
        }
    }

    #[test]
    fn show_describe_and_data_modifying_ctes_are_refused_anywhere() {
        for sql in [
            "SELECT * FROM (SHOW ALL TABLES)",
            "SELECT * FROM (DESCRIBE acme_silver.t)",
            "SELECT * FROM (SUMMARIZE acme_silver.t)",
            "SELECT * FROM (SHOW TABLES)",
        ] {
            let got = guard(sql);
            assert!(
                matches!(
                    got,
                    Err(Rejected::Show | Rejected::NotSelect | Rejected::Parse(_))
                ),
                "{sql}: {got:?}"
            );
        }
        for sql in [
            "WITH d AS (DELETE FROM acme_silver.t RETURNING *) SELECT * FROM d",
            "WITH d AS (UPDATE acme_silver.t SET x = 1 RETURNING *) SELECT * FROM d",
            "WITH d AS (INSERT INTO acme_silver.t VALUES (1) RETURNING *) SELECT * FROM d",
        ] {
            assert_eq!(guard(sql), Err(Rejected::Modifying), "{sql}");
        }
        // Reading set operations and recursive CTEs still pass.
        for sql in [
            "SELECT id FROM acme_silver.t UNION ALL SELECT id FROM acme_bronze.t",
            "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT * FROM r",
        ] {
            assert!(guard(sql).is_ok(), "{sql}: {:?}", guard(sql));
        }
    }
}

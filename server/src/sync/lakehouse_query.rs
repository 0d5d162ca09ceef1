//! The query page's lakehouse engine: the MCP tools `dataset_status` (a
//! silver table's name, quoted for the backend's SQL) and `query`, called
//! with the service key for the page's tenant.

use app::model::QueryColumn;
use app::ssr::{
    query::{LakehouseQuery, LocalResult, MAX_QUERY_CELL_CHARS},
    sync::BoxFuture,
};
use contract::{
    client::McpClient,
    tools::{DatasetStatusTool, Query, QueryArgs, StatusArgs},
};
use uuid::Uuid;

pub struct McpQuery {
    pub mcp: McpClient,
}

/// A JSON value as the page shows it: text as it is, NULL as `None`, other
/// values in their JSON form; long ones cut like local results.
fn cell(value: Option<&serde_json::Value>) -> Option<String> {
    let text = match value? {
        serde_json::Value::Null => return None,
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.chars().count() > MAX_QUERY_CELL_CHARS {
        let mut cut: String = text.chars().take(MAX_QUERY_CELL_CHARS).collect();
        cut.push('…');
        return Some(cut);
    }
    Some(text)
}

impl LakehouseQuery for McpQuery {
    fn silver_table(
        &self,
        tenant_id: Uuid,
        dataset_id: Uuid,
    ) -> BoxFuture<'_, Result<Option<String>, String>> {
        Box::pin(async move {
            let status = self
                .mcp
                .call::<DatasetStatusTool>(&StatusArgs {
                    tenant_id: tenant_id.to_string(),
                    dataset_id: dataset_id.to_string(),
                })
                .await
                .map_err(|e| super::failure::call_failure(&e))?;
            Ok(status
                .silver
                .exists
                .then_some(status.silver.sql_name)
                .flatten())
        })
    }

    fn query(
        &self,
        tenant_id: Uuid,
        sql: String,
        limit: u32,
    ) -> BoxFuture<'_, Result<LocalResult, String>> {
        Box::pin(async move {
            let result = self
                .mcp
                .call::<Query>(&QueryArgs {
                    tenant_id: tenant_id.to_string(),
                    sql,
                    limit: Some(limit),
                })
                .await
                .map_err(|e| super::failure::call_failure(&e))?;
            let rows = result
                .rows
                .iter()
                .map(|row| {
                    result
                        .columns
                        .iter()
                        .map(|c| cell(row.get(&c.name)))
                        .collect()
                })
                .collect();
            Ok(LocalResult {
                columns: result
                    .columns
                    .into_iter()
                    .map(|c| QueryColumn {
                        name: c.name,
                        data_type: c.data_type,
                    })
                    .collect(),
                rows,
                truncated: result.truncated,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::cell;
    use serde_json::json;

    #[test]
    fn cells_read_as_the_local_engine_shows_them() {
        assert_eq!(cell(Some(&json!("Oslo"))), Some("Oslo".to_owned()));
        assert_eq!(cell(Some(&json!(-7.5))), Some("-7.5".to_owned()));
        assert_eq!(cell(Some(&json!(null))), None);
        assert_eq!(cell(None), None);
        let long = cell(Some(&json!("x".repeat(5000)))).unwrap();
        assert_eq!(long.chars().count(), super::MAX_QUERY_CELL_CHARS + 1);
    }
}

//! The MCP tools: their names, typed arguments and typed results. The MCP
//! server serves exactly these shapes (its tool router is checked against
//! [`ALL`]) and the server's sync calls them through [`Tool`], so neither side
//! builds JSON by hand or reads results back by string key.

use serde::{de::DeserializeOwned, Deserialize, Serialize};

#[cfg(feature = "schema")]
use schemars::JsonSchema;

/// One MCP tool: its name, what it takes and what it returns.
pub trait Tool {
    const NAME: &'static str;
    type Args: Serialize + DeserializeOwned + Send + Sync;
    type Output: Serialize + DeserializeOwned + Send;
}

macro_rules! tools {
    ($($(#[$doc:meta])* $ty:ident = $name:literal ($args:ty) -> $out:ty;)*) => {
        $(
            $(#[$doc])*
            pub struct $ty;
            impl Tool for $ty {
                const NAME: &'static str = $name;
                type Args = $args;
                type Output = $out;
            }
        )*
        /// Every tool name, in the order the tools are listed.
        pub const ALL: &[&str] = &[$($name),*];
    };
}

tools! {
    /// Downloads a dataset's Parquet file, stages it and creates the bronze table.
    CreateDataset = "create_dataset" (CreateDatasetArgs) -> BronzeResult;
    /// Builds the silver table from a bronze table.
    TransformToSilver = "transform_to_silver" (TransformArgs) -> SilverResult;
    /// Whether a dataset's tables exist.
    DatasetStatusTool = "dataset_status" (StatusArgs) -> DatasetStatus;
    /// The tenant's tables.
    ListTables = "list_tables" (TenantArgs) -> TableList;
    /// One table's columns and storage.
    DescribeTable = "describe_table" (DescribeArgs) -> TableDescription;
    /// One read-only statement over the tenant's tables.
    Query = "query" (QueryArgs) -> QueryResult;
    /// Drops a dataset's bronze and silver tables and its staged files.
    DropDataset = "drop_dataset" (DropArgs) -> DropResult;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct CreateDatasetArgs {
    /// The tenant that owns the dataset (letters, digits, '-').
    pub tenant_id: String,
    /// The dataset's id in ServiceTsunami.
    pub dataset_id: String,
    /// Human name; the table is named after it plus a short id.
    pub dataset_name: String,
    /// Where to download the Parquet file (sent with the MCP bearer token).
    pub parquet_url: String,
    /// The uploader's view of the schema. Informational: the Parquet file's
    /// own schema is authoritative.
    #[serde(default)]
    pub schema: serde_json::Value,
    /// Dataset version (default 1); the same version is never staged twice.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct TransformArgs {
    pub tenant_id: String,
    /// The bronze table returned by create_dataset (catalog.schema.table).
    pub bronze_table: String,
    /// The dataset version silver is built for (default: the newest staged).
    /// A call for a version older than the one silver already holds changes
    /// nothing and reports the table as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// The first version silver reads: the version that last replaced the
    /// data (default 1, every version). Silver holds the rows of bronze
    /// versions `base_version..=version`, so a replace (`base_version` =
    /// `version`) keeps only the newest file and an append keeps them all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_version: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct StatusArgs {
    pub tenant_id: String,
    pub dataset_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct DropArgs {
    pub tenant_id: String,
    pub dataset_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct DropResult {
    pub dataset_id: String,
    /// The tables this call dropped (`catalog.schema.table`); empty when
    /// none was left, as on a repeated call.
    pub dropped_tables: Vec<String>,
    /// Staged and table files this call removed.
    pub removed_files: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct TenantArgs {
    pub tenant_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct DescribeArgs {
    /// catalog.schema.table
    pub full_name: String,
    /// The tenant whose table it is. An assistant's token may name only its
    /// own tenant (the default); the service may omit it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct QueryArgs {
    pub tenant_id: String,
    /// One SELECT or WITH statement over the tenant's bronze/silver schemas.
    pub sql: String,
    /// Maximum rows returned (capped by the server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct ColumnInfo {
    pub name: String,
    pub data_type: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct BronzeResult {
    /// Three-level name, `catalog.schema.table`.
    pub bronze_table: String,
    /// Where the staged Parquet file lives.
    pub volume_path: String,
    pub row_count: u64,
    pub columns: Vec<ColumnInfo>,
    /// The version this call staged; bronze holds it and every earlier one.
    #[serde(default)]
    pub version: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct SilverColumn {
    pub name: String,
    pub data_type: String,
    /// The bronze column it came from (lineage columns have none).
    pub source_column: Option<String>,
    pub null_count: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct SilverResult {
    pub silver_table: String,
    pub row_count: u64,
    pub columns: Vec<SilverColumn>,
    pub duplicates_removed: u64,
    /// The newest dataset version silver holds (0 from a server that
    /// predates versions). Larger than the call's `version` when a newer
    /// sync already built it: the call then changed nothing.
    #[serde(default)]
    pub version: u32,
    /// The first version silver holds.
    #[serde(default)]
    pub base_version: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct TableStatus {
    pub exists: bool,
    pub full_name: Option<String>,
    /// `full_name` quoted for `query`, ready to paste (a schema may start
    /// with a digit, which SQL does not take unquoted).
    #[serde(default)]
    pub sql_name: Option<String>,
    pub row_count: Option<u64>,
    /// RFC 3339.
    pub updated_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct DatasetStatus {
    pub dataset_id: String,
    pub bronze: TableStatus,
    pub silver: TableStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct TableSummary {
    pub full_name: String,
    /// `full_name` quoted for `query`, ready to paste.
    #[serde(default)]
    pub sql_name: String,
    /// `bronze` or `silver`.
    pub layer: String,
    /// `VIEW`/`EXTERNAL` for bronze, `MANAGED` for silver.
    pub table_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct TableList {
    pub tables: Vec<TableSummary>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct TableDescription {
    pub full_name: String,
    /// `full_name` quoted for `query`, ready to paste.
    #[serde(default)]
    pub sql_name: String,
    pub table_type: String,
    pub columns: Vec<ColumnInfo>,
    pub row_count: Option<u64>,
    pub storage_location: Option<String>,
    pub updated_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(JsonSchema))]
pub struct QueryResult {
    pub columns: Vec<ColumnInfo>,
    /// One JSON object per row, keyed by column name.
    pub rows: Vec<serde_json::Value>,
    pub row_count: u64,
    /// True when more rows existed than the limit allowed.
    pub truncated: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for name in ALL {
            assert!(seen.insert(name), "{name} twice");
            assert!(name.chars().all(|c| c.is_ascii_lowercase() || c == '_'));
        }
        assert_eq!(ALL.len(), 7);
        assert_eq!(CreateDataset::NAME, "create_dataset");
    }

    #[test]
    fn optional_arguments_are_left_out() {
        let args = QueryArgs {
            tenant_id: "acme".into(),
            sql: "SELECT 1".into(),
            limit: None,
        };
        assert_eq!(
            serde_json::to_value(&args).unwrap(),
            serde_json::json!({"tenant_id": "acme", "sql": "SELECT 1"})
        );
    }
}

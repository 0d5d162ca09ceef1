//! Data the pages render. Server functions return these; on the server some of
//! them are read straight from Postgres rows.

use crate::domain::SyncStatus;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One column of a dataset, as stored in `datasets.schema`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnSchema {
    /// The name as uploaded (and as kept in the Parquet file).
    pub name: String,
    /// The snake_case name the lakehouse will use.
    pub normalized_name: String,
    /// DuckDB's logical type, e.g. `BIGINT`, `VARCHAR`, `TIMESTAMP`.
    #[serde(rename = "type")]
    pub data_type: String,
    /// Whether the column holds at least one NULL.
    pub nullable: bool,
}

/// A row of the datasets table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetSummary {
    pub id: Uuid,
    pub name: String,
    pub file_name: String,
    pub source_format: String,
    pub row_count: i64,
    pub column_count: i64,
    pub size_bytes: i64,
    pub sync_status: SyncStatus,
    /// RFC 3339, UTC.
    pub created_at: String,
}

/// Everything the dataset page shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetDetail {
    pub summary: DatasetSummary,
    pub schema: Vec<ColumnSchema>,
    pub preview: Preview,
    pub stats: Vec<ColumnStats>,
}

/// The first rows of a dataset, every value rendered as text (`None` is NULL).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preview {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
}

/// Simple statistics of one column, computed by DuckDB over the whole file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnStats {
    pub name: String,
    pub null_count: i64,
    /// DuckDB's HyperLogLog estimate, so "≈" in the UI.
    pub approx_distinct: i64,
    pub min: Option<String>,
    pub max: Option<String>,
}

/// The JSON answer of `POST /api/datasets` for script and XHR clients.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UploadResponse {
    pub dataset: DatasetSummary,
    pub schema: Vec<ColumnSchema>,
}

/// The JSON error body of every API route: a stable code and a message for people.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiErrorBody {
    pub code: String,
    pub message: String,
}

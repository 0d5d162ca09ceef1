//! Data the pages render. Server functions return these; on the server some of
//! them are read straight from Postgres rows.

use crate::domain::{StepOutcome, SyncStatus, SyncStep};
pub use contract::ErrorBody;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One column of a dataset, as stored in `datasets.schema`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnSchema {
    /// The name as uploaded (and as kept in the Parquet file).
    pub name: String,
    /// The name the silver table gives the column: the contract's one
    /// normaliser ([`contract::names`]) over the whole header.
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
    pub sync: SyncState,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// The current version (1 until a new file is uploaded onto it).
    pub version: i32,
}

/// Where a dataset's lakehouse sync stands: what the badge, the dataset page
/// and the live events (`GET /api/events`) show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncState {
    pub dataset_id: Uuid,
    pub status: SyncStatus,
    /// `bronze`, `silver` or `metadata` while syncing, retrying or failed.
    pub step: Option<SyncStep>,
    /// Attempt n of `max_attempts` of the current step.
    pub attempt: Option<i32>,
    pub max_attempts: Option<i32>,
    /// RFC 3339, UTC: when a `retrying` step runs again.
    pub next_retry_at: Option<String>,
    /// The last error (retrying or failed).
    pub error: Option<String>,
    pub bronze_table: Option<String>,
    pub silver_table: Option<String>,
    /// RFC 3339, UTC.
    pub last_sync_at: Option<String>,
}

/// What `GET /api/events` sends (the SSE `data`, as JSON; the SSE event name
/// is the variant's tag). Every connection starts with a `snapshot` of the
/// tenant's datasets; `status` events follow as states change, and
/// `removed` when a dataset is deleted. `seq` also
/// serves as the SSE id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiveEvent {
    Snapshot {
        seq: u64,
        states: Vec<SyncState>,
    },
    Status {
        seq: u64,
        state: SyncState,
    },
    /// The dataset was deleted: it leaves every list.
    Removed {
        seq: u64,
        dataset_id: Uuid,
    },
}

/// One row of a dataset's sync timeline (`sync_events`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncEvent {
    pub id: i64,
    pub request_id: Uuid,
    pub step: SyncStep,
    pub attempt: i32,
    pub max_attempts: i32,
    pub outcome: StepOutcome,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub finished_at: Option<String>,
    pub duration_ms: Option<i64>,
    pub next_retry_at: Option<String>,
    pub error: Option<String>,
}

/// The dataset page's Sync section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncDetail {
    pub state: SyncState,
    pub events: Vec<SyncEvent>,
    /// Whether sync is available on this server (retry / sync-all work).
    pub available: bool,
    /// Link to the table in Databricks' Catalog Explorer, when that backend is used.
    pub catalog_explorer_url: Option<String>,
}

/// Everything the dataset page shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetDetail {
    pub summary: DatasetSummary,
    pub schema: Vec<ColumnSchema>,
    pub preview: Preview,
    pub stats: Vec<ColumnStats>,
    /// Every version, newest first.
    pub versions: Vec<DatasetVersion>,
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
    /// Counts of equal-width bins from min to max, for numeric columns.
    pub histogram: Option<Vec<i64>>,
}

/// One page of the tenant's datasets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetList {
    /// Newest first.
    pub datasets: Vec<DatasetSummary>,
    /// The token of the next (older) page, if there is one: `?after=<token>`.
    pub next: Option<String>,
}

/// The JSON answer of `POST /api/datasets` for script and XHR clients.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UploadResponse {
    pub dataset: DatasetSummary,
    pub schema: Vec<ColumnSchema>,
}

/// The signed-in user, for the header and the account pages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Me {
    pub email: String,
    pub role: crate::domain::Role,
    pub team: String,
}

/// A personal access token or an assistant's token, as listed (never the secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    pub id: Uuid,
    pub name: String,
    pub kind: crate::domain::TokenKind,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
    pub revoked: bool,
    pub expired: bool,
}

/// The Settings or the Connect-an-assistant page: the user's tokens of one
/// kind, and the secret of the one just created (shown once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokensPage {
    pub tokens: Vec<TokenInfo>,
    pub new_secret: Option<String>,
    /// The MCP server's URL as assistants reach it (the assistant page).
    pub mcp_url: Option<String>,
}

/// A member of the team.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub email: String,
    pub role: crate::domain::Role,
    pub created_at: String,
}

/// An invitation link, as listed (never the code).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvitationInfo {
    pub role: crate::domain::Role,
    pub created_at: String,
    pub expires_at: String,
    pub used: bool,
}

/// The Team page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamPage {
    pub team: String,
    pub members: Vec<Member>,
    pub invitations: Vec<InvitationInfo>,
    /// The sign-up link just created (shown once).
    pub new_link: Option<String>,
}

/// Where the query page runs a query.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueryEngine {
    /// The lakehouse when every dataset the query names is synced; local otherwise.
    #[default]
    Auto,
    /// DuckDB over the local Parquet files: always there, even with sync off.
    Local,
    /// The silver tables, through the MCP `query` tool.
    Lakehouse,
}

impl QueryEngine {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Local => "local",
            Self::Lakehouse => "lakehouse",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::Auto, Self::Local, Self::Lakehouse]
            .into_iter()
            .find(|e| e.as_str() == text)
    }
}

/// One column of a query's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryColumn {
    pub name: String,
    pub data_type: String,
}

/// A query's answer on the query page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryAnswer {
    /// Which engine ran it (`local` or `lakehouse`).
    pub engine: QueryEngine,
    /// Why that engine.
    pub reason: String,
    pub columns: Vec<QueryColumn>,
    /// Values as text (long ones cut, ending in `…`); `None` is NULL.
    pub rows: Vec<Vec<Option<String>>>,
    /// More rows existed than the page shows.
    pub truncated: bool,
    pub elapsed_ms: u64,
}

/// A dataset as a table of the query page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryTable {
    /// The SQL name (the normalised dataset name, made unique).
    pub name: String,
    pub dataset_id: Uuid,
    pub dataset_name: String,
    /// (normalised name, type) of each column.
    pub columns: Vec<QueryColumn>,
    pub status: SyncStatus,
    /// The lakehouse's silver table holds the dataset's current version.
    pub lakehouse_current: bool,
}

/// One query of the user's history on the query page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryHistoryEntry {
    pub sql: String,
    /// What was asked for.
    pub engine: QueryEngine,
    /// Where it ran (`None` when it did not).
    pub ran_on: Option<String>,
    pub row_count: Option<i64>,
    pub elapsed_ms: Option<i64>,
    pub error: Option<String>,
    /// RFC 3339, UTC.
    pub at: String,
}

/// The orders of the datasets list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DatasetSort {
    /// Newest first.
    #[default]
    Date,
    /// A to Z, any case.
    Name,
    /// Largest first.
    Size,
}

impl DatasetSort {
    pub const ALL: [DatasetSort; 3] = [Self::Date, Self::Name, Self::Size];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Date => "date",
            Self::Name => "name",
            Self::Size => "size",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// The monitoring page's time windows: how far back, and the width of one
/// bar of its time charts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum MonitorWindow {
    #[serde(rename = "1h")]
    Hour,
    #[default]
    #[serde(rename = "24h")]
    Day,
    #[serde(rename = "7d")]
    Week,
}

impl MonitorWindow {
    pub const ALL: [MonitorWindow; 3] = [Self::Hour, Self::Day, Self::Week];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hour => "1h",
            Self::Day => "24h",
            Self::Week => "7d",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|w| w.as_str() == text)
    }

    /// The window's length and its buckets' width, in seconds.
    pub fn span_and_bucket_secs(self) -> (i64, i64) {
        match self {
            Self::Hour => (3_600, 300),
            Self::Day => (86_400, 3_600),
            Self::Week => (7 * 86_400, 6 * 3_600),
        }
    }
}

/// One bar of the monitoring page's time charts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonitorBucket {
    /// RFC 3339, UTC: the bucket's start.
    pub start: String,
    /// Syncs that ended in the bucket, by how.
    pub succeeded: i64,
    pub failed: i64,
    /// Step attempts that failed and were retried.
    pub retries: i64,
}

/// Failed or retried step attempts with the same cause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureCause {
    pub step: SyncStep,
    /// The error as the user saw it, without its log reference.
    pub cause: String,
    pub count: i64,
}

/// How long one step's successful attempts took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepTiming {
    pub step: SyncStep,
    pub count: i64,
    pub p50_ms: f64,
    pub p95_ms: f64,
}

/// One of the slowest recent syncs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlowSync {
    pub dataset_id: Uuid,
    pub dataset_name: String,
    pub request_id: Uuid,
    /// Restate's id of the sync's invocation (for `restate invocations describe`).
    pub invocation_id: Option<String>,
    /// RFC 3339, UTC: when the sync was requested.
    pub requested_at: String,
    /// From the request to the last step's end.
    pub duration_ms: i64,
}

/// The tenant's sync monitoring page: drawn from `sync_events` and the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncMonitor {
    pub window: MonitorWindow,
    /// Syncs that ended in the window, by how.
    pub succeeded: i64,
    pub failed: i64,
    /// Every bucket of the window, oldest first (empty ones too).
    pub buckets: Vec<MonitorBucket>,
    /// Most frequent first.
    pub causes: Vec<FailureCause>,
    /// In step order.
    pub steps: Vec<StepTiming>,
    /// Sync and delete requests not yet accepted by Restate.
    pub outbox_depth: i64,
    /// Age of the oldest of them, in seconds.
    pub outbox_oldest_secs: Option<i64>,
    /// Datasets queued, syncing or retrying now.
    pub in_flight: i64,
    /// Slowest first.
    pub slowest: Vec<SlowSync>,
}

/// One version of a dataset, as its history lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetVersion {
    pub version: i32,
    pub mode: crate::domain::VersionMode,
    pub file_name: String,
    pub source_format: String,
    /// The rows this version's file brought.
    pub row_count: i64,
    pub column_count: i64,
    /// Bytes as uploaded.
    pub size_bytes: i64,
    /// The uploader's email (`None` when unknown or since removed).
    pub uploaded_by: Option<String>,
    /// RFC 3339, UTC.
    pub created_at: String,
}

/// A file uploaded onto a dataset, converted and waiting for its uploader
/// to choose: replace the dataset's rows, or append to them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagedVersion {
    pub id: Uuid,
    pub dataset_id: Uuid,
    pub dataset_name: String,
    /// The dataset's version now; committing makes `current_version + 1`.
    pub current_version: i32,
    pub file_name: String,
    pub source_format: String,
    pub row_count: i64,
    pub size_bytes: i64,
    /// The new file's columns.
    pub columns: Vec<ColumnSchema>,
    /// The new file against the dataset.
    pub diff: crate::domain::SchemaDiff,
    /// Why it cannot be appended (empty when it can).
    pub append_conflicts: Vec<String>,
    /// RFC 3339, UTC.
    pub created_at: String,
}

/// A new version, committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionCommitted {
    pub dataset: DatasetSummary,
    pub version: i32,
    pub mode: crate::domain::VersionMode,
    pub diff: crate::domain::SchemaDiff,
}

//! The typed sync state machine of a dataset: its status, the step a sync is
//! at, and how a step attempt ended (see ARCHITECTURE.md). Each is a Postgres
//! enum of the same name, so SQL binds and reads them typed.

use serde::{Deserialize, Serialize};

/// Where a dataset stands in its sync to the lakehouse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ssr", derive(sqlx::Type))]
#[cfg_attr(
    feature = "ssr",
    sqlx(type_name = "sync_status", rename_all = "snake_case")
)]
pub enum SyncStatus {
    /// Sync is disabled; the dataset lives only in local Parquet.
    LocalOnly,
    /// A sync request is stored but the workflow engine has not accepted it yet.
    Pending,
    /// Accepted by the workflow engine, waiting to run.
    Queued,
    /// A sync step is running.
    Syncing,
    /// An attempt failed and another one is scheduled.
    Retrying,
    /// Bronze and silver tables exist and are current.
    Synced,
    /// Retries are exhausted or the error cannot be fixed by retrying.
    Failed,
}

impl SyncStatus {
    /// The snake_case name stored in Postgres and in `metadata.sync_status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LocalOnly => "local_only",
            Self::Pending => "pending",
            Self::Queued => "queued",
            Self::Syncing => "syncing",
            Self::Retrying => "retrying",
            Self::Synced => "synced",
            Self::Failed => "failed",
        }
    }

    /// Human label for badges: the name, with spaces.
    pub fn label(self) -> &'static str {
        match self {
            Self::LocalOnly => "local only",
            other => other.as_str(),
        }
    }

    /// A sync is waiting or running: another request would only queue behind it.
    pub fn in_progress(self) -> bool {
        matches!(
            self,
            Self::Pending | Self::Queued | Self::Syncing | Self::Retrying
        )
    }
}

/// A row of the sync timeline: the request's acceptance (`queued`) or one of
/// the sync's three journaled steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ssr", derive(sqlx::Type))]
#[cfg_attr(
    feature = "ssr",
    sqlx(type_name = "sync_step", rename_all = "snake_case")
)]
pub enum SyncStep {
    /// Restate accepted the sync request.
    Queued,
    /// MCP `create_dataset`: the file staged and the bronze table created.
    Bronze,
    /// MCP `transform_to_silver`.
    Silver,
    /// The catalogue records the tables and `synced`.
    Metadata,
}

impl SyncStep {
    /// The three steps a sync runs, in order.
    pub const RUN: [SyncStep; 3] = [Self::Bronze, Self::Silver, Self::Metadata];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Bronze => "bronze",
            Self::Silver => "silver",
            Self::Metadata => "metadata",
        }
    }
}

/// How a step attempt ended (or that it still runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ssr", derive(sqlx::Type))]
#[cfg_attr(
    feature = "ssr",
    sqlx(type_name = "step_outcome", rename_all = "snake_case")
)]
pub enum StepOutcome {
    Running,
    Succeeded,
    /// Failed, and another attempt is scheduled.
    Retrying,
    /// Failed for good.
    Failed,
}

impl StepOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Retrying => "retrying",
            Self::Failed => "failed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_names_match_database_names() {
        for s in [
            SyncStatus::LocalOnly,
            SyncStatus::Pending,
            SyncStatus::Queued,
            SyncStatus::Syncing,
            SyncStatus::Retrying,
            SyncStatus::Synced,
            SyncStatus::Failed,
        ] {
            let json = serde_json::to_string(&s).unwrap();
            assert_eq!(json, format!("\"{}\"", s.as_str()));
        }
        for s in [
            SyncStep::Queued,
            SyncStep::Bronze,
            SyncStep::Silver,
            SyncStep::Metadata,
        ] {
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
        for o in [
            StepOutcome::Running,
            StepOutcome::Succeeded,
            StepOutcome::Retrying,
            StepOutcome::Failed,
        ] {
            assert_eq!(
                serde_json::to_string(&o).unwrap(),
                format!("\"{}\"", o.as_str())
            );
        }
    }

    #[test]
    fn labels_read_as_words() {
        assert_eq!(SyncStatus::LocalOnly.label(), "local only");
        assert_eq!(SyncStatus::Retrying.label(), "retrying");
    }
}

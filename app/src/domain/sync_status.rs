//! The typed sync status of a dataset (see ARCHITECTURE.md for the state machine).

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

    /// Human label for badges.
    pub fn label(self) -> &'static str {
        match self {
            Self::LocalOnly => "local only",
            Self::Pending => "pending",
            Self::Queued => "queued",
            Self::Syncing => "syncing",
            Self::Retrying => "retrying",
            Self::Synced => "synced",
            Self::Failed => "failed",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_name_matches_database_name() {
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
    }
}

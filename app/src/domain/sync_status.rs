//! The typed sync state machine of a dataset: its status, the step a sync is
//! at, and how a step attempt ended (see ARCHITECTURE.md). Each is a Postgres
//! enum of the same name, so SQL binds and reads them typed.

use serde::{Deserialize, Serialize};

/// Declares an enum stored as the Postgres enum `$sql` (and serialised with
/// the same snake_case names), with `ALL` and `as_str`.
macro_rules! db_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident as $sql:literal {
            $($(#[$vmeta:meta])* $variant:ident = $text:literal,)*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        #[cfg_attr(feature = "ssr", derive(sqlx::Type))]
        #[cfg_attr(feature = "ssr", sqlx(type_name = $sql, rename_all = "snake_case"))]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The snake_case name stored in Postgres and sent as JSON.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }
        }
    };
}
pub(crate) use db_enum;

db_enum! {
    /// Where a dataset stands in its sync to the lakehouse.
    pub enum SyncStatus as "sync_status" {
        /// Sync is disabled; the dataset lives only in local Parquet.
        LocalOnly = "local_only",
        /// A sync request is stored but the workflow engine has not accepted it yet.
        Pending = "pending",
        /// Accepted by the workflow engine, waiting to run.
        Queued = "queued",
        /// A sync step is running.
        Syncing = "syncing",
        /// An attempt failed and another one is scheduled.
        Retrying = "retrying",
        /// Bronze and silver tables exist and are current.
        Synced = "synced",
        /// Retries are exhausted or the error cannot be fixed by retrying.
        Failed = "failed",
        /// Deletion was asked for: the data is hidden, and its lakehouse
        /// tables, files and then the row are being removed.
        Deleting = "deleting",
    }
}

impl SyncStatus {
    /// Human label for badges: the name, with spaces.
    pub fn label(self) -> &'static str {
        match self {
            Self::LocalOnly => "local only",
            other => other.as_str(),
        }
    }

    /// The dataset is on its way out: nothing more may be asked of it.
    pub fn is_deleting(self) -> bool {
        self == Self::Deleting
    }

    /// A sync is waiting or running: another request would only queue behind it.
    pub fn in_progress(self) -> bool {
        matches!(
            self,
            Self::Pending | Self::Queued | Self::Syncing | Self::Retrying
        )
    }
}

db_enum! {
    /// A row of the sync timeline: the request's acceptance (`queued`) or one
    /// of the sync's three journaled steps.
    pub enum SyncStep as "sync_step" {
        /// Restate accepted the sync request.
        Queued = "queued",
        /// MCP `create_dataset`: the file staged and the bronze table created.
        Bronze = "bronze",
        /// MCP `transform_to_silver`.
        Silver = "silver",
        /// The catalogue records the tables and `synced`.
        Metadata = "metadata",
    }
}

impl SyncStep {
    /// The three steps a sync runs, in order.
    pub const RUN: [SyncStep; 3] = [Self::Bronze, Self::Silver, Self::Metadata];
}

db_enum! {
    /// How a step attempt ended (or that it still runs).
    pub enum StepOutcome as "step_outcome" {
        Running = "running",
        Succeeded = "succeeded",
        /// Failed, and another attempt is scheduled.
        Retrying = "retrying",
        /// Failed for good.
        Failed = "failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serde_names_match<T: Serialize + Copy>(all: &[T], name: impl Fn(T) -> &'static str) {
        for &value in all {
            let json = serde_json::to_string(&value).unwrap();
            assert_eq!(json, format!("\"{}\"", name(value)));
        }
    }

    #[test]
    fn serde_names_match_database_names() {
        serde_names_match(SyncStatus::ALL, SyncStatus::as_str);
        serde_names_match(SyncStep::ALL, SyncStep::as_str);
        serde_names_match(StepOutcome::ALL, StepOutcome::as_str);
        assert_eq!(SyncStatus::ALL.len(), 8);
    }

    #[test]
    fn labels_read_as_words() {
        assert_eq!(SyncStatus::LocalOnly.label(), "local only");
        assert_eq!(SyncStatus::Retrying.label(), "retrying");
    }
}

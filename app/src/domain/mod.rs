//! Domain types that have been parsed, not merely validated.

mod account;
mod names;
mod sync_status;
mod versions;

pub use account::{Email, Role, TokenKind, MIN_PASSWORD_CHARS};

pub use contract::names::{normalize_column_names, normalize_identifier};
pub use names::{name_from_file_name, DatasetName, NameError, MAX_DATASET_NAME_CHARS};
pub use sync_status::{StepOutcome, SyncStatus, SyncStep};
pub use versions::{appended_schema, schema_diff, SchemaDiff, TypeChange, VersionMode};

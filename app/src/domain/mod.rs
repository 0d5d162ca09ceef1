//! Domain types that have been parsed, not merely validated.

mod names;
mod sync_status;

pub use names::{
    name_from_file_name, normalize_column_names, normalize_identifier, DatasetName, NameError,
    MAX_DATASET_NAME_CHARS,
};
pub use sync_status::SyncStatus;

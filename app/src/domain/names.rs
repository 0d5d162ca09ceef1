//! Names people give us: dataset names, and the names files suggest. Column
//! names are normalised by the contract's one normaliser
//! ([`contract::names`]), re-exported from [`crate::domain`].

use serde::{Deserialize, Serialize};

/// Longest dataset name we accept, in characters.
pub const MAX_DATASET_NAME_CHARS: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("the dataset name is empty")]
    Empty,
    #[error("the dataset name is {len} characters long; the limit is {max}")]
    TooLong { len: usize, max: usize },
    #[error("the dataset name contains a control character")]
    ControlCharacter,
}

/// A dataset's display name: trimmed, non-empty, at most
/// [`MAX_DATASET_NAME_CHARS`] characters, without control characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DatasetName(String);

impl DatasetName {
    pub fn parse(raw: &str) -> Result<Self, NameError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(NameError::Empty);
        }
        let len = trimmed.chars().count();
        if len > MAX_DATASET_NAME_CHARS {
            return Err(NameError::TooLong {
                len,
                max: MAX_DATASET_NAME_CHARS,
            });
        }
        if trimmed.chars().any(char::is_control) {
            return Err(NameError::ControlCharacter);
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for DatasetName {
    type Error = NameError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<DatasetName> for String {
    fn from(value: DatasetName) -> Self {
        value.0
    }
}

impl AsRef<str> for DatasetName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// The dataset name a file suggests: `sales-2024.csv.gz` → `sales-2024`.
pub fn name_from_file_name(file_name: &str) -> &str {
    let stem = file_name.strip_suffix(".gz").unwrap_or(file_name);
    match stem.rsplit_once('.') {
        Some((s, _)) if !s.is_empty() => s,
        _ => stem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_file_names() {
        assert_eq!(name_from_file_name("sales-2024.csv.gz"), "sales-2024");
        assert_eq!(name_from_file_name("data.parquet"), "data");
        assert_eq!(name_from_file_name(".hidden"), ".hidden");
        assert_eq!(name_from_file_name("README"), "README");
    }

    #[test]
    fn dataset_name_is_trimmed_and_bounded() {
        assert_eq!(
            DatasetName::parse("  sales 2024 ").unwrap().as_str(),
            "sales 2024"
        );
        assert_eq!(DatasetName::parse("   "), Err(NameError::Empty));
        let long = "x".repeat(MAX_DATASET_NAME_CHARS + 1);
        assert!(matches!(
            DatasetName::parse(&long),
            Err(NameError::TooLong { .. })
        ));
        assert!(DatasetName::parse(&"é".repeat(MAX_DATASET_NAME_CHARS)).is_ok());
        assert_eq!(
            DatasetName::parse("a\u{0}b"),
            Err(NameError::ControlCharacter)
        );
    }
}

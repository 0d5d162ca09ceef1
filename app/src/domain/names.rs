//! Names people give us (dataset names, column headers) and their normalised,
//! SQL-safe forms.

use serde::{Deserialize, Serialize};
use std::collections::HashSet;

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

/// Normalises one identifier to snake_case the way dlt's `snake_case` naming
/// convention does: camelCase words are split, letters lowercased, every run of
/// characters outside `[a-z0-9_]` becomes `_`, a leading digit gets a `_`
/// prefix, trailing underscores become `x` (so `price_` stays distinct from
/// `price`), and repeated underscores collapse. An identifier that normalises
/// to nothing becomes `_`.
pub fn normalize_identifier(raw: &str) -> String {
    let chars: Vec<char> = raw.trim().chars().collect();
    // Split camelCase / PascalCase the way dlt's two regexes do:
    // "([^_])([A-Z][a-z]+)" and "([a-z0-9])([A-Z])".
    let mut split = String::with_capacity(raw.len() + 8);
    for (i, &c) in chars.iter().enumerate() {
        if i > 0 && c.is_ascii_uppercase() {
            let prev = chars[i - 1];
            let next_is_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            let break_1 = prev != '_' && next_is_lower;
            let break_2 = prev.is_ascii_lowercase() || prev.is_ascii_digit();
            if break_1 || break_2 {
                split.push('_');
            }
        }
        split.push(c);
    }

    let mut out = String::with_capacity(split.len());
    let mut last_underscore = false;
    for c in split.chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
            last_underscore = false;
        } else if !last_underscore {
            out.push('_');
            last_underscore = true;
        }
    }
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    let stripped_len = out.trim_end_matches('_').len();
    let trailing = out.len() - stripped_len;
    if stripped_len == 0 {
        return "_".to_owned();
    }
    out.truncate(stripped_len);
    out.extend(std::iter::repeat_n('x', trailing));
    out
}

/// Normalises a whole header row. Empty names become `column_{n}` (1-based
/// position) before normalising; collisions get `_2`, `_3`, … in order of
/// appearance, never reusing a name already taken.
pub fn normalize_column_names<S: AsRef<str>>(names: &[S]) -> Vec<String> {
    let bases: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let n = n.as_ref();
            if n.trim().is_empty() {
                format!("column_{}", i + 1)
            } else {
                normalize_identifier(n)
            }
        })
        .collect();
    // Reserve every base name first so a suffixed name never steals a name that
    // a later column has on its own.
    let mut taken: HashSet<String> = bases.iter().cloned().collect();
    let mut seen: HashSet<&str> = HashSet::with_capacity(bases.len());
    let mut out = Vec::with_capacity(bases.len());
    for base in &bases {
        if seen.insert(base.as_str()) {
            out.push(base.clone());
            continue;
        }
        let mut n = 2;
        loop {
            let candidate = format!("{base}_{n}");
            if taken.insert(candidate.clone()) {
                out.push(candidate);
                break;
            }
            n += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lowercases_and_replaces_non_alphanumerics() {
        assert_eq!(normalize_identifier("First Name"), "first_name");
        assert_eq!(normalize_identifier("e-mail address!"), "e_mail_addressx");
        assert_eq!(normalize_identifier("  Total (USD)  "), "total_usdx");
    }

    #[test]
    fn collapses_repeated_separators() {
        assert_eq!(normalize_identifier("a   --  b"), "a_b");
        assert_eq!(normalize_identifier("a__b"), "a_b");
    }

    #[test]
    fn prefixes_leading_digits() {
        assert_eq!(normalize_identifier("2024 revenue"), "_2024_revenue");
        assert_eq!(normalize_identifier("1"), "_1");
    }

    #[test]
    fn splits_camel_case_like_dlt() {
        assert_eq!(normalize_identifier("customerId"), "customer_id");
        assert_eq!(normalize_identifier("HTTPStatusCode"), "http_status_code");
        assert_eq!(normalize_identifier("userID2"), "user_id2");
    }

    #[test]
    fn non_ascii_becomes_underscore() {
        assert_eq!(normalize_identifier("café"), "cafx");
        assert_eq!(normalize_identifier("größe"), "gr_e");
    }

    #[test]
    fn symbol_only_names_do_not_vanish() {
        assert_eq!(normalize_identifier("%%%"), "_");
    }

    #[test]
    fn collisions_get_numbered_suffixes_in_order() {
        let got = normalize_column_names(&["Name", "name", "NAME", "name_2"]);
        assert_eq!(got, vec!["name", "name_3", "name_4", "name_2"]);
    }

    #[test]
    fn empty_headers_get_positional_names() {
        let got = normalize_column_names(&["", "id", " ", "column_1"]);
        assert_eq!(got, vec!["column_1", "id", "column_3", "column_1_2"]);
    }

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

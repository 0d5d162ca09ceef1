//! New versions of a dataset: how a new file's schema differs from the
//! dataset's, whether it can be appended, and the schema the dataset has
//! afterwards. Columns are matched by their normalised (silver) names, so
//! `Customer ID` and `customer_id` are the same column.

use super::sync_status::db_enum;
use crate::model::ColumnSchema;
use serde::{Deserialize, Serialize};

db_enum! {
    /// How a version came to be.
    pub enum VersionMode as "version_mode" {
        /// The dataset's first upload.
        Initial = "initial",
        /// Replaced every row: the dataset is this file alone.
        Replace = "replace",
        /// Added its rows to the dataset's.
        Append = "append",
    }
}

impl VersionMode {
    /// `replace` or `append`, the modes a new version can be uploaded with.
    pub fn parse_new(text: &str) -> Option<Self> {
        match text {
            "replace" => Some(Self::Replace),
            "append" => Some(Self::Append),
            _ => None,
        }
    }
}

/// A column whose type differs between the dataset and the new file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeChange {
    /// The column's name in the new file.
    pub name: String,
    pub from: String,
    pub to: String,
    /// Whether appending can keep both (both integers, or both numbers):
    /// the dataset's column widens to hold either.
    pub widens: bool,
}

/// The new file against the dataset, column by column.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaDiff {
    /// In the new file only.
    pub added: Vec<ColumnSchema>,
    /// In the dataset only.
    pub removed: Vec<ColumnSchema>,
    pub changed: Vec<TypeChange>,
}

impl SchemaDiff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }

    /// Why the file cannot be appended, one sentence per column; empty when
    /// it can. A column the file lacks would leave its rows without a value
    /// the dataset has always had, and a type that does not widen would
    /// change the meaning of every earlier row: both are refused. Added
    /// columns are fine (earlier rows hold NULL there).
    pub fn append_conflicts(&self) -> Vec<String> {
        self.removed
            .iter()
            .map(|c| {
                format!(
                    "column {:?} ({}) is missing from the new file",
                    c.name, c.data_type
                )
            })
            .chain(self.changed.iter().filter(|c| !c.widens).map(|c| {
                format!(
                    "column {:?} changes type from {} to {}",
                    c.name, c.from, c.to
                )
            }))
            .collect()
    }
}

fn base_type(t: &str) -> &str {
    t.split('(').next().unwrap_or(t).trim()
}

fn is_integer(t: &str) -> bool {
    matches!(
        base_type(t),
        "TINYINT" | "SMALLINT" | "INTEGER" | "BIGINT" | "UTINYINT" | "USMALLINT" | "UINTEGER"
    )
}

fn is_number(t: &str) -> bool {
    is_integer(t) || matches!(base_type(t), "FLOAT" | "DOUBLE" | "DECIMAL")
}

/// The type both `a` and `b` fit in, when appending may widen to one.
fn widened(a: &str, b: &str) -> Option<String> {
    if a == b {
        Some(a.to_owned())
    } else if is_integer(a) && is_integer(b) {
        Some("BIGINT".to_owned())
    } else if is_number(a) && is_number(b) {
        Some("DOUBLE".to_owned())
    } else {
        None
    }
}

/// How `new` differs from `current`.
pub fn schema_diff(current: &[ColumnSchema], new: &[ColumnSchema]) -> SchemaDiff {
    let find =
        |cols: &[ColumnSchema], key: &str| cols.iter().find(|c| c.normalized_name == key).cloned();
    let mut diff = SchemaDiff::default();
    for c in new {
        match find(current, &c.normalized_name) {
            None => diff.added.push(c.clone()),
            Some(old) if old.data_type != c.data_type => diff.changed.push(TypeChange {
                name: c.name.clone(),
                from: old.data_type.clone(),
                to: c.data_type.clone(),
                widens: widened(&old.data_type, &c.data_type).is_some(),
            }),
            Some(_) => {}
        }
    }
    diff.removed = current
        .iter()
        .filter(|c| find(new, &c.normalized_name).is_none())
        .cloned()
        .collect();
    diff
}

/// The dataset's schema once `new` is appended (its conflicts must be
/// empty): the current columns in their order, widened where the new file's
/// type is wider and nullable where either is, then the added columns, which
/// are nullable (earlier rows lack them).
pub fn appended_schema(current: &[ColumnSchema], new: &[ColumnSchema]) -> Vec<ColumnSchema> {
    let mut out: Vec<ColumnSchema> = current
        .iter()
        .map(
            |c| match new.iter().find(|n| n.normalized_name == c.normalized_name) {
                Some(n) => ColumnSchema {
                    data_type: widened(&c.data_type, &n.data_type)
                        .unwrap_or_else(|| c.data_type.clone()),
                    nullable: c.nullable || n.nullable,
                    ..c.clone()
                },
                None => ColumnSchema {
                    nullable: true,
                    ..c.clone()
                },
            },
        )
        .collect();
    out.extend(
        new.iter()
            .filter(|n| {
                !current
                    .iter()
                    .any(|c| c.normalized_name == n.normalized_name)
            })
            .map(|n| ColumnSchema {
                nullable: true,
                ..n.clone()
            }),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, normalized: &str, t: &str) -> ColumnSchema {
        ColumnSchema {
            name: name.into(),
            normalized_name: normalized.into(),
            data_type: t.into(),
            nullable: false,
        }
    }

    #[test]
    fn diffs_match_columns_by_their_silver_names() {
        let current = vec![
            col("Customer ID", "customer_id", "BIGINT"),
            col("Name", "name", "VARCHAR"),
            col("Score", "score", "BIGINT"),
            col("Joined", "joined", "DATE"),
        ];
        let new = vec![
            col("customer_id", "customer_id", "INTEGER"),
            col("name", "name", "VARCHAR"),
            col("Score", "score", "DOUBLE"),
            col("Joined", "joined", "VARCHAR"),
            col("Region", "region", "VARCHAR"),
        ];
        let diff = schema_diff(&current, &new);
        assert_eq!(diff.added, vec![col("Region", "region", "VARCHAR")]);
        assert!(diff.removed.is_empty());
        assert_eq!(
            diff.changed
                .iter()
                .map(|c| (c.name.as_str(), c.widens))
                .collect::<Vec<_>>(),
            [("customer_id", true), ("Score", true), ("Joined", false)]
        );
        assert_eq!(
            diff.append_conflicts(),
            ["column \"Joined\" changes type from DATE to VARCHAR"]
        );

        let fewer = vec![col("Name", "name", "VARCHAR")];
        let diff = schema_diff(&current, &fewer);
        assert_eq!(diff.removed.len(), 3);
        assert!(diff.append_conflicts()[0].contains("\"Customer ID\" (BIGINT) is missing"));
        assert!(schema_diff(&current, &current).is_empty());
    }

    #[test]
    fn appending_widens_types_and_adds_nullable_columns() {
        let current = vec![col("id", "id", "INTEGER"), col("v", "v", "BIGINT")];
        let new = vec![
            col("ID", "id", "BIGINT"),
            col("v", "v", "DECIMAL(18,3)"),
            col("note", "note", "VARCHAR"),
        ];
        let merged = appended_schema(&current, &new);
        assert_eq!(
            merged
                .iter()
                .map(|c| (c.name.as_str(), c.data_type.as_str(), c.nullable))
                .collect::<Vec<_>>(),
            [
                ("id", "BIGINT", false),
                ("v", "DOUBLE", false),
                ("note", "VARCHAR", true)
            ]
        );
        assert_eq!(VersionMode::parse_new("append"), Some(VersionMode::Append));
        assert_eq!(VersionMode::parse_new("initial"), None);
    }
}

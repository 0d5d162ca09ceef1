//! The silver plan: per-column decisions computed once from column
//! statistics, then rendered as DuckDB SQL or Databricks SQL. Both backends
//! therefore apply exactly the same typing and cleaning rules.

use crate::domain::{unique_column_names, Ident, TableName};
pub use contract::names::LINEAGE_COLUMNS;
use contract::tools::{ColumnInfo, SilverColumn, SilverResult};
use serde::Serialize;

/// Values that mean "no value" once trimmed.
pub use contract::NULL_TOKENS;
/// The bronze column holding the staged file's path.
pub const SOURCE_FILE_COLUMN: &str = "_source_file";
/// The bronze column holding the caller's dataset id.
pub const DATASET_ID_COLUMN: &str = "_dataset_id";
/// The bronze column holding the dataset version a row was staged with.
pub const VERSION_COLUMN: &str = "_version";
/// The bronze column holding when that version was staged; in silver, when
/// the transform ran.
pub const INGESTED_AT_COLUMN: &str = "_ingested_at";
/// Lineage columns every bronze table carries after the file's own columns
/// (the same names, in the same order, as silver's [`LINEAGE_COLUMNS`]).
pub const BRONZE_LINEAGE: [&str; 4] = LINEAGE_COLUMNS;

/// Silver's table properties (Databricks): the newest and the first
/// version it holds.
pub const VERSION_PROPERTY: &str = "servicetsunami.version";
pub const BASE_VERSION_PROPERTY: &str = "servicetsunami.base_version";

/// Which bronze versions silver reads: `base..=version`. An append keeps
/// the base of the version it adds to; a replace starts a new base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionRange {
    pub base: u32,
    pub version: u32,
}

impl VersionRange {
    /// The range a `transform_to_silver` call asks for: `version` defaults
    /// to the newest staged, `base` to 1, and a base past the version is
    /// the version alone.
    pub fn new(base: Option<u32>, version: Option<u32>, newest: u32) -> Self {
        let version = version.unwrap_or(newest).max(1);
        let base = base.unwrap_or(1).clamp(1, version);
        Self { base, version }
    }

    pub fn contains(self, version: u32) -> bool {
        (self.base..=self.version).contains(&version)
    }
}

/// `FROM` text for the bronze rows silver reads: the whole table of a
/// bronze made before versions (it has no `_version`), else the range.
pub fn bronze_rows(dialect: Dialect, bronze: &TableName, range: Option<VersionRange>) -> String {
    match range {
        None => dialect.table(bronze),
        Some(r) => format!(
            "{} WHERE {} BETWEEN {} AND {}",
            dialect.table(bronze),
            dialect.ident(VERSION_COLUMN),
            r.base,
            r.version
        ),
    }
}

const INT_RE: &str = "^[+-]?[0-9]+$";
const DECIMAL_RE: &str = "^[+-]?[0-9]+[.][0-9]+$";
const LEADING_ZERO_RE: &str = "^[+-]?0[0-9]";
const DATE_RE: &str = "^[0-9]{4}-[0-9]{2}-[0-9]{2}$";
const TIMESTAMP_RE: &str =
    "^[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}(:[0-9]{2}([.][0-9]{1,6})?)?$";
const TRUE_TOKENS: [&str; 4] = ["true", "t", "yes", "y"];
const FALSE_TOKENS: [&str; 4] = ["false", "f", "no", "n"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    DuckDb,
    Databricks,
}

impl Dialect {
    pub fn ident(self, name: &str) -> String {
        match self {
            Self::DuckDb => format!("\"{}\"", name.replace('"', "\"\"")),
            Self::Databricks => format!("`{}`", name.replace('`', "``")),
        }
    }

    pub fn literal(self, value: &str) -> String {
        match self {
            Self::DuckDb => format!("'{}'", value.replace('\'', "''")),
            // Spark SQL reads backslash escapes in literals and would join
            // adjacent literals, so '' is not an escaped quote there.
            Self::Databricks => format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'")),
        }
    }

    pub fn table(self, name: &TableName) -> String {
        format!(
            "{}.{}.{}",
            self.ident(name.catalog.as_str()),
            self.ident(name.schema.as_str()),
            self.ident(name.table.as_str())
        )
    }

    fn regex(self, expr: &str, pattern: &str) -> String {
        match self {
            Self::DuckDb => format!("regexp_matches({expr}, {})", self.literal(pattern)),
            Self::Databricks => format!("({expr} RLIKE {})", self.literal(pattern)),
        }
    }

    fn try_cast(self, expr: &str, ty: &str) -> String {
        match self {
            Self::DuckDb => format!("TRY_CAST({expr} AS {ty})"),
            Self::Databricks => format!("try_cast({expr} AS {ty})"),
        }
    }

    fn string_type(self) -> &'static str {
        match self {
            Self::DuckDb => "VARCHAR",
            Self::Databricks => "STRING",
        }
    }

    /// Whether a source column type (as the engine names it) holds text.
    pub fn is_string_type(self, ty: &str) -> bool {
        let ty = ty.to_ascii_uppercase();
        ty == "VARCHAR" || ty == "STRING" || ty == "TEXT" || ty.starts_with("VARCHAR(")
    }
}

/// A silver column's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SilverType {
    BigInt,
    Decimal { precision: u8, scale: u8 },
    Double,
    Boolean,
    Date,
    Timestamp,
    String,
}

impl SilverType {
    pub fn sql(self, dialect: Dialect) -> String {
        match self {
            Self::BigInt => "BIGINT".into(),
            Self::Decimal { precision, scale } => format!("DECIMAL({precision},{scale})"),
            Self::Double => "DOUBLE".into(),
            Self::Boolean => "BOOLEAN".into(),
            Self::Date => "DATE".into(),
            Self::Timestamp => "TIMESTAMP".into(),
            Self::String => dialect.string_type().into(),
        }
    }
}

/// What the statistics query measured for one string column, over its
/// trimmed, null-token-cleaned values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StringStats {
    pub non_null: u64,
    pub integers: u64,
    pub decimals: u64,
    pub leading_zeros: u64,
    pub doubles: u64,
    pub booleans: u64,
    pub dates: u64,
    pub timestamps: u64,
    /// Largest count of digits before / after the point among numeric values.
    pub max_int_digits: u64,
    pub max_scale: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceColumn {
    pub name: String,
    /// The engine's type name for the bronze column.
    pub data_type: String,
    /// Present for string columns only.
    pub stats: Option<StringStats>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnAction {
    /// A typed (non-string) source column is copied unchanged.
    Keep,
    /// A string column is trimmed, null tokens become NULL, and it is cast.
    Clean(SilverType),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnPlan {
    pub source: String,
    pub target: Ident,
    pub source_type: String,
    pub action: ColumnAction,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SilverPlan {
    pub bronze: TableName,
    pub silver: TableName,
    /// The bronze versions read; `None` for a bronze made before versions.
    pub range: Option<VersionRange>,
    /// One instant for the whole batch, so both dialects write the same value.
    pub ingested_at: String,
    pub columns: Vec<ColumnPlan>,
}

/// Now, as the silver plan's `ingested_at` literal (both dialects read it as
/// a TIMESTAMP): `2026-01-02 03:04:05.123456`, UTC.
pub fn now_timestamp() -> String {
    timestamp_literal(time::OffsetDateTime::now_utc())
}

/// An instant as a TIMESTAMP literal's text, in UTC.
pub fn timestamp_literal(at: time::OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(time::macros::format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second].[subsecond digits:6]"
        ))
        .unwrap_or_default()
}

/// The rule, stated once: a string column takes the first type that every
/// non-null value converts to; identifiers with leading zeros stay strings.
pub fn decide(stats: &StringStats) -> SilverType {
    let n = stats.non_null;
    if n == 0 {
        return SilverType::String;
    }
    let numeric_ok = stats.leading_zeros == 0;
    if numeric_ok && stats.integers == n {
        return SilverType::BigInt;
    }
    if numeric_ok && stats.integers + stats.decimals == n && stats.decimals > 0 {
        let scale = stats.max_scale;
        let precision = stats.max_int_digits + scale;
        if scale <= 18 && precision <= 38 {
            return SilverType::Decimal {
                precision: u8::try_from(precision.max(1)).unwrap_or(38),
                scale: u8::try_from(scale).unwrap_or(18),
            };
        }
    }
    if numeric_ok && stats.doubles == n {
        return SilverType::Double;
    }
    if stats.booleans == n {
        return SilverType::Boolean;
    }
    if stats.dates == n {
        return SilverType::Date;
    }
    if stats.timestamps == n {
        return SilverType::Timestamp;
    }
    SilverType::String
}

/// `CASE trim(c) WHEN token THEN NULL … ELSE trim(c) END`, of the column
/// named `column`.
pub fn cleaned_expr(dialect: Dialect, column: &str) -> String {
    cleaned(dialect, &dialect.ident(column))
}

/// [`cleaned_expr`] of any expression. A simple `CASE`, not `IN (tokens)`:
/// DuckDB plans an `IN` of five constants or more as a join (one per column:
/// cleaning 334 columns of 8,000 rows took 17 s, as this 1.3 s).
fn cleaned(dialect: Dialect, expr: &str) -> String {
    let trimmed = format!("trim({expr})");
    let tokens: Vec<String> = NULL_TOKENS
        .iter()
        .map(|t| format!("WHEN {} THEN NULL", dialect.literal(t)))
        .collect();
    format!("CASE {trimmed} {} ELSE {trimmed} END", tokens.join(" "))
}

fn in_list(dialect: Dialect, values: &[&str]) -> String {
    values
        .iter()
        .map(|v| dialect.literal(v))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The [`STATS_PER_COLUMN`] statistics of `v`, a column of cleaned values,
/// in [`StringStats::from_values`]'s order.
fn value_stats(dialect: Dialect, v: &str) -> [String; STATS_PER_COLUMN] {
    // Sums are cast back to BIGINT: DuckDB widens SUM to HUGEINT.
    let count_if = |cond: String| {
        format!("CAST(COALESCE(SUM(CASE WHEN {cond} THEN 1 ELSE 0 END), 0) AS BIGINT)")
    };
    let is_int = format!(
        "{} AND {} IS NOT NULL",
        dialect.regex(v, INT_RE),
        dialect.try_cast(v, "BIGINT")
    );
    let is_dec = dialect.regex(v, DECIMAL_RE);
    let numeric = format!("({} OR {})", dialect.regex(v, INT_RE), is_dec);
    let int_digits = format!("length(regexp_replace(split_part({v}, '.', 1), '[+-]', ''))");
    let scale = format!("length(split_part({v}, '.', 2))");
    [
        format!("COUNT({v})"),
        count_if(is_int),
        count_if(is_dec),
        count_if(dialect.regex(v, LEADING_ZERO_RE)),
        count_if(format!("{} IS NOT NULL", dialect.try_cast(v, "DOUBLE"))),
        count_if(format!(
            "lower({v}) IN ({}, {})",
            in_list(dialect, &TRUE_TOKENS),
            in_list(dialect, &FALSE_TOKENS)
        )),
        count_if(format!(
            "{} AND {} IS NOT NULL",
            dialect.regex(v, DATE_RE),
            dialect.try_cast(v, "DATE")
        )),
        count_if(format!(
            "{} AND {} IS NOT NULL",
            dialect.regex(v, TIMESTAMP_RE),
            dialect.try_cast(v, "TIMESTAMP")
        )),
        format!("CAST(COALESCE(MAX(CASE WHEN {numeric} THEN {int_digits} END), 0) AS BIGINT)"),
        format!("CAST(COALESCE(MAX(CASE WHEN {numeric} THEN {scale} END), 0) AS BIGINT)"),
    ]
}

/// The statistics query, both dialects: one row per string column that
/// holds a value, its name and then [`STATS_PER_COLUMN`] values (a column
/// with none has no row, and every count zero; [`with_stats`] reads the
/// rows). Every column's values are one column here (`UNPIVOT`), so the
/// statement does not grow with the columns: DuckDB took 15 s only to plan
/// a wide form (one set of aggregates per column) over 334 text columns,
/// and 64 s to run it, where this runs in 2 s. `string_columns` must not
/// be empty (then nothing is measured). The rows it reads are counted by
/// [`count_sql`].
pub fn stats_by_column_sql(
    dialect: Dialect,
    bronze: &TableName,
    range: Option<VersionRange>,
    string_columns: &[String],
) -> String {
    let columns: Vec<String> = string_columns.iter().map(|c| dialect.ident(c)).collect();
    let columns = columns.join(", ");
    format!(
        "SELECT name, {} FROM (SELECT name, {} AS v FROM (SELECT {columns} FROM {}) AS b \
         UNPIVOT (value FOR name IN ({columns})) AS u) AS s GROUP BY name",
        value_stats(dialect, "v").join(", "),
        cleaned(dialect, "value"),
        bronze_rows(dialect, bronze, range)
    )
}

/// How many rows silver reads from `bronze`.
pub fn count_sql(dialect: Dialect, bronze: &TableName, range: Option<VersionRange>) -> String {
    format!(
        "SELECT COUNT(*) FROM {}",
        bronze_rows(dialect, bronze, range)
    )
}

/// Number of values `stats_by_column_sql` returns per string column.
pub const STATS_PER_COLUMN: usize = 10;

/// The bronze columns the statistics measure: the text columns, lineage aside.
pub fn string_columns(dialect: Dialect, columns: &[ColumnInfo]) -> Vec<String> {
    columns
        .iter()
        .filter(|c| {
            dialect.is_string_type(&c.data_type) && !BRONZE_LINEAGE.contains(&c.name.as_str())
        })
        .map(|c| c.name.clone())
        .collect()
}

/// The 1-based position of the first column silver cannot carry: one with
/// an empty name, which no SQL dialect can write (DuckDB: "zero-length
/// delimited identifier"). Uploads never make one (DuckDB reads such Parquet
/// columns as `C0`, `_1`), but a bronze table made another way can.
pub fn unnamed_column(columns: &[ColumnInfo]) -> Option<usize> {
    columns
        .iter()
        .position(|c| c.name.is_empty())
        .map(|i| i + 1)
}

/// Every bronze column with its statistics: `stats` by name, for the text
/// columns (`strings`); one that has none held no value.
pub fn with_stats(
    columns: &[ColumnInfo],
    strings: &[String],
    mut stats: std::collections::HashMap<String, StringStats>,
) -> Vec<SourceColumn> {
    let strings: std::collections::HashSet<&String> = strings.iter().collect();
    columns
        .iter()
        .map(|c| SourceColumn {
            stats: strings
                .contains(&c.name)
                .then(|| stats.remove(&c.name).unwrap_or_default()),
            name: c.name.clone(),
            data_type: c.data_type.clone(),
        })
        .collect()
}

impl StringStats {
    /// One column's [`STATS_PER_COLUMN`] values, as the statistics queries
    /// give them (missing ones are zero).
    pub fn from_values(c: &[u64]) -> Self {
        let at = |i: usize| c.get(i).copied().unwrap_or(0);
        Self {
            non_null: at(0),
            integers: at(1),
            decimals: at(2),
            leading_zeros: at(3),
            doubles: at(4),
            booleans: at(5),
            dates: at(6),
            timestamps: at(7),
            max_int_digits: at(8),
            max_scale: at(9),
        }
    }
}

impl SilverPlan {
    pub fn new(
        bronze: TableName,
        silver: TableName,
        range: Option<VersionRange>,
        ingested_at: String,
        source: &[SourceColumn],
    ) -> Self {
        let data: Vec<&SourceColumn> = source
            .iter()
            .filter(|c| !BRONZE_LINEAGE.contains(&c.name.as_str()))
            .collect();
        let targets = unique_column_names(data.iter().map(|c| c.name.as_str()));
        let columns = data
            .into_iter()
            .zip(targets)
            .map(|(c, target)| ColumnPlan {
                source: c.name.clone(),
                target,
                source_type: c.data_type.clone(),
                action: match &c.stats {
                    Some(stats) => ColumnAction::Clean(decide(stats)),
                    None => ColumnAction::Keep,
                },
            })
            .collect();
        Self {
            bronze,
            silver,
            range,
            ingested_at,
            columns,
        }
    }

    fn column_expr(&self, dialect: Dialect, column: &ColumnPlan) -> String {
        let expr = match column.action {
            ColumnAction::Keep => dialect.ident(&column.source),
            ColumnAction::Clean(SilverType::Boolean) => {
                let v = cleaned_expr(dialect, &column.source);
                format!(
                    "CASE WHEN lower({v}) IN ({}) THEN TRUE WHEN lower({v}) IN ({}) THEN FALSE END",
                    in_list(dialect, &TRUE_TOKENS),
                    in_list(dialect, &FALSE_TOKENS)
                )
            }
            ColumnAction::Clean(SilverType::String) => cleaned_expr(dialect, &column.source),
            ColumnAction::Clean(ty) => {
                format!(
                    "CAST({} AS {})",
                    cleaned_expr(dialect, &column.source),
                    ty.sql(dialect)
                )
            }
        };
        format!("{expr} AS {}", dialect.ident(column.target.as_str()))
    }

    /// The select that produces silver rows: typed, cleaned, de-duplicated,
    /// with lineage. A row that several versions in the range hold (the
    /// same file appended twice) is kept once, with the lineage of the
    /// first version that held it.
    pub fn select_sql(&self, dialect: Dialect) -> String {
        let ident = |name: &str| dialect.ident(name);
        let (dataset, file, version) = (
            ident(DATASET_ID_COLUMN),
            ident(SOURCE_FILE_COLUMN),
            ident(VERSION_COLUMN),
        );
        let mut exprs: Vec<String> = self
            .columns
            .iter()
            .map(|c| self.column_expr(dialect, c))
            .collect();
        exprs.push(dataset.clone());
        exprs.push(file.clone());
        exprs.push(match self.range {
            Some(_) => version.clone(),
            // A bronze made before versions holds version 1.
            None => format!("CAST(1 AS INT) AS {version}"),
        });
        let mut keys: Vec<String> = self
            .columns
            .iter()
            .map(|c| ident(c.target.as_str()))
            .collect();
        keys.push(dataset);
        let ts = format!("CAST({} AS TIMESTAMP)", dialect.literal(&self.ingested_at));
        let mut outer = keys.clone();
        outer.push(format!("min_by({file}, {version}) AS {file}"));
        outer.push(format!("min({version}) AS {version}"));
        outer.push(format!("{ts} AS {}", ident(INGESTED_AT_COLUMN)));
        format!(
            "SELECT {} FROM (SELECT {} FROM {}) AS d GROUP BY {}",
            outer.join(", "),
            exprs.join(", "),
            bronze_rows(dialect, &self.bronze, self.range),
            keys.join(", ")
        )
    }

    /// The silver CTAS. On Databricks the table's properties record the
    /// versions it holds ([`VERSION_PROPERTY`], [`BASE_VERSION_PROPERTY`]),
    /// so an older sync can tell it would go backwards.
    pub fn create_sql(&self, dialect: Dialect) -> String {
        let properties = match (dialect, self.range) {
            (Dialect::Databricks, Some(r)) => format!(
                " TBLPROPERTIES ({} = {}, {} = {})",
                dialect.literal(VERSION_PROPERTY),
                dialect.literal(&r.version.to_string()),
                dialect.literal(BASE_VERSION_PROPERTY),
                dialect.literal(&r.base.to_string())
            ),
            _ => String::new(),
        };
        format!(
            "CREATE OR REPLACE TABLE {}{properties} AS {}",
            dialect.table(&self.silver),
            self.select_sql(dialect)
        )
    }

    /// What `transform_to_silver` reports, from the finished table: `counts`
    /// is the row of [`SilverPlan::null_counts_sql`], `typed` the silver
    /// table's columns as the engine describes them, and `bronze_rows` the
    /// row count measured with the statistics.
    pub fn result(&self, counts: &[u64], typed: &[ColumnInfo], bronze_rows: u64) -> SilverResult {
        let type_of = |name: &str| {
            typed
                .iter()
                .find(|t| t.name == name)
                .map_or_else(String::new, |t| t.data_type.clone())
        };
        let row_count = counts.first().copied().unwrap_or(0);
        let mut columns: Vec<SilverColumn> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, c)| SilverColumn {
                name: c.target.to_string(),
                data_type: type_of(c.target.as_str()),
                source_column: Some(c.source.clone()),
                null_count: counts.get(i + 1).copied().unwrap_or(0),
            })
            .collect();
        columns.extend(LINEAGE_COLUMNS.iter().map(|l| SilverColumn {
            name: (*l).to_owned(),
            data_type: type_of(l),
            source_column: None,
            null_count: 0,
        }));
        SilverResult {
            silver_table: self.silver.to_string(),
            row_count,
            columns,
            duplicates_removed: bronze_rows.saturating_sub(row_count),
            version: self.range.map_or(1, |r| r.version),
            base_version: self.range.map_or(1, |r| r.base),
        }
    }

    /// Per-column null counts of the finished silver table, in plan order.
    pub fn null_counts_sql(&self, dialect: Dialect) -> String {
        let mut aggs = vec!["COUNT(*)".to_owned()];
        aggs.extend(
            self.columns
                .iter()
                .map(|c| format!("COUNT(*) - COUNT({})", dialect.ident(c.target.as_str()))),
        );
        format!(
            "SELECT {} FROM {}",
            aggs.join(", "),
            dialect.table(&self.silver)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> TableName {
        TableName::parse(s).unwrap()
    }

    fn stats(non_null: u64) -> StringStats {
        StringStats {
            non_null,
            ..Default::default()
        }
    }

    #[test]
    fn a_column_without_a_name_is_found() {
        let col = |name: &str| ColumnInfo {
            name: name.to_owned(),
            data_type: "VARCHAR".to_owned(),
        };
        assert_eq!(unnamed_column(&[col("a"), col(" "), col("b")]), None);
        assert_eq!(unnamed_column(&[col("a"), col(""), col("")]), Some(2));
    }

    #[test]
    fn decisions_follow_the_rules() {
        let all_int = StringStats {
            integers: 3,
            doubles: 3,
            max_int_digits: 3,
            ..stats(3)
        };
        assert_eq!(decide(&all_int), SilverType::BigInt);
        let zeros = StringStats {
            leading_zeros: 1,
            ..all_int.clone()
        };
        assert_eq!(decide(&zeros), SilverType::String);
        let dec = StringStats {
            integers: 1,
            decimals: 2,
            doubles: 3,
            max_int_digits: 4,
            max_scale: 2,
            ..stats(3)
        };
        assert_eq!(
            decide(&dec),
            SilverType::Decimal {
                precision: 6,
                scale: 2
            }
        );
        let sci = StringStats {
            doubles: 3,
            ..stats(3)
        };
        assert_eq!(decide(&sci), SilverType::Double);
        assert_eq!(
            decide(&StringStats {
                booleans: 3,
                ..stats(3)
            }),
            SilverType::Boolean
        );
        assert_eq!(
            decide(&StringStats {
                dates: 3,
                ..stats(3)
            }),
            SilverType::Date
        );
        assert_eq!(
            decide(&StringStats {
                timestamps: 3,
                ..stats(3)
            }),
            SilverType::Timestamp
        );
        assert_eq!(
            decide(&StringStats {
                dates: 2,
                ..stats(3)
            }),
            SilverType::String
        );
        assert_eq!(decide(&stats(0)), SilverType::String);
    }

    fn sample_plan() -> SilverPlan {
        let int = StringStats {
            integers: 2,
            doubles: 2,
            ..stats(2)
        };
        SilverPlan::new(
            name("lh.acme_bronze.sales_e40c292c"),
            name("lh.acme_silver.sales_e40c292c"),
            Some(VersionRange::new(Some(2), Some(3), 3)),
            "2026-01-02 03:04:05.000000".into(),
            &[
                SourceColumn {
                    name: "Order ID".into(),
                    data_type: "VARCHAR".into(),
                    stats: Some(int),
                },
                SourceColumn {
                    name: "it's \"odd\"`".into(),
                    data_type: "VARCHAR".into(),
                    stats: Some(stats(2)),
                },
                SourceColumn {
                    name: "amount".into(),
                    data_type: "DOUBLE".into(),
                    stats: None,
                },
                SourceColumn {
                    name: DATASET_ID_COLUMN.into(),
                    data_type: "VARCHAR".into(),
                    stats: None,
                },
                SourceColumn {
                    name: SOURCE_FILE_COLUMN.into(),
                    data_type: "VARCHAR".into(),
                    stats: None,
                },
                SourceColumn {
                    name: VERSION_COLUMN.into(),
                    data_type: "INTEGER".into(),
                    stats: None,
                },
                SourceColumn {
                    name: INGESTED_AT_COLUMN.into(),
                    data_type: "TIMESTAMP".into(),
                    stats: None,
                },
            ],
        )
    }

    #[test]
    fn renders_duckdb() {
        let sql = sample_plan().create_sql(Dialect::DuckDb);
        assert_eq!(
            sql,
            "CREATE OR REPLACE TABLE \"lh\".\"acme_silver\".\"sales_e40c292c\" AS SELECT \"order_id\", \"it_s_oddx\", \"amount\", \
             \"_dataset_id\", min_by(\"_source_file\", \"_version\") AS \"_source_file\", min(\"_version\") AS \"_version\", \
             CAST('2026-01-02 03:04:05.000000' AS TIMESTAMP) AS \"_ingested_at\" \
             FROM (SELECT CAST(CASE trim(\"Order ID\") WHEN '' THEN NULL WHEN 'NULL' THEN NULL WHEN 'null' THEN NULL WHEN 'N/A' THEN NULL WHEN 'NA' THEN NULL WHEN 'n/a' THEN NULL WHEN '-' THEN NULL WHEN 'NaN' THEN NULL WHEN 'nan' THEN NULL WHEN '#N/A' THEN NULL WHEN '<NA>' THEN NULL WHEN '\\N' THEN NULL \
             ELSE trim(\"Order ID\") END AS BIGINT) AS \"order_id\", CASE trim(\"it's \"\"odd\"\"`\") WHEN '' THEN NULL WHEN 'NULL' THEN NULL WHEN 'null' THEN NULL WHEN 'N/A' THEN NULL WHEN 'NA' THEN NULL WHEN 'n/a' THEN NULL WHEN '-' THEN NULL WHEN 'NaN' THEN NULL WHEN 'nan' THEN NULL WHEN '#N/A' THEN NULL WHEN '<NA>' THEN NULL WHEN '\\N' THEN NULL \
             ELSE trim(\"it's \"\"odd\"\"`\") END AS \"it_s_oddx\", \"amount\" AS \
             \"amount\", \"_dataset_id\", \"_source_file\", \"_version\" FROM \"lh\".\"acme_bronze\".\"sales_e40c292c\" \
             WHERE \"_version\" BETWEEN 2 AND 3) AS d GROUP BY \"order_id\", \"it_s_oddx\", \"amount\", \"_dataset_id\""
        );
    }

    #[test]
    fn a_bronze_without_versions_reads_whole_as_version_1() {
        let mut plan = sample_plan();
        plan.range = None;
        let sql = plan.select_sql(Dialect::DuckDb);
        assert!(sql.contains("CAST(1 AS INT) AS \"_version\""), "{sql}");
        assert!(!sql.contains("WHERE"), "{sql}");
        let result = plan.result(&[2, 0, 0, 0], &[], 3);
        assert_eq!((result.version, result.base_version), (1, 1));
        assert_eq!(result.duplicates_removed, 1);
        let names: Vec<&str> = result.columns.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "order_id",
                "it_s_oddx",
                "amount",
                "_dataset_id",
                "_source_file",
                "_version",
                "_ingested_at"
            ]
        );
    }

    #[test]
    fn version_ranges_default_and_clamp() {
        assert_eq!(
            VersionRange::new(None, None, 4),
            VersionRange {
                base: 1,
                version: 4
            }
        );
        assert_eq!(
            VersionRange::new(Some(9), Some(3), 4),
            VersionRange {
                base: 3,
                version: 3
            }
        );
        assert_eq!(
            VersionRange::new(Some(0), Some(0), 0),
            VersionRange {
                base: 1,
                version: 1
            }
        );
        assert!(VersionRange::new(Some(2), Some(3), 3).contains(2));
        assert!(!VersionRange::new(Some(2), Some(3), 3).contains(1));
    }

    #[test]
    fn renders_databricks() {
        let sql = sample_plan().create_sql(Dialect::Databricks);
        assert!(
            sql.starts_with(
                "CREATE OR REPLACE TABLE `lh`.`acme_silver`.`sales_e40c292c` TBLPROPERTIES \
                 ('servicetsunami.version' = '3', 'servicetsunami.base_version' = '2') AS SELECT `order_id`"
            ),
            "{sql}"
        );
        assert!(sql.contains("CAST(CASE trim(`Order ID`) WHEN '' THEN NULL WHEN 'NULL' THEN NULL WHEN 'null' THEN NULL WHEN 'N/A' THEN NULL WHEN 'NA' THEN NULL WHEN 'n/a' THEN NULL WHEN '-' THEN NULL WHEN 'NaN' THEN NULL WHEN 'nan' THEN NULL WHEN '#N/A' THEN NULL WHEN '<NA>' THEN NULL WHEN '\\\\N' THEN NULL ELSE trim(`Order ID`) END AS BIGINT)"), "{sql}");
        assert!(sql.contains("trim(`it's \"odd\"```)"), "{sql}");
        assert!(sql.contains("`amount`, `_dataset_id`, min_by(`_source_file`, `_version`) AS `_source_file`, min(`_version`) AS `_version`, CAST('2026-01-02 03:04:05.000000' AS TIMESTAMP) AS `_ingested_at`"), "{sql}");
        assert!(
            sql.ends_with("FROM `lh`.`acme_bronze`.`sales_e40c292c` WHERE `_version` BETWEEN 2 AND 3) AS d GROUP BY `order_id`, `it_s_oddx`, `amount`, `_dataset_id`"),
            "{sql}"
        );
        assert!(
            !sql.contains('"') || sql.contains("`it's \"odd\"```"),
            "{sql}"
        );
    }

    #[test]
    fn literals_escape_per_dialect() {
        assert_eq!(Dialect::DuckDb.literal("a'b\\c"), "'a''b\\c'");
        assert_eq!(Dialect::Databricks.literal("a'b\\c"), "'a\\'b\\\\c'");
    }

    #[test]
    fn statistics_by_column_are_one_column_of_values_whatever_the_width() {
        let range = Some(VersionRange::new(Some(1), Some(2), 2));
        let bronze = name("lh.a_bronze.t");
        let one = stats_by_column_sql(Dialect::DuckDb, &bronze, range, &["x".to_owned()]);
        assert!(
            one.contains("UNPIVOT (value FOR name IN (\"x\"))")
                && one.contains("regexp_matches(v, '^[+-]?[0-9]+$')")
                && one.ends_with("GROUP BY name"),
            "{one}"
        );
        // A thousand columns name each once, in the list of what to read and
        // in UNPIVOT's: the statistics themselves are written once.
        let many: Vec<String> = (0..1000).map(|i| format!("c{i}")).collect();
        let wide = stats_by_column_sql(Dialect::DuckDb, &bronze, range, &many);
        assert_eq!(
            wide.matches("regexp_matches(").count(),
            one.matches("regexp_matches(").count()
        );
        assert_eq!(wide.matches("\"c999\"").count(), 2);
        // Databricks: the same statement in its dialect.
        let dbx = stats_by_column_sql(Dialect::Databricks, &bronze, range, &["x".to_owned()]);
        assert!(
            dbx.contains("UNPIVOT (value FOR name IN (`x`))")
                && dbx.contains("(v RLIKE '^[+-]?[0-9]+$')")
                && dbx.contains("try_cast(v AS BIGINT)")
                && dbx.contains("FROM `lh`.`a_bronze`.`t` WHERE `_version` BETWEEN 1 AND 2)"),
            "{dbx}"
        );
        assert_eq!(
            count_sql(Dialect::DuckDb, &bronze, range),
            "SELECT COUNT(*) FROM \"lh\".\"a_bronze\".\"t\" WHERE \"_version\" BETWEEN 1 AND 2"
        );
        // A text column without a row held no value; others have no stats.
        let columns =
            [("x", "VARCHAR"), ("y", "VARCHAR"), ("n", "BIGINT")].map(|(n, t)| ColumnInfo {
                name: n.into(),
                data_type: t.into(),
            });
        let strings = string_columns(Dialect::DuckDb, &columns);
        let measured = StringStats::from_values(&[3, 3, 0, 0, 3, 0, 0, 0, 1, 0]);
        let source = with_stats(
            &columns,
            &strings,
            [("x".to_owned(), measured.clone())].into(),
        );
        assert_eq!(source[0].stats, Some(measured));
        assert_eq!(source[1].stats, Some(StringStats::default()));
        assert_eq!(source[2].stats, None);
        assert_eq!(
            decide(source[1].stats.as_ref().unwrap()),
            SilverType::String
        );
    }
}

//! Parse, don't validate: every name that reaches SQL or a file path has been
//! through one of these types. Identifiers are always quoted as well, so the
//! checks here are about clear errors and stable names, and quoting is the
//! second line of defence against injection.

use contract::names::{normalize_column_names, normalize_identifier, MAX_IDENTIFIER_CHARS};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {value:?} is invalid: {reason}")]
pub struct ParseError {
    pub what: &'static str,
    pub value: String,
    pub reason: &'static str,
}

fn invalid(what: &'static str, value: &str, reason: &'static str) -> ParseError {
    let mut shown: String = value.chars().take(80).collect();
    if shown.len() < value.len() {
        shown.push('…');
    }
    ParseError {
        what,
        value: shown,
        reason,
    }
}

/// A tenant: lowercase letters, digits and `-` (UUIDs fit). `_` is not
/// allowed so that mapping `-` to `_` in schema names cannot make two
/// tenants share a schema.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TenantId(String);

impl TenantId {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        const WHAT: &str = "tenant_id";
        let value = raw.trim().to_ascii_lowercase();
        if value.is_empty() || value.len() > 48 {
            return Err(invalid(WHAT, raw, "expected 1 to 48 characters"));
        }
        if !value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(invalid(
                WHAT,
                raw,
                "only letters, digits and '-' are allowed",
            ));
        }
        if value.starts_with('-') || value.ends_with('-') {
            return Err(invalid(WHAT, raw, "must not start or end with '-'"));
        }
        Ok(Self(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn schema(&self, layer: &str) -> Ident {
        Ident(format!("{}_{layer}", self.0.replace('-', "_")))
    }

    /// `{tenant}_bronze`
    pub fn bronze_schema(&self) -> Ident {
        self.schema("bronze")
    }

    /// `{tenant}_silver`
    pub fn silver_schema(&self) -> Ident {
        self.schema("silver")
    }

    pub fn owns_schema(&self, schema: &str) -> bool {
        let schema = schema.to_ascii_lowercase();
        schema == self.bronze_schema().as_str() || schema == self.silver_schema().as_str()
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The caller's dataset id (a UUID in ServiceTsunami): letters, digits, `-`, `_`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DatasetId(String);

impl DatasetId {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        const WHAT: &str = "dataset_id";
        let value = raw.trim();
        if value.is_empty() || value.len() > 64 {
            return Err(invalid(WHAT, raw, "expected 1 to 64 characters"));
        }
        if !value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(invalid(
                WHAT,
                raw,
                "only letters, digits, '-' and '_' are allowed",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Eight hex digits (FNV-1a of the id) that end every table name of the
    /// dataset, so status can find the tables from the id alone and two
    /// datasets with the same name never share a table.
    pub fn short_id(&self) -> String {
        contract::names::fnv1a_hex(&self.0)
    }
}

impl fmt::Display for DatasetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A dataset version: a positive integer; the same (dataset, version) always
/// names the same staged file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatasetVersion(u32);

impl DatasetVersion {
    pub fn parse(raw: Option<u32>) -> Result<Self, ParseError> {
        match raw {
            None => Ok(Self(1)),
            Some(0) => Err(invalid("version", "0", "must be at least 1")),
            Some(v) => Ok(Self(v)),
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

/// A SQL identifier in the form the normaliser ([`contract::names`]) makes:
/// lowercase letters (of any script), digits and `_`, at most
/// [`MAX_IDENTIFIER_CHARS`] characters. Still always quoted when rendered.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ident(String);

fn is_ident_char(c: char) -> bool {
    c == '_' || (c.is_alphanumeric() && !c.is_uppercase())
}

impl Ident {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        if raw.is_empty() || raw.chars().count() > MAX_IDENTIFIER_CHARS {
            return Err(invalid("identifier", raw, "expected 1 to 255 characters"));
        }
        if !raw.chars().all(is_ident_char) {
            return Err(invalid(
                "identifier",
                raw,
                "only lowercase letters, digits and '_' are allowed",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The normalised form of any name (see [`contract::names`]).
    pub fn normalize(raw: &str) -> Self {
        Self(normalize_identifier(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Gives each raw column name its unique normalised name, in order, exactly
/// as the upload page shows it (the lineage columns are reserved).
pub fn unique_column_names<'a>(raw: impl IntoIterator<Item = &'a str>) -> Vec<Ident> {
    let raw: Vec<&str> = raw.into_iter().collect();
    normalize_column_names(&raw)
        .into_iter()
        .map(Ident)
        .collect()
}

/// A dataset's table name: its snake_case name plus the dataset's short id.
pub fn table_ident(dataset_name: &str, dataset: &DatasetId) -> Result<Ident, ParseError> {
    if dataset_name.trim().is_empty() {
        return Err(invalid("dataset_name", dataset_name, "must not be empty"));
    }
    if dataset_name.len() > 200 {
        return Err(invalid(
            "dataset_name",
            dataset_name,
            "at most 200 characters",
        ));
    }
    let base: String = normalize_identifier(dataset_name)
        .chars()
        .take(60)
        .collect();
    let base = base.trim_end_matches('_');
    Ident::parse(&format!("{base}_{}", dataset.short_id()))
}

/// A three-level Unity Catalog name, `catalog.schema.table`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TableName {
    pub catalog: Ident,
    pub schema: Ident,
    pub table: Ident,
}

impl TableName {
    pub fn new(catalog: Ident, schema: Ident, table: Ident) -> Self {
        Self {
            catalog,
            schema,
            table,
        }
    }

    /// Parses `catalog.schema.table` as returned by our tools.
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        let parts: Vec<&str> = raw.trim().split('.').collect();
        let [catalog, schema, table] = parts.as_slice() else {
            return Err(invalid("table name", raw, "expected catalog.schema.table"));
        };
        let part = |p: &str| {
            Ident::parse(&p.trim_matches(|c| c == '`' || c == '"').to_lowercase()).map_err(|_| {
                invalid(
                    "table name",
                    raw,
                    "each part may use only letters, digits and '_'",
                )
            })
        };
        Ok(Self {
            catalog: part(catalog)?,
            schema: part(schema)?,
            table: part(table)?,
        })
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.catalog, self.schema, self.table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_accept_uuids_and_reject_sql() {
        let t = TenantId::parse("3F2504E0-4F89-11D3-9A0C-0305E82C3301").unwrap();
        assert_eq!(
            t.bronze_schema().as_str(),
            "3f2504e0_4f89_11d3_9a0c_0305e82c3301_bronze"
        );
        for bad in [
            "",
            "a;drop",
            "x\"y",
            "a b",
            "t_1",
            "-a",
            "a'--",
            &"a".repeat(49),
        ] {
            assert!(TenantId::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn tenant_owns_only_its_schemas() {
        let t = TenantId::parse("acme").unwrap();
        assert!(t.owns_schema("acme_bronze") && t.owns_schema("ACME_SILVER"));
        assert!(!t.owns_schema("acme2_bronze") && !t.owns_schema("main"));
    }

    #[test]
    fn dataset_ids_are_restricted() {
        assert!(DatasetId::parse("0b9f2c8e-1a2b-4c3d-9e8f-001122334455").is_ok());
        assert!(DatasetId::parse("x'); DROP TABLE t; --").is_err());
        assert!(DatasetId::parse("../etc").is_err());
    }

    #[test]
    fn short_ids_are_stable_and_distinct() {
        let a = DatasetId::parse("a").unwrap();
        assert_eq!(a.short_id(), "e40c292c");
        assert_ne!(a.short_id(), DatasetId::parse("b").unwrap().short_id());
    }

    #[test]
    fn column_names_are_the_upload_pages_names() {
        let names = unique_column_names(["Name", "name", "NAME ", "_ingested_at", "naïve café"]);
        let names: Vec<&str> = names.iter().map(Ident::as_str).collect();
        assert_eq!(
            names,
            ["name", "name_2", "name_3", "_ingested_at_2", "naïve_café"]
        );
        assert!(Ident::parse("naïve_café").is_ok());
        assert!(Ident::parse("Naïve").is_err());
    }

    #[test]
    fn table_names_parse_three_levels() {
        let t = TableName::parse("servicetsunami.acme_bronze.sales_e40c292c").unwrap();
        assert_eq!(t.to_string(), "servicetsunami.acme_bronze.sales_e40c292c");
        assert!(TableName::parse("a.b").is_err());
        assert!(TableName::parse("a.b.c;drop").is_err());
        assert!(TableName::parse("a.b.c.d").is_err());
    }

    #[test]
    fn table_ident_combines_name_and_short_id() {
        let id = DatasetId::parse("a").unwrap();
        assert_eq!(
            table_ident("Q3 Sales Report", &id).unwrap().as_str(),
            "q3_sales_report_e40c292c"
        );
        assert_eq!(
            table_ident("Robert'); DROP TABLE students;--", &id)
                .unwrap()
                .as_str(),
            "robert_drop_table_studentsxxx_e40c292c"
        );
        assert_eq!(
            table_ident("2024 Ventes été", &id).unwrap().as_str(),
            "_2024_ventes_été_e40c292c"
        );
        assert!(table_ident("   ", &id).is_err());
    }
}

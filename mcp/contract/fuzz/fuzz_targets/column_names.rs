//! Any header row (arbitrary bytes, lossily UTF-8, split on newlines)
//! normalises to as many names, all distinct, none a lineage column, each
//! non-empty, within the length limit and made only of letters, digits and
//! `_`: names DuckDB, Spark and Delta take quoted without column mapping.
#![no_main]

use contract::names::{normalize_column_names, LINEAGE_COLUMNS, MAX_IDENTIFIER_CHARS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let raw: Vec<&str> = text.split('\n').take(64).collect();
    let out = normalize_column_names(&raw);
    assert_eq!(out.len(), raw.len());
    let mut seen = std::collections::HashSet::new();
    for name in &out {
        assert!(seen.insert(name), "duplicate {name:?} from {raw:?}");
        assert!(!name.is_empty(), "empty name from {raw:?}");
        assert!(
            name.chars().count() <= MAX_IDENTIFIER_CHARS,
            "{} characters from {raw:?}",
            name.chars().count()
        );
        assert!(
            name.chars().all(|c| c == '_' || c.is_alphanumeric()),
            "{name:?} from {raw:?}"
        );
        assert!(!LINEAGE_COLUMNS.contains(&name.as_str()));
    }
});

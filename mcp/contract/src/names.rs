//! THE column-name normaliser. The upload page shows these names, and the
//! silver table uses exactly these names, so what a person sees is what the
//! lakehouse gets.
//!
//! The rule is dlt's `snake_case` naming convention (the one dlt users know),
//! applied step by step:
//!
//! 1. surrounding whitespace is trimmed;
//! 2. dlt's reduced alphabet: `+` → `x`, `-` → `_`, `*` → `x`, `@` → `a`, `|` → `l`;
//! 3. every run of characters that are not letters, digits or `_` becomes one `_`;
//! 4. camelCase and PascalCase are split (`customerId` → `customer_Id`,
//!    `HTTPStatus` → `HTTP_Status`), as dlt's two regular expressions do;
//! 5. everything is lowercased;
//! 6. a leading digit gets a `_` prefix (`2024 revenue` → `_2024_revenue`);
//! 7. each trailing `_` becomes `x`, so `price_` stays distinct from `price`;
//! 8. runs of `_` collapse to one.
//!
//! **One deliberate difference: letters are never dropped.** dlt's regex keeps
//! only ASCII letters, so `naïve café` becomes `na_ve_cafx` and `Größe` and
//! `Grße` collide. Here a letter or digit of any script counts as a letter or
//! digit (and is lowercased), so `naïve café` → `naïve_café`. We keep letters
//! rather than transliterate them because transliteration is lossy
//! (`Größe`/`Grosse` would collide), needs large tables for non-Latin scripts
//! (which the browser bundle would carry), and gains nothing: the names
//! contain only letters, digits and `_`, which DuckDB, Spark and Delta accept
//! in quoted identifiers without column mapping. For ASCII input the result is
//! exactly dlt's.
//!
//! A name longer than [`MAX_IDENTIFIER_CHARS`] is shortened the way dlt
//! shortens: cut, plus a tag derived from the whole name, so it stays unique.

use std::collections::HashSet;

/// Longest normalised name, in characters (Unity Catalog's limit for column
/// and table names).
pub const MAX_IDENTIFIER_CHARS: usize = 255;

/// Columns every bronze and silver table adds after the data columns.
pub const LINEAGE_COLUMNS: [&str; 4] = ["_dataset_id", "_source_file", "_version", "_ingested_at"];

/// dlt's `_REDUCE_ALPHABET`.
fn reduce(c: char) -> char {
    match c {
        '+' | '*' => 'x',
        '-' => '_',
        '@' => 'a',
        '|' => 'l',
        other => other,
    }
}

fn is_word(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// Normalises one identifier (see the module documentation). Never empty.
pub fn normalize_identifier(raw: &str) -> String {
    // Steps 1–3.
    let mut words: Vec<char> = Vec::with_capacity(raw.len());
    let mut in_run = false;
    for c in raw.trim().chars().map(reduce) {
        if is_word(c) {
            words.push(c);
            in_run = false;
        } else if !in_run {
            words.push('_');
            in_run = true;
        }
    }

    // Step 4: dlt's "([^_])([A-Z][a-z]+)" and "([a-z0-9])([A-Z])".
    let mut split = String::with_capacity(words.len() + 8);
    for (i, &c) in words.iter().enumerate() {
        if i > 0 && c.is_uppercase() {
            let prev = words[i - 1];
            let next_is_lower = words.get(i + 1).is_some_and(|n| n.is_lowercase());
            let break_1 = prev != '_' && next_is_lower;
            let break_2 = prev.is_lowercase() || prev.is_numeric();
            if break_1 || break_2 {
                split.push('_');
            }
        }
        split.push(c);
    }

    // Steps 5–6. Lowercasing can yield a mark that is not a letter (`İ` →
    // `i` + U+0307): it becomes `_` like any other non-word character.
    let mut out: String = split
        .to_lowercase()
        .chars()
        .map(|c| if is_word(c) { c } else { '_' })
        .collect();
    if out.starts_with(|c: char| c.is_numeric()) {
        out.insert(0, '_');
    }
    // Step 7 (a name with nothing in it is one `x`, as `_` alone becomes).
    let kept = out.trim_end_matches('_').len();
    let trailing = out.len() - kept;
    out.truncate(kept);
    out.extend(std::iter::repeat_n('x', trailing));
    if out.is_empty() {
        out.push('x');
    }
    // Step 8.
    let mut collapsed = String::with_capacity(out.len());
    for c in out.chars() {
        if !(c == '_' && collapsed.ends_with('_')) {
            collapsed.push(c);
        }
    }
    shorten(collapsed, raw)
}

/// Cuts a name over [`MAX_IDENTIFIER_CHARS`] and appends a tag of the raw
/// name (FNV-1a, 8 hex digits), as dlt's `shorten_identifier` does.
fn shorten(name: String, raw: &str) -> String {
    if name.chars().count() <= MAX_IDENTIFIER_CHARS {
        return name;
    }
    let tag = format!("_{}", fnv1a_hex(raw));
    let keep = MAX_IDENTIFIER_CHARS - tag.len();
    let mut short: String = name.chars().take(keep).collect();
    short.push_str(&tag);
    short
}

/// FNV-1a (32 bits) as 8 hex digits: a stable short tag of a string.
pub fn fnv1a_hex(s: &str) -> String {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in s.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    format!("{hash:08x}")
}

/// Normalises a whole header row, as silver will name its columns. Empty
/// names become `column_{n}` (1-based position) first. The lineage columns
/// are reserved. A name already taken gets `_2`, `_3`, … in order of
/// appearance, never reusing a name that another column has on its own.
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
    // Reserve every base name first so a suffixed name never steals a name
    // that a later column has on its own.
    let mut taken: HashSet<String> = bases.iter().cloned().collect();
    taken.extend(LINEAGE_COLUMNS.iter().map(|s| (*s).to_owned()));
    let mut seen: HashSet<&str> = LINEAGE_COLUMNS.iter().copied().collect();
    let mut out = Vec::with_capacity(bases.len());
    for base in &bases {
        if seen.insert(base.as_str()) {
            out.push(base.clone());
            continue;
        }
        let mut n = 2;
        loop {
            // The suffix fits within the length limit: a long base is cut
            // (and a `_` the cut leaves at its end dropped) to make room.
            let suffix = format!("_{n}");
            let room = MAX_IDENTIFIER_CHARS - suffix.len();
            let candidate = if base.chars().count() > room {
                let stem: String = base.chars().take(room).collect();
                format!("{}{suffix}", stem.trim_end_matches('_'))
            } else {
                format!("{base}{suffix}")
            };
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

    /// What every normalised header satisfies (the fuzz target checks the
    /// same on arbitrary input: mcp/contract/fuzz).
    fn assert_sql_safe(raw: &[&str]) {
        let out = normalize_column_names(raw);
        assert_eq!(out.len(), raw.len());
        let unique: HashSet<&String> = out.iter().collect();
        assert_eq!(unique.len(), out.len(), "{out:?}");
        for name in &out {
            assert!(!name.is_empty());
            assert!(name.chars().count() <= MAX_IDENTIFIER_CHARS, "{name}");
            assert!(name.chars().all(is_word), "{name:?}");
            assert!(!LINEAGE_COLUMNS.contains(&name.as_str()));
        }
    }

    #[test]
    fn the_fuzz_properties_hold_on_known_edge_cases() {
        // A letter whose lowercase carries a combining mark.
        assert_eq!(normalize_identifier("İd"), "i_d");
        assert_sql_safe(&["İ", "i"]);
        // Nothing but space, and nothing at all.
        assert_eq!(normalize_identifier(""), "x");
        // Duplicates of a name at the length limit stay within it.
        let long = "a".repeat(300);
        assert_sql_safe(&[long.as_str(), long.as_str(), long.as_str()]);
        let exact = "b".repeat(MAX_IDENTIFIER_CHARS);
        assert_sql_safe(&[exact.as_str(), exact.as_str()]);
        let underscored = format!("{}_c", "d".repeat(MAX_IDENTIFIER_CHARS - 3));
        assert_sql_safe(&[underscored.as_str(), underscored.as_str()]);
    }

    #[test]
    fn the_issue_examples() {
        assert_eq!(normalize_identifier("2024 revenue"), "_2024_revenue");
        assert_eq!(normalize_identifier("Total (USD)"), "total_usdx");
        assert_eq!(normalize_identifier("naïve café"), "naïve_café");
    }

    #[test]
    fn ascii_follows_dlt_snake_case() {
        // Expected values are what dlt's SnakeCase().normalize_identifier gives.
        for (raw, want) in [
            ("First Name", "first_name"),
            ("e-mail address!", "e_mail_addressx"),
            ("  Total (USD)  ", "total_usdx"),
            ("a   --  b", "a_b"),
            ("a__b", "a_b"),
            ("a__", "axx"),
            ("1", "_1"),
            ("customerId", "customer_id"),
            ("HTTPStatusCode", "http_status_code"),
            ("userID2", "user_id2"),
            ("Total+Tax", "totalx_tax"),
            ("a@b|c*d", "aablcxd"),
            ("%%%", "x"),
            ("_dataset_id", "_dataset_id"),
            ("Customer ID", "customer_id"),
        ] {
            assert_eq!(normalize_identifier(raw), want, "{raw:?}");
        }
    }

    #[test]
    fn letters_of_every_script_are_kept() {
        assert_eq!(normalize_identifier("Größe"), "größe");
        assert_eq!(normalize_identifier("Grße"), "grße");
        assert_eq!(normalize_identifier("ÉcoleName"), "école_name");
        assert_eq!(normalize_identifier("名前 (かな)"), "名前_かなx");
        assert_eq!(normalize_identifier("Ціна, грн"), "ціна_грн");
        // No letter is ever lost.
        for raw in ["naïve café", "Größe", "Ціна", "名前"] {
            let letters = |s: &str| {
                s.chars()
                    .filter(|c| c.is_alphabetic())
                    .flat_map(char::to_lowercase)
                    .collect::<String>()
            };
            assert_eq!(letters(&normalize_identifier(raw)), letters(raw), "{raw:?}");
        }
    }

    #[test]
    fn names_are_only_letters_digits_and_underscores() {
        for raw in [
            "a\"b",
            "x`y",
            "; DROP TABLE t; --",
            "tab\there",
            "new\nline",
            "{}()=,;",
        ] {
            let n = normalize_identifier(raw);
            assert!(n.chars().all(is_word), "{raw:?} → {n:?}");
            assert!(!n.is_empty());
        }
    }

    #[test]
    fn long_names_are_shortened_with_a_tag() {
        let long = "x".repeat(400);
        let other = format!("{}y", "x".repeat(399));
        let a = normalize_identifier(&long);
        let b = normalize_identifier(&other);
        assert_eq!(a.chars().count(), MAX_IDENTIFIER_CHARS);
        assert_ne!(a, b);
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
    fn lineage_names_are_reserved() {
        let got = normalize_column_names(&["_ingested_at", "id", "_source_file", "_version"]);
        assert_eq!(
            got,
            vec!["_ingested_at_2", "id", "_source_file_2", "_version_2"]
        );
    }
}

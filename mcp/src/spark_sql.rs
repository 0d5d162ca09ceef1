//! Spark SQL's lexical rules, for queries bound for Databricks.
//!
//! The guard ([`crate::query_guard`]) reads SQL with DuckDB's parser, but
//! Databricks reads it with Spark's, and the two lex differently: Spark
//! treats `\'` inside a string as an escaped quote, `"…"` as a string (not an
//! identifier), nests `/* */` comments, and continues a `--` comment over a
//! backslash-newline. Checking the user's text with DuckDB and sending the
//! same text to Spark would let a query hide a part that only Spark sees.
//!
//! So a Databricks query is lexed once, here, by Spark's rules (Apache Spark's
//! `SqlBaseLexer.g4`), and rendered twice from the same tokens: once for the
//! DuckDB guard and once for Spark. Comments (and `/*+ hints */`, which only
//! tune a plan) are dropped, every string is re-quoted for its reader, and
//! tokens are separated by spaces, so neither engine can join two tokens
//! into one the other does not see. What the guard checked is what Spark
//! runs.
//!
//! Also refused, whatever the parse: characters Spark SQL has no use for
//! (`$ ? { } @ # \` outside strings), `${` anywhere (Spark substitutes
//! variables into the text before lexing it), more than one statement, and
//! functions that reach outside the tables (reflection, secrets, HTTP, file
//! and stream readers, `IDENTIFIER()` which turns a string into a name).

use crate::query_guard::Rejected;

/// Scalar and table functions a tenant's query may not call on Databricks,
/// lower case. Table functions are refused by the guard anyway; they are
/// listed so the message names the reason.
const DENIED_FUNCTIONS: &[&str] = &[
    // Java reflection.
    "reflect",
    "java_method",
    "try_reflect",
    // Secrets and credentials.
    "secret",
    "try_secret",
    "list_secrets",
    // Network calls and model endpoints.
    "http_request",
    "ai_query",
    "vector_search",
    "remote_query",
    // Files, streams and system state.
    "read_files",
    "read_kafka",
    "read_kinesis",
    "read_pubsub",
    "read_pulsar",
    "read_statestore",
    "read_state_metadata",
    "cloud_files_state",
    "event_log",
    "input_file_name",
    "input_file_block_start",
    "input_file_block_length",
    // A string that becomes a table or column name escapes the name check.
    "identifier",
];

/// Spark's multi-character operators, longest first.
const OPERATORS: &[&str] = &[
    "<=>", ">>>", "<=", ">=", "<>", "!=", "==", "||", "|>", "->", "=>", "::", "<<", ">>",
];
const SINGLE: &str = "(),.;[]+-*/%=<>!~&|^:";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// A keyword, unquoted identifier or number, as written.
    Word(String),
    /// A backquoted identifier, unescaped.
    Quoted(String),
    /// A string literal's value (adjacent literals already joined).
    Str(String),
    /// `X'…'`: hex digits only.
    Hex(String),
    Punct(String),
}

/// One query, lexed by Spark's rules and rendered for each reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Canonical {
    /// For Spark (Databricks): backquoted names, backslash-escaped strings.
    pub spark: String,
    /// For DuckDB's parser (the guard): double-quoted names, `''` strings.
    pub duckdb: String,
}

fn lexical(message: impl Into<String>) -> Rejected {
    Rejected::Lexical(message.into())
}

/// Lexes `sql` by Spark's rules. Trailing semicolons are dropped; anything
/// after an inner one is a second statement.
pub fn canonicalize(sql: &str) -> Result<Canonical, Rejected> {
    if sql.contains("${") {
        return Err(lexical(
            "`${` is not allowed: Spark would substitute a variable there",
        ));
    }
    let mut tokens = lex(sql)?;
    while tokens.last() == Some(&Token::Punct(";".into())) {
        tokens.pop();
    }
    if tokens.contains(&Token::Punct(";".into())) {
        return Err(Rejected::MultipleStatements);
    }
    if tokens.is_empty() {
        return Err(Rejected::Empty);
    }
    for pair in tokens.windows(2) {
        if let [Token::Word(name) | Token::Quoted(name), Token::Punct(open)] = pair {
            let lower = name.to_lowercase();
            if open == "(" && DENIED_FUNCTIONS.contains(&lower.as_str()) {
                return Err(Rejected::Function(lower));
            }
        }
    }
    let spark = render(&tokens, Reader::Spark);
    if spark.contains("${") {
        return Err(lexical(
            "`${` is not allowed: Spark would substitute a variable there",
        ));
    }
    Ok(Canonical {
        spark,
        duckdb: render(&tokens, Reader::DuckDb),
    })
}

#[derive(Clone, Copy)]
enum Reader {
    Spark,
    DuckDb,
}

fn render(tokens: &[Token], reader: Reader) -> String {
    let mut out = String::new();
    for token in tokens {
        if !out.is_empty() {
            out.push(' ');
        }
        match (token, reader) {
            (Token::Word(w) | Token::Punct(w), _) => out.push_str(w),
            (Token::Hex(h), _) => {
                out.push_str("X'");
                out.push_str(h);
                out.push('\'');
            }
            (Token::Quoted(name), Reader::Spark) => {
                out.push('`');
                out.push_str(&name.replace('`', "``"));
                out.push('`');
            }
            (Token::Quoted(name), Reader::DuckDb) => {
                out.push('"');
                out.push_str(&name.replace('"', "\"\""));
                out.push('"');
            }
            (Token::Str(value), Reader::Spark) => {
                out.push('\'');
                out.push_str(&value.replace('\\', "\\\\").replace('\'', "\\'"));
                out.push('\'');
            }
            (Token::Str(value), Reader::DuckDb) => {
                out.push('\'');
                out.push_str(&value.replace('\'', "''"));
                out.push('\'');
            }
        }
    }
    out
}

fn lex(sql: &str) -> Result<Vec<Token>, Rejected> {
    let chars: Vec<char> = sql.chars().collect();
    let mut tokens: Vec<Token> = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c.is_whitespace() {
            i += 1;
        } else if c == '-' && next == Some('-') {
            // SIMPLE_COMMENT: to the end of the line; a backslash-newline
            // continues it.
            i += 2;
            while i < chars.len() && chars[i] != '\n' && chars[i] != '\r' {
                if chars[i] == '\\' && chars.get(i + 1) == Some(&'\n') {
                    i += 1;
                }
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            // BRACKETED_COMMENT, nested; hints (`/*+`) go the same way.
            let start = i;
            let mut depth = 0usize;
            loop {
                if i >= chars.len() {
                    return Err(lexical(format!(
                        "the comment opened at character {} is never closed",
                        start + 1
                    )));
                }
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if c == '\'' || c == '"' {
            let (value, end) = string(&chars, i)?;
            push_str(&mut tokens, value);
            i = end;
        } else if c == '`' {
            let start = i;
            let mut name = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => {
                        return Err(lexical(format!(
                            "the quoted name opened at character {} is never closed",
                            start + 1
                        )))
                    }
                    Some('`') if chars.get(i + 1) == Some(&'`') => {
                        name.push('`');
                        i += 2;
                    }
                    Some('`') => {
                        i += 1;
                        break;
                    }
                    Some(&other) => {
                        name.push(other);
                        i += 1;
                    }
                }
            }
            tokens.push(Token::Quoted(name));
        } else if c.is_alphanumeric()
            || c == '_'
            || (c == '.' && next.is_some_and(|n| n.is_ascii_digit()))
        {
            let start = i;
            i = word_end(&chars, i);
            let word: String = chars[start..i].iter().collect();
            match (word.as_str(), chars.get(i)) {
                // Raw strings: no escapes at all.
                ("r" | "R", Some(&q @ ('\'' | '"'))) => {
                    let close = chars[i + 1..].iter().position(|&x| x == q).ok_or_else(|| {
                        lexical(format!(
                            "the string opened at character {} is never closed",
                            i + 1
                        ))
                    })?;
                    let value: String = chars[i + 1..i + 1 + close].iter().collect();
                    push_str(&mut tokens, value);
                    i += close + 2;
                }
                ("x" | "X", Some('\'')) => {
                    let (value, end) = string(&chars, i)?;
                    if !value.chars().all(|h| h.is_ascii_hexdigit()) {
                        return Err(lexical("a binary literal X'…' holds only hex digits"));
                    }
                    tokens.push(Token::Hex(value));
                    i = end;
                }
                _ => tokens.push(Token::Word(word)),
            }
        } else if let Some(op) = OPERATORS
            .iter()
            .find(|op| op.chars().zip(&chars[i..]).filter(|(a, b)| a == *b).count() == op.len())
        {
            tokens.push(Token::Punct((*op).to_owned()));
            i += op.len();
        } else if SINGLE.contains(c) {
            tokens.push(Token::Punct(c.to_string()));
            i += 1;
        } else {
            return Err(lexical(format!(
                "the character {c:?} (at {}) is not allowed in a query",
                i + 1
            )));
        }
    }
    Ok(tokens)
}

/// Spark joins adjacent string literals ('a' 'b' is 'ab'); so do we, so
/// both readers see one literal.
fn push_str(tokens: &mut Vec<Token>, value: String) {
    if let Some(Token::Str(prev)) = tokens.last_mut() {
        prev.push_str(&value);
    } else {
        tokens.push(Token::Str(value));
    }
}

/// The end of a word or number starting at `i`: letters, digits and `_`,
/// plus a number's fraction and signed exponent (`1.5e-3`, `.5`, `2BD`).
fn word_end(chars: &[char], mut i: usize) -> usize {
    let numeric = chars[i].is_ascii_digit() || chars[i] == '.';
    let word = |c: char| c.is_alphanumeric() || c == '_';
    if !numeric {
        while i < chars.len() && word(chars[i]) {
            i += 1;
        }
        return i;
    }
    while i < chars.len() && chars[i].is_ascii_digit() {
        i += 1;
    }
    if chars.get(i) == Some(&'.')
        && chars
            .get(i + 1)
            .is_none_or(|c| !c.is_alphabetic() || matches!(c, 'e' | 'E'))
    {
        i += 1;
        while i < chars.len() && chars[i].is_ascii_digit() {
            i += 1;
        }
    }
    if matches!(chars.get(i), Some('e' | 'E')) {
        let sign = usize::from(matches!(chars.get(i + 1), Some('+' | '-')));
        if chars.get(i + 1 + sign).is_some_and(char::is_ascii_digit) {
            i += 1 + sign;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
        }
    }
    while i < chars.len() && word(chars[i]) {
        i += 1;
    }
    i
}

/// A `'…'` or `"…"` literal starting at `start` (after any `X` prefix):
/// its value by Spark's unescaping rules, and the index after it.
fn string(chars: &[char], start: usize) -> Result<(String, usize), Rejected> {
    let quote = chars[start];
    let mut value = String::new();
    let mut i = start + 1;
    loop {
        let Some(&c) = chars.get(i) else {
            return Err(lexical(format!(
                "the string opened at character {} is never closed",
                start + 1
            )));
        };
        if c == quote {
            break;
        }
        if c != '\\' {
            value.push(c);
            i += 1;
            continue;
        }
        let Some(&e) = chars.get(i + 1) else {
            return Err(lexical(format!(
                "the string opened at character {} is never closed",
                start + 1
            )));
        };
        i += 2;
        // Spark's `unescapeSQLString`.
        match e {
            'u' | 'U' => {
                let digits = if e == 'u' { 4 } else { 8 };
                let hex: String = chars.get(i..i + digits).unwrap_or(&[]).iter().collect();
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(decoded) if hex.len() == digits => {
                        value.push(decoded);
                        i += digits;
                    }
                    _ => value.push(e),
                }
            }
            '0'..='3'
                if chars
                    .get(i..i + 2)
                    .is_some_and(|d| d.iter().all(|c| ('0'..='7').contains(c))) =>
            {
                let octal: String = chars[i - 1..i + 2].iter().collect();
                let code = u32::from_str_radix(&octal, 8).unwrap_or(0);
                value.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                i += 2;
            }
            '0' => value.push('\0'),
            'b' => value.push('\u{8}'),
            'n' => value.push('\n'),
            'r' => value.push('\r'),
            't' => value.push('\t'),
            'Z' => value.push('\u{1a}'),
            // LIKE's wildcards keep their backslash.
            '%' | '_' => {
                value.push('\\');
                value.push(e);
            }
            other => value.push(other),
        }
    }
    if value.contains('\0') {
        return Err(lexical("a string may not hold a NUL character"));
    }
    Ok((value, i + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both(sql: &str) -> (String, String) {
        let c = canonicalize(sql).unwrap();
        (c.spark, c.duckdb)
    }

    #[test]
    fn a_backslash_quote_stays_inside_the_string_for_both_readers() {
        // Spark reads one string 'x'' AS a, ' then `AS b, * FROM system…`;
        // DuckDB would have read two strings and hidden the middle.
        let (spark, duckdb) = both(
            "SELECT 'x\\' AS a, ' AS b, * FROM system.information_schema.tables /*\n' AS d -- */",
        );
        assert_eq!(
            spark,
            "SELECT 'x\\' AS a, ' AS b , * FROM system . information_schema . tables"
        );
        assert_eq!(
            duckdb,
            "SELECT 'x'' AS a, ' AS b , * FROM system . information_schema . tables"
        );
    }

    #[test]
    fn double_quotes_are_strings_and_backticks_are_names() {
        let (spark, duckdb) = both("SELECT \"a'b\" AS `we``ird`, `x\"y` FROM acme_silver.`t`");
        assert_eq!(
            spark,
            "SELECT 'a\\'b' AS `we``ird` , `x\"y` FROM acme_silver . `t`"
        );
        assert_eq!(
            duckdb,
            "SELECT 'a''b' AS \"we`ird\" , \"x\"\"y\" FROM acme_silver . \"t\""
        );
    }

    #[test]
    fn comments_nest_and_continue_as_spark_reads_them() {
        // Nested: the first */ does not end the comment.
        assert_eq!(
            both("SELECT 1 /* a /* b */ FROM rival_silver.t */ FROM acme_silver.t").1,
            "SELECT 1 FROM acme_silver . t"
        );
        // A backslash-newline continues a line comment.
        assert_eq!(
            both("SELECT 1 -- c \\\nFROM rival_silver.t\nFROM acme_silver.t").1,
            "SELECT 1 FROM acme_silver . t"
        );
        assert_eq!(both("SELECT /*+ BROADCAST(t) */ 1").0, "SELECT 1");
        assert!(matches!(
            canonicalize("SELECT 1 /* /* */"),
            Err(Rejected::Lexical(_))
        ));
    }

    #[test]
    fn strings_join_and_unescape_like_spark() {
        assert_eq!(both("SELECT 'it''s'").1, "SELECT 'its'");
        assert_eq!(both("SELECT 'a' \"b\" r'\\d'").1, "SELECT 'ab\\d'");
        assert_eq!(
            both("SELECT 'a\\nb\\u0041\\101\\%'").1,
            "SELECT 'a\nbAA\\%'"
        );
        assert_eq!(
            both("SELECT X'0aFF', 1.5e-3, .5, 2BD, 10L").0,
            "SELECT X'0aFF' , 1.5e-3 , .5 , 2BD , 10L"
        );
    }

    #[test]
    fn operators_never_merge_into_comments() {
        assert_eq!(
            both("SELECT 1- -1, a<=>b, c::int").0,
            "SELECT 1 - - 1 , a <=> b , c :: int"
        );
    }

    #[test]
    fn refuses_what_spark_would_read_differently_or_outside_the_tables() {
        for sql in [
            "SELECT '${spark.databricks.token}'",
            "SELECT '$\\u007Bx}'",
            "SELECT $1",
            "SELECT ?",
            "SELECT {fn now()}",
            "SELECT 1 # comment",
            "SELECT @x",
            "SELECT 'unclosed",
            "SELECT `unclosed",
            "SELECT 'a\\0b'",
        ] {
            assert!(
                matches!(canonicalize(sql), Err(Rejected::Lexical(_))),
                "{sql}"
            );
        }
        for sql in [
            "SELECT reflect('java.lang.Runtime', 'getRuntime')",
            "SELECT `java_method`('java.lang.System', 'getenv')",
            "SELECT secret('scope', 'key')",
            "SELECT system.builtin.SECRET ('scope', 'key')",
            "SELECT http_request(conn => 'c', method => 'GET', path => '/')",
            "SELECT * FROM IDENTIFIER('rival_silver.t')",
            "SELECT * FROM read_files('/Volumes/x')",
        ] {
            assert!(
                matches!(canonicalize(sql), Err(Rejected::Function(_))),
                "{sql}"
            );
        }
        assert_eq!(
            canonicalize("SELECT 1; SELECT 2"),
            Err(Rejected::MultipleStatements)
        );
        assert_eq!(canonicalize(" ;; "), Err(Rejected::Empty));
        assert_eq!(both("SELECT 1 ;; ").0, "SELECT 1");
    }
}

//! DuckDB reads the inspected upload and writes the dataset's Parquet file.

use super::{Compression, Detected, IngestError, SourceKind};
use app::{
    domain::normalize_column_names,
    model::ColumnSchema,
    ssr::sql::{quote_ident, quote_literal},
};
use contract::PARQUET_OPTIONS;
use duckdb::Connection;
use std::{collections::HashMap, path::Path};

/// Most columns a dataset may have. Wide enough for real exports, small enough
/// that a schema stays readable and the lakehouse's own limits are far away.
pub const MAX_COLUMNS: usize = 1_000;
/// Longest column name accepted, in characters (Unity Catalog's limit is 255).
pub const MAX_COLUMN_NAME_CHARS: usize = 255;

/// Types that neither Delta tables nor Unity Catalog can hold. Everything else
/// DuckDB produces has a lakehouse equivalent (or widens to one losslessly).
const UNSUPPORTED_TYPES: &[&str] = &["INTERVAL", "UNION", "BIT", "TIMETZ"];

/// Integer types wider than the lakehouse's: DuckDB infers HUGEINT for a
/// JSON column with a negative number, and for integers past BIGINT in CSV.
/// They are written as BIGINT when every value fits, otherwise as
/// DECIMAL(38,0); only values beyond 38 digits are refused.
const WIDE_INTEGERS: &[&str] = &["HUGEINT", "UHUGEINT", "VARINT", "BIGNUM"];

/// What wide integers are written as, tried in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Narrow {
    BigInt,
    Decimal,
}

/// `data_type`'s type words (outside quoted field names) that `keep` picks.
fn type_words(data_type: &str) -> Vec<(usize, &str)> {
    let mut words = Vec::new();
    let mut quoted = false;
    let mut start = None;
    for (i, c) in data_type.char_indices().chain([(data_type.len(), ' ')]) {
        let word_char = c.is_ascii_alphanumeric() || c == '_';
        if word_char && !quoted {
            start.get_or_insert(i);
            continue;
        }
        if let Some(s) = start.take() {
            words.push((s, &data_type[s..i]));
        }
        if c == '"' {
            quoted = !quoted;
        }
    }
    words
}

fn is_wide(data_type: &str) -> bool {
    type_words(data_type)
        .iter()
        .any(|(_, w)| WIDE_INTEGERS.contains(w))
}

/// `data_type` with each wide integer type replaced by `to`.
fn retype(data_type: &str, to: &str) -> String {
    let mut out = String::with_capacity(data_type.len());
    let mut last = 0;
    for (at, word) in type_words(data_type) {
        if WIDE_INTEGERS.contains(&word) {
            out.push_str(&data_type[last..at]);
            out.push_str(to);
            last = at + word.len();
        }
    }
    out.push_str(&data_type[last..]);
    out
}

/// Time-of-day types. Parquet stores them as `INT64 TIME_MICROS`, which
/// Spark reads only from 4.1 on (Databricks Runtime 17), so a time of day is
/// written as its text, `HH:MM:SS[.ffffff]`, which every lakehouse reads.
const TIME_OF_DAY: &[&str] = &["TIME", "TIME_NS"];

/// The type of a JSON member that is null in every record. Parquet would
/// hold it as a null-typed column, which Delta cannot (Spark's NullType), so
/// it is written as text, as an empty column of delimited text is.
const ONLY_NULLS: &str = "\"NULL\"";

/// The select list that writes `columns`: wide integers narrowed, times of
/// day and columns of nothing but nulls as text.
pub(super) fn select_list(columns: &[(String, String)], narrow: Narrow) -> String {
    let as_text = |t: &str| TIME_OF_DAY.contains(&t) || t == ONLY_NULLS;
    let replaced: Vec<String> = columns
        .iter()
        .filter(|(_, t)| is_wide(t) || as_text(t))
        .map(|(name, t)| {
            let col = quote_ident(name);
            if as_text(t) {
                return format!("CAST({col} AS VARCHAR) AS {col}");
            }
            let expr = match narrow {
                Narrow::BigInt => format!("CAST({col} AS {})", retype(t, "BIGINT")),
                // DuckDB casts arbitrary-precision integers to DECIMAL only
                // through text.
                Narrow::Decimal if matches!(t.as_str(), "VARINT" | "BIGNUM") => {
                    format!("CAST(CAST({col} AS VARCHAR) AS DECIMAL(38,0))")
                }
                Narrow::Decimal => format!("CAST({col} AS {})", retype(t, "DECIMAL(38,0)")),
            };
            format!("{expr} AS {col}")
        })
        .collect();
    if replaced.is_empty() {
        "*".to_owned()
    } else {
        format!("* REPLACE ({})", replaced.join(", "))
    }
}

/// What the conversion found out.
#[derive(Debug)]
pub struct Converted {
    /// e.g. `csv`, `tsv`, `ndjson+gzip`.
    pub format: String,
    pub schema: Vec<ColumnSchema>,
    pub row_count: i64,
}

/// One conversion: the inspected upload at `source`, written as Parquet to
/// `scratch`, then renamed to `dest` (same file system, so the file appears
/// whole or not at all).
pub struct ConvertJob<'a> {
    pub source: &'a Path,
    pub detected: Detected,
    /// The uploaded file's name, which error messages use instead of paths.
    pub original_name: &'a str,
    pub scratch: &'a Path,
    pub dest: &'a Path,
    /// Uncompressed delimited text's dialect and types, sniffed from its
    /// first rows while it arrived ([`super::Early::Sniffed`]): read with
    /// them rather than sniff again.
    pub sniffed: Option<&'a Dialect>,
    /// Most bytes a Parquet upload's values may take decoded
    /// (`UPLOAD_MAX_DECOMPRESSED_BYTES`, as for gzip; 0 = no cap): see
    /// [`parquet_decoded_bytes`].
    pub max_decoded: u64,
}

/// The longest row of delimited text read, 8 times DuckDB's default
/// `max_line_size` and as long as a JSON object may be (DuckDB's
/// `maximum_object_size`). Each of the reader's buffers holds two such rows,
/// so the conversion's memory (`DUCKDB_MEMORY_LIMIT`, 192 MB) still holds
/// the buffers of both threads.
pub const LONG_ROW_MAX: u64 = 16 << 20;

/// DuckDB's `max_line_size` unless told otherwise (2 MiB).
const DEFAULT_MAX_LINE: u64 = 2 << 20;

/// Runs `job`; on error nothing is left at `scratch` or `dest`. Blocking.
pub fn convert(conn: &Connection, job: &ConvertJob<'_>) -> Result<Converted, IngestError> {
    let result = match convert_inner(conn, job, None) {
        // DuckDB's reader found a row longer than its default allows:
        // measured, and read again with room for the longest, if it is not
        // too long. Only such files pay for the walk and the second read.
        Err(IngestError::RowTooLong { max, .. })
            if max < LONG_ROW_MAX && job.detected.kind == SourceKind::Delimited =>
        {
            long_rows(job).and_then(|max_line| convert_inner(conn, job, Some(max_line)))
        }
        other => other,
    };
    if result.is_err() {
        let _ = std::fs::remove_file(job.scratch);
    }
    result
}

/// The `max_line_size` that reads every row of `job`'s delimited text, or
/// why none does: its longest row is over [`LONG_ROW_MAX`] (or a row is
/// ragged, which fails first). For DuckDB's own "maximum line size" error,
/// whose line is not to be trusted (the sniffer says line 1); failures the
/// conversion measured itself read again where they were measured
/// ([`room_for_long_rows`]).
fn long_rows(job: &ConvertJob<'_>) -> Result<u64, IngestError> {
    let compression = job.detected.compression;
    let skip = super::preamble::lines_above_header_in(job.source, compression)?;
    let walked = super::ragged::walk(job.source, compression, skip)?;
    if let Some(ragged) = walked.ragged {
        return Err(ragged);
    }
    max_line_for(walked.longest)
}

/// Whether a reader that failed on delimited text failed for its longest
/// row (`longest`: its bytes and line, as [`super::ragged::walk`] measures
/// them), one past the reader's default `max_line_size`: if so, the
/// `max_line_size` to read it again with, or why it cannot be read. `None`
/// when that is not why: the row is within the default, or `layout` made
/// room already. A quoted row past the default fails the sniffer as a
/// dialect it cannot find, and the reader as an invalid state of its parser.
fn room_for_long_rows(layout: Layout, longest: (u64, u64)) -> Option<Result<u64, IngestError>> {
    (layout.max_line.is_none() && longest.0 >= DEFAULT_MAX_LINE).then(|| max_line_for(longest))
}

/// The `max_line_size` that reads a longest row of `bytes` at `line`: room
/// for its line end, rounded up to whole MiB, and at least twice the default
/// the reader refused. A row over [`LONG_ROW_MAX`] is refused, by its line.
fn max_line_for((bytes, line): (u64, u64)) -> Result<u64, IngestError> {
    let max_line = ((bytes + 2).div_ceil(1 << 20) << 20).max(4 << 20);
    if max_line > LONG_ROW_MAX {
        return Err(IngestError::RowTooLong {
            line,
            bytes,
            max: LONG_ROW_MAX,
        });
    }
    tracing::info!(
        bytes,
        line,
        max_line,
        "rows longer than the reader's default"
    );
    Ok(max_line)
}

fn convert_inner(
    conn: &Connection,
    job: &ConvertJob<'_>,
    max_line: Option<u64>,
) -> Result<Converted, IngestError> {
    let &ConvertJob {
        source,
        detected,
        original_name,
        scratch,
        dest,
        sniffed,
        max_decoded,
    } = job;
    let src = quote_literal(&source.to_string_lossy());
    let describe_err = |e: duckdb::Error| user_error(detected.kind, &e, source, original_name);
    if detected.kind == SourceKind::Parquet && max_decoded > 0 {
        let decoded = parquet_decoded_bytes(conn, &src).map_err(describe_err)?;
        if decoded > max_decoded {
            return Err(IngestError::ParquetDecodesTooLarge {
                decoded,
                max: max_decoded,
            });
        }
    }
    let started = std::time::Instant::now();
    let lap =
        |what: &str| tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, "{what}");
    if detected.json_values && names_json(original_name) {
        // `42` in `answer.json`: as delimited text, one column named
        // `column0`; but the uploader meant JSON, and it holds no record.
        return Err(IngestError::MalformedJson {
            detail: why_not_records(conn, detected, &src).unwrap_or_else(not_records),
        });
    }

    // Blank and title lines above a delimited file's header are skipped.
    let skip = match detected.kind {
        SourceKind::Delimited => {
            super::preamble::lines_above_header_in(source, detected.compression)?
        }
        _ => 0,
    };
    let layout = Layout {
        skip,
        strict: true,
        decimal_comma: false,
        backslash_escape: false,
        max_line,
    };
    let mut reader = reader_sql(detected, &src, layout, false, &[]);
    let sniffed_aside = sniffed
        .filter(|_| {
            detected.kind == SourceKind::Delimited
                && detected.compression == Compression::None
                && skip == 0
                && max_line.is_none()
        })
        .and_then(|dialect| {
            Some(Described {
                format: format_name(dialect),
                columns: dialect.columns.clone(),
                reader: Some(dialect.explicit_reader(&src)?),
                layout: dialect.layout(layout),
                records: None,
                text: dialect.text.clone(),
            })
        });
    let Described {
        mut format,
        columns,
        reader: explicit,
        mut layout,
        records,
        mut text,
    } = match sniffed_aside {
        Some(described) => described,
        None => sniff_and_describe(conn, detected, &src, layout, &reader, source, original_name)?,
    };
    // The reader without the options found (it looks again), reading JSON's
    // records where they were found, and `text`'s columns as text.
    let reader_again = |layout: Layout, full_scan: bool, text: &[String]| {
        let reader = reader_sql(detected, &src, layout, full_scan, text);
        match &records {
            Some(records) => records.wrap(&reader),
            None => reader,
        }
    };
    if detected.compression == Compression::Gzip {
        format.push_str("+gzip");
    }
    if skip > 0 {
        let s = if skip == 1 { "" } else { "s" };
        format.push_str(&format!(" ({skip} line{s} above the header skipped)"));
        tracing::info!(skip, "lines above the header skipped");
    }
    check_columns(&columns)?;
    let mut explicit_in_use = explicit.is_some();
    if let Some(explicit) = explicit {
        reader = explicit;
    }
    lap("sniffed and described");

    // A row of another width can surface as a value that does not convert
    // (its fields shifted into other columns' types): name the row for what
    // it is. Only failures pay for the walk through the file.
    let read_failure = |e: duckdb::Error| -> Result<IngestError, IngestError> {
        if detected.kind == SourceKind::Delimited {
            if let Some(ragged) = super::ragged::walk(source, detected.compression, skip)?.ragged {
                return Ok(ragged);
            }
        }
        Ok(describe_err(e))
    };
    let out = literal(scratch);
    let copy = |reader: &str, columns: &[(String, String)], narrow: Narrow| {
        conn.execute(
            &format!(
                "COPY (SELECT {} FROM {reader}) TO {out} ({PARQUET_OPTIONS})",
                select_list(columns, narrow)
            ),
            [],
        )
    };
    let mut columns = columns;
    let mut narrow = Narrow::BigInt;
    let mut full_scan = false;
    // `text` grows in the loop by each column with a value that does not
    // convert to the type the reader found for it (`unconvertible_column`).
    let rows = loop {
        let e = match copy(&reader, &columns, narrow) {
            Ok(0) if explicit_in_use => {
                // Nothing read with the options as found. An option that
                // does not round-trip reads nothing, silently (see
                // `without_new_line`): the reader's own detection decides
                // whether the file has rows. Only files without any pay
                // for the second look.
                explicit_in_use = false;
                reader = reader_again(layout, false, &text);
                continue;
            }
            Ok(rows) => break rows,
            Err(e) => e,
        };
        if !layout.backslash_escape && escapes_a_null_token(&e) {
            // A reader that looked again found `\` to be the escape, where
            // the sniffer's sample did not.
            layout.backslash_escape = true;
            explicit_in_use = false;
            reader = reader_again(layout, full_scan, &text);
            continue;
        }
        let conversion = is_conversion_error(&e);
        if explicit_in_use && !conversion && is_reader_error(&e) {
            // The reader as found, and it failed: the sniffer's dialect with
            // RFC 4180's quote where its sample had none, and a file that
            // quote does not fit (a `"` that opens a field and never closes),
            // or JSON's columns, named, that its reader did not take as
            // found. Read as the reader itself would.
            explicit_in_use = false;
            reader = reader_again(layout, false, &text);
            continue;
        }
        if !conversion && detected.kind == SourceKind::Delimited {
            // As `read_failure`, and the same walk also finds line ends
            // that change.
            let walked = super::ragged::walk(source, detected.compression, skip)?;
            if let Some(ragged) = walked.ragged {
                return Err(ragged);
            }
            if layout.strict && walked.line_ends_change && is_reader_error(&e) {
                // Line ends that change past the sniffer's sample (`\r\n`,
                // then `\n`): as in `sniff_and_describe`, every row has the
                // header's width, so the lenient reader takes them.
                layout.strict = false;
                explicit_in_use = false;
                reader = reader_again(layout, full_scan, &text);
                continue;
            }
            if let Some(max_line) = room_for_long_rows(layout, walked.longest) {
                // Read again with room for the longest row, which only files
                // with such rows pay for; as found by the sniffer, whose
                // reader takes RFC 4180's quote where its sample had none
                // (a reader that looks again would not: the long row is
                // past its sample).
                layout.max_line = Some(max_line?);
                let sniffed = sniff_csv(conn, &src, detected.compression, layout).ok();
                if let Some(dialect) = &sniffed {
                    layout = dialect.layout(layout);
                    for column in &dialect.text {
                        if !text.contains(column) {
                            text.push(column.clone());
                        }
                    }
                }
                match sniffed.and_then(|dialect| dialect.explicit_reader(&src)) {
                    Some(explicit) => {
                        explicit_in_use = true;
                        reader = explicit;
                    }
                    None => {
                        explicit_in_use = false;
                        reader = reader_again(layout, full_scan, &text);
                    }
                }
                continue;
            }
            return Err(describe_err(e));
        }
        if conversion && detected.kind == SourceKind::Delimited && !full_scan {
            // The sniffer types columns from a sample; a later value that
            // does not fit means the sample misled it, so read the whole
            // file to decide.
            full_scan = true;
            reader = reader_again(layout, true, &text);
            columns = match describe(conn, &reader) {
                Err(e) if !layout.backslash_escape && escapes_a_null_token(&e) => {
                    layout.backslash_escape = true;
                    reader = reader_again(layout, true, &text);
                    describe(conn, &reader)
                }
                described => described,
            }
            .map_err(describe_err)?;
            check_columns(&columns)?;
            continue;
        }
        if !conversion {
            return Err(read_failure(e)?);
        }
        // The reader typed a column from every value, and one of them still
        // does not convert: DuckDB's type detection takes some text its cast
        // refuses (`0x1F` beside `inf` is a DOUBLE to the one, not the
        // other). Such a column is text, as silver would type it.
        if detected.kind == SourceKind::Delimited && text.len() < MAX_TEXT_RETRIES {
            if let Some(column) = unconvertible_column(&e, &columns, &text) {
                tracing::info!(
                    column,
                    "a value does not convert to its column's detected type: read as text"
                );
                text.push(column.to_owned());
                reader = reader_again(layout, true, &text);
                columns = describe(conn, &reader).map_err(describe_err)?;
                check_columns(&columns)?;
                continue;
            }
        }
        // Wide integers past BIGINT: DECIMAL(38,0) holds them.
        let wide = columns.iter().find(|(_, t)| is_wide(t));
        match (wide, narrow) {
            (Some(_), Narrow::BigInt) => narrow = Narrow::Decimal,
            (Some((name, data_type)), Narrow::Decimal) => {
                let column = columns
                    .iter()
                    .find(|(n, t)| is_wide(t) && e.to_string().contains(&format!("column {n}")))
                    .map_or(name, |(n, _)| n);
                return Err(IngestError::UnsupportedType {
                    column: column.clone(),
                    data_type: format!("{data_type} (integers beyond 38 digits)"),
                });
            }
            (None, _) => return Err(read_failure(e)?),
        }
    };

    lap("copied");
    let converted = finalize(conn, scratch, dest, format, rows)?;
    lap("inspected and made durable");
    Ok(converted)
}

/// Finishes a conversion that [`super::EarlyConvert`] ran while the upload
/// arrived: its Parquet file becomes `dest`. Blocking.
pub fn convert_early(
    conn: &Connection,
    early: super::EarlyOutput,
    dest: &Path,
) -> Result<Converted, IngestError> {
    finalize(conn, early.parquet.path(), dest, early.format, early.rows)
}

/// Describes the Parquet file written at `scratch`, makes it durable and
/// renames it to `dest`.
fn finalize(
    conn: &Connection,
    scratch: &Path,
    dest: &Path,
    format: String,
    rows: usize,
) -> Result<Converted, IngestError> {
    let out = literal(scratch);
    // Describe what was written, not what was planned: the file is the truth.
    let written = describe(conn, &format!("read_parquet({out})")).map_err(internal)?;
    let nulls = null_counts(conn, &out).map_err(internal)?;
    let normalized =
        normalize_column_names(&written.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>());
    let schema = written
        .into_iter()
        .zip(normalized)
        .map(|((name, data_type), normalized_name)| ColumnSchema {
            nullable: nulls.get(&name).is_none_or(|n| n.is_none_or(|n| n > 0)),
            name,
            normalized_name,
            data_type,
        })
        .collect();

    let file = std::fs::File::open(scratch).map_err(internal)?;
    file.sync_all().map_err(internal)?;
    std::fs::rename(scratch, dest).map_err(internal)?;
    if let Some(dir) = dest.parent() {
        // Persist the rename itself.
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(internal)?;
    }
    Ok(Converted {
        format,
        schema,
        row_count: i64::try_from(rows).map_err(internal)?,
    })
}

/// `path` as a SQL string literal.
pub(super) fn literal(path: &Path) -> String {
    quote_literal(&path.to_string_lossy())
}

/// The format's name for delimited text read as `dialect`.
pub(super) fn format_name(dialect: &Dialect) -> String {
    let name = match dialect.delimiter.as_str() {
        "," => "csv".to_owned(),
        "\t" => "tsv".to_owned(),
        other => format!("csv (delimiter {other:?})"),
    };
    match dialect.decimal_comma {
        true => format!("{name} (decimal comma)"),
        false => name,
    }
}

/// What the sniffer found in delimited text: the delimiter, the columns, and
/// the reader options that read exactly so (no sniffing again).
#[derive(Debug, Clone)]
pub struct Dialect {
    pub delimiter: String,
    pub columns: Vec<(String, String)>,
    /// Numbers are written with a decimal comma (`3,5`).
    pub decimal_comma: bool,
    /// Quoted values escape with `\` (see `Layout::backslash_escape`).
    pub backslash_escape: bool,
    /// Columns read as text that the sniffer typed as numbers: its sample
    /// has numbers written in base 16 or 2 there (see [`based_numbers`]).
    pub text: Vec<String>,
    /// `read_csv`'s arguments after the path, with the closing parenthesis,
    /// before and after its `columns` struct, which is written from
    /// `columns`; `None` when the sniffer's reader was not one this code can
    /// take.
    options: Option<(String, String)>,
}

impl Dialect {
    /// `layout` as this dialect reads: its decimal mark and escape.
    fn layout(&self, layout: Layout) -> Layout {
        Layout {
            decimal_comma: self.decimal_comma,
            backslash_escape: self.backslash_escape,
            ..layout
        }
    }

    /// `read_csv` of `src` (a SQL string literal) with the sniffed dialect
    /// and types, if the sniffer gave them.
    fn explicit_reader(&self, src: &str) -> Option<String> {
        self.explicit_reader_of(src, &self.columns)
    }

    /// [`Self::explicit_reader`] reading `columns` (names and types).
    fn explicit_reader_of(&self, src: &str, columns: &[(String, String)]) -> Option<String> {
        let columns = type_struct(columns.iter().map(|(n, t)| (n.as_str(), t.as_str())));
        self.options
            .as_ref()
            .map(|(head, tail)| format!("read_csv({src}{head}columns={columns}{tail}"))
    }

    /// `read_csv` of `path` with the sniffed dialect and types.
    pub fn reader(&self, path: &Path) -> Result<String, String> {
        self.explicit_reader(&literal(path))
            .ok_or_else(|| "the sniffer gave no reader it can take".to_owned())
    }
}

/// Sniffs the uncompressed delimited text at `path` with the options uploads
/// are read with.
pub(super) fn sniff_dialect(conn: &Connection, path: &Path) -> Result<Dialect, String> {
    let layout = Layout {
        skip: 0,
        strict: true,
        decimal_comma: false,
        backslash_escape: false,
        max_line: None,
    };
    sniff_csv(conn, &literal(path), Compression::None, layout).map_err(|e| e.to_string())
}

/// The format's name (for delimited text, from the sniffer's delimiter), the
/// columns the reader will produce and, for delimited text, the sniffer's
/// explicit reader to read the file with. For delimited text all three come
/// from one run of the sniffer, with the reader's options: a separate
/// DESCRIBE, or an auto-detecting reader, would sniff the file again. A
/// sniffer that fails, or settles for one column while the header has
/// delimiters, has met rows of different widths: the first such row is named.
fn sniff_and_describe(
    conn: &Connection,
    detected: Detected,
    src: &str,
    layout: Layout,
    reader: &str,
    source: &Path,
    original_name: &str,
) -> Result<Described, IngestError> {
    let describe_err = |e: duckdb::Error| user_error(detected.kind, &e, source, original_name);
    let format = match detected.kind {
        SourceKind::Delimited => {
            let sniffed = sniff_csv(conn, src, detected.compression, layout);
            let suspicious = match &sniffed {
                Ok(dialect) => dialect.columns.len() == 1,
                Err(_) => true,
            };
            let walked = match suspicious {
                true => Some(super::ragged::walk(
                    source,
                    detected.compression,
                    layout.skip,
                )?),
                false => None,
            };
            let (line_ends_change, longest) = match walked {
                Some(super::ragged::Walked {
                    ragged: Some(ragged),
                    ..
                }) => return Err(ragged),
                Some(walked) => (walked.line_ends_change, walked.longest),
                None => (false, (0, 0)),
            };
            let (dialect, layout) = match sniffed {
                Ok(dialect) => (dialect, layout),
                Err(e) if line_ends_change => {
                    // Rows ending both ways (`\r\n` and `\n`: a file
                    // appended to by another tool), which DuckDB's strict
                    // reader finds no dialect for. Every row has the
                    // header's width (checked just above), so the lenient
                    // reader can take it; one column would mean it did not.
                    let lenient = Layout {
                        strict: false,
                        ..layout
                    };
                    match sniff_csv(conn, src, detected.compression, lenient) {
                        Ok(dialect) if dialect.columns.len() > 1 => (dialect, lenient),
                        _ => return Err(describe_err(e)),
                    }
                }
                Err(e) => match room_for_long_rows(layout, longest) {
                    // A row in the sniffer's sample past the reader's
                    // default: sniffed again with room for the longest.
                    Some(max_line) => {
                        let roomy = Layout {
                            max_line: Some(max_line?),
                            ..layout
                        };
                        match sniff_csv(conn, src, detected.compression, roomy) {
                            Ok(dialect) => (dialect, roomy),
                            Err(e) => return Err(describe_err(e)),
                        }
                    }
                    None => return Err(describe_err(e)),
                },
            };
            let reader = dialect.explicit_reader(src);
            return Ok(Described {
                format: format_name(&dialect),
                layout: dialect.layout(layout),
                columns: dialect.columns,
                reader,
                records: None,
                text: dialect.text,
            });
        }
        SourceKind::JsonArray => "json",
        SourceKind::Ndjson => "ndjson",
        SourceKind::Parquet => "parquet",
    };
    let columns = describe(conn, reader).map_err(|e| {
        // JSON that is "not records" may be records with too many names.
        let not_records = matches!(detected.kind, SourceKind::JsonArray | SourceKind::Ndjson)
            && e.to_string().contains("expected records");
        match not_records.then(|| json_names_over_the_cap(conn, detected, src)) {
            Some(Some(count)) => IngestError::TooManyColumns {
                count,
                max: MAX_COLUMNS,
            },
            Some(None) => match why_not_records(conn, detected, src) {
                Some(detail) => IngestError::MalformedJson { detail },
                None => describe_err(e),
            },
            None => describe_err(e),
        }
    })?;
    let explicit = match detected.kind {
        SourceKind::JsonArray | SourceKind::Ndjson => Some(json_reader(
            detected.kind,
            src,
            detected.compression,
            &columns,
        )),
        _ => None,
    };
    // One object (not lines of them, as `.ndjson` and `.jsonl` say).
    let one_object = detected.kind == SourceKind::Ndjson && !names_json_lines(original_name);
    if let Some(explicit) = explicit.as_deref().filter(|_| one_object) {
        if let Some(records) = Records::find(conn, explicit, &columns).map_err(describe_err)? {
            let reader = records.wrap(explicit);
            return Ok(Described {
                format: format!("json (the records in {})", records.named()),
                columns: describe(conn, &reader).map_err(describe_err)?,
                reader: Some(reader),
                layout,
                records: Some(records),
                text: Vec::new(),
            });
        }
    }
    Ok(Described {
        format: format.to_owned(),
        columns,
        reader: explicit,
        layout,
        records: None,
        text: Vec::new(),
    })
}

/// A JSON file that is one object holding its records in a member, as APIs
/// return them (`{"count": 2, "results": [{"id": 1}, {"id": 2}]}`), or in
/// a member of a member (GraphQL's `{"data": {"users": {"nodes": [...]}}}`,
/// Solr's `{"response": {"docs": [...]}}`): a row per record, not one row
/// holding them all. The members beside the path to the records are kept
/// beside every record, as pandas' `json_normalize` keeps `meta`.
#[derive(Debug)]
struct Records {
    /// The members from the object down to the one list of objects.
    path: Vec<String>,
    /// The other members on the way (their paths) and the names they are
    /// kept under: a top-level member's own name, a deeper one's path
    /// joined by `.` (`response.numFound`), with `_1`, `_2`... where a
    /// record's field has it already.
    others: Vec<(Vec<String>, String)>,
    /// Each record holds its fields in one object: it is nothing but that
    /// object, or it is an edge of a GraphQL connection (the Relay cursor
    /// connections specification: `[{"cursor": "YTE=", "node": {...}}]`).
    wrapped: Option<Wrapped>,
}

/// A record's object ([`Records::wrapped`]): its member's name, whose fields
/// are the columns, and the record's other members (an edge's `cursor`) with
/// the names they are kept under.
#[derive(Debug)]
struct Wrapped {
    member: String,
    others: Vec<(String, String)>,
}

/// How many objects deep [`Records::find`] looks for the list of records.
const RECORDS_MAX_DEPTH: usize = 6;

// A member is classed by its DuckDB type: an object is `STRUCT(...)`, a list
// of objects `STRUCT(...)[]`.

/// Whether a member of this type is an object.
fn is_object(data_type: &str) -> bool {
    data_type.starts_with("STRUCT(") && data_type.ends_with(')')
}

/// Whether a member of this type is a list of objects.
fn is_list(data_type: &str) -> bool {
    data_type.starts_with("STRUCT(") && data_type.ends_with(")[]")
}

/// Whether a member of this type may hold the records: a list of objects,
/// or an object with a list somewhere inside.
fn may_hold(data_type: &str) -> bool {
    data_type.starts_with("STRUCT(") && data_type.contains("[]")
}

/// What [`Records::search`] found.
enum Search {
    Found(Records),
    /// Two lists of objects at the shallowest depth with one.
    Ambiguous,
    /// No list of objects.
    NoList,
}

/// An object on the way down to the records, as [`Records::find`]
/// described it: its path (empty for the top) and its members.
struct Object {
    path: Vec<String>,
    members: Members,
}

impl Records {
    /// Whether `reader` (read with `columns`) is such an object: one row,
    /// whose shallowest list of objects, looking through objects only, is
    /// the only one at its depth. Two lists side by side (users and groups
    /// in one GraphQL answer) are ambiguous, so the object stays one row.
    fn find(
        conn: &Connection,
        reader: &str,
        columns: &[(String, String)],
    ) -> Result<Option<Self>, duckdb::Error> {
        if !columns.iter().any(|(_, t)| may_hold(t)) {
            return Ok(None);
        }
        let rows: i64 = conn.query_row(
            &format!("SELECT count(*) FROM (SELECT 1 FROM {reader} LIMIT 2)"),
            [],
            |row| row.get(0),
        )?;
        if rows != 1 {
            return Ok(None);
        }
        // GraphQL and JSON:API answer in a top-level `data`, with `errors`
        // (GraphQL's partial answers) or `included` (JSON:API's related
        // resources) beside it: the records are looked for there first.
        let data = columns
            .iter()
            .any(|(name, data_type)| name == "data" && may_hold(data_type));
        // Each object described once, whichever search comes to it.
        let mut described = vec![Object {
            path: Vec::new(),
            members: columns.to_vec(),
        }];
        if data {
            match Self::search(conn, reader, &mut described, Some("data"))? {
                Search::NoList => {}
                Search::Found(records) => return Ok(Some(records)),
                Search::Ambiguous => return Ok(None),
            }
        }
        Ok(match Self::search(conn, reader, &mut described, None)? {
            Search::Found(records) => Some(records),
            Search::NoList | Search::Ambiguous => None,
        })
    }

    /// [`Self::find`]'s search, breadth first, from the top-level member
    /// named `only` if given, else from every one. `described` holds every
    /// object described so far, the top first; the objects this search
    /// goes into are added to it, unless an earlier search had.
    fn search(
        conn: &Connection,
        reader: &str,
        described: &mut Vec<Object>,
        only: Option<&str>,
    ) -> Result<Search, duckdb::Error> {
        // This depth's objects, as indices into `described`.
        let mut level = vec![0];
        for _ in 0..RECORDS_MAX_DEPTH {
            let mut lists = Vec::new();
            let mut deeper = Vec::new();
            for object in level.iter().map(|&at| &described[at]) {
                let searched = object
                    .members
                    .iter()
                    .filter(|(name, _)| !object.path.is_empty() || only.is_none_or(|o| o == name));
                for (name, data_type) in searched {
                    let member = [object.path.as_slice(), std::slice::from_ref(name)].concat();
                    if is_list(data_type) {
                        lists.push(member);
                    } else if may_hold(data_type) {
                        deeper.push(member);
                    }
                }
            }
            match lists.len() {
                0 => {}
                1 => {
                    return Self::beside(conn, reader, described, lists.remove(0))
                        .map(Search::Found)
                }
                _ => return Ok(Search::Ambiguous),
            }
            if deeper.is_empty() {
                break;
            }
            level.clear();
            for path in deeper {
                let at = match described.iter().position(|object| object.path == path) {
                    Some(at) => at,
                    None => {
                        let members = members_of(conn, reader, &path)?;
                        described.push(Object { path, members });
                        described.len() - 1
                    }
                };
                level.push(at);
            }
        }
        Ok(Search::NoList)
    }

    /// The records at `path`, with the members beside each step of it
    /// kept; `described` holds each object on the way (and others).
    fn beside(
        conn: &Connection,
        reader: &str,
        described: &[Object],
        path: Vec<String>,
    ) -> Result<Self, duckdb::Error> {
        let mut records = Self {
            path,
            others: Vec::new(),
            wrapped: None,
        };
        let mut fields = describe(conn, &records.wrap(reader))?;
        // A record that is one object, or an edge holding its `node`.
        let member = match fields.as_slice() {
            [(name, data_type)] if is_object(data_type) => Some(name.clone()),
            _ => fields
                .iter()
                .find(|(name, data_type)| name == "node" && is_object(data_type))
                .map(|(name, _)| name.clone()),
        };
        let mut edge = Vec::new();
        if let Some(member) = member {
            edge = fields
                .iter()
                .filter(|(name, _)| *name != member)
                .map(|(name, _)| name.clone())
                .collect();
            records.wrapped = Some(Wrapped {
                member,
                others: Vec::new(),
            });
            fields = describe(conn, &records.wrap(reader))?;
        }
        // Names already taken are kept under `_1`, `_2`...
        let mut taken: std::collections::HashSet<String> =
            fields.iter().map(|(name, _)| name.to_lowercase()).collect();
        let mut keep = |name: String| {
            let mut kept = name.clone();
            for n in 1.. {
                if taken.insert(kept.to_lowercase()) {
                    break;
                }
                kept = format!("{name}_{n}");
            }
            kept
        };
        if let Some(wrapped) = &mut records.wrapped {
            wrapped.others = edge
                .into_iter()
                .map(|name| (name.clone(), keep(name)))
                .collect();
        }
        // The objects on the way, top first: the path's proper prefixes.
        let on_the_way = (0..records.path.len()).filter_map(|depth| {
            let parent = &records.path[..depth];
            described.iter().find(|object| object.path == parent)
        });
        let beside: Vec<Vec<String>> = on_the_way
            .flat_map(|object| {
                object
                    .members
                    .iter()
                    .map(|(name, _)| [object.path.as_slice(), std::slice::from_ref(name)].concat())
            })
            .filter(|member| !records.path.starts_with(member))
            .collect();
        records.others = beside
            .into_iter()
            .map(|member| {
                let kept = keep(member.join("."));
                (member, kept)
            })
            .collect();
        Ok(records)
    }

    /// `reader`'s records, a row each, then the other members.
    fn wrap(&self, reader: &str) -> String {
        let list = member_sql(&self.path);
        let mut select = match &self.wrapped {
            // The list and its objects.
            None => vec![format!("unnest({list}, max_depth := 2)")],
            // The record's object's fields, then its other members: lists
            // of the same length, so unnested side by side.
            Some(wrapped) => {
                let each = |member: &str| {
                    format!(
                        "[struct_extract(r, {}) FOR r IN {list}]",
                        quote_literal(member)
                    )
                };
                let mut select = vec![format!("unnest({}, max_depth := 2)", each(&wrapped.member))];
                select.extend(wrapped.others.iter().map(|(member, kept)| {
                    format!("unnest({}) AS {}", each(member), quote_ident(kept))
                }));
                select
            }
        };
        select.extend(
            self.others
                .iter()
                .map(|(path, kept)| format!("{} AS {}", member_sql(path), quote_ident(kept))),
        );
        format!("(SELECT {} FROM {reader})", select.join(", "))
    }

    /// The path as the upload's format names it: `"response"."docs"`.
    fn named(&self) -> String {
        let steps: Vec<String> = self.path.iter().map(|step| quote_ident(step)).collect();
        steps.join(".")
    }
}

/// An object's members: names and DuckDB types, in order.
type Members = Vec<(String, String)>;

/// The members of the object at `path` of `reader`'s one row.
fn members_of(conn: &Connection, reader: &str, path: &[String]) -> Result<Members, duckdb::Error> {
    describe(
        conn,
        &format!("(SELECT unnest({}) FROM {reader})", member_sql(path)),
    )
}

/// SQL for the member at `path` of a row: a column, then a field of it,
/// and so on.
fn member_sql(path: &[String]) -> String {
    let (first, fields) = path.split_first().expect("a member's path is never empty");
    fields.iter().fold(quote_ident(first), |sql, field| {
        format!("struct_extract({sql}, {})", quote_literal(field))
    })
}

/// What [`sniff_and_describe`] found.
struct Described {
    format: String,
    columns: Vec<(String, String)>,
    /// The reader that reads the file as found, without looking again.
    reader: Option<String>,
    /// How delimited text is read (JSON's and Parquet's is as given): with
    /// DuckDB's strict reader (all but text whose line ends change within
    /// it), numbers with a decimal comma (`3,5`; see [`sniff_csv`]), and
    /// room for rows past the reader's default.
    layout: Layout,
    /// JSON whose records are in one member of one object.
    records: Option<Records>,
    /// Delimited text's columns read as text whatever their values
    /// ([`Dialect::text`]).
    text: Vec<String>,
}

/// Where delimited text's table starts, and how strictly it is read.
#[derive(Debug, Clone, Copy)]
struct Layout {
    /// Lines above the header ([`super::preamble`]).
    skip: u64,
    /// DuckDB's `strict_mode`.
    strict: bool,
    /// `decimal_separator = ','` ([`sniff_csv`] decides).
    decimal_comma: bool,
    /// Quoted values escape with `\` (`"say \"hi\""`, as the sniffer
    /// found): the null tokens that hold it (`\N`) are left out, since
    /// DuckDB's reader takes no escape character inside a null string, and
    /// stay text ([`sniff_csv`] decides).
    backslash_escape: bool,
    /// DuckDB's `max_line_size`, when a row is longer than its default
    /// (2 MiB) allows ([`convert`] measures the longest).
    max_line: Option<u64>,
}

/// `read_json` of `src` with `columns` as they were found. Finding them read
/// the whole file, so the conversion names them rather than look again.
fn json_reader(
    kind: SourceKind,
    src: &str,
    compression: Compression,
    columns: &[(String, String)],
) -> String {
    let compression = compression_name(compression);
    let columns: Vec<String> = columns
        .iter()
        .map(|(name, data_type)| format!("{}: {}", quote_literal(name), quote_literal(data_type)))
        .collect();
    format!(
        "read_json({src}, format = '{}', records = true, compression = '{compression}', \
         columns = {{{}}})",
        json_format(kind),
        columns.join(", ")
    )
}

/// How `read_json` types objects: as a STRUCT of every name seen, up to
/// [`MAX_COLUMNS`] names. DuckDB's own thresholds take an object for a MAP
/// (one column of key-value pairs) past 200 names, or when its names are
/// sparse (each in fewer than a tenth of the records): a 250-column export,
/// or records of an id and one optional field each, were "not records".
fn json_inference() -> String {
    format!("field_appearance_threshold = 0, map_inference_threshold = {MAX_COLUMNS}")
}

/// The distinct names of JSON records that are objects with more than
/// [`MAX_COLUMNS`] of them (the reader took them for a MAP, not records).
fn json_names_over_the_cap(conn: &Connection, detected: Detected, src: &str) -> Option<usize> {
    let names: i64 = conn
        .query_row(
            &format!(
                "SELECT count(DISTINCT name) FROM (SELECT unnest(map_keys(json)) AS name \
                 FROM read_json({src}, format = '{}', records = false, compression = '{}', \
                 sample_size = -1, {}))",
                json_format(detected.kind),
                compression_name(detected.compression),
                json_inference()
            ),
            [],
            |row| row.get(0),
        )
        .ok()?;
    let names = usize::try_from(names).ok()?;
    (names > MAX_COLUMNS).then_some(names)
}

/// Which record of JSON that is not records is not one, and why: none at
/// all, the first that is not an object, the first holding a value whose
/// name is empty, or only empty objects. One more read of the file, each
/// record kept as JSON text, only once it is refused;
/// `None` if that read fails too.
fn why_not_records(conn: &Connection, detected: Detected, src: &str) -> Option<String> {
    let sql = format!(
        "SELECT count(*), \
           min(n) FILTER (WHERE kind <> 'OBJECT'), \
           arg_min(kind, n) FILTER (WHERE kind <> 'OBJECT'), \
           min(n) FILTER (WHERE kind = 'OBJECT' AND list_contains(json_keys(j), '')), \
           count(*) FILTER (WHERE kind = 'OBJECT' AND len(json_keys(j)) = 0) \
         FROM (SELECT j, coalesce(json_type(j), 'NULL') AS kind, row_number() OVER () AS n \
           FROM (SELECT json AS j FROM read_json({src}, format = '{}', records = false, \
             compression = '{}', columns = {{json: 'JSON'}})))",
        json_format(detected.kind),
        compression_name(detected.compression)
    );
    type Found = (i64, Option<i64>, Option<String>, Option<i64>, i64);
    let (records, other_at, other, empty_name_at, empty): Found = conn
        .query_row(&sql, [], |row| {
            Ok((
                row.get(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get(4)?,
            ))
        })
        .ok()?;
    Some(match (other_at.zip(other), empty_name_at) {
        _ if records == 0 => format!("the file holds no record (an empty list); {RECORD_SHAPE}"),
        (Some((at, kind)), _) => {
            let kind = match kind.as_str() {
                "BIGINT" | "UBIGINT" | "DOUBLE" => "a number",
                "VARCHAR" => "a string",
                "ARRAY" => "an array",
                "BOOLEAN" => "true or false",
                _ => "null",
            };
            format!("record {at} is {kind}, not an object; {RECORD_SHAPE}")
        }
        (None, Some(at)) => format!(
            "record {at} has a value whose name is empty (\"\": 1); {RECORD_SHAPE}, each with a name"
        ),
        (None, None) if empty == records => {
            format!("every record is an empty object ({{}}); {RECORD_SHAPE}")
        }
        (None, None) => return None,
    })
}

/// `read_json`'s format for `kind`.
fn json_format(kind: SourceKind) -> &'static str {
    match kind {
        SourceKind::JsonArray => "array",
        _ => "auto",
    }
}

/// Sniffs the delimited text at `src` (a SQL string literal) with the options
/// `reader_sql` reads it with: the delimiter, the columns (names and types, in
/// order), and the sniffer's own complete `read_csv` call for it, so that
/// reading the file does not sniff it a second time.
///
/// A file split by `;` (the spreadsheet export of a locale whose decimal
/// mark is the comma) whose text columns turn into numbers, and nothing
/// else changes, when sniffed with `decimal_separator = ','` is read so:
/// `3,5` is 3.5, not the text "3,5". Only `;` files pay for that second
/// sniff, and only when they have text columns; a tab or `|` file's "1,234"
/// may be a thousands separator, so it stays text.
fn sniff_csv(
    conn: &Connection,
    src: &str,
    compression: Compression,
    layout: Layout,
) -> Result<Dialect, duckdb::Error> {
    let dialect = sniff_csv_as(conn, src, compression, layout)?;
    let dialect = if layout.decimal_comma
        || dialect.delimiter != ";"
        || !dialect.columns.iter().any(|(_, t)| t == "VARCHAR")
    {
        dialect
    } else {
        let comma = Layout {
            decimal_comma: true,
            ..dialect.layout(layout)
        };
        match sniff_csv_as(conn, src, compression, comma) {
            Ok(other) if numbers_with_decimal_commas(&dialect, &other) => other,
            _ => dialect,
        }
    };
    Ok(with_based_numbers_as_text(conn, src, dialect))
}

/// `dialect` with [`based_numbers`]' columns read as text.
fn with_based_numbers_as_text(conn: &Connection, src: &str, mut dialect: Dialect) -> Dialect {
    let text = based_numbers(conn, src, &dialect);
    if text.is_empty() {
        return dialect;
    }
    tracing::info!(columns = ?text, "numbers in base 16 or 2 in the sample: read as text");
    for (name, data_type) in &mut dialect.columns {
        if text.contains(name) {
            *data_type = "VARCHAR".to_owned();
        }
    }
    dialect.text = text;
    dialect
}

/// Whether `comma` (sniffed with `decimal_separator = ','`) finds numbers
/// where `plain` found text, and agrees with it everywhere else.
fn numbers_with_decimal_commas(plain: &Dialect, comma: &Dialect) -> bool {
    let decimal = |t: &str| t == "DOUBLE" || t.starts_with("DECIMAL");
    plain.delimiter == comma.delimiter
        && plain.columns.len() == comma.columns.len()
        && plain.columns != comma.columns
        && plain
            .columns
            .iter()
            .zip(&comma.columns)
            .all(|((n1, t1), (n2, t2))| n1 == n2 && (t1 == t2 || (t1 == "VARCHAR" && decimal(t2))))
}

/// [`sniff_csv`] with exactly `layout`'s options.
fn sniff_csv_as(
    conn: &Connection,
    src: &str,
    compression: Compression,
    layout: Layout,
) -> Result<Dialect, duckdb::Error> {
    let mut stmt = conn.prepare(&format!(
        "SELECT Delimiter, Prompt, c.name, c.type FROM (SELECT Delimiter, Prompt, \
         unnest(Columns) AS c FROM sniff_csv({src}, {}))",
        csv_options(compression, layout, false)
    ))?;
    // One row per column. No rows means no columns, which the caller refuses.
    let mut dialect = Dialect {
        delimiter: String::from(","),
        columns: Vec::new(),
        decimal_comma: layout.decimal_comma,
        backslash_escape: layout.backslash_escape,
        text: Vec::new(),
        options: None,
    };
    let mut prompt = String::new();
    let mut rows = stmt.query([])?;
    while let Some(row) = rows.next()? {
        dialect.delimiter = row.get(0)?;
        prompt = row.get(1)?;
        dialect.columns.push((row.get(2)?, row.get(3)?));
    }
    if !layout.backslash_escape && prompt.contains(", escape='\\',") {
        // Its reader would be refused (the escape inside a null token):
        // sniffed again without those tokens, so its types agree with how
        // the file is read.
        let layout = Layout {
            backslash_escape: true,
            ..layout
        };
        return sniff_csv_as(conn, src, compression, layout);
    }
    let head = format!("FROM read_csv({src}");
    dialect.options = prompt
        .strip_prefix(&head)
        .map(|rest| rest.trim_end().trim_end_matches(';'))
        .filter(|rest| rest.starts_with(", ") && rest.ends_with(')'))
        .and_then(|options| {
            around_columns(
                &without_new_line(&quote_as_rfc4180(options)),
                &dialect.columns,
            )
        });
    Ok(dialect)
}

/// The sniffer's reader options before and after their `columns` struct,
/// which it writes with each name between quotes as it is: a name with a
/// `'` in it (`Customer's name`) made the reader a statement that does not
/// parse. The struct is written again from the columns ([`Dialect`]).
/// `None` when the options do not hold the struct as expected.
fn around_columns(options: &str, columns: &[(String, String)]) -> Option<(String, String)> {
    let fields: Vec<String> = columns
        .iter()
        .map(|(name, data_type)| format!("'{name}': '{data_type}'"))
        .collect();
    let written = format!("columns={{{}}}", fields.join(", "));
    let at = options.find(&written)?;
    Some((
        options[..at].to_owned(),
        options[at + written.len()..].to_owned(),
    ))
}

/// `read_csv`'s struct of column names and their types, `{'a': 'BIGINT'}`.
fn type_struct<'a>(columns: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let fields: Vec<String> = columns
        .map(|(name, data_type)| format!("{}: {}", quote_literal(name), quote_literal(data_type)))
        .collect();
    format!("{{{}}}", fields.join(", "))
}

/// The numeric types the sniffer gives columns.
fn is_number(data_type: &str) -> bool {
    matches!(
        data_type,
        "TINYINT" | "SMALLINT" | "INTEGER" | "BIGINT" | "HUGEINT" | "UBIGINT" | "FLOAT" | "DOUBLE"
    ) || data_type.starts_with("DECIMAL")
}

/// The columns of `dialect` typed as numbers whose values in the sniffer's
/// sample include one written in base 16 or 2 (`0x1F`, `0b101`). DuckDB's
/// reader takes those as numbers: a column of colour codes or register
/// addresses (`0xFF00FF`) became integers (16711935), and one that mixes
/// them with decimals (`0x1F`, `2.5`) was refused, as its cast to DOUBLE
/// does not take them. They are text, as silver types them. Read from the
/// sample only (the rows the sniffer typed from); a failure to read it is
/// left to the reader, which reads the whole file next.
fn based_numbers(conn: &Connection, src: &str, dialect: &Dialect) -> Vec<String> {
    let numbers: Vec<&str> = dialect
        .columns
        .iter()
        .filter(|(_, t)| is_number(t))
        .map(|(name, _)| name.as_str())
        .collect();
    if numbers.is_empty() {
        return Vec::new();
    }
    let as_text: Vec<(String, String)> = dialect
        .columns
        .iter()
        .map(|(name, _)| (name.clone(), "VARCHAR".to_owned()))
        .collect();
    let Some(reader) = dialect.explicit_reader_of(src, &as_text) else {
        return Vec::new();
    };
    let list = numbers
        .iter()
        .map(|n| quote_ident(n))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT DISTINCT name FROM (SELECT {list} FROM {reader} LIMIT {SNIFF_SAMPLE_ROWS}) \
         UNPIVOT (v FOR name IN ({list})) WHERE regexp_matches(v, '^\\s*[+-]?0[xXbB]')"
    );
    let found = conn.prepare(&sql).and_then(|mut stmt| {
        stmt.query_map([], |row| row.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()
    });
    match found {
        Ok(found) => found,
        Err(e) => {
            tracing::debug!(error = %e, "could not check the sample for numbers in other bases");
            Vec::new()
        }
    }
}

/// The rows the sniffer types columns from (its `sample_size`).
const SNIFF_SAMPLE_ROWS: usize = 20_480;

/// The sniffer's options without its `new_line`. Given back to the reader
/// with `strict_mode`, `new_line='\r\n'` reads no rows at all, without an
/// error (DuckDB 2.0: every CRLF file, i.e. most exports from Windows,
/// became an empty dataset); without it the reader finds each row's end
/// itself, `\n`, `\r\n` or `\r`.
fn without_new_line(options: &str) -> String {
    const KEY: &str = ", new_line='";
    let Some(start) = options.find(KEY) else {
        return options.to_owned();
    };
    match options[start + KEY.len()..].find('\'') {
        Some(end) => format!(
            "{}{}",
            &options[..start],
            &options[start + KEY.len() + end + 1..]
        ),
        None => options.to_owned(),
    }
}

/// The sniffer's options with RFC 4180's quote where it found none. It
/// settles for no quote character when its sample holds no `"` used as one;
/// read so, a field quoted further on (an address with a comma at row
/// 50,000) would keep its quotes, or split. The `"` quote reads that sample
/// exactly the same (a `"` inside an unquoted field stays a character); a
/// file it does not fit fails with a CSV error, and is then read as the
/// sniffer would have.
fn quote_as_rfc4180(options: &str) -> String {
    options.replacen(", quote='', escape='', ", ", quote='\"', escape='\"', ", 1)
}

/// DuckDB refused a reader whose escape character is in a null token
/// (see [`Layout::backslash_escape`]).
fn escapes_a_null_token(e: &duckdb::Error) -> bool {
    e.to_string()
        .contains("ESCAPE must not appear in the NULL specification")
}

/// DuckDB's name for `compression`.
fn compression_name(compression: Compression) -> &'static str {
    match compression {
        Compression::None => "none",
        Compression::Gzip => "gzip",
    }
}

/// How delimited text is read: skipping only the lines found above its
/// header ([`super::preamble`]), strict about row widths (unless `layout`
/// says otherwise), typed from a sample of rows or from the whole file.
fn csv_options(compression: Compression, layout: Layout, full_scan: bool) -> String {
    let nulls: Vec<String> = contract::NULL_TOKENS
        .iter()
        .filter(|t| !(layout.backslash_escape && t.contains('\\')))
        .map(|t| quote_literal(t))
        .collect();
    format!(
        "compression = '{}', skip = {}, strict_mode = {}, null_padding = false, \
         nullstr = [{}], sample_size = {}{}{}",
        compression_name(compression),
        layout.skip,
        layout.strict,
        nulls.join(", "),
        if full_scan {
            -1
        } else {
            SNIFF_SAMPLE_ROWS as i64
        },
        if layout.decimal_comma {
            ", decimal_separator = ','"
        } else {
            ""
        },
        match layout.max_line {
            // Each buffer must hold at least a row; two, for the parallel
            // reader to find where a row that crosses buffers ends.
            Some(max) => format!(", max_line_size = {max}, buffer_size = {}", 2 * max),
            None => String::new(),
        }
    )
}

/// The reader of `src` (a SQL string literal) for `detected`, delimited text
/// read as `layout` says, with the columns named in `text` read as text.
fn reader_sql(
    detected: Detected,
    src: &str,
    layout: Layout,
    full_scan: bool,
    text: &[String],
) -> String {
    let compression = compression_name(detected.compression);
    match detected.kind {
        SourceKind::Delimited => {
            let types = match text.is_empty() {
                true => String::new(),
                false => format!(
                    ", types = {}",
                    type_struct(text.iter().map(|name| (name.as_str(), "VARCHAR")))
                ),
            };
            format!(
                "read_csv({src}, {}{types})",
                csv_options(detected.compression, layout, full_scan),
            )
        }
        // Typed from every record: JSON's reader casts leniently, so a
        // sample's types would change later values without a word (1.5 read
        // as BIGINT is 2, "yes" as BOOLEAN is true).
        SourceKind::JsonArray | SourceKind::Ndjson => format!(
            "read_json({src}, format = '{}', records = true, compression = '{compression}', \
             sample_size = -1, {})",
            json_format(detected.kind),
            json_inference()
        ),
        SourceKind::Parquet => format!("read_parquet({src})"),
    }
}

/// What the Parquet file at `src` (a SQL string literal) takes decoded, from
/// its footer alone: per column chunk, its values at their physical width
/// (a string's 4-byte length alone, a fixed-length array's as 4), or its
/// pages' uncompressed size where that is more. Parquet's own "uncompressed"
/// size is after dictionary and run-length encoding: a file of 500 bytes
/// holds a hundred million rows of one repeated value, which take 8 s to
/// convert, and a few kilobytes as many row groups again would take hours.
/// Measured so, a legitimate file is never over-counted.
fn parquet_decoded_bytes(conn: &Connection, src: &str) -> Result<u64, duckdb::Error> {
    let decoded: Option<f64> = conn.query_row(
        &format!(
            "SELECT sum(greatest(0, coalesce(total_uncompressed_size, 0), \
             num_values::DOUBLE * CASE type WHEN 'INT64' THEN 8 WHEN 'DOUBLE' THEN 8 \
             WHEN 'INT96' THEN 12 WHEN 'BOOLEAN' THEN 1 ELSE 4 END)) \
             FROM parquet_metadata({src})"
        ),
        [],
        |row| row.get(0),
    )?;
    // `as` saturates: a footer claiming more than 2^64 bytes is over any cap.
    Ok(decoded.unwrap_or(0.0) as u64)
}

/// Column names and DuckDB types, in order.
fn describe(conn: &Connection, reader: &str) -> Result<Vec<(String, String)>, duckdb::Error> {
    let mut stmt = conn.prepare(&format!("DESCRIBE SELECT * FROM {reader}"))?;
    let rows = stmt.query_map([], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
    })?;
    rows.collect()
}

pub(super) fn check_columns(columns: &[(String, String)]) -> Result<(), IngestError> {
    if columns.is_empty() {
        return Err(IngestError::NoColumns);
    }
    if columns.len() > MAX_COLUMNS {
        return Err(IngestError::TooManyColumns {
            count: columns.len(),
            max: MAX_COLUMNS,
        });
    }
    for (i, (name, data_type)) in columns.iter().enumerate() {
        let len = name.chars().count();
        if len > MAX_COLUMN_NAME_CHARS {
            return Err(IngestError::ColumnNameTooLong {
                position: i + 1,
                len,
                max: MAX_COLUMN_NAME_CHARS,
            });
        }
        // Bronze adds these to every row; a file's own column of that name
        // could never be synced.
        if contract::names::LINEAGE_COLUMNS.contains(&name.as_str()) {
            return Err(IngestError::ReservedColumn {
                column: name.clone(),
            });
        }
        let unsupported = data_type
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .any(|word| UNSUPPORTED_TYPES.contains(&word))
            || data_type.contains("TIME WITH TIME ZONE");
        if unsupported {
            return Err(IngestError::UnsupportedType {
                column: name.clone(),
                data_type: data_type.clone(),
            });
        }
    }
    Ok(())
}

/// Per top-level column: the null count from the Parquet statistics, `None`
/// where a row group has no statistics.
fn null_counts(
    conn: &Connection,
    file: &str,
) -> Result<HashMap<String, Option<i64>>, duckdb::Error> {
    let mut stmt = conn.prepare(&format!(
        "SELECT path_in_schema, CASE WHEN bool_and(stats_null_count IS NOT NULL) \
         THEN sum(stats_null_count)::BIGINT END \
         FROM parquet_metadata({file}) GROUP BY path_in_schema"
    ))?;
    let rows = stmt.query_map([], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, Option<i64>>(1)?))
    })?;
    rows.collect()
}

/// A CSV or JSON reader's complaint about the text (not memory, disk or an
/// interrupt).
fn is_reader_error(e: &duckdb::Error) -> bool {
    let msg = e.to_string();
    msg.contains("CSV Error") || msg.contains("CSV Parser") || msg.contains("JSON")
}

/// How many columns a conversion reads as text after their values did not
/// convert, at most: each takes another read of the whole file.
const MAX_TEXT_RETRIES: usize = 16;

/// The column of `columns` that `e`, a conversion error, names (`Error when
/// converting column "c"`), if it is not text already, nor a wide integer,
/// and not read as text yet. The longest name that fits wins (`a` and `a b` both fit `"a b"`).
fn unconvertible_column<'a>(
    e: &duckdb::Error,
    columns: &'a [(String, String)],
    text: &[String],
) -> Option<&'a str> {
    let msg = e.to_string();
    columns
        .iter()
        .filter(|(name, data_type)| {
            // Wide integers fail their narrowing the same way (the cast is
            // pushed into the reader): they are narrowed further instead.
            data_type != "VARCHAR"
                && !is_wide(data_type)
                && !text.contains(name)
                && msg.contains(&format!("converting column \"{name}\""))
        })
        .map(|(name, _)| name.as_str())
        .max_by_key(|name| name.len())
}

fn is_conversion_error(e: &duckdb::Error) -> bool {
    let msg = e.to_string();
    msg.contains("Conversion Error") || msg.contains("Could not convert")
}

fn internal(e: impl Into<anyhow::Error>) -> IngestError {
    IngestError::Internal(e.into())
}

/// The number right after `label` in `msg`, e.g. `Line: 3`.
fn number_after(msg: &str, label: &str) -> Option<u64> {
    let rest = &msg[msg.find(label)? + label.len()..];
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// What every JSON record must be.
const RECORD_SHAPE: &str =
    "every record must be an object of named values ({\"id\": 1, \"name\": \"Anna\"})";

/// Why JSON whose records are not objects is refused, when which record is
/// not one is not known ([`why_not_records`] says which when it can).
fn not_records() -> String {
    format!(
        "{RECORD_SHAPE}; this file has records that are numbers, strings or arrays, \
         only empty objects, or a value whose name is empty (\"\": 1)"
    )
}

/// Whether a file's name says it is JSON (`.json`, `.ndjson`, `.jsonl`,
/// gzip-compressed or not).
fn names_json(name: &str) -> bool {
    names_one_of(name, &[".json", ".ndjson", ".jsonl"])
}

/// Whether a file's name says it is JSON a record per line.
fn names_json_lines(name: &str) -> bool {
    names_one_of(name, &[".ndjson", ".jsonl"])
}

/// Whether `name` ends with one of `extensions`, before any `.gz`.
fn names_one_of(name: &str, extensions: &[&str]) -> bool {
    let name = name.to_ascii_lowercase();
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    extensions.iter().any(|ext| name.ends_with(ext))
}

/// Turns a DuckDB error about the input into a message for the uploader. The
/// scratch path never reaches them: it is replaced by the uploaded file's name.
fn user_error(
    kind: SourceKind,
    e: &duckdb::Error,
    source: &Path,
    original_name: &str,
) -> IngestError {
    let raw = e.to_string();
    let msg = raw.replace(&*source.to_string_lossy(), original_name);
    let first_line = |m: &str| {
        let m = m
            .trim_start_matches("Invalid Input Error: ")
            .trim_start_matches("Conversion Error: ")
            .trim_start_matches("IO Error: ");
        m.lines().next().unwrap_or(m).trim().to_owned()
    };
    if msg.contains("Out of Memory") {
        return IngestError::OutOfMemory;
    }
    if msg.contains("No space left") {
        return internal(anyhow::anyhow!(raw));
    }
    match kind {
        SourceKind::Delimited => {
            if msg.contains("Maximum line size") {
                // Where DuckDB says, which the sniffer does not know (it says
                // line 1): [`convert`] measures the rows, and reads them
                // again with room for the longest if it can.
                return IngestError::RowTooLong {
                    line: number_after(&msg, "Line:").unwrap_or(0),
                    bytes: number_after(&msg, "Actual Size:").unwrap_or(0),
                    max: number_after(&msg, "Maximum line size of").unwrap_or(0),
                };
            }
            if msg.contains("Expected Number of Columns") {
                if let (Some(line), Some(expected), Some(found)) = (
                    number_after(&msg, "Line:"),
                    number_after(&msg, "Expected Number of Columns:"),
                    number_after(&msg, "Found:"),
                ) {
                    return IngestError::RaggedRows {
                        line,
                        expected,
                        found,
                    };
                }
            }
            let mut detail = match number_after(&msg, "Line:") {
                Some(line) if !first_line(&msg).contains("Line") => {
                    format!("line {line}: {}", first_line(&msg))
                }
                _ => first_line(&msg),
            };
            // DuckDB's first line only says where ("CSV Error on Line: 3");
            // what went wrong is further down. The row's text is not
            // repeated (it may be megabytes).
            if let Some(why) = msg.lines().map(str::trim).find(|l| {
                [
                    "Error when converting",
                    "It was not possible",
                    "Value with unterminated quote",
                ]
                .iter()
                .any(|start| l.starts_with(start))
            }) {
                detail = format!("{detail} {why}");
            }
            IngestError::Unreadable { detail }
        }
        // `records = true`: DuckDB would otherwise read numbers, strings or
        // arrays as one column named `json`, and a mix of objects and other
        // values as text.
        SourceKind::JsonArray | SourceKind::Ndjson
            if msg.contains("expected records, but got non-record JSON") =>
        {
            IngestError::MalformedJson {
                detail: not_records(),
            }
        }
        SourceKind::JsonArray | SourceKind::Ndjson => IngestError::MalformedJson {
            detail: first_line(&msg),
        },
        SourceKind::Parquet => IngestError::InvalidParquet {
            detail: first_line(&msg),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dialect(delimiter: &str, types: &[&str], decimal_comma: bool) -> Dialect {
        Dialect {
            delimiter: delimiter.to_owned(),
            columns: types
                .iter()
                .enumerate()
                .map(|(i, t)| (format!("c{i}"), (*t).to_owned()))
                .collect(),
            decimal_comma,
            backslash_escape: false,
            text: Vec::new(),
            options: None,
        }
    }

    #[test]
    fn decimal_commas_are_taken_only_when_they_turn_text_into_numbers() {
        let plain = dialect(";", &["BIGINT", "VARCHAR", "VARCHAR"], false);
        let takes =
            |types: &[&str]| numbers_with_decimal_commas(&plain, &dialect(";", types, true));
        assert!(takes(&["BIGINT", "DOUBLE", "VARCHAR"]));
        assert!(takes(&["BIGINT", "DOUBLE", "DECIMAL(18,3)"]));
        // Nothing changes, or something other than text to a number.
        assert!(!takes(&["BIGINT", "VARCHAR", "VARCHAR"]));
        assert!(!takes(&["DOUBLE", "DOUBLE", "VARCHAR"]));
        assert!(!takes(&["BIGINT", "DATE", "VARCHAR"]));
        assert!(!takes(&["BIGINT", "DOUBLE"]));
        assert_eq!(
            format_name(&dialect(";", &[], true)),
            "csv (delimiter \";\") (decimal comma)"
        );
        assert_eq!(format_name(&dialect("\t", &[], false)), "tsv");
    }

    #[test]
    fn the_sniffers_new_line_is_left_to_the_reader() {
        assert_eq!(
            without_new_line(", delim=',', new_line='\\r\\n', comment='', header=true)"),
            ", delim=',', comment='', header=true)"
        );
        assert_eq!(
            without_new_line(", delim=',', header=true)"),
            ", delim=',', header=true)"
        );
    }

    #[test]
    fn the_sniffers_reader_quotes_every_name_and_reads_based_numbers_as_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("devices.csv");
        std::fs::write(
            &path,
            "Customer's name,register,reading,amount\n\
             O'Brien,0x001F,0x1F,-1.5\nO'Hara,0x0020,2.5,NA\n",
        )
        .unwrap();
        let conn = Connection::open_in_memory().unwrap();
        let dialect = sniff_dialect(&conn, &path).unwrap();
        assert_eq!(dialect.text, ["register", "reading"]);
        let reader = dialect.reader(&path).expect("the sniffer's own reader");
        assert!(reader.contains("'Customer''s name': 'VARCHAR'"), "{reader}");
        let rows: Vec<(String, String, String, Option<f64>)> = conn
            .prepare(&format!("SELECT * FROM {reader}"))
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            rows,
            [
                ("O'Brien".into(), "0x001F".into(), "0x1F".into(), Some(-1.5)),
                ("O'Hara".into(), "0x0020".into(), "2.5".into(), None),
            ]
        );
        // Options without the struct as the sniffer writes it are not taken.
        let columns = [("a".to_owned(), "BIGINT".to_owned())];
        assert_eq!(
            around_columns(", header=true, columns={'a': 'BIGINT'}, skip=0)", &columns),
            Some((", header=true, ".to_owned(), ", skip=0)".to_owned()))
        );
        assert_eq!(around_columns(", header=true)", &columns), None);
    }

    #[test]
    fn numbers_are_read_after_labels() {
        let msg =
            "CSV Error on Line: 3\nOriginal Line: a,b,c\nExpected Number of Columns: 2 Found: 3";
        assert_eq!(number_after(msg, "Line:"), Some(3));
        assert_eq!(number_after(msg, "Expected Number of Columns:"), Some(2));
        assert_eq!(number_after(msg, "Found:"), Some(3));
        assert_eq!(number_after(msg, "Missing:"), None);
    }

    #[test]
    fn unsupported_types_are_found_even_when_nested() {
        let cols = |t: &str| vec![("c".to_owned(), t.to_owned())];
        assert!(check_columns(&cols("INTERVAL")).is_err());
        assert!(check_columns(&cols("STRUCT(a INTEGER, b INTERVAL)")).is_err());
        assert!(check_columns(&cols("TIME WITH TIME ZONE")).is_err());
        assert!(
            check_columns(&cols("HUGEINT[]")).is_ok(),
            "narrowed, not refused"
        );
        assert!(check_columns(&cols("TIME")).is_ok());
        assert!(check_columns(&cols("TIMESTAMP WITH TIME ZONE")).is_ok());
        assert!(check_columns(&cols("STRUCT(\"interval\" INTEGER)")).is_ok());
        assert!(check_columns(&cols("DECIMAL(18,3)")).is_ok());
    }

    #[test]
    fn wide_integers_are_narrowed_by_type_word() {
        assert_eq!(retype("HUGEINT", "BIGINT"), "BIGINT");
        assert_eq!(
            retype("STRUCT(\"HUGEINT\" HUGEINT, b UHUGEINT[])", "DECIMAL(38,0)"),
            "STRUCT(\"HUGEINT\" DECIMAL(38,0), b DECIMAL(38,0)[])"
        );
        assert!(!is_wide("STRUCT(\"HUGEINT\" INTEGER)"));
        assert!(is_wide("MAP(VARCHAR, VARINT)"));
        let cols = vec![
            ("a".to_owned(), "BIGINT".to_owned()),
            ("b c".to_owned(), "HUGEINT".to_owned()),
            ("d".to_owned(), "VARINT".to_owned()),
        ];
        assert_eq!(select_list(&cols[..1], Narrow::BigInt), "*");
        assert_eq!(
            select_list(&cols, Narrow::BigInt),
            "* REPLACE (CAST(\"b c\" AS BIGINT) AS \"b c\", CAST(\"d\" AS BIGINT) AS \"d\")"
        );
        assert_eq!(
            select_list(&cols, Narrow::Decimal),
            "* REPLACE (CAST(\"b c\" AS DECIMAL(38,0)) AS \"b c\", CAST(CAST(\"d\" AS VARCHAR) AS DECIMAL(38,0)) AS \"d\")"
        );
    }

    #[test]
    fn column_limits_are_enforced() {
        let wide: Vec<_> = (0..=MAX_COLUMNS)
            .map(|i| (format!("c{i}"), "BIGINT".to_owned()))
            .collect();
        assert!(matches!(
            check_columns(&wide),
            Err(IngestError::TooManyColumns { .. })
        ));
        let long = vec![("x".repeat(MAX_COLUMN_NAME_CHARS + 1), "VARCHAR".to_owned())];
        assert!(matches!(
            check_columns(&long),
            Err(IngestError::ColumnNameTooLong { position: 1, .. })
        ));
        assert!(matches!(check_columns(&[]), Err(IngestError::NoColumns)));
    }

    #[test]
    fn a_column_named_like_lineage_is_refused_and_a_lookalike_is_not() {
        for reserved in contract::names::LINEAGE_COLUMNS {
            let columns = vec![
                ("id".to_owned(), "BIGINT".to_owned()),
                (reserved.to_owned(), "VARCHAR".to_owned()),
            ];
            match check_columns(&columns) {
                Err(IngestError::ReservedColumn { column }) => assert_eq!(column, reserved),
                other => panic!("{reserved}: {other:?}"),
            }
        }
        // Only the exact name clashes in bronze; silver's normalised names
        // step around the rest.
        let lookalikes = vec![
            ("_Version".to_owned(), "BIGINT".to_owned()),
            ("version".to_owned(), "BIGINT".to_owned()),
            ("_version ".to_owned(), "BIGINT".to_owned()),
        ];
        assert!(check_columns(&lookalikes).is_ok());
    }
}

//! Lines above a delimited file's table: blank lines, and the title or note
//! a spreadsheet or report export puts above its header ("Sales by region",
//! "Exported 2026-05-01 by finance"). Read from the first line, such a file
//! is one column of text, or a header read as a row of the wrong type; with
//! those lines skipped it is the table it holds.
//!
//! Conservative on purpose: a line is skipped only when it is blank or holds
//! a single value, it has fewer fields than the table (or as many, when it is
//! a spreadsheet's title cell, `Report,,,`, and a number or date below the
//! header tells the header apart from a row), and the table starts
//! within the first [`MAX_LINES`] lines with a header that looks like one
//! (every name given, at least one a word, not a number) and a row of the
//! same width right below it. A file whose first line is short for another
//! reason (a ragged header, `id` above rows of two numbers) is left as it
//! is, and refused as ragged.

use super::{Compression, IngestError};
use std::{io::Read, path::Path};

/// Most lines skipped above a header.
pub const MAX_LINES: u64 = 20;
/// Bytes of text looked at, enough for [`MAX_LINES`] lines of a title and a
/// header with a row of most files.
const SAMPLE_BYTES: u64 = 64 * 1024;
/// Delimiters DuckDB's sniffer considers.
const CANDIDATES: [u8; 4] = [b',', b'\t', b';', b'|'];

/// One record of the sample: the physical line it starts on (1-based) and
/// its fields, unquoted and trimmed.
struct Record {
    line: u64,
    fields: Vec<String>,
}

impl Record {
    fn blank(&self) -> bool {
        self.fields.iter().all(String::is_empty)
    }

    fn values(&self) -> usize {
        self.fields.iter().filter(|f| !f.is_empty()).count()
    }

    /// Every name given, and at least one that starts with a letter: a
    /// header, not a row of numbers or dates.
    fn looks_like_header(&self) -> bool {
        self.fields.len() >= 2
            && self.values() == self.fields.len()
            && self.fields.iter().any(|f| {
                f.chars()
                    .next()
                    .is_some_and(|c| c.is_alphabetic() || c == '_')
            })
    }

    /// A spreadsheet's title cell with the rest of its row empty
    /// (`Report,,,` above a table of four columns). Its width does not tell
    /// it from a header with unnamed columns (`id,,,`), so
    /// [`Self::is_header_of`] must also hold for the header below it.
    fn is_title_of(&self, table: &Record) -> bool {
        self.fields.len() == table.fields.len()
            && self.values() == 1
            && self.fields[0].starts_with(|c: char| c.is_alphabetic())
    }

    /// A header above `row` that types tell apart from it: a name that is a
    /// word above a value that is a number or a date. A header of words
    /// above a row of words could be a row itself.
    fn is_header_of(&self, row: &Record) -> bool {
        let word = |f: &str| f.starts_with(|c: char| c.is_alphabetic() || c == '_');
        let numeric = |f: &str| {
            f.strip_prefix(['-', '+'])
                .unwrap_or(f)
                .trim_start_matches('.')
                .starts_with(|c: char| c.is_ascii_digit())
        };
        self.fields
            .iter()
            .zip(&row.fields)
            .any(|(name, value)| word(name) && numeric(value))
    }
}

/// The first `max` records of `text` split on `delim` (RFC 4180 quoting:
/// quoted delimiters and line ends stay in their field). The last record is
/// left out unless `complete`: the sample may end inside it.
fn records(text: &[u8], delim: u8, max: usize, complete: bool) -> Vec<Record> {
    let mut out = Vec::new();
    let mut fields = Vec::new();
    let mut field = Vec::new();
    let mut quoted = false;
    let mut line = 1;
    let mut record_line = 1;
    let finish_field = |field: &mut Vec<u8>, fields: &mut Vec<String>| {
        fields.push(String::from_utf8_lossy(field).trim().to_owned());
        field.clear();
    };
    let mut bytes = text.iter().copied().peekable();
    while let Some(b) = bytes.next() {
        if quoted {
            match b {
                b'"' if bytes.peek() == Some(&b'"') => {
                    bytes.next();
                    field.push(b'"');
                }
                b'"' => quoted = false,
                b'\n' => {
                    line += 1;
                    field.push(b);
                }
                _ => field.push(b),
            }
            continue;
        }
        match b {
            b'"' => quoted = true,
            b'\n' | b'\r' => {
                if b == b'\r' && bytes.peek() == Some(&b'\n') {
                    bytes.next();
                }
                finish_field(&mut field, &mut fields);
                out.push(Record {
                    line: record_line,
                    fields: std::mem::take(&mut fields),
                });
                if out.len() == max {
                    return out;
                }
                line += 1;
                record_line = line;
            }
            b if b == delim => finish_field(&mut field, &mut fields),
            _ => field.push(b),
        }
    }
    if complete && !(field.is_empty() && fields.is_empty()) {
        finish_field(&mut field, &mut fields);
        out.push(Record {
            line: record_line,
            fields,
        });
    }
    out
}

/// With `delim`, the lines above the table, if the sample shows a table
/// with lines above it that can be skipped (see the module's rule).
fn lines_above_with(text: &[u8], delim: u8, complete: bool) -> Option<u64> {
    let records = records(text, delim, MAX_LINES as usize + 2, complete);
    let header = records.iter().position(|r| !r.blank() && r.values() > 1)?;
    let (above, rest) = records.split_at(header);
    let table = &rest[0];
    let first_row = rest.get(1)?;
    let lines_above = table.line - 1;
    // One physical line per record above: DuckDB's `skip` counts lines.
    let one_line_each = lines_above == header as u64;
    let skippable = above.iter().all(|r| {
        r.blank()
            || (r.values() <= 1 && r.fields.len() < table.fields.len())
            || (r.is_title_of(table) && table.is_header_of(first_row))
    });
    (table.looks_like_header()
        && first_row.fields.len() == table.fields.len()
        && skippable
        && one_line_each
        && lines_above <= MAX_LINES)
        .then_some(lines_above)
}

/// Lines above the table in `sample`, the start of delimited text (`complete`
/// when it is the whole text): 0 unless the sample shows blank or title lines
/// above a header.
pub fn lines_above_header(sample: &[u8], complete: bool) -> u64 {
    let text = sample.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(sample);
    if let Some(rest) = after_separator_line(text) {
        // Excel's `sep=;` line names the delimiter; the sniffer finds it
        // from the rows.
        return 1 + lines_above_header(rest, complete);
    }
    CANDIDATES
        .iter()
        .filter_map(|&delim| lines_above_with(text, delim, complete))
        .min()
        .unwrap_or(0)
}

/// The text after a first line `sep=X` (Excel's line naming the delimiter).
fn after_separator_line(text: &[u8]) -> Option<&[u8]> {
    let rest = text.strip_prefix(b"sep=")?;
    let delim = *rest.first()?;
    if !CANDIDATES.contains(&delim) {
        return None;
    }
    let rest = &rest[1..];
    rest.strip_prefix(b"\r\n")
        .or_else(|| rest.strip_prefix(b"\n"))
        .or_else(|| rest.strip_prefix(b"\r"))
}

/// [`lines_above_header`] of the delimited text in the file at `path`.
pub fn lines_above_header_in(path: &Path, compression: Compression) -> Result<u64, IngestError> {
    let internal = |e: std::io::Error| IngestError::Internal(e.into());
    let mut sample = Vec::new();
    super::ragged::open(path, compression)
        .map_err(internal)?
        .take(SAMPLE_BYTES)
        .read_to_end(&mut sample)
        .map_err(internal)?;
    let complete = (sample.len() as u64) < SAMPLE_BYTES;
    Ok(lines_above_header(&sample, complete))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn above(text: &str) -> u64 {
        lines_above_header(text.as_bytes(), true)
    }

    #[test]
    fn titles_and_blank_lines_above_a_header_are_counted() {
        assert_eq!(above("Sales by region\nregion,amount\nnorth,3\n"), 1);
        assert_eq!(above("\n\nid,name\n1,a\n"), 2);
        assert_eq!(above("  \r\n\r\nid,name\r\n1,a\r\n"), 2);
        assert_eq!(
            above("Quarterly report\n\"Exported 2026-05-01, finance\"\n\nid;name;amount\n1;a;2\n"),
            3
        );
        assert_eq!(above("\u{feff}Report\nid\tname\n1\tx"), 1);
        // A title with trailing delimiters, fewer than the table's.
        assert_eq!(above("Report,,\nid,name,amount,region\n1,a,2,n\n"), 1);
        // As many as the table's (a spreadsheet's title cell), above a
        // header that a number or date below tells apart from a row.
        assert_eq!(above("Report,,,\nid,name,amount,region\n1,a,2,n\n"), 1);
        assert_eq!(
            above("Sales 2026;;\n;;\nregion;when;amount\nnorth;2026-05-01;-3.5\n"),
            2
        );
        // Excel's line naming the delimiter, with or without a title below.
        assert_eq!(above("sep=;\r\nid;name\r\n1;a\r\n"), 1);
        assert_eq!(above("sep=,\nReport\nid,name\n1,a\n"), 2);
    }

    #[test]
    fn ordinary_and_ambiguous_files_start_at_the_first_line() {
        for text in [
            "id,name\n1,a\n",
            "name\nalice\nbob\n",
            // pandas' index column has no name.
            ",a,b\n0,1,2\n",
            // A short header above longer rows is ragged, not a title.
            "id\n1,2\n3,4\n",
            "a,b,c\n1,2,3,4\n",
            // A title above a header with no row under it.
            "Report\nid,name\n",
            // Two values on the first line: a row, not a title.
            "Report,2026\nid,name,amount\n1,a,2\n",
            // A header with unnamed columns: as wide as the rows, and the
            // row below it is not told apart from a header by its types.
            "id,,\n1,2,3\n",
            "notes,,\nalpha,beta,gamma\ndelta,eps,zeta\n",
            "name,,\nfirst,last,age\nann,lee,x\n",
            "",
            "\n\n",
        ] {
            assert_eq!(above(text), 0, "{text:?}");
        }
        let far = format!("{}id,name\n1,a\n", "\n".repeat(MAX_LINES as usize + 1));
        assert_eq!(above(&far), 0);
    }

    #[test]
    fn quoted_line_ends_are_not_skipped_across() {
        // A quoted title over two lines is left for the reader to refuse.
        assert_eq!(above("\"Report\nof sales\"\nid,name\n1,a\n"), 0);
        assert_eq!(above("id,\"long\nname\"\n1,a\n"), 0);
    }

    #[test]
    fn a_sample_cut_mid_row_does_not_count_that_row() {
        assert_eq!(lines_above_header(b"Report\nid,name\n1,a", false), 0);
        assert_eq!(lines_above_header(b"Report\nid,name\n1,a\n2,b", false), 1);
    }
}

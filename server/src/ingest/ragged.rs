//! Finding the first ragged row of a delimited file ourselves. DuckDB's
//! sniffer, faced with rows of different widths, either fails or falls back to
//! reading each line as a single column; neither tells the uploader which line
//! is wrong. This is the slow path, taken only then.

use super::{Compression, IngestError};
use flate2::read::MultiGzDecoder;
use std::{
    fs::File,
    io::{BufRead, BufReader, Read},
    path::Path,
};

/// Delimiters DuckDB's sniffer considers, in order of preference.
const CANDIDATES: [u8; 4] = [b',', b'\t', b';', b'|'];

pub(super) fn open(path: &Path, compression: Compression) -> std::io::Result<Box<dyn BufRead>> {
    let file = File::open(path)?;
    Ok(match compression {
        Compression::None => Box::new(BufReader::with_capacity(1 << 16, file)),
        Compression::Gzip => Box::new(BufReader::with_capacity(
            1 << 16,
            MultiGzDecoder::new(BufReader::new(file)),
        )),
    })
}

/// The candidate delimiter that occurs most often (outside quotes) in the header line.
fn header_delimiter(header: &[u8]) -> Option<u8> {
    let mut counts = [0usize; CANDIDATES.len()];
    let mut quoted = false;
    for &b in header {
        if b == b'"' {
            quoted = !quoted;
        } else if !quoted {
            if let Some(i) = CANDIDATES.iter().position(|&c| c == b) {
                counts[i] += 1;
            }
        }
    }
    let (best, &count) = counts
        .iter()
        .enumerate()
        .max_by_key(|&(i, &n)| (n, std::cmp::Reverse(i)))?;
    (count > 0).then_some(CANDIDATES[best])
}

/// What one walk through a file's records finds.
#[derive(Debug, Default, PartialEq)]
struct Records {
    /// The first record whose field count differs from the header's:
    /// `(line, expected, found)`. The walk stops there.
    ragged: Option<(u64, u64, u64)>,
    /// The line of the record whose quote never closes: the rest of the
    /// file would be one value (and its width and length mean nothing).
    unterminated: Option<u64>,
    /// Records end both ways, `\r\n` and a bare `\n` (outside quotes), or
    /// in `\r\r\n`, which DuckDB's strict reader reads neither way.
    line_ends_change: bool,
    /// The longest record seen (its bytes, without the line end, and its
    /// first line); the first of them if several are as long.
    longest: (u64, u64),
}

/// Walks the records (RFC 4180 quoting), counting fields split by `delim`
/// (none: widths are not compared) and the kinds of line end. Lines are
/// 1-based physical lines, counted from `first_line` (the reader's first);
/// blank lines are skipped.
fn walk_records(reader: impl Read, delim: Option<u8>, first_line: u64) -> std::io::Result<Records> {
    let mut expected: Option<u64> = None;
    let mut line: u64 = first_line;
    let mut record_line: u64 = first_line;
    let mut fields: u64 = 1;
    let mut empty = true;
    let mut quoted = false;
    let mut prev_quote = false;
    let mut after_cr = false;
    let mut after_cr_cr = false;
    // `\r\n`, a bare `\n`, and `\r\r\n`: a CSV writer's `\r\n` written
    // again through a file opened as text on Windows (Python's csv module
    // without `newline=''`).
    let (mut crlf, mut lf, mut cr_crlf) = (false, false, false);
    // The bytes of the record so far, and the longest before it.
    let mut len: u64 = 0;
    let mut longest = (0u64, 0u64);
    let mut finish = |fields: u64, record_line: u64, empty: bool| -> Option<(u64, u64, u64)> {
        if empty || delim.is_none() {
            return None;
        }
        match expected {
            None => {
                expected = Some(fields);
                None
            }
            Some(n) if n != fields => Some((record_line, n, fields)),
            Some(_) => None,
        }
    };
    let mut buf = [0u8; 1 << 16];
    let mut reader = reader;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        for &b in &buf[..n] {
            len += 1;
            let cr = std::mem::replace(&mut after_cr, b == b'\r');
            let cr_cr = std::mem::replace(&mut after_cr_cr, cr && b == b'\r');
            if quoted {
                if b == b'"' {
                    quoted = false;
                    prev_quote = true;
                    continue;
                }
                if super::inspect::ends_a_line(b, cr) {
                    line += 1;
                }
                continue;
            }
            match b {
                // `""` inside a quoted field: the quote closed and reopens.
                b'"' if prev_quote => quoted = true,
                b'"' => {
                    quoted = true;
                    empty = false;
                }
                // The record ended at the `\r` before it.
                b'\n' if cr => {
                    crlf = true;
                    cr_crlf |= cr_cr;
                    len = 0;
                }
                // `\r` alone ends a line too (Excel's "CSV (Macintosh)").
                b'\n' | b'\r' => {
                    lf |= b == b'\n';
                    if len - 1 > longest.0 {
                        longest = (len - 1, record_line);
                    }
                    len = 0;
                    if let Some(found) = finish(fields, record_line, empty) {
                        return Ok(Records {
                            ragged: Some(found),
                            line_ends_change: (crlf && lf) || cr_crlf,
                            longest,
                            ..Records::default()
                        });
                    }
                    if delim.is_none() && ((crlf && lf) || cr_crlf) {
                        return Ok(Records {
                            line_ends_change: true,
                            longest,
                            ..Records::default()
                        });
                    }
                    line += 1;
                    record_line = line;
                    fields = 1;
                    empty = true;
                }
                b if Some(b) == delim => {
                    fields += 1;
                    empty = false;
                }
                _ => empty = false,
            }
            prev_quote = false;
        }
    }
    if quoted {
        return Ok(Records {
            unterminated: Some(record_line),
            line_ends_change: (crlf && lf) || cr_crlf,
            longest,
            ..Records::default()
        });
    }
    if len > longest.0 {
        longest = (len, record_line);
    }
    Ok(Records {
        ragged: finish(fields, record_line, empty),
        line_ends_change: (crlf && lf) || cr_crlf,
        longest,
        unterminated: None,
    })
}

/// What [`walk`] found in a delimited file.
pub struct Walked {
    /// The error naming the first row at fault: one whose quote never
    /// closes, or (if the header names a delimiter) whose width differs from
    /// the header's.
    pub ragged: Option<IngestError>,
    /// Rows end both ways, `\r\n` and a bare `\n`, outside quotes (a file
    /// appended to by another tool), or in `\r\r\n` (a CSV writer's `\r\n`
    /// through a text-mode file on Windows): DuckDB's strict reader finds no
    /// dialect for either; the lenient reader reads them. Known for the
    /// whole file only when no row is ragged.
    pub line_ends_change: bool,
    /// The longest row: its bytes (without the line end) and the line it
    /// starts on. Of the whole file only when no row is ragged and, for a
    /// file of one column, its line ends do not change.
    pub longest: (u64, u64),
}

/// One walk through the delimited text at `path`, below its first `skip`
/// lines (see [`super::preamble`]): ragged rows, and line ends that change.
pub fn walk(path: &Path, compression: Compression, skip: u64) -> Result<Walked, IngestError> {
    let internal = |e: std::io::Error| IngestError::Internal(e.into());
    let opened = || -> std::io::Result<Box<dyn BufRead>> {
        let mut reader = open(path, compression)?;
        let mut line = Vec::new();
        for _ in 0..skip {
            line.clear();
            reader.read_until(b'\n', &mut line)?;
        }
        Ok(reader)
    };
    let mut header = Vec::new();
    opened()
        .map_err(internal)?
        .take(1 << 16)
        .read_until(b'\n', &mut header)
        .map_err(internal)?;
    let delim = header_delimiter(&header);
    let records = walk_records(opened().map_err(internal)?, delim, skip + 1).map_err(internal)?;
    Ok(Walked {
        ragged: match (records.unterminated, records.ragged) {
            (Some(line), _) => Some(IngestError::UnterminatedQuote { line }),
            (None, ragged) => ragged.map(|(line, expected, found)| IngestError::RaggedRows {
                line,
                expected,
                found,
            }),
        },
        line_ends_change: records.line_ends_change,
        longest: records.longest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ragged(csv: &[u8]) -> Option<(u64, u64, u64)> {
        walk_records(csv, Some(b','), 1).unwrap().ragged
    }

    #[test]
    fn header_delimiter_is_the_most_frequent_candidate() {
        assert_eq!(header_delimiter(b"a,b,c\n"), Some(b','));
        assert_eq!(header_delimiter(b"a;b;c,d\n"), Some(b';'));
        assert_eq!(header_delimiter(b"a\tb\n"), Some(b'\t'));
        assert_eq!(header_delimiter(b"\"a,b\"\n"), None);
        assert_eq!(header_delimiter(b"name\n"), None);
    }

    #[test]
    fn finds_the_first_row_of_another_width() {
        let csv = b"a,b,c\n1,2,3\n\n4,5,6\n7,8,9,10\n1,2\n";
        assert_eq!(ragged(csv), Some((5, 3, 4)));
    }

    #[test]
    fn quoted_delimiters_and_newlines_do_not_count() {
        let csv = b"a,b\n\"x,y\",\"multi\nline\"\n\"say \"\"hi, there\"\"\",2\n3,4,5\n";
        assert_eq!(ragged(csv), Some((5, 2, 3)));
    }

    #[test]
    fn lines_end_at_a_carriage_return_alone_too() {
        // Lines ending in `\r`, `\r\n` or `\n` are counted alike, quoted
        // line ends included.
        for end in ["\r", "\r\n", "\n"] {
            let csv = format!("a,b{end}1,\"x{end}y\"{end}{end}3,4,5{end}");
            assert_eq!(ragged(csv.as_bytes()), Some((5, 2, 3)), "{end:?}");
        }
        assert_eq!(
            walk_records(&b"a,b\r1,2\r3,4"[..], Some(b','), 1).unwrap(),
            Records {
                longest: (3, 1),
                ..Records::default()
            }
        );
    }

    #[test]
    fn a_quote_that_never_closes_names_its_row() {
        let walked = |csv: &str| walk_records(csv.as_bytes(), Some(b','), 1).unwrap();
        // In the last field or in the middle, past a quoted line end.
        for (csv, line) in [
            ("a,b\n1,\"x\ny\"\n2,\"never\n3,4\n", 4),
            ("a,b,c\n1,2,3\n2,\"never,3\n4,5,6\n", 3),
        ] {
            let found = walked(csv);
            assert_eq!(found.unterminated, Some(line), "{csv:?}");
            assert_eq!(found.ragged, None, "{csv:?}");
            assert!(found.longest.0 < 8, "the rest is not one long row: {csv:?}");
        }
        // Quotes that close, doubled ones inside, do not count.
        assert_eq!(walked("a,b\n1,\"say \"\"hi\"\"\"\n").unterminated, None);
    }

    #[test]
    fn consistent_files_and_crlf_pass() {
        assert_eq!(
            walk_records(&b"a,b\r\n1,2\r\n3,4"[..], Some(b','), 1).unwrap(),
            Records {
                longest: (3, 1),
                ..Records::default()
            }
        );
    }

    #[test]
    fn the_longest_row_is_measured_whatever_ends_its_lines() {
        let longest = |csv: &str| walk_records(csv.as_bytes(), Some(b','), 1).unwrap().longest;
        for end in ["\r", "\r\n", "\n"] {
            // Quoted line ends belong to the row; the row's own end does not.
            let csv = format!("id,text{end}1,short{end}2,\"two{end}lines\"{end}3,x{end}");
            let row = format!("2,\"two{end}lines\"").len() as u64;
            assert_eq!(longest(&csv), (row, 3), "{end:?}");
        }
        // The last row needs no line end; the first of equals is named.
        assert_eq!(longest("a,b\n1,2\n33,44"), (5, 3));
        assert_eq!(longest("ab,c\n1,2\n"), (4, 1));
    }

    #[test]
    fn line_ends_that_change_outside_quotes_are_found() {
        let changes = |text: &[u8]| {
            let by_comma = walk_records(text, Some(b','), 1).unwrap().line_ends_change;
            let by_none = walk_records(text, None, 1).unwrap().line_ends_change;
            assert_eq!(by_comma, by_none, "{text:?}");
            by_comma
        };
        assert!(changes(b"a,b\r\n1,2\n3,4\r\n"));
        assert!(changes(b"a,b\n1,2\r\n"));
        assert!(!changes(b"a,b\r\n1,2\r\n3,4"));
        assert!(!changes(b"a,b\n1,\"x\r\ny\"\n3,4\n"));
        assert!(!changes(b"a,b\r\n1,\"x\ny\"\r\n"));
        assert!(changes(b"a,b\r\r\n1,2\r\r\n"));
        assert!(!changes(b"a,b\r\n1,\"x\r\r\ny\"\r\n"), "quoted");
        assert!(!changes(b"a,b\r\r1,2\r"), "a blank line in a \\r file");
    }
}

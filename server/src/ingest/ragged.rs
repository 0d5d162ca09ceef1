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

/// Walks the records (RFC 4180 quoting) and returns the first whose field
/// count differs from the header's: `(line, expected, found)`, with `line` the
/// 1-based physical line where that record starts, counted from `first_line`
/// (the reader's first). Blank lines are skipped.
fn first_ragged_record(
    reader: impl Read,
    delim: u8,
    first_line: u64,
) -> std::io::Result<Option<(u64, u64, u64)>> {
    let mut expected: Option<u64> = None;
    let mut line: u64 = first_line;
    let mut record_line: u64 = first_line;
    let mut fields: u64 = 1;
    let mut empty = true;
    let mut quoted = false;
    let mut prev_quote = false;
    let mut finish = |fields: u64, record_line: u64, empty: bool| -> Option<(u64, u64, u64)> {
        if empty {
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
            if quoted {
                if b == b'"' {
                    quoted = false;
                    prev_quote = true;
                    continue;
                }
                if b == b'\n' {
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
                b'\n' => {
                    if let Some(found) = finish(fields, record_line, empty) {
                        return Ok(Some(found));
                    }
                    line += 1;
                    record_line = line;
                    fields = 1;
                    empty = true;
                }
                b'\r' => {}
                b if b == delim => {
                    fields += 1;
                    empty = false;
                }
                _ => empty = false,
            }
            prev_quote = false;
        }
    }
    Ok(finish(fields, record_line, empty))
}

/// If the file's header (after its first `skip` lines, see
/// [`super::preamble`]) names a delimiter and some row disagrees with the
/// header's width, the error naming that row.
pub fn find_ragged_rows(
    path: &Path,
    compression: Compression,
    skip: u64,
) -> Result<Option<IngestError>, IngestError> {
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
    let Some(delim) = header_delimiter(&header) else {
        return Ok(None);
    };
    let ragged =
        first_ragged_record(opened().map_err(internal)?, delim, skip + 1).map_err(internal)?;
    Ok(
        ragged.map(|(line, expected, found)| IngestError::RaggedRows {
            line,
            expected,
            found,
        }),
    )
}

/// Whether rows end both ways, `\r\n` and a bare `\n`, outside quotes.
fn line_ends_change(reader: impl Read) -> std::io::Result<bool> {
    let (mut crlf, mut lf) = (false, false);
    let mut quoted = false;
    let mut after_cr = false;
    let mut buf = [0u8; 1 << 16];
    let mut reader = reader;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            return Ok(false);
        }
        for &b in &buf[..n] {
            match b {
                b'"' => quoted = !quoted,
                b'\n' if !quoted => {
                    if after_cr {
                        crlf = true;
                    } else {
                        lf = true;
                    }
                    if crlf && lf {
                        return Ok(true);
                    }
                }
                _ => {}
            }
            after_cr = b == b'\r';
        }
    }
}

/// Whether the delimited text at `path` has rows that end with `\r\n` and
/// rows that end with a bare `\n` (outside quotes): a file appended to by
/// another tool, which DuckDB's strict reader finds no dialect for.
pub fn mixed_line_ends(path: &Path, compression: Compression) -> Result<bool, IngestError> {
    let internal = |e: std::io::Error| IngestError::Internal(e.into());
    line_ends_change(open(path, compression).map_err(internal)?).map_err(internal)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(
            first_ragged_record(&csv[..], b',', 1).unwrap(),
            Some((5, 3, 4))
        );
    }

    #[test]
    fn quoted_delimiters_and_newlines_do_not_count() {
        let csv = b"a,b\n\"x,y\",\"multi\nline\"\n\"say \"\"hi, there\"\"\",2\n3,4,5\n";
        assert_eq!(
            first_ragged_record(&csv[..], b',', 1).unwrap(),
            Some((5, 2, 3))
        );
    }

    #[test]
    fn consistent_files_and_crlf_pass() {
        assert_eq!(
            first_ragged_record(&b"a,b\r\n1,2\r\n3,4"[..], b',', 1).unwrap(),
            None
        );
    }

    #[test]
    fn line_ends_that_change_outside_quotes_are_found() {
        let changes = |text: &[u8]| line_ends_change(text).unwrap();
        assert!(changes(b"a,b\r\n1,2\n3,4\r\n"));
        assert!(changes(b"a,b\n1,2\r\n"));
        assert!(!changes(b"a,b\r\n1,2\r\n3,4"));
        assert!(!changes(b"a,b\n1,\"x\r\ny\"\n3,4\n"));
        assert!(!changes(b"a,b\r\n1,\"x\ny\"\r\n"));
    }
}

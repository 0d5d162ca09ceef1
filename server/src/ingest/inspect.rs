//! Format detection and content checks, fed chunk by chunk as the upload streams.

use super::IngestError;
use flate2::write::MultiGzDecoder;
use std::io::Write;

/// How the text inside the file is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// CSV, TSV or another delimiter; DuckDB's sniffer finds which.
    Delimited,
    /// A JSON array of objects.
    JsonArray,
    /// One JSON object per line (or a stream of objects).
    Ndjson,
    Parquet,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detected {
    pub kind: SourceKind,
    pub compression: Compression,
    /// The whole text is JSON values none of which is a record (`42`,
    /// `"a"`, `true` on lines of their own): a one-column table if it is
    /// delimited text, JSON that holds no record if the file's name says
    /// JSON.
    pub json_values: bool,
}

impl Detected {
    /// A format that is not only JSON values.
    pub fn new(kind: SourceKind, compression: Compression) -> Self {
        Self {
            kind,
            compression,
            json_values: false,
        }
    }
}

/// Bytes kept from the start of the (decompressed) text to decide its layout.
const SAMPLE_BYTES: usize = 64 * 1024;

/// Validates text as it streams: UTF-8 (with sequences split across chunks),
/// no NUL bytes, and keeps the first bytes as a sample.
#[derive(Default)]
struct TextScan {
    sample: Vec<u8>,
    /// Bytes of an unfinished UTF-8 sequence at the end of the last chunk.
    carry: Vec<u8>,
    lines: LineEnds,
    bytes: u64,
    failure: Option<IngestError>,
    /// Most bytes accepted (the decompressed size of a gzip upload); 0 = no cap.
    limit: u64,
    /// The first line is over (or the text is JSON): its width is known.
    header_done: bool,
    /// Candidate delimiters (`,` `\t` `;` `|`) seen on the first line so far.
    header_separators: [usize; 4],
}

/// The candidate delimiters a header is counted by, before DuckDB's sniffer
/// sees the file (a header of 300,000 columns would exhaust its memory).
const SEPARATORS: [u8; 4] = [b',', b'\t', b';', b'|'];
/// Separators on the first line beyond which the header is refused unread.
const HEADER_SEPARATORS_MAX: usize = 4 * super::convert::MAX_COLUMNS;

impl TextScan {
    fn with_limit(limit: u64) -> Self {
        Self {
            limit,
            ..Self::default()
        }
    }

    /// The sample without a UTF-8 byte-order mark.
    fn text(&self) -> &[u8] {
        self.sample
            .strip_prefix(b"\xEF\xBB\xBF")
            .unwrap_or(&self.sample)
    }

    /// The text's first byte that is not whitespace (`[` and `{` start JSON).
    fn first_byte(&self) -> Option<u8> {
        self.text()
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .copied()
    }

    /// Counts the first line's separators; refuses a header wider than the
    /// column limit as soon as it is seen.
    fn check_header(&mut self, chunk: &[u8]) -> Result<(), IngestError> {
        if self.header_done {
            return Ok(());
        }
        if matches!(self.first_byte(), Some(b'[' | b'{')) {
            self.header_done = true;
            return Ok(());
        }
        // A header ends at `\n`, or at `\r` in a file whose lines end with
        // `\r` alone (Excel's "CSV (Macintosh)").
        let line = match memchr::memchr2(b'\n', b'\r', chunk) {
            Some(end) => {
                self.header_done = true;
                &chunk[..end]
            }
            None => chunk,
        };
        for (count, sep) in self.header_separators.iter_mut().zip(SEPARATORS) {
            *count += memchr::memchr_iter(sep, line).count();
            // Generous (quoted names may hold separators): anything near the
            // limit goes on to the sniffer, which counts exactly.
            if *count >= HEADER_SEPARATORS_MAX {
                return Err(IngestError::HeaderTooWide {
                    seen: HEADER_SEPARATORS_MAX,
                    max: super::convert::MAX_COLUMNS,
                });
            }
        }
        Ok(())
    }

    fn scan(&mut self, chunk: &[u8]) -> Result<(), IngestError> {
        if self.limit > 0 && self.bytes + chunk.len() as u64 > self.limit {
            return Err(IngestError::DecompressedTooLarge { max: self.limit });
        }
        if self.sample.len() < SAMPLE_BYTES {
            let take = (SAMPLE_BYTES - self.sample.len()).min(chunk.len());
            self.sample.extend_from_slice(&chunk[..take]);
        }
        if self.sample.starts_with(b"\xFF\xFE") || self.sample.starts_with(b"\xFE\xFF") {
            // A UTF-16 byte-order mark: uncompressed uploads are decoded
            // before they get here (`super::encoding`), so this is gzip.
            return Err(IngestError::CompressedUtf16);
        }
        if let Some(pos) = memchr::memchr(0, chunk) {
            if self.sample.starts_with(PARQUET_MAGIC) {
                // Parquet inside gzip (text never starts so): say so, not
                // "binary", before its first NUL byte ends the scan.
                return Err(IngestError::GzippedParquet);
            }
            let line = self.lines.line_of(chunk, pos);
            return Err(IngestError::Binary {
                detail: format!("a NUL byte on line {line}"),
            });
        }
        self.check_header(chunk)?;
        let owned;
        let data: &[u8] = if self.carry.is_empty() {
            chunk
        } else {
            owned = [self.carry.as_slice(), chunk].concat();
            &owned
        };
        let consumed_before = self.bytes - self.carry.len() as u64;
        match simdutf8::compat::from_utf8(data) {
            Ok(_) => {
                self.carry.clear();
            }
            Err(e) if e.error_len().is_none() => {
                // An incomplete sequence at the end: finish it with the next chunk.
                self.carry = data[e.valid_up_to()..].to_vec();
            }
            Err(e) => {
                let bad_at = e.valid_up_to();
                let line = self.lines.line_of(data, bad_at);
                if looks_binary(&self.sample) {
                    return Err(IngestError::Binary {
                        detail: "bytes that are neither text nor UTF-8".to_owned(),
                    });
                }
                return Err(IngestError::InvalidUtf8 {
                    line,
                    byte: consumed_before + bad_at as u64 + 1,
                });
            }
        }
        self.lines.advance(chunk);
        self.bytes += chunk.len() as u64;
        Ok(())
    }

    /// Whether the text, all of it in the sample, is nothing but JSON
    /// values, the first not an object or array (see [`Detected`]).
    fn only_json_values(&self) -> bool {
        if self.failure.is_some() || self.sample.len() as u64 != self.bytes {
            return false;
        }
        if matches!(self.first_byte(), None | Some(b'[' | b'{')) {
            return false;
        }
        serde_json::Deserializer::from_slice(self.text())
            .into_iter::<serde::de::IgnoredAny>()
            .all(|value| value.is_ok())
    }

    fn finish(self) -> Result<SourceKind, IngestError> {
        if let Some(failure) = self.failure {
            return Err(failure);
        }
        if !self.carry.is_empty() {
            return Err(IngestError::InvalidUtf8 {
                line: self.lines.seen + 1,
                byte: self.bytes - self.carry.len() as u64 + 1,
            });
        }
        if self.bytes == 0 {
            return Err(IngestError::EmptyFile);
        }
        if let Some(what) = markup_kind(self.text()) {
            return Err(IngestError::Markup { what });
        }
        match self.first_byte() {
            None if self.sample.len() as u64 == self.bytes => Err(IngestError::OnlyWhitespace),
            Some(b'[') => Ok(SourceKind::JsonArray),
            Some(b'{') => Ok(SourceKind::Ndjson),
            _ => Ok(SourceKind::Delimited),
        }
    }
}

impl Write for TextScan {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.failure.is_some() {
            return Err(std::io::Error::other("text scan already failed"));
        }
        match self.scan(buf) {
            Ok(()) => Ok(buf.len()),
            Err(e) => {
                self.failure = Some(e);
                Err(std::io::Error::other("text scan failed"))
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An HTML page or XML document (a failed download saved as `.csv`, say):
/// what it is, from how it starts.
fn markup_kind(text: &[u8]) -> Option<&'static str> {
    let start = text.iter().position(|b| !b.is_ascii_whitespace())?;
    let head: Vec<u8> = text[start..]
        .iter()
        .take(64)
        .map(u8::to_ascii_lowercase)
        .collect();
    let starts = |prefix: &str| head.starts_with(prefix.as_bytes());
    if starts("<!doctype html") || starts("<html") || starts("<head") || starts("<body") {
        Some("an HTML page")
    } else if starts("<?xml") || starts("<!doctype") || starts("<rss") || starts("<svg") {
        Some("an XML document")
    } else {
        None
    }
}

/// Lines counted chunk by chunk as the ragged-row walker ([`super::ragged`])
/// counts them, by [`ends_a_line`]: at `\n`, `\r\n` or `\r` alone, inside
/// quotes too.
#[derive(Debug, Default, Clone, Copy)]
struct LineEnds {
    /// Line ends in the chunks before.
    seen: u64,
    /// The chunks before end with `\r`: a `\n` first in the next one ends
    /// no line of its own.
    after_cr: bool,
}

impl LineEnds {
    /// Line ends in `bytes`, the text right after the chunks counted (one
    /// pass over them, as for `\n` alone).
    fn count_in(&self, bytes: &[u8]) -> u64 {
        memchr::memchr2_iter(b'\n', b'\r', bytes)
            .filter(|&at| {
                let after_cr = match at {
                    0 => self.after_cr,
                    _ => bytes[at - 1] == b'\r',
                };
                ends_a_line(bytes[at], after_cr)
            })
            .count() as u64
    }

    /// The line (from 1) of the byte at `at` in `bytes`, the text right after
    /// the chunks counted.
    fn line_of(&self, bytes: &[u8], at: usize) -> u64 {
        self.seen + 1 + self.count_in(&bytes[..at])
    }

    fn advance(&mut self, chunk: &[u8]) {
        self.seen += self.count_in(chunk);
        if let Some(&last) = chunk.last() {
            self.after_cr = last == b'\r';
        }
    }
}

/// Whether `byte` ends a line: `\n` (unless it ends `\r\n`, whose `\r` did;
/// `after_cr` says the byte before it is `\r`), or `\r`, alone (Excel for
/// Mac's "CSV (Macintosh)") or first of `\r\n`. The one rule for every
/// line number an upload's errors name.
pub(super) fn ends_a_line(byte: u8, after_cr: bool) -> bool {
    byte == b'\r' || (byte == b'\n' && !after_cr)
}

/// Text has few control characters; binary formats are full of them.
fn looks_binary(sample: &[u8]) -> bool {
    let head = &sample[..sample.len().min(1024)];
    let control = head
        .iter()
        .filter(|&&b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0c))
        .count();
    !head.is_empty() && control * 10 >= head.len()
}

enum State {
    /// Not enough bytes yet to tell the format.
    Start(Vec<u8>),
    Text(TextScan),
    Gzip(Box<MultiGzDecoder<TextScan>>),
    /// Parquet: only the trailing magic bytes matter here; DuckDB checks the rest.
    Parquet {
        tail: Vec<u8>,
    },
}

/// Sees every byte of an upload once, in order.
pub struct Inspector {
    state: State,
    total: u64,
    /// Most decompressed bytes a gzip upload may hold (0 = no cap).
    max_decompressed: u64,
}

impl Default for Inspector {
    fn default() -> Self {
        Self::new()
    }
}

const PARQUET_MAGIC: &[u8; 4] = b"PAR1";
const GZIP_MAGIC: &[u8; 2] = b"\x1f\x8b";
/// Enough to recognise every magic number checked here.
const MAGIC_BYTES: usize = 6;

impl Inspector {
    pub fn new() -> Self {
        Self::with_decompressed_limit(0)
    }

    /// An inspector that refuses gzip data decompressing to more than
    /// `max` bytes (`UPLOAD_MAX_DECOMPRESSED_BYTES`), counted as it streams.
    pub fn with_decompressed_limit(max: u64) -> Self {
        Self {
            state: State::Start(Vec::with_capacity(MAGIC_BYTES)),
            total: 0,
            max_decompressed: max,
        }
    }

    /// Feeds the next chunk. An error is final: the upload can stop here.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), IngestError> {
        self.total += chunk.len() as u64;
        if matches!(self.state, State::Parquet { .. }) {
            return self.feed_tail(chunk);
        }
        match &mut self.state {
            State::Start(head) => {
                head.extend_from_slice(chunk);
                if head.len() >= MAGIC_BYTES {
                    let head = std::mem::take(head);
                    self.decide(head)?;
                }
                Ok(())
            }
            State::Text(scan) => scan.scan(chunk),
            State::Gzip(decoder) => feed_gzip(decoder, chunk),
            State::Parquet { .. } => unreachable!("handled above"),
        }
    }

    fn decide(&mut self, head: Vec<u8>) -> Result<(), IngestError> {
        let compression = if head.starts_with(b"PK\x03\x04") {
            Some("zip")
        } else if head.starts_with(b"\x28\xb5\x2f\xfd") {
            Some("zstd")
        } else if head.starts_with(b"BZh") {
            Some("bzip2")
        } else if head.starts_with(b"\xfd7zXZ\x00") {
            Some("xz")
        } else {
            None
        };
        if let Some(compression) = compression {
            return Err(IngestError::UnsupportedCompression { compression });
        }
        if head.starts_with(PARQUET_MAGIC) {
            self.state = State::Parquet { tail: Vec::new() };
            return self.feed_tail(&head);
        }
        if head.starts_with(GZIP_MAGIC) {
            let mut decoder = Box::new(MultiGzDecoder::new(TextScan::with_limit(
                self.max_decompressed,
            )));
            let fed = feed_gzip(&mut decoder, &head);
            self.state = State::Gzip(decoder);
            return fed;
        }
        let mut scan = TextScan::default();
        let fed = scan.scan(&head);
        self.state = State::Text(scan);
        fed
    }

    fn feed_tail(&mut self, bytes: &[u8]) -> Result<(), IngestError> {
        if let State::Parquet { tail } = &mut self.state {
            tail.extend_from_slice(bytes);
            let keep = tail.len().saturating_sub(PARQUET_MAGIC.len());
            tail.drain(..keep);
        }
        Ok(())
    }

    /// Whether what was seen so far is uncompressed text that will be read
    /// as delimited text (not JSON, not markup), as [`Self::finish`] decides.
    pub fn plain_delimited(&self) -> bool {
        let State::Text(scan) = &self.state else {
            return false;
        };
        markup_kind(scan.text()).is_none()
            && matches!(scan.first_byte(), Some(b) if !matches!(b, b'[' | b'{'))
    }

    /// Bytes seen so far.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Called after the last chunk: the format, or why the file is rejected.
    pub fn finish(mut self) -> Result<Detected, IngestError> {
        if let State::Start(head) = &mut self.state {
            if head.is_empty() {
                return Err(IngestError::EmptyFile);
            }
            let head = std::mem::take(head);
            self.decide(head)?;
        }
        match self.state {
            State::Start(_) => unreachable!("decided above"),
            State::Text(scan) => {
                let json_values = scan.only_json_values();
                Ok(Detected {
                    kind: scan.finish()?,
                    compression: Compression::None,
                    json_values,
                })
            }
            State::Gzip(mut decoder) => {
                if let Err(e) = decoder.try_finish() {
                    return Err(gzip_failure(&mut decoder, e));
                }
                let scan = decoder.finish().map_err(|e| IngestError::CorruptGzip {
                    detail: e.to_string(),
                })?;
                if scan.sample.starts_with(PARQUET_MAGIC) {
                    return Err(IngestError::GzippedParquet);
                }
                let json_values = scan.only_json_values();
                let kind = scan.finish().map_err(|e| match e {
                    IngestError::EmptyFile => IngestError::CorruptGzip {
                        detail: "it decompresses to nothing".to_owned(),
                    },
                    other => other,
                })?;
                Ok(Detected {
                    kind,
                    compression: Compression::Gzip,
                    json_values,
                })
            }
            State::Parquet { tail } => {
                // Header magic + footer length + footer magic at the very least.
                if self.total < 12 || tail != PARQUET_MAGIC {
                    return Err(IngestError::InvalidParquet {
                        detail: "the footer is missing or broken (the file does not end with PAR1), so it is truncated or not Parquet".to_owned(),
                    });
                }
                Ok(Detected::new(SourceKind::Parquet, Compression::None))
            }
        }
    }
}

fn feed_gzip(decoder: &mut MultiGzDecoder<TextScan>, chunk: &[u8]) -> Result<(), IngestError> {
    decoder
        .write_all(chunk)
        .map_err(|e| gzip_failure(decoder, e))
}

/// A failure inside the decoder is either the text check's (kept in the scan)
/// or the gzip stream's own.
fn gzip_failure(decoder: &mut MultiGzDecoder<TextScan>, e: std::io::Error) -> IngestError {
    match decoder.get_mut().failure.take() {
        Some(failure) => failure,
        None => IngestError::CorruptGzip {
            detail: e.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{write::GzEncoder, Compression as Level};

    fn inspect_in_chunks(bytes: &[u8], chunk: usize) -> Result<Detected, IngestError> {
        let mut inspector = Inspector::new();
        for piece in bytes.chunks(chunk.max(1)) {
            inspector.feed(piece)?;
        }
        inspector.finish()
    }

    fn inspect(bytes: &[u8]) -> Result<Detected, IngestError> {
        // Every answer must not depend on how the body was chunked.
        let whole = inspect_in_chunks(bytes, bytes.len());
        for size in [1, 3, 7, 4096] {
            let chunked = inspect_in_chunks(bytes, size);
            assert_eq!(
                format!("{whole:?}"),
                format!("{chunked:?}"),
                "chunk size {size}"
            );
        }
        whole
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Level::default());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    fn kind(bytes: &[u8]) -> SourceKind {
        inspect(bytes).unwrap().kind
    }

    #[test]
    fn a_header_ends_at_a_carriage_return_too() {
        // Lines ending in `\r` alone (Excel's "CSV (Macintosh)"): the
        // header is the first of them, not the whole file.
        let mut text = b"id,name,amount\r".to_vec();
        for i in 0..3_000 {
            text.extend(format!("{i},Anna,NA\r").bytes());
        }
        assert_eq!(kind(&text), SourceKind::Delimited);
        let wide = format!("{}\r1\r", ",".repeat(HEADER_SEPARATORS_MAX));
        assert!(matches!(
            inspect(wide.as_bytes()),
            Err(IngestError::HeaderTooWide { .. })
        ));
    }

    #[test]
    fn tells_text_that_is_only_json_values() {
        for (text, only_values) in [
            (&b"42\n"[..], true),
            (b"\"a\"", true),
            (b"\xEF\xBB\xBFtrue\nnull\n-1.5e3", true),
            (b"1\n{\"a\": 1}", true),
            (b"a,b\n1,2\n", false),
            (b"1,2\n", false),
            (b"\"a\",\"b\"", false),
            (b"{\"a\": 1}", false),
            (b"[1]", false),
        ] {
            assert_eq!(inspect(text).unwrap().json_values, only_values, "{text:?}");
            let gz = inspect(&gzip(text)).unwrap();
            assert_eq!(gz.json_values, only_values, "gzip {text:?}");
        }
        // Past the sample, the text is not all seen: never only values.
        let many = "1\n".repeat(SAMPLE_BYTES);
        assert!(!inspect(many.as_bytes()).unwrap().json_values);
    }

    #[test]
    fn detects_layout_from_content() {
        assert_eq!(kind(b"a,b\n1,2\n"), SourceKind::Delimited);
        assert_eq!(kind(b"a\tb\n1\t2\n"), SourceKind::Delimited);
        assert_eq!(kind(b"  \n[{\"a\": 1}]"), SourceKind::JsonArray);
        assert_eq!(kind(b"{\"a\": 1}\n{\"a\": 2}\n"), SourceKind::Ndjson);
        assert_eq!(kind(b"\xEF\xBB\xBF[{\"a\": 1}]"), SourceKind::JsonArray);
        assert_eq!(kind(b"x"), SourceKind::Delimited);
    }

    #[test]
    fn detects_gzip_and_what_is_inside() {
        let d = inspect(&gzip(b"{\"a\": 1}\n")).unwrap();
        assert_eq!(d, Detected::new(SourceKind::Ndjson, Compression::Gzip));
        let d = inspect(&gzip(b"a,b\n1,2\n")).unwrap();
        assert_eq!(d.kind, SourceKind::Delimited);
    }

    #[test]
    fn detects_parquet_by_magic_bytes_and_checks_the_footer() {
        let mut fake = b"PAR1".to_vec();
        fake.extend_from_slice(&[0u8; 16]);
        fake.extend_from_slice(b"PAR1");
        assert_eq!(kind(&fake), SourceKind::Parquet);
        let truncated = &fake[..fake.len() - 3];
        assert!(matches!(
            inspect(truncated),
            Err(IngestError::InvalidParquet { .. })
        ));
    }

    #[test]
    fn empty_and_blank_files_are_rejected() {
        assert!(matches!(inspect(b""), Err(IngestError::EmptyFile)));
        assert!(matches!(
            inspect(b" \n\t\n"),
            Err(IngestError::OnlyWhitespace)
        ));
    }

    #[test]
    fn binary_garbage_is_rejected() {
        let garbage: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        assert!(matches!(inspect(&garbage), Err(IngestError::Binary { .. })));
    }

    #[test]
    fn invalid_utf8_names_the_line() {
        let err = inspect(b"name,city\nJos\xe9,Paris\n").unwrap_err();
        match err {
            IngestError::InvalidUtf8 { line, byte } => {
                assert_eq!(line, 2);
                assert_eq!(byte, 14);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn invalid_utf8_is_named_by_its_line_whatever_the_line_ends() {
        // The line a spreadsheet shows: `\r` alone ends a line (Excel for
        // Mac), `\r\n` ends one, not two, even split across chunks.
        for end in ["\r", "\r\n", "\n"] {
            let lines: [&[u8]; 5] = [b"name,city", b"Ana,Lyon", b"", b"Jos\xe9,Paris", b"Li,Oslo"];
            let bytes = lines.join(end.as_bytes());
            let err = inspect(&bytes).unwrap_err();
            assert!(
                matches!(err, IngestError::InvalidUtf8 { line: 4, .. }),
                "{end:?}: {err:?}"
            );
            let nul: Vec<u8> = bytes
                .iter()
                .map(|&b| if b == 0xe9 { 0 } else { b })
                .collect();
            match inspect(&nul).unwrap_err() {
                IngestError::Binary { detail } => {
                    assert_eq!(detail, "a NUL byte on line 4", "{end:?}")
                }
                other => panic!("{end:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn utf8_split_across_chunks_is_fine() {
        let text = "name\nZoë\n日本語\n".as_bytes();
        assert_eq!(kind(text), SourceKind::Delimited);
    }

    #[test]
    fn truncated_utf8_at_the_end_is_invalid() {
        assert!(matches!(
            inspect(b"a\n\xe6\x97"),
            Err(IngestError::InvalidUtf8 { line: 2, .. })
        ));
    }

    #[test]
    fn truncated_gzip_is_rejected() {
        let full = gzip("a,b\n".repeat(10_000).as_bytes());
        let cut = &full[..full.len() / 2];
        assert!(matches!(inspect(cut), Err(IngestError::CorruptGzip { .. })));
        let no_trailer = &full[..full.len() - 4];
        assert!(matches!(
            inspect(no_trailer),
            Err(IngestError::CorruptGzip { .. })
        ));
    }

    #[test]
    fn other_compressions_are_named() {
        let err = inspect(b"PK\x03\x04rest-of-zip").unwrap_err();
        assert!(err.to_string().starts_with("zip-compressed"), "{err}");
    }

    #[test]
    fn gzipped_parquet_is_refused_with_advice() {
        // Real Parquet holds NUL bytes from its first page on.
        for filler in [7u8, 0u8] {
            let mut fake = b"PAR1".to_vec();
            fake.extend_from_slice(&[filler; 16]);
            fake.extend_from_slice(b"PAR1");
            assert!(matches!(
                inspect(&gzip(&fake)),
                Err(IngestError::GzippedParquet)
            ));
        }
    }
}

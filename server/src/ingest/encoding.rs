//! Text that is not UTF-8 is decoded to UTF-8 as it arrives, so that
//! everything after the receipt (inspection, the scratch file, DuckDB) sees
//! UTF-8 and such a file becomes the table it holds rather than "binary" or
//! "not UTF-8":
//! - UTF-16: Excel's "Unicode Text" export (tab-separated, UTF-16LE with a
//!   byte-order mark), PowerShell 5's `Export-Csv -Encoding Unicode`, text
//!   saved as "Unicode" on Windows. Told by its byte-order mark, or, without
//!   one, by a start of ASCII characters each beside a NUL byte (`i\0d\0,\0`).
//! - windows-1252 (Latin-1's superset): Excel's "CSV" on a Western-European
//!   Windows, older exports from ERPs and banks. Told at its first non-ASCII
//!   byte: UTF-8 text is valid UTF-8 there; windows-1252 text is not, and its
//!   non-ASCII letters stand alone or in pairs between ASCII (`Müller`,
//!   `Größe`), where other 8-bit code pages (Cyrillic, Greek, the CJK
//!   double-byte ones) run whole words of them. Those, and UTF-8 broken
//!   later on, pass through for the inspector to refuse, naming the line.
//!
//! Anything else (UTF-8, gzip, Parquet, binary) passes through untouched.

use super::IngestError;
use std::borrow::Cow;

/// Bytes seen before deciding: a byte-order mark, two ASCII characters, or
/// a compressed or binary format's magic number.
const DECIDE_AFTER: usize = 4;

/// Bytes from the first non-ASCII byte on that decide between UTF-8 and
/// windows-1252 (fewer when the file ends sooner).
const WINDOW: usize = 4096;

/// The upload's encoding, decided from its first bytes.
pub enum Decoding {
    /// Fewer than [`DECIDE_AFTER`] bytes seen; they are held.
    Undecided(Vec<u8>),
    /// Compressed or binary (gzip, Parquet, ...): chunks pass through.
    AsIs,
    /// Text in 8-bit units: UTF-8, or windows-1252.
    Text(Text8),
    Utf16(Utf16),
}

impl Default for Decoding {
    fn default() -> Self {
        Self::Undecided(Vec::with_capacity(DECIDE_AFTER))
    }
}

impl Decoding {
    /// The next chunk as the rest of the pipeline takes it: UTF-8 decoded
    /// from UTF-16 or windows-1252, or the chunk itself. Empty while
    /// undecided.
    pub fn feed<'a>(&mut self, chunk: &'a [u8]) -> Result<Cow<'a, [u8]>, IngestError> {
        match self {
            Self::AsIs => Ok(Cow::Borrowed(chunk)),
            Self::Text(text) => Ok(text.feed(chunk)),
            Self::Utf16(utf16) => Ok(Cow::Owned(utf16.decode(chunk)?)),
            Self::Undecided(head) => {
                head.extend_from_slice(chunk);
                if head.len() < DECIDE_AFTER {
                    return Ok(Cow::Borrowed(&[]));
                }
                let head = std::mem::take(head);
                Ok(Cow::Owned(self.decide(head)?))
            }
        }
    }

    /// After the last chunk: what is still held, or why the UTF-16 ends
    /// early.
    pub fn finish(&mut self) -> Result<Vec<u8>, IngestError> {
        if let Self::Undecided(head) = self {
            let head = std::mem::take(head);
            let rest = self.decide(head)?;
            return Ok([rest, self.finish()?].concat());
        }
        match self {
            Self::Utf16(utf16) => utf16.finish(),
            Self::Text(text) => Ok(text.finish()),
            _ => Ok(Vec::new()),
        }
    }

    /// The encoding the upload was decoded from, for the dataset's format
    /// (`tsv (from UTF-16LE)`); `None` for UTF-8 and binary formats.
    pub fn decoded_from(&self) -> Option<&'static str> {
        match self {
            Self::Utf16(Utf16 {
                big_endian: false, ..
            }) => Some("UTF-16LE"),
            Self::Utf16(Utf16 {
                big_endian: true, ..
            }) => Some("UTF-16BE"),
            Self::Text(Text8::Windows1252) => Some("windows-1252"),
            _ => None,
        }
    }

    fn decide(&mut self, head: Vec<u8>) -> Result<Vec<u8>, IngestError> {
        let utf16 = match head.as_slice() {
            [0xFF, 0xFE, ..] => Some((false, 2)),
            [0xFE, 0xFF, ..] => Some((true, 2)),
            [a, 0, b, 0, ..] if ascii_text(*a) && ascii_text(*b) => Some((false, 0)),
            [0, a, 0, b, ..] if ascii_text(*a) && ascii_text(*b) => Some((true, 0)),
            _ => None,
        };
        if let Some((big_endian, bom)) = utf16 {
            let mut utf16 = Utf16 {
                big_endian,
                odd: None,
                high: None,
                at: bom as u64,
            };
            let decoded = utf16.decode(&head[bom..])?;
            *self = Self::Utf16(utf16);
            return Ok(decoded);
        }
        if compressed_or_binary(&head) {
            *self = Self::AsIs;
            return Ok(head);
        }
        let mut text = Text8::Ascii { last: None };
        let decoded = text.feed(&head).into_owned();
        *self = Self::Text(text);
        Ok(decoded)
    }
}

/// A printable ASCII character, a tab or a line end: what a table's text
/// starts with.
fn ascii_text(b: u8) -> bool {
    b.is_ascii_graphic() || matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// The magic numbers of what the inspector reads or refuses as compressed
/// or binary; their bytes are never decoded as text.
fn compressed_or_binary(head: &[u8]) -> bool {
    const MAGIC: [&[u8]; 6] = [
        b"\x1f\x8b",         // gzip
        b"PAR1",             // Parquet
        b"\x28\xb5\x2f\xfd", // zstd
        b"\xfd7zX",          // xz
        b"PK\x03\x04",       // zip
        b"BZh",              // bzip2
    ];
    MAGIC.iter().any(|magic| head.starts_with(magic))
}

/// Text in 8-bit units, told apart at its first non-ASCII byte.
pub enum Text8 {
    /// Only ASCII so far (the same in every encoding told apart here);
    /// `last` is its last byte.
    Ascii {
        last: Option<u8>,
    },
    /// The bytes from the first non-ASCII one, held until [`WINDOW`] of
    /// them decide; `before` is the byte before them.
    Pending {
        before: Option<u8>,
        held: Vec<u8>,
    },
    /// UTF-8 (or neither, for the inspector to refuse): passes through.
    Utf8,
    Windows1252,
}

impl Text8 {
    fn feed<'a>(&mut self, chunk: &'a [u8]) -> Cow<'a, [u8]> {
        match self {
            Self::Utf8 => Cow::Borrowed(chunk),
            Self::Windows1252 => Cow::Owned(windows_1252(chunk)),
            Self::Ascii { last } => {
                if chunk.is_ascii() {
                    *last = chunk.last().copied().or(*last);
                    return Cow::Borrowed(chunk);
                }
                let at = chunk.iter().position(|b| !b.is_ascii()).unwrap_or(0);
                let before = at.checked_sub(1).map(|i| chunk[i]).or(*last);
                *self = Self::Pending {
                    before,
                    held: Vec::with_capacity(WINDOW),
                };
                match self.feed(&chunk[at..]) {
                    decided if decided.is_empty() => Cow::Borrowed(&chunk[..at]),
                    decided if at == 0 => decided,
                    decided => Cow::Owned([&chunk[..at], &decided[..]].concat()),
                }
            }
            Self::Pending { held, .. } => {
                held.extend_from_slice(chunk);
                if held.len() < WINDOW {
                    return Cow::Borrowed(&[]);
                }
                Cow::Owned(self.decide(false))
            }
        }
    }

    fn finish(&mut self) -> Vec<u8> {
        match self {
            Self::Pending { .. } => self.decide(true),
            _ => Vec::new(),
        }
    }

    /// Decides on the first [`WINDOW`] bytes from the first non-ASCII one
    /// (whatever the chunks), and returns all that was held, decoded.
    fn decide(&mut self, ended: bool) -> Vec<u8> {
        let Self::Pending { before, held } = self else {
            return Vec::new();
        };
        let (before, held) = (*before, std::mem::take(held));
        let window = &held[..held.len().min(WINDOW)];
        let starts_utf8 = match std::str::from_utf8(window) {
            Ok(_) => true,
            Err(e) => e.valid_up_to() > 0 || (e.error_len().is_none() && !ended),
        };
        if !starts_utf8 && reads_as_windows_1252(before, window) {
            *self = Self::Windows1252;
            windows_1252(&held)
        } else {
            *self = Self::Utf8;
            held
        }
    }
}

/// Bytes windows-1252 leaves undefined (WHATWG maps them to C1 controls).
const UNDEFINED_1252: [u8; 5] = [0x81, 0x8D, 0x8F, 0x90, 0x9D];

/// Whether `window`, which starts with a byte that is not UTF-8 (`before`
/// it, the byte before), reads as Western-European text in windows-1252: no
/// NUL or undefined byte, few control characters; non-ASCII letters alone or
/// in pairs, not in the runs a Cyrillic, Greek or CJK code page makes of
/// whole words; and at least half of them inside words, beside an ASCII
/// letter (`Müller`, not the `Ã(` of bytes that are neither).
fn reads_as_windows_1252(before: Option<u8>, window: &[u8]) -> bool {
    if window.iter().any(|b| *b == 0 || UNDEFINED_1252.contains(b)) {
        return false;
    }
    let control = window
        .iter()
        .filter(|&&b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0c))
        .count();
    if control * 10 >= window.len() {
        return false;
    }
    let (mut runs, mut long, mut letter_runs, mut in_words) = (0usize, 0usize, 0usize, 0usize);
    let mut prev = before.unwrap_or(b' ');
    let mut run = 0usize;
    let (mut letter, mut anchored) = (false, false);
    for &b in window.iter().chain([&b' ']) {
        if b >= 0x80 {
            if run == 0 {
                anchored = prev.is_ascii_alphabetic();
                letter = false;
            }
            run += 1;
            letter |= letter_1252(b);
            continue;
        }
        if run > 0 {
            if run >= 5 {
                return false;
            }
            runs += 1;
            long += usize::from(run >= 3);
            if letter {
                letter_runs += 1;
                in_words += usize::from(anchored || b.is_ascii_alphabetic());
            }
        }
        run = 0;
        prev = b;
    }
    long * 4 <= runs && in_words * 2 >= letter_runs
}

/// Whether a non-ASCII byte is a letter in windows-1252 (`é`, `ß`, `Œ`, `š`).
fn letter_1252(b: u8) -> bool {
    matches!(b, 0xC0..=0xFF if b != 0xD7 && b != 0xF7)
        || matches!(
            b,
            0x83 | 0x8A | 0x8C | 0x8E | 0x9A | 0x9C | 0x9E | 0x9F | 0xAA | 0xB5 | 0xBA
        )
}

/// Code points of windows-1252's bytes 0x80..=0x9F (the rest are Latin-1's,
/// their own code points). Undefined bytes keep theirs, as WHATWG's decoder
/// does.
const HIGH_1252: [u16; 32] = [
    0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039,
    0x0152, 0x008D, 0x017D, 0x008F, 0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
    0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178,
];

/// `bytes` in windows-1252, as UTF-8.
fn windows_1252(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + bytes.len() / 8 + 4);
    let mut rest = bytes;
    while !rest.is_empty() {
        let ascii = rest
            .iter()
            .position(|b| !b.is_ascii())
            .unwrap_or(rest.len());
        out.extend_from_slice(&rest[..ascii]);
        rest = &rest[ascii..];
        let Some((&b, tail)) = rest.split_first() else {
            break;
        };
        let code = match b {
            0x80..=0x9F => u32::from(HIGH_1252[usize::from(b - 0x80)]),
            _ => u32::from(b),
        };
        let c = char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER);
        out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
        rest = tail;
    }
    out
}

/// UTF-16 decoding across chunk boundaries.
pub struct Utf16 {
    big_endian: bool,
    /// The first byte of a code unit whose second is in the next chunk.
    odd: Option<u8>,
    /// A high surrogate waiting for its low half.
    high: Option<u16>,
    /// Bytes decoded so far (the byte-order mark included), for errors.
    at: u64,
}

impl Utf16 {
    fn decode(&mut self, mut bytes: &[u8]) -> Result<Vec<u8>, IngestError> {
        let mut out = Vec::with_capacity(bytes.len() / 2 * 3 / 2 + 4);
        if let Some(first) = self.odd.take() {
            let Some((&second, rest)) = bytes.split_first() else {
                self.odd = Some(first);
                return Ok(out);
            };
            self.unit([first, second], &mut out)?;
            bytes = rest;
        }
        let mut pairs = bytes.chunks_exact(2);
        for pair in &mut pairs {
            self.unit([pair[0], pair[1]], &mut out)?;
        }
        self.odd = pairs.remainder().first().copied();
        Ok(out)
    }

    fn unit(&mut self, pair: [u8; 2], out: &mut Vec<u8>) -> Result<(), IngestError> {
        let unit = if self.big_endian {
            u16::from_be_bytes(pair)
        } else {
            u16::from_le_bytes(pair)
        };
        let invalid = |byte: u64| IngestError::InvalidUtf16 { byte: byte + 1 };
        let code = match (self.high.take(), unit) {
            (None, 0xD800..=0xDBFF) => {
                self.high = Some(unit);
                self.at += 2;
                return Ok(());
            }
            (None, 0xDC00..=0xDFFF) => return Err(invalid(self.at)),
            (None, unit) => u32::from(unit),
            (Some(high), 0xDC00..=0xDFFF) => {
                0x10000 + ((u32::from(high) - 0xD800) << 10) + (u32::from(unit) - 0xDC00)
            }
            (Some(_), _) => return Err(invalid(self.at - 2)),
        };
        let c = char::from_u32(code).ok_or_else(|| invalid(self.at))?;
        out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
        self.at += 2;
        Ok(())
    }

    fn finish(&mut self) -> Result<Vec<u8>, IngestError> {
        if self.odd.is_some() {
            return Err(IngestError::InvalidUtf16 { byte: self.at + 1 });
        }
        if self.high.is_some() {
            return Err(IngestError::InvalidUtf16 { byte: self.at - 1 });
        }
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utf16(text: &str, big_endian: bool, bom: bool) -> Vec<u8> {
        let mut out = Vec::new();
        if bom {
            out.extend(if big_endian {
                [0xFE, 0xFF]
            } else {
                [0xFF, 0xFE]
            });
        }
        for unit in text.encode_utf16() {
            out.extend(if big_endian {
                unit.to_be_bytes()
            } else {
                unit.to_le_bytes()
            });
        }
        out
    }

    /// Feeds `bytes` in chunks of `size` and returns what came out.
    fn decode(bytes: &[u8], size: usize) -> Result<(Vec<u8>, Option<&'static str>), IngestError> {
        let mut decoding = Decoding::default();
        let mut out = Vec::new();
        for chunk in bytes.chunks(size) {
            out.extend_from_slice(&decoding.feed(chunk)?);
        }
        out.extend(decoding.finish()?);
        Ok((out, decoding.decoded_from()))
    }

    #[test]
    fn utf16_is_decoded_across_any_chunk_boundary() {
        let text = "id\tname\tcity\r\n1\tJosé\t東京\r\n2\tZoë 😀\t-3.5\r\n";
        for (big_endian, bom, from) in [
            (false, true, "UTF-16LE"),
            (true, true, "UTF-16BE"),
            (false, false, "UTF-16LE"),
            (true, false, "UTF-16BE"),
        ] {
            let bytes = utf16(text, big_endian, bom);
            for size in [1, 2, 3, 5, 7, 64, bytes.len()] {
                let (out, decoded_from) = decode(&bytes, size).unwrap();
                assert_eq!(String::from_utf8(out).unwrap(), text, "{from} {size}");
                assert_eq!(decoded_from, Some(from));
            }
        }
    }

    #[test]
    fn other_text_passes_through_untouched() {
        for bytes in [
            &b"id,name\n1,a\n"[..],
            b"\xEF\xBB\xBFid\n",
            b"a\n",
            b"ab",
            b"",
            b"\x1f\x8b\x08\x00",
            b"PAR1\x00\x00",
            b"\x00\x01\x02\x03",
        ] {
            for size in [1, 3, bytes.len().max(1)] {
                let (out, decoded_from) = decode(bytes, size).unwrap();
                assert_eq!(out, bytes, "{bytes:?} {size}");
                assert_eq!(decoded_from, None);
            }
        }
    }

    /// `text` in windows-1252 (every character must have a byte there).
    fn cp1252(text: &str) -> Vec<u8> {
        text.chars()
            .map(
                |c| match HIGH_1252.iter().position(|&h| u32::from(h) == c as u32) {
                    Some(i) if c as u32 > 0xFF => 0x80 + i as u8,
                    _ => u8::try_from(c as u32).expect("a windows-1252 character"),
                },
            )
            .collect()
    }

    #[test]
    fn windows_1252_is_decoded_across_any_chunk_boundary() {
        let rows = "1;Müller;3,5\r\n2;Größe “€” – Œuvre;NA\r\n3;Ærø, naïve ½;-1,25\r\n";
        let ascii_rows = "9;plain ascii;1\r\n".repeat(700);
        for text in [
            format!("id;name;amount\r\n{rows}"),
            // The first non-ASCII byte is the file's first.
            format!("Änderung;name;amount\r\n{rows}"),
            // ... or 11 KB in: past the window, in a later chunk.
            format!("id;name;amount\r\n{ascii_rows}{rows}"),
            // ... or the file's last byte.
            "id\r\nJosé".to_owned(),
        ] {
            let bytes = cp1252(&text);
            for size in [1, 2, 3, 5, 7, 64, 4095, 4096, 4097, bytes.len()] {
                let (out, decoded_from) = decode(&bytes, size).unwrap();
                assert_eq!(String::from_utf8(out).unwrap(), text, "{size}");
                assert_eq!(decoded_from, Some("windows-1252"), "{size}");
            }
        }
    }

    #[test]
    fn utf8_and_other_code_pages_pass_through() {
        // UTF-8 broken later on: the inspector names the line of the bad byte.
        let mut broken = "id,name\n1,José\n".as_bytes().to_vec();
        broken.extend(b"2,Jos\xe9\n");
        let cyrillic = |text: &str| -> Vec<u8> {
            text.chars()
                .map(|c| match c as u32 {
                    0x410..=0x44F => (c as u32 - 0x410 + 0xC0) as u8,
                    code => u8::try_from(code).unwrap(),
                })
                .collect()
        };
        let mut png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR".to_vec();
        png.extend([0xA7; 40]);
        for bytes in [
            "id,name\n1,José, 東京 😀\n".as_bytes().to_vec(),
            "\u{feff}id,Größe\n".as_bytes().to_vec(),
            broken,
            // windows-1251 (Russian): whole words of non-ASCII bytes.
            cyrillic("id;имя;город\n1;Иван Петров;Москва\n"),
            // GBK (北京) and Shift_JIS (東京、大阪), which uses 0x81.
            b"id,city\n1,\xb1\xb1\xbe\xa9\n".to_vec(),
            b"id,city\n1,\x93\x8c\x8b\x9e\x81\x41\x91\xe5\x8d\xe3\n".to_vec(),
            png,
            // Bytes that are neither: not letters inside words.
            b"id,name\n1,\xc3\x28\n2,x\n".to_vec(),
            b"id,name\n1,\xff\xfe\xfd\n".to_vec(),
            // windows-1252 inside gzip is not decoded (the inspector reads
            // the decompressed text).
            b"\x1f\x8b\x08\x00\xe9\xe9".to_vec(),
        ] {
            for size in [1, 3, 64, bytes.len()] {
                let (out, decoded_from) = decode(&bytes, size).unwrap();
                assert_eq!(out, bytes, "{bytes:?} {size}");
                assert_eq!(decoded_from, None, "{bytes:?}");
            }
        }
    }

    #[test]
    fn broken_utf16_is_named_by_its_byte() {
        // A low surrogate alone, at byte 5 (after the mark and one unit).
        let mut bytes = utf16("a", false, true);
        bytes.extend([0x00, 0xDC, b'b', 0]);
        assert!(matches!(
            decode(&bytes, 3),
            Err(IngestError::InvalidUtf16 { byte: 5 })
        ));
        // A high surrogate followed by an ordinary character.
        let mut bytes = utf16("a", false, true);
        bytes.extend([0x3D, 0xD8, b'b', 0]);
        assert!(matches!(
            decode(&bytes, 64),
            Err(IngestError::InvalidUtf16 { byte: 5 })
        ));
        // An odd number of bytes.
        let mut bytes = utf16("ab", false, true);
        bytes.push(b'c');
        assert!(matches!(
            decode(&bytes, 2),
            Err(IngestError::InvalidUtf16 { byte: 7 })
        ));
        // A high surrogate at the very end.
        let mut bytes = utf16("ab", true, true);
        bytes.extend([0xD8, 0x3D]);
        assert!(matches!(
            decode(&bytes, 4),
            Err(IngestError::InvalidUtf16 { byte: 7 })
        ));
    }
}

//! Text in UTF-16 is decoded to UTF-8 as it arrives: Excel's "Unicode Text"
//! export (tab-separated, UTF-16LE with a byte-order mark), PowerShell 5's
//! `Export-Csv -Encoding Unicode`, and text saved as "Unicode" on Windows.
//! Everything after the receipt (inspection, the scratch file, DuckDB) sees
//! UTF-8, so such a file becomes the table it holds rather than "binary".
//!
//! UTF-16 is told by its byte-order mark, or, without one, by a start of
//! ASCII characters each beside a NUL byte (`i\0d\0,\0`). Anything else
//! passes through untouched, at no cost.

use super::IngestError;
use std::borrow::Cow;

/// Bytes seen before deciding: a byte-order mark, or two ASCII characters.
const DECIDE_AFTER: usize = 4;

/// The upload's encoding, decided from its first bytes.
pub enum Decoding {
    /// Fewer than [`DECIDE_AFTER`] bytes seen; they are held.
    Undecided(Vec<u8>),
    /// Not UTF-16: chunks pass through as they are.
    AsIs,
    Utf16(Utf16),
}

impl Default for Decoding {
    fn default() -> Self {
        Self::Undecided(Vec::with_capacity(DECIDE_AFTER))
    }
}

impl Decoding {
    /// The next chunk as the rest of the pipeline takes it: UTF-8 decoded
    /// from UTF-16, or the chunk itself. Empty while undecided.
    pub fn feed<'a>(&mut self, chunk: &'a [u8]) -> Result<Cow<'a, [u8]>, IngestError> {
        match self {
            Self::AsIs => Ok(Cow::Borrowed(chunk)),
            Self::Utf16(utf16) => Ok(Cow::Owned(utf16.decode(chunk)?)),
            Self::Undecided(head) => {
                head.extend_from_slice(chunk);
                if head.len() < DECIDE_AFTER {
                    return Ok(Cow::Borrowed(&[]));
                }
                let head = std::mem::take(head);
                self.decide(head)
            }
        }
    }

    /// After the last chunk: what is still held, or why the UTF-16 ends
    /// early.
    pub fn finish(&mut self) -> Result<Vec<u8>, IngestError> {
        match self {
            Self::AsIs => Ok(Vec::new()),
            Self::Utf16(utf16) => utf16.finish(),
            Self::Undecided(head) => {
                let head = std::mem::take(head);
                let rest = self.decide(head)?.into_owned();
                match self {
                    Self::Utf16(utf16) => Ok([rest, utf16.finish()?].concat()),
                    _ => Ok(rest),
                }
            }
        }
    }

    /// The encoding a UTF-16 upload was decoded from, for the dataset's
    /// format (`tsv (UTF-16LE)`).
    pub fn decoded_from(&self) -> Option<&'static str> {
        match self {
            Self::Utf16(Utf16 {
                big_endian: false, ..
            }) => Some("UTF-16LE"),
            Self::Utf16(Utf16 {
                big_endian: true, ..
            }) => Some("UTF-16BE"),
            _ => None,
        }
    }

    fn decide<'a>(&mut self, head: Vec<u8>) -> Result<Cow<'a, [u8]>, IngestError> {
        let utf16 = match head.as_slice() {
            [0xFF, 0xFE, ..] => Some((false, 2)),
            [0xFE, 0xFF, ..] => Some((true, 2)),
            [a, 0, b, 0, ..] if ascii_text(*a) && ascii_text(*b) => Some((false, 0)),
            [0, a, 0, b, ..] if ascii_text(*a) && ascii_text(*b) => Some((true, 0)),
            _ => None,
        };
        match utf16 {
            Some((big_endian, bom)) => {
                let mut utf16 = Utf16 {
                    big_endian,
                    odd: None,
                    high: None,
                    at: bom as u64,
                };
                let decoded = utf16.decode(&head[bom..])?;
                *self = Self::Utf16(utf16);
                Ok(Cow::Owned(decoded))
            }
            None => {
                *self = Self::AsIs;
                Ok(Cow::Owned(head))
            }
        }
    }
}

/// A printable ASCII character, a tab or a line end: what a table's text
/// starts with.
fn ascii_text(b: u8) -> bool {
    b.is_ascii_graphic() || matches!(b, b' ' | b'\t' | b'\r' | b'\n')
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

//! Turning an uploaded file into the dataset's Parquet file.
//!
//! Two stages:
//! 1. [`receive_file`] streams the file field to a scratch file through the
//!    [`Inspector`], which sees every byte (UTF-16 and windows-1252 text
//!    decoded to UTF-8 first, see `encoding`): it tells the format from the
//!    content (magic bytes, first character), decompresses gzip on the fly,
//!    and rejects what cannot be a dataset (empty, binary, invalid UTF-8,
//!    truncated gzip) before DuckDB is involved.
//! 2. [`convert`] has DuckDB sniff and read the file and write Parquet (ZSTD)
//!    under a scratch name, then renames it into place.
//!
//! Delimited text skips most of the second stage's wait: [`EarlyConvert`]
//! runs DuckDB's conversion on a pipe fed as the bytes arrive, and
//! [`convert_early`] only finishes it; anything it cannot do goes the
//! ordinary way. Text arriving faster than a pipe converts goes the ordinary
//! way too, with the dialect and types sniffed from its first rows while the
//! rest arrived ([`Early::Sniffed`]).

mod convert;
mod encoding;
mod error;
mod inspect;
mod preamble;
mod ragged;
mod receive;
mod stream;

pub use convert::{
    convert, convert_early, ConvertJob, Converted, Dialect, MAX_COLUMNS, MAX_COLUMN_NAME_CHARS,
};
pub use error::IngestError;
pub use inspect::{Compression, Detected, Inspector, SourceKind};
pub use receive::{
    next_chunk, receive_file, DiskFloor, ReceiveError, ReceiveLimits, ReceivedFile, ScratchFile,
};
pub use stream::{Early, EarlyConvert, EarlyOutput};

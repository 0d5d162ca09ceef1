/// Why an upload cannot become a dataset. Every variant but `Internal` is the
/// uploader's to fix, and its message says what is wrong (and where).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("the file is empty")]
    EmptyFile,
    #[error("the file has no data, only whitespace")]
    OnlyWhitespace,
    #[error("the file looks binary ({detail}); upload CSV, TSV, JSON, NDJSON or Parquet, optionally gzip-compressed")]
    Binary { detail: String },
    #[error(
        "the file is not valid UTF-8 (line {line}, byte {byte}); save it as UTF-8 and upload again"
    )]
    InvalidUtf8 { line: u64, byte: u64 },
    #[error(
        "the file is UTF-16 but not valid UTF-16 (byte {byte}); save it as UTF-8 and upload again"
    )]
    InvalidUtf16 { byte: u64 },
    #[error("the file is UTF-16 text inside gzip, which is not read; upload it uncompressed (UTF-16 is read) or save it as UTF-8")]
    CompressedUtf16,
    #[error("{compression}-compressed files are not supported; use gzip or upload the file uncompressed")]
    UnsupportedCompression { compression: &'static str },
    #[error("the gzip data is corrupt or truncated ({detail})")]
    CorruptGzip { detail: String },
    #[error("gzip-compressed Parquet is not supported; Parquet compresses its own pages, so upload the .parquet file as it is")]
    GzippedParquet,
    #[error("line {line} has {found} fields but the header has {expected}; every row needs the same number of fields")]
    RaggedRows {
        line: u64,
        expected: u64,
        found: u64,
    },
    #[error("line {line} opens a quoted value that never closes; a \" inside a quoted value is written twice (\"\")")]
    UnterminatedQuote { line: u64 },
    #[error(
        "line {line} starts a row of {} MB; a row may be at most {} MiB (split the value, or send the file as Parquet)",
        mb(*bytes), max >> 20
    )]
    RowTooLong { line: u64, bytes: u64, max: u64 },
    #[error("malformed JSON: {detail}")]
    MalformedJson { detail: String },
    #[error("not a valid Parquet file: {detail}")]
    InvalidParquet { detail: String },
    #[error("the data could not be read as a table: {detail}")]
    Unreadable { detail: String },
    #[error("the file is {what}, not a dataset; upload CSV, TSV, JSON, NDJSON or Parquet (a failed download saved as .csv looks like this)")]
    Markup { what: &'static str },
    #[error("the file has no columns")]
    NoColumns,
    #[error("the file has {count} columns; the limit is {max}")]
    TooManyColumns { count: usize, max: usize },
    #[error("the header has more than {seen} columns; the limit is {max}")]
    HeaderTooWide { seen: usize, max: usize },
    #[error("the gzip data decompresses to more than {max} bytes (UPLOAD_MAX_DECOMPRESSED_BYTES)")]
    DecompressedTooLarge { max: u64 },
    #[error("the Parquet file's values take {decoded} bytes decoded (each column's values at their width), more than {max} bytes (UPLOAD_MAX_DECOMPRESSED_BYTES); split it into smaller files")]
    ParquetDecodesTooLarge { decoded: u64, max: u64 },
    #[error("column {position} has a name of {len} characters; the limit is {max}")]
    ColumnNameTooLong {
        position: usize,
        len: usize,
        max: usize,
    },
    #[error("column \"{column}\" has a name the lakehouse keeps for lineage ({}); rename it", contract::names::LINEAGE_COLUMNS.join(", "))]
    ReservedColumn { column: String },
    #[error("column \"{column}\" has type {data_type}, which the lakehouse cannot store")]
    UnsupportedType { column: String, data_type: String },
    /// Raised only after a second try with the engine to itself.
    #[error("the file needs more memory to convert than the server allows (DUCKDB_MEMORY_LIMIT), even with nothing else converting, on one thread; split it, or send it as Parquet or NDJSON")]
    OutOfMemory,
    #[error("internal error while converting the file")]
    Internal(#[source] anyhow::Error),
}

impl IngestError {
    /// A stable machine-readable code for API clients and tests.
    pub fn code(&self) -> &'static str {
        match self {
            Self::EmptyFile | Self::OnlyWhitespace => "empty_file",
            Self::Binary { .. } => "binary_file",
            Self::InvalidUtf8 { .. } => "invalid_utf8",
            Self::InvalidUtf16 { .. } => "invalid_utf16",
            Self::CompressedUtf16 => "unsupported_encoding",
            Self::UnsupportedCompression { .. } | Self::GzippedParquet => "unsupported_compression",
            Self::CorruptGzip { .. } => "corrupt_gzip",
            Self::RaggedRows { .. } => "ragged_rows",
            Self::UnterminatedQuote { .. } => "unterminated_quote",
            Self::RowTooLong { .. } => "row_too_long",
            Self::MalformedJson { .. } => "malformed_json",
            Self::InvalidParquet { .. } => "invalid_parquet",
            Self::Unreadable { .. } => "unreadable",
            Self::Markup { .. } => "markup_file",
            Self::NoColumns => "no_columns",
            Self::TooManyColumns { .. } | Self::HeaderTooWide { .. } => "too_many_columns",
            Self::DecompressedTooLarge { .. } | Self::ParquetDecodesTooLarge { .. } => {
                "decompressed_too_large"
            }
            Self::ColumnNameTooLong { .. } => "column_name_too_long",
            Self::ReservedColumn { .. } => "reserved_column",
            Self::UnsupportedType { .. } => "unsupported_type",
            Self::OutOfMemory => "too_large_to_convert",
            Self::Internal(_) => "internal",
        }
    }
}

/// `bytes` in megabytes, to one decimal place.
fn mb(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1e6)
}

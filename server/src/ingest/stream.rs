//! Converting delimited text while it arrives.
//!
//! An upload of CSV or TSV is written to its scratch file as it streams (see
//! [`super::receive_file`]) and, from the moment its first rows are in, also
//! into a pipe that DuckDB reads: the `COPY` to Parquet runs beside the
//! receipt, so the uploader waits for about the longer of the two, not their
//! sum.
//!
//! The `COPY` must see the columns before the rows, so the first
//! [`SAMPLE_ROWS`] rows (exactly what the sniffer samples when it reads the
//! whole file) are held back, sniffed, and DuckDB reads the pipe with the
//! dialect and types the sniffer found. Anything unusual turns the early
//! conversion off and the upload is converted from its scratch file after the
//! receipt, as every other upload is ([`super::convert`]): a sniffer that finds
//! one column, columns the checks refuse, a value later in the file that the
//! types do not hold, running out of memory, a conversion engine another
//! upload holds alone. So an upload's outcome (its types, rows and errors) is
//! the same either way; only the wait differs.
//!
//! Bytes arriving faster than a pipe converts (loopback, a fast LAN) are
//! converted after the receipt, from the file, where DuckDB reads on every
//! thread; their held rows are still sniffed, on a thread of their own while
//! the rest arrives ([`Early::Sniffed`]), so that conversion starts reading
//! the moment the last byte is in.

use super::convert::{self, Narrow};
use crate::storage::Storage;
use contract::PARQUET_OPTIONS;
use std::{
    fs::File,
    io::Write,
    os::unix::fs::OpenOptionsExt,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

/// The rows DuckDB's sniffer samples (`sample_size`); held back until seen.
const SAMPLE_ROWS: usize = 20_480;
/// Most bytes held back for the sample. Rows wider than this on average
/// (about 1.6 KB) are converted after the receipt, where the sniffer sees
/// its full sample.
const HELD_MAX: usize = 32 << 20;
/// Bytes held at least before deciding, so the arrival rate is measured
/// over more than a burst.
const HELD_MIN: usize = 4 << 20;
/// How long DuckDB may take to open the pipe.
const OPEN_DEADLINE: Duration = Duration::from_secs(10);
/// The pipe's buffer.
const PIPE_BYTES: usize = 1 << 20;
/// How often a writer waiting on a full pipe checks that DuckDB still runs.
const POLL_EVERY: rustix::event::Timespec = rustix::event::Timespec {
    tv_sec: 0,
    tv_nsec: 50_000_000,
};

/// What an early conversion wrote: the Parquet file at the scratch path and
/// what the caller records about it. The file is removed when this is
/// dropped unused.
pub struct EarlyOutput {
    pub(super) format: String,
    pub(super) rows: usize,
    pub(super) parquet: super::ScratchFile,
}

/// The conversion running beside the receipt.
struct Running {
    /// The write end of the pipe DuckDB reads; `None` once DuckDB stopped
    /// reading (it failed; its result says why).
    pipe: Option<File>,
    copy: std::thread::JoinHandle<Result<usize, duckdb::Error>>,
    format: String,
    interrupt: std::sync::Arc<duckdb::InterruptHandle>,
}

impl Running {
    /// Writes `bytes` to the pipe. The pipe does not block: while it is full
    /// the writer waits for room, and stops writing for good once DuckDB
    /// has stopped (it failed; its result says why), so a failed conversion
    /// never holds the upload up.
    fn send(&mut self, mut bytes: &[u8]) {
        let Some(pipe) = &self.pipe else { return };
        let mut out = pipe;
        while !bytes.is_empty() {
            match out.write(bytes) {
                Ok(n) => bytes = &bytes[n..],
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if self.copy.is_finished() {
                        break;
                    }
                    let mut fds = [rustix::event::PollFd::new(
                        pipe,
                        rustix::event::PollFlags::OUT,
                    )];
                    let _ = rustix::event::poll(&mut fds, Some(&POLL_EVERY));
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        if !bytes.is_empty() {
            self.pipe = None;
        }
    }
}

enum Phase {
    /// Holding back the first rows: the bytes, the line ends among them, and
    /// when the first arrived.
    Holding(Vec<u8>, usize, Option<Instant>),
    Running(Running),
    /// Arriving too fast to convert from a pipe: converted after the
    /// receipt, from the scratch file, with the dialect and types this
    /// thread finds in the held rows meanwhile (so the conversion does not
    /// sniff again once the last byte is in).
    Sniffing(std::thread::JoinHandle<Result<convert::Dialect, String>>),
    /// Converted after the receipt instead.
    Off,
}

/// What an early conversion has for the conversion after the receipt.
pub enum Early {
    /// The whole upload, converted while it arrived.
    Converted(EarlyOutput),
    /// The dialect and types of its held rows, sniffed while it arrived.
    Sniffed(convert::Dialect),
}

/// Fed every chunk of an upload, in order, by the scratch writer's thread.
pub struct EarlyConvert {
    storage: Storage,
    stem: String,
    phase: Phase,
    /// The Parquet file being written; removed unless handed over.
    parquet: Option<super::ScratchFile>,
    /// Uploads arriving faster than this many bytes per second (measured
    /// over the held rows) are converted after the receipt
    /// (`UPLOAD_STREAM_BELOW`). DuckDB parses a pipe on one thread, a file on
    /// all of them: when the bytes come faster than a pipe converts
    /// (loopback, a fast LAN), the receipt is short anyway and converting the
    /// whole file at once is quicker; on a slower link the conversion hides
    /// behind the transfer. Measured on two cores, 300 MB: at 150 MB/s the
    /// early conversion answers 12% sooner, on loopback (over 1 GB/s) 60% later.
    stream_below: f64,
}

impl EarlyConvert {
    /// An early conversion for the upload whose scratch files start with
    /// `stem` in the storage's scratch directory.
    pub fn new(storage: Storage, stem: String, stream_below: u64) -> Self {
        Self {
            stream_below: stream_below as f64,
            storage,
            stem,
            phase: Phase::Holding(Vec::new(), 0, None),
            parquet: None,
        }
    }

    fn path(&self, suffix: &str) -> PathBuf {
        self.storage
            .tmp_dir()
            .join(format!("{}.{suffix}", self.stem))
    }

    /// The next chunk, already inspected; `text` says whether the upload is
    /// (so far) plain delimited text, the only kind converted early.
    pub fn feed(&mut self, chunk: &[u8], text: bool) {
        match &mut self.phase {
            Phase::Off => {}
            Phase::Holding(..) if !text => self.off("not plain delimited text"),
            Phase::Holding(held, lines, first) => {
                let first = *first.get_or_insert_with(Instant::now);
                held.extend_from_slice(chunk);
                *lines += memchr::memchr_iter(b'\n', chunk).count();
                // The header and the sample's rows are complete.
                if *lines > SAMPLE_ROWS && held.len() >= HELD_MIN {
                    let rate = held.len() as f64 / first.elapsed().as_secs_f64().max(1e-6);
                    if rate > self.stream_below {
                        let held = std::mem::take(held);
                        self.sniff_aside(held);
                        return;
                    }
                    let held = std::mem::take(held);
                    self.start(held);
                } else if held.len() > HELD_MAX {
                    self.off("rows too wide to hold the sniffer's sample");
                }
            }
            Phase::Running(run) => run.send(chunk),
            Phase::Sniffing(_) if !text => self.off("not plain delimited text"),
            Phase::Sniffing(_) => {}
        }
    }

    /// Sniffs the held rows on a thread of its own while the rest arrives,
    /// for the conversion after the receipt.
    fn sniff_aside(&mut self, held: Vec<u8>) {
        tracing::debug!("arriving faster than a pipe converts: converting after the receipt");
        let Ok(guard) = self.storage.conversions.clone().try_read_owned() else {
            self.off("the conversion engine is taken");
            return;
        };
        let (storage, head) = (self.storage.clone(), self.path("head.csv"));
        let sniffing = std::thread::Builder::new()
            .name("early-sniff".to_owned())
            .spawn(move || {
                let _guard = guard;
                let conn = storage.connection().map_err(|e| e.to_string())?;
                sniff_rows(&conn, &head, &held)
            });
        match sniffing {
            Ok(handle) => self.phase = Phase::Sniffing(handle),
            Err(e) => self.off(&e.to_string()),
        }
    }

    fn off(&mut self, why: &str) {
        if !matches!(self.phase, Phase::Off) {
            tracing::debug!(why, "converting after the receipt");
        }
        self.stop();
        self.phase = Phase::Off;
    }

    /// Sniffs the held rows, starts DuckDB's `COPY` from the pipe and sends
    /// it everything held so far.
    fn start(&mut self, held: Vec<u8>) {
        match self.try_start(&held) {
            Ok(mut run) => {
                run.send(&held);
                self.phase = Phase::Running(run);
            }
            Err(why) => self.off(&why),
        }
    }

    fn try_start(&mut self, held: &[u8]) -> Result<Running, String> {
        // Another conversion has the engine to itself: do not compete.
        let guard = self
            .storage
            .conversions
            .clone()
            .try_read_owned()
            .map_err(|_| "the conversion engine is taken".to_owned())?;
        let conn = self.storage.connection().map_err(|e| e.to_string())?;
        let sniffed = sniff_rows(&conn, &self.path("head.csv"), held)?;

        let fifo = self.path("pipe");
        let reader = sniffed.reader(&fifo)?;
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
        )
        .map_err(|e| format!("creating the pipe: {e}"))?;
        let parquet = super::ScratchFile::new(self.path("early.parquet"));
        let copy_sql = format!(
            "COPY (SELECT {} FROM {reader}) TO {} ({PARQUET_OPTIONS})",
            convert::select_list(&sniffed.columns, Narrow::BigInt),
            convert::literal(parquet.path()),
        );
        self.parquet = Some(parquet);
        let interrupt = conn.interrupt_handle();
        let copy = std::thread::Builder::new()
            .name("early-convert".to_owned())
            .spawn(move || {
                let _guard = guard;
                conn.execute(&copy_sql, [])
            })
            .map_err(|e| e.to_string())?;

        // DuckDB opens the pipe when the scan starts; a COPY that fails
        // before that never does, so the open does not block.
        let opened = Instant::now();
        let pipe = loop {
            match std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
                .open(&fifo)
            {
                Ok(pipe) => break Some(pipe),
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NXIO.raw_os_error()) => {
                    if copy.is_finished() || opened.elapsed() > OPEN_DEADLINE {
                        break None;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(_) => break None,
            }
        };
        match &pipe {
            Some(pipe) => {
                // Both ends are open: the name is not needed.
                let _ = std::fs::remove_file(&fifo);
                // Fewer, larger hand-overs (the default buffer is 64 KiB).
                let _ = rustix::pipe::fcntl_setpipe_size(pipe, PIPE_BYTES);
            }
            None => {
                interrupt.interrupt();
                // DuckDB may still be about to open the pipe: be its writer
                // for a moment (a FIFO opened for reading and writing never
                // blocks), so that it reads an empty pipe and stops, and
                // take the name away before leaving, so no later open waits.
                let unblock = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
                    .open(&fifo);
                let _ = std::fs::remove_file(&fifo);
                drop(unblock);
            }
        }
        Ok(Running {
            pipe,
            copy,
            format: convert::format_name(&sniffed),
            interrupt,
        })
    }

    /// Stops a running conversion (or sniff) and removes what it wrote.
    fn stop(&mut self) {
        match std::mem::replace(&mut self.phase, Phase::Off) {
            Phase::Running(run) => {
                run.interrupt.interrupt();
                drop(run.pipe);
                let _ = run.copy.join();
            }
            Phase::Sniffing(sniffing) => {
                let _ = sniffing.join();
            }
            Phase::Holding(..) | Phase::Off => {}
        }
        self.parquet = None;
    }

    /// The upload is complete and passed inspection: the Parquet file, if
    /// the early conversion ran to the end, or the dialect and types of its
    /// first rows, if it arrived too fast for one.
    pub fn finish(mut self) -> Option<Early> {
        let run = match std::mem::replace(&mut self.phase, Phase::Off) {
            Phase::Running(run) => run,
            Phase::Sniffing(sniffing) => {
                return match sniffing.join() {
                    Ok(Ok(dialect)) => Some(Early::Sniffed(dialect)),
                    Ok(Err(why)) => {
                        tracing::debug!(
                            why,
                            "no dialect from the first rows; the conversion sniffs"
                        );
                        None
                    }
                    Err(_) => None,
                };
            }
            Phase::Holding(..) | Phase::Off => return None,
        };
        // The end of the pipe is the end of the file.
        let complete = run.pipe.is_some();
        drop(run.pipe);
        let result = run.copy.join();
        match result {
            // It started after more than the sample's rows: no rows means
            // the reader misread the text, which the ordinary conversion
            // reads again from the file.
            Ok(Ok(rows)) if complete && rows > 0 => Some(Early::Converted(EarlyOutput {
                format: run.format,
                rows,
                parquet: self.parquet.take()?,
            })),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "the early conversion stopped; converting after the receipt");
                None
            }
            _ => None,
        }
    }
}

/// Sniffs the complete rows among `held` (written to `head` for the
/// sniffer, and removed again): the dialect and types to read the whole
/// upload with, if they are ones a conversion can start from (no lines
/// above the header, the sniffer ran, found more than one column, and the
/// columns pass the checks; anything else is for the ordinary conversion to
/// sniff and name).
fn sniff_rows(
    conn: &duckdb::Connection,
    head: &Path,
    held: &[u8],
) -> Result<convert::Dialect, String> {
    let whole = held
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |end| end + 1);
    if super::preamble::lines_above_header(&held[..whole], false) > 0 {
        return Err("lines above the header".to_owned());
    }
    std::fs::write(head, &held[..whole]).map_err(|e| e.to_string())?;
    let sniffed = convert::sniff_dialect(conn, head);
    let _ = std::fs::remove_file(head);
    let sniffed = sniffed.map_err(|e| format!("the sniffer failed: {e}"))?;
    if sniffed.columns.len() < 2 {
        return Err("the sniffer found one column".to_owned());
    }
    convert::check_columns(&sniffed.columns).map_err(|e| e.to_string())?;
    Ok(sniffed)
}

impl Drop for EarlyConvert {
    /// An upload that failed (or whose result went unused) leaves nothing.
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest;
    use app::ssr::EngineLimits;
    use std::path::Path;

    /// Tests feed as fast as memory goes: convert early at any rate.
    const ANY_RATE: u64 = u64::MAX;
    /// Or at none: every upload arrives faster than this.
    const NO_RATE: u64 = 1;

    fn storage(root: &Path) -> Storage {
        let limits = EngineLimits {
            threads: 2,
            memory_limit: "256MB".to_owned(),
        };
        Storage::open(root, &limits).unwrap()
    }

    fn export(rows: usize, bad_at: Option<usize>) -> Vec<u8> {
        stack::files::export_csv(rows, bad_at.map(|at| (at, "-n/a")))
    }

    fn feed(early: &mut EarlyConvert, bytes: &[u8]) {
        for chunk in bytes.chunks(200_000) {
            early.feed(chunk, true);
        }
    }

    fn left_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with("duckdb"))
            .collect();
        names.sort();
        names
    }

    /// The Parquet file an early conversion wrote while the upload arrived.
    fn converted(early: EarlyConvert) -> EarlyOutput {
        match early.finish() {
            Some(Early::Converted(output)) => output,
            _ => panic!("not converted while it arrived"),
        }
    }

    /// The dialect an upload too fast for a pipe had sniffed while it arrived.
    fn sniffed_aside(early: EarlyConvert) -> convert::Dialect {
        match early.finish() {
            Some(Early::Sniffed(dialect)) => dialect,
            _ => panic!("no dialect sniffed while it arrived"),
        }
    }

    /// Rows of either Parquet file that the other lacks (0: the same rows).
    fn rows_not_in_both(conn: &duckdb::Connection, a: &Path, b: &Path) -> i64 {
        let (a, b) = (convert::literal(a), convert::literal(b));
        [(&a, &b), (&b, &a)]
            .into_iter()
            .map(|(x, y)| {
                rows_of(
                    conn,
                    &format!("SELECT count(*) FROM (FROM read_parquet({x}) EXCEPT ALL FROM read_parquet({y}))"),
                )
            })
            .sum()
    }

    /// `bytes` converted the ordinary way, after the receipt, to `dest`.
    fn convert_after_receipt(storage: &Storage, bytes: &[u8], dest: &Path) -> ingest::Converted {
        convert_sniffed(storage, bytes, dest, None)
    }

    /// The same, with the dialect sniffed from the first rows beforehand.
    fn convert_sniffed(
        storage: &Storage,
        bytes: &[u8],
        dest: &Path,
        sniffed: Option<&convert::Dialect>,
    ) -> ingest::Converted {
        let source = storage.tmp_dir().join("ordinary.upload");
        std::fs::write(&source, bytes).unwrap();
        let converted = ingest::convert(
            &storage.connection().unwrap(),
            &ingest::ConvertJob {
                source: &source,
                detected: ingest::Detected::new(
                    ingest::SourceKind::Delimited,
                    ingest::Compression::None,
                ),
                original_name: "export.csv",
                scratch: &storage.tmp_dir().join("ordinary.parquet.partial"),
                dest,
                sniffed,
                max_decoded: 0,
            },
        )
        .unwrap();
        std::fs::remove_file(&source).unwrap();
        converted
    }

    fn rows_of(conn: &duckdb::Connection, sql: &str) -> i64 {
        conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    /// The early conversion and the ordinary one of the same file agree on
    /// the format, the schema and every row.
    #[test]
    fn a_large_export_converted_while_it_arrives_matches_the_ordinary_conversion() {
        let root = tempfile::tempdir().unwrap();
        let storage = storage(root.path());
        let bytes = export(80_000, None);

        let mut early = EarlyConvert::new(storage.clone(), "a".to_owned(), ANY_RATE);
        feed(&mut early, &bytes);
        let output = converted(early);
        let conn = storage.connection().unwrap();
        let early_dest = root.path().join("early.parquet");
        let streamed = ingest::convert_early(&conn, output, &early_dest).unwrap();

        let dest = root.path().join("ordinary.parquet");
        let ordinary = convert_after_receipt(&storage, &bytes, &dest);

        assert_eq!(streamed.format, "csv");
        assert_eq!(streamed.format, ordinary.format);
        assert_eq!(streamed.row_count, 80_000);
        assert_eq!(streamed.row_count, ordinary.row_count);
        assert_eq!(streamed.schema, ordinary.schema);
        let types: Vec<&str> = streamed
            .schema
            .iter()
            .map(|c| c.data_type.as_str())
            .collect();
        assert_eq!(
            types,
            [
                "BIGINT",
                "VARCHAR",
                "DOUBLE",
                "TIMESTAMP WITH TIME ZONE",
                "BOOLEAN",
                "VARCHAR"
            ]
        );
        assert_eq!(rows_not_in_both(&conn, &early_dest, &dest), 0);
        let a = convert::literal(&early_dest);
        assert_eq!(
            rows_of(
                &conn,
                &format!("SELECT count(*) FROM read_parquet({a}) WHERE amount IS NULL")
            ),
            80_000 / 13 + 1
        );
        assert_eq!(left_in(storage.tmp_dir()), Vec::<String>::new());
    }

    /// Quoting that starts only after the sniffer's sample (a writer that
    /// quotes only where it must) is read as quoting whichever way the file
    /// is converted: fields keep their text, not their quotes, and a quoted
    /// delimiter does not split its row. A quote inside an unquoted field
    /// stays a character, as in the sample's dialect.
    #[test]
    fn quoting_that_starts_after_the_sample_is_read_as_quoting_both_ways() {
        let root = tempfile::tempdir().unwrap();
        let storage = storage(root.path());
        let mut text = String::from("id,name,note\n");
        let pad = "x".repeat(200);
        for i in 0..30_000 {
            text.push_str(&format!("{i},name {i},{pad}\n"));
        }
        text.push_str(
            "30000,\"Smith, J\",y\n30001,\"Smith J\",\"He said \"\"hi\"\"\"\n30002,5'10\" tall,z\n",
        );
        let mut early = EarlyConvert::new(storage.clone(), "q".to_owned(), ANY_RATE);
        feed(&mut early, text.as_bytes());
        let output = converted(early);
        let conn = storage.connection().unwrap();
        let streamed = root.path().join("early.parquet");
        assert_eq!(
            ingest::convert_early(&conn, output, &streamed)
                .unwrap()
                .row_count,
            30_003
        );
        let ordinary = root.path().join("ordinary.parquet");
        assert_eq!(
            convert_after_receipt(&storage, text.as_bytes(), &ordinary).row_count,
            30_003
        );
        for file in [&streamed, &ordinary] {
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT name, note FROM read_parquet({}) WHERE id >= 30000 ORDER BY id",
                    convert::literal(file)
                ))
                .unwrap();
            let late: Vec<(String, String)> = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(
                late,
                [
                    ("Smith, J".to_owned(), "y".to_owned()),
                    ("Smith J".to_owned(), "He said \"hi\"".to_owned()),
                    ("5'10\" tall".to_owned(), "z".to_owned()),
                ],
                "{}",
                file.display()
            );
        }

        // A `"` that opens a field and never closes does not fit that
        // quote: such a file is read as the sniffer found it, quotes kept.
        let rows = &text[text.find("\n1,").unwrap() + 1..text.find("\n30000,").unwrap() + 1];
        let broken = format!("id,name,note\n0,\"abc,y\n{rows}");
        let literal = root.path().join("literal.parquet");
        assert_eq!(
            convert_after_receipt(&storage, broken.as_bytes(), &literal).row_count,
            30_000
        );
        let first: String = conn
            .query_row(
                &format!(
                    "SELECT name FROM read_parquet({}) WHERE id = 0",
                    convert::literal(&literal)
                ),
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(first, "\"abc");
        assert_eq!(left_in(storage.tmp_dir()), Vec::<String>::new());
    }

    /// An upload arriving faster than a pipe converts is converted after the
    /// receipt, from its file, with the dialect and types sniffed from its
    /// held rows while the rest arrived: the same result as sniffing the
    /// whole file then, also when a value past the sample contradicts those
    /// types (the whole file decides, as ever).
    #[test]
    fn an_upload_too_fast_for_a_pipe_is_converted_after_it_with_its_first_rows_sniffed() {
        let root = tempfile::tempdir().unwrap();
        let storage = storage(root.path());
        let conn = storage.connection().unwrap();
        for (name, bytes) in [
            ("plain", export(80_000, None)),
            ("late value", export(80_000, Some(30_000))),
        ] {
            let mut early = EarlyConvert::new(storage.clone(), "s".to_owned(), NO_RATE);
            feed(&mut early, &bytes);
            let dialect = sniffed_aside(early);
            assert_eq!(left_in(storage.tmp_dir()), Vec::<String>::new(), "{name}");
            let (fast, slow) = (
                root.path().join("fast.parquet"),
                root.path().join("slow.parquet"),
            );
            let sniffed = convert_sniffed(&storage, &bytes, &fast, Some(&dialect));
            let ordinary = convert_after_receipt(&storage, &bytes, &slow);
            assert_eq!(sniffed.format, ordinary.format, "{name}");
            assert_eq!(sniffed.schema, ordinary.schema, "{name}");
            assert_eq!(sniffed.row_count, ordinary.row_count, "{name}");
            assert_eq!(rows_not_in_both(&conn, &fast, &slow), 0, "{name}");
            // The late id is text: the whole file types the column.
            let id_type = if name == "plain" { "BIGINT" } else { "VARCHAR" };
            assert_eq!(sniffed.schema[0].data_type, id_type, "{name}");
        }

        // A file that fails as it arrives drops its sniff and its head file.
        let mut failed = EarlyConvert::new(storage.clone(), "t".to_owned(), NO_RATE);
        feed(&mut failed, &export(80_000, None)[..5_000_000]);
        assert!(matches!(failed.phase, Phase::Sniffing(_)));
        drop(failed);
        assert_eq!(left_in(storage.tmp_dir()), Vec::<String>::new());
    }

    /// Line ends as Windows writes them are read as rows whichever way the
    /// upload is converted (DuckDB's strict reader given the sniffer's
    /// `new_line='\r\n'` read none).
    #[test]
    fn windows_line_ends_are_rows_converted_early_sniffed_or_after() {
        let root = tempfile::tempdir().unwrap();
        let storage = storage(root.path());
        let bytes = String::from_utf8(export(80_000, None))
            .unwrap()
            .replace('\n', "\r\n")
            .into_bytes();
        let conn = storage.connection().unwrap();

        let mut early = EarlyConvert::new(storage.clone(), "w".to_owned(), ANY_RATE);
        feed(&mut early, &bytes);
        let streamed =
            ingest::convert_early(&conn, converted(early), &root.path().join("e.parquet"));
        assert_eq!(streamed.unwrap().row_count, 80_000);

        let mut fast = EarlyConvert::new(storage.clone(), "x".to_owned(), NO_RATE);
        feed(&mut fast, &bytes);
        let dialect = sniffed_aside(fast);
        let sniffed = convert_sniffed(
            &storage,
            &bytes,
            &root.path().join("s.parquet"),
            Some(&dialect),
        );
        assert_eq!(sniffed.row_count, 80_000);

        let ordinary = convert_after_receipt(&storage, &bytes, &root.path().join("o.parquet"));
        assert_eq!(ordinary.row_count, 80_000);
        assert_eq!(sniffed.schema, ordinary.schema);
        assert_eq!(left_in(storage.tmp_dir()), Vec::<String>::new());
    }

    /// A title above the header and line ends that change past the sample
    /// leave the upload to the ordinary conversion, at either rate, which
    /// reads every row.
    #[test]
    fn a_title_or_line_ends_that_change_are_left_to_the_ordinary_conversion() {
        let root = tempfile::tempdir().unwrap();
        let storage = storage(root.path());
        let mut titled = b"Orders export\n\n".to_vec();
        titled.extend(export(80_000, None));
        let late_crlf: Vec<u8> = String::from_utf8(export(80_000, None))
            .unwrap()
            .split_inclusive('\n')
            .enumerate()
            .flat_map(|(i, line)| {
                let line = if i > 40_000 {
                    line.replace('\n', "\r\n")
                } else {
                    line.to_owned()
                };
                line.into_bytes()
            })
            .collect();
        for (name, bytes) in [("titled", titled), ("late_crlf", late_crlf)] {
            let mut early = EarlyConvert::new(storage.clone(), format!("{name}-p"), ANY_RATE);
            feed(&mut early, &bytes);
            assert!(early.finish().is_none(), "{name}: not converted early");
            let mut fast = EarlyConvert::new(storage.clone(), format!("{name}-f"), NO_RATE);
            feed(&mut fast, &bytes);
            let dialect = match fast.finish() {
                Some(Early::Sniffed(dialect)) => Some(dialect),
                None => None,
                Some(Early::Converted(_)) => panic!("{name}: converted through a pipe"),
            };
            let dest = root.path().join(format!("{name}.parquet"));
            let converted = convert_sniffed(&storage, &bytes, &dest, dialect.as_ref());
            assert_eq!(converted.row_count, 80_000, "{name}");
            assert_eq!(converted.schema.len(), 6, "{name}");
        }
        assert_eq!(left_in(storage.tmp_dir()), Vec::<String>::new());
    }

    /// A value past the sample that its column's type cannot hold stops the
    /// early conversion (the ordinary one decides the type from the whole
    /// file), and the rest of the upload still streams through unhindered.
    #[test]
    fn a_late_value_the_sample_did_not_foresee_leaves_it_to_the_ordinary_conversion() {
        let root = tempfile::tempdir().unwrap();
        let storage = storage(root.path());
        let mut early = EarlyConvert::new(storage.clone(), "b".to_owned(), ANY_RATE);
        feed(&mut early, &export(300_000, Some(21_000)));
        assert!(early.finish().is_none());
        assert_eq!(left_in(storage.tmp_dir()), Vec::<String>::new());
    }

    /// An upload that fails part-way (too large, cut off, not UTF-8) drops
    /// its early conversion, which removes everything it made.
    #[test]
    fn an_upload_that_fails_part_way_leaves_nothing() {
        let root = tempfile::tempdir().unwrap();
        let storage = storage(root.path());
        let bytes = export(100_000, None);
        let mut early = EarlyConvert::new(storage.clone(), "c".to_owned(), ANY_RATE);
        feed(&mut early, &bytes[..bytes.len() * 3 / 4]);
        assert!(matches!(early.phase, Phase::Running(_)));
        drop(early);
        assert_eq!(left_in(storage.tmp_dir()), Vec::<String>::new());
    }

    /// Small files, JSON and anything the sniffer reads as one column go the
    /// ordinary way.
    #[test]
    fn small_files_json_and_single_columns_are_converted_after_the_receipt() {
        let root = tempfile::tempdir().unwrap();
        let storage = storage(root.path());

        let mut small = EarlyConvert::new(storage.clone(), "d".to_owned(), ANY_RATE);
        feed(&mut small, &export(1_000, None));
        assert!(small.finish().is_none());

        let mut json = EarlyConvert::new(storage.clone(), "e".to_owned(), ANY_RATE);
        for chunk in export(30_000, None).chunks(100_000) {
            json.feed(chunk, false);
        }
        assert!(json.finish().is_none());

        let single: String = (0..30_000).map(|i| format!("{i}\n")).collect();
        let mut one = EarlyConvert::new(storage.clone(), "f".to_owned(), ANY_RATE);
        feed(&mut one, format!("value\n{single}").as_bytes());
        assert!(one.finish().is_none());
        assert_eq!(left_in(storage.tmp_dir()), Vec::<String>::new());
    }
}

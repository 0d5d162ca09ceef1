//! Uploads that must be refused with a clear 4xx, leaving nothing behind.

use crate::helpers::{
    eventually, gzip, parquet_from_sql, rejected, spawn_app, spawn_app_with, utf16, windows_1252,
    Options,
};
use stack::files::export_csv;
use std::time::Duration;

#[tokio::test]
async fn empty_file() {
    let app = spawn_app().await;
    let msg = rejected(&app, "empty.csv", Vec::new(), 422, "empty_file").await;
    assert_eq!(msg, "The file is empty");
}

#[tokio::test]
async fn binary_garbage() {
    let app = spawn_app().await;
    let garbage: Vec<u8> = (0..10_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let msg = rejected(&app, "data.csv", garbage, 422, "binary_file").await;
    assert!(msg.starts_with("The file looks binary"), "{msg}");
}

#[tokio::test]
async fn invalid_utf8_names_the_line() {
    let app = spawn_app().await;
    // UTF-8 (Zoë) broken later on (a Latin-1 é).
    let msg = rejected(
        &app,
        "mixed.csv",
        b"name,city\nZo\xc3\xab,London\nJos\xe9,Paris\n".to_vec(),
        422,
        "invalid_utf8",
    )
    .await;
    assert_eq!(
        msg,
        "The file is not valid UTF-8 (line 3, byte 26); save it as UTF-8 and upload again"
    );
    // Other 8-bit code pages are not read as windows-1252: windows-1251
    // (Иван Петров, Москва), GBK (北京), Shift_JIS (東京、大阪).
    for (name, bytes) in [
        (
            "cyrillic.csv",
            &b"id;name;city\n1;\xc8\xe2\xe0\xed \xcf\xe5\xf2\xf0\xee\xe2;\xcc\xee\xf1\xea\xe2\xe0\n"[..],
        ),
        ("gbk.csv", b"id,city\n1,\xb1\xb1\xbe\xa9\n"),
        // Bytes that are no text in any of them.
        ("garbage.csv", b"id,city\n1,\xc3\x28\n"),
        (
            "sjis.csv",
            b"id,city\n1,\x93\x8c\x8b\x9e\x81\x41\x91\xe5\x8d\xe3\n",
        ),
    ] {
        let msg = rejected(&app, name, bytes.to_vec(), 422, "invalid_utf8").await;
        assert!(msg.contains("(line 2, byte "), "{name}: {msg}");
    }
    // windows-1252 inside gzip is not decoded.
    let msg = rejected(
        &app,
        "latin1.csv.gz",
        gzip(b"name,city\nJos\xe9,Paris\n"),
        422,
        "invalid_utf8",
    )
    .await;
    assert!(msg.contains("(line 2, byte 14)"), "{msg}");
}

#[tokio::test]
async fn ragged_rows_name_the_line() {
    let app = spawn_app().await;
    let csv = "a,b,c\n1,2,3\n4,5,6\n7,8,9,10\n";
    let msg = rejected(&app, "ragged.csv", csv, 422, "ragged_rows").await;
    assert_eq!(
        msg,
        "Line 4 has 4 fields but the header has 3; every row needs the same number of fields"
    );
}

/// A row longer than `LONG_ROW_MAX` (16 MiB) is refused by its line and
/// size (the reader's own message names line 1 when its sniffer meets it),
/// without repeating the row, and leaves nothing behind; uncompressed or
/// gzip, in the sniffer's sample or far past it.
#[tokio::test]
async fn a_row_longer_than_the_limit_is_named_by_its_line() {
    let app = spawn_app().await;
    let long = "x".repeat(17_000_000);
    let early = format!("id,blob\n1,short\n2,{long}\n3,y\n");
    let mut late = String::from("id,blob\n");
    for i in 0..30_000 {
        late.push_str(&format!("{i},row {i}\n"));
    }
    late.push_str(&format!("30000,\"{long}\"\n30001,z\n"));
    for (name, body, line) in [
        ("early.csv", early.clone().into_bytes(), 3),
        ("late.csv", late.clone().into_bytes(), 30_002),
        ("late.csv.gz", gzip(late.as_bytes()), 30_002),
    ] {
        let msg = rejected(&app, name, body, 422, "row_too_long").await;
        assert_eq!(
            msg,
            format!(
                "Line {line} starts a row of 17.0 MB; a row may be at most 16 MiB \
                 (split the value, or send the file as Parquet)"
            ),
            "{name}"
        );
    }
    assert_eq!(app.dataset_count().await, 0);
    app.wait_scratch_gone().await;
}

/// A quote that opens a value and never closes, in a file whose values
/// are quoted (a value cut off by a failed export, a `"` left undoubled):
/// the reader would take the rest of the file as that one value. Named by
/// its row, whatever comes after it, where the message named the row as
/// ragged with a width counted over the rest of the file. In the middle
/// and the last column, in the sniffer's sample and 30,000 rows past it,
/// plain and gzip. (In a file that quotes nothing, a lone `"` is a
/// character: see `a_lone_quote_in_a_file_that_quotes_nothing_is_kept`.)
#[tokio::test]
async fn a_quote_that_never_closes_is_named_by_its_row() {
    let app = spawn_app().await;
    let quoted = |rows: std::ops::Range<usize>| -> String {
        rows.map(|i| format!("{i},\"name {i}\",\"city, {i}\"\n"))
            .collect()
    };
    let early = format!(
        "id,name,city\n1,\"Ann\",\"Paris, FR\"\n2,\"Bob,\"Rome, IT\"\n{}",
        quoted(3..5000)
    );
    let late = format!(
        "id,name,city\n{}2,\"Bob,\"Rome, IT\"\n{}",
        quoted(0..30_000),
        quoted(30_001..35_000)
    );
    let last = format!(
        "id,name,city\n{}2,\"Bob\",\"Rome, IT\n{}",
        quoted(0..30_000),
        quoted(30_001..35_000)
    );
    for (name, body, line) in [
        ("early.csv", early.into_bytes(), 3),
        ("late.csv", late.clone().into_bytes(), 30_002),
        ("late.csv.gz", gzip(late.as_bytes()), 30_002),
        ("last.csv", last.into_bytes(), 30_002),
    ] {
        let msg = rejected(&app, name, body, 422, "unterminated_quote").await;
        assert_eq!(
            msg,
            format!(
                "Line {line} opens a quoted value that never closes; \
                 a \" inside a quoted value is written twice (\"\")"
            ),
            "{name}"
        );
    }
    assert_eq!(app.dataset_count().await, 0);
    app.wait_scratch_gone().await;
}

#[tokio::test]
async fn malformed_json() {
    let app = spawn_app().await;
    let msg = rejected(
        &app,
        "bad.json",
        r#"[{"a": 1}, {"a": 2,]"#,
        422,
        "malformed_json",
    )
    .await;
    assert!(msg.starts_with("Malformed JSON"), "{msg}");
    rejected(
        &app,
        "bad.ndjson",
        "{\"a\": 1}\n{\"a\": \n",
        422,
        "malformed_json",
    )
    .await;
    // Nested 100,000 deep (a parser that recurses would overflow its stack
    // and take the server down): refused by its depth.
    let deep = 100_000;
    for (name, body) in [
        (
            "deep.json",
            format!("[{}{}]", "[".repeat(deep), "]".repeat(deep)),
        ),
        (
            "deep_record.json",
            format!(
                r#"[{{"a": {}1{}}}]"#,
                r#"{"a": "#.repeat(deep),
                "}".repeat(deep)
            ),
        ),
    ] {
        let msg = rejected(&app, name, body, 422, "malformed_json").await;
        assert!(msg.contains("maximum recursion depth of 128"), "{msg}");
    }
}

/// JSON whose records are not objects (numbers, strings, arrays, or a mix
/// of objects and such values) has no columns to name; DuckDB would read it
/// as one column called `json`.
#[tokio::test]
async fn json_records_that_are_not_objects() {
    let app = spawn_app().await;
    // Each is named: which record, and what it is instead.
    for (name, body, why) in [
        (
            "numbers.json",
            b"[1, 2, -3]".to_vec(),
            "record 1 is a number",
        ),
        (
            "arrays.json",
            b"[[1, 2], [3, 4]]".to_vec(),
            "record 1 is an array",
        ),
        (
            "mixed.json",
            br#"[{"a": 1}, 2]"#.to_vec(),
            "record 2 is a number",
        ),
        (
            "mixed.ndjson",
            b"{\"a\": 1}\n\"x\"\n".to_vec(),
            "record 2 is a string",
        ),
        (
            "mixed.ndjson.gz",
            gzip(b"{\"a\": 1}\n[1]\n"),
            "record 2 is an array",
        ),
        ("empty.json", b"[]".to_vec(), "the file holds no record"),
        (
            "nameless.json",
            b"[{}, {}]".to_vec(),
            "every record is an empty object",
        ),
        // DuckDB reads a value named "" as no record at all.
        (
            "blank_name.json",
            br#"[{"id": 1, "": "x"}]"#.to_vec(),
            "record 1 has a value whose name is empty",
        ),
        (
            "blank_name.ndjson",
            b"{\"id\": 1}\n{\"id\": 2, \"\": 3}\n".to_vec(),
            "record 2 has a value whose name is empty",
        ),
        // Bare values in a file named as JSON: read as delimited text, they
        // would be a one-column table named after (or holding) the value.
        ("answer.json", b"42\n".to_vec(), "record 1 is a number"),
        ("negative.json", b"-3.5".to_vec(), "record 1 is a number"),
        (
            "greeting.JSON",
            b"\"hello\"".to_vec(),
            "record 1 is a string",
        ),
        (
            "flags.jsonl",
            b"true\nfalse\nnull\n".to_vec(),
            "record 1 is true or false",
        ),
        ("nothing.json", b"null".to_vec(), "record 1 is null"),
        (
            "values.ndjson.gz",
            gzip(b"1\n2\n{\"a\": 3}\n"),
            "record 1 is a number",
        ),
    ] {
        let msg = rejected(&app, name, body, 422, "malformed_json").await;
        assert!(
            msg.contains("every record must be an object of named values"),
            "{name}: {msg}"
        );
        assert!(msg.contains(why), "{name}: {msg}");
    }
    // Objects, some empty and some null, are still rows.
    let done = app
        .upload(
            "sparse.json",
            r#"[{"a": 1}, {}, {"a": -2, "b": "x"}]"#,
            None,
        )
        .await
        .expect_ok();
    assert_eq!(done.dataset.row_count, 3);
    assert_eq!(done.dataset.column_count, 2);
    // The same bare values under a delimited name are a one-column table,
    // and delimited text under a JSON name is still read as what it is.
    for (name, body, rows) in [
        ("answer.csv", "42\n", 1),
        ("misnamed.json", "id,n\n1,2\n", 1),
    ] {
        let done = app.upload(name, body, None).await.expect_ok();
        assert_eq!(done.dataset.row_count, rows, "{name}");
    }
}

/// UTF-16 that does not decode is named by its byte; UTF-16 inside gzip
/// (not decoded) is named as such rather than as binary.
#[tokio::test]
async fn utf16_that_cannot_be_read() {
    let app = spawn_app().await;
    // `a,b\n` after the mark, then a low surrogate alone at byte 11.
    let mut lone = utf16("a,b\n", false, true);
    lone.extend([0x00, 0xDC, b'1', 0, b'\n', 0]);
    let msg = rejected(&app, "broken.csv", lone, 422, "invalid_utf16").await;
    assert_eq!(
        msg,
        "The file is UTF-16 but not valid UTF-16 (byte 11); save it as UTF-8 and upload again"
    );
    let mut odd = utf16("a,b\n1,2\n", false, true);
    odd.push(b'3');
    rejected(&app, "odd.csv", odd, 422, "invalid_utf16").await;

    let unicode = utf16("a\tb\n1\t2\n", false, true);
    let msg = rejected(
        &app,
        "unicode.txt.gz",
        gzip(&unicode),
        422,
        "unsupported_encoding",
    )
    .await;
    assert!(msg.contains("UTF-16 text inside gzip"), "{msg}");
}

/// A UTF-16 upload whose connection breaks mid-body (code units split
/// across chunks, the decoder holding half of one) leaves no row and no
/// file; the same server then takes the whole file.
#[tokio::test]
async fn uploads_decoded_as_they_arrive_broken_mid_body_leave_nothing() {
    // UTF-16 and windows-1252 text is decoded to UTF-8 on the writer thread
    // as the body arrives; the client going away mid-body leaves no scratch
    // file and no dataset, and the same file sent whole is read.
    let app = spawn_app().await;
    let mut text = String::from("id\tname\n");
    for i in 0..200_000 {
        text.push_str(&format!("{i}\tJosé Müller {i}\n"));
    }
    let uploads = [
        (
            "unicode.txt",
            utf16(&text, false, true),
            "tsv (from UTF-16LE)",
        ),
        ("latin.txt", windows_1252(&text), "tsv (from windows-1252)"),
    ];
    let tmp = app.data_dir.path().join("tmp");
    for (name, bytes, _) in &uploads {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(4);
        let part = reqwest::multipart::Part::stream(reqwest::Body::wrap_stream(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        ))
        .file_name(*name);
        let request = app
            .client
            .post(app.url("/api/datasets"))
            .header("Accept", "application/json")
            .multipart(reqwest::multipart::Form::new().part("file", part))
            .send();
        let sent = tokio::spawn(request);
        // Odd-sized chunks: every other one ends inside a UTF-16 code unit.
        for chunk in bytes[..bytes.len() / 2].chunks(64 * 1024 + 1) {
            tx.send(Ok(bytes::Bytes::copy_from_slice(chunk)))
                .await
                .expect("the request reads its body");
        }
        // The server holds a scratch file of the upload, and is mid-body.
        eventually(
            Duration::from_secs(10),
            "the upload's scratch file",
            || async {
                app.stored_files()
                    .iter()
                    .any(|p| p.starts_with(&tmp))
                    .then_some(())
            },
        )
        .await;
        tx.send(Err(std::io::Error::other("the client went away")))
            .await
            .expect("the request reads its body");
        let sent = sent.await.expect("the request task");
        assert!(sent.is_err(), "{name}: the body never finished: {sent:?}");
        app.wait_scratch_gone().await;
        app.assert_nothing_persisted().await;
    }

    for (name, bytes, format) in uploads {
        let done = app.upload(name, bytes, None).await.expect_ok();
        assert_eq!(done.dataset.row_count, 200_000, "{name}");
        assert_eq!(done.dataset.source_format, format);
    }
}

#[tokio::test]
async fn truncated_gzip() {
    let app = spawn_app().await;
    let full = gzip("a,b\n1,2\n".repeat(5_000).as_bytes());
    let msg = rejected(
        &app,
        "cut.csv.gz",
        full[..full.len() / 2].to_vec(),
        422,
        "corrupt_gzip",
    )
    .await;
    assert!(msg.contains("corrupt or truncated"), "{msg}");
}

#[tokio::test]
async fn parquet_with_broken_footer() {
    let app = spawn_app().await;
    let good = parquet_from_sql("SELECT range AS n FROM range(1000)");
    let msg = rejected(
        &app,
        "cut.parquet",
        good[..good.len() - 10].to_vec(),
        422,
        "invalid_parquet",
    )
    .await;
    assert!(msg.contains("footer"), "{msg}");
    // Right magic bytes at both ends, garbage in between.
    let mut fake = b"PAR1".to_vec();
    fake.extend_from_slice(&[0x41; 64]);
    fake.extend_from_slice(&[0x10, 0, 0, 0]);
    fake.extend_from_slice(b"PAR1");
    rejected(&app, "fake.parquet", fake, 422, "invalid_parquet").await;
}

#[tokio::test]
async fn unsupported_type() {
    let app = spawn_app().await;
    let parquet = parquet_from_sql("SELECT 1 AS id, INTERVAL 3 DAY AS wait");
    let msg = rejected(&app, "interval.parquet", parquet, 422, "unsupported_type").await;
    assert!(
        msg.contains("\"wait\"") && msg.contains("INTERVAL"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_column_named_like_a_lineage_column_is_refused_in_every_format() {
    let app = spawn_app().await;
    let msg = rejected(
        &app,
        "export.csv",
        "id,_version,amount\n1,3,-2.5\n2,NA,4\n",
        422,
        "reserved_column",
    )
    .await;
    assert!(
        msg.contains("\"_version\"") && msg.contains("_ingested_at") && msg.contains("rename"),
        "{msg}"
    );
    rejected(
        &app,
        "events.ndjson",
        "{\"id\": 1, \"_ingested_at\": \"2024-01-01\"}\n",
        422,
        "reserved_column",
    )
    .await;
    let parquet = parquet_from_sql("SELECT 1 AS id, 'x.csv' AS _source_file");
    rejected(&app, "lineage.parquet", parquet, 422, "reserved_column").await;
}

#[tokio::test]
async fn too_many_columns() {
    let app = spawn_app().await;
    let header: Vec<String> = (0..1001).map(|i| format!("c{i}")).collect();
    let row: Vec<&str> = (0..1001).map(|_| "1").collect();
    let csv = format!("{}\n{}\n", header.join(","), row.join(","));
    let msg = rejected(&app, "wide.csv", csv, 422, "too_many_columns").await;
    assert!(
        msg.contains("1001 columns") && msg.contains("1000"),
        "{msg}"
    );
}

#[tokio::test]
async fn dataset_name_too_long() {
    let app = spawn_app().await;
    let long = "n".repeat(201);
    let (status, body) = app
        .upload("ok.csv", "a\n1\n", Some(&long))
        .await
        .expect_rejected();
    assert_eq!((status, body.code.as_str()), (400, "invalid_name"));
    assert!(
        body.message.contains("201 characters") && body.message.contains("200"),
        "{}",
        body.message
    );
    app.assert_nothing_persisted().await;
}

#[tokio::test]
async fn file_name_too_long() {
    let app = spawn_app().await;
    let name = format!("{}.csv", "f".repeat(300));
    let (status, body) = app.upload(&name, "a\n1\n", None).await.expect_rejected();
    assert_eq!((status, body.code.as_str()), (400, "file_name_too_long"));
    app.assert_nothing_persisted().await;
}

#[tokio::test]
async fn other_compression_is_named() {
    let app = spawn_app().await;
    let msg = rejected(
        &app,
        "data.zip",
        b"PK\x03\x04\x14\x00\x00\x00rest".to_vec(),
        415,
        "unsupported_compression",
    )
    .await;
    assert!(msg.starts_with("Zip-compressed"), "{msg}");
}

#[tokio::test]
async fn missing_file_field() {
    let app = spawn_app().await;
    let form = reqwest::multipart::Form::new().text("name", "no file");
    let (status, body) = app.upload_form(form).await.expect_rejected();
    assert_eq!((status, body.code.as_str()), (400, "missing_file"));
}

#[tokio::test]
async fn size_cap_is_enforced_mid_stream_without_content_length() {
    let app = spawn_app_with(Options {
        upload_max_bytes: 1 << 20,
        ..Options::default()
    })
    .await;
    // 4 MiB of valid CSV sent chunked, so the server only learns the size by counting.
    let (status, body) = app.upload_chunked("big.csv", b"n\n", "1\n").await;
    assert_eq!((status, body.code.as_str()), (413, "too_large"));
    assert_eq!(
        body.message,
        "The file is larger than the upload limit of 1.0 MiB"
    );
    app.assert_nothing_persisted().await;
}

#[tokio::test]
async fn declared_oversize_is_refused_before_reading() {
    let app = spawn_app_with(Options {
        upload_max_bytes: 1 << 20,
        ..Options::default()
    })
    .await;
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(vec![b'a'; 2 << 20]).file_name("big.csv"),
    );
    let (status, body) = app.upload_form(form).await.expect_rejected();
    assert_eq!((status, body.code.as_str()), (413, "too_large"));
    app.assert_nothing_persisted().await;
}

#[tokio::test]
async fn form_post_without_javascript_redirects_with_the_error() {
    let app = spawn_app().await;
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(Vec::new()).file_name("empty.csv"),
    );
    let response = app
        .client
        .post(app.url("/api/datasets"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let location = response.headers()["location"].to_str().unwrap();
    assert_eq!(location, "/?upload_error=The%20file%20is%20empty#upload");
    app.assert_nothing_persisted().await;
}

/// Faults deep in a large file (past the rows an upload's conversion starts
/// from while it arrives) are named as in a small one, and leave nothing.
#[tokio::test]
async fn faults_deep_in_a_large_file_are_named_and_leave_nothing() {
    let app = spawn_app().await;
    // Row 70,002 (line 70,004) gets a seventh field: its values shift into
    // columns whose types they do not fit, which DuckDB reports as a
    // conversion error; the message names the row's width all the same.
    let ragged = export_csv(100_000, Some((70_002, ",x")));
    let msg = rejected(&app, "ragged.csv", ragged, 422, "ragged_rows").await;
    assert_eq!(
        msg,
        "Line 70004 has 7 fields but the header has 6; every row needs the same number of fields"
    );

    // UTF-8 from its header (cliënt) on, with a Latin-1 é in row 70,002.
    let mut broken = export_csv(100_000, Some((70_002, "-Jos\u{e9}")));
    let at = broken.iter().position(|&b| b == 0xC3).expect("the é");
    broken.splice(at..at + 2, [0xE9]);
    broken.splice(3..11, "cliënt".bytes());
    let msg = rejected(&app, "broken.csv", broken, 422, "invalid_utf8").await;
    assert!(msg.contains("(line 70004,"), "{msg}");
}

/// An upload over the limit that was already being converted as it arrived
/// is refused with 413, and its conversion's file goes with it.
#[tokio::test]
async fn an_oversize_upload_converting_as_it_arrives_leaves_nothing() {
    // Over the limit after the first 4 MiB, when the conversion has begun.
    let app = spawn_app_with(Options {
        upload_max_bytes: 6 << 20,
        ..Options::default()
    })
    .await;
    let (status, body) = app.upload_chunked("big.csv", b"a,b\n", "1,2\n").await;
    assert_eq!((status, body.code.as_str()), (413, "too_large"));
    app.assert_nothing_persisted().await;
}

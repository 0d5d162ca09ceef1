//! Uploads that must succeed: every format, odd headers, concurrency.

use crate::helpers::{
    column, eventually, gzip, parquet_from_sql, read_parquet, spawn_app, spawn_app_with, utf16,
    windows_1252, Options,
};
use app::{domain::SyncStatus, model::ColumnSchema};
use stack::files::export_csv;
use std::{collections::HashSet, time::Duration};

fn types(schema: &[ColumnSchema]) -> Vec<(&str, &str)> {
    schema
        .iter()
        .map(|c| (c.name.as_str(), c.data_type.as_str()))
        .collect()
}

/// Uploads `body`, expects 422 `ragged_rows`, and returns the message.
async fn ragged(app: &crate::helpers::TestApp, name: &str, body: impl Into<Vec<u8>>) -> String {
    let (status, body) = app.upload(name, body, None).await.expect_rejected();
    assert_eq!(
        (status, body.code.as_str()),
        (422, "ragged_rows"),
        "{name}: {}",
        body.message
    );
    body.message
}

#[tokio::test]
async fn csv_upload_produces_parquet_and_a_catalogue_row() {
    let app = spawn_app().await;
    let csv = "id,name,price,sold_on\n1,Widget,9.5,2024-01-02\n2,Gadget,,2024-02-03\n3,Doohickey,12.25,2024-03-04\n";

    let done = app
        .upload("products.csv", csv, Some("Products"))
        .await
        .expect_ok();

    assert_eq!(done.dataset.name, "Products");
    assert_eq!(done.dataset.file_name, "products.csv");
    assert_eq!(done.dataset.source_format, "csv");
    assert_eq!(done.dataset.row_count, 3);
    assert_eq!(done.dataset.column_count, 4);
    assert_eq!(done.dataset.size_bytes, csv.len() as i64);
    assert_eq!(done.dataset.sync.status, SyncStatus::LocalOnly);
    assert_eq!(
        types(&done.schema),
        vec![
            ("id", "BIGINT"),
            ("name", "VARCHAR"),
            ("price", "DOUBLE"),
            ("sold_on", "DATE")
        ]
    );
    let nullable: Vec<bool> = done.schema.iter().map(|c| c.nullable).collect();
    assert_eq!(nullable, vec![false, false, true, false]);

    let (names, rows) = read_parquet(&app.parquet_path(done.dataset.id));
    assert_eq!(names, vec!["id", "name", "price", "sold_on"]);
    assert_eq!(
        rows[1],
        vec![
            Some("2".into()),
            Some("Gadget".into()),
            None,
            Some("2024-02-03".into())
        ]
    );

    let (schema, row_count, status, metadata): (
        serde_json::Value,
        i64,
        SyncStatus,
        serde_json::Value,
    ) = sqlx::query_as(
        "SELECT schema, row_count, sync_status, metadata FROM datasets WHERE id = $1",
    )
    .bind(done.dataset.id)
    .fetch_one(&app.db)
    .await
    .unwrap();
    assert_eq!(row_count, 3);
    assert_eq!(
        schema[0],
        serde_json::json!({"name": "id", "normalized_name": "id", "type": "BIGINT", "nullable": false})
    );
    assert_eq!(status, SyncStatus::LocalOnly);
    // The seed's metadata keys are derived from the typed columns.
    assert_eq!(metadata["sync_status"], "local_only");
    assert_eq!(metadata["databricks_enabled"], false);
    assert_eq!(metadata["bronze_table"], serde_json::Value::Null);
    // The consumed upload is removed in the background, right after the answer.
    app.wait_scratch_gone().await;
}

#[tokio::test]
async fn every_format_is_detected_from_content() {
    let app = spawn_app().await;
    let csv = "city,population\nOslo,709037\nBergen,291940\n";
    let json_array =
        r#"[{"city": "Oslo", "population": 709037}, {"city": "Bergen", "population": 291940}]"#;
    let ndjson = "{\"city\": \"Oslo\", \"population\": 709037}\n{\"city\": \"Bergen\", \"population\": 291940}\n";
    let parquet = parquet_from_sql(
        "SELECT * FROM (VALUES ('Oslo', 709037::BIGINT), ('Bergen', 291940::BIGINT)) t(city, population)",
    );
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("cities.csv", csv.into(), "csv"),
        ("cities.tsv", csv.replace(',', "\t").into(), "tsv"),
        (
            "cities.txt",
            csv.replace(',', ";").into(),
            "csv (delimiter \";\")",
        ),
        ("cities.json", json_array.into(), "json"),
        ("cities.ndjson", ndjson.into(), "ndjson"),
        ("cities.parquet", parquet, "parquet"),
        ("cities.csv.gz", gzip(csv.as_bytes()), "csv+gzip"),
        ("cities.ndjson.gz", gzip(ndjson.as_bytes()), "ndjson+gzip"),
        ("cities.json.gz", gzip(json_array.as_bytes()), "json+gzip"),
        // The extension lies; the content decides.
        ("cities.csv", ndjson.into(), "ndjson"),
        ("cities.dat", gzip(csv.as_bytes()), "csv+gzip"),
    ];
    for (file_name, bytes, format) in cases {
        let done = app.upload(file_name, bytes, None).await.expect_ok();
        assert_eq!(done.dataset.source_format, format, "{file_name}");
        assert_eq!(done.dataset.row_count, 2, "{file_name}");
        let cols: Vec<&str> = done.schema.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(cols, vec!["city", "population"], "{file_name}");
        assert_eq!(done.schema[1].data_type, "BIGINT", "{file_name}");
        let (_, rows) = read_parquet(&app.parquet_path(done.dataset.id));
        assert_eq!(
            rows[0],
            vec![Some("Oslo".into()), Some("709037".into())],
            "{file_name}"
        );
    }
    assert_eq!(app.dataset_count().await, 11);
}

#[tokio::test]
async fn name_defaults_to_the_file_name() {
    let app = spawn_app().await;
    let done = app
        .upload("sales-2024.csv.gz", gzip(b"a\n1\n"), Some("   "))
        .await
        .expect_ok();
    assert_eq!(done.dataset.name, "sales-2024");
}

#[tokio::test]
async fn header_only_csv_is_a_dataset_with_no_rows() {
    let app = spawn_app().await;
    let done = app
        .upload("empty.csv", "id,name,amount\n", None)
        .await
        .expect_ok();
    assert_eq!(done.dataset.row_count, 0);
    let cols: Vec<&str> = done.schema.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(cols, vec!["id", "name", "amount"]);
}

#[tokio::test]
async fn duplicate_and_empty_headers_still_ingest_with_unique_normalised_names() {
    let app = spawn_app().await;
    let csv = "Name,name,,Order Date,2nd Place\nAda,Lovelace,x,2024-01-01,yes\n";
    let done = app.upload("odd.csv", csv, None).await.expect_ok();
    assert_eq!(done.dataset.row_count, 1);
    let normalized: Vec<&str> = done
        .schema
        .iter()
        .map(|c| c.normalized_name.as_str())
        .collect();
    let unique: HashSet<&&str> = normalized.iter().collect();
    assert_eq!(unique.len(), normalized.len(), "{normalized:?}");
    assert_eq!(normalized[0], "name");
    assert_eq!(normalized[3], "order_date");
    assert_eq!(normalized[4], "_2nd_place");
    // The Parquet file keeps the names DuckDB read (made unique, never normalised).
    let (names, _) = read_parquet(&app.parquet_path(done.dataset.id));
    assert_eq!(names[0], "Name");
    assert_eq!(names[3], "Order Date");
}

#[tokio::test]
async fn twenty_concurrent_uploads_do_not_mix() {
    // All twenty at once: the cap (tested in abuse.rs) is raised for it.
    let app = spawn_app_with(Options {
        env: vec![("UPLOAD_MAX_CONCURRENT", "20".to_owned())],
        ..Options::default()
    })
    .await;
    let uploads = (0..20).map(|i| {
        let app = &app;
        async move {
            let rows = i + 1;
            let csv: String = std::iter::once("upload,seq\n".to_owned())
                .chain((0..rows).map(|r| format!("{i},{r}\n")))
                .collect();
            let done = app
                .upload(&format!("u{i}.csv"), csv, Some(&format!("upload {i}")))
                .await
                .expect_ok();
            (i, rows, done)
        }
    });
    let results = futures::future::join_all(uploads).await;
    for (i, rows, done) in results {
        assert_eq!(done.dataset.name, format!("upload {i}"));
        assert_eq!(done.dataset.row_count, rows as i64);
        let (_, data) = read_parquet(&app.parquet_path(done.dataset.id));
        assert_eq!(data.len(), rows);
        assert!(
            data.iter().all(|r| r[0] == Some(i.to_string())),
            "upload {i} holds only its own rows"
        );
    }
    assert_eq!(app.dataset_count().await, 20);
}

#[tokio::test]
async fn wide_integers_are_narrowed_not_refused() {
    let app = spawn_app().await;
    // DuckDB's JSON reader infers HUGEINT for any integer column with a
    // negative number, and CSV past BIGINT does too.
    let ndjson = "{\"id\": 1, \"delta\": -5, \"nested\": {\"n\": -7}, \"list\": [1, -2]}\n{\"id\": 2, \"delta\": 3, \"nested\": {\"n\": 8}, \"list\": [3]}\n";
    let json_array = r#"[{"id": 1, "big": 18446744073709551615}, {"id": 2, "big": -1}]"#;
    let csv = "id,big\n1,99999999999999999999999\n2,-4\n";
    let parquet =
        parquet_from_sql("SELECT * FROM (VALUES (1, -5::HUGEINT), (2, 7::HUGEINT)) t(id, delta)");
    /// File name, bytes, the column to look at, the expected types, its first value.
    type Case<'a> = (&'a str, Vec<u8>, &'a str, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            "negatives.ndjson",
            ndjson.into(),
            "delta",
            vec![
                ("id", "BIGINT"),
                ("delta", "BIGINT"),
                ("nested", "STRUCT(n BIGINT)"),
                ("list", "BIGINT[]"),
            ],
            "-5",
        ),
        (
            "negatives.ndjson.gz",
            gzip(ndjson.as_bytes()),
            "delta",
            vec![
                ("id", "BIGINT"),
                ("delta", "BIGINT"),
                ("nested", "STRUCT(n BIGINT)"),
                ("list", "BIGINT[]"),
            ],
            "-5",
        ),
        (
            "unsigned.json",
            json_array.into(),
            "big",
            vec![("id", "BIGINT"), ("big", "DECIMAL(38,0)")],
            "18446744073709551615",
        ),
        (
            "wide.csv",
            csv.into(),
            "big",
            vec![("id", "BIGINT"), ("big", "DECIMAL(38,0)")],
            "99999999999999999999999",
        ),
        (
            "negatives.parquet",
            parquet,
            "delta",
            vec![("id", "INTEGER"), ("delta", "DOUBLE")],
            "-5.0",
        ),
    ];
    for (file_name, bytes, column, expected, first) in cases {
        let done = app.upload(file_name, bytes, None).await.expect_ok();
        assert_eq!(types(&done.schema), expected, "{file_name}");
        let (names, rows) = read_parquet(&app.parquet_path(done.dataset.id));
        let at = names.iter().position(|n| n == column).unwrap();
        assert_eq!(rows[0][at].as_deref(), Some(first), "{file_name}");
    }
    // Only what no lakehouse type holds is refused: past 38 digits.
    let (status, body) = app
        .upload(
            "huge.csv",
            "id,big\n1,170141183460469231731687303715884105727\n",
            None,
        )
        .await
        .expect_rejected();
    assert_eq!(
        (status, body.code.as_str()),
        (422, "unsupported_type"),
        "{}",
        body.message
    );
    assert!(body.message.contains("\"big\""), "{}", body.message);
    assert_eq!(app.dataset_count().await, 5);
}

#[tokio::test]
async fn null_tokens_are_nulls_locally_as_in_silver() {
    let app = spawn_app().await;
    // A quarter of `amount` is 'NA' (R's export), plus the other tokens silver
    // cleans: Excel's `#N/A` and pandas' `nan` and `<NA>` among numbers.
    let csv = "id,amount,qty,code\n1,NA,3,A\n2,2.5,N/A,B\n3,-1.25,-,n/a\n4,4.0,7,NULL\n\
               5,#N/A,nan,<NA>\n6,nan,<NA>,#N/A\n";
    let done = app.upload("r_export.csv", csv, None).await.expect_ok();
    assert_eq!(
        types(&done.schema),
        vec![
            ("id", "BIGINT"),
            ("amount", "DOUBLE"),
            ("qty", "BIGINT"),
            ("code", "VARCHAR")
        ]
    );
    let nullable: Vec<bool> = done.schema.iter().map(|c| c.nullable).collect();
    assert_eq!(nullable, vec![false, true, true, true]);
    let (_, rows) = read_parquet(&app.parquet_path(done.dataset.id));
    assert_eq!(
        column(&rows, 1),
        vec![None, Some("2.5"), Some("-1.25"), Some("4.0"), None, None]
    );
    assert_eq!(
        column(&rows, 2),
        vec![Some("3"), None, None, Some("7"), None, None]
    );
    assert_eq!(
        column(&rows, 3),
        vec![Some("A"), Some("B"), None, None, None, None]
    );
}

/// Line ends as Windows writes them (CRLF, often after a byte-order mark)
/// keep every row and value, quoted line breaks too, small or large (large
/// enough to be sniffed while it arrives). Read with the sniffer's own
/// `new_line='\r\n'`, DuckDB 2.0's strict reader found no rows at all, and
/// said nothing.
#[tokio::test]
async fn windows_line_endings_keep_every_row() {
    let app = spawn_app().await;
    let csv = "\u{feff}id,name,amount\r\n1,Anna,-3.5\r\n2,Bob,NA\r\n3,\"Smith, J\",7\r\n4,\"two\r\nlines\",0\r\n";
    let done = app.upload("excel.csv", csv, None).await.expect_ok();
    assert_eq!(done.dataset.row_count, 4);
    assert_eq!(
        types(&done.schema),
        vec![("id", "BIGINT"), ("name", "VARCHAR"), ("amount", "DOUBLE")]
    );
    let (_, rows) = read_parquet(&app.parquet_path(done.dataset.id));
    assert_eq!(
        column(&rows, 1),
        vec![
            Some("Anna"),
            Some("Bob"),
            Some("Smith, J"),
            Some("two\r\nlines")
        ]
    );
    assert_eq!(
        column(&rows, 2),
        vec![Some("-3.5"), None, Some("7.0"), Some("0.0")]
    );

    let big = String::from_utf8(stack::files::export_csv(60_000, None))
        .unwrap()
        .replace('\n', "\r\n");
    let done = app.upload("big_excel.csv", big, None).await.expect_ok();
    assert_eq!(done.dataset.row_count, 60_000);
    assert_eq!(done.dataset.column_count, 6);
}

/// Blank lines and a title above the header (a report or spreadsheet
/// export) are skipped, and the dataset's format says so; read from the
/// first line such a file was one column of text, or refused. A ragged row
/// below them is named by its line in the file.
#[tokio::test]
async fn lines_above_the_header_are_skipped() {
    let app = spawn_app().await;
    let cases: [(&str, Vec<u8>, &str); 6] = [
        (
            "spreadsheet_title.csv",
            b"Sales by region,,\n,,\nid,name,amount\n1,Anna,NA\n2,Bob,-3.5\n".to_vec(),
            "csv (2 lines above the header skipped)",
        ),
        (
            "blank.csv",
            b"\n\nid,name,amount\n1,Anna,NA\n2,Bob,-3.5\n".to_vec(),
            "csv (2 lines above the header skipped)",
        ),
        (
            "report.csv",
            "\u{feff}Sales by region\r\n\"Exported 2026-05-01, finance\"\r\n\r\nid,name,amount\r\n1,Anna,NA\r\n2,Bob,-3.5\r\n"
                .as_bytes()
                .to_vec(),
            "csv (3 lines above the header skipped)",
        ),
        (
            "report.tsv.gz",
            gzip(b"Sales by region\t\nid\tname\tamount\n1\tAnna\tNA\n2\tBob\t-3.5\n"),
            "tsv+gzip (1 line above the header skipped)",
        ),
        (
            "excel_sep.csv",
            b"sep=;\r\nid;name;amount\r\n1;Anna;NA\r\n2;Bob;-3.5\r\n".to_vec(),
            "csv (delimiter \";\") (1 line above the header skipped)",
        ),
        (
            "plain.csv",
            b"id,name,amount\n1,Anna,NA\n2,Bob,-3.5\n".to_vec(),
            "csv",
        ),
    ];
    for (name, bytes, format) in cases {
        let done = app.upload(name, bytes, None).await.expect_ok();
        assert_eq!(done.dataset.source_format, format, "{name}");
        assert_eq!(done.dataset.row_count, 2, "{name}");
        assert_eq!(
            types(&done.schema),
            vec![("id", "BIGINT"), ("name", "VARCHAR"), ("amount", "DOUBLE")],
            "{name}"
        );
        let (_, rows) = read_parquet(&app.parquet_path(done.dataset.id));
        assert_eq!(rows[0][1].as_deref(), Some("Anna"), "{name}");
        assert_eq!(rows[0][2], None, "{name}: NA is null");
    }

    // Past the rows a conversion starts from while the upload arrives.
    let mut big = b"Orders export\n\n".to_vec();
    big.extend(stack::files::export_csv(60_000, None));
    let done = app.upload("big_report.csv", big, None).await.expect_ok();
    assert_eq!(done.dataset.row_count, 60_000);
    assert_eq!(done.dataset.column_count, 6);
    assert_eq!(
        done.dataset.source_format,
        "csv (2 lines above the header skipped)"
    );

    let (status, body) = app
        .upload("ragged.csv", "Report\n\na,b,c\n1,2,3\n4,5,6,7\n", None)
        .await
        .expect_rejected();
    assert_eq!((status, body.code.as_str()), (422, "ragged_rows"));
    assert!(
        body.message
            .starts_with("Line 5 has 4 fields but the header has 3"),
        "{}",
        body.message
    );
}

/// A `;` file from a locale whose decimal mark is the comma (a German or
/// French spreadsheet export) has numbers, not text: `3,5` is 3.5. A `,`,
/// tab or `|` file's `1,234` (a thousands separator, perhaps) stays text, as
/// does a column that mixes both marks.
#[tokio::test]
async fn decimal_commas_in_semicolon_files_are_numbers() {
    let app = spawn_app().await;
    let csv = "id;name;amount;when\r\n1;Anna;3,5;01.05.2026\r\n2;\"Bob; Jr\";-1234,75;02.05.2026\r\n3;Cy;NA;03.05.2026\r\n4;Di;12;04.05.2026\r\n";
    let done = app.upload("umsatz.csv", csv, None).await.expect_ok();
    assert_eq!(
        done.dataset.source_format,
        "csv (delimiter \";\") (decimal comma)"
    );
    assert_eq!(
        types(&done.schema),
        vec![
            ("id", "BIGINT"),
            ("name", "VARCHAR"),
            ("amount", "DOUBLE"),
            ("when", "DATE")
        ]
    );
    let (_, rows) = read_parquet(&app.parquet_path(done.dataset.id));
    assert_eq!(
        column(&rows, 2),
        vec![Some("3.5"), Some("-1234.75"), None, Some("12.0")]
    );
    assert_eq!(column(&rows, 3)[0], Some("2026-05-01"));

    // Large enough to be converted or sniffed while it arrives.
    let mut big = String::from("id;region;amount\n");
    for i in 0..60_000 {
        big.push_str(&format!(
            "{i};r{};{},{:02}\n",
            i % 7,
            i % 1000 - 500,
            i % 100
        ));
    }
    let done = app.upload("gross.csv", big, None).await.expect_ok();
    assert_eq!(done.dataset.row_count, 60_000);
    assert_eq!(types(&done.schema)[2], ("amount", "DOUBLE"));

    for (name, text, format, text_column) in [
        (
            "mixed.csv",
            "a;b\n1,5;x\n2.5;y\n",
            "csv (delimiter \";\")",
            0,
        ),
        ("thousands.tsv", "id\tn\n1\t1,234\n2\t5,678\n", "tsv", 1),
        (
            "ids.csv",
            "id|ids\n1|1,5\n2|2,3\n",
            "csv (delimiter \"|\")",
            1,
        ),
    ] {
        let done = app.upload(name, text, None).await.expect_ok();
        assert_eq!(done.dataset.source_format, format, "{name}");
        assert_eq!(types(&done.schema)[text_column].1, "VARCHAR", "{name}");
    }
}

/// UTF-16 text (Excel's "Unicode Text" export: tab-separated UTF-16LE with a
/// byte-order mark; PowerShell 5's `Export-Csv -Encoding Unicode`) is read as
/// the table it holds, and the format says what it was decoded from. It was
/// refused as binary.
#[tokio::test]
async fn utf16_text_is_read() {
    let app = spawn_app().await;
    let text = "id\tname\tcity\tamount\r\n1\tJosé\t東京\tNA\r\n2\t\"Zoë, 😀\"\tOslo\t-3.5\r\n";
    for (name, bytes, format) in [
        (
            "unicode.txt",
            utf16(text, false, true),
            "tsv (from UTF-16LE)",
        ),
        (
            "big_endian.tsv",
            utf16(text, true, true),
            "tsv (from UTF-16BE)",
        ),
        (
            "no_mark.tsv",
            utf16(text, false, false),
            "tsv (from UTF-16LE)",
        ),
    ] {
        let done = app.upload(name, bytes, None).await.expect_ok();
        assert_eq!(done.dataset.source_format, format, "{name}");
        assert_eq!(done.dataset.row_count, 2, "{name}");
        assert_eq!(
            types(&done.schema),
            vec![
                ("id", "BIGINT"),
                ("name", "VARCHAR"),
                ("city", "VARCHAR"),
                ("amount", "DOUBLE")
            ],
            "{name}"
        );
        let (_, rows) = read_parquet(&app.parquet_path(done.dataset.id));
        assert_eq!(column(&rows, 1), vec![Some("José"), Some("Zoë, 😀")]);
        assert_eq!(column(&rows, 2), vec![Some("東京"), Some("Oslo")]);
        assert_eq!(column(&rows, 3), vec![None, Some("-3.5")], "NA is null");
    }
    // Large enough to be sniffed while it arrives, and NDJSON too.
    let big = String::from_utf8(export_csv(60_000, None)).unwrap();
    let done = app
        .upload("big_unicode.csv", utf16(&big, false, true), None)
        .await
        .expect_ok();
    assert_eq!(done.dataset.row_count, 60_000);
    assert_eq!(done.dataset.column_count, 6);
    assert_eq!(done.dataset.source_format, "csv (from UTF-16LE)");
    let json = "{\"id\": 1, \"name\": \"José\"}\n{\"id\": -2, \"name\": null}\n";
    let done = app
        .upload("events.ndjson", utf16(json, false, true), None)
        .await
        .expect_ok();
    assert_eq!(done.dataset.row_count, 2);
    assert_eq!(done.dataset.source_format, "ndjson (from UTF-16LE)");
}

/// Text in windows-1252 (Excel's "CSV" on a Western-European Windows) is
/// read, its accented letters and typographic characters kept, whether its
/// first non-ASCII byte is in the header or deep in a large file (past the
/// rows a conversion starts from while the file arrives).
#[tokio::test]
async fn windows_1252_text_is_read() {
    let app = spawn_app().await;
    let csv = "Kunde;Straße;Betrag\r\n1;Müller “Größe”;3,5\r\n2;Œuvre – 5 €;NA\r\n3;Ærø, naïve;-1234,75\r\n";
    let done = app
        .upload("export.csv", windows_1252(csv), None)
        .await
        .expect_ok();
    assert_eq!(
        done.dataset.source_format,
        "csv (delimiter \";\") (decimal comma) (from windows-1252)"
    );
    assert_eq!(
        types(&done.schema),
        vec![
            ("Kunde", "BIGINT"),
            ("Straße", "VARCHAR"),
            ("Betrag", "DOUBLE")
        ]
    );
    let (_, rows) = read_parquet(&app.parquet_path(done.dataset.id));
    assert_eq!(
        column(&rows, 1),
        vec![
            Some("Müller “Größe”"),
            Some("Œuvre – 5 €"),
            Some("Ærø, naïve")
        ]
    );
    assert_eq!(column(&rows, 2), vec![Some("3.5"), None, Some("-1234.75")]);

    let big = String::from_utf8(export_csv(100_000, None))
        .unwrap()
        .replace(",plain 70002\n", ",plain 70002 Café Müller\n");
    let done = app
        .upload("big_latin1.csv", windows_1252(&big), None)
        .await
        .expect_ok();
    assert_eq!(done.dataset.row_count, 100_000);
    assert_eq!(done.dataset.source_format, "csv (from windows-1252)");
    let (_, rows) = read_parquet(&app.parquet_path(done.dataset.id));
    let row = rows
        .iter()
        .find(|r| r[0].as_deref() == Some("70002"))
        .expect("row 70002");
    assert_eq!(row[5].as_deref(), Some("plain 70002 Café Müller"));

    let json = "[{\"id\": 1, \"name\": \"José\"}, {\"id\": -2, \"name\": null}]";
    let done = app
        .upload("people.json", windows_1252(json), None)
        .await
        .expect_ok();
    assert_eq!(done.dataset.source_format, "json (from windows-1252)");
    let (_, rows) = read_parquet(&app.parquet_path(done.dataset.id));
    assert_eq!(column(&rows, 1), vec![Some("José"), None]);
}

/// JSON as APIs return it, one object holding the records in a member, is
/// a row per record, the object's other members kept beside each (renamed
/// where a record has the name). Objects a line each, each with a list of
/// objects, stay a row per line. A member null in every record is text.
#[tokio::test]
async fn json_records_with_sparse_or_many_names_are_rows() {
    // DuckDB's reader took such records for one MAP column (past 200 names,
    // or names each in under a tenth of the records) and the upload was
    // refused as "not records".
    let app = spawn_app().await;
    // Events: an id and one optional field each (20 of them).
    let events: Vec<String> = (0..100)
        .map(|i| format!(r#"{{"id": {i}, "field_{}": {}}}"#, i % 20, -i))
        .collect();
    let nested: Vec<String> = (0..40)
        .map(|i| format!(r#"{{"id": {i}, "attrs": {{"a{}": "x"}}}}"#, i % 20))
        .collect();
    let wide_record = |values: std::ops::Range<usize>| {
        let members: Vec<String> = values.map(|c| format!(r#""c{c}": {c}"#)).collect();
        format!("{{{}}}", members.join(", "))
    };
    for (name, body, rows, columns) in [
        ("events.ndjson", events.join("\n"), 100, 21),
        ("events.json", format!("[{}]", events.join(",")), 100, 21),
        (
            "api.json",
            format!(r#"{{"count": 100, "results": [{}]}}"#, events.join(",")),
            100,
            22,
        ),
        ("nested.ndjson", nested.join("\n"), 40, 2),
        // A 250-column export.
        (
            "wide.json",
            format!("[{}]", [wide_record(0..250), wide_record(0..250)].join(",")),
            2,
            250,
        ),
    ] {
        let done = app.upload(name, body, None).await.expect_ok();
        assert_eq!(
            (done.dataset.row_count, done.dataset.column_count),
            (rows, columns),
            "{name}"
        );
    }
    let done = app
        .upload("events.json", format!("[{}]", events.join(",")), None)
        .await
        .expect_ok();
    let (_, rows) = read_parquet(&app.parquet_path(done.dataset.id));
    // field_7 (column 8) holds -7 in row 7 and -27 in row 27, nothing else.
    let field_7: Vec<(usize, &str)> = column(&rows, 8)
        .into_iter()
        .enumerate()
        .filter_map(|(i, v)| v.map(|v| (i, v)))
        .collect();
    assert_eq!(
        field_7,
        vec![
            (7, "-7"),
            (27, "-27"),
            (47, "-47"),
            (67, "-67"),
            (87, "-87")
        ]
    );
    // More names than a dataset has columns: refused by their count.
    let too_wide = format!("[{}, {}]", wide_record(0..600), wide_record(600..1200));
    let (status, body) = app
        .upload("too_wide.json", too_wide, None)
        .await
        .expect_rejected();
    assert_eq!((status, body.code.as_str()), (422, "too_many_columns"));
    assert!(body.message.contains("1200 columns"), "{}", body.message);
}

#[tokio::test]
async fn json_records_inside_an_object_are_rows() {
    let app = spawn_app().await;
    let json = r#"{"count": 3, "next": null, "id": "page-1", "results": [
        {"id": 1, "name": "Anna", "amount": -3.5, "tags": ["a"], "address": {"city": "Oslo"}},
        {"id": 2, "name": null, "amount": 7, "tags": [], "address": {"city": "Bergen"}},
        {"id": 3, "name": "Zoë"}
    ]}"#;
    for (name, body, format) in [
        (
            "page.json",
            json.as_bytes().to_vec(),
            "json (the records in \"results\")",
        ),
        (
            "page.json.gz",
            gzip(json.as_bytes()),
            "json (the records in \"results\")+gzip",
        ),
    ] {
        let done = app.upload(name, body, None).await.expect_ok();
        assert_eq!(done.dataset.source_format, format);
        assert_eq!(done.dataset.row_count, 3);
        let names: Vec<&str> = done.schema.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["id", "name", "amount", "tags", "address", "count", "next", "id_1"]
        );
        let (_, rows) = read_parquet(&app.parquet_path(done.dataset.id));
        assert_eq!(column(&rows, 1), vec![Some("Anna"), None, Some("Zoë")]);
        assert_eq!(column(&rows, 2), vec![Some("-3.5"), Some("7.0"), None]);
        assert_eq!(column(&rows, 7), vec![Some("page-1"); 3]);
        assert_eq!(column(&rows, 6), vec![None; 3]);
        let next = done.schema.iter().find(|c| c.name == "next").unwrap();
        assert_eq!(next.data_type, "VARCHAR", "a member null throughout");
    }

    let orders = "{\"order\": 1, \"items\": [{\"sku\": \"A\"}]}\n\
                  {\"order\": 2, \"items\": [{\"sku\": \"B\"}, {\"sku\": \"C\"}], \"note\": null}\n";
    let done = app.upload("orders.ndjson", orders, None).await.expect_ok();
    assert_eq!(done.dataset.source_format, "ndjson");
    assert_eq!(done.dataset.row_count, 2);
    let note = done.schema.iter().find(|c| c.name == "note").unwrap();
    assert_eq!(note.data_type, "VARCHAR");
    // One line of them is still a row: the name says a record per line.
    let one = orders.lines().next().unwrap();
    let done = app.upload("order.jsonl", one, None).await.expect_ok();
    assert_eq!((done.dataset.row_count, done.dataset.column_count), (1, 2));
}

/// JSON whose records sit deeper in the object, as GraphQL, Solr and
/// Elasticsearch answer, is a row per record too, the members beside the
/// way down kept under their paths joined by `.`; records that are each one
/// object (Relay's edges of one node) are that object. Two lists of objects
/// at the shallowest depth that has one leave the object one row.
#[tokio::test]
async fn json_records_nested_deeper_are_rows() {
    // Each was one row holding every record in one nested value.
    let app = spawn_app().await;
    let graphql = r#"{"data": {"users": {"totalCount": 3, "pageInfo": {"hasNextPage": false},
        "nodes": [{"id": 1, "name": "Anna", "amount": -3.5}, {"id": 2, "name": null, "amount": 7},
                  {"id": 3, "name": "Zoë"}]}}}"#;
    let solr = r#"{"responseHeader": {"status": 0, "QTime": 1, "params": {"q": "*:*"}},
        "response": {"numFound": 2, "start": 0, "docs": [
            {"id": "a", "title": ["x"], "price": -1.5},
            {"id": "b", "title": ["y", "z"], "price": null}]}}"#;
    // Relay's connections: each record is an edge holding one node.
    let relay = r#"{"data": {"repository": {"issues": {"totalCount": 2, "edges": [
        {"node": {"number": 1, "title": "Crash", "author": {"login": "ana"}}},
        {"node": {"number": 2, "title": "Typo", "author": null}}]}}}}"#;
    let elastic = r#"{"took": 5, "timed_out": false, "hits": {"total": {"value": 2},
        "max_score": 1.0, "hits": [
            {"_id": "1", "_score": 1.0, "_source": {"city": "Oslo"}},
            {"_id": "2", "_score": 0.5, "_source": {"city": "Bergen"}}]}}"#;
    // A partial GraphQL answer: the edges of a connection, each a cursor
    // and a node, and the field that failed in `errors` beside `data`.
    let partial = r#"{"errors": [{"message": "secret denied", "path": ["users", "edges", 1]}],
        "data": {"users": {"totalCount": 2, "edges": [
            {"cursor": "YTE=", "node": {"id": 1, "name": "Ada"}},
            {"cursor": "YTI=", "node": {"id": -2, "name": null}}]}}}"#;
    // JSON:API: the primary data beside the resources it includes.
    let json_api = r#"{"data": [
            {"type": "articles", "id": "1", "attributes": {"title": "Rails"}},
            {"type": "articles", "id": "2", "attributes": {"title": "NA"}}],
        "included": [{"type": "people", "id": "9", "attributes": {"name": "Dan"}}],
        "meta": {"total": 2}, "links": {"self": "http://example.com/articles"}}"#;
    // A `data` that holds no list of objects (only tags): the records are
    // looked for in the rest of the object, `data` kept beside them.
    let not_data = r#"{"data": {"source": {"tags": ["a", "b"], "version": 3}},
        "result": {"count": 2, "items": [{"id": -7, "v": "NA"}, {"id": 8, "v": "x"}]}}"#;
    let graphql_names = [
        "id",
        "name",
        "amount",
        "data.users.totalCount",
        "data.users.pageInfo",
    ];
    let mut stored = std::collections::HashMap::new();
    for (name, body, format, rows, names) in [
        (
            "users.json",
            graphql.as_bytes().to_vec(),
            r#"json (the records in "data"."users"."nodes")"#,
            3,
            &graphql_names[..],
        ),
        (
            "users.json.gz",
            gzip(graphql.as_bytes()),
            r#"json (the records in "data"."users"."nodes")+gzip"#,
            3,
            &graphql_names[..],
        ),
        (
            "issues.json",
            relay.as_bytes().to_vec(),
            r#"json (the records in "data"."repository"."issues"."edges")"#,
            2,
            &[
                "number",
                "title",
                "author",
                "data.repository.issues.totalCount",
            ][..],
        ),
        (
            "partial.json",
            partial.as_bytes().to_vec(),
            r#"json (the records in "data"."users"."edges")"#,
            2,
            &["id", "name", "cursor", "errors", "data.users.totalCount"][..],
        ),
        (
            "articles.json",
            json_api.as_bytes().to_vec(),
            r#"json (the records in "data")"#,
            2,
            &["type", "id", "attributes", "included", "meta", "links"][..],
        ),
        (
            "items.json",
            not_data.as_bytes().to_vec(),
            r#"json (the records in "result"."items")"#,
            2,
            &["id", "v", "data", "result.count"][..],
        ),
        (
            "select.json",
            solr.as_bytes().to_vec(),
            r#"json (the records in "response"."docs")"#,
            2,
            &[
                "id",
                "title",
                "price",
                "responseHeader",
                "response.numFound",
                "response.start",
            ][..],
        ),
        (
            "search.json",
            elastic.as_bytes().to_vec(),
            r#"json (the records in "hits"."hits")"#,
            2,
            &[
                "_id",
                "_score",
                "_source",
                "took",
                "timed_out",
                "hits.total",
                "hits.max_score",
            ][..],
        ),
    ] {
        let done = app.upload(name, body, None).await.expect_ok();
        assert_eq!(done.dataset.source_format, format, "{name}");
        assert_eq!(done.dataset.row_count, rows, "{name}");
        let got: Vec<&str> = done.schema.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(got, names, "{name}");
        stored.insert(name, done);
    }
    let (_, rows) = read_parquet(&app.parquet_path(stored["users.json"].dataset.id));
    assert_eq!(column(&rows, 1), vec![Some("Anna"), None, Some("Zoë")]);
    assert_eq!(column(&rows, 3), vec![Some("3"); 3]);
    let solr = &stored["select.json"];
    let (_, rows) = read_parquet(&app.parquet_path(solr.dataset.id));
    assert_eq!(column(&rows, 2), vec![Some("-1.5"), None]);
    assert_eq!(column(&rows, 4), vec![Some("2"); 2]);
    let price = solr.schema.iter().find(|c| c.name == "price").unwrap();
    assert_eq!(price.data_type, "DOUBLE");
    let (_, rows) = read_parquet(&app.parquet_path(stored["partial.json"].dataset.id));
    assert_eq!(column(&rows, 0), vec![Some("1"), Some("-2")]);
    assert_eq!(column(&rows, 1), vec![Some("Ada"), None]);
    assert_eq!(column(&rows, 2), vec![Some("YTE="), Some("YTI=")]);
    assert_eq!(column(&rows, 4), vec![Some("2"); 2]);
    let (_, rows) = read_parquet(&app.parquet_path(stored["articles.json"].dataset.id));
    assert_eq!(column(&rows, 1), vec![Some("1"), Some("2")]);
    let (_, rows) = read_parquet(&app.parquet_path(stored["items.json"].dataset.id));
    assert_eq!(column(&rows, 0), vec![Some("-7"), Some("8")]);

    // Users and groups side by side: which are the records is not said,
    // and `errors` beside them is not taken for them.
    let both = r#"{"errors": [{"message": "timeout"}],
                   "data": {"users": {"nodes": [{"id": 1}, {"id": 2}]},
                            "groups": {"nodes": [{"id": 7}]}}}"#;
    let done = app.upload("both.json", both, None).await.expect_ok();
    assert_eq!(done.dataset.source_format, "ndjson");
    assert_eq!((done.dataset.row_count, done.dataset.column_count), (1, 2));
}

/// Lines that end in `\r` alone (Excel's "CSV (Macintosh)", classic Mac
/// OS text) are rows: the whole file is not one header line.
#[tokio::test]
async fn carriage_return_line_ends_are_read() {
    let app = spawn_app().await;
    let mut csv = String::from("id,name,amount\r");
    for i in 0..20_000 {
        let amount = if i % 7 == 0 {
            "NA".to_owned()
        } else {
            format!("-{i}.5")
        };
        csv.push_str(&format!("{i},\"Smith, {i}\",{amount}\r"));
    }
    let done = app.upload("mac.csv", csv.clone(), None).await.expect_ok();
    assert_eq!(done.dataset.row_count, 20_000);
    assert_eq!(
        types(&done.schema),
        vec![("id", "BIGINT"), ("name", "VARCHAR"), ("amount", "DOUBLE")]
    );
    let (_, rows) = read_parquet(&app.parquet_path(done.dataset.id));
    assert_eq!(rows[1][1].as_deref(), Some("Smith, 1"));
    assert_eq!(rows[0][2], None, "NA is null");
    // A row of another width is named by its line, counted at each `\r`.
    csv.push_str("20000,x,1,extra\r");
    let message = ragged(&app, "mac.csv", csv).await;
    assert!(message.starts_with("Line 20002 has 4 fields"), "{message}");
}

/// A lone `"` in a file that quotes nothing (inches, a nickname) is a
/// character of its value, early in the file or past the sniffer's sample,
/// not a quote that swallows the rest of the file. (In a file whose values
/// are quoted, one that never closes is refused by its line: see
/// `a_quote_that_never_closes_is_named_by_its_row`.)
#[tokio::test]
async fn a_lone_quote_in_a_file_that_quotes_nothing_is_kept() {
    let app = spawn_app().await;
    let mut csv = String::from("id,size,note\n1,\"13 inch,NA\n");
    for i in 2..30_000 {
        csv.push_str(&format!("{i},-{i}.5,NA\n"));
    }
    csv.push_str("30000,2,say \"hi\n");
    let done = app.upload("screens.csv", csv, None).await.expect_ok();
    assert_eq!(done.dataset.row_count, 30_000);
    let (_, rows) = read_parquet(&app.parquet_path(done.dataset.id));
    assert_eq!(rows[0][1].as_deref(), Some("\"13 inch"));
    assert_eq!(rows[0][2], None, "NA is null");
    assert_eq!(rows[1][1].as_deref(), Some("-2.5"));
    assert_eq!(rows[29_999][2].as_deref(), Some("say \"hi"));
}

/// `\N`, the null of MySQL's `SELECT … INTO OUTFILE` and mysqldump
/// `--tab`, PostgreSQL's `COPY` in text format and Hive's exports, is NULL,
/// so their numbers stay numbers: in the sniffer's sample and 30,000 rows
/// past it, plain and gzip, beside NA and negative numbers. A file whose
/// quoted values escape with `\` (`"say \"hi\""`) is read too; there `\N`
/// stays text, since DuckDB's reader takes no escape inside a null string.
#[tokio::test]
async fn backslash_n_from_database_exports_is_null() {
    let app = spawn_app().await;
    let mut tsv = String::from("id\tname\tscore\tnote\n");
    for i in 1..=40_000 {
        let score = match i % 7 {
            0 => "\\N".to_owned(),
            3 => "NA".to_owned(),
            _ => format!("-{i}.25"),
        };
        let name = if i % 5 == 0 { "\\N" } else { "Zoë" };
        tsv.push_str(&format!("{i}\t{name}\t{score}\tline\\nbreak {i}\n"));
    }
    for (file, body) in [
        ("export.tsv", tsv.clone().into_bytes()),
        ("export.tsv.gz", gzip(tsv.as_bytes())),
    ] {
        let done = app.upload(file, body, None).await.expect_ok();
        assert_eq!(done.dataset.row_count, 40_000, "{file}");
        assert_eq!(
            types(&done.schema),
            vec![
                ("id", "BIGINT"),
                ("name", "VARCHAR"),
                ("score", "DOUBLE"),
                ("note", "VARCHAR")
            ],
            "{file}"
        );
        let (_, rows) = read_parquet(&app.parquet_path(done.dataset.id));
        let nulls = |c: usize| rows.iter().filter(|r| r[c].is_none()).count();
        assert_eq!(nulls(1), 8_000, "{file}: \\N is null in text");
        assert_eq!(nulls(2), 5_714 + 5_714, "{file}: \\N and NA are null");
        assert_eq!(rows[0][2].as_deref(), Some("-1.25"));
        assert_eq!(rows[39_998][3].as_deref(), Some("line\\nbreak 39999"));
    }

    let csv = "id,name,note\n1,\"Ann\",\"say \\\"hi\\\", ok\"\n2,\\N,\"x\"\n3,\"Bob\",NA\n";
    let done = app.upload("escaped.csv", csv, None).await.expect_ok();
    assert_eq!(done.dataset.row_count, 3);
    let (_, rows) = read_parquet(&app.parquet_path(done.dataset.id));
    assert_eq!(rows[0][2].as_deref(), Some("say \"hi\", ok"));
    assert_eq!(rows[1][1].as_deref(), Some("\\N"), "kept as text here");
    assert_eq!(rows[2][2], None, "NA is null");
}

/// Rows ending both ways, `\r\n` and `\n` (a file appended to by another
/// tool), or `\r\r\n`, are read, quoted line ends kept; DuckDB's strict
/// reader found no dialect for them. Rows of another width are still named.
#[tokio::test]
async fn line_ends_that_change_within_the_file_are_read() {
    let app = spawn_app().await;
    let csv = "id,name,amount\r\n1,Anna,NA\n2,\"Smith, J\r\nJr\",-3.5\r\n3,Bob,7\n";
    let done = app.upload("mixed.csv", csv, None).await.expect_ok();
    assert_eq!(done.dataset.row_count, 3);
    assert_eq!(
        types(&done.schema),
        vec![("id", "BIGINT"), ("name", "VARCHAR"), ("amount", "DOUBLE")]
    );
    let (_, rows) = read_parquet(&app.parquet_path(done.dataset.id));
    assert_eq!(
        column(&rows, 1),
        vec![Some("Anna"), Some("Smith, J\r\nJr"), Some("Bob")]
    );
    assert_eq!(rows[0][2], None, "NA is null");

    let mut big = String::from_utf8(export_csv(60_000, None)).unwrap();
    big = big
        .split_inclusive('\n')
        .enumerate()
        .map(|(i, line)| match i % 3 {
            0 => line.replace('\n', "\r\n"),
            _ => line.to_owned(),
        })
        .collect();
    let done = app.upload("big_mixed.csv", big, None).await.expect_ok();
    assert_eq!(done.dataset.row_count, 60_000);
    assert_eq!(done.dataset.column_count, 6);
    // Changing past the rows the sniffer samples.
    let late: String = String::from_utf8(export_csv(60_000, None))
        .unwrap()
        .split_inclusive('\n')
        .enumerate()
        .map(|(i, line)| {
            if i < 30_000 {
                line.replace('\n', "\r\n")
            } else {
                line.to_owned()
            }
        })
        .collect();
    let done = app.upload("late_mixed.csv", late, None).await.expect_ok();
    assert_eq!(done.dataset.row_count, 60_000);
    assert_eq!(done.dataset.column_count, 6);

    let message = ragged(&app, "ragged_mixed.csv", "a,b\r\n1,2\n3,4,5\r\n").await;
    assert!(message.starts_with("Line 3 has 3 fields"), "{message}");

    // `\r\r\n`: Python's csv module (its `\r\n`) through a file opened as
    // text on Windows. A quoted line break kept; NA null, negative numbers;
    // in the sniffer's sample, and from row 30,000 on only.
    let doubled: String = String::from_utf8(export_csv(40_000, None))
        .unwrap()
        .split_inclusive('\n')
        .enumerate()
        .map(|(i, line)| match i {
            0..=29_999 => line.to_owned(),
            _ => line.replace('\n', "\r\r\n"),
        })
        .collect();
    let done = app
        .upload("late_doubled.csv", doubled, None)
        .await
        .expect_ok();
    assert_eq!(done.dataset.row_count, 40_000);
    assert_eq!(done.dataset.column_count, 6);
    let csv = "id,name,amount\r\r\n1,Anna,NA\r\r\n2,\"Smith, J\r\nJr\",-3.5\r\r\n3,Bob,7\r\r\n";
    for (file, body) in [
        ("doubled.csv", csv.as_bytes().to_vec()),
        ("doubled.csv.gz", gzip(csv.as_bytes())),
    ] {
        let done = app.upload(file, body, None).await.expect_ok();
        assert_eq!(done.dataset.row_count, 3, "{file}");
        assert_eq!(
            types(&done.schema),
            vec![("id", "BIGINT"), ("name", "VARCHAR"), ("amount", "DOUBLE")],
            "{file}"
        );
        let (_, rows) = read_parquet(&app.parquet_path(done.dataset.id));
        assert_eq!(
            column(&rows, 1),
            vec![Some("Anna"), Some("Smith, J\r\nJr"), Some("Bob")],
            "{file}"
        );
        assert_eq!(rows[1][2].as_deref(), Some("-3.5"), "{file}");
    }
    let message = ragged(&app, "ragged_doubled.csv", "a,b\r\r\n1,2\r\r\n3,4,5\r\r\n").await;
    assert!(message.contains("has 3 fields"), "{message}");
}

/// JSON is typed from every record, not from the reader's sample of the
/// first 20,480: an amount that turns fractional later, and a key that first
/// appears later, arrive as they are (DuckDB's JSON reader, typed from the
/// sample, rounds 1.5 into BIGINT without a word, and refuses the new key).
#[tokio::test]
async fn json_values_past_the_sample_keep_their_type_and_keys() {
    let app = spawn_app().await;
    let mut ndjson = String::new();
    for i in 0..25_000 {
        ndjson.push_str(&format!("{{\"id\": {i}, \"amount\": {i}, \"ok\": true}}\n"));
    }
    ndjson.push_str("{\"id\": 25000, \"amount\": -1.5, \"ok\": false, \"note\": \"late\"}\n");
    let expected = vec![
        ("id", "BIGINT"),
        ("amount", "DOUBLE"),
        ("ok", "BOOLEAN"),
        ("note", "VARCHAR"),
    ];
    let done = app
        .upload("late.ndjson", ndjson.clone(), None)
        .await
        .expect_ok();
    assert_eq!(done.dataset.row_count, 25_001);
    assert_eq!(types(&done.schema), expected);
    let (_, rows) = read_parquet(&app.parquet_path(done.dataset.id));
    let last = rows.last().expect("rows");
    assert_eq!(
        last.iter().map(Option::as_deref).collect::<Vec<_>>(),
        [Some("25000"), Some("-1.5"), Some("false"), Some("late")]
    );

    // The same records as one JSON array, gzipped.
    let array = format!("[{}]", ndjson.trim_end().replace('\n', ","));
    let done = app
        .upload("late.json.gz", gzip(array.as_bytes()), None)
        .await
        .expect_ok();
    assert_eq!(done.dataset.source_format, "json+gzip");
    assert_eq!(types(&done.schema), expected);
}

/// The server commits the dataset but the connection drops before the app
/// hears so: the app checks, finds the row, answers 201 and keeps the file
/// (it used to delete the file of a committed dataset).
#[tokio::test]
async fn an_ambiguous_commit_keeps_the_file_of_a_committed_dataset() {
    let app = spawn_app_with(Options {
        cut_commits: true,
        ..Options::default()
    })
    .await;
    let cutter = app.commit_cutter.clone().expect("the proxy");
    cutter
        .armed
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let done = app
        .upload("committed.csv", "id,name\n1,Ada\n2,Grace\n", None)
        .await
        .expect_ok();
    assert_eq!(
        cutter.cuts.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "the commit's answer was cut"
    );
    assert_eq!(app.dataset_count().await, 1);
    assert!(
        app.parquet_path(done.dataset.id).is_file(),
        "the file stays"
    );
    let (_, rows) = read_parquet(&app.parquet_path(done.dataset.id));
    assert_eq!(rows.len(), 2);
}

/// Parquet allows empty and repeated column names (pandas writes them for an
/// unnamed index or a duplicated header). The fixture was written by pyarrow:
/// `pa.table([...], names=["", "name", "", "name"])`. DuckDB reads them
/// named and distinct, so nothing downstream ever has to quote `""`.
#[tokio::test]
async fn parquet_with_empty_and_repeated_column_names_gets_distinct_names() {
    let app = spawn_app().await;
    let bytes = include_bytes!("../fixtures/unnamed_columns.parquet");
    let done = app
        .upload("unnamed_columns.parquet", bytes.to_vec(), None)
        .await
        .expect_ok();
    let names: Vec<&str> = done.schema.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["C0", "name", "_1", "name_1"]);
    let normalized: HashSet<&str> = done
        .schema
        .iter()
        .map(|c| c.normalized_name.as_str())
        .collect();
    assert_eq!(normalized.len(), 4, "{:?}", done.schema);
    assert!(normalized.iter().all(|n| !n.is_empty()));
    assert_eq!(done.dataset.row_count, 3);
    let (written, rows) = read_parquet(&app.parquet_path(done.dataset.id));
    assert_eq!(written, names);
    assert_eq!(rows[2][0], None);
    assert_eq!(rows[2][1].as_deref(), Some("NA"));
}

/// A time of day (DuckDB's TIME) is written as text: Parquet's
/// `TIME_MICROS` is unreadable to Spark before 4.1, so a bronze table on an
/// older Databricks runtime would fail. Timestamps keep their type.
#[tokio::test]
async fn times_of_day_are_written_as_text() {
    let app = spawn_app().await;
    let csv =
        "id,opens,seen_at\n1,09:30:00,2024-05-01 09:30:00\n2,NA,2024-05-02 10:00:00\n3,17:45:30,\n";
    let parquet =
        parquet_from_sql("SELECT * FROM (VALUES (1, TIME '07:05:00.25'), (2, NULL)) t(id, alarm)");
    for (file, bytes, column, first) in [
        ("hours.csv", csv.as_bytes().to_vec(), "opens", "09:30:00"),
        ("alarms.parquet", parquet, "alarm", "07:05:00.25"),
    ] {
        let done = app.upload(file, bytes, None).await.expect_ok();
        let col = done.schema.iter().find(|c| c.name == column).unwrap();
        assert_eq!(col.data_type, "VARCHAR", "{file}");
        if let Some(ts) = done.schema.iter().find(|c| c.name == "seen_at") {
            assert_eq!(ts.data_type, "TIMESTAMP", "{file}");
        }
        let (names, rows) = read_parquet(&app.parquet_path(done.dataset.id));
        let at = names.iter().position(|n| n == column).unwrap();
        assert_eq!(rows[0][at].as_deref(), Some(first), "{file}");
        assert_eq!(rows[1][at], None, "{file}: NA and NULL stay null");
    }
}

/// An upload sent with `Idempotency-Key` by `client` (the app's own, or a
/// token's): its status, `Idempotent-Replayed` header and JSON body.
async fn keyed_upload(
    app: &crate::helpers::TestApp,
    client: &reqwest::Client,
    key: &str,
    csv: &'static str,
) -> (u16, bool, serde_json::Value) {
    let form = reqwest::multipart::Form::new().part(
        "file",
        reqwest::multipart::Part::bytes(csv.as_bytes().to_vec()).file_name("keyed.csv"),
    );
    let response = client
        .post(app.url("/api/datasets"))
        .header("Accept", "application/json")
        .header("Idempotency-Key", key)
        .multipart(form)
        .send()
        .await
        .expect("request sent");
    let status = response.status().as_u16();
    let replayed = response.headers().get("idempotent-replayed").is_some();
    (
        status,
        replayed,
        response.json().await.expect("a JSON body"),
    )
}

#[tokio::test]
async fn an_upload_sent_again_with_its_idempotency_key_makes_no_second_dataset() {
    let app = spawn_app().await;
    let csv = "id,amount\n1,-2.5\n2,NA\n";

    let (status, replayed, first) = keyed_upload(&app, &app.client, "order-42", csv).await;
    assert_eq!((status, replayed), (201, false), "{first}");
    // Sent again (a client that lost the answer): the same dataset, at once.
    let (status, replayed, again) = keyed_upload(&app, &app.client, "order-42", csv).await;
    assert_eq!((status, replayed), (200, true), "{again}");
    assert_eq!(again["dataset"]["id"], first["dataset"]["id"]);
    assert_eq!(again["dataset"]["row_count"], 2);
    assert_eq!(app.dataset_count().await, 1);
    assert_eq!(app.stored_files().len(), 1, "one Parquet file, no scratch");

    // Ten at once with one new key: one dataset between them, every answer
    // names it, and the losers' files are gone.
    let answers =
        futures::future::join_all((0..10).map(|_| keyed_upload(&app, &app.client, "batch-7", csv)))
            .await;
    let ids: HashSet<String> = answers
        .iter()
        .map(|(status, _, body)| {
            assert!(matches!(status, 200 | 201), "{status} {body}");
            body["dataset"]["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1, "{answers:?}");
    assert_eq!(app.dataset_count().await, 2);
    eventually(
        Duration::from_secs(10),
        "the losers' files to go",
        || async { (app.stored_files().len() == 2).then_some(()) },
    )
    .await;

    // Another tenant's key space is its own.
    let b = app.new_tenant("keys-b@other.example.org").await;
    let token = app.token(&b, "tokens").await;
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
    let as_b = reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap();
    let (status, _, theirs) = keyed_upload(&app, &as_b, "order-42", csv).await;
    assert_eq!(status, 201, "{theirs}");
    assert_ne!(theirs["dataset"]["id"], first["dataset"]["id"]);

    // A deleted dataset frees its key.
    let id = first["dataset"]["id"].as_str().unwrap();
    let deleted = app
        .client
        .delete(app.url(&format!("/api/datasets/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    let (status, replayed, fresh) = keyed_upload(&app, &app.client, "order-42", csv).await;
    assert_eq!((status, replayed), (201, false), "{fresh}");
    assert_ne!(fresh["dataset"]["id"], first["dataset"]["id"]);
}

#[tokio::test]
async fn a_malformed_idempotency_key_is_refused_by_name_and_nothing_is_kept() {
    let app = spawn_app().await;
    let long = "k".repeat(256);
    for key in ["", "with space", "tab\there", long.as_str()] {
        let (status, _, body) = keyed_upload(&app, &app.client, key, "a\n1\n").await;
        assert_eq!(status, 400, "{key:?}: {body}");
        assert_eq!(body["code"], "invalid_idempotency_key", "{key:?}");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("Idempotency-Key"),
            "{body}"
        );
    }
    app.assert_nothing_persisted().await;
    // 255 visible characters is a key.
    let (status, _, body) = keyed_upload(&app, &app.client, &"k".repeat(255), "a\n1\n").await;
    assert_eq!(status, 201, "{body}");
}

/// A large export is converted while it arrives (`ingest::stream`): the
/// dataset has the types, nulls and rows the conversion after the receipt
/// gives, and no scratch file stays.
#[tokio::test]
async fn a_large_export_streams_into_the_same_dataset() {
    let app = spawn_app().await;
    let csv = export_csv(80_000, None);
    let done = app.upload("orders.csv", csv, None).await.expect_ok();
    assert_eq!(done.dataset.source_format, "csv");
    assert_eq!(done.dataset.row_count, 80_000);
    assert_eq!(
        types(&done.schema),
        vec![
            ("id", "BIGINT"),
            ("customer", "VARCHAR"),
            ("amount", "DOUBLE"),
            ("ordered_at", "TIMESTAMP WITH TIME ZONE"),
            ("shipped", "BOOLEAN"),
            ("note", "VARCHAR"),
        ]
    );
    let nullable: Vec<bool> = done.schema.iter().map(|c| c.nullable).collect();
    assert_eq!(nullable, vec![false, false, true, false, false, true]);
    let (_, rows) = read_parquet(&app.parquet_path(done.dataset.id));
    assert_eq!(rows.len(), 80_000);
    assert_eq!(rows[0][2], None, "NA is null");
    assert_eq!(rows[1][2].as_deref(), Some("-6848.63"));
    assert_eq!(rows[1][5].as_deref(), Some("a, b and \"c\""));
    assert_eq!(rows[79_999][0].as_deref(), Some("79999"));
    app.wait_scratch_gone().await;
}

/// Rows longer than DuckDB's reader takes by default (2 MiB: a web page,
/// an image in base64, a log in one cell) are read whole, wherever they
/// are: in the sniffer's sample or far past it, uncompressed or gzip, a
/// quoted value with commas and line ends in it.
#[tokio::test]
async fn rows_longer_than_the_readers_default_are_read_whole() {
    let app = spawn_app().await;
    let page = format!("<p>{}</p>", "lorem, ipsum\r\n".repeat(400_000));
    let early = format!("id,blob,n\n1,\"{page}\",-1\n2,short,NA\n");
    let mut late = String::from("id,blob,n\n");
    for i in 0..30_000 {
        late.push_str(&format!("{i},row {i},{i}\n"));
    }
    late.push_str(&format!("30000,\"{page}\",7\n30001,z,8\n"));
    for (name, body, rows, at, next) in [
        ("early.csv", early.clone().into_bytes(), 2, 0, "short"),
        ("late.csv", late.clone().into_bytes(), 30_002, 30_000, "z"),
        ("late.csv.gz", gzip(late.as_bytes()), 30_002, 30_000, "z"),
    ] {
        let done = app.upload(name, body, None).await.expect_ok();
        assert_eq!(done.dataset.row_count, rows, "{name}");
        assert_eq!(
            types(&done.schema),
            vec![("id", "BIGINT"), ("blob", "VARCHAR"), ("n", "BIGINT")],
            "{name}"
        );
        let (_, stored) = read_parquet(&app.parquet_path(done.dataset.id));
        assert_eq!(stored.len() as i64, rows, "{name}");
        assert_eq!(stored[at][1].as_deref(), Some(page.as_str()), "{name}");
        assert_eq!(stored[at + 1][1].as_deref(), Some(next), "{name}");
    }
    app.wait_scratch_gone().await;
}

/// A spreadsheet export of 1,000 columns (the limit) converts within the
/// default memory limit (192 MB): Parquet is written in row groups of at
/// most 32 MB, and a conversion that still runs short is tried again
/// alone, on one thread. At 8,000 rows it was refused (413
/// `too_large_to_convert`): the writer held all of them, for every column.
/// Its page shows within the read instance's memory too.
#[tokio::test]
async fn a_thousand_columns_convert_and_show_within_the_memory_limits() {
    let app = spawn_app().await;
    let mut csv = (0..1000)
        .map(|c| format!("col_{c}"))
        .collect::<Vec<_>>()
        .join(",");
    csv.push('\n');
    for r in 0..8000i64 {
        let row: Vec<String> = (0..1000i64)
            .map(|c| match c % 3 {
                0 => format!("text {}", (r + c) % 97),
                1 if (r + c) % 10 == 0 => "NA".to_owned(),
                1 => ((r * 7 + c * 13) % 1000 - 500).to_string(),
                _ => format!("{}.{:02}", (r + c) % 100 - 50, c % 100),
            })
            .collect();
        csv.push_str(&row.join(","));
        csv.push('\n');
    }
    let done = app.upload("survey.csv", csv, None).await.expect_ok();
    assert_eq!(done.dataset.row_count, 8000);
    assert_eq!(done.dataset.column_count, 1000);
    assert_eq!(
        types(&done.schema)[..3],
        [
            ("col_0", "VARCHAR"),
            ("col_1", "BIGINT"),
            ("col_2", "DOUBLE")
        ]
    );
    let file = app.parquet_path(done.dataset.id);
    let file = file.display().to_string().replace('\'', "''");
    let conn = duckdb::Connection::open_in_memory().unwrap();
    let (nulls, negative, last): (i64, i64, String) = conn
        .query_row(
            &format!(
                "SELECT count(*) FILTER (WHERE col_1 IS NULL), \
                 count(*) FILTER (WHERE col_998 < 0), \
                 any_value(col_999) FILTER (WHERE file_row_number = 7999) \
                 FROM read_parquet('{file}', file_row_number = true)"
            ),
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .unwrap();
    assert_eq!(nulls, 800, "NA is null");
    assert!(negative > 0, "negative numbers are kept");
    assert_eq!(last, format!("text {}", (7999 + 999) % 97));
    let groups: i64 = conn
        .query_row(
            &format!("SELECT count(DISTINCT row_group_id) FROM parquet_metadata('{file}')"),
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert!(groups > 1, "row groups are cut at 32 MB, not 122,880 rows");

    // Its page: the preview and the statistics of every column, read a
    // batch of columns at a time (one scan of all 1,000 ran out of the
    // read instance's 128 MB: a 500).
    let detail: serde_json::Value = app
        .client
        .post(app.url("/api/get_dataset"))
        .header("Accept", "application/json")
        .form(&[("id", done.dataset.id.to_string())])
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    let rows = detail["preview"]["rows"].as_array().unwrap();
    assert!(!rows.is_empty());
    for row in rows {
        assert_eq!(row.as_array().unwrap().len(), 1000);
    }
    assert_eq!(rows[0][999], format!("text {}", 999 % 97));
    assert_eq!(rows[1][1], "-480");
    let stats = detail["stats"].as_array().unwrap();
    assert_eq!(stats.len(), 1000);
    assert_eq!(stats[999]["name"], "col_999");
    assert_eq!(stats[1]["null_count"], 800);
    assert_eq!(stats[998]["histogram"].as_array().unwrap().len(), 20);
    app.wait_scratch_gone().await;
}

/// A value past the sniffer's sample that its column's type cannot hold:
/// the column is typed from the whole file, as for any upload.
#[tokio::test]
async fn a_late_value_past_the_sample_types_its_column_from_the_whole_file() {
    let app = spawn_app().await;
    let csv = export_csv(120_000, Some((30_000, "-b")));
    let done = app.upload("orders.csv", csv, None).await.expect_ok();
    assert_eq!(done.dataset.row_count, 120_000);
    assert_eq!(types(&done.schema)[0], ("id", "VARCHAR"));
    assert_eq!(types(&done.schema)[2], ("amount", "DOUBLE"));
}

/// A device export: a name with an apostrophe in the header, register
/// addresses in base 16, flags in base 2, a reading that mixes base 16 with
/// decimals, and an amount with `NA` and negative decimals.
fn device_export(rows: usize) -> String {
    let mut csv = String::from("Customer's name,register,flags,reading,amount\n");
    for i in 0..rows {
        let reading = match i % 3 {
            0 => format!("0x{:X}", i % 256),
            1 => format!("{}.5", i % 100),
            _ => format!("-{}.25", i % 10),
        };
        let amount = match i % 5 {
            0 => "NA".to_owned(),
            _ => format!("{}.{:02}", (i % 1000) as i64 - 500, i % 100),
        };
        csv.push_str(&format!(
            "O'Brien {i},0x{:04X},0b{:b},{reading},{amount}\n",
            i % 4096,
            i % 8
        ));
    }
    csv
}

#[tokio::test]
async fn numbers_in_other_bases_stay_text_and_names_may_hold_apostrophes() {
    let app = spawn_app().await;
    // Small (converted after the receipt), large enough to be sniffed or
    // converted while it arrives, and gzip (sniffed after the receipt).
    for (name, rows, gzipped) in [
        ("devices.csv", 40, false),
        ("devices-large.csv", 60_000, false),
        ("devices.csv.gz", 60_000, true),
    ] {
        let csv = device_export(rows);
        let body = match gzipped {
            true => gzip(csv.as_bytes()),
            false => csv.into_bytes(),
        };
        let done = app.upload(name, body, None).await.expect_ok();
        assert_eq!(done.dataset.row_count, rows as i64, "{name}");
        assert_eq!(
            types(&done.schema),
            vec![
                ("Customer's name", "VARCHAR"),
                ("register", "VARCHAR"),
                ("flags", "VARCHAR"),
                ("reading", "VARCHAR"),
                ("amount", "DOUBLE"),
            ],
            "{name}"
        );
        let (_, stored) = read_parquet(&app.parquet_path(done.dataset.id));
        assert_eq!(column(&stored, 0)[1], Some("O'Brien 1"), "{name}");
        assert_eq!(
            (column(&stored, 1)[31], column(&stored, 2)[5]),
            (Some("0x001F"), Some("0b101")),
            "{name}: written as sent, not as 31 and 5"
        );
        assert_eq!(
            column(&stored, 3)[..3],
            [Some("0x0"), Some("1.5"), Some("-2.25")],
            "{name}"
        );
        assert_eq!(
            column(&stored, 4)[..3],
            [None, Some("-499.01"), Some("-498.02")],
            "{name}"
        );
    }

    // Base 16 only past the sniffer's sample, in a column of decimals: the
    // whole file reads it as DOUBLE, and DOUBLE's cast refuses `0x1F`. The
    // column is text, not a refused upload.
    let mut late = String::from("id,reading\n");
    for i in 0..30_000 {
        late.push_str(&format!("{i},{}.5\n", i % 100));
    }
    late.push_str("30000,0x1F\n30001,-7.25\n");
    let done = app.upload("late.csv", late, None).await.expect_ok();
    assert_eq!(done.dataset.row_count, 30_002);
    assert_eq!(
        types(&done.schema),
        vec![("id", "BIGINT"), ("reading", "VARCHAR")]
    );
    let (_, stored) = read_parquet(&app.parquet_path(done.dataset.id));
    assert_eq!(
        column(&stored, 1)[29_999..],
        [Some("99.5"), Some("0x1F"), Some("-7.25")]
    );
}

use super::*;
use crate::config::FormatConfig;
use crate::config::units::ByteSize;
use crate::decode::{DecodeErrorKind, DecodePlan, FieldTree, Limit};
use arrow::array::{Array, AsArray};
use std::io::{BufReader, Cursor};
use std::path::Path;

const MIB: usize = 1 << 20;
/// Read sizes: a byte at a time, a few bytes (records and fields cut anywhere), and whole.
const CHUNKS: [usize; 7] = [1, 2, 3, 5, 8, 64, MIB];

/// What decoding gave.
#[derive(Debug, Default)]
struct Decoded {
    rows: u64,
    /// Rows the batches said they have (also with no column read).
    batch_rows: usize,
    batches: usize,
    /// Each wanted column's values, `None` for null.
    columns: Vec<Vec<Option<String>>>,
    captured: Vec<Option<String>>,
    ignored: u64,
}

fn input(text: &[u8], chunk: usize) -> Box<dyn BufRead + Send> {
    Box::new(BufReader::with_capacity(chunk, Cursor::new(text.to_vec())))
}

/// Decodes `text`, read `chunk` bytes at a time, for the columns `wanted`.
fn run(
    text: &[u8],
    csv: &CsvConfig,
    limits: &LimitsConfig,
    wanted: &[&str],
    unmapped: Unmapped,
    chunk: usize,
) -> Result<Decoded, DecodeError> {
    let wanted: Vec<String> = wanted.iter().map(|w| w.to_string()).collect();
    let mut out = Decoded { columns: vec![Vec::new(); wanted.len()], ..Decoded::default() };
    let rows = decode(input(text, chunk), csv, limits, Lead::default(), (&wanted, unmapped), &mut |batch| {
        out.batches += 1;
        out.batch_rows += batch.text.num_rows();
        out.ignored += batch.ignored;
        for (column, values) in batch.text.columns().iter().zip(&mut out.columns) {
            let text = column.as_string::<i32>();
            values.extend((0..text.len()).map(|i| text.is_valid(i).then(|| text.value(i).to_string())));
        }
        if let Some(u) = &batch.unmapped {
            out.captured.extend((0..u.len()).map(|i| u.is_valid(i).then(|| u.value(i).to_string())));
        }
        Ok(())
    })?;
    out.rows = rows;
    Ok(out)
}

/// [`run`] with the default dialect and limits, no unmapped fields kept.
fn columns(text: &[u8], wanted: &[&str], chunk: usize) -> Result<Vec<Vec<Option<String>>>, DecodeError> {
    Ok(run(text, &CsvConfig::default(), &LimitsConfig::default(), wanted, Unmapped::Skip, chunk)?.columns)
}

fn some(values: &[&str]) -> Vec<Option<String>> {
    values.iter().map(|v| Some(v.to_string())).collect()
}

fn limits(f: impl FnOnce(&mut LimitsConfig)) -> LimitsConfig {
    let mut limits = LimitsConfig::default();
    f(&mut limits);
    limits
}

/// csv-spectrum's cases, as in tests/corpora/csv-spectrum: the file, its header and rows.
#[allow(clippy::type_complexity)]
const SPECTRUM: [(&str, &str, &[&str], &[&[&str]]); 11] = [
    ("simple", "a,b,c\n1,2,3\n", &["a", "b", "c"], &[&["1", "2", "3"]]),
    ("simple_crlf", "a,b,c\r\n1,2,3\r\n", &["a", "b", "c"], &[&["1", "2", "3"]]),
    (
        "comma_in_quotes",
        "first,last,address,city,zip\nJohn,Doe,120 any st.,\"Anytown, WW\",08123",
        &["first", "last", "address", "city", "zip"],
        &[&["John", "Doe", "120 any st.", "Anytown, WW", "08123"]],
    ),
    ("empty", "a,b,c\n1,\"\",\"\"\n2,3,4", &["a", "b", "c"], &[&["1", "", ""], &["2", "3", "4"]]),
    ("empty_crlf", "a,b,c\r\n1,\"\",\"\"\r\n2,3,4", &["a", "b", "c"], &[&["1", "", ""], &["2", "3", "4"]]),
    ("escaped_quotes", "a,b\n1,\"ha \"\"ha\"\" ha\"\n3,4\n", &["a", "b"], &[&["1", "ha \"ha\" ha"], &["3", "4"]]),
    (
        "json",
        "key,val\n1,\"{\"\"type\"\": \"\"Point\"\", \"\"coordinates\"\": [102.0, 0.5]}\"\n",
        &["key", "val"],
        &[&["1", "{\"type\": \"Point\", \"coordinates\": [102.0, 0.5]}"]],
    ),
    (
        "newlines",
        "a,b,c\n1,2,3\n\"Once upon \na time\",5,6\n7,8,9\n",
        &["a", "b", "c"],
        &[&["1", "2", "3"], &["Once upon \na time", "5", "6"], &["7", "8", "9"]],
    ),
    (
        "newlines_crlf",
        "a,b,c\r\n1,2,3\r\n\"Once upon \r\na time\",5,6\r\n7,8,9\r\n",
        &["a", "b", "c"],
        &[&["1", "2", "3"], &["Once upon \r\na time", "5", "6"], &["7", "8", "9"]],
    ),
    ("quotes_and_newlines", "a,b\n1,\"ha \n\"\"ha\"\" \nha\"\n3,4\n", &["a", "b"], &[&["1", "ha \n\"ha\" \nha"], &["3", "4"]]),
    ("utf8", "a,b,c\n1,2,3\n4,5,ʤ", &["a", "b", "c"], &[&["1", "2", "3"], &["4", "5", "ʤ"]]),
];

#[test]
fn csv_spectrum_cases_read_as_expected_however_the_input_is_cut() {
    for (name, text, header, rows) in SPECTRUM {
        let want: Vec<Vec<Option<String>>> = (0..header.len()).map(|c| rows.iter().map(|r| Some(r[c].to_string())).collect()).collect();
        for chunk in CHUNKS {
            assert_eq!(columns(text.as_bytes(), header, chunk).unwrap(), want, "{name}, {chunk}-byte reads");
            let sample =
                super::sample(input(text.as_bytes(), chunk), &CsvConfig::default(), &LimitsConfig::default(), Lead::default(), 100)
                    .unwrap();
            let schema = sample.schema();
            let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            assert_eq!(names, header, "{name}");
            let sampled: Vec<Vec<Option<String>>> = sample
                .columns()
                .iter()
                .map(|c| {
                    let c = c.as_string::<i32>();
                    (0..c.len()).map(|i| c.is_valid(i).then(|| c.value(i).to_string())).collect()
                })
                .collect();
            assert_eq!(sampled, want, "{name}, sampled in {chunk}-byte reads");
        }
    }
}

#[test]
fn csv_spectrum_files_match_their_expected_json() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpora/csv-spectrum");
    let files = std::fs::read_dir(dir.join("csvs")).expect("the csv-spectrum corpus in tests/corpora");
    let mut seen = 0;
    for file in files {
        let path = file.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let expected: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("json").join(format!("{name}.json"))).unwrap()).unwrap();
        // location_coordinates.json is one object, not an array of them.
        let records = match expected {
            serde_json::Value::Array(records) => records,
            one => vec![one],
        };
        let text = std::fs::read(&path).unwrap();
        let sample = super::sample(input(&text, 7), &CsvConfig::default(), &LimitsConfig::default(), Lead::default(), usize::MAX).unwrap();
        assert_eq!(sample.num_rows(), records.len(), "{name}");
        for (row, record) in records.iter().enumerate() {
            for (key, want) in record.as_object().unwrap() {
                // Upstream's expected phone number is not the one in its CSV.
                if name == "location_coordinates" && key == "Contact Phone Number" {
                    continue;
                }
                let column = sample.column_by_name(key).unwrap_or_else(|| panic!("{name}: no column {key:?}")).as_string::<i32>();
                assert_eq!(Some(column.value(row)), want.as_str(), "{name}, row {row}, {key}");
            }
        }
        seen += 1;
    }
    assert!(seen >= 12, "{seen} files");
}

#[test]
fn a_present_empty_field_is_the_empty_string_and_only_a_missing_one_is_null() {
    let csv = CsvConfig { allow_short_rows: true, ..CsvConfig::default() };
    for chunk in CHUNKS {
        let got = run(b"a,b,c\n1,\"\",\n2\n", &csv, &LimitsConfig::default(), &["a", "b", "c"], Unmapped::Skip, chunk).unwrap();
        assert_eq!(got.columns, [some(&["1", "2"]), vec![Some(String::new()), None], vec![Some(String::new()), None]], "{chunk}");
    }
    // The mapping's null_values (by default [""]) are what turn "" into null; the decoder
    // only leaves them out of what it captures.
    let text = b"a,b,c\n1,\"\",x\n";
    let capture = |null_values: Vec<String>| {
        let csv = CsvConfig { null_values, ..CsvConfig::default() };
        run(text, &csv, &LimitsConfig::default(), &["a"], Unmapped::Capture, MIB).unwrap().captured
    };
    assert_eq!(capture(vec![String::new()]), [Some(r#"{"c":"x"}"#.to_string())]);
    assert_eq!(capture(vec![]), [Some(r#"{"b":"","c":"x"}"#.to_string())]);
}

#[test]
fn twenty_thousand_columns_cost_one_record_not_rows_times_columns() {
    let header: Vec<String> = (0..20_000).map(|i| format!("c{i}")).collect();
    let row: Vec<String> = (0..20_000).map(|i| format!("v{i}")).collect();
    let text = format!("{}\n{}\n", header.join(","), row.join(","));
    let wide = limits(|l| l.max_columns = 20_000);
    let got = run(text.as_bytes(), &CsvConfig::default(), &wide, &["c7", "c12345", "c19999"], Unmapped::Count, MIB).unwrap();
    assert_eq!(got.columns, [some(&["v7"]), some(&["v12345"]), some(&["v19999"])]);
    assert_eq!((got.rows, got.batches, got.ignored), (1, 1, 19_997));
    // The buffers hold the longest record (about 110 kB unquoted) and its 20,000 ends, where
    // arrow-csv reserved 16,384 rows of every column (5 GB).
    let kept: Vec<bool> = (0..20_000).map(|i| [7, 12_345, 19_999].contains(&i)).collect();
    let mut reader = CsvReader::new(Cursor::new(text.as_bytes()), &CsvConfig::default(), &wide, Lead::default());
    assert_eq!(reader.next_record(Width::Header).unwrap().unwrap().count(), 20_000);
    let fields = reader.next_record(Width::Row(&kept)).unwrap().unwrap();
    assert_eq!((fields.count(), fields.get(12_345)), (20_000, Some(&b"v12345"[..])));
    assert!(reader.next_record(Width::Row(&kept)).unwrap().is_none());
    let (out, ends) = reader.held();
    assert!(out <= 256 << 10 && ends <= 200 << 10, "{out} bytes of record buffer, {ends} of ends");
    // Past max_columns (10,000 by default) the header is refused.
    let err = run(text.as_bytes(), &CsvConfig::default(), &LimitsConfig::default(), &["c7"], Unmapped::Skip, MIB).unwrap_err();
    assert_eq!(err.kind, DecodeErrorKind::Limit(Limit::MaxColumns), "{err}");
    assert_eq!(err.to_string(), "more columns than format.limits.max_columns (10000) at byte 0 (at line 1)");
}

#[test]
fn a_header_of_3_mb_streams_whole_through_open() {
    let names: Vec<String> = (0..3_000).map(|i| format!("{i:04}{}", "n".repeat(996))).collect();
    let values: Vec<String> = (0..3_000).map(|i| i.to_string()).collect();
    let text = format!("{}\r\n{}\r\n", names.join(","), values.join(","));
    assert!(text.len() > 3_000_000);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wide.csv");
    std::fs::write(&path, &text).unwrap();
    let plan = DecodePlan {
        format: FormatConfig::default(),
        json_fields: FieldTree::new(["unused"]).unwrap(),
        csv_columns: vec![names[1].clone(), names[2_999].clone()],
        csv_unmapped: Unmapped::Skip,
    };
    let mut got = Vec::new();
    let decoded = crate::decode::open(&path, "wide.csv", &plan.format)
        .unwrap()
        .decode(&plan, &mut |batch| {
            for column in batch.text.columns() {
                got.push(column.as_string::<i32>().value(0).to_string());
            }
            Ok(())
        })
        .unwrap();
    assert_eq!((decoded.records, got), (1, vec!["1".to_string(), "2999".to_string()]));
    for chunk in [4096, MIB] {
        let wanted = [names[0].as_str(), names[2_998].as_str()];
        assert_eq!(columns(text.as_bytes(), &wanted, chunk).unwrap(), [some(&["0"]), some(&["2998"])], "{chunk}");
    }
}

#[test]
fn a_field_past_max_field_is_refused_at_its_first_byte() {
    let big = "x".repeat(2 * MIB);
    let one_mib = ByteSize(MIB as u64);
    let field = limits(|l| l.max_field = one_mib);
    let all = limits(|l| (l.max_field, l.max_record, l.max_line) = (one_mib, one_mib, one_mib));
    // Field b starts at byte 6, after "a,b\n1,", quoted or not; named as the field even when
    // its record and line are as long.
    for text in [format!("a,b\n1,{big}\n"), format!("a,b\n1,\"{big}\"\n")] {
        for (limits, chunk) in [(&field, 4096), (&field, 64 << 10), (&field, 4 * MIB), (&all, 4096), (&all, 4 * MIB)] {
            let err = run(text.as_bytes(), &CsvConfig::default(), limits, &["a", "b"], Unmapped::Skip, chunk).unwrap_err();
            assert_eq!(err.kind, DecodeErrorKind::Limit(Limit::MaxField), "{err}");
            assert_eq!(err.to_string(), "a field longer than format.limits.max_field (1 MiB) at byte 6 (at record 1, line 2)", "{chunk}");
        }
        // Not kept, it is only part of its record...
        assert_eq!(columns_within(&text, &field, &["a"]).unwrap(), [some(&["1"])]);
        // ...which is refused from its first byte past max_record.
        let err = columns_within(&text, &all, &["a"]).unwrap_err();
        assert_eq!(err.kind, DecodeErrorKind::Limit(Limit::MaxRecord), "{err}");
        assert_eq!(err.message, "a record longer than format.limits.max_record (1 MiB) at byte 4");
    }
    // A short field, in records read whole or cut anywhere; a header name as well.
    let small = limits(|l| l.max_field = ByteSize(10));
    for chunk in CHUNKS {
        let err = run(b"a,b\n1,\"1234567\"\"890\"\n", &CsvConfig::default(), &small, &["b"], Unmapped::Skip, chunk).unwrap_err();
        assert_eq!(err.message, "a field longer than format.limits.max_field (10 bytes) at byte 6", "{chunk}");
        let err = run(b"a,b,12345678901\n1,2,3\n", &CsvConfig::default(), &small, &["a"], Unmapped::Skip, chunk).unwrap_err();
        assert_eq!(err.to_string(), "a field longer than format.limits.max_field (10 bytes) at byte 4 (at line 1)", "{chunk}");
    }
}

fn columns_within(text: &str, limits: &LimitsConfig, wanted: &[&str]) -> Result<Vec<Vec<Option<String>>>, DecodeError> {
    Ok(run(text.as_bytes(), &CsvConfig::default(), limits, wanted, Unmapped::Skip, 64 << 10)?.columns)
}

#[test]
fn records_and_lines_past_their_limits_are_refused_where_they_start() {
    let record = limits(|l| l.max_record = ByteSize(100));
    let text = format!("a,b\n1,2\n3,{}\n", "y".repeat(200));
    for wanted in [&["a"][..], &["a", "b"]] {
        for chunk in CHUNKS {
            let err = run(text.as_bytes(), &CsvConfig::default(), &record, wanted, Unmapped::Skip, chunk).unwrap_err();
            assert_eq!(err.kind, DecodeErrorKind::Limit(Limit::MaxRecord), "{err}");
            assert_eq!(err.to_string(), "a record longer than format.limits.max_record (100 bytes) at byte 8 (at record 2, line 3)");
        }
    }
    // A record of exactly max_record bytes, its break not counted, is read.
    let exact = format!("a,b\n1,{}\r\n", "y".repeat(98));
    assert_eq!(run(exact.as_bytes(), &CsvConfig::default(), &record, &["a"], Unmapped::Skip, 7).unwrap().rows, 1);
    // A line is physical: a quoted line break ends one. Line 3 starts at byte 11.
    let line = limits(|l| l.max_line = ByteSize(10));
    let text = b"a,b\n1,\"two\nlines that are long\"\n";
    for wanted in [&["a"][..], &["a", "b"]] {
        for chunk in CHUNKS {
            let err = run(text, &CsvConfig::default(), &line, wanted, Unmapped::Skip, chunk).unwrap_err();
            assert_eq!(err.kind, DecodeErrorKind::Limit(Limit::MaxLine), "{err}");
            assert_eq!(err.to_string(), "a line longer than format.limits.max_line (10 bytes) at byte 11 (at record 1, line 3)");
        }
    }
    let err = run(b"abcdefghijkl,b\n1,2\n", &CsvConfig::default(), &line, &["b"], Unmapped::Skip, 3).unwrap_err();
    assert_eq!(err.to_string(), "a line longer than format.limits.max_line (10 bytes) at byte 0 (at line 1)");
}

#[test]
fn max_columns_bounds_the_header() {
    let three = limits(|l| l.max_columns = 3);
    for chunk in CHUNKS {
        assert_eq!(run(b"a,b,c\n1,2,3\n", &CsvConfig::default(), &three, &["c"], Unmapped::Skip, chunk).unwrap().columns, [some(&["3"])]);
        let err = run(b"a,b,c,d\n1,2,3,4\n", &CsvConfig::default(), &three, &["c"], Unmapped::Skip, chunk).unwrap_err();
        assert_eq!(err.kind, DecodeErrorKind::Limit(Limit::MaxColumns), "{err}");
        assert_eq!(err.message, "more columns than format.limits.max_columns (3) at byte 0");
    }
}

#[test]
fn ragged_rows_are_refused_with_their_record_line_and_byte() {
    let wanted = ["a", "b"];
    for chunk in CHUNKS {
        let err = columns(b"a,b\n1,2,3\n", &wanted, chunk).unwrap_err();
        assert_eq!(err.to_string(), "invalid CSV: incorrect number of fields, expected 2 got 3 (at record 1, line 2, byte 4)");
        let err = columns(b"a,b\n1,2,3,4,5\n", &wanted, chunk).unwrap_err();
        // The count is exact when the record was read whole before it was found too wide.
        let (exact, more) = ("got 5 (at record 1, line 2, byte 4)", "got more than 2 (at record 1, line 2, byte 4)");
        let message = err.to_string();
        assert!(message.starts_with("invalid CSV: incorrect number of fields, expected 2 "), "{message}");
        assert!(message.ends_with(exact) || message.ends_with(more), "{chunk}: {message}");
        // After a quoted line break, record 2 is on line 4, at byte 12.
        let err = columns(b"a,b\n\"x\ny\",1\n2\n", &wanted, chunk).unwrap_err();
        assert_eq!(err.to_string(), "invalid CSV: incorrect number of fields, expected 2 got 1 (at record 2, line 4, byte 12)");
    }
    let csv = CsvConfig { allow_short_rows: true, ..CsvConfig::default() };
    let got = run(b"a,b\n\"x\ny\",1\n2\n", &csv, &LimitsConfig::default(), &wanted, Unmapped::Skip, 3).unwrap();
    assert_eq!(got.columns, [some(&["x\ny", "2"]), vec![Some("1".to_string()), None]]);
    // Positions count from where the reader starts in the file.
    let start = Lead { bytes: 100, newlines: 5 };
    let wanted: Vec<String> = wanted.iter().map(|w| w.to_string()).collect();
    let err =
        decode(input(b"a,b\n1\n", 2), &CsvConfig::default(), &LimitsConfig::default(), start, (&wanted, Unmapped::Skip), &mut |_| Ok(()))
            .unwrap_err();
    assert_eq!(err.position, Some(Position { record: Some(1), line: Some(7), byte: Some(104) }));
}

#[test]
fn every_field_must_be_utf8_read_or_not() {
    for chunk in CHUNKS {
        let err = columns(b"a,b\n1,\"\xff\"\n", &["a"], chunk).unwrap_err();
        assert_eq!(err.to_string(), "invalid CSV: field 2 of the row is not UTF-8 (at record 1, line 2, byte 6)", "{chunk}");
        // Together the two fields would be "é".
        let err = columns(b"a,b\n\xc3,\xa9\n", &["a"], chunk).unwrap_err();
        assert_eq!(err.to_string(), "invalid CSV: field 1 of the row is not UTF-8 (at record 1, line 2, byte 4)", "{chunk}");
        // ...also when a bad byte follows in the next field.
        let err = columns(b"a,b\n\xc3,\xa9\xff\n", &["a"], chunk).unwrap_err();
        assert_eq!(err.to_string(), "invalid CSV: field 1 of the row is not UTF-8 (at record 1, line 2, byte 4)", "{chunk}");
        let err = columns(b"a,\xe2\x82\n1,2\n", &["a"], chunk).unwrap_err();
        assert_eq!(err.to_string(), "invalid CSV: field 2 of the header is not UTF-8 (at line 1, byte 2)", "{chunk}");
    }
}

#[test]
fn unmapped_fields_are_counted_or_captured_as_json_strings() {
    let csv = CsvConfig { allow_short_rows: true, ..CsvConfig::default() };
    let text = "a,b,c,\"d \"\"e\"\"\"\n1,x,,\"q\"\"\\\n\u{1}\"\n2\n";
    for chunk in CHUNKS {
        let got = run(text.as_bytes(), &csv, &LimitsConfig::default(), &["a"], Unmapped::Capture, chunk).unwrap();
        assert_eq!((got.ignored, got.columns.clone()), (6, vec![some(&["1", "2"])]), "{chunk}");
        assert_eq!(got.captured.len(), 2);
        let first: serde_json::Value = serde_json::from_str(got.captured[0].as_deref().unwrap()).unwrap();
        assert_eq!(first, serde_json::json!({"b": "x", "d \"e\"": "q\"\\\n\u{1}"}), "{chunk}");
        assert_eq!(got.captured[1], None, "a short row has nothing past its end");
        let counted = run(text.as_bytes(), &csv, &LimitsConfig::default(), &["a"], Unmapped::Count, chunk).unwrap();
        assert_eq!((counted.ignored, counted.captured.len()), (6, 0));
    }
}

#[test]
fn batches_close_at_batch_rows_and_keep_their_row_count_without_columns() {
    let mut text = String::from("a\n");
    for i in 0..2 * BATCH_ROWS + 1 {
        text.push_str(&format!("{i}\n"));
    }
    let got = run(text.as_bytes(), &CsvConfig::default(), &LimitsConfig::default(), &[], Unmapped::Count, MIB).unwrap();
    assert_eq!(
        (got.rows, got.batch_rows, got.batches, got.ignored),
        (2 * BATCH_ROWS as u64 + 1, 2 * BATCH_ROWS + 1, 3, 2 * BATCH_ROWS as u64 + 1)
    );
    // A header alone is no row; sampling gives its columns.
    assert_eq!(run(b"a,b\r\n", &CsvConfig::default(), &LimitsConfig::default(), &["b"], Unmapped::Skip, 2).unwrap().rows, 0);
    let sample = super::sample(input(b"a,b\r\n", 2), &CsvConfig::default(), &LimitsConfig::default(), Lead::default(), 10).unwrap();
    assert_eq!((sample.num_columns(), sample.num_rows()), (2, 0));
    let sample = super::sample(input(text.as_bytes(), 64), &CsvConfig::default(), &LimitsConfig::default(), Lead::default(), 10).unwrap();
    assert_eq!(sample.num_rows(), 10);
}

#[test]
fn a_missing_column_is_named_with_the_header() {
    let err = columns(b"a,b\n1,2\n", &["c"], MIB).unwrap_err();
    assert_eq!(err.to_string(), r#"the CSV header has no column "c" (it has ["a", "b"]) (at line 1)"#);
    let wide: Vec<String> = (0..25).map(|i| format!("n{i}")).collect();
    let err = columns(format!("{}\n", wide.join(",")).as_bytes(), &["c"], MIB).unwrap_err();
    assert!(err.message.ends_with(r#""n19"] and 5 more)"#), "{err}");
}

#[test]
fn the_byte_order_mark_is_passed_by_sniffing_not_here() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bom.csv");
    std::fs::write(&path, "\u{feff}a,b\r\n1,\"\"\r\n").unwrap();
    let plan = DecodePlan {
        format: FormatConfig::default(),
        json_fields: FieldTree::new(["unused"]).unwrap(),
        csv_columns: vec!["a".into(), "b".into()],
        csv_unmapped: Unmapped::Skip,
    };
    let mut got = Vec::new();
    crate::decode::open(&path, "bom.csv", &plan.format)
        .unwrap()
        .decode(&plan, &mut |batch| {
            got.extend(batch.text.columns().iter().map(|c| c.as_string::<i32>().value(0).to_string()));
            Ok(())
        })
        .unwrap();
    assert_eq!(got, ["1", ""]);
    // One more is data, the first character of the first name.
    let sample =
        super::sample(input("\u{feff}a,b\n".as_bytes(), 2), &CsvConfig::default(), &LimitsConfig::default(), Lead::default(), 1).unwrap();
    assert_eq!(sample.schema().field(0).name(), "\u{feff}a");
}

#[test]
fn semicolons_tabs_and_other_quotes() {
    let csv = CsvConfig { delimiter: ';', quote: '\'', ..CsvConfig::default() };
    let got = run(b"a;b\n'x;''y''';2\n", &csv, &LimitsConfig::default(), &["a", "b"], Unmapped::Skip, 3).unwrap();
    assert_eq!(got.columns, [some(&["x;'y'"]), some(&["2"])]);
    let tsv = CsvConfig { delimiter: '\t', ..CsvConfig::default() };
    let got = run(b"\ta\n0\t\"1\t2\"\n", &tsv, &LimitsConfig::default(), &["", "a"], Unmapped::Skip, 3).unwrap();
    assert_eq!(got.columns, [some(&["0"]), some(&["1\t2"])]);
}

#[test]
fn captured_fields_are_at_most_twice_max_record_however_escaping_grows_them() {
    // 1,000 control characters become 6,000 bytes of JSON escapes.
    let text = format!("a,b\n1,{}\n", "\u{1}".repeat(1000));
    let at = |max_record: u64| {
        limits(|l| (l.max_record, l.max_field, l.max_line) = (ByteSize(max_record), ByteSize(1000), ByteSize(max_record)))
    };
    for chunk in [1, 64, MIB] {
        let err = run(text.as_bytes(), &CsvConfig::default(), &at(2000), &["a"], Unmapped::Capture, chunk).unwrap_err();
        assert_eq!(err.kind, DecodeErrorKind::Limit(Limit::MaxRecord), "{err}");
        assert_eq!(err.message, "the fields no column reads, as JSON, are longer than twice format.limits.max_record (2 kB) at byte 4");
        let read = run(text.as_bytes(), &CsvConfig::default(), &at(3100), &["a"], Unmapped::Capture, chunk).unwrap();
        assert_eq!(read.captured, [Some(format!("{{\"b\":\"{}\"}}", "\\u0001".repeat(1000)))]);
    }
}

use super::*;
use crate::config::units::ByteSize;
use arrow::array::{Array, AsArray};
use std::io::Write;

fn plan(format: FormatConfig) -> DecodePlan {
    DecodePlan {
        format,
        json_fields: FieldTree::new(["a", "b.c"]).unwrap(),
        csv_columns: vec!["a".into(), "c".into()],
        csv_unmapped: Unmapped::Skip,
    }
}

/// Decodes `bytes` saved as `name`; returns the layout, and column `a` as text ("-" for null).
fn decode_bytes(name: &str, bytes: &[u8], format: FormatConfig) -> Result<(Detected, Vec<String>), DecodeError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    let file = open(&path, name, &format)?;
    let detected = file.detected.clone();
    let mut values = Vec::new();
    let rows = file.decode(&plan(format), &mut |batch| {
        let a = batch.text.column(0).as_string::<i32>();
        values.extend((0..a.len()).map(|i| if a.is_null(i) { "-".to_string() } else { a.value(i).to_string() }));
        Ok(())
    })?;
    assert_eq!(rows.records as usize, values.len());
    Ok((detected, values))
}

/// Decodes `bytes` saved as `name`, reading no CSV column (so that a CSV header alone is no
/// error of its own); returns what [`OpenFile::decode`] says of the file.
fn decoded(name: &str, bytes: &[u8], format: FormatConfig) -> Result<DecodedFile, DecodeError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    let plan = DecodePlan { csv_columns: Vec::new(), ..plan(format) };
    open(&path, name, &plan.format)?.decode(&plan, &mut |_| Ok(()))
}

/// [`decoded`], its error as text (to compare whole results).
fn summary(name: &str, bytes: &[u8], format: FormatConfig) -> Result<DecodedFile, String> {
    decoded(name, bytes, format).map_err(|e| e.to_string())
}

fn kind(kind: FormatKind) -> FormatConfig {
    FormatConfig { kind, ..FormatConfig::default() }
}

/// JSON whitespace, `len` bytes of it, newlines included.
fn whitespace(len: usize) -> Vec<u8> {
    b" \n\t\r".iter().copied().cycle().take(len).collect()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

const ARRAY: &[u8] = br#"[{"a": "x", "b": {"c": 1}}, {"a": 12.5, "zz": [1,2]}, {"b": null}, {"a": true}]"#;

#[test]
fn a_json_array_without_extension_is_sniffed_and_numbers_come_as_text() {
    let (detected, a) = decode_bytes("CO06037 2019-01-01", ARRAY, FormatConfig::default()).unwrap();
    assert_eq!(detected, Detected { compression: Compression::None, layout: Layout::JsonArray });
    assert_eq!(a, ["x", "12.5", "-", "true"]);
}

#[test]
fn gzip_and_zstd_are_detected_by_magic_bytes() {
    let (detected, a) = decode_bytes("f", &gzip(ARRAY), FormatConfig::default()).unwrap();
    assert_eq!(detected.compression, Compression::Gzip);
    assert_eq!(a.len(), 4);
    let (detected, a) = decode_bytes("f.json", &zstd::encode_all(ARRAY, 3).unwrap(), FormatConfig::default()).unwrap();
    assert_eq!(detected.compression, Compression::Zstd);
    assert_eq!(a.len(), 4);
}

#[test]
fn a_truncated_gzip_is_an_error_not_a_short_file() {
    let full = gzip(ARRAY);
    let err = decode_bytes("f", &full[..full.len() - 12], FormatConfig::default()).unwrap_err();
    assert!(err.to_string().contains("decompress") || err.to_string().contains("not closed"), "{err}");
}

#[test]
fn the_api_envelope_is_read_at_records_path() {
    let text = br#"{"status": {"code": 0, "total": 2}, "property": [{"a": "1"}, {"a": "2"}]}"#;
    let format = FormatConfig { records_path: Some("property".into()), ..FormatConfig::default() };
    let (detected, a) = decode_bytes("resp", text, format.clone()).unwrap();
    assert_eq!(detected.layout, Layout::JsonEnvelope("property".into()));
    assert_eq!(a, ["1", "2"]);
    let err = decode_bytes("resp", br#"{"status": {}}"#, format).unwrap_err();
    assert!(err.to_string().contains("\"property\""), "{err}");
}

#[test]
fn ndjson_errors_name_the_line() {
    let (detected, a) = decode_bytes("e.ndjson", b"{\"a\": 1}\n\n{\"a\": \"two\"}\n", FormatConfig::default()).unwrap();
    assert_eq!(detected.layout, Layout::Ndjson);
    assert_eq!(a, ["1", "two"]);
    let err = decode_bytes("e.ndjson", b"{\"a\": 1}\n{\"a\": 2}\n{\"a\": oops}\n", FormatConfig::default()).unwrap_err();
    assert!(err.to_string().contains("line 3"), "{err}");
}

#[test]
fn malformed_json_in_an_array_names_the_record() {
    let err = decode_bytes("bad", br#"[{"a": "1"}, {"a": "2"}, {"a": ]"#, FormatConfig::default()).unwrap_err();
    assert!(err.to_string().contains("record 3"), "{err}");
    let err = decode_bytes("bad", br#"[{"a": "1"}, {"b": "not an object"}]"#, FormatConfig::default()).unwrap_err();
    assert!(err.to_string().contains("does not fit"), "{err}");
}

#[test]
fn csv_with_bom_crlf_quotes_and_embedded_newlines() {
    let text = "\u{feff}a,b,c\r\n\"x, \"\"quoted\"\"\",1,\"multi\r\nline\"\r\n,2,3\r\nlast,3,\r\n";
    let (detected, a) = decode_bytes("export.csv", text.as_bytes(), FormatConfig::default()).unwrap();
    assert_eq!(detected.layout, Layout::Csv);
    // A present field is a value when decoded, `""` too: only the mapping's null_values make nulls.
    assert_eq!(a, ["x, \"quoted\"", "", "last"]);
}

#[test]
fn csv_semicolons_short_rows_and_missing_columns() {
    let mut format = FormatConfig::default();
    format.csv.delimiter = ';';
    let (_, a) = decode_bytes("x.csv", b"a;c\n1;2\n3;4\n", format.clone()).unwrap();
    assert_eq!(a, ["1", "3"]);
    let err = decode_bytes("x.csv", b"a;c\n1;2\n3\n", format.clone()).unwrap_err();
    assert!(err.to_string().contains("invalid CSV"), "{err}");
    format.csv.allow_short_rows = true;
    assert_eq!(decode_bytes("x.csv", b"a;c\n1;2\n3\n", format.clone()).unwrap().1, ["1", "3"]);
    let err = decode_bytes("x.csv", b"a;b\n1;2\n", format).unwrap_err();
    assert!(err.to_string().contains("no column \"c\""), "{err}");
}

#[test]
fn csv_columns_no_mapping_reads_are_counted_or_captured_as_json_strings() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.csv");
    std::fs::write(&path, "a,b,c,d\n1,x,3,\n2,,4,\"q\"\"\"\n").unwrap();
    for (mode, want) in
        [(Unmapped::Count, None), (Unmapped::Capture, Some(vec![Some(r#"{"b":"x"}"#.to_string()), Some(r#"{"d":"q\""}"#.to_string())]))]
    {
        let mut plan = plan(FormatConfig::default());
        plan.csv_unmapped = mode;
        let (mut ignored, mut captured, mut widths) = (0, Vec::new(), Vec::new());
        open(&path, "f.csv", &plan.format)
            .unwrap()
            .decode(&plan, &mut |batch| {
                ignored += batch.ignored;
                widths.push(batch.text.num_columns());
                if let Some(u) = &batch.unmapped {
                    captured.extend((0..u.len()).map(|i| u.is_valid(i).then(|| u.value(i).to_string())));
                }
                Ok(())
            })
            .unwrap();
        assert_eq!((ignored, widths), (4, vec![2]), "{mode:?}: two columns unread in two rows; only a and c decoded");
        assert_eq!(want.map(|w| w == captured), mode.eq(&Unmapped::Capture).then_some(true), "{captured:?}");
    }
}

const MIB: usize = 1 << 20;

#[test]
fn json_after_two_mib_of_whitespace_is_sniffed_whatever_follows() {
    let lead = whitespace(2 * MIB);
    let array = [&lead[..], ARRAY].concat();
    for (name, format) in [("lead", kind(FormatKind::Auto)), ("lead.json", kind(FormatKind::Auto)), ("lead", kind(FormatKind::Json))] {
        let (detected, a) = decode_bytes(name, &array, format.clone()).unwrap();
        assert_eq!(detected.layout, Layout::JsonArray, "{name} {format:?}");
        assert_eq!(a, ["x", "12.5", "-", "true"], "{name} {format:?}");
    }
    let lines = [&lead[..], b"{\"a\": \"1\"}\n{\"a\": \"2\"}\n"].concat();
    for (name, format) in [("lead", kind(FormatKind::Auto)), ("lead.json", kind(FormatKind::Auto)), ("lead", kind(FormatKind::Json))] {
        let (detected, a) = decode_bytes(name, &lines, format.clone()).unwrap();
        assert_eq!(detected.layout, Layout::Ndjson, "{name} {format:?}");
        assert_eq!(a, ["1", "2"], "{name} {format:?}");
    }
    let envelope = [&lead[..], br#"{"status": {}, "property": [{"a": "1"}]}"#].concat();
    let format = FormatConfig { kind: FormatKind::Json, records_path: Some("property".into()), ..FormatConfig::default() };
    let (detected, a) = decode_bytes("lead", &envelope, format).unwrap();
    assert_eq!(detected.layout, Layout::JsonEnvelope("property".into()));
    assert_eq!(a, ["1"]);
}

#[test]
fn positions_after_a_lead_count_its_bytes_and_lines() {
    let lead = vec![b'\n'; 2 * MIB];
    let err = decode_bytes("lead", &[&lead[..], br#"{"a": oops}"#].concat(), FormatConfig::default()).unwrap_err();
    let (line, byte) = (2 * MIB + 1, 2 * MIB + 6);
    assert!(err.to_string().contains(&format!("line {line}")) && err.to_string().contains(&format!("byte {byte}")), "{err}");
    // BOM (3 bytes) and " \r\n\t" (4, one newline), then a good line (9 bytes), then `oops` at 6.
    let err = decode_bytes("e.ndjson", b"\xEF\xBB\xBF \r\n\t{\"a\": 1}\n{\"a\": oops}\n", FormatConfig::default()).unwrap_err();
    assert!(err.to_string().contains("record 2, line 3, byte 22"), "{err}");
}

#[test]
fn a_bom_and_whitespace_before_json_or_csv() {
    let text = [b"\xEF\xBB\xBF \r\n\t".as_slice(), ARRAY].concat();
    for name in ["bom", "bom.json"] {
        let (detected, a) = decode_bytes(name, &text, FormatConfig::default()).unwrap();
        assert_eq!((detected.layout, a.len()), (Layout::JsonArray, 4), "{name}");
    }
    // Blank lines before a CSV header are passed; the header line's own whitespace is data.
    let (_, a) = decode_bytes("x.csv", b"\xEF\xBB\xBF\n\r\na,c\n1,2\n", FormatConfig::default()).unwrap();
    assert_eq!(a, ["1"]);
    let err = decode_bytes("x.csv", b"\xEF\xBB\xBF\n \t a,c\n1,2\n", FormatConfig::default()).unwrap_err();
    assert!(err.to_string().contains(r#"no column "a""#) && err.to_string().contains(r#"" \t a""#), "{err}");
    let mut format = FormatConfig::default();
    format.csv.delimiter = '\t';
    let (_, a) = decode_bytes("x.tsv", b"\ta\tc\n0\t1\t2\n", format).unwrap();
    assert_eq!(a, ["1"], "the empty first name of a TSV header is kept");
}

#[test]
fn what_is_neither_json_nor_a_csv_with_rows_is_refused_not_zero_rows() {
    for text in ["*", " ", "]", "1]", "abc", "\u{feff}", "\u{feff} \n"] {
        for name in ["x.json", "x"] {
            let err = decoded(name, text.as_bytes(), FormatConfig::default()).unwrap_err();
            let blank = text.trim_start_matches('\u{feff}').trim().is_empty();
            let want = match (blank, name) {
                (true, _) => DecodeErrorKind::NoRecords,
                (false, "x.json") => DecodeErrorKind::Unrecognised,
                (false, _) => DecodeErrorKind::NoRecords,
            };
            assert_eq!(err.kind, want, "{name} {text:?}: {err}");
            assert!(err.message.contains("no records") || err.message.contains("must start with"), "{name} {text:?}: {err}");
        }
    }
    let err = decoded("x.json", b"*", FormatConfig::default()).unwrap_err();
    assert_eq!(err.to_string(), "a .json file must start with '[' or '{' (found '*' at byte 0)");
    let err = decoded("x.json", b"\xEF\xBB\xBF\n abc", FormatConfig::default()).unwrap_err();
    assert!(err.to_string().contains("found 'a' at byte 5"), "{err}");
    assert_eq!(summary("x", b" ", FormatConfig::default()), Err("no records: the file holds only whitespace".to_string()));
    for format in [kind(FormatKind::Ndjson), kind(FormatKind::Json), kind(FormatKind::Csv)] {
        let err = decoded("x", b" \n", format.clone()).unwrap_err();
        assert_eq!(err.kind, DecodeErrorKind::NoRecords, "{format:?}: {err}");
    }
}

#[test]
fn only_an_empty_file_an_empty_array_or_a_csv_header_is_empty() {
    let empty = |e: Empty| Ok::<_, String>(DecodedFile { records: 0, empty: Some(e) });
    for name in ["x", "x.ndjson", "x.csv"] {
        assert_eq!(summary(name, b"", FormatConfig::default()), empty(Empty::File), "{name}");
        assert_eq!(summary(name, &gzip(b""), FormatConfig::default()), empty(Empty::File), "{name}, gzip");
    }
    for format in [kind(FormatKind::Ndjson), kind(FormatKind::Csv)] {
        assert_eq!(summary("x", b"", format.clone()), empty(Empty::File), "{format:?}");
    }
    // A JSON file holds one document, and 0 bytes hold none (JSONTestSuite's n_structure_no_data).
    for (name, format) in [("x.json", FormatConfig::default()), ("x", kind(FormatKind::Json))] {
        for bytes in [Vec::new(), gzip(b"")] {
            let err = decoded(name, &bytes, format.clone()).unwrap_err();
            assert_eq!(err.kind, DecodeErrorKind::NoRecords, "{name}: {err}");
        }
    }
    for (name, text) in [("x", "[]"), ("x.json", " \n[ ]\n"), ("x", "\u{feff}[]")] {
        assert_eq!(summary(name, text.as_bytes(), FormatConfig::default()), empty(Empty::Array), "{name} {text:?}");
    }
    let format = FormatConfig { records_path: Some("property".into()), ..FormatConfig::default() };
    assert_eq!(summary("x", br#"{"status": 0, "property": []}"#, format), empty(Empty::Array));
    assert_eq!(summary("x.csv", b"a,c\n", FormatConfig::default()), empty(Empty::CsvHeader));
    assert_eq!(summary("x", b"a,c\r\n", kind(FormatKind::Csv)), empty(Empty::CsvHeader));
    let err = decoded("x", b"a,c\n", FormatConfig::default()).unwrap_err();
    assert_eq!(err.kind, DecodeErrorKind::NoRecords, "{err}");
    assert_eq!(summary("x", ARRAY, FormatConfig::default()), Ok(DecodedFile { records: 4, empty: None }));
}

#[test]
fn three_hundred_mib_of_whitespace_between_records_stream_through_gzip_and_zstd() {
    // Members (gzip) and frames (zstd) one after another are one stream, so a mebibyte of
    // whitespace compressed once, repeated, is 300 MiB decompressed: more than the 256 MiB a
    // reader that kept the whitespace would refuse at. Whitespace compresses far past
    // format.limits.max_decompression_ratio, which judges the other bytes only.
    let format = FormatConfig::default();
    let block = whitespace(MIB);
    let mut gz = gzip(b"{\"a\": \"1\"}\n");
    let mut zst = zstd::encode_all(&b"{\"a\": \"1\"}\n"[..], 3).unwrap();
    let (gz_block, zst_block) = (gzip(&block), zstd::encode_all(&block[..], 3).unwrap());
    for _ in 0..300 {
        gz.extend_from_slice(&gz_block);
        zst.extend_from_slice(&zst_block);
    }
    gz.extend_from_slice(&gzip(b"{\"a\": \"2\"}\n"));
    zst.extend_from_slice(&zstd::encode_all(&b"{\"a\": \"2\"}\n"[..], 3).unwrap());
    for (name, bytes) in [("big.gz", gz), ("big.zst", zst)] {
        assert!(bytes.len() < 8 * MIB, "{name}: {} bytes", bytes.len());
        let (detected, a) = decode_bytes(name, &bytes, format.clone()).unwrap();
        assert_eq!(detected.layout, Layout::Ndjson, "{name}");
        assert_eq!(a, ["1", "2"], "{name}");
    }
}

fn limited(limits: LimitsConfig) -> FormatConfig {
    FormatConfig { limits, ..FormatConfig::default() }
}

#[test]
fn each_limit_refuses_the_file_naming_its_key_and_byte() {
    let defaults = LimitsConfig::default();
    let ndjson: Vec<u8> = b"{\"a\": \"1\"}\n".repeat(1000);
    let nested = |levels: usize| format!(r#"[{{"a": {}{}}}]"#, "[".repeat(levels), "]".repeat(levels));
    // Each case: the file's name and bytes, the limits, the limit met, the message.
    type Case = (&'static str, Vec<u8>, LimitsConfig, Limit, &'static str);
    let cases: [Case; 6] = [
        (
            "x.json",
            format!(r#"[{{"a": "1"}}, {{"a": "2", "z": "{}"}}]"#, "x".repeat(200)).into_bytes(),
            LimitsConfig { max_record: ByteSize(100), max_field: ByteSize(100), ..defaults },
            Limit::MaxRecord,
            "a record longer than format.limits.max_record (100 bytes) at byte 13",
        ),
        (
            "x.json",
            br#"[{"a": "12345678901"}]"#.to_vec(),
            LimitsConfig { max_field: ByteSize(10), ..defaults },
            Limit::MaxField,
            "a field longer than format.limits.max_field (10 bytes) at byte 7",
        ),
        (
            "x.ndjson",
            b"{\"a\": \"1\"}\n{\"a\": \"2\"}{\"a\": \"3\"}{\"a\": \"4\"}\n".to_vec(),
            LimitsConfig { max_line: ByteSize(20), ..defaults },
            Limit::MaxLine,
            "a line longer than format.limits.max_line (20 bytes) at byte 31",
        ),
        // The record is level 1, so 128 arrays in it are level 129; the last opens at 7 + 127.
        ("x.json", nested(128).into_bytes(), defaults, Limit::MaxDepth, "nesting deeper than format.limits.max_depth (128) at byte 134"),
        (
            "x.ndjson.gz",
            gzip(&ndjson),
            LimitsConfig { max_decompressed_size: ByteSize(4096), ..defaults },
            Limit::MaxDecompressedSize,
            "more decompressed bytes than format.limits.max_decompressed_size (4 KiB) at byte 4096",
        ),
        (
            "x.ndjson.zst",
            zstd::encode_all(&ndjson[..], 3).unwrap(),
            LimitsConfig { max_decompressed_size: ByteSize(4096), ..defaults },
            Limit::MaxDecompressedSize,
            "more decompressed bytes than format.limits.max_decompressed_size (4 KiB) at byte 4096",
        ),
    ];
    for (name, bytes, limits, limit, message) in cases {
        let err = decoded(name, &bytes, limited(limits)).unwrap_err();
        assert_eq!(err.kind, DecodeErrorKind::Limit(limit), "{name}: {err}");
        assert_eq!(err.message, message, "{name}");
        assert!(err.to_string().starts_with(message), "{err}");
        // Within the limits the same files decode.
        assert!(decoded(name, &bytes, limited(LimitsConfig { max_depth: 512, ..defaults })).is_ok(), "{name}");
    }
    assert_eq!(summary("x.json", nested(127).as_bytes(), FormatConfig::default()), Ok(DecodedFile { records: 1, empty: None }));
}

/// `mib` mebibytes of `byte`, compressed as gzip and as zstd, streaming (never held whole).
fn bomb(byte: u8, mib: usize) -> (Vec<u8>, Vec<u8>) {
    let block = vec![byte; MIB];
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut zst = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    for _ in 0..mib {
        gz.write_all(&block).unwrap();
        zst.write_all(&block).unwrap();
    }
    (gz.finish().unwrap(), zst.finish().unwrap())
}

#[test]
fn a_gzip_bomb_of_zeros_is_refused_by_ratio_within_a_buffer_of_64_mib() {
    let (gz, _) = bomb(0, 200);
    assert!(gz.len() < MIB, "{} bytes", gz.len());
    let decoder = limits::decompressed(&gz[..], &LimitsConfig::default(), |raw| Ok(flate2::bufread::MultiGzDecoder::new(raw))).unwrap();
    let mut reader = BufReader::with_capacity(READ_BUFFER, decoder);
    let (mut out, mut chunk) = (0u64, vec![0; READ_BUFFER]);
    let err = loop {
        match reader.read(&mut chunk) {
            Ok(0) => panic!("read to the end: {out} bytes"),
            Ok(n) => out += n as u64,
            Err(e) => break e,
        }
    };
    let hit = limits::limit_hit(&err).expect("a limit");
    assert_eq!((hit.limit, hit.value), (Limit::MaxDecompressionRatio, 250));
    assert!(out < 64 << 20 && (64 << 20..=(64 << 20) + READ_BUFFER as u64).contains(&hit.byte), "{out} bytes out, hit at {}", hit.byte);
}

#[test]
fn a_bomb_of_whitespace_is_passed_in_one_buffer_and_bounded_by_size_not_ratio() {
    // Whitespace costs the decoders nothing to pass, so the ratio does not judge it; the file is
    // then refused for what it is (no records), or past max_decompressed_size.
    let (gz, zst) = bomb(b' ', 200);
    for (name, bytes) in [("bomb.json.gz", &gz), ("bomb.json.zst", &zst)] {
        assert_eq!(summary(name, bytes, FormatConfig::default()).unwrap_err(), "no records: the file holds only whitespace", "{name}");
        let small = limited(LimitsConfig { max_decompressed_size: ByteSize(100 << 20), ..LimitsConfig::default() });
        let err = decoded(name, bytes, small).unwrap_err();
        assert_eq!(err.kind, DecodeErrorKind::Limit(Limit::MaxDecompressedSize), "{name}: {err}");
    }
}

#[test]
fn a_seventy_mib_string_is_refused_by_max_field_at_default_and_read_when_raised() {
    let value = "x".repeat(70 * MIB);
    let kept = format!(r#"[{{"a": "{value}"}}]"#);
    let err = decoded("big.json", kept.as_bytes(), FormatConfig::default()).unwrap_err();
    assert_eq!(err.kind, DecodeErrorKind::Limit(Limit::MaxField), "{err}");
    assert_eq!(err.to_string(), "a field longer than format.limits.max_field (64 MiB) at byte 7 (at record 1)");
    // Skipped, the same value makes its record too long.
    let skipped = format!(r#"[{{"zz": "{value}"}}]"#);
    let err = decoded("big.json", skipped.as_bytes(), FormatConfig::default()).unwrap_err();
    assert_eq!(err.to_string(), "a record longer than format.limits.max_record (64 MiB) at byte 1 (at record 1)");
    let raised = limited(LimitsConfig { max_field: ByteSize(80 << 20), max_record: ByteSize(80 << 20), ..LimitsConfig::default() });
    let (_, a) = decode_bytes("big.json", kept.as_bytes(), raised.clone()).unwrap();
    assert_eq!(a.len(), 1);
    assert!(a[0] == value, "{} bytes", a[0].len());
    assert_eq!(summary("big.json", skipped.as_bytes(), raised), Ok(DecodedFile { records: 1, empty: None }));
}

#[test]
fn a_csv_header_wider_than_max_columns_is_refused_before_its_rows_are_read() {
    let header: Vec<String> = (0..50).map(|i| format!("c{i}")).collect();
    let text = format!("{}\n{}\n", header.join(","), vec!["1"; 50].join(","));
    let narrow = limited(LimitsConfig { max_columns: 49, ..LimitsConfig::default() });
    let err = decoded("wide.csv", text.as_bytes(), narrow).unwrap_err();
    assert_eq!(err.kind, DecodeErrorKind::Limit(Limit::MaxColumns), "{err}");
    assert!(err.message.starts_with("more columns than format.limits.max_columns (49)"), "{err}");
    let wide = limited(LimitsConfig { max_columns: 50, ..LimitsConfig::default() });
    assert_eq!(decoded("wide.csv", text.as_bytes(), wide).unwrap().records, 1);
}

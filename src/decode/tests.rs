use super::*;
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
    assert_eq!(rows as usize, values.len());
    Ok((detected, values))
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
    assert_eq!(a, ["x, \"quoted\"", "-", "last"]);
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

//! Conformance suites end to end (issue 17): every JSONTestSuite `y_` and `n_` document through
//! each JSON layout, and every csv-spectrum CSV against its expected JSON, through `ingestd once`
//! as a user runs it. What each file must give comes from an oracle (serde_json, which agrees
//! with JSONTestSuite on every `y_` and `n_` file; the test checks that first), never from
//! ingestd. The corpora are copied unchanged into `tests/corpora` (their READMEs and licences with them).
//!
//! The rules the oracle encodes (issue 17's "strict format detection"):
//! - `kind = "json"`, and `auto` for a `.json` name: an array of objects (one row each, `[]` an
//!   empty file committed as such), or, from a `{`, objects one after another; anything else is
//!   refused. A leading UTF-8 BOM and any amount of leading whitespace are skipped.
//! - `kind = "ndjson"`: objects one after another, any JSON whitespace between them (the reader
//!   is lenient about line breaks, as today); a file of zero bytes is an empty file; a file of
//!   whitespace only (or a BOM only) holds no records and is refused.
//! - `records_path = "records"`: one object whose `records` member is an array of objects, or a
//!   bare array of objects.
//! - A record whose value `v` is a document: accepted exactly when the document is valid JSON,
//!   and the table's `v` then holds that document.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

mod common;
use common::*;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Whether an NDJSON file of zero bytes is committed as an empty file (issue 17: "committed as
/// empty only when it really is an empty array or an empty file"). The issue also says every
/// `n_` file is refused in every layout, and `n_structure_no_data.json` is an empty file: this
/// says which rule wins. `false` refuses it.
const EMPTY_NDJSON_IS_AN_EMPTY_FILE: bool = true;

const BOM: &[u8] = b"\xEF\xBB\xBF";
const RECORDS_PATH: &str = "records";

fn corpora() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpora");
    assert!(dir.is_dir(), "{}: the conformance corpora are missing (tests/corpora, copied unchanged from the suites)", dir.display());
    dir
}

/// JSONTestSuite's `test_parsing` documents whose names start with one of `prefixes`, by name.
fn json_suite(prefixes: &[&str]) -> Vec<(String, Vec<u8>)> {
    let dir = corpora().join("JSONTestSuite/test_parsing");
    let mut docs: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter_map(|path| {
            let name = path.file_name()?.to_str()?.to_string();
            prefixes.iter().any(|p| name.starts_with(p)).then(|| (name, std::fs::read(&path).unwrap()))
        })
        .collect();
    docs.sort();
    docs
}

/// What a file must give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Committed with this many rows (0: committed as empty, not quarantined).
    Rows(usize),
    /// Quarantined with a reason, no row committed.
    Refused,
}

fn is_json_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// One JSON array of objects.
fn array_of_objects(bytes: &[u8]) -> Expect {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Array(items)) if items.iter().all(Value::is_object) => Expect::Rows(items.len()),
        _ => Expect::Refused,
    }
}

/// At least one object, objects one after another with any JSON whitespace between them.
fn objects_in_sequence(bytes: &[u8]) -> Expect {
    let mut rows = 0;
    for value in serde_json::Deserializer::from_slice(bytes).into_iter::<Value>() {
        match value {
            Ok(Value::Object(_)) => rows += 1,
            _ => return Expect::Refused,
        }
    }
    if rows == 0 { Expect::Refused } else { Expect::Rows(rows) }
}

/// `kind = "json"` (and `auto` for a `.json` name).
fn json_kind(bytes: &[u8]) -> Expect {
    let text = bytes.strip_prefix(BOM).unwrap_or(bytes);
    match text.iter().copied().find(|b| !is_json_ws(*b)) {
        Some(b'[') => array_of_objects(text),
        Some(b'{') => objects_in_sequence(text),
        _ => Expect::Refused,
    }
}

/// `kind = "ndjson"`.
fn ndjson_kind(bytes: &[u8]) -> Expect {
    if bytes.is_empty() {
        return if EMPTY_NDJSON_IS_AN_EMPTY_FILE { Expect::Rows(0) } else { Expect::Refused };
    }
    objects_in_sequence(bytes.strip_prefix(BOM).unwrap_or(bytes))
}

/// `kind = "json"` with `records_path = "records"`: one object holding the records there, or a
/// bare array of them (the same source takes raw API envelopes and extracted arrays).
fn envelope_kind(bytes: &[u8]) -> Expect {
    match serde_json::from_slice::<Value>(bytes.strip_prefix(BOM).unwrap_or(bytes)) {
        Ok(Value::Object(map)) => match map.get(RECORDS_PATH) {
            Some(Value::Array(items)) if items.iter().all(Value::is_object) => Expect::Rows(items.len()),
            _ => Expect::Refused,
        },
        Ok(Value::Array(_)) => array_of_objects(bytes.strip_prefix(BOM).unwrap_or(bytes)),
        _ => Expect::Refused,
    }
}

fn as_is(doc: &[u8]) -> Vec<u8> {
    doc.to_vec()
}

fn in_array(doc: &[u8]) -> Vec<u8> {
    [b"[{\"v\": ".as_slice(), doc, b"}]"].concat()
}

fn in_line(doc: &[u8]) -> Vec<u8> {
    [b"{\"v\": ".as_slice(), doc, b"}\n"].concat()
}

fn in_envelope(doc: &[u8]) -> Vec<u8> {
    [br#"{"meta": {"n": [1, "x"]}, "records": [{"v": "#.as_slice(), doc, b"}]}"].concat()
}

/// One way of handing a document to ingestd: a source of its own (its folder `drop/SOURCE`, its
/// table `lake/SOURCE`) with these `[format]` keys and one column, `v = json`.
struct Variant {
    source: &'static str,
    format: &'static str,
    /// The file dropped, made from the document.
    make: fn(&[u8]) -> Vec<u8>,
    /// What that file must give (the oracle of the layout, applied to the file dropped).
    expect: fn(&[u8]) -> Expect,
    /// The document is the value of `v` in the one record: the table must hold it.
    holds_document: bool,
}

static VARIANTS: &[Variant] = &[
    // The document is the file.
    Variant { source: "json_file", format: "kind = \"json\"", make: as_is, expect: json_kind, holds_document: false },
    Variant { source: "auto_file", format: "kind = \"auto\"", make: as_is, expect: json_kind, holds_document: false },
    Variant { source: "ndjson_file", format: "kind = \"ndjson\"", make: as_is, expect: ndjson_kind, holds_document: false },
    Variant {
        source: "envelope_file",
        format: "kind = \"json\"\nrecords_path = \"records\"",
        make: as_is,
        expect: envelope_kind,
        holds_document: false,
    },
    // The document is a value inside a record of each layout.
    Variant { source: "json_value", format: "kind = \"json\"", make: in_array, expect: json_kind, holds_document: true },
    Variant { source: "ndjson_value", format: "kind = \"ndjson\"", make: in_line, expect: ndjson_kind, holds_document: true },
    Variant {
        source: "envelope_value",
        format: "kind = \"json\"\nrecords_path = \"records\"",
        make: in_envelope,
        expect: envelope_kind,
        holds_document: true,
    },
];

/// One source per variant. Batches of 64 files: a refused file makes its batch be read again
/// without it, and most of the files here are refused.
fn json_config() -> String {
    let mut config = String::from("instance = \"conformance\"\n[http]\nlisten = \"\"\n");
    for v in VARIANTS {
        config.push_str(&format!(
            "[sources.{s}]\npath = \"drop/{s}\"\nmin_age = \"0s\"\nsinks = [\"{s}\"]\n\
             [sources.{s}.batch]\nmax_files = 64\n\
             [sources.{s}.format]\n{f}\n\
             [sources.{s}.columns]\nv = {{ path = \"v\", type = \"json\" }}\n\
             [sinks.{s}]\nkind = \"delta\"\nuri = \"lake/{s}\"\n",
            s = v.source,
            f = v.format
        ));
    }
    config
}

/// The error report of a quarantined file, if it was quarantined.
fn quarantine_report(ws: &Workspace, source: &str, name: &str) -> Option<Value> {
    let path = ws.path("quarantine").join(source).join(format!("{name}.error.json"));
    std::fs::read(&path).ok().map(|bytes| serde_json::from_slice(&bytes).expect("an error report is JSON"))
}

/// Column `column` of each file's rows in a table, by `_source_file`; empty before the table exists.
fn values_by_file(table: &Path, column: &str) -> HashMap<String, Vec<Option<String>>> {
    let mut out: HashMap<String, Vec<Option<String>>> = HashMap::new();
    if !table.join("_delta_log").exists() {
        return out;
    }
    let batches = read_delta(table);
    for (file, value) in strings(&batches, "_source_file").into_iter().zip(strings(&batches, column)) {
        out.entry(file.expect("_source_file is never null")).or_default().push(value);
    }
    out
}

struct Case {
    source: &'static str,
    name: String,
    expect: Expect,
    /// The document, parsed, for the variants whose table holds it.
    document: Option<Value>,
}

#[test]
fn json_test_suite_y_and_n_documents_in_every_layout() {
    let docs = json_suite(&["y_", "n_"]);
    assert!(docs.len() >= 280, "JSONTestSuite looks incomplete: {} y_ and n_ documents", docs.len());
    // The oracle must agree with the suite before it may judge ingestd.
    for (name, doc) in &docs {
        let valid = serde_json::from_slice::<Value>(doc).is_ok();
        assert_eq!(valid, name.starts_with("y_"), "serde_json and JSONTestSuite disagree on {name}: the oracle cannot judge it");
    }

    let ws = Workspace::with_config(&json_config());
    let mut cases = Vec::new();
    let mut notes = Vec::new();
    for variant in VARIANTS {
        let folder = ws.path("drop").join(variant.source);
        std::fs::create_dir_all(&folder).unwrap();
        // Admission settles a file with another's bytes as its duplicate: only the first is judged.
        let mut seen: HashMap<Vec<u8>, String> = HashMap::new();
        for (name, doc) in &docs {
            let bytes = (variant.make)(doc);
            if let Some(first) = seen.get(&bytes) {
                notes.push(format!("{}/{name}: the same bytes as {first}, not judged", variant.source));
                continue;
            }
            seen.insert(bytes.clone(), name.clone());
            std::fs::write(folder.join(name), &bytes).unwrap();
            let expect = (variant.expect)(&bytes);
            let document = (variant.holds_document && expect != Expect::Refused).then(|| serde_json::from_slice(doc).unwrap());
            cases.push(Case { source: variant.source, name: name.clone(), expect, document });
        }
    }

    let summary = ws.once();

    let tables: HashMap<&str, HashMap<String, Vec<Option<String>>>> =
        VARIANTS.iter().map(|v| (v.source, values_by_file(&ws.path("lake").join(v.source), "v"))).collect();
    let mut problems = Vec::new();
    for case in &cases {
        let rows = tables[case.source].get(&case.name).map(Vec::as_slice).unwrap_or_default();
        let report = quarantine_report(&ws, case.source, &case.name);
        let what = format!("{}/{}", case.source, case.name);
        match (case.expect, report) {
            (Expect::Refused, None) => problems.push(format!("{what}: accepted with {} rows, must be refused", rows.len())),
            (Expect::Refused, Some(report)) => {
                if !rows.is_empty() {
                    problems.push(format!("{what}: quarantined, yet {} of its rows are in the table", rows.len()));
                }
                if report["reason"].as_str().unwrap_or_default().is_empty() {
                    problems.push(format!("{what}: quarantined without a reason: {report}"));
                }
            }
            (Expect::Rows(n), Some(report)) => problems.push(format!("{what}: quarantined ({}), must give {n} rows", report["reason"])),
            (Expect::Rows(n), None) if rows.len() != n => problems.push(format!("{what}: {} rows, must give {n}", rows.len())),
            (Expect::Rows(_), None) => {
                if let Some(document) = &case.document {
                    // A json column keeps the value as written; a JSON null is a null.
                    let held = match &rows[0] {
                        None => Value::Null,
                        Some(text) => serde_json::from_str(text).unwrap_or_else(|e| Value::String(format!("<not JSON: {e}: {text}>"))),
                    };
                    if &held != document {
                        problems.push(format!("{what}: the table holds {held}, the document is {document}"));
                    }
                }
            }
        }
    }
    let refused = cases.iter().filter(|c| c.expect == Expect::Refused).count();
    if summary["totals"]["quarantined"].as_u64() != Some(refused as u64) {
        problems.push(format!("{refused} files must be quarantined; the summary says {}", summary["totals"]["quarantined"]));
    }
    if summary["totals"]["duplicates"].as_u64() != Some(0) {
        problems.push(format!("no file is a duplicate here; the summary says {}", summary["totals"]["duplicates"]));
    }
    for note in &notes {
        eprintln!("note: {note}");
    }
    assert!(problems.is_empty(), "{} of {} cases are wrong:\n{}", problems.len(), cases.len(), problems.join("\n"));
}

/// With no columns configured, every `y_` document that is an object commits as one row, and the
/// source keeps working: a second `once` (which fails with exit 1 when the saved mapping cannot
/// be read) commits the next file, and `ingestd schema` reads the columns (issue 17: keys holding
/// NUL or ESC were saved in a form TOML refuses).
#[test]
fn y_objects_with_inferred_columns_commit_and_the_source_keeps_working() {
    let config = "instance = \"conformance\"\n[http]\nlisten = \"\"\n[sources.s]\npath = \"drop\"\nmin_age = \"0s\"\nsinks = [\"lake\"]\n\
                  [sinks.lake]\nkind = \"delta\"\nuri = \"lake\"\n";
    let mut tried = 0;
    for (name, doc) in json_suite(&["y_"]) {
        let Ok(Value::Object(_)) = serde_json::from_slice::<Value>(&doc) else { continue };
        tried += 1;
        let ws = Workspace::with_config(config);
        ws.drop_file(&name, &doc);
        let first = ws.once();
        let totals = &first["totals"];
        if doc.iter().filter(|b| !b.is_ascii_whitespace()).eq(b"{}".iter()) {
            // With no columns configured, `{}` alone gives nothing to infer a column from: it is
            // quarantined with that reason (with columns configured, the suite test above
            // commits it as a row), and the source goes on.
            assert_eq!((totals["rows"].as_u64(), totals["quarantined"].as_u64()), (Some(0), Some(1)), "{name}: {first}");
            let report = quarantine_report(&ws, "s", &name).expect("its quarantine report");
            assert!(report["reason"].as_str().unwrap().contains("no fields found"), "{report}");
        } else {
            assert_eq!((totals["rows"].as_u64(), totals["quarantined"].as_u64()), (Some(1), Some(0)), "{name}: {first}");
        }
        ws.drop_file("later.ndjson", b"{\"later\": 1}\n");
        let second = ws.once();
        assert_eq!(second["totals"]["rows"].as_u64(), Some(1), "{name}, then later.ndjson: {second}");
        let schema = ws.ingestd(&["schema", "--json"]);
        assert!(schema.status.success(), "{name}: ingestd schema: {}", String::from_utf8_lossy(&schema.stderr));
    }
    assert!(tried >= 10, "JSONTestSuite has a dozen y_ objects; found {tried}");
}

/// JSONTestSuite's `i_` documents, where either answer conforms, and ingestd's choice: as the value
/// of a `json` column each is kept exactly as written (numbers past any float, lone surrogate
/// escapes), except text that is not UTF-8 (UTF-16, Latin-1, overlong or truncated sequences) and
/// 500 nested arrays (past `max_depth`), which are refused. A string holding a lone surrogate
/// escape read into a `string` column refuses its file: it has no UTF-8 form, so any text for it
/// (U+FFFD, as before) would not be the input's value.
#[test]
fn i_documents_are_kept_as_written_or_refused_as_documented() {
    const REFUSED: &[&str] = &[
        "i_string_UTF-16LE_with_BOM.json",
        "i_string_UTF-8_invalid_sequence.json",
        "i_string_UTF8_surrogate_U+D800.json",
        "i_string_invalid_utf-8.json",
        "i_string_iso_latin_1.json",
        "i_string_lone_utf8_continuation_byte.json",
        "i_string_not_in_unicode_range.json",
        "i_string_overlong_sequence_2_bytes.json",
        "i_string_overlong_sequence_6_bytes.json",
        "i_string_overlong_sequence_6_bytes_null.json",
        "i_string_truncated-utf-8.json",
        "i_string_utf16BE_no_BOM.json",
        "i_string_utf16LE_no_BOM.json",
        "i_structure_500_nested_arrays.json",
        "i_structure_UTF-8_BOM_empty_object.json",
    ];
    let config = "instance = \"conformance\"\n[http]\nlisten = \"\"\n\
                  [sources.v]\npath = \"drop/v\"\nmin_age = \"0s\"\nsinks = [\"v\"]\n[sources.v.format]\nkind = \"json\"\n\
                  [sources.v.columns]\nv = { path = \"v\", type = \"json\" }\n[sinks.v]\nkind = \"delta\"\nuri = \"lake/v\"\n\
                  [sources.s]\npath = \"drop/s\"\nmin_age = \"0s\"\nsinks = [\"s\"]\n[sources.s.format]\nkind = \"json\"\n\
                  [sources.s.columns]\ns = { path = \"s\", type = \"string\" }\n[sinks.s]\nkind = \"delta\"\nuri = \"lake/s\"\n";
    let ws = Workspace::with_config(config);
    for source in ["v", "s"] {
        std::fs::create_dir_all(ws.path("drop").join(source)).unwrap();
    }
    let docs = json_suite(&["i_"]);
    assert!(docs.len() >= 30, "JSONTestSuite has 35 i_ documents; found {}", docs.len());
    let mut lone_strings = Vec::new();
    for (name, doc) in &docs {
        ws.drop_file(&format!("v/{name}"), &in_array(doc));
        // `["\uD800"]` and the like: the string alone, as a `string` column's value.
        if name.starts_with("i_string_") && std::str::from_utf8(doc).is_ok_and(|d| d.contains("\\u")) {
            let text = std::str::from_utf8(doc).unwrap().trim();
            let string = text.trim_start_matches('[').trim_end_matches(']');
            ws.drop_file(&format!("s/{name}"), format!("[{{\"s\": {string}}}]").as_bytes());
            lone_strings.push(name.clone());
        }
    }
    assert!(lone_strings.len() >= 8, "{lone_strings:?}");
    let summary = ws.once();
    let held = values_by_file(&ws.path("lake/v"), "v");
    for (name, doc) in &docs {
        let report = quarantine_report(&ws, "v", name);
        if REFUSED.contains(&name.as_str()) {
            assert!(report.is_some() && !held.contains_key(name), "{name} must be refused: {summary}");
        } else {
            let kept = std::str::from_utf8(doc).unwrap().trim().to_string();
            assert_eq!(held.get(name), Some(&vec![Some(kept)]), "{name}: {report:?}");
        }
    }
    for name in &lone_strings {
        let report = quarantine_report(&ws, "s", name).unwrap_or_else(|| panic!("{name} must be refused as text: {summary}"));
        assert!(report["reason"].as_str().unwrap().contains("lone surrogate"), "{report}");
    }
}

/// Where csv-spectrum's expected JSON is not its CSV: (file, row, header, what the CSV holds).
/// `location_coordinates.json` gives the phone number as 1234567890; the CSV says 2095257564.
const SPECTRUM_ERRATA: &[(&str, usize, &str, &str)] = &[("location_coordinates", 0, "Contact Phone Number", "2095257564")];

/// One csv-spectrum file: (stem, CSV bytes, the expected rows as header -> value, its headers).
type Spectrum = (String, Vec<u8>, Vec<HashMap<String, String>>, Vec<String>);

fn csv_spectrum() -> Vec<Spectrum> {
    let dir = corpora().join("csv-spectrum");
    let mut stems: Vec<String> = std::fs::read_dir(dir.join("csvs"))
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().to_str()?.strip_suffix(".csv").map(String::from))
        .collect();
    stems.sort();
    stems
        .into_iter()
        .map(|stem| {
            let csv = std::fs::read(dir.join("csvs").join(format!("{stem}.csv"))).unwrap();
            let json: Value = serde_json::from_slice(&std::fs::read(dir.join("json").join(format!("{stem}.json"))).unwrap()).unwrap();
            // Every file is an array of objects but location_coordinates.json, one object.
            let objects = match json {
                Value::Array(items) => items,
                object @ Value::Object(_) => vec![object],
                other => panic!("{stem}.json: {other}"),
            };
            let mut rows: Vec<HashMap<String, String>> = objects
                .iter()
                .map(|o| o.as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string())).collect())
                .collect();
            for (file, row, header, value) in SPECTRUM_ERRATA {
                if *file == stem {
                    rows[*row].insert(header.to_string(), value.to_string());
                }
            }
            let mut headers: Vec<String> = rows.first().map(|r| r.keys().cloned().collect()).unwrap_or_default();
            headers.sort();
            (stem, csv, rows, headers)
        })
        .collect()
}

/// `text` as a TOML basic string: JSON's escapes are TOML's, but DEL must be escaped too.
fn toml_string(text: &str) -> String {
    serde_json::to_string(text).unwrap().replace('\u{7f}', "\\u007f")
}

/// A config with one source per csv-spectrum file (`csv_0`...), `kind = "csv"` and
/// `null_values = []`, each into its own table; `columns` says whether every header is
/// configured as a string column `c0`... or the columns are inferred.
fn spectrum_config(cases: &[Spectrum], columns: bool) -> String {
    let mut config = String::from("instance = \"conformance\"\n[http]\nlisten = \"\"\n");
    for (i, (_, _, _, headers)) in cases.iter().enumerate() {
        config.push_str(&format!(
            "[sources.csv_{i}]\npath = \"drop/csv_{i}\"\nmin_age = \"0s\"\nsinks = [\"csv_{i}\"]\n\
             [sources.csv_{i}.format]\nkind = \"csv\"\n[sources.csv_{i}.format.csv]\nnull_values = []\n"
        ));
        if columns {
            config.push_str(&format!("[sources.csv_{i}.columns]\n"));
            for (j, header) in headers.iter().enumerate() {
                config.push_str(&format!("c{j} = {{ path = {}, type = \"string\" }}\n", toml_string(header)));
            }
        }
        config.push_str(&format!("[sinks.csv_{i}]\nkind = \"delta\"\nuri = \"lake/csv_{i}\"\n"));
    }
    config
}

fn drop_spectrum(ws: &Workspace, cases: &[Spectrum]) {
    for (i, (stem, csv, _, _)) in cases.iter().enumerate() {
        std::fs::create_dir_all(ws.path("drop").join(format!("csv_{i}"))).unwrap();
        ws.drop_file(&format!("csv_{i}/{stem}.csv"), csv);
    }
}

/// Values of a column of any type, as text (None: null).
fn texts(batches: &[arrow::array::RecordBatch], column: &str) -> Vec<Option<String>> {
    use arrow::array::Array;
    use arrow::util::display::{ArrayFormatter, FormatOptions};
    let mut out = Vec::new();
    for batch in batches {
        let array = batch.column_by_name(column).unwrap_or_else(|| panic!("no column {column}"));
        let formatter = ArrayFormatter::try_new(array.as_ref(), &FormatOptions::default()).unwrap();
        out.extend((0..array.len()).map(|i| array.is_valid(i).then(|| formatter.value(i).to_string())));
    }
    out
}

/// Compares what a table holds, column by column (header -> the table's column), with the rows
/// csv-spectrum expects.
fn compare(stem: &str, expected: &[HashMap<String, String>], held: &HashMap<String, Vec<Option<String>>>, problems: &mut Vec<String>) {
    for (header, values) in held {
        let want: Vec<Option<String>> = expected.iter().map(|row| row.get(header).cloned()).collect();
        if values != &want {
            problems.push(format!("{stem}: column {header:?} holds {values:?}, csv-spectrum expects {want:?}"));
        }
    }
}

#[test]
fn csv_spectrum_files_give_their_expected_strings() {
    let cases = csv_spectrum();
    assert_eq!(cases.len(), 12, "csv-spectrum has 12 files");
    let ws = Workspace::with_config(&spectrum_config(&cases, true));
    drop_spectrum(&ws, &cases);
    let summary = ws.once();
    let mut problems = Vec::new();
    for (i, (stem, _, expected, headers)) in cases.iter().enumerate() {
        if let Some(report) = quarantine_report(&ws, &format!("csv_{i}"), &format!("{stem}.csv")) {
            problems.push(format!("{stem}: quarantined: {}", report["reason"]));
            continue;
        }
        let batches = read_delta(&ws.path("lake").join(format!("csv_{i}")));
        let held: HashMap<String, Vec<Option<String>>> =
            headers.iter().enumerate().map(|(j, h)| (h.clone(), strings(&batches, &format!("c{j}")))).collect();
        compare(stem, expected, &held, &mut problems);
    }
    assert!(problems.is_empty(), "{summary}\n{}", problems.join("\n"));
}

/// With inferred columns every value still reads back as written: types never lose what was
/// sampled (zip `08123` stays a string).
#[test]
fn csv_spectrum_with_inferred_columns_keeps_every_value_as_written() {
    let cases = csv_spectrum();
    let ws = Workspace::with_config(&spectrum_config(&cases, false));
    drop_spectrum(&ws, &cases);
    let summary = ws.once();
    let mut problems = Vec::new();
    for (i, (stem, _, expected, headers)) in cases.iter().enumerate() {
        let source = format!("csv_{i}");
        if let Some(report) = quarantine_report(&ws, &source, &format!("{stem}.csv")) {
            problems.push(format!("{stem}: quarantined: {}", report["reason"]));
            continue;
        }
        let out = ws.ingestd(&["schema", &source, "--json"]);
        assert!(out.status.success(), "{stem}: ingestd schema: {}", String::from_utf8_lossy(&out.stderr));
        let schema: Value = serde_json::from_slice(&out.stdout).unwrap();
        let batches = read_delta(&ws.path("lake").join(&source));
        let mut held: HashMap<String, Vec<Option<String>>> = HashMap::new();
        for column in schema["columns"].as_array().unwrap() {
            let Some(path) = column["path"].as_str().filter(|p| headers.iter().any(|h| h.as_str() == *p)) else { continue };
            held.insert(path.to_string(), texts(&batches, column["name"].as_str().unwrap()));
        }
        for header in headers.iter().filter(|h| !held.contains_key(*h)) {
            problems.push(format!("{stem}: no column reads {header:?}: {schema}"));
        }
        compare(stem, expected, &held, &mut problems);
    }
    assert!(problems.is_empty(), "{summary}\n{}", problems.join("\n"));
}

//! Layouts and encodings end to end: API envelope, CSV dialects, gzip and zstd, NDJSON, the
//! Parquet sink, and the built-in default with no config at all.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests and benches fail loudly on purpose.

mod common;
use common::*;
use ingestd::sample::{AttomSpec, attom_file};
use std::io::Write;

#[test]
fn the_raw_api_envelope_gzip_and_zstd_all_land() {
    let ws = Workspace::attom("[sources.attom.format]\nrecords_path = \"property\"");
    let spec = AttomSpec { files: 3, rows: 900, seed: 3 };
    let mut expected = 0;
    for index in 0..3 {
        let (name, bytes, totals) = attom_file(&spec, index);
        expected += totals.rows;
        match index {
            0 => {
                let mut envelope =
                    br#"{"status": {"version": "1.0.0", "code": 0, "msg": "SuccessWithResult", "total": 300}, "property": "#.to_vec();
                envelope.extend_from_slice(&bytes);
                envelope.extend_from_slice(b"}");
                ws.drop_file(&name, &envelope);
            }
            1 => {
                let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                gz.write_all(&bytes).unwrap();
                ws.drop_file(&format!("{name}.gz"), &gz.finish().unwrap());
            }
            _ => ws.drop_file(&name, &zstd::encode_all(&bytes[..], 3).unwrap()),
        }
    }
    let summary = ws.once();
    assert_eq!(summary["totals"]["rows"], expected as u64, "{summary}");
    let batches = read_delta(&ws.path("lake/attom"));
    assert_eq!(counts_i64(&batches, "id").len(), expected);
}

const CSV_CONFIG: &str = r#"
instance = "t"
[sources.events]
path = "drop"
min_age = "0s"
sinks = ["lake"]
[sources.events.format.csv]
null_values = ["", "NA"]
[sources.events.columns]
lat = { path = "lat", type = "float64" }
region_id = { path = "region_id", type = "int64" }
date = { path = "date", type = "date" }
note = { path = "note", type = "string" }
[sinks.lake]
kind = "delta"
uri = "lake"
"#;

#[test]
fn csv_with_bom_crlf_quotes_and_embedded_newlines() {
    let ws = Workspace::with_config(CSV_CONFIG);
    let csv = "\u{feff}\"lat\",\"long\",\"region_id\",\"date\",\"note\"\r\n\
               1.5,2,3,2020-01-02,\"plain\"\r\n\
               2.5,2,NA,2020-01-03,\"with, comma and \"\"quotes\"\"\"\r\n\
               3.5,2,4,2020-01-04,\"two\r\nlines\"\r\n";
    ws.drop_file("location.csv", csv.as_bytes());
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(b"lat,long,region_id,date,note\n9.5,0,9,2021-05-06,gz\n").unwrap();
    ws.drop_file("more.csv.gz", &gz.finish().unwrap());

    assert_eq!(ws.once()["totals"]["rows"], 4);
    let batches = read_delta(&ws.path("lake"));
    let mut notes: Vec<String> = strings(&batches, "note").into_iter().flatten().collect();
    notes.sort();
    assert_eq!(notes, ["gz", "plain", "two\r\nlines", "with, comma and \"quotes\""]);
    assert_eq!(sum_i64(&batches, "region_id"), (16, 1), "NA is null");
    assert_eq!(sum_f64(&batches, "lat"), 17.0);
}

#[test]
fn a_ragged_csv_is_quarantined_with_its_line() {
    let ws = Workspace::with_config(CSV_CONFIG);
    ws.drop_file("ragged.csv", b"lat,long,region_id,date,note\n1,2,3,2020-01-01,a\n1,2,3\n");
    ws.drop_file("good.csv", b"lat,long,region_id,date,note\n1,2,3,2020-01-01,a\n");
    let summary = ws.once();
    assert_eq!((summary["totals"]["rows"].as_u64(), summary["totals"]["quarantined"].as_u64()), (Some(1), Some(1)));
    let report = std::fs::read_to_string(ws.path("quarantine/events/ragged.csv.error.json")).unwrap();
    assert!(report.contains("line 3") || report.contains("fields"), "{report}");
}

#[test]
fn parquet_dataset_files_have_deterministic_names_and_partitions() {
    let config = r#"
instance = "box"
[sources.events]
path = "drop"
min_age = "0s"
sinks = ["files"]
[sources.events.columns]
region = { path = "region", type = "string" }
n = { path = "n", type = "int64" }
[sinks.files]
kind = "parquet"
path = "dataset"
partition_by = ["region"]
"#;
    let ws = Workspace::with_config(config);
    ws.drop_file("a.ndjson", b"{\"region\": \"north\", \"n\": 1}\n{\"region\": \"south\", \"n\": 2}\n{\"region\": null, \"n\": 3}\n");
    assert_eq!(ws.once()["totals"]["rows"], 3);
    for partition in ["region=north", "region=south", "region=__HIVE_DEFAULT_PARTITION__"] {
        let file = ws.path("dataset").join(partition).join("part-box+events-0000000001.parquet");
        assert!(file.exists(), "{} missing", file.display());
    }
    ws.drop_file("a copy.ndjson", b"{\"region\": \"north\", \"n\": 1}\n{\"region\": \"south\", \"n\": 2}\n{\"region\": null, \"n\": 3}\n");
    std::fs::remove_dir_all(ws.path("state")).unwrap();
    let summary = ws.once();
    assert_eq!(summary["totals"]["rows"], 0, "rebuilt from the dataset's manifests: {summary}");
    let temps = walk_files(&ws.path("dataset")).into_iter().filter(|p| p.to_string_lossy().ends_with(".tmp")).count();
    assert_eq!(temps, 0);
}

#[test]
fn with_no_config_at_all_drop_goes_to_lake() {
    let ws = Workspace::with_config("");
    std::fs::remove_file(ws.path("config.toml")).unwrap();
    ws.drop_file("events.jsonl", b"{\"user\": {\"id\": 1, \"name\": \"a\"}, \"amount\": 2.5}\n{\"user\": {\"id\": 2}, \"amount\": 3}\n");
    assert_eq!(ws.once()["totals"]["rows"], 2);
    let batches = read_delta(&ws.path("lake"));
    assert_eq!(sum_i64(&batches, "user_id"), (3, 0));
    assert_eq!(sum_f64(&batches, "amount"), 5.5);
    // The table is the truth: with the state folder gone, the columns still read as before.
    std::fs::remove_dir_all(ws.path("state")).unwrap();
    ws.drop_file("later.jsonl", b"{\"user\": {\"id\": 4}, \"amount\": 1}\n");
    assert_eq!(ws.once()["totals"]["rows"], 1);
    let batches = read_delta(&ws.path("lake"));
    assert_eq!(sum_i64(&batches, "user_id"), (7, 0), "user.id still maps to user_id");
    let schema = ws.ingestd(&["schema", "--json"]);
    let schema: serde_json::Value = serde_json::from_slice(&schema.stdout).unwrap();
    let user_id = schema["columns"].as_array().unwrap().iter().find(|c| c["name"] == "user_id").cloned().unwrap();
    assert_eq!((user_id["path"].as_str(), user_id["type"].as_str()), (Some("user.id"), Some("int64")), "{schema}");
}

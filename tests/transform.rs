//! Transforms and lookups through the real binary: the taxi filter into Parquet and the event
//! counter's lookup join into a partitioned Delta table, each checked against a computation in
//! Python (its own CSV parser) and read back by Python's deltalake, polars and DuckDB.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

mod common;

use common::*;
use ingestd::rng::Rng;
use serde_json::Value;
use std::process::Command;

/// The rows every reader sees (each reader must see the same), as read_table.py prints them.
fn rows_of_every_reader(table: &std::path::Path, parquet: bool) -> Value {
    let seen = read_with_every_reader(table, parquet);
    let mut agreed: Option<Value> = None;
    for (reader, result) in seen.as_object().unwrap() {
        if let Some(agreed) = &agreed {
            assert_eq!(&result["rows"], agreed, "{reader} disagrees");
        }
        agreed = Some(result["rows"].clone());
    }
    agreed.unwrap()
}

fn taxi_csv(rows: usize, seed: u64) -> String {
    let mut rng = Rng::seeded(seed);
    let mut csv = String::from("vendor_id,pickup_datetime,passenger_count,trip_distance,fare_amount\n");
    for i in 0..rows {
        let passengers = rng.next_u64() % 7;
        let distance = (rng.next_u64() % 3000) as f64 / 100.0;
        let minute = i % 60;
        csv.push_str(&format!("{},2019-01-{:02} 0{}:{minute:02}:00,{passengers},{distance},{}.5\n", 1 + i % 2, 1 + i % 28, i % 10, i % 50));
    }
    csv
}

const TAXI_EXPECTED: &str = r#"
import csv, json, sys
sys.path.insert(0, sys.argv[2])
from read_table import text
rows = []
for path in sys.argv[1].split(","):
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            if int(r["passenger_count"]) > 3:
                rows.append({"pickup_datetime": r["pickup_datetime"], "passenger_count": r["passenger_count"],
                             "trip_distance": text(float(r["trip_distance"]))})
rows.sort(key=lambda r: json.dumps(r, sort_keys=True))
print(json.dumps(rows))
"#;

#[test]
fn taxi_csv_filtered_and_projected_into_parquet_holds_exactly_the_rows_python_expects() {
    let ws = Workspace::with_config(
        r#"
instance = "test"
[http]
listen = ""
[sources.taxi]
path = "drop"
min_age = "0s"
sinks = ["trips"]
transform = "SELECT pickup_datetime, passenger_count, trip_distance FROM batch WHERE passenger_count > 3"
[sources.taxi.schema]
hints = { pickup_datetime = "string" }
[sinks.trips]
kind = "parquet"
path = "trips"
"#,
    );
    let mut files = Vec::new();
    for (i, rows) in [2_000, 3_500, 1].iter().enumerate() {
        let name = format!("yellow_{i}.csv");
        ws.drop_file(&name, taxi_csv(*rows, 7 + i as u64).as_bytes());
        files.push(ws.path("drop").join(name).to_string_lossy().into_owned());
    }
    let expected = python_json(TAXI_EXPECTED, &[&files.join(","), concat!(env!("CARGO_MANIFEST_DIR"), "/scripts")]);
    let summary = ws.once();
    let kept = expected.as_array().unwrap().len() as u64;
    assert_eq!(summary["totals"]["rows"].as_u64(), Some(kept), "{summary}");
    assert_eq!(summary["totals"]["filtered_rows"].as_u64(), Some(5_501 - kept), "{summary}");
    let seen = read_with_every_reader(&ws.path("trips"), true);
    for (reader, result) in seen.as_object().unwrap() {
        assert_eq!(result["columns"], serde_json::json!(["pickup_datetime", "passenger_count", "trip_distance"]), "{reader}");
        assert_eq!(result["rows"], expected, "{reader}: rows differ from Python's");
    }
}

fn location_csv(rows: usize, seed: u64, first_id: usize) -> String {
    let mut rng = Rng::seeded(seed);
    let mut csv = String::from("event_id,region_id,day\n");
    for i in 0..rows {
        // Region 9 has no name: an inner join leaves its events out.
        let region = 1 + rng.next_u64() % 9;
        csv.push_str(&format!("{},{region},2024-03-{:02}\n", first_id + i, 1 + rng.next_u64() % 5));
    }
    csv
}

const COUNTS_EXPECTED: &str = r#"
import csv, json, sys
names = {}
counts = {}
for pair in sys.argv[1].split(";"):
    regions, locations = pair.split(",")
    with open(regions, newline="") as f:
        names = {r["region_id"]: r["region_name"] for r in csv.DictReader(f)}
    with open(locations, newline="") as f:
        for r in csv.DictReader(f):
            if r["region_id"] in names:
                key = (names[r["region_id"]], r["day"])
                counts[key] = counts.get(key, 0) + 1
print(json.dumps([{"region_name": k[0], "day": k[1], "events": v} for k, v in sorted(counts.items())]))
"#;

fn regions_csv(suffix: &str) -> String {
    let mut csv = String::from("region_id,region_name\n");
    for id in 1..=8 {
        csv.push_str(&format!("{id},region-{id}{suffix}\n"));
    }
    csv
}

/// The lookup versions of each batch's commit, oldest first, from the Delta log's commit infos.
fn lookup_versions(table: &std::path::Path) -> Vec<Vec<Value>> {
    let mut entries: Vec<_> = std::fs::read_dir(table.join("_delta_log"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    entries.sort();
    let mut out = Vec::new();
    for entry in entries {
        for line in std::fs::read_to_string(entry).unwrap().lines() {
            let action: Value = serde_json::from_str(line).unwrap();
            if let Some(lookups) = action["commitInfo"]["ingestd"]["lookups"].as_array() {
                out.push(lookups.clone());
            }
        }
    }
    out
}

#[test]
fn the_event_counter_joins_regions_counts_per_region_and_day_and_follows_a_changed_lookup() {
    let ws = Workspace::with_config(
        r#"
instance = "test"
[http]
listen = ""
[lookups.regions]
path = "region.csv"
[sources.events]
path = "drop"
min_age = "0s"
sinks = ["lake"]
transform = "SELECT event_id, day, region_name FROM batch JOIN regions USING (region_id)"
[sinks.lake]
kind = "delta"
uri = "lake"
partition_by = ["day"]
"#,
    );
    std::fs::write(ws.path("region.csv"), regions_csv("")).unwrap();
    std::fs::copy(ws.path("region.csv"), ws.path("region-v1.csv")).unwrap();
    ws.drop_file("location-1.csv", location_csv(5_000, 11, 0).as_bytes());
    let first = ws.once();
    assert_eq!(first["totals"]["quarantined"].as_u64(), Some(0), "{first}");
    let check = ws.ingestd(&["check"]);
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));

    // The lookup changes between two batches: later rows get the new names.
    std::fs::write(ws.path("region.csv"), regions_csv("-renamed")).unwrap();
    ws.drop_file("location-2.csv", location_csv(3_000, 12, 5_000).as_bytes());
    ws.once();

    let pairs = format!(
        "{},{};{},{}",
        ws.path("region-v1.csv").display(),
        ws.path("drop/location-1.csv").display(),
        ws.path("region.csv").display(),
        ws.path("drop/location-2.csv").display()
    );
    let expected = python_json(COUNTS_EXPECTED, &[&pairs]);
    let sql = "SELECT region_name, CAST(day AS VARCHAR) AS day, count(*) AS events FROM lake GROUP BY 1, 2 ORDER BY 1, 2";
    let out = ws.ingestd(&["sql", "--format", "json", sql]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let counted: Vec<Value> = String::from_utf8_lossy(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(Value::Array(counted), expected, "ingestd sql counts differ from Python's");

    // Each batch's commit names the region.csv it joined, by the BLAKE3 of its bytes.
    let hash = |text: String| format!("blake3:{}", blake3::hash(text.as_bytes()).to_hex());
    let versions: Vec<String> = lookup_versions(&ws.path("lake")).iter().map(|l| l[0]["version"].as_str().unwrap().to_string()).collect();
    assert_eq!(versions, [hash(regions_csv("")), hash(regions_csv("-renamed"))]);

    // Every reader sees the same rows: 8,000 events less those of the unnamed region.
    let rows = rows_of_every_reader(&ws.path("lake"), false);
    let total: u64 = expected.as_array().unwrap().iter().map(|r| r["events"].as_u64().unwrap()).sum();
    assert_eq!(rows.as_array().unwrap().len() as u64, total);
    assert!(rows.as_array().unwrap().iter().all(|r| r["event_id"].as_str().unwrap().parse::<u64>().unwrap() < 8_000));
}

#[test]
fn an_unreadable_lookup_holds_the_batch_back_and_commits_nothing_until_it_is_fixed() {
    let ws = Workspace::with_config(
        r#"
instance = "test"
[http]
listen = ""
[lookups.regions]
path = "regions.parquet"
[sources.events]
path = "drop"
min_age = "0s"
sinks = ["lake"]
transform = "SELECT event_id, region_name FROM batch JOIN regions USING (region_id)"
[sinks.lake]
kind = "delta"
uri = "lake"
"#,
    );
    std::fs::write(ws.path("regions.parquet"), b"not parquet at all").unwrap();
    ws.drop_file("location.csv", location_csv(100, 3, 0).as_bytes());
    let out = ws.ingestd(&["once", "--json"]);
    assert!(!out.status.success());
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("lookup regions") && log.contains("regions.parquet"), "{log}");
    assert!(!ws.path("lake/_delta_log").exists(), "nothing may be committed without the lookup");
    assert!(ws.path("drop/location.csv").exists(), "the file waits, it is not quarantined");

    // The lookup written properly: the same file commits, joined.
    std::fs::write(ws.path("region.csv"), regions_csv("")).unwrap();
    let out = Command::new(venv_python())
        .arg("-c")
        .arg("import sys, polars as pl; pl.read_csv(sys.argv[1]).write_parquet(sys.argv[2])")
        .arg(ws.path("region.csv"))
        .arg(ws.path("regions.parquet"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary = ws.once();
    let joined = location_csv(100, 3, 0).lines().skip(1).filter(|l| l.split(',').nth(1) != Some("9")).count() as u64;
    assert_eq!(summary["totals"]["rows"].as_u64(), Some(joined), "{summary}");
}

#[test]
fn check_plans_each_transform_and_names_the_source_and_the_sql_error() {
    let config = |transform: &str| {
        format!(
            "instance = \"test\"\n[http]\nlisten = \"\"\n[sources.taxi]\npath = \"drop\"\nsinks = [\"trips\"]\ntransform = {transform:?}\n[sources.taxi.columns]\npassengers = {{ path = \"passenger_count\", type = \"int64\" }}\n[sinks.trips]\nkind = \"parquet\"\npath = \"trips\"\n"
        )
    };
    let ws = Workspace::with_config(&config("SELECT passengers FROM batch WHERE passengers > 3"));
    let out = ws.ingestd(&["check"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    for (transform, wanted) in [
        ("SELECT passangers FROM batch", "passangers"),
        ("SELECT passengers, count(*) FROM batch GROUP BY passengers", "aggregation"),
        ("SELEC passengers FROM batch", "SELEC"),
    ] {
        std::fs::write(ws.path("config.toml"), config(transform)).unwrap();
        let out = ws.ingestd(&["check"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{transform}: {stdout}");
        assert!(stdout.contains("sources.taxi.transform:") && stdout.contains(wanted), "{transform}: {stdout}");
    }
}

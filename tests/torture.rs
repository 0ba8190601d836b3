//! Crash torture: `ingestd run` is killed again and again (SIGKILL at random instants, and
//! aborts at every named fault point) while files keep arriving; it is restarted each time. At
//! the end the table must hold every input row exactly once, compared row by row through
//! fingerprints computed from the input JSON, and the ledger must agree with the table.
//!
//! Needs the `fault-injection` feature. `TORTURE_KILLS` sets the number of kills (default 200).
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests and benches fail loudly on purpose.
#![cfg(feature = "fault-injection")]

mod common;
use arrow::array::Array;
use common::torture::*;
use common::*;
use std::time::Duration;

#[test]
fn delta_every_row_exactly_once_through_kills_and_faults() {
    let points: Vec<&str> = ingestd::faults::POINTS.iter().copied().filter(|p| !p.contains("parquet") && !p.starts_with("kafka")).collect();
    let t = torture(Torture::new("[sinks.lake]\nkind = \"delta\"\nuri = \"lake/attom\"\n", 240, 240_000), &points);
    t.verify(&|ws| read_delta(&ws.path("lake/attom")));
}

#[test]
fn parquet_every_row_exactly_once_through_kills_and_faults() {
    let sink = "[sinks.lake]\nkind = \"parquet\"\npath = \"dataset\"\n";
    let points: Vec<&str> = ingestd::faults::POINTS.iter().copied().filter(|p| !p.starts_with("kafka")).collect();
    let mut t = Torture::new(sink, 60, 60_000);
    // The Parquet sink gets a quarter of the kills: it shares every path but the sink with Delta.
    let kills = kills_wanted() / 4;
    let mut rng = Rng::seeded(0x9e37_79b9_7f4a_7c15);
    for point in &points {
        t.arrive(2);
        t.run_once(Ending::Fault(format!("{point}:1")));
    }
    while t.kills < kills.max(points.len()) {
        t.arrive(1);
        t.run_once(Ending::KillAfter(Duration::from_millis(rng.next_u64() % 300)));
    }
    let rest = t.staged.len();
    t.arrive(rest);
    t.verify(&|ws| read_parquet_dir(&ws.path("dataset")));
    let temps = walk_files(&t.ws.path("dataset")).into_iter().filter(|p| p.to_string_lossy().ends_with(".tmp")).count();
    assert_eq!(temps, 0, "a temporary file was left where readers list files");
}

/// Schema evolution under kills: the ATTOM files (every field beyond the ten configured ones
/// becomes a column) gain a new top-level field every sixth file. At the end every row is in
/// the table once, the table's columns read exactly the fields seen, and each grown field's
/// values are on exactly the rows that had it.
#[test]
fn delta_add_columns_every_row_once_and_every_field_a_column_through_kills() {
    let config = torture_config().replace(
        "[sources.attom.batch]",
        "[sources.attom.schema]\nevolution = \"add_columns\"\nrescued_column = \"_rescued_data\"\n[sources.attom.batch]",
    );
    let mut t = Torture::with_config(&config, 60, 60_000);
    let mut grown: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut paths = std::collections::BTreeSet::new();
    for (i, path) in t.staged.iter().enumerate() {
        let mut records: Vec<serde_json::Value> = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        for record in &mut records {
            if i >= 6 {
                let field = format!("grown_{}", i / 6);
                record[field.as_str()] = serde_json::json!(i);
                *grown.entry(field).or_default() += 1;
            }
            leaf_paths(record, String::new(), &mut paths);
        }
        std::fs::write(path, serde_json::to_vec(&records).unwrap()).unwrap();
    }
    let kills = (kills_wanted() / 4).max(20);
    let mut rng = Rng::seeded(0x5851_f42d_4c95_7f2d);
    while t.kills < kills {
        t.arrive(1 + (rng.next_u64() % 2) as usize);
        t.run_once(Ending::KillAfter(Duration::from_millis(rng.next_u64() % 400)));
    }
    let rest = t.staged.len();
    t.arrive(rest);
    t.verify(&|ws| read_delta(&ws.path("lake/attom")));

    let schema = t.ws.ingestd(&["schema", "--json"]);
    let schema: serde_json::Value = serde_json::from_slice(&schema.stdout).unwrap();
    let mapped: std::collections::BTreeSet<String> =
        schema["columns"].as_array().unwrap().iter().filter_map(|c| c["path"].as_str().map(String::from)).collect();
    assert_eq!(mapped, paths, "the columns read exactly the fields seen");
    let batches = read_delta(&t.ws.path("lake/attom"));
    for (field, want) in &grown {
        let have: usize = batches.iter().filter_map(|b| b.column_by_name(field)).map(|c| c.len() - c.null_count()).sum();
        assert_eq!(have, *want, "{field}: values on exactly the rows that had it");
    }
}

/// Every dotted path to a non-null scalar or array under `value` (objects are flattened).
fn leaf_paths(value: &serde_json::Value, path: String, out: &mut std::collections::BTreeSet<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, child) in map {
                let child_path = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                leaf_paths(child, child_path, out);
            }
        }
        serde_json::Value::Null => {}
        _ => {
            out.insert(path);
        }
    }
}

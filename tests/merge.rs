//! `mode = "merge"` through the real binary: a snapshot and change files (inserts, updates, some
//! with older sequence numbers that must lose, deletes, a key repeated in one file) merged by
//! key; the final table must equal the state Python computes from the same files, read back by
//! Python's deltalake, polars and DuckDB; then the same under kill -9, two daemons at once, and
//! dedupe by key.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly on purpose.

mod common;

use common::*;
use ingestd::rng::Rng;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

const MERGE_SINK: &str = r#"
[sinks.lake]
kind = "delta"
uri = "lake"
mode = "merge"
merge_key = ["id"]
sequence_column = "seq"
delete_when = "op = 'D'"
change_data_feed = true
"#;

fn config(instance: &str, sink: &str) -> String {
    format!(
        "instance = \"{instance}\"\n[http]\nlisten = \"\"\n[sources.changes]\npath = \"drop\"\nmin_age = \"0s\"\nafter_commit = \"delete\"\nsinks = [\"lake\"]\n[sources.changes.batch]\nmax_files = 1\nmax_delay = \"10ms\"\n[sources.changes.schema]\nhints = {{ op = \"string\", value = \"string\" }}\n{sink}"
    )
}

/// A snapshot of keys 1..=300 (seq = key), then `files` change files of `rows` rows: updates and
/// inserts (keys up to 400) with growing sequence numbers, one in seven with an old sequence
/// number (it must lose), one in five a delete, and each file's first key repeated at its end.
fn change_files(dir: &Path, files: usize, rows: usize, seed: u64) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    let mut rng = Rng::seeded(seed);
    let mut paths = Vec::new();
    let mut snapshot = String::from("id,seq,op,value\n");
    for id in 1..=300 {
        snapshot.push_str(&format!("{id},{id},I,s{id}\n"));
    }
    let path = dir.join("c000.csv");
    std::fs::write(&path, snapshot).unwrap();
    paths.push(path);
    let mut seq = 1_000u64;
    for f in 1..=files {
        let mut csv = String::from("id,seq,op,value\n");
        let mut first = None;
        for r in 0..rows {
            let id = 1 + rng.next_u64() % 400;
            seq += 1;
            let row_seq = if rng.next_u64().is_multiple_of(7) { 1 + rng.next_u64() % 300 } else { seq };
            let op = if rng.next_u64().is_multiple_of(5) { "D" } else { "U" };
            first.get_or_insert((id, row_seq));
            csv.push_str(&format!("{id},{row_seq},{op},f{f}r{r}\n"));
        }
        // The same key again, same sequence number: the later row of the file wins.
        let (id, row_seq) = first.unwrap();
        csv.push_str(&format!("{id},{row_seq},U,f{f}-last\n"));
        let path = dir.join(format!("c{f:03}.csv"));
        std::fs::write(&path, csv).unwrap();
        paths.push(path);
    }
    paths
}

/// The table Python computes: each file one batch, its last row per key (highest seq, then
/// latest), applied when the key is new (unless a delete) or its seq beats the stored one.
const EXPECTED_STATE: &str = r#"
import csv, json, sys
state = {}
for path in sys.argv[1].split(","):
    best = {}
    with open(path, newline="") as f:
        for pos, r in enumerate(csv.DictReader(f)):
            rank = (int(r["seq"]), pos)
            if r["id"] not in best or rank > best[r["id"]][0]:
                best[r["id"]] = (rank, r)
    for key, (_, r) in best.items():
        delete = r["op"] == "D"
        if key in state:
            if int(r["seq"]) > int(state[key]["seq"]):
                if delete:
                    del state[key]
                else:
                    state[key] = r
        elif not delete:
            state[key] = r
rows = [dict(r) for r in state.values()]
rows.sort(key=lambda r: json.dumps(r, sort_keys=True))
print(json.dumps(rows))
"#;

fn expected_state(files: &[PathBuf]) -> Value {
    let list: Vec<String> = files.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    python_json(EXPECTED_STATE, &[&list.join(",")])
}

/// Every reader's rows of the table reduced to the four input columns; all readers must agree.
fn table_state(table: &Path) -> Value {
    let seen = read_with_every_reader(table, false);
    let mut agreed: Option<Value> = None;
    for (reader, result) in seen.as_object().unwrap() {
        let mut rows: Vec<Value> = result["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| serde_json::json!({"id": r["id"], "seq": r["seq"], "op": r["op"], "value": r["value"]}))
            .collect();
        rows.sort_by_key(|r| serde_json::to_string(r).unwrap());
        let rows = Value::Array(rows);
        if let Some(agreed) = &agreed {
            assert_eq!(&rows, agreed, "{reader} disagrees");
        }
        agreed = Some(rows);
    }
    agreed.unwrap()
}

fn arrive(ws: &Workspace, files: &[PathBuf]) {
    for path in files {
        std::fs::copy(path, ws.path("drop").join(path.file_name().unwrap())).unwrap();
    }
}

#[test]
fn changes_merged_by_key_give_the_state_python_computes_and_the_change_data_feed_has_them() {
    let ws = Workspace::with_config(&config("test", MERGE_SINK));
    let files = change_files(&ws.path("changes"), 6, 150, 5);
    // One file at a time, in order: each is its own batch.
    for file in &files {
        arrive(&ws, std::slice::from_ref(file));
        let summary = ws.once();
        assert_eq!(summary["totals"]["quarantined"].as_u64(), Some(0), "{summary}");
    }
    assert_eq!(table_state(&ws.path("lake")), expected_state(&files));
    // The deltalake crate reads it too, with the same number of rows.
    let expected_rows = expected_state(&files).as_array().unwrap().len();
    assert_eq!(row_count(&read_delta(&ws.path("lake"))), expected_rows);

    // Downstream readers see the inserts, updates and deletes in the change data feed.
    let kinds = python_json(
        "import sys, json; from deltalake import DeltaTable\nt = DeltaTable(sys.argv[1]).load_cdf(starting_version=0).read_all()\nprint(json.dumps(sorted(set(t.column('_change_type').to_pylist()))))",
        &[ws.path("lake").to_str().unwrap()],
    );
    for kind in ["insert", "update_preimage", "update_postimage", "delete"] {
        assert!(kinds.as_array().unwrap().iter().any(|k| k == kind), "{kind} missing from the change data feed: {kinds}");
    }

    // A file dropped again under its own name is a duplicate; the table does not change.
    arrive(&ws, &files[3..4]);
    let summary = ws.once();
    assert_eq!(summary["totals"]["duplicates"].as_u64(), Some(1), "{summary}");
    assert_eq!(table_state(&ws.path("lake")), expected_state(&files));
}

#[test]
fn insert_only_dedupes_by_key_across_files_and_names() {
    let sink = "[sinks.lake]\nkind = \"delta\"\nuri = \"lake\"\nmode = \"merge\"\nmerge_key = [\"id\"]\ninsert_only = true\n";
    let ws = Workspace::with_config(&config("test", sink));
    let rows = |ids: std::ops::RangeInclusive<u32>, tag: &str| {
        let mut csv = String::from("id,seq,op,value\n");
        for id in ids {
            csv.push_str(&format!("{id},1,I,{tag}{id}\n"));
        }
        csv
    };
    ws.drop_file("a.csv", rows(1..=100, "a").as_bytes());
    ws.once();
    ws.drop_file("b.csv", rows(50..=150, "b").as_bytes());
    ws.once();
    // The same keys again under a new name, with other values: nothing is added or changed.
    ws.drop_file("a-again.csv", rows(1..=100, "again").as_bytes());
    ws.once();
    // A merge that changes no row still commits the batch's txn and manifest: the table, not
    // only the ledger, knows the file was taken.
    let log = ws.path("lake").join("_delta_log");
    let mut commits: Vec<PathBuf> =
        std::fs::read_dir(&log).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "json")).collect();
    commits.sort();
    let last: Vec<Value> =
        std::fs::read_to_string(commits.last().unwrap()).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(last.iter().any(|a| a["txn"]["version"].as_i64().is_some()), "{last:?}");
    assert!(last.iter().all(|a| a.get("add").is_none() && a.get("remove").is_none()), "{last:?}");
    let files = last.iter().find_map(|a| a["commitInfo"]["ingestd"]["files"].as_array()).expect("the batch's manifest");
    assert_eq!(files[0]["name"], "a-again.csv");
    let state = table_state(&ws.path("lake"));
    let state = state.as_array().unwrap();
    assert_eq!(state.len(), 150);
    for row in state {
        let id: u32 = row["id"].as_str().unwrap().parse().unwrap();
        let tag = if id <= 100 { "a" } else { "b" };
        assert_eq!(row["value"].as_str().unwrap(), format!("{tag}{id}"));
    }
}

#[test]
fn two_daemons_merging_into_one_table_at_once_give_the_state_of_the_highest_sequence_per_key() {
    let shared = tempfile::tempdir().unwrap();
    let table = shared.path().join("lake");
    let sink = format!(
        "[sinks.lake]\nkind = \"delta\"\nuri = {:?}\nmode = \"merge\"\nmerge_key = [\"id\"]\nsequence_column = \"seq\"\n",
        table.to_str().unwrap()
    );
    let (a, b) = (Workspace::with_config(&config("a", &sink)), Workspace::with_config(&config("b", &sink)));
    // Upserts only (no deletes): with sequence numbers the outcome does not depend on which
    // daemon's merge lands first. Overlapping keys, distinct sequence numbers.
    let mut all = Vec::new();
    for (ws, offset) in [(&a, 0u64), (&b, 1)] {
        for f in 0..8 {
            let mut rng = Rng::seeded(100 + offset * 10 + f);
            let mut csv = String::from("id,seq,op,value\n");
            for r in 0..200u64 {
                let seq = 2 * (f * 1_000 + r) + offset;
                csv.push_str(&format!("{},{seq},U,d{offset}f{f}r{r}\n", 1 + rng.next_u64() % 300));
            }
            let path = ws.path("drop").join(format!("c{f}.csv"));
            std::fs::write(&path, &csv).unwrap();
            all.push(csv);
        }
    }
    let spawn = |ws: &Workspace| Command::new(BIN).args(["once", "--json"]).current_dir(ws.dir.path()).output();
    let (ra, rb) = std::thread::scope(|s| {
        let ha = s.spawn(|| spawn(&a));
        let hb = s.spawn(|| spawn(&b));
        (ha.join().unwrap().unwrap(), hb.join().unwrap().unwrap())
    });
    for out in [&ra, &rb] {
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let mut best: std::collections::BTreeMap<String, (u64, String)> = Default::default();
    for csv in &all {
        for line in csv.lines().skip(1) {
            let f: Vec<&str> = line.split(',').collect();
            let seq: u64 = f[1].parse().unwrap();
            if best.get(f[0]).is_none_or(|(s, _)| seq > *s) {
                best.insert(f[0].to_string(), (seq, f[3].to_string()));
            }
        }
    }
    let state = table_state(&table);
    let got: std::collections::BTreeMap<String, (u64, String)> = state
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (r["id"].as_str().unwrap().to_string(), (r["seq"].as_str().unwrap().parse().unwrap(), r["value"].as_str().unwrap().to_string()))
        })
        .collect();
    assert_eq!(got, best);
}

/// The merge flow under kill -9 at random instants and at the core's fault points: the same
/// final state, so no batch was applied twice or lost.
#[cfg(feature = "fault-injection")]
#[test]
fn merges_through_kills_and_faults_give_the_same_final_state() {
    use common::torture::{Ending, Torture, kills_wanted};
    let mut t = Torture::with_config(&config("test", MERGE_SINK), 1, 1);
    for staged in std::mem::take(&mut t.staged) {
        std::fs::remove_file(staged).unwrap();
    }
    t.staged = change_files(&t.ws.path("staging"), 40, 100, 9);
    let mut rng = Rng::seeded(0x51ed_2701);
    for point in ["after_decode", "after_sink_commit", "inside_ledger_update", "after_ledger"] {
        t.arrive(2);
        t.run_once(Ending::Fault(format!("{point}:1")));
    }
    let kills = (kills_wanted() / 6).max(30);
    while t.kills < kills {
        t.arrive((rng.next_u64() % 2) as usize);
        t.run_once(Ending::KillAfter(std::time::Duration::from_millis(rng.next_u64() % 400)));
    }
    let rest = t.staged.len();
    t.arrive(rest);
    let summary = t.ws.once();
    assert_eq!(summary["totals"]["quarantined"].as_u64(), Some(0), "{summary}");
    println!("{} kills; last once: {summary}", t.kills);
    let log = std::fs::read_to_string(t.ws.path("torture.log")).unwrap();
    for point in ["after_decode", "after_sink_commit", "inside_ledger_update", "after_ledger"] {
        assert!(log.contains(&format!("fault injection: abort at {point}\n")), "fault point {point} never fired");
    }
    let left: Vec<_> =
        std::fs::read_dir(t.ws.path("drop")).unwrap().map(|e| e.unwrap().file_name()).filter(|n| n != ".ingestd.lock").collect();
    assert!(left.is_empty(), "every file must have been merged: {left:?}");
    // `files` were moved into the drop folder and deleted after commit: rebuild them to compute.
    let again = change_files(&t.ws.path("recomputed"), 40, 100, 9);
    assert_eq!(table_state(&t.ws.path("lake")), expected_state(&again));
}

#[test]
fn a_merge_keyed_on_the_partition_column_reads_only_the_partitions_its_batch_touches() {
    let sink =
        "[sinks.lake]\nkind = \"delta\"\nuri = \"lake\"\nmode = \"merge\"\nmerge_key = [\"region\", \"id\"]\npartition_by = [\"region\"]\n";
    let ws = Workspace::with_config(&config("test", sink));
    let mut snapshot = String::from("id,region,seq,op,value\n");
    for region in ["north", "south", "east", "west"] {
        for id in 1..=50 {
            snapshot.push_str(&format!("{id},{region},1,I,{region}{id}\n"));
        }
    }
    ws.drop_file("snapshot.csv", snapshot.as_bytes());
    ws.once();
    let changes: String = (1..=10).map(|id| format!("{id},south,2,U,changed{id}\n")).collect();
    ws.drop_file("changes.csv", format!("id,region,seq,op,value\n{changes}").as_bytes());
    let summary = ws.once();
    assert_eq!(summary["totals"]["rows"].as_u64(), Some(10), "{summary}");
    let log = ws.path("lake").join("_delta_log");
    let mut commits: Vec<PathBuf> =
        std::fs::read_dir(&log).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "json")).collect();
    commits.sort();
    let last = std::fs::read_to_string(commits.last().unwrap()).unwrap();
    let metrics = last
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find_map(|a| a["commitInfo"].get("operationMetrics").cloned())
        .expect("the merge's metrics");
    assert_eq!(metrics["num_target_files_scanned"], 1, "only south's file is read: {metrics}");
    assert_eq!(metrics["num_target_rows_updated"], 10, "{metrics}");
    let state = table_state(&ws.path("lake"));
    let changed = state.as_array().unwrap().iter().filter(|r| r["value"].as_str().unwrap().starts_with("changed")).count();
    assert_eq!((state.as_array().unwrap().len(), changed), (200, 10));
}

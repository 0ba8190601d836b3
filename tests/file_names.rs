//! File names that are not UTF-8, end to end: recorded in an escaped form that cannot collide
//! (ledger, `_source_file`, quarantine report) and mapped back to the file's own bytes on disk.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests and benches fail loudly on purpose.

mod common;
use common::*;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

#[test]
fn names_differing_only_in_invalid_bytes_are_two_files_and_a_bad_one_round_trips_through_quarantine() {
    let ws = Workspace::attom("on_bad_row = \"quarantine_file\"");
    let in_drop = |bytes: &[u8]| ws.path("drop").join(OsStr::from_bytes(bytes));
    std::fs::write(in_drop(b"a\xff.json"), br#"[{"identifier": {"Id": 1}}]"#).unwrap();
    std::fs::write(in_drop(b"a\xfe.json"), br#"[{"identifier": {"Id": 2}}, {"identifier": {"Id": 3}}]"#).unwrap();
    std::fs::write(in_drop(b"b\xff.json"), br#"[{"identifier": {"Id": 4}}, {"identifier": {"Id": 5"#).unwrap();

    let summary = ws.once();
    let totals = &summary["totals"];
    assert_eq!(
        (totals["files"].as_u64(), totals["rows"].as_u64(), totals["quarantined"].as_u64()),
        (Some(2), Some(3), Some(1)),
        "{summary}"
    );
    let mut files: Vec<String> = strings(&read_delta(&ws.path("lake/attom")), "_source_file").into_iter().flatten().collect();
    files.sort();
    assert_eq!(files, [r"a\xfe.json", r"a\xfe.json", r"a\xff.json"]);
    for file in &files {
        assert!(in_drop(ingestd::discover::name_bytes(file).as_slice()).exists(), "{file} leads back to its file");
    }

    // Each file is known to the ledger under its own name: nothing is offered again.
    let again = ws.once();
    assert_eq!((again["totals"]["rows"].as_u64(), again["totals"]["duplicates"].as_u64()), (Some(0), Some(0)), "{again}");

    // The quarantined copy keeps the file's bytes; its report holds the recorded name.
    let quarantined = ws.path("quarantine/attom").join(OsStr::from_bytes(b"b\xff.json"));
    let report_path = ws.path("quarantine/attom").join(OsStr::from_bytes(b"b\xff.json.error.json"));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    assert_eq!(report["file"], r"b\xff.json", "{report}");
    assert_eq!(ingestd::discover::name_bytes(report["file"].as_str().unwrap()), b"b\xff.json");
    assert!(quarantined.exists() && !in_drop(b"b\xff.json").exists());
    let listed = String::from_utf8_lossy(&ws.ingestd(&["quarantine", "list"]).stdout).to_string();
    assert!(listed.contains(r"b\xff.json"), "{listed}");

    // Fixed and retried by its listed name, it goes back under its own bytes and commits.
    std::fs::write(&quarantined, br#"[{"identifier": {"Id": 4}}, {"identifier": {"Id": 5}}]"#).unwrap();
    let out = ws.ingestd(&["quarantine", "retry", r"b\xff.json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(in_drop(b"b\xff.json").exists() && !quarantined.exists() && !report_path.exists());
    assert_eq!(ws.once()["totals"]["rows"].as_u64(), Some(2));
    let files = strings(&read_delta(&ws.path("lake/attom")), "_source_file");
    assert_eq!(files.iter().filter(|f| f.as_deref() == Some(r"b\xff.json")).count(), 2);
}

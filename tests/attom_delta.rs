//! The ATTOM job end to end: real binary, generated messy files, Delta table read back.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests and benches fail loudly on purpose.

mod common;
use common::*;
use ingestd::sample::{AttomSpec, write_attom_files};

fn spec(files: usize, rows: usize) -> AttomSpec {
    AttomSpec { files, rows, seed: 7 }
}

#[test]
fn attom_files_land_once_with_their_values() {
    let ws = Workspace::attom("");
    let totals = write_attom_files(&ws.path("drop"), &spec(12, 30_000)).unwrap();
    let summary = ws.once();
    assert_eq!(summary["totals"]["rows"], 30_000);
    assert_eq!(summary["totals"]["files"], 12);

    let batches = read_delta(&ws.path("lake/attom"));
    assert_eq!(row_count(&batches), totals.rows);
    assert_eq!(sum_i64(&batches, "sale_price"), (totals.sum_sale_price, totals.null_sale_price));
    assert_eq!(sum_i64(&batches, "size").1, totals.missing_building, "no building object gives a null size");
    let lat_micro = (sum_f64(&batches, "latitude") * 1e6).round() as i64;
    assert!((lat_micro - totals.sum_latitude_micro).abs() <= 30_000, "{lat_micro} vs {}", totals.sum_latitude_micro);
    let ids = counts_i64(&batches, "id");
    assert_eq!(ids.len(), totals.rows, "every record once");
    assert!(ids.values().all(|&n| n == 1));
    let years_null: usize = batches.iter().map(|b| b.column_by_name("year_built").unwrap().null_count()).sum();
    assert_eq!(years_null, totals.zero_year_built, "year 0 means unknown");
    let files = strings(&batches, "_source_file");
    assert!(files.iter().all(|f| f.as_deref().is_some_and(|f| f.starts_with("CO0") && f.contains(' '))));

    // The ledger answers "did file X make it in?".
    let out = ws.ingestd(&["status"]);
    let status = String::from_utf8_lossy(&out.stdout);
    assert!(status.contains("committed") && status.contains("30000"), "{status}");
}

#[test]
fn the_same_content_again_adds_nothing_even_without_the_ledger() {
    let ws = Workspace::attom("");
    let totals = write_attom_files(&ws.path("drop"), &spec(6, 6_000)).unwrap();
    assert_eq!(ws.once()["totals"]["rows"], 6_000);

    // Every file dropped again under a new name.
    for entry in std::fs::read_dir(ws.path("drop")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.starts_with('.') {
            std::fs::copy(&path, ws.path("drop").join(format!("again {name}"))).unwrap();
        }
    }
    let summary = ws.once();
    assert_eq!(summary["totals"]["rows"], 0);
    assert_eq!(summary["totals"]["duplicates"], 6);

    // The state folder lost: the table's own log says what is in it.
    std::fs::remove_dir_all(ws.path("state")).unwrap();
    let summary = ws.once();
    assert_eq!(summary["totals"]["rows"], 0, "{summary}");
    assert_eq!(summary["totals"]["duplicates"], 6, "the originals are recognised as committed, the copies as duplicates");
    assert_eq!(row_count(&read_delta(&ws.path("lake/attom"))), totals.rows);

    // New content still lands after the rebuild.
    write_attom_files(&ws.path("drop/new"), &AttomSpec { files: 1, rows: 50, seed: 99 }).unwrap();
    for entry in std::fs::read_dir(ws.path("drop/new")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::rename(&path, ws.path("drop").join("CO99999 2030-01-01")).unwrap();
    }
    assert_eq!(ws.once()["totals"]["rows"], 50);
    assert_eq!(row_count(&read_delta(&ws.path("lake/attom"))), totals.rows + 50);
}

#[test]
fn a_malformed_file_is_quarantined_with_its_reason_while_its_neighbours_commit() {
    let ws = Workspace::attom("on_bad_row = \"quarantine_file\"");
    let totals = write_attom_files(&ws.path("drop"), &spec(3, 3_000)).unwrap();
    ws.drop_file("CO00000 broken", br#"[{"identifier": {"Id": 1}}, {"identifier": {"Id": 2"#);
    ws.drop_file(
        "CO00000 bad value",
        br#"[{"identifier": {"Id": 1}, "sale": {"amount": {"saleamt": 5}}}, {"identifier": {"Id": 2}, "sale": {"amount": {"saleamt": "n/a"}}}]"#,
    );
    let summary = ws.once();
    assert_eq!(summary["totals"]["rows"], 3_000);
    assert_eq!(summary["totals"]["quarantined"], 2);
    assert_eq!(row_count(&read_delta(&ws.path("lake/attom"))), totals.rows);

    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ws.path("quarantine/attom/CO00000 broken.error.json")).unwrap()).unwrap();
    assert!(report["reason"].as_str().unwrap().contains("not closed"), "{report}");
    assert_eq!(report["file"], "CO00000 broken");
    assert!(!ws.path("drop/CO00000 broken").exists());
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ws.path("quarantine/attom/CO00000 bad value.error.json")).unwrap()).unwrap();
    assert_eq!(report["position"]["record"], 2, "{report}");
    assert!(report["reason"].as_str().unwrap().contains("sale_price"), "{report}");

    // Fixed and retried, the file commits; nothing committed before is touched.
    let listed = String::from_utf8_lossy(&ws.ingestd(&["quarantine", "list"]).stdout).to_string();
    assert!(listed.contains("CO00000 broken"), "{listed}");
    std::fs::write(ws.path("quarantine/attom/CO00000 broken"), br#"[{"identifier": {"Id": 1}}, {"identifier": {"Id": 2}}]"#).unwrap();
    let out = ws.ingestd(&["quarantine", "retry", "CO00000 broken"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(ws.once()["totals"]["rows"], 2);
    assert_eq!(row_count(&read_delta(&ws.path("lake/attom"))), totals.rows + 2);
}

/// Visible entries of a folder (the folder lock `.ingestd.lock` is hidden).
fn visible(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir).unwrap().filter(|e| !e.as_ref().unwrap().file_name().to_string_lossy().starts_with('.')).count()
}

#[test]
fn committed_files_can_be_archived_or_deleted() {
    let ws = Workspace::attom("after_commit = \"archive\"\narchive_dir = \"archive\"");
    write_attom_files(&ws.path("drop"), &spec(2, 100)).unwrap();
    ws.once();
    assert_eq!(visible(&ws.path("drop")), 0);
    assert_eq!(visible(&ws.path("archive")), 2);

    let ws = Workspace::attom("after_commit = \"delete\"");
    write_attom_files(&ws.path("drop"), &spec(2, 100)).unwrap();
    ws.once();
    assert_eq!(visible(&ws.path("drop")), 0);
    assert_eq!(row_count(&read_delta(&ws.path("lake/attom"))), 100);
}

use super::*;

fn file(name: &str, hash: &str, rows: u64) -> FileEntry {
    FileEntry { name: name.into(), size: Some(10), mtime_ns: Some(7), hash: hash.into(), rows: Some(rows) }
}

#[test]
fn a_batch_goes_from_in_flight_to_committed() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(dir.path()).unwrap();
    assert_eq!(ledger.next_seq("s").unwrap(), 1);
    let batch = BatchEntry { source: "s".into(), seq: 1, files: vec![file("a", "h1", 3), file("b", "h2", 4)], ingested_at_us: None };
    ledger.begin_batch(&batch).unwrap();
    assert_eq!(ledger.known("s", "a", 10, 7).unwrap(), Some(FileState::InFlight));
    assert_eq!(ledger.in_flight_batches("s").unwrap(), vec![batch.clone()]);
    assert_eq!(ledger.holder_of("s", "h2").unwrap(), Some(("b".to_string(), false)), "in flight");

    ledger.record_sink_commit("s", 1, "lake", "delta version 3").unwrap();
    ledger.finish_batch("s", 1).unwrap();
    assert_eq!(ledger.known("s", "a", 10, 7).unwrap(), Some(FileState::Committed));
    assert_eq!(ledger.known("s", "a", 11, 7).unwrap(), None, "another size is another file");
    assert!(ledger.in_flight_batches("s").unwrap().is_empty());
    assert_eq!(ledger.next_seq("s").unwrap(), 2);
    assert_eq!(ledger.highest_seq_in("s", "lake").unwrap(), Some(1));
    let status = ledger.status().unwrap();
    assert_eq!(status, vec![StatusRow { source: "s".into(), state: "committed".into(), files: 2, rows: 7 }]);
}

#[test]
fn an_abandoned_batch_forgets_its_files_but_keeps_its_number() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(dir.path()).unwrap();
    ledger.begin_batch(&BatchEntry { source: "s".into(), seq: 1, files: vec![file("a", "h1", 3)], ingested_at_us: None }).unwrap();
    ledger.abandon_batch("s", 1).unwrap();
    assert_eq!(ledger.known("s", "a", 10, 7).unwrap(), None);
    assert_eq!(ledger.holder_of("s", "h1").unwrap(), None);
    assert_eq!(ledger.next_seq("s").unwrap(), 2, "a txn version is never reused");
}

#[test]
fn survives_reopening_and_imports_batches_found_in_a_sink() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut ledger = Ledger::open(dir.path()).unwrap();
        let rebuilt = FileEntry { size: None, mtime_ns: None, ..file("x", "hx", 9) };
        let imported = BatchEntry { source: "s".into(), seq: 5, files: vec![rebuilt], ingested_at_us: None };
        ledger.import_committed("lake", &[(imported, "delta version 9".into())]).unwrap();
    }
    let ledger = Ledger::open(dir.path()).unwrap();
    assert_eq!(ledger.holder_of("s", "hx").unwrap(), Some(("x".to_string(), true)));
    assert_eq!(ledger.known("s", "x", 10, 7).unwrap(), None, "a rebuilt record has no size or mtime");
    assert!(!ledger.adopt("s", "x", "other hash", 10, 7).unwrap());
    assert!(ledger.adopt("s", "x", "hx", 10, 7).unwrap());
    assert_eq!(ledger.known("s", "x", 10, 7).unwrap(), Some(FileState::Committed));
    assert_eq!(ledger.next_seq("s").unwrap(), 6);
    assert_eq!(ledger.last_commits().unwrap()[0].reference, "delta version 9");
}

#[test]
fn quarantine_verdicts_can_be_listed_and_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path()).unwrap();
    ledger.record_quarantined("s", &file("bad", "hb", 0), "line 3: expected value").unwrap();
    assert_eq!(ledger.quarantined("s").unwrap(), vec![("bad".to_string(), "line 3: expected value".to_string())]);
    assert_eq!(ledger.forget_quarantined("s", "bad").unwrap(), 1);
    assert!(ledger.quarantined("s").unwrap().is_empty());
}

#[test]
fn a_damaged_ledger_is_refused_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(LEDGER_FILE), vec![0x5a; 8192]).unwrap();
    match Ledger::open(dir.path()) {
        Err(LedgerError::Damaged { .. }) => {}
        Err(other) => panic!("expected Damaged, got {other}"),
        Ok(_) => panic!("a garbage ledger was opened"),
    }
}

#[test]
fn a_damaged_ledger_is_set_aside_and_a_new_one_started() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut ledger = Ledger::open(dir.path()).unwrap();
        for seq in 1..=200 {
            ledger
                .begin_batch(&BatchEntry {
                    source: "s".into(),
                    seq,
                    files: vec![file(&format!("f{seq}"), &format!("h{seq}"), 1)],
                    ingested_at_us: None,
                })
                .unwrap();
            ledger.finish_batch("s", seq).unwrap();
        }
        ledger.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);").unwrap();
    }
    // Truncated mid-file, as a crash of the file system or a bad copy leaves it.
    let path = dir.path().join(LEDGER_FILE);
    let len = std::fs::metadata(&path).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(len / 2).unwrap();
    drop(f);
    assert!(matches!(Ledger::open(dir.path()), Err(LedgerError::Damaged { .. })), "a truncated ledger must be refused");
    let (ledger, aside) = Ledger::open_or_set_aside(dir.path()).unwrap();
    let aside = aside.expect("set aside");
    assert!(aside.exists());
    assert_eq!(ledger.next_seq("s").unwrap(), 1, "a fresh ledger, to be rebuilt from the sinks");
}

#[test]
fn the_instance_is_pinned_on_first_use() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path()).unwrap();
    ledger.claim_instance("host-a").unwrap();
    ledger.claim_instance("host-a").unwrap();
    match ledger.claim_instance("host-b") {
        Err(LedgerError::InstanceChanged { recorded, .. }) => assert_eq!(recorded, "host-a"),
        other => panic!("expected InstanceChanged, got {other:?}"),
    }
}

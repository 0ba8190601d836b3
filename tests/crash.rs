//! kill -9 at random instants while `ingestd run` ingests, restart each time: every row lands
//! exactly once (checked per record id, not just by count), and the ledger agrees.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests and benches fail loudly on purpose.

mod common;
use common::*;
use ingestd::sample::{AttomSpec, write_attom_files};
use std::time::Duration;

#[test]
fn kill_9_during_ingestion_then_restart_keeps_every_row_exactly_once() {
    let ws = Workspace::attom("[sources.attom.batch]\nmax_files = 2\nmax_delay = \"20ms\"");
    let rounds = 16;
    let files_per_round = 8;
    let totals = write_attom_files(
        &ws.path("staging"),
        &AttomSpec { files: rounds * files_per_round, rows: rounds * files_per_round * 800, seed: 11 },
    )
    .unwrap();
    let mut staged: Vec<_> = std::fs::read_dir(ws.path("staging")).unwrap().map(|e| e.unwrap().path()).collect();
    staged.sort();
    let log = std::fs::File::create(ws.path("run.log")).unwrap();
    let mut rng = ingestd::rng::Rng::seeded(0x9e37_79b9_7f4a_7c15);
    let mut kills = 0;
    for round in staged.chunks(files_per_round) {
        // New files arrive (renamed in, as a downloader would), and the daemon is killed mid-work.
        for path in round {
            std::fs::rename(path, ws.path("drop").join(path.file_name().unwrap())).unwrap();
        }
        let mut child = run_command(&ws, log.try_clone().unwrap()).spawn().expect("start ingestd run");
        std::thread::sleep(Duration::from_millis(40 + rng.below(400)));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        child.wait().unwrap();
    }
    assert_eq!(kills, rounds, "the daemon exited by itself: see {}", ws.path("run.log").display());

    let summary = ws.once();
    let batches = read_delta(&ws.path("lake/attom"));
    let ids = counts_i64(&batches, "id");
    let repeated = ids.values().filter(|&&n| n > 1).count();
    assert_eq!(repeated, 0, "rows duplicated after kill -9");
    assert_eq!(ids.len(), totals.rows, "rows lost after kill -9 (final once: {summary})");
    assert_eq!(row_count(&batches), totals.rows);
    assert!(summary["totals"]["rows"].as_u64().unwrap() < totals.rows as u64, "the daemon never committed anything before a kill");

    // The ledger agrees with the table, and nothing is left in flight.
    let status = String::from_utf8_lossy(&ws.ingestd(&["status"]).stdout).to_string();
    assert!(status.contains(&format!(" {}\n", totals.rows)), "{status}");
    assert!(!status.contains("in_flight"), "{status}");
}

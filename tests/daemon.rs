//! `ingestd run` as a daemon: files renamed or copied into the watched folder while it runs are
//! committed, and SIGTERM stops it cleanly.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests and benches fail loudly on purpose.

mod common;
use common::*;
use ingestd::sample::{AttomSpec, attom_file};
use std::time::{Duration, Instant};

/// Waits (up to a generous bound; this is not a latency assertion) until the table has `rows`.
fn wait_for_rows(ws: &Workspace, daemon: &mut std::process::Child, rows: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(exit) = daemon.try_wait().unwrap() {
            panic!("the daemon exited ({exit}): {}", std::fs::read_to_string(ws.path("run.log")).unwrap_or_default());
        }
        let seen = if ws.path("lake/attom/_delta_log").exists() { row_count(&read_delta(&ws.path("lake/attom"))) } else { 0 };
        if seen >= rows || Instant::now() > deadline {
            return seen;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn files_arriving_while_running_are_committed_and_sigterm_stops_cleanly() {
    let ws = Workspace::with_config(&attom_config("min_age = \"1s\""));
    // Relative paths in the config, as users write them; the daemon runs from the workspace.
    let mut child = spawn_run(&ws, &[], "run.log");
    let spec = AttomSpec { files: 2, rows: 200, seed: 5 };

    // A downloader's pattern: write under a temporary name, rename into place.
    let (name, bytes, _) = attom_file(&spec, 0);
    std::fs::create_dir_all(ws.path("staging")).unwrap();
    std::fs::write(ws.path("staging").join(&name), &bytes).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    std::fs::rename(ws.path("staging").join(&name), ws.path("drop").join(&name)).unwrap();
    let seen = wait_for_rows(&ws, &mut child, 100);
    assert_eq!(seen, 100, "renamed file not committed; log: {}", std::fs::read_to_string(ws.path("run.log")).unwrap());

    // A plain copy: written in place, ready once unchanged for min_age.
    let (name, bytes, _) = attom_file(&spec, 1);
    std::fs::write(ws.path("drop").join(&name), &bytes).unwrap();
    assert_eq!(wait_for_rows(&ws, &mut child, 200), 200, "copied file not committed");

    terminate(child);
    let log = std::fs::read_to_string(ws.path("run.log")).unwrap();
    assert!(log.contains("stopping"), "{log}");
}

//! Crash torture: `ingestd run` is killed again and again (SIGKILL at random instants, and
//! aborts at every named fault point) while files keep arriving; it is restarted each time. At
//! the end the table must hold every input row exactly once, compared row by row through
//! fingerprints computed from the input JSON, and the ledger must agree with the table.
//!
//! Needs the `fault-injection` feature. `TORTURE_KILLS` sets the number of kills (default 200).
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests and benches fail loudly on purpose.
#![cfg(feature = "fault-injection")]

mod common;
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

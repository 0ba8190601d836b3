//! What the daemon is doing, for `/readyz`, `/v1/status` and systemd's STATUS= line: per
//! source whether it is watched and how many files wait, are in flight, committed or
//! quarantined; per sink its last commit and last error. Sources write, the HTTP side reads.

use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{LazyLock, Mutex, MutexGuard};

/// The daemon's status board.
pub static STATUS: LazyLock<Board> = LazyLock::new(Board::default);

#[derive(Default)]
pub struct Board {
    state: Mutex<Snapshot>,
}

/// Everything `/v1/status` shows.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Snapshot {
    /// The ledger is open (start-up got past it).
    pub ledger_open: bool,
    pub sources: BTreeMap<String, SourceStatus>,
    /// The configuration in force (after the last successful reload), with defaults filled in.
    pub config: serde_json::Value,
    /// The last reload that was refused, and why.
    pub last_reload_error: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SourceStatus {
    /// The start-up scan is done and the folder is being watched.
    pub watched: bool,
    /// Files admitted and waiting for their batch.
    pub pending: usize,
    /// Files in the batch being committed.
    pub in_flight: usize,
    pub committed_files: u64,
    pub committed_rows: u64,
    pub duplicates: u64,
    pub quarantined: u64,
    /// Why the last batch failed, until one succeeds.
    pub last_error: Option<String>,
    /// A lookup of the source's transform that cannot be read: the source is not ready.
    pub lookup_error: Option<String>,
    /// Batches that some sinks hold and others cannot be given (see the runbook): each keeps
    /// the daemon not ready until it is completed or settled by a person.
    pub stuck_batches: Vec<StuckBatch>,
    pub sinks: BTreeMap<String, SinkStatus>,
}

/// A batch left in flight because it cannot be completed for every sink.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StuckBatch {
    pub batch: i64,
    /// The sinks that lack it.
    pub missing_sinks: Vec<String>,
    pub reason: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct SinkStatus {
    /// Reached at start-up or by the last commit, and no commit failed since.
    pub reachable: bool,
    /// RFC 3339 time of the last commit.
    pub last_commit_at: Option<String>,
    /// The sink's reference for it (e.g. "delta version 7").
    pub last_commit: Option<String>,
    pub last_error: Option<String>,
    /// The last commit failed. Recovery reading the sink does not make it reachable again (a
    /// broker may answer reads and refuse writes); only a commit does, and the failed batch is
    /// retried until one succeeds.
    pub commit_failed: bool,
}

impl Board {
    fn lock(&self) -> MutexGuard<'_, Snapshot> {
        // A panic elsewhere while holding the lock leaves plain data behind; keep serving it.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn snapshot(&self) -> Snapshot {
        self.lock().clone()
    }

    pub fn set_ledger_open(&self, open: bool) {
        self.lock().ledger_open = open;
    }

    pub fn set_config(&self, config: &crate::config::Config) {
        self.lock().config = serde_json::to_value(config).unwrap_or_default();
    }

    pub fn set_reload_error(&self, error: Option<String>) {
        self.lock().last_reload_error = error;
    }

    /// Changes one source's entry (created when missing).
    pub fn source(&self, name: &str, change: impl FnOnce(&mut SourceStatus)) {
        change(self.lock().sources.entry(name.to_string()).or_default());
    }

    /// Changes one sink's entry of a source.
    pub fn sink(&self, source: &str, sink: &str, change: impl FnOnce(&mut SinkStatus)) {
        self.source(source, |s| change(s.sinks.entry(sink.to_string()).or_default()));
    }

    pub fn remove_source(&self, name: &str) {
        self.lock().sources.remove(name);
    }

    /// Why the daemon is not ready, or `None` when it is: ledger open, every source watched,
    /// every sink reachable.
    pub fn not_ready(&self) -> Option<String> {
        let state = self.lock();
        let mut reasons = Vec::new();
        if !state.ledger_open {
            reasons.push("ledger not open".to_string());
        }
        for (name, source) in &state.sources {
            if !source.watched {
                reasons.push(format!("source {name}: start-up scan not done"));
            }
            if let Some(error) = &source.lookup_error {
                reasons.push(format!("source {name}: {error}"));
            }
            for stuck in &source.stuck_batches {
                reasons.push(format!(
                    "source {name}: batch {} is stuck, missing from {}: {}",
                    stuck.batch,
                    stuck.missing_sinks.join(", "),
                    stuck.reason
                ));
            }
            for (sink, status) in &source.sinks {
                if !status.reachable {
                    let why = status.last_error.as_deref().unwrap_or("not reached yet");
                    reasons.push(format!("source {name}, sink {sink}: {why}"));
                }
            }
        }
        (!reasons.is_empty()).then(|| reasons.join("; "))
    }

    /// One line for systemd's STATUS=.
    pub fn summary(&self) -> String {
        let state = self.lock();
        let pending: usize = state.sources.values().map(|s| s.pending + s.in_flight).sum();
        let committed: u64 = state.sources.values().map(|s| s.committed_files).sum();
        let failing = state.sources.values().filter(|s| s.last_error.is_some()).count();
        let mut line = format!("{} sources, {pending} files waiting, {committed} committed", state.sources.len());
        if failing > 0 {
            line.push_str(&format!(", {failing} failing"));
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_names_what_is_missing() {
        let board = Board::default();
        board.source("a", |_| {});
        board.sink("a", "lake", |_| {});
        let why = board.not_ready().unwrap();
        assert!(
            why.contains("ledger not open")
                && why.contains("source a: start-up scan not done")
                && why.contains("sink lake: not reached yet"),
            "{why}"
        );
        board.set_ledger_open(true);
        board.source("a", |s| s.watched = true);
        board.sink("a", "lake", |s| s.reachable = true);
        assert_eq!(board.not_ready(), None);
        board.sink("a", "lake", |s| {
            s.reachable = false;
            s.last_error = Some("disk full".into());
        });
        assert!(board.not_ready().unwrap().contains("sink lake: disk full"));
        board.sink("a", "lake", |s| s.reachable = true);
        board.source("a", |s| s.stuck_batches = vec![StuckBatch { batch: 7, missing_sinks: vec!["bus".into()], reason: "gone".into() }]);
        assert_eq!(board.not_ready().unwrap(), "source a: batch 7 is stuck, missing from bus: gone");
    }
}

//! A source's batches: committed, failed, settled by recovery, stuck; its queue; table upkeep.

use super::{ErrorKind, Event, count_error};
use crate::metrics::METRICS;
use crate::status::{STATUS, StuckBatch};
use std::time::Duration;
use tracing::{error, info, warn};

/// A batch committed to every sink it was meant for.
pub struct BatchCommitted<'a> {
    pub source: &'a str,
    pub batch: i64,
    pub files: usize,
    pub rows: u64,
    pub bytes: u64,
    pub bad_rows: u64,
    /// Values kept in the rescued column.
    pub rescued: u64,
    /// Values of fields no column reads, left out.
    pub ignored: u64,
    /// Rows the transform left out.
    pub filtered: u64,
    /// (sink, the sink's reference for the commit)
    pub commits: &'a [(String, String)],
    pub seconds: f64,
}

impl Event for BatchCommitted<'_> {
    fn emit(self) {
        info!(source = %self.source, batch = self.batch, files = self.files, rows = self.rows, commits = ?self.commits, "batch committed");
        if self.rescued > 0 {
            info!(source = %self.source, batch = self.batch, values = self.rescued, "values that did not fit the table kept in the rescued column");
        }
        METRICS.files.with_label_values(&[self.source, "committed"]).inc_by(self.files as u64);
        METRICS.bytes.with_label_values(&[self.source]).inc_by(self.bytes);
        METRICS.bad_rows.with_label_values(&[self.source]).inc_by(self.bad_rows);
        METRICS.values_rescued.with_label_values(&[self.source]).inc_by(self.rescued);
        METRICS.fields_ignored.with_label_values(&[self.source]).inc_by(self.ignored);
        METRICS.rows_filtered.with_label_values(&[self.source]).inc_by(self.filtered);
        METRICS.batch_seconds.with_label_values(&[self.source]).observe(self.seconds);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        for (sink, _) in self.commits {
            METRICS.rows.with_label_values(&[self.source, sink]).inc_by(self.rows);
            METRICS.last_commit.with_label_values(&[self.source, sink]).set(now);
        }
    }
}

/// A batch (or the recovery before it) failed; it is retried after `retry_in`.
pub struct BatchFailed<'a> {
    pub source: &'a str,
    pub error: &'a dyn std::fmt::Display,
    pub kind: ErrorKind,
    /// When a sink failed, the kind of its failure (`retryable`, `conflict`, `fatal`).
    pub sink_kind: Option<&'a str>,
    pub retry_in: Duration,
}

impl Event for BatchFailed<'_> {
    fn emit(self) {
        error!(source = %self.source, error = %self.error, sink_error = ?self.sink_kind, retry_in = ?self.retry_in, "batch failed; will retry");
        count_error(self.source, self.kind);
        STATUS.source(self.source, |s| s.last_error = Some(self.error.to_string()));
    }
}

/// A source's lookups were read for a batch, or one of them could not be: until they can, the
/// source commits nothing and the daemon is not ready.
pub struct LookupsRead<'a> {
    pub source: &'a str,
    pub error: Option<&'a crate::transform::lookup::LookupError>,
}

impl Event for LookupsRead<'_> {
    fn emit(self) {
        if let Some(error) = self.error {
            warn!(source = %self.source, error = %error, "a lookup cannot be read; the source waits");
        }
        STATUS.source(self.source, |s| s.lookup_error = self.error.map(|e| e.to_string()));
    }
}

/// The ledger thread has stopped: nothing can be recorded until a restart.
pub struct LedgerClosed;

impl Event for LedgerClosed {
    fn emit(self) {
        STATUS.set_ledger_open(false);
    }
}

/// A source's start-up scan is done: its folder is listed and watched.
pub struct SourceWatched<'a> {
    pub source: &'a str,
}

impl Event for SourceWatched<'_> {
    fn emit(self) {
        STATUS.source(self.source, |s| s.watched = true);
    }
}

/// A round of batches went through without an error.
pub struct SourceHealthy<'a> {
    pub source: &'a str,
}

impl Event for SourceHealthy<'_> {
    fn emit(self) {
        STATUS.source(self.source, |s| s.last_error = None);
    }
}

/// The batches of a source that recovery could not complete for every sink, replacing the
/// previous list (an empty list clears it).
pub struct StuckBatches<'a> {
    pub source: &'a str,
    pub batches: &'a [StuckBatch],
}

impl Event for StuckBatches<'_> {
    fn emit(self) {
        for stuck in self.batches {
            error!(source = %self.source, batch = stuck.batch, missing_sinks = ?stuck.missing_sinks, reason = %stuck.reason,
                   "batch stuck: some sinks hold it and the others cannot be given it; see the runbook");
            count_error(self.source, ErrorKind::Stuck);
        }
        METRICS.batches_stuck.with_label_values(&[self.source]).set(self.batches.len() as i64);
        STATUS.source(self.source, |s| s.stuck_batches = self.batches.to_vec());
    }
}

/// The ledger knew fewer batches than a sink holds (a lost or older state folder): it was
/// rebuilt from the sink's own records.
pub struct LedgerRebuilt<'a> {
    pub source: &'a str,
    pub sink: &'a str,
    pub ledger_batch: i64,
    pub sink_batch: i64,
    pub batches: usize,
}

impl Event for LedgerRebuilt<'_> {
    fn emit(self) {
        warn!(source = %self.source, sink = self.sink, ledger_seq = self.ledger_batch, sink_seq = self.sink_batch, batches = self.batches,
              "the ledger is behind the sink; rebuilding it from the sink's own records");
    }
}

/// A rebuilt batch some sinks lack was put back in flight, to be completed.
pub struct BatchReopened<'a> {
    pub source: &'a str,
    pub batch: i64,
    pub holding: &'a [String],
}

impl Event for BatchReopened<'_> {
    fn emit(self) {
        warn!(source = %self.source, batch = self.batch, holding = ?self.holding, "rebuilt batch is missing from some sinks; completing it");
    }
}

/// An interrupted batch turned out to be held by every sink: recorded as committed.
pub struct BatchRecorded<'a> {
    pub source: &'a str,
    pub batch: i64,
}

impl Event for BatchRecorded<'_> {
    fn emit(self) {
        info!(source = %self.source, batch = self.batch, "interrupted batch had committed; recorded");
    }
}

/// An interrupted batch no sink holds: forgotten, its files read again.
pub struct BatchAbandoned<'a> {
    pub source: &'a str,
    pub batch: i64,
    pub files: usize,
}

impl Event for BatchAbandoned<'_> {
    fn emit(self) {
        info!(source = %self.source, batch = self.batch, files = self.files, "interrupted batch never committed; its files will be read again");
    }
}

/// An interrupted batch is being completed for the sinks that lack it.
pub struct BatchReplaying<'a> {
    pub source: &'a str,
    pub batch: i64,
    pub sinks: &'a [String],
}

impl Event for BatchReplaying<'_> {
    fn emit(self) {
        info!(source = %self.source, batch = self.batch, sinks = ?self.sinks, "completing an interrupted batch");
    }
}

/// A source's queue and totals, after each round.
pub struct SourceQueue<'a> {
    pub source: &'a str,
    pub pending: usize,
    pub in_flight: usize,
    pub oldest_wait: Option<Duration>,
    pub committed_files: u64,
    pub committed_rows: u64,
    pub duplicates: u64,
    pub quarantined: u64,
}

impl Event for SourceQueue<'_> {
    fn emit(self) {
        METRICS.pending.with_label_values(&[self.source]).set(self.pending as i64);
        METRICS.oldest_pending_seconds.with_label_values(&[self.source]).set(self.oldest_wait.map_or(0.0, |d| d.as_secs_f64()));
        STATUS.source(self.source, |s| {
            s.pending = self.pending;
            s.in_flight = self.in_flight;
            s.committed_files = self.committed_files;
            s.committed_rows = self.committed_rows;
            s.duplicates = self.duplicates;
            s.quarantined = self.quarantined;
        });
    }
}

/// A round of table upkeep did something.
pub struct MaintenanceRan<'a> {
    pub source: &'a str,
    pub sink: &'a str,
    pub notes: &'a [String],
}

impl Event for MaintenanceRan<'_> {
    fn emit(self) {
        for note in self.notes {
            info!(source = %self.source, sink = %self.sink, "{note}");
        }
    }
}

/// A round of table upkeep failed; committed batches are not affected.
pub struct MaintenanceFailed<'a> {
    pub source: &'a str,
    pub sink: &'a str,
    pub error: &'a dyn std::fmt::Display,
}

impl Event for MaintenanceFailed<'_> {
    fn emit(self) {
        warn!(source = %self.source, sink = %self.sink, error = %self.error, "table maintenance failed; committed batches are not affected");
        count_error(self.source, ErrorKind::Maintenance);
    }
}

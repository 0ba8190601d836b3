//! A sink's health as the batches see it. These three events are the only writers of a sink's
//! `reachable` and `commit_failed` on the status board, from which readiness is derived
//! ([`crate::status::Board::not_ready`]).

use super::Event;
use crate::metrics::METRICS;
use crate::status::STATUS;
use tracing::warn;

/// A sink committed a batch.
pub struct SinkCommitted<'a> {
    pub source: &'a str,
    pub sink: &'a str,
    pub reference: &'a str,
    pub seconds: f64,
}

impl Event for SinkCommitted<'_> {
    fn emit(self) {
        METRICS.commit_seconds.with_label_values(&[self.source, self.sink]).observe(self.seconds);
        STATUS.sink(self.source, self.sink, |s| {
            s.reachable = true;
            s.commit_failed = false;
            s.last_error = None;
            s.last_commit_at = Some(chrono::Utc::now().to_rfc3339());
            s.last_commit = Some(self.reference.to_string());
        });
    }
}

/// A sink's commit of a batch failed (it may still have landed: the caller asks the sink).
pub struct SinkCommitFailed<'a> {
    pub source: &'a str,
    pub sink: &'a str,
    pub batch: i64,
    /// The sink error's kind (`retryable`, `conflict`, `fatal`).
    pub kind: &'a str,
    pub error: &'a dyn std::fmt::Display,
    pub seconds: f64,
}

impl Event for SinkCommitFailed<'_> {
    fn emit(self) {
        let sink = self.sink;
        METRICS.commit_seconds.with_label_values(&[self.source, sink]).observe(self.seconds);
        warn!(source = %self.source, sink = %sink, batch = self.batch, kind = %self.kind, error = %self.error,
              "commit failed; checking whether it landed");
        STATUS.sink(self.source, sink, |s| {
            s.reachable = false;
            s.commit_failed = true;
            s.last_error = Some(self.error.to_string());
        });
    }
}

/// Recovery read a sink (or failed to). A read that works makes a sink reachable unless its
/// last commit failed: a broker may answer reads and refuse writes, so only a commit clears a
/// failed commit.
pub struct SinkRead<'a> {
    pub source: &'a str,
    pub sink: &'a str,
    pub error: Option<&'a dyn std::fmt::Display>,
}

impl Event for SinkRead<'_> {
    fn emit(self) {
        STATUS.sink(self.source, self.sink, |s| match self.error {
            None => s.reachable = !s.commit_failed,
            Some(error) => {
                s.reachable = false;
                s.last_error = Some(error.to_string());
            }
        });
    }
}

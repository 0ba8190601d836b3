//! Everything the daemon lets an operator observe, one type per event. Emitting an event writes
//! its log line, its metrics and its entry on the status board together, so the three never
//! disagree, and tests can assert the event's effects instead of matching log text.
//!
//! The data path creates events and knows nothing of their consumers; this module knows the
//! consumers ([`crate::metrics`], [`crate::status`], the log) and nothing of the data path
//! beyond what each event carries.

mod batch;
mod daemon;
mod download;
mod file;
mod outbound;
mod sink;

/// What a stuck batch reports (the status board keeps the list).
pub use crate::status::StuckBatch;
pub use batch::{
    BatchAbandoned, BatchCommitted, BatchFailed, BatchRecorded, BatchReopened, BatchReplaying, LedgerClosed, LedgerRebuilt, LookupsRead,
    MaintenanceFailed, MaintenanceRan, SourceHealthy, SourceQueue, SourceWatched, StuckBatches,
};
pub use daemon::{ReloadApplied, ReloadRefused, SourceNotStarted};
pub use download::{Download, Outcome as DownloadOutcome, PollFailed};
pub use file::{
    AdmissionFailed, ColumnsAdded, ColumnsInferred, DispositionFailed, FileChanged, FileDuplicate, FileIgnored, FileQuarantined,
    FileVanished, FileWaitsForTwin,
};
pub use outbound::{DruidTasks, HttpListenFailed, KafkaMessages, SupervisorSubmission, UploadAnswered};
pub use sink::{SinkCommitFailed, SinkCommitted, SinkRead};

/// One observable event.
pub trait Event {
    /// Writes the log line, counts the metrics and updates the status board.
    fn emit(self);
}

/// Emits `event` (a shorthand that reads as a verb at the call site).
pub fn emit(event: impl Event) {
    event.emit();
}

/// The `kind` label of `ingestd_errors_total`: the one list of error kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The ledger (SQLite) failed.
    Ledger,
    /// A sink's storage or broker failed.
    Sink,
    /// A file could not be read to be admitted.
    Admit,
    /// The drop folder could not be watched or listed.
    Folder,
    /// An `http` or `s3` source could not list or download.
    Fetch,
    /// The columns could not be built or loaded.
    Mapping,
    /// A source's transform does not plan against its columns, or the engine failed.
    Transform,
    /// A lookup could not be read: the source waits rather than commit rows joined to nothing.
    Lookup,
    /// A file could not be moved, deleted or written.
    Io,
    /// A batch cannot be completed for every sink (see `ingestd_batches_stuck`).
    Stuck,
    /// Table upkeep (compaction, checkpoint, vacuum) failed; the batches stand.
    Maintenance,
    /// The HTTP endpoint could not listen.
    Http,
    /// A bug: a thread died or an invariant broke.
    Internal,
}

impl ErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Ledger => "ledger",
            ErrorKind::Sink => "sink",
            ErrorKind::Admit => "admit",
            ErrorKind::Folder => "folder",
            ErrorKind::Fetch => "fetch",
            ErrorKind::Mapping => "mapping",
            ErrorKind::Transform => "transform",
            ErrorKind::Lookup => "lookup",
            ErrorKind::Io => "io",
            ErrorKind::Stuck => "stuck",
            ErrorKind::Maintenance => "maintenance",
            ErrorKind::Http => "http",
            ErrorKind::Internal => "internal",
        }
    }
}

/// Counts one error of `kind` for `source` (`""` when no source is concerned).
pub(crate) fn count_error(source: &str, kind: ErrorKind) {
    crate::metrics::METRICS.errors.with_label_values(&[source, kind.as_str()]).inc();
}

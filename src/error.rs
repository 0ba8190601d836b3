//! The errors of a running source and of the daemon around it. Each variant is a kind a
//! decision rests on (retry, settle, stop); none carries a condition in a string.

use crate::admit::AdmitError;
use crate::discover::FolderError;
use crate::discover::remote::RemoteError;
use crate::events::ErrorKind;
use crate::ledger::LedgerError;
use crate::sinks::SinkError;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Admit(#[from] AdmitError),
    #[error(transparent)]
    Folder(#[from] FolderError),
    #[error(transparent)]
    Remote(#[from] RemoteError),
    /// The columns of a source cannot be built or its saved inferred columns read.
    #[error("source {name}: columns: {detail}")]
    Mapping { name: String, detail: String },
    /// A source's transform does not plan, or the engine failed running it.
    #[error("source {name}: {detail}")]
    Transform { name: String, detail: String },
    /// A lookup the transform joins could not be read.
    #[error("source {name}: {error}")]
    Lookup { name: String, error: crate::transform::lookup::LookupError },
    /// An interrupted batch cannot be committed again as it was for the sinks that lack it.
    #[error("batch {batch} cannot be completed for {missing_sinks:?}: {reason}")]
    Stuck { batch: i64, missing_sinks: Vec<String>, reason: String },
    /// A file could not be moved, deleted or written.
    #[error("{action} {}: {error}", path.display())]
    File { action: &'static str, path: PathBuf, error: std::io::Error },
    /// The state folder cannot be created, or another daemon holds it.
    #[error("state folder {}: {detail}", path.display())]
    StateFolder { path: PathBuf, detail: String },
    /// `ingestd once` could not download every file of an `http` or `s3` source.
    #[error("source {name}: {failed} file(s) could not be downloaded (see the log)")]
    Downloads { name: String, failed: usize },
    /// A thread died or an invariant broke.
    #[error("internal: {0}")]
    Internal(String),
}

impl Error {
    /// The `kind` label of `ingestd_errors_total`.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Ledger(_) => ErrorKind::Ledger,
            Error::Sink(_) => ErrorKind::Sink,
            Error::Admit(_) => ErrorKind::Admit,
            Error::Folder(_) => ErrorKind::Folder,
            Error::Remote(_) | Error::Downloads { .. } => ErrorKind::Fetch,
            Error::Mapping { .. } => ErrorKind::Mapping,
            Error::Transform { .. } => ErrorKind::Transform,
            Error::Lookup { .. } => ErrorKind::Lookup,
            Error::Stuck { .. } => ErrorKind::Stuck,
            Error::File { .. } | Error::StateFolder { .. } => ErrorKind::Io,
            Error::Internal(_) => ErrorKind::Internal,
        }
    }

    /// A task that ended without finishing (a panic, or cancelled at shutdown).
    pub(crate) fn task(what: &str, e: tokio::task::JoinError) -> Error {
        Error::Internal(format!("{what}: {e}"))
    }
}

//! Stage 1, discover: find files that are complete and hand them on as [`Candidate`]s.

mod filter;
mod folder;

pub use filter::{looks_temporary, FileFilter};
pub use folder::{FolderError, FolderSource, LOCK_FILE};

use std::path::PathBuf;

/// A file that is ready to be read: no longer changing, or renamed into place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Name of the source it came from.
    pub source: String,
    /// Where it is now.
    pub path: PathBuf,
    /// Its name relative to the source (sub-folders joined with `/`): what the ledger records.
    pub name: String,
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
}

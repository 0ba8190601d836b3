//! Stage 1, discover: find files that are complete and hand them on as [`Candidate`]s.

mod filter;
mod folder;
pub(crate) mod http;
pub mod landing;
mod name;
pub mod remote;
pub(crate) mod s3;

pub use filter::{FileFilter, looks_temporary};
pub use folder::{FolderError, FolderSource, LOCK_FILE};
pub use name::{file_name, name_bytes, to_os_string};

use crate::config::{SourceConfig, SourceKind};
use std::path::{Path, PathBuf};

/// A file that is ready to be read: no longer changing, or renamed into place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Name of the source it came from.
    pub source: String,
    /// Where it is now.
    pub path: PathBuf,
    /// Its name relative to the source (sub-folders joined with `/`): what the ledger records.
    /// In [`file_name`]'s form (`\` and bytes that are not UTF-8 escaped); [`to_os_string`]
    /// turns it back into the path below the folder.
    pub name: String,
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
}

/// Size and mtime (ns since the epoch) of a regular file, following symbolic links when asked;
/// `None` if it is not there or not a file.
pub fn stat_file(path: &std::path::Path, follow_symlinks: bool) -> Option<(u64, i64)> {
    let meta = if follow_symlinks { std::fs::metadata(path) } else { std::fs::symlink_metadata(path) };
    let meta = meta.ok().filter(|m| m.is_file())?;
    let mtime_ns = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos() as i64);
    Some((meta.len(), mtime_ns))
}

/// Opens (creating) `path` and takes an exclusive `flock` on it without waiting. `None` when
/// another process holds it; the lock lasts as long as the returned file is open.
pub fn lock_exclusive(path: &std::path::Path) -> std::io::Result<Option<std::fs::File>> {
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path)?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// [`stat_file`] following links: how a file handed on looks now.
pub fn stat(path: &std::path::Path) -> Option<(u64, i64)> {
    stat_file(path, true)
}

/// The poller of a source, or `None` for a folder source.
pub fn open_remote(name: &str, config: &SourceConfig, state_dir: &Path) -> Result<Option<Box<dyn remote::Remote>>, remote::RemoteError> {
    match &config.kind {
        SourceKind::Folder => Ok(None),
        SourceKind::Http(http) => Ok(Some(Box::new(http::HttpSource::new(name, config, http, state_dir)?))),
        SourceKind::S3(s3) => Ok(Some(Box::new(s3::S3Source::new(name, config, s3, state_dir)?))),
    }
}

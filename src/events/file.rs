//! What happens to one file on its way in: admitted as a duplicate or ignored, quarantined,
//! changed or vanished under us, not archived.

use super::{ErrorKind, Event, count_error};
use crate::metrics::METRICS;
use tracing::{error, info, warn};

/// Counts a file by outcome in `ingestd_files_total`.
fn count_file(source: &str, outcome: &str) {
    METRICS.files.with_label_values(&[source, outcome]).inc();
}

/// A file could not be admitted now (unreadable, ledger busy); it is tried again.
pub struct AdmissionFailed<'a> {
    pub source: &'a str,
    pub file: &'a str,
    pub error: &'a dyn std::fmt::Display,
    pub kind: ErrorKind,
}

impl Event for AdmissionFailed<'_> {
    fn emit(self) {
        error!(source = %self.source, file = %self.file, error = %self.error, "cannot admit file; will retry");
        count_error(self.source, self.kind);
    }
}

/// A file went away between discovery and admission.
pub struct FileVanished<'a> {
    pub source: &'a str,
    pub file: &'a str,
}

impl Event for FileVanished<'_> {
    fn emit(self) {
        info!(source = %self.source, file = %self.file, "file vanished before it was read");
    }
}

/// A file whose content is already committed under another name.
pub struct FileDuplicate<'a> {
    pub source: &'a str,
    pub file: &'a str,
    pub of: &'a str,
}

impl Event for FileDuplicate<'_> {
    fn emit(self) {
        info!(source = %self.source, file = %self.file, of = %self.of, "same content as a file already ingested; not ingested again");
        count_file(self.source, "duplicate");
    }
}

/// A file whose content equals a file of a batch left in flight (stuck): it waits for that
/// batch to be settled.
pub struct FileWaitsForTwin<'a> {
    pub source: &'a str,
    pub file: &'a str,
    pub of: &'a str,
}

impl Event for FileWaitsForTwin<'_> {
    fn emit(self) {
        info!(source = %self.source, file = %self.file, of = %self.of, "same content as a file of a batch still in flight; waits for that batch");
    }
}

/// A committed file rewritten in place, left out by `allow_overwrites = false`.
pub struct FileIgnored<'a> {
    pub source: &'a str,
    pub file: &'a str,
}

impl Event for FileIgnored<'_> {
    fn emit(self) {
        warn!(source = %self.source, file = %self.file, "committed file rewritten with new content; ignored (allow_overwrites = false)");
        count_file(self.source, "ignored");
    }
}

/// A file moved to quarantine.
pub struct FileQuarantined<'a> {
    pub source: &'a str,
    pub file: &'a str,
    pub reason: &'a str,
}

impl Event for FileQuarantined<'_> {
    fn emit(self) {
        error!(source = %self.source, file = %self.file, reason = %self.reason, "file quarantined");
        count_file(self.source, "quarantined");
    }
}

/// A file changed or vanished after it was admitted: read again once it settles.
pub struct FileChanged<'a> {
    pub source: &'a str,
    pub file: &'a str,
}

impl Event for FileChanged<'_> {
    fn emit(self) {
        info!(source = %self.source, file = %self.file, "file changed or vanished after it was found; it is read again once it settles");
    }
}

/// A committed (or duplicate) file could not be archived, deleted, or its downloaded copy
/// removed. The rows stand.
pub struct DispositionFailed<'a> {
    pub source: &'a str,
    pub file: &'a str,
    pub error: &'a std::io::Error,
}

impl Event for DispositionFailed<'_> {
    fn emit(self) {
        warn!(source = %self.source, file = %self.file, error = %self.error, "committed, but cannot archive/delete the source file");
        count_error(self.source, ErrorKind::Io);
    }
}

/// Columns inferred from a source's first batch (its table did not exist yet).
pub struct ColumnsInferred<'a> {
    pub source: &'a str,
    pub file: &'a str,
    pub columns: usize,
}

impl Event for ColumnsInferred<'_> {
    fn emit(self) {
        info!(source = %self.source, file = %self.file, columns = self.columns, "columns inferred");
    }
}

/// A field the table lacks became a column (`schema.evolution = "add_columns"`); it is added in
/// the commit of the batch that brought it.
pub struct ColumnsAdded<'a> {
    pub source: &'a str,
    /// The file the field was first seen in.
    pub file: &'a str,
    pub column: &'a str,
}

impl Event for ColumnsAdded<'_> {
    fn emit(self) {
        info!(source = %self.source, file = %self.file, column = %self.column, "new field becomes a column");
        crate::metrics::METRICS.columns_added.with_label_values(&[self.source]).inc();
    }
}

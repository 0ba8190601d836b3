//! What the pollers of `http` and `s3` sources do with each remote file.

use super::{ErrorKind, Event, count_error};
use crate::metrics::METRICS;
use std::time::Duration;
use tracing::{debug, info, warn};

/// What became of one remote file at one poll.
pub enum Outcome<'a> {
    /// Downloaded and renamed into the landing folder.
    Landed { bytes: u64, etag: Option<&'a str> },
    /// Unchanged since it was downloaded (the listing or the server said so).
    NotModified,
    /// Changed less than `min_age` ago by the server's clock: the next poll looks again.
    TooFresh,
    /// One transfer failed and is tried again after `retry_in`.
    Retried { reason: &'a str, retry_in: Duration },
    /// Given up until the next poll.
    Failed { reason: &'a str },
}

/// A remote file (or `what` the transfer was: a file name, or `listing`) at one poll.
pub struct Download<'a> {
    pub source: &'a str,
    pub file: &'a str,
    pub outcome: Outcome<'a>,
}

impl Event for Download<'_> {
    fn emit(self) {
        let (source, file) = (self.source, self.file);
        let label = match self.outcome {
            Outcome::Landed { bytes, etag } => {
                info!(source, file = %file, bytes, etag = ?etag, "file downloaded");
                "landed"
            }
            Outcome::NotModified => {
                debug!(source, file = %file, "not modified");
                "not_modified"
            }
            Outcome::TooFresh => {
                debug!(source, file = %file, "changed less than min_age ago on the server; next poll");
                "too_fresh"
            }
            Outcome::Retried { reason, retry_in } => {
                warn!(source, what = file, error = %reason, retry_in = ?retry_in, "transfer failed; retrying");
                "retried"
            }
            Outcome::Failed { reason } => {
                warn!(source, file = %file, error = %reason, "download failed; trying again at the next poll");
                "failed"
            }
        };
        METRICS.downloads.with_label_values(&[source, label]).inc();
    }
}

/// A poll could not read the listing; the next poll tries again.
pub struct PollFailed<'a> {
    pub source: &'a str,
    pub error: &'a dyn std::fmt::Display,
}

impl Event for PollFailed<'_> {
    fn emit(self) {
        warn!(source = %self.source, error = %self.error, "poll failed; trying again at the next poll");
        count_error(self.source, ErrorKind::Fetch);
    }
}

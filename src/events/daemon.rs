//! The daemon around the sources: config reloads, sources that cannot start.

use super::{ErrorKind, Event, count_error};
use crate::config::Config;
use crate::metrics::METRICS;
use crate::status::STATUS;
use tracing::{error, info};

/// A reload (SIGHUP) was refused; the running config stays.
pub struct ReloadRefused {
    pub reason: String,
}

impl Event for ReloadRefused {
    fn emit(self) {
        error!(error = %self.reason, "config reload refused; the running config stays");
        METRICS.reloads.with_label_values(&["refused"]).inc();
        STATUS.set_reload_error(Some(self.reason));
    }
}

/// A reload was applied: changed and removed sources stopped, new and changed ones started.
pub struct ReloadApplied<'a> {
    pub config: &'a Config,
    pub stopped: &'a [String],
    pub started: &'a [String],
}

impl Event for ReloadApplied<'_> {
    fn emit(self) {
        STATUS.set_config(self.config);
        STATUS.set_reload_error(None);
        METRICS.reloads.with_label_values(&["applied"]).inc();
        info!(stopped = ?self.stopped, started = ?self.started, "config reloaded");
    }
}

/// A source could not be started after a reload.
pub struct SourceNotStarted<'a> {
    pub source: &'a str,
    pub error: &'a dyn std::fmt::Display,
    pub kind: ErrorKind,
}

impl Event for SourceNotStarted<'_> {
    fn emit(self) {
        error!(source = %self.source, error = %self.error, "cannot start source after reload");
        count_error(self.source, self.kind);
        STATUS.source(self.source, |s| s.last_error = Some(self.error.to_string()));
    }
}

//! One source end to end. A [`Source`] owns everything one source's files meet after discovery,
//! and each stage is a file of its own, in the order a file meets them:
//!
//! 1. [`admission`]: is the file new, a duplicate, a rewrite? (the ledger, the queue)
//! 2. [`commit`]: a due batch is read ([`read`], through decode and map), written to every
//!    sink, committed, and recorded;
//! 3. [`disposition`]: a committed file is kept, archived or deleted; a bad one quarantined.
//!
//! Beside them, at start-up and after a failed batch: [`recovery`] decides what each batch the
//! ledger or the sinks remember needs, and [`replay`] commits an interrupted batch again, as it
//! was, for the sinks that lack it.
//!
//! Sinks and the ledger are handed in by the caller, so the exactly-once core can be tested with
//! sinks that fail on purpose (see `tests.rs`). No SQLite call, hash, inference or file move of
//! this module runs on an async worker: the ledger has its own thread ([`LedgerHandle`]), the
//! rest `spawn_blocking`. (The sinks' own file writes and fsyncs are theirs to place.)

mod admission;
mod commit;
mod disposition;
mod mapping;
mod read;
mod recovery;
mod replay;
#[cfg(test)]
mod tests;

pub use commit::BatchReport;
pub(crate) use mapping::{configured_mapping, legacy_path, table_mapping};

use crate::batch::Batcher;
use crate::config::{Config, SourceConfig};
use crate::discover::Candidate;
use crate::error::Error;
use crate::events::{self, SourceQueue};
use crate::ledger::{Ledger, LedgerError, LedgerHandle};
use crate::sinks::Sink;
use crate::transform::Transform;
use crate::upkeep::UpkeepTask;
use std::path::PathBuf;
use std::time::Instant;

/// Counters over the life of a source, for the `once` summary and `/v1/status`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Totals {
    pub batches: u64,
    pub files: u64,
    pub rows: u64,
    pub bytes: u64,
    pub bad_rows: u64,
    pub duplicates: u64,
    pub quarantined: u64,
    /// Values kept in the rescued column.
    pub rescued_values: u64,
    /// Values of fields no column reads, left out (`schema.evolution = "none"`).
    pub ignored_values: u64,
    /// Rows the transform left out.
    pub filtered_rows: u64,
}

impl Totals {
    /// Adds another source's counters.
    pub fn add(&mut self, other: &Totals) {
        self.batches += other.batches;
        self.files += other.files;
        self.rows += other.rows;
        self.bytes += other.bytes;
        self.bad_rows += other.bad_rows;
        self.duplicates += other.duplicates;
        self.quarantined += other.quarantined;
        self.rescued_values += other.rescued_values;
        self.ignored_values += other.ignored_values;
        self.filtered_rows += other.filtered_rows;
    }

    fn add_batch(&mut self, report: &BatchReport) {
        self.batches += 1;
        self.files += report.files as u64;
        self.rows += report.rows;
        self.bytes += report.bytes;
        self.bad_rows += report.bad_rows;
        self.rescued_values += report.rescued_values;
        self.ignored_values += report.ignored_values;
        self.filtered_rows += report.filtered_rows;
    }
}

/// One source: its config, columns, sinks, queue of admitted files, and the ledger it records in.
pub struct Source {
    pub name: String,
    pub config: SourceConfig,
    instance: String,
    decode_threads: usize,
    quarantine_dir: PathBuf,
    columns: mapping::Columns,
    /// Columns added since the last commit, for the next batch's manifest.
    columns_added: Vec<crate::sinks::AddedColumn>,
    sinks: Vec<Box<dyn Sink>>,
    /// The source's SQL over each batch, if it has one.
    transform: Option<Transform>,
    /// The sinks' upkeep tasks, started once the sinks are prepared.
    upkeep: Vec<UpkeepTask>,
    prepared: bool,
    ledger: LedgerHandle,
    batcher: Batcher,
    totals: Totals,
    /// A batch failed: run recovery before the next one.
    needs_recovery: bool,
    /// Files whose content equals a file still waiting to commit: offered again after the next
    /// commit, when it is known whether that content made it in.
    deferred: Vec<Candidate>,
    /// Files whose content equals a file of a batch left in flight by an earlier run (stuck):
    /// offered again after the next recovery, which may complete that batch.
    parked: Vec<Candidate>,
    /// Files whose admission failed for now (unreadable, ledger busy): discovery does not hand
    /// them on again while they are unchanged, so they are offered again from here.
    retry: admission::Retry,
}

impl Source {
    /// Source `name` of `config`, writing to `sinks` (built by the caller, see
    /// [`crate::sinks::build`]) and recording in `ledger`. Nothing is read yet: run
    /// [`Source::recover`] before the first batch.
    pub fn new(name: &str, config: &Config, ledger: LedgerHandle, sinks: Vec<Box<dyn Sink>>) -> Result<Source, Error> {
        let source = config.sources.get(name).ok_or_else(|| Error::Internal(format!("no source {name}")))?.clone();
        let transform = source.transform.as_deref().map(|sql| Transform::new(sql, source.on_bad_row, &config.lookups));
        Ok(Source {
            name: name.to_string(),
            columns: mapping::Columns::load(config, name, &source)?,
            columns_added: Vec::new(),
            batcher: Batcher::new(source.batch.clone()),
            config: source,
            instance: config.instance.clone(),
            decode_threads: config.decode_threads,
            quarantine_dir: config.quarantine_dir.clone(),
            sinks,
            transform,
            upkeep: Vec::new(),
            prepared: false,
            ledger,
            totals: Totals::default(),
            needs_recovery: false,
            deferred: Vec::new(),
            parked: Vec::new(),
            retry: admission::Retry::default(),
        })
    }

    pub fn totals(&self) -> &Totals {
        &self.totals
    }

    /// Files admitted and waiting for their batch.
    #[cfg(test)]
    pub(crate) fn pending(&self) -> usize {
        self.batcher.len()
    }

    /// When the next batch falls due, if any file waits.
    pub fn due_in(&self, now: Instant) -> Option<std::time::Duration> {
        self.batcher.due_in(now)
    }

    /// Whether files are queued, deferred or waiting to be admitted again.
    pub fn has_work(&self) -> bool {
        !self.batcher.is_empty() || !self.deferred.is_empty() || !self.retry.is_empty()
    }

    /// Publishes the queue and the totals to the metrics and the status board.
    pub fn publish(&self, in_flight: usize) {
        events::emit(SourceQueue {
            source: &self.name,
            pending: self.batcher.len(),
            in_flight,
            oldest_wait: self.batcher.oldest_wait(Instant::now()),
            committed_files: self.totals.files,
            committed_rows: self.totals.rows,
            duplicates: self.totals.duplicates,
            quarantined: self.totals.quarantined,
        });
    }

    /// Stops the sinks' upkeep tasks (see [`UpkeepTask::finish`]).
    pub async fn finish_upkeep(&mut self, until_idle: bool) {
        for task in std::mem::take(&mut self.upkeep) {
            task.finish(until_idle).await;
        }
    }

    /// Runs `job` on the ledger thread, with this source's name.
    async fn on_ledger<R: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Ledger, &str) -> Result<R, LedgerError> + Send + 'static,
    ) -> Result<R, LedgerError> {
        let source = self.name.clone();
        self.ledger.call(move |ledger| job(ledger, &source)).await
    }

    /// Runs blocking work (file moves, hashing, inference) off the async workers.
    async fn blocking<R: Send + 'static>(what: &str, job: impl FnOnce() -> R + Send + 'static) -> Result<R, Error> {
        tokio::task::spawn_blocking(job).await.map_err(|e| Error::task(what, e))
    }
}

//! The running state of one source: its mapping, its sinks, its queue of admitted files,
//! start-up recovery, and what happens to a file after commit.

use crate::admit::{self, Admission, AdmittedFile};
use crate::batch::Batcher;
use crate::config::{AfterCommit, Config, SourceConfig};
use crate::decode::{DecodeError, Position};
use crate::discover::Candidate;
use crate::ledger::{BatchEntry, FileEntry, FileState, Ledger, LedgerError};
use crate::map::{infer, Mapping};
use crate::metrics::METRICS;
use crate::status::STATUS;
use crate::pipeline::{BatchReport, Redo};
use crate::quarantine::{self, ErrorReport};
use crate::sinks::{self, Sink, SinkError};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;
use tracing::{error, info, warn};

pub type SharedLedger = Arc<Mutex<Ledger>>;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Admit(#[from] admit::AdmitError),
    #[error(transparent)]
    Folder(#[from] crate::discover::FolderError),
    #[error(transparent)]
    Remote(#[from] crate::discover::remote::RemoteError),
    #[error("mapping: {0}")]
    Mapping(String),
    #[error("{0}")]
    Io(String),
    #[error("internal: {0}")]
    Internal(String),
}

/// Counters over the life of the runtime, for the `once` summary and `/v1/status`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Totals {
    pub batches: u64,
    pub files: u64,
    pub rows: u64,
    pub bytes: u64,
    pub bad_rows: u64,
    pub duplicates: u64,
    pub quarantined: u64,
}

impl RuntimeError {
    /// The `kind` label of `ingestd_errors_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            RuntimeError::Ledger(_) => "ledger",
            RuntimeError::Sink(_) => "sink",
            RuntimeError::Admit(_) => "admit",
            RuntimeError::Folder(_) => "folder",
            RuntimeError::Remote(_) => "fetch",
            RuntimeError::Mapping(_) => "mapping",
            RuntimeError::Io(_) => "io",
            RuntimeError::Internal(_) => "internal",
        }
    }
}

impl Totals {
    /// Adds another runtime's counters.
    pub fn add(&mut self, other: &Totals) {
        self.batches += other.batches;
        self.files += other.files;
        self.rows += other.rows;
        self.bytes += other.bytes;
        self.bad_rows += other.bad_rows;
        self.duplicates += other.duplicates;
        self.quarantined += other.quarantined;
    }

    pub fn add_batch(&mut self, report: &BatchReport) {
        self.batches += 1;
        self.files += report.files as u64;
        self.rows += report.rows;
        self.bytes += report.bytes;
        self.bad_rows += report.bad_rows;
    }
}

pub struct SourceRuntime {
    pub name: String,
    pub config: SourceConfig,
    pub(crate) instance: String,
    pub(crate) decode_threads: usize,
    quarantine_dir: PathBuf,
    inferred_path: PathBuf,
    mapping: Option<Mapping>,
    pub(crate) sinks: Vec<Box<dyn Sink>>,
    /// The sinks' upkeep tasks, started once the sinks are prepared.
    pub(crate) upkeep: Vec<crate::pipeline::UpkeepTask>,
    prepared: bool,
    pub batcher: Batcher,
    pub totals: Totals,
    /// A batch failed: run recovery before the next one.
    pub(crate) needs_recovery: bool,
    /// Files whose content equals a file still waiting to commit: offered again after the next
    /// commit, when it is known whether that content made it in.
    deferred: Vec<Candidate>,
}

impl SourceRuntime {
    pub fn new(name: &str, config: &Config) -> Result<SourceRuntime, RuntimeError> {
        let source = config.sources.get(name).ok_or_else(|| RuntimeError::Internal(format!("no source {name}")))?.clone();
        let inferred_path = inferred_path(config, name);
        let mapping = configured_mapping(config, name, &source)?;
        let sinks = source
            .sinks
            .iter()
            .filter_map(|s| sinks::build(s, config, name))
            .collect();
        Ok(SourceRuntime {
            name: name.to_string(),
            batcher: Batcher::new(source.batch.clone()),
            config: source,
            instance: config.instance.clone(),
            decode_threads: config.decode_threads,
            quarantine_dir: config.quarantine_dir.clone(),
            inferred_path,
            mapping,
            sinks,
            upkeep: Vec::new(),
            prepared: false,
            totals: Totals::default(),
            needs_recovery: false,
            deferred: Vec::new(),
        })
    }

    pub(crate) fn lock<'l>(&self, ledger: &'l SharedLedger) -> Result<MutexGuard<'l, Ledger>, RuntimeError> {
        ledger.lock().map_err(|_| RuntimeError::Internal("ledger lock poisoned".into()))
    }

    /// Brings the ledger in line with the sinks: imports batches a lost ledger does not know,
    /// settles batches a crash left in flight. Returns batches to redo for some sinks.
    pub async fn recover(&mut self, ledger: &SharedLedger) -> Result<(), RuntimeError> {
        let mut imported_seqs = std::collections::BTreeSet::new();
        for sink in &self.sinks {
            let Some(held) = sink.recover().await? else { continue };
            let known = self.lock(ledger)?.highest_seq_in(&self.name, sink.name())?.unwrap_or(0);
            if held > known {
                let found = sink.batches_after(known).await?;
                warn!(source = %self.name, sink = sink.name(), ledger_seq = known, sink_seq = held, batches = found.len(),
                      "the ledger is behind the sink; rebuilding it from the sink's own records");
                let mut imported: Vec<(BatchEntry, String)> = found
                    .into_iter()
                    .map(|(m, reference)| {
                        let files = m
                            .files
                            .into_iter()
                            .map(|f| FileEntry { name: f.name, size: None, mtime_ns: None, hash: f.hash, rows: Some(f.rows) })
                            .collect();
                        (BatchEntry { source: self.name.clone(), seq: m.seq, files, ingested_at_us: m.ingested_at_us }, reference)
                    })
                    .collect();
                if imported.last().is_none_or(|(b, _)| b.seq < held) {
                    // The records are gone (log cleaned up); keep at least the seq so it is never reused.
                    imported.push((BatchEntry { source: self.name.clone(), seq: held, files: vec![], ingested_at_us: None }, "seq only".into()));
                }
                imported_seqs.extend(imported.iter().map(|(b, _)| b.seq));
                self.lock(ledger)?.import_committed(sink.name(), &imported)?;
            }
        }
        // Sinks stop at different batches when a crash fell between their commits; a rebuilt
        // ledger puts the batches some of them lack back in flight, to be completed below.
        for seq in imported_seqs {
            let holding = self.lock(ledger)?.sinks_holding(&self.name, seq)?;
            if self.sinks.iter().any(|s| !holding.iter().any(|h| h == s.name())) {
                warn!(source = %self.name, batch = seq, holding = ?holding, "rebuilt batch is missing from some sinks; completing it");
                self.lock(ledger)?.reopen_batch(&self.name, seq)?;
            }
        }
        let in_flight = self.lock(ledger)?.in_flight_batches(&self.name)?;
        for batch in in_flight {
            let holding = self.lock(ledger)?.sinks_holding(&self.name, batch.seq)?;
            let missing: Vec<String> =
                self.sinks.iter().map(|s| s.name().to_string()).filter(|s| !holding.contains(s)).collect();
            if missing.is_empty() {
                info!(source = %self.name, batch = batch.seq, "interrupted batch had committed; recorded");
                self.lock(ledger)?.finish_batch(&self.name, batch.seq)?;
            } else if holding.is_empty() && !self.any_sink_started(batch.seq).await? {
                info!(source = %self.name, batch = batch.seq, files = batch.files.len(), "interrupted batch never committed; its files will be read again");
                self.lock(ledger)?.abandon_batch(&self.name, batch.seq)?;
                // Discovery has handed these on already; queue them again here.
                for file in self.files_of(&batch) {
                    self.batcher.push(file);
                }
            } else {
                match self.redo(ledger, batch.clone(), missing).await {
                    Ok(()) => {}
                    // A sink that cannot take it now gets it on the next try, before any later batch.
                    Err(e @ RuntimeError::Sink(_)) => return Err(e),
                    // Left in flight: the sinks that hold it keep it; the others wait for a person.
                    Err(e) => error!(source = %self.name, batch = batch.seq, error = %e, "cannot complete an interrupted batch for every sink"),
                }
            }
        }
        self.needs_recovery = false;
        for sink in &self.sinks {
            STATUS.sink(&self.name, sink.name(), |s| s.reachable = !s.commit_failed);
        }
        Ok(())
    }

    /// Whether any sink shows part of a batch (a sink that is not atomic, e.g. Kafka in
    /// reconciling mode): such a batch must be completed with the same files, never dropped.
    async fn any_sink_started(&self, seq: i64) -> Result<bool, RuntimeError> {
        for sink in &self.sinks {
            if sink.started(seq).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// The files of a recorded batch that are still as recorded: same size and mtime in the
    /// folder, or (for batches rebuilt from a sink, which knows only names and hashes) the
    /// same content in the folder or the archive.
    fn files_of(&self, batch: &BatchEntry) -> Vec<AdmittedFile> {
        // The same absolute paths discovery hands on, so the queue knows them as the same files.
        let root = self.config.path.canonicalize().unwrap_or_else(|_| self.config.path.clone());
        batch
            .files
            .iter()
            .filter_map(|entry| {
                let (Some(size), Some(mtime_ns)) = (entry.size, entry.mtime_ns) else {
                    return self.find_by_content(&root, entry);
                };
                let path = root.join(&entry.name);
                let file = AdmittedFile { path, name: entry.name.clone(), size, mtime_ns, hash: entry.hash.clone(), ready_at: Instant::now() };
                // A file rewritten since is not the content the ledger recorded.
                file.unchanged_on_disk().then_some(file)
            })
            .collect()
    }

    fn find_by_content(&self, root: &Path, entry: &FileEntry) -> Option<AdmittedFile> {
        let folders = std::iter::once(root.to_path_buf()).chain(self.config.archive_dir.clone());
        folders.map(|dir| dir.join(&entry.name)).find_map(|path| {
            let (size, mtime_ns) = crate::discover::stat(&path)?;
            let hash = admit::hash_files(&[path.as_path()], 1).pop()?.ok()?;
            (hash == entry.hash).then(|| AdmittedFile {
                name: entry.name.clone(),
                size,
                mtime_ns,
                hash,
                path,
                ready_at: Instant::now(),
            })
        })
    }

    /// Commits an interrupted batch to the sinks that do not hold it yet, under its own seq.
    async fn redo(&mut self, ledger: &SharedLedger, batch: BatchEntry, sinks: Vec<String>) -> Result<(), RuntimeError> {
        let files = self.files_of(&batch);
        if files.len() != batch.files.len() {
            return Err(RuntimeError::Io(format!("batch {} cannot be completed: some of its files are gone or changed", batch.seq)));
        }
        info!(source = %self.name, batch = batch.seq, sinks = ?sinks, "completing an interrupted batch");
        let redo = Redo { seq: batch.seq, sinks, ingested_at_us: batch.ingested_at_us };
        self.commit_files(ledger, files, Some(redo)).await.map(drop)
    }

    /// Admits a ready file: queues it, or records it as a duplicate, or skips what is done.
    pub fn offer(&mut self, ledger: &SharedLedger, candidate: &Candidate) -> Result<(), RuntimeError> {
        self.offer_hashed(ledger, candidate, None)
    }

    /// Offers many candidates, hashing the ones the ledger does not know yet on
    /// `decode_threads` threads first. Returns those that could not be admitted, and why.
    pub fn offer_all(&mut self, ledger: &SharedLedger, candidates: Vec<Candidate>) -> Vec<(Candidate, RuntimeError)> {
        let unknown: Vec<&Candidate> = match self.lock(ledger) {
            Ok(ledger) => candidates
                .iter()
                .filter(|c| !matches!(ledger.known(&c.source, &c.name, c.size, c.mtime_ns), Ok(Some(_))))
                .collect(),
            Err(_) => Vec::new(),
        };
        let paths: Vec<&Path> = unknown.iter().map(|c| c.path.as_path()).collect();
        let started = Instant::now();
        let mut hashes: HashMap<PathBuf, String> = HashMap::new();
        for (candidate, hash) in unknown.iter().zip(admit::hash_files(&paths, self.decode_threads)) {
            // A file that cannot be hashed now is hashed (and its error reported) by `offer`.
            if let Ok(hash) = hash {
                hashes.insert(candidate.path.clone(), hash);
            }
        }
        tracing::debug!(source = %self.name, files = paths.len(), seconds = started.elapsed().as_secs_f64(), "hashed");
        let mut failed = Vec::new();
        for candidate in candidates {
            let hashed = hashes.remove(&candidate.path);
            if let Err(e) = self.offer_hashed(ledger, &candidate, hashed) {
                failed.push((candidate, e));
            }
        }
        failed
    }

    fn offer_hashed(&mut self, ledger: &SharedLedger, candidate: &Candidate, hashed: Option<String>) -> Result<(), RuntimeError> {
        let admission = {
            let ledger = self.lock(ledger)?;
            admit::admit(&ledger, candidate, hashed, &|hash| self.batcher.holder_of(hash), self.config.allow_overwrites)
        };
        let admission = match admission {
            Err(admit::AdmitError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                info!(source = %self.name, file = %candidate.name, "file vanished before it was read");
                return Ok(());
            }
            other => other?,
        };
        match admission {
            Admission::New(file) => self.batcher.push(file),
            Admission::Duplicate { file, of, committed: true } => {
                info!(source = %self.name, file = %file.name, of = %of, "same content as a file already ingested; not ingested again");
                self.lock(ledger)?.record_duplicate(&self.name, &file.entry(None), &of)?;
                self.totals.duplicates += 1;
                METRICS.files.with_label_values(&[&self.name, "duplicate"]).inc();
                self.after_commit(std::slice::from_ref(&file));
            }
            // Its twin is not committed yet: decide after it is (the twin may still vanish).
            Admission::Duplicate { committed: false, .. } => self.deferred.push(candidate.clone()),
            Admission::IgnoredOverwrite(file) => {
                warn!(source = %self.name, file = %file.name, "committed file rewritten with new content; ignored (allow_overwrites = false)");
                self.lock(ledger)?.record_ignored(&self.name, &file.entry(None))?;
                METRICS.files.with_label_values(&[&self.name, "ignored"]).inc();
                self.discard_download(candidate);
            }
            Admission::Known(FileState::Committed | FileState::Duplicate) => {
                // Done before a crash that came between the ledger and the archive/delete step.
                let file = AdmittedFile {
                    path: candidate.path.clone(),
                    name: candidate.name.clone(),
                    size: candidate.size,
                    mtime_ns: candidate.mtime_ns,
                    hash: String::new(),
                    ready_at: Instant::now(),
                };
                self.after_commit(std::slice::from_ref(&file));
            }
            Admission::Known(FileState::Ignored | FileState::Quarantined) => self.discard_download(candidate),
            Admission::Known(FileState::InFlight) => {}
        }
        Ok(())
    }

    /// Deletes a downloaded copy nothing will read (the original stays on the server).
    fn discard_download(&self, candidate: &Candidate) {
        if self.config.kind.downloads()
            && let Err(e) = std::fs::remove_file(&candidate.path)
        {
            warn!(source = %self.name, file = %candidate.name, error = %e, "cannot delete the downloaded copy");
        }
    }

    /// Offers again the files deferred behind a twin that was not committed yet.
    pub fn offer_deferred(&mut self, ledger: &SharedLedger) -> Result<(), RuntimeError> {
        for candidate in std::mem::take(&mut self.deferred) {
            self.offer(ledger, &candidate)?;
        }
        Ok(())
    }

    /// Updates the gauges of waiting files.
    /// Publishes the queue and the totals to the metrics and the status board.
    pub fn publish(&self) {
        METRICS.pending.with_label_values(&[&self.name]).set(self.batcher.len() as i64);
        let age = self.batcher.oldest_wait(Instant::now()).map_or(0.0, |d| d.as_secs_f64());
        METRICS.oldest_pending_seconds.with_label_values(&[&self.name]).set(age);
        STATUS.source(&self.name, |s| {
            s.pending = self.batcher.len();
            s.committed_files = self.totals.files;
            s.committed_rows = self.totals.rows;
            s.duplicates = self.totals.duplicates;
            s.quarantined = self.totals.quarantined;
        });
    }

    /// Whether files are queued or deferred.
    pub fn has_work(&self) -> bool {
        !self.batcher.is_empty() || !self.deferred.is_empty()
    }

    /// Commits every batch that is due (all queued files when `flush`).
    pub async fn run_due(&mut self, ledger: &SharedLedger, flush: bool) -> Result<Vec<BatchReport>, RuntimeError> {
        let mut reports = Vec::new();
        if self.needs_recovery {
            self.recover(ledger).await?;
        }
        while let Some(files) = self.batcher.next_batch(Instant::now(), flush) {
            let taken = files.clone();
            STATUS.source(&self.name, |s| {
                s.in_flight = files.len();
                s.pending = self.batcher.len();
            });
            let result = self.commit_files(ledger, files, None).await;
            STATUS.source(&self.name, |s| s.in_flight = 0);
            match result {
                Ok(outcome) => {
                    self.batcher.put_back(outcome.leftovers);
                    reports.extend(outcome.report);
                    self.offer_deferred(ledger)?;
                }
                Err(e) => {
                    // Files the ledger does not hold go back in the queue; recovery, before the
                    // next batch, settles a batch the error left in flight.
                    let still_new = self.not_in_ledger(ledger, taken)?;
                    self.batcher.put_back(still_new);
                    self.needs_recovery = true;
                    return Err(e);
                }
            }
        }
        Ok(reports)
    }

    fn not_in_ledger(&self, ledger: &SharedLedger, files: Vec<AdmittedFile>) -> Result<Vec<AdmittedFile>, RuntimeError> {
        let ledger = self.lock(ledger)?;
        let mut keep = Vec::new();
        for file in files {
            if ledger.known(&self.name, &file.name, file.size, file.mtime_ns)?.is_none() {
                keep.push(file);
            }
        }
        Ok(keep)
    }

    /// The mapping, inferring it from `file` (and saving it) when the config names no columns.
    pub(crate) fn mapping_for(&mut self, file: &AdmittedFile) -> Result<Mapping, DecodeError> {
        if let Some(mapping) = &self.mapping {
            return Ok(mapping.clone());
        }
        let columns = infer::infer_columns(&file.path, &file.name, &self.config.format)?;
        if columns.is_empty() {
            return Err(DecodeError::malformed("no fields found to infer columns from".into(), None));
        }
        let mapping = build_mapping(&self.config, &columns).map_err(|e| DecodeError::malformed(e.to_string(), None))?;
        let text = format!(
            "# Columns inferred from {:?}; copy into [sources.{}.columns] to fix them.\n{}",
            file.name,
            self.name,
            infer::columns_toml(&columns)
        );
        if let Some(dir) = self.inferred_path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Err(e) = std::fs::write(&self.inferred_path, text) {
            warn!(source = %self.name, error = %e, "cannot save inferred columns");
        }
        info!(source = %self.name, file = %file.name, columns = columns.len(), "columns inferred");
        self.mapping = Some(mapping.clone());
        Ok(mapping)
    }

    pub(crate) async fn prepare_sinks(&mut self, mapping: &Mapping) -> Result<(), RuntimeError> {
        if !self.prepared {
            for sink in &mut self.sinks {
                sink.prepare(mapping.schema()).await?;
            }
            for sink in &self.sinks {
                if let Some(upkeep) = sink.upkeep() {
                    let task = crate::pipeline::UpkeepTask::spawn(self.name.clone(), sink.name().to_string(), upkeep)
                        .map_err(|e| RuntimeError::Internal(format!("cannot start table upkeep for sink {}: {e}", sink.name())))?;
                    self.upkeep.push(task);
                }
            }
            self.prepared = true;
        }
        Ok(())
    }

    /// Moves a file that cannot be ingested to quarantine and records why.
    pub(crate) fn quarantine_file(&mut self, ledger: &SharedLedger, file: &AdmittedFile, error: &DecodeError) -> Result<(), RuntimeError> {
        let reason = error.to_string();
        error!(source = %self.name, file = %file.name, reason = %reason, "file quarantined");
        let report = ErrorReport {
            source: &self.name,
            file: &file.name,
            reason: &error.message,
            position: error.position.filter(|p| *p != Position::default()),
            hash: &file.hash,
            ingestd_version: env!("CARGO_PKG_VERSION"),
            time: chrono::Utc::now().to_rfc3339(),
        };
        // Moved first, recorded second: a crash in between leaves the file in quarantine with its
        // report (where `quarantine retry` finds it), never a verdict on a file still in the folder.
        quarantine::quarantine(&self.quarantine_dir, &file.path, &report)
            .map_err(|e| RuntimeError::Io(format!("cannot quarantine {}: {e}", file.path.display())))?;
        self.lock(ledger)?.record_quarantined(&self.name, &file.entry(None), &reason)?;
        METRICS.files.with_label_values(&[&self.name, "quarantined"]).inc();
        self.totals.quarantined += 1;
        Ok(())
    }

    /// Keeps, archives or deletes committed source files, as configured. A downloaded copy is
    /// never kept: the original stays on the server, and the ledger remembers it.
    pub(crate) fn after_commit(&self, files: &[AdmittedFile]) {
        for file in files {
            let result = match (self.config.after_commit, &self.config.archive_dir) {
                (AfterCommit::Keep, _) if self.config.kind.downloads() => std::fs::remove_file(&file.path),
                (AfterCommit::Keep, _) => Ok(()),
                (AfterCommit::Archive, Some(dir)) => quarantine::move_file(&file.path, &dir.join(&file.name)),
                (AfterCommit::Archive, None) => Ok(()),
                (AfterCommit::Delete, _) => std::fs::remove_file(&file.path),
            };
            if let Err(e) = result {
                warn!(source = %self.name, file = %file.name, error = %e, "committed, but cannot archive/delete the source file");
            }
        }
    }
}

/// The mapping of source `name`: its configured columns, or those a run inferred from its first
/// file; `None` while neither exists.
pub(crate) fn configured_mapping(config: &Config, name: &str, source: &SourceConfig) -> Result<Option<Mapping>, RuntimeError> {
    let columns = if source.columns.is_empty() { load_inferred(&inferred_path(config, name))? } else { Some(source.columns.clone()) };
    columns.map(|c| build_mapping(source, &c)).transpose()
}

/// Where the columns inferred for source `name` are saved.
pub(crate) fn inferred_path(config: &Config, name: &str) -> PathBuf {
    config.state_dir.join("inferred").join(format!("{name}.toml"))
}

fn build_mapping(source: &SourceConfig, columns: &indexmap::IndexMap<String, crate::config::ColumnConfig>) -> Result<Mapping, RuntimeError> {
    Mapping::new(columns, source.metadata_columns, source.on_bad_row, source.format.csv.null_values.clone())
        .map_err(|e| RuntimeError::Mapping(e.to_string()))
}

fn load_inferred(path: &std::path::Path) -> Result<Option<indexmap::IndexMap<String, crate::config::ColumnConfig>>, RuntimeError> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).map(Some).map_err(|e| RuntimeError::Mapping(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(RuntimeError::Io(format!("{}: {e}", path.display()))),
    }
}

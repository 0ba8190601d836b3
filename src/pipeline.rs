//! One batch through decode -> map -> commit: files are decoded and mapped on blocking
//! threads (several files at once, see [`read`]), rows stream to every sink's writer through a
//! small channel (bounded memory), and the batch is committed only if every file decoded. The
//! ledger records the batch as in flight before any sink commit and as committed after all of
//! them.

use crate::admit::AdmittedFile;
use crate::decode::{DecodeError, DecodePlan};
use crate::ledger::BatchEntry;
use crate::map::Mapping;
use crate::metrics::METRICS;
use crate::runtime::{RuntimeError, SharedLedger, SourceRuntime};
use crate::sinks::{BatchManifest, ManifestFile, SinkWriter};
use crate::status::STATUS;
use arrow::record_batch::RecordBatch;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

/// Decoded batches in flight between the decoding thread and the sink writers.
const CHANNEL_DEPTH: usize = 4;

mod read;
mod upkeep;

pub(crate) use upkeep::UpkeepTask;

/// What the decoding threads report, in file order.
enum Decoded {
    Rows(RecordBatch),
    FileDone { rows: u64, bad_rows: u64 },
    FileDropped(Dropped),
}

/// Why a file leaves a batch before it commits.
pub(crate) enum Dropped {
    /// Its content cannot be read as configured: quarantined.
    Bad(DecodeError),
    /// It changed (or vanished) after it was admitted: its hash no longer describes it. It is
    /// read again once discovery sees it settle.
    Changed,
}

/// What a committed batch held.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct BatchReport {
    pub seq: i64,
    pub files: usize,
    pub rows: u64,
    pub bytes: u64,
    pub bad_rows: u64,
    /// (sink, the sink's reference for the commit)
    pub commits: Vec<(String, String)>,
}

/// A batch to redo for the sinks that do not hold it yet (after a crash between sinks).
#[derive(Debug, Clone)]
pub struct Redo {
    pub seq: i64,
    pub sinks: Vec<String>,
    /// The rows' `_ingested_at` in the sinks that hold the batch (unknown for old batches).
    pub ingested_at_us: Option<i64>,
}

/// The result of [`SourceRuntime::commit_files`]: the report, if anything was committed, and
/// the files left for a later batch (over `max_rows`).
pub struct BatchOutcome {
    pub report: Option<BatchReport>,
    pub leftovers: Vec<AdmittedFile>,
}

impl SourceRuntime {
    /// Commits `files` as one batch (fewer if `max_rows` is reached; the rest come back as
    /// leftovers). A file that fails to decode is quarantined and the batch redone without it.
    pub async fn commit_files(
        &mut self,
        ledger: &SharedLedger,
        mut files: Vec<AdmittedFile>,
        redo: Option<Redo>,
    ) -> Result<BatchOutcome, RuntimeError> {
        let started = std::time::Instant::now();
        loop {
            if files.is_empty() {
                return Ok(BatchOutcome { report: None, leftovers: Vec::new() });
            }
            let mapping = match self.mapping_for(&files[0]) {
                Ok(mapping) => mapping,
                Err(error) => {
                    let dropped = files.remove(0);
                    self.drop_from_batch(ledger, &dropped, Dropped::Bad(error), redo.as_ref())?;
                    continue;
                }
            };
            self.prepare_sinks(&mapping).await?;
            let plan = mapping.decode_plan(&self.config.format).map_err(|e| RuntimeError::Mapping(e.to_string()))?;
            let targets: Vec<usize> = (0..self.sinks.len())
                .filter(|&i| redo.as_ref().is_none_or(|r| r.sinks.iter().any(|s| s == self.sinks[i].name())))
                .collect();
            let mut writers = Vec::with_capacity(targets.len());
            for &i in &targets {
                writers.push((i, self.sinks[i].begin().await?));
            }
            let ingested_at = redo.as_ref().and_then(|r| r.ingested_at_us).unwrap_or_else(|| chrono::Utc::now().timestamp_micros());
            match self.decode_into(&mut writers, &files, plan, mapping, ingested_at).await? {
                Err((index, problem)) => {
                    // Nothing is committed: the writers' files are orphans no reader sees.
                    drop(writers);
                    let dropped = files.remove(index);
                    self.drop_from_batch(ledger, &dropped, problem, redo.as_ref())?;
                }
                Ok(per_file) => {
                    debug!(source = %self.name, files = per_file.len(), seconds = started.elapsed().as_secs_f64(), "batch decoded");
                    crate::fault_point!("after_decode");
                    let leftovers = files.split_off(per_file.len());
                    if let Some(redo) = &redo
                        && !leftovers.is_empty()
                    {
                        return Err(RuntimeError::Io(format!("batch {} cannot be redone identically: it no longer fits max_rows", redo.seq)));
                    }
                    let report = self.commit(ledger, &files, &per_file, writers, redo, ingested_at).await?;
                    METRICS.batch_committed(&self.name, &report, started.elapsed().as_secs_f64());
                    crate::fault_point!("after_ledger");
                    self.after_commit(&files);
                    self.upkeep.iter().for_each(UpkeepTask::wake);
                    return Ok(BatchOutcome { report: Some(report), leftovers });
                }
            }
        }
    }

    /// Stops the sinks' upkeep tasks (see [`UpkeepTask::finish`]).
    pub async fn finish_upkeep(&mut self, until_idle: bool) {
        for task in std::mem::take(&mut self.upkeep) {
            task.finish(until_idle).await;
        }
    }

    /// Takes a file out of the batch being built: quarantined if its content is bad, left for
    /// discovery if it changed or vanished. A redo must commit exactly the recorded files, so
    /// there it is an error instead.
    fn drop_from_batch(&mut self, ledger: &SharedLedger, file: &AdmittedFile, why: Dropped, redo: Option<&Redo>) -> Result<(), RuntimeError> {
        if let Some(redo) = redo {
            return Err(RuntimeError::Io(format!("batch {} cannot be redone identically: {} no longer reads as it did", redo.seq, file.name)));
        }
        match why {
            Dropped::Bad(error) if file.unchanged_on_disk() => self.quarantine_file(ledger, file, &error),
            _ => {
                info!(source = %self.name, file = %file.name, "file changed or vanished after it was found; it is read again once it settles");
                Ok(())
            }
        }
    }

    /// Streams the files' rows into the writers. Returns (rows, bad rows) per file used, or the
    /// index of the first file that failed and why.
    async fn decode_into(
        &self,
        writers: &mut [(usize, Box<dyn SinkWriter>)],
        files: &[AdmittedFile],
        plan: DecodePlan,
        mapping: Mapping,
        ingested_at: i64,
    ) -> Result<Result<Vec<(u64, u64)>, (usize, Dropped)>, RuntimeError> {
        let (tx, mut rx) = mpsc::channel(CHANNEL_DEPTH);
        let inputs: Vec<AdmittedFile> = files.to_vec();
        let max_rows = self.config.batch.max_rows as u64;
        let job = read::ReadJob { plan, mapping, max_rows, ingested_at, threads: self.decode_threads };
        let decoding = tokio::task::spawn_blocking(move || job.run(inputs, &tx));
        let mut per_file = Vec::new();
        let mut outcome = Ok(());
        while let Some(message) = rx.recv().await {
            match message {
                Decoded::Rows(batch) => {
                    for (_, writer) in writers.iter_mut() {
                        writer.write(&batch).await?;
                    }
                }
                Decoded::FileDone { rows, bad_rows } => per_file.push((rows, bad_rows)),
                Decoded::FileDropped(why) => outcome = Err((per_file.len(), why)),
            }
        }
        decoding.await.map_err(|e| RuntimeError::Internal(format!("decoding thread failed: {e}")))?;
        Ok(outcome.map(|()| per_file))
    }

    /// Records the batch, commits it to every target sink, and marks it committed.
    async fn commit(
        &mut self,
        ledger: &SharedLedger,
        files: &[AdmittedFile],
        per_file: &[(u64, u64)],
        writers: Vec<(usize, Box<dyn SinkWriter>)>,
        redo: Option<Redo>,
        ingested_at: i64,
    ) -> Result<BatchReport, RuntimeError> {
        let entries: Vec<_> = files.iter().zip(per_file).map(|(f, (rows, _))| f.entry(Some(*rows))).collect();
        let seq = match &redo {
            Some(r) => r.seq,
            None => {
                let mut ledger = self.lock(ledger)?;
                let seq = ledger.next_seq(&self.name)?;
                ledger.begin_batch(&BatchEntry { source: self.name.clone(), seq, files: entries.clone(), ingested_at_us: Some(ingested_at) })?;
                seq
            }
        };
        let manifest = BatchManifest {
            instance: self.instance.clone(),
            source: self.name.clone(),
            seq,
            ingested_at_us: Some(ingested_at),
            files: entries.iter().map(|e| ManifestFile { name: e.name.clone(), hash: e.hash.clone(), rows: e.rows.unwrap_or(0) }).collect(),
        };
        let mut report = BatchReport {
            seq,
            files: files.len(),
            rows: per_file.iter().map(|(r, _)| r).sum(),
            bytes: files.iter().map(|f| f.size).sum(),
            bad_rows: per_file.iter().map(|(_, b)| b).sum(),
            commits: Vec::new(),
        };
        for (i, writer) in writers {
            let sink_name = self.sinks[i].name().to_string();
            let started = std::time::Instant::now();
            let committed = writer.commit(&manifest).await;
            METRICS.commit_seconds.with_label_values(&[&self.name, &sink_name]).observe(started.elapsed().as_secs_f64());
            if let Err(error) = &committed {
                STATUS.sink(&self.name, &sink_name, |s| {
                    s.reachable = false;
                    s.commit_failed = true;
                    s.last_error = Some(error.to_string());
                });
            }
            let reference = match committed {
                Ok(reference) => reference,
                Err(error) => {
                    // The commit may or may not have landed: ask the sink, never guess.
                    warn!(source = %self.name, sink = %sink_name, batch = seq, %error, "commit failed; checking whether it landed");
                    match self.sinks[i].recover().await {
                        Ok(Some(held)) if held >= seq => "committed (confirmed after an error)".to_string(),
                        Ok(_) if report.commits.is_empty() && redo.is_none() && !self.sinks[i].started(seq).await.unwrap_or(true) => {
                            // No sink holds it: forget it; its files go back in the queue.
                            self.lock(ledger)?.abandon_batch(&self.name, seq)?;
                            return Err(error.into());
                        }
                        // Partly committed, or the sink cannot say: recovery settles it.
                        _ => return Err(error.into()),
                    }
                }
            };
            crate::fault_point!("after_sink_commit");
            self.lock(ledger)?.record_sink_commit(&self.name, seq, &sink_name, &reference)?;
            STATUS.sink(&self.name, &sink_name, |s| {
                s.reachable = true;
                s.commit_failed = false;
                s.last_error = None;
                s.last_commit_at = Some(chrono::Utc::now().to_rfc3339());
                s.last_commit = Some(reference.clone());
            });
            report.commits.push((sink_name, reference));
        }
        crate::fault_point!("inside_ledger_update");
        self.lock(ledger)?.finish_batch(&self.name, seq)?;
        info!(source = %self.name, batch = seq, files = report.files, rows = report.rows, commits = ?report.commits, "batch committed");
        self.totals.add_batch(&report);
        Ok(report)
    }

}

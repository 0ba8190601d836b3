//! Stages 3 to 6 for one batch: its files are decoded and mapped on blocking threads (several
//! files at once, see [`super::read`]), rows stream to every sink's writer through a small
//! channel (bounded memory), and the batch is committed only if every file decoded. The ledger
//! records the batch as in flight before any sink commit and as committed after all of them.

use super::Source;
use super::disposition::Dropped;
use super::read::{Decoded, FileRows, ReadJob};
use crate::admit::AdmittedFile;
use crate::error::Error;
use crate::events::{self, BatchCommitted, LookupsRead, SinkCommitFailed, SinkCommitted};
use crate::ledger::BatchEntry;
use crate::map::Mapping;
use crate::sinks::{BatchManifest, ManifestFile, SinkWriter};
use crate::transform::Planned;
use crate::upkeep::UpkeepTask;
use std::time::Instant;
use tokio::sync::mpsc;

/// Decoded batches in flight between the decoding thread and the sink writers.
const CHANNEL_DEPTH: usize = 4;
/// Times one batch may add columns and be read again.
const MAX_EVOLUTIONS_PER_BATCH: usize = 16;

/// What a committed batch held.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct BatchReport {
    pub seq: i64,
    pub files: usize,
    pub rows: u64,
    pub bytes: u64,
    pub bad_rows: u64,
    /// Values kept in the rescued column.
    pub rescued_values: u64,
    /// Values of fields no column reads, left out.
    pub ignored_values: u64,
    /// Rows the transform left out.
    pub filtered_rows: u64,
    /// (sink, the sink's reference for the commit)
    pub commits: Vec<(String, String)>,
}

/// A batch's rows, written to the target sinks' writers but not committed.
pub(super) struct Written {
    pub writers: Vec<(usize, Box<dyn SinkWriter>)>,
    /// What each file gave, in order; fewer than the files when `max_rows` was reached.
    pub per_file: Vec<FileRows>,
    /// The lookups the transform joined, at the versions it used.
    pub lookups: Vec<crate::transform::LookupUse>,
}

impl Source {
    /// Commits every batch that is due (all queued files when `flush`). Files of a failed batch
    /// that the ledger does not hold go back in the queue, and recovery runs before the next.
    pub async fn run_due(&mut self, flush: bool) -> Result<Vec<BatchReport>, Error> {
        let mut reports = Vec::new();
        if self.needs_recovery {
            self.recover().await?;
        }
        while let Some(files) = self.batcher.next_batch(Instant::now(), flush) {
            let taken = files.clone();
            self.publish(files.len());
            match self.commit_batch(files).await {
                Ok((report, leftovers)) => {
                    self.batcher.put_back(leftovers);
                    reports.extend(report);
                    self.offer_deferred().await?;
                }
                Err(e) => {
                    // Recovery, before the next batch, settles what the error left in flight.
                    self.needs_recovery = true;
                    self.forget_table_mapping();
                    match self.not_in_ledger(&taken).await {
                        Ok(still_new) => self.batcher.put_back(still_new),
                        // Unknown whether the ledger took them: admission asks again later.
                        Err(_) => self.retry_later(taken.iter().map(|f| f.candidate(&self.name)).collect()),
                    }
                    return Err(e);
                }
            }
        }
        Ok(reports)
    }

    async fn not_in_ledger(&self, files: &[AdmittedFile]) -> Result<Vec<AdmittedFile>, Error> {
        let files = files.to_vec();
        Ok(self
            .on_ledger(move |ledger, source| {
                let mut keep = Vec::new();
                for file in files {
                    if ledger.known(source, &file.name, file.size, file.mtime_ns)?.is_none() {
                        keep.push(file);
                    }
                }
                Ok(keep)
            })
            .await?)
    }

    /// Commits `files` as one new batch (fewer if `max_rows` is reached; the rest come back as
    /// leftovers). A file that fails to decode is quarantined and the batch redone without it.
    async fn commit_batch(&mut self, mut files: Vec<AdmittedFile>) -> Result<(Option<BatchReport>, Vec<AdmittedFile>), Error> {
        let started = Instant::now();
        loop {
            if files.is_empty() {
                return Ok((None, Vec::new()));
            }
            let mapping = match self.mapping_for(&files).await? {
                Ok(mapping) => mapping,
                Err(error) => {
                    let dropped = files.remove(0);
                    self.drop_from_batch(&dropped, Dropped::Bad(error)).await?;
                    continue;
                }
            };
            let every_sink: Vec<usize> = (0..self.sinks.len()).collect();
            let ingested_at = chrono::Utc::now().timestamp_micros();
            let written = match self.write(&files, mapping, &every_sink, ingested_at).await? {
                Ok(written) => written,
                Err((index, why)) => {
                    // Nothing is committed: the writers' files are orphans no reader sees.
                    let dropped = files.remove(index);
                    self.drop_from_batch(&dropped, why).await?;
                    continue;
                }
            };
            tracing::debug!(source = %self.name, files = written.per_file.len(), seconds = started.elapsed().as_secs_f64(), "batch decoded");
            crate::fault_point!("after_decode");
            let leftovers = files.split_off(written.per_file.len());
            let entries: Vec<_> = files.iter().zip(&written.per_file).map(|(f, done)| f.entry(Some(done.rows))).collect();
            let seq = self
                .on_ledger(move |ledger, source| {
                    let seq = ledger.next_seq(source)?;
                    ledger.begin_batch(&BatchEntry {
                        source: source.to_string(),
                        seq,
                        files: entries,
                        ingested_at_us: Some(ingested_at),
                    })?;
                    Ok(seq)
                })
                .await?;
            let report = self.commit_written(seq, &files, written, ingested_at, false, started).await?;
            return Ok((Some(report), leftovers));
        }
    }

    /// Decodes and maps `files` into new writers of the sinks at `targets`. Returns the writers
    /// and each file's rows, or the index of the first file that failed and why. Fields the
    /// table lacks (`evolution = "add_columns"`), found in any of the files, extend the mapping
    /// and the batch is read again once, with all the new columns.
    pub(super) async fn write(
        &mut self,
        files: &[AdmittedFile],
        mut mapping: Mapping,
        targets: &[usize],
        ingested_at: i64,
    ) -> Result<Result<Written, (usize, Dropped)>, Error> {
        // Each reading again adds columns, so this ends; the bound guards against a field that
        // would be found again and again.
        for _ in 0..MAX_EVOLUTIONS_PER_BATCH {
            let plan =
                mapping.decode_plan(&self.config.format).map_err(|e| Error::Mapping { name: self.name.clone(), detail: e.to_string() })?;
            let transform = self.planned_transform(&mapping).await?;
            let output = transform.as_ref().map_or_else(|| mapping.schema(), |t| t.output());
            self.prepare_sinks(&output).await?;
            let mut writers = Vec::with_capacity(targets.len());
            for &i in targets {
                writers.push((i, self.sinks[i].begin(output.clone()).await?));
            }
            let (tx, mut rx) = mpsc::channel(CHANNEL_DEPTH);
            let job = ReadJob {
                plan,
                mapping: mapping.clone(),
                transform: transform.clone(),
                max_rows: self.config.batch.max_rows as u64,
                ingested_at,
                threads: self.decode_threads,
            };
            let inputs = files.to_vec();
            let decoding = tokio::task::spawn_blocking(move || job.run(inputs, &tx));
            let mut per_file = Vec::new();
            let mut stopped = None;
            while let Some(message) = rx.recv().await {
                match message {
                    Decoded::Rows(batch) => {
                        for (_, writer) in writers.iter_mut() {
                            writer.write(&batch).await?;
                        }
                    }
                    Decoded::FileDone(done) => per_file.push(done),
                    Decoded::FileDropped(why) => stopped = Some(Err((per_file.len(), why))),
                    Decoded::FileHasNewFields(discovered) => stopped = Some(Ok(discovered)),
                }
            }
            decoding
                .await
                .map_err(|e| Error::task("decoding thread", e))?
                .map_err(|e| Error::Transform { name: self.name.clone(), detail: e.to_string() })?;
            // Nothing is committed on the way out: the writers' files are orphans no reader sees.
            match stopped {
                None => {
                    let lookups = transform.map(|t| t.lookups_used()).unwrap_or_default();
                    return Ok(Ok(Written { writers, per_file, lookups }));
                }
                Some(Err(dropped)) => return Ok(Err(dropped)),
                Some(Ok(discovered)) => mapping = self.add_columns(&mapping, &discovered).await?,
            }
        }
        Err(Error::Mapping {
            name: self.name.clone(),
            detail: format!("a batch still brought new fields after {MAX_EVOLUTIONS_PER_BATCH} schema changes"),
        })
    }

    /// Commits written rows as batch `seq` (already recorded in flight), records it committed,
    /// and settles its files.
    pub(super) async fn commit_written(
        &mut self,
        seq: i64,
        files: &[AdmittedFile],
        written: Written,
        ingested_at: i64,
        replayed: bool,
        started: Instant,
    ) -> Result<BatchReport, Error> {
        let manifest = BatchManifest {
            instance: self.instance.clone(),
            source: self.name.clone(),
            seq,
            ingested_at_us: Some(ingested_at),
            files: files
                .iter()
                .zip(&written.per_file)
                .map(|(f, done)| ManifestFile { name: f.name.clone(), hash: f.hash.clone(), rows: done.rows })
                .collect(),
            columns_added: self.columns_added.clone(),
            lookups: written.lookups.clone(),
        };
        let mut report = BatchReport {
            seq,
            files: files.len(),
            rows: written.per_file.iter().map(|d| d.rows).sum(),
            bytes: files.iter().map(|f| f.size).sum(),
            bad_rows: written.per_file.iter().map(|d| d.bad_rows).sum(),
            rescued_values: written.per_file.iter().map(|d| d.rescued).sum(),
            ignored_values: written.per_file.iter().map(|d| d.ignored).sum(),
            filtered_rows: written.per_file.iter().map(|d| d.filtered).sum(),
            commits: Vec::new(),
        };
        for (i, writer) in written.writers {
            // A replayed batch is never forgotten: some sink already holds it.
            let reference = self.commit_to(i, writer, &manifest, !replayed && report.commits.is_empty()).await?;
            report.commits.push((self.sinks[i].name().to_string(), reference));
        }
        self.columns_added.clear();
        crate::fault_point!("inside_ledger_update");
        self.on_ledger(move |ledger, source| ledger.finish_batch(source, seq)).await?;
        events::emit(BatchCommitted {
            source: &self.name,
            batch: seq,
            files: report.files,
            rows: report.rows,
            bytes: report.bytes,
            bad_rows: report.bad_rows,
            rescued: report.rescued_values,
            ignored: report.ignored_values,
            filtered: report.filtered_rows,
            commits: &report.commits,
            seconds: started.elapsed().as_secs_f64(),
        });
        self.totals.add_batch(&report);
        crate::fault_point!("after_ledger");
        self.after_commit(files.to_vec()).await?;
        self.upkeep.iter().for_each(UpkeepTask::wake);
        Ok(report)
    }

    /// Commits to sink `i` and records it. A failed commit may or may not have landed: the
    /// sink is asked, never guessed. `may_abandon`: no other sink holds the batch, so if this one
    /// does not either, the batch is forgotten and its files read again.
    async fn commit_to(
        &mut self,
        i: usize,
        writer: Box<dyn SinkWriter>,
        manifest: &BatchManifest,
        may_abandon: bool,
    ) -> Result<String, Error> {
        let seq = manifest.seq;
        let started = Instant::now();
        let sink_name = self.sinks[i].name().to_string();
        let reference = match writer.commit(manifest).await {
            Ok(reference) => reference,
            Err(error) => {
                events::emit(SinkCommitFailed {
                    source: &self.name,
                    sink: &sink_name,
                    batch: seq,
                    kind: error.kind.as_str(),
                    error: &error,
                    seconds: started.elapsed().as_secs_f64(),
                });
                let sink = &self.sinks[i];
                match sink.recover().await {
                    Ok(Some(held)) if held >= seq => "committed (confirmed after an error)".to_string(),
                    Ok(_) if may_abandon && !sink.started(seq).await.unwrap_or(true) => {
                        // No sink holds it: forget it; its files go back in the queue.
                        self.on_ledger(move |ledger, source| ledger.abandon_batch(source, seq)).await?;
                        return Err(error.into());
                    }
                    // Partly committed, or the sink cannot say: recovery settles it.
                    _ => return Err(error.into()),
                }
            }
        };
        let seconds = started.elapsed().as_secs_f64();
        crate::fault_point!("after_sink_commit");
        let (sink, held_as) = (sink_name.clone(), reference.clone());
        self.on_ledger(move |ledger, source| ledger.record_sink_commit(source, seq, &sink, &held_as)).await?;
        events::emit(SinkCommitted { source: &self.name, sink: &sink_name, reference: &reference, seconds });
        Ok(reference)
    }

    /// The source's transform planned for a batch of `mapping`, with every lookup at its
    /// current version; `None` without a transform. A lookup that cannot be read fails the batch
    /// (and keeps the daemon not ready) rather than commit rows joined to nothing.
    async fn planned_transform(&mut self, mapping: &Mapping) -> Result<Option<std::sync::Arc<Planned>>, Error> {
        let Some(transform) = &mut self.transform else { return Ok(None) };
        let lookups = match transform.lookups().await {
            Ok(lookups) => {
                events::emit(LookupsRead { source: &self.name, error: None });
                lookups
            }
            Err(error) => {
                events::emit(LookupsRead { source: &self.name, error: Some(&error) });
                return Err(Error::Lookup { name: self.name.clone(), error });
            }
        };
        let planned = transform
            .plan_for(mapping.schema(), &lookups)
            .await
            .map_err(|e| Error::Transform { name: self.name.clone(), detail: e.to_string() })?;
        Ok(Some(planned))
    }

    /// Creates or checks every sink's table once (with the columns the sinks receive), and
    /// starts their upkeep.
    async fn prepare_sinks(&mut self, schema: &arrow::datatypes::SchemaRef) -> Result<(), Error> {
        if self.prepared {
            return Ok(());
        }
        for sink in &mut self.sinks {
            sink.prepare(schema.clone()).await?;
        }
        for sink in &self.sinks {
            if let Some(upkeep) = sink.upkeep() {
                let task = UpkeepTask::spawn(self.name.clone(), sink.name().to_string(), upkeep)
                    .map_err(|e| Error::Internal(format!("cannot start table upkeep for sink {}: {e}", sink.name())))?;
                self.upkeep.push(task);
            }
        }
        self.prepared = true;
        Ok(())
    }
}

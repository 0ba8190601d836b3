//! Start-up (and after a failed batch): bring the ledger in line with the sinks, the truth.
//! A lost ledger is rebuilt from the sinks' own records; each batch a crash left in flight is
//! recorded (every sink holds it), forgotten (none does: its files are read again), replayed
//! (some do), or reported stuck (some do and the others cannot be given it).

use super::Source;
use crate::error::Error;
use crate::events::{self, BatchAbandoned, BatchRecorded, BatchReopened, LedgerRebuilt, SinkRead, StuckBatch, StuckBatches};
use crate::ledger::{BatchEntry, FileEntry};
use std::collections::BTreeSet;

impl Source {
    /// Brings the ledger in line with the sinks, then settles every batch in flight.
    pub async fn recover(&mut self) -> Result<(), Error> {
        let imported = self.import_from_sinks().await?;
        self.reopen_incomplete(imported).await?;
        let mut stuck = Vec::new();
        let settled = self.settle_in_flight(&mut stuck).await;
        // Reported even when a later batch failed: what is known stuck must show.
        events::emit(StuckBatches { source: &self.name, batches: &stuck });
        settled?;
        self.needs_recovery = false;
        for sink in &self.sinks {
            events::emit(SinkRead { source: &self.name, sink: sink.name(), error: None });
        }
        // Files waiting for a stuck twin get another look now that recovery has run.
        self.deferred.append(&mut self.parked);
        Ok(())
    }

    /// Records, forgets or replays each batch in flight; those that cannot be completed go to
    /// `stuck`.
    async fn settle_in_flight(&mut self, stuck: &mut Vec<StuckBatch>) -> Result<(), Error> {
        let in_flight = self.on_ledger(|ledger, source| ledger.in_flight_batches(source)).await?;
        for batch in in_flight {
            let seq = batch.seq;
            let holding = self.on_ledger(move |ledger, source| ledger.sinks_holding(source, seq)).await?;
            let missing: Vec<String> = self.sinks.iter().map(|s| s.name().to_string()).filter(|s| !holding.contains(s)).collect();
            if missing.is_empty() {
                self.on_ledger(move |ledger, source| ledger.finish_batch(source, seq)).await?;
                events::emit(BatchRecorded { source: &self.name, batch: seq });
            } else if holding.is_empty() && !self.any_sink_started(seq).await? {
                // Found before the batch is forgotten, so no failure in between loses them.
                let files = self.files_of(&batch).await?;
                self.on_ledger(move |ledger, source| ledger.abandon_batch(source, seq)).await?;
                events::emit(BatchAbandoned { source: &self.name, batch: seq, files: batch.files.len() });
                // Discovery has handed these on already; queue them again here.
                for file in files {
                    self.batcher.push(file);
                }
            } else {
                match self.replay(&batch, &missing).await {
                    Ok(()) => {}
                    // A sink or the ledger that cannot take it now gets it on the next try,
                    // before any later batch.
                    Err(e @ (Error::Sink(_) | Error::Ledger(_))) => return Err(e),
                    // Left in flight: the sinks that hold it keep it; the others wait for a person.
                    Err(Error::Stuck { batch, missing_sinks, reason }) => stuck.push(StuckBatch { batch, missing_sinks, reason }),
                    Err(other) => stuck.push(StuckBatch { batch: seq, missing_sinks: missing, reason: other.to_string() }),
                }
            }
        }
        Ok(())
    }

    /// Imports the batches each sink holds that the ledger does not know (a lost or older state
    /// folder). Returns their seqs.
    async fn import_from_sinks(&self) -> Result<BTreeSet<i64>, Error> {
        let mut imported_seqs = BTreeSet::new();
        for sink in &self.sinks {
            let held = match sink.recover().await {
                Ok(Some(held)) => held,
                Ok(None) => continue,
                Err(error) => {
                    events::emit(SinkRead { source: &self.name, sink: sink.name(), error: Some(&error) });
                    return Err(error.into());
                }
            };
            let sink_name = sink.name().to_string();
            let known = self.on_ledger(move |ledger, source| ledger.highest_seq_in(source, &sink_name)).await?.unwrap_or(0);
            if held <= known {
                continue;
            }
            let found = sink.batches_after(known).await?;
            events::emit(LedgerRebuilt {
                source: &self.name,
                sink: sink.name(),
                ledger_batch: known,
                sink_batch: held,
                batches: found.len(),
            });
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
                imported
                    .push((BatchEntry { source: self.name.clone(), seq: held, files: vec![], ingested_at_us: None }, "seq only".into()));
            }
            imported_seqs.extend(imported.iter().map(|(b, _)| b.seq));
            let sink_name = sink.name().to_string();
            self.ledger.call(move |ledger| ledger.import_committed(&sink_name, &imported)).await?;
        }
        Ok(imported_seqs)
    }

    /// Sinks stop at different batches when a crash fell between their commits; a rebuilt
    /// ledger puts the batches some of them lack back in flight, to be completed.
    async fn reopen_incomplete(&self, imported: BTreeSet<i64>) -> Result<(), Error> {
        for seq in imported {
            let holding = self.on_ledger(move |ledger, source| ledger.sinks_holding(source, seq)).await?;
            if self.sinks.iter().any(|s| !holding.iter().any(|h| h == s.name())) {
                events::emit(BatchReopened { source: &self.name, batch: seq, holding: &holding });
                self.on_ledger(move |ledger, source| ledger.reopen_batch(source, seq)).await?;
            }
        }
        Ok(())
    }

    /// Whether any sink shows part of a batch (a sink that is not atomic, e.g. Kafka in
    /// reconciling mode): such a batch must be completed with the same files, never dropped.
    async fn any_sink_started(&self, seq: i64) -> Result<bool, Error> {
        for sink in &self.sinks {
            if sink.started(seq).await? {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

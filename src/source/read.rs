//! Reads the files of a batch on several threads and hands their rows on in file order.
//!
//! Each file gets a small channel of its own. Workers take the next file, decode and map it
//! into that channel; the forwarding thread drains the channels in file order. Workers stay at
//! most a window of files ahead of the forwarder, so memory is bounded by the window, not by
//! the batch.

use super::disposition::Dropped;
use crate::admit::AdmittedFile;
use crate::decode::{self, DecodeError, DecodePlan, Limit, Position};
use crate::map::{Discovered, Mapping};
use crate::transform::{Planned, Runner, TransformError};
use arrow::record_batch::RecordBatch;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex};
use tokio::sync::mpsc;

/// What the decoding threads report, in file order.
pub(super) enum Decoded {
    Rows(RecordBatch),
    FileDone(FileRows),
    FileDropped(Dropped),
    /// Files have fields the table lacks (`evolution = "add_columns"`): the batch must be read
    /// again with them as columns. Sent last, with what every file of the batch brought; the
    /// rows before it are incomplete.
    FileHasNewFields(Discovered),
}

/// What one file gave.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct FileRows {
    pub rows: u64,
    /// Rows with a value that did not convert (nulled or skipped by policy).
    pub bad_rows: u64,
    /// Values kept in the rescued column.
    pub rescued: u64,
    /// Values of fields no column reads, left out.
    pub ignored: u64,
    /// Rows the transform left out.
    pub filtered: u64,
}

/// Mapped record batches a file may hold ready before the forwarder takes them.
const FILE_CHANNEL_DEPTH: usize = 4;

/// A file's channel, taken by the worker that reads the file.
type FileSender = Mutex<Option<SyncSender<Decoded>>>;

/// One batch's files to read.
pub(super) struct ReadJob {
    pub plan: DecodePlan,
    pub mapping: Mapping,
    /// The source's SQL over the mapped rows, if it has one.
    pub transform: Option<Arc<Planned>>,
    /// Stop starting files once this many rows have been forwarded.
    pub max_rows: u64,
    pub ingested_at: i64,
    pub threads: usize,
}

/// Where the forwarder is, shared with the workers.
struct Progress {
    /// Files forwarded completely.
    forwarded: Mutex<usize>,
    moved: Condvar,
    /// The forwarder is done: workers stop.
    stopped: AtomicBool,
    next: AtomicUsize,
}

impl ReadJob {
    /// Decodes `inputs` and sends their rows to `tx` in order; stops at `max_rows`, at the
    /// first file that cannot be read, or when `tx` is closed. Fails only when the transform
    /// cannot be set up on a thread (it was planned already, so that is the engine failing).
    pub(super) fn run(self, inputs: Vec<AdmittedFile>, tx: &mpsc::Sender<Decoded>) -> Result<(), TransformError> {
        // Each worker takes its file's sender, so a worker that dies closes the channel and the
        // forwarder stops there instead of waiting forever.
        let (senders, receivers): (Vec<FileSender>, Vec<Receiver<Decoded>>) = inputs
            .iter()
            .map(|_| {
                let (tx, rx) = sync_channel(FILE_CHANNEL_DEPTH);
                (Mutex::new(Some(tx)), rx)
            })
            .unzip();
        let progress =
            Progress { forwarded: Mutex::new(0), moved: Condvar::new(), stopped: AtomicBool::new(false), next: AtomicUsize::new(0) };
        let threads = self.threads.clamp(1, inputs.len().max(1));
        let window = 2 * threads;
        let runners = (0..threads).map(|_| self.transform.as_ref().map(|t| t.runner()).transpose()).collect::<Result<Vec<_>, _>>()?;
        let job = &self;
        std::thread::scope(|scope| {
            for runner in runners {
                let (inputs, senders, progress) = (&inputs, &senders, &progress);
                scope.spawn(move || job.work(inputs, senders, progress, window, runner.as_ref()));
            }
            self.forward(receivers, &progress, tx);
            progress.stopped.store(true, Ordering::SeqCst);
            progress.moved.notify_all();
        });
        Ok(())
    }

    fn work(&self, inputs: &[AdmittedFile], senders: &[FileSender], progress: &Progress, window: usize, runner: Option<&Runner>) {
        loop {
            let index = progress.next.fetch_add(1, Ordering::SeqCst);
            if index >= inputs.len() || !self.wait_for_window(progress, index, window) {
                return;
            }
            let Some(out) = senders[index].lock().ok().and_then(|mut s| s.take()) else { return };
            self.read_file(&inputs[index], &out, runner);
        }
    }

    /// Blocks until `index` is within the window; false if the forwarder stopped.
    fn wait_for_window(&self, progress: &Progress, index: usize, window: usize) -> bool {
        let Ok(mut forwarded) = progress.forwarded.lock() else { return false };
        while index >= *forwarded + window && !progress.stopped.load(Ordering::SeqCst) {
            forwarded = match progress.moved.wait(forwarded) {
                Ok(guard) => guard,
                Err(_) => return false,
            };
        }
        !progress.stopped.load(Ordering::SeqCst)
    }

    /// Drains the files' channels in order into `tx`. Once a file has new fields, the rest of
    /// the batch is read only for its fields (its rows are dropped), so that one reading again
    /// adds them all.
    fn forward(&self, receivers: Vec<Receiver<Decoded>>, progress: &Progress, tx: &mpsc::Sender<Decoded>) {
        let mut total = 0u64;
        let mut discovered: Option<Discovered> = None;
        'files: for receiver in receivers {
            if total >= self.max_rows && discovered.is_none() {
                return;
            }
            loop {
                // A closed channel without an end message means the worker is gone: the file
                // did not finish, so nothing after it may be committed.
                let Ok(message) = receiver.recv() else { break 'files };
                match (message, &mut discovered) {
                    (Decoded::FileHasNewFields(found), Some(all)) => {
                        all.merge(found);
                        break;
                    }
                    (Decoded::FileHasNewFields(found), None) => {
                        discovered = Some(found);
                        break;
                    }
                    (Decoded::FileDone(_) | Decoded::FileDropped(_), Some(_)) => break,
                    (Decoded::Rows(_), Some(_)) => continue,
                    (message, None) => {
                        let end = match &message {
                            Decoded::Rows(_) => None,
                            Decoded::FileDone(done) => Some(Some(done.rows)),
                            _ => Some(None),
                        };
                        if tx.blocking_send(message).is_err() {
                            return;
                        }
                        match end {
                            None => continue,
                            Some(Some(rows)) => {
                                total += rows;
                                break;
                            }
                            Some(None) => return,
                        }
                    }
                }
            }
            if let Ok(mut forwarded) = progress.forwarded.lock() {
                *forwarded += 1;
            }
            progress.moved.notify_all();
        }
        if let Some(found) = discovered {
            let _ = tx.blocking_send(Decoded::FileHasNewFields(found));
        }
    }

    /// Decodes and maps one file into its channel, ending with its outcome. A file whose size
    /// or mtime differs after reading from when it was admitted changed under us. A file with
    /// new fields is read to its end (to find them all) but its rows stop being sent.
    fn read_file(&self, file: &AdmittedFile, out: &SyncSender<Decoded>, runner: Option<&Runner>) {
        let mut done = FileRows::default();
        let mut discovered = Discovered::default();
        let mut next_record = 1u64;
        let result = decode::open(&file.path, &file.name, &self.plan.format).and_then(|opened| {
            opened.decode(&self.plan, &mut |raw| {
                let mapped = self
                    .mapping
                    .apply(&raw, &file.name, self.ingested_at, next_record)
                    .map_err(|e| DecodeError::malformed(e.to_string(), Some(Position { record: e.record(), ..Default::default() })))?;
                let first_record = next_record;
                next_record += raw.text.num_rows() as u64;
                discovered.merge(mapped.discovered);
                // Each new field would be a column: a file of ever new keys is refused, as a
                // CSV header too wide is.
                if discovered.field_count() > self.plan.format.limits.max_columns {
                    let at = Position { record: Some(first_record), ..Default::default() };
                    return Err(DecodeError::limit(Limit::MaxColumns, Limit::MaxColumns.configured(&self.plan.format.limits), at));
                }
                if !discovered.is_empty() {
                    return Ok(());
                }
                done.bad_rows += mapped.bad_rows;
                done.rescued += mapped.rescued;
                done.ignored += mapped.ignored;
                let batches = match runner {
                    None => vec![mapped.batch],
                    Some(runner) => {
                        let transformed = runner.apply(&mapped.batch, first_record).map_err(|e| {
                            DecodeError::malformed(e.to_string(), Some(Position { record: e.record(), ..Default::default() }))
                        })?;
                        done.filtered += transformed.filtered;
                        done.bad_rows += transformed.bad_rows;
                        transformed.batches
                    }
                };
                for batch in batches {
                    done.rows += batch.num_rows() as u64;
                    out.send(Decoded::Rows(batch)).map_err(|_| DecodeError::malformed("the batch was abandoned".into(), None))?;
                }
                Ok(())
            })
        });
        let outcome = match result {
            _ if !file.unchanged_on_disk() => Decoded::FileDropped(Dropped::Changed),
            Ok(_) if !discovered.is_empty() => {
                discovered.found_in(&file.name);
                Decoded::FileHasNewFields(discovered)
            }
            Ok(_) => Decoded::FileDone(done),
            Err(error) => Decoded::FileDropped(Dropped::Bad(error)),
        };
        // The forwarder may have stopped already; then nobody needs the outcome.
        let _ = out.send(outcome);
    }
}

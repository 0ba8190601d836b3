//! The one loop behind both `ingestd once` and `ingestd run`, for one source: discovery's
//! thread hands ready files on; the loop admits them, commits batches as they fall due, and
//! (when watching) retries what failed with a backoff chosen by the kind of failure. `once`
//! ends when discovery has found everything and the queue is empty; `run` when told to stop.

use crate::discover::{Candidate, FolderSource};
use crate::error::Error;
use crate::events::{self, BatchFailed, LedgerClosed, SinkRead, SourceHealthy, SourceWatched};
use crate::ledger::LedgerError;
use crate::sinks::SinkErrorKind;
use crate::source::{Source, Totals};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// How a source is driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Ingest what is there (waiting for files still being written), then return; the first
    /// error ends the run.
    Once,
    /// Watch until stopped; failures are retried.
    Watch,
}

/// Longest wait between two tries of a failing batch.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// Discovery's thread: lists and watches the folder and hands ready files on. In `Once` mode it
/// ends, closing the channel, as soon as no file is left waiting to settle.
pub fn discover(mut folder: FolderSource, tx: mpsc::Sender<Candidate>, halt: &AtomicBool, mode: Mode) {
    let mut scanned = false;
    while !halt.load(Ordering::Relaxed) {
        let wait = if mode == Mode::Once { Duration::ZERO } else { Duration::from_millis(100) };
        for candidate in folder.poll(wait) {
            if tx.blocking_send(candidate).is_err() {
                return;
            }
        }
        if !scanned {
            // The first poll lists the whole folder: the start-up scan is done.
            events::emit(SourceWatched { source: folder.name() });
            scanned = true;
        }
        if mode == Mode::Once {
            if folder.waiting() == 0 {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Admits what discovery finds and commits batches as they fall due; `progress` sees the
/// source's totals after each round that committed something.
pub async fn drive(
    source: &mut Source,
    mut found: mpsc::Receiver<Candidate>,
    mut stop: watch::Receiver<bool>,
    mode: Mode,
    progress: &mut (dyn FnMut(&Totals) + Send),
) -> Result<(), Error> {
    let mut backoff = FIRST_BACKOFF;
    let mut conflicts = 0;
    let mut discovering = true;
    let mut stop_open = true;
    loop {
        let wait = if discovering { source.due_in(Instant::now()).unwrap_or(Duration::from_secs(1)) } else { Duration::ZERO };
        tokio::select! {
            candidate = found.recv(), if discovering => match candidate {
                // Admit at most a batch's worth before committing, so a storm of files becomes a
                // steady stream of batches rather than one ever-growing queue.
                Some(candidate) => {
                    let mut ready = vec![candidate];
                    while ready.len() < source.config.batch.max_files {
                        let Ok(candidate) = found.try_recv() else { break };
                        ready.push(candidate);
                    }
                    match mode {
                        Mode::Once => source.offer_all(ready).await.map_err(|(e, _)| e)?,
                        Mode::Watch => source.offer_or_retry(ready).await,
                    }
                }
                // Watching, discovery only ends when it is halted.
                None if mode == Mode::Watch => return Ok(()),
                None => discovering = false,
            },
            _ = tokio::time::sleep(wait) => {}
            changed = stop.changed(), if stop_open => stop_open = changed.is_ok(),
        }
        if *stop.borrow() {
            return Ok(());
        }
        source.retry_admissions().await;
        // Once discovery has found everything, whatever is queued is due.
        let flush = !discovering;
        let result = match source.run_due(flush).await {
            Ok(reports) if flush => source.offer_deferred().await.map(|()| reports),
            other => other,
        };
        source.publish(0);
        match result {
            Ok(reports) => {
                if !reports.is_empty() {
                    progress(source.totals());
                }
                backoff = FIRST_BACKOFF;
                events::emit(SourceHealthy { source: &source.name });
            }
            // Another writer of the table got there first: `once` too tries again, a few times.
            Err(e) if mode == Mode::Once && !(is_conflict(&e) && conflicts < ONCE_CONFLICT_RETRIES) => return Err(e),
            Err(e) => {
                conflicts += usize::from(is_conflict(&e));
                let retry_in = retry_delay(&e, &mut backoff);
                let sink_kind = match &e {
                    Error::Sink(sink_error) => {
                        events::emit(SinkRead { source: &source.name, sink: sink_error.sink(), error: Some(sink_error) });
                        Some(sink_error.kind.as_str())
                    }
                    Error::Ledger(LedgerError::Stopped) => {
                        events::emit(LedgerClosed);
                        None
                    }
                    _ => None,
                };
                events::emit(BatchFailed { source: &source.name, error: &e, kind: e.kind(), sink_kind, retry_in });
                tokio::select! {
                    _ = tokio::time::sleep(retry_in) => {}
                    _ = stop.changed(), if stop_open => {}
                }
            }
        }
        if !discovering && !source.has_work() {
            return Ok(());
        }
    }
}

/// Commit conflicts `once` retries before it gives up.
const ONCE_CONFLICT_RETRIES: usize = 20;

fn is_conflict(error: &Error) -> bool {
    matches!(error, Error::Sink(e) if e.kind == SinkErrorKind::Conflict)
}

/// How long to wait before trying again after `error`: a conflict soon, a failure that needs a
/// person at the longest interval, anything else doubling from a second.
fn retry_delay(error: &Error, backoff: &mut Duration) -> Duration {
    match error {
        Error::Sink(e) if e.kind == SinkErrorKind::Conflict => FIRST_BACKOFF,
        Error::Sink(e) if e.kind == SinkErrorKind::Fatal => MAX_BACKOFF,
        _ => {
            let now = *backoff;
            *backoff = (*backoff * 2).min(MAX_BACKOFF);
            now
        }
    }
}

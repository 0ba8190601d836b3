//! Wires the stages together: `once` ingests what is present and returns; `run` watches every
//! source until asked to stop. Each source has a discovery thread and an async task that owns
//! its [`SourceRuntime`]; the ledger is shared.

use crate::config::Config;
use crate::discover::{Candidate, FolderSource};
use crate::ledger::Ledger;
use crate::metrics::METRICS;
use crate::runtime::{RuntimeError, SharedLedger, SourceRuntime, Totals};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

/// What `ingestd once` did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Summary {
    pub totals: Totals,
    pub seconds: f64,
}

impl Summary {
    pub fn rows_per_second(&self) -> f64 {
        if self.seconds > 0.0 { self.totals.rows as f64 / self.seconds } else { 0.0 }
    }
}

/// A source ready to run: its runtime (recovered) and its folder (locked).
struct Started {
    runtime: SourceRuntime,
    folder: FolderSource,
}

/// Locks the state folder and every drop folder first (so a second daemon is refused before it
/// touches anything), then opens the ledger and recovers every source.
async fn start(config: &Config) -> Result<(SharedLedger, Vec<Started>, std::fs::File), RuntimeError> {
    let state_lock = lock_state_dir(&config.state_dir)?;
    let mut folders = Vec::new();
    for (name, source) in &config.sources {
        folders.push(FolderSource::new(name, source)?);
    }
    let (ledger, _) = Ledger::open_or_set_aside(&config.state_dir)?;
    ledger.claim_instance(&config.instance)?;
    let ledger = Arc::new(Mutex::new(ledger));
    let mut started = Vec::new();
    for (name, folder) in config.sources.keys().zip(folders) {
        let mut runtime = SourceRuntime::new(name, config)?;
        runtime.recover(&ledger).await?;
        started.push(Started { runtime, folder });
    }
    Ok((ledger, started, state_lock))
}

/// An exclusive lock on `<state_dir>/.lock`, held while the daemon runs.
fn lock_state_dir(state_dir: &std::path::Path) -> Result<std::fs::File, RuntimeError> {
    let io = |e: std::io::Error| RuntimeError::Io(format!("state folder {}: {e}", state_dir.display()));
    std::fs::create_dir_all(state_dir).map_err(io)?;
    crate::discover::lock_exclusive(&state_dir.join(".lock")).map_err(io)?.ok_or_else(|| {
        RuntimeError::Io(format!("state folder {} is in use by another ingestd process; one state folder, one daemon", state_dir.display()))
    })
}

/// Ingests every file present in every source (waiting for files still being written), then
/// returns. `on_batch` sees the running totals after each batch (for a progress bar).
pub async fn once(config: &Config, on_batch: &mut dyn FnMut(&Totals)) -> Result<Summary, RuntimeError> {
    let started = Instant::now();
    let (ledger, mut sources, _state_lock) = start(config).await?;
    let mut summary = Summary::default();
    for Started { runtime, folder } in &mut sources {
        loop {
            let ready = folder.poll(Duration::ZERO);
            for chunk in ready.chunks(runtime.config.batch.max_files) {
                if let Some((_, e)) = runtime.offer_all(&ledger, chunk.to_vec()).into_iter().next() {
                    return Err(e);
                }
                if runtime.batcher.len() >= runtime.config.batch.max_files {
                    runtime.run_due(&ledger, false).await?;
                    on_batch(&runtime.totals);
                }
            }
            if folder.waiting() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        while runtime.has_work() {
            runtime.run_due(&ledger, true).await?;
            runtime.offer_deferred(&ledger)?;
            on_batch(&runtime.totals);
        }
        runtime.finish_upkeep(true).await;
        summary.totals.add(&runtime.totals);
    }
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// Watches every source until `stop` turns true; the batch in flight is finished first.
pub async fn run(config: &Config, mut stop: watch::Receiver<bool>) -> Result<(), RuntimeError> {
    let (ledger, sources, _state_lock) = start(config).await?;
    let halt = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    let mut threads = Vec::new();
    for Started { runtime, mut folder } in sources {
        let (tx, rx) = mpsc::channel::<Candidate>(1024);
        if let Err(e) = folder.watch() {
            warn!(source = %runtime.name, error = %e, "no file notifications; relying on periodic listing");
        }
        let thread_halt = halt.clone();
        threads.push(std::thread::spawn(move || discover_loop(folder, tx, &thread_halt)));
        tasks.push(tokio::spawn(source_loop(runtime, ledger.clone(), rx, stop.clone())));
    }
    if let Some(listen) = config.http.address() {
        tasks.push(tokio::spawn(crate::http::serve(listen, stop.clone())));
    }
    info!(sources = config.sources.len(), "ingestd running");
    while !*stop.borrow() {
        if stop.changed().await.is_err() {
            break;
        }
    }
    info!("stopping: finishing the batch in flight");
    halt.store(true, Ordering::Relaxed);
    for task in tasks {
        if let Err(e) = task.await {
            error!(error = %e, "source task failed");
        }
    }
    for thread in threads {
        let _ = thread.join();
    }
    Ok(())
}

fn discover_loop(mut folder: FolderSource, tx: mpsc::Sender<Candidate>, halt: &AtomicBool) {
    while !halt.load(Ordering::Relaxed) {
        for candidate in folder.poll(Duration::from_millis(100)) {
            if tx.blocking_send(candidate).is_err() {
                return;
            }
        }
    }
}

async fn source_loop(mut runtime: SourceRuntime, ledger: SharedLedger, rx: mpsc::Receiver<Candidate>, stop: watch::Receiver<bool>) {
    feed(&mut runtime, ledger, rx, stop).await;
    runtime.finish_upkeep(false).await;
}

/// Admits what discovery finds and commits batches as they fall due, until stopped.
async fn feed(runtime: &mut SourceRuntime, ledger: SharedLedger, mut rx: mpsc::Receiver<Candidate>, mut stop: watch::Receiver<bool>) {
    let mut backoff = Duration::from_secs(1);
    // Files whose admission failed (unreadable for now, ledger busy): discovery will not hand them
    // on again while they are unchanged, so they are retried from here.
    let mut retry: Vec<Candidate> = Vec::new();
    let mut retry_at = Instant::now();
    loop {
        let wait = runtime.batcher.due_in(Instant::now()).unwrap_or(Duration::from_secs(1));
        tokio::select! {
            candidate = rx.recv() => {
                let Some(candidate) = candidate else { return };
                // Admit at most a batch's worth before committing, so a storm of files becomes a
                // steady stream of batches rather than one ever-growing queue.
                let mut ready = vec![candidate];
                while ready.len() < runtime.config.batch.max_files {
                    let Ok(candidate) = rx.try_recv() else { break };
                    ready.push(candidate);
                }
                for (candidate, e) in runtime.offer_all(&ledger, ready) {
                    error!(source = %runtime.name, file = %candidate.name, error = %e, "cannot admit file; will retry");
                    METRICS.errors.with_label_values(&[&runtime.name, e.kind()]).inc();
                    retry.push(candidate);
                }
            }
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            return;
        }
        if !retry.is_empty() && Instant::now() >= retry_at {
            for candidate in std::mem::take(&mut retry) {
                if let Err(e) = runtime.offer(&ledger, &candidate) {
                    warn!(source = %runtime.name, file = %candidate.name, error = %e, "still cannot admit file");
                    retry.push(candidate);
                }
            }
            retry_at = Instant::now() + Duration::from_secs(5);
        }
        let result = runtime.run_due(&ledger, false).await;
        runtime.publish_pending();
        match result {
            Ok(_) => backoff = Duration::from_secs(1),
            Err(e) => {
                error!(source = %runtime.name, error = %e, retry_in = ?backoff, "batch failed; will retry");
                METRICS.errors.with_label_values(&[&runtime.name, e.kind()]).inc();
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.changed() => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
        }
    }
}

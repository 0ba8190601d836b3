//! Wires the stages together: `once` ingests what is present and returns; `run` watches every
//! source until asked to stop. Each source has a discovery thread and an async task that owns
//! its [`SourceRuntime`]; the ledger is shared.

use crate::config::{Config, SinkConfig, SourceConfig};
use crate::discover::remote::{self, Remote};
use crate::discover::{Candidate, FolderSource};
use crate::ledger::Ledger;
use crate::metrics::METRICS;
use crate::runtime::{RuntimeError, SharedLedger, SourceRuntime, Totals};
use crate::service;
use crate::status::STATUS;
use indexmap::IndexMap;
use std::path::Path;
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

/// A source ready to run: its runtime (recovered), its folder (locked) and, for `http` and
/// `s3` sources, the poller that downloads into that folder.
struct Started {
    runtime: SourceRuntime,
    folder: FolderSource,
    remote: Option<Box<dyn Remote>>,
}

/// Locks the state folder (so a second daemon is refused before it touches anything) and opens
/// the ledger.
fn open_state(config: &Config) -> Result<(SharedLedger, std::fs::File), RuntimeError> {
    let state_lock = lock_state_dir(&config.state_dir)?;
    let (ledger, _) = Ledger::open_or_set_aside(&config.state_dir)?;
    ledger.claim_instance(&config.instance)?;
    STATUS.set_ledger_open(true);
    Ok((Arc::new(Mutex::new(ledger)), state_lock))
}

/// An exclusive lock on `<state_dir>/.lock`, held while the daemon runs.
fn lock_state_dir(state_dir: &std::path::Path) -> Result<std::fs::File, RuntimeError> {
    let io = |e: std::io::Error| RuntimeError::Io(format!("state folder {}: {e}", state_dir.display()));
    std::fs::create_dir_all(state_dir).map_err(io)?;
    crate::discover::lock_exclusive(&state_dir.join(".lock")).map_err(io)?.ok_or_else(|| {
        RuntimeError::Io(format!("state folder {} is in use by another ingestd process; one state folder, one daemon", state_dir.display()))
    })
}

/// Locks the source's folder and recovers its runtime against its sinks.
async fn start_source(name: &str, config: &Config, ledger: &SharedLedger) -> Result<Started, RuntimeError> {
    let source = config.sources.get(name).ok_or_else(|| RuntimeError::Internal(format!("no source {name}")))?;
    let folder = FolderSource::new(name, source)?;
    let remote = remote::open(name, source, &config.state_dir)?;
    let mut runtime = SourceRuntime::new(name, config)?;
    runtime.recover(ledger).await?;
    Ok(Started { runtime, folder, remote })
}

/// Every folder is locked before any source recovers, so a second daemon is refused first.
async fn start(config: &Config) -> Result<(SharedLedger, Vec<Started>, std::fs::File), RuntimeError> {
    let (ledger, state_lock) = open_state(config)?;
    let mut started = Vec::new();
    for name in config.sources.keys() {
        started.push(start_source(name, config, &ledger).await?);
    }
    Ok((ledger, started, state_lock))
}

/// Ingests every file present in every source (waiting for files still being written), then
/// returns. `on_batch` sees the running totals after each batch (for a progress bar).
pub async fn once(config: &Config, on_batch: &mut dyn FnMut(&Totals)) -> Result<Summary, RuntimeError> {
    let started = Instant::now();
    let (ledger, mut sources, _state_lock) = start(config).await?;
    let mut summary = Summary::default();
    for Started { runtime, folder, remote } in &mut sources {
        if let Some(remote) = remote {
            let report = remote.poll().await?;
            if report.failed > 0 {
                return Err(RuntimeError::Io(format!("source {}: {} file(s) could not be downloaded (see the log)", runtime.name, report.failed)));
            }
        }
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

/// How often systemd's STATUS= line is refreshed.
const STATUS_EVERY: Duration = Duration::from_secs(5);

/// What the daemon is asked from outside (signals).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// SIGTERM, SIGINT: finish (or, after `shutdown_timeout`, abandon) the batches in flight
    /// and return.
    Stop,
    /// SIGHUP: read the config file again and apply it.
    Reload,
}

/// One running source: its discovery thread, its task, and the config it runs with.
struct Running {
    footprint: Footprint,
    stop: watch::Sender<bool>,
    halt: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
    thread: std::thread::JoinHandle<()>,
    /// The poller of an `http` or `s3` source.
    poller: Option<tokio::task::JoinHandle<()>>,
}

/// The parts of a config one source depends on: a reload restarts the source when they change.
#[derive(Debug, PartialEq)]
struct Footprint {
    source: SourceConfig,
    sinks: Vec<(String, Option<SinkConfig>)>,
}

fn footprint(config: &Config, name: &str) -> Option<Footprint> {
    let source = config.sources.get(name)?.clone();
    let sinks = source.sinks.iter().map(|s| (s.clone(), config.sinks.get(s).cloned())).collect();
    Some(Footprint { source, sinks })
}

/// Starts a source's discovery thread and task.
async fn spawn_source(name: &str, config: &Config, ledger: &SharedLedger) -> Result<Running, RuntimeError> {
    let footprint = footprint(config, name).ok_or_else(|| RuntimeError::Internal(format!("no source {name}")))?;
    let Started { runtime, mut folder, remote } = start_source(name, config, ledger).await?;
    let (tx, rx) = mpsc::channel::<Candidate>(1024);
    if let Err(e) = folder.watch() {
        warn!(source = %name, error = %e, "no file notifications; relying on periodic listing");
    }
    let halt = Arc::new(AtomicBool::new(false));
    let thread_halt = halt.clone();
    let thread = std::thread::spawn(move || discover_loop(folder, tx, &thread_halt));
    let (stop, stop_rx) = watch::channel(false);
    let poll_interval = runtime.config.fetch.poll_interval.0;
    let poller = remote.map(|r| tokio::spawn(remote::run(name.to_string(), r, poll_interval, stop_rx.clone())));
    let task = tokio::spawn(source_loop(runtime, ledger.clone(), rx, stop_rx));
    Ok(Running { footprint, stop, halt, task, thread, poller })
}

/// Asks sources to stop and waits for them, at most `limit`; returns whether all stopped in
/// time. A source past the limit is abandoned mid-batch, which is safe: its ledger entry says
/// in flight and the next start settles it against the sinks.
async fn stop_sources(running: Vec<(String, Running)>, limit: Duration) -> bool {
    let mut waits = Vec::new();
    for (name, source) in running {
        let _ = source.stop.send(true);
        source.halt.store(true, Ordering::Relaxed);
        waits.push(async move {
            if let Err(e) = source.task.await {
                error!(source = %name, error = %e, "source task failed");
            }
            if let Some(poller) = source.poller {
                // A download in progress is abandoned: its partial file never lands.
                poller.abort();
                let _ = poller.await;
            }
            let _ = tokio::task::spawn_blocking(move || source.thread.join()).await;
            STATUS.remove_source(&name);
        });
    }
    tokio::time::timeout(limit, futures::future::join_all(waits)).await.is_ok()
}

/// Watches every source until told to stop; applies reloads in between.
pub async fn run(config_path: Option<&Path>, mut config: Config, mut control: mpsc::Receiver<Control>) -> Result<(), RuntimeError> {
    let (ledger, _state_lock) = open_state(&config)?;
    STATUS.set_config(&config);
    let mut running: IndexMap<String, Running> = IndexMap::new();
    for name in config.sources.keys() {
        running.insert(name.clone(), spawn_source(name, &config, &ledger).await?);
    }
    let (http_stop, http_stop_rx) = watch::channel(false);
    // Kept so a reload can replace its targets (see `PushState::set_targets`).
    let push = crate::push::PushState::new(&config, ledger.clone());
    let http = config.http.address().map(|listen| tokio::spawn(crate::http::serve(listen, http_stop_rx, Some(push.clone()))));
    info!(sources = config.sources.len(), "ingestd running");

    // The watchdog pings come from their own task, so a reload waiting for a long batch is not
    // mistaken for a hang; the loop below withdraws `healthy` when a source task has died.
    let healthy = Arc::new(AtomicBool::new(true));
    if let Some(every) = service::watchdog_interval() {
        let healthy = healthy.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if healthy.load(Ordering::Relaxed) {
                    service::notify("WATCHDOG=1");
                }
            }
        });
    }
    let mut ready = false;
    let mut last_status = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            message = control.recv() => match message {
                Some(Control::Reload) => {
                    service::notify("RELOADING=1");
                    reload(config_path, &mut config, &mut running, &ledger, &push).await;
                    // Before the first READY=1, the tick below sends it once the scans are done.
                    if ready {
                        service::notify(&format!("READY=1\nSTATUS={}", STATUS.summary()));
                    }
                }
                Some(Control::Stop) | None => break,
            },
            _ = tick.tick() => {
                if !ready && STATUS.not_ready().is_none() {
                    ready = true;
                    info!("start-up scans done; ready");
                    service::notify(&format!("READY=1\nSTATUS={}", STATUS.summary()));
                }
                // A source task that ended on its own is stuck for good: stop the pings and let
                // systemd restart the daemon.
                healthy.store(running.values().all(|r| !r.task.is_finished()), Ordering::Relaxed);
                if last_status.elapsed() >= STATUS_EVERY {
                    service::notify(&format!("STATUS={}", STATUS.summary()));
                    last_status = Instant::now();
                }
            }
        }
    }
    let limit = config.shutdown_timeout.0;
    info!(timeout = ?limit, "stopping: finishing the batches in flight");
    service::notify("STOPPING=1");
    if !stop_sources(running.into_iter().collect(), limit).await {
        warn!(timeout = ?limit, "batches still in flight after the shutdown timeout are abandoned; the next start settles them");
    }
    let _ = http_stop.send(true);
    if let Some(http) = http {
        let _ = http.await;
    }
    Ok(())
}

/// Reads the config file again and applies it: removed and changed sources stop (after their
/// batch in flight), new and changed ones start. A config that does not load, or that changes
/// what only a restart can change, is refused and the running one stays.
async fn reload(
    path: Option<&Path>,
    current: &mut Config,
    running: &mut IndexMap<String, Running>,
    ledger: &SharedLedger,
    push: &crate::push::PushState,
) {
    let loaded = match path {
        Some(path) => Config::load(path).map_err(|e| e.to_string()),
        None => Err("no config file to reload (running on the built-in default)".to_string()),
    };
    let new = match loaded.and_then(|new| fixed_keys_unchanged(current, &new).map(|()| new)) {
        Ok(new) => new,
        Err(reason) => {
            error!(error = %reason, "config reload refused; the running config stays");
            METRICS.reloads.with_label_values(&["refused"]).inc();
            STATUS.set_reload_error(Some(reason));
            return;
        }
    };
    let mut stopping = Vec::new();
    let names: Vec<String> = running.keys().cloned().collect();
    for name in names {
        if footprint(&new, &name).as_ref() != running.get(&name).map(|r| &r.footprint)
            && let Some(source) = running.shift_remove(&name)
        {
            stopping.push((name, source));
        }
    }
    let stopped: Vec<String> = stopping.iter().map(|(n, _)| n.clone()).collect();
    // A reload waits for the batches in flight however long they take: abandoning one here
    // would leave it to a restart to settle.
    stop_sources(stopping, Duration::MAX).await;
    let mut started = Vec::new();
    for name in new.sources.keys() {
        if running.contains_key(name) {
            continue;
        }
        match spawn_source(name, &new, ledger).await {
            Ok(source) => {
                running.insert(name.clone(), source);
                started.push(name.clone());
            }
            Err(e) => {
                error!(source = %name, error = %e, "cannot start source after reload");
                METRICS.errors.with_label_values(&[name, e.kind()]).inc();
                STATUS.source(name, |s| s.last_error = Some(e.to_string()));
            }
        }
    }
    *current = new;
    push.set_targets(current);
    STATUS.set_config(current);
    STATUS.set_reload_error(None);
    METRICS.reloads.with_label_values(&["applied"]).inc();
    info!(stopped = ?stopped, started = ?started, "config reloaded");
}

/// Keys that only a restart can change.
fn fixed_keys_unchanged(current: &Config, new: &Config) -> Result<(), String> {
    let mut changed = Vec::new();
    if current.instance != new.instance {
        changed.push("instance");
    }
    if current.state_dir != new.state_dir {
        changed.push("state_dir");
    }
    if current.quarantine_dir != new.quarantine_dir {
        changed.push("quarantine_dir");
    }
    if current.decode_threads != new.decode_threads {
        changed.push("decode_threads");
    }
    if current.http != new.http {
        changed.push("http.listen");
    }
    if changed.is_empty() { Ok(()) } else { Err(format!("{} changed; that takes a restart", changed.join(", "))) }
}

fn discover_loop(mut folder: FolderSource, tx: mpsc::Sender<Candidate>, halt: &AtomicBool) {
    let mut scanned = false;
    while !halt.load(Ordering::Relaxed) {
        for candidate in folder.poll(Duration::from_millis(100)) {
            if tx.blocking_send(candidate).is_err() {
                return;
            }
        }
        if !scanned {
            // The first poll lists the whole folder: the start-up scan is done.
            STATUS.source(folder.name(), |s| s.watched = true);
            scanned = true;
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
        runtime.publish();
        match result {
            Ok(_) => {
                backoff = Duration::from_secs(1);
                STATUS.source(&runtime.name, |s| s.last_error = None);
            }
            Err(e) => {
                STATUS.source(&runtime.name, |s| s.last_error = Some(e.to_string()));
                if let RuntimeError::Sink(sink_error) = &e {
                    STATUS.sink(&runtime.name, sink_error.sink(), |s| {
                        s.reachable = false;
                        s.last_error = Some(sink_error.to_string());
                    });
                }
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

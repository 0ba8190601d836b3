//! Wires the tasks together: `once` ingests what is present and returns; `run` watches every
//! source until asked to stop. Each source has a discovery thread and an async task that owns
//! its [`Source`] and runs [`driver::drive`]; the ledger has a thread of its own, shared.

use crate::config::{Config, SinkConfig, SourceConfig};
use crate::discover::remote::{self, Remote};
use crate::discover::{self, Candidate, FolderSource};
use crate::driver::{self, Mode};
use crate::error::Error;
use crate::events::{self, ReloadApplied, ReloadRefused, SourceNotStarted};
use crate::ledger::{Ledger, LedgerHandle};
use crate::service;
use crate::sinks;
use crate::source::{Source, Totals};
use crate::status::STATUS;
use indexmap::IndexMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
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

/// A source ready to run: recovered, its folder locked and, for `http` and `s3` sources, the
/// poller that downloads into that folder.
struct Started {
    source: Source,
    folder: FolderSource,
    remote: Option<Box<dyn Remote>>,
}

/// Locks the state folder (so a second daemon is refused before it touches anything) and opens
/// the ledger on its own thread.
async fn open_state(config: &Config) -> Result<(LedgerHandle, std::fs::File), Error> {
    let state_dir = config.state_dir.clone();
    let instance = config.instance.clone();
    let opened = tokio::task::spawn_blocking(move || -> Result<_, Error> {
        let state_lock = lock_state_dir(&state_dir)?;
        let (ledger, _) = Ledger::open_or_set_aside(&state_dir)?;
        ledger.claim_instance(&instance)?;
        let handle = LedgerHandle::spawn(ledger).map_err(|e| Error::Internal(format!("cannot start the ledger thread: {e}")))?;
        Ok((handle, state_lock))
    })
    .await
    .map_err(|e| Error::task("opening the ledger", e))??;
    STATUS.set_ledger_open(true);
    Ok(opened)
}

/// An exclusive lock on `<state_dir>/.lock`, held while the daemon runs.
fn lock_state_dir(state_dir: &Path) -> Result<std::fs::File, Error> {
    let io = |e: std::io::Error| Error::StateFolder { path: state_dir.to_path_buf(), detail: e.to_string() };
    std::fs::create_dir_all(state_dir).map_err(io)?;
    crate::discover::lock_exclusive(&state_dir.join(".lock")).map_err(io)?.ok_or_else(|| Error::StateFolder {
        path: state_dir.to_path_buf(),
        detail: "in use by another ingestd process; one state folder, one daemon".into(),
    })
}

/// Locks the source's folder, builds its sinks and recovers it against them.
async fn start_source(name: &str, config: &Config, ledger: &LedgerHandle) -> Result<Started, Error> {
    let (name, config, ledger) = (name.to_string(), config.clone(), ledger.clone());
    // Locking the folder and reading saved columns touch the disk: off the async workers.
    let (mut source, folder, remote) = tokio::task::spawn_blocking(move || -> Result<_, Error> {
        let source_config = config.sources.get(&name).ok_or_else(|| Error::Internal(format!("no source {name}")))?;
        let folder = FolderSource::new(&name, source_config)?;
        let remote = discover::open_remote(&name, source_config, &config.state_dir)?;
        let sinks = source_config.sinks.iter().filter_map(|sink| sinks::build(sink, &config, &name)).collect();
        Ok((Source::new(&name, &config, ledger, sinks)?, folder, remote))
    })
    .await
    .map_err(|e| Error::task("starting a source", e))??;
    source.recover().await?;
    Ok(Started { source, folder, remote })
}

/// Every folder is locked before any source recovers, so a second daemon is refused first.
async fn start(config: &Config) -> Result<(LedgerHandle, Vec<Started>, std::fs::File), Error> {
    let (ledger, state_lock) = open_state(config).await?;
    let mut started = Vec::new();
    for name in config.sources.keys() {
        started.push(start_source(name, config, &ledger).await?);
    }
    Ok((ledger, started, state_lock))
}

/// Ingests every file present in every source (waiting for files still being written), then
/// returns. `progress` sees a source's running totals after each batch (for a progress bar).
pub async fn once(config: &Config, progress: &mut (dyn FnMut(&Totals) + Send)) -> Result<Summary, Error> {
    let started = Instant::now();
    let (ledger, sources, _state_lock) = start(config).await?;
    let mut summary = Summary::default();
    let result = once_each(sources, &mut summary, progress).await;
    ledger.close().await;
    summary.seconds = started.elapsed().as_secs_f64();
    result.map(|()| summary)
}

async fn once_each(sources: Vec<Started>, summary: &mut Summary, progress: &mut (dyn FnMut(&Totals) + Send)) -> Result<(), Error> {
    for Started { mut source, folder, remote } in sources {
        if let Some(mut remote) = remote {
            let report = remote.poll().await?;
            if report.failed > 0 {
                return Err(Error::Downloads { name: source.name.clone(), failed: report.failed });
            }
        }
        let (found, halt, discovery) = start_discovery(folder, Mode::Once);
        // Nothing stops a `once` from outside: the sender only keeps the channel open.
        let (_keep_open, stop) = watch::channel(false);
        let result = driver::drive(&mut source, found, stop, Mode::Once, progress).await;
        halt.store(true, Ordering::Relaxed);
        let _ = tokio::task::spawn_blocking(move || discovery.join()).await;
        result?;
        source.finish_upkeep(true).await;
        summary.totals.add(source.totals());
    }
    Ok(())
}

/// Starts the discovery thread of a folder: the files it hands on, the flag that halts it, and
/// the thread.
fn start_discovery(folder: FolderSource, mode: Mode) -> (mpsc::Receiver<Candidate>, Arc<AtomicBool>, std::thread::JoinHandle<()>) {
    let (tx, found) = mpsc::channel::<Candidate>(1024);
    let halt = Arc::new(AtomicBool::new(false));
    let thread_halt = halt.clone();
    let thread = std::thread::spawn(move || driver::discover(folder, tx, &thread_halt, mode));
    (found, halt, thread)
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
async fn spawn_source(name: &str, config: &Config, ledger: &LedgerHandle) -> Result<Running, Error> {
    let footprint = footprint(config, name).ok_or_else(|| Error::Internal(format!("no source {name}")))?;
    let Started { mut source, mut folder, remote } = start_source(name, config, ledger).await?;
    if let Err(e) = folder.watch() {
        warn!(source = %name, error = %e, "no file notifications; relying on periodic listing");
    }
    let (found, halt, thread) = start_discovery(folder, Mode::Watch);
    let (stop, stop_rx) = watch::channel(false);
    // Only http and s3 sources have a poller, and a fetch section.
    let poll_interval = source.config.kind.fetch().map_or(Duration::MAX, |fetch| fetch.poll_interval.0);
    let poller = remote.map(|r| tokio::spawn(remote::run(name.to_string(), r, poll_interval, stop_rx.clone())));
    let task = tokio::spawn(async move {
        // Watching, every failure is retried inside; nothing comes back but the stop.
        if let Err(e) = driver::drive(&mut source, found, stop_rx, Mode::Watch, &mut |_| {}).await {
            error!(source = %source.name, error = %e, "source stopped");
        }
        source.finish_upkeep(false).await;
    });
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
pub async fn run(config_path: Option<&Path>, mut config: Config, mut control: mpsc::Receiver<Control>) -> Result<(), Error> {
    let (ledger, _state_lock) = open_state(&config).await?;
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
    ledger.close().await;
    Ok(())
}

/// Reads the config file again and applies it: removed and changed sources stop (after their
/// batch in flight), new and changed ones start. A config that does not load, or that changes
/// what only a restart can change, is refused and the running one stays.
async fn reload(
    path: Option<&Path>,
    current: &mut Config,
    running: &mut IndexMap<String, Running>,
    ledger: &LedgerHandle,
    push: &crate::push::PushState,
) {
    let loaded = match path {
        Some(path) => Config::load(path).map_err(|e| e.to_string()),
        None => Err("no config file to reload (running on the built-in default)".to_string()),
    };
    let new = match loaded.and_then(|new| fixed_keys_unchanged(current, &new).map(|()| new)) {
        Ok(new) => new,
        Err(reason) => {
            events::emit(ReloadRefused { reason });
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
            Err(e) => events::emit(SourceNotStarted { source: name, error: &e, kind: e.kind() }),
        }
    }
    *current = new;
    push.set_targets(current);
    events::emit(ReloadApplied { config: current, stopped: &stopped, started: &started });
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

//! After the commit: each sink's table upkeep runs on its own thread, woken after every batch,
//! so compaction never sits between a file's arrival and its commit. Wake-ups that arrive
//! during a round fold into one more round. The thread runs at a lower CPU priority: on a busy
//! machine the batches (and their latency) come first, upkeep takes what is left.

use crate::events::{self, MaintenanceFailed, MaintenanceRan};
use crate::sinks::Upkeep;
use tokio::sync::mpsc;
use tracing::warn;

/// Upper bound on the rounds of a final drain (each round leaves less to do; this only guards
/// against a sink that reports work forever).
const MAX_DRAIN_ROUNDS: usize = 1_000;

enum Wake {
    /// A batch committed: there may be something to do.
    Round,
    /// Stop after the round in progress; with `until_idle`, first run rounds until one finds
    /// nothing to do.
    Finish { until_idle: bool },
}

/// Niceness of upkeep threads (0 is normal, 19 the lowest priority).
const UPKEEP_NICENESS: i32 = 10;

/// One sink's upkeep thread.
pub struct UpkeepTask {
    wake: mpsc::Sender<Wake>,
    thread: std::thread::JoinHandle<()>,
}

impl UpkeepTask {
    pub(crate) fn spawn(source: String, sink: String, upkeep: Box<dyn Upkeep>) -> std::io::Result<UpkeepTask> {
        // Room for one pending wake-up: more would only repeat the same round.
        let (wake, rx) = mpsc::channel(1);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let thread = std::thread::Builder::new().name(format!("upkeep-{sink}")).spawn(move || {
            // Linux keeps a niceness per thread; the runtime's blocking threads, started from
            // this one, inherit it.
            // SAFETY: setpriority only reads its integer arguments; `0` names the calling thread.
            if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, UPKEEP_NICENESS) } != 0 {
                warn!(source = %source, sink = %sink, error = %std::io::Error::last_os_error(), "cannot lower the upkeep thread's priority");
            }
            runtime.block_on(run(source, sink, upkeep, rx));
        })?;
        Ok(UpkeepTask { wake, thread })
    }

    /// Asks for a round after a commit; a no-op when one is already pending.
    pub(crate) fn wake(&self) {
        let _ = self.wake.try_send(Wake::Round);
    }

    /// Waits for the task to end: after the round in progress (and the pending one), or, with
    /// `until_idle`, once there is nothing left to do (`ingestd once` leaves a tidy table).
    pub(crate) async fn finish(self, until_idle: bool) {
        if self.wake.send(Wake::Finish { until_idle }).await.is_ok() {
            let thread = self.thread;
            if !matches!(tokio::task::spawn_blocking(move || thread.join()).await, Ok(Ok(()))) {
                warn!("table upkeep thread failed");
            }
        }
    }
}

async fn run(source: String, sink: String, mut upkeep: Box<dyn Upkeep>, mut wake: mpsc::Receiver<Wake>) {
    while let Some(message) = wake.recv().await {
        match message {
            Wake::Round => {
                round(&source, &sink, upkeep.as_mut()).await;
            }
            Wake::Finish { until_idle } => {
                if until_idle {
                    for _ in 0..MAX_DRAIN_ROUNDS {
                        if !round(&source, &sink, upkeep.as_mut()).await {
                            break;
                        }
                    }
                }
                return;
            }
        }
    }
}

/// One round; a failure is logged and counted, the batches stand. Returns whether it did
/// anything.
async fn round(source: &str, sink: &str, upkeep: &mut dyn Upkeep) -> bool {
    match upkeep.round().await {
        Ok(notes) => {
            events::emit(MaintenanceRan { source, sink, notes: &notes });
            !notes.is_empty()
        }
        Err(error) => {
            events::emit(MaintenanceFailed { source, sink, error: &error });
            false
        }
    }
}

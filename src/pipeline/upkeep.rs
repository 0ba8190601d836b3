//! After the commit: each sink's table upkeep runs on its own task, woken after every batch,
//! so compaction never sits between a file's arrival and its commit. Wake-ups that arrive
//! during a round fold into one more round.

use crate::metrics::METRICS;
use crate::sinks::Upkeep;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{info, warn};

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

/// One sink's upkeep task.
pub(crate) struct UpkeepTask {
    wake: mpsc::Sender<Wake>,
    task: JoinHandle<()>,
}

impl UpkeepTask {
    pub(crate) fn spawn(source: String, sink: String, upkeep: Box<dyn Upkeep>) -> UpkeepTask {
        // Room for one pending wake-up: more would only repeat the same round.
        let (wake, rx) = mpsc::channel(1);
        let task = tokio::spawn(run(source, sink, upkeep, rx));
        UpkeepTask { wake, task }
    }

    /// Asks for a round after a commit; a no-op when one is already pending.
    pub(crate) fn wake(&self) {
        let _ = self.wake.try_send(Wake::Round);
    }

    /// Waits for the task to end: after the round in progress (and the pending one), or, with
    /// `until_idle`, once there is nothing left to do (`ingestd once` leaves a tidy table).
    pub(crate) async fn finish(self, until_idle: bool) {
        if self.wake.send(Wake::Finish { until_idle }).await.is_ok()
            && let Err(e) = self.task.await
        {
            warn!(error = %e, "table upkeep task failed");
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
            notes.iter().for_each(|note| info!(source = %source, sink = %sink, "{note}"));
            !notes.is_empty()
        }
        Err(error) => {
            warn!(source = %source, sink = %sink, %error, "table maintenance failed; committed batches are not affected");
            METRICS.errors.with_label_values(&[source, "maintenance"]).inc();
            false
        }
    }
}

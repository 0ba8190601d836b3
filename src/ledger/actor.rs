//! The ledger on a thread of its own. SQLite calls block (and `synchronous=FULL` fsyncs at every
//! update), so no async task runs them: tasks send jobs through a [`LedgerHandle`] and await the
//! answer. One thread serialises every update, which is also what SQLite wants from one
//! connection.

use super::{Ledger, LedgerError};
use std::sync::{Arc, Mutex, mpsc};
use tokio::sync::oneshot;

type Job = Box<dyn FnOnce(&mut Ledger) + Send>;

enum Message {
    Run(Job),
    /// Close the ledger (SQLite folds its write-ahead log back into the database) and end.
    Close,
}

/// A cheap, cloneable way to the ledger thread. The thread ends at [`LedgerHandle::close`], or
/// when the last handle is dropped.
#[derive(Clone)]
pub struct LedgerHandle {
    jobs: mpsc::Sender<Message>,
    thread: Arc<Mutex<Option<std::thread::JoinHandle<()>>>>,
}

impl LedgerHandle {
    /// Moves `ledger` onto a new thread named `ledger`.
    pub fn spawn(mut ledger: Ledger) -> std::io::Result<LedgerHandle> {
        let (jobs, queue) = mpsc::channel::<Message>();
        let thread = std::thread::Builder::new().name("ledger".into()).spawn(move || {
            while let Ok(Message::Run(job)) = queue.recv() {
                job(&mut ledger);
            }
        })?;
        Ok(LedgerHandle { jobs, thread: Arc::new(Mutex::new(Some(thread))) })
    }

    /// Closes the ledger once the jobs sent before have run, and waits for it. Later calls, from
    /// any handle, answer [`LedgerError::Stopped`].
    pub async fn close(&self) {
        let _ = self.jobs.send(Message::Close);
        let thread = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }

    /// Runs `job` on the ledger thread and returns its result.
    pub async fn call<R, F>(&self, job: F) -> Result<R, LedgerError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Ledger) -> Result<R, LedgerError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |ledger| {
            // The caller may have gone (its task was cancelled); nobody needs the answer then.
            let _ = reply.send(job(ledger));
        });
        self.jobs.send(Message::Run(job)).map_err(|_| LedgerError::Stopped)?;
        answer.await.map_err(|_| LedgerError::Stopped)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_on_the_ledger_thread_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let handle = LedgerHandle::spawn(Ledger::open(dir.path()).unwrap()).unwrap();
        let thread = handle.call(|_| Ok(std::thread::current().name().map(str::to_string))).await.unwrap();
        assert_eq!(thread.as_deref(), Some("ledger"));
        let seqs = futures::future::join_all((0..3).map(|_| handle.call(|l| l.next_seq("s")))).await;
        assert!(seqs.into_iter().all(|s| s.unwrap() == 1));
        let other = handle.clone();
        handle.close().await;
        assert!(matches!(other.call(|l| l.next_seq("s")).await, Err(LedgerError::Stopped)), "closed for every handle");
        assert!(!dir.path().join(format!("{}-wal", super::super::LEDGER_FILE)).exists(), "closing folds the log back");
    }

    #[tokio::test]
    async fn a_job_that_panics_stops_the_thread_and_later_calls_say_so() {
        let dir = tempfile::tempdir().unwrap();
        let handle = LedgerHandle::spawn(Ledger::open(dir.path()).unwrap()).unwrap();
        let panicked = handle.call::<(), _>(|_| panic!("on purpose")).await;
        assert!(matches!(panicked, Err(LedgerError::Stopped)));
        assert!(matches!(handle.call(|l| l.next_seq("s")).await, Err(LedgerError::Stopped)));
    }
}

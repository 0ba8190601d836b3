//! Stage 2 for one source: each ready file is judged against the ledger (new, known, a
//! duplicate, an ignored rewrite) and the queue, then queued for its batch or settled at once.
//! Hashing runs on blocking threads and every ledger question on the ledger thread.

use super::Source;
use crate::admit::{self, Admission, AdmitError, AdmittedFile};
use crate::discover::Candidate;
use crate::error::Error;
use crate::events::{self, AdmissionFailed, FileDuplicate, FileIgnored, FileVanished, FileWaitsForTwin};
use crate::ledger::FileState;
use std::time::{Duration, Instant};

/// How long a file whose admission failed waits before it is offered again.
const RETRY_EVERY: Duration = Duration::from_secs(5);

/// Files to offer again, and when.
#[derive(Default)]
pub(super) struct Retry {
    files: Vec<Candidate>,
    at: Option<Instant>,
}

impl Retry {
    pub(super) fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

impl Source {
    /// Offers ready files: the ones the ledger does not know yet are hashed (on
    /// `decode_threads` threads), then each is queued or settled. Returns the first file that
    /// could not be admitted now, and why, with every file not admitted.
    pub async fn offer_all(&mut self, candidates: Vec<Candidate>) -> Result<(), (Error, Vec<Candidate>)> {
        if candidates.is_empty() {
            return Ok(());
        }
        let verdicts = match self.judge_all(&candidates).await {
            Ok(verdicts) => verdicts,
            Err(e) => {
                for candidate in &candidates {
                    events::emit(AdmissionFailed { source: &self.name, file: &candidate.name, error: &e, kind: e.kind() });
                }
                return Err((e, candidates));
            }
        };
        let mut failed: Option<(Error, Vec<Candidate>)> = None;
        for (candidate, verdict) in candidates.into_iter().zip(verdicts) {
            let settled = match verdict {
                Ok(admission) => self.settle(&candidate, admission).await,
                Err(Error::Admit(AdmitError::Read { source, .. })) if source.kind() == std::io::ErrorKind::NotFound => {
                    events::emit(FileVanished { source: &self.name, file: &candidate.name });
                    Ok(())
                }
                Err(e) => Err(e),
            };
            if let Err(e) = settled {
                events::emit(AdmissionFailed { source: &self.name, file: &candidate.name, error: &e, kind: e.kind() });
                failed.get_or_insert_with(|| (e, Vec::new())).1.push(candidate);
            }
        }
        failed.map_or(Ok(()), Err)
    }

    /// Offers files and keeps those that cannot be admitted now for [`Source::retry_admissions`].
    pub async fn offer_or_retry(&mut self, candidates: Vec<Candidate>) {
        if let Err((_, files)) = self.offer_all(candidates).await {
            self.retry_later(files);
        }
    }

    /// Keeps files for [`Source::retry_admissions`].
    pub(super) fn retry_later(&mut self, files: Vec<Candidate>) {
        self.retry.files.extend(files);
        self.retry.at.get_or_insert(Instant::now() + RETRY_EVERY);
    }

    /// Offers again, once their wait is over, the files whose admission failed.
    pub async fn retry_admissions(&mut self) {
        if self.retry.files.is_empty() || self.retry.at.is_some_and(|at| Instant::now() < at) {
            return;
        }
        let files = std::mem::take(&mut self.retry.files);
        self.retry.at = None;
        self.offer_or_retry(files).await;
    }

    /// Offers again the files deferred behind a twin that was not committed yet; those that
    /// cannot be admitted now are tried again later.
    pub async fn offer_deferred(&mut self) -> Result<(), Error> {
        let deferred = std::mem::take(&mut self.deferred);
        self.offer_all(deferred).await.map_err(|(e, files)| {
            self.retry_later(files);
            e
        })
    }

    /// The ledger's verdict on each candidate, hashing those it does not know.
    async fn judge_all(&self, candidates: &[Candidate]) -> Result<Vec<Result<Admission, Error>>, Error> {
        let all = candidates.to_vec();
        let known: Vec<Option<FileState>> =
            self.ledger.call(move |ledger| all.iter().map(|c| ledger.known(&c.source, &c.name, c.size, c.mtime_ns)).collect()).await?;
        let unknown: Vec<Candidate> = candidates.iter().zip(&known).filter(|(_, k)| k.is_none()).map(|(c, _)| c.clone()).collect();
        if unknown.is_empty() {
            // Every file is known (a restart over a folder already ingested): nothing to hash.
            return Ok(known.into_iter().flatten().map(|state| Ok(Admission::Known(state))).collect());
        }
        let threads = self.decode_threads;
        let paths: Vec<std::path::PathBuf> = unknown.iter().map(|c| c.path.clone()).collect();
        let started = Instant::now();
        let hashes = Source::blocking("hashing", move || {
            let refs: Vec<&std::path::Path> = paths.iter().map(|p| p.as_path()).collect();
            admit::hash_files(&refs, threads)
        })
        .await?;
        tracing::debug!(source = %self.name, files = unknown.len(), seconds = started.elapsed().as_secs_f64(), "hashed");
        let allow_overwrites = self.config.allow_overwrites;
        let judged: Vec<Result<Admission, AdmitError>> = self
            .ledger
            .call(move |ledger| {
                unknown
                    .iter()
                    .zip(hashes)
                    .map(|(c, hash)| Ok(hash.and_then(|h| admit::judge(ledger, c, h, allow_overwrites).map_err(AdmitError::from))))
                    .collect()
            })
            .await?;
        let mut judged = judged.into_iter();
        Ok(known
            .into_iter()
            .map(|state| match state {
                Some(state) => Ok(Admission::Known(state)),
                None => match judged.next() {
                    Some(verdict) => verdict.map_err(Error::from),
                    None => Err(Error::Internal("admission lost a file's verdict".into())),
                },
            })
            .collect())
    }

    /// Queues a new file, or records and settles what is already decided.
    async fn settle(&mut self, candidate: &Candidate, admission: Admission) -> Result<(), Error> {
        match admit::with_queue(admission, &|hash| self.batcher.holder_of(hash)) {
            Admission::New(file) => self.batcher.push(file),
            Admission::Duplicate { file, of, committed: true } => {
                let (entry, twin) = (file.entry(None), of.clone());
                self.on_ledger(move |ledger, source| ledger.record_duplicate(source, &entry, &twin)).await?;
                events::emit(FileDuplicate { source: &self.name, file: &file.name, of: &of });
                self.totals.duplicates += 1;
                self.after_commit(vec![file]).await?;
            }
            // Its twin is queued: decide after its batch commits (the twin may still vanish).
            Admission::Duplicate { file, committed: false, .. } if self.batcher.holder_of(&file.hash).is_some() => {
                self.deferred.push(candidate.clone())
            }
            // Its twin is in a batch left in flight (stuck): decide after the next recovery.
            Admission::Duplicate { file, of, committed: false } => {
                events::emit(FileWaitsForTwin { source: &self.name, file: &file.name, of: &of });
                self.parked.push(candidate.clone());
            }
            Admission::IgnoredOverwrite(file) => {
                let entry = file.entry(None);
                self.on_ledger(move |ledger, source| ledger.record_ignored(source, &entry)).await?;
                events::emit(FileIgnored { source: &self.name, file: &file.name });
                self.discard_download(candidate).await?;
            }
            Admission::Known(FileState::Committed | FileState::Duplicate) => {
                // Done before a crash that came between the ledger and the archive/delete step.
                let file = AdmittedFile {
                    path: candidate.path.clone(),
                    name: candidate.name.clone(),
                    size: candidate.size,
                    mtime_ns: candidate.mtime_ns,
                    hash: String::new(),
                    ready_at: Instant::now(),
                };
                self.after_commit(vec![file]).await?;
            }
            Admission::Known(FileState::Ignored | FileState::Quarantined) => self.discard_download(candidate).await?,
            Admission::Known(FileState::InFlight) => {}
        }
        Ok(())
    }
}

//! The last stage of a file: once its rows are committed (or it is a duplicate) it is kept,
//! archived or deleted as configured; a file that cannot be read is quarantined with a report
//! saying why. Moves run on blocking threads.

use super::Source;
use crate::admit::AdmittedFile;
use crate::config::AfterCommit;
use crate::decode::{DecodeError, Position};
use crate::discover::Candidate;
use crate::error::Error;
use crate::events::{self, DispositionFailed, FileChanged, FileQuarantined};
use crate::quarantine::{self, ErrorReport};

/// Why a file leaves a batch before it commits.
pub(super) enum Dropped {
    /// Its content cannot be read as configured: quarantined.
    Bad(DecodeError),
    /// It changed (or vanished) after it was admitted: its hash no longer describes it. It is
    /// read again once discovery sees it settle.
    Changed,
}

impl Source {
    /// Takes a file out of the batch being built: quarantined if its content is bad, left for
    /// discovery if it changed or vanished.
    pub(super) async fn drop_from_batch(&mut self, file: &AdmittedFile, why: Dropped) -> Result<(), Error> {
        let unchanged = {
            let file = file.clone();
            Source::blocking("checking a file", move || file.unchanged_on_disk()).await?
        };
        match why {
            Dropped::Bad(error) if unchanged => self.quarantine_file(file, &error).await,
            _ => {
                events::emit(FileChanged { source: &self.name, file: &file.name });
                Ok(())
            }
        }
    }

    /// Moves a file that cannot be ingested to quarantine and records why.
    async fn quarantine_file(&mut self, file: &AdmittedFile, error: &DecodeError) -> Result<(), Error> {
        let reason = error.to_string();
        let (dir, path, source, name, hash) =
            (self.quarantine_dir.clone(), file.path.clone(), self.name.clone(), file.name.clone(), file.hash.clone());
        let (message, position) = (error.message.clone(), error.position.filter(|p| *p != Position::default()));
        // Moved first, recorded second: a crash in between leaves the file in quarantine with its
        // report (where `quarantine retry` finds it), never a verdict on a file still in the folder.
        Source::blocking("quarantining", move || {
            let report = ErrorReport {
                source: &source,
                file: &name,
                reason: &message,
                position,
                hash: &hash,
                ingestd_version: env!("CARGO_PKG_VERSION"),
                time: chrono::Utc::now().to_rfc3339(),
            };
            quarantine::quarantine(&dir, &path, &report).map_err(|error| Error::File { action: "cannot quarantine", path, error })
        })
        .await??;
        let (entry, recorded) = (file.entry(None), reason.clone());
        self.on_ledger(move |ledger, source| ledger.record_quarantined(source, &entry, &recorded)).await?;
        events::emit(FileQuarantined { source: &self.name, file: &file.name, reason: &reason });
        self.totals.quarantined += 1;
        Ok(())
    }

    /// Keeps, archives or deletes committed source files, as configured. A downloaded copy is
    /// never kept: the original stays on the server, and the ledger remembers it.
    pub(super) async fn after_commit(&self, files: Vec<AdmittedFile>) -> Result<(), Error> {
        let (policy, archive_dir, downloads) = (self.config.after_commit, self.config.archive_dir.clone(), self.config.kind.downloads());
        let failures = Source::blocking("archiving", move || {
            files
                .into_iter()
                .filter_map(|file| {
                    let result = match (policy, &archive_dir) {
                        (AfterCommit::Keep, _) if downloads => std::fs::remove_file(&file.path),
                        (AfterCommit::Keep, _) => Ok(()),
                        // The recorded name back to its bytes, so the archive keeps the name the file had.
                        (AfterCommit::Archive, Some(dir)) => {
                            quarantine::move_file(&file.path, &dir.join(crate::discover::to_os_string(&file.name)))
                        }
                        (AfterCommit::Archive, None) => Ok(()),
                        (AfterCommit::Delete, _) => std::fs::remove_file(&file.path),
                    };
                    result.err().map(|e| (file.name, e))
                })
                .collect::<Vec<_>>()
        })
        .await?;
        for (file, error) in &failures {
            events::emit(DispositionFailed { source: &self.name, file, error });
        }
        Ok(())
    }

    /// Deletes a downloaded copy nothing will read (the original stays on the server).
    pub(super) async fn discard_download(&self, candidate: &Candidate) -> Result<(), Error> {
        if !self.config.kind.downloads() {
            return Ok(());
        }
        let path = candidate.path.clone();
        if let Err(error) = Source::blocking("deleting a download", move || std::fs::remove_file(path)).await? {
            events::emit(DispositionFailed { source: &self.name, file: &candidate.name, error: &error });
        }
        Ok(())
    }
}

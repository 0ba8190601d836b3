//! The redo of an interrupted batch: some sinks hold it, the others get exactly the same batch
//! (same files, same seq, same `_ingested_at`), or it is stuck. Recovery decides when; this
//! file only does it.

use super::Source;
use crate::admit::{self, AdmittedFile};
use crate::error::Error;
use crate::events::{self, BatchReplaying};
use crate::ledger::{BatchEntry, FileEntry};
use std::path::{Path, PathBuf};
use std::time::Instant;

impl Source {
    /// Commits batch `batch` to the sinks named in `missing`, under its own seq.
    pub(super) async fn replay(&mut self, batch: &BatchEntry, missing: &[String]) -> Result<(), Error> {
        let stuck = |reason: String| Error::Stuck { batch: batch.seq, missing_sinks: missing.to_vec(), reason };
        let files = self.files_of(batch).await?;
        if files.len() != batch.files.len() {
            return Err(stuck("some of its files are gone or changed".into()));
        }
        let Some(first) = files.first() else { return Err(stuck("the ledger lists no files for it".into())) };
        events::emit(BatchReplaying { source: &self.name, batch: batch.seq, sinks: missing });
        let started = Instant::now();
        let mapping = self.mapping_for(&files).await?.map_err(|e| stuck(format!("{} no longer reads as it did: {e}", first.name)))?;
        let targets: Vec<usize> = (0..self.sinks.len()).filter(|&i| missing.iter().any(|s| s == self.sinks[i].name())).collect();
        let ingested_at = batch.ingested_at_us.unwrap_or_else(|| chrono::Utc::now().timestamp_micros());
        let written = match self.write(&files, mapping, &targets, ingested_at).await? {
            Ok(written) => written,
            Err((index, _)) => return Err(stuck(format!("{} no longer reads as it did", files[index].name))),
        };
        if written.per_file.len() != files.len() {
            return Err(stuck("it no longer fits max_rows".into()));
        }
        crate::fault_point!("after_decode");
        self.commit_written(batch.seq, &files, written, ingested_at, true, started).await.map(drop)
    }

    /// The files of a recorded batch that are still as recorded: same size and mtime in the
    /// folder, or (for batches rebuilt from a sink, which knows only names and hashes) the
    /// same content in the folder or the archive.
    pub(super) async fn files_of(&self, batch: &BatchEntry) -> Result<Vec<AdmittedFile>, Error> {
        let (path, archive, entries) = (self.config.path.clone(), self.config.archive_dir.clone(), batch.files.clone());
        Source::blocking("finding a batch's files", move || {
            // The same absolute paths discovery hands on, so the queue knows them as the same files.
            let root = path.canonicalize().unwrap_or(path);
            entries.iter().filter_map(|entry| find(&root, archive.as_deref(), entry)).collect()
        })
        .await
    }
}

/// A recorded file as it is now, if it still is what was recorded.
fn find(root: &Path, archive: Option<&Path>, entry: &FileEntry) -> Option<AdmittedFile> {
    let (Some(size), Some(mtime_ns)) = (entry.size, entry.mtime_ns) else {
        return find_by_content(root, archive, entry);
    };
    let file = AdmittedFile {
        path: root.join(crate::discover::to_os_string(&entry.name)),
        name: entry.name.clone(),
        size,
        mtime_ns,
        hash: entry.hash.clone(),
        ready_at: Instant::now(),
    };
    // A file rewritten since is not the content the ledger recorded.
    file.unchanged_on_disk().then_some(file)
}

fn find_by_content(root: &Path, archive: Option<&Path>, entry: &FileEntry) -> Option<AdmittedFile> {
    let folders = std::iter::once(root.to_path_buf()).chain(archive.map(PathBuf::from));
    // Recorded names are escaped where the file's are not UTF-8: joined as the file's bytes.
    let on_disk = crate::discover::to_os_string(&entry.name);
    folders.map(|dir| dir.join(&on_disk)).find_map(|path| {
        let (size, mtime_ns) = crate::discover::stat(&path)?;
        let hash = admit::hash_file(&path).ok()?;
        (hash == entry.hash).then(|| AdmittedFile { name: entry.name.clone(), size, mtime_ns, hash, path, ready_at: Instant::now() })
    })
}

//! Stage 2, admit: decide, with the ledger, whether a ready file is new, already done, or a
//! duplicate of content already committed. Only new files go on to be decoded.

use crate::discover::Candidate;
use crate::ledger::{FileEntry, FileState, Ledger, LedgerError};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// A new file, hashed, waiting for its batch.
#[derive(Debug, Clone, PartialEq)]
pub struct AdmittedFile {
    pub path: PathBuf,
    pub name: String,
    pub size: u64,
    pub mtime_ns: i64,
    /// BLAKE3 of the bytes as stored, hex.
    pub hash: String,
    pub ready_at: Instant,
}

impl AdmittedFile {
    /// Whether the file on disk still has the size and mtime it had when it was hashed (if not,
    /// the hash no longer describes its bytes).
    pub fn unchanged_on_disk(&self) -> bool {
        crate::discover::stat(&self.path) == Some((self.size, self.mtime_ns))
    }

    /// This file as discovery handed it on, to be offered again.
    pub fn candidate(&self, source: &str) -> Candidate {
        Candidate { source: source.to_string(), path: self.path.clone(), name: self.name.clone(), size: self.size, mtime_ns: self.mtime_ns }
    }

    /// The ledger's view of this file, with the rows it gave.
    pub fn entry(&self, rows: Option<u64>) -> FileEntry {
        FileEntry { name: self.name.clone(), size: Some(self.size), mtime_ns: Some(self.mtime_ns), hash: self.hash.clone(), rows }
    }
}

/// What admission decided.
#[derive(Debug)]
pub enum Admission {
    New(AdmittedFile),
    /// The ledger already has this exact file (same name, size and mtime).
    Known(FileState),
    /// Its content was already committed, or is waiting to be (`committed` false), under
    /// another name.
    Duplicate {
        file: AdmittedFile,
        of: String,
        committed: bool,
    },
    /// A committed file rewritten with new content, and the policy says not to ingest it.
    IgnoredOverwrite(AdmittedFile),
}

#[derive(Debug, thiserror::Error)]
pub enum AdmitError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("cannot read {path} to hash it: {source}")]
    Read { path: PathBuf, source: std::io::Error },
}

/// What the ledger says of a candidate whose content hash is known. Runs on the ledger thread;
/// [`with_queue`] then adds what the queue of admitted files knows. `allow_overwrites` is the
/// source's policy for rewritten files.
pub fn judge(ledger: &Ledger, candidate: &Candidate, hash: String, allow_overwrites: bool) -> Result<Admission, LedgerError> {
    if let Some(state) = ledger.known(&candidate.source, &candidate.name, candidate.size, candidate.mtime_ns)? {
        return Ok(Admission::Known(state));
    }
    let file = AdmittedFile {
        path: candidate.path.clone(),
        name: candidate.name.clone(),
        size: candidate.size,
        mtime_ns: candidate.mtime_ns,
        hash,
        ready_at: Instant::now(),
    };
    if ledger.adopt(&candidate.source, &file.name, &file.hash, file.size, file.mtime_ns)? {
        return Ok(Admission::Known(FileState::Committed));
    }
    Ok(match ledger.holder_of(&candidate.source, &file.hash)? {
        Some((of, committed)) => Admission::Duplicate { file, of, committed },
        None if !allow_overwrites && ledger.committed_name(&candidate.source, &candidate.name)? => Admission::IgnoredOverwrite(file),
        None => Admission::New(file),
    })
}

/// Completes the ledger's verdict with the queue: `pending` maps content hashes admitted but not
/// yet committed to their file names. Content already queued under another name is a duplicate
/// waiting for its twin; under the same name it is the same file offered twice.
pub fn with_queue(admission: Admission, pending: &dyn Fn(&str) -> Option<String>) -> Admission {
    let queued = match &admission {
        Admission::New(file) | Admission::IgnoredOverwrite(file) => pending(&file.hash).map(|name| (name == file.name, name)),
        _ => None,
    };
    match (queued, admission) {
        (Some((true, _)), _) => Admission::Known(FileState::InFlight),
        (Some((false, of)), Admission::New(file) | Admission::IgnoredOverwrite(file)) => {
            Admission::Duplicate { file, of, committed: false }
        }
        (_, admission) => admission,
    }
}

/// [`hash_file`] of each path, on up to `threads` threads; results in input order.
pub fn hash_files(paths: &[&Path], threads: usize) -> Vec<Result<String, AdmitError>> {
    let hashed = crate::pool::map_indexed(paths.len(), threads, |i| hash_file(paths[i]));
    // A worker that died leaves gaps: those files are hashed here instead.
    hashed.into_iter().enumerate().map(|(i, result)| result.unwrap_or_else(|| hash_file(paths[i]))).collect()
}

/// BLAKE3 of a file's bytes, hex.
pub fn hash_file(path: &Path) -> Result<String, AdmitError> {
    let mut hasher = blake3::Hasher::new();
    let read = |e| AdmitError::Read { path: path.to_path_buf(), source: e };
    let file = std::fs::File::open(path).map_err(read)?;
    hasher.update_reader(file).map_err(read)?;
    Ok(hasher.finalize().to_hex().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(dir: &std::path::Path, name: &str, content: &str) -> Candidate {
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        Candidate { source: "s".into(), path, name: name.into(), size: content.len() as u64, mtime_ns: 1 }
    }

    /// The whole admission of one candidate, as a source runs it.
    fn admit(ledger: &Ledger, c: &Candidate, pending: &dyn Fn(&str) -> Option<String>, overwrites: bool) -> Result<Admission, LedgerError> {
        let hash = hash_file(&c.path).unwrap();
        judge(ledger, c, hash, overwrites).map(|a| with_queue(a, pending))
    }

    #[test]
    fn new_known_and_duplicate_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(&dir.path().join("state")).unwrap();
        let none = |_: &str| None;
        let a = candidate(dir.path(), "a", "[1]");
        let Admission::New(file) = admit(&ledger, &a, &none, true).unwrap() else { panic!("a is new") };
        assert_eq!(file.hash, blake3::hash(b"[1]").to_hex().to_string());

        ledger
            .begin_batch(&crate::ledger::BatchEntry { source: "s".into(), seq: 1, files: vec![file.entry(Some(1))], ingested_at_us: None })
            .unwrap();
        ledger.finish_batch("s", 1).unwrap();
        assert!(matches!(admit(&ledger, &a, &none, true).unwrap(), Admission::Known(FileState::Committed)));

        let copy = candidate(dir.path(), "a copy", "[1]");
        match admit(&ledger, &copy, &none, true).unwrap() {
            Admission::Duplicate { of, committed, .. } => assert_eq!((of.as_str(), committed), ("a", true)),
            other => panic!("expected a duplicate, got {other:?}"),
        }
        let b = candidate(dir.path(), "b", "[2]");
        let waiting = |h: &str| (h == blake3::hash(b"[2]").to_hex().as_str()).then(|| "b0".to_string());
        assert!(matches!(admit(&ledger, &b, &waiting, true).unwrap(), Admission::Duplicate { .. }));
        let queued = |h: &str| (h == blake3::hash(b"[2]").to_hex().as_str()).then(|| "b".to_string());
        assert!(matches!(admit(&ledger, &b, &queued, true).unwrap(), Admission::Known(FileState::InFlight)), "b offered twice");

        // "a" rewritten in place with new content: new rows, or ignored, as the policy says.
        let rewritten = Candidate { mtime_ns: 2, ..candidate(dir.path(), "a", "[3]") };
        assert!(matches!(admit(&ledger, &rewritten, &none, true).unwrap(), Admission::New(_)));
        assert!(matches!(admit(&ledger, &rewritten, &none, false).unwrap(), Admission::IgnoredOverwrite(_)));
    }

    #[test]
    fn files_hashed_in_parallel_come_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<PathBuf> = (0..9).map(|i| candidate(dir.path(), &format!("f{i}"), &"x".repeat(i)).path).collect();
        let mut refs: Vec<&Path> = paths.iter().map(|p| p.as_path()).collect();
        let missing = dir.path().join("missing");
        refs.push(&missing);
        let hashes = hash_files(&refs, 3);
        for (i, hash) in hashes.iter().take(9).enumerate() {
            assert_eq!(hash.as_ref().unwrap(), &blake3::hash("x".repeat(i).as_bytes()).to_hex().to_string());
        }
        assert!(matches!(&hashes[9], Err(AdmitError::Read { .. })));
    }
}

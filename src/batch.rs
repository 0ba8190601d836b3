//! Stage 5, batch: coalesce admitted files into micro-batches, so a backlog of small files
//! becomes a few commits of large files rather than a table of tiny ones.

use crate::admit::AdmittedFile;
use crate::config::BatchConfig;
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Admitted files waiting, oldest first, indexed by path and by content hash (a backlog can
/// hold many thousands of files, and every admission asks both questions).
#[derive(Debug)]
pub struct Batcher {
    queue: VecDeque<AdmittedFile>,
    paths: HashMap<PathBuf, String>,
    hashes: HashMap<String, String>,
    limits: BatchConfig,
}

impl Batcher {
    pub fn new(limits: BatchConfig) -> Batcher {
        Batcher { queue: VecDeque::new(), paths: HashMap::new(), hashes: HashMap::new(), limits }
    }

    fn index(&mut self, file: &AdmittedFile) {
        self.paths.insert(file.path.clone(), file.hash.clone());
        self.hashes.insert(file.hash.clone(), file.name.clone());
    }

    fn unindex(&mut self, file: &AdmittedFile) {
        self.paths.remove(&file.path);
        if self.hashes.get(&file.hash) == Some(&file.name) {
            self.hashes.remove(&file.hash);
        }
    }

    /// Queues a file; a newer version of a file already queued (same path) replaces it.
    pub fn push(&mut self, file: AdmittedFile) {
        if self.paths.contains_key(&file.path) {
            if let Some(position) = self.queue.iter().position(|queued| queued.path == file.path) {
                let old = std::mem::replace(&mut self.queue[position], file.clone());
                self.unindex(&old);
            }
        } else {
            self.queue.push_back(file.clone());
        }
        self.index(&file);
    }

    /// Returns files that were taken but not committed to the front, in their order, unless a
    /// newer version of the same path was queued meanwhile.
    pub fn put_back(&mut self, files: Vec<AdmittedFile>) {
        for file in files.into_iter().rev() {
            if !self.paths.contains_key(&file.path) {
                self.index(&file);
                self.queue.push_front(file);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// The file waiting under this content hash, if any.
    pub fn holder_of(&self, hash: &str) -> Option<String> {
        self.hashes.get(hash).cloned()
    }

    /// How long the oldest file has waited; `None` when empty.
    pub fn oldest_wait(&self, now: Instant) -> Option<Duration> {
        self.queue.front().map(|f| now.saturating_duration_since(f.ready_at))
    }

    /// When the oldest file has waited for `max_delay`; `None` when empty.
    pub fn due_in(&self, now: Instant) -> Option<Duration> {
        let oldest = self.queue.front()?;
        Some((oldest.ready_at + self.limits.max_delay.0).saturating_duration_since(now))
    }

    /// The next batch, if one is due: the limits on files or bytes are reached, the oldest file
    /// has waited `max_delay`, or `flush` asks for whatever is there.
    pub fn next_batch(&mut self, now: Instant, flush: bool) -> Option<Vec<AdmittedFile>> {
        let mut count = 0;
        let mut bytes = 0u64;
        for file in &self.queue {
            if count == self.limits.max_files || (count > 0 && bytes + file.size > self.limits.max_bytes.0) {
                break;
            }
            count += 1;
            bytes += file.size;
        }
        let full = count < self.queue.len() || count == self.limits.max_files || bytes >= self.limits.max_bytes.0;
        let due = self.due_in(now).is_some_and(|d| d.is_zero());
        if count == 0 || !(full || due || flush) {
            return None;
        }
        let taken: Vec<AdmittedFile> = self.queue.drain(..count).collect();
        for file in &taken {
            self.unindex(file);
        }
        Some(taken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::units::{ByteSize, HumanDuration};

    fn file(name: &str, size: u64, ready_at: Instant) -> AdmittedFile {
        AdmittedFile { path: name.into(), name: name.into(), size, mtime_ns: 0, hash: name.into(), ready_at }
    }

    fn limits(max_files: usize, max_bytes: u64, delay_ms: u64) -> BatchConfig {
        BatchConfig {
            max_files,
            max_rows: 1_000,
            max_bytes: ByteSize(max_bytes),
            max_delay: HumanDuration(Duration::from_millis(delay_ms)),
        }
    }

    #[test]
    fn a_batch_waits_for_company_until_max_delay() {
        let t0 = Instant::now();
        let mut batcher = Batcher::new(limits(3, 1_000, 100));
        batcher.push(file("a", 10, t0));
        assert!(batcher.next_batch(t0, false).is_none());
        assert_eq!(batcher.due_in(t0), Some(Duration::from_millis(100)));
        let batch = batcher.next_batch(t0 + Duration::from_millis(100), false).unwrap();
        assert_eq!(batch.len(), 1);
    }

    #[test]
    fn files_and_bytes_close_a_batch_and_order_is_kept() {
        let t0 = Instant::now();
        let mut batcher = Batcher::new(limits(2, 1_000, 10_000));
        for name in ["a", "b", "c"] {
            batcher.push(file(name, 10, t0));
        }
        let names = |b: Vec<AdmittedFile>| b.into_iter().map(|f| f.name).collect::<Vec<_>>();
        assert_eq!(names(batcher.next_batch(t0, false).unwrap()), ["a", "b"]);
        assert!(batcher.next_batch(t0, false).is_none(), "one file, not due");
        let mut bytes = Batcher::new(limits(10, 25, 10_000));
        for name in ["x", "y", "z"] {
            bytes.push(file(name, 10, t0));
        }
        let first = bytes.next_batch(t0, false).unwrap();
        assert_eq!(names(first.clone()), ["x", "y"]);
        bytes.put_back(first);
        assert_eq!(bytes.len(), 3);
        assert_eq!(names(bytes.next_batch(t0, true).unwrap()), ["x", "y"]);
        assert_eq!(names(bytes.next_batch(t0, true).unwrap()), ["z"]);
    }

    #[test]
    fn a_path_is_queued_once_with_its_newest_version() {
        let t0 = Instant::now();
        let mut batcher = Batcher::new(limits(10, 1_000, 0));
        batcher.push(file("a", 1, t0));
        batcher.push(AdmittedFile { hash: "new".into(), ..file("a", 2, t0) });
        assert_eq!(batcher.len(), 1);
        let taken = batcher.next_batch(t0, true).unwrap();
        assert_eq!(taken[0].hash, "new");
        batcher.push(AdmittedFile { hash: "newer".into(), ..file("a", 3, t0) });
        batcher.put_back(taken);
        assert_eq!(batcher.len(), 1, "a stale version is not put back over a newer one");
        assert_eq!(batcher.next_batch(t0, true).unwrap()[0].hash, "newer");
    }

    #[test]
    fn one_file_larger_than_max_bytes_is_a_batch_of_its_own() {
        let t0 = Instant::now();
        let mut batcher = Batcher::new(limits(10, 5, 10_000));
        batcher.push(file("big", 50, t0));
        batcher.push(file("small", 1, t0));
        assert_eq!(batcher.next_batch(t0, false).unwrap()[0].name, "big");
    }
}

//! A drop folder: inotify (through `notify`) for speed, a full listing at start and at every
//! `relist_interval` for completeness, and a readiness check so a half-written file is never
//! handed on.

use super::Candidate;
use super::filter::FileFilter;
use crate::config::SourceConfig;
use notify::event::{EventKind, ModifyKind, RenameMode};
use notify::{RecursiveMode, Watcher};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tracing::{debug, warn};

/// What was last seen of a file, and since when it has looked like that.
#[derive(Debug, Clone, Copy)]
struct Observation {
    size: u64,
    mtime_ns: i64,
    unchanged_since: Instant,
    /// Renamed into the folder: complete by construction, no need to wait.
    renamed_in: bool,
}

/// Discovery state of one folder source.
pub struct FolderSource {
    source: String,
    root: PathBuf,
    filter: FileFilter,
    recursive: bool,
    follow_symlinks: bool,
    min_age: Duration,
    relist_interval: Duration,
    next_relist: Instant,
    watching: Vec<(notify::RecommendedWatcher, mpsc::Receiver<notify::Result<notify::Event>>)>,
    /// Files seen but not yet ready.
    waiting: HashMap<PathBuf, Observation>,
    /// Files handed on, with the (size, mtime) they had, so a listing does not hand them on twice.
    handed_on: HashMap<PathBuf, (u64, i64)>,
    /// The open lock file; the lock lasts as long as this source.
    _lock: std::fs::File,
}

/// Why a folder source cannot start.
#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    #[error("source {name}: bad include/exclude pattern: {error}")]
    Pattern { name: String, error: globset::Error },
    #[error("source {name}: folder {path}: {error}")]
    Folder { name: String, path: PathBuf, error: std::io::Error },
    #[error("source {name}: folder {path} is already watched by another ingestd process (it holds {LOCK_FILE}); one folder, one daemon")]
    Locked { name: String, path: PathBuf },
}

/// Held (flock) by the process watching a folder, so two daemons never share one.
pub const LOCK_FILE: &str = ".ingestd.lock";

impl FolderSource {
    /// Creates the folder if missing. The root is made absolute because notifications carry
    /// absolute paths.
    pub fn new(source: &str, config: &SourceConfig) -> Result<FolderSource, FolderError> {
        let folder_error = |error| FolderError::Folder { name: source.to_string(), path: config.path.clone(), error };
        std::fs::create_dir_all(&config.path).map_err(folder_error)?;
        let root = config.path.canonicalize().map_err(folder_error)?;
        let Some(lock) = super::lock_exclusive(&root.join(LOCK_FILE)).map_err(folder_error)? else {
            return Err(FolderError::Locked { name: source.to_string(), path: root });
        };
        Ok(FolderSource {
            source: source.to_string(),
            root,
            filter: FileFilter::new(&config.include, &config.exclude)
                .map_err(|error| FolderError::Pattern { name: source.to_string(), error })?,
            recursive: config.recursive,
            follow_symlinks: config.follow_symlinks,
            // Files land in a landing folder whole (renamed in after download or upload).
            min_age: if config.kind.downloads() { Duration::ZERO } else { config.min_age.0 },
            relist_interval: config.relist_interval.0,
            next_relist: Instant::now(),
            watching: Vec::new(),
            waiting: HashMap::new(),
            handed_on: HashMap::new(),
            _lock: lock,
        })
    }

    /// Subscribes to file-system notifications for the folder.
    /// The source's name in the config.
    pub fn name(&self) -> &str {
        &self.source
    }

    pub fn watch(&mut self) -> Result<(), notify::Error> {
        let (tx, rx) = mpsc::channel();
        let mut watcher = notify::recommended_watcher(move |event| {
            let _ = tx.send(event);
        })?;
        let mode = if self.recursive { RecursiveMode::Recursive } else { RecursiveMode::NonRecursive };
        watcher.watch(&self.root, mode)?;
        self.watching.push((watcher, rx));
        Ok(())
    }

    /// Files seen but not yet ready (still being written, or younger than `min_age`).
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Processes notifications, lists the folder when due, and returns the files now ready.
    /// `wait` bounds how long to block for a notification when nothing is ready yet.
    pub fn poll(&mut self, wait: Duration) -> Vec<Candidate> {
        let now = Instant::now();
        if now >= self.next_relist {
            self.relist(now);
            self.next_relist = now + self.relist_interval;
        }
        self.drain_notifications(wait);
        self.take_ready(Instant::now())
    }

    fn drain_notifications(&mut self, wait: Duration) {
        let mut events = Vec::new();
        let mut rescan = false;
        for (_, rx) in &self.watching {
            let first = if wait.is_zero() { rx.try_recv().ok() } else { rx.recv_timeout(wait).ok() };
            for event in first.into_iter().chain(rx.try_iter()) {
                match event {
                    Ok(event) => {
                        rescan |= event.need_rescan();
                        events.push(event);
                    }
                    Err(e) => {
                        warn!(source = %self.source, error = %e, "file notification error; listing the folder again");
                        rescan = true;
                    }
                }
            }
        }
        for event in events {
            let renamed_in = matches!(event.kind, EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both)));
            let path = match event.kind {
                EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => event.paths.get(1),
                EventKind::Create(_) | EventKind::Modify(_) => event.paths.first(),
                EventKind::Remove(_) => {
                    for path in &event.paths {
                        self.waiting.remove(path);
                        self.handed_on.remove(path);
                    }
                    None
                }
                _ => None,
            };
            if let Some(path) = path {
                self.observe(path.clone(), Instant::now(), renamed_in);
            }
        }
        if rescan {
            self.next_relist = Instant::now();
        }
    }

    /// Lists the folder in full; files no longer present are forgotten.
    fn relist(&mut self, now: Instant) {
        let mut present = Vec::new();
        self.walk(&self.root.clone(), &mut present);
        let present_set: std::collections::HashSet<&PathBuf> = present.iter().collect();
        self.handed_on.retain(|p, _| present_set.contains(p));
        self.waiting.retain(|p, _| present_set.contains(p));
        for path in present {
            self.observe(path, now, false);
        }
    }

    fn walk(&self, dir: &Path, out: &mut Vec<PathBuf>) {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) => {
                warn!(source = %self.source, folder = %dir.display(), error = %e, "cannot list folder");
                return;
            }
        };
        for entry in entries.flatten() {
            let path = entry.path();
            // Entries can vanish between the listing and this look: that is normal, not an error.
            let Ok(file_type) = entry.file_type() else { continue };
            let is_dir = if file_type.is_symlink() {
                if !self.follow_symlinks {
                    continue;
                }
                std::fs::metadata(&path).map(|m| m.is_dir()).unwrap_or(false)
            } else {
                file_type.is_dir()
            };
            if is_dir {
                // The name's first byte: the test the filter makes on recorded names, without a lossy copy.
                let hidden = path.file_name().is_some_and(|n| n.as_encoded_bytes().starts_with(b"."));
                if self.recursive && !hidden {
                    self.walk(&path, out);
                }
            } else {
                out.push(path);
            }
        }
    }

    fn observe(&mut self, path: PathBuf, now: Instant, renamed_in: bool) {
        let Some(relative) = self.relative_name(&path) else { return };
        if !self.filter.accepts(&relative) {
            return;
        }
        let Some((size, mtime_ns)) = self.stat(&path) else {
            self.waiting.remove(&path);
            return;
        };
        if self.handed_on.get(&path) == Some(&(size, mtime_ns)) {
            return;
        }
        match self.waiting.get_mut(&path) {
            Some(seen) if seen.size == size && seen.mtime_ns == mtime_ns => seen.renamed_in |= renamed_in,
            _ => {
                // A file whose mtime is already older than min_age has not changed for that long.
                let age = age_of(mtime_ns);
                let unchanged_since = if age >= self.min_age { now.checked_sub(age).unwrap_or(now) } else { now };
                self.waiting.insert(path, Observation { size, mtime_ns, unchanged_since, renamed_in });
            }
        }
    }

    fn take_ready(&mut self, now: Instant) -> Vec<Candidate> {
        let mut ready = Vec::new();
        let paths: Vec<PathBuf> = self.waiting.keys().cloned().collect();
        for path in paths {
            let Some(seen) = self.waiting.get(&path).copied() else { continue };
            let old_enough = now.duration_since(seen.unchanged_since) >= self.min_age;
            if !(seen.renamed_in || old_enough) {
                continue;
            }
            // Look once more: a writer may have appended since the last event.
            match self.stat(&path) {
                Some((size, mtime_ns)) if size == seen.size && mtime_ns == seen.mtime_ns => {
                    self.waiting.remove(&path);
                    let Some(name) = self.relative_name(&path) else { continue };
                    debug!(source = %self.source, file = %name, size, "file ready");
                    self.handed_on.insert(path.clone(), (size, mtime_ns));
                    ready.push(Candidate { source: self.source.clone(), path, name, size, mtime_ns });
                }
                Some(_) => self.observe(path, now, false),
                None => {
                    self.waiting.remove(&path);
                }
            }
        }
        ready.sort_by(|a, b| a.name.cmp(&b.name));
        ready
    }

    fn stat(&self, path: &Path) -> Option<(u64, i64)> {
        super::stat_file(path, self.follow_symlinks)
    }

    /// The recorded name of a path below the root: each component in [`super::file_name`]'s
    /// injective form, so names that differ only in bytes that are not UTF-8 stay apart. The
    /// form never makes a `/`, so the joined name still splits back into its components.
    fn relative_name(&self, path: &Path) -> Option<String> {
        let relative = path.strip_prefix(&self.root).ok()?;
        let parts: Vec<String> = relative.components().map(|c| super::file_name(c.as_os_str())).collect();
        (!parts.is_empty()).then(|| parts.join("/"))
    }
}

fn age_of(mtime_ns: i64) -> Duration {
    let mtime = UNIX_EPOCH + Duration::from_nanos(mtime_ns.max(0) as u64);
    SystemTime::now().duration_since(mtime).unwrap_or(Duration::ZERO)
}

#[cfg(test)]
mod tests;

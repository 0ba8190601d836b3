//! The landing folder of a source: where downloaded and pushed files arrive. A file is written
//! under `.ingestd-partial/` (hidden, so discovery never sees it), hashed and counted as it
//! streams, fsynced, and only then renamed to its name: the folder source sees complete files
//! only, and an interrupted transfer leaves nothing behind (its partial file is deleted on
//! drop, or at the next start after a crash).

use std::path::{Path, PathBuf};
use std::time::SystemTime;
use tokio::io::AsyncWriteExt;

const PARTIAL_DIR: &str = ".ingestd-partial";

#[derive(Debug, Clone)]
pub struct Landing {
    root: PathBuf,
}

/// Why a name cannot be a file in the landing folder.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("file name {name:?}: {reason}")]
pub struct BadName {
    pub name: String,
    pub reason: &'static str,
}

/// A file that arrived whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Landed {
    pub path: PathBuf,
    pub size: u64,
    /// BLAKE3 of its bytes, hex (what the ledger calls its content hash).
    pub hash: String,
}

/// Checks a file name (sub-folders joined with `/` allowed when `nested`): no empty, `.` or
/// `..` part, no hidden part, no NUL or other control character, no backslash.
pub fn check_name(name: &str, nested: bool) -> Result<(), BadName> {
    let bad = |reason| Err(BadName { name: name.to_string(), reason });
    if name.is_empty() {
        return bad("empty");
    }
    if name.chars().any(char::is_control) {
        return bad("contains NUL or a control character");
    }
    if name.contains('\\') {
        return bad("contains a backslash");
    }
    if !nested && name.contains('/') {
        return bad("contains a path separator");
    }
    for part in name.split('/') {
        if part.is_empty() || part == "." || part == ".." {
            return bad("has an empty, '.' or '..' path component");
        }
        if part.starts_with('.') {
            return bad("has a hidden (dot) component");
        }
        // Linux file systems refuse a longer component (NAME_MAX): it could never land.
        if part.len() > 255 {
            return bad("has a path component longer than 255 bytes");
        }
    }
    if name.len() > 1024 {
        return bad("longer than 1024 bytes");
    }
    Ok(())
}

impl Landing {
    /// Creates the folder and deletes partial files a crash left. Call once per process
    /// and folder, before anything writes to it; later writers use [`Landing::at`].
    pub fn open(root: &Path) -> std::io::Result<Landing> {
        let landing = Landing::at(root)?;
        for entry in std::fs::read_dir(root.join(PARTIAL_DIR))?.flatten() {
            let _ = std::fs::remove_file(entry.path());
        }
        Ok(landing)
    }

    /// The landing folder at `root`, created if missing, partial files left alone.
    pub fn at(root: &Path) -> std::io::Result<Landing> {
        std::fs::create_dir_all(root.join(PARTIAL_DIR))?;
        Ok(Landing { root: root.to_path_buf() })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where `name` lands.
    pub fn path_of(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Starts writing `name` (checked by [`check_name`]); `limit` is the most bytes accepted.
    pub async fn start(&self, name: &str, limit: u64) -> Result<Partial, PartialError> {
        check_name(name, true)?;
        let path = self.root.join(PARTIAL_DIR).join(format!("{}.part", crate::temp_name::unique()));
        let file = tokio::fs::File::create(&path).await.map_err(|e| PartialError::Io(format!("{}: {e}", path.display())))?;
        Ok(Partial {
            temp: TempFile(path),
            file: tokio::io::BufWriter::with_capacity(256 << 10, file),
            target: self.root.join(name),
            written: 0,
            limit,
            hasher: blake3::Hasher::new(),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PartialError {
    #[error(transparent)]
    Name(#[from] BadName),
    #[error("larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("{received} bytes received, {expected} announced")]
    Length { received: u64, expected: u64 },
    #[error("{0}")]
    Io(String),
}

/// A file being written; deleted unless [`Partial::finish`] renames it into place.
pub struct Partial {
    temp: TempFile,
    file: tokio::io::BufWriter<tokio::fs::File>,
    target: PathBuf,
    written: u64,
    limit: u64,
    hasher: blake3::Hasher,
}

struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.0.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

impl Partial {
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), PartialError> {
        self.written += chunk.len() as u64;
        if self.written > self.limit {
            return Err(PartialError::TooLarge { limit: self.limit });
        }
        self.hasher.update(chunk);
        self.file.write_all(chunk).await.map_err(|e| self.io(e))
    }

    pub fn written(&self) -> u64 {
        self.written
    }

    /// BLAKE3 of what was written so far.
    pub fn hash(&self) -> String {
        self.hasher.finalize().to_hex().to_string()
    }

    fn io(&self, e: std::io::Error) -> PartialError {
        PartialError::Io(format!("{}: {e}", self.temp.0.display()))
    }

    /// Checks the length against `expected` (if known), makes the bytes durable, sets the
    /// modification time (if known) and renames the file to its name, replacing an older copy.
    pub async fn finish(mut self, expected: Option<u64>, modified: Option<SystemTime>) -> Result<Landed, PartialError> {
        if let Some(expected) = expected.filter(|&e| e != self.written) {
            return Err(PartialError::Length { received: self.written, expected });
        }
        self.file.flush().await.map_err(|e| self.io(e))?;
        let file = self.file.get_mut();
        file.sync_all().await.map_err(|e| PartialError::Io(e.to_string()))?;
        let std_file = file.try_clone().await.map_err(|e| PartialError::Io(e.to_string()))?.into_std().await;
        if let Some(modified) = modified {
            std_file.set_modified(modified).map_err(|e| PartialError::Io(e.to_string()))?;
        }
        if let Some(parent) = self.target.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(|e| PartialError::Io(format!("{}: {e}", parent.display())))?;
        }
        let temp = std::mem::take(&mut self.temp.0);
        if let Err(e) = tokio::fs::rename(&temp, &self.target).await {
            let _ = std::fs::remove_file(&temp);
            return Err(PartialError::Io(format!("renaming into {}: {e}", self.target.display())));
        }
        if let Some(parent) = self.target.parent() {
            let _ = std::fs::File::open(parent).and_then(|d| d.sync_all());
        }
        Ok(Landed { path: self.target.clone(), size: self.written, hash: self.hasher.finalize().to_hex().to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_could_escape_or_hide_are_refused() {
        for bad in ["", "..", "a/../b", "a\0b", "a\nb", ".hidden", "a\\b", "a//b", "/abs"] {
            assert!(check_name(bad, true).is_err(), "{bad:?}");
        }
        assert!(check_name("a/b", false).is_err());
        for good in ["CO06037 2019-01-01", "x.json.gz", "2019/CO06037"] {
            check_name(good, true).unwrap();
        }
        // A component as long as a file system allows, and one byte more (found by fuzzing
        // the push endpoint: the landing's rename failed, answered 500 instead of 400).
        check_name(&format!("a/{}", "x".repeat(255)), true).unwrap();
        assert_eq!(check_name(&"é".repeat(128), false).unwrap_err().reason, "has a path component longer than 255 bytes");
    }

    #[tokio::test]
    async fn only_finished_files_appear_and_lengths_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let landing = Landing::open(dir.path()).unwrap();
        let mut partial = landing.start("sub/f", 100).await.unwrap();
        partial.write(b"hello").await.unwrap();
        assert!(!dir.path().join("sub/f").exists());
        let landed = partial.finish(Some(5), None).await.unwrap();
        assert_eq!(std::fs::read(&landed.path).unwrap(), b"hello");
        assert_eq!(landed.hash, blake3::hash(b"hello").to_hex().to_string());

        let mut short = landing.start("g", 100).await.unwrap();
        short.write(b"abc").await.unwrap();
        assert!(matches!(short.finish(Some(10), None).await, Err(PartialError::Length { received: 3, expected: 10 })));
        let mut big = landing.start("h", 4).await.unwrap();
        assert!(matches!(big.write(b"12345").await, Err(PartialError::TooLarge { .. })));
        drop(big);
        assert!(!dir.path().join("g").exists() && !dir.path().join("h").exists());
        assert_eq!(std::fs::read_dir(dir.path().join(PARTIAL_DIR)).unwrap().count(), 0, "partial files left");
    }
}

//! Files that cannot be ingested move to `<quarantine>/<source>/` with `<name>.error.json`
//! beside them, saying why and where. Nothing already committed is touched.

use crate::decode::Position;
use serde::Serialize;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

const REPORT_SUFFIX: &str = ".error.json";

/// The error report written beside a quarantined file.
#[derive(Debug, Serialize)]
pub struct ErrorReport<'a> {
    pub source: &'a str,
    /// The file's name in its source, as the ledger records it ([`crate::discover::file_name`]).
    pub file: &'a str,
    pub reason: &'a str,
    pub position: Option<Position>,
    /// BLAKE3 of the file's bytes, hex.
    pub hash: &'a str,
    pub ingestd_version: &'static str,
    pub time: String,
}

/// Where a source's quarantined files live.
pub fn source_dir(quarantine_dir: &Path, source: &str) -> PathBuf {
    quarantine_dir.join(source)
}

/// The file name a source file gets in quarantine (sub-folders flattened), from its recorded
/// name. The recorded form stays in the report.
pub fn quarantine_name(name: &str) -> String {
    name.replace('/', "__")
}

/// [`quarantine_name`] as it is on disk: the source file's own bytes, so a name that is not
/// UTF-8 is neither made lossy nor merged with another.
fn quarantine_file_name(name: &str) -> OsString {
    crate::discover::to_os_string(&quarantine_name(name))
}

/// Where the report of the quarantined file `file` is.
pub fn report_path(file: &Path) -> PathBuf {
    // Appended to the bytes: `display()` would make a name that is not UTF-8 lossy.
    let mut path = file.as_os_str().to_owned();
    path.push(REPORT_SUFFIX);
    PathBuf::from(path)
}

/// Moves `path` into quarantine and writes its error report. Returns the new path.
pub fn quarantine(quarantine_dir: &Path, path: &Path, report: &ErrorReport<'_>) -> std::io::Result<PathBuf> {
    let dir = source_dir(quarantine_dir, report.source);
    std::fs::create_dir_all(&dir)?;
    let base = quarantine_file_name(report.file);
    let mut target = dir.join(&base);
    let mut n = 1;
    while target.exists() {
        let mut numbered = base.clone();
        numbered.push(format!(".{n}"));
        target = dir.join(numbered);
        n += 1;
    }
    move_file(path, &target)?;
    let text = serde_json::to_vec_pretty(report).map_err(std::io::Error::other)?;
    std::fs::write(report_path(&target), text)?;
    Ok(target)
}

/// Renames, or copies and deletes when the target is on another file system.
pub fn move_file(from: &Path, to: &Path) -> std::io::Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::rename(from, to) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(18) => {
            // EXDEV: another file system.
            std::fs::copy(from, to)?;
            std::fs::File::open(to)?.sync_all()?;
            std::fs::remove_file(from)
        }
        Err(e) => Err(e),
    }
}

/// Quarantined files of a source with their reports: (file in quarantine, report JSON).
pub fn list(quarantine_dir: &Path, source: &str) -> std::io::Result<Vec<(PathBuf, serde_json::Value)>> {
    let dir = source_dir(quarantine_dir, source);
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let path = entry?.path();
        let Some(name) = path.file_name() else { continue };
        // On the bytes, so the quarantined file of a name that is not UTF-8 is found.
        if let Some(file) = name.as_bytes().strip_suffix(REPORT_SUFFIX.as_bytes()) {
            let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?).unwrap_or_default();
            out.push((dir.join(OsStr::from_bytes(file)), report));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quarantined_file_moves_with_its_report_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let q = dir.path().join("q");
        for round in 0..2 {
            let src = dir.path().join("bad file");
            std::fs::write(&src, format!("broken {round}")).unwrap();
            let report = ErrorReport {
                source: "attom",
                file: "sub/bad file",
                reason: "invalid JSON",
                position: Some(Position { record: Some(3), ..Default::default() }),
                hash: "abc",
                ingestd_version: "test",
                time: "now".into(),
            };
            quarantine(&q, &src, &report).unwrap();
            assert!(!src.exists());
        }
        let listed = list(&q, "attom").unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].0, q.join("attom/sub__bad file"));
        assert_eq!(std::fs::read_to_string(&listed[1].0).unwrap(), "broken 1");
        assert_eq!(listed[0].1["position"]["record"], 3);
        assert_eq!(listed[0].1["reason"], "invalid JSON");
    }

    #[test]
    fn names_that_are_not_utf8_keep_their_bytes_in_quarantine() {
        let dir = tempfile::tempdir().unwrap();
        let q = dir.path().join("q");
        let files: [(&[u8], &str); 2] = [(b"a\xfe", r"sub/a\xfe"), (b"a\xff", r"sub/a\xff")];
        for (on_disk, recorded) in files {
            let src = dir.path().join(OsStr::from_bytes(on_disk));
            std::fs::write(&src, recorded).unwrap();
            let report = ErrorReport {
                source: "s",
                file: recorded,
                reason: "bad",
                position: None,
                hash: "abc",
                ingestd_version: "test",
                time: "now".into(),
            };
            quarantine(&q, &src, &report).unwrap();
        }
        let listed = list(&q, "s").unwrap();
        assert_eq!(listed.len(), 2, "two files, not one under a lossy name");
        let in_quarantine: [&[u8]; 2] = [b"sub__a\xfe", b"sub__a\xff"];
        for ((file, report), on_disk) in listed.iter().zip(in_quarantine) {
            assert_eq!(file, &q.join("s").join(OsStr::from_bytes(on_disk)));
            assert_eq!(std::fs::read_to_string(file).unwrap(), report["file"].as_str().unwrap());
            assert!(report_path(file).exists());
        }
    }
}

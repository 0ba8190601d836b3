//! Sources on another machine (`http`, `s3`): a poller reads the listing every
//! `fetch.poll_interval`, downloads what is new or changed into the landing folder (see
//! [`super::landing`]), and the folder source on that folder hands the files on like dropped
//! ones. The checkpoint remembers what each name looked like when it was downloaded (ETag,
//! Last-Modified, size), so a poll asks the server only about changes; losing it costs
//! downloads, never rows (the ledger knows every committed content hash).

use crate::config::FetchConfig;
use crate::events::{self, Download, DownloadOutcome, PollFailed};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::watch;
use tracing::{info, warn};

/// What a remote name looked like when it was last downloaded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoteVersion {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_modified: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
}

impl RemoteVersion {
    /// Whether a listing's entry shows the same version, without asking for the file. Only a
    /// strong validator counts: an ETag, or a Last-Modified together with a size.
    pub fn listed_as(&self, listed: &RemoteVersion) -> bool {
        match (&listed.etag, &self.etag) {
            (Some(a), Some(b)) => a == b,
            _ => {
                listed.last_modified.is_some()
                    && listed.size.is_some()
                    && listed.last_modified == self.last_modified
                    && listed.size == self.size
            }
        }
    }
}

/// The versions downloaded, by name, kept in `<state_dir>/remote/<source>.json`.
pub struct Checkpoint {
    path: PathBuf,
    versions: BTreeMap<String, RemoteVersion>,
}

impl Checkpoint {
    /// Loads the checkpoint; a missing or unreadable one starts empty (with a warning).
    pub fn load(state_dir: &Path, source: &str) -> Checkpoint {
        let path = state_dir.join("remote").join(format!("{source}.json"));
        let versions = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                warn!(source, path = %path.display(), error = %e, "unreadable download checkpoint; every file is checked again");
                BTreeMap::new()
            }),
            Err(_) => BTreeMap::new(),
        };
        Checkpoint { path, versions }
    }

    pub fn get(&self, name: &str) -> Option<&RemoteVersion> {
        self.versions.get(name)
    }

    /// Records `name` as downloaded at `version` and writes the checkpoint (atomically).
    pub fn record(&mut self, name: &str, version: RemoteVersion) -> std::io::Result<()> {
        self.versions.insert(name.to_string(), version);
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let temp = self.path.with_extension("json.tmp");
        std::fs::write(&temp, serde_json::to_vec_pretty(&self.versions).map_err(std::io::Error::other)?)?;
        std::fs::rename(&temp, &self.path)
    }
}

/// What one poll did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PollReport {
    pub listed: usize,
    pub landed: usize,
    pub failed: usize,
}

impl PollReport {
    /// Counts and logs a file that landed, and records its version in the checkpoint.
    pub fn landed(&mut self, source: &str, checkpoint: &mut Checkpoint, name: &str, version: RemoteVersion, bytes: u64) {
        events::emit(Download { source, file: name, outcome: DownloadOutcome::Landed { bytes, etag: version.etag.as_deref() } });
        self.landed += 1;
        if let Err(e) = checkpoint.record(name, version) {
            // The file landed; without the record it is asked for again (and the ledger
            // recognises its content).
            warn!(source, file = %name, error = %e, "cannot write the download checkpoint; the file may be downloaded again");
        }
    }

    /// Counts and logs a file that could not be downloaded; the next poll tries again.
    pub fn failed(&mut self, source: &str, name: &str, reason: &str) {
        events::emit(Download { source, file: name, outcome: DownloadOutcome::Failed { reason } });
        self.failed += 1;
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("source {name}: {reason}")]
    Setup { name: String, reason: String },
    #[error("source {name}: listing {location}: {reason}")]
    Listing { name: String, location: String, reason: String },
}

/// A remote location that can be polled.
#[async_trait]
pub trait Remote: Send {
    /// Reads the listing and downloads every new or changed file into the landing folder.
    /// A file that keeps failing is counted and left for the next poll; only a listing that
    /// cannot be read is an error.
    async fn poll(&mut self) -> Result<PollReport, RemoteError>;
}

/// Polls until `stop` turns true; errors are logged, counted and retried at the next poll.
pub async fn run(name: String, mut remote: Box<dyn Remote>, interval: Duration, mut stop: watch::Receiver<bool>) {
    loop {
        match remote.poll().await {
            Ok(report) if report.landed > 0 || report.failed > 0 => info!(source = %name, ?report, "poll done"),
            Ok(_) => {}
            Err(e) => {
                events::emit(PollFailed { source: &name, error: &e });
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            return;
        }
    }
}

/// Runs `attempt` until it succeeds, fails for good, or `config.retries` retries are spent,
/// sleeping an exponential backoff with jitter (half to all of `backoff * 2^n`, at most a
/// minute) in between. `attempt` says whether its error is worth retrying.
pub async fn with_retries<T, F, Fut>(source: &str, config: &FetchConfig, what: &str, mut attempt: F) -> Result<T, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Attempt>>,
{
    let mut delay = config.backoff.0;
    for n in 0..=config.retries {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(Attempt::Fatal(reason)) => return Err(reason),
            Err(Attempt::Retry(reason)) if n == config.retries => return Err(format!("{reason} (after {n} retries)")),
            Err(Attempt::Retry(reason)) => {
                let sleep = jitter(delay);
                events::emit(Download { source, file: what, outcome: DownloadOutcome::Retried { reason: &reason, retry_in: sleep } });
                tokio::time::sleep(sleep).await;
                delay = (delay * 2).min(Duration::from_secs(60));
            }
        }
    }
    Err("no attempt made".to_string())
}

/// How one attempt failed.
#[derive(Debug)]
pub enum Attempt {
    /// Worth another try (connection, timeout, 5xx, 429, short body).
    Retry(String),
    /// Not (4xx, too large, a bad name).
    Fatal(String),
}

/// Somewhere between half and all of `delay`, so pollers that failed together do not retry
/// together.
fn jitter(delay: Duration) -> Duration {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let mut x = u64::from(nanos) ^ 0x9E37_79B9_7F4A_7C15;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    delay.mul_f64(0.5 + (x % 1000) as f64 / 2000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_shows_a_known_version_only_by_a_strong_validator() {
        let known = RemoteVersion { etag: Some("\"a\"".into()), last_modified: Some("Mon".into()), size: Some(3) };
        assert!(known.listed_as(&RemoteVersion { etag: Some("\"a\"".into()), ..Default::default() }));
        assert!(!known.listed_as(&RemoteVersion { etag: Some("\"b\"".into()), last_modified: Some("Mon".into()), size: Some(3) }));
        assert!(known.listed_as(&RemoteVersion { etag: None, last_modified: Some("Mon".into()), size: Some(3) }));
        assert!(!known.listed_as(&RemoteVersion { etag: None, last_modified: Some("Mon".into()), size: None }));
    }

    #[test]
    fn the_checkpoint_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut checkpoint = Checkpoint::load(dir.path(), "s");
        checkpoint.record("a/b", RemoteVersion { etag: Some("x".into()), ..Default::default() }).unwrap();
        assert_eq!(Checkpoint::load(dir.path(), "s").get("a/b").and_then(|v| v.etag.clone()), Some("x".into()));
    }

    #[tokio::test]
    async fn retries_stop_at_the_limit_and_at_a_fatal_error() {
        let config =
            FetchConfig { retries: 2, backoff: crate::config::units::HumanDuration(Duration::from_millis(1)), ..Default::default() };
        let mut calls = 0;
        let result: Result<(), String> = with_retries("s", &config, "x", || {
            calls += 1;
            async { Err(Attempt::Retry("down".into())) }
        })
        .await;
        assert_eq!((calls, result.is_err()), (3, true));
        let mut calls = 0;
        let _ = with_retries::<(), _, _>("s", &config, "x", || {
            calls += 1;
            async { Err(Attempt::Fatal("404".into())) }
        })
        .await;
        assert_eq!(calls, 1);
    }
}

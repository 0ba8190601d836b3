//! The exactly-once core with sinks that fail on purpose: commit, recovery and replay, for one
//! sink and for two where one lags, without the fault-injection build. Each test uses its own
//! source name, since the metrics and the status board are process-wide.

use super::Source;
use crate::config::Config;
use crate::discover::Candidate;
use crate::error::Error;
use crate::ledger::{BatchEntry, FileEntry, FileState, Ledger, LedgerHandle};
use crate::metrics::METRICS;
use crate::sinks::{BatchManifest, Sink, SinkError, SinkErrorKind, SinkWriter};
use crate::status::STATUS;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// How a fake sink's next commit goes wrong.
#[derive(Debug, Clone, Copy)]
enum Failure {
    /// Refused before anything landed.
    Refused,
    /// Landed, but the answer was lost: the caller sees an error.
    LandedThenError,
    /// Refused, and retrying cannot help.
    Fatal,
}

/// What a fake sink holds, shared by every instance of it (a restart builds new instances).
#[derive(Default)]
struct Store {
    /// Batches held: seq -> (manifest, rows).
    held: BTreeMap<i64, (BatchManifest, usize)>,
    /// Commits attempted, in order: (seq, rows).
    attempts: Vec<(i64, usize)>,
    failures: VecDeque<Failure>,
    /// Batches partly visible although not held (a non-atomic sink).
    started: BTreeSet<i64>,
    /// `recover` fails while set.
    unreadable: bool,
}

#[derive(Clone)]
struct FakeSink {
    name: String,
    store: Arc<Mutex<Store>>,
}

impl FakeSink {
    fn err(&self, kind: SinkErrorKind, what: &str) -> SinkError {
        SinkError::new(&self.name, kind, what.to_string())
    }
}

#[async_trait]
impl Sink for FakeSink {
    fn name(&self) -> &str {
        &self.name
    }
    async fn prepare(&mut self, _schema: SchemaRef) -> Result<(), SinkError> {
        Ok(())
    }
    async fn recover(&self) -> Result<Option<i64>, SinkError> {
        let store = self.store.lock().unwrap();
        if store.unreadable {
            return Err(self.err(SinkErrorKind::Retryable, "unreachable on purpose"));
        }
        Ok(store.held.keys().max().copied())
    }
    async fn batches_after(&self, after: i64) -> Result<Vec<(BatchManifest, String)>, SinkError> {
        let store = self.store.lock().unwrap();
        Ok(store.held.range(after + 1..).map(|(seq, (m, _))| (m.clone(), format!("fake {seq}"))).collect())
    }
    async fn started(&self, seq: i64) -> Result<bool, SinkError> {
        Ok(self.store.lock().unwrap().started.contains(&seq))
    }
    async fn begin(&self, _schema: SchemaRef) -> Result<Box<dyn SinkWriter>, SinkError> {
        Ok(Box::new(FakeWriter { sink: self.clone(), rows: 0 }))
    }
}

struct FakeWriter {
    sink: FakeSink,
    rows: usize,
}

#[async_trait]
impl SinkWriter for FakeWriter {
    async fn write(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        self.rows += batch.num_rows();
        Ok(())
    }
    async fn commit(self: Box<Self>, manifest: &BatchManifest) -> Result<String, SinkError> {
        let mut store = self.sink.store.lock().unwrap();
        store.attempts.push((manifest.seq, self.rows));
        match store.failures.pop_front() {
            Some(Failure::Refused) => Err(self.sink.err(SinkErrorKind::Retryable, "refused on purpose")),
            Some(Failure::Fatal) => Err(self.sink.err(SinkErrorKind::Fatal, "schema differs on purpose")),
            Some(Failure::LandedThenError) => {
                store.held.insert(manifest.seq, (manifest.clone(), self.rows));
                Err(self.sink.err(SinkErrorKind::Retryable, "answer lost on purpose"))
            }
            None => {
                store.held.insert(manifest.seq, (manifest.clone(), self.rows));
                Ok(format!("fake {}", manifest.seq))
            }
        }
    }
}

/// A source `name` on a temporary folder with columns `id`, sinks `sinks` (fakes), and a ledger.
struct Fixture {
    dir: tempfile::TempDir,
    name: String,
    config: Config,
    ledger: LedgerHandle,
    stores: Vec<(String, Arc<Mutex<Store>>)>,
}

impl Fixture {
    fn new(name: &str, sinks: &[&str]) -> Fixture {
        Fixture::with_keys(name, sinks, "", "")
    }

    /// As [`Fixture::new`], with more keys for the source and at the top of the config.
    fn with_keys(name: &str, sinks: &[&str], source_keys: &str, top: &str) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let sink_list = sinks.iter().map(|s| format!("{s:?}")).collect::<Vec<_>>().join(", ");
        let sink_tables: String = sinks.iter().map(|s| format!("[sinks.{s}]\nkind = \"parquet\"\npath = \"{s}\"\n")).collect();
        let text = format!(
            "instance = \"test\"\n{top}\n[sources.{name}]\npath = \"drop\"\nmin_age = \"0s\"\nsinks = [{sink_list}]\n{source_keys}\n\
             [sources.{name}.columns]\nid = {{ path = \"id\", type = \"int64\" }}\n{sink_tables}"
        );
        let config = Config::from_toml(&text, dir.path()).unwrap();
        std::fs::create_dir_all(dir.path().join("drop")).unwrap();
        let ledger = LedgerHandle::spawn(Ledger::open(&config.state_dir).unwrap()).unwrap();
        let stores = sinks.iter().map(|s| (s.to_string(), Arc::default())).collect();
        Fixture { dir, name: name.to_string(), config, ledger, stores }
    }

    /// A fresh `Source` over the same ledger and sink stores: what a restart builds.
    fn source(&self) -> Source {
        let sinks: Vec<Box<dyn Sink>> = self
            .stores
            .iter()
            .map(|(name, store)| Box::new(FakeSink { name: name.clone(), store: store.clone() }) as Box<dyn Sink>)
            .collect();
        Source::new(&self.name, &self.config, self.ledger.clone(), sinks).unwrap()
    }

    /// Starts over with an empty ledger, as if the state folder was lost.
    fn lose_the_ledger(&mut self) {
        let state = self.dir.path().join("state-new");
        self.ledger = LedgerHandle::spawn(Ledger::open(&state).unwrap()).unwrap();
    }

    fn store(&self, sink: &str) -> std::sync::MutexGuard<'_, Store> {
        self.stores.iter().find(|(n, _)| n == sink).unwrap().1.lock().unwrap()
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join("drop").join(file)
    }

    /// Writes a file of records with these ids and returns it as discovery would hand it on.
    fn drop_file(&self, file: &str, ids: std::ops::Range<i64>) -> Candidate {
        let records: Vec<String> = ids.map(|id| format!("{{\"id\":{id}}}")).collect();
        std::fs::write(self.path(file), format!("[{}]", records.join(","))).unwrap();
        self.candidate(file)
    }

    fn candidate(&self, file: &str) -> Candidate {
        let path = self.path(file).canonicalize().unwrap();
        let (size, mtime_ns) = crate::discover::stat(&path).unwrap();
        Candidate { source: self.name.clone(), path, name: file.to_string(), size, mtime_ns }
    }

    /// (seq, rows, file names) of every batch a sink holds.
    fn held(&self, sink: &str) -> Vec<(i64, usize, Vec<String>)> {
        self.store(sink).held.iter().map(|(seq, (m, rows))| (*seq, *rows, m.files.iter().map(|f| f.name.clone()).collect())).collect()
    }

    async fn in_flight(&self) -> Vec<i64> {
        let name = self.name.clone();
        self.ledger.call(move |l| l.in_flight_batches(&name)).await.unwrap().into_iter().map(|b| b.seq).collect()
    }

    async fn state_of(&self, file: &str) -> Option<FileState> {
        let c = self.candidate(file);
        self.ledger.call(move |l| l.known(&c.source, &c.name, c.size, c.mtime_ns)).await.unwrap()
    }

    /// Records batch `seq` of `files` in flight in the ledger and makes `holders` hold it, as
    /// a crash between two sink commits leaves things.
    async fn crash_between_sinks(&self, seq: i64, files: &[&str], holders: &[&str]) {
        let entries: Vec<FileEntry> = files
            .iter()
            .map(|f| {
                let c = self.candidate(f);
                let hash = crate::admit::hash_file(&c.path).unwrap();
                FileEntry { name: c.name, size: Some(c.size), mtime_ns: Some(c.mtime_ns), hash, rows: Some(2) }
            })
            .collect();
        let manifest = BatchManifest {
            instance: "test".into(),
            source: self.name.clone(),
            seq,
            ingested_at_us: Some(7),
            files: entries.iter().map(|e| crate::sinks::ManifestFile { name: e.name.clone(), hash: e.hash.clone(), rows: 2 }).collect(),
            columns_added: vec![],
            lookups: vec![],
        };
        let batch = BatchEntry { source: self.name.clone(), seq, files: entries, ingested_at_us: Some(7) };
        self.ledger.call(move |l| l.begin_batch(&batch)).await.unwrap();
        for sink in holders {
            let name = self.name.clone();
            let sink_name = sink.to_string();
            self.ledger.call(move |l| l.record_sink_commit(&name, seq, &sink_name, "fake")).await.unwrap();
            self.store(sink).held.insert(seq, (manifest.clone(), 2 * files.len()));
        }
    }
}

fn stuck_gauge(source: &str) -> i64 {
    METRICS.batches_stuck.with_label_values(&[source]).get()
}

fn sink_status(source: &str, sink: &str) -> crate::status::SinkStatus {
    STATUS.snapshot().sources[source].sinks[sink].clone()
}

#[tokio::test]
async fn a_batch_reaches_every_sink_once() {
    let fx = Fixture::new("every_sink_once", &["a", "b"]);
    let mut source = fx.source();
    source.recover().await.unwrap();
    let files = vec![fx.drop_file("f1", 0..3), fx.drop_file("f2", 3..5)];
    source.offer_all(files).await.unwrap();
    let reports = source.run_due(true).await.unwrap();
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].rows, 5);
    for sink in ["a", "b"] {
        assert_eq!(fx.held(sink), vec![(1, 5, vec!["f1".into(), "f2".into()])]);
    }
    assert_eq!(fx.state_of("f1").await, Some(FileState::Committed));
    assert!(fx.in_flight().await.is_empty());
}

#[tokio::test]
async fn a_refused_first_commit_forgets_the_batch_and_its_files_come_back() {
    let fx = Fixture::new("refused_first", &["a"]);
    fx.store("a").failures.push_back(Failure::Refused);
    let mut source = fx.source();
    source.recover().await.unwrap();
    source.offer_all(vec![fx.drop_file("f1", 0..2)]).await.unwrap();
    let error = source.run_due(true).await.unwrap_err();
    assert!(matches!(&error, Error::Sink(e) if e.kind == SinkErrorKind::Retryable), "{error}");
    assert!(fx.in_flight().await.is_empty(), "no sink holds it: forgotten");
    assert_eq!(fx.state_of("f1").await, None);
    assert_eq!(source.pending(), 1, "its file is queued again");
    assert!(sink_status("refused_first", "a").commit_failed);
    source.run_due(true).await.unwrap();
    assert_eq!(fx.held("a"), vec![(2, 2, vec!["f1".into()])], "a new number: the abandoned one is never reused");
    assert!(!sink_status("refused_first", "a").commit_failed);
}

#[tokio::test]
async fn a_commit_that_landed_despite_its_error_is_confirmed_not_repeated() {
    let fx = Fixture::new("landed_then_error", &["a", "b"]);
    fx.store("a").failures.push_back(Failure::LandedThenError);
    let mut source = fx.source();
    source.recover().await.unwrap();
    source.offer_all(vec![fx.drop_file("f1", 0..2)]).await.unwrap();
    let reports = source.run_due(true).await.unwrap();
    assert_eq!(reports[0].commits[0], ("a".to_string(), "committed (confirmed after an error)".to_string()));
    assert_eq!(fx.store("a").attempts.len(), 1, "asked, not committed again");
    assert_eq!(fx.held("b"), vec![(1, 2, vec!["f1".into()])]);
    assert_eq!(fx.state_of("f1").await, Some(FileState::Committed));
}

#[tokio::test]
async fn a_lagging_second_sink_gets_the_same_batch_replayed() {
    let fx = Fixture::new("lagging_second", &["a", "b"]);
    fx.store("b").failures.push_back(Failure::Refused);
    let mut source = fx.source();
    source.recover().await.unwrap();
    source.offer_all(vec![fx.drop_file("f1", 0..2), fx.drop_file("f2", 2..6)]).await.unwrap();
    assert!(source.run_due(true).await.is_err());
    assert_eq!(fx.in_flight().await, vec![1], "a holds it, so it stays in flight");
    assert_eq!(source.pending(), 0, "its files belong to batch 1 now");
    // The next round recovers first: batch 1 goes to b alone, under the same number.
    source.run_due(true).await.unwrap();
    assert_eq!(fx.held("a"), fx.held("b"));
    assert_eq!(fx.held("b"), vec![(1, 6, vec!["f1".into(), "f2".into()])]);
    assert_eq!(fx.store("a").attempts, vec![(1, 6)], "a is not given it twice");
    let (a, b) = (fx.store("a").held[&1].0.clone(), fx.store("b").held[&1].0.clone());
    assert_eq!(a.ingested_at_us, b.ingested_at_us, "the replay carries the same _ingested_at");
    assert!(fx.in_flight().await.is_empty());
    assert!(sink_status("lagging_second", "b").reachable);
}

#[tokio::test]
async fn a_failed_commit_keeps_the_sink_not_ready_through_recovery_until_a_commit_succeeds() {
    let fx = Fixture::new("not_ready_until_commit", &["a", "b"]);
    fx.store("b").failures.extend([Failure::Refused; 3]);
    let mut source = fx.source();
    source.recover().await.unwrap();
    source.offer_all(vec![fx.drop_file("f1", 0..2)]).await.unwrap();
    assert!(source.run_due(true).await.is_err());
    assert!(source.run_due(true).await.is_err(), "the replay fails too");
    let status = sink_status("not_ready_until_commit", "b");
    assert!(!status.reachable && status.commit_failed, "{status:?}");
    assert!(STATUS.not_ready().unwrap().contains("sink b"), "readiness names the sink");
    source.recover().await.unwrap_err();
    assert!(!sink_status("not_ready_until_commit", "b").reachable, "reading b works, but its commits fail");
    source.run_due(true).await.unwrap();
    assert!(sink_status("not_ready_until_commit", "b").reachable);
    assert_eq!(fx.held("b").len(), 1);
}

#[tokio::test]
async fn restart_after_every_sink_committed_records_the_batch() {
    let fx = Fixture::new("restart_all_hold", &["a", "b"]);
    fx.drop_file("f1", 0..2);
    fx.crash_between_sinks(1, &["f1"], &["a", "b"]).await;
    fx.source().recover().await.unwrap();
    assert!(fx.in_flight().await.is_empty());
    assert_eq!(fx.state_of("f1").await, Some(FileState::Committed));
    assert!(fx.store("a").attempts.is_empty() && fx.store("b").attempts.is_empty(), "nothing committed again");
}

#[tokio::test]
async fn restart_after_no_sink_committed_reads_the_files_again() {
    let fx = Fixture::new("restart_none_hold", &["a", "b"]);
    fx.drop_file("f1", 0..2);
    fx.crash_between_sinks(1, &["f1"], &[]).await;
    let mut source = fx.source();
    source.recover().await.unwrap();
    assert!(fx.in_flight().await.is_empty());
    assert_eq!(source.pending(), 1, "queued again by recovery");
    source.run_due(true).await.unwrap();
    assert_eq!(fx.held("a"), vec![(2, 2, vec!["f1".into()])]);
    assert_eq!(fx.held("b"), fx.held("a"));
}

#[tokio::test]
async fn a_batch_partly_visible_in_a_sink_is_completed_not_dropped() {
    let fx = Fixture::new("partly_visible", &["a"]);
    fx.drop_file("f1", 0..2);
    fx.crash_between_sinks(1, &["f1"], &[]).await;
    fx.store("a").started.insert(1);
    let mut source = fx.source();
    source.recover().await.unwrap();
    assert_eq!(fx.held("a"), vec![(1, 2, vec!["f1".into()])], "completed under its own number");
    assert_eq!(source.pending(), 0);
}

#[tokio::test]
async fn a_lost_ledger_is_rebuilt_from_the_sinks_and_the_lagging_sink_completed() {
    let mut fx = Fixture::new("lost_ledger", &["a", "b"]);
    fx.drop_file("f1", 0..2);
    fx.crash_between_sinks(1, &["f1"], &["a"]).await;
    fx.lose_the_ledger();
    let mut source = fx.source();
    source.recover().await.unwrap();
    assert_eq!(fx.held("b"), vec![(1, 2, vec!["f1".into()])], "found by name and content, replayed to b");
    assert_eq!(fx.store("a").attempts.len(), 0);
    // The rebuilt ledger knows the file: offered again, it is not ingested again.
    source.offer_all(vec![fx.candidate("f1")]).await.unwrap();
    assert_eq!(source.pending(), 0);
    assert_eq!(fx.state_of("f1").await, Some(FileState::Committed));
}

#[tokio::test]
async fn a_batch_whose_files_are_gone_is_stuck_and_loud_until_they_return() {
    let fx = Fixture::new("stuck_batch", &["a", "b"]);
    let (mut source, kept) = stuck_on_a_deleted_file(&fx).await;
    assert_eq!(fx.in_flight().await, vec![1], "left in flight for a person");
    assert_eq!(stuck_gauge("stuck_batch"), 1);
    let status = STATUS.snapshot().sources["stuck_batch"].clone();
    assert_eq!(status.stuck_batches.len(), 1);
    assert_eq!((status.stuck_batches[0].batch, status.stuck_batches[0].missing_sinks.clone()), (1, vec!["b".to_string()]));
    let why = STATUS.not_ready().unwrap();
    assert!(why.contains("source stuck_batch: batch 1 is stuck, missing from b"), "{why}");
    // Later batches still go on.
    source.offer_all(vec![fx.drop_file("f2", 2..3)]).await.unwrap();
    source.run_due(true).await.unwrap();
    assert_eq!(fx.held("b"), vec![(2, 1, vec!["f2".into()])]);
    // The file comes back as it was: the next recovery completes the batch and the alarm ends.
    kept.restore(&fx.path("f1"));
    source.recover().await.unwrap();
    assert_eq!(fx.held("b").len(), 2);
    assert_eq!(stuck_gauge("stuck_batch"), 0);
    assert!(STATUS.snapshot().sources["stuck_batch"].stuck_batches.is_empty());
}

/// A file as it was: its bytes and its mtime.
struct Kept(Vec<u8>, std::time::SystemTime);

impl Kept {
    fn restore(&self, path: &Path) {
        write_with_mtime(path, &self.0, self.1);
    }
}

/// Batch 1 of file `f1` held by sink a, not b; then `f1` deleted and the source recovered:
/// the batch is stuck. Returns the source and the file as it was.
async fn stuck_on_a_deleted_file(fx: &Fixture) -> (Source, Kept) {
    fx.drop_file("f1", 0..2);
    let path = fx.path("f1");
    let kept = Kept(std::fs::read(&path).unwrap(), std::fs::metadata(&path).unwrap().modified().unwrap());
    fx.crash_between_sinks(1, &["f1"], &["a"]).await;
    std::fs::remove_file(&path).unwrap();
    let mut source = fx.source();
    source.recover().await.unwrap();
    (source, kept)
}

fn write_with_mtime(path: &Path, bytes: &[u8], mtime: std::time::SystemTime) {
    std::fs::write(path, bytes).unwrap();
    std::fs::File::options().write(true).open(path).unwrap().set_modified(mtime).unwrap();
}

#[tokio::test]
async fn a_replay_whose_file_no_longer_decodes_is_stuck_not_quarantined() {
    let fx = Fixture::new("replay_bad_file", &["a", "b"]);
    fx.drop_file("f1", 0..2);
    fx.crash_between_sinks(1, &["f1"], &["a"]).await;
    // Same size and mtime, other bytes: the ledger's record still matches, the content does not
    // convert (an id that is not a number).
    let meta = std::fs::metadata(fx.path("f1")).unwrap();
    let bad = format!("[{{\"id\":\"{}\"}}]", "z".repeat(meta.len() as usize - 11));
    assert_eq!(bad.len() as u64, meta.len());
    write_with_mtime(&fx.path("f1"), bad.as_bytes(), meta.modified().unwrap());
    let mut source = fx.source();
    source.recover().await.unwrap();
    assert_eq!(stuck_gauge("replay_bad_file"), 1);
    assert!(fx.path("f1").exists(), "a replayed batch's file is never quarantined");
    assert!(fx.store("b").held.is_empty());
}

#[tokio::test]
async fn a_sink_that_cannot_be_read_fails_recovery_and_is_not_ready() {
    let fx = Fixture::new("unreadable_sink", &["a"]);
    fx.store("a").unreadable = true;
    let mut source = fx.source();
    let error = source.recover().await.unwrap_err();
    assert!(matches!(error, Error::Sink(_)), "{error}");
    let status = sink_status("unreadable_sink", "a");
    assert!(!status.reachable && status.last_error.unwrap().contains("unreachable on purpose"));
    fx.store("a").unreadable = false;
    source.recover().await.unwrap();
    assert!(sink_status("unreadable_sink", "a").reachable);
}

#[tokio::test]
async fn a_fatal_sink_error_keeps_its_kind_and_the_files_wait() {
    let fx = Fixture::new("fatal_kind", &["a"]);
    fx.store("a").failures.push_back(Failure::Fatal);
    let mut source = fx.source();
    source.recover().await.unwrap();
    source.offer_all(vec![fx.drop_file("f1", 0..2)]).await.unwrap();
    let error = source.run_due(true).await.unwrap_err();
    assert!(matches!(&error, Error::Sink(e) if e.kind == SinkErrorKind::Fatal), "{error}");
    assert_eq!(error.kind(), crate::events::ErrorKind::Sink);
    assert_eq!(source.pending(), 1);
}

#[tokio::test]
async fn the_same_content_under_two_names_is_ingested_once() {
    let fx = Fixture::new("duplicate_names", &["a"]);
    let mut source = fx.source();
    source.recover().await.unwrap();
    let first = fx.drop_file("f1", 0..2);
    std::fs::copy(fx.path("f1"), fx.path("copy of f1")).unwrap();
    source.offer_all(vec![first, fx.candidate("copy of f1")]).await.unwrap();
    source.run_due(true).await.unwrap();
    source.offer_deferred().await.unwrap();
    assert_eq!(fx.held("a"), vec![(1, 2, vec!["f1".into()])]);
    assert_eq!(fx.state_of("copy of f1").await, Some(FileState::Duplicate));
    assert_eq!(source.totals().duplicates, 1);
}

#[tokio::test]
async fn a_copy_of_a_stuck_batchs_file_waits_for_it_without_keeping_once_busy() {
    let fx = Fixture::new("twin_of_stuck", &["a", "b"]);
    let (mut source, kept) = stuck_on_a_deleted_file(&fx).await;
    assert_eq!(stuck_gauge("twin_of_stuck"), 1);
    std::fs::write(fx.path("copy"), &kept.0).unwrap();
    source.offer_all(vec![fx.candidate("copy")]).await.unwrap();
    assert!(!source.has_work(), "parked behind the stuck batch, not deferred round after round");
    // The stuck batch completes at the next recovery: the copy is then a duplicate of it.
    kept.restore(&fx.path("f1"));
    source.recover().await.unwrap();
    source.offer_deferred().await.unwrap();
    assert_eq!(fx.state_of("copy").await, Some(FileState::Duplicate));
    assert_eq!(fx.held("b"), vec![(1, 2, vec!["f1".into()])], "the copy added nothing");
}

#[tokio::test]
async fn a_lookup_that_cannot_be_read_holds_the_batch_back_until_it_can_then_the_batch_names_its_version() {
    let lookup = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(lookup.path(), "id,label\n1,one\n").unwrap();
    let top = format!("[lookups.labels]\npath = {:?}\nformat = \"parquet\"", lookup.path());
    let fx = Fixture::with_keys("lookup_waits", &["a"], "transform = \"SELECT id, label FROM batch JOIN labels USING (id)\"", &top);
    let mut source = fx.source();
    source.recover().await.unwrap();
    source.offer_all(vec![fx.drop_file("f1", 0..3)]).await.unwrap();
    // A CSV read as Parquet cannot be read: nothing is committed, the file waits, not ready.
    let error = source.run_due(true).await.unwrap_err();
    assert!(matches!(error, Error::Lookup { .. }), "{error}");
    assert!(fx.held("a").is_empty());
    assert!(STATUS.not_ready().unwrap_or_default().contains("lookup labels"), "{:?}", STATUS.not_ready());
    assert!(source.has_work(), "the file waits in the queue to be read again");

    // Readable again (a real Parquet file): the batch commits, joined, naming the version.
    let schema = Arc::new(arrow::datatypes::Schema::new(vec![
        arrow::datatypes::Field::new("id", arrow::datatypes::DataType::Int64, false),
        arrow::datatypes::Field::new("label", arrow::datatypes::DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![Arc::new(arrow::array::Int64Array::from(vec![1, 2])), Arc::new(arrow::array::StringArray::from(vec!["one", "two"]))],
    )
    .unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(std::fs::File::create(lookup.path()).unwrap(), schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    let reports = source.run_due(true).await.unwrap();
    assert_eq!((reports.len(), reports[0].rows, reports[0].filtered_rows), (1, 2, 1));
    let manifest = fx.store("a").held[&1].0.clone();
    let hash = blake3::hash(&std::fs::read(lookup.path()).unwrap()).to_hex().to_string();
    assert_eq!(manifest.lookups.len(), 1);
    assert_eq!(manifest.lookups[0].version, format!("blake3:{hash}"));
    assert!(!STATUS.not_ready().unwrap_or_default().contains("lookup labels"));
}

//! The Parquet sink in a bucket (`path = "s3://lake/<prefix>"`) against a real S3 server
//! (moto's, installed by `scripts/test.sh`): every row lands once, a restart adds nothing, and
//! a crash before or after the manifest (the commit) leaves, after the next start, every row
//! exactly once, no staged objects and no data object no manifest names.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests and benches fail loudly on purpose.

mod common;
use common::s3::*;
use common::*;
use object_store::{ObjectStore, ObjectStoreExt};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::collections::BTreeSet;

/// A workspace whose source `attom` writes, one file per batch, to the Parquet dataset
/// `s3://lake/<prefix>`, partitioned by `type`.
fn bucket_parquet_workspace(prefix: &str, s3_keys: &str) -> Workspace {
    let sink = format!("kind = \"parquet\"\npath = \"s3://lake/{prefix}\"\npartition_by = [\"type\"]\n[sinks.lake.s3]\n{s3_keys}");
    let config = attom_config("min_age = \"0s\"\nbatch.max_files = 1").replace("kind = \"delta\"\nuri = \"lake/attom\"\n", &sink);
    assert!(config.contains("s3://lake/"), "the ATTOM config changed shape: {config}");
    Workspace::with_config(&config)
}

/// The bucket `lake` through object_store, for reading objects back.
struct Lake {
    store: object_store::aws::AmazonS3,
    runtime: tokio::runtime::Runtime,
}

impl Lake {
    fn new(moto: &Moto) -> Lake {
        Lake { store: moto.store("lake"), runtime: tokio::runtime::Runtime::new().unwrap() }
    }

    /// Every key below `prefix/`.
    fn keys(&self, prefix: &str) -> Vec<String> {
        use futures::TryStreamExt;
        let prefix = object_store::path::Path::from(prefix);
        let objects: Vec<_> = self.runtime.block_on(self.store.list(Some(&prefix)).try_collect()).unwrap();
        objects.into_iter().map(|o| o.location.to_string()).collect()
    }

    fn get(&self, key: &str) -> impl parquet::file::reader::ChunkReader + AsRef<[u8]> + 'static {
        let location = object_store::path::Path::parse(key).unwrap();
        self.runtime.block_on(async { self.store.get(&location).await.unwrap().bytes().await.unwrap() })
    }

    /// The data objects a reader sees: `*.parquet` outside folders starting with `_` or `.`.
    fn visible(&self, prefix: &str) -> BTreeSet<String> {
        let hidden = |key: &str| key.split('/').any(|part| part.starts_with('_') || part.starts_with('.'));
        self.keys(prefix).into_iter().filter(|k| k.ends_with(".parquet") && !hidden(k)).collect()
    }

    /// The rows of every visible data object.
    fn rows(&self, prefix: &str) -> Vec<arrow::record_batch::RecordBatch> {
        let mut batches = Vec::new();
        for key in self.visible(prefix) {
            let reader = ParquetRecordBatchReaderBuilder::try_new(self.get(&key)).unwrap().build().unwrap();
            batches.extend(reader.map(|b| b.unwrap()));
        }
        batches
    }

    /// The data objects the manifests name (the committed files), as keys.
    fn committed(&self, prefix: &str) -> BTreeSet<String> {
        let manifests = self.keys(&format!("{prefix}/_ingestd/test+attom"));
        let mut files = BTreeSet::new();
        for key in manifests.iter().filter(|k| k.ends_with(".json")) {
            let record: serde_json::Value = serde_json::from_slice(self.get(key).as_ref()).unwrap();
            for file in record["files"].as_array().unwrap() {
                files.insert(format!("{prefix}/{}", file.as_str().unwrap()));
            }
        }
        files
    }

    fn staged(&self, prefix: &str) -> Vec<String> {
        self.keys(&format!("{prefix}/_ingestd/staging"))
    }
}

#[test]
fn a_partitioned_parquet_dataset_in_a_bucket_gets_every_row_once() {
    let dir = tempfile::tempdir().unwrap();
    let moto = Moto::start(&dir.path().join("moto.log"));
    moto.client(&["mb", "lake"]);
    let lake = Lake::new(&moto);
    let ws = bucket_parquet_workspace("pq", &moto.config_keys());
    let files = stage_attom(&ws.path("drop"), 4, 2_000, 41);
    let expected = fingerprints_of_files(&files);

    let summary = ws.once();
    assert_eq!(summary["totals"]["rows"], 2_000, "{summary}");
    assert_eq!(compare_rows(&expected, &fingerprints_of_table(&lake.rows("pq"))), (0, 0, 0), "lost, duplicated, unexpected");
    let visible = lake.visible("pq");
    assert!(visible.iter().all(|k| k.starts_with("pq/type=") && k.contains("/part-test+attom-")), "hive layout: {visible:?}");
    assert_eq!(visible, lake.committed("pq"), "every visible object is committed, every committed one visible");
    assert!(lake.staged("pq").is_empty(), "{:?}", lake.staged("pq"));
    // A standard client sees the same objects.
    let listed = moto.client(&["ls", "lake", "pq/type="]).lines().count();
    assert_eq!(listed, visible.len());

    // Restarting against the bucket finds every batch there: nothing is committed twice.
    let again = ws.once();
    assert_eq!(again["totals"]["rows"], 0, "{again}");
    assert_eq!(row_count(&lake.rows("pq")), 2_000);

    assert_secret_never_shown(&ws);
}

/// Needs the fault points: `cargo test --features fault-injection`.
#[cfg(feature = "fault-injection")]
#[test]
fn a_crash_before_or_after_the_manifest_leaves_every_row_exactly_once_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let moto = Moto::start(&dir.path().join("moto.log"));
    moto.client(&["mb", "lake"]);
    let lake = Lake::new(&moto);
    // The second batch dies: one batch is committed and finished before the crash.
    for (point, prefix, seed) in [("after_data_files:2", "before", 51), ("between_parquet_temp_and_rename:2", "after", 52)] {
        let ws = bucket_parquet_workspace(prefix, &moto.config_keys());
        let files = stage_attom(&ws.path("drop"), 4, 2_000, seed);
        let expected = fingerprints_of_files(&files);

        let crashed = std::process::Command::new(BIN)
            .args(["once", "--json"])
            .current_dir(ws.dir.path())
            .env("INGESTD_LOG_FORMAT", "text")
            .env("INGESTD_FAULT", point)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&crashed.stderr);
        assert!(!crashed.status.success() && stderr.contains("fault injection"), "{point}: {stderr}");
        // The crash left staged objects behind, and nothing uncommitted is visible.
        assert!(!lake.staged(prefix).is_empty(), "{point}: nothing staged at the crash");
        let committed = lake.committed(prefix);
        assert!(lake.visible(prefix).is_subset(&committed), "{point}: uncommitted objects visible");
        let manifests = lake.keys(&format!("{prefix}/_ingestd/test+attom")).len();
        assert_eq!(manifests, if point.starts_with("after_data_files") { 1 } else { 2 }, "{point}");
        let spool = ws.path("state/spool/parquet-attom-lake");

        let summary = ws.once();
        let rows = lake.rows(prefix);
        assert_eq!(compare_rows(&expected, &fingerprints_of_table(&rows)), (0, 0, 0), "{point}: lost, duplicated, unexpected ({summary})");
        assert!(lake.staged(prefix).is_empty(), "{point}: staged objects left: {:?}", lake.staged(prefix));
        assert_eq!(lake.visible(prefix), lake.committed(prefix), "{point}: visible and committed objects differ");
        assert!(!spool.exists() || walk_files(&spool).is_empty(), "{point}: spool files left: {:?}", walk_files(&spool));
        let again = ws.once();
        assert_eq!(again["totals"]["rows"], 0, "{point}: {again}");
    }
}

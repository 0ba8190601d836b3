//! The Parquet sink in a bucket (`path = "s3://bucket/prefix"`). A batch's files are encoded
//! into a local spool folder, then uploaded to staged keys readers ignore
//! (`_ingestd/staging/<file id>/<seq>/<n>.parquet`); the manifest
//! `_ingestd/<file id>/<seq>.json`, written only if absent (`If-None-Match: *`), is the commit.
//! The staged objects are then copied to their final keys and deleted. A crash after the
//! manifest is finished by `recover` (the copies are redone); a crash before it leaves only
//! staged objects, which `recover` deletes.

use super::{CommitRecord, MANIFEST_DIR, ParquetBatchWriter, RecordedColumn};
use crate::config::{ParquetSinkConfig, parse_s3_url};
use crate::discover::s3::build_store;
use crate::sinks::{BatchManifest, SinkError, SinkWriter};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use futures::TryStreamExt;
use object_store::aws::AmazonS3;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, WriteMultipart};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// Files up to this size are uploaded in one PUT; larger ones in parts of `PART_SIZE`.
const SINGLE_PUT_MAX: u64 = 16 << 20;
const PART_SIZE: usize = 8 << 20;
/// Parts uploading at once: with `PART_SIZE`, at most ~24 MiB of one file is in memory.
const PART_CONCURRENCY: usize = 2;

/// Where one (instance, source)'s part of a dataset lives in a bucket.
pub(super) struct S3Dataset {
    sink: String,
    bucket: String,
    /// The dataset's prefix in the bucket, "" for the bucket's root.
    prefix: String,
    file_id: String,
    store: Arc<AmazonS3>,
    /// `<state_dir>/spool/parquet-<source>-<sink>`: one folder per batch, removed with its
    /// writer, and emptied at `recover` (a crash leaves one behind).
    spool_root: PathBuf,
}

impl S3Dataset {
    pub(super) fn new(sink: &str, config: &ParquetSinkConfig, file_id: &str, spool_root: PathBuf) -> Result<S3Dataset, String> {
        let (bucket, prefix) = parse_s3_url(&config.path)?;
        ObjectPath::parse(&prefix).map_err(|e| format!("{}: {e}", config.path))?;
        // Requests carry at most `PART_SIZE` or `SINGLE_PUT_MAX` bytes: minutes are ample.
        let store = build_store(&bucket, &config.s3.storage_options(), Duration::from_secs(10), Duration::from_secs(300))?;
        Ok(S3Dataset { sink: sink.to_string(), bucket, prefix, file_id: file_id.to_string(), store: Arc::new(store), spool_root })
    }

    /// `s3://bucket/prefix`: the root the manifests' file names are relative to.
    pub(super) fn url(&self) -> String {
        if self.prefix.is_empty() { format!("s3://{}", self.bucket) } else { format!("s3://{}/{}", self.bucket, self.prefix) }
    }

    fn err(&self, key: &ObjectPath, e: impl std::fmt::Display) -> SinkError {
        SinkError::storage(&self.sink, format!("s3://{}/{key}: {e}", self.bucket))
    }

    /// The key of `relative` (already escaped, `/`-separated) below the prefix.
    fn key(&self, relative: &str) -> Result<ObjectPath, SinkError> {
        let full = if self.prefix.is_empty() { relative.to_string() } else { format!("{}/{relative}", self.prefix) };
        ObjectPath::parse(&full).map_err(|e| SinkError::storage(&self.sink, format!("s3://{}/{full}: {e}", self.bucket)))
    }

    fn manifest_folder(&self) -> Result<ObjectPath, SinkError> {
        self.key(&format!("{MANIFEST_DIR}/{}", self.file_id))
    }

    fn manifest_key(&self, seq: i64) -> Result<ObjectPath, SinkError> {
        self.key(&format!("{MANIFEST_DIR}/{}/{seq:020}.json", self.file_id))
    }

    fn staging_folder(&self) -> Result<ObjectPath, SinkError> {
        self.key(&format!("{MANIFEST_DIR}/staging/{}", self.file_id))
    }

    fn staged_key(&self, seq: i64, n: usize) -> Result<ObjectPath, SinkError> {
        self.key(&format!("{MANIFEST_DIR}/staging/{}/{seq:010}/{n}.parquet", self.file_id))
    }

    /// Every object below `folder`.
    async fn list(&self, folder: &ObjectPath) -> Result<Vec<ObjectPath>, SinkError> {
        let objects: Vec<_> = self.store.list(Some(folder)).try_collect().await.map_err(|e| self.err(folder, e))?;
        Ok(objects.into_iter().map(|meta| meta.location).collect())
    }

    /// The seqs of the committed batches (the names of the manifests), ascending.
    pub(super) async fn committed_seqs(&self) -> Result<BTreeSet<i64>, SinkError> {
        let folder = self.manifest_folder()?;
        let seq_of = |key: &ObjectPath| {
            let name = key.filename()?.strip_suffix(".json")?;
            name.parse::<i64>().ok().filter(|_| name.len() == 20)
        };
        Ok(self.list(&folder).await?.iter().filter_map(seq_of).collect())
    }

    /// The manifest of batch `seq`, if it was committed.
    pub(super) async fn record(&self, seq: i64) -> Result<Option<CommitRecord>, SinkError> {
        let key = self.manifest_key(seq)?;
        let bytes = match self.store.get(&key).await {
            Ok(got) => got.bytes().await.map_err(|e| self.err(&key, e))?,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.err(&key, e)),
        };
        serde_json::from_slice(&bytes).map(Some).map_err(|e| self.err(&key, format!("damaged manifest: {e}")))
    }

    /// The committed batches with seq > `after`, ascending.
    pub(super) async fn records_after(&self, after: i64) -> Result<Vec<CommitRecord>, SinkError> {
        let mut records = Vec::new();
        for seq in self.committed_seqs().await?.into_iter().filter(|&s| s > after) {
            // Listed, so present: manifests are never deleted.
            let key = self.manifest_key(seq)?;
            records.push(self.record(seq).await?.ok_or_else(|| self.err(&key, "listed but gone"))?);
        }
        Ok(records)
    }

    /// Finishes the copies of committed batches whose staged objects are still there, deletes
    /// the staged objects of uncommitted ones, and returns the highest committed seq.
    pub(super) async fn recover(&self) -> Result<Option<i64>, SinkError> {
        // No batch of this source is in flight yet: any spool folder is a crash's leftover.
        let _ = std::fs::remove_dir_all(&self.spool_root);
        let committed = self.committed_seqs().await?;
        let mut staged: BTreeMap<i64, Vec<(usize, ObjectPath)>> = BTreeMap::new();
        for key in self.list(&self.staging_folder()?).await? {
            // `<seq:010>/<n>.parquet`; anything else there is not ours to judge: left alone.
            let mut parts = key.parts().rev();
            let n = parts.next().and_then(|p| p.as_ref().strip_suffix(".parquet").and_then(|n| n.parse::<usize>().ok()));
            let seq = parts.next().and_then(|p| p.as_ref().parse::<i64>().ok());
            if let (Some(n), Some(seq)) = (n, seq) {
                staged.entry(seq).or_default().push((n, key));
            }
        }
        for (seq, objects) in staged {
            let record = if committed.contains(&seq) { self.record(seq).await? } else { None };
            let files = record.map(|r| r.files).unwrap_or_default();
            for (n, key) in objects {
                // A staged object the manifest does not name is from an abandoned attempt.
                if let Some(file) = files.get(n) {
                    let final_key = self.key(file)?;
                    self.store.copy(&key, &final_key).await.map_err(|e| self.err(&key, e))?;
                }
                self.store.delete(&key).await.map_err(|e| self.err(&key, e))?;
            }
        }
        Ok(committed.last().copied())
    }

    /// Uploads the spooled file at `path` to `key`, streaming large files in parts.
    async fn upload(&self, path: &std::path::Path, key: &ObjectPath) -> Result<(), SinkError> {
        let spool_err = |e: std::io::Error| SinkError::storage(&self.sink, format!("{}: {e}", path.display()));
        let mut file = tokio::fs::File::open(path).await.map_err(spool_err)?;
        let size = file.metadata().await.map_err(spool_err)?.len();
        if size <= SINGLE_PUT_MAX {
            let mut bytes = Vec::with_capacity(size as usize);
            file.read_to_end(&mut bytes).await.map_err(spool_err)?;
            self.store.put(key, PutPayload::from(bytes)).await.map_err(|e| self.err(key, e))?;
            return Ok(());
        }
        let upload = self.store.put_multipart(key).await.map_err(|e| self.err(key, e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut buffer = vec![0u8; 1 << 20];
        let streamed: Result<(), SinkError> = async {
            loop {
                let n = file.read(&mut buffer).await.map_err(spool_err)?;
                if n == 0 {
                    return Ok(());
                }
                writer.wait_for_capacity(PART_CONCURRENCY).await.map_err(|e| self.err(key, e))?;
                writer.write(&buffer[..n]);
            }
        }
        .await;
        match streamed {
            Ok(()) => writer.finish().await.map(|_| ()).map_err(|e| self.err(key, e)),
            Err(e) => {
                // Parts already uploaded cost storage until the upload is aborted.
                let _ = writer.abort().await;
                Err(e)
            }
        }
    }

    /// Writes the manifest unless one exists; one that exists must be this very commit (a
    /// retried PUT whose first answer was lost).
    async fn put_manifest(&self, record: &CommitRecord) -> Result<(), SinkError> {
        let key = self.manifest_key(record.batch.seq)?;
        let text = serde_json::to_vec_pretty(record).map_err(|e| self.err(&key, e))?;
        match self.store.put_opts(&key, PutPayload::from(text), PutOptions::from(PutMode::Create)).await {
            Ok(_) => Ok(()),
            Err(object_store::Error::AlreadyExists { .. }) => match self.record(record.batch.seq).await? {
                Some(existing) if existing.batch == record.batch && existing.files == record.files => Ok(()),
                _ => Err(self.err(&key, "another commit of this batch number is already there")),
            },
            Err(e) => Err(self.err(&key, e)),
        }
    }

    /// A writer for one batch, spooling its files in a folder of its own.
    pub(super) fn writer(
        self: &Arc<Self>,
        spool_writer: impl FnOnce(PathBuf) -> Result<ParquetBatchWriter, SinkError>,
    ) -> Result<S3BatchWriter, SinkError> {
        let spool = self.spool_root.join(crate::temp_name::unique());
        Ok(S3BatchWriter { dataset: self.clone(), inner: spool_writer(spool.clone())?, spool })
    }
}

/// One batch: the local writer's hive folders and files, in a spool folder, until commit.
pub(super) struct S3BatchWriter {
    dataset: Arc<S3Dataset>,
    inner: ParquetBatchWriter,
    spool: PathBuf,
}

impl Drop for S3BatchWriter {
    fn drop(&mut self) {
        // Committed or abandoned, the spooled copies are no longer needed.
        let _ = std::fs::remove_dir_all(&self.spool);
    }
}

#[async_trait]
impl SinkWriter for S3BatchWriter {
    async fn write(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        self.inner.write(batch).await
    }

    async fn commit(mut self: Box<Self>, manifest: &BatchManifest) -> Result<String, SinkError> {
        let dataset = self.dataset.clone();
        let mut files = Vec::new();
        let mut staged = Vec::new();
        for (n, (folder, (writer, temp))) in std::mem::take(&mut self.inner.open).into_iter().enumerate() {
            // Finishing writes the footer; durability comes from the upload, not the spool.
            writer.into_inner().map_err(|e| self.inner.err(e))?;
            let name = format!("part-{}-{:010}.parquet", self.inner.file_id, manifest.seq);
            files.push(if folder.is_empty() { name } else { format!("{folder}/{name}") });
            let key = dataset.staged_key(manifest.seq, n)?;
            dataset.upload(&temp, &key).await?;
            // Uploaded: the spooled copy is not needed any more.
            let _ = std::fs::remove_file(&temp);
            staged.push(key);
        }
        crate::fault_point!("after_data_files");
        let record = CommitRecord { batch: manifest.clone(), files, columns: RecordedColumn::of(&self.inner.schema) };
        dataset.put_manifest(&record).await?;
        // Committed. Make the files visible; a crash here is finished by `recover` at restart.
        crate::fault_point!("between_parquet_temp_and_rename");
        for (key, file) in staged.iter().zip(&record.files) {
            let final_key = dataset.key(file)?;
            dataset.store.copy(key, &final_key).await.map_err(|e| dataset.err(key, e))?;
            dataset.store.delete(key).await.map_err(|e| dataset.err(key, e))?;
        }
        // The same reference `batches_after` gives for it.
        Ok(format!("parquet files {}", record.files.join(", ")))
    }
}

//! A folder of Parquet files. A batch's files are written under hidden temporary names, fsynced,
//! then a manifest `_ingestd/<app id>/<seq>.json` is renamed into place: that rename is the
//! commit. The temporary files are then renamed to deterministic names derived from
//! (instance, source, seq, partition) and the folders fsynced. A crash after the manifest is
//! finished at the next start (the renames are redone); a crash before it leaves only hidden
//! temporary files, which the next start deletes.
//!
//! `path = "s3://bucket/prefix"` keeps the dataset in a bucket instead: see `parquet/s3.rs`.

use super::{BatchManifest, Sink, SinkError, SinkWriter};
use crate::config::ColumnType;
use crate::config::{ParquetCompression, ParquetSinkConfig};
use crate::map::{PATH_METADATA, TYPE_METADATA, arrow_type};
use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const MANIFEST_DIR: &str = "_ingestd";

/// The manifest file: the batch manifest plus the data files it made visible.
#[derive(Debug, Serialize, Deserialize)]
struct CommitRecord {
    batch: BatchManifest,
    /// Data files relative to the dataset folder.
    files: Vec<String>,
    /// The batch's columns: a dataset's files differ once columns are added, and the newest
    /// record says the columns the source maps (absent in records of ingestd < 0.3).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    columns: Vec<RecordedColumn>,
}

/// One column of a batch, as the mapping gave it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct RecordedColumn {
    name: String,
    /// The ingestd type (`int64`, `decimal(12,2)`, `json`...).
    #[serde(rename = "type")]
    kind: String,
    /// The input path it reads; absent for metadata and rescued columns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    path: Option<String>,
}

impl RecordedColumn {
    fn of(schema: &Schema) -> Vec<RecordedColumn> {
        schema
            .fields()
            .iter()
            .map(|f| RecordedColumn {
                name: f.name().clone(),
                kind: f.metadata().get(TYPE_METADATA).cloned().unwrap_or_else(|| match f.data_type() {
                    arrow::datatypes::DataType::Timestamp(_, _) => "timestamp".into(),
                    _ => "string".into(),
                }),
                path: f.metadata().get(PATH_METADATA).cloned(),
            })
            .collect()
    }

    /// The columns as an Arrow schema with ingestd's field metadata.
    fn schema(columns: &[RecordedColumn]) -> Result<SchemaRef, String> {
        let mut fields = Vec::new();
        for c in columns {
            let kind: ColumnType = c.kind.parse()?;
            let mut field = Field::new(&c.name, arrow_type(kind), true);
            if let Some(path) = &c.path {
                field = field.with_metadata(
                    [(PATH_METADATA.to_string(), path.clone()), (TYPE_METADATA.to_string(), c.kind.clone())].into_iter().collect(),
                );
            }
            fields.push(field);
        }
        Ok(Arc::new(Schema::new(fields)))
    }
}

/// A Parquet dataset (local folder or bucket prefix) written by one (instance, source).
pub struct ParquetSink {
    name: String,
    config: ParquetSinkConfig,
    /// `<instance>+<source>`: neither may contain `+`, so no two (instance, source) pairs share
    /// file names or a manifest folder.
    file_id: String,
    prepared: bool,
    /// The bucket when `path` is `s3://...`; a client that could not be built fails every call.
    s3: Option<Result<Arc<s3::S3Dataset>, String>>,
}

impl ParquetSink {
    /// The sink `name` as configured, for `source`'s batches from `instance`.
    pub fn new(name: &str, config: ParquetSinkConfig, instance: &str, source: &str, state_dir: &Path) -> ParquetSink {
        let file_id = format!("{instance}+{source}");
        let spool = state_dir.join("spool").join(format!("parquet-{source}-{name}"));
        let s3 = config.path.starts_with("s3://").then(|| s3::S3Dataset::new(name, &config, &file_id, spool).map(Arc::new));
        ParquetSink { name: name.to_string(), config, file_id, prepared: false, s3 }
    }

    /// The bucket, when the dataset is in one.
    fn bucket(&self) -> Result<Option<&Arc<s3::S3Dataset>>, SinkError> {
        match &self.s3 {
            None => Ok(None),
            Some(Ok(dataset)) => Ok(Some(dataset)),
            Some(Err(e)) => Err(self.err(e.clone())),
        }
    }

    fn root(&self) -> PathBuf {
        PathBuf::from(&self.config.path)
    }

    fn manifest_dir(&self) -> PathBuf {
        self.root().join(MANIFEST_DIR).join(&self.file_id)
    }

    fn err(&self, e: impl Into<crate::sinks::Cause>) -> SinkError {
        SinkError::storage(&self.name, e)
    }

    fn records(&self) -> Result<Vec<CommitRecord>, SinkError> {
        let dir = self.manifest_dir();
        let mut records = Vec::new();
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(records),
            Err(e) => return Err(self.err(format!("{}: {e}", dir.display()))),
        };
        for entry in entries {
            let path = entry.map_err(|e| self.err(e))?.path();
            if path.extension().is_some_and(|e| e == "json") {
                let text = std::fs::read(&path).map_err(|e| self.err(format!("{}: {e}", path.display())))?;
                let record: CommitRecord =
                    serde_json::from_slice(&text).map_err(|e| self.err(format!("damaged manifest {}: {e}", path.display())))?;
                records.push(record);
            }
        }
        records.sort_by_key(|r| r.batch.seq);
        Ok(records)
    }

    /// Redoes the renames of committed batches and deletes temporary files of uncommitted ones.
    fn finish_interrupted(&self) -> Result<(), SinkError> {
        let mut committed_temps = std::collections::HashSet::new();
        for record in self.records()? {
            for file in &record.files {
                let final_path = self.root().join(file);
                let temp = temp_path(&final_path);
                committed_temps.insert(temp.clone());
                if temp.exists() {
                    std::fs::rename(&temp, &final_path).map_err(|e| self.err(format!("{}: {e}", temp.display())))?;
                    sync_parent(&final_path).map_err(|e| self.err(e))?;
                }
            }
        }
        remove_temps(&self.root(), &format!(".part-{}-", self.file_id), &committed_temps).map_err(|e| self.err(e))?;
        // A manifest still under its temporary name was never committed.
        let manifests = match std::fs::read_dir(self.manifest_dir()) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(self.err(e)),
        };
        for entry in manifests {
            let path = entry.map_err(|e| self.err(e))?.path();
            if path.to_string_lossy().ends_with(".json.tmp") {
                std::fs::remove_file(&path).map_err(|e| self.err(format!("{}: {e}", path.display())))?;
            }
        }
        Ok(())
    }
}

/// Deletes this writer's temporary files that no manifest claims. Names are matched exactly
/// (`<prefix>~...tmp` while writing, `<prefix><seq>.parquet.tmp` staged), so another source whose
/// name starts the same way is never touched.
fn remove_temps(dir: &Path, prefix: &str, keep: &std::collections::HashSet<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type()?.is_dir() {
            if name != MANIFEST_DIR {
                remove_temps(&path, prefix, keep)?;
            }
            continue;
        }
        let Some(rest) = name.strip_prefix(prefix) else { continue };
        let writing = rest.starts_with('~') && rest.ends_with(".tmp");
        let staged = rest.strip_suffix(".parquet.tmp").is_some_and(|seq| seq.len() == 10 && seq.bytes().all(|b| b.is_ascii_digit()));
        if (writing || staged) && !keep.contains(&path) {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

fn temp_path(final_path: &Path) -> PathBuf {
    let name = final_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    final_path.with_file_name(format!(".{name}.tmp"))
}

fn sync_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) => File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

#[async_trait]
impl Sink for ParquetSink {
    fn name(&self) -> &str {
        &self.name
    }

    async fn prepare(&mut self, schema: SchemaRef) -> Result<(), SinkError> {
        // A bucket has no folders to create.
        if self.bucket()?.is_none() {
            std::fs::create_dir_all(self.manifest_dir()).map_err(|e| self.err(format!("cannot create {}: {e}", self.config.path)))?;
        }
        for column in &self.config.partition_by {
            if schema.index_of(column).is_err() {
                return Err(self.err(format!("partition column {column:?} is not an output column")));
            }
        }
        self.prepared = true;
        Ok(())
    }

    async fn table_schema(&self) -> Result<Option<SchemaRef>, SinkError> {
        let records = match self.bucket()? {
            Some(dataset) => {
                let Some(last) = dataset.committed_seqs().await?.last().copied() else { return Ok(None) };
                dataset.record(last).await?.into_iter().collect()
            }
            None => self.records()?,
        };
        match records.last() {
            Some(record) if !record.columns.is_empty() => RecordedColumn::schema(&record.columns).map(Some).map_err(|e| self.err(e)),
            _ => Ok(None),
        }
    }

    async fn recover(&self) -> Result<Option<i64>, SinkError> {
        if let Some(dataset) = self.bucket()? {
            return dataset.recover().await;
        }
        if self.root().exists() {
            self.finish_interrupted()?;
        }
        Ok(self.records()?.last().map(|r| r.batch.seq))
    }

    async fn batches_after(&self, after: i64) -> Result<Vec<(BatchManifest, String)>, SinkError> {
        let records = match self.bucket()? {
            Some(dataset) => dataset.records_after(after).await?,
            None => self.records()?,
        };
        Ok(records
            .into_iter()
            .filter(|r| r.batch.seq > after)
            .map(|r| {
                let reference = format!("parquet files {}", r.files.join(", "));
                (r.batch, reference)
            })
            .collect())
    }

    async fn lake_commit(&self, seq: i64) -> Result<Option<crate::druid::LakeCommit>, SinkError> {
        if let Some(dataset) = self.bucket()? {
            let record = dataset.record(seq).await?;
            return Ok(record.map(|r| crate::druid::LakeCommit { root: dataset.url(), version: None, files: r.files }));
        }
        let path = self.manifest_dir().join(format!("{seq:020}.json"));
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.err(format!("{}: {e}", path.display()))),
        };
        let record: CommitRecord =
            serde_json::from_slice(&text).map_err(|e| self.err(format!("damaged manifest {}: {e}", path.display())))?;
        let root = std::path::absolute(self.root()).map_err(|e| self.err(format!("{}: {e}", self.config.path)))?;
        Ok(Some(crate::druid::LakeCommit { root: root.to_string_lossy().into_owned(), version: None, files: record.files }))
    }

    async fn begin(&self, schema: SchemaRef) -> Result<Box<dyn SinkWriter>, SinkError> {
        match self.bucket()? {
            Some(dataset) => Ok(Box::new(dataset.writer(|spool| self.writer(spool, schema))?)),
            None => Ok(Box::new(self.writer(self.root(), schema)?)),
        }
    }
}

impl ParquetSink {
    /// A writer of this sink's files below `root` (the dataset folder, or a bucket's spool), in
    /// the batch's schema: a dataset's files carry the columns of their batch, so a column added
    /// later is in the files from then on.
    fn writer(&self, root: PathBuf, schema: SchemaRef) -> Result<ParquetBatchWriter, SinkError> {
        if !self.prepared {
            return Err(self.err("begin before prepare"));
        }
        let compression = match self.config.compression {
            ParquetCompression::Zstd => Compression::ZSTD(ZstdLevel::try_new(self.config.zstd_level).map_err(|e| self.err(e))?),
            ParquetCompression::None => Compression::UNCOMPRESSED,
        };
        let partition_idx: Vec<usize> = self.config.partition_by.iter().filter_map(|c| schema.index_of(c).ok()).collect();
        let file_fields: Vec<_> =
            schema.fields().iter().enumerate().filter(|(i, _)| !partition_idx.contains(i)).map(|(_, f)| f.clone()).collect();
        Ok(ParquetBatchWriter {
            sink: self.name.clone(),
            root,
            manifest_dir: self.manifest_dir(),
            file_id: self.file_id.clone(),
            properties: WriterProperties::builder().set_compression(compression).build(),
            partition_by: self.config.partition_by.clone(),
            partition_idx,
            file_schema: Arc::new(Schema::new(file_fields)),
            schema,
            open: BTreeMap::new(),
        })
    }
}

struct ParquetBatchWriter {
    sink: String,
    root: PathBuf,
    manifest_dir: PathBuf,
    file_id: String,
    properties: WriterProperties,
    partition_by: Vec<String>,
    partition_idx: Vec<usize>,
    file_schema: SchemaRef,
    /// The batch's schema, partition columns included.
    schema: SchemaRef,
    /// Open temporary files by partition folder ("" when unpartitioned).
    open: BTreeMap<String, (ArrowWriter<File>, PathBuf)>,
}

impl ParquetBatchWriter {
    fn err(&self, e: impl Into<crate::sinks::Cause>) -> SinkError {
        SinkError::storage(&self.sink, e)
    }

    fn final_path(&self, folder: &str, seq: i64) -> PathBuf {
        let name = format!("part-{}-{seq:010}.parquet", self.file_id);
        if folder.is_empty() { self.root.join(name) } else { self.root.join(folder).join(name) }
    }
}

#[async_trait]
impl SinkWriter for ParquetBatchWriter {
    async fn write(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        for (folder, part) in self.split(batch)? {
            if !self.open.contains_key(&folder) {
                // The temporary name is per writer; the final name is known only at commit.
                let dir = if folder.is_empty() { self.root.clone() } else { self.root.join(&folder) };
                std::fs::create_dir_all(&dir).map_err(|e| self.err(format!("{}: {e}", dir.display())))?;
                let temp = dir.join(format!(".part-{}-~{}.tmp", self.file_id, crate::temp_name::unique()));
                let file = File::create(&temp).map_err(|e| self.err(format!("{}: {e}", temp.display())))?;
                let writer =
                    ArrowWriter::try_new(file, self.file_schema.clone(), Some(self.properties.clone())).map_err(|e| self.err(e))?;
                self.open.insert(folder.clone(), (writer, temp));
            }
            if let Some((writer, _)) = self.open.get_mut(&folder) {
                writer.write(&part).map_err(|e| SinkError::storage(&self.sink, e))?;
            }
        }
        Ok(())
    }

    async fn commit(mut self: Box<Self>, manifest: &BatchManifest) -> Result<String, SinkError> {
        let mut moves = Vec::new();
        for (folder, (writer, temp)) in std::mem::take(&mut self.open) {
            let file = writer.into_inner().map_err(|e| self.err(e))?;
            file.sync_all().map_err(|e| self.err(e))?;
            let final_path = self.final_path(&folder, manifest.seq);
            // Rename to the deterministic temporary name recovery looks for.
            let staged = temp_path(&final_path);
            std::fs::rename(&temp, &staged).map_err(|e| self.err(format!("{}: {e}", temp.display())))?;
            sync_parent(&staged).map_err(|e| self.err(e))?;
            moves.push((staged, final_path));
        }
        let files: Vec<String> =
            moves.iter().map(|(_, f)| f.strip_prefix(&self.root).unwrap_or(f).to_string_lossy().into_owned()).collect();
        crate::fault_point!("after_data_files");
        let record = CommitRecord { batch: manifest.clone(), files: files.clone(), columns: RecordedColumn::of(&self.schema) };
        let manifest_path = self.manifest_dir.join(format!("{:020}.json", manifest.seq));
        let manifest_temp = manifest_path.with_extension("json.tmp");
        let text = serde_json::to_vec_pretty(&record).map_err(|e| self.err(e))?;
        let write_manifest = || -> std::io::Result<()> {
            let mut file = File::create(&manifest_temp)?;
            std::io::Write::write_all(&mut file, &text)?;
            file.sync_all()?;
            std::fs::rename(&manifest_temp, &manifest_path)?;
            sync_parent(&manifest_path)
        };
        write_manifest().map_err(|e| self.err(format!("{}: {e}", manifest_path.display())))?;
        // Committed. Make the files visible; a crash here is finished by `recover` at restart.
        crate::fault_point!("between_parquet_temp_and_rename");
        for (staged, final_path) in &moves {
            std::fs::rename(staged, final_path).map_err(|e| self.err(format!("{}: {e}", staged.display())))?;
            sync_parent(final_path).map_err(|e| self.err(e))?;
        }
        Ok(format!("parquet files {}", files.join(", ")))
    }
}

mod partition;
mod s3;
#[cfg(test)]
mod tests;

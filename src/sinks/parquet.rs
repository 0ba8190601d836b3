//! A folder of Parquet files. A batch's files are written under hidden temporary names, fsynced,
//! then a manifest `_ingestd/<app id>/<seq>.json` is renamed into place: that rename is the
//! commit. The temporary files are then renamed to deterministic names derived from
//! (instance, source, seq, partition) and the folders fsynced. A crash after the manifest is
//! finished at the next start (the renames are redone); a crash before it leaves only hidden
//! temporary files, which the next start deletes.

use super::{BatchManifest, Sink, SinkError, SinkWriter};
use crate::config::{ParquetCompression, ParquetSinkConfig};
use arrow::array::{Array, ArrayRef, UInt32Array};
use arrow::datatypes::{Schema, SchemaRef};
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
const HIVE_NULL: &str = "__HIVE_DEFAULT_PARTITION__";

/// The manifest file: the batch manifest plus the data files it made visible.
#[derive(Debug, Serialize, Deserialize)]
struct CommitRecord {
    batch: BatchManifest,
    /// Data files relative to the dataset folder.
    files: Vec<String>,
}

pub struct ParquetSink {
    name: String,
    config: ParquetSinkConfig,
    /// `<instance>+<source>`: neither may contain `+`, so no two (instance, source) pairs share
    /// file names or a manifest folder.
    file_id: String,
    schema: Option<SchemaRef>,
}

impl ParquetSink {
    pub fn new(name: &str, config: ParquetSinkConfig, instance: &str, source: &str) -> ParquetSink {
        ParquetSink { name: name.to_string(), config, file_id: format!("{instance}+{source}"), schema: None }
    }

    fn root(&self) -> PathBuf {
        PathBuf::from(&self.config.path)
    }

    fn manifest_dir(&self) -> PathBuf {
        self.root().join(MANIFEST_DIR).join(&self.file_id)
    }

    fn err(&self, e: impl std::fmt::Display) -> SinkError {
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
        std::fs::create_dir_all(self.manifest_dir()).map_err(|e| self.err(format!("cannot create {}: {e}", self.config.path)))?;
        for column in &self.config.partition_by {
            if schema.index_of(column).is_err() {
                return Err(self.err(format!("partition column {column:?} is not an output column")));
            }
        }
        self.schema = Some(schema);
        Ok(())
    }

    async fn recover(&self) -> Result<Option<i64>, SinkError> {
        if self.root().exists() {
            self.finish_interrupted()?;
        }
        Ok(self.records()?.last().map(|r| r.batch.seq))
    }

    async fn batches_after(&self, after: i64) -> Result<Vec<(BatchManifest, String)>, SinkError> {
        Ok(self
            .records()?
            .into_iter()
            .filter(|r| r.batch.seq > after)
            .map(|r| {
                let reference = format!("parquet files {}", r.files.join(", "));
                (r.batch, reference)
            })
            .collect())
    }

    async fn lake_commit(&self, seq: i64) -> Result<Option<crate::druid::LakeCommit>, SinkError> {
        let path = self.manifest_dir().join(format!("{seq:020}.json"));
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(self.err(format!("{}: {e}", path.display()))),
        };
        let record: CommitRecord = serde_json::from_slice(&text).map_err(|e| self.err(format!("damaged manifest {}: {e}", path.display())))?;
        let root = std::path::absolute(self.root()).map_err(|e| self.err(format!("{}: {e}", self.config.path)))?;
        Ok(Some(crate::druid::LakeCommit { root: root.to_string_lossy().into_owned(), version: None, files: record.files }))
    }

    async fn begin(&self) -> Result<Box<dyn SinkWriter>, SinkError> {
        let schema = self.schema.clone().ok_or_else(|| self.err("begin before prepare"))?;
        let compression = match self.config.compression {
            ParquetCompression::Zstd => Compression::ZSTD(ZstdLevel::try_new(self.config.zstd_level).map_err(|e| self.err(e))?),
            ParquetCompression::None => Compression::UNCOMPRESSED,
        };
        let partition_idx: Vec<usize> = self.config.partition_by.iter().filter_map(|c| schema.index_of(c).ok()).collect();
        let file_fields: Vec<_> =
            schema.fields().iter().enumerate().filter(|(i, _)| !partition_idx.contains(i)).map(|(_, f)| f.clone()).collect();
        Ok(Box::new(ParquetBatchWriter {
            sink: self.name.clone(),
            root: self.root(),
            manifest_dir: self.manifest_dir(),
            file_id: self.file_id.clone(),
            properties: WriterProperties::builder().set_compression(compression).build(),
            partition_by: self.config.partition_by.clone(),
            partition_idx,
            file_schema: Arc::new(Schema::new(file_fields)),
            open: BTreeMap::new(),
        }))
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
    /// Open temporary files by partition folder ("" when unpartitioned).
    open: BTreeMap<String, (ArrowWriter<File>, PathBuf)>,
}

impl ParquetBatchWriter {
    fn err(&self, e: impl std::fmt::Display) -> SinkError {
        SinkError::storage(&self.sink, e)
    }

    /// Rows of `batch` grouped by their hive partition folder.
    fn split(&self, batch: &RecordBatch) -> Result<Vec<(String, RecordBatch)>, SinkError> {
        let data_columns: Vec<ArrayRef> =
            (0..batch.num_columns()).filter(|i| !self.partition_idx.contains(i)).map(|i| batch.column(i).clone()).collect();
        let data = RecordBatch::try_new(self.file_schema.clone(), data_columns).map_err(|e| self.err(e))?;
        if self.partition_idx.is_empty() {
            return Ok(vec![(String::new(), data)]);
        }
        let keys: Vec<ArrayRef> = self
            .partition_idx
            .iter()
            .map(|&i| arrow::compute::cast(batch.column(i), &arrow::datatypes::DataType::Utf8))
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))?;
        let mut groups: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        for row in 0..batch.num_rows() {
            let folder: Vec<String> = self
                .partition_by
                .iter()
                .zip(&keys)
                .map(|(name, key)| {
                    let key = arrow::array::AsArray::as_string::<i32>(key.as_ref());
                    let value = if key.is_null(row) { HIVE_NULL.to_string() } else { escape_partition_value(key.value(row)) };
                    format!("{name}={value}")
                })
                .collect();
            groups.entry(folder.join("/")).or_default().push(row as u32);
        }
        groups
            .into_iter()
            .map(|(folder, rows)| {
                let rows = UInt32Array::from(rows);
                let columns = data.columns().iter().map(|c| arrow::compute::take(c, &rows, None)).collect::<Result<Vec<_>, _>>();
                let part = columns.and_then(|c| RecordBatch::try_new(self.file_schema.clone(), c)).map_err(|e| self.err(e))?;
                Ok((folder, part))
            })
            .collect()
    }

    fn final_path(&self, folder: &str, seq: i64) -> PathBuf {
        let name = format!("part-{}-{seq:010}.parquet", self.file_id);
        if folder.is_empty() { self.root.join(name) } else { self.root.join(folder).join(name) }
    }
}

/// Percent-encodes a partition value byte by byte (UTF-8), as Hive and its readers decode it.
fn escape_partition_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-_.".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[async_trait]
impl SinkWriter for ParquetBatchWriter {
    async fn write(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        for (folder, part) in self.split(batch)? {
            if !self.open.contains_key(&folder) {
                // The temporary name is per writer; the final name is known only at commit.
                let dir = if folder.is_empty() { self.root.clone() } else { self.root.join(&folder) };
                std::fs::create_dir_all(&dir).map_err(|e| self.err(format!("{}: {e}", dir.display())))?;
                let temp = dir.join(format!(".part-{}-~{}.tmp", self.file_id, unique_suffix()));
                let file = File::create(&temp).map_err(|e| self.err(format!("{}: {e}", temp.display())))?;
                let writer = ArrowWriter::try_new(file, self.file_schema.clone(), Some(self.properties.clone())).map_err(|e| self.err(e))?;
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
        let files: Vec<String> = moves
            .iter()
            .map(|(_, f)| f.strip_prefix(&self.root).unwrap_or(f).to_string_lossy().into_owned())
            .collect();
        crate::fault_point!("after_data_files");
        let record = CommitRecord { batch: manifest.clone(), files: files.clone() };
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

/// A name part unique to this process and moment (no uuid dependency needed for a temp name).
fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{}-{nanos}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
mod tests;

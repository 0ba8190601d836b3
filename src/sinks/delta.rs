//! A Delta Lake table. A batch is one commit holding its data files (`add` actions), a `txn`
//! action `(app id, seq)` and the batch manifest in the commit info. Whether a batch is in the
//! table is read back from the `txn` version: the log is the truth, the ledger a cache of it.

mod maintenance;

use super::{BatchManifest, Sink, SinkError, SinkWriter};
use crate::config::DeltaSinkConfig;
use arrow::datatypes::{DataType as ArrowType, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, DataType, PrimitiveType, StructField, Transaction};
use tokio::sync::Mutex;
use deltalake::parquet::basic::{Compression, ZstdLevel};
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use deltalake::{DeltaTable, DeltaTableError};
use futures::TryStreamExt;
use url::Url;

/// Commit-info key under which the batch manifest is stored.
const MANIFEST_KEY: &str = "ingestd";

pub struct DeltaSink {
    name: String,
    config: DeltaSinkConfig,
    app_id: String,
    instance: String,
    source: String,
    /// The table as of the last batch, brought up to date incrementally (reading the whole log
    /// for every batch would cost more with every commit).
    cached: Mutex<Option<DeltaTable>>,
    /// When maintenance last checkpointed and vacuumed.
    schedule: Mutex<maintenance::Schedule>,
}

impl DeltaSink {
    pub fn new(name: &str, config: DeltaSinkConfig, instance: &str, source: &str) -> DeltaSink {
        DeltaSink {
            name: name.to_string(),
            config,
            app_id: BatchManifest::app_id(instance, source),
            instance: instance.to_string(),
            source: source.to_string(),
            cached: Mutex::new(None),
            schedule: Mutex::new(maintenance::Schedule::default()),
        }
    }

    fn err(&self, e: impl std::fmt::Display) -> SinkError {
        SinkError::storage(&self.name, e)
    }

    fn url(&self) -> Result<Url, SinkError> {
        if self.config.uri.contains("://") {
            return Url::parse(&self.config.uri).map_err(|e| self.err(format!("bad uri {:?}: {e}", self.config.uri)));
        }
        let path = std::path::Path::new(&self.config.uri);
        std::fs::create_dir_all(path).map_err(|e| self.err(format!("cannot create {}: {e}", path.display())))?;
        let path = path.canonicalize().map_err(|e| self.err(format!("{}: {e}", path.display())))?;
        Url::from_directory_path(&path).map_err(|()| self.err(format!("bad table path {}", path.display())))
    }

    /// The table at its latest version, or `None` if there is no table yet.
    async fn open_existing(&self) -> Result<Option<DeltaTable>, SinkError> {
        let mut table = DeltaTable::try_from_url(self.url()?).await.map_err(|e| self.err(e))?;
        // Listing `_delta_log/` answers quietly; the kernel's own check logs an error for a new table.
        let log_prefix = deltalake::Path::from("_delta_log");
        let mut listing = table.object_store().list(Some(&log_prefix));
        if listing.try_next().await.map_err(|e| self.err(e))?.is_none() {
            return Ok(None);
        }
        drop(listing);
        table.load().await.map_err(|e| self.err(e))?;
        Ok(Some(table))
    }

    /// `cached` brought up to date, or the table opened afresh.
    async fn current(&self, cached: Option<DeltaTable>) -> Result<DeltaTable, SinkError> {
        match cached {
            Some(mut table) => {
                table.update_state().await.map_err(|e| self.err(e))?;
                Ok(table)
            }
            None => self.open().await,
        }
    }

    /// The table at its latest version; it must exist.
    async fn open(&self) -> Result<DeltaTable, SinkError> {
        self.open_existing().await?.ok_or_else(|| self.err(format!("no Delta table at {}", self.config.uri)))
    }

    fn writer_properties(&self) -> Result<WriterProperties, SinkError> {
        let level = ZstdLevel::try_new(self.config.zstd_level).map_err(|e| self.err(e))?;
        Ok(WriterProperties::builder().set_compression(Compression::ZSTD(level)).build())
    }
}

/// The Delta type of each Arrow type the mapping produces.
fn delta_type(arrow: &ArrowType) -> Option<DataType> {
    Some(DataType::Primitive(match arrow {
        ArrowType::Utf8 => PrimitiveType::String,
        ArrowType::Int32 => PrimitiveType::Integer,
        ArrowType::Int64 => PrimitiveType::Long,
        ArrowType::Float64 => PrimitiveType::Double,
        ArrowType::Boolean => PrimitiveType::Boolean,
        ArrowType::Date32 => PrimitiveType::Date,
        ArrowType::Timestamp(TimeUnit::Microsecond, Some(_)) => PrimitiveType::Timestamp,
        _ => return None,
    }))
}

#[async_trait]
impl Sink for DeltaSink {
    fn name(&self) -> &str {
        &self.name
    }

    async fn prepare(&mut self, schema: SchemaRef) -> Result<(), SinkError> {
        if let Some(table) = self.open_existing().await? {
            let snapshot = table.snapshot().map_err(|e| self.err(e))?;
            let have = snapshot.snapshot().arrow_schema();
            let have: Vec<(String, ArrowType)> = have.fields().iter().map(|f| (f.name().clone(), f.data_type().clone())).collect();
            let want: Vec<(String, ArrowType)> = schema.fields().iter().map(|f| (f.name().clone(), f.data_type().clone())).collect();
            if have != want {
                return Err(SinkError::SchemaMismatch { sink: self.name.clone(), detail: format!("table has {have:?}, mapping gives {want:?}") });
            }
            return Ok(());
        }
        let table = DeltaTable::try_from_url(self.url()?).await.map_err(|e| self.err(e))?;
        let mut columns = Vec::new();
        for field in schema.fields() {
            let kind = delta_type(field.data_type())
                .ok_or_else(|| self.err(format!("column {:?}: type {} has no Delta equivalent", field.name(), field.data_type())))?;
            columns.push(StructField::new(field.name().clone(), kind, true));
        }
        table
            .create()
            .with_columns(columns)
            .with_partition_columns(self.config.partition_by.clone())
            .with_table_name(self.name.clone())
            .await
            .map_err(|e| self.err(format!("cannot create table at {}: {e}", self.config.uri)))?;
        Ok(())
    }

    async fn recover(&self) -> Result<Option<i64>, SinkError> {
        let Some(table) = self.open_existing().await? else { return Ok(None) };
        let snapshot = table.snapshot().map_err(|e| self.err(e))?;
        snapshot.transaction_version(table.log_store().as_ref(), &self.app_id).await.map_err(|e| self.err(e))
    }

    async fn batches_after(&self, after: i64) -> Result<Vec<(BatchManifest, String)>, SinkError> {
        let table = self.open().await?;
        let mut found = Vec::new();
        let mut history = table.history(None);
        while let Some(info) = history.try_next().await.map_err(|e| self.err(e))? {
            let Some(value) = info.info.get(MANIFEST_KEY) else { continue };
            let Ok(manifest) = serde_json::from_value::<BatchManifest>(value.clone()) else { continue };
            if manifest.instance != self.instance || manifest.source != self.source {
                continue;
            }
            // History runs newest first, and our seqs only grow.
            if manifest.seq <= after {
                break;
            }
            let reference = format!("delta commit at {} (rebuilt from log)", info.timestamp.unwrap_or_default());
            found.push((manifest, reference));
        }
        found.reverse();
        Ok(found)
    }

    async fn begin(&self) -> Result<Box<dyn SinkWriter>, SinkError> {
        let mut cached = self.cached.lock().await;
        let table = self.current(cached.take()).await?;
        *cached = Some(table.clone());
        let writer = RecordBatchWriter::for_table(&table)
            .map_err(|e| self.err(e))?
            .with_writer_properties(self.writer_properties()?);
        Ok(Box::new(DeltaBatchWriter {
            sink: self.name.clone(),
            app_id: self.app_id.clone(),
            flush_at: self.config.target_file_size.0 as usize,
            partition_by: self.config.partition_by.clone(),
            table,
            writer,
            adds: Vec::new(),
        }))
    }

    async fn maintain(&self) -> Result<Vec<String>, SinkError> {
        let mut cached = self.cached.lock().await;
        let mut table = self.current(cached.take()).await?;
        let mut schedule = self.schedule.lock().await;
        let result = maintenance::maintain(&mut table, &self.config, self.writer_properties()?, &mut schedule).await;
        *cached = Some(table);
        let done = result.map_err(|e| self.err(format!("maintenance: {e}")))?;
        let mut notes = Vec::new();
        if let Some((rewritten, written, version)) = done.compacted {
            notes.push(format!("compacted {rewritten} small files into {written} (version {version})"));
        }
        if done.vacuumed {
            notes.push(format!("vacuum deleted replaced files older than {}", humantime::format_duration(self.config.vacuum_retention.0)));
        }
        if let Some(version) = done.checkpoint {
            notes.push(format!("checkpoint at version {version}"));
        }
        Ok(notes)
    }
}

struct DeltaBatchWriter {
    sink: String,
    app_id: String,
    flush_at: usize,
    partition_by: Vec<String>,
    table: DeltaTable,
    writer: RecordBatchWriter,
    adds: Vec<Action>,
}

impl DeltaBatchWriter {
    fn err(&self, e: DeltaTableError) -> SinkError {
        SinkError::storage(&self.sink, e)
    }
}

#[async_trait]
impl SinkWriter for DeltaBatchWriter {
    async fn write(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        self.writer.write(batch.clone()).await.map_err(|e| self.err(e))?;
        // The writer buffers whole files in memory: cut them at the target size.
        if self.writer.buffer_len() >= self.flush_at {
            let adds = self.writer.flush().await.map_err(|e| self.err(e))?;
            self.adds.extend(adds.into_iter().map(Action::Add));
        }
        Ok(())
    }

    async fn commit(mut self: Box<Self>, manifest: &BatchManifest) -> Result<String, SinkError> {
        let adds = self.writer.flush().await.map_err(|e| self.err(e))?;
        self.adds.extend(adds.into_iter().map(Action::Add));
        crate::fault_point!("after_data_files");
        let actions = std::mem::take(&mut self.adds);
        // Defence in depth: a batch the table already holds (an earlier attempt landed) is not
        // committed twice.
        let snapshot = self.table.snapshot().map_err(|e| self.err(e))?;
        if let Some(held) = snapshot.transaction_version(self.table.log_store().as_ref(), &self.app_id).await.map_err(|e| self.err(e))?
            && held >= manifest.seq
        {
            return Ok(format!("already in the table (txn {held})"));
        }
        // object_store's local files are not fsynced: do it, data before the commit that names it.
        let local_root = self.table.table_url().to_file_path().ok();
        if let Some(root) = &local_root {
            let mut paths: Vec<std::path::PathBuf> = Vec::new();
            for action in &actions {
                if let Action::Add(add) = action
                    && let Ok(file) = self.table.table_url().join(&add.path).and_then(|u| u.to_file_path().map_err(|()| url::ParseError::EmptyHost))
                {
                    paths.push(file);
                }
            }
            fsync_files_and_folders(root, &paths).map_err(|e| SinkError::storage(&self.sink, format!("fsync data files: {e}")))?;
        }
        let manifest_json = serde_json::to_value(manifest).map_err(|e| SinkError::storage(&self.sink, e))?;
        let operation = DeltaOperation::Write {
            mode: SaveMode::Append,
            partition_by: (!self.partition_by.is_empty()).then(|| self.partition_by.clone()),
            predicate: None,
        };
        // Checkpoints are scheduled by maintenance (`checkpoint_interval`), not the hook.
        let properties = CommitProperties::default()
            .with_create_checkpoint(false)
            .with_application_transaction(Transaction::new(&self.app_id, manifest.seq))
            .with_metadata([(MANIFEST_KEY.to_string(), manifest_json)])
            .with_max_retries(100);
        let finalized = CommitBuilder::from(properties)
            .with_actions(actions)
            .build(Some(snapshot), self.table.log_store(), operation)
            .await
            .map_err(|e| self.err(e))?;
        let version = finalized.version();
        if let Some(root) = &local_root {
            let entry = root.join("_delta_log").join(format!("{version:020}.json"));
            fsync_files_and_folders(root, &[entry]).map_err(|e| SinkError::storage(&self.sink, format!("fsync commit {version}: {e}")))?;
        }
        Ok(format!("delta version {version}"))
    }
}

/// fsyncs each file and each distinct folder holding one (so the new names are durable too).
fn fsync_files_and_folders(root: &std::path::Path, files: &[std::path::PathBuf]) -> std::io::Result<()> {
    let mut folders = std::collections::BTreeSet::new();
    for file in files {
        std::fs::File::open(file)?.sync_all()?;
        if let Some(folder) = file.parent() {
            folders.insert(folder.to_path_buf());
        }
    }
    folders.insert(root.to_path_buf());
    for folder in folders {
        std::fs::File::open(folder)?.sync_all()?;
    }
    Ok(())
}

//! A Delta Lake table. A batch is one commit holding its data files (`add` actions), a `txn`
//! action `(app id, seq)` and the batch manifest in the commit info. Whether a batch is in the
//! table is read back from the `txn` version: the log is the truth, the ledger a cache of it.

mod commits;
mod maintenance;
mod merge;
mod schema;

use super::{BatchManifest, Sink, SinkError, SinkErrorKind, SinkWriter, Upkeep};
use crate::config::DeltaSinkConfig;
use arrow::datatypes::{Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::kernel::{Action, MetadataExt, Transaction};
use deltalake::parquet::basic::{Compression, ZstdLevel};
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use deltalake::{DeltaTable, DeltaTableError};
use futures::TryStreamExt;
use std::sync::Arc;
use tokio::sync::Mutex;
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
    /// Shared with this sink's upkeep, which commits beside the batches.
    durable: DurableLog,
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
            durable: DurableLog::default(),
        }
    }

    fn err(&self, e: impl Into<crate::sinks::Cause>) -> SinkError {
        SinkError::storage(&self.name, e)
    }

    async fn open_existing(&self) -> Result<Option<DeltaTable>, SinkError> {
        open_existing(&self.name, &self.config).await
    }

    /// `cached` brought up to date, or the table opened afresh.
    async fn current(&self, cached: Option<DeltaTable>) -> Result<DeltaTable, SinkError> {
        current(&self.name, &self.config, cached).await
    }

    /// The table at its latest version; it must exist.
    async fn open(&self) -> Result<DeltaTable, SinkError> {
        self.current(None).await
    }
}

/// The table's location as a URL; a local folder is created if missing.
fn table_url(sink: &str, uri: &str) -> Result<Url, SinkError> {
    let err = |e: String| SinkError::storage(sink, e);
    if uri.contains("://") {
        return Url::parse(uri).map_err(|e| err(format!("bad uri {uri:?}: {e}")));
    }
    let path = std::path::Path::new(uri);
    std::fs::create_dir_all(path).map_err(|e| err(format!("cannot create {}: {e}", path.display())))?;
    let path = path.canonicalize().map_err(|e| err(format!("{}: {e}", path.display())))?;
    Url::from_directory_path(&path).map_err(|()| err(format!("bad table path {}", path.display())))
}

/// The table handle, not loaded: an `s3://` table gets the sink's S3 options.
fn unloaded_table(sink: &str, config: &DeltaSinkConfig) -> Result<DeltaTable, SinkError> {
    unloaded_table_at(sink, &config.uri, &config.s3)
}

fn unloaded_table_at(sink: &str, uri: &str, s3: &crate::config::S3Config) -> Result<DeltaTable, SinkError> {
    let url = table_url(sink, uri)?;
    let mut builder = deltalake::DeltaTableBuilder::from_url(url).map_err(|e| SinkError::storage(sink, e))?;
    if uri.starts_with("s3://") || uri.starts_with("s3a://") {
        register_s3();
        builder = builder.with_storage_options(s3.storage_options());
    }
    builder.build().map_err(|e| SinkError::storage(sink, e))
}

/// deltalake learns the `s3://` scheme when asked to, once per process.
fn register_s3() {
    static REGISTERED: std::sync::Once = std::sync::Once::new();
    REGISTERED.call_once(|| deltalake::aws::register_handlers(None));
}

/// The table at its latest version, or `None` if there is no table yet.
async fn open_existing(sink: &str, config: &DeltaSinkConfig) -> Result<Option<DeltaTable>, SinkError> {
    open_table_at(sink, &config.uri, &config.s3).await
}

/// The Delta table at `uri` (a path or `s3://`) at its latest version, or `None` if there is
/// none; `sink` names it in errors. For readers of tables besides the sinks (lookups, `sql`).
pub(crate) async fn open_table_at(sink: &str, uri: &str, s3: &crate::config::S3Config) -> Result<Option<DeltaTable>, SinkError> {
    let err = |e: DeltaTableError| SinkError::storage(sink, e);
    let mut table = unloaded_table_at(sink, uri, s3)?;
    // Listing `_delta_log/` answers quietly; the kernel's own check logs an error for a new table.
    let log_prefix = deltalake::Path::from("_delta_log");
    let mut listing = table.object_store().list(Some(&log_prefix));
    if listing.try_next().await.map_err(|e| SinkError::storage(sink, e))?.is_none() {
        return Ok(None);
    }
    drop(listing);
    table.load().await.map_err(err)?;
    Ok(Some(table))
}

/// `cached` brought up to date, or the table opened afresh; it must exist.
async fn current(sink: &str, config: &DeltaSinkConfig, cached: Option<DeltaTable>) -> Result<DeltaTable, SinkError> {
    match cached {
        Some(mut table) => {
            table.update_state().await.map_err(|e| SinkError::storage(sink, e))?;
            Ok(table)
        }
        None => open_existing(sink, config).await?.ok_or_else(|| SinkError::storage(sink, format!("no Delta table at {}", config.uri))),
    }
}

fn writer_properties(sink: &str, config: &DeltaSinkConfig) -> Result<WriterProperties, SinkError> {
    let level = ZstdLevel::try_new(config.zstd_level).map_err(|e| SinkError::storage(sink, e))?;
    Ok(WriterProperties::builder().set_compression(Compression::ZSTD(level)).build())
}

/// How far the local log is known to be on disk. Upkeep commits beside the batches, so a
/// commit may land on top of another writer's entry that is not fsynced yet; a lost entry under
/// a durable later one would be a hole in the log. Each commit therefore fsyncs every entry
/// after the mark up to its own.
#[derive(Clone, Default)]
pub(super) struct DurableLog(Arc<Mutex<Option<i64>>>);

impl DurableLog {
    /// fsyncs the commit entries after the mark (or after `read`, the version the writer read,
    /// when nothing is marked yet) through `version`, and moves the mark there.
    async fn sync_through(&self, root: &std::path::Path, read: i64, version: i64) -> std::io::Result<()> {
        let mut mark = self.0.lock().await;
        let from = mark.unwrap_or(read) + 1;
        let log = root.join("_delta_log");
        let entries: Vec<_> = (from..=version).map(|v| log.join(format!("{v:020}.json"))).collect();
        fsync_off_thread(root, entries).await?;
        *mark = Some(mark.map_or(version, |m| m.max(version)));
        Ok(())
    }

    /// Records that everything through `version` was fsynced by the caller.
    async fn mark(&self, version: i64) {
        let mut mark = self.0.lock().await;
        *mark = Some(mark.map_or(version, |m| m.max(version)));
    }
}

/// Whether a failed commit certainly wrote no log entry: a conflict the conflict checker
/// refused, or retries exhausted. (A storage error may have written it; recovery asks the log.)
fn refused_before_writing(e: &DeltaTableError) -> bool {
    use deltalake::kernel::transaction::TransactionError;
    matches!(e, DeltaTableError::Transaction { source: TransactionError::CommitConflict(_) | TransactionError::MaxCommitAttempts(_) })
}

#[async_trait]
impl Sink for DeltaSink {
    fn name(&self) -> &str {
        &self.name
    }

    async fn prepare(&mut self, schema: SchemaRef) -> Result<(), SinkError> {
        if let Some(table) = self.open_existing().await? {
            return self.adopt(&table, &schema).await;
        }
        let table = unloaded_table(&self.name, &self.config)?;
        let columns = schema
            .fields()
            .iter()
            .map(|f| schema::struct_field(f))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SinkError::schema_mismatch(&self.name, &e))?;
        self.check_merge_columns(&schema)?;
        let mut create = table
            .create()
            .with_columns(columns)
            .with_partition_columns(self.config.partition_by.clone())
            .with_table_name(self.name.clone());
        if self.config.change_data_feed {
            create = create.with_configuration_property(deltalake::TableProperty::EnableChangeDataFeed, Some("true"));
        }
        let created = create.await;
        match created {
            Ok(table) => self.sync_log(&table, 0, 0).await,
            // Another source sharing this table created it first.
            Err(e) => match self.open_existing().await? {
                Some(table) => self.adopt(&table, &schema).await,
                None => Err(self.err(format!("cannot create table at {}: {e}", self.config.uri))),
            },
        }
    }

    async fn table_schema(&self) -> Result<Option<SchemaRef>, SinkError> {
        let Some(table) = self.open_existing().await? else { return Ok(None) };
        schema::table_schema(&table).map(Some).map_err(|e| self.err(e))
    }

    async fn schema_history(&self) -> Result<Vec<super::SchemaChange>, SinkError> {
        let Some(table) = self.open_existing().await? else { return Ok(Vec::new()) };
        commits::schema_history(&self.name, &table).await
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

    async fn lake_commit(&self, seq: i64) -> Result<Option<crate::druid::LakeCommit>, SinkError> {
        let mut cached = self.cached.lock().await;
        let table = match cached.take() {
            Some(table) => self.current(Some(table)).await?,
            None => match self.open_existing().await? {
                Some(table) => table,
                None => return Ok(None),
            },
        };
        let found = commits::lake_commit(&self.name, &table, (&self.instance, &self.source), seq).await;
        *cached = Some(table);
        found
    }

    async fn begin(&self, schema: SchemaRef) -> Result<Box<dyn SinkWriter>, SinkError> {
        let mut cached = self.cached.lock().await;
        let table = self.current(cached.take()).await?;
        *cached = Some(table.clone());
        let have = schema::table_schema(&table).map_err(|e| self.err(e))?;
        let added = schema::added_columns(&have, &schema).map_err(|e| SinkError::schema_mismatch(&self.name, &e))?;
        let append_schema = schema.clone();
        let writer = if added.is_empty() {
            RecordBatchWriter::for_table(&table)
        } else {
            // The batch brings columns: its files are written with them, and the commit adds them.
            let mut fields: Vec<Field> = have.fields().iter().map(|f| f.as_ref().clone()).collect();
            fields.extend(added.iter().cloned());
            let partition_by = table.snapshot().map_err(|e| self.err(e))?.metadata().partition_columns().to_vec();
            let storage = self.config.uri.contains("://").then(|| self.config.s3.storage_options());
            RecordBatchWriter::try_new(table.table_url().as_str(), Arc::new(Schema::new(fields)), Some(partition_by), storage)
        }
        .map_err(|e| self.err(e))?
        .with_writer_properties(writer_properties(&self.name, &self.config)?);
        let append = DeltaBatchWriter {
            sink: self.name.clone(),
            durable: self.durable.clone(),
            app_id: self.app_id.clone(),
            flush_at: self.config.target_file_size.0 as usize,
            partition_by: self.config.partition_by.clone(),
            target: writer.arrow_schema(),
            added: added.clone(),
            table: table.clone(),
            writer,
            adds: Vec::new(),
        };
        if !self.config.merges() {
            return Ok(Box::new(append));
        }
        self.check_merge_columns(&append_schema)?;
        let merge = merge::Merge {
            sink: self.name.clone(),
            config: self.config.clone(),
            app_id: self.app_id.clone(),
            durable: self.durable.clone(),
            table,
            added,
            schema: append_schema,
            rows: Vec::new(),
        };
        Ok(Box::new(merge::DeltaMergeWriter { merge, empty: Box::new(append) }))
    }

    fn upkeep(&self) -> Option<Box<dyn Upkeep>> {
        Some(Box::new(maintenance::DeltaUpkeep::new(&self.name, self.config.clone(), self.durable.clone())))
    }
}

impl DeltaSink {
    /// In merge mode, the key and sequence columns must be columns of the batches.
    fn check_merge_columns(&self, schema: &SchemaRef) -> Result<(), SinkError> {
        if !self.config.merges() {
            return Ok(());
        }
        let named = self
            .config
            .merge_key
            .iter()
            .map(|c| ("merge_key", c))
            .chain(self.config.sequence_column.iter().map(|c| ("sequence_column", c)));
        for (key, column) in named {
            if schema.field_with_name(column).is_err() {
                return Err(SinkError::schema_mismatch(&self.name, &format!("{key}: {column:?} is not a column of the batches")));
            }
        }
        Ok(())
    }

    /// Checks an existing table against the mapping (a column both have has one type; columns
    /// the table lacks are added by the first batch that writes them) and makes sure the log
    /// this run builds on is on disk (a crash before may have left it in the page cache only);
    /// entries before the last checkpoint are covered by it.
    async fn adopt(&self, table: &DeltaTable, schema: &SchemaRef) -> Result<(), SinkError> {
        self.check_merge_columns(schema)?;
        let have = schema::table_schema(table).map_err(|e| self.err(e))?;
        schema::added_columns(&have, schema).map_err(|e| SinkError::schema_mismatch(&self.name, &e))?;
        let version = table.version().map_or(0, |v| v as i64);
        self.sync_log(table, maintenance::last_checkpoint(table).await.unwrap_or(0), version).await
    }

    /// fsyncs the log entries from `from` through `version` (and checkpoints), and marks them.
    async fn sync_log(&self, table: &DeltaTable, from: i64, version: i64) -> Result<(), SinkError> {
        if let Ok(root) = table.table_url().to_file_path() {
            let synced = tokio::task::spawn_blocking(move || maintenance::fsync_log(&root, from)).await.map_err(std::io::Error::other);
            synced.and_then(|r| r).map_err(|e| self.err(format!("fsync _delta_log: {e}")))?;
        }
        self.durable.mark(version).await;
        Ok(())
    }
}

struct DeltaBatchWriter {
    sink: String,
    durable: DurableLog,
    app_id: String,
    flush_at: usize,
    partition_by: Vec<String>,
    /// The schema the files are written with: the table's columns, then `added`.
    target: SchemaRef,
    /// Columns this batch adds to the table, in the same commit as its rows.
    added: Vec<Field>,
    table: DeltaTable,
    writer: RecordBatchWriter,
    adds: Vec<Action>,
}

impl DeltaBatchWriter {
    /// A commit refused because another writer got there first is a conflict; anything else
    /// is the storage failing.
    fn err(&self, e: DeltaTableError) -> SinkError {
        let kind = if refused_before_writing(&e) { SinkErrorKind::Conflict } else { SinkErrorKind::Retryable };
        SinkError::new(&self.sink, kind, e)
    }
}

#[async_trait]
impl SinkWriter for DeltaBatchWriter {
    async fn write(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        let batch = schema::align(batch, &self.target).map_err(|e| SinkError::storage(&self.sink, e))?;
        self.writer.write(batch).await.map_err(|e| self.err(e))?;
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
        let mut actions = std::mem::take(&mut self.adds);
        // Defence in depth: a batch the table already holds (an earlier attempt landed) is not
        // committed twice.
        let snapshot = self.table.snapshot().map_err(|e| self.err(e))?;
        let read_version = snapshot.version();
        if let Some(held) = snapshot.transaction_version(self.table.log_store().as_ref(), &self.app_id).await.map_err(|e| self.err(e))?
            && held >= manifest.seq
        {
            return Ok(format!("already in the table (txn {held})"));
        }
        // object_store's local files are not fsynced: do it, data before the commit that names it.
        let local_root = self.table.table_url().to_file_path().ok();
        if let Some(root) = &local_root {
            // `add.path` is the file's name under the root as written (hive-escaped, `a%20b`), not
            // a URL to decode.
            let paths: Vec<_> = added_paths(&actions).map(|path| root.join(path)).collect();
            fsync_off_thread(root, paths).await.map_err(|e| SinkError::storage(&self.sink, format!("fsync data files: {e}")))?;
        }
        if !self.added.is_empty() {
            // The new columns land with the rows that bring them: no reader sees one without
            // the other, and a crash leaves neither.
            let evolved = schema::evolved(&self.table, &self.added).map_err(|e| SinkError::schema_mismatch(&self.sink, &e))?;
            let metadata =
                snapshot.metadata().clone().with_schema(&evolved).map_err(|e| SinkError::schema_mismatch(&self.sink, &e.to_string()))?;
            actions.push(Action::Metadata(metadata));
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
        let added: Vec<String> = added_paths(&actions).map(str::to_string).collect();
        let finalized =
            match CommitBuilder::from(properties).with_actions(actions).build(Some(snapshot), self.table.log_store(), operation).await {
                Ok(finalized) => finalized,
                Err(e) => {
                    if refused_before_writing(&e) {
                        // No log entry names these files, and none ever will (a redo writes new
                        // ones): delete them rather than leave orphans in the table's folder.
                        match &local_root {
                            Some(root) => {
                                let files: Vec<_> = added.iter().map(|path| root.join(path)).collect();
                                let removed = tokio::task::spawn_blocking(move || files.iter().for_each(|f| drop(std::fs::remove_file(f))));
                                let _ = removed.await;
                            }
                            None => {
                                for path in &added {
                                    if let Ok(key) = deltalake::Path::parse(path) {
                                        let _ = object_store::ObjectStoreExt::delete(self.table.object_store().as_ref(), &key).await;
                                    }
                                }
                            }
                        }
                    }
                    return Err(self.err(e));
                }
            };
        let version = finalized.version();
        if let Some(root) = &local_root {
            self.durable
                .sync_through(root, read_version as i64, version as i64)
                .await
                .map_err(|e| SinkError::storage(&self.sink, format!("fsync commit {version}: {e}")))?;
        }
        Ok(format!("delta version {version}"))
    }
}

/// After a commit another operation made (a merge): fsyncs the data files version `version` added
/// and the log entries from `read` through it, on a local table.
async fn sync_committed(sink: &str, table: &DeltaTable, durable: &DurableLog, read: i64, version: i64) -> Result<(), SinkError> {
    let Ok(root) = table.table_url().to_file_path() else { return Ok(()) };
    let err = |e: String| SinkError::storage(sink, e);
    let bytes = table.log_store().read_commit_entry(version as u64).await.map_err(|e| err(e.to_string()))?;
    let actions = match bytes {
        Some(bytes) => deltalake::logstore::get_actions(version as u64, &bytes).map_err(|e| err(e.to_string()))?,
        None => Vec::new(),
    };
    let paths: Vec<_> = added_paths(&actions).map(|path| root.join(path)).collect();
    fsync_off_thread(&root, paths).await.map_err(|e| err(format!("fsync data files: {e}")))?;
    durable.sync_through(&root, read, version).await.map_err(|e| err(format!("fsync commit {version}: {e}")))
}

/// The files `actions` add (data files, and the change data files of a merge on a table with its
/// change data feed on), as their paths relative to the table root, hive-escaped.
fn added_paths(actions: &[Action]) -> impl Iterator<Item = &str> {
    actions.iter().filter_map(|a| match a {
        Action::Add(add) => Some(add.path.as_str()),
        Action::Cdc(cdc) => Some(cdc.path.as_str()),
        _ => None,
    })
}

/// [`fsync_files_and_folders`] on a blocking thread, off the async workers.
async fn fsync_off_thread(root: &std::path::Path, files: Vec<std::path::PathBuf>) -> std::io::Result<()> {
    let root = root.to_path_buf();
    tokio::task::spawn_blocking(move || fsync_files_and_folders(&root, &files)).await.map_err(std::io::Error::other)?
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

//! Keeping a Delta table healthy over a long run, between batches: checkpoints every N
//! commits, compaction of small files into files of the target size, and vacuum of the files
//! compaction replaced. None of it changes the rows a reader sees.
//!
//! deltalake's own `optimize` needs DataFusion (a large build); compaction here reads the small
//! files with the parquet crate and writes them back with the same writer the batches use.

use super::{DurableLog, fsync_files_and_folders};
use crate::config::DeltaSinkConfig;
use crate::sinks::{SinkError, Upkeep};
use arrow::array::{ArrayRef, StringArray, new_null_array};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties, TransactionError};
use deltalake::kernel::{Action, LogicalFileView};
use deltalake::logstore::object_store::ObjectStoreExt;
use deltalake::operations::vacuum::VacuumMode;
use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use deltalake::parquet::file::properties::WriterProperties;
use deltalake::protocol::DeltaOperation;
use deltalake::writer::{DeltaWriter, RecordBatchWriter};
use deltalake::{DeltaResult, DeltaTable, DeltaTableError};
use futures::TryStreamExt;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;
use tracing::debug;

/// How often a compaction is retried on top of newer versions before it gives up for a round.
const COMMIT_ATTEMPTS: usize = 20;

/// One sink's upkeep, with its own handle on the table: it runs beside the batches (appends
/// and `dataChange = false` rewrites do not conflict in Delta), never between them.
pub(in crate::sinks) struct DeltaUpkeep {
    sink: String,
    config: DeltaSinkConfig,
    durable: DurableLog,
    table: Option<DeltaTable>,
    schedule: Schedule,
}

impl DeltaUpkeep {
    pub(super) fn new(sink: &str, config: DeltaSinkConfig, durable: DurableLog) -> DeltaUpkeep {
        DeltaUpkeep { sink: sink.to_string(), config, durable, table: None, schedule: Schedule::default() }
    }
}

#[async_trait]
impl Upkeep for DeltaUpkeep {
    async fn round(&mut self) -> Result<Vec<String>, SinkError> {
        let mut table = super::current(&self.sink, &self.config, self.table.take()).await?;
        let properties = super::writer_properties(&self.sink, &self.config)?;
        let result = maintain(&mut table, &self.config, properties, &mut self.schedule, &self.durable).await;
        self.table = Some(table);
        let done = result.map_err(|e| SinkError::storage(&self.sink, format!("maintenance: {e}")))?;
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

/// What one round of maintenance did.
#[derive(Debug, Default, PartialEq)]
struct Done {
    checkpoint: Option<i64>,
    /// (files rewritten, files written, version)
    compacted: Option<(usize, usize, i64)>,
    vacuumed: bool,
}

/// The table's latest checkpoint version, from `_delta_log/_last_checkpoint`.
pub(super) async fn last_checkpoint(table: &DeltaTable) -> Option<i64> {
    let path = deltalake::Path::from("_delta_log/_last_checkpoint");
    let bytes = table.object_store().get(&path).await.ok()?.bytes().await.ok()?;
    serde_json::from_slice::<serde_json::Value>(&bytes).ok()?.get("version")?.as_i64()
}

/// When maintenance last did what, per sink.
#[derive(Debug, Default)]
struct Schedule {
    /// Version of the latest checkpoint (read from the table the first time).
    checkpointed: Option<i64>,
    vacuumed_at: Option<Instant>,
    /// A compaction replaced files since the last vacuum.
    replaced: bool,
}

/// One round: compaction if a partition has enough small files, vacuum if it is due and
/// something was replaced, and a checkpoint if `checkpoint_interval` commits have passed since
/// the last one. `table` must be current.
async fn maintain(
    table: &mut DeltaTable,
    config: &DeltaSinkConfig,
    properties: WriterProperties,
    schedule: &mut Schedule,
    durable: &DurableLog,
) -> DeltaResult<Done> {
    let mut done = Done::default();
    let start = version(table);
    let result = upkeep(table, config, properties, schedule, &mut done).await;
    // Everything upkeep wrote to the log (optimize, vacuum, checkpoint) must be durable before a
    // later commit counts on it (see `DurableLog`).
    if (result.is_err() || done != Done::default())
        && let Ok(root) = table.table_url().to_file_path()
    {
        let through = version(table);
        fsync_log(&root, start + 1).map_err(|e| DeltaTableError::Generic(format!("fsync _delta_log: {e}")))?;
        durable.mark(through).await;
    }
    result.map(|()| done)
}

async fn upkeep(
    table: &mut DeltaTable,
    config: &DeltaSinkConfig,
    properties: WriterProperties,
    schedule: &mut Schedule,
    done: &mut Done,
) -> DeltaResult<()> {
    if config.compact_min_files > 0
        && let Some(compacted) = compact(table, config, properties).await?
    {
        done.compacted = Some(compacted);
        schedule.replaced = true;
        table.update_state().await?;
    }
    let vacuum_due = schedule.vacuumed_at.is_none_or(|at| at.elapsed() >= config.vacuum_interval.0);
    if config.vacuum && schedule.replaced && vacuum_due {
        vacuum(table, config).await?;
        schedule.vacuumed_at = Some(Instant::now());
        schedule.replaced = false;
        done.vacuumed = true;
        table.update_state().await?;
    }
    checkpoint_if_due(table, config, schedule, done).await
}

fn version(table: &DeltaTable) -> i64 {
    table.version().map_or(0, |v| v as i64)
}

/// fsyncs the log entries from `from` on (commits, checkpoints, `_last_checkpoint`) and the
/// log folder.
pub(super) fn fsync_log(root: &std::path::Path, from: i64) -> std::io::Result<()> {
    let log = root.join("_delta_log");
    let mut files = Vec::new();
    for entry in std::fs::read_dir(&log)? {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let version = name.split('.').next().and_then(|v| v.parse::<i64>().ok());
        if name == "_last_checkpoint" || version.is_some_and(|v| v >= from) {
            files.push(path);
        }
    }
    fsync_files_and_folders(root, &files)
}

async fn checkpoint_if_due(table: &mut DeltaTable, config: &DeltaSinkConfig, schedule: &mut Schedule, done: &mut Done) -> DeltaResult<()> {
    if schedule.checkpointed.is_none() {
        schedule.checkpointed = Some(last_checkpoint(table).await.unwrap_or(0));
    }
    let version = version(table);
    if config.checkpoint_interval > 0 && version - schedule.checkpointed.unwrap_or(0) >= config.checkpoint_interval as i64 {
        deltalake::checkpoints::create_checkpoint(table, None).await?;
        schedule.checkpointed = Some(version);
        done.checkpoint = Some(version);
    }
    Ok(())
}

/// Rewrites small files of the partition that has the most of them (at least
/// `compact_min_files`) into one or a few files.
async fn compact(
    table: &mut DeltaTable,
    config: &DeltaSinkConfig,
    properties: WriterProperties,
) -> DeltaResult<Option<(usize, usize, i64)>> {
    let target = config.target_file_size.0 as i64;
    let mut by_partition: BTreeMap<Vec<(String, Option<String>)>, Vec<LogicalFileView>> = BTreeMap::new();
    let files: Vec<LogicalFileView> = table.get_active_add_actions_by_partitions(&[]).try_collect().await?;
    for file in files {
        if file.size() < target / 2 {
            let mut key: Vec<(String, Option<String>)> = file.partition_values_map().into_iter().collect();
            key.sort();
            by_partition.entry(key).or_default().push(file);
        }
    }
    let Some((partition, mut small)) = by_partition.into_iter().max_by_key(|(_, files)| files.len()) else { return Ok(None) };
    if small.len() < config.compact_min_files.max(2) {
        return Ok(None);
    }
    // The smallest `compact_min_files`, and no more than one target file's worth: a round costs
    // about the same however long the daemon has run, and a file compaction wrote is merged
    // again only once enough files of its size exist (logarithmic rewriting, not quadratic).
    small.sort_by_key(|f| f.size());
    small.truncate(config.compact_min_files.max(2));
    let mut input = 0;
    small.retain(|f| {
        input += f.size();
        input <= target
    });
    if small.len() < 2 {
        return Ok(None);
    }
    let schema = table.snapshot()?.snapshot().arrow_schema();
    let partition: HashMap<String, Option<String>> = partition.into_iter().collect();
    let mut writer = RecordBatchWriter::for_table(table)?.with_writer_properties(properties);
    for file in &small {
        let bytes = table.object_store().get(&file.object_store_path()).await?.bytes().await?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)?.build()?;
        for batch in reader {
            writer.write(with_partition_columns(&batch?, &schema, &partition)?).await?;
        }
    }
    let mut adds = writer.flush().await?;
    for add in &mut adds {
        add.data_change = false;
    }
    if let Ok(root) = table.table_url().to_file_path() {
        let paths: Vec<_> = adds.iter().map(|a| root.join(&a.path)).collect();
        fsync_files_and_folders(&root, &paths).map_err(|e| DeltaTableError::Generic(format!("fsync compacted files: {e}")))?;
    }
    let written = adds.len();
    let mut actions: Vec<Action> = adds.into_iter().map(Action::Add).collect();
    actions.extend(small.iter().map(|f| Action::Remove(f.remove_action(false))));
    let operation = DeltaOperation::Optimize { predicate: None, target_size: target };
    let replaced: Vec<String> = small.iter().map(|f| f.path().to_string()).collect();
    // deltalake's conflict check lets a concurrent `dataChange = false` remove of the same file
    // through (another source's upkeep on this table, another machine): commit only on top of
    // a version where every replaced file is still active. The files were picked from the
    // current version; after each lost race they are checked against the newer one.
    for attempt in 0..COMMIT_ATTEMPTS {
        if attempt > 0 {
            table.update_state().await?;
            let active: HashSet<String> =
                table.get_active_add_actions_by_partitions(&[]).map_ok(|f| f.path().to_string()).try_collect().await?;
            if !replaced.iter().all(|path| active.contains(path)) {
                debug!(files = replaced.len(), "compaction gave up: another writer replaced some of its files");
                discard(table, &actions).await;
                return Ok(None);
            }
        }
        // Checkpoints are ours to schedule (see `maintain`), not the post-commit hook's.
        let properties = CommitProperties::default().with_create_checkpoint(false).with_max_retries(0);
        let commit = CommitBuilder::from(properties)
            .with_actions(actions.clone())
            .build(Some(table.snapshot()?), table.log_store(), operation.clone())
            .await;
        match commit {
            Ok(finalized) => return Ok(Some((small.len(), written, finalized.version() as i64))),
            Err(DeltaTableError::Transaction { source: TransactionError::MaxCommitAttempts(_) }) => continue,
            Err(e) => return Err(e),
        }
    }
    discard(table, &actions).await;
    Ok(None)
}

/// Deletes the files a compaction wrote but could not commit (no reader ever saw them).
async fn discard(table: &DeltaTable, actions: &[Action]) {
    for action in actions {
        if let Action::Add(add) = action
            && let Ok(path) = deltalake::Path::from_url_path(&add.path)
        {
            let _ = table.object_store().delete(&path).await;
        }
    }
}

/// Data files hold no partition columns (they live in the paths); the writer wants the
/// table's full schema back, so they are restored from the partition values.
fn with_partition_columns(
    batch: &RecordBatch,
    schema: &Arc<arrow::datatypes::Schema>,
    partition: &HashMap<String, Option<String>>,
) -> DeltaResult<RecordBatch> {
    let rows = batch.num_rows();
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let column = match (batch.column_by_name(field.name()), partition.get(field.name())) {
            (Some(column), _) => column.clone(),
            (None, Some(Some(value))) => {
                let text: ArrayRef = Arc::new(StringArray::from(vec![value.as_str(); rows]));
                arrow::compute::cast(&text, field.data_type())?
            }
            (None, _) => new_null_array(field.data_type(), rows),
        };
        columns.push(column);
    }
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// Deletes files that left the table more than `vacuum_retention` ago.
async fn vacuum(table: &DeltaTable, config: &DeltaSinkConfig) -> DeltaResult<()> {
    let retention = chrono::Duration::from_std(config.vacuum_retention.0).map_err(|e| DeltaTableError::Generic(e.to_string()))?;
    // Its count of deleted files includes files an earlier vacuum already deleted (their
    // tombstones stay in the log), so it is not reported.
    table
        .clone()
        .vacuum()
        .with_retention_period(retention)
        // The retention is the operator's choice (config), not only the table property's.
        .with_enforce_retention_duration(false)
        // Only files the log removed: a batch being written beside upkeep has files no commit
        // names yet, which a full vacuum would take for orphans.
        .with_mode(VacuumMode::Lite)
        .with_commit_properties(CommitProperties::default().with_create_checkpoint(false))
        .await?;
    Ok(())
}

//! `mode = "merge"`: a batch merged into the table by key (upserts, deletes, or inserts of new
//! keys only) with delta-rs's MERGE, in one commit that carries the batch's `txn` and manifest,
//! so a merge is applied exactly once like an append.
//!
//! Within a batch the last row of each key wins (the highest `sequence_column`, then the latest
//! in file order), so the merge never meets two source rows for one target row. The batch's rows
//! are held in memory until the commit (bounded by the source's batch limits); the merge itself
//! runs in a DataFusion memory pool that spills to disk beyond `merge_memory_limit`.

use super::{DurableLog, MANIFEST_KEY, refused_before_writing, schema};
use crate::config::DeltaSinkConfig;
use crate::sinks::{BatchManifest, SinkError, SinkErrorKind, SinkWriter};
use arrow::array::{ArrayRef, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use deltalake::DeltaTable;
use deltalake::datafusion::common::Column;
use deltalake::datafusion::datasource::MemTable;
use deltalake::datafusion::prelude::{DataFrame, SessionContext};
use deltalake::delta_datafusion::create_session_state_with_spill_config;
use deltalake::kernel::Transaction;
use deltalake::kernel::transaction::{CommitBuilder, CommitProperties};
use deltalake::protocol::DeltaOperation;
use std::sync::Arc;

/// Times a merge is tried again after another writer's commit got in first.
const MAX_CONFLICT_RETRIES: usize = 20;
const POSITION: &str = "__ingestd_position";
const RANK: &str = "__ingestd_rank";
const DELETE: &str = "__ingestd_delete";

/// A batch to merge: its rows, held until the commit.
pub(super) struct DeltaMergeWriter {
    pub merge: Merge,
    /// Commits a batch without rows (everything filtered out) as an append would: its `txn`
    /// still records it as held.
    pub empty: Box<super::DeltaBatchWriter>,
}

/// What a merge needs besides the rows' writer for an empty batch (kept apart: that writer is not
/// `Sync`, and the merge holds `&self` across its awaits).
pub(super) struct Merge {
    pub sink: String,
    pub config: DeltaSinkConfig,
    pub app_id: String,
    pub durable: DurableLog,
    pub table: DeltaTable,
    /// Columns this batch adds to the table (committed just before the merge, see `commit`).
    pub added: Vec<Field>,
    /// The batch's columns (a merge sets only these; the table may have more).
    pub schema: SchemaRef,
    pub rows: Vec<RecordBatch>,
}

impl Merge {
    fn err(&self, e: deltalake::DeltaTableError) -> SinkError {
        let kind = if refused_before_writing(&e) { SinkErrorKind::Conflict } else { SinkErrorKind::Retryable };
        SinkError::new(&self.sink, kind, e)
    }

    fn fatal(&self, message: String) -> SinkError {
        SinkError::new(&self.sink, SinkErrorKind::Fatal, message)
    }

    /// The batch deduplicated by key, with the delete predicate as a column when there is one.
    async fn changes(&self, ctx: &SessionContext) -> Result<DataFrame, SinkError> {
        let mut fields: Vec<Field> = self.schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new(POSITION, DataType::UInt64, false));
        let with_position = Arc::new(Schema::new(fields));
        let mut position = 0u64;
        let mut batches = Vec::with_capacity(self.rows.len());
        for batch in &self.rows {
            let n = batch.num_rows() as u64;
            let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
            columns.push(Arc::new(UInt64Array::from_iter_values(position..position + n)));
            position += n;
            batches.push(RecordBatch::try_new(with_position.clone(), columns).map_err(|e| SinkError::storage(&self.sink, e))?);
        }
        let table = MemTable::try_new(with_position, vec![batches]).map_err(|e| SinkError::storage(&self.sink, e))?;
        ctx.register_table("changes", Arc::new(table)).map_err(|e| SinkError::storage(&self.sink, e))?;
        let columns: Vec<String> = self.schema.fields().iter().map(|f| quoted(f.name())).collect();
        let keys: Vec<String> = self.config.merge_key.iter().map(|k| quoted(k)).collect();
        let mut order = Vec::new();
        if let Some(sequence) = &self.config.sequence_column {
            order.push(format!("{} DESC NULLS LAST", quoted(sequence)));
        }
        order.push(format!("{} DESC", quoted(POSITION)));
        let delete = match &self.config.delete_when {
            Some(predicate) => format!(", COALESCE(({predicate}), false) AS {}", quoted(DELETE)),
            None => String::new(),
        };
        let sql = format!(
            "SELECT {columns}{delete} FROM (SELECT *, row_number() OVER (PARTITION BY {keys} ORDER BY {order}) AS {rank} FROM changes) WHERE {rank} = 1",
            columns = columns.join(", "),
            keys = keys.join(", "),
            order = order.join(", "),
            rank = quoted(RANK),
        );
        ctx.sql(&sql).await.map_err(|e| self.fatal(format!("merge: cannot deduplicate the batch by merge_key: {}", e.strip_backtrace())))
    }

    /// Adds the batch's new columns the table still lacks, in a commit of their own: delta-rs's
    /// MERGE takes only the columns its clauses name, without ingestd's field metadata.
    async fn add_columns(&mut self) -> Result<(), SinkError> {
        let have = schema::table_schema(&self.table).map_err(|e| self.err(e))?;
        let missing: Vec<_> = self
            .added
            .iter()
            .filter(|f| have.field_with_name(f.name()).is_err())
            .map(schema::struct_field)
            .collect::<Result<_, _>>()
            .map_err(|e| SinkError::schema_mismatch(&self.sink, &e))?;
        if missing.is_empty() {
            return Ok(());
        }
        let properties = CommitProperties::default().with_create_checkpoint(false);
        self.table =
            self.table.clone().add_columns().with_fields(missing).with_commit_properties(properties).await.map_err(|e| self.err(e))?;
        Ok(())
    }
}

impl Merge {
    /// Commits only the batch's `txn` and commit info, as a merge that changed nothing.
    async fn commit_without_changes(&self, properties: CommitProperties) -> Result<i64, deltalake::DeltaTableError> {
        let snapshot = self.table.snapshot()?;
        let operation = DeltaOperation::Merge {
            predicate: None,
            merge_predicate: Some(self.merge_predicate()),
            matched_predicates: Vec::new(),
            not_matched_predicates: Vec::new(),
            not_matched_by_source_predicates: Vec::new(),
        };
        let finalized =
            CommitBuilder::from(properties).with_actions(Vec::new()).build(Some(snapshot), self.table.log_store(), operation).await?;
        Ok(finalized.version() as i64)
    }

    fn merge_predicate(&self) -> String {
        self.config.merge_key.iter().map(|k| format!("t.{0} = s.{0}", quoted(k))).collect::<Vec<_>>().join(" AND ")
    }
}

/// `name` as a SQL identifier.
fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[async_trait]
impl SinkWriter for DeltaMergeWriter {
    async fn write(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        self.merge.rows.push(batch.clone());
        Ok(())
    }

    async fn commit(self: Box<Self>, manifest: &BatchManifest) -> Result<String, SinkError> {
        let DeltaMergeWriter { merge, empty } = *self;
        if merge.rows.iter().all(|b| b.num_rows() == 0) {
            return empty.commit(manifest).await;
        }
        drop(empty);
        merge.commit(manifest).await
    }
}

impl Merge {
    async fn commit(mut self, manifest: &BatchManifest) -> Result<String, SinkError> {
        let manifest_json = serde_json::to_value(manifest).map_err(|e| SinkError::storage(&self.sink, e))?;
        let mut last_conflict = None;
        for attempt in 0..=MAX_CONFLICT_RETRIES {
            if attempt > 0 {
                self.table.update_state().await.map_err(|e| self.err(e))?;
            }
            let snapshot = self.table.snapshot().map_err(|e| self.err(e))?;
            let read_version = snapshot.version() as i64;
            if let Some(held) =
                snapshot.transaction_version(self.table.log_store().as_ref(), &self.app_id).await.map_err(|e| self.err(e))?
                && held >= manifest.seq
            {
                return Ok(format!("already in the table (txn {held})"));
            }
            if !self.added.is_empty() {
                self.add_columns().await?;
            }
            let state = create_session_state_with_spill_config(Some(self.config.merge_memory_limit.0 as usize), None);
            let ctx = SessionContext::new_with_state(state.clone());
            let changes = self.changes(&ctx).await?;
            let properties = CommitProperties::default()
                .with_create_checkpoint(false)
                .with_application_transaction(Transaction::new(&self.app_id, manifest.seq))
                .with_metadata([(MANIFEST_KEY.to_string(), manifest_json.clone())])
                .with_max_retries(100);
            let predicate = self.merge_predicate();
            let columns: Vec<String> = self.schema.fields().iter().map(|f| f.name().clone()).collect();
            let set_all = |mut builder: deltalake::operations::merge::InsertBuilder| {
                for column in &columns {
                    builder = builder.set(Column::new_unqualified(column), format!("s.{}", quoted(column)));
                }
                builder
            };
            let deletes = self.config.delete_when.is_some();
            let newer = self.config.sequence_column.as_ref().map(|c| format!("(t.{0} IS NULL OR s.{0} > t.{0})", quoted(c)));
            let writer_properties = super::writer_properties(&self.sink, &self.config)?;
            let mut merge = self
                .table
                .clone()
                .merge(changes, predicate)
                .with_source_alias("s")
                .with_target_alias("t")
                .with_session_state(Arc::new(state))
                .with_commit_properties(properties.clone())
                .with_writer_properties(writer_properties);
            let plan_error = |e: deltalake::DeltaTableError| self.fatal(format!("merge: {e}"));
            if !self.config.insert_only {
                if deletes {
                    let when = match &newer {
                        Some(newer) => format!("s.{} AND {newer}", quoted(DELETE)),
                        None => format!("s.{}", quoted(DELETE)),
                    };
                    merge = merge.when_matched_delete(|delete| delete.predicate(when)).map_err(plan_error)?;
                }
                merge = merge
                    .when_matched_update(|mut update| {
                        if let Some(newer) = &newer {
                            update = update.predicate(newer.clone());
                        }
                        for column in &columns {
                            update = update.update(Column::new_unqualified(column), format!("s.{}", quoted(column)));
                        }
                        update
                    })
                    .map_err(plan_error)?;
            }
            merge = merge
                .when_not_matched_insert(|insert| {
                    let insert = set_all(insert);
                    if deletes { insert.predicate(format!("NOT s.{}", quoted(DELETE))) } else { insert }
                })
                .map_err(plan_error)?;
            match merge.await {
                Ok((table, metrics)) => {
                    self.table = table;
                    let mut version = self.table.version().map_or(0, |v| v as i64);
                    if version == read_version {
                        // delta-rs makes no commit for a merge that changes no row (every row
                        // older than the table's, or an insert_only batch of known keys); the
                        // batch's txn and manifest must still land, or the table would not
                        // know it holds the batch.
                        match self.commit_without_changes(properties).await {
                            Ok(committed) => version = committed,
                            Err(e) if refused_before_writing(&e) => {
                                last_conflict = Some(e);
                                continue;
                            }
                            Err(e) => return Err(self.err(e)),
                        }
                    }
                    super::sync_committed(&self.sink, &self.table, &self.durable, read_version, version).await?;
                    return Ok(format!(
                        "delta version {version} (merge: {} inserted, {} updated, {} deleted, {} files read of {})",
                        metrics.num_target_rows_inserted,
                        metrics.num_target_rows_updated,
                        metrics.num_target_rows_deleted,
                        metrics.num_target_files_scanned,
                        metrics.num_target_files_scanned + metrics.num_target_files_skipped_during_scan,
                    ));
                }
                Err(e) if refused_before_writing(&e) => last_conflict = Some(e),
                Err(e) => return Err(self.err(e)),
            }
        }
        match last_conflict {
            Some(e) => Err(self.err(e)),
            None => Err(SinkError::storage(&self.sink, "merge: retries exhausted")),
        }
    }
}

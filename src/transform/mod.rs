//! Stage 5, transform: one SQL query (Apache DataFusion) over the mapped rows of a batch, the
//! table `batch`, joined with the `[lookups]` by name. Its result is what the sinks receive.
//!
//! The query runs over each chunk of mapped rows as it streams from the decoder, so memory stays
//! bounded by the chunk, not by the batch. That gives the whole batch's answer only for a query
//! that works row by row (filters, projections, functions, joins with lookups); [`Planned::plan`]
//! refuses the others (aggregations, windows, `DISTINCT`, `ORDER BY`, `LIMIT`, `batch` read twice).

pub mod lookup;

use crate::config::BadRowPolicy;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use deltalake::datafusion::catalog::{Session, TableProvider};
use deltalake::datafusion::common::tree_node::TreeNodeRecursion;
use deltalake::datafusion::common::{JoinType, TableReference};
use deltalake::datafusion::datasource::memory::MemorySourceConfig;
use deltalake::datafusion::datasource::{MemTable, TableType};
use deltalake::datafusion::error::DataFusionError;
use deltalake::datafusion::execution::context::SessionState;
use deltalake::datafusion::logical_expr::{Expr, LogicalPlan};
use deltalake::datafusion::physical_plan::ExecutionPlan;
use deltalake::datafusion::prelude::{SessionConfig, SessionContext};
pub use lookup::{LookupUse, Lookups};
use std::sync::{Arc, Mutex};

/// The name of the micro-batch in a transform's SQL.
pub const BATCH_TABLE: &str = "batch";

#[derive(Debug, thiserror::Error)]
pub enum TransformError {
    /// The query does not parse or plan against the batch's columns and the lookups.
    #[error("transform: {0}")]
    Plan(String),
    /// The query cannot run over a batch chunk by chunk.
    #[error("transform: {0}")]
    NotRowWise(String),
    /// A row the query fails on, with `on_bad_row = "quarantine_file"`.
    #[error("record {record}: transform: {reason}")]
    Row { record: u64, reason: String },
    /// The engine failed on something other than a row (out of memory, a thread gone).
    #[error("transform: {0}")]
    Engine(String),
}

impl TransformError {
    /// The 1-based record of the file the error is about, if it is about one.
    pub fn record(&self) -> Option<u64> {
        match self {
            TransformError::Row { record, .. } => Some(*record),
            _ => None,
        }
    }
}

fn engine(e: DataFusionError) -> TransformError {
    TransformError::Engine(e.to_string())
}

/// A source's transform: its query and its lookups, planned again when the batch's columns or
/// the version of a lookup it reads change.
pub struct Transform {
    sql: String,
    policy: BadRowPolicy,
    lookups: Lookups,
    planned: Option<Arc<Planned>>,
}

impl Transform {
    pub fn new(sql: &str, policy: BadRowPolicy, lookups: &indexmap::IndexMap<String, crate::config::LookupConfig>) -> Transform {
        Transform { sql: sql.to_string(), policy, lookups: Lookups::new(lookups), planned: None }
    }

    /// Every lookup at its current version (read again where it changed).
    pub async fn lookups(&self) -> Result<Vec<Arc<lookup::Loaded>>, lookup::LookupError> {
        self.lookups.current().await
    }

    /// The plan for a batch of `input` with `lookups`: the last one if neither changed.
    pub async fn plan_for(&mut self, input: SchemaRef, lookups: &[Arc<lookup::Loaded>]) -> Result<Arc<Planned>, TransformError> {
        if let Some(planned) = &self.planned
            && planned.input == input
            && planned.lookups.iter().all(|used| lookups.iter().any(|l| Arc::ptr_eq(l, used)))
        {
            return Ok(planned.clone());
        }
        let planned = Arc::new(Planned::plan(&self.sql, input, lookups, self.policy).await?);
        self.planned = Some(planned.clone());
        Ok(planned)
    }
}

/// A transform planned against one mapping's columns and one version of the lookups. Shared by
/// the read workers, each of which runs it through a [`Runner`] of its own.
#[derive(Debug)]
pub struct Planned {
    sql: String,
    input: SchemaRef,
    output: SchemaRef,
    /// The lookups the query reads, at the version it was planned with.
    lookups: Vec<Arc<lookup::Loaded>>,
    policy: BadRowPolicy,
}

impl Planned {
    /// Parses and plans `sql` over a batch of `input` and `lookups`, and checks that it runs
    /// row by row.
    pub async fn plan(
        sql: &str,
        input: SchemaRef,
        lookups: &[Arc<lookup::Loaded>],
        policy: BadRowPolicy,
    ) -> Result<Planned, TransformError> {
        let chunk = Arc::new(ChunkTable::new(input.clone()));
        let (_, plan) = plan_query(sql, chunk, lookups).await?;
        row_wise(&plan)?;
        let mut used = Vec::new();
        plan.apply_with_subqueries(|node| {
            if let LogicalPlan::TableScan(scan) = node
                && let Some(found) = lookups.iter().find(|l| scan.table_name.table() == l.name)
                && !used.iter().any(|u: &Arc<lookup::Loaded>| u.name == found.name)
            {
                used.push(found.clone());
            }
            Ok(TreeNodeRecursion::Continue)
        })
        .map_err(|e| TransformError::Plan(e.to_string()))?;
        let output = output_schema(plan.schema().as_arrow())?;
        Ok(Planned { sql: sql.to_string(), input, output, lookups: used, policy })
    }

    /// The columns the sinks receive.
    pub fn output(&self) -> SchemaRef {
        self.output.clone()
    }

    /// The lookups the query reads, and their versions, for the batch's manifest.
    pub fn lookups_used(&self) -> Vec<LookupUse> {
        self.lookups.iter().map(|l| l.usage()).collect()
    }

    /// A runner for one thread: its own session and runtime (the read workers are plain
    /// threads, not async tasks).
    pub fn runner(&self) -> Result<Runner, TransformError> {
        let runtime = tokio::runtime::Builder::new_current_thread().build().map_err(|e| TransformError::Engine(e.to_string()))?;
        let chunk = Arc::new(ChunkTable::new(self.input.clone()));
        let (state, plan) = runtime.block_on(plan_query(&self.sql, chunk.clone(), &self.lookups))?;
        let plan = state.optimize(&plan).map_err(engine)?;
        Ok(Runner { runtime, state, plan, chunk, output: self.output.clone(), policy: self.policy })
    }
}

/// A session holding `chunk` as `batch` and the lookups, and `sql` planned in it.
async fn plan_query(
    sql: &str,
    chunk: Arc<ChunkTable>,
    lookups: &[Arc<lookup::Loaded>],
) -> Result<(SessionState, LogicalPlan), TransformError> {
    // One partition: the read workers already run one chunk per core.
    let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(1).with_information_schema(false));
    ctx.register_table(TableReference::bare(BATCH_TABLE), chunk).map_err(|e| TransformError::Plan(e.to_string()))?;
    for lookup in lookups {
        let table = MemTable::try_new(lookup.schema.clone(), vec![lookup.batches.clone()]).map_err(engine)?;
        ctx.register_table(TableReference::bare(lookup.name.as_str()), Arc::new(table)).map_err(|e| TransformError::Plan(e.to_string()))?;
    }
    let state = ctx.state();
    let plan = state.create_logical_plan(sql).await.map_err(|e| TransformError::Plan(plan_message(e)))?;
    if matches!(
        plan,
        LogicalPlan::Ddl(_)
            | LogicalPlan::Dml(_)
            | LogicalPlan::Statement(_)
            | LogicalPlan::Copy(_)
            | LogicalPlan::Explain(_)
            | LogicalPlan::Analyze(_)
            | LogicalPlan::DescribeTable(_)
    ) {
        return Err(TransformError::Plan("the transform must be one SELECT query".into()));
    }
    Ok((state, plan))
}

/// DataFusion's message without its own "Error during planning: " prefixes.
fn plan_message(e: DataFusionError) -> String {
    e.strip_backtrace()
}

/// Refuses what would give another answer over each chunk than over the whole batch.
fn row_wise(plan: &LogicalPlan) -> Result<(), TransformError> {
    let mut refused = None;
    let mut batch_scans = 0;
    plan.apply_with_subqueries(|node| {
        // Over a lookup alone, any of these is fine: the lookup is whole in every chunk's query.
        let whole_input = |what| if reads_batch(node) { Some(what) } else { None };
        let what = match node {
            LogicalPlan::Aggregate(_) => whole_input("an aggregation (GROUP BY, COUNT, SUM...)"),
            LogicalPlan::Window(_) => whole_input("a window function"),
            LogicalPlan::Sort(_) => whole_input("ORDER BY"),
            LogicalPlan::Limit(_) => whole_input("LIMIT or OFFSET"),
            LogicalPlan::Distinct(_) => whole_input("DISTINCT"),
            LogicalPlan::RecursiveQuery(_) => Some("a recursive query"),
            LogicalPlan::Union(_) => Some("UNION"),
            LogicalPlan::TableScan(scan) if scan.table_name.table() == BATCH_TABLE => {
                batch_scans += 1;
                None
            }
            LogicalPlan::Join(join) if !keeps_only_batch_rows(join.join_type, reads_batch(&join.left), reads_batch(&join.right)) => {
                Some("a join that gives lookup rows of its own (the lookup's side of an outer join, or lookup rows semi- or anti-joined to the batch)")
            }
            _ => None,
        };
        let what = what.or_else(|| {
            let mut in_subquery = false;
            // Cannot fail: the closure returns no error.
            let _ = node.apply_subqueries(|subquery| {
                in_subquery |= reads_batch(subquery);
                Ok(TreeNodeRecursion::Continue)
            });
            in_subquery.then_some("a subquery that reads the batch")
        });
        if let Some(what) = what {
            refused = Some(what);
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .map_err(|e| TransformError::Plan(e.to_string()))?;
    if let Some(what) = refused {
        return Err(TransformError::NotRowWise(format!(
            "{what} cannot run chunk by chunk over a batch's rows as they stream (each chunk would give its own share, not the batch's answer); keep the transform row by row and ask `ingestd sql` over the table for the rest"
        )));
    }
    match batch_scans {
        0 => Err(TransformError::NotRowWise(format!("the query does not read `{BATCH_TABLE}`, the batch's rows"))),
        1 => Ok(()),
        _ => Err(TransformError::NotRowWise(format!(
            "the query reads `{BATCH_TABLE}` more than once (a self-join sees only part of a batch)"
        ))),
    }
}

/// Whether `plan` reads the batch, subqueries included.
fn reads_batch(plan: &LogicalPlan) -> bool {
    let mut found = false;
    // Cannot fail: the closure returns no error.
    let _ = plan.apply_with_subqueries(|node| {
        found |= matches!(node, LogicalPlan::TableScan(scan) if scan.table_name.table() == BATCH_TABLE);
        Ok(if found { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
    });
    found
}

/// Whether a join gives only rows that stem from one batch row each (so that running it chunk by
/// chunk and putting the results together gives the whole batch's answer): the batch's side is
/// kept, filtered or marked, and the lookup's side only matched against.
fn keeps_only_batch_rows(join: JoinType, batch_on_left: bool, batch_on_right: bool) -> bool {
    use JoinType::*;
    match (batch_on_left, batch_on_right) {
        (true, false) => matches!(join, Inner | Left | LeftSemi | LeftAnti | LeftMark),
        (false, true) => matches!(join, Inner | Right | RightSemi | RightAnti | RightMark),
        // Lookups joined among themselves, or the batch on both sides (refused as a second scan).
        _ => true,
    }
}

/// The query's columns as the sinks take them: nullable, strings and binaries in their plain
/// Arrow types, and each name once.
fn output_schema(schema: &Schema) -> Result<SchemaRef, TransformError> {
    let mut fields = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        if fields.iter().any(|f: &Field| f.name() == field.name()) {
            return Err(TransformError::Plan(format!(
                "two output columns are named {:?}; name them apart with AS (or join with USING)",
                field.name()
            )));
        }
        // Types every sink stores, each holding every value of the query's type exactly.
        let kind = match field.data_type() {
            DataType::Utf8View | DataType::LargeUtf8 => DataType::Utf8,
            DataType::BinaryView | DataType::LargeBinary => DataType::Binary,
            DataType::Int8 | DataType::Int16 | DataType::UInt8 | DataType::UInt16 => DataType::Int32,
            DataType::UInt32 => DataType::Int64,
            DataType::Float16 | DataType::Float32 => DataType::Float64,
            // The mapping's timestamps are µs in UTC; a function's result is kept in that form.
            DataType::Timestamp(_, zone) => DataType::Timestamp(TimeUnit::Microsecond, Some(zone.clone().unwrap_or_else(|| "UTC".into()))),
            other => other.clone(),
        };
        fields.push(Field::new(field.name(), kind, true).with_metadata(field.metadata().clone()));
    }
    if fields.is_empty() {
        return Err(TransformError::Plan("the query gives no columns".into()));
    }
    Ok(Arc::new(Schema::new(fields)))
}

/// What the transform made of one chunk.
#[derive(Debug)]
pub struct Transformed {
    pub batches: Vec<RecordBatch>,
    /// Input rows the query left out (a `WHERE`, an inner join without a match).
    pub filtered: u64,
    /// Rows the query failed on, left out and counted (`on_bad_row` = `skip` or `null`).
    pub bad_rows: u64,
}

/// Runs a [`Planned`] transform over chunks, on one thread.
pub struct Runner {
    runtime: tokio::runtime::Runtime,
    state: SessionState,
    plan: LogicalPlan,
    chunk: Arc<ChunkTable>,
    output: SchemaRef,
    policy: BadRowPolicy,
}

impl Runner {
    /// The query over `chunk`, whose first row is record `first_record` of its file. A chunk the
    /// query fails on is run row by row, so that only the failing rows follow `on_bad_row`.
    pub fn apply(&self, chunk: &RecordBatch, first_record: u64) -> Result<Transformed, TransformError> {
        let rows = chunk.num_rows() as u64;
        let (batches, bad_rows) = match self.run(chunk) {
            Ok(batches) => (batches, 0),
            Err(_) if rows > 1 || self.policy != BadRowPolicy::QuarantineFile => self.row_by_row(chunk, first_record)?,
            Err(e) => return Err(TransformError::Row { record: first_record, reason: e.strip_backtrace() }),
        };
        let out: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
        Ok(Transformed { batches, filtered: rows.saturating_sub(out + bad_rows), bad_rows })
    }

    fn row_by_row(&self, chunk: &RecordBatch, first_record: u64) -> Result<(Vec<RecordBatch>, u64), TransformError> {
        let mut batches = Vec::new();
        let mut bad = 0;
        for row in 0..chunk.num_rows() {
            match self.run(&chunk.slice(row, 1)) {
                Ok(out) => batches.extend(out),
                Err(e) if self.policy == BadRowPolicy::QuarantineFile => {
                    return Err(TransformError::Row { record: first_record + row as u64, reason: e.strip_backtrace() });
                }
                Err(_) => bad += 1,
            }
        }
        Ok((batches, bad))
    }

    fn run(&self, chunk: &RecordBatch) -> Result<Vec<RecordBatch>, DataFusionError> {
        self.chunk.hold(chunk.clone());
        let result = self.runtime.block_on(async {
            let physical = self.state.query_planner().create_physical_plan(&self.plan, &self.state).await?;
            deltalake::datafusion::physical_plan::collect(physical, self.state.task_ctx()).await
        });
        self.chunk.release();
        result?.into_iter().filter(|b| b.num_rows() > 0).map(|b| conform(&b, &self.output)).collect()
    }
}

/// `batch` in the query's output types and nullability.
fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, DataFusionError> {
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(
            |(column, field)| {
                if column.data_type() == field.data_type() { Ok(column.clone()) } else { arrow::compute::cast(column, field.data_type()) }
            },
        )
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// The table `batch`: whatever chunk its runner holds when the plan is made physical.
#[derive(Debug)]
struct ChunkTable {
    schema: SchemaRef,
    held: Mutex<Option<RecordBatch>>,
}

impl ChunkTable {
    fn new(schema: SchemaRef) -> ChunkTable {
        ChunkTable { schema, held: Mutex::new(None) }
    }

    fn hold(&self, chunk: RecordBatch) {
        *self.held.lock().unwrap_or_else(|p| p.into_inner()) = Some(chunk);
    }

    fn release(&self) {
        *self.held.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

#[async_trait]
impl TableProvider for ChunkTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>, DataFusionError> {
        let held = self.held.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let partition: Vec<RecordBatch> = held.into_iter().collect();
        Ok(MemorySourceConfig::try_new_exec(&[partition], self.schema.clone(), projection.cloned())?)
    }
}

#[cfg(test)]
mod tests;

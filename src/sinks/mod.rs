//! Stage 6, commit: sinks make a batch's rows visible atomically and remember, in their own
//! storage, which batches they hold, so the ledger can always be checked against them.
//!
//! A sink instance serves one source. Each batch carries a [`BatchManifest`]; its `seq`
//! increases per (instance, source), which is what makes a retried commit detectable.

mod delta;
mod druid;
mod kafka;
mod parquet;

pub use self::delta::DeltaSink;
pub(crate) use self::delta::open_table_at;
pub use self::druid::{DruidSink, submit_supervisor_in_background};
pub use self::kafka::KafkaSink;
pub use self::parquet::ParquetSink;

use crate::config::{Config, SinkConfig};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// What a commit records about its batch, in the sink itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchManifest {
    pub instance: String,
    pub source: String,
    pub seq: i64,
    /// The `_ingested_at` of the batch's rows (UTC µs); absent in manifests of ingestd < 0.2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingested_at_us: Option<i64>,
    pub files: Vec<ManifestFile>,
    /// Columns this batch added to the table (schema evolution), each with the file whose field
    /// it reads.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub columns_added: Vec<AddedColumn>,
    /// The lookups this batch's transform joined, each at the version it used.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lookups: Vec<crate::transform::LookupUse>,
}

/// A column added by schema evolution, and the file that brought its field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddedColumn {
    pub column: String,
    pub file: String,
}

/// One version of a table that changed its columns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SchemaChange {
    pub version: i64,
    /// Commit time, Unix milliseconds.
    pub timestamp_ms: Option<i64>,
    /// The columns this version added (all of them for the version that created the table).
    pub columns: Vec<String>,
    /// The files that brought them, as the batch's manifest names them.
    pub files: Vec<String>,
}

/// One source file of a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestFile {
    pub name: String,
    /// BLAKE3 of the file's stored bytes, hex.
    pub hash: String,
    pub rows: u64,
}

impl BatchManifest {
    /// The id that tags this source's commits from this instance (the Delta `txn` app id).
    pub fn app_id(instance: &str, source: &str) -> String {
        format!("ingestd:{instance}:{source}")
    }
}

/// What a failed sink call means for the batch: decisions rest on this, never on the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkErrorKind {
    /// The storage or broker failed or could not be reached: the same batch may succeed later.
    Retryable,
    /// Another writer got there first (a commit conflict that outlived the sink's own retries,
    /// or a fenced producer): retry soon, after reading what the other writer did.
    Conflict,
    /// Retrying cannot help until a person acts (the table's schema differs from the mapping,
    /// a setting the storage refuses).
    Fatal,
}

impl SinkErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SinkErrorKind::Retryable => "retryable",
            SinkErrorKind::Conflict => "conflict",
            SinkErrorKind::Fatal => "fatal",
        }
    }
}

/// A sink call that failed: which sink, what kind of failure, what happened, and the error
/// underneath when there is one.
#[derive(Debug, thiserror::Error)]
#[error("sink {sink}: {message}")]
pub struct SinkError {
    pub sink: String,
    pub kind: SinkErrorKind,
    /// What failed, with the underlying error's text.
    pub message: String,
    cause: Option<Box<dyn std::error::Error + Send + Sync>>,
}

/// An underlying error or a message.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

impl SinkError {
    /// The name of the sink that failed.
    pub fn sink(&self) -> &str {
        &self.sink
    }

    /// The error underneath, for callers that need more than the message (it is already in it).
    pub fn cause(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        self.cause.as_deref()
    }

    pub(crate) fn new(sink: &str, kind: SinkErrorKind, cause: impl Into<Cause>) -> SinkError {
        let cause = cause.into();
        SinkError { sink: sink.to_string(), kind, message: cause.to_string(), cause: Some(cause) }
    }

    /// A failure of the storage or the network: retried.
    pub(crate) fn storage(sink: &str, cause: impl Into<Cause>) -> SinkError {
        SinkError::new(sink, SinkErrorKind::Retryable, cause)
    }

    /// The table exists with columns the mapping does not give.
    pub(crate) fn schema_mismatch(sink: &str, detail: &str) -> SinkError {
        SinkError {
            sink: sink.to_string(),
            kind: SinkErrorKind::Fatal,
            message: format!("the existing table's schema does not match the mapping: {detail}"),
            cause: None,
        }
    }
}

/// A destination for one source's batches.
#[async_trait]
pub trait Sink: Send + Sync {
    /// The sink's name in the config.
    fn name(&self) -> &str;
    /// Creates the table if missing and checks an existing table's schema.
    async fn prepare(&mut self, schema: SchemaRef) -> Result<(), SinkError>;
    /// The table's columns as its storage records them (with ingestd's field metadata), or
    /// `None` when there is no table yet or this sink keeps no schema: a source whose columns
    /// are inferred maps as this says, so that a lost state folder changes nothing.
    async fn table_schema(&self) -> Result<Option<SchemaRef>, SinkError> {
        Ok(None)
    }
    /// Finishes any commit a crash interrupted half-way (Parquet renames) and returns the
    /// highest batch seq this sink holds for (instance, source).
    async fn recover(&self) -> Result<Option<i64>, SinkError>;
    /// The manifests of batches with seq > `after` this sink holds for (instance, source), with
    /// the sink's reference for each; used to rebuild a lost ledger.
    async fn batches_after(&self, after: i64) -> Result<Vec<(BatchManifest, String)>, SinkError>;
    /// Whether part of batch `seq` may be visible although [`Sink::recover`] does not count it
    /// held (a sink whose commit is not atomic). Such a batch is completed with the same files,
    /// never given up.
    async fn started(&self, _seq: i64) -> Result<bool, SinkError> {
        Ok(false)
    }
    /// What batch `seq` added (root, version, files), for loaders reading a lake's files;
    /// `None` when this sink does not hold it or keeps no such files.
    async fn lake_commit(&self, _seq: i64) -> Result<Option<crate::druid::LakeCommit>, SinkError> {
        Ok(None)
    }
    /// The versions of the table that added columns, oldest first (empty for a sink without a
    /// log). Versions whose log entries were cleaned up are not listed.
    async fn schema_history(&self) -> Result<Vec<SchemaChange>, SinkError> {
        Ok(Vec::new())
    }
    /// Starts writing a batch of `schema` (the mapping's, which may add columns to the table's);
    /// nothing is visible until [`SinkWriter::commit`].
    async fn begin(&self, schema: SchemaRef) -> Result<Box<dyn SinkWriter>, SinkError>;
    /// The sink's table upkeep (compaction, checkpoints, vacuum), if it needs any. It runs
    /// beside the batches on its own handle, so a long round never delays a commit.
    fn upkeep(&self) -> Option<Box<dyn Upkeep>> {
        None
    }
}

/// Upkeep of a sink's storage that never changes the rows a reader sees.
#[async_trait]
pub trait Upkeep: Send {
    /// One round; returns what was done, for the log (empty when there was nothing to do).
    async fn round(&mut self) -> Result<Vec<String>, SinkError>;
}

/// The data files of one batch being written.
#[async_trait]
pub trait SinkWriter: Send {
    async fn write(&mut self, batch: &RecordBatch) -> Result<(), SinkError>;
    /// Makes everything written visible at once, tagged with the manifest. Returns the sink's
    /// reference for the commit (e.g. "delta version 7").
    async fn commit(self: Box<Self>, manifest: &BatchManifest) -> Result<String, SinkError>;
}

/// Builds the sink named `name` for one source, if the config has it.
pub fn build(name: &str, config: &Config, source: &str) -> Option<Box<dyn Sink>> {
    let instance = config.instance.as_str();
    Some(match config.sinks.get(name)? {
        SinkConfig::Delta(c) => Box::new(DeltaSink::new(name, c.clone(), instance, source)),
        SinkConfig::Parquet(c) => Box::new(ParquetSink::new(name, c.clone(), instance, source, &config.state_dir)),
        SinkConfig::Kafka(c) => Box::new(KafkaSink::new(name, c.clone(), instance, source, &config.state_dir)),
        SinkConfig::Druid(c) => Box::new(DruidSink::new(name, c.clone(), config, source)?),
    })
}

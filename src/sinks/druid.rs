//! Apache Druid, wired into the daemon: the `kind = "druid"` sink, and the Kafka sink's Druid
//! supervisor ([`submit_supervisor_in_background`]). The specs and the Overlord client are in
//! [`crate::druid`].
//!
//! The sink follows a Delta or Parquet sink listed before it: once the lake committed a batch,
//! [`DruidSink`] asks the lake which files that commit added and runs a Druid batch task loading
//! exactly those, following it to SUCCESS. The sink's reference is the task id. A source's
//! next batch waits for the task.
//!
//! Exactly once without bookkeeping of its own: the task id is derived from (instance, source,
//! datasource, batch seq, attempt), and Druid refuses a task id it already has. So the sink
//! claims to hold no batch (`recover` is `None`, `batches_after` empty): after a crash the
//! recovery replays every batch the ledger does not show committed to this sink, the resubmitted
//! task is refused as a duplicate, and the original task is polled to its end instead of
//! loading the files again. A task that ended FAILED published nothing, so the next attempt
//! runs under the next id. (Druid forgets task ids after its metadata retention; see
//! `docs/druid.md`.)

use super::{BatchManifest, Sink, SinkError, SinkWriter};
use crate::config::{Config, DruidBatchConfig, DruidBatchInput, KafkaSinkConfig, SinkConfig};
use crate::druid::{self, LakeCommit, Overlord, OverlordError, TaskPolicy};
use crate::events::{self, DruidTasks, SupervisorSubmission};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::Duration;

pub struct DruidSink {
    shared: Arc<Shared>,
    /// A commit shaped like the lake's, to check at start-up that the task can be built.
    sample: LakeCommit,
    /// The lake's partition columns when Druid reads its files: their values are in folder
    /// names, not in the files, so they are not columns of the datasource.
    not_in_files: Vec<String>,
    /// Set by `prepare`.
    ready: Option<Ready>,
}

/// What the sink and its writers share.
struct Shared {
    name: String,
    config: DruidBatchConfig,
    instance: String,
    source: String,
    /// A handle of its own on the lake sink, to ask what each commit added.
    lake: Box<dyn Sink>,
}

#[derive(Clone)]
struct Ready {
    schema: SchemaRef,
    overlord: Arc<Overlord>,
}

impl DruidSink {
    /// The druid sink `name` for one source; `None` unless its lake is a Delta or Parquet sink
    /// of the config (validation makes sure it is).
    pub fn new(name: &str, config: DruidBatchConfig, all: &Config, source: &str) -> Option<DruidSink> {
        let (root, version, partition_by) = match all.sinks.get(&config.lake)? {
            SinkConfig::Delta(delta) => (delta.uri.clone(), Some(0), &delta.partition_by),
            SinkConfig::Parquet(parquet) => (parquet.path.clone(), None, &parquet.partition_by),
            // Never build another kind as a lake (a druid sink naming itself would recurse).
            SinkConfig::Kafka(_) | SinkConfig::Druid(_) => return None,
        };
        let root = if root.contains("://") { root } else { std::path::absolute(&root).map_or(root, |p| p.to_string_lossy().into_owned()) };
        // Druid's Delta input source reads partition values from the log.
        let not_in_files = if config.input == DruidBatchInput::Delta { Vec::new() } else { partition_by.clone() };
        let lake = super::build(&config.lake, all, source)?;
        let shared = Shared { name: name.to_string(), config, instance: all.instance.clone(), source: source.to_string(), lake };
        let sample = LakeCommit { root, version, files: vec!["part-0.parquet".to_string()] };
        Some(DruidSink { shared: Arc::new(shared), sample, not_in_files, ready: None })
    }
}

impl Shared {
    fn err(&self, e: impl Into<crate::sinks::Cause>) -> SinkError {
        SinkError::storage(&self.name, e)
    }

    fn count(&self, outcome: &'static str, n: u64) {
        events::emit(DruidTasks { source: &self.source, sink: &self.name, outcome, count: n });
    }
}

impl DruidSink {
    /// The columns of `schema` the lake's data files hold.
    fn in_files(&self, schema: &SchemaRef) -> SchemaRef {
        let in_files = schema.fields().iter().filter(|f| !self.not_in_files.contains(f.name())).cloned();
        Arc::new(arrow::datatypes::Schema::new(in_files.collect::<Vec<_>>()))
    }
}

#[async_trait]
impl Sink for DruidSink {
    fn name(&self) -> &str {
        &self.shared.name
    }

    async fn prepare(&mut self, schema: SchemaRef) -> Result<(), SinkError> {
        let shared = &self.shared;
        let schema = self.in_files(&schema);
        // A column or type the datasource cannot take shows now, not at the first commit.
        let id = druid::task_id(&shared.instance, &shared.source, &shared.config.schema.datasource, 0, 1);
        druid::batch_task(&schema, &shared.config, &id, &self.sample)
            .map_err(|e| shared.err(format!("cannot build a Druid task for this mapping: {e}")))?;
        let overlord = Overlord::new(&shared.config.schema).map_err(|e| shared.err(e))?;
        self.ready = Some(Ready { schema, overlord: Arc::new(overlord) });
        Ok(())
    }

    async fn recover(&self) -> Result<Option<i64>, SinkError> {
        Ok(None)
    }

    async fn batches_after(&self, _after: i64) -> Result<Vec<(BatchManifest, String)>, SinkError> {
        Ok(Vec::new())
    }

    async fn begin(&self, schema: SchemaRef) -> Result<Box<dyn SinkWriter>, SinkError> {
        let mut ready = self.ready.clone().ok_or_else(|| self.shared.err("begin before prepare"))?;
        // The batch's columns, those schema evolution added included, are the task's.
        ready.schema = self.in_files(&schema);
        Ok(Box::new(DruidWriter { shared: self.shared.clone(), ready }))
    }
}

/// One batch: the rows are the lake's to write; the commit loads the lake's files.
struct DruidWriter {
    shared: Arc<Shared>,
    ready: Ready,
}

#[async_trait]
impl SinkWriter for DruidWriter {
    async fn write(&mut self, _batch: &RecordBatch) -> Result<(), SinkError> {
        Ok(())
    }

    async fn commit(self: Box<Self>, manifest: &BatchManifest) -> Result<String, SinkError> {
        let (shared, seq) = (&self.shared, manifest.seq);
        let lake = &shared.config.lake;
        let commit =
            shared.lake.lake_commit(seq).await?.ok_or_else(|| shared.err(format!("lake sink {lake} does not hold batch {seq}")))?;
        if commit.files.is_empty() && shared.config.input != DruidBatchInput::Delta {
            return Ok(format!("no druid task: batch {seq} added no files to {lake}"));
        }
        let datasource = &shared.config.schema.datasource;
        let policy = TaskPolicy::of(&shared.config);
        let result = self
            .ready
            .overlord
            .run_to_end(&policy, |attempt| {
                let id = druid::task_id(&shared.instance, &shared.source, datasource, seq, attempt);
                druid::batch_task(&self.ready.schema, &shared.config, &id, &commit)
            })
            .await;
        match result {
            Ok(outcome) => {
                shared.count("failed_attempt", outcome.failures.len() as u64);
                shared.count("success", 1);
                let resumed = if outcome.resumed { ", submitted before" } else { "" };
                let plural = if outcome.attempts == 1 { "" } else { "s" };
                Ok(format!("druid task {} SUCCESS ({} attempt{plural}{resumed})", outcome.task_id, outcome.attempts))
            }
            Err(e) => {
                if let OverlordError::TaskFailed { attempts, .. } = &e {
                    shared.count("failed_attempt", u64::from(*attempts));
                    shared.count("gave_up", 1);
                }
                Err(shared.err(e))
            }
        }
    }
}

/// Supervisor submissions under way, by Kafka sink, so a newer spec replaces one still retrying.
static SUPERVISORS: LazyLock<Mutex<HashMap<String, tokio::task::JoinHandle<()>>>> = LazyLock::new(Default::default);

/// Longest wait between two submissions of a supervisor spec that did not go through.
const MAX_SUPERVISOR_BACKOFF: Duration = Duration::from_secs(300);

/// What the status board's `last_error` of a failed supervisor submission starts with.
const SUPERVISOR_ERROR: &str = "druid supervisor: ";

/// When Kafka sink `sink` (written by `source`) has `[sinks.NAME.druid]` with `submit = true`:
/// builds its supervisor spec for `schema` and posts it to the Overlord on a Tokio task, until
/// it is accepted (the client retries; after that the task waits, doubling up to 5 min, and
/// tries again; each failure is logged and shown as the sink's `last_error` in `/v1/status`).
/// A spec that cannot be built for `schema` is an error now. A later call for the same sink
/// (a schema change) replaces a submission still retrying.
pub fn submit_supervisor_in_background(source: &str, sink: &str, kafka: &KafkaSinkConfig, schema: &SchemaRef) -> Result<(), SinkError> {
    let Some(config) = kafka.druid.as_ref().filter(|d| d.submit) else { return Ok(()) };
    let err = |e: &dyn std::fmt::Display| SinkError::storage(sink, format!("{SUPERVISOR_ERROR}{e}"));
    let spec = druid::supervisor_spec(schema, config, &kafka.topic, &kafka.brokers, &kafka.properties).map_err(|e| err(&e))?;
    let overlord = Overlord::new(&config.schema).map_err(|e| err(&e))?;
    let mut wait = config.schema.retry_backoff.0.max(Duration::from_millis(100));
    let (source, sink) = (source.to_string(), sink.to_string());
    let mut running = SUPERVISORS.lock().unwrap_or_else(PoisonError::into_inner);
    let previous = running.remove(&sink);
    if let Some(previous) = &previous {
        previous.abort();
    }
    let key = sink.clone();
    let task = tokio::spawn(async move {
        // The older spec must not land after this one.
        if let Some(previous) = previous {
            let _ = previous.await;
        }
        loop {
            let submitted = overlord.submit_supervisor(&spec).await;
            let outcome = match &submitted {
                Ok(id) => Ok(id.as_str()),
                Err(e) => Err((e as &dyn std::fmt::Display, wait)),
            };
            let url = overlord.url().to_string();
            events::emit(SupervisorSubmission { source: &source, sink: &sink, prefix: SUPERVISOR_ERROR, overlord: &url, outcome });
            if submitted.is_ok() {
                return;
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(MAX_SUPERVISOR_BACKOFF);
        }
    });
    running.insert(key, task);
    Ok(())
}

//! A Kafka topic: every committed row as one JSON message, exactly once.
//!
//! A batch's rows are spooled to a local Arrow IPC file while the batch is decoded (its seq,
//! which the messages carry, is known only at commit), then published from the spool on a
//! blocking thread. The bookkeeping topic records which batches are on the topic; see
//! [`bookkeeping`] for the two modes and `docs/exactly-once.md` for the argument.

mod bookkeeping;
mod client;
mod encode;
mod publish;

use super::{BatchManifest, Sink, SinkError, SinkErrorKind, SinkWriter};
use crate::config::{KafkaExactlyOnce, KafkaSinkConfig};
use crate::events::{self, KafkaMessages};
use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use bookkeeping::BatchRecord;
use publish::Session;
use rdkafka::producer::Producer as _;
use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub struct KafkaSink {
    shared: Arc<Shared>,
    spool_dir: PathBuf,
    /// Indices of the key columns in the mapped batches (set by `prepare`; schema evolution
    /// only appends columns, so they stay right).
    key_columns: Vec<usize>,
    /// The columns of the Druid supervisor spec last submitted: a batch with others (schema
    /// evolution added some) submits it again.
    supervised: std::sync::Mutex<Vec<String>>,
}

/// What the sink and its writers share.
struct Shared {
    name: String,
    source: String,
    config: KafkaSinkConfig,
    /// Key of this sink's bookkeeping records.
    bookkeeping_key: String,
    transactional_id: String,
    /// The connected producer; dropped after any failure so the next batch starts clean.
    session: Mutex<Option<Session>>,
    /// The batch an interrupted attempt began (reconciling), as last read back.
    unfinished: Mutex<Option<BatchRecord>>,
    /// Set once another producer took over the transactional id: this instance is a zombie
    /// and stops publishing instead of fencing the other one back.
    fenced: Mutex<Option<String>>,
}

impl Shared {
    fn err(&self, e: impl Into<crate::sinks::Cause>) -> SinkError {
        SinkError::storage(&self.name, e)
    }

    /// Runs `job` with a connected session on a blocking thread; a failed job drops the session.
    async fn with_session<T: Send + 'static>(
        self: &Arc<Self>,
        job: impl FnOnce(&Shared, &Session) -> Result<T, String> + Send + 'static,
    ) -> Result<T, SinkError> {
        let shared = self.clone();
        tokio::task::spawn_blocking(move || {
            if let Some(why) = shared.fenced.lock().ok().and_then(|f| f.clone()) {
                let why = format!(
                    "fenced: another producer took transactional id {} ({why}); this instance no longer publishes; restart it once only one instance uses the id",
                    shared.transactional_id
                );
                return Err(SinkError::new(&shared.name, SinkErrorKind::Fatal, why));
            }
            let mut slot = shared.session.lock().map_err(|_| shared.err("session lock poisoned"))?;
            if slot.is_none() {
                *slot = Some(Session::open(&shared.config, &shared.transactional_id).map_err(|e| shared.err(e))?);
            }
            let session = slot.as_ref().ok_or_else(|| shared.err("no session"))?;
            let result = job(&shared, session);
            if result.is_err() {
                if let Some(why) = session.fenced() {
                    tracing::error!(sink = %shared.name, transactional_id = %shared.transactional_id, %why, "fenced by another producer; publishing stops");
                    if let Ok(mut fenced) = shared.fenced.lock() {
                        *fenced = Some(why);
                    }
                }
                *slot = None;
            }
            result.map_err(|e| shared.err(e))
        })
        .await
        .map_err(|e| self.err(format!("publishing thread failed: {e}")))?
    }

    /// The bookkeeping of this sink (committed batches above `after`), read after the session
    /// is open: in transactional mode that aborts an interrupted transaction first.
    async fn read_bookkeeping(self: &Arc<Self>, after: i64) -> Result<bookkeeping::Ledger, SinkError> {
        let ledger = self
            .with_session(move |shared, _| {
                bookkeeping::read(&shared.config, &shared.bookkeeping_key, after).map_err(|e| format!("reading bookkeeping: {e}"))
            })
            .await?;
        if let Ok(mut unfinished) = self.unfinished.lock() {
            unfinished.clone_from(&ledger.unfinished);
        }
        Ok(ledger)
    }
}

impl KafkaSink {
    pub fn new(name: &str, config: KafkaSinkConfig, instance: &str, source: &str, state_dir: &std::path::Path) -> KafkaSink {
        let transactional_id = config.transactional_id.clone().unwrap_or_else(|| format!("ingestd-{instance}-{source}-{name}"));
        KafkaSink {
            shared: Arc::new(Shared {
                name: name.to_string(),
                source: source.to_string(),
                bookkeeping_key: bookkeeping::key(&BatchManifest::app_id(instance, source), &config.topic),
                config,
                transactional_id,
                session: Mutex::new(None),
                unfinished: Mutex::new(None),
                fenced: Mutex::new(None),
            }),
            spool_dir: state_dir.join("spool").join(format!("{source}-{name}")),
            key_columns: Vec::new(),
            supervised: std::sync::Mutex::new(Vec::new()),
        }
    }

    async fn mode(&self) -> Result<KafkaExactlyOnce, SinkError> {
        self.shared.with_session(|_, s| Ok(s.mode)).await
    }

    /// Deletes spool files a crash left behind (no batch of this source is in flight yet).
    fn clear_spool_dir(&self) {
        for entry in std::fs::read_dir(&self.spool_dir).into_iter().flatten().flatten() {
            if entry.path().extension().is_some_and(|e| e == "arrows") {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// Submits the Druid supervisor spec for `schema` unless the last one had its columns.
    fn supervise(&self, schema: &SchemaRef) -> Result<(), SinkError> {
        let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let mut supervised = self.supervised.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if *supervised != names {
            super::submit_supervisor_in_background(&self.shared.source, &self.shared.name, &self.shared.config, schema)?;
            *supervised = names;
        }
        Ok(())
    }

    fn create_spool_dir(&self) -> Result<(), SinkError> {
        std::fs::create_dir_all(&self.spool_dir).map_err(|e| self.shared.err(format!("cannot create {}: {e}", self.spool_dir.display())))
    }
}

#[async_trait]
impl Sink for KafkaSink {
    fn name(&self) -> &str {
        &self.shared.name
    }

    async fn prepare(&mut self, schema: SchemaRef) -> Result<(), SinkError> {
        let shared = &self.shared;
        self.key_columns = shared
            .config
            .key
            .iter()
            .map(|column| {
                schema.index_of(column).map_err(|_| {
                    SinkError::schema_mismatch(&shared.name, &format!("key column {column:?} is not a column of source {}", shared.source))
                })
            })
            .collect::<Result<_, _>>()?;
        self.supervise(&schema)?;
        self.create_spool_dir()?;
        self.clear_spool_dir();
        let mode = self.mode().await?;
        tracing::info!(sink = %shared.name, topic = %shared.config.topic, ?mode, "kafka sink ready");
        Ok(())
    }

    async fn recover(&self) -> Result<Option<i64>, SinkError> {
        Ok(self.shared.read_bookkeeping(i64::MAX).await?.highest)
    }

    async fn started(&self, seq: i64) -> Result<bool, SinkError> {
        if self.mode().await? == KafkaExactlyOnce::Transactional {
            return Ok(false);
        }
        Ok(self.shared.read_bookkeeping(i64::MAX).await?.unfinished.is_some_and(|u| u.manifest.seq == seq))
    }

    async fn batches_after(&self, after: i64) -> Result<Vec<(BatchManifest, String)>, SinkError> {
        let ledger = self.shared.read_bookkeeping(after).await?;
        Ok(ledger
            .committed
            .into_values()
            .map(|r| {
                let reference = format!("kafka topic {} batch {} (rebuilt from bookkeeping)", r.topic, r.manifest.seq);
                (r.manifest, reference)
            })
            .collect())
    }

    async fn begin(&self, schema: SchemaRef) -> Result<Box<dyn SinkWriter>, SinkError> {
        self.supervise(&schema)?;
        self.create_spool_dir()?;
        let path = self.spool_dir.join(format!("{}.arrows", crate::temp_name::unique()));
        Ok(Box::new(KafkaWriter { shared: self.shared.clone(), key_columns: self.key_columns.clone(), path: SpoolFile(path), spool: None }))
    }
}

/// One batch: rows go to the spool file, and are published at commit.
struct KafkaWriter {
    shared: Arc<Shared>,
    key_columns: Vec<usize>,
    /// Deleted with the writer, committed or not.
    path: SpoolFile,
    spool: Option<StreamWriter<BufWriter<File>>>,
}

/// Deletes the spool file whatever happens to the batch.
struct SpoolFile(PathBuf);

impl Drop for SpoolFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[async_trait]
impl SinkWriter for KafkaWriter {
    async fn write(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        let err = |e: arrow::error::ArrowError| self.shared.err(format!("spool {}: {e}", self.path.0.display()));
        if self.spool.is_none() {
            let file = File::create(&self.path.0).map_err(|e| err(e.into()))?;
            self.spool = Some(StreamWriter::try_new(BufWriter::new(file), &batch.schema()).map_err(err)?);
        }
        if let Some(spool) = self.spool.as_mut() {
            spool.write(batch).map_err(err)?;
        }
        Ok(())
    }

    async fn commit(self: Box<Self>, manifest: &BatchManifest) -> Result<String, SinkError> {
        let KafkaWriter { shared, key_columns, path: spool_file, spool } = *self;
        let written = match spool {
            Some(mut writer) => {
                writer.finish().map_err(|e| shared.err(format!("spool {}: {e}", spool_file.0.display())))?;
                true
            }
            None => false,
        };
        let resume = shared.unfinished.lock().ok().and_then(|u| u.clone()).filter(|u| u.manifest.seq == manifest.seq);
        let manifest_owned = manifest.clone();
        let outcome = shared
            .with_session(move |shared, session| {
                let rows = spooled_rows(&spool_file.0, written)?;
                let batch = publish::Batch {
                    config: &shared.config,
                    bookkeeping_key: &shared.bookkeeping_key,
                    manifest: &manifest_owned,
                    key_columns: &key_columns,
                    resume: resume.as_ref(),
                };
                let result = publish::publish(session, &batch, rows);
                if result.is_err() {
                    let failed = session.producer.context().unacknowledged();
                    events::emit(KafkaMessages { source: &shared.source, sink: &shared.name, outcome: "failed", count: failed });
                }
                result.map(|sent| (sent, session.mode))
            })
            .await;
        let (sent, mode) = outcome?;
        if let Ok(mut unfinished) = shared.unfinished.lock() {
            *unfinished = None;
        }
        events::emit(KafkaMessages { source: &shared.source, sink: &shared.name, outcome: "sent", count: sent });
        Ok(format!("kafka topic {} batch {} ({sent} messages, {mode:?})", shared.config.topic, manifest.seq))
    }
}

/// The spooled batches, read back one at a time.
fn spooled_rows(path: &std::path::Path, written: bool) -> Result<Box<dyn Iterator<Item = Result<RecordBatch, String>>>, String> {
    if !written {
        return Ok(Box::new(std::iter::empty()));
    }
    let file = File::open(path).map_err(|e| format!("spool {}: {e}", path.display()))?;
    let reader = StreamReader::try_new(BufReader::new(file), None).map_err(|e| format!("spool {}: {e}", path.display()))?;
    Ok(Box::new(reader.map(|r| r.map_err(|e| e.to_string()))))
}

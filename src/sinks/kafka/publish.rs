//! Publishing one batch, on a blocking thread: in one transaction, or (reconciling) between a
//! `begun` and a `committed` bookkeeping record, resuming after the rows that already landed.

use super::bookkeeping::{BatchRecord, BatchState};
use super::client::{self, Producer, REQUEST_TIMEOUT};
use super::encode;
use crate::config::{KafkaExactlyOnce, KafkaSinkConfig};
use crate::sinks::BatchManifest;
use arrow::record_batch::RecordBatch;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, Producer as _};
use rdkafka::types::RDKafkaErrorCode;
use std::time::{Duration, Instant};

/// Header names every message carries.
pub const HEADER_INSTANCE: &str = "ingestd.instance";
pub const HEADER_SOURCE: &str = "ingestd.source";
pub const HEADER_BATCH: &str = "ingestd.batch";
pub const HEADER_ROW: &str = "ingestd.row";
pub const HEADER_FILE: &str = "ingestd.file";
pub const HEADER_FILE_HASH: &str = "ingestd.file_hash";

/// A connected producer and what it was set up for.
pub struct Session {
    pub producer: Producer,
    pub mode: KafkaExactlyOnce,
    /// Partition count of the data topic.
    pub partitions: i32,
}

impl Session {
    /// Why this producer may never publish again: another one took its transactional id.
    pub fn fenced(&self) -> Option<String> {
        use rdkafka::producer::Producer as _;
        let (code, reason) = self.producer.client().fatal_error()?;
        matches!(code, RDKafkaErrorCode::Fenced | RDKafkaErrorCode::ProducerFenced | RDKafkaErrorCode::InvalidProducerEpoch)
            .then(|| format!("{code}: {reason}"))
    }

    /// Resolves the mode, creates the producer (a transactional one fences any older producer
    /// with the same id and aborts its open transaction) and makes sure both topics exist.
    pub fn open(config: &KafkaSinkConfig, transactional_id: &str) -> Result<Session, String> {
        let mode = client::resolve_mode(config)?;
        let transactional = (mode == KafkaExactlyOnce::Transactional).then_some(transactional_id);
        let producer = client::producer(config, transactional).map_err(|e| e.to_string())?;
        if transactional.is_some() {
            producer.init_transactions(REQUEST_TIMEOUT * 2).map_err(|e| format!("cannot start transactions as {transactional_id}: {e}"))?;
        }
        let partitions = client::ensure_topic(config, &producer, &config.topic, config.partitions, false)?;
        client::ensure_topic(config, &producer, &config.bookkeeping_topic, 1, true)?;
        Ok(Session { producer, mode, partitions })
    }
}

/// Everything one batch's publication needs.
pub struct Batch<'a> {
    pub config: &'a KafkaSinkConfig,
    pub bookkeeping_key: &'a str,
    pub manifest: &'a BatchManifest,
    pub key_columns: &'a [usize],
    /// The record of this batch begun by an earlier, interrupted attempt (reconciling).
    pub resume: Option<&'a BatchRecord>,
}

/// Publishes the rows of `batches` (the whole batch, in order). Returns the messages sent.
pub fn publish(session: &Session, batch: &Batch, rows: impl Iterator<Item = Result<RecordBatch, String>>) -> Result<u64, String> {
    session.producer.context().reset();
    match session.mode {
        KafkaExactlyOnce::Transactional => {
            let producer = &session.producer;
            producer.begin_transaction().map_err(|e| e.to_string())?;
            let sent = send_rows(session, batch, session.partitions, &[], rows).and_then(|sent| {
                send_record(session, batch, BatchState::Committed, vec![])?;
                crate::fault_point!("kafka_before_committed_record");
                producer.commit_transaction(batch.config.delivery_timeout()).map_err(|e| e.to_string())?;
                Ok(sent)
            });
            if sent.is_err() {
                // Nothing of it becomes visible; the producer is dropped by the caller anyway.
                let _ = producer.abort_transaction(REQUEST_TIMEOUT);
            }
            sent
        }
        _ => {
            let (partitions, landed) = match batch.resume {
                Some(begun) if begun.manifest == *batch.manifest => {
                    let landed = landed_rows(batch.config, begun).map_err(|e| format!("reading back the interrupted batch: {e}"))?;
                    (begun.partitions, landed)
                }
                Some(begun) => {
                    return Err(format!(
                        "bookkeeping shows batch {} begun with other files than the ledger's; refusing to guess",
                        begun.manifest.seq
                    ));
                }
                None => {
                    let offsets = end_offsets(session, &batch.config.topic)?;
                    send_record(session, batch, BatchState::Begun, offsets)?;
                    wait_for_acks(session, batch.config)?;
                    crate::fault_point!("kafka_after_begun");
                    (session.partitions, vec![])
                }
            };
            let sent = send_rows(session, batch, partitions, &landed, rows)?;
            wait_for_acks(session, batch.config)?;
            crate::fault_point!("kafka_before_committed_record");
            send_record(session, batch, BatchState::Committed, vec![])?;
            wait_for_acks(session, batch.config)?;
            Ok(sent)
        }
    }
}

fn send_rows(
    session: &Session,
    batch: &Batch,
    partitions: i32,
    landed: &[bool],
    rows: impl Iterator<Item = Result<RecordBatch, String>>,
) -> Result<u64, String> {
    let manifest = batch.manifest;
    // Row r comes from the file whose cumulative row range holds r.
    let ends: Vec<u64> = manifest
        .files
        .iter()
        .scan(0, |sum, f| {
            *sum += f.rows;
            Some(*sum)
        })
        .collect();
    let batch_id = manifest.seq.to_string();
    let deadline = Instant::now() + batch.config.delivery_timeout();
    let (mut row, mut file, mut sent) = (0u64, 0usize, 0u64);
    for record_batch in rows {
        for message in encode::encode(&record_batch?, batch.key_columns).map_err(|e| e.to_string())? {
            while file < ends.len() && row >= ends[file] {
                file += 1;
            }
            let source_file =
                manifest.files.get(file).ok_or_else(|| format!("row {row} is beyond the manifest's {} rows", ends.last().unwrap_or(&0)))?;
            let partition = encode::partition_of(message.key.as_deref(), row, partitions);
            if !landed.get(row as usize).copied().unwrap_or(false) {
                let row_text = row.to_string();
                let headers = OwnedHeaders::new_with_capacity(6)
                    .insert(header(HEADER_INSTANCE, &manifest.instance))
                    .insert(header(HEADER_SOURCE, &manifest.source))
                    .insert(header(HEADER_BATCH, &batch_id))
                    .insert(header(HEADER_ROW, &row_text))
                    .insert(header(HEADER_FILE, &source_file.name))
                    .insert(header(HEADER_FILE_HASH, &source_file.hash));
                let mut record = BaseRecord::to(&batch.config.topic).payload(&message.value[..]).partition(partition).headers(headers);
                if let Some(key) = &message.key {
                    record = record.key(&key[..]);
                }
                send(session, record, deadline)?;
                sent += 1;
                if sent == 200 {
                    // Some rows are on their way, more are not sent yet.
                    session.producer.poll(Duration::from_millis(1));
                    crate::fault_point!("kafka_mid_rows");
                }
            }
            row += 1;
        }
    }
    let expected = ends.last().copied().unwrap_or(0);
    if row != expected {
        return Err(format!("the batch has {row} rows but its manifest {expected}"));
    }
    Ok(sent)
}

fn header<'a>(key: &'a str, value: &'a str) -> Header<'a, &'a str> {
    Header { key, value: Some(value) }
}

/// Enqueues one message, waiting while the producer's queue (`max_in_flight`) is full.
fn send(session: &Session, mut record: BaseRecord<'_, [u8], [u8]>, deadline: Instant) -> Result<(), String> {
    loop {
        match session.producer.send(record) {
            Ok(()) => {
                session.producer.context().enqueued();
                break;
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) if Instant::now() < deadline => {
                record = back;
                session.producer.poll(Duration::from_millis(20));
            }
            Err((error, _)) => return Err(format!("cannot enqueue a message: {error}")),
        }
    }
    session.producer.poll(Duration::ZERO);
    match session.producer.context().first_error() {
        Some(error) => Err(format!("delivery failed: {error}")),
        None => Ok(()),
    }
}

fn send_record(session: &Session, batch: &Batch, state: BatchState, start_offsets: Vec<i64>) -> Result<(), String> {
    let record = BatchRecord {
        state,
        topic: batch.config.topic.clone(),
        partitions: session.partitions,
        start_offsets,
        manifest: batch.manifest.clone(),
    };
    let payload = serde_json::to_vec(&record).map_err(|e| e.to_string())?;
    let message = BaseRecord::to(&batch.config.bookkeeping_topic).key(batch.bookkeeping_key.as_bytes()).payload(&payload[..]);
    send(session, message, Instant::now() + batch.config.delivery_timeout())
}

/// Waits until the broker acknowledged every message sent, and fails if any was not.
fn wait_for_acks(session: &Session, config: &KafkaSinkConfig) -> Result<(), String> {
    session.producer.flush(config.delivery_timeout()).map_err(|e| {
        let missing = session.producer.context().unacknowledged();
        format!("delivery failed: {missing} message(s) not acknowledged within delivery_timeout ({e})")
    })?;
    match session.producer.context().first_error() {
        Some(error) => Err(format!("delivery failed: {error}")),
        None => Ok(()),
    }
}

fn end_offsets(session: &Session, topic: &str) -> Result<Vec<i64>, String> {
    (0..session.partitions)
        .map(|p| session.producer.client().fetch_watermarks(topic, p, REQUEST_TIMEOUT).map(|(_, high)| high))
        .collect::<Result<_, _>>()
        .map_err(|e| format!("end offsets of {topic}: {e}"))
}

/// Which rows of the interrupted batch landed, by row number: every message the batch put on
/// the partitions since the offsets recorded when it began, found by its headers. (Reading
/// them all, not only each partition's last row, also covers a gap left by a message that
/// timed out while a later one to the same partition was acknowledged.)
fn landed_rows(config: &KafkaSinkConfig, begun: &BatchRecord) -> Result<Vec<bool>, KafkaError> {
    let consumer = client::reader(config)?;
    let topic = begun.topic.as_str();
    let total: u64 = begun.manifest.files.iter().map(|f| f.rows).sum();
    let mut landed = vec![false; total as usize];
    let starts: Vec<(i32, Option<i64>)> = begun.start_offsets.iter().enumerate().map(|(p, &start)| (p as i32, Some(start))).collect();
    let seq = begun.manifest.seq.to_string();
    client::read_to_end(&consumer, topic, &starts, |message| {
        let Some(headers) = message.headers() else { return };
        let value = |name: &str| headers.iter().find(|h| h.key == name).and_then(|h| h.value).and_then(|v| std::str::from_utf8(v).ok());
        let ours = value(HEADER_INSTANCE) == Some(begun.manifest.instance.as_str())
            && value(HEADER_SOURCE) == Some(begun.manifest.source.as_str())
            && value(HEADER_BATCH) == Some(seq.as_str());
        if let (true, Some(row)) = (ours, value(HEADER_ROW).and_then(|r| r.parse::<usize>().ok()))
            && let Some(slot) = landed.get_mut(row)
        {
            *slot = true;
        }
    })?;
    Ok(landed)
}

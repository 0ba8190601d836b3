//! The bookkeeping topic: one record per batch and state, keyed by (instance, source, topic),
//! from which a restarted sink learns which batches are on the topic.
//!
//! Transactional mode writes `committed` inside the batch's transaction. Reconciling mode
//! writes `begun` (with each partition's end offset) before the first row and `committed`
//! after the last row is acknowledged; a `begun` without its `committed` is a batch to finish.

use super::client::{self, REQUEST_TIMEOUT};
use crate::config::KafkaSinkConfig;
use crate::sinks::BatchManifest;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BatchState {
    Begun,
    Committed,
}

/// One bookkeeping record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchRecord {
    pub state: BatchState,
    pub topic: String,
    /// The topic's partition count when the batch began (rows were spread over these).
    pub partitions: i32,
    /// Reconciling: each partition's end offset before the batch's first row.
    #[serde(default)]
    pub start_offsets: Vec<i64>,
    pub manifest: BatchManifest,
}

/// What the bookkeeping says about this sink's batches.
#[derive(Debug, Default)]
pub struct Ledger {
    /// The highest committed batch.
    pub highest: Option<i64>,
    /// Committed batches above the `after` asked for, by seq.
    pub committed: BTreeMap<i64, BatchRecord>,
    /// The batch begun last, if no `committed` record followed it.
    pub unfinished: Option<BatchRecord>,
}

/// The key of this sink's records.
pub fn key(manifest_app_id: &str, topic: &str) -> String {
    format!("{manifest_app_id}:{topic}")
}

/// Reads the whole bookkeeping topic (committed records only) and keeps this key's records,
/// the committed ones only above `after`.
pub fn read(config: &KafkaSinkConfig, key: &str, after: i64) -> Result<Ledger, KafkaError> {
    let consumer = client::reader(config)?;
    let topic = config.bookkeeping_topic.as_str();
    let metadata = consumer.fetch_metadata(Some(topic), REQUEST_TIMEOUT)?;
    let partitions = metadata.topics().iter().find(|t| t.name() == topic).map_or(0, |t| t.partitions().len() as i32);
    let starts: Vec<(i32, Option<i64>)> = (0..partitions).map(|p| (p, None)).collect();
    let mut ledger = Ledger::default();
    client::read_to_end(&consumer, topic, &starts, |message| {
        if message.key() != Some(key.as_bytes()) {
            return;
        }
        let Some(record) = message.payload().and_then(|p| serde_json::from_slice::<BatchRecord>(p).ok()) else {
            tracing::warn!(topic, offset = message.offset(), "unreadable bookkeeping record skipped");
            return;
        };
        match record.state {
            BatchState::Begun => ledger.unfinished = Some(record),
            BatchState::Committed => {
                if ledger.unfinished.as_ref().is_some_and(|u| u.manifest.seq == record.manifest.seq) {
                    ledger.unfinished = None;
                }
                let seq = record.manifest.seq;
                ledger.highest = ledger.highest.max(Some(seq));
                if seq > after {
                    ledger.committed.insert(seq, record);
                }
            }
        }
    })?;
    Ok(ledger)
}

//! librdkafka clients for the Kafka sink: the producer with its delivery accounting, readers,
//! topic creation, and the probe that tells whether the broker can commit transactions.

use crate::config::{KafkaExactlyOnce, KafkaSinkConfig};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use rdkafka::producer::{BaseProducer, DeliveryResult, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long metadata, watermark and admin requests may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Counts what the broker acknowledged and keeps the first failure.
#[derive(Default)]
pub struct Deliveries {
    enqueued: AtomicU64,
    delivered: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Deliveries {
    /// Starts counting afresh (one batch at a time uses a producer).
    pub fn reset(&self) {
        self.enqueued.store(0, Ordering::Release);
        self.delivered.store(0, Ordering::Release);
        self.failed.store(0, Ordering::Release);
        if let Ok(mut first) = self.first_error.lock() {
            *first = None;
        }
    }

    pub fn enqueued(&self) {
        self.enqueued.fetch_add(1, Ordering::AcqRel);
    }

    /// Messages of this batch not acknowledged (failed, or given up on when the batch failed).
    pub fn unacknowledged(&self) -> u64 {
        self.enqueued.load(Ordering::Acquire).saturating_sub(self.delivered.load(Ordering::Acquire))
    }

    pub fn first_error(&self) -> Option<String> {
        self.first_error.lock().ok().and_then(|e| e.clone())
    }
}

/// librdkafka's own log lines, at their level, through tracing.
fn forward_log(level: RDKafkaLogLevel, fac: &str, log_message: &str) {
    match level {
        RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
            tracing::error!(target: "librdkafka", facility = fac, "{log_message}")
        }
        RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", facility = fac, "{log_message}"),
        _ => tracing::debug!(target: "librdkafka", facility = fac, "{log_message}"),
    }
}

impl ClientContext for Deliveries {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        forward_log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::warn!(target: "librdkafka", %error, "{reason}");
    }
}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.delivered.fetch_add(1, Ordering::AcqRel);
            }
            Err((error, _)) => {
                self.failed.fetch_add(1, Ordering::AcqRel);
                if let Ok(mut first) = self.first_error.lock() {
                    first.get_or_insert_with(|| error.to_string());
                }
            }
        }
    }
}

pub type Producer = BaseProducer<Deliveries>;

/// The settings every client of this sink shares: brokers and the passed-through properties.
fn base(config: &KafkaSinkConfig) -> ClientConfig {
    let mut client = ClientConfig::new();
    client.set("bootstrap.servers", &config.brokers);
    for (key, value) in &config.properties {
        client.set(key, value);
    }
    client
}

/// A producer: idempotent always (its own retries add no duplicates), transactional with the
/// id given.
pub fn producer(config: &KafkaSinkConfig, transactional_id: Option<&str>) -> Result<Producer, KafkaError> {
    let mut client = base(config);
    let timeout_ms = config.delivery_timeout().as_millis().to_string();
    client
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.codec", config.compression.as_str())
        .set("message.timeout.ms", &timeout_ms)
        .set("queue.buffering.max.kbytes", (config.max_in_flight.0 / 1024).clamp(1, 2_097_151).to_string())
        .set("linger.ms", "5");
    if let Some(id) = transactional_id {
        client.set("transactional.id", id).set("transaction.timeout.ms", &timeout_ms);
    }
    client.create_with_context(Deliveries::default())
}

/// The readers' context. A partition's end is how [`read_to_end`] stops, not an error; but
/// librdkafka also reports partition ends as global errors, which rdkafka's default context
/// logged at ERROR on every start.
pub struct ReaderContext;

impl ClientContext for ReaderContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        forward_log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF) {
            tracing::debug!(target: "librdkafka", %error, "{reason}");
        } else {
            tracing::warn!(target: "librdkafka", %error, "{reason}");
        }
    }
}

impl ConsumerContext for ReaderContext {}

pub type Reader = BaseConsumer<ReaderContext>;

/// A reader of committed records only, positioned by `assign`.
pub fn reader(config: &KafkaSinkConfig) -> Result<Reader, KafkaError> {
    let mut client = base(config);
    client
        .set("group.id", "ingestd-reader")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed");
    client.create_with_context(ReaderContext)
}

/// Reads `topic` from each `(partition, start)` (`None`: the beginning) to its end (for a
/// `read_committed` reader, the last stable offset), handing every message to `each`.
pub fn read_to_end(
    consumer: &Reader,
    topic: &str,
    starts: &[(i32, Option<i64>)],
    mut each: impl FnMut(&BorrowedMessage<'_>),
) -> Result<(), KafkaError> {
    let mut assignment = TopicPartitionList::new();
    let mut open = 0;
    for &(partition, start) in starts {
        let (low, high) = consumer.fetch_watermarks(topic, partition, REQUEST_TIMEOUT)?;
        if high > start.unwrap_or(low) {
            assignment.add_partition_offset(topic, partition, start.map_or(Offset::Beginning, Offset::Offset))?;
            open += 1;
        }
    }
    if open == 0 {
        return Ok(());
    }
    consumer.assign(&assignment)?;
    let started = Instant::now();
    while open > 0 {
        if started.elapsed() > REQUEST_TIMEOUT * 4 {
            return Err(KafkaError::Global(RDKafkaErrorCode::OperationTimedOut));
        }
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(_))) => open -= 1,
            Some(Err(e)) => return Err(e),
            Some(Ok(message)) => each(&message),
        }
    }
    Ok(())
}

/// The partition count of `topic`, creating it (with `config` settings) when missing.
pub fn ensure_topic(config: &KafkaSinkConfig, producer: &Producer, topic: &str, partitions: i32, compacted: bool) -> Result<i32, String> {
    if let Some(count) = partition_count(producer, topic)? {
        return Ok(count);
    }
    let admin: AdminClient<DefaultClientContext> = base(config).create().map_err(|e| e.to_string())?;
    let mut new = NewTopic::new(topic, partitions, TopicReplication::Fixed(config.replication));
    if compacted {
        new = new.set("cleanup.policy", "compact");
    }
    let options = AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT));
    let created = futures::executor::block_on(admin.create_topics([&new], &options)).map_err(|e| e.to_string())?;
    for result in created {
        if let Err((name, code)) = result
            && code != rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists
        {
            return Err(format!("cannot create topic {name}: {code}"));
        }
    }
    partition_count(producer, topic)?.ok_or_else(|| format!("topic {topic} was created but its metadata does not show it"))
}

fn partition_count(producer: &Producer, topic: &str) -> Result<Option<i32>, String> {
    use rdkafka::producer::Producer as _;
    let metadata = producer.client().fetch_metadata(Some(topic), REQUEST_TIMEOUT).map_err(|e| format!("metadata of {topic}: {e}"))?;
    let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else { return Ok(None) };
    match found.error() {
        None if !found.partitions().is_empty() => Ok(Some(found.partitions().len() as i32)),
        _ => Ok(None),
    }
}

/// The mode `auto` resolves to: transactional when the first reachable broker advertises
/// EndTxn in its ApiVersions reply.
pub fn resolve_mode(config: &KafkaSinkConfig) -> Result<KafkaExactlyOnce, String> {
    if config.exactly_once != KafkaExactlyOnce::Auto {
        return Ok(config.exactly_once);
    }
    let mut last_error = String::from("no brokers");
    for broker in config.brokers.split(',').map(str::trim).filter(|b| !b.is_empty()) {
        match advertised_api_keys(broker) {
            Ok(keys) if keys.contains(&END_TXN) => return Ok(KafkaExactlyOnce::Transactional),
            Ok(_) => return Ok(KafkaExactlyOnce::Reconciling),
            Err(e) => last_error = format!("{broker}: {e}"),
        }
    }
    Err(format!("cannot ask the brokers which APIs they support: {last_error}"))
}

const API_VERSIONS: i16 = 18;
const END_TXN: i16 = 26;

/// The API keys a broker advertises (an ApiVersions v0 request over plaintext).
fn advertised_api_keys(broker: &str) -> std::io::Result<Vec<i16>> {
    let address = broker.to_socket_addrs()?.next().ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address"))?;
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(10))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let client_id = b"ingestd";
    let mut request = Vec::new();
    request.extend_from_slice(&API_VERSIONS.to_be_bytes());
    request.extend_from_slice(&0i16.to_be_bytes());
    request.extend_from_slice(&1i32.to_be_bytes());
    request.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
    request.extend_from_slice(client_id);
    stream.write_all(&(request.len() as i32).to_be_bytes())?;
    stream.write_all(&request)?;
    let mut size = [0u8; 4];
    stream.read_exact(&mut size)?;
    let size = i32::from_be_bytes(size);
    if !(10..=1 << 20).contains(&size) {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("ApiVersions reply of {size} bytes")));
    }
    let mut reply = vec![0u8; size as usize];
    stream.read_exact(&mut reply)?;
    parse_api_versions(&reply).ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "malformed ApiVersions reply"))
}

/// correlation id (4) | error code (2) | count (4) | count x (key 2, min 2, max 2)
fn parse_api_versions(reply: &[u8]) -> Option<Vec<i16>> {
    let error = i16::from_be_bytes(reply.get(4..6)?.try_into().ok()?);
    if error != 0 {
        return None;
    }
    let count = i32::from_be_bytes(reply.get(6..10)?.try_into().ok()?);
    (0..count.max(0) as usize).map(|i| reply.get(10 + i * 6..12 + i * 6).and_then(|b| b.try_into().ok()).map(i16::from_be_bytes)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_versions_reply_lists_its_keys() {
        let mut reply = vec![0, 0, 0, 1, 0, 0, 0, 0, 0, 2];
        reply.extend_from_slice(&[0, 0, 0, 0, 0, 9, 0, 26, 0, 0, 0, 3]);
        assert_eq!(parse_api_versions(&reply), Some(vec![0, 26]));
        reply[5] = 35; // an error code
        assert_eq!(parse_api_versions(&reply), None);
        assert_eq!(parse_api_versions(&reply[..12]), None);
    }
}

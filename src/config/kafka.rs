//! Configuration of a Kafka sink: one JSON message per row, exactly once.

use super::defaults;
use super::units::{ByteSize, HumanDuration};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize, Serializer};
use std::time::Duration;

/// A Kafka topic that receives every committed row as one JSON message.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSinkConfig {
    /// Bootstrap brokers, `host:port[,host:port...]`.
    pub brokers: String,
    /// The topic the rows go to; created (with `partitions`) if it does not exist.
    pub topic: String,
    /// Columns whose values make the message key (one column: its value as text; several: a
    /// JSON array of them). Keyed rows go to the partition Kafka's Java client would pick
    /// (murmur2); without a key, rows are spread over the partitions by row number.
    #[serde(default)]
    pub key: Vec<String>,
    /// How exactly-once is kept: `auto` asks the broker (transactional if it supports
    /// transactions, reconciling otherwise), or force `transactional` / `reconciling`.
    #[serde(default = "defaults::kafka_exactly_once")]
    pub exactly_once: KafkaExactlyOnce,
    /// Compression of the message batches: `none`, `gzip`, `snappy`, `lz4` or `zstd`.
    #[serde(default = "defaults::kafka_compression")]
    pub compression: KafkaCompression,
    /// The compacted topic recording which batches are on `topic` (created if missing; one
    /// topic can serve every sink and instance).
    #[serde(default = "defaults::kafka_bookkeeping_topic")]
    pub bookkeeping_topic: String,
    /// Partitions of the topics ingestd creates.
    #[serde(default = "defaults::kafka_partitions")]
    pub partitions: i32,
    /// Replication factor of the topics ingestd creates.
    #[serde(default = "defaults::kafka_replication")]
    pub replication: i32,
    /// At most this many bytes of messages wait for the broker; producing pauses beyond.
    #[serde(default = "defaults::kafka_max_in_flight")]
    pub max_in_flight: ByteSize,
    /// How long a message may take to be acknowledged, retries included, before the batch
    /// fails (and is retried as a whole, exactly once).
    #[serde(default = "defaults::kafka_delivery_timeout")]
    pub delivery_timeout: HumanDuration,
    /// The transactional id (transactional mode). Default `ingestd-INSTANCE-SOURCE-SINK`; a
    /// second producer with the same id fences the first.
    #[serde(default)]
    pub transactional_id: Option<String>,
    /// librdkafka properties passed through as they are (`security.protocol`, `ssl.*`,
    /// `sasl.*`, ...). Values of keys naming a password, secret or key are never shown.
    #[serde(default, serialize_with = "redacted")]
    pub properties: IndexMap<String, String>,
    /// The Druid Kafka supervisor fed by this topic (`[sinks.NAME.druid]`): its spec is printed
    /// by `ingestd druid supervisor-spec NAME`, and posted to the Overlord when `submit = true`.
    #[serde(default)]
    pub druid: Option<super::DruidSupervisorConfig>,
}

/// How exactly-once delivery to Kafka is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KafkaExactlyOnce {
    /// Transactional if the broker advertises transactions (EndTxn), reconciling otherwise.
    Auto,
    /// A batch's rows and its bookkeeping record commit in one Kafka transaction.
    Transactional,
    /// An idempotent producer; after a crash the partitions' tails show which rows landed.
    Reconciling,
}

/// Compression codec of produced message batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KafkaCompression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl KafkaCompression {
    /// The value of librdkafka's `compression.codec`.
    pub fn as_str(self) -> &'static str {
        match self {
            KafkaCompression::None => "none",
            KafkaCompression::Gzip => "gzip",
            KafkaCompression::Snappy => "snappy",
            KafkaCompression::Lz4 => "lz4",
            KafkaCompression::Zstd => "zstd",
        }
    }
}

/// Properties ingestd sets itself; setting them in `properties` would break exactly-once.
const OWNED_PROPERTIES: &[&str] = &[
    "bootstrap.servers",
    "enable.idempotence",
    "transactional.id",
    "acks",
    "isolation.level",
    "compression.codec",
    "compression.type",
    "partitioner",
];

impl KafkaSinkConfig {
    pub fn delivery_timeout(&self) -> Duration {
        self.delivery_timeout.0
    }

    /// Every problem, each starting with `key` (`sinks.NAME`).
    pub fn problems(&self, key: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if self.brokers.trim().is_empty() {
            problems.push(format!("{key}.brokers: name at least one broker (host:port)"));
        }
        for (field, topic) in [("topic", &self.topic), ("bookkeeping_topic", &self.bookkeeping_topic)] {
            if !valid_topic(topic) {
                problems.push(format!("{key}.{field}: {topic:?} is not a Kafka topic name (1-249 of letters, digits, '.', '_', '-')"));
            }
        }
        if self.topic == self.bookkeeping_topic {
            problems.push(format!("{key}.bookkeeping_topic: must differ from topic"));
        }
        if self.partitions < 1 {
            problems.push(format!("{key}.partitions: must be at least 1"));
        }
        if self.replication < 1 {
            problems.push(format!("{key}.replication: must be at least 1"));
        }
        if self.max_in_flight.0 < 1 << 20 {
            problems.push(format!("{key}.max_in_flight: at least 1MiB"));
        }
        if self.delivery_timeout.0 < Duration::from_secs(1) {
            problems.push(format!("{key}.delivery_timeout: at least 1s"));
        }
        for owned in OWNED_PROPERTIES {
            if self.properties.contains_key(*owned) {
                problems.push(format!("{key}.properties.\"{owned}\": set by ingestd (use the sink's own keys)"));
            }
        }
        if self.exactly_once == KafkaExactlyOnce::Auto && !self.plaintext() {
            problems.push(format!(
                "{key}.exactly_once: \"auto\" asks plaintext brokers only; with security.protocol set, choose \"transactional\" or \"reconciling\""
            ));
        }
        problems
    }

    /// Whether the brokers are reached without TLS or SASL.
    pub fn plaintext(&self) -> bool {
        self.properties.get("security.protocol").is_none_or(|p| p.eq_ignore_ascii_case("plaintext"))
    }
}

fn valid_topic(name: &str) -> bool {
    (1..=249).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

/// Whether a librdkafka property holds a secret (`sasl.password`, `ssl.key.password`, ...).
pub fn is_secret(property: &str) -> bool {
    ["password", "secret", "ssl.key.pem", "private", "token"].iter().any(|s| property.contains(s))
}

fn redacted<S: Serializer>(properties: &IndexMap<String, String>, ser: S) -> Result<S::Ok, S::Error> {
    let shown: IndexMap<&str, &str> =
        properties.iter().map(|(k, v)| (k.as_str(), if is_secret(k) { "<redacted>" } else { v.as_str() })).collect();
    shown.serialize(ser)
}

//! Kafka for the tests: the tansu broker (installed by `scripts/test.sh`), and the topic read
//! back by kafka-python, an independent client (not librdkafka).

use super::Fingerprint;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A tansu broker on loopback, in memory; stopped when dropped.
pub struct Tansu {
    child: Child,
    pub brokers: String,
}

impl Tansu {
    pub fn start(log: &std::path::Path) -> Tansu {
        let bin = std::env::var("INGESTD_TANSU")
            .map(PathBuf::from)
            .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/ingestd/tansu-0.6.0/bin/tansu"));
        assert!(bin.exists(), "no tansu broker at {}: run scripts/test.sh, which installs it", bin.display());
        let port = super::free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = super::dies_with_test(&mut Command::new(&bin))
            .args([
                "broker",
                "--storage-engine",
                "memory://tansu/",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
                "--cluster-id",
                "test",
            ])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).expect("tansu log"))
            .spawn()
            .expect("start tansu");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "tansu did not listen on {port}; see {}", log.display());
            std::thread::sleep(Duration::from_millis(100));
        }
        Tansu { child, brokers: format!("127.0.0.1:{port}") }
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One message as kafka-python read it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct KafkaRow {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub value: serde_json::Value,
    pub headers: HashMap<String, String>,
}

/// Every message of `topic` (read_committed), through `scripts/kafka_read.py`; none while the
/// topic does not exist.
pub fn read_topic(brokers: &str, topic: &str) -> Vec<KafkaRow> {
    let venv = std::env::var("INGESTD_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/ingestd/venv"));
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/kafka_read.py");
    let out = Command::new(venv.join("bin/python")).arg(&script).args([brokers, topic]).output().expect("run kafka_read.py");
    if out.status.code() == Some(3) {
        return Vec::new();
    }
    assert!(out.status.success(), "kafka_read.py failed: {}", String::from_utf8_lossy(&out.stderr));
    eprintln!("kafka_read.py {topic}: {}", String::from_utf8_lossy(&out.stderr).trim());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("bad line {line:?}: {e}")))
        .collect()
}

/// Fingerprints of the ATTOM rows carried by messages (see [`super::fingerprints_of_table`]).
pub fn fingerprints_of_messages(rows: &[KafkaRow]) -> HashMap<Fingerprint, usize> {
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
    let mut out = HashMap::new();
    for row in rows {
        let v = &row.value;
        let date = v["transaction_date"]
            .as_str()
            .map(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap_or_else(|e| panic!("date {d}: {e}")))
            .map(|d| (d - epoch).num_days() as i32);
        let key = (v["id"].as_i64().expect("id"), v["sale_price"].as_i64(), v["zipcode"].as_str().map(String::from), date);
        *out.entry(key).or_default() += 1;
    }
    out
}

/// Every message of `topic` read with librdkafka (`read_committed`), for the mock cluster, which
/// kafka-python cannot bootstrap from.
pub fn read_topic_rdkafka(brokers: &str, topic: &str) -> Vec<KafkaRow> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{Headers, Message};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "test-reader")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .create()
        .expect("consumer");
    let timeout = Duration::from_secs(30);
    let Ok(metadata) = consumer.fetch_metadata(Some(topic), timeout) else { return Vec::new() };
    let partitions = metadata.topics().iter().find(|t| t.name() == topic).map_or(0, |t| t.partitions().len() as i32);
    let mut assignment = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        assignment.add_partition_offset(topic, p, rdkafka::Offset::Beginning).expect("assign");
    }
    consumer.assign(&assignment).expect("assign");
    let (mut open, mut rows) = (partitions, Vec::new());
    let deadline = Instant::now() + Duration::from_secs(120);
    while open > 0 {
        assert!(Instant::now() < deadline, "topic {topic} not read to its end in 120 s");
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => open -= 1,
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            Some(Ok(m)) => rows.push(KafkaRow {
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                value: serde_json::from_slice(m.payload().unwrap_or_default()).expect("JSON value"),
                headers: m
                    .headers()
                    .map(|h| {
                        h.iter().map(|h| (h.key.to_string(), String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned())).collect()
                    })
                    .unwrap_or_default(),
            }),
        }
    }
    rows
}

//! The Kafka sink beside the Delta sink, against real Kafka-protocol brokers: tansu (installed
//! by `scripts/test.sh`; no transactions, so the reconciling mode) and librdkafka's mock cluster
//! (transactions, so the transactional mode). The topic is read back by kafka-python with
//! `read_committed` and must hold every row of the lake exactly once, with the same values.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests and benches fail loudly on purpose.
#![cfg(feature = "fault-injection")]

mod common;
use common::kafka::*;
use common::torture::*;
use common::*;
use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use std::collections::{HashMap, HashSet};
use std::time::Duration;

const TOPIC: &str = "sales";

/// Every message of `topic`: kafka-python for tansu; librdkafka for the mock cluster, which
/// kafka-python cannot bootstrap from (so there the reader is not independent of the writer).
fn read_topic_from(brokers: &str, topic: &str) -> Vec<KafkaRow> {
    if MOCK_BROKERS.lock().unwrap().contains(brokers) { read_topic_rdkafka(brokers, topic) } else { read_topic(brokers, topic) }
}

/// Bootstrap addresses of the mock clusters started by these tests.
static MOCK_BROKERS: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());

fn mock_cluster() -> (MockCluster<'static, rdkafka::producer::DefaultProducerContext>, String) {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic(TOPIC, 3, 1).unwrap();
    cluster.create_topic("ingestd-batches", 1, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    MOCK_BROKERS.lock().unwrap().push_str(&format!("{brokers};"));
    (cluster, brokers)
}

/// The torture config with a Kafka sink `events` after the lake.
fn config_with_kafka(brokers: &str, mode: &str) -> String {
    torture_config().replace("sinks = [\"lake\"]", "sinks = [\"lake\", \"events\"]")
        + &format!(
            "\n[sinks.events]\nkind = \"kafka\"\nbrokers = \"{brokers}\"\ntopic = \"{TOPIC}\"\nkey = [\"id\"]\nexactly_once = \"{mode}\"\ndelivery_timeout = \"20s\"\n"
        )
}

/// The lake's rows as JSON objects (the values Kafka messages must carry), as a multiset.
fn lake_rows(ws: &Workspace) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for batch in read_delta(&ws.path("lake/attom")) {
        let mut json = Vec::new();
        let mut writer =
            arrow::json::WriterBuilder::new().with_explicit_nulls(true).build::<_, arrow::json::writer::LineDelimited>(&mut json);
        writer.write(&batch).unwrap();
        writer.finish().unwrap();
        drop(writer);
        for line in String::from_utf8(json).unwrap().lines() {
            *out.entry(canonical(&serde_json::from_str(line).unwrap())).or_default() += 1;
        }
    }
    out
}

fn canonical(value: &serde_json::Value) -> String {
    let sorted: std::collections::BTreeMap<_, _> = value.as_object().expect("object").iter().collect();
    serde_json::to_string(&sorted).unwrap()
}

/// Every message carries the row of the lake, its key and headers naming its origin; each
/// (batch, row) appears once; the rows match the input files and the lake exactly.
fn check_topic_matches_lake(t: &Torture, brokers: &str, hashes: &HashMap<String, String>) {
    check_messages_match_lake(t, brokers, read_topic_from(brokers, TOPIC), hashes);
}

/// The mock cluster implements the transaction protocol (ids, epochs, EndTxn) but not isolation:
/// its EndTxn writes no markers and its Fetch lists no aborted transactions, so a
/// `read_committed` reader sees aborted rows too. There, what an aborted transaction left is set
/// aside first: the messages of batches the ledger abandoned (they must all be abandoned, not
/// unknown), and repeats of a (batch, row) whose batch was redone under the same number after
/// the lake had committed it (each repeat must carry the very same row).
fn check_committed_batches_match_lake(t: &Torture, brokers: &str, hashes: &HashMap<String, String>) {
    let ledger = rusqlite::Connection::open(t.ws.path("state/ledger.sqlite")).unwrap();
    let mut states = HashMap::new();
    let mut query = ledger.prepare("SELECT seq, state FROM batches WHERE source = 'attom'").unwrap();
    for row in query.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))).unwrap() {
        let (seq, state) = row.unwrap();
        states.insert(seq.to_string(), state);
    }
    let (committed, aborted): (Vec<KafkaRow>, Vec<KafkaRow>) = read_topic_from(brokers, TOPIC)
        .into_iter()
        .partition(|m| states.get(&m.headers["ingestd.batch"]).map(String::as_str) == Some("committed"));
    for m in &aborted {
        assert_eq!(states.get(&m.headers["ingestd.batch"]).map(String::as_str), Some("abandoned"), "{:?}", m.headers);
    }
    let mut once: HashMap<(String, String), KafkaRow> = HashMap::new();
    let mut repeats = 0;
    for m in committed {
        let id = (m.headers["ingestd.batch"].clone(), m.headers["ingestd.row"].clone());
        match once.get(&id) {
            Some(first) => {
                assert_eq!((&first.value, &first.key), (&m.value, &m.key), "a repeat of {id:?} carries another row");
                repeats += 1;
            }
            None => {
                once.insert(id, m);
            }
        }
    }
    println!("set aside: {} messages of abandoned batches, {repeats} repeats of redone rows", aborted.len());
    check_messages_match_lake(t, brokers, once.into_values().collect(), hashes);
}

fn check_messages_match_lake(t: &Torture, brokers: &str, messages: Vec<KafkaRow>, hashes: &HashMap<String, String>) {
    let spooled: Vec<_> = walk_files(&t.ws.path("state/spool")).into_iter().filter(|p| p.to_string_lossy().ends_with(".arrows")).collect();
    assert!(spooled.is_empty(), "spool files left behind: {spooled:?}");
    let (lost, duplicated, unexpected) = compare_rows(&t.expected, &fingerprints_of_messages(&messages));
    println!("{} messages: {lost} lost, {duplicated} duplicated, {unexpected} unexpected", messages.len());
    if (lost, duplicated, unexpected) != (0, 0, 0) {
        explain_difference(t, brokers, &messages);
    }
    assert_eq!((lost, duplicated, unexpected), (0, 0, 0), "topic against the input files");
    let mut on_topic = HashMap::new();
    for m in &messages {
        *on_topic.entry(canonical(&m.value)).or_insert(0usize) += 1;
    }
    let in_lake = lake_rows(&t.ws);
    let only_topic: Vec<_> = on_topic.iter().filter(|(k, n)| in_lake.get(*k) != Some(n)).take(3).collect();
    let only_lake: Vec<_> = in_lake.iter().filter(|(k, n)| on_topic.get(*k) != Some(n)).take(3).collect();
    assert!(only_topic.is_empty() && only_lake.is_empty(), "the topic's rows differ from the lake's:\n{only_topic:?}\n{only_lake:?}");
    let mut seen = HashSet::new();
    for m in &messages {
        assert_eq!(m.key.as_deref(), Some(m.value["id"].to_string().as_str()), "key is the id column");
        let h = &m.headers;
        assert_eq!((h["ingestd.instance"].as_str(), h["ingestd.source"].as_str()), ("test", "attom"));
        assert_eq!(h["ingestd.file"], m.value["_source_file"].as_str().unwrap(), "file header names the row's file");
        assert_eq!(Some(&h["ingestd.file_hash"]), hashes.get(&h["ingestd.file"]), "content hash of {}", h["ingestd.file"]);
        assert!(seen.insert((h["ingestd.batch"].clone(), h["ingestd.row"].clone())), "(batch, row) twice: {h:?}");
    }
}

/// Which files' rows the topic lacks or repeats, by batch; which offsets librdkafka reads that
/// the checked read lacks (a reader's fault) or the reverse; the end of the daemon's log: what a
/// failure report needs to tell a reader's, a broker's and the sink's faults apart.
fn explain_difference(t: &Torture, brokers: &str, messages: &[KafkaRow]) {
    let checked: std::collections::BTreeSet<(i32, i64)> = messages.iter().map(|m| (m.partition, m.offset)).collect();
    let again: std::collections::BTreeSet<(i32, i64)> =
        read_topic_rdkafka(brokers, TOPIC).iter().map(|m| (m.partition, m.offset)).collect();
    println!(
        "librdkafka reads {} messages; offsets only it returned: {:?}; only the checked read: {:?}",
        again.len(),
        offset_runs(again.difference(&checked)),
        offset_runs(checked.difference(&again))
    );
    let mut on_topic: HashMap<String, (usize, std::collections::BTreeSet<String>)> = HashMap::new();
    for m in messages {
        let entry = on_topic.entry(m.headers["ingestd.file"].clone()).or_default();
        entry.0 += 1;
        entry.1.insert(format!("{}@p{}", m.headers["ingestd.batch"], m.partition));
    }
    let mut in_lake: HashMap<String, usize> = HashMap::new();
    for batch in read_delta(&t.ws.path("lake/attom")) {
        let files = batch.column_by_name("_source_file").unwrap().as_any().downcast_ref::<arrow::array::StringArray>().unwrap().clone();
        for file in files.iter().flatten() {
            *in_lake.entry(file.to_string()).or_default() += 1;
        }
    }
    for (file, rows) in &in_lake {
        let (messages, batches) = on_topic.get(file).cloned().unwrap_or_default();
        if messages != *rows {
            println!("{file}: {rows} rows in the lake, {messages} messages (batch@partition: {batches:?})");
        }
    }
    let log = std::fs::read_to_string(t.ws.path("torture.log")).unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(60).collect();
    println!("end of the daemon's log:\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
}

/// `(partition, offset)` pairs, in order, as runs `p<partition>:<first>..=<last>`.
fn offset_runs<'a>(offsets: impl Iterator<Item = &'a (i32, i64)>) -> Vec<String> {
    let mut runs: Vec<(i32, i64, i64)> = Vec::new();
    for &(partition, offset) in offsets {
        match runs.last_mut() {
            Some((p, _, last)) if *p == partition && *last + 1 == offset => *last = offset,
            _ => runs.push((partition, offset, offset)),
        }
    }
    runs.into_iter().map(|(p, first, last)| format!("p{p}:{first}..={last}")).collect()
}

/// BLAKE3 of each staged file, by name, before the files move.
fn hashes_of(t: &Torture) -> HashMap<String, String> {
    t.staged
        .iter()
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), blake3::hash(&std::fs::read(p).unwrap()).to_hex().to_string()))
        .collect()
}

/// Kills at `points` (between the two sinks, inside the Kafka commit), then SIGKILL at random
/// instants while files keep arriving.
fn kill_again_and_again(t: &mut Torture, points: &[&str], kills: usize) {
    for point in points {
        t.arrive(2);
        t.run_once(Ending::Fault(format!("{point}:1")));
    }
    let mut rng = Rng::seeded(0x5851_f42d_4c95_7f2d);
    while t.kills < kills {
        t.arrive(1);
        t.run_once(Ending::KillAfter(Duration::from_millis(300 + rng.next_u64() % 1500)));
    }
    let rest = t.staged.len();
    t.arrive(rest);
}

#[test]
fn reconciling_mode_on_tansu_every_row_once_through_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Tansu::start(&dir.path().join("tansu.log"));
    let mut t = Torture::with_config(&config_with_kafka(&broker.brokers, "auto"), 40, 40_000);
    let hashes = hashes_of(&t);
    // `auto` must find that tansu cannot commit transactions.
    t.arrive(1);
    t.ws.once();
    let status = String::from_utf8_lossy(&t.ws.ingestd(&["status"]).stdout).to_string();
    assert!(status.contains("Reconciling"), "{status}");
    let points = ["after_sink_commit", "kafka_after_begun", "kafka_mid_rows", "kafka_before_committed_record"];
    kill_again_and_again(&mut t, &points, kills_wanted().min(30));
    t.verify(&|ws| read_delta(&ws.path("lake/attom")));
    check_topic_matches_lake(&t, &broker.brokers, &hashes);
}

#[test]
fn transactional_mode_on_the_mock_cluster_every_row_once_through_kill_9() {
    let (_cluster, brokers) = mock_cluster();
    let mut t = Torture::with_config(&config_with_kafka(&brokers, "auto"), 30, 30_000);
    let hashes = hashes_of(&t);
    t.arrive(1);
    t.ws.once();
    let status = String::from_utf8_lossy(&t.ws.ingestd(&["status"]).stdout).to_string();
    assert!(status.contains("Transactional"), "{status}");
    let points = ["after_sink_commit", "kafka_mid_rows", "kafka_before_committed_record"];
    kill_again_and_again(&mut t, &points, kills_wanted().min(24));
    t.verify(&|ws| read_delta(&ws.path("lake/attom")));
    check_committed_batches_match_lake(&t, &brokers, &hashes);
}

#[test]
fn a_lost_ledger_completes_the_batch_kafka_missed() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Tansu::start(&dir.path().join("tansu.log"));
    let mut t = Torture::with_config(&config_with_kafka(&broker.brokers, "reconciling"), 6, 6_000);
    let hashes = hashes_of(&t);
    t.arrive(2);
    // The lake commits the batch, then the process dies before Kafka has it; then the state
    // folder (ledger) is lost. The lake's log and Kafka's bookkeeping must rebuild it.
    t.run_once(Ending::Fault("after_sink_commit:1".into()));
    std::fs::remove_dir_all(t.ws.path("state")).unwrap();
    let rest = t.staged.len();
    t.arrive(rest);
    t.verify(&|ws| read_delta(&ws.path("lake/attom")));
    check_topic_matches_lake(&t, &broker.brokers, &hashes);
    let log = std::fs::read_to_string(t.ws.path("torture.log")).unwrap();
    let once_log = String::from_utf8_lossy(&t.ws.ingestd(&["status"]).stderr).to_string();
    assert!(log.contains("fault injection: abort at after_sink_commit"), "{log}{once_log}");
    // Reading the bookkeeping and partitions to their ends is routine, not an error.
    let eof_errors: Vec<_> = log.lines().filter(|l| l.contains("ERROR") && l.contains("PartitionEOF")).collect();
    assert!(eof_errors.is_empty(), "partition ends logged as errors: {eof_errors:?}");
}

/// A producer the broker declares fenced (another one took its transactional id) publishes
/// nothing more: it does not re-initialise and fence the other one back. The mock cluster hands
/// a second producer with the same id a new producer id instead of fencing the first, so the
/// broker's fencing answer is injected here; that a real broker fences is not tested here.
#[test]
fn a_fenced_producer_stops_publishing() {
    let (cluster, brokers) = mock_cluster();
    let config = config_with_kafka(&brokers, "transactional");
    let a = Workspace::with_config(&config);
    let staging = a.path("staging");
    ingestd::sample::write_attom_files(&staging, &ingestd::sample::AttomSpec { files: 2, rows: 200, seed: 7 }).unwrap();
    let mut files: Vec<_> = std::fs::read_dir(&staging).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let ids_of = |path: &std::path::Path| -> HashSet<i64> { fingerprints_of_files(&[path.to_path_buf()]).keys().map(|k| k.0).collect() };
    let first = ids_of(&files[0]);

    std::fs::rename(&files[0], a.path("drop").join("first")).unwrap();
    let zombie = spawn_run(&a, &[], "a.log");
    assert_eq!(wait_until(Duration::from_secs(60), first.len(), || read_topic_from(&brokers, TOPIC).len()), first.len(), "publishes");
    cluster.request_errors(RDKafkaApiKey::EndTxn, &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_PRODUCER_FENCED]);
    std::fs::rename(&files[1], a.path("drop").join("second")).unwrap();
    let log = a.path("a.log");
    let fenced = |text: &str| text.matches("fenced by another producer").count();
    wait_until(Duration::from_secs(60), 1, || fenced(&std::fs::read_to_string(&log).unwrap_or_default()));
    // Retries after the fence (backoff 1 s, 2 s, ...) must fail at once, without a new producer.
    std::thread::sleep(Duration::from_secs(4));
    terminate(zombie);
    let log = std::fs::read_to_string(&log).unwrap();
    assert_eq!(fenced(&log), 1, "fenced once, then no new producer:\n{log}");
    assert!(log.contains("this instance no longer publishes"), "retries refused:\n{log}");
    let status = String::from_utf8_lossy(&a.ingestd(&["status"]).stdout).to_string();
    assert!(status.contains("in_flight"), "the batch stays in flight for the sink:\n{status}");
    let on_topic: HashSet<i64> = read_topic_from(&brokers, TOPIC).iter().map(|m| m.value["id"].as_i64().unwrap()).collect();
    assert!(first.is_subset(&on_topic), "rows before the fence are on the topic");
}

#[test]
fn delivery_failures_are_retried_counted_and_then_recovered() {
    let (cluster, brokers) = mock_cluster();
    let port = free_port();
    let config = config_with_kafka(&brokers, "reconciling")
        .replace("delivery_timeout = \"20s\"", "delivery_timeout = \"2s\"")
        .replace("listen = \"\"", &format!("listen = \"127.0.0.1:{port}\""))
        // Kafka first: a failed batch no sink holds is abandoned and retried after a recovery
        // that reads the broker fine, which must not make the sink ready again.
        .replace("sinks = [\"lake\", \"events\"]", "sinks = [\"events\", \"lake\"]");
    let mut t = Torture::with_config(&config, 3, 600);
    let hashes = hashes_of(&t);
    t.arrive(1);
    let daemon = spawn_run(&t.ws, &[], "run.log");
    assert_eq!(wait_until(Duration::from_secs(60), 200, || read_topic_from(&brokers, TOPIC).len()), 200);
    // Every produce request fails (retriably) for longer than `delivery_timeout`.
    cluster.request_errors(RDKafkaApiKey::Produce, &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; 500]);
    t.arrive(1);
    let failed = || {
        let metrics = http_get(port, "/metrics");
        metrics.lines().filter(|l| l.starts_with("ingestd_kafka_messages_total") && l.contains("outcome=\"failed\"")).count()
    };
    assert!(wait_until(Duration::from_secs(60), 1, failed) >= 1, "no failed delivery counted");
    // The metric is counted just before the failure reaches the status board.
    let not_ready = || usize::from(http(port, "/readyz").0 == 503);
    assert_eq!(wait_until(Duration::from_secs(10), 1, not_ready), 1, "/readyz after the failure: {:?}", http(port, "/readyz"));
    // Through a retry (backoff 1 s, recovery, then 2 s of failing delivery) the sink stays not
    // ready, naming the sink: only a commit makes it ready again.
    for _ in 0..60 {
        let (code, status) = http(port, "/readyz");
        assert_eq!(
            code,
            503,
            "ready while every delivery fails: {status}\n{}",
            std::fs::read_to_string(t.ws.path("run.log")).unwrap_or_default()
        );
        assert!(status.contains("events"), "{status}");
        std::thread::sleep(Duration::from_millis(100));
    }
    cluster.clear_request_errors(RDKafkaApiKey::Produce);
    let rest = t.staged.len();
    t.arrive(rest);
    assert_eq!(
        wait_until(Duration::from_secs(120), 600, || read_topic_from(&brokers, TOPIC).len()),
        600,
        "retried after the broker came back"
    );
    let ready = || usize::from(http(port, "/readyz").0 == 200);
    assert_eq!(wait_until(Duration::from_secs(30), 1, ready), 1, "ready once a commit succeeds: {:?}", http(port, "/readyz"));
    terminate(daemon);
    let log = std::fs::read_to_string(t.ws.path("run.log")).unwrap();
    assert!(log.contains("delivery failed") || log.contains("timed out"), "the failure is in the log:\n{log}");
    t.verify(&|ws| read_delta(&ws.path("lake/attom")));
    check_topic_matches_lake(&t, &brokers, &hashes);
}

/// Schema evolution reaches Kafka: messages of the batch that added a column carry it.
#[test]
fn messages_carry_the_columns_schema_evolution_adds() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Tansu::start(&dir.path().join("tansu.log"));
    let topic = "evolving";
    let ws = Workspace::with_config(&format!(
        "instance = \"test\"\n[http]\nlisten = \"\"\n[sources.s]\npath = \"drop\"\nmin_age = \"0s\"\nsinks = [\"lake\", \"events\"]\n\
         [sinks.lake]\nkind = \"delta\"\nuri = \"lake\"\n\
         [sinks.events]\nkind = \"kafka\"\nbrokers = \"{}\"\ntopic = \"{topic}\"\nexactly_once = \"reconciling\"\ndelivery_timeout = \"20s\"\n",
        broker.brokers
    ));
    ws.drop_file("g1.json", br#"[{"a":1}]"#);
    assert_eq!(ws.once()["totals"]["rows"], 1);
    ws.drop_file("g2.json", br#"[{"a":2,"b":"x","c":{"d":1.5}}]"#);
    assert_eq!(ws.once()["totals"]["rows"], 1);
    let messages = read_topic(&broker.brokers, topic);
    assert_eq!(messages.len(), 2);
    let second = messages.iter().find(|m| m.value["a"] == 2).expect("the second row");
    assert_eq!((second.value["b"].as_str(), second.value["c_d"].as_f64()), (Some("x"), Some(1.5)), "{:?}", second.value);
    let first = messages.iter().find(|m| m.value["a"] == 1).expect("the first row");
    assert!(first.value.get("b").is_none(), "published before the column existed: {:?}", first.value);
}

/// Schema evolution reaches a Kafka sink's Druid supervisor: a batch that adds a column submits
/// the spec again, with the column among its dimensions (against the mock Overlord).
#[test]
fn the_druid_supervisor_is_submitted_again_when_columns_are_added() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Tansu::start(&dir.path().join("tansu.log"));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mock = runtime.block_on(common::druid_mock::DruidMock::start());
    let ws = Workspace::with_config(&format!(
        "instance = \"test\"\n[http]\nlisten = \"\"\n[sources.s]\npath = \"drop\"\nmin_age = \"0s\"\nsinks = [\"lake\", \"events\"]\n\
         [sinks.lake]\nkind = \"delta\"\nuri = \"lake\"\n\
         [sinks.events]\nkind = \"kafka\"\nbrokers = \"{}\"\ntopic = \"supervised\"\nexactly_once = \"reconciling\"\ndelivery_timeout = \"20s\"\n\
         [sinks.events.druid]\noverlord = \"{}\"\ndatasource = \"events\"\ntimestamp_column = \"at\"\nsubmit = true\nretry_backoff = \"10ms\"\n",
        broker.brokers,
        mock.url()
    ));
    let daemon = spawn_run(&ws, &[], "run.log");
    let log = || std::fs::read_to_string(ws.path("run.log")).unwrap_or_default();
    let dimensions = || -> Vec<String> {
        let specs = mock.supervisors();
        let Some(last) = specs.last() else { return Vec::new() };
        let dims = last["spec"]["dataSchema"]["dimensionsSpec"]["dimensions"].as_array().cloned().unwrap_or_default();
        dims.iter().filter_map(|d| d["name"].as_str().map(String::from)).collect()
    };
    ws.drop_file("g1.json", br#"[{"at":"2026-01-01T00:00:00Z","a":1}]"#);
    assert_eq!(wait_until(Duration::from_secs(60), 1, || usize::from(dimensions().contains(&"a".to_string()))), 1, "{}", log());
    ws.drop_file("g2.json", br#"[{"at":"2026-01-02T00:00:00Z","a":2,"b":"x"}]"#);
    let with_b = wait_until(Duration::from_secs(60), 1, || usize::from(dimensions().contains(&"b".to_string())));
    terminate(daemon);
    assert_eq!(with_b, 1, "{:?}\n{}", dimensions(), log());
}

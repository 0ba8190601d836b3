//! Druid wired into the daemon, against the mock Overlord (`tests/common/druid_mock.rs`): the
//! `kind = "druid"` sink loading each Delta commit's files, a FAILED task retried, a crash
//! between the task and the ledger, `ingestd check` and `ingestd druid supervisor-spec`, and
//! the Kafka sink's supervisor submitted in the background.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests and benches fail loudly on purpose.

mod common;

use common::druid_mock::DruidMock;
use common::*;
use ingestd::sample::{AttomSpec, write_attom_files};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(60);

/// A mock Overlord served by its own runtime (the runtime must outlive the mock).
fn mock() -> (tokio::runtime::Runtime, DruidMock) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let mock = runtime.block_on(DruidMock::start());
    (runtime, mock)
}

/// The ATTOM source writing to `sinks`, one file per batch, with a druid sink `druid` on the
/// lake `lake` posting to `overlord`.
fn druid_config(overlord: &str, sinks: &str, druid_extra: &str) -> String {
    let base = attom_config("min_age = \"0s\"\nbatch = { max_files = 1 }").replace("sinks = [\"lake\"]", &format!("sinks = {sinks}"));
    format!(
        "{base}\n[sinks.druid]\nkind = \"druid\"\nlake = \"lake\"\noverlord = \"{overlord}\"\ndatasource = \"sales\"\n\
         timestamp_column = \"transaction_date\"\nretries = 2\nretry_backoff = \"10ms\"\npoll_interval = \"10ms\"\n{druid_extra}"
    )
}

fn drop_files(ws: &Workspace, files: usize) {
    write_attom_files(&ws.path("drop"), &AttomSpec { files, rows: files * 40, seed: 9 }).expect("sample files");
}

/// Per batch seq, the absolute paths of the data files its Delta commit added, read from the
/// log's JSON (not through ingestd).
fn delta_adds(table: &Path) -> BTreeMap<i64, BTreeSet<String>> {
    let root = url::Url::from_directory_path(table.canonicalize().expect("table")).expect("url");
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(table.join("_delta_log")).expect("log") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let (mut seq, mut files) = (None, BTreeSet::new());
        for line in std::fs::read_to_string(&path).expect("commit").lines() {
            let action: Value = serde_json::from_str(line).expect("action");
            seq = seq.or(action["commitInfo"]["ingestd"]["seq"].as_i64());
            if let Some(add) = action["add"]["path"].as_str() {
                // The log holds URI-encoded paths; joining onto the root's URL decodes them.
                files.insert(root.join(add).expect("path").to_file_path().expect("file").to_string_lossy().into_owned());
            }
        }
        if let Some(seq) = seq {
            out.insert(seq, files);
        }
    }
    out
}

/// The files a native task's local input source lists.
fn task_files(task: &Value) -> BTreeSet<String> {
    let files = task["spec"]["ioConfig"]["inputSource"]["files"].as_array().expect("inputSource.files");
    files.iter().map(|f| f.as_str().expect("path").to_string()).collect()
}

/// Statuses answered to task submissions (`POST /druid/indexer/v1/task`), in order.
fn submissions(mock: &DruidMock) -> Vec<u16> {
    let state = mock.state.lock().expect("mock state");
    state.requests.iter().filter(|r| r.0 == "POST" && r.1 == "/druid/indexer/v1/task").map(|r| r.2).collect()
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value of a metric series (`name{labels}`) in `/metrics`, 0 when absent.
fn metric(port: u16, series: &str) -> usize {
    let body = http_get(port, "/metrics");
    body.lines().find_map(|line| line.strip_prefix(series)?.trim().parse::<f64>().ok()).map_or(0, |v| v as usize)
}

fn druid_tasks(port: u16, outcome: &str) -> usize {
    metric(port, &format!("ingestd_druid_tasks_total{{outcome=\"{outcome}\",sink=\"druid\",source=\"attom\"}}"))
}

#[test]
fn each_batch_loads_exactly_the_files_of_its_delta_commit() {
    let (_runtime, mock) = mock();
    // Partition values with spaces ("Single Family Residence"): the folders are escaped on disk
    // and encoded again in the log.
    let config = druid_config(&mock.url(), "[\"lake\", \"druid\"]", "")
        .replace("[sinks.lake]", "class = { path = \"summary.propclass\", type = \"string\" }\n[sinks.lake]")
        .replace("uri = \"lake/attom\"", "uri = \"lake/attom\"\npartition_by = [\"class\"]");
    let ws = Workspace::with_config(&config);
    drop_files(&ws, 3);
    ws.once();

    let adds = delta_adds(&ws.path("lake/attom"));
    assert_eq!(adds.keys().copied().collect::<Vec<_>>(), [1, 2, 3], "one Delta commit per file");
    let ids: Vec<String> = (1..=3).map(|seq| format!("ingestd_test_attom_sales_{seq}")).collect();
    assert_eq!(mock.task_ids(), ids, "one task per batch, named after its seq");
    for (seq, id) in (1..=3).zip(&ids) {
        let task = mock.task(id).expect("task").body;
        assert_eq!(task["spec"]["ioConfig"]["inputSource"]["type"], "local");
        assert_eq!(task["spec"]["ioConfig"]["appendToExisting"], true);
        assert_eq!(task_files(&task), adds[&seq], "batch {seq} loads exactly its commit's files");
        assert!(adds[&seq].iter().all(|f| Path::new(f).is_file()), "{:?}", adds[&seq]);
        let dims = task["spec"]["dataSchema"]["dimensionsSpec"]["dimensions"].as_array().expect("dimensions").clone();
        assert!(dims.iter().all(|d| d["name"] != "class"), "a partition column is not in the files: {dims:?}");
        assert!(dims.iter().any(|d| d["name"] == "zipcode"), "{dims:?}");
    }
    assert!(adds.values().flatten().any(|f| f.contains("class=Single%20Family%20Residence/")), "{adds:?}");
    assert_eq!(submissions(&mock), [200, 200, 200]);
    let status = stdout(&ws.ingestd(&["status"]));
    assert!(status.contains("attom -> druid: batch 3, druid task ingestd_test_attom_sales_3 SUCCESS (1 attempt)"), "{status}");
}

#[test]
fn a_failed_task_is_retried_under_the_next_id_and_counted() {
    let (_runtime, mock) = mock();
    mock.fail_next_tasks(1, "Not enough task slots");
    let port = free_port();
    let config = druid_config(&mock.url(), "[\"lake\", \"druid\"]", "").replace("listen = \"\"", &format!("listen = \"127.0.0.1:{port}\""));
    let ws = Workspace::with_config(&config);
    drop_files(&ws, 1);
    let daemon = spawn_run(&ws, &[], "run.log");
    let log = || std::fs::read_to_string(ws.path("run.log")).unwrap_or_default();
    assert_eq!(wait_until(PATIENCE, 1, || druid_tasks(port, "success")), 1, "no task succeeded; log:\n{}", log());
    assert_eq!(druid_tasks(port, "failed_attempt"), 1);
    assert_eq!(druid_tasks(port, "gave_up"), 0);
    terminate(daemon);

    assert_eq!(mock.task_ids(), ["ingestd_test_attom_sales_1", "ingestd_test_attom_sales_1_retry2"]);
    assert_eq!(mock.task("ingestd_test_attom_sales_1").expect("attempt 1").fails_with.as_deref(), Some("Not enough task slots"));
    let status = stdout(&ws.ingestd(&["status"]));
    assert!(status.contains("attom -> lake: batch 1"), "{status}");
    assert!(status.contains("attom -> druid: batch 1, druid task ingestd_test_attom_sales_1_retry2 SUCCESS (2 attempts)"), "{status}");
    assert!(status.lines().any(|l| l.starts_with("attom") && l.contains("committed") && l.ends_with(" 40")), "{status}");
}

#[test]
fn a_task_that_keeps_failing_shows_in_status_and_metrics() {
    let (_runtime, mock) = mock();
    mock.fail_next_tasks(2, "Segment allocation failed");
    let port = free_port();
    let config = druid_config(&mock.url(), "[\"lake\", \"druid\"]", "max_attempts = 2")
        .replace("listen = \"\"", &format!("listen = \"127.0.0.1:{port}\""));
    let ws = Workspace::with_config(&config);
    drop_files(&ws, 1);
    let daemon = spawn_run(&ws, &[], "run.log");
    let log = || std::fs::read_to_string(ws.path("run.log")).unwrap_or_default();
    assert!(wait_until(PATIENCE, 1, || druid_tasks(port, "gave_up")) >= 1, "never gave up; log:\n{}", log());
    assert_eq!(druid_tasks(port, "success"), 0);
    let status: Value = serde_json::from_str(&http_get(port, "/v1/status")).expect("status");
    let error = status["sources"]["attom"]["sinks"]["druid"]["last_error"].as_str().unwrap_or_default().to_string();
    assert!(error.contains("ingestd_test_attom_sales_1_retry2") && error.contains("Segment allocation failed"), "{status}");
    assert!(metric(port, "ingestd_errors_total{kind=\"sink\",source=\"attom\"}") >= 1);
    terminate(daemon);
    assert_eq!(mock.task_ids().len(), 2, "no attempt beyond max_attempts");
}

#[cfg(feature = "fault-injection")]
#[test]
fn a_crash_after_the_task_was_accepted_does_not_load_the_batch_twice() {
    let (_runtime, mock) = mock();
    let ws = Workspace::with_config(&druid_config(&mock.url(), "[\"lake\", \"druid\"]", ""));
    drop_files(&ws, 1);
    // The 2nd sink commit is the druid one: the task ran, the ledger does not know it.
    let crashed = std::process::Command::new(BIN)
        .arg("once")
        .current_dir(ws.dir.path())
        .env("INGESTD_LOG_FORMAT", "text")
        .env("INGESTD_FAULT", "after_sink_commit:2")
        .output()
        .expect("run ingestd");
    assert!(!crashed.status.success());
    assert!(String::from_utf8_lossy(&crashed.stderr).contains("fault injection: abort at after_sink_commit"));
    assert_eq!(submissions(&mock), [200]);
    let status = stdout(&ws.ingestd(&["status"]));
    assert!(!status.contains("-> druid"), "the ledger must not know the druid commit yet: {status}");

    ws.once();
    assert_eq!(submissions(&mock), [200, 400], "the resubmission is refused as a duplicate");
    assert_eq!(mock.task_ids(), ["ingestd_test_attom_sales_1"], "exactly one task accepted for the batch");
    assert!(mock.task("ingestd_test_attom_sales_1").expect("task").polls >= 3, "the original task is polled again");
    let status = stdout(&ws.ingestd(&["status"]));
    assert!(
        status.contains("attom -> druid: batch 1, druid task ingestd_test_attom_sales_1 SUCCESS (1 attempt, submitted before)"),
        "{status}"
    );
    assert!(!status.contains("in_flight"), "{status}");
}

#[test]
fn check_names_the_key_of_a_druid_sink_without_its_lake_first() {
    let overlord = "http://127.0.0.1:8081";
    let cases = [
        (
            druid_config(overlord, "[\"lake\", \"druid\"]", "").replace("lake = \"lake\"", "lake = \"missing\""),
            "sinks.druid.lake: no sink named \"missing\"",
        ),
        (
            druid_config(overlord, "[\"druid\", \"lake\"]", ""),
            "sources.attom.sinks[0]: druid sink \"druid\" loads the commits of \"lake\", which this source lists after it",
        ),
        (
            druid_config(overlord, "[\"druid\"]", ""),
            "sources.attom.sinks[0]: druid sink \"druid\" loads the commits of \"lake\", which this source does not list",
        ),
        (
            druid_config(overlord, "[\"lake\", \"druid\"]", "dimensions = [\"zip\"]"),
            "sinks.druid.dimensions: \"zip\" is not a column of source \"attom\"",
        ),
        (
            druid_config(overlord, "[\"lake\", \"druid\"]", "dimensions = [\"type\"]")
                .replace("uri = \"lake/attom\"", "uri = \"lake/attom\"\npartition_by = [\"type\"]"),
            "sinks.druid.dimensions: \"type\" is a partition column of \"lake\"",
        ),
    ];
    for (config, want) in cases {
        let ws = Workspace::with_config(&config);
        let out = ws.ingestd(&["check"]);
        assert_eq!(out.status.code(), Some(1), "{config}");
        assert!(stdout(&out).contains(want), "want {want:?} in:\n{}", stdout(&out));
    }
    let ok = Workspace::with_config(&druid_config(overlord, "[\"lake\", \"druid\"]", "dimensions = [\"zipcode\", \"_source_file\"]"));
    let out = ok.ingestd(&["check"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

/// The ATTOM source writing to `lake` and the Kafka sink `events`, whose `[sinks.events.druid]`
/// table is `druid`.
fn kafka_config(druid: &str) -> String {
    attom_config("").replace("sinks = [\"lake\"]", "sinks = [\"lake\", \"events\"]")
        + "[sinks.events]\nkind = \"kafka\"\nbrokers = \"broker1:9092,broker2:9092\"\ntopic = \"sales\"\nproperties = { \"client.id\" = \"ingestd-test\" }\n"
        + &format!(
            "[sinks.events.druid]\noverlord = \"http://127.0.0.1:8081\"\ndatasource = \"sales\"\ntimestamp_column = \"transaction_date\"\n{druid}"
        )
}

#[test]
fn supervisor_spec_prints_the_kafka_sinks_spec() {
    let druid = "dimensions = [\"zipcode\", \"type\", \"sale_price\", \"lot_size\", \"year_built\", \"_ingested_at\"]\n\
                 metrics = { rows = { kind = \"count\" } }\ntask_count = 2\nsegment_granularity = \"MONTH\"\n";
    let ws = Workspace::with_config(&kafka_config(druid));
    assert_eq!(ws.ingestd(&["check"]).status.code(), Some(0), "{}", stdout(&ws.ingestd(&["check"])));
    let out = ws.ingestd(&["druid", "supervisor-spec", "events"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let spec: Value = serde_json::from_str(&stdout(&out)).expect("JSON spec");
    let schema = &spec["spec"]["dataSchema"];
    assert_eq!(spec["type"], "kafka");
    assert_eq!(schema["dataSource"], "sales");
    assert_eq!(schema["timestampSpec"], serde_json::json!({"column": "transaction_date", "format": "auto"}));
    assert_eq!(schema["granularitySpec"]["segmentGranularity"], "MONTH");
    let dims: Vec<(String, String)> = schema["dimensionsSpec"]["dimensions"]
        .as_array()
        .expect("dimensions")
        .iter()
        .map(|d| (d["name"].as_str().unwrap_or("?").to_string(), d["type"].as_str().unwrap_or("?").to_string()))
        .collect();
    let want = [
        ("zipcode", "string"),
        ("type", "string"),
        ("sale_price", "long"),
        ("lot_size", "double"),
        ("year_built", "long"),
        ("_ingested_at", "long"),
    ];
    assert_eq!(dims, want.map(|(n, t)| (n.to_string(), t.to_string())));
    assert_eq!(schema["metricsSpec"], serde_json::json!([{"type": "count", "name": "rows"}]));
    assert_eq!(schema["transformSpec"]["transforms"][0]["name"], "_ingested_at", "RFC 3339 text parsed to millis");
    let io = &spec["spec"]["ioConfig"];
    assert_eq!(io["topic"], "sales");
    assert_eq!(io["taskCount"], 2);
    assert_eq!(io["consumerProperties"]["bootstrap.servers"], "broker1:9092,broker2:9092");
    assert_eq!(io["consumerProperties"]["client.id"], "ingestd-test");
    assert_eq!(io["consumerProperties"]["isolation.level"], "read_committed");

    for (sink, want) in [("lake", "not a Kafka sink"), ("nope", "no sink named \"nope\"")] {
        let out = ws.ingestd(&["druid", "supervisor-spec", sink]);
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains(want), "{}", String::from_utf8_lossy(&out.stderr));
    }
    // Columns inferred from the first file: none yet before a first run.
    let inferred = Workspace::with_config(&kafka_config("").replace(ATTOM_COLUMNS, ""));
    let out = inferred.ingestd(&["druid", "supervisor-spec", "events"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("run `ingestd once` on a file first"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_supervisor_is_submitted_in_the_background_until_the_overlord_takes_it() {
    use arrow::datatypes::{DataType, Field, Schema};
    use ingestd::config::KafkaSinkConfig;
    use ingestd::status::STATUS;
    let (runtime, mock) = mock();
    let _inside = runtime.enter();
    let kafka = |druid: &str| -> KafkaSinkConfig {
        let text = format!(
            "brokers = \"b:9092\"\ntopic = \"sales\"\n[druid]\noverlord = \"{}\"\ndatasource = \"sales\"\ntimestamp_column = \"day\"\nsubmit = true\nretries = 0\nretry_backoff = \"10ms\"\n{druid}",
            mock.url()
        );
        toml::from_str(&text).expect("kafka config")
    };
    let schema = |columns: &[&str]| {
        let mut fields = vec![Field::new("day", DataType::Date32, true)];
        fields.extend(columns.iter().map(|c| Field::new(*c, DataType::Utf8, true)));
        std::sync::Arc::new(Schema::new(fields))
    };
    let last_error = || STATUS.snapshot().sources.get("src").and_then(|s| s.sinks.get("events")?.last_error.clone());
    let submit = ingestd::sinks::submit_supervisor_in_background;

    let err = submit("src", "events", &kafka("dimensions = [\"nope\"]"), &schema(&["zip"])).expect_err("bad spec");
    assert!(err.to_string().contains("druid supervisor") && err.to_string().contains("nope"), "{err}");

    mock.set_unavailable(u32::MAX);
    submit("src", "events", &kafka(""), &schema(&["zip"])).expect("submitted");
    assert_eq!(wait_until(PATIENCE, 1, || usize::from(last_error().is_some())), 1, "no error shown while the Overlord is down");
    assert!(last_error().unwrap_or_default().contains("not the leader"), "{:?}", last_error());
    // A schema change while it retries: only the newer spec is posted. Two more requests mean
    // the newer task sent one, which it does only once the older one has ended.
    let before = mock.requests_to("/druid/indexer/v1/supervisor");
    submit("src", "events", &kafka(""), &schema(&["zip", "city"])).expect("submitted");
    wait_until(PATIENCE, before + 2, || mock.requests_to("/druid/indexer/v1/supervisor"));
    mock.set_unavailable(0);
    assert_eq!(wait_until(PATIENCE, 1, || mock.supervisors().len()), 1);
    let dims = &mock.supervisors()[0]["spec"]["dataSchema"]["dimensionsSpec"]["dimensions"];
    assert_eq!(dims.as_array().map(Vec::len), Some(2), "{dims}");
    assert_eq!(wait_until(PATIENCE, 1, || usize::from(last_error().is_none())), 1, "error not cleared: {:?}", last_error());
}

/// Schema evolution reaches Druid: the task of the batch that added a column lists it.
#[test]
fn a_batch_task_lists_the_columns_schema_evolution_added() {
    let (_runtime, mock) = mock();
    let config = format!(
        "instance = \"test\"\n[http]\nlisten = \"\"\n[sources.s]\npath = \"drop\"\nmin_age = \"0s\"\nsinks = [\"lake\", \"druid\"]\n\
         [sinks.lake]\nkind = \"delta\"\nuri = \"lake\"\n\
         [sinks.druid]\nkind = \"druid\"\nlake = \"lake\"\noverlord = \"{}\"\ndatasource = \"events\"\ntimestamp_column = \"at\"\n\
         retries = 2\nretry_backoff = \"10ms\"\npoll_interval = \"10ms\"\n",
        mock.url()
    );
    let ws = Workspace::with_config(&config);
    ws.drop_file("e1.json", br#"[{"at":"2026-01-01T00:00:00Z","a":1}]"#);
    assert_eq!(ws.once()["totals"]["rows"], 1);
    ws.drop_file("e2.json", br#"[{"at":"2026-01-02T00:00:00Z","a":2,"b":"x"}]"#);
    assert_eq!(ws.once()["totals"]["rows"], 1);
    let dimensions = |seq: i64| -> Vec<String> {
        let task = mock.task(&format!("ingestd_test_s_events_{seq}")).expect("task").body;
        let dims = task["spec"]["dataSchema"]["dimensionsSpec"]["dimensions"].as_array().expect("dimensions").clone();
        dims.iter().map(|d| d["name"].as_str().unwrap_or_default().to_string()).collect()
    };
    assert!(!dimensions(1).contains(&"b".to_string()), "{:?}", dimensions(1));
    assert!(dimensions(2).contains(&"b".to_string()), "{:?}", dimensions(2));
}

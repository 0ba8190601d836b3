//! Druid support, verified against a mock Overlord that enforces Druid's documented API
//! (`tests/common/druid_mock.rs`), not against a live Druid: spec shapes, duplicate task ids
//! after a crash, FAILED tasks retried under the next attempt id, an Overlord that is down,
//! clear 4xx errors, and secrets kept out of `Debug` output and serialisation.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests and benches fail loudly on purpose.

mod common;

use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use common::druid_mock::DruidMock;
use indexmap::IndexMap;
use ingestd::config::{DruidBatchConfig, DruidSupervisorConfig};
use ingestd::druid::{self, LakeCommit, Overlord, OverlordError, SpecError, Submitted, Task, TaskPolicy};
use serde_json::json;
use std::time::Duration;

fn schema() -> Schema {
    Schema::new(vec![
        Field::new("sold_at", DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
        Field::new("zipcode", DataType::Utf8, true),
        Field::new("sale_price", DataType::Int64, true),
        Field::new("lot_size", DataType::Float64, true),
        Field::new("year_built", DataType::Int32, true),
        Field::new("is_new", DataType::Boolean, true),
        Field::new("listed_on", DataType::Date32, true),
    ])
}

/// Quick retries for the tests, unless `extra` sets them.
fn fast(extra: &str) -> String {
    let defaults = ["retries = 3", "retry_backoff = \"10ms\"", "timeout = \"5s\"", "poll_interval = \"10ms\""];
    let kept = defaults.iter().filter(|d| !extra.lines().any(|l| l.split('=').next() == d.split('=').next()));
    kept.map(|d| format!("{d}\n")).collect::<String>() + extra
}

fn batch_config(url: &str, extra: &str) -> DruidBatchConfig {
    let text = format!("overlord = \"{url}\"\ndatasource = \"sales\"\ntimestamp_column = \"sold_at\"\nlake = \"lake\"\n{}", fast(extra));
    toml::from_str(&text).expect("batch config")
}

fn supervisor_config(url: &str, extra: &str) -> DruidSupervisorConfig {
    let extra = fast(extra).replace("poll_interval = \"10ms\"\n", "");
    let text = format!("overlord = \"{url}\"\ndatasource = \"sales\"\ntimestamp_column = \"sold_at\"\nsubmit = true\n{extra}");
    toml::from_str(&text).expect("supervisor config")
}

fn commit() -> LakeCommit {
    LakeCommit {
        root: "/srv/lake/sales".to_string(),
        version: Some(3),
        files: vec!["part-00000-a.zstd.parquet".to_string(), "part-00001-b.zstd.parquet".to_string()],
    }
}

/// The task maker ingestd's batch sink would pass: batch `seq` of instance `test`, source `attom`.
fn tasks(config: &DruidBatchConfig, seq: i64) -> impl Fn(u32) -> Result<Task, SpecError> + '_ {
    move |attempt| druid::batch_task(&schema(), config, &druid::task_id("test", "attom", "sales", seq, attempt), &commit())
}

#[tokio::test]
async fn supervisor_spec_is_accepted_with_typed_dimensions_and_kafka_settings() {
    let mock = DruidMock::start().await;
    let config = supervisor_config(
        &mock.url(),
        "segment_granularity = \"HOUR\"\n[metrics]\ntotal = { kind = \"longSum\", column = \"sale_price\" }",
    );
    let mut props = IndexMap::new();
    props.insert("security.protocol".to_string(), "SASL_SSL".to_string());
    let spec = druid::supervisor_spec(&schema(), &config, "sales-rows", "k1:9092", &props).unwrap();
    let overlord = Overlord::new(&config.schema).unwrap();
    assert_eq!(overlord.submit_supervisor(&spec).await.unwrap(), "sales");
    let stored = &mock.supervisors()[0];
    assert_eq!(stored, &spec);
    let ds = &stored["spec"]["dataSchema"];
    assert_eq!(ds["timestampSpec"], json!({"column": "sold_at", "format": "auto"}));
    assert_eq!(ds["dimensionsSpec"]["dimensions"][0], json!({"type": "string", "name": "zipcode"}));
    assert_eq!(ds["dimensionsSpec"]["dimensions"][1], json!({"type": "double", "name": "lot_size"}));
    assert_eq!(ds["dimensionsSpec"]["dimensions"][2], json!({"type": "long", "name": "year_built"}));
    assert_eq!(ds["metricsSpec"], json!([{"type": "longSum", "name": "total", "fieldName": "sale_price"}]));
    assert_eq!(ds["granularitySpec"]["segmentGranularity"], "HOUR");
    let io = &stored["spec"]["ioConfig"];
    assert_eq!(io["topic"], "sales-rows");
    assert_eq!(io["consumerProperties"]["bootstrap.servers"], "k1:9092");
    assert_eq!(io["consumerProperties"]["isolation.level"], "read_committed");
    assert_eq!(io["consumerProperties"]["security.protocol"], "SASL_SSL");
    // A schema change re-posts the spec: Druid updates the supervisor in place.
    assert_eq!(overlord.submit_supervisor(&spec).await.unwrap(), "sales");
    assert_eq!(mock.supervisors().len(), 2);
}

#[tokio::test]
async fn a_4xx_is_a_clear_error_naming_the_url_and_is_not_retried() {
    let mock = DruidMock::start().await;
    let config = supervisor_config(&mock.url(), "");
    let overlord = Overlord::new(&config.schema).unwrap();
    let mut spec = druid::supervisor_spec(&schema(), &config, "t", "k:9092", &IndexMap::new()).unwrap();
    spec["spec"]["dataSchema"]["metricsSpec"] = json!([{"type": "sum", "name": "x", "fieldName": "sale_price"}]);
    let err = overlord.submit_supervisor(&spec).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, OverlordError::Rejected { status: 400, .. }), "{err:?}");
    assert!(text.contains(&format!("{}/druid/indexer/v1/supervisor", mock.url())), "{text}");
    assert!(text.contains("Could not resolve type id 'sum'"), "Druid's message: {text}");
    assert_eq!(mock.requests_to("/druid/indexer/v1/supervisor"), 1, "a 4xx is not retried");

    // An undocumented path is a 404, reported with its URL.
    let wrong = supervisor_config(&format!("{}/wrong", mock.url()), "");
    let err = Overlord::new(&wrong.schema).unwrap().submit_supervisor(&spec).await.unwrap_err();
    assert!(err.to_string().contains("/wrong/druid/indexer/v1/supervisor: refused with HTTP 404"), "{err}");
}

#[tokio::test]
async fn an_overlord_that_is_down_then_up_is_retried() {
    // Not leader yet: two 503s, then accepted.
    let mock = DruidMock::start().await;
    let config = supervisor_config(&mock.url(), "");
    let spec = druid::supervisor_spec(&schema(), &config, "t", "k:9092", &IndexMap::new()).unwrap();
    mock.set_unavailable(2);
    Overlord::new(&config.schema).unwrap().submit_supervisor(&spec).await.unwrap();
    assert_eq!(mock.statuses("/druid/indexer/v1/supervisor"), [503, 503, 200]);

    // Nothing listening yet: connection refused until the Overlord comes up.
    let port = common::free_port();
    let config = supervisor_config(&format!("http://127.0.0.1:{port}"), "retries = 8\nretry_backoff = \"50ms\"");
    let overlord = Overlord::new(&config.schema).unwrap();
    let submit = tokio::spawn(async move { overlord.submit_supervisor(&spec).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let late = DruidMock::start_on(&format!("127.0.0.1:{port}")).await;
    assert_eq!(submit.await.unwrap().unwrap(), "sales");
    assert_eq!(late.supervisors().len(), 1);

    // Down for good: the error says where and how often it tried.
    drop(late);
    let config = supervisor_config(&format!("http://127.0.0.1:{port}"), "retries = 2");
    let spec = druid::supervisor_spec(&schema(), &config, "t", "k:9092", &IndexMap::new()).unwrap();
    let err = Overlord::new(&config.schema).unwrap().submit_supervisor(&spec).await.unwrap_err();
    assert!(matches!(err, OverlordError::Unreachable { attempts: 3, .. }), "{err:?}");
    assert!(err.to_string().contains(&format!("POST http://127.0.0.1:{port}/druid/indexer/v1/supervisor")), "{err}");
}

#[tokio::test]
async fn a_native_task_loads_exactly_the_commit_files_and_is_polled_to_success() {
    let mock = DruidMock::start().await;
    let config = batch_config(&mock.url(), "");
    let overlord = Overlord::new(&config.schema).unwrap();
    let outcome = overlord.run_to_end(&TaskPolicy::of(&config), tasks(&config, 7)).await.unwrap();
    assert_eq!(outcome.task_id, "ingestd_test_attom_sales_7");
    assert_eq!((outcome.attempts, outcome.resumed, outcome.failures.len()), (1, false, 0));
    let task = mock.task(&outcome.task_id).unwrap();
    assert_eq!(task.polls, 2, "RUNNING once, then SUCCESS");
    let io = &task.body["spec"]["ioConfig"];
    assert_eq!(io["appendToExisting"], true);
    assert_eq!(
        io["inputSource"],
        json!({"type": "local", "files": ["/srv/lake/sales/part-00000-a.zstd.parquet", "/srv/lake/sales/part-00001-b.zstd.parquet"]})
    );
}

#[tokio::test]
async fn a_resubmission_after_a_crash_is_refused_and_the_original_task_polled() {
    let mock = DruidMock::start().await;
    let config = batch_config(&mock.url(), "");
    let overlord = Overlord::new(&config.schema).unwrap();
    // Before the crash: attempt 1 was submitted, its outcome never seen.
    let first = tasks(&config, 8)(1).unwrap();
    assert_eq!(overlord.submit_task(&first).await.unwrap(), Submitted::Accepted);
    // After the restart: the same id again.
    assert_eq!(overlord.submit_task(&first).await.unwrap(), Submitted::AlreadyExists);
    let outcome = overlord.run_to_end(&TaskPolicy::of(&config), tasks(&config, 8)).await.unwrap();
    assert_eq!((outcome.task_id.as_str(), outcome.attempts, outcome.resumed), (first.id.as_str(), 1, true));
    assert_eq!(mock.task_ids(), std::slice::from_ref(&first.id), "one task, so the rows are loaded once");
    assert_eq!(mock.statuses("/druid/indexer/v1/task"), [200, 400, 400, 200, 200]);
}

#[tokio::test]
async fn a_failed_task_is_retried_under_the_next_attempt_id() {
    let mock = DruidMock::start().await;
    let config = batch_config(&mock.url(), "");
    mock.fail_next_tasks(1, "java.io.IOException: disk full");
    let overlord = Overlord::new(&config.schema).unwrap();
    let outcome = overlord.run_to_end(&TaskPolicy::of(&config), tasks(&config, 9)).await.unwrap();
    assert_eq!((outcome.task_id.as_str(), outcome.attempts), ("ingestd_test_attom_sales_9_retry2", 2));
    assert_eq!(outcome.failures, [("ingestd_test_attom_sales_9".to_string(), "java.io.IOException: disk full".to_string())]);
    assert_eq!(mock.task_ids(), ["ingestd_test_attom_sales_9", "ingestd_test_attom_sales_9_retry2"]);
}

#[tokio::test]
async fn after_a_restart_the_attempt_chain_is_walked_again() {
    let mock = DruidMock::start().await;
    let config = batch_config(&mock.url(), "");
    mock.fail_next_tasks(1, "killed");
    let overlord = Overlord::new(&config.schema).unwrap();
    // Before the crash: attempt 1 submitted (it will fail); the daemon died before polling it.
    overlord.submit_task(&tasks(&config, 10)(1).unwrap()).await.unwrap();
    let outcome = overlord.run_to_end(&TaskPolicy::of(&config), tasks(&config, 10)).await.unwrap();
    assert_eq!((outcome.attempts, outcome.resumed), (2, true));
    assert_eq!(outcome.failures[0].1, "killed");
    assert_eq!(mock.task_ids().len(), 2);
}

#[tokio::test]
async fn giving_up_after_max_attempts_carries_the_last_failure() {
    let mock = DruidMock::start().await;
    let config = batch_config(&mock.url(), "max_attempts = 2");
    mock.fail_next_tasks(2, "Cannot read parquet footer");
    let overlord = Overlord::new(&config.schema).unwrap();
    let err = overlord.run_to_end(&TaskPolicy::of(&config), tasks(&config, 11)).await.unwrap_err();
    assert!(
        matches!(&err, OverlordError::TaskFailed { task_id, attempts: 2, message } if task_id.ends_with("_11_retry2") && message == "Cannot read parquet footer"),
        "{err:?}"
    );
    assert_eq!(err.kind(), "task_failed");
    assert_eq!(mock.task_ids().len(), 2);

    // A task that outlives task_timeout is reported, not waited for forever.
    mock.set_running_polls(u32::MAX);
    let config = batch_config(&mock.url(), "task_timeout = \"100ms\"");
    let err = overlord.run_to_end(&TaskPolicy::of(&config), tasks(&config, 12)).await.unwrap_err();
    assert!(matches!(err, OverlordError::TaskTimeout { .. }), "{err:?}");
}

#[tokio::test]
async fn sql_tasks_use_the_sql_endpoint_and_duplicates_are_refused() {
    let mock = DruidMock::start().await;
    let config = batch_config(&mock.url(), "method = \"sql\"\nrollup = true\n[metrics]\nn = { kind = \"count\" }");
    let overlord = Overlord::new(&config.schema).unwrap();
    let outcome = overlord.run_to_end(&TaskPolicy::of(&config), tasks(&config, 13)).await.unwrap();
    assert_eq!(outcome.task_id, "query-ingestd_test_attom_sales_13");
    let task = mock.task(&outcome.task_id).unwrap();
    assert_eq!(task.kind, "query_controller");
    assert_eq!(task.datasource, "sales");
    let query = task.body["query"].as_str().unwrap();
    assert!(query.contains("/srv/lake/sales/part-00001-b.zstd.parquet") && query.contains("COUNT(*) AS \"n\""), "{query}");
    assert_eq!(overlord.submit_task(&tasks(&config, 13)(1).unwrap()).await.unwrap(), Submitted::AlreadyExists);
    assert_eq!(mock.requests_to("/druid/v2/sql/task"), 2);
}

#[tokio::test]
async fn every_input_source_shape_is_accepted() {
    let mock = DruidMock::start().await;
    let overlord = Overlord::new(&batch_config(&mock.url(), "").schema).unwrap();
    let inputs = [
        "input = \"local\"\nbase_url = \"/mnt/lake\"",
        "input = \"http\"\nbase_url = \"https://files.example/lake\"",
        "input = \"s3\"\nbase_url = \"s3://bucket/lake\"",
        "input = \"delta\"",
    ];
    for (i, input) in inputs.iter().enumerate() {
        for method in ["native", "sql"] {
            let config = batch_config(&mock.url(), &format!("method = \"{method}\"\n{input}"));
            let task = tasks(&config, 100 + i as i64)(1).unwrap();
            assert_eq!(overlord.submit_task(&task).await.unwrap(), Submitted::Accepted, "{method} {input}");
        }
    }
    assert_eq!(mock.task_ids().len(), 8);
    // The mock does refuse a wrong shape (an http URI that is not encoded).
    let config = batch_config(&mock.url(), "input = \"http\"\nbase_url = \"https://x/lake\"");
    let mut task = tasks(&config, 200)(1).unwrap();
    task.body["spec"]["ioConfig"]["inputSource"]["uris"] = json!(["https://x/lake/a b.parquet"]);
    assert!(matches!(overlord.submit_task(&task).await, Err(OverlordError::Rejected { status: 400, .. })));
}

#[tokio::test]
async fn basic_auth_works_and_the_password_never_shows() {
    let mock = DruidMock::start().await;
    mock.require_auth("ingest", "s3cr3t-Pa55");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("druid.pw"), "s3cr3t-Pa55\n").unwrap();
    std::fs::write(dir.path().join("wrong.pw"), "guess").unwrap();
    let auth = |file: &str| format!("user = \"ingest\"\npassword_file = \"{}\"", dir.path().join(file).display());
    let config = supervisor_config(&mock.url(), &auth("druid.pw"));
    let spec = druid::supervisor_spec(&schema(), &config, "t", "k:9092", &IndexMap::new()).unwrap();
    let overlord = Overlord::new(&config.schema).unwrap();
    overlord.submit_supervisor(&spec).await.unwrap();

    let wrong = Overlord::new(&supervisor_config(&mock.url(), &auth("wrong.pw")).schema).unwrap();
    let err = wrong.submit_supervisor(&spec).await.unwrap_err();
    assert!(matches!(err, OverlordError::Rejected { status: 401, .. }), "{err:?}");
    assert_eq!(mock.statuses("/druid/indexer/v1/supervisor"), [200, 401]);

    let shown = [
        format!("{overlord:?}"),
        format!("{config:?}"),
        toml::to_string(&config).unwrap(),
        serde_json::to_string(&config).unwrap(),
        err.to_string(),
        format!("{err:?}"),
    ];
    for text in shown {
        assert!(!text.contains("s3cr3t"), "password leaked: {text}");
    }
    assert!(format!("{overlord:?}").contains("<redacted>"));
    let missing = supervisor_config(&mock.url(), &auth("none.pw"));
    assert!(matches!(Overlord::new(&missing.schema), Err(OverlordError::Password { .. })));
}

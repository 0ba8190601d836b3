use super::*;
use crate::config::{DruidBatchConfig, DruidSupervisorConfig};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use indexmap::IndexMap;
use serde_json::json;

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

fn supervisor(extra: &str) -> DruidSupervisorConfig {
    let text = format!("overlord = \"http://127.0.0.1:8081\"\ndatasource = \"sales\"\ntimestamp_column = \"sold_at\"\n{extra}");
    toml::from_str(&text).expect("supervisor config")
}

fn batch(extra: &str) -> DruidBatchConfig {
    let text =
        format!("overlord = \"http://127.0.0.1:8081\"\ndatasource = \"sales\"\ntimestamp_column = \"sold_at\"\nlake = \"lake\"\n{extra}");
    toml::from_str(&text).expect("batch config")
}

fn commit() -> LakeCommit {
    LakeCommit {
        root: "/srv/lake/sales".to_string(),
        version: Some(7),
        files: vec!["part-0001.parquet".to_string(), "day=2019-01-01/part 2.parquet".to_string()],
    }
}

#[test]
fn dimensions_are_typed_and_exclude_the_timestamp_and_metric_inputs() {
    let config = supervisor("[metrics]\ntotal = { kind = \"longSum\", column = \"sale_price\" }\nrows = { kind = \"count\" }");
    let spec = supervisor_spec(&schema(), &config, "sales", "k1:9092", &IndexMap::new()).unwrap();
    let ds = &spec["spec"]["dataSchema"];
    assert_eq!(
        ds["dimensionsSpec"]["dimensions"],
        json!([
            {"type": "string", "name": "zipcode"},
            {"type": "double", "name": "lot_size"},
            {"type": "long", "name": "year_built"},
            {"type": "string", "name": "is_new"},
            {"type": "long", "name": "listed_on"},
        ])
    );
    assert_eq!(
        ds["metricsSpec"],
        json!([{"type": "longSum", "name": "total", "fieldName": "sale_price"}, {"type": "count", "name": "rows"}])
    );
    assert_eq!(ds["timestampSpec"], json!({"column": "sold_at", "format": "auto"}));
    // The date dimension arrives as text in Kafka and is parsed to epoch milliseconds.
    assert_eq!(
        ds["transformSpec"]["transforms"],
        json!([{"type": "expression", "name": "listed_on", "expression": "timestamp_parse(\"listed_on\")"}])
    );
}

#[test]
fn supervisor_io_config_carries_topic_consumer_properties_and_task_settings() {
    let config = supervisor("task_count = 2\nreplicas = 2\ntask_duration = \"30m\"\nsegment_granularity = \"hour\"");
    let mut props = IndexMap::new();
    props.insert("security.protocol".to_string(), "SASL_SSL".to_string());
    props.insert("bootstrap.servers".to_string(), "ignored:1".to_string());
    let spec = supervisor_spec(&schema(), &config, "sales-topic", "k1:9092,k2:9092", &props).unwrap();
    assert_eq!(spec["type"], "kafka");
    let io = &spec["spec"]["ioConfig"];
    assert_eq!(io["topic"], "sales-topic");
    assert_eq!(io["inputFormat"], json!({"type": "json"}));
    assert_eq!(
        io["consumerProperties"],
        json!({"isolation.level": "read_committed", "security.protocol": "SASL_SSL", "bootstrap.servers": "k1:9092,k2:9092"})
    );
    assert_eq!((io["taskCount"].as_u64(), io["replicas"].as_u64()), (Some(2), Some(2)));
    assert_eq!(io["taskDuration"], "PT30M");
    assert_eq!(io["useEarliestOffset"], true);
    assert_eq!(spec["spec"]["tuningConfig"], json!({"type": "kafka"}));
    assert_eq!(
        spec["spec"]["dataSchema"]["granularitySpec"],
        json!({"type": "uniform", "segmentGranularity": "HOUR", "queryGranularity": "NONE", "rollup": false})
    );
}

#[test]
fn configured_columns_must_exist_and_timestamps_keep_auto() {
    let config = supervisor("dimensions = [\"zipcode\", \"nope\"]");
    let err = supervisor_spec(&schema(), &config, "t", "k:1", &IndexMap::new()).unwrap_err();
    assert!(matches!(&err, SpecError::UnknownColumn { column, .. } if column == "nope"), "{err}");
    assert!(err.to_string().contains("zipcode"), "lists the known columns: {err}");
    let config = supervisor("timestamp_format = \"iso\"");
    let err = supervisor_spec(&schema(), &config, "t", "k:1", &IndexMap::new()).unwrap_err();
    assert!(err.to_string().contains("takes \"auto\""), "{err}");
    let config = supervisor("[metrics]\nx = { kind = \"longSum\", column = \"zipcode\" }");
    assert!(supervisor_spec(&schema(), &config, "t", "k:1", &IndexMap::new()).is_err());
}

#[test]
fn native_task_appends_exactly_the_commit_files() {
    let config = batch("parallelism = 2");
    let body = native_task(&schema(), &config, "ingestd_a_b_sales_7", &commit()).unwrap();
    assert_eq!(body["type"], "index_parallel");
    assert_eq!(body["id"], "ingestd_a_b_sales_7");
    let io = &body["spec"]["ioConfig"];
    assert_eq!(io["appendToExisting"], true);
    assert_eq!(io["inputFormat"], json!({"type": "parquet"}));
    assert_eq!(
        io["inputSource"],
        json!({"type": "local", "files": ["/srv/lake/sales/part-0001.parquet", "/srv/lake/sales/day=2019-01-01/part 2.parquet"]})
    );
    assert_eq!(body["spec"]["tuningConfig"]["maxNumConcurrentSubTasks"], 2);
    // In Parquet, dates and timestamps are numbers: no transform.
    assert!(body["spec"]["dataSchema"].get("transformSpec").is_none());
}

#[test]
fn input_sources_for_http_s3_and_delta() {
    let http = batch("input = \"http\"\nbase_url = \"https://files.example/lake/\"");
    let source = spec::input_source(&http, &commit()).unwrap();
    assert_eq!(
        source["uris"],
        json!(["https://files.example/lake/part-0001.parquet", "https://files.example/lake/day=2019-01-01/part%202.parquet"])
    );
    let s3 = batch("input = \"s3\"\nbase_url = \"s3://bucket/sales\"");
    assert_eq!(spec::input_source(&s3, &commit()).unwrap()["uris"][0], "s3://bucket/sales/part-0001.parquet");
    let delta = batch("input = \"delta\"");
    let body = native_task(&schema(), &delta, "id", &commit()).unwrap();
    let io = &body["spec"]["ioConfig"];
    assert_eq!(io["inputSource"], json!({"type": "delta", "tablePath": "/srv/lake/sales", "snapshotVersion": 7}));
    assert_eq!(io["appendToExisting"], false, "a snapshot replaces, never appends");
    assert!(io.get("inputFormat").is_none());
    let parquet_lake = LakeCommit { version: None, ..commit() };
    assert!(native_task(&schema(), &delta, "id", &parquet_lake).is_err());
}

#[test]
fn sql_task_inserts_from_extern_with_the_task_id_as_query_id() {
    let config =
        batch("method = \"sql\"\nquery_granularity = \"MINUTE\"\n[metrics]\ntotal = { kind = \"longSum\", column = \"sale_price\" }");
    let task = batch_task(&schema(), &config, "ingestd_a_b_sales_7", &commit()).unwrap();
    assert_eq!(task.endpoint, TaskEndpoint::Sql);
    assert_eq!(task.id, "query-ingestd_a_b_sales_7");
    assert_eq!(task.body["context"]["sqlQueryId"], "ingestd_a_b_sales_7");
    assert_eq!(task.body["context"]["maxNumTasks"], 2);
    let query = task.body["query"].as_str().unwrap();
    assert!(
        query.starts_with("INSERT INTO \"sales\"\nSELECT\n  TIME_FLOOR(MILLIS_TO_TIMESTAMP(\"sold_at\"), 'PT1M') AS \"__time\""),
        "{query}"
    );
    assert!(query.contains("CAST(\"sale_price\" AS BIGINT) AS \"total\""), "{query}");
    assert!(query.contains("\"/srv/lake/sales/part-0001.parquet\"") && query.contains("\"type\":\"local\""), "{query}");
    assert!(query.contains("'[{\"name\":\"sold_at\",\"type\":\"long\"}"), "{query}");
    assert!(query.ends_with("\nPARTITIONED BY DAY"), "{query}");
    assert!(!query.contains("GROUP BY"));

    let rollup = batch("method = \"sql\"\nrollup = true\nsegment_granularity = \"FIFTEEN_MINUTE\"\n[metrics]\nn = { kind = \"count\" }");
    let body = sql_task(&schema(), &rollup, "q", &commit()).unwrap();
    let query = body["query"].as_str().unwrap();
    assert!(query.contains("COUNT(*) AS \"n\""), "{query}");
    assert!(query.contains("GROUP BY 1, 2, 3, 4, 5, 6, 7"), "{query}");
    assert!(query.ends_with("PARTITIONED BY TIME_FLOOR(\"__time\", 'PT15M')"), "{query}");
    assert_eq!(body["context"]["finalizeAggregations"], false);

    let delta = batch("method = \"sql\"\ninput = \"delta\"");
    let query = sql_task(&schema(), &delta, "q", &commit()).unwrap()["query"].as_str().unwrap().to_string();
    assert!(query.starts_with("REPLACE INTO \"sales\" OVERWRITE ALL"), "{query}");
}

#[test]
fn sql_literals_and_identifiers_are_escaped() {
    let config = batch("method = \"sql\"\ninput = \"local\"\nbase_url = \"/mnt/it's\"");
    let body = sql_task(&schema(), &config, "q", &commit()).unwrap();
    assert!(body["query"].as_str().unwrap().contains("/mnt/it''s/part-0001.parquet"));
}

#[test]
fn task_ids_are_deterministic_and_valid_for_druid() {
    assert_eq!(task_id("host-1", "attom", "sales", 42, 1), "ingestd_host-1_attom_sales_42");
    assert_eq!(task_id("host-1", "attom", "sales", 42, 3), "ingestd_host-1_attom_sales_42_retry3");
    assert_eq!(task_id("h", "s", "my sales/x", 1, 1), "ingestd_h_s_my_sales_x_1");
    let long = "d".repeat(300);
    let id = task_id("h", "s", &long, 9, 2);
    assert!(id.len() <= 160 && id.ends_with("_9_retry2"), "{id}");
    assert_eq!(id, task_id("h", "s", &long, 9, 2));
    assert_ne!(id, task_id("h", "s", &"e".repeat(300), 9, 2));
    assert!(id.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)) && !id.starts_with('.'));
}

#[test]
fn iso_periods() {
    use std::time::Duration;
    assert_eq!(iso_period(Duration::from_secs(3600)), "PT1H");
    assert_eq!(iso_period(Duration::from_secs(90)), "PT1M30S");
    assert_eq!(iso_period(Duration::from_millis(500)), "PT0.5S");
    assert_eq!(iso_period(Duration::from_secs(0)), "PT0S");
}

#[test]
fn config_defaults_and_unknown_keys() {
    let config = batch("");
    assert_eq!(config.schema.timestamp_format, "auto");
    assert_eq!(config.schema.segment_granularity, crate::config::Granularity::Day);
    assert_eq!(config.schema.query_granularity, crate::config::Granularity::None);
    assert_eq!((config.method, config.input), (crate::config::DruidBatchMethod::Native, crate::config::DruidBatchInput::Local));
    assert_eq!((config.max_attempts, config.schema.retries, config.parallelism), (3, 5, 1));
    assert!(config.problems("sinks.d").is_empty(), "{:?}", config.problems("sinks.d"));
    let sup = supervisor("");
    assert!(!sup.submit && sup.use_earliest_offset);
    assert_eq!((sup.task_count, sup.replicas), (1, 1));
    // Unknown keys are refused, also through the flattened schema keys; no inline password.
    for bad in ["pasword_file = \"x\"", "password = \"hunter2\"", "task_count = 1"] {
        let text = format!("overlord = \"http://o:8081\"\ndatasource = \"d\"\ntimestamp_column = \"t\"\nlake = \"l\"\n{bad}");
        let err = toml::from_str::<DruidBatchConfig>(&text).unwrap_err().to_string();
        assert!(err.contains("unknown field"), "{bad}: {err}");
    }
    let err =
        toml::from_str::<DruidSupervisorConfig>("overlord = \"http://o\"\ndatasource = \"d\"\ntimestamp_column = \"t\"\nlake = \"l\"")
            .unwrap_err()
            .to_string();
    assert!(err.contains("unknown field"), "{err}");
    assert!(
        toml::from_str::<DruidBatchConfig>(
            "overlord = \"o\"\ndatasource = \"d\"\ntimestamp_column = \"t\"\nlake = \"l\"\nsegment_granularity = \"FORTNIGHT\""
        )
        .is_err()
    );
}

#[test]
fn config_problems_name_their_full_key() {
    let text = "overlord = \"localhost:8081\"\ndatasource = \".hidden\"\ntimestamp_column = \"t\"\nlake = \"\"\n\
        dimensions = [\"t\", \"a\", \"a\"]\nsegment_granularity = \"NONE\"\nuser = \"admin\"\n\
        input = \"http\"\nmax_attempts = 0\n[metrics]\nn = { kind = \"count\", column = \"a\" }\ns = { kind = \"longSum\" }";
    let config: DruidBatchConfig = toml::from_str(text).unwrap();
    let problems = config.problems("sinks.sales_druid");
    for expected in [
        "sinks.sales_druid.overlord: ",
        "sinks.sales_druid.datasource: \".hidden\" must not start with '.'",
        "sinks.sales_druid.lake: ",
        "sinks.sales_druid.dimensions: \"t\" is the timestamp column",
        "sinks.sales_druid.dimensions: \"a\" is listed twice",
        "sinks.sales_druid.metrics.n: count takes no column",
        "sinks.sales_druid.metrics.s: LongSum needs a column",
        "sinks.sales_druid.segment_granularity: ",
        "sinks.sales_druid.user: ",
        "sinks.sales_druid.base_url: ",
        "sinks.sales_druid.max_attempts: ",
    ] {
        assert!(problems.iter().any(|p| p.starts_with(expected)), "missing {expected:?} in {problems:#?}");
    }
    assert!(problems.iter().all(|p| p.starts_with("sinks.sales_druid.")), "{problems:#?}");
    let sup: DruidSupervisorConfig =
        toml::from_str("overlord = \"http://o:8081\"\ndatasource = \"d\"\ntimestamp_column = \"t\"\ntask_count = 0").unwrap();
    assert_eq!(sup.problems("sinks.k.druid"), ["sinks.k.druid.task_count: must be at least 1"]);
    let sup: DruidSupervisorConfig =
        toml::from_str("overlord = \"http://admin:pw@o:8081\"\ndatasource = \"d\"\ntimestamp_column = \"t\"").unwrap();
    assert_eq!(sup.problems("k"), ["k.overlord: put credentials in user and password_file, not in the URL"]);
}

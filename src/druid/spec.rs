//! JSON specs built from the mapping's Arrow schema: the Kafka supervisor spec and the native
//! `index_parallel` batch task. Pure functions; nothing here talks to Druid.
//!
//! Shapes follow Druid's documentation: the ingestion spec
//! (<https://druid.apache.org/docs/latest/ingestion/ingestion-spec>), the Kafka supervisor
//! reference (<https://druid.apache.org/docs/latest/ingestion/kafka-ingestion>), JSON-based batch
//! (<https://druid.apache.org/docs/latest/ingestion/native-batch>) and input sources
//! (<https://druid.apache.org/docs/latest/ingestion/input-sources>).

use super::{Columns, DruidType, LakeCommit, SpecError, Task, TaskEndpoint, iso_period};
use crate::config::{DruidBatchConfig, DruidBatchInput, DruidBatchMethod, DruidMetricKind, DruidSchemaConfig, DruidSupervisorConfig};
use arrow::datatypes::Schema;
use indexmap::IndexMap;
use serde_json::{Map, Value, json};

/// The Kafka supervisor spec (`POST /druid/indexer/v1/supervisor`) reading `topic`, whose
/// messages are JSON objects, one per row, keyed by column name. `consumer_properties` are
/// passed to Druid's consumer as they are, then `bootstrap.servers` is set and
/// `isolation.level` defaults to `read_committed` (rows of an aborted Kafka transaction are
/// never loaded).
pub fn supervisor_spec(
    schema: &Schema,
    config: &DruidSupervisorConfig,
    topic: &str,
    bootstrap_servers: &str,
    consumer_properties: &IndexMap<String, String>,
) -> Result<Value, SpecError> {
    let columns = Columns::resolve(schema, &config.schema)?;
    let mut data_schema = data_schema(&columns, &config.schema);
    // Kafka messages carry dates and timestamps as text; parse them to epoch milliseconds so
    // the long dimension holds the same value as a batch load from Parquet would.
    let transforms: Vec<Value> = columns
        .dimensions
        .iter()
        .filter(|(_, kind)| *kind == DruidType::Time)
        .map(|(name, _)| json!({"type": "expression", "name": name, "expression": format!("timestamp_parse({})", expr_ident(name))}))
        .collect();
    if !transforms.is_empty() {
        data_schema["transformSpec"] = json!({ "transforms": transforms });
    }
    let mut consumer = Map::new();
    consumer.insert("isolation.level".to_string(), json!("read_committed"));
    for (key, value) in consumer_properties {
        consumer.insert(key.clone(), json!(value));
    }
    consumer.insert("bootstrap.servers".to_string(), json!(bootstrap_servers));
    Ok(json!({
        "type": "kafka",
        "spec": {
            "dataSchema": data_schema,
            "ioConfig": {
                "type": "kafka",
                "topic": topic,
                "inputFormat": { "type": "json" },
                "consumerProperties": consumer,
                "taskCount": config.task_count,
                "replicas": config.replicas,
                "taskDuration": iso_period(config.task_duration.0),
                "useEarliestOffset": config.use_earliest_offset,
            },
            "tuningConfig": { "type": "kafka" },
        },
    }))
}

/// The task loading `commit` for the configured method: [`native_task`] or
/// [`super::sql_task`], with the id to poll.
pub fn batch_task(schema: &Schema, config: &DruidBatchConfig, task_id: &str, commit: &LakeCommit) -> Result<Task, SpecError> {
    Ok(match config.method {
        DruidBatchMethod::Native => {
            Task { id: task_id.to_string(), endpoint: TaskEndpoint::Native, body: native_task(schema, config, task_id, commit)? }
        }
        DruidBatchMethod::Sql => Task {
            id: super::sql_controller_task_id(task_id),
            endpoint: TaskEndpoint::Sql,
            body: super::sql_task(schema, config, task_id, commit)?,
        },
    })
}

/// An `index_parallel` task (`POST /druid/indexer/v1/task`) with id `task_id`, appending the
/// rows of exactly `commit.files` (Parquet) to the datasource. With `input = "delta"` it
/// reads the whole table at `commit.version` instead and replaces the time chunks it covers
/// (see `docs/druid.md`: Druid's Delta input source cannot select files).
pub fn native_task(schema: &Schema, config: &DruidBatchConfig, task_id: &str, commit: &LakeCommit) -> Result<Value, SpecError> {
    let columns = Columns::resolve(schema, &config.schema)?;
    let delta = config.input == DruidBatchInput::Delta;
    let mut io_config = json!({
        "type": "index_parallel",
        "inputSource": input_source(config, commit)?,
        "appendToExisting": !delta,
        "dropExisting": false,
    });
    // The Delta input source reads Parquet itself and takes no input format.
    if !delta {
        io_config["inputFormat"] = json!({ "type": "parquet" });
    }
    Ok(json!({
        "type": "index_parallel",
        "id": task_id,
        "spec": {
            "dataSchema": data_schema(&columns, &config.schema),
            "ioConfig": io_config,
            "tuningConfig": { "type": "index_parallel", "maxNumConcurrentSubTasks": config.parallelism },
        },
    }))
}

/// The `dataSchema` shared by the supervisor spec and the native task.
fn data_schema(columns: &Columns, config: &DruidSchemaConfig) -> Value {
    let dimensions: Vec<Value> = columns.dimensions.iter().map(|(name, kind)| json!({ "type": kind.name(), "name": name })).collect();
    let metrics: Vec<Value> = columns
        .metrics
        .iter()
        .map(|(name, kind, input)| {
            let mut metric = json!({ "type": metric_type(*kind), "name": name });
            if let Some((column, _)) = input {
                metric["fieldName"] = json!(column);
            }
            metric
        })
        .collect();
    json!({
        "dataSource": config.datasource,
        "timestampSpec": { "column": columns.timestamp.0, "format": config.timestamp_format },
        "dimensionsSpec": { "dimensions": dimensions },
        "metricsSpec": metrics,
        "granularitySpec": {
            "type": "uniform",
            "segmentGranularity": config.segment_granularity.name(),
            "queryGranularity": config.query_granularity.name(),
            "rollup": config.rollup,
        },
    })
}

/// Druid's aggregator type name.
pub(crate) fn metric_type(kind: DruidMetricKind) -> &'static str {
    match kind {
        DruidMetricKind::Count => "count",
        DruidMetricKind::LongSum => "longSum",
        DruidMetricKind::DoubleSum => "doubleSum",
        DruidMetricKind::LongMin => "longMin",
        DruidMetricKind::LongMax => "longMax",
        DruidMetricKind::DoubleMin => "doubleMin",
        DruidMetricKind::DoubleMax => "doubleMax",
    }
}

/// The Druid input source reading exactly the commit's files (or, for `delta`, the table).
pub(crate) fn input_source(config: &DruidBatchConfig, commit: &LakeCommit) -> Result<Value, SpecError> {
    if commit.files.is_empty() && config.input != DruidBatchInput::Delta {
        return Err(SpecError::Invalid("the commit added no files; there is nothing to load".to_string()));
    }
    let base = config.base_url.as_deref();
    Ok(match config.input {
        DruidBatchInput::Local => {
            let root = match base {
                Some(dir) => dir.to_string(),
                None => local_root(&commit.root)?,
            };
            let files: Vec<String> = commit.files.iter().map(|f| join(&root, f)).collect();
            json!({ "type": "local", "files": files })
        }
        DruidBatchInput::Http => {
            let root = base.ok_or_else(|| SpecError::Invalid("input = \"http\" needs base_url".to_string()))?;
            json!({ "type": "http", "uris": encoded_uris(root, &commit.files) })
        }
        DruidBatchInput::S3 => {
            let root = base.or(commit.root.starts_with("s3://").then_some(commit.root.as_str()));
            let root = root.ok_or_else(|| SpecError::Invalid("input = \"s3\" needs base_url = \"s3://bucket/prefix\"".to_string()))?;
            json!({ "type": "s3", "uris": encoded_uris(root, &commit.files) })
        }
        DruidBatchInput::Delta => {
            let version = commit
                .version
                .ok_or_else(|| SpecError::Invalid("input = \"delta\" needs a Delta lake (the commit has no Delta version)".to_string()))?;
            let table = if commit.root.starts_with("file://") { local_root(&commit.root)? } else { commit.root.clone() };
            // snapshotVersion pins the commit's version (Druid 31+); an older Druid ignores the
            // unknown property and reads the latest version, a superset for an append-only table.
            json!({ "type": "delta", "tablePath": table, "snapshotVersion": version })
        }
    })
}

/// A local lake root as an absolute folder (from a path or a `file://` URL).
fn local_root(root: &str) -> Result<String, SpecError> {
    let path = if root.starts_with("file://") {
        url::Url::parse(root).ok().and_then(|u| u.to_file_path().ok()).map(|p| p.to_string_lossy().into_owned())
    } else {
        Some(root.to_string())
    };
    match path {
        Some(p) if p.starts_with('/') => Ok(p),
        _ => Err(SpecError::Invalid(format!(
            "input = \"local\" needs the lake at an absolute local path (got {root:?}); set base_url to the folder Druid sees"
        ))),
    }
}

fn join(root: &str, relative: &str) -> String {
    format!("{}/{}", root.trim_end_matches('/'), relative.trim_start_matches('/'))
}

/// `root` joined with each file, path segments percent-encoded (Druid parses them as URIs).
fn encoded_uris(root: &str, files: &[String]) -> Vec<String> {
    files.iter().map(|f| join(root, &f.split('/').map(encode_segment).collect::<Vec<_>>().join("/"))).collect()
}

/// Percent-encodes a URI path segment; `=` stays, as in hive partition folders (`day=2019-01-01`).
pub(crate) fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~=".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A column name as a Druid expression identifier (`"name"`, inner quotes escaped).
fn expr_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
}

//! SQL-based batch ingestion (multi-stage query): the body of `POST /druid/v2/sql/task`, an
//! `INSERT INTO ... SELECT ... FROM TABLE(EXTERN(...)) PARTITIONED BY ...` reading exactly the
//! commit's files. See <https://druid.apache.org/docs/latest/multi-stage-query/reference> and
//! <https://druid.apache.org/docs/latest/api-reference/sql-ingestion-api>.
//!
//! The query id (`sqlQueryId`) is the ingestd task id, so the controller task is
//! `query-<task id>` and a second submission of the same batch names a task that exists.

use super::spec::input_source;
use super::{Columns, DruidType, LakeCommit, SpecError};
use crate::config::{DruidBatchConfig, DruidBatchInput, DruidMetricKind, Granularity};
use arrow::datatypes::Schema;
use serde_json::{Value, json};

/// The Overlord task id of the controller of SQL query `query_id` (Druid's `MSQTasks.controllerTaskId`).
pub fn sql_controller_task_id(query_id: &str) -> String {
    format!("query-{query_id}")
}

/// The SQL task body loading `commit`, with `sqlQueryId` = `task_id`. With `input = "delta"`
/// it is a `REPLACE ... OVERWRITE ALL` of the table at the commit's version (see
/// `docs/druid.md`); otherwise an `INSERT` (append) of exactly `commit.files`.
pub fn sql_task(schema: &Schema, config: &DruidBatchConfig, task_id: &str, commit: &LakeCommit) -> Result<Value, SpecError> {
    let columns = Columns::resolve(schema, &config.schema)?;
    let delta = config.input == DruidBatchInput::Delta;
    let source = input_source(config, commit)?;
    // EXTERN always takes an input format; the Delta input source ignores it (it reads Parquet
    // itself), so pass the core `json` one rather than require the Parquet extension.
    let format = if delta { json!({ "type": "json" }) } else { json!({ "type": "parquet" }) };

    // Every column read from the files, once, with its type in the files.
    let mut read: Vec<(String, DruidType)> = vec![columns.timestamp.clone()];
    let inputs = columns.metrics.iter().filter_map(|m| m.2.clone());
    for column in columns.dimensions.iter().cloned().chain(inputs) {
        if !read.iter().any(|r| r.0 == column.0) {
            read.push(column);
        }
    }
    let signature: Vec<Value> = read.iter().map(|(name, kind)| json!({ "name": name, "type": kind.name() })).collect();

    let mut time = time_expr(&columns.timestamp.0, columns.timestamp.1, &config.schema.timestamp_format)?;
    if let Some(period) = config.schema.query_granularity.period() {
        time = format!("TIME_FLOOR({time}, '{period}')");
    }
    let rollup = config.schema.rollup;
    let mut select = vec![format!("{time} AS \"__time\"")];
    select.extend(columns.dimensions.iter().map(|(name, _)| ident(name)));
    for (name, kind, input) in &columns.metrics {
        let column = input.as_ref().map(|i| ident(&i.0)).unwrap_or_default();
        let (cast, agg) = match kind {
            DruidMetricKind::Count => ("", ""),
            DruidMetricKind::LongSum => ("BIGINT", "SUM"),
            DruidMetricKind::DoubleSum => ("DOUBLE", "SUM"),
            DruidMetricKind::LongMin => ("BIGINT", "MIN"),
            DruidMetricKind::LongMax => ("BIGINT", "MAX"),
            DruidMetricKind::DoubleMin => ("DOUBLE", "MIN"),
            DruidMetricKind::DoubleMax => ("DOUBLE", "MAX"),
        };
        // Without rollup each row keeps its own value, as a native task's per-row aggregators do.
        let expr = match (kind, rollup) {
            (DruidMetricKind::Count, true) => "COUNT(*)".to_string(),
            (DruidMetricKind::Count, false) => "1".to_string(),
            (_, true) => format!("{agg}(CAST({column} AS {cast}))"),
            (_, false) => format!("CAST({column} AS {cast})"),
        };
        select.push(format!("{expr} AS {}", ident(name)));
    }

    let verb = if delta {
        format!("REPLACE INTO {} OVERWRITE ALL", ident(&config.schema.datasource))
    } else {
        format!("INSERT INTO {}", ident(&config.schema.datasource))
    };
    let mut query = format!(
        "{verb}\nSELECT\n  {}\nFROM TABLE(\n  EXTERN(\n    {},\n    {},\n    {}\n  )\n)",
        select.join(",\n  "),
        literal(&source.to_string()),
        literal(&format.to_string()),
        literal(&Value::Array(signature).to_string()),
    );
    if rollup {
        let ordinals: Vec<String> = (1..=1 + columns.dimensions.len()).map(|i| i.to_string()).collect();
        query.push_str(&format!("\nGROUP BY {}", ordinals.join(", ")));
    }
    query.push_str(&format!("\nPARTITIONED BY {}", partitioned_by(config.schema.segment_granularity)));

    let mut context = json!({
        "sqlQueryId": task_id,
        // One controller plus `parallelism` workers; Druid needs at least 2.
        "maxNumTasks": config.parallelism.max(1) + 1,
    });
    if rollup {
        // Keep partial aggregates so the datasource stays rolled up (Druid's documented rule).
        context["finalizeAggregations"] = json!(false);
    }
    Ok(json!({ "query": query, "context": context }))
}

/// The `__time` expression for the timestamp column.
fn time_expr(column: &str, kind: DruidType, format: &str) -> Result<String, SpecError> {
    let c = ident(column);
    Ok(match (kind, format) {
        // Parquet dates and timestamps are read as epoch milliseconds.
        (DruidType::Time, _) | (DruidType::Long, "auto" | "millis") => format!("MILLIS_TO_TIMESTAMP({c})"),
        (DruidType::Long, "posix") => format!("MILLIS_TO_TIMESTAMP({c} * 1000)"),
        (DruidType::Long, "micro") => format!("MILLIS_TO_TIMESTAMP({c} / 1000)"),
        (DruidType::Long, "nano") => format!("MILLIS_TO_TIMESTAMP({c} / 1000000)"),
        (DruidType::String, "auto" | "iso") => format!("TIME_PARSE({c})"),
        (DruidType::String, pattern) if !matches!(pattern, "millis" | "posix" | "micro" | "nano") => {
            format!("TIME_PARSE({c}, {})", literal(pattern))
        }
        _ => {
            return Err(SpecError::Invalid(format!(
                "method = \"sql\": timestamp column {column:?} ({}) cannot be read with timestamp_format {format:?}",
                kind.name()
            )));
        }
    })
}

/// The `PARTITIONED BY` clause for a segment granularity.
fn partitioned_by(g: Granularity) -> String {
    match g {
        Granularity::Hour | Granularity::Day | Granularity::Month | Granularity::Year => g.name().to_string(),
        Granularity::All | Granularity::None => "ALL TIME".to_string(),
        other => format!("TIME_FLOOR(\"__time\", '{}')", other.period().unwrap_or("P1D")),
    }
}

/// A SQL identifier, double-quoted.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A SQL string literal, single-quoted.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

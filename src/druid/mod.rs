//! Apache Druid: specs generated from the mapping ([`spec`], [`sql`]) and a client of the
//! Overlord's HTTP API ([`overlord`]).
//!
//! Streaming: a Kafka supervisor spec reads the Kafka sink's topic. Batch: after each lake
//! commit, a task loads exactly the files that commit added, under a task id derived from the
//! batch, so that a resubmission after a crash is refused by Druid as a duplicate instead of
//! loading the rows twice. Verified against Druid's documented API (a mock Overlord in
//! `tests/`), not a live Druid; see `docs/druid.md`.

pub mod overlord;
pub mod spec;
pub mod sql;

#[cfg(test)]
mod tests;

pub use overlord::{Overlord, OverlordError, Submitted, TaskOutcome, TaskPolicy, TaskState};
pub use spec::{batch_task, native_task, supervisor_spec};
pub use sql::{sql_controller_task_id, sql_task};

use arrow::datatypes::{DataType, Field, Schema};
use serde_json::Value;

/// Why a spec cannot be generated from this schema and configuration.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecError {
    #[error("druid: {field}: no column {column:?} in the mapping (columns: {known})")]
    UnknownColumn { field: String, column: String, known: String },
    #[error("druid: column {column:?} has type {data_type}, which ingestd cannot load into Druid")]
    UnsupportedType { column: String, data_type: String },
    #[error("druid: {0}")]
    Invalid(String),
}

/// The files of one lake commit, as a batch task reads them.
#[derive(Debug, Clone, PartialEq)]
pub struct LakeCommit {
    /// The lake's root: a local folder (absolute) or a URL (`s3://...`, `file://...`).
    pub root: String,
    /// The Delta version of the commit (`None` for a Parquet dataset).
    pub version: Option<i64>,
    /// The data files the commit added, relative to `root`, `/`-separated, not URL-encoded.
    pub files: Vec<String>,
}

/// Which endpoint a task is posted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskEndpoint {
    /// `POST /druid/indexer/v1/task` (native JSON task).
    Native,
    /// `POST /druid/v2/sql/task` (SQL-based ingestion).
    Sql,
}

/// A batch task ready to post: the id to poll, where to post it and the body.
#[derive(Debug, Clone, PartialEq)]
pub struct Task {
    /// The Overlord task id (for SQL, the controller task `query-<sqlQueryId>`).
    pub id: String,
    pub endpoint: TaskEndpoint,
    pub body: Value,
}

/// Longest task id ingestd generates; Druid stores ids in a 255-character column and derives
/// sub-task ids from them.
const MAX_TASK_ID: usize = 160;

/// The deterministic id of the task loading batch `seq` of (instance, source) into
/// `datasource`: `ingestd_<instance>_<source>_<datasource>_<seq>`, plus `_retry<attempt>` after
/// the first attempt. Characters outside `[A-Za-z0-9._-]` become `_`; a too long id becomes
/// `ingestd_<hash>_<seq>[_retryN]`. The same inputs give the same id after a restart, which is
/// what lets Druid refuse a second load of the same batch.
pub fn task_id(instance: &str, source: &str, datasource: &str, seq: i64, attempt: u32) -> String {
    let clean = |s: &str| -> String { s.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect() };
    let suffix = if attempt > 1 { format!("_{seq}_retry{attempt}") } else { format!("_{seq}") };
    let id = format!("ingestd_{}_{}_{}{suffix}", clean(instance), clean(source), clean(datasource));
    if id.len() <= MAX_TASK_ID {
        return id;
    }
    // Hash the full names (not the cleaned ones) so two long names never share an id.
    let hash = blake3::hash(format!("{instance}\0{source}\0{datasource}").as_bytes());
    format!("ingestd_{}{suffix}", &hash.to_hex()[..32])
}

/// How a column of the mapping is stored in Druid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DruidType {
    /// Text; booleans too (`"true"` / `"false"`).
    String,
    /// Integers.
    Long,
    /// Floating point.
    Double,
    /// Dates and timestamps other than the row time: a long dimension holding epoch
    /// milliseconds (Parquet gives them as numbers, Kafka messages as RFC 3339 text, which the
    /// supervisor spec parses with a transform).
    Time,
}

impl DruidType {
    /// The Druid dimension / signature type name.
    pub fn name(self) -> &'static str {
        match self {
            DruidType::String => "string",
            DruidType::Long | DruidType::Time => "long",
            DruidType::Double => "double",
        }
    }

    /// How an Arrow column type is stored.
    pub fn of(field: &Field) -> Result<DruidType, SpecError> {
        Ok(match field.data_type() {
            // Decimals go as their exact text: Druid's numbers would round them.
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Boolean | DataType::Decimal128(_, _) => DruidType::String,
            // A list is a multi-value string dimension in Druid.
            DataType::List(_) => DruidType::String,
            DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => DruidType::Long,
            DataType::UInt8 | DataType::UInt16 | DataType::UInt32 | DataType::UInt64 => DruidType::Long,
            DataType::Float16 | DataType::Float32 | DataType::Float64 => DruidType::Double,
            DataType::Date32 | DataType::Date64 | DataType::Timestamp(_, _) => DruidType::Time,
            other => {
                return Err(SpecError::UnsupportedType { column: field.name().clone(), data_type: other.to_string() });
            }
        })
    }
}

/// A metric: its name, its aggregator, and its input column with that column's type.
pub(crate) type Metric = (String, crate::config::DruidMetricKind, Option<(String, DruidType)>);

/// The columns of a datasource, resolved against the mapping's schema.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Columns {
    /// The row-time column and its Druid type.
    pub timestamp: (String, DruidType),
    /// Dimensions in order.
    pub dimensions: Vec<(String, DruidType)>,
    /// Metrics: (name, kind, input column and its type).
    pub metrics: Vec<Metric>,
}

impl Columns {
    /// Resolves the configured columns against `schema`, checking that they exist and fit.
    pub fn resolve(schema: &Schema, config: &crate::config::DruidSchemaConfig) -> Result<Columns, SpecError> {
        let find = |field: &str, column: &str| -> Result<(String, DruidType), SpecError> {
            let f = schema.field_with_name(column).map_err(|_| SpecError::UnknownColumn {
                field: field.to_string(),
                column: column.to_string(),
                known: schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", "),
            })?;
            Ok((column.to_string(), DruidType::of(f)?))
        };
        let timestamp = find("timestamp_column", &config.timestamp_column)?;
        if timestamp.1 == DruidType::Time && config.timestamp_format != "auto" {
            return Err(SpecError::Invalid(format!(
                "timestamp_format {:?}: {:?} is a date/timestamp column, which takes \"auto\" (RFC 3339 text in Kafka, numbers in Parquet)",
                config.timestamp_format, timestamp.0
            )));
        }
        let mut metrics = Vec::new();
        for (name, metric) in &config.metrics {
            let input = match &metric.column {
                Some(column) => {
                    let (column, kind) = find(&format!("metrics.{name}.column"), column)?;
                    if !matches!(kind, DruidType::Long | DruidType::Double) {
                        return Err(SpecError::Invalid(format!("metrics.{name}: column {column:?} is not numeric")));
                    }
                    Some((column, kind))
                }
                None => None,
            };
            metrics.push((name.clone(), metric.kind, input));
        }
        let dimensions = if config.dimensions.is_empty() {
            let taken = |c: &str| c == timestamp.0 || metrics.iter().any(|m| m.2.as_ref().is_some_and(|i| i.0 == c));
            let names = schema.fields().iter().map(|f| f.name().as_str()).filter(|&c| !taken(c));
            names.map(|c| find("dimensions", c)).collect::<Result<Vec<_>, _>>()?
        } else {
            config.dimensions.iter().map(|c| find("dimensions", c.as_str())).collect::<Result<Vec<_>, _>>()?
        };
        if let Some(bad) = dimensions.iter().map(|d| &d.0).chain(metrics.iter().map(|m| &m.0)).find(|n| *n == "__time") {
            return Err(SpecError::Invalid(format!("{bad:?} is Druid's own time column; rename it in the mapping")));
        }
        Ok(Columns { timestamp, dimensions, metrics })
    }
}

/// An ISO 8601 period for a duration (`PT1H`, `PT1M30S`, `PT0.5S`), as Druid's periods are written.
pub fn iso_period(d: std::time::Duration) -> String {
    let (secs, millis) = (d.as_secs(), d.subsec_millis());
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let mut out = String::from("PT");
    if h > 0 {
        out.push_str(&format!("{h}H"));
    }
    if m > 0 {
        out.push_str(&format!("{m}M"));
    }
    if millis > 0 {
        out.push_str(format!("{s}.{millis:03}").trim_end_matches('0'));
        out.push('S');
    } else if s > 0 || out == "PT" {
        out.push_str(&format!("{s}S"));
    }
    out
}

//! The mapping from nested input fields to the flat, typed columns of the output table.

use serde::{Deserialize, Serialize};

/// Name of the metadata column holding the source file's name.
pub const SOURCE_FILE_COLUMN: &str = "_source_file";
/// Name of the metadata column holding the time the batch was committed (UTC, microseconds).
pub const INGESTED_AT_COLUMN: &str = "_ingested_at";

/// One output column: where its value comes from and what type it has.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnConfig {
    /// Dotted path into a JSON record (`sale.amount.saleamt`), or a CSV header name.
    pub path: String,
    /// Output type of the column.
    #[serde(rename = "type")]
    pub kind: ColumnType,
    /// chrono format for `date` and `timestamp` columns, e.g. `%Y-%-m-%-d`. Without it,
    /// ISO 8601 (`2021-01-04`, `2021-01-04T10:00:00Z`) is expected.
    #[serde(default)]
    pub format: Option<String>,
    /// Input values (compared as text) that mean "unknown" and become null, e.g. `["0"]` for a
    /// year built of 0.
    #[serde(default)]
    pub null_if: Vec<String>,
}

/// The column types ingestd writes. They map one to one onto Arrow, Parquet and Delta types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    String,
    Int32,
    Int64,
    Float64,
    Bool,
    /// A calendar date (Arrow Date32, Delta `date`).
    Date,
    /// An instant in UTC, microsecond precision (Delta `timestamp`).
    Timestamp,
}

impl ColumnType {
    /// Every accepted spelling, for error messages.
    pub const NAMES: &'static str = "string, int32, int64, float64, bool, date, timestamp";

    /// The name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            ColumnType::String => "string",
            ColumnType::Int32 => "int32",
            ColumnType::Int64 => "int64",
            ColumnType::Float64 => "float64",
            ColumnType::Bool => "bool",
            ColumnType::Date => "date",
            ColumnType::Timestamp => "timestamp",
        }
    }

    /// Whether a `format` key means anything for this type.
    pub fn takes_format(self) -> bool {
        matches!(self, ColumnType::Date | ColumnType::Timestamp)
    }
}

//! The mapping from nested input fields to the flat, typed columns of the output table.

use serde::{Deserialize, Serialize};

/// Name of the metadata column holding the source file's name.
pub const SOURCE_FILE_COLUMN: &str = "_source_file";
/// Name of the metadata column holding the time the batch was committed (UTC, microseconds).
pub const INGESTED_AT_COLUMN: &str = "_ingested_at";
/// Default name of the rescued-data column (`[sources.NAME.schema] rescued_column`).
pub const RESCUED_COLUMN: &str = "_rescued_data";

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
/// Written in the config as `"string"`, `"int64"`, `"decimal(12,2)"` and so on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String", into = "String")]
pub enum ColumnType {
    String,
    Int32,
    Int64,
    Float64,
    Bool,
    /// A calendar date (Arrow Date32, Delta `date`).
    Date,
    /// An instant in UTC, microsecond precision (Delta `timestamp`). Text with an offset
    /// (`+01:00`, `Z`) is converted to UTC; text without one is taken as UTC.
    Timestamp,
    /// An exact decimal with `precision` digits, `scale` of them after the point (Arrow
    /// Decimal128, Delta `decimal(p,s)`): money, or integers too long for int64. A value with
    /// more digits after the point than `scale` is refused, never rounded.
    Decimal {
        precision: u8,
        scale: u8,
    },
    /// The JSON text of the value as written (objects, arrays, or any value), in a string
    /// column. The inferred type of arrays of objects or arrays, and of objects nested deeper
    /// than columns flatten.
    Json,
    /// A list of scalars (`list<int64>`; Arrow List, Delta `array`), from a JSON array. The
    /// inferred type of arrays of scalars.
    List(ListItem),
}

/// The element types of a `list<T>` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListItem {
    String,
    Int64,
    Float64,
    Bool,
}

impl ListItem {
    pub fn name(self) -> &'static str {
        match self {
            ListItem::String => "string",
            ListItem::Int64 => "int64",
            ListItem::Float64 => "float64",
            ListItem::Bool => "bool",
        }
    }

    /// The column type of one element.
    pub fn column_type(self) -> ColumnType {
        match self {
            ListItem::String => ColumnType::String,
            ListItem::Int64 => ColumnType::Int64,
            ListItem::Float64 => ColumnType::Float64,
            ListItem::Bool => ColumnType::Bool,
        }
    }
}

/// Largest decimal precision (Arrow Decimal128, Delta).
pub const MAX_DECIMAL_PRECISION: u8 = 38;

impl ColumnType {
    /// Every accepted spelling, for error messages.
    pub const NAMES: &'static str =
        "string, int32, int64, float64, bool, date, timestamp, decimal(p,s), json, list<string|int64|float64|bool>";

    /// The name used in the config file.
    pub fn name(self) -> String {
        match self {
            ColumnType::String => "string".into(),
            ColumnType::Int32 => "int32".into(),
            ColumnType::Int64 => "int64".into(),
            ColumnType::Float64 => "float64".into(),
            ColumnType::Bool => "bool".into(),
            ColumnType::Date => "date".into(),
            ColumnType::Timestamp => "timestamp".into(),
            ColumnType::Decimal { precision, scale } => format!("decimal({precision},{scale})"),
            ColumnType::Json => "json".into(),
            ColumnType::List(item) => format!("list<{}>", item.name()),
        }
    }

    /// Whether a `format` key means anything for this type.
    pub fn takes_format(self) -> bool {
        matches!(self, ColumnType::Date | ColumnType::Timestamp)
    }
}

impl std::fmt::Display for ColumnType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

impl From<ColumnType> for String {
    fn from(kind: ColumnType) -> String {
        kind.name()
    }
}

impl TryFrom<String> for ColumnType {
    type Error = String;

    fn try_from(text: String) -> Result<ColumnType, String> {
        text.parse()
    }
}

impl std::str::FromStr for ColumnType {
    type Err = String;

    fn from_str(text: &str) -> Result<ColumnType, String> {
        let unknown = || format!("unknown type {text:?} (expected one of {})", ColumnType::NAMES);
        Ok(match text.trim() {
            "string" => ColumnType::String,
            "int32" => ColumnType::Int32,
            "int64" => ColumnType::Int64,
            "float64" => ColumnType::Float64,
            "bool" => ColumnType::Bool,
            "date" => ColumnType::Date,
            "timestamp" => ColumnType::Timestamp,
            "json" => ColumnType::Json,
            "list<string>" => ColumnType::List(ListItem::String),
            "list<int64>" => ColumnType::List(ListItem::Int64),
            "list<float64>" => ColumnType::List(ListItem::Float64),
            "list<bool>" => ColumnType::List(ListItem::Bool),
            other => {
                let inner = other.strip_prefix("decimal(").and_then(|r| r.strip_suffix(')')).ok_or_else(unknown)?;
                let (p, s) = inner.split_once(',').ok_or_else(unknown)?;
                let (precision, scale): (u8, u8) = (p.trim().parse().map_err(|_| unknown())?, s.trim().parse().map_err(|_| unknown())?);
                if precision == 0 || precision > MAX_DECIMAL_PRECISION || scale > precision {
                    return Err(format!("{text:?}: a decimal needs 1 <= precision <= {MAX_DECIMAL_PRECISION} and scale <= precision"));
                }
                ColumnType::Decimal { precision, scale }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::ColumnType;

    #[test]
    fn types_read_and_write_as_their_config_names() {
        for name in [
            "string",
            "int32",
            "int64",
            "float64",
            "bool",
            "date",
            "timestamp",
            "json",
            "decimal(12,2)",
            "decimal(38,0)",
            "list<int64>",
            "list<string>",
        ] {
            let kind: ColumnType = name.parse().unwrap();
            assert_eq!(kind.name(), name);
        }
        assert_eq!("decimal( 5 , 1 )".parse::<ColumnType>(), Ok(ColumnType::Decimal { precision: 5, scale: 1 }));
        for bad in ["decimal(39,2)", "decimal(2,3)", "decimal(0,0)", "decimal(5)", "int", "decimal(a,b)", "list<json>", "list<>"] {
            assert!(bad.parse::<ColumnType>().is_err(), "{bad}");
        }
    }
}

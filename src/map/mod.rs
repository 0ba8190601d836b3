//! Stage 4, map: decoded records (nested, every leaf as text) into the flat typed columns of
//! the table, following `on_bad_row` for values that do not convert.

mod convert;
pub mod infer;

use crate::config::{BadRowPolicy, ColumnConfig, ColumnType, FormatConfig};
use crate::decode::{DecodePlan, FieldTree};
use arrow::array::{ArrayRef, AsArray, BooleanArray, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use indexmap::IndexMap;
use std::sync::Arc;

pub use crate::config::{INGESTED_AT_COLUMN, SOURCE_FILE_COLUMN};

#[derive(Debug, thiserror::Error)]
pub enum MapError {
    #[error("column {column:?}, record {record}: cannot convert {value:?} to {kind:?}: {reason}")]
    BadValue { column: String, record: u64, value: String, kind: ColumnType, reason: String },
    #[error("mapping: {0}")]
    Invalid(String),
    #[error("mapping: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}

#[derive(Debug, Clone)]
struct MappedColumn {
    name: String,
    spec: ColumnConfig,
}

/// The compiled mapping of one source.
#[derive(Debug, Clone)]
pub struct Mapping {
    columns: Vec<MappedColumn>,
    schema: SchemaRef,
    metadata_columns: bool,
    policy: BadRowPolicy,
    /// Values that mean null in any column (CSV `null_values`).
    null_values: Vec<String>,
}

/// One mapped record batch and what was lost on the way.
#[derive(Debug)]
pub struct Mapped {
    pub batch: RecordBatch,
    /// Rows with at least one value that did not convert (nulled or skipped by policy).
    pub bad_rows: u64,
}

impl Mapping {
    pub fn new(
        columns: &IndexMap<String, ColumnConfig>,
        metadata_columns: bool,
        policy: BadRowPolicy,
        null_values: Vec<String>,
    ) -> Result<Mapping, MapError> {
        if columns.is_empty() {
            return Err(MapError::Invalid("no columns".into()));
        }
        let columns: Vec<MappedColumn> =
            columns.iter().map(|(name, spec)| MappedColumn { name: name.clone(), spec: spec.clone() }).collect();
        let mut fields: Vec<Field> = columns.iter().map(|c| Field::new(&c.name, arrow_type(c.spec.kind), true)).collect();
        if metadata_columns {
            fields.push(Field::new(SOURCE_FILE_COLUMN, DataType::Utf8, true));
            fields.push(Field::new(INGESTED_AT_COLUMN, DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true));
        }
        let mapping = Mapping { columns, schema: Arc::new(Schema::new(fields)), metadata_columns, policy, null_values };
        mapping.json_fields()?;
        Ok(mapping)
    }

    /// The schema of the mapped batches (and of the table).
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// What the decoder must read for this mapping.
    pub fn decode_plan(&self, format: &FormatConfig) -> Result<DecodePlan, MapError> {
        Ok(DecodePlan {
            format: format.clone(),
            json_fields: self.json_fields()?,
            csv_columns: self.columns.iter().map(|c| c.spec.path.clone()).collect::<indexmap::IndexSet<_>>().into_iter().collect(),
        })
    }

    /// The JSON paths the columns read.
    fn json_fields(&self) -> Result<FieldTree, MapError> {
        FieldTree::new(self.columns.iter().map(|c| c.spec.path.as_str())).map_err(MapError::Invalid)
    }

    /// Maps one decoded batch. `first_record` is the 1-based record number of its first row in
    /// the file, for error messages.
    pub fn apply(&self, raw: &RecordBatch, file_name: &str, ingested_at_us: i64, first_record: u64) -> Result<Mapped, MapError> {
        let rows = raw.num_rows();
        let mut bad = vec![false; rows];
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        for column in &self.columns {
            let Some(text) = leaf(raw, column) else {
                arrays.push(arrow::array::new_null_array(&arrow_type(column.spec.kind), rows));
                continue;
            };
            let null_if = |value: &str| column.spec.null_if.iter().chain(&self.null_values).any(|n| n == value);
            let converted = convert::column(text, &column.spec, &null_if, |row, value, reason| {
                if self.policy == BadRowPolicy::QuarantineFile {
                    return Err(MapError::BadValue {
                        column: column.name.clone(),
                        record: first_record + row as u64,
                        value: value.chars().take(80).collect(),
                        kind: column.spec.kind,
                        reason,
                    });
                }
                bad[row] = true;
                Ok(())
            })?;
            arrays.push(converted);
        }
        if self.metadata_columns {
            arrays.push(Arc::new(StringArray::from_iter_values(std::iter::repeat_n(file_name, rows))));
            arrays.push(Arc::new(TimestampMicrosecondArray::from(vec![ingested_at_us; rows]).with_timezone("UTC")));
        }
        let batch = RecordBatch::try_new(self.schema.clone(), arrays)?;
        let bad_rows = bad.iter().filter(|b| **b).count() as u64;
        let batch = if self.policy == BadRowPolicy::Skip && bad_rows > 0 {
            let keep = BooleanArray::from(bad.iter().map(|b| !b).collect::<Vec<bool>>());
            arrow::compute::filter_record_batch(&batch, &keep)?
        } else {
            batch
        };
        Ok(Mapped { batch, bad_rows })
    }
}

/// The decoded text column a column reads: decoders name their columns by the dotted path
/// (JSON) or the header (CSV).
fn leaf<'a>(raw: &'a RecordBatch, column: &MappedColumn) -> Option<&'a StringArray> {
    raw.column_by_name(&column.spec.path)?.as_string_opt::<i32>()
}

/// The Arrow type each column type is written as.
pub fn arrow_type(kind: ColumnType) -> DataType {
    match kind {
        ColumnType::String => DataType::Utf8,
        ColumnType::Int32 => DataType::Int32,
        ColumnType::Int64 => DataType::Int64,
        ColumnType::Float64 => DataType::Float64,
        ColumnType::Bool => DataType::Boolean,
        ColumnType::Date => DataType::Date32,
        ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
    }
}

#[cfg(test)]
mod tests;

//! Stage 4, map: decoded records (nested, every leaf as text) into the flat typed columns of
//! the table. A value that does not convert is rescued (when the rescued column is on) or
//! follows `on_bad_row`; a field no column reads follows the schema's evolution mode.

mod convert;
mod evolve;
pub mod infer;
mod rescue;

use crate::config::{BadRowPolicy, ColumnConfig, ColumnType, Evolution, FormatConfig, SourceConfig};
use crate::decode::{DecodePlan, FieldTree, RawBatch, Unmapped};
use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use indexmap::IndexMap;
use std::collections::HashMap;
use std::sync::Arc;

pub use crate::config::{INGESTED_AT_COLUMN, SOURCE_FILE_COLUMN};
pub use evolve::Discovered;

/// Field metadata naming the input path a table column reads, kept in the table's schema so
/// that the schema read back from the table is the whole mapping.
pub const PATH_METADATA: &str = "ingestd.path";
/// Field metadata naming the column's ingestd type where Arrow's does not say it (`json`).
pub const TYPE_METADATA: &str = "ingestd.type";

#[derive(Debug, thiserror::Error)]
pub enum MapError {
    #[error("column {column:?}, record {record}: cannot convert {value:?} to {kind}: {reason}")]
    BadValue { column: String, record: u64, value: String, kind: ColumnType, reason: String },
    #[error("record {record}: field {field:?} is not a column of the table (schema.evolution = \"fail\")")]
    NewField { field: String, record: u64 },
    #[error("record {record}: field {field:?} cannot become a column ({reason}) and there is no rescued column to keep it")]
    Unplaceable { field: String, record: u64, reason: String },
    #[error("mapping: {0}")]
    Invalid(String),
    #[error("mapping: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}

impl MapError {
    /// The 1-based record of the file the error is about, if it is about one.
    pub fn record(&self) -> Option<u64> {
        match self {
            MapError::BadValue { record, .. } | MapError::NewField { record, .. } | MapError::Unplaceable { record, .. } => Some(*record),
            MapError::Invalid(_) | MapError::Arrow(_) => None,
        }
    }
}

/// How a source maps, besides its columns.
#[derive(Debug, Clone, PartialEq)]
pub struct MappingOptions {
    pub metadata_columns: bool,
    pub policy: BadRowPolicy,
    /// Values that mean null in any column (CSV `null_values`).
    pub null_values: Vec<String>,
    pub evolution: Evolution,
    /// The rescued-data column's name, if it is on.
    pub rescued: Option<String>,
    /// Types that override inference, by column name.
    pub hints: IndexMap<String, ColumnType>,
}

impl MappingOptions {
    pub fn of(source: &SourceConfig) -> MappingOptions {
        let inferred = source.columns.is_empty();
        MappingOptions {
            metadata_columns: source.metadata_columns,
            policy: source.on_bad_row,
            null_values: source.format.csv.null_values.clone(),
            evolution: source.schema.evolution(inferred),
            rescued: source.schema.rescued_column(inferred),
            hints: source.schema.hints.clone(),
        }
    }

    /// What the decoder must do with the fields no column reads.
    fn unmapped(&self) -> Unmapped {
        match self.evolution {
            Evolution::None => Unmapped::Count,
            Evolution::AddColumns | Evolution::Rescue | Evolution::Fail => Unmapped::Capture,
        }
    }
}

#[derive(Debug, Clone)]
struct MappedColumn {
    name: String,
    spec: ColumnConfig,
}

/// One output column, in table order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Column(usize),
    SourceFile,
    IngestedAt,
    Rescued,
}

/// The compiled mapping of one source.
#[derive(Debug, Clone)]
pub struct Mapping {
    columns: Vec<MappedColumn>,
    slots: Vec<Slot>,
    schema: SchemaRef,
    options: Arc<MappingOptions>,
    /// Paths the columns read as objects (`a` for `a.b`): a field there cannot be a column.
    objects: Arc<std::collections::HashSet<String>>,
}

/// One mapped record batch and what was lost or found on the way.
#[derive(Debug)]
pub struct Mapped {
    pub batch: RecordBatch,
    /// Rows with at least one value that did not convert (nulled or skipped by policy).
    pub bad_rows: u64,
    /// Values kept in the rescued column.
    pub rescued: u64,
    /// Values of fields no column reads, left out (`evolution = "none"`).
    pub ignored: u64,
    /// Fields the table lacks, with their inferred types (`evolution = "add_columns"`). When
    /// any are found, the batch must be mapped again with them as columns.
    pub discovered: Discovered,
}

impl Mapping {
    /// The mapping of `columns`, in order, then the metadata and rescued columns.
    pub fn new(columns: &IndexMap<String, ColumnConfig>, options: MappingOptions) -> Result<Mapping, MapError> {
        if columns.is_empty() {
            return Err(MapError::Invalid("no columns".into()));
        }
        let columns: Vec<MappedColumn> =
            columns.iter().map(|(name, spec)| MappedColumn { name: name.clone(), spec: spec.clone() }).collect();
        let slots = (0..columns.len()).map(Slot::Column).collect();
        Mapping::build(columns, slots, Arc::new(options))
    }

    /// The mapping a table's schema holds (the columns in its order, their paths and types from
    /// the field metadata ingestd writes), with any metadata or rescued column the options ask
    /// for and the table lacks added at the end.
    pub fn from_schema(schema: &Schema, options: MappingOptions) -> Result<Mapping, MapError> {
        let mut columns = Vec::new();
        let mut slots = Vec::new();
        for field in schema.fields() {
            let name = field.name().as_str();
            let slot = match name {
                SOURCE_FILE_COLUMN if options.metadata_columns => Slot::SourceFile,
                INGESTED_AT_COLUMN if options.metadata_columns => Slot::IngestedAt,
                _ if options.rescued.as_deref() == Some(name) => Slot::Rescued,
                _ => {
                    let kind = column_type(field).map_err(MapError::Invalid)?;
                    let path = field.metadata().get(PATH_METADATA).cloned().unwrap_or_else(|| name.to_string());
                    columns.push(MappedColumn {
                        name: name.to_string(),
                        spec: ColumnConfig { path, kind, format: None, null_if: Vec::new() },
                    });
                    Slot::Column(columns.len() - 1)
                }
            };
            slots.push(slot);
        }
        if columns.is_empty() {
            return Err(MapError::Invalid("the table has no data columns".into()));
        }
        Mapping::build(columns, slots, Arc::new(options))
    }

    fn build(columns: Vec<MappedColumn>, mut slots: Vec<Slot>, options: Arc<MappingOptions>) -> Result<Mapping, MapError> {
        let mut wanted = Vec::new();
        if options.metadata_columns {
            wanted.extend([Slot::SourceFile, Slot::IngestedAt]);
        }
        if options.rescued.is_some() {
            wanted.push(Slot::Rescued);
        }
        for slot in wanted {
            if !slots.contains(&slot) {
                slots.push(slot);
            }
        }
        let fields: Vec<Field> = slots
            .iter()
            .map(|slot| match *slot {
                Slot::Column(i) => column_field(&columns[i]),
                Slot::SourceFile => Field::new(SOURCE_FILE_COLUMN, DataType::Utf8, true),
                Slot::IngestedAt => Field::new(INGESTED_AT_COLUMN, DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())), true),
                Slot::Rescued => Field::new(options.rescued.as_deref().unwrap_or_default(), DataType::Utf8, true),
            })
            .collect();
        let objects = columns
            .iter()
            .flat_map(|c| c.spec.path.match_indices('.').map(|(i, _)| c.spec.path[..i].to_string()).collect::<Vec<_>>())
            .collect();
        let mapping = Mapping { columns, slots, schema: Arc::new(Schema::new(fields)), options, objects: Arc::new(objects) };
        mapping.json_fields()?;
        for (i, a) in mapping.columns.iter().enumerate() {
            if let Some(b) = mapping.columns[..i]
                .iter()
                .find(|b| b.spec.path == a.spec.path && (b.spec.kind == ColumnType::Json) != (a.spec.kind == ColumnType::Json))
            {
                return Err(MapError::Invalid(format!(
                    "columns {:?} and {:?} read path {:?}, one as json and one not",
                    b.name, a.name, a.spec.path
                )));
            }
        }
        Ok(mapping)
    }

    /// The schema of the mapped batches (and of the table).
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    pub fn options(&self) -> &MappingOptions {
        &self.options
    }

    /// Names of the data columns, in table order.
    pub fn column_names(&self) -> impl Iterator<Item = &str> {
        self.columns.iter().map(|c| c.name.as_str())
    }

    /// The columns as config (`[sources.NAME.columns]`).
    pub fn columns(&self) -> IndexMap<String, ColumnConfig> {
        self.columns.iter().map(|c| (c.name.clone(), c.spec.clone())).collect()
    }

    /// What the decoder must read for this mapping.
    pub fn decode_plan(&self, format: &FormatConfig) -> Result<DecodePlan, MapError> {
        Ok(DecodePlan {
            format: format.clone(),
            json_fields: self.json_fields()?,
            csv_columns: self.columns.iter().map(|c| c.spec.path.clone()).collect::<indexmap::IndexSet<_>>().into_iter().collect(),
            csv_unmapped: self.options.unmapped(),
        })
    }

    /// The JSON paths the columns read.
    fn json_fields(&self) -> Result<FieldTree, MapError> {
        let leaves = self.columns.iter().map(|c| (c.spec.path.as_str(), c.spec.kind == ColumnType::Json));
        FieldTree::with_leaves(leaves, self.options.unmapped()).map_err(MapError::Invalid)
    }

    /// Maps one decoded batch. `first_record` is the 1-based record number of its first row in
    /// the file, for error messages.
    pub fn apply(&self, raw: &RawBatch, file_name: &str, ingested_at_us: i64, first_record: u64) -> Result<Mapped, MapError> {
        let text = &raw.text;
        let rows = text.num_rows();
        let mut bad = vec![false; rows];
        let mut rescued = rescue::Rescued::new(rows, self.options.rescued.is_some());
        let mut converted: Vec<ArrayRef> = Vec::with_capacity(self.columns.len());
        for column in &self.columns {
            let Some(values) = leaf(text, column) else {
                converted.push(arrow::array::new_null_array(&arrow_type(column.spec.kind), rows));
                continue;
            };
            let null_if = |value: &str| column.spec.null_if.iter().chain(&self.options.null_values).any(|n| n == value);
            let array = convert::column(values, &column.spec, &null_if, |row, value, reason| {
                if rescued.is_on() {
                    rescued.add_text(row, &column.spec.path, value);
                    return Ok(());
                }
                if self.options.policy == BadRowPolicy::QuarantineFile {
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
            converted.push(array);
        }
        let discovered = match &raw.unmapped {
            Some(unmapped) => self.place_unmapped(unmapped, raw.text_values, &mut rescued, first_record)?,
            None => Discovered::default(),
        };
        let mut converted = converted.into_iter();
        let rescued_values = rescued.values();
        let mut rescued_array = Some(rescued.finish(file_name));
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.slots.len());
        for slot in &self.slots {
            arrays.push(match slot {
                Slot::Column(_) => converted.next().ok_or_else(|| MapError::Invalid("column count".into()))?,
                Slot::SourceFile => Arc::new(StringArray::from_iter_values(std::iter::repeat_n(file_name, rows))),
                Slot::IngestedAt => Arc::new(TimestampMicrosecondArray::from(vec![ingested_at_us; rows]).with_timezone("UTC")),
                Slot::Rescued => Arc::new(rescued_array.take().unwrap_or_else(|| StringArray::new_null(rows))),
            });
        }
        let batch = RecordBatch::try_new(self.schema.clone(), arrays)?;
        let bad_rows = bad.iter().filter(|b| **b).count() as u64;
        let batch = if self.options.policy == BadRowPolicy::Skip && bad_rows > 0 {
            let keep = BooleanArray::from(bad.iter().map(|b| !b).collect::<Vec<bool>>());
            arrow::compute::filter_record_batch(&batch, &keep)?
        } else {
            batch
        };
        let ignored = if self.options.evolution == Evolution::None { raw.ignored } else { 0 };
        Ok(Mapped { batch, bad_rows, rescued: rescued_values, ignored, discovered })
    }

    /// Sends each row's unmapped fields where the evolution mode says: discovered as new
    /// columns, rescued, or refused.
    fn place_unmapped(
        &self,
        unmapped: &StringArray,
        text_values: bool,
        rescued: &mut rescue::Rescued,
        first_record: u64,
    ) -> Result<Discovered, MapError> {
        let mut discovered = Discovered::default();
        for row in 0..unmapped.len() {
            if unmapped.is_null(row) {
                continue;
            }
            let fields: IndexMap<String, &serde_json::value::RawValue> = serde_json::from_str(unmapped.value(row))
                .map_err(|e| MapError::Invalid(format!("record {}: unmapped fields: {e}", first_record + row as u64)))?;
            for (path, value) in fields {
                if value.get() == "null" {
                    continue;
                }
                let record = first_record + row as u64;
                match self.options.evolution {
                    Evolution::Fail => return Err(MapError::NewField { field: path, record }),
                    Evolution::Rescue | Evolution::None => rescued.add_json(row, &path, value),
                    Evolution::AddColumns => match self.placeable(&path) {
                        Ok(()) => discovered.add(&path, value, text_values),
                        Err(_) if rescued.is_on() => rescued.add_json(row, &path, value),
                        Err(reason) => return Err(MapError::Unplaceable { field: path, record, reason }),
                    },
                }
            }
        }
        Ok(discovered)
    }

    /// Whether `path` can become a column beside the existing ones. A path a column already
    /// reads, yet captured, is a key the dotted path cannot name (`{"a.b": 1}` is not `a` then
    /// `b`): another column would not read it either.
    fn placeable(&self, path: &str) -> Result<(), String> {
        if self.objects.contains(path) {
            return Err(format!("the table reads {path:?} as an object"));
        }
        if self.columns.iter().any(|c| c.spec.path == path) {
            return Err(format!("the key {path:?} cannot be named by a dotted path"));
        }
        Ok(())
    }

    /// This mapping with the table's columns it lacks added at the end, as the table's schema
    /// says (columns schema evolution added before); columns without ingestd's path metadata
    /// are left to nulls.
    pub fn with_table_columns(&self, schema: &Schema) -> Result<Mapping, MapError> {
        let mut columns = self.columns.clone();
        let mut slots = self.slots.clone();
        for field in schema.fields() {
            if self.schema.field_with_name(field.name()).is_ok() {
                continue;
            }
            let Some(path) = field.metadata().get(PATH_METADATA) else { continue };
            let kind = column_type(field).map_err(MapError::Invalid)?;
            columns.push(MappedColumn {
                name: field.name().clone(),
                spec: ColumnConfig { path: path.clone(), kind, format: None, null_if: Vec::new() },
            });
            slots.push(Slot::Column(columns.len() - 1));
        }
        Mapping::build(columns, slots, self.options.clone())
    }

    /// This mapping with the discovered fields added as columns at the end of the table, each
    /// typed by its hint or by inference; returns it and the new columns with their paths.
    pub fn evolve(&self, discovered: &Discovered) -> Result<(Mapping, Vec<(String, String)>), MapError> {
        let mut columns = self.columns.clone();
        let mut slots = self.slots.clone();
        let mut taken: Vec<String> = self.schema.fields().iter().map(|f| f.name().clone()).collect();
        let mut added = Vec::new();
        for (path, kind) in discovered.columns() {
            let name = infer::unique_name(&infer::column_name(path), &taken);
            let kind = self.options.hints.get(&name).copied().unwrap_or(kind);
            taken.push(name.clone());
            added.push((name.clone(), path.to_string()));
            columns.push(MappedColumn { name, spec: ColumnConfig { path: path.to_string(), kind, format: None, null_if: Vec::new() } });
            slots.push(Slot::Column(columns.len() - 1));
        }
        Ok((Mapping::build(columns, slots, self.options.clone())?, added))
    }
}

/// The decoded text column a column reads: decoders name their columns by the dotted path
/// (JSON) or the header (CSV).
fn leaf<'a>(raw: &'a RecordBatch, column: &MappedColumn) -> Option<&'a StringArray> {
    raw.column_by_name(&column.spec.path)?.as_string_opt::<i32>()
}

/// The Arrow field of a data column, with its path and type in the field metadata.
fn column_field(column: &MappedColumn) -> Field {
    let metadata =
        HashMap::from([(PATH_METADATA.to_string(), column.spec.path.clone()), (TYPE_METADATA.to_string(), column.spec.kind.name())]);
    Field::new(&column.name, arrow_type(column.spec.kind), true).with_metadata(metadata)
}

/// The ingestd type of a table column: its metadata, or what its Arrow type says.
fn column_type(field: &Field) -> Result<ColumnType, String> {
    if let Some(kind) = field.metadata().get(TYPE_METADATA)
        && let Ok(kind) = kind.parse::<ColumnType>()
        && arrow_type(kind).equals_datatype(field.data_type())
    {
        return Ok(kind);
    }
    Ok(match field.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => ColumnType::String,
        DataType::Int32 => ColumnType::Int32,
        DataType::Int64 => ColumnType::Int64,
        DataType::Float64 => ColumnType::Float64,
        DataType::Boolean => ColumnType::Bool,
        DataType::Date32 => ColumnType::Date,
        DataType::Timestamp(_, _) => ColumnType::Timestamp,
        DataType::Decimal128(precision, scale) if *scale >= 0 => ColumnType::Decimal { precision: *precision, scale: *scale as u8 },
        DataType::List(item) => ColumnType::List(match item.data_type() {
            DataType::Int64 => crate::config::ListItem::Int64,
            DataType::Float64 => crate::config::ListItem::Float64,
            DataType::Boolean => crate::config::ListItem::Bool,
            _ => crate::config::ListItem::String,
        }),
        other => return Err(format!("column {:?} has type {other}, which ingestd does not write", field.name())),
    })
}

/// The element field of a list column, named as Delta and Parquet name it.
pub fn list_element(item: crate::config::ListItem) -> Field {
    Field::new("element", arrow_type(item.column_type()), true)
}

/// The Arrow type each column type is written as.
pub fn arrow_type(kind: ColumnType) -> DataType {
    match kind {
        ColumnType::String | ColumnType::Json => DataType::Utf8,
        ColumnType::Int32 => DataType::Int32,
        ColumnType::Int64 => DataType::Int64,
        ColumnType::Float64 => DataType::Float64,
        ColumnType::Bool => DataType::Boolean,
        ColumnType::Date => DataType::Date32,
        ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        ColumnType::Decimal { precision, scale } => DataType::Decimal128(precision, scale as i8),
        ColumnType::List(item) => DataType::List(Arc::new(list_element(item))),
    }
}

#[cfg(test)]
mod tests;

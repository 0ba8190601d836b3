//! The table's schema as the mapping sees it, and its evolution. Columns are only ever added
//! (nullable, after the others) and never retyped: delta-rs cannot widen a column's type, and a
//! cast could change values. The field metadata ingestd writes (`ingestd.path`, `ingestd.type`)
//! is kept in the Delta schema, so the schema read back from the log is the whole mapping.

use arrow::array::{ArrayRef, new_null_array};
use arrow::datatypes::{DataType as ArrowType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use deltalake::kernel::{ArrayType, DataType, MetadataValue, PrimitiveType, StructField, StructType};
use deltalake::{DeltaTable, DeltaTableError};
use std::collections::HashMap;
use std::sync::Arc;

/// Prefix of the field metadata keys ingestd owns.
const METADATA_PREFIX: &str = "ingestd.";

/// The Delta type of each Arrow type the mapping produces.
fn delta_type(arrow: &ArrowType) -> Option<DataType> {
    Some(DataType::Primitive(match arrow {
        ArrowType::Utf8 => PrimitiveType::String,
        ArrowType::Int32 => PrimitiveType::Integer,
        ArrowType::Int64 => PrimitiveType::Long,
        ArrowType::Float64 => PrimitiveType::Double,
        ArrowType::Boolean => PrimitiveType::Boolean,
        ArrowType::Date32 => PrimitiveType::Date,
        ArrowType::Timestamp(TimeUnit::Microsecond, Some(_)) => PrimitiveType::Timestamp,
        ArrowType::Decimal128(precision, scale) if *scale >= 0 => return DataType::decimal(*precision, *scale as u8).ok(),
        ArrowType::List(item) => return Some(DataType::Array(Box::new(ArrayType::new(delta_type(item.data_type())?, true)))),
        _ => return None,
    }))
}

/// The Delta column of an Arrow field, nullable, with ingestd's field metadata.
pub(super) fn struct_field(field: &Field) -> Result<StructField, String> {
    let kind = delta_type(field.data_type())
        .ok_or_else(|| format!("column {:?}: type {} has no Delta equivalent", field.name(), field.data_type()))?;
    let metadata = field
        .metadata()
        .iter()
        .filter(|(key, _)| key.starts_with(METADATA_PREFIX))
        .map(|(key, value)| (key.clone(), MetadataValue::String(value.clone())));
    Ok(StructField::new(field.name().clone(), kind, true).with_metadata(metadata))
}

/// The table's columns as Arrow fields carrying ingestd's field metadata (Arrow's conversion
/// of the Delta schema leaves it out).
pub(super) fn table_schema(table: &DeltaTable) -> Result<SchemaRef, DeltaTableError> {
    let snapshot = table.snapshot()?;
    let arrow = snapshot.snapshot().arrow_schema();
    let kernel = snapshot.schema();
    let fields: Vec<Field> = arrow
        .fields()
        .iter()
        .map(|field| {
            let metadata: HashMap<String, String> = kernel
                .field(field.name())
                .map(|k| {
                    k.metadata()
                        .iter()
                        .filter_map(|(key, value)| match value {
                            MetadataValue::String(s) if key.starts_with(METADATA_PREFIX) => Some((key.clone(), s.clone())),
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default();
            field.as_ref().clone().with_metadata(metadata)
        })
        .collect();
    Ok(Arc::new(Schema::new(fields)))
}

/// The columns of `batch` the table lacks, in the batch's order. A column both have must have
/// the same type: the error names it.
pub(super) fn added_columns(table: &Schema, batch: &Schema) -> Result<Vec<Field>, String> {
    let mut added = Vec::new();
    for field in batch.fields() {
        match table.field_with_name(field.name()) {
            // Nested types compare without their element names (`item`, `element`).
            Ok(have) if have.data_type().equals_datatype(field.data_type()) => {}
            Ok(have) => {
                return Err(format!(
                    "column {:?} is {} in the table but {} in the mapping (a column's type never changes)",
                    field.name(),
                    have.data_type(),
                    field.data_type()
                ));
            }
            Err(_) => added.push(field.as_ref().clone()),
        }
    }
    Ok(added)
}

/// The table's Delta schema with `added` after its columns.
pub(super) fn evolved(table: &DeltaTable, added: &[Field]) -> Result<StructType, String> {
    let snapshot = table.snapshot().map_err(|e| e.to_string())?;
    let mut fields: Vec<StructField> = snapshot.schema().fields().cloned().collect();
    for field in added {
        fields.push(struct_field(field)?);
    }
    StructType::try_new(fields).map_err(|e| e.to_string())
}

/// `batch` as a batch of `target`: its columns by name, null for the ones it lacks.
pub(super) fn align(batch: &RecordBatch, target: &SchemaRef) -> Result<RecordBatch, arrow::error::ArrowError> {
    let rows = batch.num_rows();
    let columns: Vec<ArrayRef> = target
        .fields()
        .iter()
        .map(|field| match batch.column_by_name(field.name()) {
            Some(column) if column.data_type() == field.data_type() => Ok(column.clone()),
            // The same type under other element names: a cast renames, nothing else.
            Some(column) => arrow::compute::cast(column, field.data_type()),
            None => Ok(new_null_array(field.data_type(), rows)),
        })
        .collect::<Result<_, _>>()?;
    RecordBatch::try_new(target.clone(), columns)
}

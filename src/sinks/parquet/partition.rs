//! Hive partitioning of a batch's rows: one folder (`col=value/...`) per distinct key.

use super::ParquetBatchWriter;
use crate::sinks::SinkError;
use arrow::array::{Array, ArrayRef, UInt32Array};
use arrow::record_batch::RecordBatch;
use std::collections::BTreeMap;

const HIVE_NULL: &str = "__HIVE_DEFAULT_PARTITION__";

impl ParquetBatchWriter {
    /// Rows of `batch` grouped by their hive partition folder.
    pub(super) fn split(&self, batch: &RecordBatch) -> Result<Vec<(String, RecordBatch)>, SinkError> {
        let data_columns: Vec<ArrayRef> =
            (0..batch.num_columns()).filter(|i| !self.partition_idx.contains(i)).map(|i| batch.column(i).clone()).collect();
        let data = RecordBatch::try_new(self.file_schema.clone(), data_columns).map_err(|e| self.err(e))?;
        if self.partition_idx.is_empty() {
            return Ok(vec![(String::new(), data)]);
        }
        let keys: Vec<ArrayRef> = self
            .partition_idx
            .iter()
            .map(|&i| arrow::compute::cast(batch.column(i), &arrow::datatypes::DataType::Utf8))
            .collect::<Result<_, _>>()
            .map_err(|e| self.err(e))?;
        let mut groups: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        for row in 0..batch.num_rows() {
            let folder: Vec<String> = self
                .partition_by
                .iter()
                .zip(&keys)
                .map(|(name, key)| {
                    let key = arrow::array::AsArray::as_string::<i32>(key.as_ref());
                    let value = if key.is_null(row) { HIVE_NULL.to_string() } else { escape_partition_value(key.value(row)) };
                    format!("{name}={value}")
                })
                .collect();
            groups.entry(folder.join("/")).or_default().push(row as u32);
        }
        groups
            .into_iter()
            .map(|(folder, rows)| {
                let rows = UInt32Array::from(rows);
                let columns = data.columns().iter().map(|c| arrow::compute::take(c, &rows, None)).collect::<Result<Vec<_>, _>>();
                let part = columns.and_then(|c| RecordBatch::try_new(self.file_schema.clone(), c)).map_err(|e| self.err(e))?;
                Ok((folder, part))
            })
            .collect()
    }
}

/// Percent-encodes a partition value byte by byte (UTF-8), as Hive and its readers decode it.
pub(super) fn escape_partition_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-_.".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

//! CSV (RFC 4180: quotes, embedded newlines, CRLF) through arrow-csv, every column as text.

use super::{BATCH_ROWS, DecodeError, Limit, Position, RawBatch, Unmapped};
use crate::config::CsvConfig;
use arrow::array::{Array, AsArray, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use std::io::{BufRead, Cursor};
use std::sync::Arc;

type Emit<'e> = &'e mut dyn FnMut(RawBatch) -> Result<(), DecodeError>;

/// The header's column names, read without consuming the stream.
/// More than `max_columns` fields is refused: arrow-csv's buffers grow with the header's width.
fn header(reader: &mut dyn BufRead, csv: &CsvConfig, max_columns: usize) -> Result<Vec<String>, DecodeError> {
    let head = reader.fill_buf().map_err(|e| DecodeError::io("cannot read", e))?;
    let (schema, _) = arrow::csv::reader::Format::default()
        .with_header(true)
        .with_delimiter(csv.delimiter as u8)
        .with_quote(csv.quote as u8)
        .infer_schema(Cursor::new(head), Some(0))
        .map_err(|e| DecodeError::malformed(format!("cannot read the CSV header: {e}"), Some(line(1))))?;
    if schema.fields().len() > max_columns {
        let position = Position { line: Some(1), byte: Some(0), ..Default::default() };
        return Err(DecodeError::limit(Limit::MaxColumns, max_columns as u64, position));
    }
    Ok(schema.fields().iter().map(|f| f.name().clone()).collect())
}

fn line(n: u64) -> Position {
    Position { line: Some(n), ..Default::default() }
}

fn reader_for(
    reader: Box<dyn BufRead + Send>,
    csv: &CsvConfig,
    header: &[String],
    projection: Vec<usize>,
) -> Result<arrow::csv::reader::BufReader<Box<dyn BufRead + Send>>, DecodeError> {
    let schema = Schema::new(header.iter().map(|h| Field::new(h, DataType::Utf8, true)).collect::<Vec<_>>());
    // arrow-csv makes every empty field null by default; a present field is a value here, and
    // only the mapping's `null_values` make nulls (so `null_values = []` keeps `""`).
    let no_nulls = regex::Regex::new(r"[^\s\S]").map_err(|e| DecodeError::malformed(format!("cannot read CSV: {e}"), None))?;
    arrow::csv::ReaderBuilder::new(Arc::new(schema))
        .with_null_regex(no_nulls)
        .with_header(true)
        .with_delimiter(csv.delimiter as u8)
        .with_quote(csv.quote as u8)
        .with_batch_size(BATCH_ROWS)
        .with_truncated_rows(csv.allow_short_rows)
        .with_projection(projection)
        .build_buffered(reader)
        .map_err(|e| DecodeError::malformed(format!("cannot read CSV: {e}"), None))
}

/// Decodes the columns named in `wanted`; a wanted column missing from the header is an error.
/// The other columns are skipped, counted or captured as `unmapped` says.
pub(super) fn decode(
    mut reader: Box<dyn BufRead + Send>,
    csv: &CsvConfig,
    max_columns: usize,
    (wanted, unmapped): (&[String], Unmapped),
    emit: Emit<'_>,
) -> Result<u64, DecodeError> {
    let header = header(&mut reader, csv, max_columns)?;
    if header.is_empty() {
        return Ok(0);
    }
    let mut projection = Vec::with_capacity(wanted.len());
    for column in wanted {
        match header.iter().position(|h| h == column) {
            Some(i) => projection.push(i),
            None => {
                return Err(DecodeError::malformed(format!("the CSV header has no column {column:?} (it has {header:?})"), Some(line(1))));
            }
        }
    }
    let others: Vec<usize> = (0..header.len()).filter(|i| !projection.contains(i)).collect();
    let wanted_count = projection.len();
    if unmapped == Unmapped::Capture {
        projection.extend(&others);
    }
    let mut rows = 0u64;
    for batch in reader_for(reader, csv, &header, projection)? {
        let batch = batch.map_err(|e| {
            DecodeError::malformed(format!("invalid CSV: {e}"), Some(Position { record: Some(rows + 1), ..Default::default() }))
        })?;
        rows += batch.num_rows() as u64;
        let ignored = match unmapped {
            Unmapped::Skip => 0,
            Unmapped::Count | Unmapped::Capture => (others.len() * batch.num_rows()) as u64,
        };
        let captured = (unmapped == Unmapped::Capture).then(|| capture(&batch, wanted_count, csv));
        let text = batch.project(&(0..wanted_count).collect::<Vec<_>>()).map_err(|e| DecodeError::malformed(e.to_string(), None))?;
        emit(RawBatch { text, unmapped: captured, ignored, text_values: true })?;
    }
    Ok(rows)
}

/// Each row's columns from `first` on (those no column reads) as one JSON object of strings;
/// null values are left out, a row with none is null.
fn capture(batch: &RecordBatch, first: usize, csv: &CsvConfig) -> arrow::array::StringArray {
    let schema = batch.schema();
    let names: Vec<String> = schema.fields()[first..].iter().map(|f| serde_json::to_string(f.name()).unwrap_or_default()).collect();
    let columns: Vec<_> = batch.columns()[first..].iter().map(|c| c.as_string::<i32>()).collect();
    let mut out = StringBuilder::new();
    let mut row_text = String::new();
    for row in 0..batch.num_rows() {
        row_text.clear();
        for (name, column) in names.iter().zip(&columns) {
            if column.is_null(row) || csv.null_values.iter().any(|n| n == column.value(row)) {
                continue;
            }
            row_text.push(if row_text.is_empty() { '{' } else { ',' });
            row_text.push_str(name);
            row_text.push(':');
            row_text.push_str(&serde_json::to_string(column.value(row)).unwrap_or_default());
        }
        if row_text.is_empty() {
            out.append_null();
        } else {
            row_text.push('}');
            out.append_value(&row_text);
        }
    }
    out.finish()
}

/// The header and up to `limit` rows, all columns.
pub(super) fn sample(
    mut reader: Box<dyn BufRead + Send>,
    csv: &CsvConfig,
    max_columns: usize,
    limit: usize,
) -> Result<RecordBatch, DecodeError> {
    let header = header(&mut reader, csv, max_columns)?;
    let projection = (0..header.len()).collect();
    let schema = Arc::new(Schema::new(header.iter().map(|h| Field::new(h, DataType::Utf8, true)).collect::<Vec<_>>()));
    match reader_for(reader, csv, &header, projection)?.next() {
        Some(batch) => {
            let batch = batch.map_err(|e| DecodeError::malformed(format!("invalid CSV: {e}"), None))?;
            Ok(batch.slice(0, limit.min(batch.num_rows())))
        }
        None => Ok(RecordBatch::new_empty(schema)),
    }
}

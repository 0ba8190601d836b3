//! CSV (RFC 4180: quotes, doubled quotes, embedded newlines, CRLF; blank lines passed) through
//! csv_core, every column as text. Memory is one record, its field ends and one batch of the
//! columns read, whatever the file's width or length; `format.limits` bound the lines, records
//! and fields, and the header's width.
//!
//! A field present in a row is a value, the empty string too; only a row shorter than its
//! header (with `allow_short_rows`) has nulls. Which values mean null is the mapping's business
//! (`csv.null_values`, `[""]` by default), as it is for JSON.

mod reader;
#[cfg(test)]
mod tests;

use super::{BATCH_ROWS, DecodeError, Lead, Limit, Position, RawBatch, Unmapped};
use crate::config::{CsvConfig, LimitsConfig};
use arrow::array::{ArrayRef, StringArray};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::error::ArrowError;
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use reader::{CsvReader, Fields, Width};
use std::io::BufRead;
use std::sync::Arc;

type Emit<'e> = &'e mut dyn FnMut(RawBatch) -> Result<(), DecodeError>;

/// A batch closes early once its text reaches this, as JSON's do; a sample stops there.
const MAX_BATCH_TEXT: usize = 64 << 20;
/// The most text one Arrow string column holds (its offsets are `i32`).
const MAX_COLUMN_TEXT: usize = i32::MAX as usize;
/// Header names a "no column" error lists.
const NAMES_SHOWN: usize = 20;

/// Decodes the columns named in `wanted`; a wanted column missing from the header is an error.
/// The other columns are skipped, counted or captured as `unmapped` says. `start` is the file
/// offset (and the newlines before it) of the reader's first byte, for positions in errors.
/// Returns the number of rows.
pub(super) fn decode(
    reader: Box<dyn BufRead + Send>,
    csv: &CsvConfig,
    limits: &LimitsConfig,
    start: Lead,
    (wanted, unmapped): (&[String], Unmapped),
    emit: Emit<'_>,
) -> Result<u64, DecodeError> {
    let mut reader = CsvReader::new(reader, csv, limits, start);
    let Some((header, at)) = read_header(&mut reader)? else { return Ok(0) };
    let mut projection = Vec::with_capacity(wanted.len());
    for column in wanted {
        match header.iter().position(|h| h == column) {
            Some(i) => projection.push(i),
            None => return Err(DecodeError::malformed(format!("the CSV header has no column {column:?} ({})", listed(&header)), Some(at))),
        }
    }
    let others: Vec<usize> = (0..header.len()).filter(|i| !projection.contains(i)).collect();
    let capture = unmapped == Unmapped::Capture;
    let mut kept = vec![false; header.len()];
    for &i in projection.iter().chain(if capture { &others[..] } else { &[] }) {
        kept[i] = true;
    }
    // Captured fields go in as `"name":"value"` members: the names are escaped once.
    let json_name = |h: &String| {
        let mut name = Vec::new();
        push_json_string(&mut name, h.as_bytes());
        name
    };
    let names: Vec<Vec<u8>> = if capture { header.iter().map(json_name).collect() } else { Vec::new() };
    let null_values: Vec<&[u8]> = csv.null_values.iter().map(|n| n.as_bytes()).collect();
    let ignored_per_row = match unmapped {
        Unmapped::Skip => 0,
        Unmapped::Count | Unmapped::Capture => others.len() as u64,
    };
    // Escaping can make a row's captured JSON several times its fields (a control character is
    // six bytes): it may be twice the longest record, no more.
    let most_captured = usize::try_from(limits.max_record.0.saturating_mul(2)).unwrap_or(usize::MAX);
    let schema = text_schema(wanted);
    let mut batch = Batch::new(&schema, projection.len(), capture);
    let (mut rows, mut row_text) = (0u64, Vec::new());
    while let Some(fields) = reader.next_record(Width::Row(&kept))? {
        check_short(&fields, header.len(), csv)?;
        row_text.clear();
        if capture && !capture_row(&fields, &others, &names, &null_values, most_captured, &mut row_text) {
            let mut error = DecodeError::limit(Limit::MaxRecord, Limit::MaxRecord.configured(limits), fields.position());
            error.message = error.message.replacen("a record longer than", "the fields no column reads, as JSON, are longer than twice", 1);
            return Err(error);
        }
        let row_bytes = projection.iter().map(|&i| fields.get(i).map_or(0, <[u8]>::len)).sum::<usize>() + row_text.len();
        // A column's offsets are i32: the batch closes before a row that would pass them.
        if batch.rows > 0 && batch.bytes + row_bytes > MAX_COLUMN_TEXT {
            emit(batch.take(ignored_per_row)?)?;
        }
        if row_bytes > MAX_COLUMN_TEXT {
            let message = "the row's text (its fields no column reads as JSON) is too long for one batch".to_string();
            return Err(DecodeError::malformed(message, Some(fields.position())));
        }
        for (column, &i) in batch.columns.iter_mut().zip(&projection) {
            column.push(fields.get(i));
        }
        if let Some(captured) = &mut batch.captured {
            captured.push((!row_text.is_empty()).then_some(&row_text[..]));
        }
        batch.rows += 1;
        batch.bytes += row_bytes;
        rows += 1;
        if batch.rows >= BATCH_ROWS || batch.bytes >= MAX_BATCH_TEXT {
            emit(batch.take(ignored_per_row)?)?;
        }
    }
    if batch.rows > 0 {
        emit(batch.take(ignored_per_row)?)?;
    }
    Ok(rows)
}

/// The header and up to `limit` rows, all columns (fewer once their text reaches
/// [`MAX_BATCH_TEXT`]), read within `limits`.
pub(super) fn sample(
    reader: Box<dyn BufRead + Send>,
    csv: &CsvConfig,
    limits: &LimitsConfig,
    start: Lead,
    limit: usize,
) -> Result<RecordBatch, DecodeError> {
    let mut reader = CsvReader::new(reader, csv, limits, start);
    let Some((header, _)) = read_header(&mut reader)? else { return Ok(RecordBatch::new_empty(Arc::new(Schema::empty()))) };
    let schema = text_schema(&header);
    let kept = vec![true; header.len()];
    let mut batch = Batch::new(&schema, header.len(), false);
    while batch.rows < limit && batch.bytes < MAX_BATCH_TEXT {
        let Some(fields) = reader.next_record(Width::Row(&kept))? else { break };
        check_short(&fields, header.len(), csv)?;
        for (i, column) in batch.columns.iter_mut().enumerate() {
            let value = fields.get(i);
            batch.bytes += value.map_or(0, <[u8]>::len);
            column.push(value);
        }
        batch.rows += 1;
    }
    Ok(batch.take(0)?.text)
}

/// The header's names and where it is; `None` for an input without a record.
fn read_header<R: BufRead>(reader: &mut CsvReader<R>) -> Result<Option<(Vec<String>, Position)>, DecodeError> {
    let Some(fields) = reader.next_record(Width::Header)? else { return Ok(None) };
    let at = Position { line: fields.position().line, ..Position::default() };
    let mut names = Vec::with_capacity(fields.count());
    for i in 0..fields.count() {
        // The reader has checked every field is UTF-8.
        let name = String::from_utf8(fields.get(i).unwrap_or_default().to_vec())
            .map_err(|_| DecodeError::malformed(format!("invalid CSV: field {} of the header is not UTF-8", i + 1), Some(at)))?;
        names.push(name);
    }
    Ok(Some((names, at)))
}

/// A row with fewer fields than the header is an error unless `allow_short_rows` (its missing
/// fields are then null); one with more, the reader refuses.
fn check_short(fields: &Fields<'_>, width: usize, csv: &CsvConfig) -> Result<(), DecodeError> {
    if fields.count() < width && !csv.allow_short_rows {
        let message = format!("invalid CSV: incorrect number of fields, expected {width} got {}", fields.count());
        return Err(DecodeError::malformed(message, Some(fields.position())));
    }
    Ok(())
}

/// The row's fields at `others` (those no column reads) as one JSON object of strings, into
/// `out`: values in `null_values` are left out, and so are fields past a short row's end;
/// nothing at all when none is left. False, with `out` cut short, once it passes `most` bytes.
fn capture_row(fields: &Fields<'_>, others: &[usize], names: &[Vec<u8>], null_values: &[&[u8]], most: usize, out: &mut Vec<u8>) -> bool {
    for &i in others {
        if out.len() > most {
            return false;
        }
        let Some(value) = fields.get(i) else { continue };
        if null_values.contains(&value) {
            continue;
        }
        out.push(if out.is_empty() { b'{' } else { b',' });
        out.extend_from_slice(names.get(i).map_or(&b"\"\""[..], |n| &n[..]));
        out.push(b':');
        push_json_string(out, value);
    }
    if !out.is_empty() {
        out.push(b'}');
    }
    out.len() <= most
}

/// `text` (UTF-8) as a JSON string: quotes, backslashes and control characters escaped.
fn push_json_string(out: &mut Vec<u8>, text: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(b'"');
    let mut from = 0;
    for (i, &b) in text.iter().enumerate() {
        let short: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&text[from..i]);
        if short.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(short);
        }
        from = i + 1;
    }
    out.extend_from_slice(&text[from..]);
    out.push(b'"');
}

/// `(it has ["a", "b"])`, the first [`NAMES_SHOWN`] names of a header only.
fn listed(header: &[String]) -> String {
    match header.len().checked_sub(NAMES_SHOWN) {
        Some(more) if more > 0 => format!("it has {:?} and {more} more", &header[..NAMES_SHOWN]),
        _ => format!("it has {header:?}"),
    }
}

fn text_schema(names: &[String]) -> SchemaRef {
    Arc::new(Schema::new(names.iter().map(|n| Field::new(n, DataType::Utf8, true)).collect::<Vec<_>>()))
}

/// The text columns of a batch being filled, row by row.
struct Batch {
    schema: SchemaRef,
    columns: Vec<TextColumn>,
    /// With [`Unmapped::Capture`]: each row's fields no column reads, as one JSON object.
    captured: Option<TextColumn>,
    rows: usize,
    /// Text held, all columns together.
    bytes: usize,
}

impl Batch {
    fn new(schema: &SchemaRef, columns: usize, capture: bool) -> Batch {
        Batch {
            schema: schema.clone(),
            columns: (0..columns).map(|_| TextColumn::new()).collect(),
            captured: capture.then(TextColumn::new),
            rows: 0,
            bytes: 0,
        }
    }

    /// The rows so far as a [`RawBatch`] (each row had `ignored_per_row` values no column
    /// reads); starts over empty.
    fn take(&mut self, ignored_per_row: u64) -> Result<RawBatch, DecodeError> {
        let fresh = Batch::new(&self.schema, self.columns.len(), self.captured.is_some());
        let Batch { schema, columns, captured, rows, .. } = std::mem::replace(self, fresh);
        let invalid = |e: ArrowError| DecodeError::malformed(format!("invalid CSV text: {e}"), None);
        let arrays = columns.into_iter().map(|c| c.finish().map(|a| Arc::new(a) as ArrayRef));
        let arrays = arrays.collect::<Result<Vec<_>, _>>().map_err(invalid)?;
        // The row count is given: a file may be read for no column at all.
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        let text = RecordBatch::try_new_with_options(schema, arrays, &options).map_err(invalid)?;
        let unmapped = captured.map(TextColumn::finish).transpose().map_err(invalid)?;
        Ok(RawBatch { text, unmapped, ignored: ignored_per_row * rows as u64, text_values: true })
    }
}

/// One text column being built: values (UTF-8, checked by the reader and again by Arrow),
/// their ends, and which are present.
struct TextColumn {
    offsets: Vec<i32>,
    data: Vec<u8>,
    valid: Vec<bool>,
}

impl TextColumn {
    fn new() -> TextColumn {
        TextColumn { offsets: vec![0], data: Vec::new(), valid: Vec::new() }
    }

    fn push(&mut self, value: Option<&[u8]>) {
        if let Some(value) = value {
            self.data.extend_from_slice(value);
        }
        // Batches close before MAX_COLUMN_TEXT, and `finish` checks.
        self.offsets.push(self.data.len() as i32);
        self.valid.push(value.is_some());
    }

    fn finish(self) -> Result<StringArray, ArrowError> {
        if self.data.len() > MAX_COLUMN_TEXT {
            return Err(ArrowError::InvalidArgumentError(format!("{} bytes of text in one column", self.data.len())));
        }
        StringArray::try_new(OffsetBuffer::new(self.offsets.into()), self.data.into(), Some(NullBuffer::from(self.valid)))
    }
}

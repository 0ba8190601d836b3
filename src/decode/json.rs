//! JSON layouts (array, object envelope, NDJSON) through arrow-json's tape decoder.

use super::{for_each_chunk, ArraySplitter, DecodeError, Layout, Position, BATCH_ROWS};
use arrow::datatypes::SchemaRef;
use arrow::json::reader::Decoder;
use arrow::record_batch::RecordBatch;
use serde_json::value::RawValue;
use std::collections::HashMap;
use std::io::{BufRead, Read};

type Emit<'e> = &'e mut dyn FnMut(RecordBatch) -> Result<(), DecodeError>;

/// arrow-json's decoder plus the bookkeeping to say where an error is.
struct Columns<'e> {
    decoder: Decoder,
    emit: Emit<'e>,
    rows: u64,
}

impl<'e> Columns<'e> {
    fn new(schema: &SchemaRef, emit: Emit<'e>) -> Result<Columns<'e>, DecodeError> {
        let decoder = arrow::json::ReaderBuilder::new(schema.clone())
            .with_batch_size(BATCH_ROWS)
            .with_coerce_primitive(true)
            .build_decoder()
            .map_err(|e| DecodeError::malformed(format!("cannot build JSON decoder: {e}"), None))?;
        Ok(Columns { decoder, emit, rows: 0 })
    }

    fn feed(&mut self, mut bytes: &[u8]) -> Result<(), DecodeError> {
        while !bytes.is_empty() {
            let consumed = self
                .decoder
                .decode(bytes)
                .map_err(|e| DecodeError::malformed(format!("invalid JSON: {e}"), None))?;
            bytes = &bytes[consumed..];
            if !bytes.is_empty() {
                self.flush()?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), DecodeError> {
        let first = self.rows + 1;
        let batch = self.decoder.flush().map_err(|e| {
            DecodeError::malformed(
                format!("a record does not fit the mapping: {e}"),
                Some(Position { record: Some(first), ..Default::default() }),
            )
        })?;
        if let Some(batch) = batch {
            self.rows += batch.num_rows() as u64;
            (self.emit)(batch)?;
        }
        Ok(())
    }

    fn finish(mut self) -> Result<u64, DecodeError> {
        self.flush()?;
        Ok(self.rows)
    }
}

fn at_record(mut e: DecodeError, record: u64) -> DecodeError {
    e.position.get_or_insert(Position { record: Some(record.max(1)), ..Default::default() });
    e
}

/// A file that is one JSON array of records.
pub(super) fn decode_array(reader: impl Read, schema: &SchemaRef, emit: Emit<'_>) -> Result<u64, DecodeError> {
    let mut columns = Columns::new(schema, emit)?;
    let mut splitter = ArraySplitter::default();
    for_each_chunk(reader, |chunk| {
        splitter
            .feed(chunk, &mut |bytes| columns.feed(bytes))
            .map_err(|e| at_record(e, splitter.elements))
    })?;
    splitter.finish()?;
    columns.finish()
}

/// A file that is one JSON object with the records array at a dotted path.
pub(super) fn decode_envelope(mut reader: impl Read, path: &str, schema: &SchemaRef, emit: Emit<'_>) -> Result<u64, DecodeError> {
    let mut text = Vec::new();
    reader.read_to_end(&mut text).map_err(|e| DecodeError::io("cannot read or decompress", e))?;
    let records = find_records(&text, path)?;
    let mut columns = Columns::new(schema, emit)?;
    let mut splitter = ArraySplitter::default();
    splitter
        .feed(records.as_bytes(), &mut |bytes| columns.feed(bytes))
        .map_err(|e| at_record(e, splitter.elements))?;
    splitter.finish()?;
    columns.finish()
}

fn find_records<'t>(text: &'t [u8], path: &str) -> Result<&'t str, DecodeError> {
    let mut current: &RawValue = serde_json::from_slice(text)
        .map_err(|e| DecodeError::malformed(format!("invalid JSON: {e}"), Some(Position { line: Some(e.line() as u64), ..Default::default() })))?;
    for segment in path.split('.') {
        let object: HashMap<String, &RawValue> = serde_json::from_str(current.get()).map_err(|_| {
            DecodeError::malformed(format!("expected a JSON object holding {segment:?} (records_path = {path:?})"), None)
        })?;
        current = object.get(segment).copied().ok_or_else(|| {
            let mut keys: Vec<&String> = object.keys().collect();
            keys.sort();
            DecodeError::malformed(format!("no {segment:?} key (records_path = {path:?}); keys present: {keys:?}"), None)
        })?;
    }
    Ok(current.get())
}

/// A file of one JSON value per line.
pub(super) fn decode_ndjson(reader: impl Read, schema: &SchemaRef, emit: Emit<'_>) -> Result<u64, DecodeError> {
    let mut columns = Columns::new(schema, emit)?;
    let mut line = 1u64;
    for_each_chunk(reader, |chunk| {
        for piece in chunk.split_inclusive(|&b| b == b'\n') {
            columns.feed(piece).map_err(|mut e| {
                e.position = Some(Position { line: Some(line), ..e.position.unwrap_or_default() });
                e
            })?;
            if piece.ends_with(b"\n") {
                line += 1;
            }
        }
        Ok(())
    })?;
    columns.finish()
}

/// The first `limit` records as JSON texts.
pub(super) fn sample(mut reader: Box<dyn BufRead + Send>, layout: &Layout, limit: usize) -> Result<Vec<Vec<u8>>, DecodeError> {
    let mut records: Vec<Vec<u8>> = vec![Vec::new()];
    let mut collect = |bytes: &[u8]| -> Result<(), DecodeError> {
        if bytes == b"\n" {
            records.push(Vec::new());
        } else if let Some(last) = records.last_mut() {
            last.extend_from_slice(bytes);
        }
        Ok(())
    };
    match layout {
        Layout::JsonArray => {
            let mut splitter = ArraySplitter::default();
            // Stop early: sampling needs the first records, not the whole file.
            let mut buffer = vec![0u8; 1 << 20];
            loop {
                let n = reader.read(&mut buffer).map_err(|e| DecodeError::io("cannot read", e))?;
                if n == 0 || splitter.elements > limit as u64 {
                    break;
                }
                splitter.feed(&buffer[..n], &mut collect)?;
            }
        }
        Layout::JsonEnvelope(path) => {
            let mut text = Vec::new();
            reader.read_to_end(&mut text).map_err(|e| DecodeError::io("cannot read", e))?;
            let inner = find_records(&text, path)?;
            ArraySplitter::default().feed(inner.as_bytes(), &mut collect)?;
        }
        Layout::Ndjson => {
            for line in reader.lines().take(limit) {
                let line = line.map_err(|e| DecodeError::io("cannot read", e))?;
                collect(line.as_bytes())?;
                collect(b"\n")?;
            }
        }
        Layout::Csv => return Err(DecodeError::malformed("not a JSON file".into(), None)),
    }
    records.retain(|r| !r.iter().all(u8::is_ascii_whitespace));
    records.truncate(limit);
    Ok(records)
}

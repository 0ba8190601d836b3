//! JSON layouts (array, object envelope, NDJSON), streamed through a fixed buffer: whole
//! records are read from the buffer, an unfinished one waits for the next read. Memory is the
//! buffer plus one batch of text columns, whatever the file's size.

mod record;
mod syntax;

pub use record::FieldTree;
use record::TextColumns;

use super::{BATCH_ROWS, DecodeError, Layout, Lead, Limit, Position, RawBatch};
use crate::config::LimitsConfig;
use std::io::Read;
use syntax::{Bounds, Misfit, Stop, after_key, bad, expect, peek, skip_string, skip_value, skip_ws};

/// The read buffer; it grows for a record larger than this, up to `max_record` and a chunk.
const CHUNK: usize = 4 << 20;
/// A batch closes early once its text reaches this, far below Arrow's 2 GiB offset limit.
const MAX_BATCH_TEXT: usize = 64 << 20;
/// Sampling stops once the records it keeps reach this, whatever their number.
const SAMPLE_BYTES: usize = 64 << 20;

thread_local! {
    static READ_BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

type Emit<'e> = &'e mut dyn FnMut(RawBatch) -> Result<(), DecodeError>;

/// What is done with each record.
pub(super) enum Records<'a> {
    /// Projected into text columns, emitted as record batches.
    Columns { tree: &'a FieldTree, columns: TextColumns, emit: Emit<'a> },
    /// Kept whole as JSON text (sampling), up to `limit` records or [`SAMPLE_BYTES`] of them.
    Raw { texts: Vec<Vec<u8>>, limit: usize, bytes: usize },
}

/// Where the reader is in the file's structure, between records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    Start,
    /// Inside the envelope object at this depth of `records_path`; `first` before its first key.
    Envelope {
        level: usize,
        first: bool,
    },
    /// Inside the envelope object at this depth, after a comma: a key must follow.
    Key {
        level: usize,
    },
    /// Inside the records array; `first` before its first element.
    Array {
        first: bool,
    },
    /// Inside the records array, after a comma: a record must follow.
    Element,
    /// NDJSON: between lines.
    Lines,
    /// After the last record: only whitespace may follow.
    End,
}

/// Streaming state for one file.
pub(super) struct JsonReader<'a> {
    place: Place,
    /// records_path split at dots (empty: not an envelope).
    envelope: Vec<String>,
    /// Whether records_path's key has been found at each envelope level.
    found: Vec<bool>,
    ndjson: bool,
    records: Records<'a>,
    /// Records read so far.
    pub count: u64,
    /// Newlines passed between records (NDJSON line numbers).
    newlines: u64,
    /// Offset in the file of the buffer's first byte.
    base: u64,
    /// File offset up to which newlines have been counted.
    counted_to: u64,
    /// Bytes read at a time (small in tests, to put records across reads).
    chunk: usize,
    /// `format.limits`, as configured (for messages) and as counted.
    limits: LimitsConfig,
    bounds: Bounds,
    /// NDJSON: file offset of the line the next record is on (after the last line break
    /// passed between records).
    line_start: u64,
}

impl<'a> JsonReader<'a> {
    pub(super) fn new(layout: &Layout, records: Records<'a>, limits: &LimitsConfig) -> JsonReader<'a> {
        let envelope: Vec<String> = match layout {
            Layout::JsonEnvelope(path) => path.split('.').map(String::from).collect(),
            _ => Vec::new(),
        };
        let found = vec![false; envelope.len()];
        JsonReader {
            place: Place::Start,
            envelope,
            found,
            ndjson: *layout == Layout::Ndjson,
            records,
            count: 0,
            newlines: 0,
            base: 0,
            counted_to: 0,
            chunk: CHUNK,
            limits: *limits,
            bounds: Bounds::new(limits),
            line_start: 0,
        }
    }

    /// Starts counting at what sniffing passed (a BOM, whitespace), so that positions are the
    /// file's.
    fn starting_after(mut self, lead: Lead) -> JsonReader<'a> {
        self.base = lead.bytes;
        self.counted_to = lead.bytes;
        self.newlines = lead.newlines;
        // The lead's spaces after its last line break are not counted in the first line.
        self.line_start = lead.bytes;
        self
    }

    /// Reads the whole stream.
    pub(super) fn read_all(&mut self, reader: impl Read) -> Result<(), DecodeError> {
        // One buffer per thread, reused from file to file: zeroing 4 MiB per file showed up.
        let mut buf = READ_BUFFER.with(|b| std::mem::take(&mut *b.borrow_mut()));
        buf.resize(self.chunk, 0);
        let result = self.read_into(reader, &mut buf);
        buf.truncate(CHUNK);
        buf.shrink_to(CHUNK);
        READ_BUFFER.with(|b| *b.borrow_mut() = buf);
        result
    }

    fn read_into(&mut self, mut reader: impl Read, buf: &mut Vec<u8>) -> Result<(), DecodeError> {
        // A record of max_record bytes fits, and a chunk more: a field too long for max_field is
        // then seen long enough to be refused as such, even when max_field is max_record.
        let most = self.bounds.record.saturating_add(self.chunk);
        let mut len = 0;
        let mut eof = false;
        loop {
            while !eof && len < buf.len() {
                match reader.read(&mut buf[len..]) {
                    Ok(0) => eof = true,
                    Ok(n) => len += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(DecodeError::reading("cannot read or decompress", e)),
                }
            }
            let consumed = self.advance(&buf[..len], eof)?;
            if eof || self.sampled_enough() {
                return self.finish();
            }
            if consumed == 0 && len == buf.len() {
                // The step at the buffer's start (a record) does not end within it.
                if buf.len() >= most {
                    return Err(self.limit_error(Limit::MaxRecord, 0));
                }
                // Exactly this much: `resize` alone may reserve twice the length, and the
                // buffer is the memory the limit bounds.
                let grown = buf.len().saturating_mul(2).min(most);
                buf.reserve_exact(grown - buf.len());
                buf.resize(grown, 0);
            }
            buf.copy_within(consumed..len, 0);
            len -= consumed;
            self.base += consumed as u64;
        }
    }

    fn sampled_enough(&self) -> bool {
        matches!(&self.records, Records::Raw { texts, limit, bytes } if texts.len() >= *limit || *bytes >= SAMPLE_BYTES)
    }

    /// Reads every complete record in `buf`; returns how many bytes are done with. At `eof`
    /// everything must be done with.
    fn advance(&mut self, buf: &[u8], eof: bool) -> Result<usize, DecodeError> {
        let mut done = 0;
        loop {
            // Whitespace between steps is done with even when the step after it waits for more
            // bytes: a run of any length is then never kept, and never grows the buffer.
            done = self.skip_ws_counting(buf, done);
            if done == buf.len() {
                return Ok(done);
            }
            match self.step(buf, done) {
                Ok(next) => done = next,
                Err(Stop::More) if !eof => return Ok(done),
                Err(Stop::More) => return Err(self.truncated()),
                Err(Stop::Bad(what, at)) => return Err(self.error(format!("invalid JSON: {what}"), at)),
                Err(Stop::Misfit(misfit, at)) => return Err(self.error(self.describe(misfit), at)),
                Err(Stop::Limit(limit, at)) => return Err(self.limit_error(limit, at)),
            }
            if self.sampled_enough() {
                return Ok(done);
            }
            self.emit_if_full()?;
        }
    }

    /// One structural step from `i` (not whitespace, inside `buf`): a record, an envelope
    /// member, a bracket, a comma. Returns the position after it.
    fn step(&mut self, buf: &[u8], i: usize) -> Result<usize, Stop> {
        Ok(match self.place {
            Place::Start if self.ndjson => {
                self.place = Place::Lines;
                i
            }
            Place::Start if !self.envelope.is_empty() => {
                self.place = Place::Envelope { level: 0, first: true };
                expect(buf, i, b'{', "expected a JSON object (records_path is set)")?
            }
            Place::Start => {
                self.place = Place::Array { first: true };
                expect(buf, i, b'[', "expected a JSON array")?
            }
            Place::Lines => self.record(buf, i)?,
            Place::Array { first } => match peek(buf, i)? {
                b']' => {
                    self.place = match self.envelope.len() {
                        0 => Place::End,
                        n => Place::Envelope { level: n - 1, first: false },
                    };
                    i + 1
                }
                // The comma is a step of its own, so whitespace after it is passed as above.
                b',' if !first => {
                    self.place = Place::Element;
                    i + 1
                }
                _ if first => {
                    let end = self.record(buf, i)?;
                    self.place = Place::Array { first: false };
                    end
                }
                _ => return bad("expected ',' or ']' after a record", i),
            },
            Place::Element => {
                let end = self.record(buf, i)?;
                self.place = Place::Array { first: false };
                end
            }
            Place::Envelope { level, first } => self.envelope_step(buf, i, level, first)?,
            Place::Key { level } => self.member(buf, i, level)?,
            Place::End => return bad("unexpected data after the end of the JSON array", i),
        })
    }

    /// In an envelope object: its end, the comma before a key (a step of its own, as in the
    /// records array), or its first member.
    fn envelope_step(&mut self, buf: &[u8], i: usize, level: usize, first: bool) -> Result<usize, Stop> {
        match peek(buf, i)? {
            b'}' => {
                if !self.found[level] {
                    return Err(Stop::Misfit(Misfit::NoEnvelopeKey(level), i));
                }
                self.place = match level {
                    0 => Place::End,
                    _ => Place::Envelope { level: level - 1, first: false },
                };
                Ok(i + 1)
            }
            b',' if !first => {
                self.place = Place::Key { level };
                Ok(i + 1)
            }
            _ if first => self.member(buf, i, level),
            _ => bad("expected ',' or '}' in an object", i),
        }
    }

    /// A key and its value in the envelope object at `level`: records_path's key opens the
    /// next level (or the records array), any other value is skipped.
    fn member(&mut self, buf: &[u8], i: usize, level: usize) -> Result<usize, Stop> {
        if peek(buf, i)? != b'"' {
            return bad("expected a key (a string)", i);
        }
        let key_end = skip_string(buf, i)?;
        let value = after_key(buf, key_end)?;
        let is_path = !self.found[level] && buf[i + 1..key_end - 1] == *self.envelope[level].as_bytes();
        if !is_path {
            let end = skip_value(buf, value, self.bounds.record_depth + level + 1)?;
            self.place = Place::Envelope { level, first: false };
            return Ok(end);
        }
        let last = level + 1 == self.envelope.len();
        if peek(buf, value)? != if last { b'[' } else { b'{' } {
            return Err(Stop::Misfit(Misfit::EnvelopeShape(level), value));
        }
        // Only now: a step that stops for more bytes is retried from the key.
        self.found[level] = true;
        self.place = if last { Place::Array { first: true } } else { Place::Envelope { level: level + 1, first: true } };
        Ok(value + 1)
    }

    fn record(&mut self, buf: &[u8], i: usize) -> Result<usize, Stop> {
        let max_record = self.bounds.record;
        let end = match &mut self.records {
            Records::Columns { tree, columns, .. } => columns.record(tree, buf, i)?,
            Records::Raw { texts, bytes, .. } => {
                let end = skip_value(buf, i, self.bounds.record_depth)?;
                if end - i <= max_record {
                    texts.push(buf[i..end].to_vec());
                    *bytes += end - i;
                }
                end
            }
        };
        // A record that ends within the buffer may still be longer than max_record (the buffer
        // holds a chunk more); one that does not end in it stops the buffer's growth.
        if end - i > max_record {
            return Err(Stop::Limit(Limit::MaxRecord, i));
        }
        if self.ndjson {
            self.check_line(buf, i, end)?;
        }
        self.count += 1;
        Ok(end)
    }

    /// NDJSON: the line the record from `i` to `end` is on, from `line_start`,
    /// may be at most max_line. Only a span longer than that is scanned for line breaks of the
    /// record's own (a pretty-printed record), which then bound its lines one by one.
    fn check_line(&self, buf: &[u8], i: usize, end: usize) -> Result<(), Stop> {
        let max = u64::try_from(self.bounds.line).unwrap_or(u64::MAX);
        let end_at = self.base + end as u64;
        if end_at.saturating_sub(self.line_start) <= max {
            return Ok(());
        }
        let mut from = self.line_start;
        for newline in memchr::memchr_iter(b'\n', &buf[i..end]) {
            let at = self.base + (i + newline) as u64;
            if at.saturating_sub(from) > max {
                return Err(Stop::Limit(Limit::MaxLine, i));
            }
            from = at + 1;
        }
        if end_at.saturating_sub(from) > max {
            return Err(Stop::Limit(Limit::MaxLine, i));
        }
        Ok(())
    }

    fn emit_if_full(&mut self) -> Result<(), DecodeError> {
        if let Records::Columns { columns, .. } = &self.records
            && (columns.rows() >= BATCH_ROWS || columns.bytes() >= MAX_BATCH_TEXT)
        {
            self.emit_rows()?;
        }
        Ok(())
    }

    fn emit_rows(&mut self) -> Result<(), DecodeError> {
        if let Records::Columns { tree, columns, emit } = &mut self.records
            && columns.rows() > 0
        {
            let first = self.count + 1 - columns.rows() as u64;
            let batch = columns.take_batch(tree.unmapped()).map_err(|e| {
                DecodeError::malformed(format!("invalid text: {e}"), Some(Position { record: Some(first), ..Default::default() }))
            })?;
            emit(batch)?;
        }
        Ok(())
    }

    fn skip_ws_counting(&mut self, buf: &[u8], i: usize) -> usize {
        let end = skip_ws(buf, i);
        // A step retried after more bytes arrive passes the same whitespace again: count once.
        let from = i.max(self.counted_to.saturating_sub(self.base) as usize).min(end);
        if self.ndjson {
            self.newlines += buf[from..end].iter().filter(|&&b| b == b'\n').count() as u64;
            if let Some(last) = memchr::memrchr(b'\n', &buf[from..end]) {
                self.line_start = self.base + (from + last + 1) as u64;
            }
        }
        self.counted_to = self.counted_to.max(self.base + end as u64);
        end
    }

    fn finish(&mut self) -> Result<(), DecodeError> {
        let complete = match self.place {
            Place::End | Place::Lines => true,
            Place::Start => self.ndjson,
            _ => self.sampled_enough(),
        };
        if !complete {
            return Err(self.truncated());
        }
        self.emit_rows()
    }

    fn truncated(&self) -> DecodeError {
        let what = match self.place {
            Place::Start => "the file is empty".to_string(),
            Place::Array { .. } | Place::Element => "the JSON array is not closed (truncated file?)".to_string(),
            Place::Envelope { .. } | Place::Key { .. } => "the JSON object is not closed (truncated file?)".to_string(),
            _ => format!("the file ends inside record {} (truncated file?)", self.count + 1),
        };
        DecodeError::malformed(what, Some(self.position(None)))
    }

    fn describe(&self, misfit: Misfit) -> String {
        let path = self.envelope.join(".");
        match misfit {
            Misfit::NotAnObject => "a record is not a JSON object".to_string(),
            Misfit::NotAnObjectAt(node) => match &self.records {
                Records::Columns { tree, .. } => {
                    format!("a record does not fit the mapping: {:?} is not an object", tree.object_path(node))
                }
                Records::Raw { .. } => "a record does not fit the mapping".to_string(),
            },
            Misfit::NoEnvelopeKey(level) => format!("no {:?} key in the JSON object (records_path = {path:?})", self.envelope[level]),
            Misfit::EnvelopeShape(level) if level + 1 == self.envelope.len() => {
                format!("the value at records_path {path:?} is not an array")
            }
            Misfit::EnvelopeShape(level) => format!("{:?} is not an object (records_path = {path:?})", self.envelope[level]),
        }
    }

    fn error(&self, what: String, at: usize) -> DecodeError {
        DecodeError::malformed(what, Some(self.position(Some(self.base + at as u64))))
    }

    /// Past `limit` at buffer offset `at`.
    fn limit_error(&self, limit: Limit, at: usize) -> DecodeError {
        DecodeError::limit(limit, limit.configured(&self.limits), self.position(Some(self.base + at as u64)))
    }

    fn position(&self, byte: Option<u64>) -> Position {
        let record = matches!(self.place, Place::Array { .. } | Place::Element | Place::Lines).then_some(self.count + 1);
        let line = self.ndjson.then_some(self.newlines + 1);
        Position { record, line, byte }
    }
}

/// Decodes a JSON file of any layout into record batches of text columns; `reader` starts after
/// `lead`. Returns the number of records.
pub(super) fn decode(
    reader: impl Read,
    layout: &Layout,
    tree: &FieldTree,
    emit: Emit<'_>,
    lead: Lead,
    limits: &LimitsConfig,
) -> Result<u64, DecodeError> {
    let records = Records::Columns { tree, columns: TextColumns::new(tree, Bounds::new(limits)), emit };
    let mut json = JsonReader::new(layout, records, limits).starting_after(lead);
    json.read_all(reader)?;
    Ok(json.count)
}

/// [`decode`] from a file's first byte, `chunk` bytes at a time, with the default limits.
#[cfg(test)]
fn decode_in_chunks(reader: impl Read, layout: &Layout, tree: &FieldTree, emit: Emit<'_>, chunk: usize) -> Result<u64, DecodeError> {
    decode_limited(reader, layout, tree, emit, chunk, &LimitsConfig::default())
}

/// [`decode_in_chunks`] within `limits`.
#[cfg(test)]
fn decode_limited(
    reader: impl Read,
    layout: &Layout,
    tree: &FieldTree,
    emit: Emit<'_>,
    chunk: usize,
    limits: &LimitsConfig,
) -> Result<u64, DecodeError> {
    let records = Records::Columns { tree, columns: TextColumns::new(tree, Bounds::new(limits)), emit };
    let mut json = JsonReader::new(layout, records, limits);
    json.chunk = chunk;
    json.read_all(reader)?;
    Ok(json.count)
}

/// The first `limit` records as JSON texts (fewer once they hold [`SAMPLE_BYTES`]); `reader`
/// starts after `lead`.
pub(super) fn sample(
    reader: impl Read,
    layout: &Layout,
    limit: usize,
    lead: Lead,
    limits: &LimitsConfig,
) -> Result<Vec<Vec<u8>>, DecodeError> {
    let mut json = JsonReader::new(layout, Records::Raw { texts: Vec::new(), limit, bytes: 0 }, limits).starting_after(lead);
    json.read_all(reader)?;
    match json.records {
        Records::Raw { texts, .. } => Ok(texts),
        Records::Columns { .. } => Ok(Vec::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Unmapped;
    use arrow::array::{Array, AsArray};
    use arrow::util::pretty::pretty_format_batches;

    fn decode_text(text: &[u8], layout: &Layout, chunk: usize) -> Result<String, DecodeError> {
        let tree = FieldTree::new(["id", "sale.amount", "note"]).map_err(|e| DecodeError::malformed(e, None))?;
        let mut batches = Vec::new();
        decode_in_chunks(
            text,
            layout,
            &tree,
            &mut |b| {
                batches.push(b.text);
                Ok(())
            },
            chunk,
        )?;
        Ok(pretty_format_batches(&batches).map(|t| t.to_string()).unwrap_or_default())
    }

    #[test]
    fn records_split_across_reads_decode_the_same_as_whole() {
        let mut array = String::from("[");
        for i in 0..300 {
            let comma = if i > 0 { "," } else { "" };
            array.push_str(&format!(r#"{comma} {{"id": {i}, "skip": {{"deep": [1, "a\\\"b", {{}}]}}, "sale": {{"amount": "{i}.5\u00e9"}}, "note": "\ud83d\ude00 x{i}"}}"#));
        }
        array.push_str("]\n");
        let ndjson = array[1..array.len() - 2].replace("}, {", "}\n{").replace("},{", "}\n{");
        let envelope = format!(r#"{{"status": {{"code": [0]}}, "data": {{"rows": {array}, "after": 1}}}}"#);
        let cases = [
            (array.as_bytes(), Layout::JsonArray),
            (ndjson.as_bytes(), Layout::Ndjson),
            (envelope.as_bytes(), Layout::JsonEnvelope("data.rows".into())),
        ];
        for (text, layout) in cases {
            let whole = decode_text(text, &layout, CHUNK).unwrap();
            assert!(whole.contains("| 299 | 299.5é") && whole.contains("😀 x0"), "{layout:?}\n{whole}");
            for chunk in [1, 7, 64, 1000] {
                assert_eq!(decode_text(text, &layout, chunk).unwrap(), whole, "{layout:?} in reads of {chunk} bytes");
            }
        }
    }

    #[test]
    fn truncation_and_trailing_garbage_are_errors_with_positions() {
        let text = br#"[{"id": 1}, {"id": 2}, {"id": 3}]"#;
        for cut in [10, 15, text.len() - 1] {
            let err = decode_text(&text[..cut], &Layout::JsonArray, 4).unwrap_err().to_string();
            assert!(err.contains("truncated"), "{cut}: {err}");
        }
        let err = decode_text(b"[{\"id\": 1}] [", &Layout::JsonArray, 4).unwrap_err().to_string();
        assert!(err.contains("after the end") && err.contains("byte 12"), "{err}");
        let err = decode_text(b"{\"id\": 1}\n{\"id\": 2\n", &Layout::Ndjson, 3).unwrap_err().to_string();
        assert!(err.contains("record 2") && err.contains("line 2"), "{err}");
        let err = decode_text(br#"{"data": {"rows": 5}}"#, &Layout::JsonEnvelope("data.rows".into()), 4).unwrap_err().to_string();
        assert!(err.contains("not an array"), "{err}");
        let err = decode_text(br#"[{"id": 1}, 7]"#, &Layout::JsonArray, 4).unwrap_err().to_string();
        assert!(err.contains("record 2") && err.contains("not a JSON object"), "{err}");
    }

    #[test]
    fn a_record_larger_than_the_buffer_grows_it() {
        let big = format!(r#"[{{"note": "{}", "id": 1}}]"#, "x".repeat(100_000));
        let tree = FieldTree::new(["note"]).unwrap();
        let mut rows = 0;
        decode_in_chunks(
            big.as_bytes(),
            &Layout::JsonArray,
            &tree,
            &mut |b| {
                rows += b.text.num_rows();
                assert_eq!(b.text.column(0).as_string::<i32>().value(0).len(), 100_000);
                Ok(())
            },
            1024,
        )
        .unwrap();
        assert_eq!(rows, 1);
    }

    /// `n` bytes of JSON whitespace, made as they are read.
    struct Blank(u64);

    impl Read for Blank {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            let n = out.len().min(usize::try_from(self.0).unwrap_or(usize::MAX));
            for (i, b) in out[..n].iter_mut().enumerate() {
                *b = [b' ', b'\n', b'\t', b' ', b'\r', b' '][i % 6];
            }
            self.0 -= n as u64;
            Ok(n)
        }
    }

    /// A reader that remembers the largest read asked of it: the JSON reader's buffer, less
    /// what it holds.
    struct Widest<R> {
        inner: R,
        widest: usize,
    }

    impl<R: Read> Read for Widest<R> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            self.widest = self.widest.max(out.len());
            self.inner.read(out)
        }
    }

    #[test]
    fn whitespace_between_records_is_passed_not_buffered() {
        const GAP: u64 = 1 << 20;
        let tree = FieldTree::new(["id"]).unwrap();
        // Each case: the document's pieces, its layout, the ids it holds.
        type Case = (&'static [&'static [u8]], Layout, &'static [&'static str]);
        let cases: [Case; 3] = [
            (&[b"", br#"{"id": 1}"#, br#"{"id": 2}"#, b""], Layout::Ndjson, &["1", "2"]),
            (&[b"", b"[", br#"{"id": 1}"#, b",", br#"{"id": 2}"#, b"]", b""], Layout::JsonArray, &["1", "2"]),
            (
                &[br#"{"meta": 1"#, b",", br#""data": {"#, br#""rows": ["#, br#"{"id": 1}"#, b"]", b"}", b",", br#""n": 2"#, b"}", b""],
                Layout::JsonEnvelope("data.rows".into()),
                &["1"],
            ),
        ];
        for (pieces, layout, want) in cases {
            // The pieces with a megabyte of whitespace between each two.
            let mut spaced: Box<dyn Read> = Box::new(pieces[0]);
            for piece in &pieces[1..] {
                spaced = Box::new(spaced.chain(Blank(GAP)).chain(*piece));
            }
            let mut reader = Widest { inner: spaced, widest: 0 };
            let mut ids = Vec::new();
            decode_in_chunks(
                &mut reader,
                &layout,
                &tree,
                &mut |b| {
                    let id = b.text.column(0).as_string::<i32>();
                    ids.extend((0..id.len()).map(|i| id.value(i).to_string()));
                    Ok(())
                },
                64,
            )
            .unwrap();
            assert_eq!(ids, want, "{layout:?}");
            assert!(reader.widest <= 64, "{layout:?}: the buffer grew to {} bytes", reader.widest);
        }
    }

    #[test]
    fn captured_fields_keep_their_dotted_paths_and_values_as_written_across_reads() {
        let text = br#"[{"id": 1, "new": [1, "x"], "sale": {"amount": 5, "cur\u0022": "EUR"}},
            {"id": 2, "sale": 7}, {"id": 3, "note": null}, {"id": 4, "sale": {"amount": 1}}]"#;
        let tree = FieldTree::with_leaves([("id", false), ("sale.amount", false), ("note", true)], Unmapped::Capture).unwrap();
        for chunk in [3, 64, CHUNK] {
            let (mut captured, mut ignored) = (Vec::new(), 0);
            decode_in_chunks(
                &text[..],
                &Layout::JsonArray,
                &tree,
                &mut |b| {
                    let unmapped = b.unmapped.expect("captured");
                    captured.extend((0..unmapped.len()).map(|i| unmapped.is_valid(i).then(|| unmapped.value(i).to_string())));
                    ignored += b.ignored;
                    Ok(())
                },
                chunk,
            )
            .unwrap();
            assert_eq!(
                captured,
                [Some(r#"{"new":[1, "x"],"sale.cur\u0022":"EUR"}"#.to_string()), Some(r#"{"sale":7}"#.to_string()), None, None],
                "reads of {chunk} bytes"
            );
            assert_eq!(ignored, 3);
            let parsed: serde_json::Value = serde_json::from_str(captured[0].as_deref().unwrap_or_default()).unwrap();
            assert_eq!(parsed["sale.cur\""], "EUR");
        }
    }

    /// Decodes `text` (column `id`) within `limits`, `chunk` bytes at a time; returns the ids,
    /// and the widest read asked of the source (the buffer, less what it held).
    fn ids_within(text: &[u8], layout: &Layout, limits: &LimitsConfig, chunk: usize) -> (Result<Vec<String>, DecodeError>, usize) {
        let tree = FieldTree::new(["id", "note"]).unwrap();
        let mut reader = Widest { inner: text, widest: 0 };
        let mut ids = Vec::new();
        let result = decode_limited(
            &mut reader,
            layout,
            &tree,
            &mut |b| {
                let id = b.text.column(0).as_string::<i32>();
                ids.extend((0..id.len()).map(|i| id.value(i).to_string()));
                Ok(())
            },
            chunk,
            limits,
        );
        (result.map(|_| ids), reader.widest)
    }

    #[test]
    fn a_record_longer_than_max_record_is_refused_at_its_start_and_bounds_the_buffer() {
        use crate::config::units::ByteSize;
        let limits = LimitsConfig { max_record: ByteSize(1000), max_field: ByteSize(1000), ..LimitsConfig::default() };
        // The long value is skipped, so it is the record that is too long, not a field.
        let text = format!(r#"[{{"id": 1}}, {{"skip": "{}", "id": 2}}]"#, "x".repeat(2000));
        for chunk in [7, 64, CHUNK] {
            let (result, widest) = ids_within(text.as_bytes(), &Layout::JsonArray, &limits, chunk);
            let err = result.unwrap_err();
            assert_eq!(err.kind, crate::decode::DecodeErrorKind::Limit(Limit::MaxRecord), "{err}");
            assert_eq!(err.to_string(), "a record longer than format.limits.max_record (1 kB) at byte 12 (at record 2)");
            if chunk < CHUNK {
                assert!(widest <= 1000 + chunk, "reads of {chunk}: the buffer grew to {widest} bytes");
            }
        }
        let (result, _) = ids_within(br#"[{"id": 1}, {"id": 2}]"#, &Layout::JsonArray, &limits, 7);
        assert_eq!(result.unwrap(), ["1", "2"]);
    }

    #[test]
    fn an_ndjson_line_longer_than_max_line_is_refused_but_a_long_pretty_printed_record_is_not() {
        use crate::config::units::ByteSize;
        let limits = LimitsConfig { max_line: ByteSize(30), ..LimitsConfig::default() };
        // Line 2 holds four records of 9 bytes (lenient NDJSON): the fourth, at byte 37, ends it
        // past 30.
        let text = b"{\"id\": 1}\n{\"id\": 2}{\"id\": 3}{\"id\": 4}{\"id\": 5}\n";
        for chunk in [5, 64, CHUNK] {
            let (result, _) = ids_within(text, &Layout::Ndjson, &limits, chunk);
            let err = result.unwrap_err();
            assert_eq!(err.kind, crate::decode::DecodeErrorKind::Limit(Limit::MaxLine), "{err}");
            assert_eq!(err.to_string(), "a line longer than format.limits.max_line (30 bytes) at byte 37 (at record 5, line 2)");
        }
        // A record of 44 bytes, no line of it longer than 30.
        let pretty = b"{\"id\": 1}\n{\n  \"id\": 2,\n  \"note\": \"abcdefghijklmnopq\"\n}\n{\"id\": 3}\n";
        for chunk in [5, 64, CHUNK] {
            let (result, _) = ids_within(pretty, &Layout::Ndjson, &limits, chunk);
            assert_eq!(result.unwrap(), ["1", "2", "3"], "reads of {chunk}");
        }
    }

    #[test]
    fn sampling_stops_at_its_byte_budget() {
        let record = format!(r#"{{"id": "{}"}}"#, "x".repeat(1 << 20));
        let text = [record.as_str(); 100].join("\n");
        let texts = sample(text.as_bytes(), &Layout::Ndjson, 1000, Lead::default(), &LimitsConfig::default()).unwrap();
        assert_eq!(texts.len(), SAMPLE_BYTES.div_ceil(record.len()));
    }
}

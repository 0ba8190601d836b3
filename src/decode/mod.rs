//! Stage 3, decode: bytes of a file (plain, gzip or zstd) into Arrow record batches.
//!
//! JSON goes through our own projecting reader: only the fields the mapping reads are
//! followed, every other value is skipped, and each wanted leaf lands as text in a flat
//! column named by its dotted path, so the mapping stage decides how each value converts and
//! what a bad value means. CSV goes through our own record reader on csv_core the same way
//! (every column as text). Every layout streams through a fixed buffer, and `format.limits`
//! bound what one line, record or field may hold: memory grows with neither the file nor its
//! width.

mod csv;
mod json;
mod limits;

pub use json::FieldTree;
pub use limits::Limit;

use crate::config::{FormatConfig, FormatKind, LimitsConfig};
use arrow::array::StringArray;
use arrow::datatypes::Schema;
use arrow::record_batch::RecordBatch;
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::Arc;

/// Rows per decoded record batch.
pub const BATCH_ROWS: usize = 16_384;
const READ_BUFFER: usize = 1 << 20;

/// Where in a file a problem is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Position {
    /// 1-based record (array element, NDJSON line, CSV row).
    pub record: Option<u64>,
    /// 1-based line of the decompressed text.
    pub line: Option<u64>,
    /// Byte offset in the decompressed text.
    pub byte: Option<u64>,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(r) = self.record {
            parts.push(format!("record {r}"));
        }
        if let Some(l) = self.line {
            parts.push(format!("line {l}"));
        }
        if let Some(b) = self.byte {
            parts.push(format!("byte {b}"));
        }
        write!(f, "{}", parts.join(", "))
    }
}

/// Why a file could not be decoded. Always the file's fault (or its storage's), never the
/// daemon's: the file goes to quarantine.
#[derive(Debug, thiserror::Error)]
pub struct DecodeError {
    /// What is wrong, for a person.
    pub message: String,
    /// Where, when one place is to blame.
    pub position: Option<Position>,
    /// What kind of problem it is.
    pub kind: DecodeErrorKind,
}

/// What kind of problem a [`DecodeError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DecodeErrorKind {
    /// Not valid in its layout, or not the shape the mapping reads.
    Malformed,
    /// The file, or its compressed stream, could not be read.
    Io,
    /// Not a layout ingestd reads (a `.json` file that does not start like JSON).
    Unrecognised,
    /// No record, and not an empty file, an empty array or a CSV header either.
    NoRecords,
    /// Past one of `format.limits` (the message names its key and the byte).
    Limit(Limit),
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let position = match self.kind {
            // The message already says the byte.
            DecodeErrorKind::Limit(_) => self.position.map(|p| Position { byte: None, ..p }).filter(|p| *p != Position::default()),
            _ => self.position,
        };
        match &position {
            Some(p) => write!(f, "{} (at {p})", self.message),
            None => write!(f, "{}", self.message),
        }
    }
}

impl DecodeError {
    /// Invalid input (or input the mapping cannot read), at `position` if known.
    pub fn malformed(message: String, position: Option<Position>) -> DecodeError {
        DecodeError { message, position, kind: DecodeErrorKind::Malformed }
    }

    /// Past `limit`, whose configured value is `value` (see [`Limit::configured`]), at
    /// `position`: "a record longer than format.limits.max_record (64 MiB) at byte 1048576".
    pub fn limit(limit: Limit, value: u64, position: Position) -> DecodeError {
        let what = limit.describe(value);
        let message = match position.byte {
            Some(byte) => format!("{what} at byte {byte}"),
            None => what,
        };
        DecodeError { message, position: Some(position), kind: DecodeErrorKind::Limit(limit) }
    }

    fn io(what: &str, e: std::io::Error) -> DecodeError {
        DecodeError { message: format!("{what}: {e}"), position: None, kind: DecodeErrorKind::Io }
    }

    /// A read error: a limit met below the reader (decompression) is that limit, anything else
    /// is I/O.
    fn reading(what: &str, e: std::io::Error) -> DecodeError {
        match limits::limit_hit(&e) {
            Some(hit) => DecodeError::limit(hit.limit, hit.value, Position { byte: Some(hit.byte), ..Position::default() }),
            None => DecodeError::io(what, e),
        }
    }

    fn unrecognised(message: String) -> DecodeError {
        DecodeError { message, position: None, kind: DecodeErrorKind::Unrecognised }
    }

    fn no_records(message: String) -> DecodeError {
        DecodeError { message, position: None, kind: DecodeErrorKind::NoRecords }
    }
}

/// How the bytes on disk are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// The record layout found in a file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// One JSON array of records.
    JsonArray,
    /// A JSON object holding the records array at this dotted path.
    JsonEnvelope(String),
    /// One JSON value per line.
    Ndjson,
    Csv,
}

/// What [`open`] found out about a file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Detected {
    pub compression: Compression,
    pub layout: Layout,
}

/// What to decode: the layout options and the fields the mapping reads.
#[derive(Debug, Clone)]
pub struct DecodePlan {
    pub format: FormatConfig,
    /// For JSON: the dotted paths to read (and what is done with the rest).
    pub json_fields: FieldTree,
    /// For CSV: header names to read.
    pub csv_columns: Vec<String>,
    /// For CSV: what is done with the other columns (JSON: in `json_fields`).
    pub csv_unmapped: Unmapped,
}

/// What the decoder does with the fields the mapping does not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unmapped {
    /// Skip them (their syntax still checked).
    Skip,
    /// Skip and count them.
    Count,
    /// Count them and keep each record's as one JSON object ([`RawBatch::unmapped`]).
    Capture,
}

/// One decoded record batch: the wanted fields as text, and what was not wanted.
#[derive(Debug)]
pub struct RawBatch {
    /// One Utf8 column per wanted field, named by its dotted path (JSON) or header (CSV).
    pub text: RecordBatch,
    /// With [`Unmapped::Capture`]: per row, a JSON object of the fields no column reads (dotted
    /// path to the value as written; CSV values as strings), null when there is none.
    pub unmapped: Option<StringArray>,
    /// With [`Unmapped::Count`] or `Capture`: how many values no column reads.
    pub ignored: u64,
    /// The captured values are text to be typed (CSV), not typed JSON.
    pub text_values: bool,
}

/// Why a file that gave no record is still a good file, committed as empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Empty {
    /// Not a byte (after decompression).
    File,
    /// An empty JSON array, `[]`, also at `records_path`.
    Array,
    /// A CSV header and no row, in a file that is CSV by config or by its name.
    CsvHeader,
}

impl Empty {
    /// How the ledger notes such a file.
    pub fn note(self) -> &'static str {
        match self {
            Empty::File => "empty file",
            Empty::Array => "empty array",
            Empty::CsvHeader => "header only",
        }
    }
}

/// What [`OpenFile::decode`] read from a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodedFile {
    /// Records decoded.
    pub records: u64,
    /// With no record: why the file is good all the same (otherwise decoding fails).
    pub empty: Option<Empty>,
}

/// An open file, decompressed, positioned at its first byte of content, with its layout
/// detected.
pub struct OpenFile {
    pub detected: Detected,
    reader: Box<dyn BufRead + Send>,
    /// What was passed before the reader's first byte.
    lead: Lead,
    content: Content,
    /// The layout is CSV only because the content is not JSON (no config or name said so).
    guessed_csv: bool,
    /// The limits the file was opened with (sampling has no plan to take them from).
    limits: LimitsConfig,
}

/// The BOM and whitespace passed before a file's content: JSON decoders start counting bytes
/// and lines there, so that positions in errors are the file's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Lead {
    /// Bytes passed: the offset in the decompressed text of the first byte decoded.
    bytes: u64,
    /// Newlines among them.
    newlines: u64,
}

/// What a file holds after its lead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Content {
    /// Not a byte, not even a BOM.
    Nothing,
    /// A BOM or whitespace, and nothing else.
    Blank,
    /// This byte first.
    Starts(u8),
}

const BOM: &[u8] = &[0xEF, 0xBB, 0xBF];
/// Whitespace sniffing keeps of a CSV's first line (the rest of the lead is not kept).
const MAX_LEAD_LINE: usize = READ_BUFFER;

/// Opens a file, detects compression by magic bytes and the layout from config, extension and
/// content. A file of whitespace only, or a `.json` file that does not start like JSON, is
/// refused here.
pub fn open(path: &Path, name: &str, format: &FormatConfig) -> Result<OpenFile, DecodeError> {
    let file = File::open(path).map_err(|e| DecodeError::io("cannot open", e))?;
    open_reader(Box::new(file), name, format)
}

/// [`open`] for bytes that are not in a file (the fuzz targets' input).
pub fn open_reader(input: Box<dyn Read + Send>, name: &str, format: &FormatConfig) -> Result<OpenFile, DecodeError> {
    let mut raw = BufReader::with_capacity(READ_BUFFER, input);
    let magic = raw.fill_buf().map_err(|e| DecodeError::io("cannot read", e))?;
    let compression = if magic.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    };
    // Output bytes and the output/input ratio are bounded under the buffer, so that a bomb is
    // refused before it is more than a buffer past the limit.
    let mut reader: Box<dyn BufRead + Send> = match compression {
        Compression::None => Box::new(raw),
        Compression::Gzip => {
            let decoder = limits::decompressed(raw, &format.limits, |raw| Ok(flate2::bufread::MultiGzDecoder::new(raw)))
                .map_err(|e| DecodeError::io("bad gzip stream", e))?;
            Box::new(BufReader::with_capacity(READ_BUFFER, decoder))
        }
        Compression::Zstd => {
            let decoder = limits::decompressed(raw, &format.limits, zstd::stream::read::Decoder::with_buffer)
                .map_err(|e| DecodeError::io("bad zstd stream", e))?;
            Box::new(BufReader::with_capacity(READ_BUFFER, decoder))
        }
    };
    let sniffed = sniff(&mut reader, name, format).map_err(|e| e.into_decode_error(compression))?;
    let mut lead = sniffed.lead;
    let reader: Box<dyn BufRead + Send> = match sniffed.line {
        Some(line) if sniffed.layout == Layout::Csv && !line.is_empty() => {
            // The CSV reader reads these spaces again: its positions start before them.
            lead.bytes = lead.bytes.saturating_sub(line.len() as u64);
            Box::new(Replay::new(line, reader).map_err(|e| decompress_error(compression, e))?)
        }
        _ => reader,
    };
    let guessed_csv = sniffed.layout == Layout::Csv && !sniffed.csv_by_name;
    Ok(OpenFile {
        detected: Detected { compression, layout: sniffed.layout },
        reader,
        lead,
        content: sniffed.content,
        guessed_csv,
        limits: format.limits,
    })
}

fn decompress_error(compression: Compression, e: std::io::Error) -> DecodeError {
    match compression {
        Compression::None => DecodeError::reading("cannot read", e),
        other => DecodeError::reading(&format!("cannot decompress ({other:?})"), e),
    }
}

/// What [`sniff`] found.
struct Sniffed {
    layout: Layout,
    lead: Lead,
    content: Content,
    /// CSV by config or by extension.
    csv_by_name: bool,
    /// The whitespace passed on the current line, for a file that may be CSV (there it is the
    /// start of the header's first field); `None` when it ran past [`MAX_LEAD_LINE`].
    line: Option<Vec<u8>>,
}

/// Why sniffing stopped.
enum SniffError {
    Read(std::io::Error),
    Refused(DecodeError),
}

impl SniffError {
    fn into_decode_error(self, compression: Compression) -> DecodeError {
        match self {
            SniffError::Read(e) => decompress_error(compression, e),
            SniffError::Refused(e) => e,
        }
    }
}

/// Passes a BOM and any amount of whitespace (consumed as it is read, so a lead of any length
/// costs one buffer), then picks the layout from config, extension and the first byte. Refuses
/// a file of whitespace only, and a `.json` file that does not start like JSON.
fn sniff(reader: &mut dyn BufRead, name: &str, format: &FormatConfig) -> Result<Sniffed, SniffError> {
    let extension = extension(name);
    let ext = extension.as_deref();
    let csv_by_name = match format.kind {
        FormatKind::Csv => true,
        FormatKind::Auto => matches!(ext, Some("csv" | "tsv" | "txt")),
        FormatKind::Json | FormatKind::Ndjson => false,
    };
    let maybe_csv = csv_by_name || (format.kind == FormatKind::Auto && !matches!(ext, Some("json" | "ndjson" | "jsonl")));
    let passed = pass_lead(reader, maybe_csv).map_err(SniffError::Read)?;
    let lead = passed.lead;
    if passed.content == Content::Blank {
        let message = match lead.bytes {
            3 if passed.bom => "no records: the file holds only a byte order mark",
            _ => "no records: the file holds only whitespace",
        };
        return Err(SniffError::Refused(DecodeError::no_records(message.into())));
    }
    let first = match passed.content {
        Content::Starts(b) => Some(b),
        Content::Nothing | Content::Blank => None,
    };
    let envelope_or = |fallback: Layout| match &format.records_path {
        Some(path) => Layout::JsonEnvelope(path.clone()),
        None => fallback,
    };
    // A JSON file holds one document: 0 bytes is none (NDJSON and CSV of 0 bytes are empty).
    let empty_json = || {
        SniffError::Refused(DecodeError::no_records("no records: the file is empty (0 bytes), and a JSON file holds one document".into()))
    };
    let layout = match format.kind {
        FormatKind::Csv => Layout::Csv,
        FormatKind::Ndjson => Layout::Ndjson,
        FormatKind::Json if first.is_none() => return Err(empty_json()),
        FormatKind::Json if first == Some(b'{') => envelope_or(Layout::Ndjson),
        FormatKind::Json => Layout::JsonArray,
        FormatKind::Auto => match (ext, first) {
            (Some("csv" | "tsv" | "txt"), _) => Layout::Csv,
            (Some("ndjson" | "jsonl"), _) => Layout::Ndjson,
            (_, Some(b'[')) => Layout::JsonArray,
            (_, Some(b'{')) => envelope_or(Layout::Ndjson),
            (Some("json"), Some(b)) => {
                let reason = format!("a .json file must start with '[' or '{{' (found {} at byte {})", shown(b), lead.bytes);
                return Err(SniffError::Refused(DecodeError::unrecognised(reason)));
            }
            (Some("json"), None) => return Err(empty_json()),
            // Not JSON: read as CSV, which decides (a header alone is not taken as empty).
            _ => Layout::Csv,
        },
    };
    if layout == Layout::Csv && passed.line.is_none() {
        let reason = format!("the first CSV line starts with more than {} MiB of whitespace", MAX_LEAD_LINE >> 20);
        let at = Position { record: None, line: Some(lead.newlines + 1), byte: Some(lead.bytes) };
        return Err(SniffError::Refused(DecodeError::malformed(reason, Some(at))));
    }
    Ok(Sniffed { layout, lead, content: passed.content, csv_by_name, line: passed.line })
}

/// The extension that names a layout: lower case, after any compression suffix.
fn extension(name: &str) -> Option<String> {
    let base = name.trim_end_matches(".gz").trim_end_matches(".zst").trim_end_matches(".zstd");
    base.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase())
}

/// A byte as a reason shows it: `'*'`, `'\x0c'`, or `0xff` outside ASCII.
fn shown(b: u8) -> String {
    if b.is_ascii() { format!("'{}'", b.escape_ascii()) } else { format!("0x{b:02x}") }
}

fn is_json_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// What [`pass_lead`] passed.
struct Passed {
    lead: Lead,
    content: Content,
    bom: bool,
    /// The current line's whitespace, when asked for and not longer than [`MAX_LEAD_LINE`].
    line: Option<Vec<u8>>,
}

/// Consumes a BOM and JSON whitespace, one buffer at a time, up to the first other byte (left
/// in the reader). With `keep_line`, keeps the whitespace since the last line end.
fn pass_lead(reader: &mut dyn BufRead, keep_line: bool) -> std::io::Result<Passed> {
    let mut lead = Lead::default();
    let bom = reader.fill_buf()?.starts_with(BOM);
    if bom {
        reader.consume(BOM.len());
        lead.bytes = BOM.len() as u64;
    }
    let (mut line, mut line_too_long) = (Vec::new(), false);
    let content = loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            break if lead.bytes == 0 { Content::Nothing } else { Content::Blank };
        }
        let n = buf.iter().position(|&b| !is_json_ws(b)).unwrap_or(buf.len());
        let first = buf.get(n).copied();
        let ws = &buf[..n];
        lead.newlines += memchr::memchr_iter(b'\n', ws).count() as u64;
        if keep_line {
            // CSV ends a line at '\n' or '\r': only the current line's whitespace is data.
            let tail = match memchr::memrchr2(b'\n', b'\r', ws) {
                Some(end) => {
                    line.clear();
                    line_too_long = false;
                    &ws[end + 1..]
                }
                None => ws,
            };
            if line_too_long || line.len() + tail.len() > MAX_LEAD_LINE {
                line_too_long = true;
                line.clear();
            } else {
                line.extend_from_slice(tail);
            }
        }
        reader.consume(n);
        lead.bytes += n as u64;
        if let Some(b) = first {
            break Content::Starts(b);
        }
    };
    let line = (keep_line && !line_too_long).then_some(line);
    Ok(Passed { lead, content, bom, line })
}

/// The whitespace sniffing took from a CSV's first line, given back ahead of the rest. It is
/// served in one buffer with up to [`READ_BUFFER`] bytes after it, so that a reader that looks
/// at one `fill_buf` (the header) sees the line's start whole.
struct Replay {
    head: Vec<u8>,
    at: usize,
    rest: Box<dyn BufRead + Send>,
}

impl Replay {
    fn new(mut head: Vec<u8>, mut rest: Box<dyn BufRead + Send>) -> std::io::Result<Replay> {
        let want = head.len() + READ_BUFFER;
        while head.len() < want {
            let more = rest.fill_buf()?;
            if more.is_empty() {
                break;
            }
            let take = more.len().min(want - head.len());
            head.extend_from_slice(&more[..take]);
            rest.consume(take);
        }
        Ok(Replay { head, at: 0, rest })
    }
}

impl Read for Replay {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let buf = self.fill_buf()?;
        let n = buf.len().min(out.len());
        out[..n].copy_from_slice(&buf[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for Replay {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        if self.at < self.head.len() {
            return Ok(&self.head[self.at..]);
        }
        self.rest.fill_buf()
    }

    fn consume(&mut self, amount: usize) {
        if self.at < self.head.len() {
            self.at = (self.at + amount).min(self.head.len());
        } else {
            self.rest.consume(amount);
        }
    }
}

impl OpenFile {
    /// Decodes every record, handing each record batch to `emit` as soon as it is full.
    /// A file with no record is refused unless it is an empty file, an empty array, or (CSV by
    /// config or name) a header alone: whitespace, or junk that reads as a CSV header, is not
    /// taken for an empty file.
    pub fn decode(self, plan: &DecodePlan, emit: &mut dyn FnMut(RawBatch) -> Result<(), DecodeError>) -> Result<DecodedFile, DecodeError> {
        if self.content == Content::Nothing {
            return Ok(DecodedFile { records: 0, empty: Some(Empty::File) });
        }
        let records = match &self.detected.layout {
            Layout::Csv => {
                csv::decode(self.reader, &plan.format.csv, &plan.format.limits, self.lead, (&plan.csv_columns, plan.csv_unmapped), emit)?
            }
            json => json::decode(self.reader, json, &plan.json_fields, emit, self.lead, &plan.format.limits)?,
        };
        if records > 0 {
            return Ok(DecodedFile { records, empty: None });
        }
        // A JSON layout decoded without error and without a record closed an empty array.
        let empty = match self.detected.layout {
            Layout::JsonArray | Layout::JsonEnvelope(_) => Empty::Array,
            Layout::Csv if !self.guessed_csv => Empty::CsvHeader,
            Layout::Csv => {
                let found = match self.content {
                    Content::Starts(b) => shown(b),
                    Content::Nothing | Content::Blank => String::new(),
                };
                return Err(DecodeError::no_records(format!(
                    "no records: not JSON ({found} at byte {}), and read as CSV only a header line (a .csv name or \
                     format.kind = \"csv\" takes such a file as empty)",
                    self.lead.bytes
                )));
            }
            Layout::Ndjson => return Err(DecodeError::no_records("no records: the file holds no JSON value".into())),
        };
        Ok(DecodedFile { records: 0, empty: Some(empty) })
    }

    /// The first `limit` records as raw JSON texts (for JSON layouts), used to infer a mapping.
    pub fn sample_json(self, limit: usize) -> Result<Vec<Vec<u8>>, DecodeError> {
        match self.detected.layout {
            Layout::Csv => Err(DecodeError::malformed("not a JSON file".into(), None)),
            _ if self.content == Content::Nothing => Ok(Vec::new()),
            ref json_layout => json::sample(self.reader, json_layout, limit, self.lead, &self.limits),
        }
    }

    /// The CSV header and the first `limit` rows, used to infer a mapping.
    pub fn sample_csv(self, plan_csv: &crate::config::CsvConfig, limit: usize) -> Result<RecordBatch, DecodeError> {
        if self.content == Content::Nothing {
            return Ok(RecordBatch::new_empty(Arc::new(Schema::empty())));
        }
        csv::sample(self.reader, plan_csv, &self.limits, self.lead, limit)
    }
}

#[cfg(test)]
mod tests;

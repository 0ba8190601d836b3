//! Stage 3, decode: bytes of a file (plain, gzip or zstd) into Arrow record batches.
//!
//! JSON goes through our own projecting reader: only the fields the mapping reads are
//! followed, every other value is skipped, and each wanted leaf lands as text in a flat
//! column named by its dotted path, so the mapping stage decides how each value converts and
//! what a bad value means. CSV goes through arrow-csv the same way (every column as text).
//! Every layout streams through a fixed buffer: memory does not grow with the file.

mod csv;
mod json;

pub use json::FieldTree;

use crate::config::{FormatConfig, FormatKind};
use arrow::array::StringArray;
use arrow::record_batch::RecordBatch;
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

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
    pub message: String,
    pub position: Option<Position>,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.position {
            Some(p) => write!(f, "{} (at {p})", self.message),
            None => write!(f, "{}", self.message),
        }
    }
}

impl DecodeError {
    pub fn malformed(message: String, position: Option<Position>) -> DecodeError {
        DecodeError { message, position }
    }

    fn io(what: &str, e: std::io::Error) -> DecodeError {
        DecodeError { message: format!("{what}: {e}"), position: None }
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

/// An open file, decompressed, positioned at its first byte, with its layout detected.
pub struct OpenFile {
    pub detected: Detected,
    reader: Box<dyn BufRead + Send>,
}

/// Opens a file, detects compression by magic bytes and the layout from config, extension and
/// content.
pub fn open(path: &Path, name: &str, format: &FormatConfig) -> Result<OpenFile, DecodeError> {
    let file = File::open(path).map_err(|e| DecodeError::io("cannot open", e))?;
    let mut raw = BufReader::with_capacity(READ_BUFFER, file);
    let magic = raw.fill_buf().map_err(|e| DecodeError::io("cannot read", e))?;
    let compression = if magic.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        Compression::None
    };
    let mut reader: Box<dyn BufRead + Send> = match compression {
        Compression::None => Box::new(raw),
        Compression::Gzip => Box::new(BufReader::with_capacity(READ_BUFFER, flate2::bufread::MultiGzDecoder::new(raw))),
        Compression::Zstd => {
            let decoder = zstd::stream::read::Decoder::with_buffer(raw).map_err(|e| DecodeError::io("bad zstd stream", e))?;
            Box::new(BufReader::with_capacity(READ_BUFFER, decoder))
        }
    };
    skip_bom(&mut reader).map_err(|e| decompress_error(compression, e))?;
    let layout = detect_layout(&mut reader, name, format).map_err(|e| decompress_error(compression, e))?;
    Ok(OpenFile { detected: Detected { compression, layout }, reader })
}

fn decompress_error(compression: Compression, e: std::io::Error) -> DecodeError {
    match compression {
        Compression::None => DecodeError::io("cannot read", e),
        other => DecodeError::io(&format!("cannot decompress ({other:?})"), e),
    }
}

fn skip_bom(reader: &mut dyn BufRead) -> std::io::Result<()> {
    if reader.fill_buf()?.starts_with(&[0xEF, 0xBB, 0xBF]) {
        reader.consume(3);
    }
    Ok(())
}

fn detect_layout(reader: &mut dyn BufRead, name: &str, format: &FormatConfig) -> std::io::Result<Layout> {
    let envelope_or = |fallback: Layout| match &format.records_path {
        Some(path) => Layout::JsonEnvelope(path.clone()),
        None => fallback,
    };
    let first = reader.fill_buf()?.iter().copied().find(|b| !b.is_ascii_whitespace());
    Ok(match format.kind {
        FormatKind::Csv => Layout::Csv,
        FormatKind::Ndjson => Layout::Ndjson,
        FormatKind::Json if first == Some(b'{') => envelope_or(Layout::Ndjson),
        FormatKind::Json => Layout::JsonArray,
        FormatKind::Auto => {
            let base = name.trim_end_matches(".gz").trim_end_matches(".zst").trim_end_matches(".zstd");
            let extension = base.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
            match (extension.as_deref(), first) {
                (Some("csv" | "tsv" | "txt"), _) => Layout::Csv,
                (Some("ndjson" | "jsonl"), _) => Layout::Ndjson,
                (_, Some(b'[')) => Layout::JsonArray,
                (_, Some(b'{')) => envelope_or(Layout::Ndjson),
                _ => Layout::Csv,
            }
        }
    })
}

impl OpenFile {
    /// Decodes every record, handing each record batch to `emit` as soon as it is full.
    /// Returns the number of records decoded.
    pub fn decode(self, plan: &DecodePlan, emit: &mut dyn FnMut(RawBatch) -> Result<(), DecodeError>) -> Result<u64, DecodeError> {
        match &self.detected.layout {
            Layout::Csv => csv::decode(self.reader, &plan.format.csv, (&plan.csv_columns, plan.csv_unmapped), emit),
            json => json::decode(self.reader, json, &plan.json_fields, emit),
        }
    }

    /// The first `limit` records as raw JSON texts (for JSON layouts), used to infer a mapping.
    pub fn sample_json(self, limit: usize) -> Result<Vec<Vec<u8>>, DecodeError> {
        match self.detected.layout {
            Layout::Csv => Err(DecodeError::malformed("not a JSON file".into(), None)),
            ref json_layout => json::sample(self.reader, json_layout, limit),
        }
    }

    /// The CSV header and the first `limit` rows, used to infer a mapping.
    pub fn sample_csv(self, plan_csv: &crate::config::CsvConfig, limit: usize) -> Result<RecordBatch, DecodeError> {
        csv::sample(self.reader, plan_csv, limit)
    }
}

#[cfg(test)]
mod tests;

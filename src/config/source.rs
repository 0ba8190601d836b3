//! Configuration of a source: where files come from and how they are read.

use super::columns::ColumnConfig;
use super::defaults;
use super::kind::SourceKind;
use super::limits::LimitsConfig;
use super::remote::PushConfig;
use super::schema::SchemaConfig;
use super::units::{ByteSize, HumanDuration};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// A source of files: a local drop folder, or an HTTP listing or S3 prefix whose files are
/// downloaded into a local landing folder (`path`) and go on from there like dropped files.
/// Any source can also accept pushed uploads (`push`).
///
/// `K` is the kind with the keys only that kind has: a [`SourceKind`] in a loaded config.
/// (Loading reads those keys as written first, to name the source when one is misplaced.)
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig<K = SourceKind> {
    /// What kind of source this is, `kind = "folder"` (the default), `"http"` or `"s3"`, with
    /// the keys only that kind has, written beside the others: `url` and `[fetch]` for `http`
    /// and `s3`, `[http]` for `http`, `[s3]` for `s3`. Another kind's key is an error.
    #[serde(flatten)]
    pub kind: K,
    /// The drop folder to watch (relative paths resolve against the config file's folder).
    /// Required for `kind = "folder"`; for `http` and `s3` the landing folder downloads are
    /// renamed into, by default `<state_dir>/landing/<source>`.
    #[serde(default)]
    pub path: PathBuf,
    /// Accept uploads at `PUT /v1/sources/<name>/files/<file>` (any kind of source).
    #[serde(default)]
    pub push: Option<PushConfig>,
    /// Glob patterns (on the path relative to the folder) a file must match; empty means all.
    #[serde(default)]
    pub include: Vec<String>,
    /// Glob patterns that exclude a file even if it matches `include`.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Also watch sub-folders.
    #[serde(default)]
    pub recursive: bool,
    /// Follow symbolic links to files and folders (off by default: a link can point anywhere).
    #[serde(default)]
    pub follow_symlinks: bool,
    /// A file is ready once its size and mtime have not changed for this long. A file renamed
    /// into the folder is ready at once.
    #[serde(default = "defaults::min_age")]
    pub min_age: HumanDuration,
    /// How often the folder is listed again in full, to catch what notifications missed
    /// (queue overflow, network file systems).
    #[serde(default = "defaults::relist_interval")]
    pub relist_interval: HumanDuration,
    /// How to read the files.
    #[serde(default)]
    pub format: FormatConfig,
    /// Output columns by name, in table order. Empty: columns are inferred from the first
    /// batch's files (every leaf field, nested names joined with `_`) and then read back from
    /// the table's own schema; `[schema]` says how they follow the data.
    #[serde(default)]
    pub columns: IndexMap<String, ColumnConfig>,
    /// How the columns follow the data: evolution mode, rescued column, type hints.
    #[serde(default)]
    pub schema: SchemaConfig,
    /// One SQL query (DataFusion's dialect) over each micro-batch's rows, the table `batch`, and
    /// the `[lookups]` by name; its result is what the sinks receive. For example `SELECT
    /// pickup_datetime, passenger_count FROM batch WHERE passenger_count > 3`. It must be
    /// row by row (filters, projections, functions, joins with lookups), because it runs over
    /// the rows as they stream: aggregations, window functions, `DISTINCT`, `ORDER BY` and
    /// `LIMIT` over the batch, `UNION`, and joins that give lookup rows of their own are refused
    /// (ask `ingestd sql` over the table instead; docs/sql.md lists the rules).
    #[serde(default)]
    pub transform: Option<String>,
    /// Add `_source_file` (the file's name) and `_ingested_at` (commit time) columns.
    #[serde(default = "defaults::yes")]
    pub metadata_columns: bool,
    /// What to do with a row whose value cannot be converted to its column's type (when the
    /// rescued column is off; with it on, the value is rescued).
    #[serde(default = "defaults::on_bad_row")]
    pub on_bad_row: BadRowPolicy,
    /// A committed file rewritten in place (same name, new content): `true` ingests the new
    /// content as new rows; `false` records it as ignored and leaves the table alone.
    #[serde(default = "defaults::yes")]
    pub allow_overwrites: bool,
    /// What happens to a source file once its rows are committed (or it is a duplicate). For
    /// `http` and `s3` sources it applies to the landing copy, and `keep` means delete (the
    /// original stays on the server).
    #[serde(default = "defaults::after_commit")]
    pub after_commit: AfterCommit,
    /// Where `after_commit = "archive"` moves files (required for that policy).
    #[serde(default)]
    pub archive_dir: Option<PathBuf>,
    /// How files are grouped into micro-batches.
    #[serde(default)]
    pub batch: BatchConfig,
    /// Names of the sinks (under `[sinks]`) every batch of this source is committed to.
    pub sinks: Vec<String>,
}

/// How a file is decoded.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FormatConfig {
    /// `auto` sniffs the content (and the extension, if any); or one of `json` (an array, or
    /// an object holding the records at `records_path`), `ndjson`, `csv`.
    #[serde(default = "defaults::format_kind")]
    pub kind: FormatKind,
    /// Dotted path to the records array when a file is one JSON object (an API envelope such as
    /// `{"status": {...}, "property": [...]}`).
    #[serde(default)]
    pub records_path: Option<String>,
    /// CSV options.
    #[serde(default)]
    pub csv: CsvConfig,
    /// What one file may make the decoder hold (lines, records, fields, decompressed bytes,
    /// columns, nesting): past a limit the file is quarantined, naming the limit.
    #[serde(default)]
    pub limits: LimitsConfig,
}

impl Default for FormatConfig {
    fn default() -> Self {
        FormatConfig { kind: defaults::format_kind(), records_path: None, csv: CsvConfig::default(), limits: LimitsConfig::default() }
    }
}

/// The input formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FormatKind {
    Auto,
    Json,
    Ndjson,
    Csv,
}

/// CSV dialect (RFC 4180 by default).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CsvConfig {
    /// Field delimiter, one ASCII character (`\t` for TSV).
    #[serde(default = "defaults::csv_delimiter")]
    pub delimiter: char,
    /// Quote character, one ASCII character.
    #[serde(default = "defaults::csv_quote")]
    pub quote: char,
    /// Field values that mean null (compared exactly, after unquoting).
    #[serde(default = "defaults::csv_null_values")]
    pub null_values: Vec<String>,
    /// Accept rows with fewer fields than the header (missing ones are null). Rows with more
    /// fields are always an error.
    #[serde(default)]
    pub allow_short_rows: bool,
}

impl Default for CsvConfig {
    fn default() -> Self {
        CsvConfig {
            delimiter: defaults::csv_delimiter(),
            quote: defaults::csv_quote(),
            null_values: defaults::csv_null_values(),
            allow_short_rows: false,
        }
    }
}

/// What happens to a row holding a value that cannot be converted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BadRowPolicy {
    /// The whole file goes to quarantine; none of its rows are committed.
    QuarantineFile,
    /// The row is left out and counted.
    Skip,
    /// The value becomes null and is counted.
    Null,
}

/// What happens to a source file after its rows are committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AfterCommit {
    /// Leave it where it is (the ledger remembers it).
    Keep,
    /// Move it into `archive_dir`.
    Archive,
    /// Delete it.
    Delete,
}

/// Bounds of a micro-batch: a batch closes when any bound is reached.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// Most files in one batch.
    #[serde(default = "defaults::batch_max_files")]
    pub max_files: usize,
    /// Rows after which no further file joins the batch.
    #[serde(default = "defaults::batch_max_rows")]
    pub max_rows: usize,
    /// Input bytes after which no further file joins the batch.
    #[serde(default = "defaults::batch_max_bytes")]
    pub max_bytes: ByteSize,
    /// How long a ready file may wait for others to join its batch.
    #[serde(default = "defaults::batch_max_delay")]
    pub max_delay: HumanDuration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_files: defaults::batch_max_files(),
            max_rows: defaults::batch_max_rows(),
            max_bytes: defaults::batch_max_bytes(),
            max_delay: defaults::batch_max_delay(),
        }
    }
}

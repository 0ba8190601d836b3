//! The configuration file: types, defaults (all in [`defaults`]), loading and validation.
//!
//! Loading resolves every relative path against the config file's folder, so a config behaves
//! the same whatever the working directory of the process.

mod columns;
mod druid;
mod kafka;
mod kind;
mod limits;
mod lookup;
mod remote;
mod schema;
mod secret;
mod sink;
mod source;
pub mod units;

pub use columns::{ColumnConfig, ColumnType, INGESTED_AT_COLUMN, ListItem, MAX_DECIMAL_PRECISION, RESCUED_COLUMN, SOURCE_FILE_COLUMN};
pub use druid::{
    DruidBatchConfig, DruidBatchInput, DruidBatchMethod, DruidMetric, DruidMetricKind, DruidSchemaConfig, DruidSupervisorConfig,
    Granularity,
};
pub use kafka::{KafkaCompression, KafkaExactlyOnce, KafkaSinkConfig, is_secret};
pub use kind::{SourceKind, SourceKindName};
pub use limits::LimitsConfig;
pub use lookup::{LookupConfig, LookupFormat};
pub use remote::{FetchConfig, HttpKind, HttpSourceConfig, ListingKind, PushConfig, S3Config, S3Kind, parse_s3_url};
pub use schema::{Evolution, SchemaConfig};
pub use secret::Secret;
pub use sink::{DeltaSinkConfig, DeltaWriteMode, ParquetCompression, ParquetSinkConfig, SinkConfig};
pub use source::{AfterCommit, BadRowPolicy, BatchConfig, CsvConfig, FormatConfig, FormatKind, SourceConfig};

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Names this daemon in the Delta `txn` app id and the commit info. Two daemons appending to
    /// one table must have different ids. Default: the host name.
    #[serde(default = "defaults::instance")]
    pub instance: String,
    /// Folder of the ledger (the record of every file seen) and other state.
    #[serde(default = "defaults::state_dir")]
    pub state_dir: PathBuf,
    /// Folder where files that cannot be ingested are moved, one sub-folder per source.
    #[serde(default = "defaults::quarantine_dir")]
    pub quarantine_dir: PathBuf,
    /// Threads decoding the files of a batch in parallel (rows still commit in file order).
    /// Default: the number of CPU cores.
    #[serde(default = "defaults::decode_threads")]
    pub decode_threads: usize,
    /// How long a stop (SIGTERM, SIGINT) waits for the batches in flight before it abandons
    /// them and exits; an abandoned batch is settled at the next start (never half committed).
    #[serde(default = "defaults::shutdown_timeout")]
    pub shutdown_timeout: units::HumanDuration,
    /// The HTTP endpoint of `ingestd run`.
    #[serde(default)]
    pub http: HttpConfig,
    /// Sources by name.
    #[serde(default, deserialize_with = "kind::deserialize_sources")]
    pub sources: IndexMap<String, SourceConfig>,
    /// Sinks by name.
    #[serde(default)]
    pub sinks: IndexMap<String, SinkConfig>,
    /// Small tables by name, which every source's `transform` can join.
    #[serde(default)]
    pub lookups: IndexMap<String, LookupConfig>,
}

/// The HTTP endpoint: `/metrics` (Prometheus) and `/healthz`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address and port to listen on (loopback by default); an empty string turns it off.
    #[serde(default = "defaults::http_listen")]
    pub listen: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig { listen: defaults::http_listen() }
    }
}

impl HttpConfig {
    /// The address to listen on, `None` when turned off.
    pub fn address(&self) -> Option<std::net::SocketAddr> {
        self.listen.parse().ok()
    }
}

/// Every default value of the configuration, in one place.
pub mod defaults {
    use super::kind::SourceKindName;
    use super::source::{AfterCommit, BadRowPolicy, FormatKind};
    use super::units::{ByteSize, HumanDuration};
    use std::path::PathBuf;
    use std::time::Duration;

    pub fn instance() -> String {
        std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "ingestd".to_string())
    }
    pub fn decode_threads() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }
    pub fn shutdown_timeout() -> HumanDuration {
        HumanDuration(Duration::from_secs(30))
    }
    pub fn http_listen() -> String {
        "127.0.0.1:9464".to_string()
    }
    pub fn state_dir() -> PathBuf {
        PathBuf::from("state")
    }
    pub fn quarantine_dir() -> PathBuf {
        PathBuf::from("quarantine")
    }
    pub fn source_kind() -> SourceKindName {
        SourceKindName::Folder
    }
    pub fn poll_interval() -> HumanDuration {
        HumanDuration(Duration::from_secs(30))
    }
    pub fn fetch_concurrency() -> usize {
        4
    }
    pub fn fetch_timeout() -> HumanDuration {
        HumanDuration(Duration::from_secs(60))
    }
    pub fn fetch_retries() -> u32 {
        5
    }
    pub fn fetch_backoff() -> HumanDuration {
        HumanDuration(Duration::from_secs(1))
    }
    pub fn fetch_max_file_size() -> ByteSize {
        ByteSize(4 << 30)
    }
    pub fn push_max_size() -> ByteSize {
        ByteSize(1 << 30)
    }
    pub fn min_age() -> HumanDuration {
        HumanDuration(Duration::from_secs(2))
    }
    pub fn relist_interval() -> HumanDuration {
        HumanDuration(Duration::from_secs(30))
    }
    pub fn format_kind() -> FormatKind {
        FormatKind::Auto
    }
    pub fn csv_delimiter() -> char {
        ','
    }
    pub fn csv_quote() -> char {
        '"'
    }
    pub fn csv_null_values() -> Vec<String> {
        vec![String::new()]
    }
    pub fn yes() -> bool {
        true
    }
    pub fn on_bad_row() -> BadRowPolicy {
        BadRowPolicy::QuarantineFile
    }
    pub fn after_commit() -> AfterCommit {
        AfterCommit::Keep
    }
    pub fn limits_max_line() -> ByteSize {
        ByteSize(64 << 20)
    }
    pub fn limits_max_record() -> ByteSize {
        ByteSize(64 << 20)
    }
    pub fn limits_max_field() -> ByteSize {
        ByteSize(64 << 20)
    }
    pub fn limits_max_decompressed_size() -> ByteSize {
        ByteSize(64 << 30)
    }
    /// Far above JSON and CSV (3 to 30), far below a bomb of zeros (gzip: near 1032).
    pub fn limits_max_decompression_ratio() -> u64 {
        250
    }
    pub fn limits_max_columns() -> usize {
        10_000
    }
    /// About serde_json's recursion limit (it parses 127 levels), which inference uses.
    pub fn limits_max_depth() -> usize {
        128
    }
    pub fn batch_max_files() -> usize {
        400
    }
    pub fn batch_max_rows() -> usize {
        2_000_000
    }
    pub fn batch_max_bytes() -> ByteSize {
        ByteSize(2 << 30)
    }
    pub fn batch_max_delay() -> HumanDuration {
        HumanDuration(Duration::from_millis(200))
    }
    pub fn target_file_size() -> ByteSize {
        ByteSize(128 << 20)
    }
    pub fn checkpoint_interval() -> u64 {
        100
    }
    pub fn compact_min_files() -> usize {
        32
    }
    pub fn vacuum_interval() -> HumanDuration {
        HumanDuration(Duration::from_secs(3600))
    }
    pub fn vacuum_retention() -> HumanDuration {
        HumanDuration(Duration::from_secs(7 * 24 * 3600))
    }
    pub fn zstd_level() -> i32 {
        3
    }
    pub fn parquet_compression() -> super::ParquetCompression {
        super::ParquetCompression::Zstd
    }
    pub fn kafka_exactly_once() -> super::KafkaExactlyOnce {
        super::KafkaExactlyOnce::Auto
    }
    pub fn kafka_compression() -> super::KafkaCompression {
        super::KafkaCompression::Zstd
    }
    pub fn kafka_bookkeeping_topic() -> String {
        "ingestd-batches".to_string()
    }
    pub fn kafka_partitions() -> i32 {
        3
    }
    pub fn kafka_replication() -> i32 {
        1
    }
    pub fn kafka_max_in_flight() -> ByteSize {
        ByteSize(64 << 20)
    }
    pub fn kafka_delivery_timeout() -> HumanDuration {
        HumanDuration(Duration::from_secs(120))
    }
    /// Druid detects ISO 8601 text and epoch milliseconds.
    pub fn druid_timestamp_format() -> String {
        "auto".to_string()
    }
    /// One segment per day.
    pub fn druid_segment_granularity() -> super::Granularity {
        super::Granularity::Day
    }
    /// Times kept to the millisecond.
    pub fn druid_query_granularity() -> super::Granularity {
        super::Granularity::None
    }
    /// One Overlord request.
    pub fn druid_timeout() -> HumanDuration {
        HumanDuration(Duration::from_secs(30))
    }
    /// About a minute of retries with the default backoff.
    pub fn druid_retries() -> u32 {
        5
    }
    pub fn druid_retry_backoff() -> HumanDuration {
        HumanDuration(Duration::from_secs(1))
    }
    /// `task_count`, `replicas`, `parallelism`.
    pub fn druid_one() -> u32 {
        1
    }
    /// Druid's own default, one hour.
    pub fn druid_task_duration() -> HumanDuration {
        HumanDuration(Duration::from_secs(3600))
    }
    /// JSON `index_parallel`, which needs no multi-stage-query extension.
    pub fn druid_batch_method() -> super::DruidBatchMethod {
        super::DruidBatchMethod::Native
    }
    /// Druid reads the files where ingestd wrote them.
    pub fn druid_batch_input() -> super::DruidBatchInput {
        super::DruidBatchInput::Local
    }
    pub fn druid_poll_interval() -> HumanDuration {
        HumanDuration(Duration::from_secs(2))
    }
    pub fn druid_task_timeout() -> HumanDuration {
        HumanDuration(Duration::from_secs(3600))
    }
    /// Tasks per commit.
    pub fn druid_max_attempts() -> u32 {
        3
    }
    pub fn delta_write_mode() -> super::DeltaWriteMode {
        super::DeltaWriteMode::Append
    }
    pub fn merge_memory_limit() -> ByteSize {
        ByteSize(512 << 20)
    }
}

/// Why a configuration was refused. `Invalid` lists every problem, each naming its key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{path}: {} problem(s):\n  {}", problems.len(), problems.join("\n  "))]
    Invalid { path: PathBuf, problems: Vec<String> },
}

impl Config {
    /// Reads, parses, resolves and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        let base = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        Config::from_toml(&text, base).map_err(|e| match e {
            ConfigError::Syntax { message, .. } => ConfigError::Syntax { path: path.to_path_buf(), message },
            ConfigError::Invalid { problems, .. } => ConfigError::Invalid { path: path.to_path_buf(), problems },
            other => other,
        })
    }

    /// Parses TOML text whose relative paths are relative to `base`.
    pub fn from_toml(text: &str, base: &Path) -> Result<Config, ConfigError> {
        let mut config: Config =
            toml::from_str(text).map_err(|e| ConfigError::Syntax { path: PathBuf::from("<config>"), message: e.to_string() })?;
        config.resolve_paths(base);
        let problems = config.problems();
        if problems.is_empty() { Ok(config) } else { Err(ConfigError::Invalid { path: PathBuf::from("<config>"), problems }) }
    }

    /// The configuration used when there is no config file: `./drop` into a Delta table at
    /// `./lake`, columns inferred from the first file, state in `./state`.
    pub fn builtin_default(base: &Path) -> Config {
        const DEFAULT: &str = r#"
            [sources.drop]
            path = "drop"
            sinks = ["lake"]

            [sinks.lake]
            kind = "delta"
            uri = "lake"
        "#;
        match Config::from_toml(DEFAULT, base) {
            Ok(config) => config,
            // The embedded text is fixed and covered by a unit test.
            Err(e) => unreachable!("built-in default config is invalid: {e}"),
        }
    }

    fn resolve_paths(&mut self, base: &Path) {
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = join_clean(base, p);
            }
        };
        resolve(&mut self.state_dir);
        resolve(&mut self.quarantine_dir);
        for (name, source) in self.sources.iter_mut() {
            if source.path.as_os_str().is_empty() && source.kind.downloads() {
                source.path = self.state_dir.join("landing").join(name);
            }
            // A folder source's missing path stays empty, for validation to refuse.
            if !source.path.as_os_str().is_empty() {
                resolve(&mut source.path);
            }
            if let Some(push) = source.push.as_mut() {
                resolve(&mut push.tokens_file);
            }
            if let Some(dir) = source.archive_dir.as_mut() {
                resolve(dir);
            }
        }
        for lookup in self.lookups.values_mut() {
            if !lookup.path.contains("://") {
                lookup.path = join_clean(base, Path::new(&lookup.path)).to_string_lossy().into_owned();
            }
        }
        for sink in self.sinks.values_mut() {
            match sink {
                SinkConfig::Delta(delta) if !delta.uri.contains("://") => {
                    delta.uri = join_clean(base, Path::new(&delta.uri)).to_string_lossy().into_owned();
                }
                SinkConfig::Parquet(parquet) if !parquet.path.starts_with("s3://") => {
                    parquet.path = join_clean(base, Path::new(&parquet.path)).to_string_lossy().into_owned();
                }
                SinkConfig::Druid(druid) => druid.schema.resolve_paths(base),
                SinkConfig::Kafka(KafkaSinkConfig { druid: Some(druid), .. }) => druid.schema.resolve_paths(base),
                SinkConfig::Delta(_) | SinkConfig::Parquet(_) | SinkConfig::Kafka(_) => {}
            }
        }
    }

    /// Every semantic problem, each starting with the key it concerns.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.instance.is_empty() || !self.instance.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            problems.push(format!("instance: {:?} must be non-empty letters, digits, '-', '_' or '.'", self.instance));
        }
        if !(1..=64).contains(&self.decode_threads) {
            problems.push(format!("decode_threads: {} is outside 1..=64", self.decode_threads));
        }
        if !self.http.listen.is_empty() && self.http.address().is_none() {
            problems
                .push(format!("http.listen: {:?} is not an address:port (e.g. \"127.0.0.1:9464\"); \"\" turns it off", self.http.listen));
        }
        if self.sources.is_empty() {
            problems.push("sources: at least one source is needed ([sources.NAME])".to_string());
        }
        if self.sinks.is_empty() {
            problems.push("sinks: at least one sink is needed ([sinks.NAME])".to_string());
        }
        for (name, source) in &self.sources {
            source_problems(name, source, self, &mut problems);
        }
        for (name, sink) in &self.sinks {
            if let SinkConfig::Delta(DeltaSinkConfig { zstd_level, .. }) | SinkConfig::Parquet(ParquetSinkConfig { zstd_level, .. }) = sink
                && !(1..=22).contains(zstd_level)
            {
                problems.push(format!("sinks.{name}.zstd_level: {zstd_level} is outside 1..=22"));
            }
            if let SinkConfig::Delta(delta) = sink
                && (delta.uri.starts_with("s3://") || delta.uri.starts_with("s3a://"))
            {
                if let Err(e) = parse_s3_url(&delta.uri.replacen("s3a://", "s3://", 1)) {
                    problems.push(format!("sinks.{name}.uri: {e}"));
                }
                problems.extend(delta.s3.problems(&format!("sinks.{name}.s3")));
            }
            if let SinkConfig::Parquet(parquet) = sink
                && parquet.path.starts_with("s3://")
            {
                if let Err(e) = parse_s3_url(&parquet.path) {
                    problems.push(format!("sinks.{name}.path: {e}"));
                }
                problems.extend(parquet.s3.problems(&format!("sinks.{name}.s3")));
            }
            if let SinkConfig::Kafka(kafka) = sink {
                problems.extend(kafka.problems(&format!("sinks.{name}")));
            }
            if let SinkConfig::Delta(delta) = sink {
                problems.extend(delta.merge_problems(&format!("sinks.{name}")));
            }
        }
        for (name, lookup) in &self.lookups {
            if !sql_table_name(name) || name == crate::transform::BATCH_TABLE {
                problems.push(format!(
                    "lookups.{name}: a lookup name is its table's name in SQL: lower-case letters, digits and '_', not starting with a digit, and not \"batch\""
                ));
            }
            if lookup.is_s3() {
                if let Err(e) = parse_s3_url(&lookup.path) {
                    problems.push(format!("lookups.{name}.path: {e}"));
                }
                problems.extend(lookup.s3.problems(&format!("lookups.{name}.s3")));
            } else if !std::path::Path::new(&lookup.path).exists() {
                problems.push(format!("lookups.{name}.path: {} does not exist", lookup.path));
            }
        }
        problems.extend(druid::wiring_problems(self));
        push_problems(self, &mut problems);
        problems
    }
}

fn source_problems(name: &str, source: &SourceConfig, config: &Config, problems: &mut Vec<String>) {
    let key = format!("sources.{name}");
    if !valid_name(name) {
        problems.push(format!("{key}: a source name must be letters, digits, '-' or '_'"));
    }
    for pattern in source.include.iter().chain(&source.exclude) {
        if let Err(e) = globset::Glob::new(pattern) {
            problems.push(format!("{key}.include/exclude: bad pattern {pattern:?}: {e}"));
        }
    }
    remote_problems(&key, source, problems);
    if source.after_commit == AfterCommit::Archive && source.archive_dir.is_none() {
        problems.push(format!("{key}.archive_dir: required when after_commit = \"archive\""));
    }
    let csv = &source.format.csv;
    for (field, c) in [("delimiter", csv.delimiter), ("quote", csv.quote)] {
        if !c.is_ascii() {
            problems.push(format!("{key}.format.csv.{field}: {c:?} must be one ASCII character"));
        }
    }
    problems.extend(source.format.limits.problems(&format!("{key}.format.limits")));
    let batch = &source.batch;
    for (field, zero) in [("max_files", batch.max_files == 0), ("max_rows", batch.max_rows == 0), ("max_bytes", batch.max_bytes.0 == 0)] {
        if zero {
            problems.push(format!("{key}.batch.{field}: must be at least 1"));
        }
    }
    for (column, spec) in &source.columns {
        if column.starts_with('_') && source.metadata_columns {
            problems.push(format!("{key}.columns.{column}: names starting with '_' are reserved for metadata columns"));
        }
        if spec.path.is_empty() || spec.path.split('.').any(str::is_empty) {
            problems.push(format!("{key}.columns.{column}.path: {:?} is not a dotted path", spec.path));
        }
        if spec.format.is_some() && !spec.kind.takes_format() {
            problems.push(format!("{key}.columns.{column}.format: only date and timestamp columns take a format"));
        }
    }
    schema_problems(&key, source, problems);
    if let Some(sql) = &source.transform
        && sql.trim().is_empty()
    {
        problems.push(format!("{key}.transform: an empty query"));
    }
    if source.sinks.is_empty() {
        problems.push(format!("{key}.sinks: name at least one sink"));
    }
    for (i, sink_name) in source.sinks.iter().enumerate() {
        match config.sinks.get(sink_name) {
            None => problems.push(format!("{key}.sinks[{i}]: no sink named {sink_name:?} under [sinks]")),
            Some(sink) if !source.columns.is_empty() && source.transform.is_none() => {
                let (field, columns) = sink.columns_named();
                for column in columns {
                    if !source.columns.contains_key(column) {
                        problems.push(format!("sinks.{sink_name}.{field}: {column:?} is not a column of source {name:?}"));
                    }
                }
            }
            Some(_) => {}
        }
    }
}

/// Keys of `[sources.NAME.schema]`.
fn schema_problems(key: &str, source: &SourceConfig, problems: &mut Vec<String>) {
    let inferred = source.columns.is_empty();
    if let Some(rescued) = source.schema.rescued_column(inferred) {
        if source.columns.contains_key(&rescued) {
            problems.push(format!("{key}.schema.rescued_column: {rescued:?} is also a configured column"));
        }
        if source.metadata_columns && [SOURCE_FILE_COLUMN, INGESTED_AT_COLUMN].contains(&rescued.as_str()) {
            problems.push(format!("{key}.schema.rescued_column: {rescued:?} is a metadata column"));
        }
    }
    if source.schema.evolution(inferred) == Evolution::Rescue && source.schema.rescued_column(inferred).is_none() {
        problems.push(format!("{key}.schema.rescued_column: evolution = \"rescue\" needs a rescued column (not \"\")"));
    }
    for column in source.schema.hints.keys() {
        if !inferred && !source.columns.contains_key(column) && source.schema.evolution(inferred) != Evolution::AddColumns {
            problems.push(format!("{key}.schema.hints.{column}: not a column, and evolution does not add columns"));
        }
        if let Some(configured) = source.columns.get(column) {
            problems.push(format!("{key}.schema.hints.{column}: the column is configured as {}; set its type there", configured.kind));
        }
    }
}

/// Keys of the landing folder, the remote location and the push endpoint.
fn remote_problems(key: &str, source: &SourceConfig, problems: &mut Vec<String>) {
    if source.kind == SourceKind::Folder && source.path.as_os_str().is_empty() {
        problems.push(format!("{key}.path: required for kind = \"folder\""));
    }
    problems.extend(source.kind.problems(key));
    if let Some(push) = &source.push
        && !push.tokens_file.is_file()
    {
        problems.push(format!("{key}.push.tokens_file: {} is not a readable file", push.tokens_file.display()));
    }
}

/// Pushed uploads arrive through the HTTP endpoint, so it must be on.
fn push_problems(config: &Config, problems: &mut Vec<String>) {
    if config.http.listen.is_empty() {
        for name in config.sources.iter().filter(|(_, s)| s.push.is_some()).map(|(n, _)| n) {
            problems.push(format!("sources.{name}.push: needs the HTTP endpoint, but http.listen is \"\""));
        }
    }
}

/// `base` joined with `relative`, without the `.` components that make paths in logs hard to read.
fn join_clean(base: &Path, relative: &Path) -> PathBuf {
    let mut out: PathBuf = base.components().filter(|c| *c != std::path::Component::CurDir).collect();
    out.extend(relative.components().filter(|c| *c != std::path::Component::CurDir));
    if out.as_os_str().is_empty() { PathBuf::from(".") } else { out }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Whether `name` is a table name SQL reads as written, without quotes (SQL folds unquoted names
/// to lower case).
fn sql_table_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

#[cfg(test)]
mod tests;

//! Configuration of a sink: where committed rows go.

use super::defaults;
use super::units::{ByteSize, HumanDuration};
use serde::{Deserialize, Serialize};

/// A sink. S3 locations slot in as a further kind with its own keys.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum SinkConfig {
    /// A Delta Lake table.
    Delta(DeltaSinkConfig),
    /// A folder of Parquet files (optionally hive-partitioned).
    Parquet(ParquetSinkConfig),
    /// A Kafka topic, one JSON message per row.
    Kafka(super::KafkaSinkConfig),
    /// Druid batch tasks loading the files of each commit of a Delta or Parquet sink.
    Druid(super::DruidBatchConfig),
}

/// A Delta Lake table, created on first use with the source's columns.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DeltaSinkConfig {
    /// Table location: a local path (relative to the config file's folder), a `file://` URL,
    /// or `s3://bucket/prefix` (see `s3`).
    pub uri: String,
    /// Endpoint, region and credentials when `uri` is `s3://bucket/prefix`.
    #[serde(default)]
    pub s3: super::S3Config,
    /// Columns to partition the table by (must be output columns).
    #[serde(default)]
    pub partition_by: Vec<String>,
    /// Data files are cut at about this size.
    #[serde(default = "defaults::target_file_size")]
    pub target_file_size: ByteSize,
    /// zstd level for the Parquet data files (1-22).
    #[serde(default = "defaults::zstd_level")]
    pub zstd_level: i32,
    /// A checkpoint (the log's state in one Parquet file, so readers need not replay every
    /// commit) is written every this many commits; 0 turns checkpoints off.
    #[serde(default = "defaults::checkpoint_interval")]
    pub checkpoint_interval: u64,
    /// Once a partition holds this many small files (under half of `target_file_size`), they
    /// are rewritten into files of about `target_file_size` (a `dataChange = false` commit:
    /// same rows, fewer files); 0 turns compaction off.
    #[serde(default = "defaults::compact_min_files")]
    pub compact_min_files: usize,
    /// Delete data files that left the table (replaced by compaction) once they have been out
    /// of it for `vacuum_retention`.
    #[serde(default = "defaults::yes")]
    pub vacuum: bool,
    /// Vacuum (which lists the whole table folder) runs at most this often, and only after a
    /// compaction replaced files.
    #[serde(default = "defaults::vacuum_interval")]
    pub vacuum_interval: HumanDuration,
    /// How long a replaced data file is kept for readers of older versions (time travel)
    /// before vacuum deletes it.
    #[serde(default = "defaults::vacuum_retention")]
    pub vacuum_retention: HumanDuration,
}

/// A folder of Parquet files with deterministic names, one or more per batch.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ParquetSinkConfig {
    /// The dataset folder (relative to the config file's folder), or `s3://bucket/prefix`
    /// (see `s3`).
    pub path: String,
    /// Endpoint, region and credentials when `path` is `s3://bucket/prefix`.
    #[serde(default)]
    pub s3: super::S3Config,
    /// Columns to partition by, hive style (`col=value/`).
    #[serde(default)]
    pub partition_by: Vec<String>,
    /// Parquet compression: `zstd` (default) or `none`.
    #[serde(default = "defaults::parquet_compression")]
    pub compression: ParquetCompression,
    /// zstd level (1-22).
    #[serde(default = "defaults::zstd_level")]
    pub zstd_level: i32,
}

/// Compression of Parquet data files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ParquetCompression {
    Zstd,
    None,
}

impl SinkConfig {
    /// The key naming columns (partition or message key columns) and those columns; each
    /// must be a column of every source writing to the sink.
    pub fn columns_named(&self) -> (&'static str, &[String]) {
        match self {
            SinkConfig::Delta(c) => ("partition_by", &c.partition_by),
            SinkConfig::Parquet(c) => ("partition_by", &c.partition_by),
            SinkConfig::Kafka(c) => ("key", &c.key),
            // Druid columns may name metadata columns too: see `druid_column_problems`.
            SinkConfig::Druid(_) => ("dimensions", &[]),
        }
    }
}

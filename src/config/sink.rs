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
    /// `append` adds every row; `merge` merges each batch into the table by `merge_key`
    /// (upserts, and deletes with `delete_when`), in one commit with the batch's `txn`.
    #[serde(default = "defaults::delta_write_mode")]
    pub mode: DeltaWriteMode,
    /// The columns that identify a row (`mode = "merge"`). Within one batch the last row of
    /// each key wins (the highest `sequence_column`, then the latest in file order), so the
    /// merge never sees two rows for one stored row.
    #[serde(default)]
    pub merge_key: Vec<String>,
    /// A column ordering the versions of a row (a change number, an update time): a row
    /// replaces or deletes the stored one only if its value is greater (a stored null always
    /// loses; an incoming null never wins). Unset: the newest batch wins.
    #[serde(default)]
    pub sequence_column: Option<String>,
    /// A SQL predicate over the batch's columns that marks a row as a delete of its key, e.g.
    /// `op = 'D'`. A delete of a key the table lacks does nothing.
    #[serde(default)]
    pub delete_when: Option<String>,
    /// Insert the rows whose key the table lacks and drop the rest: dedupe by key (no update,
    /// no delete).
    #[serde(default)]
    pub insert_only: bool,
    /// Record inserts, updates and deletes in the table's change data feed
    /// (`delta.enableChangeDataFeed`), set when the table is created.
    #[serde(default)]
    pub change_data_feed: bool,
    /// Memory a merge may use before it spills to disk (`mode = "merge"`).
    #[serde(default = "defaults::merge_memory_limit")]
    pub merge_memory_limit: ByteSize,
}

/// How a Delta sink writes a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeltaWriteMode {
    Append,
    Merge,
}

impl DeltaSinkConfig {
    pub fn merges(&self) -> bool {
        self.mode == DeltaWriteMode::Merge
    }

    /// Problems of the merge keys, each naming its key under `key` (`sinks.NAME`).
    pub fn merge_problems(&self, key: &str) -> Vec<String> {
        let mut problems = Vec::new();
        let merge_keys_set = !self.merge_key.is_empty()
            || self.sequence_column.is_some()
            || self.delete_when.is_some()
            || self.insert_only
            || self.change_data_feed;
        if !self.merges() {
            if merge_keys_set && !self.change_data_feed {
                problems.push(format!("{key}.mode: merge_key, sequence_column, delete_when and insert_only need mode = \"merge\""));
            }
            return problems;
        }
        if self.merge_key.is_empty() {
            problems.push(format!("{key}.merge_key: mode = \"merge\" needs the columns that identify a row"));
        }
        if self.insert_only && (self.sequence_column.is_some() || self.delete_when.is_some()) {
            problems.push(format!("{key}.insert_only: inserts only, so sequence_column and delete_when would never apply"));
        }
        if let Some(predicate) = &self.delete_when
            && predicate.trim().is_empty()
        {
            problems.push(format!("{key}.delete_when: an empty predicate"));
        }
        if self.merge_memory_limit.0 < (16 << 20) {
            problems.push(format!("{key}.merge_memory_limit: at least 16MB"));
        }
        problems
    }
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

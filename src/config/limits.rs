//! What one file may make the decoder hold (`[sources.NAME.format.limits]`): past a limit the
//! file is quarantined with a reason naming the limit and the offset, and its neighbours commit.

use super::defaults;
use super::units::ByteSize;
use serde::{Deserialize, Serialize};

/// Bounds on a file's lines, records, fields, decompression, columns and nesting, so that memory
/// stays bounded whatever the shape of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// The longest line: one NDJSON line, one physical CSV line (the header's included). Not
    /// applied to a JSON array, which is often one line.
    #[serde(default = "defaults::limits_max_line")]
    pub max_line: ByteSize,
    /// The longest record: one JSON array element or NDJSON value, one CSV row or the header
    /// (quoted newlines included). At most 1GiB.
    #[serde(default = "defaults::limits_max_record")]
    pub max_record: ByteSize,
    /// The longest field the decoder keeps: a JSON string as written (between its quotes),
    /// number or key; a CSV field or header name once unquoted. At most `max_record`.
    #[serde(default = "defaults::limits_max_field")]
    pub max_field: ByteSize,
    /// The most bytes one gzip or zstd file may decompress to.
    #[serde(default = "defaults::limits_max_decompressed_size")]
    pub max_decompressed_size: ByteSize,
    /// The highest ratio of decompressed to compressed bytes a gzip or zstd file may reach,
    /// judged on the bytes out that are not whitespace, once 64MiB of them are out (gzip peaks
    /// near 1032; JSON and CSV are 3 to 30; whitespace, which the decoders pass without holding
    /// it, is bounded by `max_decompressed_size` only); `0` turns the check off.
    #[serde(default = "defaults::limits_max_decompression_ratio")]
    pub max_decompression_ratio: u64,
    /// The most fields a CSV header may have (checked before any row is read), and the most
    /// leaf paths of a JSON file that would become columns (sampled by inference, or new to the
    /// table under `add_columns`).
    #[serde(default = "defaults::limits_max_columns")]
    pub max_columns: usize,
    /// The deepest nesting of a JSON record, counted from the record itself (`{"a": 1}` is 1).
    /// At most 512.
    #[serde(default = "defaults::limits_max_depth")]
    pub max_depth: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_line: defaults::limits_max_line(),
            max_record: defaults::limits_max_record(),
            max_field: defaults::limits_max_field(),
            max_decompressed_size: defaults::limits_max_decompressed_size(),
            max_decompression_ratio: defaults::limits_max_decompression_ratio(),
            max_columns: defaults::limits_max_columns(),
            max_depth: defaults::limits_max_depth(),
        }
    }
}

impl LimitsConfig {
    /// The deepest `max_depth` may go: the JSON reader recurses once per level.
    pub const DEEPEST: usize = 512;
    /// The largest `max_record`: a record's text must fit one Arrow string column (2 GiB)
    /// beside the rest of its batch.
    pub const LARGEST_RECORD: u64 = 1 << 30;

    /// Every problem, each naming its key under `key` (`sources.NAME.format.limits`).
    pub fn problems(&self, key: &str) -> Vec<String> {
        let mut problems = Vec::new();
        for (field, size) in [
            ("max_line", self.max_line),
            ("max_record", self.max_record),
            ("max_field", self.max_field),
            ("max_decompressed_size", self.max_decompressed_size),
        ] {
            if size.0 == 0 {
                problems.push(format!("{key}.{field}: must be at least 1"));
            }
        }
        if self.max_record.0 > Self::LARGEST_RECORD {
            problems.push(format!("{key}.max_record: {} is more than 1GiB", self.max_record.0));
        }
        if self.max_field.0 > self.max_record.0 {
            problems.push(format!(
                "{key}.max_field: {} is more than max_record ({}); a field is part of a record",
                self.max_field.0, self.max_record.0
            ));
        }
        if self.max_columns == 0 {
            problems.push(format!("{key}.max_columns: must be at least 1"));
        }
        if !(1..=Self::DEEPEST).contains(&self.max_depth) {
            problems.push(format!("{key}.max_depth: {} is outside 1..={}", self.max_depth, Self::DEEPEST));
        }
        problems
    }
}

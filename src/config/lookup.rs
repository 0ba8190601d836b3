//! Configuration of a lookup: a small table every transform can join (`[lookups.NAME]`).

use serde::{Deserialize, Serialize};

/// A small table (regions, currencies, a product list) held in memory and registered under its
/// name for every source's `transform`. It is read again when its file (or Delta version)
/// changes, and the version each batch used is recorded in that batch's commit.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LookupConfig {
    /// A CSV file (with a header line), a Parquet file or a Delta table: a local path (relative
    /// to the config file's folder) or `s3://bucket/key`.
    pub path: String,
    /// `csv`, `parquet` or `delta`. Default: `delta` for a folder holding `_delta_log`, else
    /// from the extension (`.parquet`, else `.csv`).
    #[serde(default)]
    pub format: Option<LookupFormat>,
    /// Endpoint, region and credentials when `path` is `s3://bucket/key`.
    #[serde(default)]
    pub s3: super::S3Config,
}

/// The formats a lookup can be read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LookupFormat {
    Csv,
    Parquet,
    Delta,
}

impl LookupConfig {
    /// The format, from `format` or guessed from the path.
    pub fn format(&self) -> LookupFormat {
        if let Some(format) = self.format {
            return format;
        }
        let path = self.path.trim_end_matches('/');
        if !path.contains("://") && std::path::Path::new(path).join("_delta_log").is_dir() {
            LookupFormat::Delta
        } else if path.to_ascii_lowercase().ends_with(".parquet") {
            LookupFormat::Parquet
        } else {
            LookupFormat::Csv
        }
    }

    pub fn is_s3(&self) -> bool {
        self.path.starts_with("s3://")
    }
}

//! How a source's columns follow the data when its files change shape (`[sources.NAME.schema]`).
//! The names of Databricks Auto Loader's options are given beside ours.

use super::columns::{ColumnType, RESCUED_COLUMN};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

/// Schema evolution of one source.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaConfig {
    /// What a field the table lacks does (Auto Loader's `schemaEvolutionMode`): `add_columns`
    /// (`addNewColumns`) adds it as a new nullable column in the same commit as the batch that
    /// brought it; `rescue` keeps the schema and puts the field in the rescued column; `fail`
    /// (`failOnNewColumns`) quarantines the file, naming the field; `none` ignores the field and
    /// counts it in `ingestd_fields_ignored_total`. Default: `add_columns` when the columns are
    /// inferred, `none` when they are configured.
    #[serde(default)]
    pub evolution: Option<Evolution>,
    /// The rescued-data column (Auto Loader's `rescuedDataColumn`): a string column holding a
    /// JSON object of each record's values that did not convert to their column's type (and,
    /// with `evolution = "rescue"`, its fields the table lacks), with the file's name under
    /// `_file_path`. `""` turns it off. Default: `_rescued_data` when the columns are inferred or
    /// `evolution = "rescue"`, off otherwise. With it on, a value that does not convert is
    /// rescued and counted, never a reason to quarantine the file or to write null.
    #[serde(default)]
    pub rescued_column: Option<String>,
    /// Types that override inference for the named columns (Auto Loader's `schemaHints`), e.g.
    /// `{ price = "decimal(12,2)", sold_at = "timestamp" }`.
    #[serde(default)]
    pub hints: IndexMap<String, ColumnType>,
}

/// The evolution modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Evolution {
    AddColumns,
    Rescue,
    Fail,
    None,
}

impl Evolution {
    pub fn as_str(self) -> &'static str {
        match self {
            Evolution::AddColumns => "add_columns",
            Evolution::Rescue => "rescue",
            Evolution::Fail => "fail",
            Evolution::None => "none",
        }
    }
}

impl SchemaConfig {
    /// The mode in force; `inferred` when the source configures no columns.
    pub fn evolution(&self, inferred: bool) -> Evolution {
        self.evolution.unwrap_or(if inferred { Evolution::AddColumns } else { Evolution::None })
    }

    /// The rescued column's name, if it is on.
    pub fn rescued_column(&self, inferred: bool) -> Option<String> {
        match self.rescued_column.as_deref() {
            Some("") => None,
            Some(name) => Some(name.to_string()),
            None if inferred || self.evolution(inferred) == Evolution::Rescue => Some(RESCUED_COLUMN.to_string()),
            None => None,
        }
    }
}

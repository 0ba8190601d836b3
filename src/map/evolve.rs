//! Fields a table lacks, found while mapping (`evolution = "add_columns"`): each leaf under
//! them with the type its values infer, ready to become columns.

use super::infer::{self, Kinds};
use crate::config::ColumnType;
use serde_json::value::RawValue;

/// Leaf paths not in the table, and the type their values so far infer (`None`: only nulls).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Discovered {
    kinds: Kinds,
}

impl Discovered {
    /// Adds the value of field `path` (as written; `text`: a CSV value, typed from its text).
    pub(super) fn add(&mut self, path: &str, value: &RawValue, text: bool) {
        infer::observe(&mut self.kinds, path, value, text);
    }

    /// Adds what another batch found.
    pub fn merge(&mut self, other: Discovered) {
        for (path, kind) in other.kinds {
            infer::widen_into(&mut self.kinds, path, kind);
        }
    }

    /// Whether a column would be added: a field with only null values waits for a value.
    pub fn is_empty(&self) -> bool {
        self.kinds.values().all(Option::is_none)
    }

    /// The new columns: (path, type), in the order they were found.
    pub fn columns(&self) -> impl Iterator<Item = (&str, ColumnType)> {
        self.kinds.iter().filter_map(|(path, kind)| kind.map(|k| (path.as_str(), k)))
    }

    /// The fields' paths, for messages.
    pub fn paths(&self) -> Vec<&str> {
        self.columns().map(|(p, _)| p).collect()
    }
}

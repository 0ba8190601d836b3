//! Fields a table lacks, found while mapping (`evolution = "add_columns"`): each leaf under
//! them with the type its values infer, ready to become columns.

use super::infer::{self, Kinds};
use crate::config::ColumnType;
use serde_json::value::RawValue;

/// Leaf paths not in the table, and the type their values so far infer (`None`: only nulls).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Discovered {
    kinds: Kinds,
    /// The file each path was first seen in, once known.
    origins: indexmap::IndexMap<String, String>,
    /// Values looked at per path: its type comes from a sample, as inference's does.
    observed: std::collections::HashMap<String, usize>,
}

/// Values of one new field looked at to type it (a later value that does not fit is rescued).
const OBSERVATIONS_PER_FIELD: usize = 1_000;

impl Discovered {
    /// Adds the value of field `path` (as written; `text`: a CSV value, typed from its text).
    pub(super) fn add(&mut self, path: &str, value: &RawValue, text: bool) {
        match self.observed.get_mut(path) {
            Some(n) if *n >= OBSERVATIONS_PER_FIELD => return,
            Some(n) => *n += 1,
            None => {
                self.observed.insert(path.to_string(), 1);
            }
        }
        infer::observe(&mut self.kinds, path, value, text);
    }

    /// Adds what another record batch or file found.
    pub fn merge(&mut self, other: Discovered) {
        for (path, kind) in other.kinds {
            infer::widen_into(&mut self.kinds, path, kind);
        }
        for (path, file) in other.origins {
            self.origins.entry(path).or_insert(file);
        }
        for (path, n) in other.observed {
            *self.observed.entry(path).or_default() += n;
        }
    }

    /// Records `file` as where the paths without an origin yet were found.
    pub fn found_in(&mut self, file: &str) {
        for path in self.kinds.keys() {
            if !self.origins.contains_key(path) {
                self.origins.insert(path.clone(), file.to_string());
            }
        }
    }

    /// The file path `path` was first seen in.
    pub fn origin(&self, path: &str) -> Option<&str> {
        self.origins.get(path).map(String::as_str)
    }

    /// How many new fields (typed or not yet) were found.
    pub fn field_count(&self) -> usize {
        self.kinds.count()
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

//! The rescued-data column: per row, a JSON object of the values that did not fit the table,
//! under their input paths, and the file they came from under `_file_path` (Auto Loader's
//! shape). Values are kept as written: JSON values verbatim, text as a JSON string.

use arrow::array::{StringArray, StringBuilder};
use serde_json::value::RawValue;

/// Key of the source file's name inside a rescued object.
pub const FILE_PATH_KEY: &str = "_file_path";

/// The rescued objects of one batch, built only for rows that need one.
pub(super) struct Rescued {
    on: bool,
    rows: usize,
    /// Each row's members so far, without the braces; empty when nothing was rescued.
    members: Vec<String>,
    values: u64,
}

impl Rescued {
    pub(super) fn new(rows: usize, on: bool) -> Rescued {
        Rescued { on, rows, members: Vec::new(), values: 0 }
    }

    pub(super) fn is_on(&self) -> bool {
        self.on
    }

    /// Values rescued so far.
    pub(super) fn values(&self) -> u64 {
        self.values
    }

    fn member(&mut self, row: usize, path: &str) -> &mut String {
        if self.members.is_empty() {
            self.members = vec![String::new(); self.rows];
        }
        self.values += 1;
        let out = &mut self.members[row];
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(&quote(path));
        out.push(':');
        out
    }

    /// A text value that did not convert to its column's type.
    pub(super) fn add_text(&mut self, row: usize, path: &str, value: &str) {
        let quoted = quote(value);
        self.member(row, path).push_str(&quoted);
    }

    /// A JSON value of a field the table lacks, as written.
    pub(super) fn add_json(&mut self, row: usize, path: &str, value: &RawValue) {
        self.member(row, path).push_str(value.get());
    }

    /// The column: each row's object with the file's name, or null for rows with nothing.
    pub(super) fn finish(self, file_name: &str) -> StringArray {
        if self.members.is_empty() {
            return StringArray::new_null(self.rows);
        }
        let file = format!(",{}:{}}}", quote(FILE_PATH_KEY), quote(file_name));
        let mut out = StringBuilder::with_capacity(self.rows, 0);
        for members in &self.members {
            if members.is_empty() {
                out.append_null();
            } else {
                out.append_value(format!("{{{members}{file}"));
            }
        }
        out.finish()
    }
}

fn quote(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into())
}

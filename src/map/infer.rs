//! A mapping guessed from a file's first records: every leaf field becomes a column (nested
//! names joined with `_`). Used when a source names no columns, and by `ingestd inspect` to
//! give the user a mapping to start from.

use crate::config::{ColumnConfig, ColumnType, CsvConfig, FormatConfig};
use crate::decode::{self, DecodeError, Layout};
use arrow::array::{Array, AsArray};
use indexmap::IndexMap;
use serde_json::Value;
use std::path::Path;

/// Records looked at when inferring.
pub const SAMPLE_RECORDS: usize = 1_000;

/// Infers columns from the first records of a file.
pub fn infer_columns(path: &Path, name: &str, format: &FormatConfig) -> Result<IndexMap<String, ColumnConfig>, DecodeError> {
    let file = decode::open(path, name, format)?;
    let mut kinds: IndexMap<String, Option<ColumnType>> = IndexMap::new();
    if file.detected.layout == Layout::Csv {
        csv_kinds(file.sample_csv(&format.csv, SAMPLE_RECORDS)?, &format.csv, &mut kinds);
    } else {
        for record in file.sample_json(SAMPLE_RECORDS)? {
            let value: Value =
                serde_json::from_slice(&record).map_err(|e| DecodeError::malformed(format!("invalid JSON while sampling: {e}"), None))?;
            flatten(&value, String::new(), &mut kinds);
        }
    }
    let mut columns = IndexMap::new();
    for (path, kind) in kinds {
        let base = column_name(&path);
        let mut name = base.clone();
        let mut n = 2;
        while columns.contains_key(&name) {
            name = format!("{base}_{n}");
            n += 1;
        }
        let kind = kind.unwrap_or(ColumnType::String);
        columns.insert(name, ColumnConfig { path, kind, format: None, null_if: Vec::new() });
    }
    Ok(columns)
}

fn column_name(path: &str) -> String {
    let name: String = path.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    let name = name.trim_start_matches('_').to_string();
    if name.is_empty() { "column".into() } else { name }
}

fn merge(old: Option<ColumnType>, new: ColumnType) -> ColumnType {
    match (old, new) {
        (None, n) => n,
        (Some(o), n) if o == n => n,
        (Some(ColumnType::Int64), ColumnType::Float64) | (Some(ColumnType::Float64), ColumnType::Int64) => ColumnType::Float64,
        _ => ColumnType::String,
    }
}

fn flatten(value: &Value, path: String, kinds: &mut IndexMap<String, Option<ColumnType>>) {
    let kind = match value {
        Value::Object(map) => {
            for (key, child) in map {
                let child_path = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                flatten(child, child_path, kinds);
            }
            return;
        }
        // Lists have no flat column; a mapping can still not reach into them.
        Value::Array(_) => return,
        Value::Null => {
            kinds.entry(path).or_insert(None);
            return;
        }
        Value::Bool(_) => ColumnType::Bool,
        Value::Number(n) if n.is_i64() || n.is_u64() => ColumnType::Int64,
        Value::Number(_) => ColumnType::Float64,
        Value::String(_) => ColumnType::String,
    };
    let slot = kinds.entry(path).or_insert(None);
    *slot = Some(merge(*slot, kind));
}

fn csv_kinds(sample: arrow::record_batch::RecordBatch, csv: &CsvConfig, kinds: &mut IndexMap<String, Option<ColumnType>>) {
    for (field, column) in sample.schema().fields().iter().zip(sample.columns()) {
        let text = column.as_string::<i32>();
        let mut kind = None;
        for i in 0..text.len() {
            if text.is_null(i) || csv.null_values.iter().any(|n| n == text.value(i)) {
                continue;
            }
            let v = text.value(i);
            let this = if super::convert::parse_i64(v).is_ok() && !v.contains('.') {
                ColumnType::Int64
            } else if v.trim().parse::<f64>().is_ok() {
                ColumnType::Float64
            } else if super::convert::parse_date(v, None).is_ok() {
                ColumnType::Date
            } else {
                ColumnType::String
            };
            kind = Some(merge(kind, this));
        }
        kinds.insert(field.name().clone(), kind);
    }
}

/// The `[sources.NAME.columns]` table for these columns, ready to paste into a config file.
pub fn columns_toml(columns: &IndexMap<String, ColumnConfig>) -> String {
    let mut out = String::new();
    for (name, c) in columns {
        let key =
            if name.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-') { name.clone() } else { format!("{name:?}") };
        out.push_str(&format!("{key} = {{ path = {:?}, type = {:?}", c.path, c.kind.as_str()));
        if let Some(f) = &c.format {
            out.push_str(&format!(", format = {f:?}"));
        }
        if !c.null_if.is_empty() {
            out.push_str(&format!(", null_if = {:?}", c.null_if));
        }
        out.push_str(" }\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_json_flattens_to_typed_columns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, br#"[{"a": {"b": 1, "c": "x"}, "d": null, "l": [1]}, {"a": {"b": 2.5}, "d": true}]"#).unwrap();
        let columns = infer_columns(&path, "f", &FormatConfig::default()).unwrap();
        let text = columns_toml(&columns);
        assert_eq!(
            text,
            "a_b = { path = \"a.b\", type = \"float64\" }\na_c = { path = \"a.c\", type = \"string\" }\nd = { path = \"d\", type = \"bool\" }\n"
        );
    }

    #[test]
    fn csv_columns_are_typed_from_their_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.csv");
        std::fs::write(&path, "lat,region_id,date,name\n1.5,3,2020-01-02,x\n2,4,2020-01-03,\n").unwrap();
        let columns = infer_columns(&path, "f.csv", &FormatConfig::default()).unwrap();
        let kinds: Vec<_> = columns.values().map(|c| c.kind).collect();
        assert_eq!(kinds, [ColumnType::Float64, ColumnType::Int64, ColumnType::Date, ColumnType::String]);
    }
}

//! Column types guessed from values: every leaf field becomes a column (nested names joined
//! with `_`), typed by what its values look like, widened when they disagree (int -> float ->
//! string; anything -> json). Used for a source that names no columns (its first batch), for
//! fields a table lacks (`evolution = "add_columns"`), and by `ingestd inspect`.

use crate::config::{ColumnConfig, ColumnType, FormatConfig, ListItem};
use crate::decode::{self, DecodeError, Layout};
use arrow::array::{Array, AsArray};
use indexmap::IndexMap;
use serde_json::value::RawValue;
use std::path::Path;

/// Records looked at when inferring, over all the sampled files.
pub const SAMPLE_RECORDS: usize = 1_000;
/// Files of the first batch looked at when inferring.
pub const SAMPLE_FILES: usize = 8;
/// Objects nested deeper than this many keys become one `json` column instead of flat ones.
pub const MAX_FLATTEN_DEPTH: usize = 8;

/// Leaf paths and the type their values so far infer (`None`: only nulls seen).
pub type Kinds = IndexMap<String, Option<ColumnType>>;

/// Infers columns from the first records of `files` (path, name): the first must decode; a
/// later one that does not is left out of the sample (it is refused when it is read).
pub fn infer_columns(files: &[(&Path, &str)], format: &FormatConfig) -> Result<IndexMap<String, ColumnConfig>, DecodeError> {
    let mut kinds = Kinds::new();
    let mut sampled = 0;
    for (i, (path, name)) in files.iter().take(SAMPLE_FILES).enumerate() {
        match sample_file(path, name, format, SAMPLE_RECORDS - sampled, &mut kinds) {
            Ok(records) => sampled += records,
            Err(e) if i == 0 => return Err(e),
            Err(_) => continue,
        }
        if sampled >= SAMPLE_RECORDS {
            break;
        }
    }
    let mut columns = IndexMap::new();
    let mut taken = Vec::new();
    for (path, kind) in kinds {
        let name = unique_name(&column_name(&path), &taken);
        taken.push(name.clone());
        let kind = kind.unwrap_or(ColumnType::String);
        columns.insert(name, ColumnConfig { path, kind, format: None, null_if: Vec::new() });
    }
    Ok(columns)
}

/// Adds the kinds of up to `limit` records of one file; returns how many were read.
fn sample_file(path: &Path, name: &str, format: &FormatConfig, limit: usize, kinds: &mut Kinds) -> Result<usize, DecodeError> {
    let file = decode::open(path, name, format)?;
    if file.detected.layout == Layout::Csv {
        let sample = file.sample_csv(&format.csv, limit)?;
        csv_kinds(&sample, &format.csv.null_values, kinds);
        return Ok(sample.num_rows());
    }
    let records = file.sample_json(limit)?;
    for record in &records {
        let text = std::str::from_utf8(record).map_err(|e| DecodeError::malformed(format!("invalid UTF-8 while sampling: {e}"), None))?;
        let fields: IndexMap<String, &RawValue> =
            serde_json::from_str(text).map_err(|e| DecodeError::malformed(format!("a record is not a JSON object: {e}"), None))?;
        for (key, value) in fields {
            observe(kinds, &key, value, false);
        }
    }
    Ok(records.len())
}

/// The column name for a dotted path: lower case, other characters as `_`.
pub fn column_name(path: &str) -> String {
    let name: String = path.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    let name = name.trim_start_matches('_').to_string();
    if name.is_empty() { "column".into() } else { name }
}

/// `base`, or `base_2`, `base_3`... whichever is not in `taken`.
pub fn unique_name(base: &str, taken: &[String]) -> String {
    let mut name = base.to_string();
    let mut n = 2;
    while taken.contains(&name) {
        name = format!("{base}_{n}");
        n += 1;
    }
    name
}

/// The type that holds values of both kinds.
fn widen(old: Option<ColumnType>, new: ColumnType) -> ColumnType {
    use ColumnType::*;
    match (old, new) {
        (None, n) => n,
        (Some(o), n) if o == n => n,
        (Some(Json), _) | (_, Json) => Json,
        (Some(List(a)), List(b)) => List(widen_item(a, b)),
        (Some(List(_)), _) | (_, List(_)) => Json,
        (Some(Int64), Float64) | (Some(Float64), Int64) => Float64,
        (Some(Int64), d @ Decimal { .. }) | (Some(d @ Decimal { .. }), Int64) => d,
        (Some(Date), Timestamp) | (Some(Timestamp), Date) => Timestamp,
        _ => String,
    }
}

fn widen_item(a: ListItem, b: ListItem) -> ListItem {
    match (a, b) {
        (a, b) if a == b => a,
        (ListItem::Int64, ListItem::Float64) | (ListItem::Float64, ListItem::Int64) => ListItem::Float64,
        _ => ListItem::String,
    }
}

/// An array: a list of its scalars' type (an empty one, as in Spark, of strings), or `json`
/// when it holds objects or arrays.
fn array_kind(raw: &str) -> ColumnType {
    let Ok(elements) = serde_json::from_str::<Vec<&RawValue>>(raw) else { return ColumnType::Json };
    let mut item: Option<ListItem> = None;
    for element in elements {
        let t = element.get().trim();
        let kind = match t.as_bytes().first() {
            Some(b'n') => continue,
            Some(b'{' | b'[') => return ColumnType::Json,
            Some(b't' | b'f') => ListItem::Bool,
            Some(b'"') => ListItem::String,
            _ => match number_kind(t) {
                ColumnType::Int64 => ListItem::Int64,
                ColumnType::Float64 => ListItem::Float64,
                _ => ListItem::String,
            },
        };
        item = Some(item.map_or(kind, |old| widen_item(old, kind)));
    }
    ColumnType::List(item.unwrap_or(ListItem::String))
}

/// Records that `path` had a value of `kind` (`None`: null).
pub fn widen_into(kinds: &mut Kinds, path: String, kind: Option<ColumnType>) {
    let slot = kinds.entry(path).or_insert(None);
    if let Some(kind) = kind {
        *slot = Some(widen(*slot, kind));
    }
}

/// Records the kinds of every leaf under the value of field `path`, as written. `text`: the
/// value is a CSV field, typed from its text.
pub fn observe(kinds: &mut Kinds, path: &str, value: &RawValue, text: bool) {
    observe_at(kinds, path.to_string(), value, text, path.split('.').count());
}

fn observe_at(kinds: &mut Kinds, path: String, value: &RawValue, text: bool, depth: usize) {
    let raw = value.get().trim();
    let kind = match raw.as_bytes().first() {
        Some(b'{') if depth < MAX_FLATTEN_DEPTH => {
            if let Ok(fields) = serde_json::from_str::<IndexMap<String, &RawValue>>(raw) {
                for (key, child) in fields {
                    observe_at(kinds, format!("{path}.{key}"), child, text, depth + 1);
                }
            }
            return;
        }
        Some(b'{') => Some(ColumnType::Json),
        Some(b'[') => Some(array_kind(raw)),
        Some(b'n') => None,
        Some(b't' | b'f') => Some(ColumnType::Bool),
        Some(b'"') => serde_json::from_str::<String>(raw).ok().map(|s| if text { text_kind(&s) } else { string_kind(&s) }),
        _ => Some(number_kind(raw)),
    };
    widen_into(kinds, path, kind);
}

/// A JSON number: integers that fit int64, longer ones as exact decimals, others float64.
fn number_kind(raw: &str) -> ColumnType {
    if raw.contains(['.', 'e', 'E']) {
        return ColumnType::Float64;
    }
    if raw.parse::<i64>().is_ok() {
        return ColumnType::Int64;
    }
    match raw.trim_start_matches('-').len() {
        digits if digits <= crate::config::MAX_DECIMAL_PRECISION as usize => {
            ColumnType::Decimal { precision: crate::config::MAX_DECIMAL_PRECISION, scale: 0 }
        }
        _ => ColumnType::String,
    }
}

/// A JSON string: RFC 3339 instants and ISO dates are typed, anything else stays a string.
fn string_kind(v: &str) -> ColumnType {
    if v.len() == 10 && chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d").is_ok() {
        ColumnType::Date
    } else if v.len() >= 20 && chrono::DateTime::parse_from_rfc3339(v).is_ok() {
        ColumnType::Timestamp
    } else {
        ColumnType::String
    }
}

/// A CSV field: numbers, dates and instants are recognized in text.
fn text_kind(v: &str) -> ColumnType {
    let t = v.trim();
    let digits = t.strip_prefix('-').unwrap_or(t);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        return number_kind(t);
    }
    if t.parse::<f64>().is_ok() && t.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'+' | b'e' | b'E')) {
        return ColumnType::Float64;
    }
    string_kind(t)
}

fn csv_kinds(sample: &arrow::record_batch::RecordBatch, null_values: &[String], kinds: &mut Kinds) {
    for (field, column) in sample.schema().fields().iter().zip(sample.columns()) {
        let text = column.as_string::<i32>();
        kinds.entry(field.name().clone()).or_insert(None);
        for i in 0..text.len() {
            if text.is_null(i) || null_values.iter().any(|n| n == text.value(i)) {
                continue;
            }
            widen_into(kinds, field.name().clone(), Some(text_kind(text.value(i))));
        }
    }
}

/// The `[sources.NAME.columns]` table for these columns, ready to paste into a config file.
pub fn columns_toml(columns: &IndexMap<String, ColumnConfig>) -> String {
    let mut out = String::new();
    for (name, c) in columns {
        let key =
            if name.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-') { name.clone() } else { format!("{name:?}") };
        out.push_str(&format!("{key} = {{ path = {:?}, type = {:?}", c.path, c.kind.name()));
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
        std::fs::write(
            &path,
            br#"[{"a": {"b": 1, "c": "x"}, "d": null, "l": [1], "ints": [1, null], "objs": [{"x": 1}], "n": 123456789012345678901234567890, "t": "2021-01-04T10:00:00+01:00"},
                {"a": {"b": 2.5}, "d": true, "l": "s", "day": "2021-01-04"}]"#,
        )
        .unwrap();
        let columns = infer_columns(&[(&path, "f")], &FormatConfig::default()).unwrap();
        let text = columns_toml(&columns);
        assert_eq!(
            text,
            concat!(
                "a_b = { path = \"a.b\", type = \"float64\" }\n",
                "a_c = { path = \"a.c\", type = \"string\" }\n",
                "d = { path = \"d\", type = \"bool\" }\n",
                "l = { path = \"l\", type = \"json\" }\n",
                "ints = { path = \"ints\", type = \"list<int64>\" }\n",
                "objs = { path = \"objs\", type = \"json\" }\n",
                "n = { path = \"n\", type = \"decimal(38,0)\" }\n",
                "t = { path = \"t\", type = \"timestamp\" }\n",
                "day = { path = \"day\", type = \"date\" }\n",
            )
        );
    }

    #[test]
    fn csv_columns_are_typed_from_their_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.csv");
        std::fs::write(&path, "lat,region_id,date,name\n1.5,3,2020-01-02,x\n2,4,2020-01-03,\n").unwrap();
        let columns = infer_columns(&[(&path, "f.csv")], &FormatConfig::default()).unwrap();
        let kinds: Vec<_> = columns.values().map(|c| c.kind).collect();
        assert_eq!(kinds, [ColumnType::Float64, ColumnType::Int64, ColumnType::Date, ColumnType::String]);
    }

    #[test]
    fn the_sample_spans_the_first_files_and_widens_their_types() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.json"), dir.path().join("b.json"));
        std::fs::write(&a, br#"[{"id": 1, "x": 1}]"#).unwrap();
        std::fs::write(&b, br#"[{"id": 2.5, "y": "s", "x": "one"}]"#).unwrap();
        let columns = infer_columns(&[(&a, "a.json"), (&b, "b.json")], &FormatConfig::default()).unwrap();
        let kinds: Vec<_> = columns.iter().map(|(n, c)| (n.as_str(), c.kind)).collect();
        assert_eq!(kinds, [("id", ColumnType::Float64), ("x", ColumnType::String), ("y", ColumnType::String)]);
    }
}

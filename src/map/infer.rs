//! Column types guessed from values: every leaf field becomes a column (nested names joined
//! with `_`), typed by what its values look like, widened when they disagree (int -> float ->
//! string; anything -> json). A type is picked only if it gives back every value sampled:
//! `08123` stays text, a fraction float64 would round is an exact decimal. Used for a source
//! that names no columns (its first batch), for fields a table lacks (`evolution =
//! "add_columns"`), and by `ingestd inspect`.

use super::convert::{DecimalText, INT64_DIGITS, parse_f64};
use crate::config::{ColumnConfig, ColumnType, FormatConfig, ListItem, MAX_DECIMAL_PRECISION};
use crate::decode::{self, DecodeError, Layout, Limit, Position};
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

/// Integers float64 holds exactly reach 2^53 in magnitude.
const F64_EXACT_INTEGERS: u64 = 1 << 53;

/// What the values of one path so far infer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Observed {
    /// The type that holds every value seen (`None`: only nulls seen).
    pub kind: Option<ColumnType>,
    /// An integer beyond 2^53 in magnitude was seen, which float64 may not hold: int64 and
    /// float64 values then widen to string, not float64.
    pub beyond_f64: bool,
}

impl Observed {
    /// A value of `kind` that is not an integer (`None`: null).
    fn of(kind: Option<ColumnType>) -> Observed {
        Observed { kind, beyond_f64: false }
    }

    /// A scalar of `kind` written as `text`.
    fn scalar(kind: ColumnType, text: &str) -> Observed {
        let beyond_f64 = kind == ColumnType::Int64 && text.trim().parse::<i64>().is_ok_and(|n| n.unsigned_abs() > F64_EXACT_INTEGERS);
        Observed { kind: Some(kind), beyond_f64 }
    }
}

/// Leaf paths, in the order found, and what their values so far infer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Kinds {
    paths: IndexMap<String, Observed>,
}

impl Kinds {
    /// How many paths were found.
    pub fn count(&self) -> usize {
        self.paths.len()
    }

    /// The paths found.
    pub fn keys(&self) -> impl Iterator<Item = &String> {
        self.paths.keys()
    }

    /// The type of each path (`None`: only nulls seen).
    pub fn values(&self) -> impl Iterator<Item = &Option<ColumnType>> {
        self.paths.values().map(|observed| &observed.kind)
    }

    /// Each path and its type.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Option<ColumnType>)> {
        self.paths.iter().map(|(path, observed)| (path, &observed.kind))
    }
}

/// Each path and what its values showed, flag included, to [`widen_into`] another `Kinds`.
impl IntoIterator for Kinds {
    type Item = (String, Observed);
    type IntoIter = indexmap::map::IntoIter<String, Observed>;

    fn into_iter(self) -> Self::IntoIter {
        self.paths.into_iter()
    }
}

/// Infers columns from the first records of `files` (path, name): the first must decode; a
/// later one that does not is left out of the sample (it is refused when it is read).
pub fn infer_columns(files: &[(&Path, &str)], format: &FormatConfig) -> Result<IndexMap<String, ColumnConfig>, DecodeError> {
    let mut kinds = Kinds::default();
    let mut sampled = 0;
    for (i, (path, name)) in files.iter().take(SAMPLE_FILES).enumerate() {
        // Sampled into a copy, kept only if the file had records: an empty file, `[]` or a
        // lone CSV header (a `*` is one) brings no columns.
        let mut file_kinds = kinds.clone();
        let sampled_file = sample_file(path, name, format, SAMPLE_RECORDS - sampled, &mut file_kinds).and_then(|records| {
            // Each leaf path would be a column: a file of ever new keys is refused as a CSV
            // header too wide is (and naming that many columns would take quadratic time).
            if file_kinds.count() > format.limits.max_columns {
                let limit = Limit::MaxColumns;
                return Err(DecodeError::limit(limit, limit.configured(&format.limits), Position::default()));
            }
            Ok(records)
        });
        match sampled_file {
            Ok(0) => continue,
            Ok(records) => {
                sampled += records;
                kinds = file_kinds;
            }
            Err(e) if i == 0 => return Err(e),
            Err(_) => continue,
        }
        if sampled >= SAMPLE_RECORDS {
            break;
        }
    }
    let mut columns = IndexMap::new();
    let mut taken = Vec::new();
    for (path, observed) in kinds {
        let name = unique_name(&column_name(&path), &taken);
        taken.push(name.clone());
        let kind = observed.kind.unwrap_or(ColumnType::String);
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

/// The type that holds values of both kinds, exactly. `beyond_f64`: an integer float64 may not
/// hold was seen.
fn widen(old: Option<ColumnType>, new: ColumnType, beyond_f64: bool) -> ColumnType {
    use ColumnType::*;
    match (old, new) {
        (None, n) => n,
        (Some(o), n) if o == n => n,
        (Some(Json), _) | (_, Json) => Json,
        (Some(List(a)), List(b)) => List(widen_item(a, b, beyond_f64)),
        (Some(List(_)), _) | (_, List(_)) => Json,
        (Some(Int64), Float64) | (Some(Float64), Int64) if !beyond_f64 => Float64,
        (Some(Int64), d @ Decimal { precision, scale }) | (Some(d @ Decimal { precision, scale }), Int64)
            if precision.saturating_sub(scale) >= INT64_DIGITS =>
        {
            d
        }
        (Some(Date), Timestamp) | (Some(Timestamp), Date) => Timestamp,
        _ => String,
    }
}

fn widen_item(a: ListItem, b: ListItem, beyond_f64: bool) -> ListItem {
    match (a, b) {
        (a, b) if a == b => a,
        (ListItem::Int64, ListItem::Float64) | (ListItem::Float64, ListItem::Int64) if !beyond_f64 => ListItem::Float64,
        _ => ListItem::String,
    }
}

/// An array: a list of its scalars' type (an empty one, as in Spark, of strings), or `json`
/// when it holds objects or arrays.
fn array_kind(raw: &str) -> Observed {
    let Ok(elements) = serde_json::from_str::<Vec<&RawValue>>(raw) else { return Observed::of(Some(ColumnType::Json)) };
    let mut item: Option<ListItem> = None;
    let mut beyond_f64 = false;
    for element in elements {
        let t = element.get().trim();
        let kind = match t.as_bytes().first() {
            Some(b'n') => continue,
            Some(b'{' | b'[') => return Observed::of(Some(ColumnType::Json)),
            Some(b't' | b'f') => ListItem::Bool,
            Some(b'"') => ListItem::String,
            _ => {
                let number = Observed::scalar(number_kind(t), t);
                beyond_f64 |= number.beyond_f64;
                match number.kind {
                    Some(ColumnType::Int64) => ListItem::Int64,
                    Some(ColumnType::Float64) => ListItem::Float64,
                    _ => ListItem::String,
                }
            }
        };
        item = Some(item.map_or(kind, |old| widen_item(old, kind, beyond_f64)));
    }
    Observed { kind: Some(ColumnType::List(item.unwrap_or(ListItem::String))), beyond_f64 }
}

/// Records that `path` had a value as `observed` says.
pub fn widen_into(kinds: &mut Kinds, path: String, observed: Observed) {
    let slot = kinds.paths.entry(path).or_default();
    // Set first: the integer and the float that together do not fit float64 may come in either order.
    slot.beyond_f64 |= observed.beyond_f64;
    if let Some(kind) = observed.kind {
        slot.kind = Some(widen(slot.kind, kind, slot.beyond_f64));
    }
}

/// Records the kinds of every leaf under the value of field `path`, as written. `text`: the
/// value is a CSV field, typed from its text.
pub fn observe(kinds: &mut Kinds, path: &str, value: &RawValue, text: bool) {
    observe_at(kinds, path.to_string(), value, text, path.split('.').count());
}

fn observe_at(kinds: &mut Kinds, path: String, value: &RawValue, text: bool, depth: usize) {
    let raw = value.get().trim();
    let observed = match raw.as_bytes().first() {
        Some(b'{') if depth < MAX_FLATTEN_DEPTH => {
            if let Ok(fields) = serde_json::from_str::<IndexMap<String, &RawValue>>(raw) {
                for (key, child) in fields {
                    observe_at(kinds, format!("{path}.{key}"), child, text, depth + 1);
                }
            }
            return;
        }
        Some(b'{') => Observed::of(Some(ColumnType::Json)),
        Some(b'[') => array_kind(raw),
        Some(b'n') => Observed::of(None),
        Some(b't' | b'f') => Observed::of(Some(ColumnType::Bool)),
        Some(b'"') => match serde_json::from_str::<String>(raw) {
            Ok(s) if text => Observed::scalar(text_kind(&s), &s),
            Ok(s) => Observed::of(Some(string_kind(&s))),
            Err(_) => Observed::of(None),
        },
        _ => Observed::scalar(number_kind(raw), raw),
    };
    widen_into(kinds, path, observed);
}

/// A number as written (JSON, or CSV text): an integer that fits int64 is int64; a fraction is
/// float64 when float64 gives back its digits; any other number is an exact decimal(38,s) when
/// one holds it, else a string.
fn number_kind(raw: &str) -> ColumnType {
    let integer = !raw.contains(['.', 'e', 'E']);
    if integer && raw.parse::<i64>().is_ok() {
        return ColumnType::Int64;
    }
    let Some(number) = DecimalText::parse(raw) else { return ColumnType::String };
    if !integer && float_gives_back(raw, &number) {
        return ColumnType::Float64;
    }
    decimal_kind(&number).unwrap_or(ColumnType::String)
}

/// Whether float64 gives back `number`, the digits of `raw`: it is finite, and its shortest
/// round-trip form (`{:e}`, what readers of the table print) has the same digits. `0.1` does;
/// `3.141592653589793238462643` and `1e-400` (which reads as 0) do not.
fn float_gives_back(raw: &str, number: &DecimalText) -> bool {
    match parse_f64(raw) {
        Ok(f) => DecimalText::parse(&format!("{f:e}")).is_some_and(|back| back == *number),
        Err(_) => false,
    }
}

/// decimal(38, s), s the digits `number` has after the point, if 38 digits hold it.
fn decimal_kind(number: &DecimalText) -> Option<ColumnType> {
    let scale = number.exponent.saturating_neg().max(0);
    let whole_digits = (number.digits.len() as i64).saturating_add(number.exponent).max(0);
    if whole_digits.saturating_add(scale) > i64::from(MAX_DECIMAL_PRECISION) {
        return None;
    }
    Some(ColumnType::Decimal { precision: MAX_DECIMAL_PRECISION, scale: u8::try_from(scale).ok()? })
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

/// A CSV field: numbers, dates and instants are recognized in text. Digits after a leading
/// zero (`08123`, `-007`) are a code, not a number: as one they would lose the zeros.
fn text_kind(v: &str) -> ColumnType {
    let t = v.trim();
    // Not `str::parse::<f64>`, which also reads `inf` and `NaN`.
    if DecimalText::parse(t).is_some() {
        let unsigned = t.strip_prefix(['-', '+']).unwrap_or(t);
        if let [b'0', b'0'..=b'9', ..] = unsigned.as_bytes() {
            return ColumnType::String;
        }
        return number_kind(t);
    }
    string_kind(t)
}

fn csv_kinds(sample: &arrow::record_batch::RecordBatch, null_values: &[String], kinds: &mut Kinds) {
    for (field, column) in sample.schema().fields().iter().zip(sample.columns()) {
        let text = column.as_string::<i32>();
        kinds.paths.entry(field.name().clone()).or_default();
        for i in 0..text.len() {
            let value = text.value(i);
            if text.is_null(i) || null_values.iter().any(|n| n == value) {
                continue;
            }
            widen_into(kinds, field.name().clone(), Observed::scalar(text_kind(value), value));
        }
    }
}

/// The `[sources.NAME.columns]` table for these columns, ready to paste into a config file.
pub fn columns_toml(columns: &IndexMap<String, ColumnConfig>) -> String {
    let mut out = String::new();
    for (name, c) in columns {
        let bare = !name.is_empty() && name.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-');
        let key = if bare { name.clone() } else { toml_string(name) };
        out.push_str(&format!("{key} = {{ path = {}, type = {}", toml_string(&c.path), toml_string(&c.kind.name())));
        if let Some(f) = &c.format {
            out.push_str(&format!(", format = {}", toml_string(f)));
        }
        if !c.null_if.is_empty() {
            let values: Vec<String> = c.null_if.iter().map(|v| toml_string(v)).collect();
            out.push_str(&format!(", null_if = [{}]", values.join(", ")));
        }
        out.push_str(" }\n");
    }
    out
}

/// `text` as a TOML basic string. Quotes and backslashes are escaped, and control characters
/// as `\uXXXX`: TOML refuses them raw (Rust's `{:?}` writes `\0` and `\u{1b}`, which TOML
/// refuses too), and raw they would reach the terminal of whoever runs `ingestd inspect`.
fn toml_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
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

    /// The type the JSON `values` infer for one field (`text`: CSV text, given as JSON strings).
    fn kind_of(values: &[&str], text: bool) -> Option<ColumnType> {
        let mut kinds = Kinds::default();
        for value in values {
            let raw: &RawValue = serde_json::from_str(value).unwrap();
            observe(&mut kinds, "x", raw, text);
        }
        kinds.values().next().copied().flatten()
    }

    fn csv_kind_of(values: &[&str]) -> Option<ColumnType> {
        let quoted: Vec<String> = values.iter().map(|v| serde_json::to_string(v).unwrap()).collect();
        kind_of(&quoted.iter().map(String::as_str).collect::<Vec<_>>(), true)
    }

    #[test]
    fn csv_text_with_a_leading_zero_stays_text() {
        for code in ["08123", "-007", "+01", "00.5", " 0012 "] {
            assert_eq!(csv_kind_of(&[code]), Some(ColumnType::String), "{code}");
        }
        assert_eq!(csv_kind_of(&["08123", "90210"]), Some(ColumnType::String), "zip codes");
        for integer in ["0", "-0", " 7 ", "+5"] {
            assert_eq!(csv_kind_of(&[integer]), Some(ColumnType::Int64), "{integer}");
        }
        assert_eq!(csv_kind_of(&["0.5", "-0.25"]), Some(ColumnType::Float64));
        assert_eq!(csv_kind_of(&["0999-01-01"]), Some(ColumnType::Date), "a date is not a number");
        for word in ["inf", "-inf", "Infinity", "NaN", "nan", "1e400", "-1e400"] {
            assert_eq!(csv_kind_of(&[word]), Some(ColumnType::String), "{word} is not a float");
        }
    }

    #[test]
    fn numbers_infer_a_type_that_gives_back_their_digits() {
        let decimal = |scale| Some(ColumnType::Decimal { precision: 38, scale });
        assert_eq!(kind_of(&["0.1"], false), Some(ColumnType::Float64), "0.1 reads back as 0.1");
        assert_eq!(kind_of(&["5e-324", "1.5e300", "-2.5", "0.30000000000000004"], false), Some(ColumnType::Float64));
        assert_eq!(kind_of(&["3.141592653589793238462643"], false), decimal(24), "float64 keeps 16 of these digits");
        assert_eq!(kind_of(&["12345678901234567890123.5"], false), decimal(1));
        assert_eq!(kind_of(&["1.50000000000000000001e2"], false), decimal(18));
        assert_eq!(kind_of(&["123456789012345678901234567890"], false), decimal(0));
        for lost in ["1e400", "-1e400", "1e-400", "4.9e-324", "1234567890123456789012345678901234567890.5"] {
            assert_eq!(kind_of(&[lost], false), Some(ColumnType::String), "{lost}");
        }
        assert_eq!(csv_kind_of(&["3.141592653589793238462643", "2.718281828459045235360287"]), decimal(24), "in CSV too");
        assert_eq!(kind_of(&["1", "12345678901234567890123.5"], false), decimal(1), "decimal(38,1) holds any int64");
        assert_eq!(kind_of(&["1", "3.141592653589793238462643"], false), Some(ColumnType::String), "decimal(38,24) does not");
    }

    #[test]
    fn int64_and_float64_make_float64_only_while_it_holds_the_integers() {
        let list = |item| Some(ColumnType::List(item));
        assert_eq!(kind_of(&["1", "0.5"], false), Some(ColumnType::Float64));
        assert_eq!(kind_of(&["9007199254740992", "0.5"], false), Some(ColumnType::Float64), "2^53 is exact");
        assert_eq!(kind_of(&["9007199254740993", "0.5"], false), Some(ColumnType::String));
        assert_eq!(kind_of(&["0.5", "1", "-9007199254740993"], false), Some(ColumnType::String), "in either order");
        assert_eq!(kind_of(&["9007199254740993", "7"], false), Some(ColumnType::Int64));
        assert_eq!(csv_kind_of(&["9007199254740993", "0.5"]), Some(ColumnType::String), "in CSV too");
        assert_eq!(kind_of(&["[1, 0.5]"], false), list(ListItem::Float64));
        assert_eq!(kind_of(&["[9007199254740993, 0.5]"], false), list(ListItem::String));
        assert_eq!(kind_of(&["[0.5]", "[9007199254740993]"], false), list(ListItem::String));

        // Evolution merges what each batch found: the flag travels with the path.
        let (mut first, mut second) = (Kinds::default(), Kinds::default());
        observe(&mut first, "x", serde_json::from_str("9007199254740993").unwrap(), false);
        observe(&mut second, "x", serde_json::from_str("0.5").unwrap(), false);
        for (path, observed) in second {
            widen_into(&mut first, path, observed);
        }
        assert_eq!(first.values().collect::<Vec<_>>(), [&Some(ColumnType::String)]);
    }

    #[test]
    fn csv_inference_keeps_every_value_it_sampled() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.csv");
        std::fs::write(
            &path,
            "zip,pi,tenth,huge,id_or_ratio,lot,long_id\n\
             08123,3.141592653589793238462643,0.1,1e400,9007199254740993,1,123456789012345678901234567890\n\
             90210,2.718281828459045235360287,0.25,-1e400,0.5,1.5,7\n",
        )
        .unwrap();
        let columns = infer_columns(&[(&path, "f.csv")], &FormatConfig::default()).unwrap();
        let kinds: Vec<_> = columns.values().map(|c| c.kind).collect();
        let decimal = |scale| ColumnType::Decimal { precision: 38, scale };
        assert_eq!(
            kinds,
            [ColumnType::String, decimal(24), ColumnType::Float64, ColumnType::String, ColumnType::String, ColumnType::Float64, decimal(0)]
        );
    }

    #[test]
    fn columns_toml_reads_back_every_key_and_path_as_written() {
        let mut chars: Vec<char> = (0..=0x7f_u8).map(char::from).collect();
        chars.extend(['\u{85}', '\u{e9}', '\u{1F600}', '\u{10FFFF}']);
        let columns: IndexMap<String, ColumnConfig> = chars
            .iter()
            .map(|c| {
                let column = ColumnConfig {
                    path: format!("a.{c}\"\\{c}"),
                    kind: ColumnType::Date,
                    format: Some(format!("%Y{c}")),
                    null_if: vec![c.to_string(), "\\\"".into()],
                };
                (format!("n{c}"), column)
            })
            .collect();
        let text = columns_toml(&columns);
        let back: IndexMap<String, ColumnConfig> = toml::from_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(back, columns);
        assert!(back.keys().eq(columns.keys()), "in order");
        assert!(!text.contains(|c: char| c.is_control() && c != '\n'), "no raw control characters: {text:?}");
    }
}

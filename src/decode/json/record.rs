//! One JSON record into text columns, reading only the fields the mapping asks for: wanted
//! keys are followed, every other value is skipped (its syntax still checked), and leaf values
//! are appended straight to per-column buffers, so no record allocates.

use super::syntax::{self, Bounds, Misfit, Step, Stop, literal, peek, read_string, skip_value};
use crate::decode::{Limit, RawBatch, Unmapped};
use arrow::array::{ArrayRef, StringArray};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use std::sync::Arc;

/// The wanted paths as a tree of keys; node 0 is the record itself.
#[derive(Debug, Clone)]
pub struct FieldTree {
    nodes: Vec<Node>,
    /// Dotted path of each leaf, in column order.
    leaves: Vec<String>,
    /// Per leaf: keep the value's JSON text as written (a `json` column), strings quoted.
    raw: Vec<bool>,
    /// What is done with the fields no leaf reads.
    unmapped: Unmapped,
}

#[derive(Debug, Clone, Default)]
struct Node {
    /// Dotted path of this object, for error messages.
    path: String,
    children: Vec<(Key, Target)>,
}

/// A key to match, with its first eight bytes as a number: most keys differ there, so most
/// comparisons are one integer compare.
#[derive(Debug, Clone)]
struct Key {
    head: u64,
    bytes: Box<[u8]>,
}

impl Key {
    fn new(bytes: &[u8]) -> Key {
        Key { head: head(bytes), bytes: bytes.into() }
    }

    #[inline(always)]
    fn matches(&self, head_of_key: u64, key: &[u8]) -> bool {
        self.head == head_of_key && self.bytes.len() == key.len() && (key.len() <= 8 || self.bytes[8..] == key[8..])
    }
}

#[inline(always)]
fn head(bytes: &[u8]) -> u64 {
    let mut head = [0u8; 8];
    let n = bytes.len().min(8);
    head[..n].copy_from_slice(&bytes[..n]);
    u64::from_le_bytes(head)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Leaf(usize),
    Object(usize),
}

impl FieldTree {
    /// Builds the tree of `paths` (dotted, duplicates allowed), skipping every other field. A
    /// path that is both a value and an object is refused.
    pub fn new<'p>(paths: impl IntoIterator<Item = &'p str>) -> Result<FieldTree, String> {
        FieldTree::with_leaves(paths.into_iter().map(|p| (p, false)), Unmapped::Skip)
    }

    /// Builds the tree of `(path, raw)` leaves; `unmapped` says what happens to other fields.
    pub fn with_leaves<'p>(leaves: impl IntoIterator<Item = (&'p str, bool)>, unmapped: Unmapped) -> Result<FieldTree, String> {
        let mut tree = FieldTree { nodes: vec![Node::default()], leaves: Vec::new(), raw: Vec::new(), unmapped };
        for (path, raw) in leaves {
            if let Some(i) = tree.leaves.iter().position(|l| l == path) {
                tree.raw[i] |= raw;
                continue;
            }
            let segments: Vec<&str> = path.split('.').collect();
            let mut node = 0;
            for (depth, segment) in segments.iter().enumerate() {
                let is_leaf = depth + 1 == segments.len();
                let found = tree.child(node, segment.as_bytes());
                node = match (found, is_leaf) {
                    (Some(Target::Object(child)), false) => child,
                    (None, false) => {
                        let child = tree.nodes.len();
                        tree.nodes.push(Node { path: segments[..=depth].join("."), children: Vec::new() });
                        tree.nodes[node].children.push((Key::new(segment.as_bytes()), Target::Object(child)));
                        child
                    }
                    (None, true) => {
                        tree.nodes[node].children.push((Key::new(segment.as_bytes()), Target::Leaf(tree.leaves.len())));
                        tree.leaves.push(path.to_string());
                        tree.raw.push(raw);
                        break;
                    }
                    _ => return Err(format!("path {path:?} is both a value and an object in this mapping")),
                };
            }
        }
        Ok(tree)
    }

    /// Dotted path of each leaf, in the order of the decoded columns.
    pub fn leaves(&self) -> &[String] {
        &self.leaves
    }

    /// What is done with the fields no leaf reads.
    pub fn unmapped(&self) -> Unmapped {
        self.unmapped
    }

    /// Dotted path of an object node, for error messages.
    pub(super) fn object_path(&self, node: usize) -> &str {
        &self.nodes[node].path
    }

    #[inline]
    fn child(&self, node: usize, key: &[u8]) -> Option<Target> {
        let head_of_key = head(key);
        self.nodes[node].children.iter().find(|(k, _)| k.matches(head_of_key, key)).map(|(_, t)| *t)
    }
}

/// One text column being built: values of finished rows, and the current row's value.
#[derive(Default)]
struct TextColumn {
    offsets: Vec<i32>,
    data: Vec<u8>,
    valid: Vec<bool>,
    /// Where the current row's value starts in `data`; it is set if `set`.
    row_start: usize,
    set: bool,
}

impl TextColumn {
    /// Starts (or, for a repeated key, restarts: the last value wins) the current row's value.
    fn start_value(&mut self) -> &mut Vec<u8> {
        self.data.truncate(self.row_start);
        self.set = true;
        &mut self.data
    }

    fn set_null(&mut self) {
        self.data.truncate(self.row_start);
        self.set = false;
    }
}

/// Text columns for the leaves of a [`FieldTree`], filled record by record.
pub struct TextColumns {
    schema: SchemaRef,
    columns: Vec<TextColumn>,
    /// With [`Unmapped::Capture`]: each row's fields no leaf reads, as one JSON object.
    captured: TextColumn,
    /// Values no leaf reads (counted with [`Unmapped::Count`] and `Capture`), and the count
    /// when the current row started, to roll back to.
    ignored: u64,
    ignored_at_row: u64,
    rows: usize,
    /// Scratch for keys that contain escapes.
    key: Vec<u8>,
    /// Field length and record depth.
    bounds: Bounds,
}

impl TextColumns {
    pub(super) fn new(tree: &FieldTree, bounds: Bounds) -> TextColumns {
        let fields: Vec<Field> = tree.leaves.iter().map(|p| Field::new(p, DataType::Utf8, true)).collect();
        let mut columns = TextColumns {
            schema: Arc::new(Schema::new(fields)),
            columns: Vec::new(),
            captured: TextColumn::default(),
            ignored: 0,
            ignored_at_row: 0,
            rows: 0,
            key: Vec::new(),
            bounds,
        };
        columns.reset();
        columns
    }

    fn reset(&mut self) {
        let empty = || TextColumn { offsets: vec![0], ..TextColumn::default() };
        self.columns = (0..self.schema.fields().len()).map(|_| empty()).collect();
        self.captured = empty();
        self.ignored = 0;
        self.rows = 0;
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Bytes of text held, to close a batch before its offsets could overflow.
    pub fn bytes(&self) -> usize {
        self.columns.iter().map(|c| c.data.len()).sum::<usize>() + self.captured.data.len()
    }

    /// Reads the record (an object) at `i` into a new row. On any stop the row is rolled back.
    pub(super) fn record(&mut self, tree: &FieldTree, buf: &[u8], i: usize) -> Step {
        if peek(buf, i)? != b'{' {
            return Err(Stop::Misfit(Misfit::NotAnObject, i));
        }
        for column in self.columns.iter_mut().chain([&mut self.captured]) {
            column.row_start = column.data.len();
            column.set = false;
        }
        self.ignored_at_row = self.ignored;
        match self.object(tree, 0, buf, i, self.bounds.record_depth) {
            Ok(end) => {
                if self.captured.set {
                    self.captured.data.push(b'}');
                }
                for column in self.columns.iter_mut().chain([&mut self.captured]) {
                    column.offsets.push(column.data.len() as i32);
                    column.valid.push(column.set);
                }
                self.rows += 1;
                Ok(end)
            }
            Err(stop) => {
                for column in self.columns.iter_mut().chain([&mut self.captured]) {
                    column.data.truncate(column.row_start);
                }
                self.ignored = self.ignored_at_row;
                Err(stop)
            }
        }
    }

    /// The object at `i` (node `node` of the tree): wanted keys are followed, others skipped.
    fn object(&mut self, tree: &FieldTree, node: usize, buf: &[u8], i: usize, depth: usize) -> Step {
        let max_field = self.bounds.field;
        syntax::object(buf, i, depth, |key_start, key_end, escaped, value| {
            // A key is measured as written, between its quotes, as a string is.
            if key_end - key_start - 2 > max_field {
                return Err(Stop::Limit(Limit::MaxField, key_start));
            }
            let target = if escaped {
                self.key.clear();
                match read_string(buf, key_start, &mut self.key, max_field) {
                    // No configured path holds one: such a key is no column's.
                    Err(Stop::Bad(syntax::LONE_SURROGATE, _)) => None,
                    read => {
                        read?;
                        tree.child(node, &self.key)
                    }
                }
            } else {
                tree.child(node, &buf[key_start + 1..key_end - 1])
            };
            match target {
                None => match tree.unmapped {
                    Unmapped::Skip => skip_value(buf, value, depth + 1),
                    Unmapped::Count => {
                        self.ignored += 1;
                        skip_value(buf, value, depth + 1)
                    }
                    Unmapped::Capture => {
                        let key = Captured::Member { parent: tree.object_path(node), key: &buf[key_start + 1..key_end - 1] };
                        self.capture(key, buf, value, depth + 1)
                    }
                },
                Some(Target::Leaf(column)) => self.leaf(column, tree.raw[column], buf, value, depth + 1),
                Some(Target::Object(child)) => match peek(buf, value)? {
                    b'{' => self.object(tree, child, buf, value, depth + 1),
                    b'n' => literal(buf, value, b"null"),
                    // The value cannot reach the columns under it: it is kept whole instead.
                    _ if tree.unmapped == Unmapped::Capture => self.capture(Captured::Path(tree.object_path(child)), buf, value, depth + 1),
                    _ => Err(Stop::Misfit(Misfit::NotAnObjectAt(child), value)),
                },
            }
        })
    }

    /// A wanted value: strings unescaped, numbers and booleans as written, objects and arrays
    /// as their JSON text, null as null. `raw`: strings too as written (quoted, escaped).
    fn leaf(&mut self, column: usize, raw: bool, buf: &[u8], i: usize, depth: usize) -> Step {
        let max_field = self.bounds.field;
        let column = &mut self.columns[column];
        match peek(buf, i)? {
            b'"' if !raw => read_string(buf, i, column.start_value(), max_field),
            b'n' => {
                column.set_null();
                literal(buf, i, b"null")
            }
            _ => {
                let end = field_within(skip_value(buf, i, depth), buf, i, max_field)?;
                column.start_value().extend_from_slice(&buf[i..end]);
                Ok(end)
            }
        }
    }

    /// Adds the value at `i` to the row's captured object under its dotted path, as written.
    fn capture(&mut self, name: Captured<'_>, buf: &[u8], i: usize, depth: usize) -> Step {
        let end = field_within(skip_value(buf, i, depth), buf, i, self.bounds.field)?;
        self.ignored += 1;
        let out = &mut self.captured;
        if out.set {
            out.data.push(b',');
        } else {
            out.set = true;
            out.data.push(b'{');
        }
        out.data.push(b'"');
        match name {
            Captured::Member { parent, key } => {
                if !parent.is_empty() {
                    escape_into(parent, &mut out.data);
                    out.data.push(b'.');
                }
                // A key's text between its quotes is already valid inside a JSON string.
                out.data.extend_from_slice(key);
            }
            Captured::Path(path) => escape_into(path, &mut out.data),
        }
        out.data.extend_from_slice(b"\":");
        out.data.extend_from_slice(&buf[i..end]);
        Ok(end)
    }

    /// The rows so far (one Utf8 column per leaf, named by its path, and what was not read);
    /// starts over empty.
    pub fn take_batch(&mut self, unmapped: Unmapped) -> Result<RawBatch, String> {
        let columns = std::mem::take(&mut self.columns);
        let captured = std::mem::take(&mut self.captured);
        let ignored = self.ignored;
        let schema = self.schema.clone();
        self.reset();
        let arrays = columns
            .into_iter()
            .zip(schema.fields())
            .map(|(c, field)| c.finish().map(|a| Arc::new(a) as ArrayRef).map_err(|e| format!("field {:?}: {e}", field.name())))
            .collect::<Result<Vec<_>, _>>()?;
        let text = RecordBatch::try_new(schema, arrays).map_err(|e| e.to_string())?;
        let unmapped = match unmapped {
            Unmapped::Capture => Some(captured.finish().map_err(|e| format!("unmapped fields: {e}"))?),
            Unmapped::Skip | Unmapped::Count => None,
        };
        Ok(RawBatch { text, unmapped, ignored, text_values: false })
    }
}

impl TextColumn {
    fn finish(self) -> Result<StringArray, arrow::error::ArrowError> {
        StringArray::try_new(OffsetBuffer::new(self.offsets.into()), self.data.into(), Some(NullBuffer::from(self.valid)))
    }
}

/// `step`, the skip of the value at `i`, unless that value is a string or a number longer than
/// `max` bytes as written (a string between its quotes): also when the buffer cuts it, so that a
/// long one is refused without waiting for its end. Objects and arrays are records' business.
fn field_within(step: Step, buf: &[u8], i: usize, max: usize) -> Step {
    let quotes = match buf.get(i) {
        Some(b'"') => 1,
        Some(b'-' | b'0'..=b'9') => 0,
        _ => return step,
    };
    let written = match step {
        Ok(end) => end.saturating_sub(i + 2 * quotes),
        Err(Stop::More) => buf.len().saturating_sub(i + quotes),
        Err(_) => return step,
    };
    if written > max { Err(Stop::Limit(Limit::MaxField, i)) } else { step }
}

/// The name a captured value is kept under.
enum Captured<'a> {
    /// Member `key` (as written between its quotes) of the object at dotted path `parent`.
    Member { parent: &'a str, key: &'a [u8] },
    /// A value at a path the mapping reads as an object.
    Path(&'a str),
}

/// `text` escaped for the inside of a JSON string.
fn escape_into(text: &str, out: &mut Vec<u8>) {
    let quoted = serde_json::to_string(text).unwrap_or_default();
    out.extend_from_slice(quoted.as_bytes().get(1..quoted.len().saturating_sub(1)).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LimitsConfig;
    use arrow::array::{Array, AsArray};

    fn bounds() -> Bounds {
        Bounds::new(&LimitsConfig::default())
    }

    fn columns(paths: &[&str], records: &[&str]) -> Result<Vec<Vec<Option<String>>>, String> {
        let tree = FieldTree::new(paths.iter().copied())?;
        let mut text = TextColumns::new(&tree, bounds());
        for record in records {
            let end = text.record(&tree, record.as_bytes(), 0).map_err(|e| format!("{e:?}"))?;
            assert_eq!(record[end..].trim(), "", "{record}");
        }
        let batch = text.take_batch(Unmapped::Skip)?.text;
        Ok(batch
            .columns()
            .iter()
            .map(|a| {
                let s = a.as_string::<i32>();
                (0..s.len()).map(|i| s.is_valid(i).then(|| s.value(i).to_string())).collect()
            })
            .collect())
    }

    fn some(values: &[&str]) -> Vec<Option<String>> {
        values.iter().map(|v| (*v != "-").then(|| v.to_string())).collect()
    }

    #[test]
    fn reads_only_wanted_paths_as_text() {
        let records = [
            r#"{"skip": {"deep": [1, {"x": "y"}]}, "sale": {"amount": {"saleamt": 265000}, "date": "2021-1-4"}, "id": "a\u00e9"}"#,
            r#"{"sale": null, "id": true}"#,
            r#"{"id": {"nested": [1, 2]}, "sale": {"amount": {}}}"#,
            r#"{"id": "first", "id": "last", "sale": {"amount": {"saleamt": null}}}"#,
        ];
        let got = columns(&["sale.amount.saleamt", "id", "sale.date"], &records).unwrap();
        assert_eq!(got[0], some(&["265000", "-", "-", "-"]));
        assert_eq!(got[1], some(&["aé", "true", r#"{"nested": [1, 2]}"#, "last"]));
        assert_eq!(got[2], some(&["2021-1-4", "-", "-", "-"]));
    }

    #[test]
    fn a_scalar_where_the_mapping_expects_an_object_is_an_error() {
        let err = columns(&["b.c"], &[r#"{"b": "not an object"}"#]).unwrap_err();
        assert!(err.contains("NotAnObjectAt(1)"), "{err}");
        assert!(FieldTree::new(["a.b", "a"]).unwrap_err().contains("both a value and an object"));
    }

    #[test]
    fn a_failed_record_leaves_no_partial_row() {
        let tree = FieldTree::new(["a"]).unwrap();
        let mut text = TextColumns::new(&tree, bounds());
        text.record(&tree, br#"{"a": "1"}"#, 0).unwrap();
        assert!(text.record(&tree, br#"{"a": "2", "b": tru"#, 0).is_err());
        text.record(&tree, br#"{"a": "3"}"#, 0).unwrap();
        let batch = text.take_batch(Unmapped::Skip).unwrap().text;
        let a = batch.column(0).as_string::<i32>();
        assert_eq!((a.len(), a.value(0), a.value(1)), (2, "1", "3"));
    }

    #[test]
    fn kept_strings_numbers_and_keys_are_bounded_as_written_skipped_values_are_not() {
        let tree = FieldTree::with_leaves([("a", false), ("r", true)], Unmapped::Capture).unwrap();
        let limits = LimitsConfig { max_field: crate::config::units::ByteSize(4), ..LimitsConfig::default() };
        let mut text = TextColumns::new(&tree, Bounds::new(&limits));
        let limited = |text: &mut TextColumns, record: &str| match text.record(&tree, record.as_bytes(), 0) {
            Err(Stop::Limit(Limit::MaxField, at)) => Some(at),
            Ok(_) => None,
            Err(other) => panic!("{record}: {other:?}"),
        };
        for fits in [r#"{"a": "abcd"}"#, r#"{"a": "\"\""}"#, r#"{"a": -123}"#, r#"{"r": "abcd"}"#, r#"{"a": [12345, "abcde"]}"#] {
            assert_eq!(limited(&mut text, fits), None, "{fits}");
        }
        assert_eq!(limited(&mut text, r#"{"a": "abcde"}"#), Some(6));
        assert_eq!(limited(&mut text, r#"{"a": 12345}"#), Some(6));
        assert_eq!(limited(&mut text, r#"{"r": "abcde"}"#), Some(6));
        assert_eq!(limited(&mut text, r#"{"abcde": 1}"#), Some(1), "a captured key");
        assert_eq!(limited(&mut text, r#"{"x": "abcde"}"#), Some(6), "a captured value");
        // The buffer ends inside a value already too long: refused without more bytes.
        assert_eq!(limited(&mut text, r#"{"a": "abcdefgh"#), Some(6));
        assert_eq!(limited(&mut text, r#"{"a": 123456789"#), Some(6));
    }

    #[test]
    fn records_nest_as_deep_as_max_depth() {
        let tree = FieldTree::new(["a"]).unwrap();
        let limits = LimitsConfig { max_depth: 3, ..LimitsConfig::default() };
        let mut text = TextColumns::new(&tree, Bounds::new(&limits));
        assert!(text.record(&tree, br#"{"a": [{"b": 1}]}"#, 0).is_ok());
        let deeper = br#"{"x": [{"b": [1]}]}"#;
        assert!(matches!(text.record(&tree, deeper, 0), Err(Stop::Limit(Limit::MaxDepth, 13))));
    }
}

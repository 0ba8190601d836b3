//! The columns of a source: configured, or read back from its table's schema (the table is the
//! truth: a lost state folder changes nothing), or, before the table exists, inferred from the
//! first batch's files. Schema evolution extends them batch by batch.

use super::Source;
use crate::admit::AdmittedFile;
use crate::config::{ColumnConfig, Config, Evolution, SourceConfig};
use crate::decode::DecodeError;
use crate::error::Error;
use crate::events::{self, ColumnsAdded, ColumnsInferred};
use crate::map::{Discovered, Mapping, MappingOptions, PATH_METADATA, infer};
use crate::sinks::AddedColumn;
use arrow::datatypes::Schema;
use indexmap::IndexMap;
use std::path::{Path, PathBuf};

/// The mapping of a source, once known.
pub(super) struct Columns {
    mapping: Option<Mapping>,
    /// The table's schema is part of the mapping: the columns are inferred, or evolution adds
    /// columns to the configured ones (then the table's added columns are mapped too).
    reads_table: bool,
    /// Where ingestd before 0.3 kept inferred columns: read only to map a table it made, whose
    /// schema does not name the paths its columns read.
    legacy_path: PathBuf,
}

impl Columns {
    pub(super) fn load(config: &Config, name: &str, source: &SourceConfig) -> Result<Columns, Error> {
        // A transform's table holds its output, not the input's columns.
        let reads_table =
            source.transform.is_none() && (source.columns.is_empty() || source.schema.evolution(false) == Evolution::AddColumns);
        // Inferred columns (with or without a transform) are known at the first batch.
        let mapping = match reads_table || source.columns.is_empty() {
            true => None,
            false => Some(build_mapping(name, source, &source.columns)?),
        };
        Ok(Columns { mapping, reads_table, legacy_path: legacy_path(config, name) })
    }
}

impl Source {
    /// The mapping: configured, the table's, or inferred from `files` (the first must decode;
    /// its error is returned when it does not).
    pub(super) async fn mapping_for(&mut self, files: &[AdmittedFile]) -> Result<Result<Mapping, DecodeError>, Error> {
        if let Some(mapping) = &self.columns.mapping {
            return Ok(Ok(mapping.clone()));
        }
        if self.columns.reads_table
            && let Some(mapping) = self.table_mapping().await?
        {
            self.columns.mapping = Some(mapping.clone());
            return Ok(Ok(mapping));
        }
        if !self.config.columns.is_empty() {
            let mapping = build_mapping(&self.name, &self.config, &self.config.columns)?;
            self.columns.mapping = Some(mapping.clone());
            return Ok(Ok(mapping));
        }
        let Some(first) = files.first() else { return Err(Error::Internal("no file to infer columns from".into())) };
        let sample: Vec<(PathBuf, String)> = files.iter().map(|f| (f.path.clone(), f.name.clone())).collect();
        let format = self.config.format.clone();
        let inferred = Source::blocking("inferring columns", move || {
            let sample: Vec<(&Path, &str)> = sample.iter().map(|(p, n)| (p.as_path(), n.as_str())).collect();
            infer::infer_columns(&sample, &format)
        })
        .await?;
        let columns = match inferred {
            Ok(columns) if columns.is_empty() => {
                return Ok(Err(DecodeError::malformed("no fields found to infer columns from".into(), None)));
            }
            Ok(columns) => columns,
            Err(e) => return Ok(Err(e)),
        };
        let columns = self.with_table_types(with_hints(columns, &self.config)).await?;
        let mapping = match build_mapping(&self.name, &self.config, &columns) {
            Ok(mapping) => mapping,
            Err(e) => return Ok(Err(DecodeError::malformed(e.to_string(), None))),
        };
        events::emit(ColumnsInferred { source: &self.name, file: &first.name, columns: columns.len() });
        self.columns.mapping = Some(mapping.clone());
        Ok(Ok(mapping))
    }

    /// Inferred `columns` with the columns a transform passed through to the table (they carry
    /// their input path) as the table has them, so that a restart maps them as before. The
    /// fields a transform only reads are inferred again; `columns` pins their types.
    async fn with_table_types(&self, mut columns: IndexMap<String, ColumnConfig>) -> Result<IndexMap<String, ColumnConfig>, Error> {
        if self.config.transform.is_none() {
            return Ok(columns);
        }
        for sink in &self.sinks {
            let Some(schema) = sink.table_schema().await? else { continue };
            let passed: Vec<_> = schema.fields().iter().filter(|f| f.metadata().contains_key(PATH_METADATA)).cloned().collect();
            if passed.is_empty() {
                break;
            }
            let options = MappingOptions { metadata_columns: false, rescued: None, ..MappingOptions::of(&self.config) };
            let table = Mapping::from_schema(&Schema::new(passed), options)
                .map_err(|e| Error::Mapping { name: self.name.clone(), detail: format!("sink {}: {e}", sink.name()) })?;
            columns.extend(table.columns());
            break;
        }
        Ok(columns)
    }

    /// The mapping the first sink with a table says, if one has a table yet (see
    /// [`table_mapping`]).
    async fn table_mapping(&self) -> Result<Option<Mapping>, Error> {
        for sink in &self.sinks {
            let Some(schema) = sink.table_schema().await? else { continue };
            let (name, source, legacy) = (self.name.clone(), self.config.clone(), self.columns.legacy_path.clone());
            let sink = sink.name().to_string();
            // Reading the saved columns of an old table is file I/O.
            let mapping = Source::blocking("reading the table's columns", move || table_mapping(&name, &source, &schema, &legacy))
                .await?
                .map_err(|e| Error::Mapping { name: self.name.clone(), detail: format!("sink {sink}: {e}") })?;
            return Ok(Some(mapping));
        }
        Ok(None)
    }

    /// The mapping that reads the fields a batch's files brought: the table's, when another writer has
    /// added columns since this one read it (they may be these), or `mapping` with the fields
    /// added as columns, which this and every later batch map and the next commit of each sink
    /// adds to its table.
    pub(super) async fn add_columns(&mut self, mapping: &Mapping, discovered: &Discovered) -> Result<Mapping, Error> {
        if self.columns.reads_table
            && let Some(table) = self.table_mapping().await?
            && table.column_names().any(|name| mapping.column_names().all(|ours| ours != name))
        {
            self.columns.mapping = Some(table.clone());
            return Ok(table);
        }
        let (evolved, added) = mapping.evolve(discovered).map_err(|e| Error::Mapping { name: self.name.clone(), detail: e.to_string() })?;
        for (column, path) in added {
            let file = discovered.origin(&path).unwrap_or_default().to_string();
            events::emit(ColumnsAdded { source: &self.name, file: &file, column: &column });
            self.columns_added.push(AddedColumn { column, file });
        }
        self.columns.mapping = Some(evolved.clone());
        Ok(evolved)
    }

    /// Forgets a mapping that reads the table's schema, so that the next batch reads it again
    /// (after a failed batch: another writer may have changed the table).
    pub(super) fn forget_table_mapping(&mut self) {
        if self.columns.reads_table {
            self.columns.mapping = None;
        }
    }
}

/// `columns` with the source's type hints applied.
fn with_hints(mut columns: IndexMap<String, ColumnConfig>, source: &SourceConfig) -> IndexMap<String, ColumnConfig> {
    for (name, column) in &mut columns {
        if let Some(kind) = source.schema.hints.get(name) {
            column.kind = *kind;
        }
    }
    columns
}

/// The mapping of source `name` when its columns are configured; `None` when they are inferred
/// (then the table's schema says them).
pub(crate) fn configured_mapping(name: &str, source: &SourceConfig) -> Result<Option<Mapping>, Error> {
    if source.columns.is_empty() {
        return Ok(None);
    }
    build_mapping(name, source, &source.columns).map(Some)
}

/// The mapping a table's `schema` gives source `name`: the configured columns and the columns
/// evolution added to the table, or, when the columns are inferred, the table's own (for a table
/// ingestd before 0.3 made, without paths in its schema, with the columns it saved at `legacy`).
pub(crate) fn table_mapping(name: &str, source: &SourceConfig, schema: &Schema, legacy: &Path) -> Result<Mapping, Error> {
    let mapping_error = |e: crate::map::MapError| Error::Mapping { name: name.to_string(), detail: e.to_string() };
    if !source.columns.is_empty() {
        return build_mapping(name, source, &source.columns)?.with_table_columns(schema).map_err(mapping_error);
    }
    let mapped_by_us = schema.fields().iter().any(|f| f.metadata().contains_key(PATH_METADATA));
    let saved = if mapped_by_us { None } else { load_legacy(name, legacy)? };
    match saved {
        Some(columns) => Mapping::new(&columns, MappingOptions::of(source)),
        None => Mapping::from_schema(schema, MappingOptions::of(source)),
    }
    .map_err(mapping_error)
}

pub(crate) fn legacy_path(config: &Config, name: &str) -> PathBuf {
    config.state_dir.join("inferred").join(format!("{name}.toml"))
}

fn build_mapping(name: &str, source: &SourceConfig, columns: &IndexMap<String, ColumnConfig>) -> Result<Mapping, Error> {
    Mapping::new(columns, MappingOptions::of(source)).map_err(|e| Error::Mapping { name: name.to_string(), detail: e.to_string() })
}

/// The columns ingestd before 0.3 saved at `path` for source `name`, if it saved any. It quoted
/// paths with Rust's `{:?}`, whose `\0` and `\u{1b}` TOML refuses: a file that does not parse
/// is read again with those escapes rewritten, so that a key holding NUL or ESC does not block
/// the source.
fn load_legacy(name: &str, path: &Path) -> Result<Option<IndexMap<String, ColumnConfig>>, Error> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(Error::File { action: "cannot read saved columns", path: path.to_path_buf(), error }),
    };
    if let Ok(columns) = toml::from_str::<IndexMap<String, ColumnConfig>>(&text) {
        return Ok(Some(columns));
    }
    toml::from_str::<IndexMap<String, ColumnConfig>>(&repair_debug_escapes(&text)).map(Some).map_err(|e| Error::Mapping {
        name: name.to_string(),
        // The table, made before 0.3, does not record which field each column reads: only this
        // file does, so deleting it is a remedy only for columns named like their fields.
        detail: format!(
            "{}: {e}\nthis file holds the columns ingestd before 0.3 inferred for the table, whose schema does not say which input \
             field each column reads. Correct the file, or copy its columns into [sources.{name}.columns]; if every column reads \
             the top-level field of its own name, deleting the file is enough",
            path.display()
        ),
    })
}

/// `text` with the string escapes Rust's `{:?}` writes and TOML refuses rewritten as TOML's:
/// `\0` as `\u0000`, `\u{1b}` as `\u001B` (`\U0010FFFF` past U+FFFF), `\'` as `'`. Other
/// escapes are kept as written with the character they escape, so `\\0` stays a backslash
/// and a zero.
fn repair_debug_escapes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let escaped = &rest[at + 1..];
        rest = if let Some(after) = escaped.strip_prefix('0') {
            out.push_str("\\u0000");
            after
        } else if let Some(after) = escaped.strip_prefix('\'') {
            out.push('\'');
            after
        } else if let Some((c, after)) = braced_escape(escaped) {
            let code = u32::from(c);
            out.push_str(&if code <= 0xFFFF { format!("\\u{code:04X}") } else { format!("\\U{code:08X}") });
            after
        } else {
            let len = escaped.chars().next().map_or(0, char::len_utf8);
            out.push('\\');
            out.push_str(&escaped[..len]);
            &escaped[len..]
        };
    }
    out.push_str(rest);
    out
}

/// The character of a Rust `u{1b}` escape (its backslash already read) at the start of `text`,
/// and the text after it.
fn braced_escape(text: &str) -> Option<(char, &str)> {
    let body = text.strip_prefix("u{")?;
    let end = body.find('}')?;
    let hex = &body[..end];
    if hex.is_empty() || hex.len() > 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let c = u32::from_str_radix(hex, 16).ok().and_then(char::from_u32)?;
    Some((c, &body[end + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_columns_with_rust_escapes_are_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.toml");
        let paths = ["nul\0.x", "esc\u{1b}[0m", "del\u{7f}", "tab\tquote\"back\\slash\\0", "tag\u{e0001}", "\u{10FFFF}", "\u{85}"];
        // As ingestd before 0.3 wrote it: its columns_toml quoted with `{:?}`.
        let mut text = format!("# Columns inferred from {:?}; copy into [sources.s.columns] to fix them.\n", "f\u{1b}.json");
        for (i, path) in paths.iter().enumerate() {
            text.push_str(&format!("c{i} = {{ path = {path:?}, type = \"string\" }}\n"));
        }
        assert!(toml::from_str::<IndexMap<String, ColumnConfig>>(&text).is_err(), "TOML refuses the file as written");
        std::fs::write(&file, &text).unwrap();
        let columns = load_legacy("s", &file).unwrap().unwrap();
        assert_eq!(columns.values().map(|c| c.path.as_str()).collect::<Vec<_>>(), paths);
    }

    #[test]
    fn rust_escapes_become_toml_escapes_and_escaped_backslashes_stay() {
        assert_eq!(
            repair_debug_escapes(r#"a = "\0b\u{1b}\u{7f}\u{10ffff}\\0\'\n\u{}\u{zz}""#),
            r#"a = "\u0000b\u001B\u007F\U0010FFFF\\0'\n\u{}\u{zz}""#
        );
    }

    #[test]
    fn saved_columns_that_do_not_parse_name_the_file_and_the_remedy() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("s.toml");
        std::fs::write(&file, "c = { path = \"x\", type = \"no such type\" }\n").unwrap();
        let err = load_legacy("s", &file).unwrap_err().to_string();
        assert!(err.contains(&file.display().to_string()) && err.contains("[sources.s.columns]") && err.contains("deleting"), "{err}");
    }
}

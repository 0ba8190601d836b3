//! The columns of a source: configured, or inferred from its first file and kept in the state
//! folder so every later batch (and every restart) maps the same way.

use super::Source;
use crate::admit::AdmittedFile;
use crate::config::{ColumnConfig, Config, SourceConfig};
use crate::decode::DecodeError;
use crate::error::Error;
use crate::events::{self, ColumnsInferred};
use crate::map::{Mapping, infer};
use indexmap::IndexMap;
use std::path::{Path, PathBuf};

/// The mapping of a source, once known, and where inferred columns are saved.
pub(super) struct Columns {
    mapping: Option<Mapping>,
    inferred_path: PathBuf,
}

impl Columns {
    pub(super) fn load(config: &Config, name: &str, source: &SourceConfig) -> Result<Columns, Error> {
        Ok(Columns { mapping: configured_mapping(config, name, source)?, inferred_path: inferred_path(config, name) })
    }
}

impl Source {
    /// The mapping, inferring it from `file` (and saving it) when the config names no columns.
    pub(super) async fn mapping_for(&mut self, file: &AdmittedFile) -> Result<Result<Mapping, DecodeError>, Error> {
        if let Some(mapping) = &self.columns.mapping {
            return Ok(Ok(mapping.clone()));
        }
        let (path, name, format) = (file.path.clone(), file.name.clone(), self.config.format.clone());
        let columns = match Source::blocking("inferring columns", move || infer::infer_columns(&path, &name, &format)).await? {
            Ok(columns) if columns.is_empty() => {
                return Ok(Err(DecodeError::malformed("no fields found to infer columns from".into(), None)));
            }
            Ok(columns) => columns,
            Err(e) => return Ok(Err(e)),
        };
        let mapping = match build_mapping(&self.name, &self.config, &columns) {
            Ok(mapping) => mapping,
            Err(e) => return Ok(Err(DecodeError::malformed(e.to_string(), None))),
        };
        let text = format!(
            "# Columns inferred from {:?}; copy into [sources.{}.columns] to fix them.\n{}",
            file.name,
            self.name,
            infer::columns_toml(&columns)
        );
        let path = self.columns.inferred_path.clone();
        let saved = Source::blocking("saving inferred columns", move || {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&path, text)
        })
        .await?;
        events::emit(ColumnsInferred { source: &self.name, file: &file.name, columns: columns.len(), not_saved: saved.as_ref().err() });
        self.columns.mapping = Some(mapping.clone());
        Ok(Ok(mapping))
    }
}

/// The mapping of source `name`: its configured columns, or those a run inferred from its first
/// file; `None` while neither exists.
pub(crate) fn configured_mapping(config: &Config, name: &str, source: &SourceConfig) -> Result<Option<Mapping>, Error> {
    let columns = if source.columns.is_empty() { load_inferred(name, &inferred_path(config, name))? } else { Some(source.columns.clone()) };
    columns.map(|c| build_mapping(name, source, &c)).transpose()
}

/// Where the columns inferred for source `name` are saved.
pub(crate) fn inferred_path(config: &Config, name: &str) -> PathBuf {
    config.state_dir.join("inferred").join(format!("{name}.toml"))
}

fn build_mapping(name: &str, source: &SourceConfig, columns: &IndexMap<String, ColumnConfig>) -> Result<Mapping, Error> {
    Mapping::new(columns, source.metadata_columns, source.on_bad_row, source.format.csv.null_values.clone())
        .map_err(|e| Error::Mapping { name: name.to_string(), detail: e.to_string() })
}

fn load_inferred(name: &str, path: &Path) -> Result<Option<IndexMap<String, ColumnConfig>>, Error> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text)
            .map(Some)
            .map_err(|e| Error::Mapping { name: name.to_string(), detail: format!("{}: {e}", path.display()) }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(Error::File { action: "cannot read saved columns", path: path.to_path_buf(), error }),
    }
}

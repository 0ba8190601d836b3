//! Reading back what one batch's commit added, for loaders that read the table's files (Druid).

use super::MANIFEST_KEY;
use crate::druid::LakeCommit;
use crate::sinks::{BatchManifest, SchemaChange, SinkError};
use deltalake::DeltaTable;
use deltalake::kernel::Action;

/// The commit of batch `seq` of (instance, source): its version and the data files it added,
/// relative to the table root and percent-decoded (as they are on disk). `None` when the
/// table does not hold the batch, or its log entry was cleaned up.
pub(super) async fn lake_commit(
    sink: &str,
    table: &DeltaTable,
    (instance, source): (&str, &str),
    seq: i64,
) -> Result<Option<LakeCommit>, SinkError> {
    let err = |e: deltalake::DeltaTableError| SinkError::storage(sink, e);
    let snapshot = table.snapshot().map_err(err)?;
    let log_store = table.log_store();
    // The txn version says whether the batch is in the table at all, without reading the log.
    let app_id = BatchManifest::app_id(instance, source);
    if snapshot.transaction_version(log_store.as_ref(), &app_id).await.map_err(err)?.is_none_or(|held| held < seq) {
        return Ok(None);
    }
    // Newest first: the batch asked for is almost always one of the last commits.
    let mut version = snapshot.version();
    loop {
        let Some(bytes) = log_store.read_commit_entry(version).await.map_err(err)? else { return Ok(None) };
        let actions = deltalake::logstore::get_actions(version, &bytes).map_err(err)?;
        let manifest = actions.iter().find_map(|a| match a {
            Action::CommitInfo(info) => info.info.get(MANIFEST_KEY).and_then(|m| serde_json::from_value::<BatchManifest>(m.clone()).ok()),
            _ => None,
        });
        if let Some(m) = manifest.filter(|m| m.instance == instance && m.source == source) {
            if m.seq == seq {
                // `Add::path` is decoded from the log's URI form when it is read.
                let files = actions.into_iter().filter_map(|a| if let Action::Add(add) = a { Some(add.path) } else { None }).collect();
                return Ok(Some(LakeCommit { root: root(table), version: Some(version as i64), files }));
            }
            // This source's seqs only grow along the log.
            if m.seq < seq {
                return Ok(None);
            }
        }
        if version == 0 {
            return Ok(None);
        }
        version -= 1;
    }
}

/// Every version that changed the table's columns, read from the log entries still present.
pub(super) async fn schema_history(sink: &str, table: &DeltaTable) -> Result<Vec<SchemaChange>, SinkError> {
    let err = |e: deltalake::DeltaTableError| SinkError::storage(sink, e);
    let snapshot = table.snapshot().map_err(err)?;
    let log_store = table.log_store();
    let mut changes = Vec::new();
    let mut columns: Vec<String> = Vec::new();
    for version in 0..=snapshot.version() {
        let Some(bytes) = log_store.read_commit_entry(version).await.map_err(err)? else { continue };
        let actions = deltalake::logstore::get_actions(version, &bytes).map_err(err)?;
        let mut now = None;
        let (mut timestamp_ms, mut manifest) = (None, None);
        for action in &actions {
            match action {
                Action::Metadata(metadata) => {
                    let schema = metadata.parse_schema().map_err(|e| SinkError::storage(sink, e))?;
                    now = Some(schema.fields().map(|f| f.name().clone()).collect::<Vec<_>>());
                }
                Action::CommitInfo(info) => {
                    timestamp_ms = info.timestamp;
                    manifest = info.info.get(MANIFEST_KEY).and_then(|m| serde_json::from_value::<BatchManifest>(m.clone()).ok());
                }
                _ => {}
            }
        }
        let Some(now) = now else { continue };
        let added: Vec<String> = now.iter().filter(|c| !columns.contains(c)).cloned().collect();
        columns = now;
        if added.is_empty() {
            continue;
        }
        let files = match &manifest {
            Some(m) if !m.columns_added.is_empty() => {
                let mut files: Vec<String> = m.columns_added.iter().map(|a| a.file.clone()).collect();
                files.dedup();
                files
            }
            Some(m) => m.files.first().map(|f| vec![f.name.clone()]).unwrap_or_default(),
            None => Vec::new(),
        };
        changes.push(SchemaChange { version: version as i64, timestamp_ms, columns: added, files });
    }
    Ok(changes)
}

/// The table's root: an absolute folder for a local table, its URL otherwise.
fn root(table: &DeltaTable) -> String {
    let url = table.table_url();
    match url.to_file_path() {
        Ok(path) => path.to_string_lossy().trim_end_matches('/').to_string(),
        Err(()) => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use crate::config::SinkConfig;
    use crate::sinks::{BatchManifest, DeltaSink, Sink};
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::record_batch::RecordBatch;
    use std::sync::Arc;

    #[test]
    fn each_batch_is_found_with_exactly_the_files_it_added() {
        let dir = tempfile::tempdir().unwrap();
        let toml = format!("kind = \"delta\"\nuri = {:?}\npartition_by = [\"zip\"]", dir.path().join("t").display().to_string());
        let config = || match toml::from_str(&toml).unwrap() {
            SinkConfig::Delta(c) => c,
            other => panic!("not delta: {other:?}"),
        };
        let schema = Arc::new(Schema::new(vec![Field::new("zip", DataType::Utf8, true), Field::new("n", DataType::Int64, true)]));
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let mut sink = DeltaSink::new("lake", config(), "h", "s");
            sink.prepare(schema.clone()).await.unwrap();
            for (seq, zips) in [(1, vec!["a b", "c"]), (2, vec!["é/x"])] {
                let n = Int64Array::from((0..zips.len() as i64).collect::<Vec<_>>());
                let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(StringArray::from(zips)), Arc::new(n)]).unwrap();
                let mut writer = sink.begin(schema.clone()).await.unwrap();
                writer.write(&batch).await.unwrap();
                let manifest = BatchManifest {
                    instance: "h".into(),
                    source: "s".into(),
                    seq,
                    ingested_at_us: None,
                    files: vec![],
                    columns_added: vec![],
                    lookups: vec![],
                };
                writer.commit(&manifest).await.unwrap();
            }
            let first = sink.lake_commit(1).await.unwrap().unwrap();
            let second = sink.lake_commit(2).await.unwrap().unwrap();
            assert_eq!((first.version, second.version), (Some(1), Some(2)), "version 0 creates the table");
            assert_eq!(first.root, dir.path().join("t").canonicalize().unwrap().to_string_lossy());
            assert_eq!(first.files.len(), 2);
            assert_eq!(second.files.len(), 1);
            for file in first.files.iter().chain(&second.files) {
                assert!(std::path::Path::new(&first.root).join(file).is_file(), "{file} is not on disk");
            }
            assert!(first.files.iter().all(|f| !second.files.contains(f)));
            assert_eq!(sink.lake_commit(3).await.unwrap(), None, "not committed");
            let other = DeltaSink::new("lake", config(), "h", "other");
            assert_eq!(other.lake_commit(1).await.unwrap(), None, "another source's batches are not ours");
        });
    }
}

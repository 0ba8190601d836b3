//! Lookups: small tables held in memory for the transforms to join, read again when their file
//! (or Delta version) changes. Each load records a version (the BLAKE3 of the file's bytes, or
//! the Delta version) that the batches using it carry in their commits.

use crate::config::{LookupConfig, LookupFormat, S3Config};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use indexmap::IndexMap;
use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Mutex;

#[derive(Debug, thiserror::Error)]
#[error("lookup {name} ({path}): {reason}")]
pub struct LookupError {
    pub name: String,
    pub path: String,
    pub reason: String,
}

/// A lookup a batch used, as its commit records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LookupUse {
    pub name: String,
    pub path: String,
    /// `blake3:<hex>` of the file's bytes, or `delta:<version>`.
    pub version: String,
}

/// One load of a lookup.
#[derive(Debug)]
pub struct Loaded {
    pub name: String,
    pub path: String,
    pub version: String,
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    /// What says the source changed, without reading it: size and mtime, an ETag, a version.
    stamp: String,
}

impl Loaded {
    #[cfg(test)]
    pub(crate) fn for_tests(name: &str, schema: SchemaRef, batches: Vec<RecordBatch>) -> Loaded {
        Loaded { name: name.into(), path: format!("{name}.csv"), version: "test".into(), schema, batches, stamp: String::new() }
    }

    pub fn usage(&self) -> LookupUse {
        LookupUse { name: self.name.clone(), path: self.path.clone(), version: self.version.clone() }
    }
}

struct Entry {
    config: LookupConfig,
    loaded: Option<Arc<Loaded>>,
}

/// The configured lookups of one source's transform.
pub struct Lookups {
    entries: Mutex<IndexMap<String, Entry>>,
}

impl Lookups {
    pub fn new(configs: &IndexMap<String, LookupConfig>) -> Lookups {
        let entries = configs.iter().map(|(name, config)| (name.clone(), Entry { config: config.clone(), loaded: None })).collect();
        Lookups { entries: Mutex::new(entries) }
    }

    /// Every lookup at its current version: each is asked whether it changed and read again if
    /// so. A lookup that cannot be read fails the whole call (never rows joined to nothing).
    pub async fn current(&self) -> Result<Vec<Arc<Loaded>>, LookupError> {
        let mut entries = self.entries.lock().await;
        let mut out = Vec::with_capacity(entries.len());
        for (name, entry) in entries.iter_mut() {
            let error = |reason: String| LookupError { name: name.clone(), path: entry.config.path.clone(), reason };
            let stamp = stamp(&entry.config).await.map_err(error)?;
            let fresh = match &entry.loaded {
                Some(loaded) if loaded.stamp == stamp => loaded.clone(),
                _ => {
                    let loaded = Arc::new(load(name, &entry.config, stamp).await.map_err(error)?);
                    tracing::info!(lookup = %name, version = %loaded.version, rows = loaded.batches.iter().map(|b| b.num_rows()).sum::<usize>(), "lookup loaded");
                    entry.loaded = Some(loaded.clone());
                    loaded
                }
            };
            out.push(fresh);
        }
        Ok(out)
    }
}

/// A cheap fingerprint of the lookup's current state.
async fn stamp(config: &LookupConfig) -> Result<String, String> {
    if config.format() == LookupFormat::Delta {
        let table = open_delta(config).await?;
        return Ok(format!("delta:{}", table.version().map_or(-1, |v| v as i64)));
    }
    if config.is_s3() {
        let (store, key) = s3_object(&config.path, &config.s3)?;
        let meta = store.head(&key).await.map_err(|e| e.to_string())?;
        return Ok(format!("{}:{}:{:?}", meta.size, meta.last_modified.timestamp_nanos_opt().unwrap_or_default(), meta.e_tag));
    }
    let path = config.path.clone();
    let meta =
        tokio::task::spawn_blocking(move || std::fs::metadata(&path)).await.map_err(|e| e.to_string())?.map_err(|e| e.to_string())?;
    let mtime = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).unwrap_or_default();
    Ok(format!("{}:{}", meta.len(), mtime.as_nanos()))
}

async fn load(name: &str, config: &LookupConfig, stamp: String) -> Result<Loaded, String> {
    let (version, schema, batches) = match config.format() {
        LookupFormat::Delta => {
            let table = open_delta(config).await?;
            let version = format!("delta:{}", table.version().map_or(-1, |v| v as i64));
            let ctx = deltalake::datafusion::prelude::SessionContext::new();
            table.update_datafusion_session(&ctx.state()).map_err(|e| e.to_string())?;
            let provider = table.table_provider().await.map_err(|e| e.to_string())?;
            let frame = ctx.read_table(provider).map_err(|e| e.to_string())?;
            let declared: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
            let batches = frame.collect().await.map_err(|e| e.to_string())?;
            // The batches' own schema, which the in-memory table checks them against.
            let schema = batches.first().map_or(declared, |b| b.schema());
            (version, schema, batches)
        }
        format => {
            let bytes = read_bytes(config).await?;
            tokio::task::spawn_blocking(move || parse(format, bytes)).await.map_err(|e| e.to_string())??
        }
    };
    Ok(Loaded { name: name.to_string(), path: config.path.clone(), version, schema, batches, stamp })
}

/// The file's bytes, from disk or the bucket.
async fn read_bytes(config: &LookupConfig) -> Result<Bytes, String> {
    if config.is_s3() {
        let (store, key) = s3_object(&config.path, &config.s3)?;
        return store.get(&key).await.map_err(|e| e.to_string())?.bytes().await.map_err(|e| e.to_string());
    }
    let path = config.path.clone();
    let bytes = tokio::task::spawn_blocking(move || std::fs::read(&path)).await.map_err(|e| e.to_string())?.map_err(|e| e.to_string())?;
    Ok(Bytes::from(bytes))
}

/// Parses a CSV (header line, types inferred from every row) or Parquet file, and hashes it.
fn parse(format: LookupFormat, bytes: Bytes) -> Result<(String, SchemaRef, Vec<RecordBatch>), String> {
    let version = format!("blake3:{}", blake3::hash(&bytes).to_hex());
    let (schema, batches) = match format {
        LookupFormat::Parquet => {
            let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| e.to_string())?;
            let schema = reader.schema().clone();
            let batches = reader.build().map_err(|e| e.to_string())?.collect::<Result<Vec<_>, _>>().map_err(|e| e.to_string())?;
            (schema, batches)
        }
        _ => {
            let format = arrow::csv::reader::Format::default().with_header(true);
            let (schema, _) = format.infer_schema(std::io::Cursor::new(&bytes), None).map_err(|e| e.to_string())?;
            let schema = Arc::new(schema);
            let reader = arrow::csv::ReaderBuilder::new(schema.clone())
                .with_header(true)
                .build(std::io::Cursor::new(bytes))
                .map_err(|e| e.to_string())?;
            (schema, reader.collect::<Result<Vec<_>, _>>().map_err(|e| e.to_string())?)
        }
    };
    Ok((version, schema, batches))
}

async fn open_delta(config: &LookupConfig) -> Result<deltalake::DeltaTable, String> {
    crate::sinks::open_table_at("lookup", &config.path, &config.s3)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "no Delta table there".to_string())
}

fn s3_object(url: &str, s3: &S3Config) -> Result<(object_store::aws::AmazonS3, object_store::path::Path), String> {
    let (bucket, key) = crate::config::parse_s3_url(url)?;
    let store = crate::discover::s3::build_store(&bucket, &s3.storage_options(), Duration::from_secs(10), Duration::from_secs(120))?;
    Ok((store, object_store::path::Path::from(key)))
}

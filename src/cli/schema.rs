//! `ingestd schema [SOURCE]`: a source's columns as its table holds them, and the history of
//! their evolution (version, time, the columns each version added, the file that brought them),
//! read from the sinks, never from the state folder.

use crate::config::Config;
use crate::map::Mapping;
use crate::sinks::Sink;
use anyhow::{Context, Result, bail};

/// The columns a source maps: configured, or its table's; `None` before its first commit.
pub(super) async fn source_mapping(config: &Config, name: &str) -> Result<Option<(Mapping, String)>> {
    let source = config.sources.get(name).with_context(|| format!("no source named {name:?}"))?;
    let configured = crate::source::configured_mapping(name, source)?;
    let adds_columns = source.schema.evolution(source.columns.is_empty()) == crate::config::Evolution::AddColumns;
    // A transform's table holds the query's output: those are the columns the sinks get.
    if let Some(mapping) = &configured
        && !adds_columns
        && source.transform.is_none()
    {
        return Ok(Some((mapping.clone(), "the config".into())));
    }
    for sink in sinks(config, name)? {
        if let Some(schema) = sink.table_schema().await? {
            if source.transform.is_some() {
                let options =
                    crate::map::MappingOptions { metadata_columns: false, rescued: None, ..crate::map::MappingOptions::of(source) };
                let mapping = Mapping::from_schema(&schema, options).map_err(|e| anyhow::anyhow!("sink {}: {e}", sink.name()))?;
                return Ok(Some((mapping, format!("the table of sink {} (the transform's output)", sink.name()))));
            }
            let legacy = crate::source::legacy_path(config, name);
            let mapping =
                crate::source::table_mapping(name, source, &schema, &legacy).map_err(|e| anyhow::anyhow!("sink {}: {e}", sink.name()))?;
            return Ok(Some((mapping, format!("the table of sink {}", sink.name()))));
        }
    }
    Ok(configured.map(|m| (m, "the config".into())))
}

fn sinks(config: &Config, name: &str) -> Result<Vec<Box<dyn Sink>>> {
    let source = config.sources.get(name).with_context(|| format!("no source named {name:?}"))?;
    source.sinks.iter().map(|s| crate::sinks::build(s, config, name).with_context(|| format!("no sink named {s:?}"))).collect()
}

pub(super) async fn schema(config: &Config, source: Option<&str>, json: bool) -> Result<i32> {
    let name = match source {
        Some(name) => name.to_string(),
        None if config.sources.len() == 1 => config.sources.keys().next().cloned().unwrap_or_default(),
        None => bail!("name a source: {}", config.sources.keys().cloned().collect::<Vec<_>>().join(", ")),
    };
    let Some((mapping, from)) = source_mapping(config, &name).await? else {
        println!("source {name}: no columns yet (they are inferred from its first batch)");
        return Ok(0);
    };
    let mut history = Vec::new();
    for sink in sinks(config, &name)? {
        let changes = sink.schema_history().await?;
        if !changes.is_empty() {
            history.push((sink.name().to_string(), changes));
        }
    }
    if json {
        let columns: Vec<_> = mapping
            .schema()
            .fields()
            .iter()
            .map(|f| serde_json::json!({"name": f.name(), "type": f.metadata().get(crate::map::TYPE_METADATA).cloned().unwrap_or_else(|| f.data_type().to_string()), "path": f.metadata().get(crate::map::PATH_METADATA)}))
            .collect();
        let history: serde_json::Map<String, serde_json::Value> =
            history.into_iter().map(|(sink, changes)| (sink, serde_json::json!(changes))).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"source": name, "from": from, "columns": columns, "history": history}))?
        );
        return Ok(0);
    }
    println!("source {name}: {} columns, from {from}", mapping.schema().fields().len());
    println!("  {:<28} {:<16} path", "column", "type");
    for field in mapping.schema().fields() {
        let kind = field.metadata().get(crate::map::TYPE_METADATA).cloned().unwrap_or_else(|| field.data_type().to_string());
        let path = field.metadata().get(crate::map::PATH_METADATA).map(String::as_str).unwrap_or("-");
        println!("  {:<28} {:<16} {path}", field.name(), kind);
    }
    for (sink, changes) in history {
        println!("\nhistory of sink {sink}:");
        for (i, change) in changes.iter().enumerate() {
            let when = change
                .timestamp_ms
                .and_then(chrono::DateTime::from_timestamp_millis)
                .map_or_else(|| "-".to_string(), |t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string());
            let what = if i == 0 { "created with" } else { "added" };
            let files = if change.files.is_empty() { String::new() } else { format!(" (from {})", change.files.join(", ")) };
            println!("  version {:<6} {when}  {what} {}{files}", change.version, change.columns.join(", "));
        }
    }
    Ok(0)
}

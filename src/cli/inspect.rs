//! `ingestd inspect FILE`: how a file is read, and what its rows look like after mapping. This is
//! how a user writes a mapping: run it without one, copy the suggested columns, edit.

use crate::config::{BadRowPolicy, Config, Evolution, FormatConfig, SourceConfig};
use crate::decode::{self, DecodeError};
use crate::map::{Mapping, MappingOptions, infer};
use anyhow::{Context, Result, bail};
use std::path::Path;

pub(super) fn inspect(config: Option<&Config>, file: &Path, source: Option<&str>, rows: usize) -> Result<i32> {
    let source: Option<&SourceConfig> = match (config, source) {
        (Some(config), Some(name)) => Some(config.sources.get(name).with_context(|| format!("no source named {name:?}"))?),
        (Some(config), None) if config.sources.len() == 1 => config.sources.values().next(),
        (None, Some(name)) => bail!("--source {name}: no config file"),
        _ => None,
    };
    let format = source.map(|s| s.format.clone()).unwrap_or_default();
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let opened = decode::open(file, &name, &format).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    println!("file:        {}", file.display());
    println!("compression: {:?}", opened.detected.compression);
    println!("layout:      {:?}", opened.detected.layout);
    drop(opened);

    let inferred = infer::infer_columns(&[(file, &name)], &format).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    let columns = match source {
        Some(s) if !s.columns.is_empty() => s.columns.clone(),
        _ => inferred.clone(),
    };
    let options = source.map(MappingOptions::of).unwrap_or(MappingOptions {
        metadata_columns: false,
        policy: BadRowPolicy::Null,
        null_values: vec![String::new()],
        evolution: Evolution::None,
        rescued: None,
        hints: Default::default(),
    });
    let mapping = Mapping::new(&columns, options).map_err(|e| anyhow::anyhow!(e))?;
    println!("\nschema after mapping:");
    for field in mapping.schema().fields() {
        println!("  {:<24} {}", field.name(), field.data_type());
    }
    let (batches, bad_rows) = first_rows(file, &name, &format, &mapping, rows).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
    println!("\nfirst {} rows ({bad_rows} with values that did not convert):", batches.iter().map(|b| b.num_rows()).sum::<usize>());
    println!("{}", arrow::util::pretty::pretty_format_batches(&batches)?);
    println!("\nevery field found, as config (paste under [sources.NAME.columns] and edit):");
    print!("{}", infer::columns_toml(&inferred));
    Ok(0)
}

fn first_rows(
    file: &Path,
    name: &str,
    format: &FormatConfig,
    mapping: &Mapping,
    limit: usize,
) -> Result<(Vec<arrow::record_batch::RecordBatch>, u64), DecodeError> {
    let plan = mapping.decode_plan(format).map_err(|e| DecodeError::malformed(e.to_string(), None))?;
    let mut out = Vec::new();
    let mut bad = 0;
    let mut seen = 0usize;
    let result = decode::open(file, name, format)?.decode(&plan, &mut |raw| {
        let mapped = mapping
            .apply(&raw, name, chrono::Utc::now().timestamp_micros(), seen as u64 + 1)
            .map_err(|e| DecodeError::malformed(e.to_string(), None))?;
        bad += mapped.bad_rows;
        let take = limit.saturating_sub(seen).min(mapped.batch.num_rows());
        seen += take;
        out.push(mapped.batch.slice(0, take));
        // Stop reading once enough rows are shown.
        if seen >= limit { Err(DecodeError::malformed("enough".into(), None)) } else { Ok(()) }
    });
    match result {
        Err(e) if e.message != "enough" => Err(e),
        _ => Ok((out, bad)),
    }
}

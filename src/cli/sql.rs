//! `ingestd sql`: a query over the sinks' tables by sink name (Delta and Parquet) and the lookups,
//! and the transform checks of `ingestd check`.

use crate::config::{Config, SinkConfig};
use crate::transform::{Lookups, Planned};
use anyhow::{Context, Result, anyhow};
use arrow::record_batch::RecordBatch;
use deltalake::datafusion::datasource::MemTable;
use deltalake::datafusion::prelude::{ParquetReadOptions, SessionContext};
use std::sync::Arc;

/// How `ingestd sql` prints its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SqlFormat {
    /// An aligned table.
    Table,
    /// CSV with a header line.
    Csv,
    /// One JSON object per line.
    Json,
}

/// Runs `query` and prints its result.
pub(super) async fn sql(config: &Config, query: &str, format: SqlFormat) -> Result<i32> {
    let ctx = SessionContext::new();
    register_tables(config, &ctx).await?;
    let frame = ctx.sql(query).await.map_err(|e| anyhow!("{}", e.strip_backtrace()))?;
    let batches = frame.collect().await.map_err(|e| anyhow!("{}", e.strip_backtrace()))?;
    print!("{}", render(&batches, format)?);
    Ok(0)
}

/// Every Delta and Parquet sink under its name, and every lookup.
async fn register_tables(config: &Config, ctx: &SessionContext) -> Result<()> {
    for (name, sink) in &config.sinks {
        match sink {
            SinkConfig::Delta(delta) => {
                let Some(table) = crate::sinks::open_table_at(name, &delta.uri, &delta.s3).await? else {
                    tracing::warn!(sink = %name, "no Delta table yet; not queryable");
                    continue;
                };
                table.update_datafusion_session(&ctx.state()).with_context(|| format!("sink {name}"))?;
                let provider = table.table_provider().await.with_context(|| format!("sink {name}"))?;
                ctx.register_table(name.as_str(), provider).with_context(|| format!("sink {name}"))?;
            }
            SinkConfig::Parquet(parquet) if !parquet.path.starts_with("s3://") => {
                if !std::path::Path::new(&parquet.path).is_dir() {
                    tracing::warn!(sink = %name, "no Parquet dataset yet; not queryable");
                    continue;
                }
                // Committed files only: the ones being written end in `.tmp`.
                let partitions: Vec<(String, arrow::datatypes::DataType)> =
                    parquet.partition_by.iter().map(|c| (c.clone(), arrow::datatypes::DataType::Utf8)).collect();
                let options = ParquetReadOptions::default().file_extension(".parquet").table_partition_cols(partitions);
                ctx.register_parquet(name.as_str(), &parquet.path, options)
                    .await
                    .map_err(|e| anyhow!("sink {name}: {}", e.strip_backtrace()))?;
            }
            _ => {}
        }
    }
    if !config.lookups.is_empty() {
        for lookup in Lookups::new(&config.lookups).current().await? {
            let table = MemTable::try_new(lookup.schema.clone(), vec![lookup.batches.clone()])?;
            ctx.register_table(lookup.name.as_str(), Arc::new(table))?;
        }
    }
    Ok(())
}

fn render(batches: &[RecordBatch], format: SqlFormat) -> Result<String> {
    Ok(match format {
        SqlFormat::Table => format!("{}\n", arrow::util::pretty::pretty_format_batches(batches)?),
        SqlFormat::Csv => {
            let mut out = Vec::new();
            let mut writer = arrow::csv::WriterBuilder::new().with_header(true).build(&mut out);
            for batch in batches {
                writer.write(batch)?;
            }
            drop(writer);
            String::from_utf8(out)?
        }
        SqlFormat::Json => {
            let mut out = Vec::new();
            let mut writer = arrow::json::LineDelimitedWriter::new(&mut out);
            for batch in batches {
                writer.write(batch)?;
            }
            writer.finish()?;
            String::from_utf8(out)?
        }
    })
}

/// Each source's transform planned against its configured columns and the lookups; problems
/// name the key. A source whose columns are inferred is planned at its first batch.
pub(super) async fn transform_problems(config: &Config) -> Vec<String> {
    let sources: Vec<_> = config.sources.iter().filter_map(|(name, s)| Some((name, s, s.transform.as_ref()?))).collect();
    if sources.is_empty() {
        return Vec::new();
    }
    let lookups = match Lookups::new(&config.lookups).current().await {
        Ok(lookups) => lookups,
        Err(e) => return vec![format!("lookups.{}: {e}", e.name)],
    };
    let mut problems = Vec::new();
    for (name, source, sql) in sources {
        let mapping = match crate::source::configured_mapping(name, source) {
            Ok(Some(mapping)) => mapping,
            Ok(None) => continue,
            Err(e) => {
                problems.push(format!("sources.{name}.columns: {e}"));
                continue;
            }
        };
        match Planned::plan(sql, mapping.schema(), &lookups, source.on_bad_row).await {
            Ok(planned) => tracing::debug!(source = %name, columns = planned.output().fields().len(), "transform planned"),
            Err(e) => problems.push(format!("sources.{name}.transform: {e}")),
        }
    }
    problems
}

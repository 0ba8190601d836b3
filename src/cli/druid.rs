//! `ingestd druid ...`: the Druid specs ingestd generates, printed to look at or to post by hand.

use crate::config::{Config, SinkConfig};
use anyhow::{Context, Result, bail};

#[derive(Debug, clap::Subcommand)]
pub enum DruidCommand {
    /// Print the Kafka supervisor spec of a Kafka sink (its `[sinks.SINK.druid]` table), as the
    /// daemon posts it with `submit = true`.
    SupervisorSpec {
        /// The Kafka sink.
        sink: String,
    },
}

pub(super) async fn druid(config: &Config, command: DruidCommand) -> Result<i32> {
    match command {
        DruidCommand::SupervisorSpec { sink } => {
            println!("{}", serde_json::to_string_pretty(&supervisor_spec(config, &sink).await?)?);
            Ok(0)
        }
    }
}

/// The spec for the mapping of the first source writing to `sink`.
async fn supervisor_spec(config: &Config, sink: &str) -> Result<serde_json::Value> {
    let kafka = match config.sinks.get(sink) {
        Some(SinkConfig::Kafka(kafka)) => kafka,
        Some(_) => bail!("sink {sink:?} is not a Kafka sink; supervisor specs are for Kafka sinks"),
        None => bail!("no sink named {sink:?} under [sinks]"),
    };
    let druid = kafka.druid.as_ref().with_context(|| format!("sink {sink:?} has no [sinks.{sink}.druid] table"))?;
    let name = config
        .sources
        .iter()
        .find(|(_, source)| source.sinks.iter().any(|s| s == sink))
        .map(|(name, _)| name)
        .with_context(|| format!("no source writes to sink {sink:?}"))?;
    let (mapping, _) = super::schema::source_mapping(config, name).await?.with_context(|| {
        format!("source {name:?} lists no columns and has no table yet: run `ingestd once` on a file first, or list them under [sources.{name}.columns]")
    })?;
    Ok(crate::druid::supervisor_spec(&mapping.schema(), druid, &kafka.topic, &kafka.brokers, &kafka.properties)?)
}

//! How the Druid outputs fit the rest of the config: a druid sink's lake, the sources' sink
//! order, and the columns the Druid keys name.

use super::{DruidBatchInput, DruidSchemaConfig};

impl DruidSchemaConfig {
    /// Every column these keys name, with the key naming it (`dimensions`, `metrics.total.column`).
    fn columns(&self) -> Vec<(String, &str)> {
        let mut out = vec![("timestamp_column".to_string(), self.timestamp_column.as_str())];
        out.extend(self.dimensions.iter().map(|d| ("dimensions".to_string(), d.as_str())));
        for (name, metric) in &self.metrics {
            out.extend(metric.column.as_deref().map(|c| (format!("metrics.{name}.column"), c)));
        }
        out
    }
}

/// How the Druid outputs fit the rest of the config: each druid sink's keys and lake, each Kafka
/// sink's `druid` table, and the sink order and columns of the sources writing to them.
pub(crate) fn wiring_problems(config: &crate::config::Config) -> Vec<String> {
    use crate::config::{DeltaSinkConfig, KafkaSinkConfig, ParquetSinkConfig, SinkConfig};
    let mut problems = Vec::new();
    for (name, sink) in &config.sinks {
        match sink {
            SinkConfig::Druid(druid) => {
                let key = format!("sinks.{name}");
                problems.extend(druid.problems(&key));
                let lake = &druid.lake;
                let partition_by = match config.sinks.get(lake) {
                    _ if lake.is_empty() => continue,
                    None => {
                        problems.push(format!("{key}.lake: no sink named {lake:?} under [sinks]"));
                        continue;
                    }
                    Some(SinkConfig::Parquet(_)) if druid.input == DruidBatchInput::Delta => {
                        problems.push(format!("{key}.input: \"delta\" reads a Delta table, but {lake:?} is a parquet sink"));
                        continue;
                    }
                    Some(SinkConfig::Delta(delta)) if delta.merges() => {
                        problems.push(format!(
                            "{key}.lake: {lake:?} merges by key (mode = \"merge\"): a merge rewrites files that hold rows Druid already loaded, so loading each commit's files would load those rows twice; feed Druid from an append-mode table"
                        ));
                        continue;
                    }
                    Some(SinkConfig::Delta(DeltaSinkConfig { partition_by, .. }))
                    | Some(SinkConfig::Parquet(ParquetSinkConfig { partition_by, .. })) => partition_by,
                    Some(_) => {
                        problems.push(format!("{key}.lake: {lake:?} is not a delta or parquet sink"));
                        continue;
                    }
                };
                if druid.input == DruidBatchInput::Delta {
                    continue; // Druid's Delta reader takes partition values from the log
                }
                for (field, column) in druid.schema.columns().into_iter().filter(|(_, c)| partition_by.iter().any(|p| p == c)) {
                    problems.push(format!(
                        "{key}.{field}: {column:?} is a partition column of {lake:?}: its values are in folder names, not in the files Druid reads (use input = \"delta\", or leave it out)"
                    ));
                }
            }
            SinkConfig::Kafka(KafkaSinkConfig { druid: Some(druid), .. }) => {
                problems.extend(druid.problems(&format!("sinks.{name}.druid")))
            }
            _ => {}
        }
    }
    for (source_name, source) in &config.sources {
        for (i, sink_name) in source.sinks.iter().enumerate() {
            let (key, schema) = match config.sinks.get(sink_name) {
                Some(SinkConfig::Druid(druid)) => {
                    // The task reads what the lake committed, so the lake must commit first.
                    let lake = &druid.lake;
                    let at = source.sinks.iter().position(|s| s == lake);
                    if !lake.is_empty() && at.is_none_or(|at| at > i) {
                        let listed = if at.is_some() { "lists after it" } else { "does not list" };
                        problems.push(format!(
                            "sources.{source_name}.sinks[{i}]: druid sink {sink_name:?} loads the commits of {lake:?}, which this source {listed}; list {lake:?} before {sink_name:?}"
                        ));
                    }
                    (format!("sinks.{sink_name}"), &druid.schema)
                }
                Some(SinkConfig::Kafka(KafkaSinkConfig { druid: Some(druid), .. })) => (format!("sinks.{sink_name}.druid"), &druid.schema),
                _ => continue,
            };
            if source.columns.is_empty() {
                continue; // inferred columns are checked when the sink starts
            }
            let metadata = [crate::config::SOURCE_FILE_COLUMN, crate::config::INGESTED_AT_COLUMN];
            for (field, column) in schema.columns() {
                let known = source.columns.contains_key(column) || (source.metadata_columns && metadata.contains(&column));
                if !known {
                    problems.push(format!("{key}.{field}: {column:?} is not a column of source {source_name:?}"));
                }
            }
        }
    }
    problems
}

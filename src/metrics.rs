//! Prometheus metrics, named by Prometheus conventions (`_total` counters, base units), labelled
//! by `source` and `sink` (bounded: names from the config), never by file name.

use prometheus::{Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};
use std::sync::LazyLock;

/// Every metric ingestd exports.
pub struct Metrics {
    pub registry: Registry,
    /// Files by outcome: committed, duplicate, quarantined, ignored.
    pub files: IntCounterVec,
    /// Rows committed, per sink.
    pub rows: IntCounterVec,
    /// Bytes of committed source files.
    pub bytes: IntCounterVec,
    /// Rows with a value that did not convert (nulled or skipped by policy).
    pub bad_rows: IntCounterVec,
    /// Values kept in the rescued column (did not convert, or a field the table lacks).
    pub values_rescued: IntCounterVec,
    /// Values of fields no column reads, left out (`schema.evolution = "none"`).
    pub fields_ignored: IntCounterVec,
    /// Rows a source's transform left out (a `WHERE`, an inner join without a match).
    pub rows_filtered: IntCounterVec,
    /// Columns added to the table by schema evolution.
    pub columns_added: IntCounterVec,
    /// Errors by kind (the `ErrorKind`s of the events module).
    pub errors: IntCounterVec,
    /// Time from the start of a batch to its last commit.
    pub batch_seconds: HistogramVec,
    /// Time one sink takes to commit one batch.
    pub commit_seconds: HistogramVec,
    /// Config reloads (SIGHUP) by outcome: applied, refused.
    pub reloads: IntCounterVec,
    /// Kafka messages by outcome: `sent` (acknowledged in a committed batch), `failed` (not
    /// delivered after librdkafka's retries; the batch is retried).
    pub kafka_messages: IntCounterVec,
    /// Unix time of the last successful commit, per sink.
    pub last_commit: GaugeVec,
    /// Files admitted and waiting for their batch.
    pub pending: IntGaugeVec,
    /// Age of the oldest waiting file.
    pub oldest_pending_seconds: GaugeVec,
    /// Batches some sinks hold and others cannot be given (left in flight; see the runbook).
    pub batches_stuck: IntGaugeVec,
    /// Druid batch tasks by outcome: `success` (a batch loaded), `failed_attempt` (a task ended
    /// FAILED; the next attempt follows), `gave_up` (`max_attempts` tasks failed).
    pub druid_tasks: IntCounterVec,
    /// Downloads of `http` and `s3` sources by outcome: `landed`, `not_modified`, `too_fresh`
    /// (changed less than `min_age` ago on the server), `retried`, `failed` (given up until the
    /// next poll).
    pub downloads: IntCounterVec,
    /// Pushed uploads by HTTP status code.
    pub uploads: IntCounterVec,
}

fn build() -> Result<Metrics, prometheus::Error> {
    let registry = Registry::new();
    let counter = |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, prometheus::Error> {
        let c = IntCounterVec::new(Opts::new(name, help), labels)?;
        registry.register(Box::new(c.clone()))?;
        Ok(c)
    };
    let files = counter("ingestd_files_total", "Source files by outcome.", &["source", "outcome"])?;
    let rows = counter("ingestd_rows_total", "Rows committed.", &["source", "sink"])?;
    let bytes = counter("ingestd_bytes_total", "Bytes of committed source files.", &["source"])?;
    let bad_rows = counter("ingestd_bad_rows_total", "Rows with a value that did not convert.", &["source"])?;
    let values_rescued = counter("ingestd_values_rescued_total", "Values kept in the rescued column.", &["source"])?;
    let fields_ignored = counter("ingestd_fields_ignored_total", "Values of fields no column reads, left out.", &["source"])?;
    let rows_filtered = counter("ingestd_rows_filtered_total", "Rows a source's transform left out.", &["source"])?;
    let columns_added = counter("ingestd_columns_added_total", "Columns added to the table by schema evolution.", &["source"])?;
    let errors = counter("ingestd_errors_total", "Errors by kind.", &["source", "kind"])?;
    let batch_seconds = HistogramVec::new(
        HistogramOpts::new("ingestd_batch_duration_seconds", "Time from the start of a batch to its last commit.")
            .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0]),
        &["source"],
    )?;
    registry.register(Box::new(batch_seconds.clone()))?;
    let commit_seconds = HistogramVec::new(
        HistogramOpts::new("ingestd_commit_duration_seconds", "Time one sink takes to commit one batch.")
            .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0]),
        &["source", "sink"],
    )?;
    registry.register(Box::new(commit_seconds.clone()))?;
    let reloads = counter("ingestd_config_reloads_total", "Config reloads (SIGHUP) by outcome.", &["outcome"])?;
    let kafka_messages = counter("ingestd_kafka_messages_total", "Kafka messages by outcome.", &["source", "sink", "outcome"])?;
    let last_commit =
        GaugeVec::new(Opts::new("ingestd_last_commit_timestamp_seconds", "Unix time of the last successful commit."), &["source", "sink"])?;
    registry.register(Box::new(last_commit.clone()))?;
    let pending = IntGaugeVec::new(Opts::new("ingestd_pending_files", "Files admitted and waiting for their batch."), &["source"])?;
    registry.register(Box::new(pending.clone()))?;
    let oldest_pending_seconds =
        GaugeVec::new(Opts::new("ingestd_oldest_pending_file_age_seconds", "Age of the oldest waiting file."), &["source"])?;
    registry.register(Box::new(oldest_pending_seconds.clone()))?;
    let batches_stuck =
        IntGaugeVec::new(Opts::new("ingestd_batches_stuck", "Batches some sinks hold and others cannot be given."), &["source"])?;
    registry.register(Box::new(batches_stuck.clone()))?;
    let build_info = IntGaugeVec::new(Opts::new("ingestd_build_info", "Build information; always 1."), &["version"])?;
    registry.register(Box::new(build_info.clone()))?;
    build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
    registry.register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))?;
    let druid_tasks = counter("ingestd_druid_tasks_total", "Druid batch tasks by outcome.", &["source", "sink", "outcome"])?;
    let downloads = counter("ingestd_downloads_total", "Downloads of http and s3 sources by outcome.", &["source", "outcome"])?;
    let uploads = counter("ingestd_uploads_total", "Pushed uploads by HTTP status code.", &["source", "code"])?;
    Ok(Metrics {
        registry,
        files,
        rows,
        bytes,
        bad_rows,
        values_rescued,
        fields_ignored,
        rows_filtered,
        columns_added,
        errors,
        batch_seconds,
        commit_seconds,
        reloads,
        kafka_messages,
        last_commit,
        pending,
        oldest_pending_seconds,
        batches_stuck,
        druid_tasks,
        downloads,
        uploads,
    })
}

/// The process's metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| match build() {
    Ok(metrics) => metrics,
    // Only a programming error (a duplicate name) can fail here; the unit test below builds it.
    Err(e) => unreachable!("metrics registry: {e}"),
});

impl Metrics {
    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_registry_builds_and_renders() {
        let metrics = super::build().unwrap();
        metrics.files.with_label_values(&["s", "committed"]).inc_by(3);
        let text = metrics.render();
        assert!(text.contains("ingestd_files_total{outcome=\"committed\",source=\"s\"} 3"), "{text}");
        assert!(text.contains("ingestd_build_info{version="), "{text}");
    }
}

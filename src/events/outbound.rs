//! What the sinks that talk to other services report beside their commits: Kafka deliveries,
//! Druid tasks and supervisor specs; and the daemon's own HTTP endpoint and push uploads.

use super::{ErrorKind, Event, count_error};
use crate::metrics::METRICS;
use crate::status::STATUS;
use tracing::{error, info};

/// Kafka messages of one batch, by outcome: `sent` (acknowledged in a committed batch) or
/// `failed` (not delivered after librdkafka's retries; the batch is retried).
pub struct KafkaMessages<'a> {
    pub source: &'a str,
    pub sink: &'a str,
    pub outcome: &'static str,
    pub count: u64,
}

impl Event for KafkaMessages<'_> {
    fn emit(self) {
        METRICS.kafka_messages.with_label_values(&[self.source, self.sink, self.outcome]).inc_by(self.count);
    }
}

/// Druid batch tasks by outcome: `success`, `failed_attempt`, `gave_up`.
pub struct DruidTasks<'a> {
    pub source: &'a str,
    pub sink: &'a str,
    pub outcome: &'static str,
    pub count: u64,
}

impl Event for DruidTasks<'_> {
    fn emit(self) {
        METRICS.druid_tasks.with_label_values(&[self.source, self.sink, self.outcome]).inc_by(self.count);
    }
}

/// A Druid supervisor spec was submitted, or its submission failed (`error`, retried after
/// `retry_in`). Its errors are shown as the sink's `last_error`, starting with `prefix`.
pub struct SupervisorSubmission<'a> {
    pub source: &'a str,
    pub sink: &'a str,
    pub prefix: &'a str,
    pub overlord: &'a str,
    pub outcome: Result<&'a str, (&'a dyn std::fmt::Display, std::time::Duration)>,
}

impl Event for SupervisorSubmission<'_> {
    fn emit(self) {
        let (source, sink, prefix) = (self.source, self.sink, self.prefix);
        match self.outcome {
            Ok(id) => {
                info!(%source, %sink, supervisor = %id, overlord = %self.overlord, "druid supervisor spec submitted");
                STATUS.sink(source, sink, |s| {
                    if s.last_error.as_deref().is_some_and(|e| e.starts_with(prefix)) {
                        s.last_error = None;
                    }
                });
            }
            Err((e, retry_in)) => {
                error!(%source, %sink, error = %e, retry_in = ?retry_in, "cannot submit the Druid supervisor spec");
                STATUS.sink(source, sink, |s| s.last_error = Some(format!("{prefix}{e}")));
            }
        }
    }
}

/// The HTTP endpoint could not listen; ingestion goes on without it.
pub struct HttpListenFailed<'a> {
    pub listen: std::net::SocketAddr,
    pub error: &'a std::io::Error,
}

impl Event for HttpListenFailed<'_> {
    fn emit(self) {
        error!(listen = %self.listen, error = %self.error, "cannot listen for /metrics; running without it");
        count_error("", ErrorKind::Http);
    }
}

/// A pushed upload was answered with `code` (`source` empty for an unknown source).
pub struct UploadAnswered<'a> {
    pub source: &'a str,
    pub code: &'a str,
}

impl Event for UploadAnswered<'_> {
    fn emit(self) {
        METRICS.uploads.with_label_values(&[self.source, self.code]).inc();
    }
}

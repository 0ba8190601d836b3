//! Configuration of the Apache Druid outputs: a Kafka supervisor spec (streaming, inside a Kafka
//! sink as `[sinks.NAME.druid]`) and batch tasks after each lake commit (`kind = "druid"`).
//! Both share [`DruidSchemaConfig`]: how rows become a Druid datasource. Defaults are in
//! [`super::defaults`] (`druid_*`).

mod granularity;
mod wiring;

use super::defaults;
use super::units::HumanDuration;
pub use granularity::Granularity;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
pub(super) use wiring::wiring_problems;

/// How the mapping's rows become a Druid datasource, and how to reach the Overlord.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DruidSchemaConfig {
    /// Base URL of the Overlord, e.g. `http://127.0.0.1:8081`; with `method = "sql"` the Router
    /// (`http://127.0.0.1:8888`), which serves SQL and forwards the task API to the Overlord.
    pub overlord: String,
    /// The Druid datasource the rows go to.
    pub datasource: String,
    /// The column holding each row's time (Druid's `__time`).
    pub timestamp_column: String,
    /// Druid `timestampSpec` format of a string or integer timestamp column (`auto`, `iso`,
    /// `millis`, `posix`, `micro`, `nano` or a Joda pattern). Date and timestamp columns need
    /// `auto` (the default): Kafka messages carry them as RFC 3339 text, Parquet as numbers.
    #[serde(default = "defaults::druid_timestamp_format")]
    pub timestamp_format: String,
    /// Columns stored as dimensions, in this order. Empty (default): every column except the
    /// timestamp column and the metrics' input columns.
    #[serde(default)]
    pub dimensions: Vec<String>,
    /// Metrics by name, e.g. `total = { kind = "longSum", column = "sale_price" }`.
    #[serde(default)]
    pub metrics: IndexMap<String, DruidMetric>,
    /// Roll rows with equal (truncated) time and dimensions up into one, aggregating metrics.
    #[serde(default)]
    pub rollup: bool,
    /// Time span of one segment: `HOUR`, `DAY` (default), `MONTH`, ... (Druid names).
    #[serde(default = "defaults::druid_segment_granularity")]
    pub segment_granularity: Granularity,
    /// Times are truncated to this: `NONE` (default, kept to the millisecond), `MINUTE`, ...
    #[serde(default = "defaults::druid_query_granularity")]
    pub query_granularity: Granularity,
    /// Basic-auth user (Druid basic security); needs `password_file`.
    #[serde(default)]
    pub user: Option<String>,
    /// File holding the basic-auth password (read at start; never written in the config, the
    /// logs or `Debug` output). Relative to the config file's folder.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Time limit of one HTTP request to the Overlord.
    #[serde(default = "defaults::druid_timeout")]
    pub timeout: HumanDuration,
    /// Further tries of a request that could not connect or got a 5xx answer; a 4xx answer is
    /// never retried.
    #[serde(default = "defaults::druid_retries")]
    pub retries: u32,
    /// Wait before the first retry; it doubles after each, up to 30 s.
    #[serde(default = "defaults::druid_retry_backoff")]
    pub retry_backoff: HumanDuration,
}

/// A Druid aggregator over one column (none for `count`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DruidMetric {
    /// The aggregator.
    pub kind: DruidMetricKind,
    /// The input column; `count` takes none, every other kind needs a numeric column.
    #[serde(default)]
    pub column: Option<String>,
}

/// Druid aggregator types (their Druid names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum DruidMetricKind {
    Count,
    LongSum,
    DoubleSum,
    LongMin,
    LongMax,
    DoubleMin,
    DoubleMax,
}

/// Streaming: a Kafka supervisor spec for the Kafka sink's topic, `[sinks.NAME.druid]`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DruidSupervisorConfig {
    /// The datasource and Overlord (same keys as a `kind = "druid"` sink).
    #[serde(flatten)]
    pub schema: DruidSchemaConfig,
    /// Post the spec to the Overlord at start-up and whenever the table's schema changes;
    /// otherwise it is only printed by `ingestd druid supervisor-spec SINK`.
    #[serde(default)]
    pub submit: bool,
    /// Druid `taskCount`: reading tasks per replica set.
    #[serde(default = "defaults::druid_one")]
    pub task_count: u32,
    /// Druid `replicas`: copies of each reading task.
    #[serde(default = "defaults::druid_one")]
    pub replicas: u32,
    /// Druid `taskDuration`: how long a task reads before it publishes its segments.
    #[serde(default = "defaults::druid_task_duration")]
    pub task_duration: HumanDuration,
    /// Druid `useEarliestOffset`: a new supervisor starts at the topic's beginning (default,
    /// so rows written before the supervisor existed are loaded) rather than its end.
    #[serde(default = "defaults::yes")]
    pub use_earliest_offset: bool,
}

/// Batch: a Druid task loading the files of each commit of a lake sink, `kind = "druid"`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DruidBatchConfig {
    /// The datasource and Overlord.
    #[serde(flatten)]
    pub schema: DruidSchemaConfig,
    /// The Delta or Parquet sink whose commits are loaded (a sink of the same source).
    pub lake: String,
    /// `native` (an `index_parallel` task) or `sql` (`INSERT ... EXTERN` through the Router).
    #[serde(default = "defaults::druid_batch_method")]
    pub method: DruidBatchMethod,
    /// How Druid reads the files: `local` (same paths, or under `base_url` when Druid mounts
    /// the lake elsewhere), `http` or `s3` (under `base_url`), or `delta` (the table itself).
    #[serde(default = "defaults::druid_batch_input")]
    pub input: DruidBatchInput,
    /// Where Druid finds the lake's root folder: `https://host/lake` for `http`,
    /// `s3://bucket/prefix` for `s3`, a folder for `local`; unused for `delta`.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Worker tasks of one load (`maxNumConcurrentSubTasks`; SQL: `maxNumTasks` - 1).
    #[serde(default = "defaults::druid_one")]
    pub parallelism: u32,
    /// First wait between two status polls of a task; it doubles, up to 30 s.
    #[serde(default = "defaults::druid_poll_interval")]
    pub poll_interval: HumanDuration,
    /// A task still running after this long is reported as failed to ingestd (it keeps
    /// running in Druid, and a later run polls it again).
    #[serde(default = "defaults::druid_task_timeout")]
    pub task_timeout: HumanDuration,
    /// Tasks tried per commit (each failed one under a new id) before giving up.
    #[serde(default = "defaults::druid_max_attempts")]
    pub max_attempts: u32,
}

/// How a batch task is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DruidBatchMethod {
    /// JSON `index_parallel` task, appended to the datasource.
    Native,
    /// SQL-based ingestion (multi-stage query): `INSERT INTO ... EXTERN(...)`.
    Sql,
}

/// The Druid input source a batch task reads the lake's files with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DruidBatchInput {
    Local,
    Http,
    S3,
    Delta,
}

impl DruidSchemaConfig {
    /// Makes `password_file` absolute against `base` (the config file's folder).
    pub fn resolve_paths(&mut self, base: &Path) {
        if let Some(file) = self.password_file.as_mut().filter(|f| f.is_relative()) {
            *file = base.join(&*file);
        }
    }

    /// Every problem of these keys, each starting with `key` (e.g. `sinks.events.druid`).
    pub fn problems(&self, key: &str) -> Vec<String> {
        let mut problems = Vec::new();
        let mut push = |field: &str, message: String| problems.push(format!("{key}.{field}: {message}"));
        match url::Url::parse(&self.overlord) {
            // Credentials in the URL would show in logs and errors: they go in user/password_file.
            Ok(u) if !u.username().is_empty() || u.password().is_some() => {
                push("overlord", "put credentials in user and password_file, not in the URL".to_string());
            }
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.has_host() => {}
            _ => push("overlord", format!("{:?} is not an http(s) URL (e.g. \"http://127.0.0.1:8081\")", self.overlord)),
        }
        if let Some(why) = invalid_druid_id(&self.datasource) {
            push("datasource", format!("{:?} {why}", self.datasource));
        }
        if self.timestamp_column.is_empty() {
            push("timestamp_column", "must name a column".to_string());
        }
        if self.timestamp_format.trim().is_empty() {
            push("timestamp_format", "must not be empty (default \"auto\")".to_string());
        }
        let mut seen = std::collections::HashSet::new();
        for d in &self.dimensions {
            if !seen.insert(d.as_str()) {
                push("dimensions", format!("{d:?} is listed twice"));
            }
            if *d == self.timestamp_column {
                push("dimensions", format!("{d:?} is the timestamp column"));
            }
        }
        for (name, metric) in &self.metrics {
            let field = format!("metrics.{name}");
            if name.is_empty() || name == "__time" || seen.contains(name.as_str()) {
                push(&field, "a metric name must be non-empty, not __time and not a dimension".to_string());
            }
            match (metric.kind, &metric.column) {
                (DruidMetricKind::Count, Some(_)) => push(&field, "count takes no column".to_string()),
                (DruidMetricKind::Count, None) | (_, Some(_)) => {}
                (kind, None) => push(&field, format!("{kind:?} needs a column")),
            }
        }
        if self.segment_granularity == Granularity::None {
            push("segment_granularity", "NONE is not a segment granularity (try \"DAY\")".to_string());
        }
        if self.query_granularity > self.segment_granularity {
            push(
                "query_granularity",
                format!("{} is coarser than segment_granularity {}", self.query_granularity.name(), self.segment_granularity.name()),
            );
        }
        if self.user.is_some() != self.password_file.is_some() {
            push("user", "user and password_file go together".to_string());
        }
        if self.timeout.0.is_zero() {
            push("timeout", "must be more than 0s".to_string());
        }
        if self.retries > 100 {
            push("retries", format!("{} is more than 100", self.retries));
        }
        problems
    }
}

impl DruidSupervisorConfig {
    /// Every problem of these keys, each starting with `key` (e.g. `sinks.events.druid`).
    pub fn problems(&self, key: &str) -> Vec<String> {
        let mut problems = self.schema.problems(key);
        for (field, value) in [("task_count", self.task_count), ("replicas", self.replicas)] {
            if value == 0 {
                problems.push(format!("{key}.{field}: must be at least 1"));
            }
        }
        if self.task_duration.0.as_secs() < 1 {
            problems.push(format!("{key}.task_duration: must be at least 1s"));
        }
        problems
    }
}

impl DruidBatchConfig {
    /// Every problem of these keys, each starting with `key` (e.g. `sinks.events_druid`).
    pub fn problems(&self, key: &str) -> Vec<String> {
        let mut problems = self.schema.problems(key);
        if self.lake.is_empty() {
            problems.push(format!("{key}.lake: name the Delta or Parquet sink whose commits are loaded"));
        }
        let base = self.base_url.as_deref();
        // Druid would store them in every task spec, readable in its console.
        if base.and_then(|b| url::Url::parse(b).ok()).is_some_and(|u| !u.username().is_empty() || u.password().is_some()) {
            problems.push(format!("{key}.base_url: must not contain credentials"));
        }
        let scheme_ok =
            |schemes: &[&str]| base.and_then(|b| url::Url::parse(b).ok()).is_some_and(|u| schemes.contains(&u.scheme()) && u.has_host());
        match self.input {
            DruidBatchInput::Http if !scheme_ok(&["http", "https"]) => problems
                .push(format!("{key}.base_url: input = \"http\" needs the http(s) URL the lake's root is served under, got {base:?}")),
            DruidBatchInput::S3 if !scheme_ok(&["s3"]) => {
                problems.push(format!("{key}.base_url: input = \"s3\" needs the s3://bucket/prefix holding the lake's root, got {base:?}"))
            }
            DruidBatchInput::Local if base.is_some_and(|b| !b.starts_with('/')) => {
                problems.push(format!("{key}.base_url: input = \"local\" takes an absolute folder, got {base:?}"));
            }
            _ => {}
        }
        if self.parallelism == 0 {
            problems.push(format!("{key}.parallelism: must be at least 1"));
        }
        if self.poll_interval.0.is_zero() {
            problems.push(format!("{key}.poll_interval: must be more than 0s"));
        }
        if !(1..=100).contains(&self.max_attempts) {
            problems.push(format!("{key}.max_attempts: {} is outside 1..=100", self.max_attempts));
        }
        problems
    }
}

/// Why `id` cannot name a Druid datasource or task (Druid's `IdUtils.validateId` rules), if so.
pub(crate) fn invalid_druid_id(id: &str) -> Option<&'static str> {
    if id.is_empty() {
        Some("must not be empty")
    } else if id.starts_with('.') {
        Some("must not start with '.'")
    } else if id.contains('/') {
        Some("must not contain '/'")
    } else if id.chars().any(|c| (c.is_whitespace() && c != ' ') || c.is_control() || ('\u{80}'..'\u{9f}').contains(&c)) {
        Some("must not contain control characters or whitespace other than spaces")
    } else {
        None
    }
}

//! A client of Druid's task and supervisor API: submit a supervisor spec, submit a batch task
//! and follow it to its end, retrying what a crash or a failed task left undone.
//!
//! API reference: <https://druid.apache.org/docs/latest/api-reference/tasks-api>,
//! <https://druid.apache.org/docs/latest/api-reference/supervisor-api>,
//! <https://druid.apache.org/docs/latest/api-reference/sql-ingestion-api>.

use super::{SpecError, Task, TaskEndpoint};
use crate::config::{DruidBatchConfig, DruidSchemaConfig, Secret};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::time::{Duration, Instant};

/// Longest wait between two retries or two polls.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum OverlordError {
    #[error("druid: cannot read the password file {path}: {message}")]
    Password { path: String, message: String },
    #[error("druid: cannot build the HTTP client for {url}: {message}")]
    Client { url: String, message: String },
    #[error("druid: {method} {url}: no answer after {attempts} attempt(s): {message}")]
    Unreachable { method: String, url: String, attempts: u32, message: String },
    #[error("druid: {method} {url}: HTTP {status} after {attempts} attempt(s): {message}")]
    ServerError { method: String, url: String, status: u16, attempts: u32, message: String },
    #[error("druid: {method} {url}: refused with HTTP {status}: {message}")]
    Rejected { method: String, url: String, status: u16, message: String },
    #[error("druid: {url}: unexpected answer: {message}")]
    BadAnswer { url: String, message: String },
    #[error("druid: task {task_id} is unknown to the Overlord ({url})")]
    TaskNotFound { task_id: String, url: String },
    #[error("druid: task {task_id} failed, the last of {attempts} attempt(s): {message}")]
    TaskFailed { task_id: String, attempts: u32, message: String },
    #[error("druid: task {task_id} still running after {waited:?}; it is polled again on the next try")]
    TaskTimeout { task_id: String, waited: Duration },
    #[error(transparent)]
    Spec(#[from] SpecError),
}

impl OverlordError {
    /// A short label for metrics (`unreachable`, `rejected`, `task_failed`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            OverlordError::Password { .. } | OverlordError::Client { .. } | OverlordError::Spec(_) => "config",
            OverlordError::Unreachable { .. } => "unreachable",
            OverlordError::ServerError { .. } => "server_error",
            OverlordError::Rejected { .. } => "rejected",
            OverlordError::BadAnswer { .. } => "bad_answer",
            OverlordError::TaskNotFound { .. } => "task_not_found",
            OverlordError::TaskFailed { .. } => "task_failed",
            OverlordError::TaskTimeout { .. } => "task_timeout",
        }
    }
}

/// What the Overlord did with a submitted task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submitted {
    Accepted,
    /// A task with this id exists: submitted before (e.g. before a crash). Not an error.
    AlreadyExists,
}

/// A task's state (`statusCode` of `GET /druid/indexer/v1/task/{id}/status`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskState {
    Running,
    Success,
    /// Failed, with Druid's `errorMsg`.
    Failed(String),
    NotFound,
}

/// How a batch task is followed; from [`DruidBatchConfig`].
#[derive(Debug, Clone, PartialEq)]
pub struct TaskPolicy {
    pub poll_interval: Duration,
    pub timeout: Duration,
    pub max_attempts: u32,
}

impl TaskPolicy {
    pub fn of(config: &DruidBatchConfig) -> TaskPolicy {
        TaskPolicy { poll_interval: config.poll_interval.0, timeout: config.task_timeout.0, max_attempts: config.max_attempts.max(1) }
    }
}

/// A batch task that ended in SUCCESS.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskOutcome {
    /// The id of the task that succeeded.
    pub task_id: String,
    /// Its attempt number (1 = first).
    pub attempts: u32,
    /// Some attempt had been submitted before (found by its id, e.g. after a restart).
    pub resumed: bool,
    /// The attempts that failed before, with Druid's error message.
    pub failures: Vec<(String, String)>,
}

/// A client of one Overlord (or Router).
#[derive(Debug)]
pub struct Overlord {
    base: String,
    http: reqwest::Client,
    auth: Option<(String, Secret)>,
    retries: u32,
    backoff: Duration,
}

impl Overlord {
    /// A client for the configured Overlord; reads `password_file` now.
    pub fn new(config: &DruidSchemaConfig) -> Result<Overlord, OverlordError> {
        let base = config.overlord.trim_end_matches('/').to_string();
        let auth = match (&config.user, &config.password_file) {
            (Some(user), Some(path)) => {
                let err = |message: String| OverlordError::Password { path: path.display().to_string(), message };
                let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
                let password = text.trim_end_matches(['\n', '\r']).to_string();
                if password.is_empty() {
                    return Err(err("the file is empty".to_string()));
                }
                Some((user.clone(), Secret::new(password)))
            }
            _ => None,
        };
        let http = reqwest::Client::builder()
            .timeout(config.timeout.0)
            .connect_timeout(config.timeout.0.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| OverlordError::Client { url: base.clone(), message: chain(&e) })?;
        Ok(Overlord { base, http, auth, retries: config.retries, backoff: config.retry_backoff.0 })
    }

    /// The base URL requests go to.
    pub fn url(&self) -> &str {
        &self.base
    }

    /// Posts a supervisor spec (creates the supervisor, or updates it with a new schema);
    /// returns the supervisor id Druid answers with.
    pub async fn submit_supervisor(&self, spec: &Value) -> Result<String, OverlordError> {
        let (url, status, body) = self.send(Method::POST, "/druid/indexer/v1/supervisor", Some(spec)).await?;
        if !status.is_success() {
            return Err(rejected("POST", &url, status, &body));
        }
        let answer: Value = parse(&url, &body)?;
        answer["id"].as_str().map(str::to_string).ok_or_else(|| bad(&url, format!("no \"id\" in {body}")))
    }

    /// Posts a batch task. A task id Druid already has is [`Submitted::AlreadyExists`].
    pub async fn submit_task(&self, task: &Task) -> Result<Submitted, OverlordError> {
        let (path, id_key) = match task.endpoint {
            TaskEndpoint::Native => ("/druid/indexer/v1/task", "task"),
            TaskEndpoint::Sql => ("/druid/v2/sql/task", "taskId"),
        };
        let (url, status, body) = self.send(Method::POST, path, Some(&task.body)).await?;
        if !status.is_success() {
            // Druid answers 400 "Task[id] already exists" (older versions end it with "!"). A
            // wrong match is safe: polling a task that does not exist ends in TaskNotFound.
            if (status.is_client_error() || status.is_server_error()) && body.to_ascii_lowercase().contains("already exists") {
                return Ok(Submitted::AlreadyExists);
            }
            return Err(rejected("POST", &url, status, &body));
        }
        let answer: Value = parse(&url, &body)?;
        match answer[id_key].as_str() {
            Some(id) if id == task.id => Ok(Submitted::Accepted),
            // Another id would defeat the duplicate check: say so rather than poll a stranger.
            Some(id) => Err(bad(&url, format!("the task was named {id:?}, not {:?}", task.id))),
            None => Err(bad(&url, format!("no {id_key:?} in {body}"))),
        }
    }

    /// The state of task `id`.
    pub async fn task_state(&self, id: &str) -> Result<TaskState, OverlordError> {
        let path = format!("/druid/indexer/v1/task/{}/status", super::spec::encode_segment(id));
        let (url, status, body) = self.send(Method::GET, &path, None).await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(TaskState::NotFound);
        }
        if !status.is_success() {
            return Err(rejected("GET", &url, status, &body));
        }
        let answer: Value = parse(&url, &body)?;
        let s = &answer["status"];
        let code = s["statusCode"].as_str().or(s["status"].as_str());
        match code {
            Some("RUNNING" | "WAITING" | "PENDING") => Ok(TaskState::Running),
            Some("SUCCESS") => Ok(TaskState::Success),
            Some("FAILED") => Ok(TaskState::Failed(s["errorMsg"].as_str().unwrap_or("no error message").to_string())),
            _ => Err(bad(&url, format!("no task status in {body}"))),
        }
    }

    /// Runs a batch task to its end: submits attempt 1 (`make_task(1)`), or finds it submitted
    /// before a crash, and polls it; a FAILED attempt is followed by the next one under its own
    /// id (a failed task publishes nothing, so retrying loads nothing twice). After a restart
    /// the same chain is walked again: each attempt that exists is polled, not re-run.
    pub async fn run_to_end(
        &self,
        policy: &TaskPolicy,
        make_task: impl Fn(u32) -> Result<Task, SpecError>,
    ) -> Result<TaskOutcome, OverlordError> {
        let mut failures: Vec<(String, String)> = Vec::new();
        let mut resumed = false;
        let max = policy.max_attempts.max(1);
        for attempt in 1..=max {
            let task = make_task(attempt)?;
            if self.submit_task(&task).await? == Submitted::AlreadyExists {
                tracing::info!(task = %task.id, "druid: task submitted before; following it");
                resumed = true;
            }
            match self.wait(&task.id, policy).await? {
                End::Success => return Ok(TaskOutcome { task_id: task.id, attempts: attempt, resumed, failures }),
                End::Failed(message) => {
                    tracing::warn!(task = %task.id, attempt, %message, "druid: task failed");
                    failures.push((task.id, message));
                }
            }
        }
        let (task_id, message) = failures.pop().unwrap_or_default();
        Err(OverlordError::TaskFailed { task_id, attempts: max, message })
    }

    /// Polls task `id` until SUCCESS or FAILED, the wait doubling from `poll_interval`.
    async fn wait(&self, id: &str, policy: &TaskPolicy) -> Result<End, OverlordError> {
        let started = Instant::now();
        let cap = MAX_BACKOFF.max(policy.poll_interval);
        let mut delay = policy.poll_interval;
        loop {
            match self.task_state(id).await? {
                TaskState::Running => {}
                TaskState::NotFound => return Err(OverlordError::TaskNotFound { task_id: id.to_string(), url: self.base.clone() }),
                TaskState::Success => return Ok(End::Success),
                TaskState::Failed(message) => return Ok(End::Failed(message)),
            }
            let waited = started.elapsed();
            if waited >= policy.timeout {
                return Err(OverlordError::TaskTimeout { task_id: id.to_string(), waited });
            }
            tokio::time::sleep(delay.min(policy.timeout - waited)).await;
            delay = (delay * 2).min(cap);
        }
    }

    /// One request, retried with backoff while the Overlord cannot be reached or answers 5xx.
    /// Returns the URL, status and body of the answer.
    async fn send(&self, method: Method, path: &str, body: Option<&Value>) -> Result<(String, StatusCode, String), OverlordError> {
        let url = format!("{}{path}", self.base);
        let mut delay = self.backoff;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = self.http.request(method.clone(), &url);
            if let Some((user, password)) = &self.auth {
                request = request.basic_auth(user, Some(password.expose()));
            }
            if let Some(body) = body {
                request = request.json(body);
            }
            let failure = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    match response.text().await {
                        // A 5xx naming an existing task is final: retrying cannot change it.
                        Ok(text) if !status.is_server_error() || text.to_ascii_lowercase().contains("already exists") => {
                            return Ok((url, status, text));
                        }
                        Ok(text) => Failure::Status(status, druid_message(&text)),
                        Err(e) => Failure::Connect(chain(&e)),
                    }
                }
                Err(e) => Failure::Connect(chain(&e)),
            };
            if attempt > self.retries {
                let (method, attempts) = (method.to_string(), attempt);
                return Err(match failure {
                    Failure::Status(status, message) => {
                        OverlordError::ServerError { method, url, status: status.as_u16(), attempts, message }
                    }
                    Failure::Connect(message) => OverlordError::Unreachable { method, url, attempts, message },
                });
            }
            let why = match &failure {
                Failure::Status(status, message) => format!("HTTP {status}: {message}"),
                Failure::Connect(message) => message.clone(),
            };
            tracing::warn!(%url, attempt, retry_in = ?delay, %why, "druid: Overlord request failed; retrying");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(MAX_BACKOFF);
        }
    }
}

/// How a try of a request went wrong.
enum Failure {
    Status(StatusCode, String),
    Connect(String),
}

/// How a followed task ended.
enum End {
    Success,
    Failed(String),
}

/// The message of a Druid error answer: `errorMessage` (DruidException), `error` (older
/// versions) or `message`, else the text itself (shortened).
fn druid_message(body: &str) -> String {
    if let Ok(Value::Object(o)) = serde_json::from_str::<Value>(body) {
        let error = o.get("error").and_then(Value::as_str).filter(|e| *e != "druidException");
        if let Some(m) = o.get("errorMessage").and_then(Value::as_str).or(error).or(o.get("message").and_then(Value::as_str)) {
            return m.to_string();
        }
    }
    let text = body.trim();
    match text.char_indices().nth(300) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None if text.is_empty() => "(empty answer)".to_string(),
        None => text.to_string(),
    }
}

fn rejected(method: &str, url: &str, status: StatusCode, body: &str) -> OverlordError {
    OverlordError::Rejected { method: method.to_string(), url: url.to_string(), status: status.as_u16(), message: druid_message(body) }
}

fn bad(url: &str, message: String) -> OverlordError {
    OverlordError::BadAnswer { url: url.to_string(), message }
}

fn parse(url: &str, body: &str) -> Result<Value, OverlordError> {
    serde_json::from_str(body).map_err(|e| bad(url, format!("not JSON ({e}): {}", druid_message(body))))
}

/// An error with its causes ("error sending request: connection refused").
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

//! A mock Druid Overlord/Router enforcing the documented API, for the Druid tests: only the
//! documented paths and methods (404/405 otherwise), JSON bodies only (415 otherwise), the
//! shape of supervisor specs, `index_parallel` tasks and SQL task bodies checked (400 with a
//! Druid-style error otherwise), 400 on a duplicate task id, and task status RUNNING -> SUCCESS,
//! or FAILED when told. Everything accepted is recorded.
//!
//! Documented API: https://druid.apache.org/docs/latest/api-reference/tasks-api,
//! .../supervisor-api, .../sql-ingestion-api; spec shapes: .../ingestion/ingestion-spec,
//! .../ingestion/kafka-ingestion, .../ingestion/native-batch, .../ingestion/input-sources.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode, Uri, header};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

mod shapes;
use shapes::{check_native, check_sql, check_supervisor};

/// A task the mock holds.
#[derive(Debug, Clone)]
pub struct MockTask {
    pub body: Value,
    pub kind: &'static str,
    pub datasource: String,
    pub polls: u32,
    pub fails_with: Option<String>,
}

#[derive(Default)]
pub struct MockState {
    pub supervisors: Vec<Value>,
    pub tasks: BTreeMap<String, MockTask>,
    /// (method, path, status) of every request, in order.
    pub requests: Vec<(String, String, u16)>,
    fail_next: VecDeque<String>,
    unavailable: u32,
    running_polls: u32,
    auth: Option<String>,
}

type Shared = Arc<Mutex<MockState>>;
type Reply = (StatusCode, [(header::HeaderName, &'static str); 1], String);

pub struct DruidMock {
    pub addr: std::net::SocketAddr,
    pub state: Shared,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for DruidMock {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl DruidMock {
    /// A mock on a free loopback port.
    pub async fn start() -> DruidMock {
        DruidMock::start_on("127.0.0.1:0").await
    }

    /// A mock on this address (to bring an Overlord "up" where a client is already retrying).
    pub async fn start_on(addr: &str) -> DruidMock {
        let state: Shared = Arc::new(Mutex::new(MockState { running_polls: 1, ..MockState::default() }));
        let app = axum::Router::new()
            .route("/druid/indexer/v1/supervisor", post(supervisor))
            .route("/druid/indexer/v1/task", post(native_task))
            .route("/druid/v2/sql/task", post(sql_task))
            .route("/druid/indexer/v1/task/{id}/status", get(task_status))
            .fallback(not_found)
            .layer(axum::middleware::from_fn_with_state(state.clone(), gate))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind mock Overlord");
        let addr = listener.local_addr().expect("mock address");
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        DruidMock { addr, state, server }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn with<T>(&self, f: impl FnOnce(&mut MockState) -> T) -> T {
        f(&mut self.state.lock().expect("mock state"))
    }

    /// Requires `Authorization: Basic base64(user:password)` from now on.
    pub fn require_auth(&self, user: &str, password: &str) {
        let token = base64(format!("{user}:{password}").as_bytes());
        self.with(|s| s.auth = Some(format!("Basic {token}")));
    }
    /// The next `n` tasks submitted end FAILED with `message`.
    pub fn fail_next_tasks(&self, n: usize, message: &str) {
        self.with(|s| s.fail_next.extend(std::iter::repeat_n(message.to_string(), n)));
    }
    /// The next `n` requests get 503 (an Overlord that is not the leader yet).
    pub fn set_unavailable(&self, n: u32) {
        self.with(|s| s.unavailable = n);
    }
    /// Status polls a task answers RUNNING before its end state.
    pub fn set_running_polls(&self, n: u32) {
        self.with(|s| s.running_polls = n);
    }
    pub fn supervisors(&self) -> Vec<Value> {
        self.with(|s| s.supervisors.clone())
    }
    pub fn task(&self, id: &str) -> Option<MockTask> {
        self.with(|s| s.tasks.get(id).cloned())
    }
    pub fn task_ids(&self) -> Vec<String> {
        self.with(|s| s.tasks.keys().cloned().collect())
    }
    /// How many requests went to paths starting with `prefix`.
    pub fn requests_to(&self, prefix: &str) -> usize {
        self.with(|s| s.requests.iter().filter(|r| r.1.starts_with(prefix)).count())
    }
    /// The statuses answered to requests to paths starting with `prefix`.
    pub fn statuses(&self, prefix: &str) -> Vec<u16> {
        self.with(|s| s.requests.iter().filter(|r| r.1.starts_with(prefix)).map(|r| r.2).collect())
    }
}

/// Records every request; answers 503 while unavailable, 401 without the required auth and
/// 415 to a POST that is not JSON.
async fn gate(State(state): State<Shared>, request: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    use axum::response::IntoResponse;
    let (method, path) = (request.method().clone(), request.uri().path().to_string());
    let early = {
        let mut s = state.lock().expect("mock state");
        let auth = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
        let json =
            request.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/json"));
        if s.unavailable > 0 {
            s.unavailable -= 1;
            Some(reply(StatusCode::SERVICE_UNAVAILABLE, json!({"error": "Overlord is not the leader yet"})))
        } else if s.auth.is_some() && s.auth.as_deref() != auth {
            Some((StatusCode::UNAUTHORIZED, [(header::CONTENT_TYPE, "text/plain")], "Unauthorized".to_string()))
        } else if method == Method::POST && !json {
            Some((StatusCode::UNSUPPORTED_MEDIA_TYPE, [(header::CONTENT_TYPE, "text/plain")], "Unsupported Media Type".to_string()))
        } else {
            None
        }
    };
    let response = match early {
        Some(r) => r.into_response(),
        None => next.run(request).await,
    };
    let status = response.status().as_u16();
    state.lock().expect("mock state").requests.push((method.to_string(), path, status));
    response
}

fn reply(status: StatusCode, body: Value) -> Reply {
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string())
}

/// Druid's error answer (a `DruidException` as JSON).
fn druid_error(code: &str, message: String) -> Reply {
    let category = if code == "invalidInput" || code == "entryAlreadyExists" { "INVALID_INPUT" } else { "NOT_FOUND" };
    let body = json!({"error": "druidException", "errorCode": code, "persona": "USER", "category": category, "errorMessage": message, "context": {}});
    reply(StatusCode::BAD_REQUEST, body)
}

async fn not_found(method: Method, uri: Uri) -> Reply {
    (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "text/plain")], format!("no resource for {method} {}", uri.path()))
}

fn parse(body: &Bytes) -> Result<Value, Reply> {
    serde_json::from_slice(body).map_err(|e| druid_error("invalidInput", format!("Cannot parse the request body: {e}")))
}

async fn supervisor(State(state): State<Shared>, body: Bytes) -> Reply {
    let spec = match parse(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    match check_supervisor(&spec) {
        Ok(datasource) => {
            state.lock().expect("mock state").supervisors.push(spec);
            reply(StatusCode::OK, json!({ "id": datasource }))
        }
        Err(message) => druid_error("invalidInput", message),
    }
}

async fn native_task(State(state): State<Shared>, body: Bytes) -> Reply {
    let task = match parse(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let datasource = match check_native(&task) {
        Ok(d) => d,
        Err(message) => return druid_error("invalidInput", message),
    };
    let id = task["id"].as_str().map_or_else(|| format!("index_parallel_{datasource}_{}", rand_suffix()), str::to_string);
    match add_task(&state, &id, task, "index_parallel", datasource) {
        Ok(()) => reply(StatusCode::OK, json!({ "task": id })),
        Err(r) => r,
    }
}

async fn sql_task(State(state): State<Shared>, body: Bytes) -> Reply {
    let request = match parse(&body) {
        Ok(v) => v,
        Err(r) => return r,
    };
    let datasource = match check_sql(&request) {
        Ok(d) => d,
        Err(message) => return druid_error("invalidInput", message),
    };
    let query_id = request["context"]["sqlQueryId"].as_str().map_or_else(rand_suffix, str::to_string);
    let id = format!("query-{query_id}");
    match add_task(&state, &id, request, "query_controller", datasource) {
        Ok(()) => reply(StatusCode::OK, json!({ "taskId": id, "state": "RUNNING" })),
        Err(r) => r,
    }
}

fn add_task(state: &Shared, id: &str, body: Value, kind: &'static str, datasource: String) -> Result<(), Reply> {
    let mut s = state.lock().expect("mock state");
    if s.tasks.contains_key(id) {
        return Err(druid_error("entryAlreadyExists", format!("Task[{id}] already exists")));
    }
    let fails_with = s.fail_next.pop_front();
    s.tasks.insert(id.to_string(), MockTask { body, kind, datasource, polls: 0, fails_with });
    Ok(())
}

async fn task_status(State(state): State<Shared>, Path(id): Path<String>) -> Reply {
    let mut s = state.lock().expect("mock state");
    let running_polls = s.running_polls;
    let Some(task) = s.tasks.get_mut(&id) else {
        return reply(StatusCode::NOT_FOUND, json!({ "task": id }));
    };
    task.polls += 1;
    let (code, error) = match (task.polls <= running_polls, &task.fails_with) {
        (true, _) => ("RUNNING", Value::Null),
        (false, Some(message)) => ("FAILED", json!(message)),
        (false, None) => ("SUCCESS", Value::Null),
    };
    reply(
        StatusCode::OK,
        json!({"task": id, "status": {
            "id": id, "groupId": id, "type": task.kind, "createdTime": "2024-01-01T00:00:00.000Z",
            "queueInsertionTime": "1970-01-01T00:00:00.000Z", "statusCode": code, "status": code,
            "runnerStatusCode": if code == "RUNNING" { "RUNNING" } else { "NONE" }, "duration": -1,
            "location": {"host": null, "port": -1, "tlsPort": -1}, "dataSource": task.datasource, "errorMsg": error,
        }}),
    )
}

fn rand_suffix() -> String {
    format!("{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos()))
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            out.push(if i <= chunk.len() { ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char } else { '=' });
        }
    }
    out
}

//! The push endpoint: `PUT /v1/sources/{source}/files/{name}` streams an upload into the
//! source's folder (through its [`Landing`], so the folder source only ever sees complete
//! files) and answers with the content's BLAKE3 hash and whether it was new or a duplicate.
//!
//! A pushed file goes on exactly like a dropped one: the folder source notices the rename,
//! admission checks it against the ledger, and the sinks commit it. The endpoint's own duplicate
//! check (the ledger, plus the uploads this process landed that the ledger does not know yet)
//! only saves landing a copy and tells the client; exactly-once is still the ledger's job.
//!
//! Bearer tokens come from the source's `push.tokens_file`, read at every request so they
//! rotate without a restart; they are compared in constant time and never logged or echoed.
//! See `docs/push-api.md` and `docs/openapi.yaml`.

use crate::config::Config;
use crate::discover::FileFilter;
use crate::discover::landing::{Landing, PartialError, check_name};
use crate::events::{self, UploadAnswered};
use crate::ledger::LedgerHandle;
use axum::Router;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::put;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tracing::{error, info};

mod auth;
mod body;
#[cfg(test)]
mod tests;

use auth::authorize;
use body::{BodyReader, declared_length};

/// An upload that sends nothing for this long is abandoned (408): a stalled client must not
/// hold a partial file and a connection for ever.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// A refused request's unread body is read and thrown away, up to this much and this long,
/// before the answer: closing a connection with unread bytes resets it, and the client (still
/// sending) would see a broken pipe instead of the answer.
const DRAIN_BYTES: u64 = 16 << 20;
const DRAIN_TIME: Duration = Duration::from_secs(5);

/// Uploads received at once, over all sources; more wait for none and get 503, so open files
/// and buffers stay bounded whatever the clients do.
const MAX_CONCURRENT: usize = 64;

/// The accepted-uploads map is pruned of entries the ledger has caught up with once it holds
/// this many (and then again each time it doubles).
const PRUNE_AT: usize = 1024;

/// What the push endpoint needs: the sources that accept uploads (replaceable on reload), the
/// ledger (for duplicates) and the uploads this process landed that the ledger may not know
/// yet. Cheap to clone.
#[derive(Clone)]
pub struct PushState {
    inner: Arc<Inner>,
}

struct Inner {
    targets: RwLock<HashMap<String, Arc<Target>>>,
    ledger: LedgerHandle,
    accepted: Mutex<Accepted>,
    slots: tokio::sync::Semaphore,
}

/// One source that accepts uploads.
struct Target {
    root: PathBuf,
    tokens_file: PathBuf,
    max_size: u64,
    /// The folder source's include/exclude: a name it would never pick up is refused.
    filter: FileFilter,
}

/// Content this process landed by push, keyed by (source, hash): between the rename and the
/// moment the ledger records the file (at its batch), only this knows the content is queued.
#[derive(Default)]
struct Accepted {
    files: HashMap<(String, String), AcceptedFile>,
    prune_at: usize,
}

struct AcceptedFile {
    name: String,
    size: u64,
    /// Reserved by an upload still renaming it into place.
    landing: bool,
}

impl PushState {
    /// The push targets of `config` (sources with a `push` section) over the daemon's ledger.
    pub fn new(config: &Config, ledger: LedgerHandle) -> PushState {
        let state = PushState {
            inner: Arc::new(Inner {
                targets: RwLock::new(HashMap::new()),
                ledger,
                accepted: Mutex::new(Accepted { files: HashMap::new(), prune_at: PRUNE_AT }),
                slots: tokio::sync::Semaphore::new(MAX_CONCURRENT),
            }),
        };
        state.set_targets(config);
        state
    }

    /// Replaces the push targets with those of `config` (after a reload): a source that lost
    /// its `push` section, or was removed, answers 404 from now on. Uploads under way finish
    /// against the target they started with.
    pub fn set_targets(&self, config: &Config) {
        let mut targets = HashMap::new();
        for (name, source) in &config.sources {
            let Some(push) = &source.push else { continue };
            match FileFilter::new(&source.include, &source.exclude) {
                Ok(filter) => {
                    targets.insert(
                        name.clone(),
                        Arc::new(Target {
                            root: source.path.clone(),
                            tokens_file: push.tokens_file.clone(),
                            max_size: push.max_size.0,
                            filter,
                        }),
                    );
                }
                // Config validation refuses bad patterns; should one get here, the source takes
                // no uploads rather than landing files it would never read.
                Err(e) => error!(source = %name, error = %e, "bad include/exclude pattern; push endpoint off for this source"),
            }
        }
        *self.inner.targets.write().unwrap_or_else(|e| e.into_inner()) = targets;
    }

    /// Names of the sources that accept uploads, sorted.
    pub fn sources(&self) -> Vec<String> {
        let mut names: Vec<String> = self.inner.targets.read().unwrap_or_else(|e| e.into_inner()).keys().cloned().collect();
        names.sort();
        names
    }

    /// The routes of the push endpoint.
    pub fn router(self) -> Router {
        Router::new().route("/v1/sources/{source}/files/{name}", put(upload).fallback(method_not_allowed)).with_state(self)
    }

    fn target(&self, source: &str) -> Option<Arc<Target>> {
        self.inner.targets.read().unwrap_or_else(|e| e.into_inner()).get(source).cloned()
    }

    /// Who already holds this content: the ledger (committed or in flight), else an upload of
    /// this process still waiting in the folder. `Err` when the ledger cannot be read.
    async fn holder_of(&self, source: &str, target: &Target, hash: &str) -> Result<Option<String>, String> {
        let ledger = self.inner.ledger.clone();
        let (source_owned, hash_owned) = (source.to_string(), hash.to_string());
        let known = ledger.call(move |ledger| ledger.holder_of(&source_owned, &hash_owned)).await.map_err(|e| e.to_string())?;
        let key = (source.to_string(), hash.to_string());
        let mut accepted = self.accepted();
        if let Some((name, _committed)) = known {
            accepted.files.remove(&key);
            return Ok(Some(name));
        }
        Ok(accepted.files.get(&key).filter(|a| a.still_queued(target)).map(|a| a.name.clone()))
    }

    /// Reserves `hash` for `name` unless another upload got there first (then its name).
    fn reserve(&self, source: &str, target: &Target, hash: &str, name: &str, size: u64) -> Option<String> {
        let key = (source.to_string(), hash.to_string());
        let mut accepted = self.accepted();
        if let Some(other) = accepted.files.get(&key).filter(|a| a.still_queued(target)) {
            return Some(other.name.clone());
        }
        // The name now holds this content: an older upload under it is replaced.
        accepted.files.retain(|(s, _), a| !(s == source && a.name == name));
        accepted.files.insert(key, AcceptedFile { name: name.to_string(), size, landing: true });
        None
    }

    /// Marks a reservation landed, or drops it when the rename failed.
    fn settle(&self, source: &str, hash: &str, landed: bool) {
        let key = (source.to_string(), hash.to_string());
        let mut accepted = self.accepted();
        if landed {
            if let Some(file) = accepted.files.get_mut(&key) {
                file.landing = false;
            }
        } else {
            accepted.files.remove(&key);
        }
    }

    fn accepted(&self) -> std::sync::MutexGuard<'_, Accepted> {
        self.inner.accepted.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets uploads the ledger now knows, or whose file left the folder (quarantined,
    /// archived, replaced), once the map has grown; amortised over many uploads.
    async fn prune(&self) {
        let candidates: Vec<(String, String)> = {
            let accepted = self.accepted();
            if accepted.files.len() < accepted.prune_at {
                return;
            }
            accepted.files.iter().filter(|(_, a)| !a.landing).map(|(k, _)| k.clone()).collect()
        };
        let ledger = self.inner.ledger.clone();
        let known = ledger
            .call(move |ledger| {
                Ok(candidates
                    .into_iter()
                    .filter(|(source, hash)| matches!(ledger.holder_of(source, hash), Ok(Some(_))))
                    .collect::<Vec<_>>())
            })
            .await
            .unwrap_or_default();
        let targets = self.inner.targets.read().unwrap_or_else(|e| e.into_inner()).clone();
        let mut accepted = self.accepted();
        for key in known {
            accepted.files.remove(&key);
        }
        accepted.files.retain(|(source, _), a| a.landing || targets.get(source).is_some_and(|t| a.still_queued(t)));
        accepted.prune_at = (accepted.files.len() * 2).max(PRUNE_AT);
    }
}

impl AcceptedFile {
    /// Still in the folder as landed (not yet moved away by quarantine or replaced by a file of
    /// another size), or still being renamed into it.
    fn still_queued(&self, target: &Target) -> bool {
        self.landing || std::fs::metadata(target.root.join(&self.name)).is_ok_and(|m| m.is_file() && m.len() == self.size)
    }
}

/// Why an upload was refused. Messages name the file and never hold a token.
#[derive(Debug, thiserror::Error)]
enum UploadError {
    #[error("no source {0:?} accepts uploads")]
    UnknownSource(String),
    #[error("bad request path: {0}")]
    BadPath(String),
    #[error("a valid bearer token is required to push to source {0:?}")]
    Unauthorized(String),
    #[error("the tokens of source {0:?} cannot be read; try again later")]
    Tokens(String),
    #[error(transparent)]
    BadName(#[from] crate::discover::landing::BadName),
    #[error("file name {0:?}: the source's include/exclude patterns (or its rule against temporary names) would never pick it up")]
    Filtered(String),
    #[error("{name:?}: Content-Length or Transfer-Encoding: chunked is required")]
    LengthRequired { name: String },
    #[error("{name:?}: bad Content-Length header")]
    BadLength { name: String },
    #[error("{name:?}: the body is empty")]
    Empty { name: String },
    #[error("{name:?}: larger than the limit of {limit} bytes")]
    TooLarge { name: String, limit: u64 },
    #[error("{name:?}: upload cut off after {received} bytes: {reason}")]
    CutOff { name: String, received: u64, reason: String },
    #[error("{name:?}: nothing received for {}s; upload abandoned", IDLE_TIMEOUT.as_secs())]
    Idle { name: String },
    #[error("{name:?}: the ledger cannot be read, so whether this content is new is unknown; try again later")]
    Ledger { name: String },
    #[error("{name:?}: {MAX_CONCURRENT} uploads are under way already; try again later")]
    Busy { name: String },
    #[error("{name:?}: cannot store the file; try again later")]
    Storage { name: String },
    #[error("method not allowed: use PUT")]
    Method,
}

impl UploadError {
    fn status(&self) -> StatusCode {
        match self {
            UploadError::UnknownSource(_) => StatusCode::NOT_FOUND,
            UploadError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            UploadError::BadPath(_) | UploadError::BadName(_) | UploadError::Filtered(_) | UploadError::BadLength { .. } => {
                StatusCode::BAD_REQUEST
            }
            UploadError::Empty { .. } | UploadError::CutOff { .. } => StatusCode::BAD_REQUEST,
            UploadError::LengthRequired { .. } => StatusCode::LENGTH_REQUIRED,
            UploadError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            UploadError::Idle { .. } => StatusCode::REQUEST_TIMEOUT,
            UploadError::Tokens(_) | UploadError::Ledger { .. } | UploadError::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            UploadError::Storage { .. } => StatusCode::INTERNAL_SERVER_ERROR,
            UploadError::Method => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    fn into_response(self) -> Response {
        let status = self.status();
        let mut response = json_response(status, &serde_json::json!({ "error": self.to_string() }));
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if status == StatusCode::METHOD_NOT_ALLOWED {
            response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("PUT"));
        }
        response
    }
}

/// A successful upload.
#[derive(Debug, serde::Serialize)]
struct Uploaded {
    source: String,
    name: String,
    size: u64,
    blake3: String,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    duplicate_of: Option<String>,
}

fn json_response(status: StatusCode, value: &impl serde::Serialize) -> Response {
    let body = serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"error\": \"cannot encode the answer: {e}\"}}"));
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// A JSON 404 for every path no route takes (a mistyped URL, a `..` the client did not
/// normalise), so clients of the API always get `{"error": ...}`.
pub async fn not_found(uri: axum::http::Uri) -> Response {
    json_response(StatusCode::NOT_FOUND, &serde_json::json!({ "error": format!("no endpoint at {}", uri.path()) }))
}

async fn method_not_allowed() -> Response {
    UploadError::Method.into_response()
}

/// `PUT /v1/sources/{source}/files/{name}`: counts and logs the answer, never the token.
async fn upload(
    State(state): State<PushState>,
    path: Result<Path<(String, String)>, PathRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut body = BodyReader::new(body, &headers);
    let (source, name) = match path {
        Ok(Path(parts)) => parts,
        Err(e) => {
            let e = UploadError::BadPath(e.body_text());
            info!(code = 400, reason = %e, "upload refused");
            events::emit(UploadAnswered { source: "", code: "400" });
            body.drain().await;
            return e.into_response();
        }
    };
    let target = state.target(&source);
    // Only configured names become label values: arbitrary ones would grow the metric for ever.
    let label = if target.is_some() { source.as_str() } else { "" };
    let file = name.escape_debug().to_string();
    let result = match target {
        None => Err(UploadError::UnknownSource(source.clone())),
        Some(target) => receive(&state, &source, &name, &target, &headers, &mut body).await,
    };
    if result.is_err() {
        body.drain().await;
    }
    let (status, response) = match result {
        Ok(uploaded) => {
            let status = if uploaded.duplicate_of.is_some() { StatusCode::OK } else { StatusCode::CREATED };
            info!(source = %source, file = %file, bytes = uploaded.size, status = uploaded.status, blake3 = %uploaded.blake3, duplicate_of = ?uploaded.duplicate_of, "upload");
            (status, json_response(status, &uploaded))
        }
        Err(e) => {
            let status = e.status();
            match &e {
                UploadError::Storage { .. } | UploadError::Ledger { .. } | UploadError::Tokens(_) => {}
                _ => info!(source = %source.escape_debug(), file = %file, code = status.as_u16(), reason = %e, "upload refused"),
            }
            (status, e.into_response())
        }
    };
    events::emit(UploadAnswered { source: label, code: status.as_str() });
    state.prune().await;
    response
}

/// Checks the request, streams the body into a partial file and lands it unless its content is
/// already held.
async fn receive(
    state: &PushState,
    source: &str,
    name: &str,
    target: &Target,
    headers: &HeaderMap,
    body: &mut BodyReader,
) -> Result<Uploaded, UploadError> {
    authorize(source, target, headers).await?;
    check_name(name, false)?;
    if !target.filter.accepts(name) {
        return Err(UploadError::Filtered(name.to_string()));
    }
    let declared = declared_length(name, headers)?;
    if declared.is_some_and(|len| len > target.max_size) {
        return Err(UploadError::TooLarge { name: name.to_string(), limit: target.max_size });
    }
    let _slot = state.inner.slots.try_acquire().map_err(|_| UploadError::Busy { name: name.to_string() })?;
    let storage = |what: &str, e: &dyn std::fmt::Display| {
        error!(source = %source, file = %name.escape_debug(), error = %e, "{what}");
        UploadError::Storage { name: name.to_string() }
    };
    let landing =
        Landing::at(&target.root).map_err(|e| storage("cannot open the landing folder", &format!("{}: {e}", target.root.display())))?;
    let mut partial = landing.start(name, target.max_size).await.map_err(|e| match e {
        PartialError::Name(bad) => UploadError::BadName(bad),
        e => storage("cannot start the upload", &e),
    })?;
    body.write_into(&mut partial, name, target.max_size).await?;
    let size = partial.written();
    if size == 0 {
        return Err(UploadError::Empty { name: name.to_string() });
    }
    let hash = partial.hash();
    let answer = |duplicate_of: Option<String>| Uploaded {
        source: source.to_string(),
        name: name.to_string(),
        size,
        blake3: hash.clone(),
        status: if duplicate_of.is_some() { "duplicate" } else { "new" },
        duplicate_of,
    };
    let held = state.holder_of(source, target, &hash).await.map_err(|e| {
        error!(source = %source, file = %name.escape_debug(), error = %e, "cannot read the ledger for an upload");
        UploadError::Ledger { name: name.to_string() }
    })?;
    if let Some(holder) = held.or_else(|| state.reserve(source, target, &hash, name, size)) {
        // `partial` drops here: its temp file goes, nothing lands.
        return Ok(answer(Some(holder)));
    }
    match partial.finish(declared, None).await {
        Ok(_) => {
            state.settle(source, &hash, true);
            Ok(answer(None))
        }
        Err(e) => {
            state.settle(source, &hash, false);
            match e {
                // The framing already holds the body to its Content-Length; should it not, the
                // client sent less than it announced.
                PartialError::Length { received, expected } => {
                    Err(UploadError::CutOff { name: name.to_string(), received, reason: format!("{expected} bytes announced") })
                }
                e => Err(storage("cannot land the upload", &e)),
            }
        }
    }
}

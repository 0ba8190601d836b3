//! Requests of the `http` source: the client, listing pages, and conditional downloads
//! streamed into the landing folder; which failures are worth a retry.

use crate::config::{FetchConfig, HttpKind, ListingKind};
use crate::discover::landing::{Landing, PartialError};
use crate::discover::remote::{Attempt, RemoteVersion, with_retries};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, DATE, ETAG, HeaderMap, HeaderName, HeaderValue, IF_MODIFIED_SINCE, IF_NONE_MATCH, LAST_MODIFIED};
use std::time::SystemTime;
use url::Url;

/// Largest listing page read; a listing is held in memory, files never are.
const MAX_LISTING_BYTES: usize = 64 << 20;

/// What downloads share: the client, the landing folder and the limits.
pub(super) struct Fetcher {
    pub source: String,
    pub client: reqwest::Client,
    pub landing: Landing,
    pub fetch: FetchConfig,
    /// The source's `min_age`: a file the server changed more recently may still be being
    /// written on the server's side.
    pub min_age: std::time::Duration,
}

/// A file the listing names, accepted by the name checks and the filter.
pub(super) struct Listed {
    pub name: String,
    pub url: Url,
    pub version: RemoteVersion,
}

/// A listing page as received.
pub(super) struct Page {
    /// The URL it was served from, after redirects: links resolve against it.
    pub url: Url,
    pub json: bool,
    pub body: Vec<u8>,
}

/// How a download ended (failures are the `Err` of [`Fetcher::download`]).
pub(super) enum Fetched {
    Landed {
        version: RemoteVersion,
        bytes: u64,
    },
    NotModified,
    /// Changed less than `min_age` ago by the server's clock: left for a later poll.
    TooFresh,
}

impl Fetcher {
    /// Reads one listing page whole (up to [`MAX_LISTING_BYTES`]).
    pub async fn read_page(&self, url: &Url, forced: ListingKind) -> Result<Page, Attempt> {
        let mut response = self.client.get(url.clone()).send().await.map_err(transport)?;
        if !response.status().is_success() {
            return Err(status_error(response.status()));
        }
        let json = match forced {
            ListingKind::Json => true,
            ListingKind::Html => false,
            ListingKind::Auto => {
                response.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|t| t.to_ascii_lowercase().contains("json"))
            }
        };
        let url = response.url().clone();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > MAX_LISTING_BYTES {
                return Err(Attempt::Fatal(format!("listing larger than {MAX_LISTING_BYTES} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Page { url, json, body })
    }

    /// Downloads one file, retried as configured; `Err` is the last reason it failed.
    pub async fn download(&self, file: &Listed, known: Option<&RemoteVersion>) -> Result<Fetched, String> {
        with_retries(&self.source, &self.fetch, &file.name, || self.attempt(file, known)).await
    }

    /// One conditional GET, streamed into the landing folder.
    async fn attempt(&self, file: &Listed, known: Option<&RemoteVersion>) -> Result<Fetched, Attempt> {
        let mut request = self.client.get(file.url.clone());
        if let Some(etag) = known.and_then(|k| k.etag.as_deref()) {
            request = request.header(IF_NONE_MATCH, etag);
        }
        if let Some(modified) = known.and_then(|k| k.last_modified.as_deref()) {
            request = request.header(IF_MODIFIED_SINCE, modified);
        }
        let mut response = request.send().await.map_err(transport)?;
        let status = response.status();
        if status == StatusCode::NOT_MODIFIED {
            return Ok(Fetched::NotModified);
        }
        if !status.is_success() {
            return Err(status_error(status));
        }
        let header = |name: HeaderName| response.headers().get(name).and_then(|v: &HeaderValue| v.to_str().ok()).map(str::to_string);
        let mut version = RemoteVersion { etag: header(ETAG), last_modified: header(LAST_MODIFIED), size: response.content_length() };
        // A server that ignores conditional requests still shows the same version.
        if known.is_some_and(|k| k.listed_as(&version)) {
            return Ok(Fetched::NotModified);
        }
        // Judged on the server's own clock (Date against Last-Modified), so clock skew between
        // the machines does not matter.
        let server_now = header(DATE).as_deref().and_then(parse_http_date);
        let changed = version.last_modified.as_deref().and_then(parse_http_date);
        if let (Some(now), Some(changed)) = (server_now, changed)
            && now.duration_since(changed).unwrap_or_default() < self.min_age
        {
            return Ok(Fetched::TooFresh);
        }
        let limit = self.fetch.max_file_size.0;
        if let Some(length) = response.content_length().filter(|&l| l > limit) {
            return Err(Attempt::Fatal(format!("{length} bytes, more than fetch.max_file_size ({limit})")));
        }
        let expected = response.content_length().or(file.version.size);
        let modified = version.last_modified.as_deref().and_then(parse_http_date);
        let mut partial = self.landing.start(&file.name, limit).await.map_err(partial_error)?;
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            partial.write(&chunk).await.map_err(partial_error)?;
        }
        let landed = partial.finish(expected, modified).await.map_err(partial_error)?;
        version.size = Some(landed.size);
        Ok(Fetched::Landed { version, bytes: landed.size })
    }
}

/// The client of an http source: timeouts from `fetch`, headers from `http.headers` and
/// `http.headers_from_env` (read now), their values marked sensitive, and redirects followed
/// only within the same origin (so the headers never go to another host).
pub(super) fn client(kind: &HttpKind) -> Result<reqwest::Client, String> {
    let mut headers = HeaderMap::new();
    let mut add = |name: &str, value: &str, key: &str| -> Result<(), String> {
        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| format!("{key}: {name:?} is not a header name"))?;
        // The value is never part of the message.
        let mut value = HeaderValue::from_str(value).map_err(|_| format!("{key}: the value is not a valid header value"))?;
        value.set_sensitive(true);
        headers.insert(header, value);
        Ok(())
    };
    for (name, value) in &kind.http.headers {
        add(name, value.expose(), &format!("http.headers.{name}"))?;
    }
    for (name, variable) in &kind.http.headers_from_env {
        let key = format!("http.headers_from_env.{name}");
        let value = std::env::var(variable).map_err(|_| format!("{key}: environment variable {variable} is not set"))?;
        add(name, &value, &key)?;
    }
    let policy = reqwest::redirect::Policy::custom(|attempt| {
        let same_origin = attempt.previous().first().is_some_and(|first| first.origin() == attempt.url().origin());
        if attempt.previous().len() > 10 {
            attempt.error("more than 10 redirects")
        } else if same_origin {
            attempt.follow()
        } else {
            attempt.stop()
        }
    });
    reqwest::Client::builder()
        .default_headers(headers)
        .connect_timeout(kind.fetch.timeout.0)
        .read_timeout(kind.fetch.timeout.0)
        .redirect(policy)
        .user_agent(concat!("ingestd/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("HTTP client: {}", describe(e)))
}

/// A reqwest error as text: its causes, never its URL (a query string may hold a token).
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// Transport errors (connect, timeout, body cut short) are worth retrying; a request that
/// cannot be built or a redirect loop is not.
fn transport(e: reqwest::Error) -> Attempt {
    if e.is_builder() || e.is_redirect() { Attempt::Fatal(describe(e)) } else { Attempt::Retry(describe(e)) }
}

/// 5xx, 429 and 408 are passing; other statuses (4xx, a redirect to another origin) are not.
pub(super) fn status_error(status: StatusCode) -> Attempt {
    let reason = if status.is_redirection() {
        format!("HTTP {status} (redirects to another origin are not followed)")
    } else {
        format!("HTTP {status}")
    };
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::REQUEST_TIMEOUT {
        Attempt::Retry(reason)
    } else {
        Attempt::Fatal(reason)
    }
}

/// A body cut short or a local write error is retried; a bad name or a file too large is not.
pub(super) fn partial_error(e: PartialError) -> Attempt {
    match e {
        PartialError::Name(_) | PartialError::TooLarge { .. } => Attempt::Fatal(e.to_string()),
        PartialError::Length { .. } | PartialError::Io(_) => Attempt::Retry(e.to_string()),
    }
}

/// An HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`, what Last-Modified carries).
pub(super) fn parse_http_date(text: &str) -> Option<SystemTime> {
    chrono::DateTime::parse_from_rfc2822(text.trim()).ok().map(SystemTime::from)
}

/// A URL as logged: scheme, host, port and path; the query (which may hold a token) is left out.
pub(super) fn safe_url(url: &Url) -> String {
    let mut shown = url.clone();
    let had_query = shown.query().is_some();
    shown.set_query(None);
    shown.set_fragment(None);
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    if had_query { format!("{shown}?…") } else { shown.to_string() }
}

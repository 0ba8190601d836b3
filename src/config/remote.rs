//! Configuration of what comes from or goes to another machine: HTTP listings, pushed uploads
//! and S3-compatible buckets. [`HttpKind`] and [`S3Kind`] are the keys of the `http` and `s3`
//! kinds of source.

use super::defaults;
use super::secret::Secret;
use super::units::{ByteSize, HumanDuration};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::PathBuf;

/// The keys of a source of `kind = "http"`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HttpKind {
    /// The listing to poll: a directory index (`http(s)://host/dir/`) or a JSON manifest.
    pub url: String,
    /// Polling and downloading (`[sources.NAME.fetch]`).
    pub fetch: FetchConfig,
    /// Listing format and headers (`[sources.NAME.http]`).
    pub http: HttpSourceConfig,
}

impl HttpKind {
    /// Problems with these keys, each named under `key` (the source's).
    pub fn problems(&self, key: &str) -> Vec<String> {
        let mut problems = Vec::new();
        match url::Url::parse(&self.url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.username().is_empty() && u.password().is_none() => {}
            Ok(_) => problems.push(format!("{key}.url: must be http:// or https:// without credentials (send them in http.headers)")),
            Err(e) => problems.push(format!("{key}.url: not a URL: {e}")),
        }
        problems.extend(self.http.problems(&format!("{key}.http")));
        problems.extend(self.fetch.problems(&format!("{key}.fetch")));
        problems
    }
}

/// The keys of a source of `kind = "s3"`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct S3Kind {
    /// The bucket prefix to list: `s3://bucket/prefix`.
    pub url: String,
    /// Polling and downloading (`[sources.NAME.fetch]`).
    pub fetch: FetchConfig,
    /// Endpoint, region and credentials of the bucket (`[sources.NAME.s3]`).
    pub s3: S3Config,
}

impl S3Kind {
    /// Problems with these keys, each named under `key` (the source's).
    pub fn problems(&self, key: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if let Err(e) = parse_s3_url(&self.url) {
            problems.push(format!("{key}.url: {e}"));
        }
        problems.extend(self.s3.problems(&format!("{key}.s3")));
        problems.extend(self.fetch.problems(&format!("{key}.fetch")));
        problems
    }
}

/// How an HTTP source reads its `url` and authenticates.
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSourceConfig {
    /// What `url` answers with: `auto` (by Content-Type), `html` (a directory index: Python's
    /// http.server, nginx autoindex, Apache) or `json` (an array of objects with `url` and
    /// optional `size`, `etag`, `last_modified`).
    #[serde(default)]
    pub listing: ListingKind,
    /// Headers sent with every request (e.g. an API key). Values never show in logs or status.
    #[serde(default)]
    pub headers: IndexMap<String, Secret>,
    /// Headers whose value is read from an environment variable at start:
    /// `{ Authorization = "PULLS_AUTH" }`.
    #[serde(default)]
    pub headers_from_env: IndexMap<String, String>,
}

impl HttpSourceConfig {
    /// Problems with these keys, each named under `key`.
    pub fn problems(&self, key: &str) -> Vec<String> {
        let mut problems = Vec::new();
        for (header, variable) in &self.headers_from_env {
            if std::env::var(variable).is_err() {
                problems.push(format!("{key}.headers_from_env.{header}: environment variable {variable} is not set"));
            }
        }
        problems
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ListingKind {
    /// By the answer's Content-Type: JSON is a manifest, anything else a directory index.
    #[default]
    Auto,
    /// A directory index: the links of the page.
    Html,
    /// A JSON manifest: an array of objects with `url`.
    Json,
}

/// Where an S3-compatible server is and how to sign requests to it. Unset keys fall back to
/// the standard AWS environment variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_ENDPOINT_URL`).
#[derive(Debug, Clone, PartialEq, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    /// Endpoint of a self-hosted server (`http://minio:9000`); unset means AWS S3 itself.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Region; unset means `AWS_REGION`, else `us-east-1`.
    #[serde(default)]
    pub region: Option<String>,
    /// Path-style requests (`endpoint/bucket/key`), which most self-hosted servers expect.
    /// Default: on when `endpoint` is set.
    #[serde(default)]
    pub path_style: Option<bool>,
    /// Access key; unset means `AWS_ACCESS_KEY_ID`. Goes with `secret_access_key`.
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// Secret key; unset means `AWS_SECRET_ACCESS_KEY`. Never shown or logged.
    #[serde(default)]
    pub secret_access_key: Option<Secret>,
    /// Session token of temporary credentials; unset means `AWS_SESSION_TOKEN`. Never shown or
    /// logged.
    #[serde(default)]
    pub session_token: Option<Secret>,
}

impl S3Config {
    /// The options object_store and deltalake take (`aws_*` keys). Environment variables fill
    /// what is unset (object_store and deltalake read them themselves).
    pub fn storage_options(&self) -> HashMap<String, String> {
        let mut options = HashMap::new();
        let mut set = |key: &str, value: Option<&str>| {
            if let Some(value) = value {
                options.insert(key.to_string(), value.to_string());
            }
        };
        set("aws_endpoint", self.endpoint.as_deref());
        set("aws_region", self.region.as_deref());
        set("aws_access_key_id", self.access_key_id.as_deref());
        set("aws_secret_access_key", self.secret_access_key.as_ref().map(Secret::expose));
        set("aws_session_token", self.session_token.as_ref().map(Secret::expose));
        let endpoint = self.endpoint.clone().or_else(|| std::env::var("AWS_ENDPOINT_URL").ok());
        if endpoint.as_deref().is_some_and(|e| e.starts_with("http://")) {
            set("aws_allow_http", Some("true"));
        }
        let path_style = self.path_style.unwrap_or(endpoint.is_some());
        set("aws_virtual_hosted_style_request", Some(if path_style { "false" } else { "true" }));
        options
    }

    /// Problems with these keys, each named under `key`.
    pub fn problems(&self, key: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(endpoint) = &self.endpoint {
            match url::Url::parse(endpoint) {
                Ok(u) if !matches!(u.scheme(), "http" | "https") => {
                    problems.push(format!("{key}.endpoint: {endpoint:?} must be http:// or https://"))
                }
                Ok(u) if !u.username().is_empty() || u.password().is_some() => {
                    problems.push(format!("{key}.endpoint: put credentials in access_key_id and secret_access_key, not in the URL"))
                }
                Ok(_) => {}
                Err(e) => problems.push(format!("{key}.endpoint: {endpoint:?} is not a URL: {e}")),
            }
        }
        if self.access_key_id.is_some() != self.secret_access_key.is_some() {
            problems.push(format!("{key}: access_key_id and secret_access_key go together"));
        }
        problems
    }
}

/// `s3://bucket/prefix` split into bucket and prefix (no leading or trailing `/`).
pub fn parse_s3_url(url: &str) -> Result<(String, String), String> {
    let rest = url.strip_prefix("s3://").ok_or_else(|| format!("{url:?} must start with s3://"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(format!("{url:?} names no bucket"));
    }
    Ok((bucket.to_string(), prefix.trim_matches('/').to_string()))
}

/// The push endpoint of a source: `PUT /v1/sources/{source}/files/{name}`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PushConfig {
    /// File of accepted bearer tokens, one per line (`#` comments). Read at every request, so
    /// tokens rotate without a restart; never written in the config, never logged.
    pub tokens_file: PathBuf,
    /// Largest body accepted; a larger upload is refused with 413.
    #[serde(default = "defaults::push_max_size")]
    pub max_size: ByteSize,
}

/// Polling and downloading, for `http` and `s3` sources.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FetchConfig {
    /// How often the listing is read again.
    #[serde(default = "defaults::poll_interval")]
    pub poll_interval: HumanDuration,
    /// Downloads running at once.
    #[serde(default = "defaults::fetch_concurrency")]
    pub concurrency: usize,
    /// A request that connects, answers or sends nothing for this long fails (and is retried).
    #[serde(default = "defaults::fetch_timeout")]
    pub timeout: HumanDuration,
    /// Attempts after the first, with exponential backoff and jitter, before a file waits for
    /// the next poll.
    #[serde(default = "defaults::fetch_retries")]
    pub retries: u32,
    /// First backoff; doubled at each retry, up to a minute.
    #[serde(default = "defaults::fetch_backoff")]
    pub backoff: HumanDuration,
    /// Larger files are not downloaded (logged and counted as errors).
    #[serde(default = "defaults::fetch_max_file_size")]
    pub max_file_size: ByteSize,
}

impl FetchConfig {
    /// Problems with these keys, each named under `key`.
    pub fn problems(&self, key: &str) -> Vec<String> {
        let mut problems = Vec::new();
        if !(1..=64).contains(&self.concurrency) {
            problems.push(format!("{key}.concurrency: {} is outside 1..=64", self.concurrency));
        }
        if self.poll_interval.0.is_zero() {
            problems.push(format!("{key}.poll_interval: must be more than 0"));
        }
        problems
    }
}

impl Default for FetchConfig {
    fn default() -> Self {
        FetchConfig {
            poll_interval: defaults::poll_interval(),
            concurrency: defaults::fetch_concurrency(),
            timeout: defaults::fetch_timeout(),
            retries: defaults::fetch_retries(),
            backoff: defaults::fetch_backoff(),
            max_file_size: defaults::fetch_max_file_size(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_urls_split_into_bucket_and_prefix() {
        assert_eq!(parse_s3_url("s3://b/a/c/").unwrap(), ("b".into(), "a/c".into()));
        assert_eq!(parse_s3_url("s3://b").unwrap(), ("b".into(), String::new()));
        assert!(parse_s3_url("s3:///x").is_err());
        assert!(parse_s3_url("http://b/x").is_err());
    }

    #[test]
    fn storage_options_name_aws_keys_and_path_style_follows_the_endpoint() {
        let s3 = S3Config {
            endpoint: Some("http://127.0.0.1:9000".into()),
            access_key_id: Some("k".into()),
            secret_access_key: Some(Secret::new("s")),
            ..Default::default()
        };
        let options = s3.storage_options();
        assert_eq!(options["aws_endpoint"], "http://127.0.0.1:9000");
        assert_eq!(options["aws_allow_http"], "true");
        assert_eq!(options["aws_virtual_hosted_style_request"], "false");
        assert_eq!(options["aws_secret_access_key"], "s");
        assert!(!format!("{s3:?}").contains("\"s\""));
    }
}

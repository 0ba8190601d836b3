//! An S3-compatible bucket prefix as a source (the MinIO-landing set-up): every poll lists the
//! prefix, and each object whose ETag differs from the one last downloaded under its key is
//! downloaded into the landing folder. Key + ETag say whether to download; the content hash
//! (at admission) says whether the rows are new.

use super::filter::FileFilter;
use super::landing::{Landing, PartialError, check_name};
use super::remote::{Attempt, Checkpoint, PollReport, Remote, RemoteError, RemoteVersion, with_retries};
use crate::config::{FetchConfig, S3Kind, SourceConfig, parse_s3_url};
use async_trait::async_trait;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as ObjectPath;
use object_store::{ClientConfigKey, GetOptions, ObjectMeta, ObjectStore, RetryConfig};
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tracing::warn;

pub struct S3Source {
    source: String,
    /// `s3://bucket/prefix`, for messages.
    url: String,
    store: Arc<AmazonS3>,
    prefix: Option<ObjectPath>,
    recursive: bool,
    filter: FileFilter,
    fetch: FetchConfig,
    landing: Landing,
    checkpoint: Checkpoint,
}

impl S3Source {
    /// `kind` is the source's `s3` keys.
    pub fn new(source: &str, config: &SourceConfig, kind: &S3Kind, state_dir: &Path) -> Result<S3Source, RemoteError> {
        let setup = |reason: String| RemoteError::Setup { name: source.to_string(), reason };
        let url = kind.url.clone();
        let (bucket, prefix) = parse_s3_url(&url).map_err(setup)?;
        // No short whole-request timeout, which would cut large files: a download that stalls
        // for `fetch.timeout` fails instead (see `download`).
        let store =
            build_store(&bucket, &kind.s3.storage_options(), kind.fetch.timeout.0, Duration::from_secs(7 * 24 * 3600)).map_err(setup)?;
        Ok(S3Source {
            source: source.to_string(),
            url,
            store: Arc::new(store),
            prefix: (!prefix.is_empty()).then(|| ObjectPath::from(prefix)),
            recursive: config.recursive,
            filter: FileFilter::new(&config.include, &config.exclude).map_err(|e| setup(e.to_string()))?,
            fetch: kind.fetch.clone(),
            landing: Landing::open(&config.path).map_err(|e| setup(format!("landing folder {}: {e}", config.path.display())))?,
            checkpoint: Checkpoint::load(state_dir, source),
        })
    }

    /// The object's name below the prefix, if it is one this source takes.
    fn name_of(&self, meta: &ObjectMeta) -> Option<String> {
        let key = meta.location.as_ref();
        let name = match &self.prefix {
            Some(prefix) => key.strip_prefix(prefix.as_ref())?.strip_prefix('/')?,
            None => key,
        };
        if !self.recursive && name.contains('/') {
            return None;
        }
        if let Err(e) = check_name(name, true) {
            warn!(source = %self.source, key, error = %e, "object skipped");
            return None;
        }
        self.filter.accepts(name).then(|| name.to_string())
    }
}

/// An S3 client for `bucket`: ingestd's options (`aws_*` keys) over the AWS environment
/// variables, at most 2 retries of its own (callers retry whole transfers), and the given
/// connect and whole-request timeouts. Shared with the Parquet sink's bucket mode.
pub(crate) fn build_store(
    bucket: &str,
    options: &std::collections::HashMap<String, String>,
    connect_timeout: Duration,
    request_timeout: Duration,
) -> Result<AmazonS3, String> {
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    for (key, value) in options {
        if let Ok(key) = AmazonS3ConfigKey::from_str(key) {
            builder = builder.with_config(key, value.clone());
        }
    }
    // Set as keys: replacing the client options would drop `aws_allow_http` set above.
    let seconds = |d: Duration| format!("{}s", d.as_secs().max(1));
    builder = builder
        .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout), seconds(connect_timeout))
        .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::Timeout), seconds(request_timeout));
    let retry = RetryConfig { max_retries: 2, retry_timeout: connect_timeout, ..Default::default() };
    builder.with_retry(retry).build().map_err(|e| format!("S3 client for bucket {bucket}: {e}"))
}

#[async_trait]
impl Remote for S3Source {
    async fn poll(&mut self) -> Result<PollReport, RemoteError> {
        let listing_error = |reason: String| RemoteError::Listing { name: self.source.clone(), location: self.url.clone(), reason };
        let store = self.store.clone();
        let prefix = self.prefix.clone();
        let objects: Vec<ObjectMeta> = with_retries(&self.source, &self.fetch, "listing", || {
            let store = store.clone();
            let prefix = prefix.clone();
            async move { store.list(prefix.as_ref()).try_collect().await.map_err(|e| Attempt::Retry(e.to_string())) }
        })
        .await
        .map_err(listing_error)?;
        let mut report = PollReport { listed: objects.len(), ..Default::default() };
        let wanted: Vec<(String, ObjectMeta)> = objects
            .into_iter()
            .filter_map(|meta| Some((self.name_of(&meta)?, meta)))
            .filter(|(name, meta)| self.checkpoint.get(name).is_none_or(|known| !known.listed_as(&version_of(meta))))
            .collect();
        let downloads = futures::stream::iter(wanted.into_iter().map(|(name, meta)| {
            let (source, fetch, store, landing) = (self.source.clone(), self.fetch.clone(), self.store.clone(), self.landing.clone());
            async move {
                let result = with_retries(&source, &fetch, &name, || download(&store, &landing, &fetch, &name, &meta)).await;
                (name, meta, result)
            }
        }))
        .buffer_unordered(self.fetch.concurrency.max(1));
        futures::pin_mut!(downloads);
        while let Some((name, meta, result)) = downloads.next().await {
            match result {
                Ok(bytes) => report.landed(&self.source, &mut self.checkpoint, &name, version_of(&meta), bytes),
                Err(reason) => report.failed(&self.source, &name, &reason),
            }
        }
        Ok(report)
    }
}

fn version_of(meta: &ObjectMeta) -> RemoteVersion {
    RemoteVersion { etag: meta.e_tag.clone(), last_modified: Some(meta.last_modified.to_rfc3339()), size: Some(meta.size) }
}

/// One attempt at downloading `meta` into the landing folder; returns the bytes landed. The
/// GET asks for the listed ETag, so an object replaced meanwhile is not mixed up with it.
async fn download(store: &AmazonS3, landing: &Landing, fetch: &FetchConfig, name: &str, meta: &ObjectMeta) -> Result<u64, Attempt> {
    let limit = fetch.max_file_size.0;
    if meta.size > limit {
        return Err(Attempt::Fatal(format!("{} bytes, over fetch.max_file_size ({limit})", meta.size)));
    }
    let options = GetOptions { if_match: meta.e_tag.clone(), ..Default::default() };
    let got = store.get_opts(&meta.location, options).await.map_err(|e| match e {
        object_store::Error::NotFound { .. } => Attempt::Fatal("deleted since it was listed".to_string()),
        object_store::Error::Precondition { .. } => {
            Attempt::Fatal("replaced since it was listed; the next poll takes the new version".to_string())
        }
        other => Attempt::Retry(other.to_string()),
    })?;
    let mut partial = landing.start(name, limit).await.map_err(|e| Attempt::Fatal(e.to_string()))?;
    let mut body = got.into_stream();
    loop {
        let chunk = tokio::time::timeout(fetch.timeout.0, body.next())
            .await
            .map_err(|_| Attempt::Retry(format!("no data for {:?}", fetch.timeout.0)))?;
        match chunk {
            Some(Ok(bytes)) => partial.write(&bytes).await.map_err(landing_error)?,
            Some(Err(e)) => return Err(Attempt::Retry(format!("download cut short after {} bytes: {e}", partial.written()))),
            None => break,
        }
    }
    let modified = std::time::SystemTime::from(meta.last_modified);
    partial.finish(Some(meta.size), Some(modified)).await.map(|landed| landed.size).map_err(landing_error)
}

fn landing_error(e: PartialError) -> Attempt {
    match e {
        PartialError::Length { .. } => Attempt::Retry(e.to_string()),
        other => Attempt::Fatal(other.to_string()),
    }
}

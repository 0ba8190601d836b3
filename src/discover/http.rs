//! The `http` source: polls a listing (an HTML directory index or a JSON manifest), and
//! downloads each new or changed file into the landing folder with a conditional GET,
//! streamed chunk by chunk (bounded memory), length-checked, and renamed into place only
//! when whole. The checkpoint keeps each name's ETag / Last-Modified, so an unchanged file
//! costs a 304 (or, when a manifest shows its version, no request at all).

mod fetch;
pub(crate) mod listing;
#[cfg(test)]
mod tests;

use super::FileFilter;
use super::landing::{self, Landing};
use super::remote::{Checkpoint, PollReport, Remote, RemoteError, with_retries};
use crate::config::{HttpKind, ListingKind, SourceConfig};
use crate::events::{self, Download, DownloadOutcome};
use async_trait::async_trait;
use fetch::{Fetched, Fetcher, Listed, Page, client, safe_url};
use futures::StreamExt;
use listing::{Found, Link};
use std::collections::{HashSet, VecDeque};
use std::path::Path;
use tracing::warn;
use url::Url;

/// Sub-folders followed below the listing at most (`recursive = true`).
const MAX_DEPTH: usize = 16;
/// Names warned about are remembered so a bad name is not logged at every poll.
const MAX_WARNED: usize = 10_000;

/// An HTTP(S) listing polled every `fetch.poll_interval`.
pub struct HttpSource {
    url: Url,
    listing: ListingKind,
    recursive: bool,
    filter: FileFilter,
    fetcher: Fetcher,
    checkpoint: Checkpoint,
    warned: HashSet<String>,
}

impl HttpSource {
    /// Builds the client (headers from the config and the environment, marked sensitive) and
    /// opens the landing folder, deleting partial files a crash left. `kind` is the source's
    /// `http` keys.
    pub fn new(name: &str, config: &SourceConfig, kind: &HttpKind, state_dir: &Path) -> Result<HttpSource, RemoteError> {
        let setup = |reason: String| RemoteError::Setup { name: name.to_string(), reason };
        let url = Url::parse(&kind.url).map_err(|e| setup(format!("url: not a URL: {e}")))?;
        let landing = Landing::open(&config.path).map_err(|e| setup(format!("landing folder {}: {e}", config.path.display())))?;
        let filter = FileFilter::new(&config.include, &config.exclude).map_err(|e| setup(format!("include/exclude: {e}")))?;
        let client = client(kind).map_err(setup)?;
        Ok(HttpSource {
            url,
            listing: kind.http.listing,
            recursive: config.recursive,
            filter,
            fetcher: Fetcher { source: name.to_string(), client, landing, fetch: kind.fetch.clone(), min_age: config.min_age.0 },
            checkpoint: Checkpoint::load(state_dir, name),
            warned: HashSet::new(),
        })
    }

    fn source(&self) -> &str {
        &self.fetcher.source
    }

    /// Reads the listing (and, when recursive, its sub-folders' listings) into the files to
    /// consider. Only the top listing failing is an error; a sub-folder that cannot be read
    /// is counted as failed and left for the next poll.
    async fn list(&mut self, report: &mut PollReport) -> Result<Vec<Listed>, RemoteError> {
        let mut files = Vec::new();
        let mut names = HashSet::new();
        let mut folders = HashSet::new();
        let mut queued = HashSet::new();
        let mut root: Option<Url> = None;
        let mut queue = VecDeque::from([(self.url.clone(), 0usize)]);
        while let Some((url, depth)) = queue.pop_front() {
            // Read and parsed together: either failing is one unreadable listing.
            let listed = self.page(&url).await.and_then(|page| {
                let folder = listing::folder_of(&page.url);
                let found = if page.json {
                    listing::manifest(&page.body, &page.url, &folder)?
                } else {
                    listing::html(&String::from_utf8_lossy(&page.body), &page.url, &folder)
                };
                Ok((page.json, folder, found))
            });
            let (json, folder, found) = match listed {
                Ok(listed) => listed,
                Err(reason) if root.is_none() => {
                    return Err(RemoteError::Listing { name: self.source().to_string(), location: safe_url(&url), reason });
                }
                Err(reason) => {
                    warn!(source = self.source(), folder = %safe_url(&url), error = %reason, "cannot read a sub-folder's listing; trying again at the next poll");
                    report.failed += 1;
                    continue;
                }
            };
            // Names are relative to the top listing's folder; a sub-folder's page must be under it.
            let prefix = match &root {
                None => String::new(),
                Some(root) => match listing::classify(root, &folder) {
                    Link::Folder(name) => format!("{name}/"),
                    _ => {
                        warn!(source = self.source(), folder = %safe_url(&folder), "a sub-folder redirected outside the listing; skipped");
                        continue;
                    }
                },
            };
            if !folders.insert(folder.to_string()) {
                continue;
            }
            root.get_or_insert(folder);
            for Found { link, url, version } in found {
                match link {
                    Link::File(relative) => {
                        let name = format!("{prefix}{relative}");
                        if self.accepts(&name) && names.insert(name.clone()) {
                            files.push(Listed { name, url, version });
                        }
                    }
                    Link::Folder(relative) if self.recursive && !json && depth < MAX_DEPTH => {
                        let name = format!("{prefix}{relative}");
                        match landing::check_name(&name, true) {
                            Ok(()) if folders.contains(url.as_str()) || !queued.insert(url.to_string()) => {}
                            Ok(()) => queue.push_back((url, depth + 1)),
                            Err(e) => self.warn_once(&name, &e.to_string()),
                        }
                    }
                    Link::Folder(_) => {}
                    Link::Outside if json => self.warn_once(url.as_str(), "manifest entry outside the listing's folder or origin; skipped"),
                    Link::Outside => {}
                    Link::Bad(text, reason) => self.warn_once(&text, reason),
                }
            }
        }
        Ok(files)
    }

    /// Whether a listed name is fetched: a valid landing name, in the top folder unless
    /// recursive (the landing folder is watched as deep as the source says), and accepted by
    /// include/exclude.
    fn accepts(&mut self, name: &str) -> bool {
        if let Err(e) = landing::check_name(name, true) {
            self.warn_once(name, e.reason);
            return false;
        }
        if !self.recursive && name.contains('/') {
            self.warn_once(name, "is in a sub-folder; set recursive = true to fetch it");
            return false;
        }
        self.filter.accepts(name)
    }

    fn warn_once(&mut self, name: &str, reason: &str) {
        if self.warned.len() >= MAX_WARNED {
            self.warned.clear();
        }
        if self.warned.insert(name.to_string()) {
            warn!(source = self.source(), file = name, reason, "listed file skipped");
        }
    }

    /// One listing page, retried as configured.
    async fn page(&self, url: &Url) -> Result<Page, String> {
        let fetcher = &self.fetcher;
        let forced = self.listing;
        with_retries(&fetcher.source, &fetcher.fetch, "listing", || fetcher.read_page(url, forced)).await
    }
}

#[async_trait]
impl Remote for HttpSource {
    async fn poll(&mut self) -> Result<PollReport, RemoteError> {
        let mut report = PollReport::default();
        let files = self.list(&mut report).await?;
        report.listed = files.len();
        let mut todo = Vec::new();
        for file in files {
            let known = self.checkpoint.get(&file.name).cloned();
            // The listing shows the version already downloaded: no request at all.
            if known.as_ref().is_some_and(|k| k.listed_as(&file.version)) {
                events::emit(Download { source: self.source(), file: &file.name, outcome: DownloadOutcome::NotModified });
                continue;
            }
            todo.push((file, known));
        }
        let fetcher = &self.fetcher;
        let mut downloads = futures::stream::iter(todo)
            .map(|(file, known)| async move {
                let outcome = fetcher.download(&file, known.as_ref()).await;
                (file, outcome)
            })
            .buffer_unordered(fetcher.fetch.concurrency.max(1));
        // The checkpoint is written here, by the one loop, as each download completes.
        while let Some((file, outcome)) = downloads.next().await {
            let source = fetcher.source.as_str();
            match outcome {
                Ok(Fetched::Landed { version, bytes }) => report.landed(source, &mut self.checkpoint, &file.name, version, bytes),
                Ok(Fetched::NotModified) => events::emit(Download { source, file: &file.name, outcome: DownloadOutcome::NotModified }),
                Ok(Fetched::TooFresh) => events::emit(Download { source, file: &file.name, outcome: DownloadOutcome::TooFresh }),
                Err(reason) => report.failed(source, &file.name, &reason),
            }
        }
        Ok(report)
    }
}

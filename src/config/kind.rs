//! The kind of a source and the keys only that kind has. They are written flat in the source's
//! table (`kind = "http"` beside `url`, `[sources.NAME.fetch]`, `[sources.NAME.http]`), read
//! as `KindKeys` and checked into a [`SourceKind`]: a key of another kind is an error that
//! names it, `sources.x.s3: a folder source has no s3 settings (it belongs to kind = "s3")`.

use super::defaults;
use super::remote::{FetchConfig, HttpKind, HttpSourceConfig, S3Config, S3Kind};
use super::source::SourceConfig;
use indexmap::IndexMap;
use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use std::fmt;

/// The kind of a source, with the keys that kind alone has.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SourceKind {
    /// A local drop folder (`kind = "folder"`, the default).
    Folder,
    /// An HTTP(S) directory index or JSON manifest, polled.
    Http(HttpKind),
    /// An S3-compatible bucket prefix, listed and polled.
    S3(S3Kind),
}

impl SourceKind {
    /// The name `kind` is written with.
    pub fn name(&self) -> SourceKindName {
        match self {
            SourceKind::Folder => SourceKindName::Folder,
            SourceKind::Http(_) => SourceKindName::Http,
            SourceKind::S3(_) => SourceKindName::S3,
        }
    }

    /// Files of this kind are copies downloaded into a landing folder, not the originals.
    pub fn downloads(&self) -> bool {
        !matches!(self, SourceKind::Folder)
    }

    /// Where the files are downloaded from (`http` and `s3`).
    pub fn url(&self) -> Option<&str> {
        match self {
            SourceKind::Folder => None,
            SourceKind::Http(http) => Some(&http.url),
            SourceKind::S3(s3) => Some(&s3.url),
        }
    }

    /// How the files are polled and downloaded (`http` and `s3`).
    pub fn fetch(&self) -> Option<&FetchConfig> {
        match self {
            SourceKind::Folder => None,
            SourceKind::Http(http) => Some(&http.fetch),
            SourceKind::S3(s3) => Some(&s3.fetch),
        }
    }

    /// Problems with the keys of this kind, each named under `key` (the source's).
    pub fn problems(&self, key: &str) -> Vec<String> {
        match self {
            SourceKind::Folder => Vec::new(),
            SourceKind::Http(http) => http.problems(key),
            SourceKind::S3(s3) => s3.problems(key),
        }
    }
}

impl<'de> Deserialize<'de> for SourceKind {
    /// The error names the misplaced key but not the source, which only a whole config knows
    /// (see `deserialize_sources`).
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        KindKeys::deserialize(de)?.into_kind().map_err(D::Error::custom)
    }
}

/// The kinds of source, as `kind` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKindName {
    /// `kind = "folder"`.
    Folder,
    /// `kind = "http"`.
    Http,
    /// `kind = "s3"`.
    S3,
}

impl SourceKindName {
    /// As written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKindName::Folder => "folder",
            SourceKindName::Http => "http",
            SourceKindName::S3 => "s3",
        }
    }

    /// "a folder source", "an http source", for messages.
    fn a_source(self) -> &'static str {
        match self {
            SourceKindName::Folder => "a folder source",
            SourceKindName::Http => "an http source",
            SourceKindName::S3 => "an s3 source",
        }
    }
}

impl fmt::Display for SourceKindName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind keys of a source as written, before they are checked against its kind. Read
/// flattened into the source's table: [`SourceConfig`] refuses the keys no type knows.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct KindKeys {
    /// `folder` (the default), `http` or `s3`.
    #[serde(default = "defaults::source_kind")]
    kind: SourceKindName,
    /// `http` and `s3`: the listing or the bucket prefix.
    #[serde(default)]
    url: Option<String>,
    /// `http` and `s3`: polling and downloading.
    #[serde(default)]
    fetch: Option<FetchConfig>,
    /// `http`: listing format and headers.
    #[serde(default)]
    http: Option<HttpSourceConfig>,
    /// `s3`: endpoint, region and credentials of the bucket.
    #[serde(default)]
    s3: Option<S3Config>,
}

impl KindKeys {
    /// The kind, if every key given belongs to it and the ones it needs are there.
    fn into_kind(self) -> Result<SourceKind, KindError> {
        let KindKeys { kind, url, fetch, http, s3 } = self;
        let given = [
            (KindKey::Url, url.is_some()),
            (KindKey::Fetch, fetch.is_some()),
            (KindKey::Http, http.is_some()),
            (KindKey::S3, s3.is_some()),
        ];
        if let Some((key, _)) = given.into_iter().find(|&(key, present)| present && !key.kinds().contains(&kind)) {
            return Err(KindError::NotOfKind { key, kind });
        }
        Ok(match kind {
            SourceKindName::Folder => SourceKind::Folder,
            SourceKindName::Http => SourceKind::Http(HttpKind {
                url: url.ok_or(KindError::MissingUrl { kind, example: "http(s)://host/dir/, or a JSON manifest" })?,
                fetch: fetch.unwrap_or_default(),
                http: http.unwrap_or_default(),
            }),
            SourceKindName::S3 => SourceKind::S3(S3Kind {
                url: url.ok_or(KindError::MissingUrl { kind, example: "s3://bucket/prefix" })?,
                fetch: fetch.unwrap_or_default(),
                s3: s3.unwrap_or_default(),
            }),
        })
    }
}

/// The keys only some kinds of source have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KindKey {
    /// `url`.
    Url,
    /// `[sources.NAME.fetch]`.
    Fetch,
    /// `[sources.NAME.http]`.
    Http,
    /// `[sources.NAME.s3]`.
    S3,
}

impl KindKey {
    /// The kinds that have this key.
    fn kinds(self) -> &'static [SourceKindName] {
        match self {
            KindKey::Url | KindKey::Fetch => &[SourceKindName::Http, SourceKindName::S3],
            KindKey::Http => &[SourceKindName::Http],
            KindKey::S3 => &[SourceKindName::S3],
        }
    }

    /// What the key holds, for messages.
    fn what(self) -> &'static str {
        match self {
            KindKey::Url => "url",
            KindKey::Fetch => "fetch settings",
            KindKey::Http => "http settings",
            KindKey::S3 => "s3 settings",
        }
    }

    /// `kind = "http" or "s3"`, for messages.
    fn owners(self) -> String {
        let names: Vec<String> = self.kinds().iter().map(|kind| format!("\"{kind}\"")).collect();
        format!("kind = {}", names.join(" or "))
    }
}

impl fmt::Display for KindKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            KindKey::Url => "url",
            KindKey::Fetch => "fetch",
            KindKey::Http => "http",
            KindKey::S3 => "s3",
        })
    }
}

/// Why the kind keys of a source do not fit its kind. The message starts with the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum KindError {
    /// `url`, `fetch`, `http` or `s3` on a source whose kind has no such key.
    #[error("{key}: {} has no {} (it belongs to {})", .kind.a_source(), .key.what(), .key.owners())]
    NotOfKind { key: KindKey, kind: SourceKindName },
    /// An `http` or `s3` source without its `url`.
    #[error("url: required for kind = \"{kind}\" ({example})")]
    MissingUrl { kind: SourceKindName, example: &'static str },
}

/// Deserializes `[sources]`, each source's kind keys checked against its kind; the error names
/// the whole key (`sources.x.s3: ...`), and toml places it at the source's table.
pub(super) fn deserialize_sources<'de, D: Deserializer<'de>>(de: D) -> Result<IndexMap<String, SourceConfig>, D::Error> {
    de.deserialize_map(Sources)
}

struct Sources;

impl<'de> Visitor<'de> for Sources {
    type Value = IndexMap<String, SourceConfig>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a table of sources by name")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut sources = IndexMap::new();
        while let Some(name) = map.next_key::<String>()? {
            let source = map.next_value_seed(NamedSource(&name))?;
            sources.insert(name, source);
        }
        Ok(sources)
    }
}

/// A source read knowing its name, for the error.
struct NamedSource<'a>(&'a str);

impl<'de> DeserializeSeed<'de> for NamedSource<'_> {
    type Value = SourceConfig;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<SourceConfig, D::Error> {
        let source = SourceConfig::<KindKeys>::deserialize(de)?;
        source.with_kind_checked().map_err(|e| D::Error::custom(format!("sources.{}.{e}", self.0)))
    }
}

impl SourceConfig<KindKeys> {
    /// This source with its kind keys checked into a [`SourceKind`].
    fn with_kind_checked(self) -> Result<SourceConfig, KindError> {
        Ok(SourceConfig {
            kind: self.kind.into_kind()?,
            path: self.path,
            push: self.push,
            include: self.include,
            exclude: self.exclude,
            recursive: self.recursive,
            follow_symlinks: self.follow_symlinks,
            min_age: self.min_age,
            relist_interval: self.relist_interval,
            format: self.format,
            columns: self.columns,
            schema: self.schema,
            transform: self.transform,
            metadata_columns: self.metadata_columns,
            on_bad_row: self.on_bad_row,
            allow_overwrites: self.allow_overwrites,
            after_commit: self.after_commit,
            archive_dir: self.archive_dir,
            batch: self.batch,
            sinks: self.sinks,
        })
    }
}

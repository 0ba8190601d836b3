//! Reading a listing: the links of an HTML directory index or the entries of a JSON manifest,
//! each resolved against the page and named relative to the folder being listed.

use crate::discover::remote::RemoteVersion;
use serde::Deserialize;
use url::Url;

/// Where one link of a listing points, relative to the folder being listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Link {
    /// A file below the folder, by its relative name (`/`-joined, percent-decoded).
    File(String),
    /// A sub-folder (the link ended in `/`), by its relative name without the trailing `/`.
    Folder(String),
    /// Elsewhere: another origin, the folder itself or above it (parent links), or a link with
    /// a query (the sort links of Apache's index).
    Outside,
    /// Below the folder but not nameable: what the path decodes to, and why.
    Bad(String, &'static str),
}

/// One link or manifest entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found {
    pub link: Link,
    pub url: Url,
    /// What the listing says about the file's version (manifests only; empty for HTML).
    pub version: RemoteVersion,
}

/// The folder a listing page names its files relative to: the page's URL up to its last `/`.
pub(crate) fn folder_of(page: &Url) -> Url {
    let mut folder = page.join("./").unwrap_or_else(|_| page.clone());
    folder.set_query(None);
    folder.set_fragment(None);
    folder
}

/// Classifies `link` against `folder` (a URL whose path ends in `/`): only same-origin links
/// strictly below the folder's path, without a query, are files or folders.
pub(super) fn classify(folder: &Url, link: &Url) -> Link {
    if link.query().is_some()
        || link.scheme() != folder.scheme()
        || link.host_str() != folder.host_str()
        || link.port_or_known_default() != folder.port_or_known_default()
    {
        return Link::Outside;
    }
    let (Some(base), Some(path)) = (folder.path_segments(), link.path_segments()) else {
        return Link::Outside;
    };
    let mut base: Vec<&str> = base.collect();
    if base.last() == Some(&"") {
        base.pop();
    }
    let mut path: Vec<&str> = path.collect();
    let is_folder = path.last() == Some(&"");
    if is_folder {
        path.pop();
    }
    // Compared decoded, so `%41` and `A` are the same folder whichever way a server spells it.
    if path.len() <= base.len() || base.iter().zip(&path).any(|(a, b)| percent_decode(a) != percent_decode(b)) {
        return Link::Outside;
    }
    let mut parts = Vec::with_capacity(path.len() - base.len());
    for segment in &path[base.len()..] {
        match percent_decode(segment) {
            Ok(part) if part.contains('/') => return Link::Bad(part, "has an encoded '/' in a path segment"),
            Ok(part) => parts.push(part),
            Err(lossy) => return Link::Bad(lossy, "is not UTF-8 once percent-decoded"),
        }
    }
    let name = parts.join("/");
    if is_folder { Link::Folder(name) } else { Link::File(name) }
}

/// Every `<a href>` of an HTML page, resolved against `page` and classified against `folder`.
/// Links that do not parse as URLs are left out.
pub(crate) fn html(body: &str, page: &Url, folder: &Url) -> Vec<Found> {
    hrefs(body)
        .into_iter()
        .filter_map(|href| page.join(href.trim()).ok())
        .map(|mut url| {
            url.set_fragment(None);
            Found { link: classify(folder, &url), url, version: RemoteVersion::default() }
        })
        .collect()
}

/// One entry of a JSON manifest. Other keys are allowed and ignored.
#[derive(Debug, Deserialize)]
struct ManifestEntry {
    url: String,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    etag: Option<String>,
    #[serde(default)]
    last_modified: Option<String>,
}

/// The entries of a JSON manifest (an array of `{url, size?, etag?, last_modified?}`, `url`
/// relative to `page`), classified against `folder`.
pub(crate) fn manifest(body: &[u8], page: &Url, folder: &Url) -> Result<Vec<Found>, String> {
    let entries: Vec<ManifestEntry> =
        serde_json::from_slice(body).map_err(|e| format!("not a JSON manifest (an array of objects with \"url\"): {e}"))?;
    Ok(entries
        .into_iter()
        .map(|entry| {
            let version = RemoteVersion { etag: entry.etag, last_modified: entry.last_modified, size: entry.size };
            match page.join(entry.url.trim()) {
                Ok(mut url) => {
                    url.set_fragment(None);
                    Found { link: classify(folder, &url), url, version }
                }
                Err(_) => Found { link: Link::Bad(entry.url, "is not a URL"), url: page.clone(), version },
            }
        })
        .collect())
}

/// The `href` values of the `<a>` tags of an HTML page, entities decoded, comments skipped.
fn hrefs(html: &str) -> Vec<String> {
    let bytes = html.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(found) = html[i..].find('<') {
        let start = i + found;
        if html[start..].starts_with("<!--") {
            i = html[start..].find("-->").map_or(html.len(), |end| start + end + 3);
            continue;
        }
        let is_anchor = bytes.get(start + 1).is_some_and(|b| b.eq_ignore_ascii_case(&b'a'))
            && bytes.get(start + 2).is_some_and(u8::is_ascii_whitespace);
        if !is_anchor {
            i = start + 1;
            continue;
        }
        let (href, end) = tag_href(html, start + 2);
        out.extend(href);
        i = end;
    }
    out
}

/// Reads the attributes of a tag from `i` (just after its name) to its `>`; returns its
/// `href` (entities decoded) and the position after the tag. Every boundary is an ASCII
/// byte, so the slices fall on character boundaries.
fn tag_href(html: &str, mut i: usize) -> (Option<String>, usize) {
    let b = html.as_bytes();
    let skip_space = |i: &mut usize| {
        while *i < b.len() && b[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    let mut href = None;
    loop {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
            i += 1;
        }
        if i >= b.len() {
            return (href, i);
        }
        if b[i] == b'>' {
            return (href, i + 1);
        }
        let name_start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && !matches!(b[i], b'=' | b'>' | b'/') {
            i += 1;
        }
        let name = &html[name_start..i];
        skip_space(&mut i);
        if i < b.len() && b[i] == b'=' {
            i += 1;
            skip_space(&mut i);
            let value = if i < b.len() && (b[i] == b'"' || b[i] == b'\'') {
                let quote = b[i] as char;
                let value_start = i + 1;
                let value_end = html[value_start..].find(quote).map_or(b.len(), |e| value_start + e);
                i = (value_end + 1).min(b.len());
                &html[value_start..value_end]
            } else {
                let value_start = i;
                while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'>' {
                    i += 1;
                }
                &html[value_start..i]
            };
            if href.is_none() && name.eq_ignore_ascii_case("href") {
                href = Some(decode_entities(value));
            }
        }
    }
}

/// Decodes the character references an index page uses in attribute values (`&amp;`,
/// `&quot;`, `&#39;`, `&#x27;`, ...); unknown ones are kept as written.
fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        // An entity is short: look for its `;` in the next few bytes only.
        let decoded = rest.as_bytes()[1..].iter().take(11).position(|&b| b == b';').and_then(|semi| {
            let entity = &rest[1..semi + 1];
            let c = match entity {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => entity
                    .strip_prefix("#x")
                    .or_else(|| entity.strip_prefix("#X"))
                    .map(|hex| u32::from_str_radix(hex, 16))
                    .or_else(|| entity.strip_prefix('#').map(str::parse::<u32>))
                    .and_then(Result::ok)
                    .and_then(char::from_u32),
            };
            c.map(|c| (c, semi + 2))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Percent-decodes one path segment; a `%` not followed by two hex digits stays as it is.
/// Bytes that are not UTF-8 give `Err` with a lossy rendering (for the warning).
pub(super) fn percent_decode(segment: &str) -> Result<String, String> {
    let b = segment.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && let (Some(hi), Some(lo)) = (b.get(i + 1).and_then(|&c| hex(c)), b.get(i + 2).and_then(|&c| hex(c)))
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

use super::fetch::{client, parse_http_date, partial_error, safe_url, status_error};
use super::listing::{Found, Link, classify, folder_of, html, manifest, percent_decode};
use crate::config::{FetchConfig, HttpKind, HttpSourceConfig};
use crate::discover::landing::{self, PartialError};
use crate::discover::remote::{Attempt, RemoteVersion};
use reqwest::StatusCode;
use std::time::SystemTime;
use url::Url;

fn url(text: &str) -> Url {
    Url::parse(text).unwrap()
}

/// The links of a page, as (link, URL) pairs.
fn links(found: Vec<Found>) -> Vec<(Link, String)> {
    found.into_iter().map(|f| (f.link, f.url.to_string())).collect()
}

fn file(name: &str) -> Link {
    Link::File(name.into())
}

fn folder(name: &str) -> Link {
    Link::Folder(name.into())
}

/// What `python3.11 -m http.server` serves for a folder (captured from a real one).
const PYTHON_INDEX: &str = r#"<!DOCTYPE HTML>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Directory listing for /pulls/</title>
</head>
<body>
<h1>Directory listing for /pulls/</h1>
<hr>
<ul>
<li><a href=".hidden/">.hidden/</a></li>
<li><a href="a%26b.csv">a&amp;b.csv</a></li>
<li><a href="caf%C3%A9.json">café.json</a></li>
<li><a href="CO06037%202019-01-01">CO06037 2019-01-01</a></li>
<li><a href="sub/">sub/</a></li>
</ul>
<hr>
</body>
</html>
"#;

#[test]
fn python_http_server_index() {
    let page = url("http://127.0.0.1:8000/pulls/");
    assert_eq!(
        links(html(PYTHON_INDEX, &page, &folder_of(&page))),
        vec![
            (folder(".hidden"), "http://127.0.0.1:8000/pulls/.hidden/".into()),
            (file("a&b.csv"), "http://127.0.0.1:8000/pulls/a%26b.csv".into()),
            (file("café.json"), "http://127.0.0.1:8000/pulls/caf%C3%A9.json".into()),
            (file("CO06037 2019-01-01"), "http://127.0.0.1:8000/pulls/CO06037%202019-01-01".into()),
            (folder("sub"), "http://127.0.0.1:8000/pulls/sub/".into()),
        ]
    );
}

/// nginx `autoindex on;` (1.22).
const NGINX_INDEX: &str = r#"<html>
<head><title>Index of /pulls/2019/</title></head>
<body>
<h1>Index of /pulls/2019/</h1><hr><pre><a href="../">../</a>
<a href="CA/">CA/</a>                                                22-Nov-2025 05:46                   -
<a href="CO06037%202019-01-01">CO06037 2019-01-01</a>                                 22-Nov-2025 05:46              738869
<a href="a%26b.csv">a&amp;b.csv</a>                                          22-Nov-2025 05:46                  12
<a href="very%20long%20name%20that%20nginx%20cuts%20in%20the%20text.json">very long name that nginx cuts in the..&gt;</a> 22-Nov-2025 05:46    5
</pre><hr></body>
</html>
"#;

#[test]
fn nginx_autoindex() {
    let page = url("https://files.example.org/pulls/2019/");
    let found = links(html(NGINX_INDEX, &page, &folder_of(&page)));
    assert_eq!(
        found.into_iter().map(|(l, _)| l).collect::<Vec<_>>(),
        vec![
            Link::Outside,
            folder("CA"),
            file("CO06037 2019-01-01"),
            file("a&b.csv"),
            file("very long name that nginx cuts in the text.json"),
        ]
    );
}

/// Apache 2.4 `Options +Indexes` with `IndexOptions FancyIndexing HTMLTable` (Debian's default).
const APACHE_INDEX: &str = r#"<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN">
<html>
 <head>
  <title>Index of /pulls</title>
 </head>
 <body>
<h1>Index of /pulls</h1>
  <table>
   <tr><th valign="top"><img src="/icons/blank.gif" alt="[ICO]"></th><th><a href="?C=N;O=D">Name</a></th><th><a href="?C=M;O=A">Last modified</a></th><th><a href="?C=S;O=A">Size</a></th><th><a href="?C=D;O=A">Description</a></th></tr>
   <tr><th colspan="5"><hr></th></tr>
<tr><td valign="top"><img src="/icons/back.gif" alt="[PARENTDIR]"></td><td><a href="/">Parent Directory</a>       </td><td>&nbsp;</td><td align="right">  - </td><td>&nbsp;</td></tr>
<tr><td valign="top"><img src="/icons/unknown.gif" alt="[   ]"></td><td><a href="CO06037%202019-01-01">CO06037 2019-01-01</a></td><td align="right">2025-11-22 05:46  </td><td align="right">722K</td><td>&nbsp;</td></tr>
<tr><td valign="top"><img src="/icons/text.gif" alt="[TXT]"></td><td><a href="a%26b.csv">a&amp;b.csv</a></td><td align="right">2025-11-22 05:46  </td><td align="right"> 12 </td><td>&nbsp;</td></tr>
<tr><td valign="top"><img src="/icons/folder.gif" alt="[DIR]"></td><td><a href="sub%20dir/">sub dir/</a></td><td align="right">2025-11-22 05:46  </td><td align="right">  - </td><td>&nbsp;</td></tr>
   <tr><th colspan="5"><hr></th></tr>
</table>
<address>Apache/2.4.62 (Debian) Server at files.example.org Port 80</address>
</body></html>
"#;

#[test]
fn apache_fancy_index_sort_links_and_parent_are_skipped() {
    let page = url("http://files.example.org/pulls/");
    let found = links(html(APACHE_INDEX, &page, &folder_of(&page)));
    let kept: Vec<Link> = found.into_iter().map(|(l, _)| l).filter(|l| *l != Link::Outside).collect();
    assert_eq!(kept, vec![file("CO06037 2019-01-01"), file("a&b.csv"), folder("sub dir")]);
}

#[test]
fn hrefs_in_any_quoting_case_and_outside_comments() {
    let page = url("http://h/d/");
    let body = r#"<A HREF=one>1</A> <a class='x' href='two&amp;2'>2</a> <!-- <a href="hidden">x</a> -->
        <abbr href="no">n</abbr> <a name="anchor">x</a> <a href = "three#frag" >3</a> <a
        href="four">4</a> <a href="caf&#xe9;">5</a> <a href="/d/five">6</a> <a href="http://h/d/six">7</a>"#;
    let names: Vec<Link> = html(body, &page, &folder_of(&page)).into_iter().map(|f| f.link).collect();
    assert_eq!(names, vec![file("one"), file("two&2"), file("three"), file("four"), file("café"), file("five"), file("six")]);
    // Unterminated markup ends the scan without a panic.
    for broken in ["<a href=\"x", "<a ", "<a href=", "<!-- <a href=x>", "&amp", "<a href=\"&#xffffffff;\">"] {
        let _ = html(broken, &page, &folder_of(&page));
    }
}

#[test]
fn a_json_manifest_resolves_relative_to_its_own_url() {
    let page = url("http://h/pulls/manifest.json");
    let body = br#"[
        {"url": "CO06037%202019-01-01", "size": 10, "etag": "\"abc\"", "extra": 1},
        {"url": "2019/b.csv", "last_modified": "Sun, 06 Nov 1994 08:49:37 GMT"},
        {"url": "/pulls/abs.json"},
        {"url": "http://h/pulls/full.json"},
        {"url": "https://cdn.example/x"},
        {"url": "../up"},
        {"url": "http://[bad"}
    ]"#;
    let found = manifest(body, &page, &folder_of(&page)).unwrap();
    let kinds: Vec<Link> = found.iter().map(|f| f.link.clone()).collect();
    assert_eq!(
        kinds,
        vec![
            file("CO06037 2019-01-01"),
            file("2019/b.csv"),
            file("abs.json"),
            file("full.json"),
            Link::Outside,
            Link::Outside,
            Link::Bad("http://[bad".into(), "is not a URL"),
        ]
    );
    assert_eq!(found[0].version, RemoteVersion { etag: Some("\"abc\"".into()), last_modified: None, size: Some(10) });
    assert_eq!(found[1].version.last_modified.as_deref(), Some("Sun, 06 Nov 1994 08:49:37 GMT"));
    assert!(manifest(b"{\"files\": []}", &page, &folder_of(&page)).is_err());
    assert!(manifest(b"[{\"size\": 1}]", &page, &folder_of(&page)).is_err());
}

#[test]
fn only_links_strictly_below_the_folder_on_the_same_origin_are_named() {
    let dir = url("http://h/a/");
    let cases = [
        ("http://h/a/x", file("x")),
        ("http://h/a/b%20c/d", file("b c/d")),
        ("http://h/a/b/", folder("b")),
        ("http://h/%61/x", file("x")),
        ("http://h:80/a/x", file("x")),
        ("http://h/ab/x", Link::Outside),
        ("http://h/a", Link::Outside),
        ("http://h/a/", Link::Outside),
        ("http://h/", Link::Outside),
        ("http://h:81/a/x", Link::Outside),
        ("https://h/a/x", Link::Outside),
        ("http://g/a/x", Link::Outside),
        ("http://h/a/x?C=N;O=D", Link::Outside),
        ("http://h/a/..%2Fetc", Link::Bad("../etc".into(), "has an encoded '/' in a path segment")),
        ("http://h/a/%FF", Link::Bad("\u{FFFD}".into(), "is not UTF-8 once percent-decoded")),
    ];
    for (link, want) in cases {
        assert_eq!(classify(&dir, &url(link)), want, "{link}");
    }
    // The top of a server lists everything on it.
    assert_eq!(classify(&url("http://h/"), &url("http://h/x/y")), file("x/y"));
}

#[test]
fn names_are_percent_decoded_and_checked() {
    assert_eq!(percent_decode("CO06037%202019-01-01").unwrap(), "CO06037 2019-01-01");
    assert_eq!(percent_decode("caf%C3%A9").unwrap(), "café");
    assert_eq!(percent_decode("100%").unwrap(), "100%");
    assert_eq!(percent_decode("%zz%4").unwrap(), "%zz%4");
    assert!(percent_decode("%C3").is_err());
    // What landing::check_name then refuses, whatever the server sent.
    let dir = url("http://h/");
    for hidden in ["http://h/.git/config", "http://h/a%00b", "http://h/x%5Cy"] {
        match classify(&dir, &url(hidden)) {
            Link::File(name) => assert!(landing::check_name(&name, true).is_err(), "{name:?}"),
            other => panic!("{hidden}: {other:?}"),
        }
    }
}

#[test]
fn the_folder_of_a_page_is_its_url_up_to_the_last_slash() {
    assert_eq!(folder_of(&url("http://h/a/m.json?x=1#f")).as_str(), "http://h/a/");
    assert_eq!(folder_of(&url("http://h/a/")).as_str(), "http://h/a/");
    assert_eq!(folder_of(&url("http://h")).as_str(), "http://h/");
}

#[test]
fn failures_are_retried_only_when_they_may_pass() {
    let retried = |a: Attempt| matches!(a, Attempt::Retry(_));
    for code in [500, 502, 503, 429, 408] {
        assert!(retried(status_error(StatusCode::from_u16(code).unwrap())), "{code}");
    }
    for code in [400, 401, 403, 404, 410, 302] {
        assert!(!retried(status_error(StatusCode::from_u16(code).unwrap())), "{code}");
    }
    assert!(retried(partial_error(PartialError::Length { received: 1, expected: 2 })));
    assert!(!retried(partial_error(PartialError::TooLarge { limit: 1 })));
}

#[test]
fn last_modified_dates_and_logged_urls() {
    let t = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
    assert_eq!(t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs(), 784_111_777);
    assert!(parse_http_date("yesterday").is_none());
    assert_eq!(safe_url(&url("https://h/a/?token=s3cret")), "https://h/a/?…");
    assert_eq!(safe_url(&url("http://h:8000/a/b")), "http://h:8000/a/b");
}

#[test]
fn header_values_stay_out_of_errors() {
    let mut kind = HttpKind { url: "http://h/".into(), fetch: FetchConfig::default(), http: HttpSourceConfig::default() };
    kind.http.headers.insert("X-Api-Key".into(), crate::config::Secret::new("line\nbreak-s3cret"));
    let e = client(&kind).unwrap_err();
    assert!(e.contains("X-Api-Key") && !e.contains("s3cret"), "{e}");
    kind.http.headers.clear();
    kind.http.headers_from_env.insert("Authorization".into(), "INGESTD_TEST_SURELY_UNSET_VARIABLE".into());
    let e = client(&kind).unwrap_err();
    assert!(e.contains("INGESTD_TEST_SURELY_UNSET_VARIABLE"), "{e}");
    kind.http.headers_from_env.clear();
    kind.http.headers.insert("Authorization".into(), crate::config::Secret::new("Bearer s3cret"));
    client(&kind).unwrap();
}

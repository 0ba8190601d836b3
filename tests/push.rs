//! The push endpoint against the real daemon, driven by the real `curl`: uploads land in the
//! source's folder and reach the Delta table once; duplicates, bad tokens, unknown sources,
//! oversize bodies, path-traversal names and cut-off uploads land nothing; tokens rotate
//! without a restart and never reach the log.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests and benches fail loudly on purpose.

mod common;
use common::*;
use ingestd::sample::{AttomSpec, attom_file};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "push-token-5f0c2a9e-never-logged";
const WRONG: &str = "wrong-token-81d7-never-logged";
const ROTATED: &str = "rotated-token-c3b1-never-logged";
const MAX_SIZE: usize = 1 << 20;

/// One source `attom` that accepts uploads (at most 1 MiB), one `other` that does not.
fn push_config(port: u16) -> String {
    let other_columns = ATTOM_COLUMNS.replace("[sources.attom.columns]", "[sources.other.columns]");
    format!(
        r#"instance = "test"
[http]
listen = "127.0.0.1:{port}"
[sources.attom]
path = "drop"
min_age = "0s"
sinks = ["lake"]
[sources.attom.push]
tokens_file = "push-tokens"
max_size = "{MAX_SIZE}"
{ATTOM_COLUMNS}
[sources.other]
path = "drop-other"
min_age = "0s"
sinks = ["other"]
{other_columns}
[sinks.lake]
kind = "delta"
uri = "lake/attom"
[sinks.other]
kind = "delta"
uri = "lake/other"
"#
    )
}

/// What curl saw: status code (0 when it got no answer), response headers and body.
struct Reply {
    code: u16,
    headers: String,
    body: String,
}

impl Reply {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?} (code {})", self.body, self.code))
    }
}

/// Runs `curl ARGS URL` and returns what it saw.
fn curl(ws: &Workspace, args: &[&str], url: &str) -> Reply {
    curl_with_stdin(ws, args, url, None)
}

/// [`curl`] with its standard input read from a file (for `-T -`).
fn curl_with_stdin(ws: &Workspace, args: &[&str], url: &str, stdin: Option<&Path>) -> Reply {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static CALL: AtomicUsize = AtomicUsize::new(0);
    let n = CALL.fetch_add(1, Ordering::Relaxed);
    let (body_file, header_file) = (ws.path(&format!("curl-{n}.body")), ws.path(&format!("curl-{n}.headers")));
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "30", "-o"])
        .arg(&body_file)
        .arg("-D")
        .arg(&header_file)
        .args(["-w", "%{http_code}"])
        .args(args)
        .arg(url)
        .current_dir(ws.dir.path())
        .stdin(stdin.map_or_else(Stdio::null, |path| Stdio::from(std::fs::File::open(path).expect("curl's input"))))
        .output()
        .expect("run curl");
    let code = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0);
    let reply = Reply {
        code,
        headers: std::fs::read_to_string(&header_file).unwrap_or_default(),
        body: std::fs::read_to_string(&body_file).unwrap_or_default(),
    };
    let _ = std::fs::remove_file(body_file);
    let _ = std::fs::remove_file(header_file);
    reply
}

fn url(port: u16, source: &str, encoded_name: &str) -> String {
    format!("http://127.0.0.1:{port}/v1/sources/{source}/files/{encoded_name}")
}

/// Percent-encodes what an ATTOM name needs (its space).
fn encode(name: &str) -> String {
    name.replace('%', "%25").replace(' ', "%20")
}

fn bearer(token: &str) -> String {
    format!("Authorization: Bearer {token}")
}

/// PUTs a file with `token`.
fn put(ws: &Workspace, port: u16, file: &Path, name: &str, token: &str, extra: &[&str]) -> Reply {
    let file = file.to_string_lossy().to_string();
    let auth = bearer(token);
    let mut args = vec!["-T", file.as_str(), "-H", auth.as_str()];
    args.extend_from_slice(extra);
    curl(ws, &args, &url(port, "attom", &encode(name)))
}

fn log(ws: &Workspace) -> String {
    std::fs::read_to_string(ws.path("run.log")).unwrap_or_default()
}

/// Waits (up to a generous bound; not a latency assertion) for `check` to hold.
fn eventually(what: &str, ws: &Workspace, daemon: &mut std::process::Child, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        if let Ok(Some(exit)) = daemon.try_wait() {
            panic!("the daemon exited ({exit}) waiting for {what}: {}", log(ws));
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}; log:\n{}", log(ws));
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Names in the drop folder (partial files aside) and the partial files left.
fn landed(ws: &Workspace) -> (Vec<String>, Vec<PathBuf>) {
    let names = std::fs::read_dir(ws.path("drop"))
        .expect("drop folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().to_string())
        .filter(|n| !n.starts_with('.'))
        .collect();
    let partial_dir = ws.path("drop/.ingestd-partial");
    let partials = if partial_dir.exists() { walk_files(&partial_dir) } else { Vec::new() };
    (names, partials)
}

/// A pseudo-random (incompressible, not JSON) body of `len` bytes.
fn junk(len: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

#[test]
fn uploads_with_curl_land_once_and_everything_else_lands_nothing() {
    let port = free_port();
    let ws = Workspace::with_config(&push_config(port));
    std::fs::write(ws.path("push-tokens"), format!("# tokens for the scraper\n\n{TOKEN}\n")).expect("tokens file");
    std::fs::create_dir_all(ws.path("drop-other")).expect("other folder");
    let outbox = ws.path("outbox");
    std::fs::create_dir_all(&outbox).expect("outbox");
    let spec = AttomSpec { files: 3, rows: 300, seed: 11 };
    let files: Vec<(String, PathBuf, Vec<u8>)> = (0..3)
        .map(|i| {
            let (name, bytes, _) = attom_file(&spec, i);
            assert!(bytes.len() < MAX_SIZE);
            let path = outbox.join(&name);
            std::fs::write(&path, &bytes).expect("write sample");
            (name, path, bytes)
        })
        .collect();
    let mut daemon = spawn_run(&ws, &[], "run.log");
    eventually("/readyz", &ws, &mut daemon, || http(port, "/readyz").0 == 200);
    let table = ws.path("lake/attom");

    // A good upload: 201, the BLAKE3 of the bytes, the file in the folder, its rows in the table.
    let (name0, path0, bytes0) = &files[0];
    let reply = put(&ws, port, path0, name0, TOKEN, &[]);
    assert_eq!(reply.code, 201, "{} {}", reply.body, log(&ws));
    let answer = reply.json();
    assert_eq!(answer["source"], "attom");
    assert_eq!(answer["name"], name0.as_str());
    assert_eq!(answer["size"], bytes0.len() as u64);
    assert_eq!(answer["blake3"], blake3::hash(bytes0).to_hex().as_str());
    assert_eq!(answer["status"], "new");
    assert!(answer.get("duplicate_of").is_none(), "{answer}");
    assert!(reply.headers.to_ascii_lowercase().contains("content-type: application/json"), "{}", reply.headers);
    assert_eq!(std::fs::read(ws.path("drop").join(name0)).expect("landed file"), *bytes0);
    eventually("the pushed rows", &ws, &mut daemon, || delta_rows(&table) == 100);
    assert!(strings(&read_delta(&table), "_source_file").iter().all(|f| f.as_deref() == Some(name0.as_str())));

    // The same content under another name, once committed: 200 duplicate, nothing lands.
    let reply = put(&ws, port, path0, "copy of the first", TOKEN, &[]);
    assert_eq!(reply.code, 200, "{}", reply.body);
    let answer = reply.json();
    assert_eq!((answer["status"].as_str(), answer["duplicate_of"].as_str()), (Some("duplicate"), Some(name0.as_str())));
    assert_eq!(answer["blake3"], blake3::hash(bytes0).to_hex().as_str());
    assert!(!ws.path("drop/copy of the first").exists());

    // Twice at once, before any commit can happen: the second is a duplicate of the first.
    let (name1, path1, bytes1) = &files[1];
    assert_eq!(put(&ws, port, path1, name1, TOKEN, &[]).code, 201);
    let reply = put(&ws, port, path1, "again", TOKEN, &[]);
    assert_eq!((reply.code, reply.json()["duplicate_of"].as_str()), (200, Some(name1.as_str())), "{}", reply.body);
    assert_eq!(reply.json()["size"], bytes1.len() as u64);
    assert!(!ws.path("drop/again").exists());
    eventually("the second file's rows", &ws, &mut daemon, || delta_rows(&table) == 200);

    // No token, a wrong one, another scheme: 401 with a challenge, JSON error, nothing lands.
    let (name2, path2, _) = &files[2];
    let path2s = path2.to_string_lossy().to_string();
    for reply in [
        curl(&ws, &["-T", &path2s], &url(port, "attom", &encode(name2))),
        put(&ws, port, path2, name2, WRONG, &[]),
        curl(&ws, &["-T", &path2s, "-H", &format!("Authorization: Basic {TOKEN}")], &url(port, "attom", &encode(name2))),
    ] {
        assert_eq!(reply.code, 401, "{}", reply.body);
        assert!(reply.headers.to_ascii_lowercase().contains("www-authenticate: bearer"), "{}", reply.headers);
        assert!(reply.json()["error"].as_str().is_some_and(|e| e.contains("token") && !e.contains(TOKEN)), "{}", reply.body);
    }
    assert!(!ws.path("drop").join(name2).exists());

    // Unknown source, and a source without a push section: 404 (before any token check).
    for source in ["nosuch", "other"] {
        let reply = curl(&ws, &["-T", &path2s, "-H", &bearer(TOKEN)], &url(port, source, "x.json"));
        assert_eq!(reply.code, 404, "{source}: {}", reply.body);
        assert!(reply.json()["error"].as_str().is_some_and(|e| e.contains(source)), "{}", reply.body);
    }
    let other: Vec<PathBuf> = walk_files(&ws.path("drop-other"))
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| !n.to_string_lossy().starts_with('.')))
        .collect();
    assert!(other.is_empty(), "{other:?}");

    // Names that would escape the folder, hide or break lines: 400, naming the file.
    for encoded in ["..", "%2E%2E", "a%2Fb", "..%2F..%2Fescaped", "%2Fetc%2Fescaped", "%00x", "a%0Ab", "a%5Cb", ".hidden", "x.part"] {
        // `-T` would append the local file's name to a URL curl resolves to a folder; send the
        // body as data to keep the path exactly as written.
        let reply = curl(
            &ws,
            &["--path-as-is", "-X", "PUT", "--data-binary", &format!("@{path2s}"), "-H", &bearer(TOKEN)],
            &url(port, "attom", encoded),
        );
        assert_eq!(reply.code, 400, "{encoded}: {}", reply.body);
        assert!(reply.json()["error"].as_str().is_some_and(|e| e.contains("file name")), "{encoded}: {}", reply.body);
    }
    // A raw `..` segment: curl normalises it away unless told not to; either way no route takes
    // it (or the name is refused), and nothing is written outside the folder.
    for args in [&["--path-as-is"][..], &[][..]] {
        let mut all = args.to_vec();
        let auth = bearer(TOKEN);
        let data = format!("@{path2s}");
        all.extend_from_slice(&["-X", "PUT", "--data-binary", &data, "-H", &auth]);
        let reply = curl(&ws, &all, &url(port, "attom", "../../../escaped"));
        assert!(matches!(reply.code, 400 | 404), "{}: {}", reply.code, reply.body);
        assert!(reply.json()["error"].is_string(), "{}", reply.body);
    }
    assert!(walk_files(ws.dir.path()).iter().all(|p| !p.to_string_lossy().contains("escaped")), "a file escaped the folder");

    // Oversize: refused up front from Content-Length (with or without `Expect: 100-continue`),
    // or once a chunked stream (from a file, or piped) passes the limit. The client, possibly
    // still sending, must see the answer, not a reset connection: each case runs a few times.
    let big = ws.path("outbox-big");
    std::fs::write(&big, junk(MAX_SIZE + MAX_SIZE / 2)).expect("big file");
    let big_s = big.to_string_lossy().to_string();
    let auth = bearer(TOKEN);
    let big_url = url(port, "attom", "big.json");
    for round in 0..3 {
        for (args, stdin) in [
            (&["-T", &big_s][..], None),
            (&["-T", &big_s, "-H", "Expect:"][..], None),
            (&["-T", &big_s, "-H", "Transfer-Encoding: chunked"][..], None),
            (&["-T", "-"][..], Some(big.as_path())),
        ] {
            let mut all = args.to_vec();
            all.extend_from_slice(&["-H", &auth]);
            let reply = curl_with_stdin(&ws, &all, &big_url, stdin);
            assert_eq!(reply.code, 413, "round {round}, {args:?}: {} {}", reply.body, reply.headers);
            assert!(
                reply.json()["error"].as_str().is_some_and(|e| e.contains("big.json") && e.contains(&MAX_SIZE.to_string())),
                "{}",
                reply.body
            );
        }
        // A refusal before the body is read (here, no token) reaches a client already sending.
        let reply = curl(&ws, &["-T", &path2s, "-H", "Expect:"], &url(port, "attom", "no-token.json"));
        assert_eq!(reply.code, 401, "round {round}: {}", reply.body);
    }

    // Cut off halfway: a raw client that announces 600 kB, sends half and hangs up; and curl,
    // rate-limited, killed after a second.
    let cut_offs_before = log(&ws).matches("cut off").count();
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let head = format!(
        "PUT /v1/sources/attom/files/half.json HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 600000\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).expect("send head");
    stream.write_all(&junk(300_000)).expect("send half the body");
    std::thread::sleep(Duration::from_millis(300));
    drop(stream);
    let slow = ws.path("outbox-slow");
    std::fs::write(&slow, junk(900_000)).expect("slow file");
    let mut curl_child = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "--limit-rate", "50k", "-T"])
        .arg(&slow)
        .args(["-H", &bearer(TOKEN), &url(port, "attom", "slow.json")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start curl");
    std::thread::sleep(Duration::from_secs(1));
    assert!(curl_child.try_wait().expect("curl status").is_none(), "curl finished a rate-limited 900 kB upload within a second");
    curl_child.kill().expect("kill curl");
    let _ = curl_child.wait();
    eventually("both cut-off uploads to be noticed", &ws, &mut daemon, || log(&ws).matches("cut off").count() >= cut_offs_before + 2);

    let (names, partials) = landed(&ws);
    assert!(partials.is_empty(), "partial files left: {partials:?}");
    let mut names = names;
    names.sort();
    let mut expected = vec![name0.clone(), name1.clone()];
    expected.sort();
    assert_eq!(names, expected, "only the two good uploads landed");

    // Rotation without a restart: the file is read at every request.
    std::fs::write(ws.path("push-tokens"), format!("# rotated\n{ROTATED}\n")).expect("rotate tokens");
    assert_eq!(put(&ws, port, path2, name2, TOKEN, &[]).code, 401);
    let reply = put(&ws, port, path2, name2, ROTATED, &[]);
    assert_eq!(reply.code, 201, "{}", reply.body);
    eventually("the third file's rows", &ws, &mut daemon, || delta_rows(&table) == 300);

    // Nothing refused or duplicated reached the table: every record once.
    let batches = read_delta(&table);
    let (lost, duplicated, unexpected) =
        compare_rows(&fingerprints_of_files(&files.iter().map(|f| f.1.clone()).collect::<Vec<_>>()), &fingerprints_of_table(&batches));
    assert_eq!((lost, duplicated, unexpected), (0, 0, 0));

    // Every answer was counted by code.
    let metrics = http_get(port, "/metrics");
    for (code, at_least) in [("201", 3), ("200", 2), ("401", 7), ("404", 2), ("400", 12), ("413", 12)] {
        let count: u64 = metrics
            .lines()
            .filter(|l| l.starts_with("ingestd_uploads_total{") && l.contains(&format!("code=\"{code}\"")))
            .filter_map(|l| l.rsplit(' ').next().and_then(|n| n.parse::<u64>().ok()))
            .sum();
        assert!(count >= at_least, "ingestd_uploads_total code {code}: {count} < {at_least}\n{metrics}");
    }

    terminate(daemon);
    let log = log(&ws);
    assert!(log.contains("upload") && log.contains(name0.as_str()), "uploads are logged: {log}");
    for secret in [TOKEN, WRONG, ROTATED] {
        assert!(!log.contains(secret), "a token reached the log");
    }
}

//! The `http` source against real servers: `python3 -m http.server` over a folder of ATTOM
//! files (the team's set-up), polled by the real binary, rows read back from the Delta table.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests and benches fail loudly on purpose.

mod common;
#[path = "common/http_server.rs"]
mod http_server;

use common::*;
use http_server::PyServer;
use ingestd::sample::{AttomSpec, attom_file, write_attom_files};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// A config with one `http` source polling `http://127.0.0.1:PORT/{url_path}` into the
/// landing folder `landing`, every 200 ms, and the Delta sink `lake/attom`.
fn http_config(port: u16, url_path: &str, listen: &str, source_keys: &str) -> String {
    format!(
        r#"instance = "test"
[http]
listen = "{listen}"
[sources.attom]
kind = "http"
url = "http://127.0.0.1:{port}/{url_path}"
path = "landing"
min_age = "0s"
sinks = ["lake"]
{source_keys}
[sources.attom.fetch]
poll_interval = "200ms"
timeout = "5s"
retries = 8
backoff = "200ms"
{ATTOM_COLUMNS}
[sinks.lake]
kind = "delta"
uri = "lake/attom"
"#
    )
}

/// Writes file `index` of `spec` into `dir/sub` the way a careful scraper does (elsewhere
/// first, then renamed in), so the server never serves it half written. Returns its path.
fn publish(ws: &Workspace, dir: &Path, spec: &AttomSpec, index: usize) -> PathBuf {
    let (name, bytes, _) = attom_file(spec, index);
    std::fs::create_dir_all(ws.path("staging")).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let staged = ws.path("staging").join(&name);
    std::fs::write(&staged, bytes).unwrap();
    let target = dir.join(&name);
    std::fs::rename(&staged, &target).unwrap();
    target
}

/// `ingestd once --json`: its summary and its log.
fn once(ws: &Workspace) -> (serde_json::Value, String) {
    let out = ws.ingestd(&["once", "--json"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(0), "ingestd once: {}\n{stdout}\n{log}", out.status);
    (serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("bad summary {stdout:?}: {e}")), log)
}

/// Checks the table holds exactly the records of `files` (each once) and returns its rows.
fn assert_table_is(ws: &Workspace, files: &[PathBuf]) -> usize {
    let batches = read_delta(&ws.path("lake/attom"));
    let (lost, duplicated, unexpected) = compare_rows(&fingerprints_of_files(files), &fingerprints_of_table(&batches));
    assert_eq!((lost, duplicated, unexpected), (0, 0, 0), "rows lost, duplicated, unexpected");
    row_count(&batches)
}

/// Visible files under a folder (what the server lists, or what is left in the landing folder).
fn visible_files(dir: &Path) -> Vec<PathBuf> {
    if !dir.exists() {
        return Vec::new();
    }
    walk_files(dir).into_iter().filter(|p| !p.strip_prefix(dir).unwrap().to_string_lossy().split('/').any(|c| c.starts_with('.'))).collect()
}

/// Files under the landing folder's partial-download folder.
fn partial_files(ws: &Workspace) -> Vec<PathBuf> {
    let dir = ws.path("landing/.ingestd-partial");
    if dir.exists() { walk_files(&dir) } else { Vec::new() }
}

/// What the server's request log gained since it was `from` bytes long.
fn log_since(path: &Path, from: usize) -> String {
    std::fs::read_to_string(path).unwrap_or_default().get(from..).unwrap_or_default().to_string()
}

/// The value of a counter in the daemon's `/metrics` with all these labels, 0 if absent.
fn metric(listen_port: u16, name: &str, labels: &[&str]) -> u64 {
    http_get(listen_port, "/metrics")
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && labels.iter().all(|label| l.contains(label)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// Waits (a bound for a stuck test, not a latency assertion) until the table has `rows`.
fn wait_for_rows(ws: &Workspace, daemon: &mut std::process::Child, rows: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        if let Some(exit) = daemon.try_wait().unwrap() {
            panic!("the daemon exited ({exit}): {}", std::fs::read_to_string(ws.path("run.log")).unwrap_or_default());
        }
        let seen = delta_rows(&ws.path("lake/attom"));
        if seen >= rows || Instant::now() > deadline {
            return seen;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn run_log(ws: &Workspace) -> String {
    std::fs::read_to_string(ws.path("run.log")).unwrap_or_default()
}

#[test]
fn once_downloads_every_file_then_only_asks_whether_each_changed() {
    let port = free_port();
    let ws = Workspace::with_config(&http_config(port, "", "", ""));
    let served = ws.path("served");
    let totals = write_attom_files(&served, &AttomSpec { files: 4, rows: 1_200, seed: 21 }).unwrap();
    let _server = PyServer::plain(&served, port, &ws.path("server.log"));

    let (summary, log) = once(&ws);
    assert_eq!(summary["totals"]["files"], 4, "{summary}\n{log}");
    assert_eq!(summary["totals"]["rows"], totals.rows);
    assert_eq!(log.matches("file downloaded").count(), 4, "{log}");
    assert_eq!(assert_table_is(&ws, &visible_files(&served)), totals.rows);
    assert!(visible_files(&ws.path("landing")).is_empty(), "committed copies are deleted from the landing folder");
    assert!(partial_files(&ws).is_empty());

    // Nothing changed: every file is asked for with its Last-Modified, and the server says 304.
    let log_len = std::fs::read_to_string(ws.path("server.log")).unwrap().len();
    let (summary, log) = once(&ws);
    assert_eq!(summary["totals"]["rows"], 0, "{summary}");
    assert!(!log.contains("file downloaded"), "{log}");
    let requests = log_since(&ws.path("server.log"), log_len);
    assert_eq!(requests.matches("\" 304 ").count(), 4, "{requests}");
    assert_eq!(assert_table_is(&ws, &visible_files(&served)), totals.rows);
}

#[test]
fn the_daemon_ingests_files_added_later_once_and_the_same_content_renamed_is_a_duplicate() {
    let (port, listen) = (free_port(), free_port());
    let ws = Workspace::with_config(&http_config(port, "", &format!("127.0.0.1:{listen}"), ""));
    let served = ws.path("served");
    let spec = AttomSpec { files: 4, rows: 1_000, seed: 31 };
    let mut published = vec![publish(&ws, &served, &spec, 0), publish(&ws, &served, &spec, 1)];
    let _server = PyServer::plain(&served, port, &ws.path("server.log"));
    let mut daemon = spawn_run(&ws, &[], "run.log");
    assert_eq!(wait_for_rows(&ws, &mut daemon, 500), 500, "{}", run_log(&ws));

    // Files appearing on the server while the daemon polls.
    published.push(publish(&ws, &served, &spec, 2));
    published.push(publish(&ws, &served, &spec, 3));
    assert_eq!(wait_for_rows(&ws, &mut daemon, 1_000), 1_000, "{}", run_log(&ws));

    // The same bytes under another name: downloaded, recognised by content, no rows.
    let copy = ws.path("staging/copy of the first pull");
    std::fs::copy(&published[0], &copy).unwrap();
    std::fs::rename(&copy, served.join("copy of the first pull")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(45);
    while metric(listen, "ingestd_files_total", &["outcome=\"duplicate\""]) < 1 {
        assert!(Instant::now() < deadline, "the copy was never seen as a duplicate: {}", run_log(&ws));
        std::thread::sleep(Duration::from_millis(100));
    }
    // A few more polls: still nothing new.
    std::thread::sleep(Duration::from_millis(1_000));
    assert_eq!(assert_table_is(&ws, &published), 1_000);
    assert!(metric(listen, "ingestd_downloads_total", &["outcome=\"not_modified\""]) > 0);
    assert_eq!(metric(listen, "ingestd_downloads_total", &["outcome=\"landed\""]), 5, "each file downloaded once");
    terminate(daemon);
}

/// Ingests three served files, then rewrites one of them with new content (same name) and
/// moves its mtime forward (Python's Last-Modified has whole seconds), and runs `once` again.
/// Returns the untouched files, a copy of the rewritten file's old content, and the rewritten
/// file (new content).
fn rewrite_in_place(allow_overwrites: bool) -> (Workspace, Vec<PathBuf>, PathBuf, PathBuf) {
    let port = free_port();
    let ws = Workspace::with_config(&http_config(port, "", "", &format!("allow_overwrites = {allow_overwrites}")));
    let served = ws.path("served");
    write_attom_files(&served, &AttomSpec { files: 3, rows: 600, seed: 51 }).unwrap();
    let _server = PyServer::plain(&served, port, &ws.path("server.log"));
    assert_eq!(once(&ws).0["totals"]["rows"], 600);

    let (name, bytes, _) = attom_file(&AttomSpec { files: 1, rows: 150, seed: 52 }, 0);
    let target = served.join(&name);
    assert!(target.exists(), "the new content reuses a served name");
    let untouched: Vec<PathBuf> = visible_files(&served).into_iter().filter(|p| *p != target).collect();
    let old_content = ws.path("old content");
    std::fs::copy(&target, &old_content).unwrap();
    let before = std::fs::metadata(&target).unwrap().modified().unwrap();
    std::fs::write(&target, &bytes).unwrap();
    std::fs::File::options().write(true).open(&target).unwrap().set_modified(before + Duration::from_secs(10)).unwrap();
    let (_, log) = once(&ws);
    assert!(log.contains("file downloaded"), "the changed file is downloaded again: {log}");
    (ws, untouched, old_content, target)
}

#[test]
fn a_file_changed_in_place_adds_its_new_rows_when_overwrites_are_allowed() {
    let (ws, untouched, old_content, rewritten) = rewrite_in_place(true);
    // The old rows stay (they were committed); the new content's rows are added.
    let expected: Vec<PathBuf> = untouched.into_iter().chain([old_content, rewritten]).collect();
    assert_eq!(assert_table_is(&ws, &expected), 750);
}

#[test]
fn a_file_changed_in_place_is_ignored_when_overwrites_are_not_allowed() {
    let (ws, untouched, old_content, _) = rewrite_in_place(false);
    let expected: Vec<PathBuf> = untouched.into_iter().chain([old_content]).collect();
    assert_eq!(assert_table_is(&ws, &expected), 600);
    let status = String::from_utf8_lossy(&ws.ingestd(&["status"]).stdout).to_string();
    assert!(status.contains("ignored"), "{status}");
    assert!(visible_files(&ws.path("landing")).is_empty(), "the ignored copy is not left behind");
}

#[test]
fn sub_folders_are_followed_only_when_recursive() {
    let port = free_port();
    let root = tempfile::tempdir().unwrap();
    let served = root.path().join("served");
    let spec = AttomSpec { files: 5, rows: 500, seed: 61 };
    let top = vec![publish_to(&served, &spec, 0), publish_to(&served, &spec, 1)];
    let nested = vec![publish_to(&served.join("sub"), &spec, 2), publish_to(&served.join("sub/deeper"), &spec, 3)];
    let hidden = publish_to(&served.join(".hidden"), &spec, 4);
    let _server = PyServer::plain(&served, port, &root.path().join("server.log"));

    let flat = Workspace::with_config(&http_config(port, "", "", ""));
    assert_eq!(once(&flat).0["totals"]["files"], 2);
    assert_eq!(assert_table_is(&flat, &top), 200);

    let deep = Workspace::with_config(&http_config(port, "", "", "recursive = true"));
    let (summary, log) = once(&deep);
    assert_eq!(summary["totals"]["files"], 4, "{summary}\n{log}");
    let all: Vec<PathBuf> = top.iter().chain(&nested).cloned().collect();
    assert_eq!(assert_table_is(&deep, &all), 400);
    let names = strings(&read_delta(&deep.path("lake/attom")), "_source_file");
    assert!(names.iter().flatten().any(|n| n.starts_with("sub/deeper/CO")), "{names:?}");
    assert!(hidden.exists());
}

/// [`publish`] without a workspace (for a server shared by two workspaces).
fn publish_to(dir: &Path, spec: &AttomSpec, index: usize) -> PathBuf {
    let (name, bytes, _) = attom_file(spec, index);
    std::fs::create_dir_all(dir).unwrap();
    let staged = dir.join(format!(".{name}.partial"));
    std::fs::write(&staged, bytes).unwrap();
    std::fs::rename(&staged, dir.join(&name)).unwrap();
    dir.join(name)
}

/// An HTTP date as Python's http.server writes Last-Modified.
fn http_date(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

#[test]
fn a_json_manifest_names_the_files_and_can_spare_the_requests() {
    let port = free_port();
    let ws = Workspace::with_config(&http_config(port, "manifest.json", "", ""));
    let served = ws.path("served");
    let spec = AttomSpec { files: 4, rows: 800, seed: 71 };
    let files: Vec<PathBuf> = (0..4).map(|i| publish(&ws, &served, &spec, i)).collect();
    let encoded = |p: &PathBuf| p.file_name().unwrap().to_string_lossy().replace(' ', "%20");
    let meta = std::fs::metadata(&files[0]).unwrap();
    let manifest = serde_json::json!([
        // Shows its version: once downloaded, never asked for again while it stays so.
        { "url": encoded(&files[0]), "size": meta.len(), "last_modified": http_date(meta.modified().unwrap()) },
        { "url": encoded(&files[1]) },
        { "url": format!("http://127.0.0.1:{port}/{}", encoded(&files[2])), "size": std::fs::metadata(&files[2]).unwrap().len() },
    ]);
    // files[3] is served but not in the manifest: not fetched.
    std::fs::write(served.join("manifest.json"), manifest.to_string()).unwrap();
    let _server = PyServer::plain(&served, port, &ws.path("server.log"));

    let (summary, log) = once(&ws);
    assert_eq!(summary["totals"]["files"], 3, "{summary}\n{log}");
    assert_eq!(assert_table_is(&ws, &files[..3]), 600);

    let log_len = std::fs::read_to_string(ws.path("server.log")).unwrap().len();
    let (summary, _) = once(&ws);
    assert_eq!(summary["totals"]["rows"], 0);
    let requests = log_since(&ws.path("server.log"), log_len);
    assert!(requests.contains("GET /manifest.json"), "{requests}");
    assert!(!requests.contains(&format!("GET /{} ", encoded(&files[0]))), "the manifest showed the version: {requests}");
    assert_eq!(requests.matches("\" 304 ").count(), 2, "{requests}");
}

#[test]
fn the_server_dying_mid_download_leads_to_a_retry_never_a_partial_ingest() {
    let (port, listen) = (free_port(), free_port());
    let ws = Workspace::with_config(&http_config(port, "", &format!("127.0.0.1:{listen}"), ""));
    let served = ws.path("served");
    // About 600 KB sent 4 KiB every 30 ms: some 4 seconds for the whole file.
    let file = publish(&ws, &served, &AttomSpec { files: 1, rows: 400, seed: 81 }, 0);
    let slow = PyServer::slow(&served, port, 4096, 0.03, &ws.path("server.log"));
    let mut daemon = spawn_run(&ws, &[], "run.log");

    // Kill the server once the download has written part of the body to disk.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(exit) = daemon.try_wait().unwrap() {
            panic!("the daemon exited ({exit}): {}", run_log(&ws));
        }
        if partial_files(&ws).iter().any(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 0)) {
            break;
        }
        assert!(Instant::now() < deadline, "no download in progress seen: {}", run_log(&ws));
        std::thread::sleep(Duration::from_millis(10));
    }
    slow.kill();
    assert_eq!(delta_rows(&ws.path("lake/attom")), 0, "nothing committed from a cut download");
    let _plain = PyServer::plain(&served, port, &ws.path("server.log"));

    assert_eq!(wait_for_rows(&ws, &mut daemon, 400), 400, "{}", run_log(&ws));
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(assert_table_is(&ws, &[file]), 400, "the file once, whole");
    assert!(metric(listen, "ingestd_downloads_total", &["outcome=\"retried\""]) > 0, "{}", run_log(&ws));
    assert_eq!(metric(listen, "ingestd_files_total", &["outcome=\"quarantined\""]), 0);
    assert!(visible_files(&ws.path("quarantine")).is_empty(), "nothing quarantined");
    assert!(partial_files(&ws).is_empty(), "no partial file left");
    terminate(daemon);
}

#[test]
fn a_file_the_server_changed_less_than_min_age_ago_waits_for_a_later_poll() {
    let port = free_port();
    let ws = Workspace::with_config(&http_config(port, "", "", "").replace("min_age = \"0s\"", "min_age = \"1h\""));
    let served = ws.path("served");
    write_attom_files(&served, &AttomSpec { files: 2, rows: 200, seed: 27 }).unwrap();
    let _server = PyServer::plain(&served, port, &ws.path("server.log"));

    // Just written (perhaps still being written, as far as ingestd can tell): not taken.
    let (summary, log) = once(&ws);
    assert_eq!(summary["totals"]["files"], 0, "{summary}\n{log}");
    assert!(visible_files(&ws.path("landing")).is_empty() && partial_files(&ws).is_empty());

    // Last changed two hours ago by the server's clock: taken.
    let two_hours_ago = SystemTime::now() - Duration::from_secs(2 * 3600);
    for file in visible_files(&served) {
        std::fs::File::options().write(true).open(&file).unwrap().set_modified(two_hours_ago).unwrap();
    }
    let (summary, log) = once(&ws);
    assert_eq!((summary["totals"]["files"].as_u64(), summary["totals"]["rows"].as_u64()), (Some(2), Some(200)), "{summary}\n{log}");
    assert_table_is(&ws, &visible_files(&served));
}

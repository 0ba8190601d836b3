//! ingestd as a service: systemd's notify protocol, /readyz and /v1/status, Prometheus (a real
//! server scraping the daemon, promtool on the metrics and the alert rules), the unit files
//! (systemd-analyze), `make install`, and SIGTERM / SIGHUP while files flow.
//!
//! Prometheus, promtool and systemd-analyze come from Debian's packages `prometheus` and
//! `systemd`, which `scripts/test.sh` installs.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests and benches fail loudly on purpose.

mod common;
use common::*;
use ingestd::sample::{AttomSpec, attom_file, write_attom_files};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A generous bound for a daemon to get somewhere; not a performance assertion.
const PATIENCE: Duration = Duration::from_secs(90);

/// The ATTOM config with the HTTP endpoint on `port` and these extra source keys.
fn config_on(port: u16, source_keys: &str) -> String {
    attom_config(&format!("min_age = \"0s\"\n{source_keys}")).replace("listen = \"\"", &format!("listen = \"127.0.0.1:{port}\""))
}

/// Starts `ingestd run` in the workspace with extra environment, logging to run.log.
fn start(ws: &Workspace, env: &[(&str, &str)]) -> Child {
    spawn_run_with_env(ws, &[], env, "run.log")
}

fn log_of(ws: &Workspace) -> String {
    std::fs::read_to_string(ws.path("run.log")).unwrap_or_default()
}

/// Polls `probe` until it returns something or `PATIENCE` passes.
fn eventually<T>(what: &str, ws: &Workspace, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}; log:\n{}", log_of(ws));
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn status(port: u16) -> serde_json::Value {
    serde_json::from_str(&http(port, "/v1/status").1).unwrap_or_default()
}

/// The value of a metric line `name{labels} value` in the text exposition.
fn metric(port: u16, series: &str) -> Option<f64> {
    let body = http(port, "/metrics").1;
    body.lines().find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

fn drop_attom(ws: &Workspace, folder: &str, spec: &AttomSpec, index: usize) -> usize {
    let (name, bytes, totals) = attom_file(spec, index);
    let temp = ws.path(&format!("{folder}.{name}.part"));
    std::fs::write(&temp, bytes).expect("write");
    std::fs::rename(&temp, ws.path(folder).join(&name)).expect("rename into the drop folder");
    totals.rows
}

/// Ids of the table's rows, each with how often it occurs.
fn id_counts(ws: &Workspace) -> std::collections::HashMap<i64, usize> {
    counts_i64(&read_delta(&ws.path("lake/attom")), "id")
}

#[test]
fn systemd_hears_ready_watchdog_status_and_stopping() {
    let ws = Workspace::attom("");
    let socket_path = ws.path("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind notify socket");
    socket.set_read_timeout(Some(Duration::from_millis(200))).expect("timeout");
    drop_attom(&ws, "drop", &AttomSpec { files: 1, rows: 50, seed: 3 }, 0);
    let socket_env = socket_path.to_string_lossy().into_owned();
    // The watchdog at 2 s: ingestd pings at least every second.
    let daemon = start(&ws, &[("NOTIFY_SOCKET", &socket_env), ("WATCHDOG_USEC", "2000000")]);

    let mut heard: Vec<String> = Vec::new();
    let listen_until = |want: &str, heard: &mut Vec<String>| {
        let deadline = Instant::now() + PATIENCE;
        let mut buffer = [0u8; 4096];
        while Instant::now() < deadline {
            if let Ok(n) = socket.recv(&mut buffer) {
                heard.push(String::from_utf8_lossy(&buffer[..n]).into_owned());
                if heard.last().is_some_and(|m| m.lines().any(|l| l == want)) {
                    return;
                }
            }
        }
        panic!("never heard {want}; heard {heard:?}; log:\n{}", log_of(&ws));
    };
    listen_until("READY=1", &mut heard);
    listen_until("WATCHDOG=1", &mut heard);
    listen_until("WATCHDOG=1", &mut heard);
    listen_until("STATUS=1 sources, 0 files waiting, 1 committed", &mut heard);
    signal(&daemon, "TERM");
    listen_until("STOPPING=1", &mut heard);
    let mut daemon = daemon;
    assert!(daemon.wait().expect("wait").success());
}

#[test]
fn readyz_and_status_follow_the_sinks() {
    let port = free_port();
    let ws = Workspace::with_config(&config_on(port, ""));
    let spec = AttomSpec { files: 3, rows: 300, seed: 4 };
    let mut rows = drop_attom(&ws, "drop", &spec, 0);
    let daemon = start(&ws, &[]);
    eventually("the first commit", &ws, || (status(port)["sources"]["attom"]["committed_files"] == 1).then_some(()));
    assert_eq!(http(port, "/healthz"), (200, "ok\n".to_string()));
    assert_eq!(http(port, "/readyz").0, 200);
    let snapshot = status(port);
    let attom = &snapshot["sources"]["attom"];
    assert_eq!(attom["watched"], true);
    assert_eq!(attom["committed_rows"], rows);
    assert!(attom["sinks"]["lake"]["last_commit"].as_str().is_some_and(|c| c.starts_with("delta version")), "{snapshot}");
    assert_eq!(snapshot["config"]["sources"]["attom"]["sinks"][0], "lake", "the config in force, defaults filled in: {snapshot}");
    assert_eq!(snapshot["config"]["shutdown_timeout"], "30s");

    // The table's storage goes away: the next batch fails, /readyz says which sink and why.
    let table = ws.path("lake/attom");
    std::fs::rename(&table, ws.path("lake/attom.away")).expect("move the table away");
    std::fs::write(&table, b"not a table").expect("block the path");
    rows += drop_attom(&ws, "drop", &spec, 1);
    let (code, body) = eventually("/readyz to fail", &ws, || Some(http(port, "/readyz")).filter(|(code, _)| *code == 503));
    assert_eq!(code, 503);
    assert!(body.contains("sink lake"), "{body}");
    assert!(status(port)["sources"]["attom"]["last_error"].is_string());

    // It comes back: the batch is retried and committed, and the daemon is ready again.
    std::fs::remove_file(&table).expect("unblock");
    std::fs::rename(ws.path("lake/attom.away"), &table).expect("move the table back");
    eventually("/readyz to recover", &ws, || (http(port, "/readyz").0 == 200).then_some(()));
    eventually("the retried batch", &ws, || (status(port)["sources"]["attom"]["committed_rows"] == rows).then_some(()));
    terminate(daemon);
    assert_eq!(delta_rows(&table), rows);
}

/// Runs promtool with `args` (stdin from `input`); returns its exit success and its output.
fn promtool(args: &[&str], input: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; scripts/test.sh installs it)");
    child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("feed promtool");
    let output = child.wait_with_output().expect("promtool");
    (output.status.success(), format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr)))
}

#[test]
fn prometheus_scrapes_the_rows_committed_and_promtool_accepts_metrics_and_rules() {
    let port = free_port();
    let ws = Workspace::with_config(&config_on(port, ""));
    let totals = write_attom_files(&ws.path("drop"), &AttomSpec { files: 4, rows: 1_234, seed: 8 }).expect("files");
    let daemon = start(&ws, &[]);
    eventually("the commits", &ws, || (status(port)["sources"]["attom"]["committed_rows"] == totals.rows).then_some(()));

    let exposition = http(port, "/metrics").1;
    for family in [
        "ingestd_files_total{outcome=\"committed\",source=\"attom\"} 4",
        "ingestd_rows_total{sink=\"lake\",source=\"attom\"} 1234",
        "ingestd_commit_duration_seconds_count{sink=\"lake\",source=\"attom\"}",
        "ingestd_batch_duration_seconds_bucket",
        "ingestd_pending_files{source=\"attom\"} 0",
        "ingestd_oldest_pending_file_age_seconds",
        "ingestd_batches_stuck{source=\"attom\"} 0",
        "ingestd_last_commit_timestamp_seconds{sink=\"lake\",source=\"attom\"}",
        "ingestd_build_info{version=",
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
    ] {
        assert!(exposition.contains(family), "no {family} in:\n{exposition}");
    }
    let (ok, output) = promtool(&["check", "metrics"], &exposition);
    assert!(ok && output.trim().is_empty(), "promtool check metrics: {output}");
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/prometheus/ingestd.rules.yml");
    let (ok, output) = promtool(&["check", "rules", &rules.to_string_lossy()], "");
    assert!(ok && output.contains("SUCCESS: 7 rules found"), "promtool check rules: {output}");
    let rule_tests = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/prometheus/ingestd.rules.test.yml");
    let (ok, output) = promtool(&["test", "rules", &rule_tests.to_string_lossy()], "");
    assert!(ok && output.contains("SUCCESS"), "promtool test rules: {output}");

    // A real Prometheus scrapes the daemon; its query API must give back the rows committed.
    let prometheus_port = free_port();
    std::fs::write(
        ws.path("prometheus.yml"),
        format!("global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: ingestd\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"),
    )
    .expect("prometheus config");
    let prometheus_log = std::fs::File::create(ws.path("prometheus.log")).expect("log");
    let mut prometheus = dies_with_test(&mut Command::new("prometheus"))
        .arg(format!("--config.file={}", ws.path("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", ws.path("tsdb").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{prometheus_port}"))
        .stdout(Stdio::null())
        .stderr(prometheus_log)
        .spawn()
        .expect("prometheus (Debian package prometheus; scripts/test.sh installs it)");
    let query = "/api/v1/query?query=sum(ingestd_rows_total%7Bjob%3D%22ingestd%22%7D)";
    let answer = eventually("Prometheus to scrape ingestd", &ws, || {
        let (code, body) = http(prometheus_port, query);
        let value: serde_json::Value = serde_json::from_str(&body).ok()?;
        let sample = value["data"]["result"][0]["value"][1].as_str()?.to_string();
        (code == 200).then_some(sample)
    });
    let _ = prometheus.kill();
    let _ = prometheus.wait();
    terminate(daemon);
    assert_eq!(
        answer,
        totals.rows.to_string(),
        "Prometheus log:\n{}",
        std::fs::read_to_string(ws.path("prometheus.log")).unwrap_or_default()
    );
}

/// A crash between the commits of two sinks, then the batch's file deleted: the batch cannot be
/// completed, and says so on every channel an operator watches.
#[test]
fn a_stuck_batch_shows_on_readyz_status_and_metrics() {
    let port = free_port();
    let config = config_on(port, "").replace("sinks = [\"lake\"]", "sinks = [\"lake\", \"files\"]")
        + "[sinks.files]\nkind = \"parquet\"\npath = \"files\"\n";
    let ws = Workspace::with_config(&config);
    drop_attom(&ws, "drop", &AttomSpec { files: 1, rows: 50, seed: 5 }, 0);
    let crashed = Command::new(BIN)
        .args(["once"])
        .current_dir(ws.path(""))
        .env("INGESTD_FAULT", "after_sink_commit")
        .output()
        .expect("run ingestd once");
    assert!(!crashed.status.success(), "the fault point aborts after the lake's commit");
    assert_eq!(delta_rows(&ws.path("lake/attom")), 50, "the lake holds the batch");
    for file in std::fs::read_dir(ws.path("drop")).expect("drop folder") {
        std::fs::remove_file(file.expect("entry").path()).expect("delete the batch's file");
    }
    let daemon = start(&ws, &[]);
    let (_, body) = eventually("/readyz to name the stuck batch", &ws, || Some(http(port, "/readyz")).filter(|(_, b)| b.contains("stuck")));
    assert!(body.contains("source attom: batch 1 is stuck, missing from files: some of its files are gone or changed"), "{body}");
    assert_eq!(http(port, "/readyz").0, 503);
    let stuck = &status(port)["sources"]["attom"]["stuck_batches"];
    assert_eq!(stuck[0]["batch"], 1, "{stuck}");
    assert_eq!(stuck[0]["missing_sinks"], serde_json::json!(["files"]));
    assert_eq!(metric(port, "ingestd_batches_stuck{source=\"attom\"}"), Some(1.0));
    assert!(metric(port, "ingestd_errors_total{kind=\"stuck\",source=\"attom\"}").is_some_and(|n| n >= 1.0));
    terminate(daemon);
    let dataset = ws.path("files");
    assert!(!dataset.exists() || row_count(&read_parquet_dir(&dataset)) == 0, "nothing was made up for the sink that lacks it");
}

#[test]
fn unit_files_verify_rate_as_hardened_and_install() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Staged like a package, so the units name an ExecStart binary that exists.
    let stage = tempfile::tempdir().expect("stage");
    let target = Path::new(BIN).parent().and_then(Path::parent).expect("target dir");
    let make = Command::new("make")
        .args(["install", &format!("DESTDIR={}", stage.path().display()), &format!("CARGO_TARGET_DIR={}", target.display())])
        .current_dir(repo)
        .output()
        .expect("make");
    assert!(make.status.success(), "make install: {}", String::from_utf8_lossy(&make.stderr));
    for installed in [
        "usr/bin/ingestd",
        "usr/lib/systemd/system/ingestd.service",
        "usr/lib/systemd/system/ingestd@.service",
        "usr/lib/sysusers.d/ingestd.conf",
        "usr/lib/tmpfiles.d/ingestd.conf",
        "usr/share/doc/ingestd/prometheus/ingestd.rules.yml",
        "etc/ingestd/config.toml",
    ] {
        assert!(stage.path().join(installed).exists(), "make install left out {installed}");
    }
    // The installed config is valid and names only absolute folders.
    let config = stage.path().join("etc/ingestd/config.toml");
    let check = Command::new(BIN).args(["--config", &config.to_string_lossy(), "check"]).output().expect("check");
    assert!(check.status.success(), "ingestd check: {}{}", String::from_utf8_lossy(&check.stdout), String::from_utf8_lossy(&check.stderr));
    let text = std::fs::read_to_string(&config).expect("config");
    assert!(!text.contains("\"./"), "relative path left in the installed config:\n{text}");

    // The units as installed, with ExecStart pointing at the staged binary (nothing is
    // installed on this machine itself); a template is verified through an instance of it.
    let units = stage.path().join("units");
    std::fs::create_dir_all(&units).expect("units folder");
    let staged_binary = stage.path().join("usr/bin/ingestd");
    for (installed, as_name) in [("ingestd.service", "ingestd.service"), ("ingestd@.service", "ingestd@attom.service")] {
        let text = std::fs::read_to_string(stage.path().join("usr/lib/systemd/system").join(installed)).expect("unit");
        std::fs::write(units.join(as_name), text.replace("/usr/bin/ingestd", &staged_binary.to_string_lossy())).expect("unit copy");
    }
    for unit in ["ingestd.service", "ingestd@attom.service"] {
        let verify = Command::new("systemd-analyze")
            .args(["verify", "--man=no", &units.join(unit).to_string_lossy()])
            .output()
            .expect("systemd-analyze (Debian package systemd)");
        let said = format!("{}{}", String::from_utf8_lossy(&verify.stdout), String::from_utf8_lossy(&verify.stderr));
        assert!(verify.status.success() && !said.contains(unit), "systemd-analyze verify {unit}:\n{said}");
    }
    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", &units.join("ingestd.service").to_string_lossy()])
        .output()
        .expect("systemd-analyze security");
    let said = String::from_utf8_lossy(&security.stdout).into_owned();
    let exposure: f64 = said
        .lines()
        .find_map(|l| l.split("Overall exposure level for ingestd.service: ").nth(1)?.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{said}{}", String::from_utf8_lossy(&security.stderr)));
    assert!(exposure <= 2.0, "exposure {exposure} > 2.0:\n{said}");
}

/// A config whose one batch takes all 60 files, stopping with `shutdown_timeout`.
fn large_batch_config(port: u16, shutdown_timeout: &str) -> String {
    config_on(port, "[sources.attom.batch]\nmax_files = 60\nmax_delay = \"60s\"\n")
        .replace("instance = \"test\"", &format!("instance = \"test\"\nshutdown_timeout = \"{shutdown_timeout}\""))
}

/// One batch of 60 files of 5,000 records (some 450 MB of JSON), so SIGTERM lands mid-batch.
fn large_batch(ws: &Workspace) -> std::collections::HashMap<Fingerprint, usize> {
    write_attom_files(&ws.path("drop"), &AttomSpec { files: 60, rows: 300_000, seed: 12 }).expect("files");
    fingerprints_of_files(&walk_files(&ws.path("drop")))
}

/// Starts the daemon on one large batch, stopping with `shutdown_timeout`, and sends SIGTERM
/// once the batch is in flight; the daemon must exit 0. Returns the workspace, the rows the
/// files hold, how long the exit took, and the daemon's log.
fn sigterm_mid_batch(shutdown_timeout: &str) -> (Workspace, std::collections::HashMap<Fingerprint, usize>, Duration, String) {
    let port = free_port();
    let ws = Workspace::with_config(&large_batch_config(port, shutdown_timeout));
    let expected = large_batch(&ws);
    let mut daemon = start(&ws, &[]);
    eventually("a batch in flight", &ws, || (status(port)["sources"]["attom"]["in_flight"].as_u64() > Some(0)).then_some(()));
    let sent = Instant::now();
    signal(&daemon, "TERM");
    let exit = daemon.wait().expect("wait");
    let took = sent.elapsed();
    let log = log_of(&ws);
    assert!(exit.success(), "exit {exit}; log:\n{log}");
    (ws, expected, took, log)
}

#[test]
fn sigterm_mid_batch_finishes_it_within_the_timeout() {
    let (ws, expected, _, log) = sigterm_mid_batch("5m");
    // The batch in flight was finished before the exit: every row is in, nothing to settle.
    assert!(!log.contains("abandoned"), "{log}");
    let table = fingerprints_of_table(&read_delta(&ws.path("lake/attom")));
    assert_eq!(compare_rows(&expected, &table), (0, 0, 0));
    assert_eq!(ws.once()["totals"]["rows"], 0, "a restart finds nothing left to do");
}

#[test]
fn sigterm_mid_batch_past_the_timeout_abandons_it_safely() {
    let (ws, expected, took, log) = sigterm_mid_batch("0s");
    assert!(log.contains("abandoned"), "{log}");
    // Documented bound: shutdown_timeout plus up to a second for decoding threads (here
    // generous: a loaded CI machine), and well short of the batch itself finishing.
    assert!(took < Duration::from_secs(10), "exit took {took:?}");
    // The next start settles the abandoned batch: every row exactly once.
    ws.once();
    let table = fingerprints_of_table(&read_delta(&ws.path("lake/attom")));
    assert_eq!(compare_rows(&expected, &table), (0, 0, 0));
}

#[test]
fn sighup_applies_a_changed_config_and_refuses_a_broken_one_without_losing_a_file() {
    let port = free_port();
    let ws = Workspace::with_config(&config_on(port, ""));
    let spec = AttomSpec { files: 8, rows: 1_600, seed: 6 };
    let daemon = start(&ws, &[]);
    let mut rows = drop_attom(&ws, "drop", &spec, 0);
    eventually("the first file", &ws, || (delta_rows(&ws.path("lake/attom")) == rows).then_some(()));

    // Changed: a second source into the same table, and a new mapping for zip codes.
    let other_columns = ATTOM_COLUMNS.replace("[sources.attom.columns]", "[sources.other.columns]");
    let changed = config_on(port, "").replace("path = \"address.postal1\"", "path = \"address.nowhere\"")
        + &format!("\n[sources.other]\npath = \"drop2\"\nsinks = [\"lake\"]\nmin_age = \"0s\"\n{other_columns}");
    std::fs::write(ws.path("config.toml"), changed).expect("config");
    // A file arriving during the reload is committed once, under one mapping or the other.
    rows += drop_attom(&ws, "drop", &spec, 1);
    signal(&daemon, "HUP");
    eventually("the reload", &ws, || (metric(port, "ingestd_config_reloads_total{outcome=\"applied\"}") == Some(1.0)).then_some(()));
    eventually("the file dropped during the reload", &ws, || (delta_rows(&ws.path("lake/attom")) == rows).then_some(()));
    let before_new_mapping = delta_rows(&ws.path("lake/attom"));
    let nulls_before = strings(&read_delta(&ws.path("lake/attom")), "zipcode").iter().filter(|z| z.is_none()).count();
    let new_mapping_rows = drop_attom(&ws, "drop", &spec, 2);
    std::fs::create_dir_all(ws.path("drop2")).expect("drop2");
    let other_rows = drop_attom(&ws, "drop2", &spec, 3);
    rows += new_mapping_rows + other_rows;
    eventually("both sources after the reload", &ws, || (delta_rows(&ws.path("lake/attom")) == rows).then_some(()));
    assert_eq!(before_new_mapping + new_mapping_rows + other_rows, rows);
    let nulls_after = strings(&read_delta(&ws.path("lake/attom")), "zipcode").iter().filter(|z| z.is_none()).count();
    assert!(nulls_after - nulls_before >= new_mapping_rows, "the new mapping (zip codes from a missing field) applies to new files");

    // Broken: refused, counted, reported; the running config goes on ingesting.
    std::fs::write(ws.path("config.toml"), "this is [not toml").expect("config");
    signal(&daemon, "HUP");
    eventually("the refusal", &ws, || (metric(port, "ingestd_config_reloads_total{outcome=\"refused\"}") == Some(1.0)).then_some(()));
    assert!(status(port)["last_reload_error"].as_str().is_some_and(|e| e.contains("config.toml")), "{}", status(port));
    rows += drop_attom(&ws, "drop2", &spec, 4);
    rows += drop_attom(&ws, "drop", &spec, 5);
    eventually("files after the refused reload", &ws, || (delta_rows(&ws.path("lake/attom")) == rows).then_some(()));
    terminate(daemon);

    let ids = id_counts(&ws);
    assert_eq!(ids.values().sum::<usize>(), rows);
    assert!(ids.values().all(|&n| n == 1), "every record of every file exactly once");
    assert!(log_of(&ws).contains("config reload refused"), "{}", log_of(&ws));
}

//! Failures around the core path: several writers on one table, two daemons on one folder, a
//! damaged ledger, a full disk, storms of files, churn during scans, files rewritten in place.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests and benches fail loudly on purpose.

mod common;
use common::*;
use ingestd::sample::{AttomSpec, write_attom_files};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

fn staged_files(ws: &Workspace, files: usize, rows: usize, seed: u64) -> Vec<PathBuf> {
    write_attom_files(&ws.path("staging"), &AttomSpec { files, rows, seed }).unwrap();
    let mut staged: Vec<PathBuf> = std::fs::read_dir(ws.path("staging")).unwrap().map(|e| e.unwrap().path()).collect();
    staged.sort();
    staged
}

fn move_into(files: &[PathBuf], folder: &std::path::Path) {
    std::fs::create_dir_all(folder).unwrap();
    for f in files {
        std::fs::rename(f, folder.join(f.file_name().unwrap())).unwrap();
    }
}

#[test]
fn two_daemons_append_to_one_delta_table_at_once_and_every_row_lands_once() {
    let base = attom_config("min_age = \"0s\"\n[sources.attom.batch]\nmax_files = 2\nmax_delay = \"5ms\"");
    let ws = Workspace::with_config(&base);
    for who in ["a", "b"] {
        let config = base
            .replace("instance = \"test\"", &format!("instance = \"{who}\"\nstate_dir = \"state_{who}\""))
            .replace("path = \"drop\"", &format!("path = \"drop_{who}\""));
        std::fs::write(ws.path(&format!("config_{who}.toml")), config).unwrap();
    }
    let staged = staged_files(&ws, 40, 40_000, 77);
    let expected = fingerprints_of_files(&staged);
    let a = spawn_run(&ws, &["--config", "config_a.toml"], "a.log");
    let b = spawn_run(&ws, &["--config", "config_b.toml"], "b.log");
    // Both keep committing small batches at the same time, so commits race for the same versions.
    for pair in staged.chunks(2) {
        move_into(&pair[..1], &ws.path("drop_a"));
        move_into(&pair[1..], &ws.path("drop_b"));
    }
    let seen = wait_until(Duration::from_secs(120), 40_000, || delta_rows(&ws.path("lake/attom")));
    terminate(a);
    terminate(b);
    assert_eq!(seen, 40_000);
    let table = read_delta(&ws.path("lake/attom"));
    assert_eq!(compare_rows(&expected, &fingerprints_of_table(&table)), (0, 0, 0));
}

#[test]
fn a_second_daemon_on_the_same_folder_is_refused_with_a_clear_error() {
    let ws = Workspace::attom("");
    let first = spawn_run(&ws, &[], "first.log");
    // Its sources (and their folder locks) are set up before it logs that it runs.
    let running = || usize::from(std::fs::read_to_string(ws.path("first.log")).unwrap_or_default().contains("ingestd running"));
    assert_eq!(wait_until(Duration::from_secs(30), 1, running), 1, "the first daemon did not start");
    let config = std::fs::read_to_string(ws.path("config.toml"))
        .unwrap()
        .replace("instance = \"test\"", "instance = \"other\"\nstate_dir = \"state2\"");
    std::fs::write(ws.path("config2.toml"), config).unwrap();
    let out = ws.ingestd(&["run", "--config", "config2.toml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("already watched by another ingestd"), "{stderr}");
    terminate(first);
}

#[test]
fn a_truncated_ledger_is_reported_set_aside_and_rebuilt_without_duplicates() {
    let ws = Workspace::attom("");
    let staged = staged_files(&ws, 30, 3_000, 5);
    move_into(&staged, &ws.path("drop"));
    assert_eq!(ws.once()["totals"]["rows"], 3_000);
    let ledger = ws.path("state/ledger.sqlite");
    let len = std::fs::metadata(&ledger).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&ledger).unwrap().set_len(len / 2).unwrap();

    let out = ws.ingestd(&["once", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("damaged"), "the damage must be reported: {stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["totals"]["rows"], 0);
    assert_eq!(delta_rows(&ws.path("lake/attom")), 3_000);
    let aside = std::fs::read_dir(ws.path("state"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().contains("damaged"))
        .count();
    assert_eq!(aside, 1, "the damaged ledger is kept aside for inspection");
}

#[test]
fn a_full_disk_is_reported_backed_off_from_and_survived() {
    let port = free_port();
    let config = attom_config("min_age = \"0s\"\n[sources.attom.batch]\nmax_files = 5\nmax_delay = \"5ms\"")
        .replace("listen = \"\"", &format!("listen = \"127.0.0.1:{port}\""));
    let ws = Workspace::with_config(&config);
    let lake = ws.path("lake");
    std::fs::create_dir_all(&lake).unwrap();
    let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"]).arg(&lake).output();
    match mounted {
        Ok(out) if out.status.success() => {}
        Ok(out) => {
            eprintln!("SKIPPED: cannot mount a size-limited tmpfs here: {}", String::from_utf8_lossy(&out.stderr).trim());
            return;
        }
        Err(e) => {
            eprintln!("SKIPPED: cannot run mount here: {e}");
            return;
        }
    }
    let unmount = |lake: &std::path::Path| {
        let _ = Command::new("umount").arg(lake).status();
    };
    let staged = staged_files(&ws, 80, 80_000, 9);
    let expected = fingerprints_of_files(&staged);
    move_into(&staged, &ws.path("drop"));
    let daemon = spawn_run(&ws, &[], "run.log");
    let full = wait_until(Duration::from_secs(60), 1, || {
        std::fs::read_to_string(ws.path("run.log")).unwrap_or_default().matches("batch failed").count()
    });
    let before = delta_rows(&ws.path("lake/attom"));
    // The failure is counted where Prometheus sees it.
    let metrics = http_get(port, "/metrics");
    let sink_errors: f64 = metrics
        .lines()
        .find(|l| l.starts_with("ingestd_errors_total") && l.contains("kind=\"sink\""))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    // Space returns.
    let grown = Command::new("mount").args(["-o", "remount,size=256m"]).arg(&lake).status().unwrap();
    assert!(grown.success());
    let seen = wait_until(Duration::from_secs(180), 80_000, || delta_rows(&ws.path("lake/attom")));
    terminate(daemon);
    let table = read_delta(&ws.path("lake/attom"));
    unmount(&lake);
    assert!(full >= 1, "the disk never filled: the test proves nothing");
    assert!(sink_errors >= 1.0, "the full disk is not in the metrics:\n{metrics}");
    assert!(before < 80_000, "everything fitted in 1 MiB: the test proves nothing");
    assert_eq!(seen, 80_000, "did not resume after space returned");
    assert_eq!(compare_rows(&expected, &fingerprints_of_table(&table)), (0, 0, 0));
    let log = std::fs::read_to_string(ws.path("run.log")).unwrap();
    assert!(log.contains("No space left on device") || log.contains("os error 28"), "the cause must be in the log");
}

const IDS_CONFIG: &str = r#"
instance = "t"
[sources.events]
path = "drop"
min_age = "0s"
relist_interval = "RELIST"
sinks = ["lake"]
[sources.events.batch]
max_files = 2000
[sources.events.columns]
id = { path = "id", type = "int64" }
[sinks.lake]
kind = "delta"
uri = "lake"
"#;

fn ids_in_table(ws: &Workspace) -> std::collections::HashMap<i64, usize> {
    counts_i64(&read_delta(&ws.path("lake")), "id")
}

/// Writes `{"id": id}` under a hidden name and renames it into the drop folder as `name`.
fn drop_id(ws: &Workspace, name: &str, id: usize) {
    let tmp = ws.path("drop").join(format!(".{name}.tmp"));
    std::fs::write(&tmp, format!("{{\"id\": {id}}}\n")).unwrap();
    std::fs::rename(&tmp, ws.path("drop").join(name)).unwrap();
}

#[test]
fn a_storm_of_files_faster_than_they_are_processed_is_all_ingested() {
    let files: usize = std::env::var("STORM_FILES").ok().and_then(|n| n.parse().ok()).unwrap_or(100_000);
    let ws = Workspace::with_config(&IDS_CONFIG.replace("RELIST", "5s"));
    let daemon = spawn_run(&ws, &[], "run.log");
    std::thread::sleep(Duration::from_millis(300));
    for id in 0..files {
        drop_id(&ws, &format!("e{id:06}.ndjson"), id);
    }
    let seen = wait_until(Duration::from_secs(600), files, || delta_rows(&ws.path("lake")));
    terminate(daemon);
    assert_eq!(seen, files, "files lost in the storm");
    let ids = ids_in_table(&ws);
    assert_eq!(ids.len(), files);
    assert!(ids.values().all(|&n| n == 1), "a file ingested twice");
}

#[test]
fn renames_and_deletes_during_scans_crash_nothing() {
    let ws = Workspace::with_config(&IDS_CONFIG.replace("RELIST", "50ms"));
    let mut daemon = spawn_run(&ws, &[], "run.log");
    let mut kept = Vec::new();
    for id in 0..3_000usize {
        let name = format!("c{id}.ndjson");
        drop_id(&ws, &name, id);
        match id % 3 {
            0 => kept.push(id),
            1 => {
                std::fs::rename(ws.path("drop").join(&name), ws.path("drop").join(format!("r{id}.ndjson"))).map(|_| kept.push(id)).unwrap()
            }
            _ => std::fs::remove_file(ws.path("drop").join(&name)).unwrap(),
        }
    }
    let seen = wait_until(Duration::from_secs(120), kept.len(), || {
        let ids = if ws.path("lake/_delta_log").exists() { ids_in_table(&ws) } else { Default::default() };
        kept.iter().filter(|id| ids.contains_key(&(**id as i64))).count()
    });
    assert!(daemon.try_wait().unwrap().is_none(), "the daemon died: {}", std::fs::read_to_string(ws.path("run.log")).unwrap());
    terminate(daemon);
    assert_eq!(seen, kept.len(), "a file that stayed was never ingested");
    let ids = ids_in_table(&ws);
    assert!(ids.values().all(|&n| n == 1), "a file ingested twice (a rename is not new content)");
    assert!(ids.keys().all(|id| (0..3_000).contains(id)));
}

#[test]
fn a_file_rewritten_after_commit_follows_allow_overwrites() {
    for (allow, added) in [(true, 1), (false, 0)] {
        let ws = Workspace::with_config(
            &IDS_CONFIG.replace("RELIST", "30s").replace("sinks = [\"lake\"]", &format!("sinks = [\"lake\"]\nallow_overwrites = {allow}")),
        );
        ws.drop_file("f.ndjson", b"{\"id\": 1}\n");
        assert_eq!(ws.once()["totals"]["rows"], 1);
        std::thread::sleep(Duration::from_millis(20));
        ws.drop_file("f.ndjson", b"{\"id\": 2}\n");
        assert_eq!(ws.once()["totals"]["rows"], added, "allow_overwrites = {allow}");
        let status = String::from_utf8_lossy(&ws.ingestd(&["status"]).stdout).to_string();
        assert_eq!(status.contains("ignored"), !allow, "{status}");
        assert_eq!(delta_rows(&ws.path("lake")), 1 + added as usize);
    }
}

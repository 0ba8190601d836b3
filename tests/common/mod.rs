//! Helpers for the integration tests: a workspace folder with a config, the real binary, and a
//! reader of the resulting Delta table that goes through the Delta log like any other reader.
#![allow(dead_code)]

pub mod druid_mock;
pub mod kafka;
pub mod s3;
#[cfg(feature = "fault-injection")]
pub mod torture;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, Int64Type};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const BIN: &str = env!("CARGO_BIN_EXE_ingestd");

/// A temporary folder holding a config, a drop folder, a lake, state and quarantine.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

/// The ATTOM example mapping plus the record id, so rows can be fingerprinted.
pub const ATTOM_COLUMNS: &str = r#"
[sources.attom.columns]
id = { path = "identifier.Id", type = "int64" }
transaction_date = { path = "sale.saleTransDate", type = "date", format = "%Y-%-m-%-d" }
zipcode = { path = "address.postal1", type = "string" }
sale_price = { path = "sale.amount.saleamt", type = "int64" }
lot_size = { path = "lot.lotSize1", type = "float64" }
size = { path = "building.size.universalsize", type = "int64" }
latitude = { path = "location.latitude", type = "float64" }
longitude = { path = "location.longitude", type = "float64" }
type = { path = "summary.proptype", type = "string" }
year_built = { path = "summary.yearbuilt", type = "int32", null_if = ["0"] }
"#;

/// The ATTOM config with these extra keys for the source (no `min_age` unless given).
pub fn attom_config(source_keys: &str) -> String {
    format!(
        "instance = \"test\"\n[http]\nlisten = \"\"\n[sources.attom]\npath = \"drop\"\nsinks = [\"lake\"]\n{source_keys}\n{ATTOM_COLUMNS}\n[sinks.lake]\nkind = \"delta\"\nuri = \"lake/attom\"\n"
    )
}

impl Workspace {
    /// A workspace whose config has one source `attom` (extra source keys in `source_extra`)
    /// writing to the Delta table `lake/attom`.
    pub fn attom(source_extra: &str) -> Workspace {
        Workspace::with_config(&attom_config(&format!("min_age = \"0s\"\n{source_extra}")))
    }

    pub fn with_config(config: &str) -> Workspace {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("config.toml"), config).expect("write config");
        std::fs::create_dir_all(dir.path().join("drop")).expect("drop folder");
        Workspace { dir }
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    pub fn drop_file(&self, name: &str, bytes: &[u8]) {
        std::fs::write(self.path("drop").join(name), bytes).expect("drop file");
    }

    /// Runs `ingestd ARGS` in the workspace.
    pub fn ingestd(&self, args: &[&str]) -> Output {
        Command::new(BIN).args(args).current_dir(self.dir.path()).env("INGESTD_LOG_FORMAT", "text").output().expect("run ingestd")
    }

    /// Runs `ingestd once --json` and returns its summary; panics with the logs on failure.
    pub fn once(&self) -> serde_json::Value {
        let out = self.ingestd(&["once", "--json"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.code() == Some(0) || out.status.code() == Some(2),
            "ingestd once failed: {}\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("bad summary {stdout:?}: {e}"))
    }
}

/// The rows of a Delta table, read through its log with the deltalake crate.
pub fn read_delta(table: &Path) -> Vec<RecordBatch> {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let uris: Vec<String> = rt.block_on(async {
        let url = url::Url::from_directory_path(table.canonicalize().expect("table path")).expect("url");
        let table = deltalake::open_table(url).await.expect("open delta table");
        table.get_file_uris().expect("file uris").collect()
    });
    let mut batches = Vec::new();
    for uri in uris {
        let path = url::Url::parse(&uri).ok().and_then(|u| u.to_file_path().ok()).unwrap_or_else(|| PathBuf::from(&uri));
        let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let reader = ParquetRecordBatchReaderBuilder::try_new(file).expect("parquet").build().expect("reader");
        batches.extend(reader.map(|b| b.expect("batch")));
    }
    batches
}

pub fn row_count(batches: &[RecordBatch]) -> usize {
    batches.iter().map(|b| b.num_rows()).sum()
}

/// Sum of a non-null int64 column, and how many nulls it has.
pub fn sum_i64(batches: &[RecordBatch], column: &str) -> (i64, usize) {
    let mut sum = 0;
    let mut nulls = 0;
    for b in batches {
        let a = b.column_by_name(column).unwrap_or_else(|| panic!("no column {column}")).as_primitive::<Int64Type>();
        nulls += a.null_count();
        sum += a.iter().flatten().sum::<i64>();
    }
    (sum, nulls)
}

pub fn sum_f64(batches: &[RecordBatch], column: &str) -> f64 {
    batches.iter().map(|b| b.column_by_name(column).expect("column").as_primitive::<Float64Type>().iter().flatten().sum::<f64>()).sum()
}

/// How many times each value of an int64 column occurs.
pub fn counts_i64(batches: &[RecordBatch], column: &str) -> HashMap<i64, usize> {
    let mut counts = HashMap::new();
    for b in batches {
        for v in b.column_by_name(column).expect("column").as_primitive::<Int64Type>().iter().flatten() {
            *counts.entry(v).or_default() += 1;
        }
    }
    counts
}

/// Values of a string column, in table order.
pub fn strings(batches: &[RecordBatch], column: &str) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for b in batches {
        let a = b.column_by_name(column).unwrap_or_else(|| panic!("no column {column}")).as_string::<i32>();
        out.extend((0..a.len()).map(|i| (!a.is_null(i)).then(|| a.value(i).to_string())));
    }
    out
}

/// The rows of a Parquet dataset folder: every visible `*.parquet` file below it.
pub fn read_parquet_dir(dir: &Path) -> Vec<RecordBatch> {
    let mut batches = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        for entry in std::fs::read_dir(&folder).expect("read dataset folder") {
            let path = entry.expect("entry").path();
            let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            if name.starts_with('.') || name.starts_with('_') {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else if name.ends_with(".parquet") {
                let file = std::fs::File::open(&path).expect("open parquet");
                let reader = ParquetRecordBatchReaderBuilder::try_new(file).expect("parquet").build().expect("reader");
                batches.extend(reader.map(|b| b.expect("batch")));
            }
        }
    }
    batches
}

/// A row's identity and values: (id, sale price, zip code, transaction date in days).
pub type Fingerprint = (i64, Option<i64>, Option<String>, Option<i32>);

/// Fingerprints of every record in ATTOM files, computed from the JSON itself (not by ingestd).
pub fn fingerprints_of_files(paths: &[PathBuf]) -> HashMap<Fingerprint, usize> {
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
    let mut out = HashMap::new();
    for path in paths {
        let records: Vec<serde_json::Value> = serde_json::from_slice(&std::fs::read(path).expect("read")).expect("json");
        for r in records {
            let id = r["identifier"]["Id"].as_i64().expect("id");
            let price = r["sale"]["amount"]["saleamt"].as_i64();
            let zip = r["address"]["postal1"].as_str().map(String::from);
            let date = r["sale"]["saleTransDate"]
                .as_str()
                .and_then(|d| chrono::NaiveDate::parse_from_str(d, "%Y-%-m-%-d").ok())
                .map(|d| (d - epoch).num_days() as i32);
            *out.entry((id, price, zip, date)).or_default() += 1;
        }
    }
    out
}

/// Fingerprints of every row of a table read back.
pub fn fingerprints_of_table(batches: &[RecordBatch]) -> HashMap<Fingerprint, usize> {
    use arrow::datatypes::Date32Type;
    let mut out = HashMap::new();
    for b in batches {
        let id = b.column_by_name("id").expect("id").as_primitive::<Int64Type>();
        let price = b.column_by_name("sale_price").expect("sale_price").as_primitive::<Int64Type>();
        let zip = b.column_by_name("zipcode").expect("zipcode").as_string::<i32>();
        let date = b.column_by_name("transaction_date").expect("transaction_date").as_primitive::<Date32Type>();
        for i in 0..b.num_rows() {
            let key = (
                id.value(i),
                (!price.is_null(i)).then(|| price.value(i)),
                (!zip.is_null(i)).then(|| zip.value(i).to_string()),
                (!date.is_null(i)).then(|| date.value(i)),
            );
            *out.entry(key).or_default() += 1;
        }
    }
    out
}

/// Compares two multisets of rows; returns (lost, duplicated, unexpected) counts.
pub fn compare_rows(expected: &HashMap<Fingerprint, usize>, actual: &HashMap<Fingerprint, usize>) -> (usize, usize, usize) {
    let mut lost = 0;
    let mut duplicated = 0;
    for (key, &want) in expected {
        let have = actual.get(key).copied().unwrap_or(0);
        lost += want.saturating_sub(have);
        duplicated += have.saturating_sub(want);
    }
    let unexpected = actual.iter().filter(|(k, _)| !expected.contains_key(*k)).map(|(_, n)| n).sum();
    (lost, duplicated, unexpected)
}

/// Makes the child die with the test's thread (SIGKILL): a test that panics before it stops its
/// daemon or server must not leave it running, holding ports, CPU or inherited file locks.
pub fn dies_with_test(command: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: only prctl(2), which is async-signal-safe, runs between fork and exec.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// Starts `ingestd run` in the workspace with extra arguments, logging to `log_name`.
pub fn spawn_run(ws: &Workspace, args: &[&str], log_name: &str) -> std::process::Child {
    spawn_run_with_env(ws, args, &[], log_name)
}

/// [`spawn_run`] with extra environment variables.
pub fn spawn_run_with_env(ws: &Workspace, args: &[&str], env: &[(&str, &str)], log_name: &str) -> std::process::Child {
    let log = std::fs::File::create(ws.path(log_name)).expect("log file");
    run_command(ws, log).args(args).envs(env.iter().copied()).spawn().expect("start ingestd run")
}

/// `ingestd run` in the workspace, its text log to `log`, dying with the test: what every test
/// that starts the daemon builds on.
pub fn run_command(ws: &Workspace, log: std::fs::File) -> Command {
    let mut command = Command::new(BIN);
    dies_with_test(&mut command)
        .arg("run")
        .current_dir(ws.dir.path())
        .env("INGESTD_LOG_FORMAT", "text")
        .stdout(std::process::Stdio::null())
        .stderr(log);
    command
}

/// Sends signal `name` (`TERM`, `HUP`, ...) to a child process.
pub fn signal(child: &std::process::Child, name: &str) {
    let sent = Command::new("kill").args([&format!("-{name}"), &child.id().to_string()]).status().expect("kill");
    assert!(sent.success());
}

/// Sends SIGTERM and waits; panics unless the daemon exits 0.
pub fn terminate(mut child: std::process::Child) {
    signal(&child, "TERM");
    let exit = child.wait().expect("wait");
    assert!(exit.success(), "exit after SIGTERM: {exit}");
}

/// Polls `count` until it reaches `want` or `limit` passes (a bound for a stuck test, not a
/// performance assertion); returns the last count.
pub fn wait_until(limit: std::time::Duration, want: usize, mut count: impl FnMut() -> usize) -> usize {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let seen = count();
        if seen >= want || std::time::Instant::now() > deadline {
            return seen;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Rows in the Delta table, 0 while it does not exist.
pub fn delta_rows(table: &Path) -> usize {
    if table.join("_delta_log").exists() { row_count(&read_delta(table)) } else { 0 }
}

/// Every file below a folder, hidden ones included.
pub fn walk_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read folder") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            out.extend(walk_files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// A TCP port free on loopback right now, never handed out twice in this test process.
///
/// The port is released before the server takes it, and the tests of one binary run in
/// parallel: two of them given the same port would talk to each other's servers (the kernel
/// picks ports at random, so this happens now and then; CI once saw a listing of the wrong
/// folder).
pub fn free_port() -> u16 {
    static HANDED_OUT: std::sync::Mutex<std::collections::BTreeSet<u16>> = std::sync::Mutex::new(std::collections::BTreeSet::new());
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        if HANDED_OUT.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(port) {
            return port;
        }
    }
}

/// The body of `GET path` on loopback, or an empty string if nothing answers.
pub fn http_get(port: u16, path: &str) -> String {
    http(port, path).1
}

/// Status code and body of `GET path` on loopback (0 and empty when nothing answers).
pub fn http(port: u16, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else { return (0, String::new()) };
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return (0, String::new());
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let code = response.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (code, response.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default())
}

/// Data files below a Delta table (its log excluded).
pub fn data_files(table: &Path) -> Vec<PathBuf> {
    walk_files(table)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet") && !p.starts_with(table.join("_delta_log")))
        .collect()
}

/// The Python of the project's venv (scripts/env.sh), with the independent readers.
pub fn venv_python() -> PathBuf {
    let venv = std::env::var("INGESTD_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/ingestd/venv"));
    venv.join("bin/python")
}

/// What Python's deltalake, polars and DuckDB (delta_scan, or read_parquet for `parquet`) see in
/// a table: per reader, `columns` and `rows` (values as text), as scripts/read_table.py prints.
pub fn read_with_every_reader(table: &Path, parquet: bool) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/read_table.py");
    let mut command = Command::new(venv_python());
    command.arg(script).arg(table);
    if parquet {
        command.arg("--parquet");
    }
    let out = command.output().expect("run scripts/read_table.py");
    assert!(out.status.success(), "read_table.py failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("read_table.py prints JSON")
}

/// Runs Python `code` with `args` in the project's venv and parses what it prints as JSON.
pub fn python_json(code: &str, args: &[&str]) -> serde_json::Value {
    let out = Command::new(venv_python()).arg("-c").arg(code).args(args).output().expect("run python");
    assert!(out.status.success(), "python failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("python prints JSON")
}

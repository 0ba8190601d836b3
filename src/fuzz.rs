//! The bodies of the `cargo fuzz` targets in `fuzz/`, kept in the library so that the unit tests
//! replay their corpus (`fuzz/corpus/TARGET/*`) in every CI run. Each takes any bytes and must
//! return without panicking; where the input allows a check, it asserts what must hold.
//!
//! The first byte of an input picks a variant (a layout, a dialect, a compression) so that one
//! target covers every way the code under it is configured.

use crate::config::{Config, FormatConfig, SourceConfig};
use crate::decode::{self, DecodePlan};
use crate::map::{Mapping, MappingOptions};
use std::io::{Cursor, Write};
use std::path::Path;
use std::sync::OnceLock;

/// Limits small enough that no input of a fuzzer's size reaches the defaults' memory.
const LIMITS: &str = "limits = { max_line = \"64KiB\", max_record = \"64KiB\", max_field = \"16KiB\", \
                      max_decompressed_size = \"1MiB\", max_columns = 64, max_depth = 32 }";

/// Columns of every type, read from fields the seeds hold (`a`, `b.c`, ...).
const COLUMNS: &str = r#"
i = { path = "a", type = "int64" }
f = { path = "b.c", type = "float64" }
d = { path = "d", type = "decimal(38,2)" }
day = { path = "e", type = "date" }
at = { path = "t", type = "timestamp" }
ok = { path = "ok", type = "bool" }
s = { path = "s", type = "string" }
j = { path = "j", type = "json" }
l = { path = "l", type = "list<int64>" }
"#;

/// One way of decoding: the format, the plan and the mapping a source of that config has.
struct Variant {
    format: FormatConfig,
    plan: DecodePlan,
    mapping: Mapping,
}

impl Variant {
    /// The variant of a source configured by `format` (the `[sources.fuzz.format]` table's
    /// lines) and `extra` (more lines of `[sources.fuzz]`), with [`COLUMNS`].
    fn new(format: &str, extra: &str) -> Variant {
        let text = format!(
            "[sources.fuzz]\npath = \"drop\"\nsinks = [\"lake\"]\n{extra}\n[sources.fuzz.format]\n{format}\n{LIMITS}\n\
             [sources.fuzz.columns]\n{COLUMNS}\n[sinks.lake]\nkind = \"delta\"\nuri = \"lake\"\n"
        );
        let source = source(&text);
        let mapping = Mapping::new(&source.columns, MappingOptions::of(&source)).unwrap_or_else(|e| panic!("{e}: {text}"));
        let plan = mapping.decode_plan(&source.format).unwrap_or_else(|e| panic!("{e}: {text}"));
        Variant { format: source.format, plan, mapping }
    }

    /// Decodes and maps `content` as a file named `name`; checks that the batches hold as many
    /// rows as the decoder says it read.
    fn run(&self, name: &str, content: Box<dyn std::io::Read + Send>) {
        let Ok(file) = decode::open_reader(content, name, &self.format) else { return };
        let mut rows = 0u64;
        let decoded = file.decode(&self.plan, &mut |raw| {
            rows += raw.text.num_rows() as u64;
            // A bad value is counted or refused by policy; neither may panic.
            let _ = self.mapping.apply(&raw, name, 0, 1);
            Ok(())
        });
        if let Ok(decoded) = decoded {
            assert_eq!(decoded.records, rows, "records counted and rows emitted differ");
        }
    }
}

fn source(text: &str) -> SourceConfig {
    let config = Config::from_toml(text, Path::new("/nonexistent")).unwrap_or_else(|e| panic!("{e}: {text}"));
    config.sources.into_values().next().unwrap_or_else(|| panic!("no source in {text}"))
}

/// Splits off the first byte, which picks one of `count` variants.
fn pick(data: &[u8], count: usize) -> (usize, &[u8]) {
    match data.split_first() {
        Some((&first, rest)) => (usize::from(first) % count, rest),
        None => (0, data),
    }
}

/// The JSON splitter and record decoder, then the map stage: an array, NDJSON, an envelope at
/// `records_path`, and sniffed, each with the fields no column reads skipped, counted or
/// captured.
pub fn json(data: &[u8]) {
    static VARIANTS: OnceLock<Vec<Variant>> = OnceLock::new();
    let variants = VARIANTS.get_or_init(|| {
        let layouts = ["kind = \"json\"", "kind = \"ndjson\"", "kind = \"json\"\nrecords_path = \"data.rows\"", "kind = \"auto\""];
        let unmapped = ["schema = { evolution = \"none\" }", "schema = { evolution = \"rescue\" }", "on_bad_row = \"skip\""];
        layouts.iter().flat_map(|l| unmapped.iter().map(move |u| Variant::new(l, u))).collect()
    });
    let (i, content) = pick(data, variants.len());
    variants[i].run("fuzz", Box::new(Cursor::new(content.to_vec())));
}

/// The CSV reader, then the map stage, in several dialects.
pub fn csv(data: &[u8]) {
    static VARIANTS: OnceLock<Vec<Variant>> = OnceLock::new();
    let variants = VARIANTS.get_or_init(|| {
        let dialects = [
            "kind = \"csv\"",
            "kind = \"csv\"\ncsv = { delimiter = \";\", quote = \"'\" }",
            "kind = \"csv\"\ncsv = { delimiter = \"\\t\", allow_short_rows = true, null_values = [] }",
        ];
        let unmapped = ["schema = { evolution = \"none\" }", "schema = { evolution = \"rescue\" }"];
        dialects.iter().flat_map(|d| unmapped.iter().map(move |u| Variant::new(d, u))).collect()
    });
    // The columns' paths are CSV header names here.
    let (i, content) = pick(data, variants.len());
    variants[i].run("fuzz.csv", Box::new(Cursor::new(content.to_vec())));
}

/// Compression detection and sniffing: the bytes as they are (a corrupt or truncated gzip or
/// zstd stream among them), or compressed here with gzip or zstd, under `kind = "auto"`.
pub fn compressed(data: &[u8]) {
    static VARIANT: OnceLock<Variant> = OnceLock::new();
    let variant = VARIANT.get_or_init(|| Variant::new("kind = \"auto\"", ""));
    let (i, content) = pick(data, 3);
    let bytes = match i {
        0 => content.to_vec(),
        1 => {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            let written = gz.write_all(content).and_then(|()| gz.finish());
            let Ok(bytes) = written else { return };
            bytes
        }
        _ => {
            let Ok(bytes) = zstd::encode_all(content, 1) else { return };
            bytes
        }
    };
    variant.run("fuzz", Box::new(Cursor::new(bytes)));
}

/// The HTTP source's listing reader: an HTML index or a JSON manifest of a folder. Every file
/// it names must lie below the folder.
pub fn http_listing(data: &[u8]) {
    use crate::discover::http::listing::{self, Link};
    let (i, body) = pick(data, 2);
    let Ok(page) = url::Url::parse("http://127.0.0.1:8000/pulls/2019/index.html") else { return };
    let folder = listing::folder_of(&page);
    let found = match i {
        0 => listing::html(&String::from_utf8_lossy(body), &page, &folder),
        _ => listing::manifest(body, &page, &folder).unwrap_or_default(),
    };
    for found in found {
        if let Link::File(name) | Link::Folder(name) = found.link {
            let below = !name.is_empty() && !name.split('/').any(|part| part == ".." || part == ".");
            assert!(below, "{:?} named {name:?}", found.url.as_str());
        }
    }
}

/// The push endpoint's routing, path and headers: `METHOD TARGET` on the first line, header
/// lines up to an empty line, then the body, sent to the real router (with a ledger and a
/// landing folder in a temporary folder, and the token `fuzz-token`). No request may make it
/// fail with a server error.
pub fn push_request(data: &[u8]) {
    use axum::body::Body;
    use tower::ServiceExt;
    static PUSH: OnceLock<Option<(tokio::runtime::Runtime, axum::Router)>> = OnceLock::new();
    let Some((runtime, router)) = PUSH.get_or_init(push_router).as_ref() else { panic!("cannot set up the push endpoint") };
    let (head, body) = match memchr::memmem::find(data, b"\n\n") {
        Some(at) => (&data[..at], &data[at + 2..]),
        None => (data, &[][..]),
    };
    let mut lines = head.split(|&b| b == b'\n');
    let Some((method, target)) = lines.next().and_then(|l| std::str::from_utf8(l).ok()).and_then(|l| l.split_once(' ')) else { return };
    let mut request = axum::http::Request::builder().method(method).uri(target);
    for line in lines {
        if let Some(colon) = line.iter().position(|&b| b == b':') {
            request = request.header(&line[..colon], line[colon + 1..].trim_ascii());
        }
    }
    let Ok(request) = request.body(Body::from(body.to_vec())) else { return };
    let response = runtime.block_on(router.clone().oneshot(request));
    let Ok(response) = response;
    assert!(!response.status().is_server_error(), "{}", response.status());
}

/// The push endpoint of one source, its folders in a folder of this process under the
/// system's temporary folder (left there: a fuzzing run keeps what it landed).
fn push_router() -> Option<(tokio::runtime::Runtime, axum::Router)> {
    let dir = push_folder();
    std::fs::create_dir_all(dir.join("drop")).ok()?;
    std::fs::write(dir.join("tokens"), "fuzz-token\n").ok()?;
    let text = "[sources.a]\npath = \"drop\"\nsinks = [\"lake\"]\n[sources.a.push]\ntokens_file = \"tokens\"\nmax_size = \"64KiB\"\n\
                [sinks.lake]\nkind = \"delta\"\nuri = \"lake\"\n";
    let config = Config::from_toml(text, &dir).ok()?;
    let ledger = crate::ledger::LedgerHandle::spawn(crate::ledger::Ledger::open(&dir.join("state")).ok()?).ok()?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
    let router = crate::push::PushState::new(&config, ledger).router();
    Some((runtime, router))
}

fn push_folder() -> std::path::PathBuf {
    std::env::temp_dir().join(format!("ingestd-fuzz-push-{}", std::process::id()))
}

/// The config loader: any text, parsed and validated.
pub fn config(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = Config::from_toml(text, Path::new("/nonexistent"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each target's committed corpus (seeds and any input that once crashed it), replayed.
    #[test]
    fn the_fuzz_corpus_replays_without_a_failure() {
        // A target's name (its folder under fuzz/corpus) and its body.
        type Target = (&'static str, fn(&[u8]));
        let targets: [Target; 6] = [
            ("json", json),
            ("csv", csv),
            ("compressed", compressed),
            ("http_listing", http_listing),
            ("push_request", push_request),
            ("config", config),
        ];
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
        for (target, run) in targets {
            let dir = root.join(target);
            let mut inputs: Vec<_> = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).flatten().collect();
            inputs.sort_by_key(|e| e.path());
            assert!(inputs.len() >= 3, "{target}: only {} inputs in {}", inputs.len(), dir.display());
            for input in inputs {
                let data = std::fs::read(input.path()).unwrap();
                run(&data);
            }
        }
        // What the push endpoint landed; the fuzzers keep theirs.
        std::fs::remove_dir_all(push_folder()).unwrap();
    }
}

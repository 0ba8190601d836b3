//! Criterion benchmarks of the per-file hot path, one stage at a time: hashing (admission),
//! decoding (JSON array, NDJSON, CSV), mapping, and the ledger's per-file cost.
//! Run with `cargo bench --bench pipeline` (add a filter such as `-- decode` for one group).
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests and benches fail loudly on purpose.

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use ingestd::config::{BadRowPolicy, Config, FormatConfig};
use ingestd::decode::{self, DecodePlan};
use ingestd::ledger::{BatchEntry, FileEntry, Ledger};
use ingestd::map::{Mapping, MappingOptions};
use ingestd::sample::{AttomSpec, attom_file};
use std::path::{Path, PathBuf};

fn attom_mapping() -> Mapping {
    let config = Config::from_toml(include_str!("../config.toml"), Path::new(".")).expect("config");
    let source = &config.sources["attom"];
    Mapping::new(&source.columns, MappingOptions { policy: BadRowPolicy::Null, null_values: vec![], ..MappingOptions::of(source) })
        .expect("mapping")
}

fn csv_mapping() -> Mapping {
    let config = Config::from_toml(
        "[sources.s]\npath = \".\"\nsinks = [\"t\"]\n[sources.s.columns]\nlat = { path = \"lat\", type = \"float64\" }\nregion_id = { path = \"region_id\", type = \"int64\" }\ndate = { path = \"date\", type = \"date\" }\n[sinks.t]\nkind = \"delta\"\nuri = \"t\"\n",
        Path::new("."),
    )
    .expect("csv config");
    let source = &config.sources["s"];
    Mapping::new(&source.columns, MappingOptions { metadata_columns: false, policy: BadRowPolicy::Null, ..MappingOptions::of(source) })
        .expect("mapping")
}

/// Decodes one file into text columns; returns the batches.
fn decode_file(path: &Path, plan: &DecodePlan) -> Vec<decode::RawBatch> {
    let mut batches = Vec::new();
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("f");
    let file = decode::open(path, name, &plan.format).expect("open");
    file.decode(plan, &mut |raw| {
        batches.push(raw);
        Ok(())
    })
    .expect("decode");
    batches
}

/// The test inputs: one ATTOM file of 10,000 records as a JSON array and as NDJSON, and a
/// 100,000-row CSV.
struct Inputs {
    _dir: tempfile::TempDir,
    array: PathBuf,
    ndjson: PathBuf,
    csv: PathBuf,
}

fn inputs() -> Inputs {
    let dir = tempfile::tempdir().expect("tempdir");
    let (name, bytes, _) = attom_file(&AttomSpec { files: 1, rows: 10_000, seed: 1 }, 0);
    let array = dir.path().join(name);
    std::fs::write(&array, &bytes).expect("write");
    let text = String::from_utf8(bytes).expect("utf8");
    let ndjson = dir.path().join("records.ndjson");
    std::fs::write(&ndjson, text[1..text.len() - 1].replace("},{\"identifier\"", "}\n{\"identifier\"")).expect("write");
    let csv = dir.path().join("location.csv");
    let mut csv_text = String::from("lat,long,region_id,date\n");
    for i in 0..100_000 {
        csv_text.push_str(&format!("{}.{},-{}.5,{},2020-01-{:02}\n", 30 + i % 10, i % 1000, 110 + i % 7, i % 1000, 1 + i % 28));
    }
    std::fs::write(&csv, &csv_text).expect("write");
    Inputs { _dir: dir, array, ndjson, csv }
}

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).expect("metadata").len()
}

fn stages(c: &mut Criterion) {
    let inputs = inputs();
    let format = FormatConfig::default();
    let attom = attom_mapping();
    let attom_plan = attom.decode_plan(&format).expect("plan");
    let csv = csv_mapping();
    let csv_plan = csv.decode_plan(&format).expect("plan");

    let mut group = c.benchmark_group("admit");
    group.throughput(Throughput::Bytes(size(&inputs.array)));
    group.bench_function("blake3 of a 10k-record ATTOM file", |b| b.iter(|| ingestd::admit::hash_file(&inputs.array).expect("hash")));
    group.finish();

    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Bytes(size(&inputs.array)));
    group.bench_function("attom json array, 10k records, 9 fields", |b| b.iter(|| decode_file(&inputs.array, &attom_plan)));
    group.throughput(Throughput::Bytes(size(&inputs.ndjson)));
    group.bench_function("attom ndjson, 10k records, 9 fields", |b| b.iter(|| decode_file(&inputs.ndjson, &attom_plan)));
    group.throughput(Throughput::Bytes(size(&inputs.csv)));
    group.bench_function("csv, 100k rows, 3 of 4 columns", |b| b.iter(|| decode_file(&inputs.csv, &csv_plan)));
    group.finish();

    let mut group = c.benchmark_group("map");
    let attom_raw = decode_file(&inputs.array, &attom_plan);
    group.throughput(Throughput::Elements(attom_raw.iter().map(|b| b.text.num_rows() as u64).sum()));
    group.bench_function("attom, 10k records to 9 typed columns", |b| {
        b.iter(|| attom_raw.iter().map(|raw| attom.apply(raw, "f", 0, 1).expect("map").batch.num_rows()).sum::<usize>())
    });
    let csv_raw = decode_file(&inputs.csv, &csv_plan);
    group.throughput(Throughput::Elements(csv_raw.iter().map(|b| b.text.num_rows() as u64).sum()));
    group.bench_function("csv, 100k rows to 3 typed columns", |b| {
        b.iter(|| csv_raw.iter().map(|raw| csv.apply(raw, "f", 0, 1).expect("map").batch.num_rows()).sum::<usize>())
    });
    group.finish();
}

/// The ledger's cost per file: one fsynced transaction to begin a batch and one to finish it,
/// for a batch of one file and of 400.
fn ledger(c: &mut Criterion) {
    let mut group = c.benchmark_group("ledger");
    for files in [1usize, 400] {
        group.throughput(Throughput::Elements(files as u64));
        group.bench_function(format!("begin + finish a batch of {files} files (fsync)"), |b| {
            b.iter_batched(
                || {
                    let dir = tempfile::tempdir().expect("tempdir");
                    let ledger = Ledger::open(dir.path()).expect("ledger");
                    (dir, ledger)
                },
                |(_dir, mut ledger)| {
                    let entries = (0..files)
                        .map(|i| FileEntry {
                            name: format!("f{i}"),
                            size: Some(1),
                            mtime_ns: Some(1),
                            hash: format!("{i:064}"),
                            rows: Some(1),
                        })
                        .collect();
                    ledger.begin_batch(&BatchEntry { source: "s".into(), seq: 1, files: entries, ingested_at_us: None }).expect("begin");
                    ledger.finish_batch("s", 1).expect("finish");
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = stages, ledger
}
criterion_main!(benches);

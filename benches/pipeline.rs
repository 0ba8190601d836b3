//! Criterion benchmarks of the per-file hot path: decoding (JSON array, NDJSON, CSV), mapping,
//! and the ledger's per-file cost. Run with `cargo bench --bench pipeline`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ingestd::config::{BadRowPolicy, Config, FormatConfig};
use ingestd::decode;
use ingestd::ledger::{BatchEntry, FileEntry, Ledger};
use ingestd::map::Mapping;
use ingestd::sample::{attom_file, AttomSpec};
use std::path::Path;

fn attom_mapping() -> Mapping {
    let config = Config::from_toml(include_str!("../config.toml"), Path::new(".")).expect("config");
    let source = &config.sources["attom"];
    Mapping::new(&source.columns, true, BadRowPolicy::Null, vec![]).expect("mapping")
}

/// Decodes and maps one file; returns rows.
fn ingest_file(path: &Path, name: &str, mapping: &Mapping, format: &FormatConfig) -> u64 {
    let plan = mapping.decode_plan(format).expect("plan");
    let mut rows = 0;
    let file = decode::open(path, name, format).expect("open");
    file.decode(&plan, &mut |raw| {
        rows += mapping.apply(&raw, name, 0, 1).expect("map").batch.num_rows() as u64;
        Ok(())
    })
    .expect("decode");
    rows
}

fn decoding(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (name, bytes, _) = attom_file(&AttomSpec { files: 1, rows: 10_000, seed: 1 }, 0);
    let array = dir.path().join(&name);
    std::fs::write(&array, &bytes).expect("write");
    // The same records as NDJSON.
    let ndjson_text: Vec<u8> = {
        let text = String::from_utf8(bytes.clone()).expect("utf8");
        let inner = &text[1..text.len() - 1];
        inner.replace("},{\"identifier\"", "}\n{\"identifier\"").into_bytes()
    };
    let ndjson = dir.path().join("records.ndjson");
    std::fs::write(&ndjson, &ndjson_text).expect("write");
    let csv = dir.path().join("location.csv");
    let mut csv_text = String::from("lat,long,region_id,date\n");
    for i in 0..100_000 {
        csv_text.push_str(&format!("{}.{},-{}.5,{},2020-01-{:02}\n", 30 + i % 10, i % 1000, 110 + i % 7, i % 1000, 1 + i % 28));
    }
    std::fs::write(&csv, &csv_text).expect("write");

    let mapping = attom_mapping();
    let format = FormatConfig::default();
    let mut group = c.benchmark_group("decode+map");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("attom json array, 10k records", |b| b.iter(|| ingest_file(&array, &name, &mapping, &format)));
    group.throughput(Throughput::Bytes(ndjson_text.len() as u64));
    group.bench_function("attom ndjson, 10k records", |b| b.iter(|| ingest_file(&ndjson, "records.ndjson", &mapping, &format)));
    let csv_columns = Config::from_toml(
        "[sources.s]\npath = \".\"\nsinks = [\"t\"]\n[sources.s.columns]\nlat = { path = \"lat\", type = \"float64\" }\nregion_id = { path = \"region_id\", type = \"int64\" }\ndate = { path = \"date\", type = \"date\" }\n[sinks.t]\nkind = \"delta\"\nuri = \"t\"\n",
        Path::new("."),
    )
    .expect("csv config");
    let csv_mapping = Mapping::new(&csv_columns.sources["s"].columns, false, BadRowPolicy::Null, vec![String::new()]).expect("mapping");
    group.throughput(Throughput::Bytes(csv_text.len() as u64));
    group.bench_function("csv, 100k rows, 3 of 4 columns", |b| b.iter(|| ingest_file(&csv, "location.csv", &csv_mapping, &format)));
    group.finish();
}

fn ledger(c: &mut Criterion) {
    c.bench_function("ledger: begin + finish a one-file batch (fsync)", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().expect("tempdir");
                let ledger = Ledger::open(dir.path()).expect("ledger");
                (dir, ledger)
            },
            |(_dir, mut ledger)| {
                for seq in 1..=20 {
                    let file = FileEntry { name: format!("f{seq}"), size: Some(1), mtime_ns: Some(1), hash: format!("{seq:064}"), rows: Some(1) };
                    ledger.begin_batch(&BatchEntry { source: "s".into(), seq, files: vec![file] }).expect("begin");
                    ledger.finish_batch("s", seq).expect("finish");
                }
            },
            BatchSize::PerIteration,
        )
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = decoding, ledger
}
criterion_main!(benches);

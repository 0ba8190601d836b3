"""Runs the workloads of the performance issue and prints one table per workload.

W1 bulk: the ATTOM pull (322 JSON-array files) -> nine typed columns, ingestd (Delta table,
     exactly-once bookkeeping included) against DuckDB, Polars and Dask (Parquet file).
W1s schema: W1 as shipped, with the rescued column on (nothing to rescue), with inferred
    columns, and inferred on evolving files (a tenth add a field, a hundredth of the prices do not
    convert), alternating, medians of three (`--only w1s`).
W2 latency: files of 3,000 records renamed into the folder of a running `ingestd run` at
     10 per second; latency = rename -> the commit naming the file is in the Delta log.
W3 huge file: one 5 GB CSV and one 5 GB NDJSON file, ingestd and DuckDB.
W4 many small files: 10,000 files of 5 records, ingestd and DuckDB.

Every tool runs as its own process; peak RSS is that process's (wait4). Input files are read
once before timing so every tool starts from the page cache. Called by scripts/bench.sh.
"""

import argparse
import glob
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable

SCALES = {
    # files, rows | W2 files/s, seconds, records | W3 bytes | W4 files
    "full": dict(w1_files=322, w1_rows=1_017_244, w2_rate=10, w2_seconds=120, w2_records=3000, w3_bytes=5_000_000_000, w4_files=10_000),
    "small": dict(w1_files=12, w1_rows=30_000, w2_rate=5, w2_seconds=4, w2_records=300, w3_bytes=20_000_000, w4_files=300),
}

NINE = """
 TRY_CAST(sale.saleTransDate AS DATE) AS transaction_date,
 address.postal1::VARCHAR AS zipcode,
 TRY_CAST(sale.amount.saleamt AS BIGINT) AS sale_price,
 TRY_CAST(lot.lotSize1 AS DOUBLE) AS lot_size,
 TRY_CAST(building.size.universalsize AS BIGINT) AS size,
 TRY_CAST(location.latitude AS DOUBLE) AS latitude,
 TRY_CAST(location.longitude AS DOUBLE) AS longitude,
 summary.proptype::VARCHAR AS type,
 NULLIF(TRY_CAST(summary.yearbuilt AS INTEGER), 0) AS year_built"""

NINE_CSV = """
 TRY_CAST("sale.saleTransDate" AS DATE) AS transaction_date,
 "address.postal1"::VARCHAR AS zipcode,
 TRY_CAST("sale.amount.saleamt" AS BIGINT) AS sale_price,
 TRY_CAST("lot.lotSize1" AS DOUBLE) AS lot_size,
 TRY_CAST("building.size.universalsize" AS BIGINT) AS size,
 TRY_CAST("location.latitude" AS DOUBLE) AS latitude,
 TRY_CAST("location.longitude" AS DOUBLE) AS longitude,
 "summary.proptype"::VARCHAR AS type,
 NULLIF(TRY_CAST("summary.yearbuilt" AS INTEGER), 0) AS year_built"""

DUCKDB_JSON = """
import duckdb, json, sys
files = json.load(open(sys.argv[1]))
con = duckdb.connect()
con.execute(f'''COPY (SELECT {NINE} FROM read_json({files!r}, format='{fmt}')) TO '{out}' (FORMAT parquet)''')
print(con.execute("SELECT count(*) FROM '{out}'").fetchone()[0])
"""

DUCKDB_CSV = """
import duckdb, sys
con = duckdb.connect()
con.execute(f'''COPY (SELECT {NINE} FROM read_csv('{file}', all_varchar=true)) TO '{out}' (FORMAT parquet)''')
print(con.execute("SELECT count(*) FROM '{out}'").fetchone()[0])
"""

POLARS_W1 = """
import polars as pl, json, sys
files = json.load(open(sys.argv[1]))
def nine(df):
    s = lambda *p: pl.col(p[0]).struct.field(p[1]) if len(p) == 2 else pl.col(p[0]).struct.field(p[1]).struct.field(p[2])
    year = s("summary", "yearbuilt").cast(pl.Utf8).cast(pl.Int32, strict=False)
    return df.select(
        s("sale", "saleTransDate").cast(pl.Utf8).str.strptime(pl.Date, "%Y-%-m-%-d", strict=False).alias("transaction_date"),
        s("address", "postal1").cast(pl.Utf8).alias("zipcode"),
        s("sale", "amount", "saleamt").cast(pl.Utf8).cast(pl.Float64, strict=False).cast(pl.Int64, strict=False).alias("sale_price"),
        s("lot", "lotSize1").cast(pl.Utf8).cast(pl.Float64, strict=False).alias("lot_size"),
        s("building", "size", "universalsize").cast(pl.Utf8).cast(pl.Float64, strict=False).cast(pl.Int64, strict=False).alias("size"),
        s("location", "latitude").cast(pl.Utf8).cast(pl.Float64, strict=False).alias("latitude"),
        s("location", "longitude").cast(pl.Utf8).cast(pl.Float64, strict=False).alias("longitude"),
        s("summary", "proptype").cast(pl.Utf8).alias("type"),
        pl.when(year != 0).then(year).alias("year_built"),
    )
out = pl.concat([nine(pl.read_json(f, infer_schema_length=None)) for f in files], how="vertical_relaxed")
out.write_parquet(sys.argv[2])
print(out.height)
"""

DASK_W1 = """
import dask.bag as db, json, sys, datetime
import pandas as pd
files = json.load(open(sys.argv[1]))
def num(v, kind):
    try:
        return kind(float(v)) if v is not None else None
    except (TypeError, ValueError):
        return None
def day(v):
    try:
        return datetime.datetime.strptime(v, "%Y-%m-%d")
    except (TypeError, ValueError):
        return None
def nine(r):
    g = lambda *p: (lambda v: v)(__import__("functools").reduce(lambda a, k: a.get(k) if isinstance(a, dict) else None, p, r))
    y = num(g("summary", "yearbuilt"), int)
    return {"transaction_date": day(g("sale", "saleTransDate")), "zipcode": g("address", "postal1"),
            "sale_price": num(g("sale", "amount", "saleamt"), int), "lot_size": num(g("lot", "lotSize1"), float),
            "size": num(g("building", "size", "universalsize"), int), "latitude": num(g("location", "latitude"), float),
            "longitude": num(g("location", "longitude"), float), "type": g("summary", "proptype"), "year_built": y or None}
meta = pd.DataFrame({"transaction_date": pd.Series(dtype="datetime64[ns]"), "zipcode": pd.Series(dtype="string"),
    "sale_price": pd.Series(dtype="Int64"), "lot_size": pd.Series(dtype="float64"), "size": pd.Series(dtype="Int64"),
    "latitude": pd.Series(dtype="float64"), "longitude": pd.Series(dtype="float64"), "type": pd.Series(dtype="string"),
    "year_built": pd.Series(dtype="Int32")})
bag = db.from_sequence(files, npartitions=max(1, len(files) // 8)).map(lambda f: json.load(open(f))).flatten().map(nine)
df = bag.to_dataframe(meta=meta)
df.to_parquet(sys.argv[2], write_index=False)
import pyarrow.dataset as ds
print(ds.dataset(sys.argv[2]).count_rows())
"""


def run_measured(cmd, cwd=None, env=None):
    """Like run, with the child's own peak RSS (os.wait4)."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out_chunks, err_chunks = [], []
    t_out = threading.Thread(target=lambda: out_chunks.append(proc.stdout.read()))
    t_err = threading.Thread(target=lambda: err_chunks.append(proc.stderr.read()))
    t_out.start(), t_err.start()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    t_out.join(), t_err.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{err_chunks[0].decode(errors='replace')[-3000:]}")
    return seconds, usage.ru_maxrss / 1024, out_chunks[0].decode()


def warm(paths):
    for p in paths:
        with open(p, "rb") as f:
            while f.read(1 << 24):
                pass


def size_of(paths):
    return sum(os.path.getsize(p) for p in paths)


def table(title, rows, mb, results, note=""):
    print(f"\n== {title}: {rows:,} rows, {mb:,.0f} MB{note}")
    print(f"{'tool':<28}{'wall s':>9}{'rows/s':>12}{'MB/s':>9}{'peak RSS MiB':>14}{'ingestd faster by':>19}")
    base = results[0][1]
    for name, seconds, rss in results:
        ratio = "" if name.startswith("ingestd") else f"{seconds / base:.2f}x"
        print(f"{name:<28}{seconds:>9.2f}{rows / seconds:>12,.0f}{mb / seconds:>9.1f}{rss:>14.0f}{ratio:>19}")


def write_config(work, drop, settled=False):
    """The shipped config.toml reading `drop`. `settled`: the files were complete before the
    run, so the 2 s a file must sit unchanged (min_age) is not part of what is timed."""
    text = (ROOT / "config.toml").read_text()
    text = text.replace('path = "./drop/attom"', f'path = "{drop}"')
    if settled:
        text = text.replace('min_age = "2s"', 'min_age = "0s"')
    text = text.replace("[sources.attom]", '[http]\nlisten = ""\n\n[sources.attom]')
    (work / "config.toml").write_text(text)


def ingestd_once(args, work):
    seconds, rss, out = run_measured([args.ingestd, "once", "--log", "warn", "--json"], cwd=work)
    summary = json.loads(out)
    return seconds, rss, summary


def sample(args, out, *extra):
    _, _, text = run_measured([args.ingestd, "sample", "--out", str(out), *map(str, extra)])
    return json.loads(text)


def w1(args, scale, base):
    work = base / "w1"
    files_dir = work / "files"
    totals = sample(args, files_dir, "--files", scale["w1_files"], "--rows", scale["w1_rows"])
    files = sorted(glob.glob(str(files_dir / "*")))
    listing = work / "files.json"
    listing.write_text(json.dumps(files))
    rows, mb = totals["rows"], size_of(files) / 1e6
    write_config(work, files_dir, settled=True)
    results = []
    warm(files)
    seconds, rss, summary = ingestd_once(args, work)
    assert summary["totals"]["rows"] == rows, summary
    results.append(("ingestd -> Delta", seconds, rss))
    for name, script in [
        ("duckdb -> Parquet", DUCKDB_JSON.replace("{NINE}", NINE).replace("{fmt}", "array").replace("{out}", str(work / "duckdb.parquet"))),
        ("polars -> Parquet", POLARS_W1),
        ("dask -> Parquet", DASK_W1),
    ]:
        if name.split()[0] in args.skip:
            continue
        warm(files)
        seconds, rss, out = run_measured([PY, "-c", script, str(listing), str(work / f"{name.split()[0]}.out")])
        assert int(out.split()[-1]) == rows, (name, out)
        results.append((name, seconds, rss))
    table("W1 bulk: ATTOM JSON arrays -> nine columns", rows, mb, results, f", {len(files)} files")
    shutil.rmtree(work)


SCHEMA_RESCUED = '\n[sources.attom.schema]\nrescued_column = "_rescued_data"\n'


def add_schema_keys(config, keys):
    """The config with `keys` (a [sources.attom.schema] table) placed before the columns."""
    text = config.read_text()
    config.write_text(text.replace("[sources.attom.columns]", keys.strip() + "\n\n[sources.attom.columns]", 1))


def drop_columns(config):
    """The config without its [sources.attom.columns] table: the columns are inferred."""
    out, skipping = [], False
    for line in config.read_text().splitlines():
        if line.startswith("["):
            skipping = line.strip() == "[sources.attom.columns]"
        if not skipping:
            out.append(line)
    config.write_text("\n".join(out) + "\n")


def evolve_files(files):
    """A tenth of the files gain a field (a new one per such file); in every file after the
    eighth (beyond the inference sample, at most eight files), one sale price in a hundred is
    text that does not convert. Returns the number of such values."""
    mismatched = 0
    for i, path in enumerate(files):
        records = json.loads(Path(path).read_text())
        for j, record in enumerate(records):
            if i % 10 == 0:
                record[f"pull_{i}"] = i
            amount = record.get("sale", {}).get("amount", {})
            if i >= 8 and j % 100 == 50 and amount.get("saleamt") is not None:
                amount["saleamt"] = "n/a"
                mismatched += 1
        Path(path).write_text(json.dumps(records))
    return mismatched


def w1s(args, scale, base):
    """W1 four ways, alternating, medians of three: the shipped config (nine columns); the same
    with the rescued column on and nothing to rescue; columns inferred (every field a column);
    and inferred on evolving files (a tenth add a field, a hundredth of the prices after the
    eighth file do not convert and are rescued)."""
    work = base / "w1s"
    plain, evolving = work / "plain", work / "evolving"
    totals = sample(args, plain, "--files", scale["w1_files"], "--rows", scale["w1_rows"])
    shutil.copytree(plain, evolving)
    mismatched = evolve_files(sorted(glob.glob(str(evolving / "*"))))
    rows = totals["rows"]
    variants = [
        ("shipped config", plain, "", False, 0),
        ("+ rescued column", plain, SCHEMA_RESCUED, False, 0),
        ("inferred columns", plain, "", True, 0),
        ("inferred, evolving", evolving, "", True, mismatched),
    ]
    timings = {name: [] for name, *_ in variants}
    columns = {}
    for _ in range(3):
        for name, files_dir, keys, inferred, rescued in variants:
            run_dir = work / "run"
            shutil.rmtree(run_dir, ignore_errors=True)
            run_dir.mkdir()
            write_config(run_dir, files_dir, settled=True)
            if keys:
                add_schema_keys(run_dir / "config.toml", keys)
            if inferred:
                drop_columns(run_dir / "config.toml")
            warm(glob.glob(str(files_dir / "*")))
            seconds, rss, summary = ingestd_once(args, run_dir)
            assert summary["totals"]["rows"] == rows, (name, summary)
            assert summary["totals"]["rescued_values"] == rescued, (name, summary, rescued)
            timings[name].append((seconds, rss))
            _, _, text = run_measured([args.ingestd, "schema", "--json"], cwd=run_dir)
            columns[name] = len(json.loads(text)["columns"])
    mb = size_of(glob.glob(str(plain / "*"))) / 1e6
    print(f"\n== W1 schema variants: {rows:,} rows, {mb:,.0f} MB; evolving: {len(glob.glob(str(evolving / '*'))) // 10 + 1} files add a field, {mismatched:,} values rescued")
    print(f"{'variant':<22}{'columns':>8}{'median s':>10}{'runs s':>20}{'peak RSS MiB':>14}{'vs shipped':>12}")
    base_median = statistics.median(t for t, _ in timings["shipped config"])
    for name, runs in timings.items():
        median = statistics.median(t for t, _ in runs)
        print(f"{name:<22}{columns[name]:>8}{median:>10.2f}{' '.join(f'{t:.2f}' for t, _ in runs):>20}{max(r for _, r in runs):>14.0f}{median / base_median:>11.2f}x")
    shutil.rmtree(work)


def w2(args, scale, base):
    work = base / "w2"
    stage, drop = work / "stage", work / "drop"
    count = scale["w2_rate"] * scale["w2_seconds"]
    sample(args, stage, "--files", count, "--rows", count * scale["w2_records"], "--seed", 2)
    drop.mkdir(parents=True)
    write_config(work, drop)
    log_dir = work / "lake" / "attom_sales" / "_delta_log"
    daemon = subprocess.Popen([args.ingestd, "run", "--log", "warn"], cwd=work, stderr=subprocess.DEVNULL)
    dropped, seen = {}, {}
    done = threading.Event()

    def watch():
        known = set()
        while not done.is_set():
            try:
                names = os.listdir(log_dir)
            except FileNotFoundError:
                names = []
            now = time.time()
            for entry in sorted(n for n in names if n.endswith(".json") and n not in known and not n.startswith(".")):
                known.add(entry)
                with open(log_dir / entry) as f:
                    for line in f:
                        info = json.loads(line).get("commitInfo")
                        if info and "ingestd" in info:
                            for file in info["ingestd"]["files"]:
                                seen.setdefault(file["name"], now)
            time.sleep(0.01)

    watcher = threading.Thread(target=watch)
    watcher.start()
    time.sleep(1.0)  # the daemon has started and watches the folder
    names = sorted(os.listdir(stage))
    started = time.time()
    for i, name in enumerate(names):
        time.sleep(max(0.0, started + i / scale["w2_rate"] - time.time()))
        os.rename(stage / name, drop / name)
        dropped[name] = time.time()
    deadline = time.time() + 60
    while len(seen) < len(names) and time.time() < deadline:
        time.sleep(0.05)
    done.set()
    watcher.join()
    daemon.send_signal(signal.SIGTERM)
    daemon.wait(timeout=60)
    latencies = sorted(seen[n] - dropped[n] for n in names if n in seen)
    pct = lambda p: latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))]
    versions = len([n for n in os.listdir(log_dir) if n.endswith(".json")])
    print(f"\n== W2 latency: {len(names)} files of {scale['w2_records']:,} records at {scale['w2_rate']}/s for {scale['w2_seconds']} s, "
          f"default batching; rename -> commit in the Delta log")
    print(f"files seen {len(latencies)}/{len(names)}, table versions {versions}")
    print(f"p50 {pct(50):.3f} s  p90 {pct(90):.3f} s  p99 {pct(99):.3f} s  max {latencies[-1]:.3f} s")
    shutil.rmtree(work)


def w3(args, scale, base):
    for layout in ["csv", "ndjson"]:
        work = base / f"w3-{layout}"
        drop = work / "drop"
        totals = sample(args, drop, "--big", layout, "--bytes", scale["w3_bytes"], "--seed", 3)
        path = drop / f"attom.{layout}"
        rows, mb = totals["rows"], size_of([path]) / 1e6
        write_config(work, drop, settled=True)
        warm([path])
        seconds, rss, summary = ingestd_once(args, work)
        assert summary["totals"]["rows"] == rows, summary
        results = [("ingestd -> Delta", seconds, rss)]
        if "duckdb" not in args.skip:
            warm([path])
            if layout == "csv":
                script = DUCKDB_CSV.replace("{NINE}", NINE_CSV).replace("{file}", str(path))
            else:
                script = DUCKDB_JSON.replace("{NINE}", NINE).replace("{fmt}", "newline_delimited")
            (work / "files.json").write_text(json.dumps([str(path)]))
            script = script.replace("{out}", str(work / "duckdb.parquet"))
            seconds, rss, out = run_measured([PY, "-c", script, str(work / "files.json")])
            assert int(out.split()[-1]) == rows, out
            results.append(("duckdb -> Parquet", seconds, rss))
        table(f"W3 huge file: one {layout.upper()} file", rows, mb, results)
        shutil.rmtree(work)


def w4(args, scale, base):
    work = base / "w4"
    files_dir = work / "files"
    totals = sample(args, files_dir, "--files", scale["w4_files"], "--rows", scale["w4_files"] * 5, "--seed", 4)
    files = sorted(glob.glob(str(files_dir / "*")))
    write_config(work, files_dir, settled=True)
    warm(files)
    seconds, rss, summary = ingestd_once(args, work)
    assert summary["totals"]["rows"] == totals["rows"], summary
    results = [("ingestd -> Delta", seconds, rss)]
    if "duckdb" not in args.skip:
        (work / "files.json").write_text(json.dumps(files))
        script = DUCKDB_JSON.replace("{NINE}", NINE).replace("{fmt}", "array").replace("{out}", str(work / "duckdb.parquet"))
        warm(files)
        seconds, rss, _ = run_measured([PY, "-c", script, str(work / "files.json")])
        results.append(("duckdb -> Parquet", seconds, rss))
    table("W4 many small files", totals["rows"], size_of(files) / 1e6, results, f", {len(files):,} files")
    print(f"ingestd: {len(files) / results[0][1]:,.0f} files/s, {summary['totals']['batches']} commits")
    shutil.rmtree(work)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ingestd", required=True)
    parser.add_argument("--scale", choices=SCALES, default="full")
    parser.add_argument("--only", nargs="*", default=["w1", "w1s", "w2", "w3", "w4"], help="workloads to run")
    parser.add_argument("--skip", nargs="*", default=[], help="peers to leave out (duckdb, polars, dask)")
    parser.add_argument("--dir", default=os.environ.get("BENCH_DIR", str(Path.home() / ".cache/ingestd/bench")))
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    args = parser.parse_args()
    base = Path(args.dir) / f"run-{os.getpid()}"
    base.mkdir(parents=True)
    scale = SCALES[args.scale]
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    mem = next((l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal")), "0")
    print(f"machine: {os.cpu_count()} cores ({cpu}), {int(mem) / 1024 / 1024:.0f} GiB; scale {args.scale}")
    try:
        for name in args.only:
            {"w1": w1, "w1s": w1s, "w2": w2, "w3": w3, "w4": w4}[name](args, scale, base)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()

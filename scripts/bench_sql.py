"""Measures the SQL features (issue 16) and prints one table per workload.

w1t transform overhead: the ATTOM pull (W1) as shipped, with a pass-through `SELECT * FROM batch`
    and with a filter (`WHERE sale_price > 200000`), alternating, medians of three.
events: the event counter. A `location.csv` of `--events-bytes` (event_id, region_id, day)
    joined in a transform with `region.csv` into a Delta table partitioned by day; then
    `ingestd sql` counts per region per day. DuckDB does the same join and count straight from
    the CSV, as the peer.
merge: a table of `--merge-rows` rows (appended by ingestd), then one change batch of 100,000
    rows (updates of existing keys, new keys, deletes) merged by key: time and peak RSS of that
    `ingestd once`.

Usage: python scripts/bench_sql.py --ingestd target/release/ingestd [--only w1t events merge]
"""

import argparse
import json
import os
import random
import shutil
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import PY, ingestd_once, run_measured, sample, size_of, warm, write_config  # noqa: E402

W1T_VARIANTS = [
    ("shipped config", None),
    ("SELECT * FROM batch", "SELECT * FROM batch"),
    ("filter sale_price", "SELECT * FROM batch WHERE sale_price > 200000"),
]


def with_transform(config, sql):
    text = config.read_text()
    config.write_text(text.replace("[sources.attom]\n", f"[sources.attom]\ntransform = {json.dumps(sql)}\n", 1))


def w1t(args, base):
    work = base / "w1t"
    files = work / "files"
    totals = sample(args, files, "--files", args.w1_files, "--rows", args.w1_rows)
    rows = totals["rows"]
    timings = {name: [] for name, _ in W1T_VARIANTS}
    kept = {}
    for _ in range(3):
        for name, sql in W1T_VARIANTS:
            run = work / "run"
            shutil.rmtree(run, ignore_errors=True)
            run.mkdir()
            write_config(run, files, settled=True)
            if sql:
                with_transform(run / "config.toml", sql)
            warm(sorted(files.iterdir()))
            seconds, rss, summary = ingestd_once(args, run)
            assert summary["totals"]["rows"] + summary["totals"]["filtered_rows"] == rows, (name, summary)
            kept[name] = summary["totals"]["rows"]
            timings[name].append((seconds, rss))
    mb = size_of(sorted(files.iterdir())) / 1e6
    print(f"\n== W1 with a transform: {rows:,} rows, {mb:,.0f} MB, {args.w1_files} files")
    print(f"{'variant':<24}{'rows kept':>11}{'median s':>10}{'runs s':>20}{'peak RSS MiB':>14}{'vs shipped':>12}")
    base_median = statistics.median(t for t, _ in timings["shipped config"])
    for name, runs in timings.items():
        median = statistics.median(t for t, _ in runs)
        print(f"{name:<24}{kept[name]:>11,}{median:>10.2f}{' '.join(f'{t:.2f}' for t, _ in runs):>20}{max(r for _, r in runs):>14.0f}{median / base_median:>11.2f}x")
    shutil.rmtree(work)


EVENTS_CONFIG = """
instance = "bench"
[http]
listen = ""
[lookups.regions]
path = "region.csv"
[sources.events]
path = "drop"
min_age = "0s"
sinks = ["events"]
transform = "SELECT event_id, day, region_name FROM batch JOIN regions USING (region_id)"
[sources.events.batch]
max_bytes = "64GiB"
max_rows = 1000000000
[sinks.events]
kind = "delta"
uri = "lake"
partition_by = ["day"]
"""

COUNT_SQL = "SELECT region_name, day, count(*) AS events FROM events GROUP BY 1, 2 ORDER BY 1, 2"

DUCKDB_EVENTS = """
import duckdb, sys
con = duckdb.connect()
con.execute("SET threads = 2")
rows = con.execute(f\"\"\"
SELECT region_name, day, count(*) FROM read_csv('{sys.argv[1]}', header=true) JOIN read_csv('{sys.argv[2]}', header=true) USING (region_id)
GROUP BY 1, 2 ORDER BY 1, 2\"\"\").fetchall()
print(sum(r[2] for r in rows))
"""


def events(args, base):
    work = base / "events"
    (work / "drop").mkdir(parents=True)
    regions = work / "region.csv"
    regions.write_text("region_id,region_name\n" + "".join(f"{i},region-{i}\n" for i in range(1, 101)))
    location = work / "drop" / "location.csv"
    rng = random.Random(7)
    rows = 0
    with open(location, "w") as f:
        f.write("event_id,region_id,day\n")
        chunk = []
        while f.tell() < args.events_bytes:
            for _ in range(100_000):
                chunk.append(f"{rows},{rng.randint(1, 100)},2024-03-{rng.randint(1, 28):02d}\n")
                rows += 1
            f.write("".join(chunk))
            chunk.clear()
    (work / "config.toml").write_text(EVENTS_CONFIG)
    mb = location.stat().st_size / 1e6
    warm([location])
    seconds, rss, summary = ingestd_once(args, work)
    assert summary["totals"]["rows"] == rows, summary
    sql_seconds, sql_rss, out = run_measured([args.ingestd, "sql", "--format", "csv", COUNT_SQL], cwd=work)
    counted = sum(int(line.rsplit(",", 1)[1]) for line in out.splitlines()[1:])
    assert counted == rows, (counted, rows)
    warm([location])
    duck_seconds, duck_rss, out = run_measured([PY, "-c", DUCKDB_EVENTS, str(location), str(regions)])
    assert int(out.split()[-1]) == rows
    print(f"\n== event counter: {rows:,} events, {mb:,.0f} MB location.csv joined with 100 regions")
    print(f"{'step':<44}{'wall s':>9}{'rows/s':>12}{'MB/s':>9}{'peak RSS MiB':>14}")
    for name, s, r in [
        ("ingestd once (join -> Delta, by day)", seconds, rss),
        ("ingestd sql (count per region per day)", sql_seconds, sql_rss),
        ("ingestd, both", seconds + sql_seconds, max(rss, sql_rss)),
        ("duckdb (join + count from the CSV)", duck_seconds, duck_rss),
    ]:
        print(f"{name:<44}{s:>9.2f}{rows / s:>12,.0f}{mb / s:>9.1f}{r:>14.0f}")
    shutil.rmtree(work)


MERGE_CONFIG = """
instance = "bench"
[http]
listen = ""
[sources.changes]
path = "{drop}"
min_age = "0s"
metadata_columns = false
sinks = ["lake"]
[sources.changes.columns]
id = {{ path = "id", type = "int64" }}
seq = {{ path = "seq", type = "int64" }}
op = {{ path = "op", type = "string" }}
value = {{ path = "value", type = "string" }}
[sources.changes.batch]
max_bytes = "64GiB"
max_rows = 1000000000
[sinks.lake]
kind = "delta"
uri = "lake"
{mode}
"""


def merge(args, base):
    work = base / "merge"
    (work / "initial").mkdir(parents=True)
    (work / "changes").mkdir()
    n = args.merge_rows
    with open(work / "initial" / "table.csv", "w") as f:
        f.write("id,seq,op,value\n")
        for start in range(0, n, 100_000):
            f.write("".join(f"{i},1,I,initial-{i}\n" for i in range(start, min(n, start + 100_000))))
    rng = random.Random(3)
    with open(work / "changes" / "changes.csv", "w") as f:
        f.write("id,seq,op,value\n")
        for i in range(100_000):
            key = rng.randrange(n) if i % 10 else n + i  # nine in ten update or delete, one in ten new
            op = "D" if i % 20 == 1 else "U"
            f.write(f"{key},2,{op},change-{i}\n")
    (work / "config.toml").write_text(MERGE_CONFIG.format(drop="initial", mode=""))
    load_seconds, load_rss, _ = ingestd_once(args, work)
    shutil.rmtree(work / "state")
    merge_mode = 'mode = "merge"\nmerge_key = ["id"]\nsequence_column = "seq"\ndelete_when = "op = \'D\'"'
    (work / "config.toml").write_text(MERGE_CONFIG.format(drop="changes", mode=merge_mode).replace('instance = "bench"', 'instance = "merger"'))
    warm([work / "changes" / "changes.csv"])
    seconds, rss, summary = ingestd_once(args, work)
    files = sum(1 for _ in (work / "lake").rglob("*.parquet"))
    print(f"\n== merge: 100,000 changes into a {n:,}-row Delta table ({files} data files after)")
    print(f"{'step':<44}{'wall s':>9}{'peak RSS MiB':>14}")
    print(f"{'append the table (ingestd once)':<44}{load_seconds:>9.2f}{load_rss:>14.0f}")
    print(f"{'merge the change batch (ingestd once)':<44}{seconds:>9.2f}{rss:>14.0f}")
    _, _, status = run_measured([args.ingestd, "status"], cwd=work)
    print(next((line for line in status.splitlines() if line.startswith("last commit")), status.strip()))
    assert summary["totals"]["rows"] == 100_000, summary
    shutil.rmtree(work)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ingestd", required=True)
    parser.add_argument("--only", nargs="*", default=["w1t", "events", "merge"])
    parser.add_argument("--w1-files", type=int, default=322)
    parser.add_argument("--w1-rows", type=int, default=1_017_244)
    parser.add_argument("--events-bytes", type=int, default=2_000_000_000)
    parser.add_argument("--merge-rows", type=int, default=10_000_000)
    parser.add_argument("--dir", default=os.environ.get("BENCH_DIR", str(Path.home() / ".cache/ingestd/bench")))
    args = parser.parse_args()
    base = Path(args.dir) / f"sql-{os.getpid()}"
    base.mkdir(parents=True)
    try:
        for name in args.only:
            {"w1t": w1t, "events": events, "merge": merge}[name](args, base)
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()

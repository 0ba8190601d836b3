#!/usr/bin/env python3
"""Reads a Delta table (or, with --parquet, a Parquet dataset folder) with each independent
reader and prints one JSON object: per reader, the column names it sees and its rows (values as
text, rows sorted), so a test can check that every reader sees the same columns and rows.

Usage:
    python3 scripts/read_table.py TABLE_DIR [--parquet]

Readers: Python's deltalake (Delta only), polars (scan_delta / scan_parquet), DuckDB (its own
delta_scan() from PyPI's duckdb-ext-delta, or read_parquet(union_by_name) over the dataset).
"""

from __future__ import annotations

import argparse
import datetime as dt
import decimal
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def text(value):
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value == int(value):
        return str(int(value)) if abs(value) < 1e15 else repr(value)
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def table_of(columns, rows):
    out = [{c: text(v) for c, v in zip(columns, row)} for row in rows]
    out.sort(key=lambda r: json.dumps(r, sort_keys=True))
    return {"columns": list(columns), "rows": out}


def arrow_table(t):
    cols = t.column_names
    return table_of(cols, zip(*[t.column(c).to_pylist() for c in cols]) if cols else [])


def parquet_files(path):
    return os.path.join(path, "**", "*.parquet")


def read(path, parquet):
    result = {}
    if not parquet:
        from deltalake import DeltaTable

        result["deltalake"] = arrow_table(DeltaTable(path).to_pyarrow_table())
    import polars as pl

    if parquet:
        # Files written before a column was added lack it: polars takes one file's schema for a
        # scan, so the files are read one by one and stacked by column name.
        import glob

        files = sorted(glob.glob(parquet_files(path), recursive=True))
        frame = pl.concat([pl.read_parquet(f, hive_partitioning=True) for f in files], how="diagonal_relaxed")
    else:
        frame = pl.scan_delta(path).collect()
    result["polars"] = table_of(frame.columns, frame.rows())
    if parquet:
        import duckdb

        con = duckdb.connect()
        source = f"read_parquet('{parquet_files(path)}', union_by_name = true, hive_partitioning = true)"
    else:
        import duckdb_delta

        con = duckdb_delta.connect()
        source = f"delta_scan('{path}')"
    cur = con.execute(f"SELECT * FROM {source}")
    result["duckdb"] = table_of([d[0] for d in cur.description], cur.fetchall())
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("table")
    ap.add_argument("--parquet", action="store_true")
    args = ap.parse_args()
    print(json.dumps(read(args.table, args.parquet)))


if __name__ == "__main__":
    main()

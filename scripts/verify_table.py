#!/usr/bin/env python3
"""Reads an ingestd Delta table with three independent readers and checks that they agree.

Usage:
    python3 scripts/verify_table.py TABLE_DIR --rows N [--sum-sale-price S] [--json]

Readers:
  deltalake  DeltaTable(path).to_pyarrow_table(); when pyarrow is not installed (it is optional
             from deltalake 1.0 on) the same figures come from deltalake's own DataFusion SQL.
  polars     pl.scan_delta(path).
  duckdb     delta_scan('path'), DuckDB's own Delta reader, loaded from PyPI's duckdb-ext-delta
             package (scripts/duckdb_delta.py); with --duckdb-mode parquet (or auto, when the
             extension cannot load) read_parquet() over exactly the files
             DeltaTable(path).file_uris() lists.

Each reader reports: row count, sum of sale_price, count of null size, min/max transaction_date.
Exit status 1 (with a message naming the reader) if a reader fails, a row count differs from
--rows, a sum differs from --sum-sale-price, or the readers disagree on any figure. Exit 2 on
bad usage.
"""

from __future__ import annotations

import argparse
import datetime as dt
import decimal
import json
import math
import os
import sys
import threading
import urllib.parse

READERS = ("deltalake", "polars", "duckdb")
FIGURES = ("rows", "sum_sale_price", "null_size", "min_transaction_date", "max_transaction_date")

# Set when a DuckDB delta_scan attempt is still stuck (e.g. a network install that never
# answers): its native thread could block interpreter shutdown, so we exit hard instead.
_STUCK_THREAD = False


def qident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def qstr(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def aggregate_sql(source: str, cols: argparse.Namespace, date_expr: str | None = None) -> str:
    """One SQL statement for the five figures; CASE instead of FILTER so DataFusion and DuckDB agree."""
    p, s, d = qident(cols.price_col), qident(cols.size_col), qident(cols.date_col)
    lo = f"min({d})" if date_expr is None else date_expr.format(agg="min", col=d)
    hi = f"max({d})" if date_expr is None else date_expr.format(agg="max", col=d)
    return (
        f"SELECT count(*) AS n, sum({p}) AS s, "
        f"sum(CASE WHEN {s} IS NULL THEN 1 ELSE 0 END) AS nz, "
        f"{lo} AS lo, {hi} AS hi FROM {source}"
    )


def norm(value):
    """Puts each reader's Python value into one comparable, JSON-friendly form."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, decimal.Decimal):
        if value == value.to_integral_value():
            return int(value)
        return format(value.normalize(), "f")
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return value.isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    if hasattr(value, "item"):  # numpy scalars
        return norm(value.item())
    return str(value)


def figures(n, s, nz, lo, hi) -> dict:
    # SQL's sum over no (non-null) rows is NULL where polars says 0: both mean "nothing to add".
    return {
        "rows": int(n),
        "sum_sale_price": norm(s) if s is not None else 0,
        "null_size": int(nz or 0),
        "min_transaction_date": norm(lo),
        "max_transaction_date": norm(hi),
    }


def same(a, b) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        try:
            # Float sums depend on the order rows are added in, which differs between readers.
            return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-6)
        except (TypeError, ValueError):
            return False
    if isinstance(a, str) and isinstance(b, str):
        try:
            return decimal.Decimal(a) == decimal.Decimal(b)
        except decimal.InvalidOperation:
            return a == b
    return a == b


def first_row(arrow_obj) -> tuple:
    """First row of an Arrow stream/table from any library (pyarrow, arro3, ...), as a tuple."""
    if hasattr(arrow_obj, "read_all"):
        arrow_obj = arrow_obj.read_all()
    try:
        import pyarrow as pa

        table = pa.table(arrow_obj)
        return tuple(table.column(i)[0].as_py() for i in range(table.num_columns))
    except ImportError:
        pass
    try:
        import polars as pl

        return pl.DataFrame(arrow_obj).row(0)
    except ImportError:
        pass
    # arro3 without pyarrow or polars.
    return tuple(arrow_obj.column(i)[0].as_py() for i in range(arrow_obj.num_columns))


def read_deltalake(path: str, cols: argparse.Namespace) -> dict:
    from deltalake import DeltaTable

    table = DeltaTable(path)
    try:
        import pyarrow.compute as pc
    except ImportError:
        pc = None
    if pc is not None:
        t = table.to_pyarrow_table(columns=[cols.price_col, cols.size_col, cols.date_col])
        mm = pc.min_max(t[cols.date_col]).as_py() or {}
        out = figures(
            t.num_rows,
            pc.sum(t[cols.price_col]).as_py(),
            t[cols.size_col].null_count,
            mm.get("min"),
            mm.get("max"),
        )
        out["via"] = "DeltaTable.to_pyarrow_table()"
        return out
    from deltalake import QueryBuilder

    reader = QueryBuilder().register("t", table).execute(aggregate_sql("t", cols))
    out = figures(*first_row(reader))
    out["via"] = "deltalake QueryBuilder (DataFusion SQL; pyarrow not installed)"
    return out


def read_polars(path: str, cols: argparse.Namespace) -> dict:
    import polars as pl

    c = pl.col
    aggs = [
        pl.len().alias("n"),
        c(cols.price_col).sum().alias("s"),
        c(cols.size_col).is_null().sum().alias("nz"),
        c(cols.date_col).min().alias("lo"),
        c(cols.date_col).max().alias("hi"),
    ]
    if hasattr(pl, "scan_delta"):
        row = pl.scan_delta(path).select(aggs).collect().row(0)
        via = "pl.scan_delta()"
    else:
        row = pl.read_delta(path).select(aggs).row(0)
        via = "pl.read_delta()"
    out = figures(*row)
    out["via"] = via
    return out


def duckdb_query(con, source: str, cols: argparse.Namespace) -> dict:
    # TIMESTAMPTZ values would come back in the session's zone (and need pytz); read them as
    # epoch microseconds instead and turn them into UTC here.
    desc = con.execute(f"DESCRIBE SELECT {qident(cols.date_col)} FROM {source}").fetchall()
    date_type = str(desc[0][1]).upper() if desc else ""
    if "TIME ZONE" in date_type:
        n, s, nz, lo, hi = con.execute(
            aggregate_sql(source, cols, date_expr="epoch_us({agg}({col}))")
        ).fetchone()
        lo, hi = (
            None if us is None else dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=int(us))
            for us in (lo, hi)
        )
    else:
        n, s, nz, lo, hi = con.execute(aggregate_sql(source, cols)).fetchone()
    return figures(n, s, nz, lo, hi)


def duckdb_delta_scan(path: str, cols: argparse.Namespace) -> dict:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import duckdb_delta

    con = duckdb_delta.connect()
    out = duckdb_query(con, f"delta_scan({qstr(path)})", cols)
    out["via"] = "delta_scan()"
    return out


def local_path(uri: str) -> str:
    if uri.startswith("file://"):
        return urllib.parse.unquote(urllib.parse.urlparse(uri).path)
    if "://" not in uri and not os.path.exists(uri) and os.path.exists(urllib.parse.unquote(uri)):
        return urllib.parse.unquote(uri)
    return uri


def duckdb_parquet(path: str, cols: argparse.Namespace, why: str) -> dict:
    import duckdb
    from deltalake import DeltaTable

    table = DeltaTable(path)
    files = [local_path(u) for u in table.file_uris()]
    notes = []
    try:
        features = table.protocol().reader_features or []
        if "deletionVectors" in features:
            notes.append("WARNING: table has deletion vectors, which read_parquet ignores")
        if "columnMapping" in features:
            notes.append("WARNING: table uses column mapping, which read_parquet ignores")
    except Exception:
        pass
    via = f"read_parquet() over {len(files)} files from DeltaTable.file_uris() (delta_scan unavailable: {why})"
    if notes:
        via += "; " + "; ".join(notes)
    if not files:
        out = figures(0, None, 0, None, None)
        out["via"] = via
        return out
    try:
        partitioned = bool(table.metadata().partition_columns)
    except Exception:
        partitioned = False
    file_list = "[" + ", ".join(qstr(f) for f in files) + "]"
    # Partition columns live only in the directory names; union_by_name copes with files
    # written before a column was added.
    source = (
        f"read_parquet({file_list}, hive_partitioning = {str(partitioned).lower()}, "
        f"union_by_name = true)"
    )
    out = duckdb_query(duckdb.connect(), source, cols)
    out["via"] = via
    return out


def read_duckdb(path: str, cols: argparse.Namespace) -> dict:
    global _STUCK_THREAD
    if cols.duckdb_mode == "parquet":
        return duckdb_parquet(path, cols, "--duckdb-mode parquet")
    result: dict = {}

    def attempt():
        try:
            result["ok"] = duckdb_delta_scan(path, cols)
        except BaseException as e:  # noqa: BLE001 - reported below
            result["err"] = e

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(cols.duckdb_timeout)
    if "ok" in result:
        return result["ok"]
    if worker.is_alive():
        _STUCK_THREAD = True
        why = f"no answer within {cols.duckdb_timeout:g}s"
    else:
        err = result.get("err")
        why = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}".strip()
    if cols.duckdb_mode == "delta_scan":
        raise RuntimeError(f"delta_scan failed ({why})")
    return duckdb_parquet(path, cols, why)


READ = {"deltalake": read_deltalake, "polars": read_polars, "duckdb": read_duckdb}


def parse_number(text: str):
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return norm(decimal.Decimal(text))
    except decimal.InvalidOperation:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def check_columns(path: str, cols: argparse.Namespace) -> str | None:
    """A clear message up front beats three readers failing with three different errors."""
    try:
        from deltalake import DeltaTable

        names = [f.name for f in DeltaTable(path).schema().fields]
    except Exception:
        return None  # the readers will report it in their own words
    missing = [c for c in (cols.price_col, cols.size_col, cols.date_col) if c not in names]
    if missing:
        return f"table has no column(s) {', '.join(missing)}; its columns are: {', '.join(names)}"
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("table", metavar="TABLE_DIR", help="path of the Delta table")
    ap.add_argument("--rows", type=int, required=True, help="expected row count")
    ap.add_argument("--sum-sale-price", type=parse_number, help="expected sum of the price column")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of lines")
    ap.add_argument("--readers", default=",".join(READERS), help="comma-separated subset of %(default)s")
    ap.add_argument("--price-col", default="sale_price")
    ap.add_argument("--size-col", default="size")
    ap.add_argument("--date-col", default="transaction_date")
    ap.add_argument(
        "--duckdb-mode",
        choices=("auto", "delta_scan", "parquet"),
        default="delta_scan",
        help="auto: delta_scan, falling back to read_parquet over the table's files",
    )
    ap.add_argument("--duckdb-timeout", type=float, default=60.0, help="seconds to wait for delta_scan")
    args = ap.parse_args(argv)

    readers = [r.strip() for r in args.readers.split(",") if r.strip()]
    unknown = [r for r in readers if r not in READ]
    if unknown or not readers:
        ap.error(f"unknown reader(s) {unknown}; choose from {', '.join(READERS)}")

    path = args.table
    if "://" not in path:
        path = os.path.abspath(path)
    errors: list[str] = []
    results: dict[str, dict] = {}

    if "://" not in path and not os.path.isdir(os.path.join(path, "_delta_log")):
        errors.append(f"{path} is not a Delta table (no _delta_log directory)")
    else:
        bad_cols = check_columns(path, args)
        if bad_cols:
            errors.append(bad_cols)
        else:
            for name in readers:
                try:
                    results[name] = READ[name](path, args)
                except Exception as e:  # noqa: BLE001 - any failure is a finding
                    first = str(e).splitlines()[0] if str(e) else ""
                    results[name] = {"error": f"{type(e).__name__}: {first}"}
                    hint = ""
                    if isinstance(e, ImportError):
                        hint = " (is the package installed in this Python?)"
                    errors.append(f"{name}: reader failed: {type(e).__name__}: {first}{hint}")

    ok_readers = {n: r for n, r in results.items() if "error" not in r}
    for name, r in ok_readers.items():
        if r["rows"] != args.rows:
            errors.append(f"{name}: row count {r['rows']} != expected {args.rows}")
        if args.sum_sale_price is not None and not same(r["sum_sale_price"], args.sum_sale_price):
            errors.append(
                f"{name}: sum of {args.price_col} {r['sum_sale_price']} != expected {args.sum_sale_price}"
            )
    if len(ok_readers) > 1:
        names = list(ok_readers)
        for fig in FIGURES:
            ref = ok_readers[names[0]][fig]
            if not all(same(ref, ok_readers[n][fig]) for n in names[1:]):
                detail = ", ".join(f"{n}={ok_readers[n][fig]!r}" for n in names)
                errors.append(f"readers disagree on {fig}: {detail}")

    if args.json:
        print(
            json.dumps(
                {
                    "table": path,
                    "expected_rows": args.rows,
                    "expected_sum_sale_price": args.sum_sale_price,
                    "columns": {"price": args.price_col, "size": args.size_col, "date": args.date_col},
                    "readers": results,
                    "ok": not errors,
                    "errors": errors,
                },
                indent=2,
                default=str,
            )
        )
    else:
        width = max(len(n) for n in readers)
        for name in readers:
            r = results.get(name)
            if r is None:
                continue
            if "error" in r:
                print(f"{name:<{width}}  ERROR {r['error']}")
                continue
            print(
                f"{name:<{width}}  rows={r['rows']} sum_sale_price={r['sum_sale_price']} "
                f"null_size={r['null_size']} min_transaction_date={r['min_transaction_date']} "
                f"max_transaction_date={r['max_transaction_date']}  [{r['via']}]"
            )
        if not errors:
            print(f"OK: {len(ok_readers)} readers agree, {args.rows} rows")
    for e in errors:
        print(f"FAIL: {e}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    code = main()
    if _STUCK_THREAD:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)

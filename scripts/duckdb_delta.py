#!/usr/bin/env python3
"""DuckDB with its own Delta reader loaded from PyPI's duckdb-ext-delta package (nothing is
downloaded at run time). Imported by the table checks; run alone, it prints the extension's path
and exits 1 when it cannot load it.
"""

from __future__ import annotations

import glob
import os
import sys
import sysconfig


def extension_path() -> str:
    import duckdb

    root = sysconfig.get_paths()["purelib"]
    pattern = os.path.join(root, "duckdb_ext", "extensions", f"v{duckdb.__version__}", "*", "delta.duckdb_extension")
    found = sorted(glob.glob(pattern))
    if not found:
        raise RuntimeError(f"no delta extension for duckdb {duckdb.__version__} under {root} (pip install duckdb-ext-delta)")
    return found[0]


def connect():
    """A DuckDB connection with delta_scan() available."""
    import duckdb

    con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
    path = extension_path()
    con.execute(f"LOAD '{path}'")
    return con


if __name__ == "__main__":
    try:
        con = connect()
        print(extension_path())
    except Exception as e:  # noqa: BLE001 - any failure means "not usable"
        print(f"duckdb delta extension unavailable: {e}", file=sys.stderr)
        sys.exit(1)

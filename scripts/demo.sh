#!/usr/bin/env bash
# The ATTOM job end to end on this machine, no other service needed: builds ingestd, writes
# ATTOM-shaped sample files into ./drop/attom, ingests them into the Delta table
# ./lake/attom_sales with ./config.toml, and shows the ledger.
# DEMO_FILES / DEMO_ROWS set the size (default 24 files, 60,000 rows; the real pull is 322 / 1,017,244).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
cargo build --release --locked --bin ingestd
"$INGESTD_BIN" sample --out drop/attom --files "${DEMO_FILES:-24}" --rows "${DEMO_ROWS:-60000}" >/dev/null
"$INGESTD_BIN" once
"$INGESTD_BIN" status
echo "The table is at ./lake/attom_sales; README.md shows how to read it with DuckDB, Polars, pandas or Spark."

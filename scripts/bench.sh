#!/usr/bin/env bash
# The workloads of the performance issue (W1-W4), ingestd side by side with DuckDB, Polars and
# Dask on the same files in the same run. Prints wall time, rows/s, MB/s, peak RSS, the ratio
# to each peer, and W2's latency percentiles.
#
#   scripts/bench.sh                 # full size: about 13 minutes, 20 GB of scratch space
#   scripts/bench.sh --scale small   # seconds; what CI runs to show the script works
#
# Scratch data goes to $BENCH_DIR (default ~/.cache/ingestd/bench), removed at the end unless
# --keep. Timings are never asserted: this reports, it does not pass or fail on speed.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
# CI passes INGESTD_PREBUILT=1 to use the binary its test build made: a plain `cargo build`
# resolves the dependencies' features without the dev-dependencies, so it would compile the
# whole tree (DataFusion included) a second time.
[ -n "${INGESTD_PREBUILT:-}" ] || cargo build --release --locked --bin ingestd
ensure_python_readers
ensure_bench_peers
exec "$INGESTD_VENV/bin/python" scripts/bench.py --ingestd "$INGESTD_BIN" "$@"

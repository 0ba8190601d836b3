#!/usr/bin/env bash
# Checks formatting and lints, installs what the tests need (Debian packages, a Python venv with the readers, kafka-python
# and moto's S3 server, the tansu Kafka broker) and runs them all: unit and integration tests (cargo), then the
# full ATTOM pull (322 files, 1,017,244 rows) read back by Python's deltalake, polars and duckdb,
# then the benchmark script at small scale.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
echo "== rustfmt (cargo fmt --check)"
cargo fmt --check
echo "== Debian packages (prometheus, promtool, systemd-analyze, make, curl)"
ensure_debian_packages
echo "== python readers and kafka-python (venv at $INGESTD_VENV)"
ensure_python_readers
ensure_kafka_client
echo "== moto S3 server and boto3"
ensure_s3_server
echo "== tansu Kafka broker $TANSU_VERSION (built once into $TANSU_ROOT, about 12 minutes)"
ensure_tansu
echo "== cargo test (release profile, target $CARGO_TARGET_DIR)"
cargo test --release --locked --features fault-injection 2>&1 | tee "$log"
echo "== clippy (every target, warnings are errors)"
cargo clippy --release --locked --features fault-injection --all-targets -- -D warnings
echo "== ATTOM pull end to end"
scripts/attom_e2e.sh
echo "== benchmark script, small scale (shows it runs; timings are not checked)"
INGESTD_PREBUILT=1 scripts/bench.sh --scale small
passed=$(grep -Eo '^test result: ok\. [0-9]+ passed' "$log" | awk '{s += $4} END {print s + 2}')
echo "all: $passed passed, 0 failed"

#!/usr/bin/env bash
# The crash torture test with more kills: scripts/torture.sh [KILLS] (default 1000).
# Delta gets KILLS kills (SIGKILL at random instants plus aborts at every fault point), the
# Parquet sink a quarter as many; both then compare every row with the input.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
TORTURE_KILLS="${1:-1000}" cargo test --release --locked --features fault-injection --test torture -- --nocapture --test-threads 1

#!/usr/bin/env bash
# What publishing to Kafka costs: the same ATTOM files ingested by `ingestd once` with the shipped
# mapping into Delta alone, then into Delta plus a Kafka topic on a local tansu broker
# (reconciling mode, zstd, keyed by zip code). Prints seconds, rows/s and peak RSS of each run.
#
#   scripts/bench_kafka.sh            # 100 files, 300,000 rows
#   FILES=322 ROWS=1017244 scripts/bench_kafka.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
ensure_tansu
files=${FILES:-100}
rows=${ROWS:-300000}
cargo build --release --locked --bin ingestd
work="$(mktemp -d)"
port="$(free_port)"
"$INGESTD_TANSU" broker --storage-engine memory://tansu/ --listener-url "tcp://127.0.0.1:$port" \
    --advertised-listener-url "tcp://127.0.0.1:$port" --cluster-id bench >"$work/tansu.log" 2>&1 &
tansu_pid=$!
trap 'kill $tansu_pid 2>/dev/null; rm -rf "$work"' EXIT
"$INGESTD_BIN" sample --out "$work/staging" --files "$files" --rows "$rows" >/dev/null

for run in delta delta+kafka; do
    dir="$work/$run"
    mkdir -p "$dir/drop"
    cp "$work/staging"/* "$dir/drop/"
    bench_config "$dir"
    if [ "$run" = delta+kafka ]; then
        sed -i 's|sinks = \["attom_sales"\]|sinks = ["attom_sales", "events"]|' "$dir/config.toml"
        printf '[sinks.events]\nkind = "kafka"\nbrokers = "127.0.0.1:%s"\ntopic = "attom"\nkey = ["zipcode"]\n' "$port" >>"$dir/config.toml"
    fi
    echo "== $run: $files files, $rows rows"
    bench_once "$dir"
done

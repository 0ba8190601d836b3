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
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"$INGESTD_TANSU" broker --storage-engine memory://tansu/ --listener-url "tcp://127.0.0.1:$port" \
    --advertised-listener-url "tcp://127.0.0.1:$port" --cluster-id bench >"$work/tansu.log" 2>&1 &
tansu_pid=$!
trap 'kill $tansu_pid 2>/dev/null; rm -rf "$work"' EXIT
"$INGESTD_BIN" sample --out "$work/staging" --files "$files" --rows "$rows" >/dev/null

for run in delta delta+kafka; do
    dir="$work/$run"
    mkdir -p "$dir/drop"
    cp "$work/staging"/* "$dir/drop/"
    # The shipped config with its paths moved into the run's folder.
    sed -e 's|\./drop/attom|drop|' -e 's|\./lake/attom_sales|lake|' -e 's|min_age = "2s"|min_age = "0s"|' \
        config.toml >"$dir/config.toml"
    if [ "$run" = delta+kafka ]; then
        sed -i 's|sinks = \["attom_sales"\]|sinks = ["attom_sales", "events"]|' "$dir/config.toml"
        printf '[sinks.events]\nkind = "kafka"\nbrokers = "127.0.0.1:%s"\ntopic = "attom"\nkey = ["zipcode"]\n' "$port" >>"$dir/config.toml"
    fi
    echo "== $run: $files files, $rows rows"
    (cd "$dir" && with_peak_rss "$INGESTD_BIN" once --json) 2>&1 | grep -E 'rows_per_second|peak_rss_mib' | tail -2
done

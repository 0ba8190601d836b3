#!/usr/bin/env bash
# What fetching costs: the same ATTOM files ingested by `ingestd once` with the shipped mapping
# from a local drop folder, from `python3 -m http.server` (kind = "http"), from a moto bucket
# (kind = "s3"), and from the drop folder into a Delta table in a moto bucket. Prints seconds,
# rows/s and peak RSS of each run. moto is a Python server: the S3 figures measure ingestd and
# moto together on one machine, not S3.
#
#   scripts/bench_remote.sh            # 100 files, 300,000 rows
#   FILES=322 ROWS=1017244 scripts/bench_remote.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
ensure_s3_server
files=${FILES:-100}
rows=${ROWS:-300000}
cargo build --release --locked --bin ingestd
work="$(mktemp -d)"
http_port="$(free_port)"
s3_port="$(free_port)"
"$INGESTD_BIN" sample --out "$work/served" --files "$files" --rows "$rows" >/dev/null
# Files as old as a finished pull, so min_age does not hold them back.
find "$work/served" -type f -exec touch -d '1 hour ago' {} +
python3 -m http.server "$http_port" --bind 127.0.0.1 --directory "$work/served" >"$work/http.log" 2>&1 &
http_pid=$!
"$INGESTD_VENV/bin/moto_server" -H 127.0.0.1 -p "$s3_port" >"$work/moto.log" 2>&1 &
moto_pid=$!
trap 'kill $http_pid $moto_pid 2>/dev/null; rm -rf "$work"' EXIT
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_REGION=us-east-1
endpoint="http://127.0.0.1:$s3_port"
until curl -s "$endpoint/moto-api/" >/dev/null; do sleep 0.2; done
"$INGESTD_VENV/bin/python" scripts/s3_client.py "$endpoint" mb pulls
"$INGESTD_VENV/bin/python" scripts/s3_client.py "$endpoint" mb lake
for f in "$work/served"/*; do
    "$INGESTD_VENV/bin/python" scripts/s3_client.py "$endpoint" put pulls "attom/$(basename "$f")" "$f"
done

for run in folder http s3-source delta-in-s3; do
    dir="$work/$run"
    mkdir -p "$dir/drop"
    bench_config "$dir"
    case "$run" in
        folder) cp "$work/served"/* "$dir/drop/" ;;
        http) sed -i "s|^path = \"drop\"|kind = \"http\"\nurl = \"http://127.0.0.1:$http_port/\"|" "$dir/config.toml" ;;
        s3-source)
            sed -i "s|^path = \"drop\"|kind = \"s3\"\nurl = \"s3://pulls/attom\"|" "$dir/config.toml"
            printf '[sources.attom.s3]\nendpoint = "%s"\n' "$endpoint" >>"$dir/config.toml" ;;
        delta-in-s3)
            cp "$work/served"/* "$dir/drop/"
            sed -i 's|^uri = "lake"|uri = "s3://lake/attom_sales"|' "$dir/config.toml"
            printf '[sinks.attom_sales.s3]\nendpoint = "%s"\n' "$endpoint" >>"$dir/config.toml" ;;
    esac
    echo "== $run: $files files, $rows rows"
    bench_once "$dir"
done

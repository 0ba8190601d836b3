#!/usr/bin/env bash
# The ATTOM pull end to end with the shipped config.toml: E2E_FILES files / E2E_ROWS rows
# (default: the real pull's 322 / 1,017,244) ingested by `ingestd once`, read back by three
# independent readers, dropped again under new names (0 rows added), state deleted (0 rows added).
# Prints the once time and peak memory.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
FILES="${E2E_FILES:-322}"
ROWS="${E2E_ROWS:-1017244}"
[ -x "$INGESTD_BIN" ] || cargo build --release --locked --bin ingestd
ensure_python_readers
work="$(mktemp -d "${TMPDIR:-/tmp}/ingestd-e2e.XXXXXX")"
trap 'rm -rf "$work"' EXIT
cp config.toml "$work/"
totals="$("$INGESTD_BIN" sample --out "$work/drop/attom" --files "$FILES" --rows "$ROWS")"
sum_price="$(python3 -c 'import json,sys; print(json.load(sys.stdin)["sum_sale_price"])' <<<"$totals")"
echo "generated $FILES files, $ROWS rows, $(du -sh "$work/drop/attom" | cut -f1)"

cd "$work"
echo "== ingestd once"
with_peak_rss "$INGESTD_BIN" once --log warn
"$INGESTD_VENV/bin/python" "$OLDPWD/scripts/verify_table.py" lake/attom_sales --rows "$ROWS" --sum-sale-price "$sum_price" --duckdb-mode delta_scan

echo "== the same files again under new names"
for f in drop/attom/*; do cp "$f" "drop/attom/again $(basename "$f")"; done
"$INGESTD_BIN" once --log warn --json | tee once2.json
python3 -c 'import json; s=json.load(open("once2.json")); assert s["totals"]["rows"] == 0, s; print("0 rows added")'

echo "== state deleted, restarted"
rm -rf state
"$INGESTD_BIN" once --log warn --json | tee once3.json
python3 -c 'import json; s=json.load(open("once3.json")); assert s["totals"]["rows"] == 0, s; print("0 rows added")'
"$INGESTD_VENV/bin/python" "$OLDPWD/scripts/verify_table.py" lake/attom_sales --rows "$ROWS" --sum-sale-price "$sum_price" --duckdb-mode delta_scan
echo "attom e2e: ok"

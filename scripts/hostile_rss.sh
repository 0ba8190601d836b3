#!/usr/bin/env bash
# Hostile files against the built-in default (no config: ./drop into a Delta table at ./lake,
# columns inferred), each alone in a fresh folder, beside one good file: `ingestd once` under
# /usr/bin/time -v. Prints, per case, where the file ended, the reason, and the peak RSS; fails
# if the hostile file committed, the good one did not, or the peak passed MAX_RSS_MIB.
#
#   scripts/hostile_rss.sh              the 300 MB cases and three 10 GiB gzip bombs
#   SIZE_MB=5000 scripts/hostile_rss.sh also a 5 GB one-line JSON array (which commits)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
MAX_RSS_MIB="${MAX_RSS_MIB:-300}"
SIZE_MB="${SIZE_MB:-0}"
[ -x "$INGESTD_BIN" ] || cargo build --release --locked --bin ingestd
work="$(mktemp -d "${TMPDIR:-/tmp}/ingestd-hostile.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# The cases' files, written by Python in 1 MiB pieces (a 10 GiB bomb: one gzip member of 1 GiB,
# ten times over, which gzip readers take as one stream).
python3 - "$work" "$SIZE_MB" <<'PY'
import gzip, json, os, sys, zlib
work, size_mb = sys.argv[1], int(sys.argv[2])
MIB = 1 << 20
def case(name, file, writer):
    os.makedirs(f"{work}/{name}/drop")
    with open(f"{work}/{name}/drop/{file}", "wb") as out:
        writer(out)
    with open(f"{work}/{name}/drop/good.json", "w") as out:
        json.dump([{"id": 1, "name": "good"}], out)
def header_300mb(out):
    # One line of 300 MB: column names c0000000,c0000001,... (33 M columns), then a row.
    names = ",".join(f"c{i:07d}" for i in range(MIB // 9))
    for _ in range(300):
        out.write(names.encode() + b",")
    out.write(b"last\n1\n")
def string_300mb(out):
    out.write(b'[{"id": 1, "name": "')
    chunk = b"x" * MIB
    for _ in range(300):
        out.write(chunk)
    out.write(b'"}]')
def gzip_bomb(head, pattern):
    # `head` in a gzip member of its own, then 10 GiB of `pattern` as ten members of 1 GiB.
    def writer(out):
        out.write(gzip.compress(head))
        member = zlib.compressobj(9, zlib.DEFLATED, 31)
        piece = pattern * (MIB // len(pattern))
        one = b"".join(member.compress(piece) for _ in range(1024)) + member.flush()
        for _ in range(10):
            out.write(one)
    return writer
def json_array_one_line(out):
    row = json.dumps({"id": 123456, "name": "a name", "price": 123.5, "tags": ["a", "b"]}).encode()
    out.write(b"[")
    piece = b",".join([row] * (MIB // (len(row) + 1)))
    for i in range(size_mb):
        out.write(piece if i == 0 else b"," + piece)
    out.write(b"]")
case("csv_header_300mb", "wide.csv", header_300mb)
case("json_string_300mb", "long.json", string_300mb)
case("gzip_bomb_10gib_zeros", "zeros.gz", gzip_bomb(b"", b"\0"))
case("gzip_bomb_10gib_csv_row", "row.csv.gz", gzip_bomb(b"id,name\n1,", b"x"))
case("gzip_bomb_10gib_ndjson", "records.gz", gzip_bomb(b"", b'{"id":1,"name":"a"}\n'))
if size_mb:
    case(f"json_array_{size_mb}mb_one_line", "big.json", json_array_one_line)
PY

status=0
for dir in "$work"/*/; do
    name="$(basename "$dir")"
    size="$(du -b --apparent-size "$dir/drop" | cut -f1)"
    (cd "$dir" && /usr/bin/time -v "$INGESTD_BIN" once --log warn --json >once.json 2>time.txt) || true
    rss_kib="$(awk -F': ' '/Maximum resident set size/ {print $2}' "$dir/time.txt")"
    wall="$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$dir/time.txt")"
    rss_mib=$((rss_kib / 1024))
    quarantined="$(find "$dir/quarantine" -name '*.error.json' 2>/dev/null | head -1 || true)"
    reason="committed"
    [ -n "$quarantined" ] && reason="quarantined: $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["reason"])' "$quarantined")"
    rows="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["totals"]["rows"])' "$dir/once.json" 2>/dev/null || echo "?")"
    echo "$name: $((size / 1000000)) MB in the folder, $rows rows committed, peak RSS $rss_mib MiB, $wall"
    echo "    $reason"
    case "$name" in
        json_array_*) [ -z "$quarantined" ] || { echo "    FAIL: the array was quarantined"; status=1; } ;;
        *) { [ -n "$quarantined" ] && [ "$rows" = 1 ]; } || { echo "    FAIL: expected the file quarantined and good.json's 1 row committed"; status=1; } ;;
    esac
    [ "$rss_mib" -le "$MAX_RSS_MIB" ] || { echo "    FAIL: peak RSS over $MAX_RSS_MIB MiB"; status=1; }
done
exit $status

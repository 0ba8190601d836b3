#!/usr/bin/env bash
# Runs the cargo fuzz targets of fuzz/ (the bodies are in src/fuzz.rs), each for RUNS executions,
# starting from the committed corpus fuzz/corpus/TARGET. New inputs go to a scratch folder, not
# the corpus; a crash leaves its input in fuzz/artifacts/TARGET/ (copy it into the corpus once
# fixed, so that the unit tests replay it). Needs the nightly toolchain; installs cargo-fuzz.
#
#   scripts/fuzz.sh [RUNS] [TARGET ...]     RUNS defaults to 1,000,000; TARGETs to all six
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-1000000}"
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(json csv compressed http_listing push_request config)
CARGO_FUZZ_VERSION=0.13.2
if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
    cargo install --locked --quiet --version "$CARGO_FUZZ_VERSION" cargo-fuzz
fi
# Its own target folder: the nightly, instrumented build must not disturb the daemon's.
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$HOME/.cache/ingestd/fuzz-target}"
# No sanitizer: the code fuzzed is safe Rust (its one `unsafe` is a setpriority call in table
# upkeep), so AddressSanitizer would find nothing a panic does not, at twice the run time.
cargo +nightly fuzz build --sanitizer none
for target in "${TARGETS[@]}"; do
    scratch="$(mktemp -d "${TMPDIR:-/tmp}/ingestd-fuzz-$target.XXXXXX")"
    mkdir -p "fuzz/artifacts/$target"
    echo "== $target: $RUNS runs"
    /usr/bin/time -f "$target: %e s wall, peak RSS %M KiB" \
        cargo +nightly fuzz run --sanitizer none "$target" "$scratch" "fuzz/corpus/$target" -- \
        -runs="$RUNS" -max_len=4096 -rss_limit_mb=2048 -artifact_prefix="fuzz/artifacts/$target/" -print_final_stats=1 \
        2>&1 | grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|Done|==|SUMMARY|.*panicked|.*Test unit written)|wall' || true
    rm -rf "$scratch"
    if [ -n "$(ls -A "fuzz/artifacts/$target")" ]; then
        echo "FAIL: $target left inputs in fuzz/artifacts/$target"
        exit 1
    fi
done

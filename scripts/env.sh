# Shared settings for the project's scripts (sourced, not run).
# Build artefacts live outside the clone so a fresh clone reuses them and CI keeps them between runs.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ingestd/target}"
# The one build profile used everywhere (binary, tests, benchmarks, CI).
INGESTD_BIN="$CARGO_TARGET_DIR/release/ingestd"
# The Python readers used to cross-check tables (deltalake, polars, duckdb, pyarrow).
export INGESTD_VENV="${INGESTD_VENV:-$HOME/.cache/ingestd/venv}"

# DuckDB pinned to the release whose own Delta reader (the `delta` extension) PyPI ships.
DUCKDB_VERSION=1.4.4
DUCKDB_DELTA_VERSION=1.4.4.20260205
ensure_python_readers() {
    if [ ! -x "$INGESTD_VENV/bin/python" ]; then
        python3 -m venv "$INGESTD_VENV"
    fi
    if ! "$INGESTD_VENV/bin/python" -c "import deltalake, polars, duckdb, pyarrow, pytz, sys; sys.exit(duckdb.__version__ != '$DUCKDB_VERSION')" 2>/dev/null ||
        ! "$INGESTD_VENV/bin/python" "$(dirname "${BASH_SOURCE[0]}")/duckdb_delta.py" >/dev/null 2>&1; then
        "$INGESTD_VENV/bin/pip" install --quiet --disable-pip-version-check deltalake polars "duckdb==$DUCKDB_VERSION" \
            "duckdb-ext-delta==$DUCKDB_DELTA_VERSION" pyarrow pytz
    fi
}

# Debian packages the tests use: Prometheus and promtool, systemd-analyze, make, curl (push).
ensure_debian_packages() {
    local missing=()
    { command -v prometheus && command -v promtool; } >/dev/null || missing+=(prometheus)
    command -v systemd-analyze >/dev/null || missing+=(systemd)
    command -v make >/dev/null || missing+=(make)
    command -v curl >/dev/null || missing+=(curl)
    if [ ${#missing[@]} -gt 0 ]; then
        local sudo=""
        [ "$(id -u)" -ne 0 ] && sudo=sudo
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q
        $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
    fi
}

# The peers of scripts/bench.sh, in the same private environment.
ensure_bench_peers() {
    ensure_python_readers
    if ! "$INGESTD_VENV/bin/python" -c 'import duckdb, polars, dask.dataframe, pandas' 2>/dev/null; then
        "$INGESTD_VENV/bin/pip" install --quiet --disable-pip-version-check "duckdb==$DUCKDB_VERSION" polars 'dask[dataframe]' pandas pyarrow
    fi
}

# Runs a command and prints its peak resident memory (MiB) on stderr, as "peak_rss_mib=N".
with_peak_rss() {
    python3 - "$@" <<'PY'
import resource, subprocess, sys
code = subprocess.call(sys.argv[1:])
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(f"peak_rss_mib={peak:.0f}", file=sys.stderr)
sys.exit(code)
PY
}

# A free TCP port on loopback.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Writes the shipped config.toml into folder DIR with its paths moved into DIR (drop folder
# DIR/drop, table DIR/lake) and no min_age, for benchmark runs.
bench_config() {
    sed -e 's|\./drop/attom|drop|' -e 's|\./lake/attom_sales|lake|' -e 's|min_age = "2s"|min_age = "0s"|' \
        config.toml >"$1/config.toml"
}

# Runs `ingestd once` in folder DIR and prints its rows/s and peak RSS.
bench_once() {
    (cd "$1" && with_peak_rss "$INGESTD_BIN" once --json) 2>&1 | grep -E 'rows_per_second|peak_rss_mib' | tail -2
}

# A Kafka-protocol broker for the Kafka sink's tests: tansu from the crates registry, built once
# into a folder outside the clone (about 12 minutes on 2 cores) and reused after that.
TANSU_VERSION=0.6.0
TANSU_ROOT="${TANSU_ROOT:-$HOME/.cache/ingestd/tansu-$TANSU_VERSION}"
export INGESTD_TANSU="$TANSU_ROOT/bin/tansu"
ensure_tansu() {
    if [ ! -x "$INGESTD_TANSU" ]; then
        # Its own target dir: the broker's build must not disturb ingestd's.
        CARGO_TARGET_DIR="$TANSU_ROOT/build" cargo install --locked --quiet \
            --root "$TANSU_ROOT" --version "$TANSU_VERSION" tansu --features dynostore,libsql
        rm -rf "$TANSU_ROOT/build"
    fi
}

# kafka-python, the independent (pure-Python, not librdkafka) consumer the Kafka tests read with,
# and zstandard, its codec for the sink's default compression.
KAFKA_PYTHON_VERSION=3.0.12
ensure_kafka_client() {
    ensure_python_readers
    "$INGESTD_VENV/bin/python" -c "import kafka, zstandard, sys; sys.exit(kafka.__version__ != '$KAFKA_PYTHON_VERSION')" 2>/dev/null ||
        "$INGESTD_VENV/bin/pip" install --quiet --disable-pip-version-check "kafka-python==$KAFKA_PYTHON_VERSION" zstandard==0.25.0
}

# moto's S3-compatible server (honours conditional writes, which Delta commits on S3 rely on)
# and boto3, the standard client the S3 tests upload with. No MinIO-compatible server is
# published on PyPI, npm or crates.io as something installable here.
ensure_s3_server() {
    ensure_python_readers
    "$INGESTD_VENV/bin/python" -c 'import moto.server, boto3' 2>/dev/null ||
        "$INGESTD_VENV/bin/pip" install --quiet --disable-pip-version-check 'moto[server]==5.2.5' 'boto3==1.44.5'
}

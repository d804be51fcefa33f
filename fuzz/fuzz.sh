#!/usr/bin/env bash
# The fuzz targets, built and run with the same flags everywhere (README "Fuzzing", .ci/run):
#
#   fuzz/fuzz.sh build                  build every target (nightly, cargo-fuzz, ASan)
#   fuzz/fuzz.sh run TARGET SECONDS     fuzz one target for SECONDS (niced), starting from its
#                                       seeds; new inputs go to fuzz/work/TARGET (git-ignored),
#                                       crashes to fuzz/artifacts/TARGET/
#   fuzz/fuzz.sh replay                 run every seed and regression input once, every target
#   fuzz/fuzz.sh ci SECONDS             build, replay, then run each target for SECONDS
#   fuzz/fuzz.sh tmin TARGET INPUT      minimise a crashing input
#
# Fails (never skips) when the nightly toolchain or cargo-fuzz is missing, and on any crash,
# panic, leak, timeout or allocation over -malloc_limit_mb / -rss_limit_mb.
set -euo pipefail
cd "$(dirname "$0")"

TARGETS=(request_frame request_body record_batch scenario server_properties)
BIN=target/x86_64-unknown-linux-gnu/release
# An allocation of more than 512 MiB, or 2 GiB resident, is a finding: the request bounds check
# exists so that no count in a frame reaches an allocator unchecked. 10 s for one input is a hang.
LIMITS=(-malloc_limit_mb=512 -rss_limit_mb=2048 -timeout=10)

need_toolchain() {
    if ! cargo +nightly --version >/dev/null 2>&1; then
        echo "fuzz: the nightly Rust toolchain is missing (cargo-fuzz needs it):" \
            "rustup toolchain install nightly" >&2
        exit 1
    fi
    if ! cargo fuzz --version >/dev/null 2>&1; then
        echo "fuzz: cargo-fuzz is missing: cargo install cargo-fuzz --locked" \
            "(.ci/install-deps.sh does it)" >&2
        exit 1
    fi
}

known() {
    local t
    for t in "${TARGETS[@]}"; do [ "$t" = "$1" ] && return 0; done
    echo "fuzz: unknown target '$1' (targets: ${TARGETS[*]})" >&2
    exit 2
}

# The seed directory of a target: its own corpus; request_body starts from the real frames.
seeds() {
    if [ "$1" = request_body ]; then echo "corpus/request_frame"; else echo "corpus/$1"; fi
}

# A dictionary where the input is text with known keys.
dict() {
    if [ -f "dict/$1.dict" ]; then echo "-dict=dict/$1.dict"; fi
}

build() {
    need_toolchain
    # -a: debug assertions and overflow checks, so an arithmetic overflow is a finding too.
    # LDFLAGS: the cc crate compiles the C dependencies (zlib, zstd, for librdkafka) with ASan
    # under cargo-fuzz; librdkafka's ./configure then needs the ASan runtime to link its checks.
    LDFLAGS=-fsanitize=address nice -n 10 cargo +nightly fuzz build -a --fuzz-dir . "$@"
}

run() {
    local target=$1 secs=$2
    shift 2
    known "$target"
    mkdir -p "work/$target" "artifacts/$target"
    # shellcheck disable=SC2046
    nice -n 10 "$BIN/$target" "work/$target" $(seeds "$target") $(dict "$target") \
        -max_total_time="$secs" -artifact_prefix="artifacts/$target/" -print_final_stats=1 \
        "${LIMITS[@]}" "$@"
}

replay() {
    local t failed=0 inputs
    for t in "${TARGETS[@]}"; do
        mapfile -t inputs < <(find "$(seeds "$t")" "regressions/$t" -type f 2>/dev/null | sort)
        if [ ${#inputs[@]} -eq 0 ]; then
            continue
        fi
        echo "fuzz: replaying ${#inputs[@]} inputs through $t"
        if ! "$BIN/$t" "${LIMITS[@]}" -runs=1 "${inputs[@]}" >"artifacts/replay-$t.log" 2>&1; then
            echo "fuzz: $t failed on a corpus or regression input:" >&2
            tail -40 "artifacts/replay-$t.log" >&2
            failed=1
        fi
    done
    return $failed
}

mkdir -p artifacts
case "${1:-}" in
build)
    shift
    build "$@"
    ;;
run)
    [ $# -ge 3 ] || { echo "usage: fuzz/fuzz.sh run TARGET SECONDS [libFuzzer flags]" >&2; exit 2; }
    shift
    run "$@"
    ;;
replay)
    replay
    ;;
ci)
    [ $# -eq 2 ] || { echo "usage: fuzz/fuzz.sh ci SECONDS_PER_TARGET" >&2; exit 2; }
    build
    replay
    for t in "${TARGETS[@]}"; do
        echo "fuzz: $t for $2 s"
        run "$t" "$2" >"artifacts/ci-$t.log" 2>&1 || {
            echo "fuzz: $t found a crash (input in fuzz/artifacts/$t/):" >&2
            tail -60 "artifacts/ci-$t.log" >&2
            exit 1
        }
        grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|Done )' "artifacts/ci-$t.log" || true
    done
    ;;
tmin)
    [ $# -eq 3 ] || { echo "usage: fuzz/fuzz.sh tmin TARGET INPUT" >&2; exit 2; }
    known "$2"
    nice -n 10 "$BIN/$2" -minimize_crash=1 -max_total_time=120 "${LIMITS[@]}" \
        -exact_artifact_path="artifacts/$2/minimized" "$3"
    ;;
*)
    sed -n '2,12p' "$0" >&2
    exit 2
    ;;
esac

#!/usr/bin/env bash
# The fuzz targets, built and run with the same flags everywhere (README "Fuzzing", .ci/run):
#
#   fuzz/fuzz.sh build                  build every target (nightly, cargo-fuzz, ASan)
#   fuzz/fuzz.sh build-broker           build the kbroker targets only (what `ci` builds)
#   fuzz/fuzz.sh run TARGET SECONDS     fuzz one target for SECONDS (niced), starting from its
#                                       seeds; new inputs go to fuzz/work/TARGET (git-ignored),
#                                       crashes to fuzz/artifacts/TARGET/
#   fuzz/fuzz.sh replay                 run every seed and regression input once, every target
#                                       built
#   fuzz/fuzz.sh ci SECONDS             build the kbroker targets, replay, then run each for
#                                       SECONDS
#   fuzz/fuzz.sh tmin TARGET INPUT      minimise a crashing input
#
# The kbroker targets (request_frame, request_body, record_batch, server_properties) build
# without kbench; `scenario` needs it, and with it librdkafka and the harness, which the fuzz
# crate's `scenario` feature brings in. Feature unification then rebuilds the dependencies the two
# share (kafka-protocol, kbroker, ...) a second time: `build` takes 9 minutes for the four and 9
# more for `scenario` on a 2-core machine. CI (`ci`) fuzzes the four, the input any client can
# send; the scenario target's seeds and regressions still run in `cargo test`
# (tests/fuzz_inputs.rs), and `build` followed by `run scenario SECONDS` fuzzes it.
#
# Fails (never skips) when the nightly toolchain or cargo-fuzz is missing, and on any crash,
# panic, leak, timeout or allocation over -malloc_limit_mb / -rss_limit_mb.
#
# Builds and fuzzing run at `nice -n ${FUZZ_NICE:-10}`; .ci/run builds at 19 beside its tests.
set -euo pipefail
cd "$(dirname "$0")"

BROKER_TARGETS=(request_frame request_body record_batch server_properties)
TARGETS=("${BROKER_TARGETS[@]}" scenario)
BIN=target/x86_64-unknown-linux-gnu/release
# An allocation of more than 512 MiB, or 2 GiB resident, is a finding: the request bounds check
# exists so that no count in a frame reaches an allocator unchecked. 10 s for one input is a hang.
LIMITS=(-malloc_limit_mb=512 -rss_limit_mb=2048 -timeout=10)
NICE=(nice -n "${FUZZ_NICE:-10}")

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

# build [scenario]: the kbroker targets; with `scenario`, that target too.
build() {
    need_toolchain
    # -a: debug assertions and overflow checks, so an arithmetic overflow is a finding too.
    # LDFLAGS: the cc crate compiles the C dependencies (zlib, zstd, for librdkafka) with ASan
    # under cargo-fuzz; librdkafka's ./configure then needs the ASan runtime to link its checks.
    # Without a target name cargo-fuzz builds every binary whose required features are on: the
    # four kbroker targets.
    LDFLAGS=-fsanitize=address "${NICE[@]}" cargo +nightly fuzz build -a --fuzz-dir .
    if [ "${1:-}" = scenario ]; then
        LDFLAGS=-fsanitize=address "${NICE[@]}" cargo +nightly fuzz build -a --fuzz-dir . \
            --features scenario scenario
    fi
}

run() {
    local target=$1 secs=$2
    shift 2
    known "$target"
    mkdir -p "work/$target" "artifacts/$target"
    # shellcheck disable=SC2046
    "${NICE[@]}" "$BIN/$target" "work/$target" $(seeds "$target") $(dict "$target") \
        -max_total_time="$secs" -artifact_prefix="artifacts/$target/" -print_final_stats=1 \
        "${LIMITS[@]}" "$@"
}

# replay TARGET...: every seed and regression input of each TARGET, once.
replay() {
    local t failed=0 inputs
    for t in "$@"; do
        if [ ! -x "$BIN/$t" ]; then
            echo "fuzz: $t is not built (fuzz/fuzz.sh build)" >&2
            return 1
        fi
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
    build scenario
    ;;
build-broker)
    build
    ;;
run)
    [ $# -ge 3 ] || { echo "usage: fuzz/fuzz.sh run TARGET SECONDS [libFuzzer flags]" >&2; exit 2; }
    shift
    run "$@"
    ;;
replay)
    targets=()
    for t in "${TARGETS[@]}"; do [ -x "$BIN/$t" ] && targets+=("$t"); done
    [ ${#targets[@]} -gt 0 ] || { echo "fuzz: nothing is built (fuzz/fuzz.sh build)" >&2; exit 1; }
    replay "${targets[@]}"
    ;;
ci)
    [ $# -eq 2 ] || { echo "usage: fuzz/fuzz.sh ci SECONDS_PER_TARGET" >&2; exit 2; }
    build
    replay "${BROKER_TARGETS[@]}"
    for t in "${BROKER_TARGETS[@]}"; do
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
    "${NICE[@]}" "$BIN/$2" -minimize_crash=1 -max_total_time=120 "${LIMITS[@]}" \
        -exact_artifact_path="artifacts/$2/minimized" "$3"
    ;;
*)
    sed -n '2,13p' "$(basename "$0")" >&2  # the cd above moved us beside it
    exit 2
    ;;
esac

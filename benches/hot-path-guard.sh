#!/usr/bin/env bash
# The per-message work guard (issue 14, part 3): instruction counts of kbench's per-message hot
# path (benches/hot_path.rs) under valgrind's callgrind, which counts the same on a quiet or a
# noisy machine, against the figures in benches/hot-path-baseline.txt. Fails (exit 1) when a
# phase needs more than LIMIT times its baseline instructions per message (default 1.5: a change
# that doubles the work per message fails, compiler drift of ±20 % does not).
#
#   benches/hot-path-guard.sh [--repeat N] [--limit X] [--write-baseline]
#
# --repeat 2 runs every message's step twice: the injected doubling CI runs to show the guard
# fails when it should. --write-baseline records the current figures instead of checking them.
# Each phase runs at two message counts and the difference is divided, so start-up (the payload
# pool, histograms) cancels out. Needs valgrind; about 30 s.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
repeat=1
limit=1.5
write=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --repeat) repeat=$2; shift 2 ;;
    --limit) limit=$2; shift 2 ;;
    --write-baseline) write=1; shift ;;
    *) echo "hot-path-guard: unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
command -v valgrind >/dev/null || { echo "hot-path-guard: valgrind not found (apt-get install valgrind)" >&2; exit 2; }
# A release build of the bench target (not `cargo bench`, whose profile would build everything a
# second time next to CI's `cargo build --release --bin kbench --bench hot_path`).
bin=$(cd "$root" && cargo build --release --bench hot_path --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "hot_path" and m.get("executable"):
        print(m["executable"])')
[[ -x "$bin" ]] || { echo "hot-path-guard: could not build benches/hot_path.rs (cargo build --release --bench hot_path)" >&2; exit 2; }
baseline="$root/benches/hot-path-baseline.txt"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Instructions (Ir) callgrind counted for one run of PHASE with N messages.
instructions() {
  valgrind --tool=callgrind --callgrind-out-file="$tmp/out" "$bin" "$1" "$2" "$repeat" \
    >/dev/null 2>"$tmp/log" || { cat "$tmp/log" >&2; exit 2; }
  sed -n 's/^summary: *\([0-9]*\).*/\1/p' "$tmp/out"
}

small=2000
large=22000
status=0
lines=()
for phase in produce produce-copy produce-copy-and-seal ack consume; do
  a=$(instructions "$phase" "$small")
  b=$(instructions "$phase" "$large")
  per=$(( (b - a) / (large - small) ))
  if ((write)); then
    lines+=("$phase $per")
    echo "hot-path-guard: $phase: $per instructions per message (recorded)"
    continue
  fi
  base=$(awk -v p="$phase" '$1 == p {print $2}' "$baseline")
  [[ -n "$base" ]] || { echo "hot-path-guard: no baseline for $phase in $baseline" >&2; exit 2; }
  verdict=$(python3 -c "print('ok' if $per <= $limit * $base else 'FAIL')")
  echo "hot-path-guard: $phase: $per instructions per message (baseline $base, limit ${limit}x): $verdict"
  [[ $verdict == ok ]] || status=1
done
if ((write)); then
  { echo "# benches/hot-path-guard.sh --write-baseline: instructions per message (callgrind Ir), phase per line"
    printf '%s\n' "${lines[@]}"; } >"$baseline"
fi
exit $status

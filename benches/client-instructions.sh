#!/usr/bin/env bash
# Instructions per message of the whole producing client, kbench against librdkafka's own
# rdkafka_performance (issue 14): the repeatable companion of benches/client-path.sh, whose
# rates and CPU seconds swing by half between identical runs on a shared VM.
#
#   benches/client-instructions.sh [--messages N]
#
# Each side produces N and then 1,024 messages of 1 KiB (acks=1, linger.ms=5, batch.size=1 MiB,
# 4 partitions: benches/producer-path.toml and the same rdkafka_performance flags as
# client-path.sh) under valgrind's callgrind, against a fresh standalone kbroker per run (not
# under valgrind); the figure is (Ir(N) - Ir(1,024)) / (N - 1,024), so set-up cancels.
# Identical runs differ by up to 3 % (batching depends on timing, even under valgrind), where
# client-path.sh's figures differ by half on a shared VM. kbench's figure also holds work that
# grows with the run's duration rather than its messages (sampler, interval collection, the
# report's charts), which valgrind's slowdown stretches: compare kbench builds with each
# other, and read the ratio to the yardstick as an upper bound. Instruction counts miss what
# costs time without instructions (wake-ups, lock waits, cache and TLB misses, page faults):
# client-path.sh measures those. A benchmark, not a test: it prints figures and never fails on them.
#
# Needs valgrind and `cargo build --release --bin kbench`; KBENCH=path measures another build.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
n=262144
while [[ $# -gt 0 ]]; do
  case "$1" in
    --messages) n=$2; shift 2 ;;
    *) echo "client-instructions: unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
((n > 1024)) || { echo "client-instructions: --messages must be more than 1024" >&2; exit 2; }
kbench="${KBENCH:-$root/target/release/kbench}"
[[ -x "$kbench" ]] || { echo "client-instructions: build first: cargo build --release --bin kbench" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "client-instructions: needs valgrind (apt-get install valgrind)" >&2; exit 2; }
"$root/benches/rdkafka-performance.sh" -h >/dev/null 2>&1 || true # builds rdkafka_performance
rdperf="$root/target/rdkafka_performance"
[[ -x "$rdperf" ]] || { echo "client-instructions: could not build rdkafka_performance" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

ir() { # WHO MESSAGES -> total Ir of the client process
  local who=$1 m=$2 d="$work/$1-$2" i bootstrap
  mkdir -p "$d"
  "$kbench" cluster up --brokers 1 --dir "$d/broker" >"$d/up.log" 2>&1 &
  for i in $(seq 1 300); do grep -qs '^BOOTSTRAP=' "$d/broker/cluster.env" && break; sleep 0.1; done
  bootstrap=$(sed -n 's/^BOOTSTRAP=//p' "$d/broker/cluster.env" 2>/dev/null || true)
  [[ -n "$bootstrap" ]] || { echo "client-instructions: the broker did not come up (see $d/up.log)" >&2; exit 2; }
  if [[ $who == kbench ]]; then
    valgrind --tool=callgrind --callgrind-out-file="$d/cg.out" "$kbench" run \
      "$root/benches/producer-path.toml" --bootstrap "$bootstrap" --out "$d/run" \
      --set "producers.messages_each=$m" >"$d/log" 2>&1
  else
    "$kbench" run "$root/benches/producer-path.toml" --bootstrap "$bootstrap" --out "$d/topic" \
      --set topic.name=perf --set producers.messages_each=1 >/dev/null 2>&1
    valgrind --tool=callgrind --callgrind-out-file="$d/cg.out" "$rdperf" -P -t perf \
      -b "$bootstrap" -s 1024 -c "$m" -X acks=1 -X linger.ms=5 -X batch.size=1048576 >"$d/log" 2>&1
  fi
  "$kbench" cluster down --dir "$d/broker" >/dev/null 2>&1 || true
  wait 2>/dev/null || true
  sed -n 's/^\(summary\|totals\): *\([0-9]*\).*/\2/p' "$d/cg.out" | head -n 1
}
per() { python3 -c "print(round(($1 - $2) / ($n - 1024)))"; }
k=$(per "$(ir kbench "$n")" "$(ir kbench 1024)")
r=$(per "$(ir rdperf "$n")" "$(ir rdperf 1024)")
echo "instructions per message ($n - 1,024 messages): kbench $k, rdkafka_performance $r, ratio $(python3 -c "print(round($k / $r, 2))")"

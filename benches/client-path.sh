#!/usr/bin/env bash
# kbench's producer and consumer paths against librdkafka's own rdkafka_performance (issue 14,
# part 3), on the same kbroker: a fresh standalone broker (`kbench cluster up`) for every figure,
# the order alternating per round (kbench first in odd rounds) so page-cache writeback after a
# GiB and warm caches favour neither. A benchmark, not a test: it prints figures and ratios and
# never fails on them.
#
#   benches/client-path.sh [--rounds R] [--mib M] [--producers "1 16"] [--no-consumer] [--out DIR]
#
# Figures, per round:
#   produce P    M MiB of 1 KiB messages, acks=1, linger.ms=5, batch.size=1 MiB, P producers
#                (rdkafka_performance: P processes of M/P MiB each, started together; kbench:
#                benches/producer-path.toml with producers.count=P), topic of max(4, P)
#                partitions. Rate: each client's own (first send to last delivery report; for
#                P processes, all bytes over the slowest's time). CPU: user + system seconds of
#                the client process(es) per GiB; for kbench net of its fixed cost (set-up,
#                report), measured by the same scenario with 1,024 messages in the same round.
#   consume      M MiB written by kbench (benches/consumer-path.toml: then drained by one
#                consumer verifying every message, consume.msgs_per_s), then read again by
#                `rdkafka_performance -C` in a group, client defaults: same broker, same hot data
#                (kbench necessarily first: it writes the data). Two kbench figures:
#                consume_msgs is its own (consumer start, including client set-up and the group
#                join, to the last message); consume_from_first_msgs is rdkafka_performance's
#                window (first message received to the last: catch_up.drained_messages /
#                (drain_s - first_message_s) of its summary), the one to compare.
#
# Writes DIR/figures.csv and DIR/table.md (medians, kbench / rdkafka_performance), prints the
# table. Needs `cargo build --release --bin kbench`; builds rdkafka_performance
# (benches/rdkafka-performance.sh). The machine is whatever else runs on it: take the ratios
# of one run, alternating, not absolute figures across runs.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rounds=3
mib=1024
producers="1 16"
consumer=1
out="$root/target/client-path"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --mib) mib=$2; shift 2 ;;
    --producers) producers=$2; shift 2 ;;
    --no-consumer) consumer=0; shift ;;
    --out) out=$2; shift 2 ;;
    *) echo "client-path: unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
kbench="${KBENCH:-$root/target/release/kbench}" # KBENCH=path measures another build (a before/after)
[[ -x "$kbench" ]] || { echo "client-path: build first: cargo build --release --bin kbench" >&2; exit 2; }
# shellcheck source=benches/common.sh
source "$root/benches/common.sh"
need_rdperf client-path
messages=$((mib * 1024))
figures_csv "$out" client

up() { kbench_up 1 "$1" client-path; }    # a fresh single broker in DIR; sets BOOTSTRAP
down() { kbench_down "$1"; }             # keeps the logs, frees the GiB
kbench_run() { # DIR FILE SETS... -> runs kbench, prints its CPU seconds
  local d=$1 file=$2
  shift 2
  local sets=()
  for s in "$@"; do sets+=(--set "$s"); done
  cpu_of "$d.log" timeout 900 "$kbench" run "$file" --bootstrap "$BOOTSTRAP" --out "$d" "${sets[@]}"
}
summary() { # SUMMARY SECTION KEY
  python3 -c "import json,sys; print(round(json.load(open(sys.argv[1]))[sys.argv[2]][sys.argv[3]], 1))" "$@"
}
gib=$(python3 -c "print($mib / 1024)")
per_gib() { python3 -c "print(round(($1) / $gib, 3))"; }

produce_kbench() { # ROUND P
  local r=$1 p=$2 d="$out/r$1-kbench-p$2" parts=$(( $2 > 4 ? $2 : 4 ))
  up "$d/broker"
  local fixed total
  fixed=$(kbench_run "$d/fixed" "$root/benches/producer-path.toml" "producers.count=$p" \
    "producers.messages_each=$((1024 / p > 0 ? 1024 / p : 1))" "topic.partitions=$parts")
  total=$(kbench_run "$d/run" "$root/benches/producer-path.toml" "producers.count=$p" \
    "producers.messages_each=$((messages / p))" "topic.partitions=$parts")
  record "$r" kbench "produce_p${p}_msgs" "$(summary "$d/run/summary.json" produce msgs_per_s)" msgs/s
  record "$r" kbench "produce_p${p}_cpu" "$(per_gib "$total - $fixed")" s/GiB
  down "$d/broker"
}
produce_rdperf() { # ROUND P
  local r=$1 p=$2 d="$out/r$1-rdperf-p$2" parts=$(( $2 > 4 ? $2 : 4 )) i
  up "$d/broker"
  # The topic, made by kbench (one message), so both sides write the same partition count.
  kbench_run "$d/topic" "$root/benches/producer-path.toml" "topic.name=perf" \
    "producers.messages_each=1" "topic.partitions=$parts" >/dev/null
  local jobs=()
  for i in $(seq 1 "$p"); do
    cpu_of "$d/rdperf-$i.log" timeout 600 "$rdperf" -P -t perf -b "$BOOTSTRAP" -s 1024 \
      -c $((messages / p)) -X acks=1 -X linger.ms=5 -X batch.size=1048576 >"$d/rdperf-$i.cpuline" &
    jobs+=($!)
  done
  wait "${jobs[@]}" # these, not the broker (a background job too)
  local cpu=0 ms=0 line t
  for i in $(seq 1 "$p"); do
    cpu=$(python3 -c "print($cpu + $(cat "$d/rdperf-$i.cpuline"))")
    line=$(grep 'messages produced' "$d/rdperf-$i.log" | tail -n 1 || true)
    t=$(sed -n 's/.* in \([0-9]*\)ms:.*/\1/p' <<<"$line")
    [[ -n "$t" ]] || { echo "client-path: rdkafka_performance $i gave no rate (see $d/rdperf-$i.log)" >&2; t=0; }
    ((t > ms)) && ms=$t
  done
  record "$r" rdperf "produce_p${p}_msgs" "$(python3 -c "print(round($messages / ($ms / 1000), 1) if $ms else '')")" msgs/s
  record "$r" rdperf "produce_p${p}_cpu" "$(per_gib "$cpu")" s/GiB
  down "$d/broker"
}
consume_both() { # ROUND
  local r=$1 d="$out/r$1-consume" line
  up "$d/broker"
  kbench_run "$d/kbench" "$root/benches/consumer-path.toml" "topic.name=cpath" >/dev/null
  record "$r" kbench consume_msgs "$(summary "$d/kbench/summary.json" consume msgs_per_s)" msgs/s
  record "$r" kbench consume_from_first_msgs "$(python3 -c "import json,sys
c = json.load(open(sys.argv[1]))['catch_up']
t = c['drain_s'] - c['first_message_s']
print(round(c['drained_messages'] / t, 1) if t > 0 else '')" "$d/kbench/summary.json")" msgs/s
  line=$(timeout 600 "$rdperf" -C -G "cp-$r" -t cpath -b "$BOOTSTRAP" -c "$messages" \
    -X auto.offset.reset=earliest 2>/dev/null | grep 'consumed in' | tail -n 1 || true)
  record "$r" rdperf consume_msgs "$(sed -n 's/.*ms: \([0-9]*\) msgs\/s.*/\1/p' <<<"$line")" msgs/s
  record "$r" rdperf consume_from_first_msgs "$(sed -n 's/.*ms: \([0-9]*\) msgs\/s.*/\1/p' <<<"$line")" msgs/s
  down "$d/broker"
}

for r in $(seq 1 "$rounds"); do
  echo "== round $r"
  for p in $producers; do
    if ((r % 2)); then produce_kbench "$r" "$p"; produce_rdperf "$r" "$p"
    else produce_rdperf "$r" "$p"; produce_kbench "$r" "$p"; fi
  done
  ((consumer)) && consume_both "$r"
done

python3 - "$csv" "$out/table.md" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
figs, units, vals = [], {}, {}
for r in rows:
    if r["figure"] not in units:
        figs.append(r["figure"]); units[r["figure"]] = r["unit"]
    try:
        vals.setdefault((r["figure"], r["client"]), []).append(float(r["value"]))
    except ValueError:
        pass  # a figure that could not be read (its log is in the round's folder)
lines = ["| figure | unit | kbench (median) | rdkafka_performance (median) | kbench / rdperf | all kbench | all rdperf |",
         "| --- | --- | ---: | ---: | ---: | --- | --- |"]
for f in figs:
    a, b = vals.get((f, "kbench"), []), vals.get((f, "rdperf"), [])
    ma = statistics.median(a) if a else None
    mb = statistics.median(b) if b else None
    ratio = f"{ma / mb:.2f}" if ma is not None and mb else "-"
    fmt = lambda v: "-" if v is None else f"{v:g}"
    lines.append(f"| {f} | {units[f]} | {fmt(ma)} | {fmt(mb)} | {ratio} | {' '.join(map(fmt, a))} | {' '.join(map(fmt, b))} |")
open(sys.argv[2], "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY

#!/usr/bin/env bash
# kbroker and Apache Kafka side by side on this machine (issue 9, part 5): the same drivers, the
# same settings, a fresh broker (or cluster) for every figure, and rounds that alternate the order
# (kbroker first in odd rounds, Kafka first in even ones) so drift and warm caches favour neither.
# A benchmark, not a test: it prints figures and never fails on them.
#
#   benches/side-by-side.sh [--rounds R] [--mib M] [--rate-seconds S] [--out DIR]
#
# Figures, per broker and round:
#   produce    rdkafka_performance -P, M MiB of 1 KiB messages, acks=1, RF 1, 4 partitions
#              (msgs/s, MiB/s), then Kafka's ProducerPerformance the same way (msgs/s)
#   consume    rdkafka_performance in a group, the same M MiB from the start (msgs/s)
#   broker     CPU seconds (user + system, every broker process) per GiB produced and consumed
#              over the produce + consume figures, and peak RSS (VmHWM) of the largest process
#   latency    kbench at a fixed 10,000 msg/s, linger.ms=0, acks=1, RF 1, S seconds:
#              produce→ack p50 / p99 / p99.9 (HdrHistogram, microseconds)
#   rf3        three nodes, RF 3, acks=all, min.insync 2, kbench at a fixed 20,000 msg/s for S s:
#              achieved msgs/s and produce→ack p99
#   1gb        `kbench run scenarios/1gb.toml` embedded (kbroker, 3 brokers) against the same
#              scenario on three Kafka nodes (--bootstrap): produce msgs/s and p99
#
# Writes DIR/figures.csv (one row per broker, round and figure) and DIR/table.md (medians and
# kbroker/Kafka ratios), and prints the table. Needs the release build
# (`cargo build --release --bin kbench`), Java 17 and Kafka's jars
# (compat/kafka/kafka.sh libs; .ci/install-deps.sh fetches them).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rounds=3
mib=1024
rate_seconds=10
out="$root/target/side-by-side"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --mib) mib=$2; shift 2 ;;
    --rate-seconds) rate_seconds=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "side-by-side: unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
kbench="$root/target/release/kbench"
kafka_sh="$root/compat/kafka/kafka.sh"
[[ -x "$kbench" ]] || { echo "side-by-side: build first: cargo build --release --bin kbench" >&2; exit 2; }
"$kafka_sh" libs >/dev/null
# shellcheck source=benches/common.sh
source "$root/benches/common.sh"
need_rdperf side-by-side

messages=$((mib * 1024))
figures_csv "$out" broker

# A cluster of N nodes of one kind in DIR; sets BOOTSTRAP. Every wait is bounded.
up() {
  local kind=$1 n=$2 dir=$3
  rm -rf "$dir"
  mkdir -p "$dir"
  if [[ $kind == kafka ]]; then
    BOOTSTRAP=$("$kafka_sh" up --brokers "$n" --dir "$dir" --set num.partitions=4 \
      --set auto.create.topics.enable=false 2>"$dir/up.log" | sed -n 's/^BOOTSTRAP=//p')
  else
    kbench_up "$n" "$dir" side-by-side
  fi
  [[ -n "$BOOTSTRAP" ]] || { echo "side-by-side: $kind x$n did not come up (see $dir/up.log)" >&2; exit 2; }
}
down() { # then frees the disk: the logs are kept, the data (GiBs a figure) is not
  local kind=$1 dir=$2
  if [[ $kind == kafka ]]; then "$kafka_sh" down --dir "$dir" >/dev/null 2>&1 || true
  else kbench_down "$dir"; fi
  rm -rf "$dir"/node-*/data
}
# The broker processes' pids (kafka.sh: DIR/node-ID/pid; kbench cluster: DIR/brokers/ID/pid).
pids() { cat "$1"/node-*/pid 2>/dev/null || true; kbench_broker_pids "$1"; }
broker_ticks() { local ps; mapfile -t ps < <(pids "$1"); cpu_ticks "${ps[@]}"; }
peak_rss_mib() {
  local m=0 p v
  for p in $(pids "$1"); do
    v=$(awk '/^VmHWM/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
    ((v > m)) && m=$v
  done
  echo $((m / 1024))
}
topic() { # BOOTSTRAP NAME PARTITIONS RF [CONFIG...]
  local b=$1 name=$2 p=$3 rf=$4
  shift 4
  local cfg=()
  for c in "$@"; do cfg+=(--config "$c"); done
  timeout 60 "$kafka_sh" run org.apache.kafka.tools.TopicCommand --bootstrap-server "$b" --create \
    --topic "$name" --partitions "$p" --replication-factor "$rf" "${cfg[@]}" >/dev/null
}
scenario() { # FILE RATE SECONDS ACKS LINGER
  cat >"$1" <<EOF
name = "side-by-side"
description = "fixed-rate latency figure of benches/side-by-side.sh"
[topic]
partitions = 4
[producers]
count = 2
duration = "${3}s"
total_rate = "${2}/s"
warmup = "1s"
message_size = "1KiB"
acks = "$4"
linger = "$5"
[consumers]
groups = 0
[verify]
delivery = "none"
EOF
}
kbench_figure() { # SUMMARY KEY: msgs_per_s | p50 | p99 | p999
  python3 - "$1" "$2" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))["produce"]
k = sys.argv[2]
print(round(p[k], 1) if k == "msgs_per_s" else p["latency_ms"][k])
PY
}

hz=$(getconf CLK_TCK)
one_round() {
  local r=$1 kind=$2 d="$out/r$1-$2"
  echo "== round $r: $kind"
  # produce and consume on one fresh broker
  up "$kind" 1 "$d/one"
  topic "$BOOTSTRAP" perf 4 1
  local t0 line
  t0=$(broker_ticks "$d/one")
  line=$(timeout 600 "$rdperf" -P -t perf -b "$BOOTSTRAP" -s 1024 -c "$messages" -X acks=1 \
    -X linger.ms=5 2>/dev/null | grep 'messages produced' | tail -n 1 || true)
  record "$r" "$kind" produce_rdkafka_msgs "$(sed -n 's/.*ms: \([0-9]*\) msgs\/s.*/\1/p' <<<"$line")" msgs/s
  line=$(timeout 600 "$rdperf" -G "sbs-$r" -t perf -b "$BOOTSTRAP" -c "$messages" \
    -X auto.offset.reset=earliest 2>/dev/null | grep 'consumed in' | tail -n 1 || true)
  record "$r" "$kind" consume_rdkafka_msgs "$(sed -n 's/.*ms: \([0-9]*\) msgs\/s.*/\1/p' <<<"$line")" msgs/s
  local ticks=$(($(broker_ticks "$d/one") - t0))
  record "$r" "$kind" broker_cpu_s_per_gib \
    "$(python3 -c "print(round($ticks / $hz / ($mib / 1024 * 2), 2))")" s/GiB
  record "$r" "$kind" broker_peak_rss "$(peak_rss_mib "$d/one")" MiB
  topic "$BOOTSTRAP" perfj 4 1
  line=$(timeout 600 "$kafka_sh" run org.apache.kafka.tools.ProducerPerformance --topic perfj \
    --num-records "$messages" --record-size 1024 --throughput -1 \
    --producer-props "bootstrap.servers=$BOOTSTRAP" acks=1 linger.ms=5 2>/dev/null | tail -n 1 || true)
  record "$r" "$kind" produce_java_msgs "$(sed -n 's/^[0-9]* records sent, \([0-9.]*\) records\/sec.*/\1/p' <<<"$line")" msgs/s
  down "$kind" "$d/one"

  # latency at 10,000 msg/s, linger 0, on a fresh broker
  up "$kind" 1 "$d/lat"
  scenario "$d/lat.toml" 10000 "$rate_seconds" 1 0ms
  "$kbench" run "$d/lat.toml" --bootstrap "$BOOTSTRAP" --out "$d/lat" >"$d/lat.log" 2>&1 || true
  for k in p50 p99 p999; do
    record "$r" "$kind" "latency_10k_$k" "$(kbench_figure "$d/lat/summary.json" $k)" ms
  done
  down "$kind" "$d/lat"

  # three nodes, RF 3, acks=all, min.insync 2, fixed 20,000 msg/s
  up "$kind" 3 "$d/three"
  scenario "$d/rf3.toml" 20000 "$rate_seconds" all 5ms
  "$kbench" run "$d/rf3.toml" --bootstrap "$BOOTSTRAP" --set topic.replication_factor=3 \
    --set topic.min_insync_replicas=2 --out "$d/rf3" >"$d/rf3.log" 2>&1 || true
  record "$r" "$kind" rf3_msgs "$(kbench_figure "$d/rf3/summary.json" msgs_per_s)" msgs/s
  record "$r" "$kind" rf3_p99 "$(kbench_figure "$d/rf3/summary.json" p99)" ms
  # kbench's own 1 GiB scenario: embedded for kbroker, against these three nodes for Kafka
  if [[ $kind == kafka ]]; then
    "$kbench" run "$root/scenarios/1gb.toml" --bootstrap "$BOOTSTRAP" --out "$d/1gb" \
      >"$d/1gb.log" 2>&1 || true
  fi
  down "$kind" "$d/three"
  if [[ $kind == kbroker ]]; then
    "$kbench" run "$root/scenarios/1gb.toml" --out "$d/1gb" >"$d/1gb.log" 2>&1 || true
  fi
  record "$r" "$kind" 1gb_msgs "$(kbench_figure "$d/1gb/summary.json" msgs_per_s)" msgs/s
  record "$r" "$kind" 1gb_p99 "$(kbench_figure "$d/1gb/summary.json" p99)" ms
  rm -rf "$d/1gb/brokers"
}

for r in $(seq 1 "$rounds"); do
  if ((r % 2)); then order=(kbroker kafka); else order=(kafka kbroker); fi
  for kind in "${order[@]}"; do one_round "$r" "$kind"; done
done

python3 - "$csv" "$out/table.md" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
figs, units = [], {}
vals = {}
for r in rows:
    if r["figure"] not in units:
        figs.append(r["figure"]); units[r["figure"]] = r["unit"]
    try:
        vals.setdefault((r["figure"], r["broker"]), []).append(float(r["value"]))
    except ValueError:
        pass  # a figure that could not be read (its log is in the round's folder)
lines = ["| figure | unit | kbroker (median) | Kafka (median) | kbroker / Kafka | rounds |",
         "| --- | --- | ---: | ---: | ---: | ---: |"]
for f in figs:
    a, b = vals.get((f, "kbroker"), []), vals.get((f, "kafka"), [])
    ma = statistics.median(a) if a else None
    mb = statistics.median(b) if b else None
    ratio = f"{ma / mb:.2f}" if ma is not None and mb else "-"
    fmt = lambda v: "-" if v is None else f"{v:g}"
    lines.append(f"| {f} | {units[f]} | {fmt(ma)} | {fmt(mb)} | {ratio} | {len(a)}/{len(b)} |")
open(sys.argv[2], "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY

#!/usr/bin/env bash
# The clients' share of the machine in the 1 GiB scenario (issue 14): how much of the CPU the
# load generator takes, against how much librdkafka's own tools take for the same traffic. A
# benchmark, not a test: it prints figures and never fails on them.
#
#   benches/client-share.sh [--rounds R] [--out DIR]
#
# Every figure runs on a fresh three-broker kbroker cluster (`kbench cluster up --brokers 3`),
# which takes `scenarios/1gb.toml`'s traffic: 16 producers × 65,536 × 1 KiB to 16 partitions,
# RF 3, min.insync 2, acks=all, linger 5 ms, batch 1 MiB, and all of it read by one consumer
# group. Three clients, in an order that rotates per round:
#
#   kbench          `kbench run scenarios/1gb.toml --bootstrap` (what users run; the on-disk
#                   check is off because an external cluster's files are not kbench's to read):
#                   4 group members verifying every message, and the final read (Jepsen's: the
#                   whole topic read once more after the run, every acknowledged message looked
#                   for)
#   kbench-no-final the same with verify.final_read=false
#   rdperf          librdkafka's rdkafka_performance: 16 producer processes (-P, the same
#                   settings) and one consumer process in a group (-C -G) reading everything,
#                   started together. Nothing verified, nothing recorded per message beyond its
#                   counters: the floor for a harness built on librdkafka.
#
# Figures per client and round: client CPU (user + system seconds of the client processes, from
# GNU time), broker CPU (the three broker processes' user + system ticks over the client's run,
# from /proc), the clients' share (client / (client + brokers)) and the wall time of the client.
# Writes DIR/figures.csv and DIR/table.md (medians), prints the table. Needs
# `cargo build --release --bin kbench`; builds rdkafka_performance
# (benches/rdkafka-performance.sh). Each client run is bounded (timeout 600 s).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rounds=3
out="$root/target/client-share"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rounds) rounds=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "client-share: unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done
kbench="${KBENCH:-$root/target/release/kbench}" # KBENCH=path measures another build
[[ -x "$kbench" ]] || { echo "client-share: build first: cargo build --release --bin kbench" >&2; exit 2; }
# shellcheck source=benches/common.sh
source "$root/benches/common.sh"
need_rdperf client-share
scenario="$root/scenarios/1gb.toml"
producers=16
each=65536
figures_csv "$out" client

# A fresh three-broker cluster in DIR; sets BOOTSTRAP and BROKER_PIDS.
up() {
  kbench_up 3 "$1" client-share
  mapfile -t BROKER_PIDS < <(kbench_broker_pids "$1")
  [[ ${#BROKER_PIDS[@]} -eq 3 ]] ||
    { echo "client-share: expected 3 broker pids under $1/brokers, found ${#BROKER_PIDS[@]}" >&2; exit 2; }
}
down() { kbench_down "$1"; }
# User + system CPU seconds the brokers have used so far.
broker_cpu() { python3 -c "print($(cpu_ticks "${BROKER_PIDS[@]}") / $(getconf CLK_TCK))"; }
now() { date +%s.%N; }
# Records the round's figures of CLIENT from its CPU, the brokers' CPU delta and the wall time.
figures() { # ROUND CLIENT CLIENT_CPU BROKERS_BEFORE START
  local b1 end bc
  b1=$(broker_cpu)
  end=$(now)
  bc=$(python3 -c "print(round($b1 - $4, 2))")
  record "$1" "$2" client_cpu "$3" s
  record "$1" "$2" broker_cpu "$bc" s
  record "$1" "$2" client_share "$(python3 -c "print(round(100 * $3 / ($3 + $bc), 1))")" %
  record "$1" "$2" wall "$(python3 -c "print(round($end - $5, 2))")" s
}

run_kbench() { # ROUND CLIENT SETS...
  local r=$1 client=$2 d="$out/r$1-$2"
  shift 2
  up "$d/cluster"
  local b0 t0 cpu
  b0=$(broker_cpu)
  t0=$(now)
  cpu=$(cpu_of "$d/run.log" timeout 600 "$kbench" run "$scenario" --bootstrap "$BOOTSTRAP" \
    --set verify.on_disk=false "$@" --out "$d/run")
  [[ -f "$d/run/summary.json" ]] || echo "client-share: $client failed in round $r (see $d/run.log)" >&2
  figures "$r" "$client" "$cpu" "$b0" "$t0"
  record "$r" "$client" produce_msgs "$(python3 -c "import json,sys; print(round(json.load(open(sys.argv[1]))['produce']['msgs_per_s']))" "$d/run/summary.json" 2>/dev/null || true)" msgs/s
  down "$d/cluster"
}

run_rdperf() { # ROUND
  local r=$1 d="$out/r$1-rdperf" i
  up "$d/cluster"
  # The topic as the scenario makes it (16 partitions, RF 3, min.insync 2), by kbench with one
  # message and no consumers, so the consumer below expects one message more.
  "$kbench" run "$scenario" --bootstrap "$BOOTSTRAP" --set topic.name=share \
    --set producers.count=1 --set producers.messages_each=1 --set consumers.groups=0 \
    --set verify.delivery=none --set verify.on_disk=false --out "$d/topic" >"$d/topic.log" 2>&1 ||
    { echo "client-share: could not make the topic (see $d/topic.log)" >&2; exit 2; }
  local b0 t0 jobs=()
  b0=$(broker_cpu)
  t0=$(now)
  cpu_of "$d/consumer.log" timeout 600 "$rdperf" -C -G share -t share -b "$BOOTSTRAP" \
    -c $((producers * each + 1)) -X auto.offset.reset=earliest >"$d/consumer.cpuline" &
  jobs+=($!)
  for i in $(seq 1 "$producers"); do
    cpu_of "$d/producer-$i.log" timeout 600 "$rdperf" -P -t share -b "$BOOTSTRAP" -s 1024 \
      -c "$each" -X acks=all -X linger.ms=5 -X batch.size=1048576 >"$d/producer-$i.cpuline" &
    jobs+=($!)
  done
  wait "${jobs[@]}" # these, not the cluster (a background job too)
  grep -q "% $((producers * each + 1)) messages (.*) consumed" "$d/consumer.log" ||
    echo "client-share: the rdkafka_performance consumer did not finish in round $r (see $d)" >&2
  figures "$r" rdperf "$(cat "$d"/*.cpuline | awk '{t += $1} END {print t}')" "$b0" "$t0"
  # All producers' messages over the slowest one's time (first send to last report).
  local ms
  ms=$(cat "$d"/producer-*.log | sed -n 's/.*messages produced.* in \([0-9]*\)ms:.*/\1/p' | sort -n | tail -n 1)
  record "$r" rdperf produce_msgs "$([[ -n "$ms" ]] && python3 -c "print(round($producers * $each / ($ms / 1000)))")" msgs/s
  down "$d/cluster"
}

clients=(kbench kbench-no-final rdperf)
for r in $(seq 1 "$rounds"); do
  echo "== round $r"
  for k in 0 1 2; do
    case ${clients[$(((r - 1 + k) % 3))]} in
      kbench) run_kbench "$r" kbench ;;
      kbench-no-final) run_kbench "$r" kbench-no-final --set verify.final_read=false ;;
      rdperf) run_rdperf "$r" ;;
    esac
  done
done

python3 - "$csv" "$out/table.md" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1])))
clients, figs, units, vals = [], [], {}, {}
for r in rows:
    if r["client"] not in clients:
        clients.append(r["client"])
    if r["figure"] not in units:
        figs.append(r["figure"]); units[r["figure"]] = r["unit"]
    try:
        vals.setdefault((r["figure"], r["client"]), []).append(float(r["value"]))
    except ValueError:
        pass  # a figure that could not be read (its log is in the round's folder)
fmt = lambda v: "-" if v is None else f"{v:g}"
lines = ["| figure | unit | " + " | ".join(f"{c} (median; all)" for c in clients) + " |",
         "| --- | --- |" + " ---: |" * len(clients)]
for f in figs:
    cells = []
    for c in clients:
        a = vals.get((f, c), [])
        cells.append(f"{fmt(statistics.median(a)) if a else '-'}; {' '.join(map(fmt, a))}")
    lines.append(f"| {f} | {units[f]} | " + " | ".join(cells) + " |")
open(sys.argv[2], "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
PY

#!/usr/bin/env bash
# Produce throughput of kbroker against the page-cache write speed of the same file system.
#
# For each round: write 1 GiB with dd (bs=1M) into the data dir, delete it, sync; then produce
# 1 GiB of 1 KiB messages to a release kbroker with librdkafka's rdkafka_performance (acks=1,
# linger.ms=5), delete the topic's data, sync. Alternating the two in one run on one machine is
# what makes the comparison fair: this VM's page-cache speed varies several-fold with memory and
# writeback state.
#
#   benches/produce-vs-dd.sh [ROUNDS] [PARTITIONS] [extra rdkafka_performance args...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
rounds=${1:-3}
partitions=${2:-1}
shift $(( $# >= 2 ? 2 : $# )) || true
data=$(mktemp -d "${KBENCH_BENCH_DIR:-$root/target}/produce-vs-dd.XXXXXX")
port=$((20000 + RANDOM % 20000))
cargo build --release -q -p kbroker --manifest-path "$root/Cargo.toml"
"$root/target/release/kbroker" --override "listeners=PLAINTEXT://127.0.0.1:$port" \
  --override "log.dirs=$data/logs" --override "num.partitions=$partitions" >"$data/broker.log" 2>&1 &
broker=$!
trap 'kill $broker 2>/dev/null; rm -rf "$data"' EXIT
sleep 1
for r in $(seq 1 "$rounds"); do
  sync; sleep 2
  dd_out=$(dd if=/dev/zero of="$data/dd.test" bs=1M count=1024 2>&1 | tail -n1)
  rm -f "$data/dd.test"; sync; sleep 2
  line=$("$root/benches/rdkafka-performance.sh" -P -t "bench-$r" -b "127.0.0.1:$port" -s 1024 \
    -c 1048576 -a 1 -u -X linger.ms=5 "$@" 2>&1 | tail -n1)
  mbps=$(awk -F'|' '{gsub(/ /,"",$8); print $8}' <<<"$line")
  echo "round $r: dd: ${dd_out##*, }   kbroker produce: ${mbps} MB/s"
  rm -rf "$data/logs/bench-$r-"*
done

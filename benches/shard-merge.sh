#!/usr/bin/env bash
# The cost of `kbench merge`: N shard processes (default 16) run one scenario against one
# `kbench cluster up` broker on this machine, then the merge of their folders is timed and its
# peak memory taken (GNU time's maximum resident set size). The scenario is a 10 GiB run by
# default: 16 producers × 655,360 messages × 1 KiB, one consumer group of 16, so the merge reads
# ledgers covering 10,485,760 acknowledged and 10,485,760 received messages.
#
#   benches/shard-merge.sh                  # 16 shards, 10 GiB
#   SHARDS=4 MESSAGES_EACH=100000 benches/shard-merge.sh
#
# Needs `cargo build --release` first and about 11 GiB free under WORK (default a temporary
# folder, removed at the end). Every step is bounded: the shards by producers.time_limit and the
# barrier timeout, the whole script by `timeout`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
kbench="$root/target/release/kbench"
[[ -x "$kbench" ]] || { echo "shard-merge: build first: cargo build --release" >&2; exit 2; }
shards=${SHARDS:-16}
each=${MESSAGES_EACH:-655360}
work=${WORK:-$(mktemp -d)}
cleanup() { [[ -n "${cluster_pid:-}" ]] && kill "$cluster_pid" 2>/dev/null; wait 2>/dev/null; [[ -z "${WORK:-}" ]] && rm -rf "$work"; }
trap cleanup EXIT

cat > "$work/merge-bench.toml" <<EOF
name = "merge-bench"
description = "benches/shard-merge.sh: $shards shards × 1 producer × $each × 1 KiB"
[topic]
partitions = $shards
replication_factor = 1
[producers]
count = $shards
messages_each = $each
message_size = "1KiB"
acks = "1"
time_limit = "10m"
[consumers]
groups = 1
members = $shards
[verify]
delivery = "exactly-once"
EOF

"$kbench" cluster up --brokers 1 --dir "$work/cluster" > "$work/cluster.out" 2>&1 &
cluster_pid=$!
for _ in $(seq 120); do
  bootstrap=$(sed -n 's/^bootstrap: //p' "$work/cluster.out")
  [[ -n "$bootstrap" ]] && break
  sleep 0.5
done
[[ -n "$bootstrap" ]] || { echo "shard-merge: the cluster did not come up:" >&2; cat "$work/cluster.out" >&2; exit 1; }

echo "shard-merge: $shards shards against $bootstrap (work folder $work)"
start=$(date +%s.%N)
pids=()
for i in $(seq 1 "$shards"); do
  timeout 900 "$kbench" run "$work/merge-bench.toml" --bootstrap "$bootstrap" \
    --shard "$i/$shards" --run-id "merge-bench-$$" --barrier-timeout 300 \
    --out "$work/runs/$i" > "$work/shard-$i.log" 2>&1 &
  pids+=($!)
done
failed=0
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" || { echo "shard-merge: shard $((i + 1)) failed, see $work/shard-$((i + 1)).log" >&2; failed=1; }
done
echo "shard-merge: shards finished in $(echo "$(date +%s.%N) - $start" | bc) s"
[[ $failed == 0 ]] || exit 1

du -sh "$work/runs" | sed 's/^/shard-merge: shard folders /'
/usr/bin/time -f "shard-merge: merge took %e s wall, %U s user, max RSS %M KiB" \
  timeout 600 "$kbench" merge "$work"/runs/* --out "$work/merged" > "$work/merge.out" 2> "$work/merge.err" || true
grep '^shard-merge:' "$work/merge.err" || tail -5 "$work/merge.err"
head -20 "$work/merge.out"

#!/usr/bin/env bash
# One sharded kbench run over plain ssh: shard k of N on the k-th host, then the run folders
# copied back and merged here. Needs kbench on every host, the scenario file there at the same
# path, and every host able to reach the cluster.
#
#   deploy/ssh-shards.sh scenario.toml kafka1:9092,kafka2:9092 host1 host2 host3
set -euo pipefail
scenario=$1 bootstrap=$2
shift 2
hosts=("$@")
n=${#hosts[@]}
run_id="ssh-$(date -u +%Y%m%dT%H%M%SZ)"
pids=()
for k in $(seq 1 "$n"); do
    h=${hosts[$((k - 1))]}
    ssh "$h" kbench run "$scenario" --bootstrap "$bootstrap" \
        --shard "$k/$n" --run-id "$run_id" --out "kbench-runs/$run_id/shard-$k" &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || true; done   # the merge gives the verdict
mkdir -p "runs/$run_id"
for k in $(seq 1 "$n"); do
    scp -rq "${hosts[$((k - 1))]}:kbench-runs/$run_id/shard-$k" "runs/$run_id/"
done
exec kbench merge "runs/$run_id"/shard-* --out "runs/$run_id/merged"

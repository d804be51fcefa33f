#!/usr/bin/env bash
# Restart time of a kbroker whose __consumer_offsets holds COMMITS offset commits, with and
# without the log cleaner. Not a test: it prints figures.
#
#   benches/offsets-restart.sh MODE [COMMITS] [CLEANER]
#     MODE     cluster: node.id=1 with controller.quorum.voters naming itself (a configured
#                       quorum of one);
#              single:  the default lone broker (no voters configured). Since issue 13 it is a
#                       one-voter quorum too, so both modes compact __consumer_offsets; a kbroker
#                       from before that (KBROKER=...) kept that log small with snapshots instead.
#     COMMITS  offset records to write (default 1000000), as commits of 100 partitions each.
#     CLEANER  on (default): log.cleaner.backoff.ms=1000; off: a backoff longer than the run,
#              so the log is never compacted (the state before compaction existed).
#
# It starts target/release/kbroker (build it first: cargo build --release -p kbroker), commits
# with the confluent-kafka client from .venv, waits for the cleaner (when on), stops the broker
# with SIGTERM, restarts it and reports the seconds from spawn until the group coordinator has
# loaded __consumer_offsets (cluster: "now coordinating the groups"; single: "kbroker ready",
# which follows the replay), with the partition's size on disk.
set -euo pipefail
cd "$(dirname "$0")/.."

MODE=${1:?usage: $0 cluster|single [COMMITS] [on|off]}
COMMITS=${2:-1000000}
CLEANER=${3:-on}
BIN=${KBROKER:-target/release/kbroker}
PY=${PYTHON:-.venv/bin/python}
[[ -x $BIN ]] || { echo "$BIN missing: cargo build --release -p kbroker" >&2; exit 2; }
[[ -x $PY ]] || { echo "$PY missing: run .ci/install-deps.sh" >&2; exit 2; }

work=$(mktemp -d -p "${BENCH_TMP:-target/tmp}" offsets-restart.XXXXXX)
pid=
trap 'if [[ -n $pid ]]; then kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; fi; rm -rf "$work"' EXIT
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
args=(--override "log.dirs=$work/data" --override offsets.topic.num.partitions=1
      --override offsets.topic.segment.bytes=10485760)
if [[ $CLEANER == on ]]; then
    args+=(--override log.cleaner.backoff.ms=1000)
else
    args+=(--override log.cleaner.backoff.ms=100000000)
fi
if [[ $MODE == cluster ]]; then
    cport=$(free_port)
    args+=(--override "listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport"
           --override node.id=1 --override "controller.quorum.voters=1@127.0.0.1:$cport"
           --override controller.listener.names=CONTROLLER)
    loaded="now coordinating the groups"
else
    args+=(--override "listeners=PLAINTEXT://127.0.0.1:$port")
    loaded=""  # decided after the first start: see below
fi

# Starts the broker (log to $1) and waits up to $2 seconds for $3 in its log; the seconds it
# took go to $work/secs.
start() {
    local log=$1 limit=$2 needle=$3 t0
    t0=$(date +%s.%N)
    KBROKER_LOG=info "$BIN" "${args[@]}" 2>"$log" >/dev/null &
    pid=$!
    for _ in $(seq $((limit * 20))); do
        if grep -q "$needle" "$log"; then
            echo "$(date +%s.%N) - $t0" | bc >"$work/secs"
            return
        fi
        sleep 0.05
    done
    echo "no '$needle' within ${limit}s; log tail:" >&2
    tail -20 "$log" >&2
    exit 1
}

start "$work/first.log" 60 "kbroker ready"
"$PY" - "127.0.0.1:$port" "$COMMITS" <<'EOF'
import sys, time
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
bootstrap, commits = sys.argv[1], int(sys.argv[2])
admin = AdminClient({"bootstrap.servers": bootstrap})
admin.create_topics([NewTopic("t", num_partitions=100, replication_factor=1)])["t"].result(30)
c = Consumer({"bootstrap.servers": bootstrap, "group.id": "g", "enable.auto.commit": False})
t0 = time.monotonic()
def commit(offsets):
    deadline = time.monotonic() + 60
    while True:
        try:
            return c.commit(offsets=offsets, asynchronous=False)
        except KafkaException as e:  # the coordinator is still starting: bounded retries
            waiting = e.args[0].code() in (KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
                KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_NOT_AVAILABLE)
            if not waiting or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
for i in range(commits // 100):
    commit([TopicPartition("t", p, i + 1) for p in range(100)])
print(f"{commits} offset commits in {time.monotonic() - t0:.1f}s", flush=True)
c.close()
EOF
if [[ $CLEANER == on ]]; then
    # Wait (bounded) until the cleaner has compacted the sealed segments.
    for _ in $(seq 600); do
        grep -q 'log cleaner compacted the partition topic="__consumer_offsets"' "$work/first.log" && break
        grep -q 'log cleaner compacted the partition.*__consumer_offsets' "$work/first.log" && break
        sleep 0.1
    done
    grep 'log cleaner compacted' "$work/first.log" | tail -2 || echo "cleaner did not run" >&2
fi
kill -TERM "$pid"; wait "$pid" || true
pid=
# A broker that coordinates groups over the __consumer_offsets partitions it leads says so when
# it has loaded them; an older lone broker replayed its snapshot log before "kbroker ready".
if [[ -z $loaded ]]; then
    if grep -q "now coordinating the groups" "$work/first.log"; then
        loaded="now coordinating the groups"
    else
        loaded="kbroker ready"
    fi
fi
size=$(du -sh "$work/data/__consumer_offsets-0" | cut -f1)
start "$work/second.log" 600 "$loaded"
secs=$(cat "$work/secs")
echo "mode=$MODE cleaner=$CLEANER commits=$COMMITS __consumer_offsets-0 on disk: $size; restart until the offsets are loaded: ${secs}s"
grep -E "replayed|now coordinating the groups" "$work/second.log" | tail -2
kill -TERM "$pid"; wait "$pid" || true
pid=

#!/usr/bin/env bash
# A real Apache Kafka on this machine, from Maven Central's jars, in KRaft combined mode (every
# node is a broker and a controller voter). The reference kbench and kbroker are checked against.
#
#   kafka.sh up [--brokers N] [--dir DIR] [--security plaintext|sasl_tls] [--set KEY=VALUE]...
#       Formats storage, starts N nodes on free loopback ports, waits until every node has
#       started and Metadata lists all N, prints `CLIENT_CONFIG=<librdkafka properties file>`
#       (sasl_tls only) and `BOOTSTRAP=host:port,...` as its last line, and returns, leaving the
#       cluster running. DIR defaults to a new temporary folder; it holds each node's config,
#       data, pid and log (DIR/node-ID/kafka.log). Each --set adds a server.properties line to
#       every node, after (and so overriding) the defaults here, e.g. --set num.partitions=3.
#   kafka.sh kill  --dir DIR --node ID     SIGKILL one node
#   kafka.sh stop  --dir DIR --node ID     SIGTERM one node, wait until it has exited
#   kafka.sh start --dir DIR --node ID     start a node again: same config, ports and data
#   kafka.sh down  --dir DIR               SIGTERM every node, SIGKILL after 20 s; safe twice
#   kafka.sh libs                          fetch the jars; print the folder that holds them
#   kafka.sh run CLASS [ARGS...]           run a Java main class (a Kafka tool) on the jars
#
# The jars are fetched once by Maven (compat/kafka/pom.xml pins the version) into
# ${KBENCH_KAFKA_CACHE:-~/.cache/kbench}/kafka-VERSION/libs, outside the repository; nothing
# else is downloaded. Heaps are small (KAFKA_HEAP, default -Xms128m -Xmx512m) so three nodes and
# kbench fit a 2-core, 24 GiB machine.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")"
cache="${KBENCH_KAFKA_CACHE:-$HOME/.cache/kbench}/kafka-$version"
libs="$cache/libs"
heap="${KAFKA_HEAP:--Xms128m -Xmx512m}"
start_timeout="${KAFKA_START_TIMEOUT:-90}"

die() {
  echo "kafka.sh: $*" >&2
  exit 1
}

need() {
  command -v "$1" >/dev/null 2>&1 || die "$1 is not installed ($2)"
}

fetch_libs() {
  if [[ -f "$libs/.complete" ]]; then
    return
  fi
  need java "Kafka $version needs Java 17 or newer: apt-get install openjdk-17-jre-headless"
  need mvn "the jars come from Maven Central through Maven: apt-get install maven"
  echo "kafka.sh: fetching Apache Kafka $version jars into $libs" >&2
  rm -rf "$libs"
  mkdir -p "$libs"
  if ! mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$libs" >"$cache/mvn.log" 2>&1; then
    tail -n 30 "$cache/mvn.log" >&2
    die "Maven could not fetch Kafka $version (log: $cache/mvn.log)"
  fi
  touch "$libs/.complete"
}

java_major() {
  java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n 1
}

run_class() {
  fetch_libs
  # shellcheck disable=SC2086
  java -Xms32m -Xmx256m -Dlog4j2.configurationFile="$here/log4j2-tools.properties" \
    -cp "$libs/*" "$@"
}

# Free loopback ports, one per line: bound and released at once (the kernel does not hand the
# same ephemeral port out again soon).
free_ports() {
  python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
for s in socks:
    print(s.getsockname()[1])
EOF
}

port_free() {
  python3 - "$1" <<'EOF'
import socket, sys
s = socket.socket()
# As the broker binds: connections of its previous life in TIME_WAIT do not make it taken.
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
EOF
}

node_dir() { echo "$dir/node-$1"; }

node_pid() {
  local f
  f="$(node_dir "$1")/pid"
  [[ -f "$f" ]] && cat "$f"
}

node_alive() {
  local pid
  pid="$(node_pid "$1")" || return 1
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null
}

load_state() {
  [[ -n "${dir:-}" ]] || die "--dir DIR is required"
  [[ -f "$dir/cluster.env" ]] || die "$dir is not a cluster made by 'kafka.sh up' (no cluster.env)"
  # shellcheck disable=SC1091
  source "$dir/cluster.env"
}

start_node() {
  local id="$1" nd
  nd="$(node_dir "$id")"
  if node_alive "$id"; then
    die "node $id is already running (pid $(node_pid "$id"))"
  fi
  local port
  port="$(sed -n 's/^# client port: //p' "$nd/server.properties")"
  port_free "$port" || die "node $id: port $port is taken by another process"
  fetch_libs
  # setsid: the node outlives this script (and its terminal), as `up` promises; `down` ends it.
  # shellcheck disable=SC2086
  setsid java $heap -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    -Dkafka.logs.dir="$nd/logs" -Dlog4j2.configurationFile="$dir/log4j2.properties" \
    -cp "$libs/*" kafka.Kafka "$nd/server.properties" >>"$nd/kafka.log" 2>&1 </dev/null &
  echo $! >"$nd/pid"
}

# Waits until node `id` logs that it has started; dies with its log tail if it exits first or
# does not make it in time.
await_node() {
  local id="$1" nd deadline
  nd="$(node_dir "$id")"
  deadline=$((SECONDS + start_timeout))
  while ! grep -q "Kafka Server started" "$nd/kafka.log" 2>/dev/null; do
    if ! node_alive "$id"; then
      tail -n 25 "$nd/kafka.log" >&2 || true
      die "node $id exited during startup (log: $nd/kafka.log)"
    fi
    if ((SECONDS > deadline)); then
      tail -n 25 "$nd/kafka.log" >&2 || true
      die "node $id did not start within ${start_timeout}s (log: $nd/kafka.log)"
    fi
    sleep 0.5
  done
}

# Waits until Metadata from the first node lists all `brokers` nodes.
await_metadata() {
  local deadline=$((SECONDS + start_timeout)) listed
  while true; do
    listed="$(run_class org.apache.kafka.tools.BrokerApiVersionsCommand \
      --bootstrap-server "$BOOTSTRAP" --command-config "$dir/admin.properties" 2>/dev/null |
      grep -c '(id: [0-9]* rack' || true)"
    if [[ "$listed" == "$BROKERS" ]]; then
      return
    fi
    if ((SECONDS > deadline)); then
      die "Metadata lists $listed of $BROKERS brokers after ${start_timeout}s (logs: $dir/node-*/kafka.log)"
    fi
    sleep 1
  done
}

make_tls() {
  # A certificate authority made here, and one certificate for 127.0.0.1/localhost signed by it,
  # in the PEM form both Kafka (ssl.keystore.type=PEM) and librdkafka read.
  local t="$dir/tls"
  mkdir -p "$t"
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=kbench test CA" \
    -keyout "$t/ca.key" -out "$t/ca.pem" >/dev/null 2>&1 || die "openssl could not make a CA"
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$t/broker.key" \
    -out "$t/broker.csr" >/dev/null 2>&1 || die "openssl could not make a broker key"
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$t/san.ext"
  openssl x509 -req -in "$t/broker.csr" -CA "$t/ca.pem" -CAkey "$t/ca.key" -CAcreateserial \
    -days 30 -extfile "$t/san.ext" -out "$t/broker.pem" >/dev/null 2>&1 ||
    die "openssl could not sign the broker certificate"
  # Kafka's PEM keystore wants the key in PKCS#8 form.
  openssl pkcs8 -topk8 -nocrypt -in "$t/broker.key" -out "$t/broker.pk8" >/dev/null 2>&1
  cat "$t/broker.pem" "$t/ca.pem" >"$t/broker-chain.pem"
}

cmd_up() {
  local brokers=1 security=plaintext sets=()
  while (($#)); do
    case "$1" in
      --brokers) brokers="$2"; shift 2 ;;
      --dir) dir="$2"; shift 2 ;;
      --security) security="$2"; shift 2 ;;
      --set)
        [[ "${2:-}" =~ ^[a-z][a-z0-9._-]*=.*$ ]] || die "--set wants KEY=VALUE (a server.properties line), not '${2:-}'"
        sets+=("$2"); shift 2 ;;
      *) die "up: unknown argument '$1' (expected --brokers N, --dir DIR, --security plaintext|sasl_tls, --set KEY=VALUE)" ;;
    esac
  done
  [[ "$brokers" =~ ^[1-9][0-9]?$ ]] || die "--brokers must be 1..99, not '$brokers'"
  [[ "$security" == plaintext || "$security" == sasl_tls ]] ||
    die "--security must be plaintext or sasl_tls, not '$security'"
  need java "Kafka $version needs Java 17 or newer: apt-get install openjdk-17-jre-headless"
  need python3 "used to find free ports"
  local major
  major="$(java_major)"
  [[ -n "$major" && "$major" -ge 17 ]] || die "Kafka $version needs Java 17 or newer; 'java' is version ${major:-unknown}"
  fetch_libs
  dir="${dir:-$(mktemp -d -t kafka-peer.XXXXXX)}"
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  if [[ -f "$dir/cluster.env" ]]; then
    die "$dir already holds a cluster; 'kafka.sh down --dir $dir' and remove it, or pick another --dir"
  fi

  local ports=() voters="" bootstrap="" id
  mapfile -t ports < <(free_ports $((brokers * 2)))
  for ((id = 1; id <= brokers; id++)); do
    voters+="${voters:+,}$id@127.0.0.1:${ports[$((brokers + id - 1))]}"
    bootstrap+="${bootstrap:+,}127.0.0.1:${ports[$((id - 1))]}"
  done
  local rf=$((brokers < 3 ? brokers : 3)) min_isr=$((brokers < 3 ? 1 : 2))
  local client_proto=PLAINTEXT password=""
  : >"$dir/admin.properties"
  if [[ "$security" == sasl_tls ]]; then
    need openssl "sasl_tls makes its own certificate authority: apt-get install openssl"
    make_tls
    client_proto=SASL_SSL
    password="$(python3 -c 'import secrets; print(secrets.token_hex(12))')"
    cat >"$dir/client.properties" <<EOF
# librdkafka properties for this cluster (kcat -F, kbench --client-config)
security.protocol=SASL_SSL
sasl.mechanism=PLAIN
sasl.username=kbench
sasl.password=$password
ssl.ca.location=$dir/tls/ca.pem
EOF
    cat >"$dir/admin.properties" <<EOF
# Java client properties for this cluster (Kafka's tools: --command-config)
security.protocol=SASL_SSL
sasl.mechanism=PLAIN
sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="kbench" password="$password";
ssl.truststore.type=PEM
ssl.truststore.location=$dir/tls/ca.pem
EOF
  fi

  cat >"$dir/log4j2.properties" <<'EOF'
status = error
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = out
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
EOF

  for ((id = 1; id <= brokers; id++)); do
    local nd port cport
    nd="$(node_dir "$id")"
    port="${ports[$((id - 1))]}"
    cport="${ports[$((brokers + id - 1))]}"
    mkdir -p "$nd/data" "$nd/logs"
    {
      echo "# client port: $port"
      echo "process.roles=broker,controller"
      echo "node.id=$id"
      echo "controller.quorum.voters=$voters"
      echo "controller.listener.names=CONTROLLER"
      echo "log.dirs=$nd/data"
      echo "num.partitions=1"
      echo "default.replication.factor=$rf"
      echo "min.insync.replicas=1"
      echo "offsets.topic.replication.factor=$rf"
      echo "transaction.state.log.replication.factor=$rf"
      echo "transaction.state.log.min.isr=$min_isr"
      echo "share.coordinator.state.topic.replication.factor=$rf"
      echo "share.coordinator.state.topic.min.isr=$min_isr"
      echo "group.initial.rebalance.delay.ms=0"
      echo "auto.create.topics.enable=true"
      echo "num.network.threads=2"
      echo "num.io.threads=4"
      echo "num.replica.fetchers=1"
      echo "log.segment.bytes=268435456"
      if [[ "$security" == sasl_tls ]]; then
        echo "listeners=SASL_SSL://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport"
        echo "advertised.listeners=SASL_SSL://127.0.0.1:$port"
        echo "listener.security.protocol.map=CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL"
        echo "inter.broker.listener.name=SASL_SSL"
        echo "sasl.enabled.mechanisms=PLAIN"
        echo "sasl.mechanism.inter.broker.protocol=PLAIN"
        echo "listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=\"kbench\" password=\"$password\" user_kbench=\"$password\";"
        echo "ssl.keystore.type=PEM"
        echo "ssl.keystore.location=$dir/tls/broker-keystore.pem"
        echo "ssl.truststore.type=PEM"
        echo "ssl.truststore.location=$dir/tls/ca.pem"
        echo "ssl.endpoint.identification.algorithm=https"
      else
        echo "listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport"
        echo "advertised.listeners=PLAINTEXT://127.0.0.1:$port"
        echo "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
        echo "inter.broker.listener.name=PLAINTEXT"
      fi
      # Java properties: the last line with a key wins.
      for kv in ${sets[@]+"${sets[@]}"}; do
        echo "$kv"
      done
    } >"$nd/server.properties"
  done
  if [[ "$security" == sasl_tls ]]; then
    cat "$dir/tls/broker.pk8" "$dir/tls/broker-chain.pem" >"$dir/tls/broker-keystore.pem"
  fi

  local cluster_id
  cluster_id="$(run_class kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)"
  [[ -n "$cluster_id" ]] || die "kafka.tools.StorageTool random-uuid printed nothing"
  for ((id = 1; id <= brokers; id++)); do
    nd="$(node_dir "$id")"
    run_class kafka.tools.StorageTool format -t "$cluster_id" -c "$nd/server.properties" \
      >"$nd/format.log" 2>&1 || { cat "$nd/format.log" >&2; die "formatting node $id's storage failed"; }
  done
  cat >"$dir/cluster.env" <<EOF
BROKERS=$brokers
BOOTSTRAP=$bootstrap
SECURITY=$security
VERSION=$version
EOF
  BROKERS="$brokers"
  BOOTSTRAP="$bootstrap"
  for ((id = 1; id <= brokers; id++)); do
    start_node "$id"
  done
  for ((id = 1; id <= brokers; id++)); do
    await_node "$id"
  done
  await_metadata
  echo "kafka.sh: Apache Kafka $version, $brokers node(s), $security, in $dir" >&2
  if [[ "$security" == sasl_tls ]]; then
    echo "CLIENT_CONFIG=$dir/client.properties"
  fi
  echo "BOOTSTRAP=$bootstrap"
}

node_arg() {
  node=""
  while (($#)); do
    case "$1" in
      --dir) dir="$2"; shift 2 ;;
      --node) node="$2"; shift 2 ;;
      *) die "unknown argument '$1' (expected --dir DIR --node ID)" ;;
    esac
  done
  load_state
  [[ "$node" =~ ^[0-9]+$ ]] && ((node >= 1 && node <= BROKERS)) ||
    die "--node must be one of 1..$BROKERS, not '${node}'"
}

wait_exit() {
  local id="$1" limit="$2" deadline=$((SECONDS + $2))
  while node_alive "$id"; do
    if ((SECONDS > deadline)); then
      return 1
    fi
    sleep 0.2
  done
}

cmd_kill() {
  node_arg "$@"
  if node_alive "$node"; then
    kill -KILL "$(node_pid "$node")"
    wait_exit "$node" 10 || die "node $node survived SIGKILL"
  fi
  echo "kafka.sh: node $node killed" >&2
}

cmd_stop() {
  node_arg "$@"
  if node_alive "$node"; then
    kill -TERM "$(node_pid "$node")"
    wait_exit "$node" 30 || { kill -KILL "$(node_pid "$node")"; wait_exit "$node" 10 || true; }
  fi
  echo "kafka.sh: node $node stopped" >&2
}

cmd_start() {
  node_arg "$@"
  # The readiness line is looked for in this start's output only: the last life's log is kept
  # beside it.
  mv "$(node_dir "$node")/kafka.log" "$(node_dir "$node")/kafka.log.$(date +%s)" 2>/dev/null || true
  start_node "$node"
  await_node "$node"
  echo "kafka.sh: node $node started" >&2
}

cmd_down() {
  while (($#)); do
    case "$1" in
      --dir) dir="$2"; shift 2 ;;
      *) die "down: unknown argument '$1' (expected --dir DIR)" ;;
    esac
  done
  [[ -n "${dir:-}" ]] || die "--dir DIR is required"
  [[ -f "$dir/cluster.env" ]] || { echo "kafka.sh: nothing to stop in $dir" >&2; return 0; }
  load_state
  local id
  for ((id = 1; id <= BROKERS; id++)); do
    node_alive "$id" && kill -TERM "$(node_pid "$id")" 2>/dev/null || true
  done
  for ((id = 1; id <= BROKERS; id++)); do
    if ! wait_exit "$id" 20; then
      kill -KILL "$(node_pid "$id")" 2>/dev/null || true
      wait_exit "$id" 10 || true
    fi
  done
  echo "kafka.sh: cluster in $dir is down" >&2
}

main() {
  (($#)) || die "usage: kafka.sh up|kill|stop|start|down|libs|run ... (see the comment at the top of $0)"
  local verb="$1"
  shift
  case "$verb" in
    up) cmd_up "$@" ;;
    kill) cmd_kill "$@" ;;
    stop) cmd_stop "$@" ;;
    start) cmd_start "$@" ;;
    down) cmd_down "$@" ;;
    libs) fetch_libs; echo "$libs" ;;
    run) run_class "$@" ;;
    *) die "unknown command '$verb' (expected up, kill, stop, start, down, libs or run)" ;;
  esac
}

main "$@"

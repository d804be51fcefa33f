# Sourced by the benchmark scripts that start kbroker clusters of their own (client-path.sh,
# client-share.sh, side-by-side.sh): one way to bring a fresh embedded cluster up, find its
# broker processes and take it down. Needs `$kbench` (the kbench binary) set by the caller.

# kbench_up N DIR WHO: a fresh cluster of N brokers in DIR (`kbench cluster up`, in the
# background); sets BOOTSTRAP. The wait for its address is bounded (30 s); WHO names the script
# in the error.
kbench_up() {
  local n=$1 dir=$2 who=$3 i
  rm -rf "$dir"
  mkdir -p "$dir"
  "$kbench" cluster up --brokers "$n" --dir "$dir" >"$dir/up.log" 2>&1 &
  for i in $(seq 1 300); do
    [[ -f "$dir/cluster.env" ]] && grep -q '^BOOTSTRAP=' "$dir/cluster.env" && break
    sleep 0.1
  done
  BOOTSTRAP=$(sed -n 's/^BOOTSTRAP=//p' "$dir/cluster.env" 2>/dev/null || true)
  [[ -n "$BOOTSTRAP" ]] || { echo "$who: $n broker(s) did not come up (see $dir/up.log)" >&2; exit 2; }
}

# kbench_down DIR: stops the cluster in DIR and frees its data (GiBs a figure); the logs stay.
kbench_down() {
  "$kbench" cluster down --dir "$1" >/dev/null 2>&1 || true
  wait 2>/dev/null || true
  rm -rf "$1"/brokers/*/data
}

# kbench_broker_pids DIR: the pids of the cluster's broker processes (DIR/brokers/ID/pid).
kbench_broker_pids() { cat "$1"/brokers/*/pid 2>/dev/null || true; }

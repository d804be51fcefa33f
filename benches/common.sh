# Sourced by the benchmark scripts that start kbroker clusters of their own and compare clients
# (client-path.sh, client-share.sh, side-by-side.sh): the figures file, the yardstick tool, the
# cluster's life and the CPU accounting, one copy each. Needs `$root` (the repository) set by the
# caller; the cluster functions also need `$kbench` (the kbench binary).

# figures_csv DIR WHO-COLUMN: empties DIR and starts DIR/figures.csv (`csv`), with columns
# round, WHO-COLUMN (client or broker), figure, value, unit; `record ROUND WHO FIGURE VALUE UNIT`
# appends a row and prints it.
figures_csv() {
  rm -rf "$1"
  mkdir -p "$1"
  csv="$1/figures.csv"
  echo "round,$2,figure,value,unit" >"$csv"
}
record() { echo "$1,$2,$3,$4,$5" >>"$csv"; echo "  round $1 $2 $3 = $4 $5"; }

# need_rdperf WHO: builds librdkafka's rdkafka_performance (benches/rdkafka-performance.sh) if
# needed; sets `rdperf`. WHO names the script in the error.
need_rdperf() {
  "$root/benches/rdkafka-performance.sh" -h >/dev/null 2>&1 || true
  rdperf="$root/target/rdkafka_performance"
  [[ -x "$rdperf" ]] || { echo "$1: could not build rdkafka_performance" >&2; exit 2; }
}

# kbench_up N DIR WHO: a fresh cluster of N brokers in DIR (`kbench cluster up`, in the
# background); sets BOOTSTRAP. The wait for its address is bounded (30 s).
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

# cpu_ticks PID...: user + system clock ticks the processes have used so far (a process that
# is gone counts 0); divide by `getconf CLK_TCK` for seconds.
cpu_ticks() {
  local t=0 p
  for p in "$@"; do
    t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)))
  done
  echo "$t"
}

# cpu_of LOG CMD...: runs CMD under GNU time, its output in LOG; prints the user + system
# seconds of it (and its children). CMD's exit status is not checked: the caller reads its
# figures, and a missing one shows as an empty value.
cpu_of() {
  local log=$1
  shift
  /usr/bin/time -f 'cpu %U %S' -o "$log.cpu" "$@" >"$log" 2>&1 || true
  awk '/^cpu/ {print $2 + $3}' "$log.cpu"
}

#!/usr/bin/env bash
# Builds librdkafka's own benchmark tool, rdkafka_performance, from the librdkafka source that
# rdkafka-sys ships and has already configured and compiled for this workspace, and runs it with
# the given arguments. It is the yardstick kbroker's produce/consume figures and kbench's harness
# overhead are measured against (same client library, same version, same machine).
#
#   benches/rdkafka-performance.sh -P -t perf -b 127.0.0.1:9092 -s 1024 -c 1000000 -X linger.ms=5
#
# Needs a prior `cargo build --release` (or debug) of the workspace so rdkafka-sys is built.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=""
for profile in release debug; do
  lib=$(ls -t "$root"/target/$profile/build/rdkafka-sys-*/out/src/librdkafka.a 2>/dev/null | head -n1 || true)
  if [[ -n "$lib" ]]; then out=$(dirname "$(dirname "$lib")"); break; fi
done
if [[ -z "$out" ]]; then
  echo "rdkafka-performance: no built librdkafka found under target/; run 'cargo build --release' first" >&2
  exit 2
fi
bin="$root/target/rdkafka_performance"
if [[ ! -x "$bin" || "$out/src/librdkafka.a" -nt "$bin" ]]; then
  ldflags=$(sed -n 's/^LDFLAGS+=//p' "$out/Makefile.config" | tr '\n' ' ')
  libs=$(sed -n 's/^LIBS+=//p' "$out/Makefile.config" | tr '\n' ' ')
  # shellcheck disable=SC2086
  cc -O2 -I"$out/src" -I"$out" -o "$bin" "$out/examples/rdkafka_performance.c" \
    "$out/src/librdkafka.a" $ldflags $libs
fi
exec "$bin" "$@"

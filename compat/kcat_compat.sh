#!/usr/bin/env bash
# kcat (Debian's 1.7.1, librdkafka 2.0.2) against a Kafka-compatible broker.
#
# Usage: kcat_compat.sh BOOTSTRAP [metadata|codecs|group]...
#
# Expects a broker with auto.create.topics.enable=true (Kafka's default) and num.partitions=3:
# kcat cannot create topics, so, as with a stock Kafka, the first produce creates them.
# Exits non-zero on the first mismatch, saying what was expected and what came back.
set -euo pipefail

if [ $# -lt 1 ]; then
    echo "usage: $0 BOOTSTRAP [metadata|codecs|group]..." >&2
    exit 2
fi
B=$1
shift
SCENARIOS=("$@")
[ ${#SCENARIOS[@]} -gt 0 ] || SCENARIOS=(metadata codecs group)

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
RUN_ID="$$-$RANDOM"

log() { echo "[$(date +%H:%M:%S)] $*"; }
fail() {
    printf 'FAIL: %b\n' "$*" >&2
    exit 1
}

# kcat with a time limit; stderr kept in $WORK/err for the checks below.
kc() {
    timeout 30 kcat -b "$B" "$@" 2>"$WORK/err" || {
        local rc=$?
        echo "kcat $* exited $rc; stderr:" >&2
        cat "$WORK/err" >&2
        return $rc
    }
    # librdkafka's log lines for errors and dropped connections, kcat's own errors
    if grep -Eq '^% ERROR|\|(FAIL|ERROR)\||Delivery failed' "$WORK/err"; then
        echo "kcat $* reported errors:" >&2
        cat "$WORK/err" >&2
        return 1
    fi
}

# Lines "key-K:v-I-TAG-padding" for I in [from, to), K = I mod 7.
make_input() { # from to tag
    local i
    for ((i = $1; i < $2; i++)); do
        printf 'key-%d:v-%d-%s-%s\n' $((i % 7)) "$i" "$3" "0123456789abcdefghij0123456789abcdefghij"
    done
}

# Checks consumer output lines "P O K V" (kcat -f '%p %o %k %s\n') against input lines "K:V":
# same multiset of (key, value); per partition offsets strictly increasing from `first_offset`
# without gaps and values in produce order; every key on one partition.
check_consumed() { # input output expected_count what [contiguous-from-zero]
    local input=$1 output=$2 count=$3 what=$4 from_zero=${5:-yes}
    local got
    got=$(wc -l <"$output")
    [ "$got" -eq "$count" ] || fail "$what: expected $count messages, got $got: $(head -5 "$output")"
    diff <(sort "$input") <(awk '{print $3 ":" $4}' "$output" | sort) >"$WORK/diff" ||
        fail "$what: consumed messages differ from produced ones:\n$(head -20 "$WORK/diff")"
    awk -v what="$what" -v from_zero="$from_zero" '
        {
            p = $1; o = $2; k = $3; split($4, v, "-"); i = v[2] + 0
            if (p in next_off) {
                if (o != next_off[p]) { printf "%s: partition %s offset %s after %s\n", what, p, o, next_off[p] - 1; exit 1 }
                if (i <= last_i[p]) { printf "%s: partition %s out of order: %s after %s\n", what, p, i, last_i[p]; exit 1 }
            } else if (from_zero == "yes" && o != 0) {
                printf "%s: partition %s starts at offset %s, not 0\n", what, p, o; exit 1
            }
            next_off[p] = o + 1; last_i[p] = i
            if ((k in part) && part[k] != p) { printf "%s: key %s on partitions %s and %s\n", what, k, part[k], p; exit 1 }
            part[k] = p
        }' "$output" || fail "$what: order/offset check failed"
}

scenario_metadata() {
    local t="kcat-meta-$RUN_ID"
    kc -L >"$WORK/md"
    grep -q "^ 1 brokers:" "$WORK/md" || fail "-L: expected ' 1 brokers:' in:\n$(cat "$WORK/md")"
    grep -Eq "^  broker [0-9]+ at $B" "$WORK/md" || fail "-L: broker $B not listed:\n$(cat "$WORK/md")"
    make_input 0 10 meta | kc -P -t "$t" -K:
    kc -L >"$WORK/md"
    grep -q "topic \"$t\" with 3 partitions:" "$WORK/md" ||
        fail "-L: auto-created topic $t with 3 partitions not listed:\n$(cat "$WORK/md")"
    kc -L -t "$t" >"$WORK/md1"
    for p in 0 1 2; do
        grep -Eq "partition $p, leader [0-9]+, replicas: [0-9]+, isrs: [0-9]+" "$WORK/md1" ||
            fail "-L -t $t: partition $p line missing:\n$(cat "$WORK/md1")"
    done
    kc -L -J >"$WORK/md.json"
    grep -q "\"topic\":\"$t\"" "$WORK/md.json" || fail "-L -J lacks $t: $(cat "$WORK/md.json")"
    # query mode: offsets of each partition (ListOffsets)
    kc -Q -t "$t:0:-1" -t "$t:1:-1" -t "$t:2:-1" >"$WORK/q"
    local total
    total=$(awk '/offset/ {s += $NF} END {print s + 0}' "$WORK/q")
    [ "$total" -eq 10 ] || fail "-Q end offsets sum to $total, expected 10:\n$(cat "$WORK/q")"
    log "metadata: broker and auto-created topic listed, -J and -Q agree"
}

scenario_codecs() {
    local codec t n=500
    for codec in none gzip snappy lz4 zstd; do
        t="kcat-codec-$codec-$RUN_ID"
        make_input 0 $n "$codec" >"$WORK/in"
        # -d msg: librdkafka logs how each batch went out. librdkafka < 2.11.1 silently sends
        # gzip/snappy/lz4 uncompressed when ApiVersions does not list Produce v0 (its
        # "at least v0" check is "v0 in [min, max]"; Kafka 4.0 advertises Produce v0 for it).
        kc -P -t "$t" -K: -z "$codec" -X linger.ms=20 -d msg <"$WORK/in"
        local want="$codec)"
        [ "$codec" != none ] || want="uncompressed)"
        grep "Produce MessageSet with" "$WORK/err" >"$WORK/batches" ||
            fail "$codec: no 'Produce MessageSet' debug lines from kcat -d msg"
        # librdkafka sends a batch uncompressed when compressing does not make it smaller (a
        # lone short message; seen against Apache Kafka, whose auto-created topic's leaders
        # appear a moment later, so the first message can go out alone). Batches of several
        # messages must use the codec, and at least one batch must.
        grep -v -F "$want" "$WORK/batches" | grep -v "with 1 message(s)" >"$WORK/bad" || true
        if [ -s "$WORK/bad" ] || ! grep -q -F "$want" "$WORK/batches" ||
            grep -q "not compressing" "$WORK/err"; then
            fail "$codec: batches not sent with $codec:\n$(grep "not compressing" "$WORK/err" | head -1)\n$(head -3 "$WORK/bad")"
        fi
        kc -C -t "$t" -o beginning -e -q -f '%p %o %k %s\n' >"$WORK/out"
        check_consumed "$WORK/in" "$WORK/out" $n "$codec"
        log "$codec: $n messages round-tripped in $(wc -l <"$WORK/batches") $codec batches"
    done
}

scenario_group() {
    local t="kcat-group-$RUN_ID" g="kcat-grp-$RUN_ID"
    make_input 0 90 old >"$WORK/in1"
    kc -P -t "$t" -K: <"$WORK/in1"
    kc -G "$g" "$t" -X auto.offset.reset=earliest -e -q -f '%p %o %k %s\n' >"$WORK/out1"
    check_consumed "$WORK/in1" "$WORK/out1" 90 "group, first run"
    log "group: first run read all 90"

    make_input 90 120 new >"$WORK/in2"
    kc -P -t "$t" -K: <"$WORK/in2"
    kc -G "$g" "$t" -X auto.offset.reset=earliest -e -q -f '%p %o %k %s\n' >"$WORK/out2"
    check_consumed "$WORK/in2" "$WORK/out2" 30 "group, second run (committed offsets)" no
    log "group: second run read only the 30 new messages"

    kc -G "$g" "$t" -X auto.offset.reset=earliest -e -q -f '%p %o %k %s\n' >"$WORK/out3"
    [ ! -s "$WORK/out3" ] || fail "group, third run: expected nothing, got:\n$(head "$WORK/out3")"
    log "group: third run read nothing"
}

# The librdkafka kcat actually runs with (Debian's kcat: 2.0.2), as it reports at run time.
log "$(kcat -V 2>&1 | grep -o 'Version .*librdkafka [0-9.]*')"

for s in "${SCENARIOS[@]}"; do
    case "$s" in
        metadata | codecs | group) ;;
        *) fail "unknown scenario $s (metadata|codecs|group)" ;;
    esac
    log "=== $s against $B"
    "scenario_$s"
    log "ok $s"
done

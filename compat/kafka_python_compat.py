#!/usr/bin/env python3
"""kafka-python (pure Python client) against a Kafka-compatible broker.

Usage: kafka_python_compat.py BOOTSTRAP
    [admin|roundtrip|roundtrip_not_idempotent|group|codecs|too_large]...

Uses the client's public API only: KafkaProducer / KafkaConsumer / KafkaAdminClient. Each scenario
raises on any difference from what Apache Kafka answers; the script exits non-zero if any scenario
failed.
"""

import os
import time
from collections import defaultdict

import kafka.codec
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.errors import (
    InvalidPartitionsError,
    MessageSizeTooLargeError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
)

from compat_common import Deadline, check, check_eq, log, main, unique, wait_for

TIMEOUT = 20  # seconds for any one admin call / send
# The producer the group, codecs and too_large scenarios use: kafka-python 2.x's behaviour
# (acks=1, no idempotence), a setting users choose for throughput. The 3.x default (idempotent,
# acks=all) is proven by the `roundtrip` scenario alone, so each failure points at one cause.
PLAIN_PRODUCER = {"enable_idempotence": False, "acks": 1}


def admin_client(bootstrap):
    return KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=TIMEOUT * 1000)


def create_topic(admin, name, partitions, configs=None):
    admin.create_topics(
        {name: {"num_partitions": partitions, "replication_factor": 1, "configs": configs or {}}},
        timeout_ms=10000,
    )


def produce_all(bootstrap, topic, messages, **extra):
    """Sends (key, value, headers[, timestamp ms]) tuples.

    Returns [(partition, offset, key, value, timestamp)] as acknowledged."""
    conf = {"bootstrap_servers": bootstrap, "linger_ms": 5}
    conf.update(extra)
    producer = KafkaProducer(**conf)
    futures = [
        (producer.send(topic, key=k, value=v, headers=h or [], timestamp_ms=ts[0] if ts else None), k, v)
        for k, v, h, *ts in messages
    ]
    producer.flush(timeout=TIMEOUT)
    acked = []
    for fut, k, v in futures:
        md = fut.get(timeout=TIMEOUT)
        acked.append((md.partition, md.offset, k, v, md.timestamp))
    producer.close(timeout=TIMEOUT)
    return acked


def consume_assigned(bootstrap, topic, partitions, expected_count, seconds=30, start=None):
    """Reads every partition from the beginning (or `start`) without a group.

    Returns {partition: [(offset, key, value, headers, timestamp)]}."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(tps)
    if start is None:
        consumer.seek_to_beginning(*tps)
    else:
        for tp in tps:
            consumer.seek(tp, start)
    got = defaultdict(list)
    count = 0
    deadline = Deadline(seconds)
    while not deadline.expired() and count < expected_count:
        for tp, records in consumer.poll(timeout_ms=500).items():
            for r in records:
                got[tp.partition].append(
                    (r.offset, r.key, r.value, tuple(r.headers or ()), r.timestamp)
                )
                count += 1
    # nothing beyond what was produced
    for tp, records in consumer.poll(timeout_ms=500).items():
        count += len(records)
    ends = consumer.end_offsets(tps)
    consumer.close()
    check_eq(count, expected_count, f"messages consumed from {topic}")
    if start is None:
        check_eq(
            {tp.partition: off for tp, off in ends.items()},
            {p: len(got[p]) for p in range(partitions)},
            "end offsets (ListOffsets latest) vs messages per partition",
        )
    return got


def scenario_admin(bootstrap):
    admin = admin_client(bootstrap)
    t1, t2 = unique("kp-admin-a"), unique("kp-admin-b")
    admin.create_topics(
        {
            t1: {"num_partitions": 3, "replication_factor": 1, "configs": {"retention.ms": "3600000"}},
            t2: {"num_partitions": 1, "replication_factor": 1},
        },
        timeout_ms=10000,
    )
    log(f"created {t1} (3 partitions, retention.ms) and {t2}")

    wait_for(
        f"list_topics does not list both {t1} and {t2}",
        lambda: sorted(admin.list_topics()),
        lambda topics: t1 in topics and t2 in topics,
    )

    described = {t["name"]: t for t in admin.describe_topics([t1, t2])}
    for name, parts in ((t1, 3), (t2, 1)):
        t = described.get(name)
        check(t is not None, f"describe_topics lacks {name}: {sorted(described)}")
        check_eq(t["error_code"], 0, f"describe_topics {name} error")
        ps = sorted(t["partitions"], key=lambda p: p["partition_index"])
        check_eq([p["partition_index"] for p in ps], list(range(parts)), f"partitions of {name}")
        for p in ps:
            check_eq(p["error_code"], 0, f"{name}[{p['partition_index']}] error")
            check(p["leader_id"] >= 0, f"{name}[{p['partition_index']}] has no leader")
            check_eq(p["replica_nodes"], [p["leader_id"]], f"{name} replicas")
            check_eq(p["isr_nodes"], [p["leader_id"]], f"{name} isr")

    cluster = admin.describe_cluster()
    check_eq(len(cluster["brokers"]), 1, f"describe_cluster brokers: {cluster}")
    check(cluster["cluster_id"], f"describe_cluster cluster_id is empty: {cluster}")

    res = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t1)], config_filter="all")
    configs = res["topic"][t1]
    check("retention.ms" in configs, f"describe_configs({t1}) lacks retention.ms: {sorted(configs)}")
    check_eq(configs["retention.ms"]["value"], "3600000", "retention.ms value")
    check_eq(configs["retention.ms"]["config_source"], "DYNAMIC_TOPIC_CONFIG", "retention.ms source")
    check("cleanup.policy" in configs, f"describe_configs({t1}) lacks cleanup.policy")
    modified = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t1)])["topic"][t1]
    check_eq(sorted(modified), ["retention.ms"], "modified topic configs")

    try:
        create_topic(admin, t1, 3)
    except TopicAlreadyExistsError as e:
        log(f"re-create refused: {e!r}")
    else:
        raise AssertionError(f"creating existing topic {t1} succeeded")

    admin.create_partitions({t1: 4}, timeout_ms=10000)
    wait_for(
        f"{t1} does not have 4 partitions after create_partitions",
        lambda: len(admin.describe_topics([t1])[0]["partitions"]),
        lambda count: count == 4,
    )
    try:
        admin.create_partitions({t1: 2}, timeout_ms=10000)
    except InvalidPartitionsError as e:
        log(f"shrinking refused: {e!r}")
    else:
        raise AssertionError(f"shrinking {t1} from 4 to 2 partitions succeeded")

    admin.delete_topics([t2], timeout_ms=10000)
    wait_for(f"{t2} is still listed after delete", admin.list_topics, lambda topics: t2 not in topics)
    check(t1 in admin.list_topics(), f"{t1} vanished with {t2}")
    try:
        admin.delete_topics([t2], timeout_ms=10000)
    except UnknownTopicOrPartitionError as e:
        log(f"deleting a deleted topic refused: {e!r}")
    else:
        raise AssertionError(f"deleting deleted topic {t2} succeeded")

    bid = cluster["brokers"][0]["broker_id"]
    bres = admin.describe_configs(
        [ConfigResource(ConfigResourceType.BROKER, str(bid))], config_filter="all"
    )
    bconf = bres["broker"][str(bid)]
    for key in ("message.max.bytes", "num.partitions", "log.retention.ms", "log.dirs"):
        check(key in bconf, f"describe_configs(broker) lacks {key}: got only {sorted(bconf)}")
    check_eq(bconf["message.max.bytes"]["value"], "1048588", "broker message.max.bytes (default)")
    admin.close()


def scenario_roundtrip(bootstrap):
    """With the client's defaults: in 3.x an idempotent producer (InitProducerId, acks=all)."""
    roundtrip(bootstrap)


def scenario_roundtrip_not_idempotent(bootstrap):
    """The producer kafka-python 2.x users had: no idempotence, acks=1."""
    roundtrip(bootstrap, **PLAIN_PRODUCER)


def roundtrip(bootstrap, **producer_conf):
    admin = admin_client(bootstrap)
    topic = unique("kp-roundtrip")
    create_topic(admin, topic, 3)
    admin.close()
    n = 600
    base_ts = int(time.time() * 1000) - 3_600_000  # an hour ago, 10 ms apart
    messages = [
        (
            f"key-{i % 17}".encode(),
            f"value-{i}-".encode() + os.urandom(i % 50),
            [("seq", str(i).encode())] if i % 3 == 0 else None,
            base_ts + 10 * i,
        )
        for i in range(n)
    ]
    acked = produce_all(bootstrap, topic, messages, **producer_conf)
    check_eq(sorted(ts for *_, ts in acked), [m[3] for m in messages], "timestamps acknowledged")
    key_part = {}
    for part, _, key, _, _ in acked:
        check_eq(key_part.setdefault(key, part), part, f"partition of key {key!r}")
    check(len(set(key_part.values())) > 1, "all keys landed on one partition")

    got = consume_assigned(bootstrap, topic, 3, n)
    by_value = {m[1]: m for m in messages}
    for part in range(3):
        produced = sorted((o, k, v) for p, o, k, v, _ in acked if p == part)
        consumed = [(o, k, v) for o, k, v, _, _ in got[part]]
        check_eq(consumed, produced, f"partition {part} content and order")
        check_eq([o for o, *_ in consumed], list(range(len(consumed))), f"partition {part} offsets")
        for _, _, v, headers, ts in got[part]:
            check_eq(headers, tuple(by_value[v][2] or ()), f"headers of {v[:16]!r}")
            check_eq(ts, by_value[v][3], f"timestamp of {v[:16]!r}")

    # ListOffsets: earliest / latest, and by timestamp (first offset at or after it)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    tps = [TopicPartition(topic, p) for p in range(3)]
    counts = {p: sum(1 for a in acked if a[0] == p) for p in range(3)}
    check_eq(
        {tp.partition: o for tp, o in consumer.beginning_offsets(tps).items()},
        {p: 0 for p in range(3)},
        "beginning_offsets",
    )
    check_eq(
        {tp.partition: o for tp, o in consumer.end_offsets(tps).items()}, counts, "end_offsets"
    )
    for tp in tps:
        in_part = sorted((o, ts) for p, o, _, _, ts in acked if p == tp.partition)
        mid_offset, mid_ts = in_part[len(in_part) // 2]
        for ts, want in (
            (mid_ts, mid_offset),
            (mid_ts - 1, mid_offset),
            (base_ts - 1000, 0),
            (base_ts + 10 * n + 1000, None),
        ):
            res = consumer.offsets_for_times({tp: ts})[tp]
            got_offset = None if res is None else res.offset
            check_eq(got_offset, want, f"offsets_for_times(partition {tp.partition}, ts {ts})")
            if res is not None:
                check_eq(res.timestamp, dict(in_part)[res.offset], "timestamp of the found offset")
    consumer.close()
    log(f"{n} messages over 3 partitions round-tripped with keys, headers, timestamps, offsets")


def consume_group(bootstrap, group, topic, expected, seconds=30):
    """Subscribes in `group`, reads `expected` messages committing after each poll."""
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=10000,
        heartbeat_interval_ms=1000,
    )
    got = []
    deadline = Deadline(seconds)
    # until `expected` messages arrived and the group has assigned partitions to this member
    while not deadline.expired() and (len(got) < expected or not consumer.assignment()):
        batch = consumer.poll(timeout_ms=500)
        for tp, records in batch.items():
            got.extend((tp.partition, r.offset, r.value) for r in records)
        if batch:
            consumer.commit()
    check(consumer.assignment(), f"no partitions assigned in group {group} within {seconds} s")
    extra = Deadline(2)
    while not extra.expired():
        for tp, records in consumer.poll(timeout_ms=200).items():
            got.extend((tp.partition, r.offset, r.value) for r in records)
    committed = {}
    for tp in consumer.assignment():
        committed[tp.partition] = consumer.committed(tp)
    consumer.close(autocommit=False)
    return got, committed


def scenario_group(bootstrap):
    admin = admin_client(bootstrap)
    topic, group = unique("kp-group"), unique("kp-grp")
    create_topic(admin, topic, 2)
    first = [(f"k{i}".encode(), f"old-{i}".encode(), None) for i in range(100)]
    produce_all(bootstrap, topic, first, **PLAIN_PRODUCER)

    got, committed = consume_group(bootstrap, group, topic, 100)
    check_eq(sorted(v for _, _, v in got), sorted(v for _, v, _ in first), "first consumer's messages")
    ends = defaultdict(int)
    for p, o, _ in got:
        ends[p] = max(ends[p], o + 1)
    check_eq(committed, dict(ends), "committed offsets after the first consumer")
    log(f"first consumer read 100 and committed {committed}")

    second = [(f"k{i}".encode(), f"new-{i}".encode(), None) for i in range(50)]
    produce_all(bootstrap, topic, second, **PLAIN_PRODUCER)
    got2, committed2 = consume_group(bootstrap, group, topic, 50)
    check_eq(sorted(v for _, _, v in got2), sorted(v for _, v, _ in second), "second consumer's messages")
    for p, o, _ in got2:
        check(o >= ends[p], f"second consumer re-read offset {o} of partition {p}")
    log(f"second consumer resumed at {dict(ends)} and read only the 50 new messages")

    got3, committed3 = consume_group(bootstrap, group, topic, 0, seconds=5)
    check_eq(got3, [], "third consumer (nothing new)")
    check_eq(committed3, committed2, "committed offsets seen by the third consumer")

    admin = admin_client(bootstrap)
    groups = [g[0] if isinstance(g, tuple) else g.get("group_id") for g in admin.list_groups()]
    check(group in groups, f"list_groups lacks {group}: {groups}")
    offsets = admin.list_group_offsets({group: None})[group]
    check_eq(
        {tp.partition: om.offset for tp, om in offsets.items() if tp.topic == topic},
        committed2,
        "list_group_offsets (admin OffsetFetch)",
    )
    described = admin.describe_groups([group])[group]
    check_eq(described["error"], None, "describe_groups error")
    check_eq(described["group_state"], "Empty", "describe_groups state after all members left")
    check_eq(described["protocol_type"], "consumer", "describe_groups protocol type")
    admin.close()


def scenario_codecs(bootstrap):
    check(kafka.codec.has_snappy(), "python-snappy missing (compat/requirements.txt)")
    check(kafka.codec.has_lz4(), "lz4 missing (compat/requirements.txt)")
    check(kafka.codec.has_zstd(), "zstandard missing (compat/requirements.txt)")
    admin = admin_client(bootstrap)
    for codec in (None, "gzip", "snappy", "lz4", "zstd"):
        name = codec or "none"
        topic = unique(f"kp-codec-{name}")
        create_topic(admin, topic, 1)
        messages = [
            (f"key-{i}".encode(), (f"{name} value {i} " * 20).encode(), None) for i in range(300)
        ]
        acked = produce_all(
            bootstrap,
            topic,
            messages,
            compression_type=codec,
            linger_ms=20,
            batch_size=16384,
            **PLAIN_PRODUCER,
        )
        got = consume_assigned(bootstrap, topic, 1, len(messages))
        check_eq(
            [(k, v) for _, k, v, *_ in got[0]],
            [(k, v) for k, v, _ in messages],
            f"{name}: consumed messages",
        )
        check_eq([o for o, *_ in got[0]], sorted(o for _, o, *_ in acked), f"{name}: offsets")
        # a fetch from the middle of a compressed batch: the client gets exactly from there
        mid = 137
        got = consume_assigned(bootstrap, topic, 1, len(messages) - mid, start=mid)
        check_eq(
            [(o, v) for o, _, v, *_ in got[0]],
            [(i, messages[i][1]) for i in range(mid, len(messages))],
            f"{name}: consumed from offset {mid}",
        )
        log(f"{name}: 300 messages round-tripped")
    admin.close()


def scenario_too_large(bootstrap):
    """A topic with max.message.bytes=10000 (the topic-level limit, so any broker will do); the
    client allows 1 MB."""
    admin = admin_client(bootstrap)
    topic = unique("kp-large")
    create_topic(admin, topic, 1, {"max.message.bytes": "10000"})
    admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap, max_request_size=1_000_000, **PLAIN_PRODUCER)
    fut = producer.send(topic, value=b"big-msg-" + os.urandom(20000))
    try:
        md = fut.get(timeout=TIMEOUT)
    except MessageSizeTooLargeError as e:
        log(f"20 kB message refused: {e!r}")
    else:
        raise AssertionError(f"a 20 kB message was stored at {md} (max.message.bytes=10000)")
    md = producer.send(topic, value=b"small-ok" + b"x" * 1000).get(timeout=TIMEOUT)
    check_eq(md.offset, 0, "offset of the small message after the refusal")
    producer.close(timeout=TIMEOUT)
    got = consume_assigned(bootstrap, topic, 1, 1)
    check_eq(got[0][0][2], b"small-ok" + b"x" * 1000, "the only stored message")


if __name__ == "__main__":
    log(f"kafka-python {kafka.__version__}")
    main(
        {
            "admin": scenario_admin,
            "roundtrip": scenario_roundtrip,
            "roundtrip_not_idempotent": scenario_roundtrip_not_idempotent,
            "group": scenario_group,
            "codecs": scenario_codecs,
            "too_large": scenario_too_large,
        }
    )

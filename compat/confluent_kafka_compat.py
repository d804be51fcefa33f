#!/usr/bin/env python3
"""confluent-kafka (librdkafka) against a Kafka-compatible broker.

Usage: confluent_kafka_compat.py BOOTSTRAP [admin|roundtrip|group|codecs|too_large]...

Written the way the seed documents use the client: Producer / Consumer / AdminClient with plain
config dicts. Each scenario raises on any difference from what Apache Kafka answers; the script
exits non-zero if any scenario failed.
"""

import logging
import os
import time
from collections import defaultdict

from confluent_kafka import (
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import (
    AdminClient,
    ConfigResource,
    ConfigSource,
    NewPartitions,
    NewTopic,
    ResourceType,
)

from compat_common import Deadline, check, check_eq, log, main, unique, wait_for

TIMEOUT = 20  # seconds for any one admin call / flush


def admin_client(bootstrap):
    return AdminClient({"bootstrap.servers": bootstrap})


def create_topic(admin, name, partitions, config=None):
    fs = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})],
        operation_timeout=10,
        request_timeout=TIMEOUT,
    )
    fs[name].result(timeout=TIMEOUT)


class CapturedLog(logging.Handler):
    """Keeps librdkafka's log lines (delivered through the client's `logger`)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def produce_all(bootstrap, topic, messages, extra=None, logger=None):
    """Produces (key, value, headers[, timestamp ms]) tuples.

    Returns [(partition, offset, key, value, timestamp)] as acknowledged."""
    conf = {"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "all"}
    conf.update(extra or {})
    producer = Producer(conf, logger=logger) if logger else Producer(conf)
    acked, errors = [], []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err)
        else:
            acked.append((msg.partition(), msg.offset(), msg.key(), msg.value(), msg.timestamp()[1]))

    for key, value, headers, *ts in messages:
        kwargs = {"timestamp": ts[0]} if ts else {}
        while True:
            try:
                producer.produce(
                    topic, key=key, value=value, headers=headers, on_delivery=on_delivery, **kwargs
                )
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    remaining = producer.flush(TIMEOUT)
    check_eq(remaining, 0, "messages still in flight after flush")
    check(not errors, f"delivery errors: {errors[:5]}")
    check_eq(len(acked), len(messages), "delivery reports")
    return acked


def consume_assigned(bootstrap, topic, partitions, expected_count, seconds=30, start=0):
    """Reads every partition from `start` without a group; returns {partition: [msgs]}."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique("assign-only"),
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    consumer.assign([TopicPartition(topic, p, start) for p in range(partitions)])
    got = defaultdict(list)
    eof = set()
    deadline = Deadline(seconds)
    count = 0
    while not deadline.expired() and (count < expected_count or len(eof) < partitions):
        msg = consumer.poll(min(1.0, deadline.left()))
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                eof.add(msg.partition())
                continue
            raise KafkaException(msg.error())
        eof.discard(msg.partition())
        got[msg.partition()].append(
            (msg.offset(), msg.key(), msg.value(), tuple(msg.headers() or ()), msg.timestamp()[1])
        )
        count += 1
    consumer.close()
    check_eq(count, expected_count, f"messages consumed from {topic}")
    return got


def scenario_admin(bootstrap):
    admin = admin_client(bootstrap)
    t1, t2 = unique("ck-admin-a"), unique("ck-admin-b")
    fs = admin.create_topics(
        [
            NewTopic(t1, num_partitions=3, replication_factor=1, config={"retention.ms": "3600000"}),
            NewTopic(t2, num_partitions=1, replication_factor=1),
        ],
        operation_timeout=10,
        request_timeout=TIMEOUT,
    )
    for name, f in fs.items():
        check_eq(f.result(timeout=TIMEOUT), None, f"create_topics({name})")
    log(f"created {t1} (3 partitions, retention.ms) and {t2}")

    wait_for(
        f"list_topics does not list both {t1} and {t2}",
        lambda: sorted(admin.list_topics(timeout=TIMEOUT).topics),
        lambda topics: t1 in topics and t2 in topics,
    )
    md = admin.list_topics(timeout=TIMEOUT)
    check(len(md.brokers) == 1, f"one broker listed, got {md.brokers}")
    for name, parts in ((t1, 3), (t2, 1)):
        check(name in md.topics, f"list_topics lacks {name}: {sorted(md.topics)}")
        tmd = md.topics[name]
        check(tmd.error is None, f"list_topics error for {name}: {tmd.error}")
        check_eq(sorted(tmd.partitions), list(range(parts)), f"partitions of {name}")
        for p in tmd.partitions.values():
            check(p.leader in md.brokers, f"{name}[{p.id}] leader {p.leader} not a broker")
            check_eq(list(p.replicas), [p.leader], f"{name}[{p.id}] replicas")
            check_eq(list(p.isrs), [p.leader], f"{name}[{p.id}] isr")

    # describe_topics (librdkafka >= 2.3): partitions with leader / replicas / isr
    desc = admin.describe_topics(TopicCollection([t1]), request_timeout=TIMEOUT)[t1].result(
        timeout=TIMEOUT
    )
    check_eq(desc.name, t1, "describe_topics name")
    check_eq([p.id for p in desc.partitions], [0, 1, 2], "describe_topics partitions")
    for p in desc.partitions:
        check(p.leader is not None, f"describe_topics {t1}[{p.id}] has no leader")
        check_eq([n.id for n in p.replicas], [p.leader.id], f"describe_topics {t1}[{p.id}] replicas")
        check_eq([n.id for n in p.isr], [p.leader.id], f"describe_topics {t1}[{p.id}] isr")

    cluster = admin.describe_cluster(request_timeout=TIMEOUT).result(timeout=TIMEOUT)
    check_eq(len(cluster.nodes), 1, "describe_cluster nodes")
    check(cluster.cluster_id, "describe_cluster cluster_id is empty")

    # describe configs: the topic override is there and marked as a topic config
    res = ConfigResource(ResourceType.TOPIC, t1)
    configs = admin.describe_configs([res], request_timeout=TIMEOUT)[res].result(timeout=TIMEOUT)
    check("retention.ms" in configs, f"describe_configs({t1}) lacks retention.ms: {sorted(configs)}")
    entry = configs["retention.ms"]
    check_eq(entry.value, "3600000", "retention.ms value")
    check(not entry.is_default, "retention.ms override reported as a default")
    check("cleanup.policy" in configs, f"describe_configs({t1}) lacks cleanup.policy")
    check_eq(entry.source, ConfigSource.DYNAMIC_TOPIC_CONFIG.value, "retention.ms source")

    # creating an existing topic: TOPIC_ALREADY_EXISTS
    try:
        create_topic(admin, t1, 3)
    except KafkaException as e:
        check_eq(e.args[0].code(), KafkaError.TOPIC_ALREADY_EXISTS, "re-create error code")
    else:
        raise AssertionError(f"creating existing topic {t1} succeeded")

    # add partitions: 3 -> 4
    fs = admin.create_partitions([NewPartitions(t1, 4)], operation_timeout=10, request_timeout=TIMEOUT)
    check_eq(fs[t1].result(timeout=TIMEOUT), None, f"create_partitions({t1}, 4)")
    wait_for(
        f"{t1} does not have 4 partitions after create_partitions",
        lambda: len(admin.list_topics(topic=t1, timeout=TIMEOUT).topics[t1].partitions),
        lambda count: count == 4,
    )
    try:
        admin.create_partitions([NewPartitions(t1, 2)], request_timeout=TIMEOUT)[t1].result(timeout=TIMEOUT)
    except KafkaException as e:
        check_eq(e.args[0].code(), KafkaError.INVALID_PARTITIONS, "shrinking partitions error")
    else:
        raise AssertionError(f"shrinking {t1} from 4 to 2 partitions succeeded")

    # delete: the topic disappears from metadata
    fs = admin.delete_topics([t2], operation_timeout=10, request_timeout=TIMEOUT)
    check_eq(fs[t2].result(timeout=TIMEOUT), None, f"delete_topics({t2})")
    wait_for(
        f"{t2} is still listed after delete",
        lambda: sorted(admin.list_topics(timeout=TIMEOUT).topics),
        lambda topics: t2 not in topics,
    )
    check(t1 in admin.list_topics(timeout=TIMEOUT).topics, f"{t1} vanished with {t2}")
    try:
        admin.delete_topics([t2], request_timeout=TIMEOUT)[t2].result(timeout=TIMEOUT)
    except KafkaException as e:
        check_eq(e.args[0].code(), KafkaError.UNKNOWN_TOPIC_OR_PART, "delete missing topic error")
    else:
        raise AssertionError(f"deleting deleted topic {t2} succeeded")

    # broker configs: every config with its effective value (defaults included), as Kafka does
    broker = ConfigResource(ResourceType.BROKER, str(next(iter(md.brokers))))
    bconf = admin.describe_configs([broker], request_timeout=TIMEOUT)[broker].result(timeout=TIMEOUT)
    for key in ("message.max.bytes", "num.partitions", "log.retention.ms", "log.dirs"):
        check(key in bconf, f"describe_configs(broker) lacks {key}: got only {sorted(bconf)}")
    check_eq(bconf["message.max.bytes"].value, "1048588", "broker message.max.bytes (default)")
    # an unset key is DEFAULT_CONFIG, a key of the broker's file is STATIC_BROKER_CONFIG
    for key, value in (("message.max.bytes", "1048588"), ("log.retention.hours", "168")):
        check(key in bconf, f"describe_configs(broker) lacks {key}: got only {sorted(bconf)}")
        entry = bconf[key]
        check_eq(entry.value, value, f"broker {key} value")
        check(entry.is_default, f"broker {key} (not set) is not reported as a default")
        check_eq(entry.source, ConfigSource.DEFAULT_CONFIG.value, f"broker {key} source")
    entry = bconf["log.dirs"]
    check(not entry.is_default, "broker log.dirs (set in the file) reported as a default")
    check_eq(entry.source, ConfigSource.STATIC_BROKER_CONFIG.value, "broker log.dirs source")


def scenario_roundtrip(bootstrap):
    admin = admin_client(bootstrap)
    topic = unique("ck-roundtrip")
    create_topic(admin, topic, 3)
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
    acked = produce_all(bootstrap, topic, messages)
    check_eq(
        sorted(ts for *_, ts in acked), [m[3] for m in messages], "timestamps in delivery reports"
    )
    # the default partitioner keeps a key on one partition
    key_part = {}
    for part, _, key, _, _ in acked:
        check_eq(key_part.setdefault(key, part), part, f"partition of key {key!r}")
    check(len(set(key_part.values())) > 1, "all keys landed on one partition")

    got = consume_assigned(bootstrap, topic, 3, n)
    by_seq = {m[1]: m for m in messages}  # value -> (key, value, headers)
    for part in range(3):
        produced = sorted((o, k, v) for p, o, k, v, _ in acked if p == part)
        consumed = [(o, k, v) for o, k, v, _, _ in got[part]]
        check_eq(consumed, produced, f"partition {part} content and order")
        check_eq(
            [o for o, *_ in consumed], list(range(len(consumed))), f"partition {part} offsets"
        )
        for _, _, v, headers, ts in got[part]:
            want = tuple(by_seq[v][2] or ())
            check_eq(headers, want, f"headers of {v[:16]!r}")
            check_eq(ts, by_seq[v][3], f"timestamp of {v[:16]!r}")

    # ListOffsets: watermarks, and by timestamp (first offset at or after it; none past the end)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique("ts-lookup")})
    for part in range(3):
        in_part = sorted((o, ts) for p, o, _, _, ts in acked if p == part)
        lo, hi = consumer.get_watermark_offsets(TopicPartition(topic, part), timeout=TIMEOUT)
        check_eq((lo, hi), (0, len(in_part)), f"watermarks of partition {part}")
        mid_offset, mid_ts = in_part[len(in_part) // 2]
        queries = [
            (mid_ts, mid_offset),  # exact timestamp
            (mid_ts - 1, mid_offset),  # just before it: still that message
            (base_ts - 1000, 0),  # before everything: the first
            (base_ts + 10 * n + 1000, -1),  # after everything: none (OFFSET_END)
        ]
        for ts, want in queries:
            [res] = consumer.offsets_for_times([TopicPartition(topic, part, ts)], timeout=TIMEOUT)
            check(res.error is None, f"offsets_for_times({part}, {ts}) error {res.error}")
            check_eq(res.offset, want, f"offsets_for_times(partition {part}, ts {ts})")
    consumer.close()
    log(f"{n} messages over 3 partitions round-tripped with keys, headers, timestamps, offsets")


def consume_group(bootstrap, group, topic, expected, seconds=30, commit=True):
    """Subscribes in `group`, reads until `expected` messages, commits each one; returns them."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 10000,
        }
    )
    consumer.subscribe([topic])
    got = []
    deadline = Deadline(seconds)
    # until `expected` messages arrived and the group has assigned partitions to this member
    while not deadline.expired() and (len(got) < expected or not consumer.assignment()):
        msg = consumer.poll(min(0.5, deadline.left()))
        if msg is None:
            continue
        if msg.error():
            raise KafkaException(msg.error())
        got.append((msg.partition(), msg.offset(), msg.value()))
        if commit:
            consumer.commit(message=msg, asynchronous=False)
    check(consumer.assignment(), f"no partitions assigned in group {group} within {seconds} s")
    # anything beyond `expected` would be a resume error: give it a moment to show up
    extra_deadline = Deadline(2)
    while not extra_deadline.expired():
        msg = consumer.poll(0.2)
        if msg is not None and not msg.error():
            got.append((msg.partition(), msg.offset(), msg.value()))
    assignment = consumer.assignment()
    committed = consumer.committed(assignment, timeout=TIMEOUT) if assignment else []
    consumer.close()
    return got, {tp.partition: tp.offset for tp in committed}


def scenario_group(bootstrap):
    admin = admin_client(bootstrap)
    topic, group = unique("ck-group"), unique("ck-grp")
    create_topic(admin, topic, 2)
    first = [(f"k{i}".encode(), f"old-{i}".encode(), None) for i in range(100)]
    produce_all(bootstrap, topic, first)

    got, committed = consume_group(bootstrap, group, topic, 100)
    check_eq(sorted(v for _, _, v in got), sorted(v for _, v, _ in first), "first consumer's messages")
    ends = defaultdict(int)
    for p, o, _ in got:
        ends[p] = max(ends[p], o + 1)
    check_eq(committed, dict(ends), "committed offsets after the first consumer")
    log(f"first consumer read 100 and committed {committed}")

    second = [(f"k{i}".encode(), f"new-{i}".encode(), None) for i in range(50)]
    produce_all(bootstrap, topic, second)
    got2, committed2 = consume_group(bootstrap, group, topic, 50)
    check_eq(
        sorted(v for _, _, v in got2), sorted(v for _, v, _ in second), "second consumer's messages"
    )
    for p, o, _ in got2:
        check(o >= ends[p], f"second consumer re-read offset {o} of partition {p}")
    log(f"second consumer resumed at {dict(ends)} and read only the 50 new messages")

    # a third member with nothing new gets nothing, and sees the committed offsets
    got3, committed3 = consume_group(bootstrap, group, topic, 0, seconds=5)
    check_eq(got3, [], "third consumer (nothing new)")
    check_eq(committed3, committed2, "committed offsets seen by the third consumer")

    # what `kafka-consumer-groups --describe` does: list, describe, committed offsets
    listed = admin.list_consumer_groups(request_timeout=TIMEOUT).result(timeout=TIMEOUT)
    check(not listed.errors, f"list_consumer_groups errors: {listed.errors}")
    check(
        group in [g.group_id for g in listed.valid],
        f"list_consumer_groups lacks {group}: {[g.group_id for g in listed.valid]}",
    )
    desc = admin.describe_consumer_groups([group], request_timeout=TIMEOUT)[group].result(
        timeout=TIMEOUT
    )
    check_eq(desc.group_id, group, "describe_consumer_groups group id")
    check_eq(desc.state, ConsumerGroupState.EMPTY, "group state after every member left")
    check_eq(desc.members, [], "members of the empty group")
    offsets = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group]
    tps = offsets.result(timeout=TIMEOUT).topic_partitions
    check_eq(
        {tp.partition: tp.offset for tp in tps if tp.topic == topic},
        committed2,
        "list_consumer_group_offsets",
    )


def scenario_codecs(bootstrap):
    admin = admin_client(bootstrap)
    for codec in ("none", "gzip", "snappy", "lz4", "zstd"):
        topic = unique(f"ck-codec-{codec}")
        create_topic(admin, topic, 1)
        messages = [
            (f"key-{i}".encode(), (f"{codec} value {i} " * 20).encode(), None) for i in range(300)
        ]
        # librdkafka's "msg" debug lines say how each batch went out: it silently sends
        # uncompressed batches to a broker whose ApiVersions it reads as not supporting the codec
        captured = CapturedLog()
        logger = logging.getLogger(f"rdkafka-{codec}")
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
        logger.addHandler(captured)
        acked = produce_all(
            bootstrap,
            topic,
            messages,
            {"compression.type": codec, "linger.ms": 20, "batch.num.messages": 100, "debug": "msg"},
            logger=logger,
        )
        batches = [line for line in captured.lines if "Produce MessageSet with" in line]
        check(batches, f"{codec}: no 'Produce MessageSet' debug lines from librdkafka")
        want = "uncompressed)" if codec == "none" else f"{codec})"
        for line in batches:
            check(line.endswith(want), f"{codec}: a batch was not sent with {codec}: {line}")
        refused = [line for line in captured.lines if "not compressing batch" in line]
        check(not refused, f"{codec}: librdkafka refused to compress: {refused[:1]}")
        got = consume_assigned(bootstrap, topic, 1, len(messages))
        check_eq(
            [(k, v) for _, k, v, *_ in got[0]],
            [(k, v) for k, v, _ in messages],
            f"{codec}: consumed messages",
        )
        check_eq([o for o, *_ in got[0]], sorted(o for _, o, *_ in acked), f"{codec}: offsets")
        # a fetch from the middle of a compressed batch: the client gets exactly from there
        mid = 137
        got = consume_assigned(bootstrap, topic, 1, len(messages) - mid, start=mid)
        check_eq(
            [(o, v) for o, _, v, *_ in got[0]],
            [(i, messages[i][1]) for i in range(mid, len(messages))],
            f"{codec}: consumed from offset {mid}",
        )
        log(f"{codec}: 300 messages round-tripped in {len(batches)} {codec} batches")


def scenario_too_large(bootstrap):
    """A topic with max.message.bytes=10000 (the topic-level limit, so any broker will do); the
    client allows 1 MB."""
    admin = admin_client(bootstrap)
    topic = unique("ck-large")
    create_topic(admin, topic, 1, {"max.message.bytes": "10000"})
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "message.max.bytes": 1000000,
            "compression.type": "none",
            "message.send.max.retries": 0,
        }
    )
    results = {}

    def on_delivery(err, msg):
        results[msg.value()[:8]] = err

    producer.produce(topic, value=b"big-msg-" + os.urandom(20000), on_delivery=on_delivery)
    check_eq(producer.flush(TIMEOUT), 0, "too-large message still in flight")
    err = results.get(b"big-msg-")
    check(err is not None, "a 20 kB message was accepted by a topic with max.message.bytes=10000")
    check_eq(err.code(), KafkaError.MSG_SIZE_TOO_LARGE, f"error for the 20 kB message ({err})")
    log(f"20 kB message refused: {err}")

    # the same producer and connection still work for a message that fits
    producer.produce(topic, value=b"small-ok" + b"x" * 1000, on_delivery=on_delivery)
    check_eq(producer.flush(TIMEOUT), 0, "small message still in flight")
    check_eq(results.get(b"small-ok"), None, "error for a 1 kB message after the refusal")
    got = consume_assigned(bootstrap, topic, 1, 1)
    check_eq(got[0][0][2], b"small-ok" + b"x" * 1000, "the only stored message")

    # an idempotent producer: the refused batch must not use up a sequence number, so the next
    # batch (the same producer id, the next sequence) is accepted, not OUT_OF_ORDER_SEQUENCE
    idem = Producer(
        {"bootstrap.servers": bootstrap, "message.max.bytes": 1000000, "enable.idempotence": True}
    )
    results.clear()
    idem.produce(topic, value=b"big-idm-" + os.urandom(20000), on_delivery=on_delivery)
    check_eq(idem.flush(TIMEOUT), 0, "idempotent: too-large message still in flight")
    err = results.get(b"big-idm-")
    check(err is not None, "idempotent: a 20 kB message was accepted (max.message.bytes=10000)")
    check_eq(err.code(), KafkaError.MSG_SIZE_TOO_LARGE, f"idempotent: error for 20 kB ({err})")
    idem.produce(topic, value=b"small-id" + b"y" * 1000, on_delivery=on_delivery)
    check_eq(idem.flush(TIMEOUT), 0, "idempotent: small message still in flight")
    check_eq(results.get(b"small-id"), None, "idempotent: error for a 1 kB message after the refusal")
    got = consume_assigned(bootstrap, topic, 1, 2)
    check_eq([m[2][:8] for m in got[0]], [b"small-ok", b"small-id"], "stored messages")


if __name__ == "__main__":
    import confluent_kafka

    log(f"confluent-kafka {confluent_kafka.__version__}, librdkafka {confluent_kafka.libversion()[0]}")
    main(
        {
            "admin": scenario_admin,
            "roundtrip": scenario_roundtrip,
            "group": scenario_group,
            "codecs": scenario_codecs,
            "too_large": scenario_too_large,
        }
    )

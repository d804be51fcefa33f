#!/usr/bin/env python3
"""confluent-kafka (librdkafka) on a compacted topic (cleanup.policy=compact).

Usage: compaction_compat.py BOOTSTRAP [compacted|compressed|keyless]...

The broker must run its log cleaner often (`log.cleaner.backoff.ms` of a second or less).
`compacted` writes many versions of a few keys and tombstones for some of them, rolls the
segment behind them, waits (bounded) until the cleaner has compacted the sealed segments, then
reads the partition from the beginning and checks what Kafka guarantees: each key's newest
record is there at the offset it was written to, no older version of a key is left below the
active segment, and tombstones younger than delete.retention.ms are still there (null value);
every record left has the timestamp it was written with.
`compressed` does the same with the producer compressing (gzip, snappy, lz4, zstd, one topic
each) and each flush writing a rotating subset of the keys, so that compressed batches keep
some of their records: the cleaner must decompress, filter and re-compress them.
`keyless` checks that a record without a key is refused with INVALID_RECORD.
"""

import time

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from compat_common import Deadline, check, check_eq, log, main, unique

TIMEOUT = 20  # seconds for any one admin call / flush
KEYS = 8
VERSIONS = 40
CLEAN_WAIT = 60  # seconds the cleaner gets to compact the topic


def create_compacted(bootstrap, name):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    config = {
        "cleanup.policy": "compact",
        "segment.bytes": "4096",
        "segment.ms": "1000",
        "min.cleanable.dirty.ratio": "0.01",
    }
    fs = admin.create_topics(
        [NewTopic(name, num_partitions=1, replication_factor=1, config=config)],
        operation_timeout=10,
        request_timeout=TIMEOUT,
    )
    fs[name].result(timeout=TIMEOUT)


def produce(producer, topic, key, value):
    """Produces one record and returns its offset (from the delivery report)."""
    got = {}

    def report(err, msg):
        got["err"], got["offset"] = err, msg.offset() if err is None else None

    producer.produce(topic, key=key, value=value, on_delivery=report)
    check_eq(producer.flush(TIMEOUT), 0, "records still queued after flush")
    return got


def read_all(bootstrap, topic):
    """Every record of partition 0 from the beginning to the high watermark."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique("compaction-reader"),
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=TIMEOUT)
        consumer.assign([TopicPartition(topic, 0, 0)])
        records = []
        deadline = Deadline(TIMEOUT)
        while not deadline.expired():
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    break
                raise RuntimeError(f"consumer error: {msg.error()}")
            records.append((msg.offset(), msg.key().decode(), msg.value(), msg.timestamp()[1]))
        check(not deadline.expired(), f"reading {topic} timed out")
        check(not records or records[-1][0] < high, f"read past the high watermark {high}")
        return records
    finally:
        consumer.close()


def scenario_compacted(bootstrap, compression="none", rotate=False):
    """See the module docs; `rotate` writes only the keys k with (k + version) % 3 != 0 in each
    version, so batches hold different subsets of the keys."""
    topic = unique(f"compacted-{compression}")
    create_compacted(bootstrap, topic)
    producer = Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": 5, "compression.type": compression}
    )
    written = {}  # offset -> (key, value, timestamp)
    latest = {}  # key -> offset

    def record(err, msg):
        check(err is None, f"delivery failed: {err}")
        written[msg.offset()] = (msg.key().decode(), msg.value(), msg.timestamp()[1])
        latest[msg.key().decode()] = max(latest.get(msg.key().decode(), -1), msg.offset())

    produced = 0
    for version in range(VERSIONS):
        for k in range(KEYS):
            if rotate and (k + version) % 3 == 0:
                continue
            produced += 1
            key = f"key-{k}"
            # The last version of keys 0 and 1 is a tombstone.
            value = None if version == VERSIONS - 1 and k < 2 else f"{key}-v{version}".encode()
            producer.produce(topic, key=key, value=value, on_delivery=record)
            if rotate:
                time.sleep(0.001)  # records of one batch get distinct timestamps
        check_eq(producer.flush(TIMEOUT), 0, "records still queued after flush")

    check_eq(len(written), produced, "delivered records")
    # Roll the segment behind them (segment.ms has passed) so everything is cleanable.
    time.sleep(1.2)
    sentinel = produce(producer, topic, b"sentinel", b"last")
    check(sentinel["err"] is None, f"sentinel refused: {sentinel['err']}")

    deadline = Deadline(CLEAN_WAIT)
    while True:
        records = read_all(bootstrap, topic)
        below = [r for r in records if r[0] < sentinel["offset"]]
        keys = [r[1] for r in below]
        if len(keys) == len(set(keys)):
            break
        check(not deadline.expired(), f"not compacted within {CLEAN_WAIT}s: {len(below)} records")
        time.sleep(0.5)
    log(f"compacted ({compression}): {len(records)} records left of {len(written) + 1}")
    for offset, key, value, timestamp in records:
        if key == "sentinel":
            continue
        check_eq((key, value, timestamp), written[offset], f"record at offset {offset}")
    by_key = {key: (offset, value) for offset, key, value, _ in records}
    for key, offset in latest.items():
        check(key in by_key, f"{key}: its newest record (offset {offset}) is gone")
        check_eq(by_key[key][0], offset, f"offset of {key}'s newest record")
    tombstones = [r for r in records if r[2] is None]
    newest_deleted = [k for k, offset in latest.items() if written[offset][1] is None]
    check_eq(len(tombstones), len(newest_deleted), "tombstones kept within delete.retention.ms")
    check(len(tombstones) > 0, "the scenario wrote tombstones")
    check_eq(len(records), KEYS + 1, "records left: one per key and the sentinel")


def scenario_compressed(bootstrap):
    for compression in ["gzip", "snappy", "lz4", "zstd"]:
        scenario_compacted(bootstrap, compression, rotate=True)


def scenario_keyless(bootstrap):
    topic = unique("compacted-keyless")
    create_compacted(bootstrap, topic)
    producer = Producer({"bootstrap.servers": bootstrap, "message.timeout.ms": 10000})
    got = {}

    def report(err, msg):
        got["err"] = err

    producer.produce(topic, value=b"no key", on_delivery=report)
    producer.flush(TIMEOUT)
    check(got.get("err") is not None, "a record without a key was accepted")
    check_eq(got["err"].code(), KafkaError.INVALID_RECORD, "error for a record without a key")
    check_eq(produce(producer, topic, b"k", b"v")["err"], None, "a keyed record")


if __name__ == "__main__":
    main(
        {
            "compacted": scenario_compacted,
            "compressed": scenario_compressed,
            "keyless": scenario_keyless,
        }
    )

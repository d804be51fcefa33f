#!/usr/bin/env python3
"""Transactional producers and read_committed consumers of third-party clients against a broker.

Usage: transactions_compat.py BOOTSTRAP
    [ck_commit_abort|ck_zombie_fenced|ck_consume_transform_produce|
     kp_commit_abort|kp_zombie_fenced|kp_consume_transform_produce]...

`ck_*` use confluent-kafka (librdkafka), `kp_*` kafka-python 3.x, each the way their
documentation shows exactly-once processing: a Producer with a transactional id,
init / begin / produce / commit or abort, `send_offsets_to_transaction` with the consumer's
positions and group metadata, and consumers with isolation.level read_committed. Each scenario
raises on any difference from what Apache Kafka answers; the script exits non-zero if any failed.
"""

import threading
from collections import defaultdict

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from compat_common import Deadline, check, check_eq, log, main, unique

TIMEOUT = 20  # seconds for any one client call (init / commit / abort / flush / admin)
PARTITIONS = 3


# ----- confluent-kafka -----


def ck_create_topic(bootstrap, name, partitions=PARTITIONS):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    fs = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1)],
        operation_timeout=10,
        request_timeout=TIMEOUT,
    )
    fs[name].result(timeout=TIMEOUT)


def ck_txn_producer(bootstrap, txn_id, **extra):
    conf = {
        "bootstrap.servers": bootstrap,
        "transactional.id": txn_id,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
    }
    conf.update(extra)
    return Producer(conf)


def ck_produce(producer, topic, messages):
    """Produces (partition, value) pairs inside the open transaction and waits for delivery."""
    errors = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(err)

    for partition, value in messages:
        producer.produce(topic, value=value, partition=partition, on_delivery=on_delivery)
        producer.poll(0)
    check_eq(producer.flush(TIMEOUT), 0, "transactional messages still in flight after flush")
    check(not errors, f"delivery errors: {errors[:5]}")


def ck_read(bootstrap, topic, isolation, expected, partitions=PARTITIONS, seconds=30):
    """Reads every partition from the start without a group until `expected` messages arrived
    and every partition is at its end (the last stable offset for read_committed).

    Returns {partition: [(offset, value)]}."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": unique("ck-txn-reader"),
            "isolation.level": isolation,
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    got = defaultdict(list)
    eof = set()
    count = 0
    deadline = Deadline(seconds)
    while not deadline.expired() and (count < expected or len(eof) < partitions):
        msg = consumer.poll(min(0.5, deadline.left()))
        if msg is None:
            continue
        if msg.error():
            if msg.error().code() == KafkaError._PARTITION_EOF:
                eof.add(msg.partition())
                continue
            raise KafkaException(msg.error())
        eof.discard(msg.partition())
        got[msg.partition()].append((msg.offset(), msg.value()))
        count += 1
    consumer.close()
    check_eq(count, expected, f"messages read from {topic} ({isolation})")
    check_eq(len(eof), partitions, f"partitions of {topic} read to the end ({isolation})")
    return got


def ck_watermarks(bootstrap, topic, isolation, partitions=PARTITIONS):
    """{partition: (low, high)}; `high` is the last stable offset for read_committed."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": unique("ck-wm"), "isolation.level": isolation}
    )
    out = {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=TIMEOUT)
        for p in range(partitions)
    }
    consumer.close()
    return out


def values_by_partition(got):
    return {p: [v for _, v in msgs] for p, msgs in sorted(got.items()) if msgs}


def expected_by_partition(*sets):
    out = defaultdict(list)
    for messages in sets:
        for p, v in messages:
            out[p].append(v)
    return dict(sorted(out.items()))


def txn_set(tag, count):
    """`count` (partition, value) pairs spread round-robin over the partitions."""
    return [(i % PARTITIONS, f"{tag}-{i}".encode()) for i in range(count)]


def scenario_ck_commit_abort(bootstrap):
    topic = unique("ck-txn")
    ck_create_topic(bootstrap, topic)
    first, aborted, second = txn_set("first", 30), txn_set("aborted", 21), txn_set("second", 24)

    producer = ck_txn_producer(bootstrap, unique("ck-txn-id"))
    producer.init_transactions(TIMEOUT)

    producer.begin_transaction()
    ck_produce(producer, topic, first)
    producer.commit_transaction(TIMEOUT)
    log(f"committed {len(first)} messages")

    producer.begin_transaction()
    ck_produce(producer, topic, aborted)
    producer.abort_transaction(TIMEOUT)
    log(f"aborted {len(aborted)} messages")

    # the third transaction is open (its messages stored) while read_committed readers look
    producer.begin_transaction()
    ck_produce(producer, topic, second)
    got = ck_read(bootstrap, topic, "read_committed", len(first))
    check_eq(values_by_partition(got), expected_by_partition(first), "read_committed, third open")
    hw = ck_watermarks(bootstrap, topic, "read_uncommitted")
    lso = ck_watermarks(bootstrap, topic, "read_committed")
    for p in range(PARTITIONS):
        n_first = sum(1 for q, _ in first if q == p)
        n_aborted = sum(1 for q, _ in aborted if q == p)
        n_second = sum(1 for q, _ in second if q == p)
        # each transaction's end wrote one control record (marker) in each partition it touched
        check_eq(hw[p], (0, n_first + 1 + n_aborted + 1 + n_second), f"watermarks of {p}, open")
        check_eq(lso[p], (0, n_first + 1 + n_aborted + 1), f"last stable offset of {p}, open")
    producer.commit_transaction(TIMEOUT)
    log(f"committed {len(second)} messages (LSO held at the open transaction until then)")

    got = ck_read(bootstrap, topic, "read_committed", len(first) + len(second))
    check_eq(
        values_by_partition(got), expected_by_partition(first, second), "read_committed content"
    )
    seen = {v for msgs in got.values() for _, v in msgs}
    check(not seen & {v for _, v in aborted}, "read_committed saw aborted messages")

    got = ck_read(bootstrap, topic, "read_uncommitted", len(first) + len(aborted) + len(second))
    check_eq(
        values_by_partition(got),
        expected_by_partition(first, aborted, second),
        "read_uncommitted content",
    )
    # offsets: data at 0..n-1, marker at n, aborted data, marker, second data, marker
    for p, msgs in got.items():
        n_first = sum(1 for q, _ in first if q == p)
        n_aborted = sum(1 for q, _ in aborted if q == p)
        n_second = sum(1 for q, _ in second if q == p)
        want = (
            list(range(n_first))
            + list(range(n_first + 1, n_first + 1 + n_aborted))
            + list(range(n_first + n_aborted + 2, n_first + n_aborted + 2 + n_second))
        )
        check_eq([o for o, _ in msgs], want, f"read_uncommitted offsets of partition {p}")
    hw = ck_watermarks(bootstrap, topic, "read_uncommitted")
    lso = ck_watermarks(bootstrap, topic, "read_committed")
    check_eq(lso, hw, "last stable offsets once every transaction ended")
    log("read_committed: both committed sets in order; read_uncommitted: all three")


FENCING_CODES = (KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH)


def is_fenced(err):
    """librdkafka turns the coordinator's INVALID_PRODUCER_EPOCH / PRODUCER_FENCED into a fatal
    _FENCED error."""
    return err.code() in FENCING_CODES


def scenario_ck_zombie_fenced(bootstrap):
    topic = unique("ck-zombie")
    ck_create_topic(bootstrap, topic)
    txn_id = unique("ck-zombie-id")
    zombie_msgs, new_msgs = txn_set("zombie", 12), txn_set("successor", 9)

    a = ck_txn_producer(bootstrap, txn_id)
    a.init_transactions(TIMEOUT)
    a.begin_transaction()
    ck_produce(a, topic, zombie_msgs)
    log("producer A: transaction open with 12 messages stored")

    b = ck_txn_producer(bootstrap, txn_id)
    b.init_transactions(TIMEOUT)  # bumps the epoch and aborts A's open transaction
    log("producer B: initialised with the same transactional id")

    try:
        a.commit_transaction(TIMEOUT)
    except KafkaException as e:
        err = e.args[0]
        log(f"producer A's commit failed: {err} (fatal={err.fatal()}, code={err.code()})")
        check(is_fenced(err), f"A's commit failed, but not with a fencing error: {err}")
    else:
        raise AssertionError("the zombie producer A committed after B initialised the same id")

    b.begin_transaction()
    ck_produce(b, topic, new_msgs)
    b.commit_transaction(TIMEOUT)

    got = ck_read(bootstrap, topic, "read_committed", len(new_msgs))
    check_eq(values_by_partition(got), expected_by_partition(new_msgs), "read_committed content")
    # A's messages are stored (and aborted): only read_uncommitted shows them
    got = ck_read(bootstrap, topic, "read_uncommitted", len(zombie_msgs) + len(new_msgs))
    check_eq(
        values_by_partition(got),
        expected_by_partition(zombie_msgs, new_msgs),
        "read_uncommitted content",
    )
    log("A fenced; B's transaction visible, A's aborted messages only to read_uncommitted")


def ck_plain_produce(bootstrap, topic, messages):
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5})
    for p, k, v in messages:
        producer.produce(topic, key=k, value=v, partition=p)
        producer.poll(0)
    check_eq(producer.flush(TIMEOUT), 0, "input messages still in flight after flush")


def transform(value):
    return b"out:" + value.upper()


def scenario_ck_consume_transform_produce(bootstrap):
    src, dst, group = unique("ck-ctp-in"), unique("ck-ctp-out"), unique("ck-ctp-grp")
    ck_create_topic(bootstrap, src)
    ck_create_topic(bootstrap, dst)
    n = 300
    inputs = [(i % PARTITIONS, f"k{i % 7}".encode(), f"input-{i}".encode()) for i in range(n)]
    ck_plain_produce(bootstrap, src, inputs)

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "session.timeout.ms": 10000,
        }
    )
    producer = ck_txn_producer(bootstrap, unique("ck-ctp-id"))
    producer.init_transactions(TIMEOUT)
    consumer.subscribe([src])

    done = 0
    batches = 0
    aborted_once = False
    deadline = Deadline(60)
    while done < n:
        check(not deadline.expired(), f"consume-transform-produce stalled after {done} of {n}")
        batch = consumer.consume(num_messages=40, timeout=min(1.0, deadline.left()))
        if not batch:
            continue
        for m in batch:
            if m.error():
                raise KafkaException(m.error())
        producer.begin_transaction()
        for m in batch:
            producer.produce(dst, key=m.key(), value=transform(m.value()), partition=m.partition())
            producer.poll(0)
        producer.send_offsets_to_transaction(
            consumer.position(consumer.assignment()),
            consumer.consumer_group_metadata(),
            TIMEOUT,
        )
        if not aborted_once:
            # the first batch's transaction is aborted: neither its output nor its offsets
            # count; the application rewinds to the last committed offsets and redoes it
            producer.abort_transaction(TIMEOUT)
            aborted_once = True
            assignment = consumer.assignment()
            committed = consumer.committed(assignment, timeout=TIMEOUT)
            check(
                all(tp.offset < 0 for tp in committed),
                f"offsets committed by an aborted transaction: {committed}",
            )
            for tp in assignment:
                consumer.seek(TopicPartition(tp.topic, tp.partition, 0))
            log(f"aborted the first batch of {len(batch)}; rewound to offset 0")
            continue
        producer.commit_transaction(TIMEOUT)
        done += len(batch)
        batches += 1
    log(f"{n} input messages processed in {batches} committed transactions")

    assignment = consumer.assignment()
    check_eq(len(assignment), PARTITIONS, "partitions assigned to the only member")
    committed = consumer.committed(assignment, timeout=TIMEOUT)
    consumer.close()
    ends = ck_watermarks(bootstrap, src, "read_uncommitted")
    check_eq(
        {tp.partition: tp.offset for tp in committed},
        {p: hi for p, (_, hi) in ends.items()},
        "group's committed offsets vs end offsets of the input",
    )

    got = ck_read(bootstrap, dst, "read_committed", n)
    want = defaultdict(list)
    for p, _, v in inputs:
        want[p].append(transform(v))
    check_eq(values_by_partition(got), dict(sorted(want.items())), "output (read_committed)")
    log("output == transformed input exactly once; committed offsets at the input's end")


# ----- kafka-python -----


def bounded(what, fn, *args):
    """Runs `fn(*args)` within TIMEOUT seconds: kafka-python's commit_transaction() and
    abort_transaction() wait for the coordinator without any time limit."""
    result = {}

    def run():
        try:
            result["value"] = fn(*args)
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            result["error"] = e

    t = threading.Thread(target=run, name=what, daemon=True)
    t.start()
    t.join(TIMEOUT)
    check(not t.is_alive(), f"{what} did not return within {TIMEOUT} s")
    if "error" in result:
        raise result["error"]
    return result.get("value")


def kp_admin(bootstrap):
    from kafka import KafkaAdminClient

    return KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=TIMEOUT * 1000)


def kp_create_topic(bootstrap, name, partitions=PARTITIONS):
    admin = kp_admin(bootstrap)
    admin.create_topics(
        {name: {"num_partitions": partitions, "replication_factor": 1}}, timeout_ms=10000
    )
    admin.close()


def kp_txn_producer(bootstrap, txn_id):
    from kafka import KafkaProducer

    return KafkaProducer(
        bootstrap_servers=bootstrap,
        transactional_id=txn_id,
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        request_timeout_ms=TIMEOUT * 1000,
        max_block_ms=TIMEOUT * 1000,
    )


def kp_produce(producer, topic, messages):
    futures = [producer.send(topic, value=v, partition=p) for p, v in messages]
    producer.flush(timeout=TIMEOUT)
    for f in futures:
        f.get(timeout=TIMEOUT)


def kp_read(bootstrap, topic, isolation, expected, partitions=PARTITIONS, seconds=30):
    """Reads every partition from the start without a group; {partition: [(offset, value)]}."""
    from kafka import KafkaConsumer, TopicPartition as KTP

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        isolation_level=isolation,
    )
    tps = [KTP(topic, p) for p in range(partitions)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    got = defaultdict(list)
    count = 0
    deadline = Deadline(seconds)
    while not deadline.expired() and count < expected:
        for tp, records in consumer.poll(timeout_ms=500).items():
            for r in records:
                got[tp.partition].append((r.offset, r.value))
                count += 1
    # nothing beyond: give extra (e.g. aborted) records a moment to show up
    for tp, records in consumer.poll(timeout_ms=1000).items():
        for r in records:
            got[tp.partition].append((r.offset, r.value))
            count += 1
    ends = consumer.end_offsets(tps)
    consumer.close()
    check_eq(count, expected, f"messages read from {topic} ({isolation})")
    return got, {tp.partition: off for tp, off in ends.items()}


def scenario_kp_commit_abort(bootstrap):
    topic = unique("kp-txn")
    kp_create_topic(bootstrap, topic)
    first, aborted, second = txn_set("first", 30), txn_set("aborted", 21), txn_set("second", 24)

    producer = kp_txn_producer(bootstrap, unique("kp-txn-id"))
    bounded("init_transactions", producer.init_transactions)
    producer.begin_transaction()
    kp_produce(producer, topic, first)
    bounded("commit_transaction", producer.commit_transaction)
    log(f"committed {len(first)} messages")

    producer.begin_transaction()
    kp_produce(producer, topic, aborted)
    bounded("abort_transaction", producer.abort_transaction)
    log(f"aborted {len(aborted)} messages")

    producer.begin_transaction()
    kp_produce(producer, topic, second)
    got, lso = kp_read(bootstrap, topic, "read_committed", len(first))
    check_eq(values_by_partition(got), expected_by_partition(first), "read_committed, third open")
    for p in range(PARTITIONS):
        n_first = sum(1 for q, _ in first if q == p)
        n_aborted = sum(1 for q, _ in aborted if q == p)
        check_eq(lso[p], n_first + 1 + n_aborted + 1, f"read_committed end offset of {p}, open")
    bounded("commit_transaction", producer.commit_transaction)
    producer.close(timeout=TIMEOUT)
    log(f"committed {len(second)} messages")

    got, lso = kp_read(bootstrap, topic, "read_committed", len(first) + len(second))
    check_eq(
        values_by_partition(got), expected_by_partition(first, second), "read_committed content"
    )
    seen = {v for msgs in got.values() for _, v in msgs}
    check(not seen & {v for _, v in aborted}, "read_committed saw aborted messages")

    total = len(first) + len(aborted) + len(second)
    got, hw = kp_read(bootstrap, topic, "read_uncommitted", total)
    check_eq(
        values_by_partition(got),
        expected_by_partition(first, aborted, second),
        "read_uncommitted content",
    )
    check_eq(lso, hw, "read_committed end offsets once every transaction ended")
    for p in range(PARTITIONS):
        n = sum(1 for q, _ in first + aborted + second if q == p)
        check_eq(hw[p], n + 3, f"end offset of {p} (data plus three markers)")
    log("read_committed: both committed sets in order; read_uncommitted: all three")


def scenario_kp_zombie_fenced(bootstrap):
    from kafka.errors import InvalidProducerEpochError, KafkaError as KPError, ProducerFencedError

    topic = unique("kp-zombie")
    kp_create_topic(bootstrap, topic)
    txn_id = unique("kp-zombie-id")
    zombie_msgs, new_msgs = txn_set("zombie", 12), txn_set("successor", 9)

    a = kp_txn_producer(bootstrap, txn_id)
    bounded("init_transactions", a.init_transactions)
    a.begin_transaction()
    kp_produce(a, topic, zombie_msgs)
    log("producer A: transaction open with 12 messages stored")

    b = kp_txn_producer(bootstrap, txn_id)
    bounded("init_transactions", b.init_transactions)
    log("producer B: initialised with the same transactional id")

    try:
        bounded("commit_transaction", a.commit_transaction)
    except (ProducerFencedError, InvalidProducerEpochError) as e:
        log(f"producer A's commit failed: {type(e).__name__}: {e}")
    except KPError as e:
        raise AssertionError(f"A's commit failed, but not with a fencing error: {e!r}") from e
    else:
        raise AssertionError("the zombie producer A committed after B initialised the same id")
    a.close(timeout=TIMEOUT)

    b.begin_transaction()
    kp_produce(b, topic, new_msgs)
    bounded("commit_transaction", b.commit_transaction)
    b.close(timeout=TIMEOUT)

    got, _ = kp_read(bootstrap, topic, "read_committed", len(new_msgs))
    check_eq(values_by_partition(got), expected_by_partition(new_msgs), "read_committed content")
    got, _ = kp_read(bootstrap, topic, "read_uncommitted", len(zombie_msgs) + len(new_msgs))
    check_eq(
        values_by_partition(got),
        expected_by_partition(zombie_msgs, new_msgs),
        "read_uncommitted content",
    )
    log("A fenced; B's transaction visible, A's aborted messages only to read_uncommitted")


def scenario_kp_consume_transform_produce(bootstrap):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition as KTP
    from kafka.structs import OffsetAndMetadata

    src, dst, group = unique("kp-ctp-in"), unique("kp-ctp-out"), unique("kp-ctp-grp")
    kp_create_topic(bootstrap, src)
    kp_create_topic(bootstrap, dst)
    n = 300
    inputs = [(i % PARTITIONS, f"k{i % 7}".encode(), f"input-{i}".encode()) for i in range(n)]
    plain = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    for f in [plain.send(src, key=k, value=v, partition=p) for p, k, v in inputs]:
        f.get(timeout=TIMEOUT)
    plain.close(timeout=TIMEOUT)

    consumer = KafkaConsumer(
        src,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        session_timeout_ms=10000,
    )
    producer = kp_txn_producer(bootstrap, unique("kp-ctp-id"))
    bounded("init_transactions", producer.init_transactions)

    done = 0
    batches = 0
    aborted_once = False
    deadline = Deadline(60)
    while done < n:
        check(not deadline.expired(), f"consume-transform-produce stalled after {done} of {n}")
        polled = consumer.poll(timeout_ms=1000, max_records=40)
        records = [r for rs in polled.values() for r in rs]
        if not records:
            continue
        producer.begin_transaction()
        for r in records:
            producer.send(dst, key=r.key, value=transform(r.value), partition=r.partition)
        offsets = {
            tp: OffsetAndMetadata(consumer.position(tp), "", -1) for tp in consumer.assignment()
        }
        bounded(
            "send_offsets_to_transaction",
            producer.send_offsets_to_transaction,
            offsets,
            consumer.group_metadata(),
        )
        if not aborted_once:
            bounded("abort_transaction", producer.abort_transaction)
            aborted_once = True
            for tp in consumer.assignment():
                committed = consumer.committed(tp)
                check(committed is None, f"{tp}: offset {committed} committed by an aborted txn")
                consumer.seek(tp, 0)
            log(f"aborted the first batch of {len(records)}; rewound to offset 0")
            continue
        bounded("commit_transaction", producer.commit_transaction)
        done += len(records)
        batches += 1
    producer.close(timeout=TIMEOUT)
    log(f"{n} input messages processed in {batches} committed transactions")

    assignment = consumer.assignment()
    check_eq(len(assignment), PARTITIONS, "partitions assigned to the only member")
    committed = {tp.partition: consumer.committed(tp) for tp in assignment}
    ends = {tp.partition: off for tp, off in consumer.end_offsets(list(assignment)).items()}
    consumer.close()
    check_eq(committed, ends, "group's committed offsets vs end offsets of the input")

    got, _ = kp_read(bootstrap, dst, "read_committed", n)
    want = defaultdict(list)
    for p, _, v in inputs:
        want[p].append(transform(v))
    check_eq(values_by_partition(got), dict(sorted(want.items())), "output (read_committed)")
    log("output == transformed input exactly once; committed offsets at the input's end")


if __name__ == "__main__":
    import confluent_kafka
    import kafka

    log(
        f"confluent-kafka {confluent_kafka.__version__}, librdkafka "
        f"{confluent_kafka.libversion()[0]}, kafka-python {kafka.__version__}"
    )
    main(
        {
            "ck_commit_abort": scenario_ck_commit_abort,
            "ck_zombie_fenced": scenario_ck_zombie_fenced,
            "ck_consume_transform_produce": scenario_ck_consume_transform_produce,
            "kp_commit_abort": scenario_kp_commit_abort,
            "kp_zombie_fenced": scenario_kp_zombie_fenced,
            "kp_consume_transform_produce": scenario_kp_consume_transform_produce,
        }
    )

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


def ck_read(bootstrap, topic, isolation, expected, partitions=PARTITIONS, seconds=30, starts=None):
    """Reads every partition from the start (or only `starts`: {partition: offset}) without a
    group until `expected` messages arrived and every partition is at its end (the last stable
    offset for read_committed).

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
    starts = starts if starts is not None else {p: 0 for p in range(partitions)}
    partitions = len(starts)
    consumer.assign([TopicPartition(topic, p, o) for p, o in starts.items()])
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


def junk_set(count):
    """Input records a transaction writes and then aborts: never to be processed."""
    return [(i % PARTITIONS, b"junk", f"junk-{i}".encode()) for i in range(count)]


def ck_txn_input(bootstrap, topic, inputs):
    """Writes `inputs` in two committed transactions around an aborted one."""
    producer = ck_txn_producer(bootstrap, unique("ck-ctp-src"))
    producer.init_transactions(TIMEOUT)
    half = len(inputs) // 2
    for part, commit in ((inputs[:half], True), (junk_set(30), False), (inputs[half:], True)):
        producer.begin_transaction()
        for p, k, v in part:
            producer.produce(topic, key=k, value=v, partition=p)
            producer.poll(0)
        check_eq(producer.flush(TIMEOUT), 0, "input messages still in flight after flush")
        if commit:
            producer.commit_transaction(TIMEOUT)
        else:
            producer.abort_transaction(TIMEOUT)


def transform(value):
    return b"out:" + value.upper()


def scenario_ck_consume_transform_produce(bootstrap, txn_input=False):
    """With `txn_input`, the input itself is transactional (a pipeline's second stage): aborted
    input is skipped, and the positions committed at the end are past the last marker."""
    src, dst, group = unique("ck-ctp-in"), unique("ck-ctp-out"), unique("ck-ctp-grp")
    ck_create_topic(bootstrap, src)
    ck_create_topic(bootstrap, dst)
    n = 300
    inputs = [(i % PARTITIONS, f"k{i % 7}".encode(), f"input-{i}".encode()) for i in range(n)]
    if txn_input:
        ck_txn_input(bootstrap, src, inputs)
    else:
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

    # like any consumer (also against Kafka), the position moves past a transaction's trailing
    # marker only on a poll after the last record: poll once more, then commit the positions in
    # an offsets-only transaction if they moved (what a long-running processor does next)
    assignment = consumer.assignment()
    check_eq(len(assignment), PARTITIONS, "partitions assigned to the only member")
    extra = [m for m in consumer.consume(num_messages=10, timeout=1.0) if not m.error()]
    check_eq([m.value() for m in extra], [], "records after the whole input was processed")
    positions = consumer.position(assignment)
    committed = consumer.committed(assignment, timeout=TIMEOUT)
    if [tp.offset for tp in positions] != [tp.offset for tp in committed]:
        producer.begin_transaction()
        producer.send_offsets_to_transaction(
            positions, consumer.consumer_group_metadata(), TIMEOUT
        )
        producer.commit_transaction(TIMEOUT)
        log("committed the positions past the input's last markers in an offsets-only transaction")
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


def kp_read(bootstrap, topic, isolation, expected, partitions=PARTITIONS, seconds=30, starts=None):
    """Reads every partition from the start (or only `starts`: {partition: offset}) without a
    group; returns ({partition: [(offset, value)]}, {partition: end offset for `isolation`})."""
    from kafka import KafkaConsumer, TopicPartition as KTP

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        isolation_level=isolation,
    )
    if starts is None:
        tps = [KTP(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
    else:
        tps = [KTP(topic, p) for p in starts]
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, starts[tp.partition])
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


def scenario_kp_consume_transform_produce(bootstrap, txn_input=False):
    """`txn_input`: as for confluent-kafka."""
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition as KTP
    from kafka.structs import OffsetAndMetadata

    src, dst, group = unique("kp-ctp-in"), unique("kp-ctp-out"), unique("kp-ctp-grp")
    kp_create_topic(bootstrap, src)
    kp_create_topic(bootstrap, dst)
    n = 300
    inputs = [(i % PARTITIONS, f"k{i % 7}".encode(), f"input-{i}".encode()) for i in range(n)]
    if txn_input:
        src_producer = kp_txn_producer(bootstrap, unique("kp-ctp-src"))
        bounded("init_transactions", src_producer.init_transactions)
        half = len(inputs) // 2
        for part, commit in ((inputs[:half], True), (junk_set(30), False), (inputs[half:], True)):
            src_producer.begin_transaction()
            for f in [src_producer.send(src, key=k, value=v, partition=p) for p, k, v in part]:
                f.get(timeout=TIMEOUT)
            end = src_producer.commit_transaction if commit else src_producer.abort_transaction
            bounded("end of an input transaction", end)
        src_producer.close(timeout=TIMEOUT)
    else:
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
    log(f"{n} input messages processed in {batches} committed transactions")

    # as for confluent-kafka: one more poll, then an offsets-only transaction if positions moved
    assignment = consumer.assignment()
    check_eq(len(assignment), PARTITIONS, "partitions assigned to the only member")
    extra = [r.value for rs in consumer.poll(timeout_ms=1000).values() for r in rs]
    check_eq(extra, [], "records after the whole input was processed")
    positions = {tp: consumer.position(tp) for tp in assignment}
    if any(consumer.committed(tp) != off for tp, off in positions.items()):
        producer.begin_transaction()
        offsets = {tp: OffsetAndMetadata(off, "", -1) for tp, off in positions.items()}
        bounded(
            "send_offsets_to_transaction",
            producer.send_offsets_to_transaction,
            offsets,
            consumer.group_metadata(),
        )
        bounded("commit_transaction", producer.commit_transaction)
        log("committed the positions past the input's last markers in an offsets-only transaction")
    producer.close(timeout=TIMEOUT)
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


# ----- both clients: interleaved transactions -----


class CkClient:
    name = "confluent-kafka"

    create_topic = staticmethod(ck_create_topic)

    @staticmethod
    def producer(bootstrap, txn_id):
        p = ck_txn_producer(bootstrap, txn_id)
        p.init_transactions(TIMEOUT)
        return p

    produce = staticmethod(ck_produce)

    @staticmethod
    def begin(p):
        p.begin_transaction()

    @staticmethod
    def commit(p):
        p.commit_transaction(TIMEOUT)

    @staticmethod
    def abort(p):
        p.abort_transaction(TIMEOUT)

    @staticmethod
    def read(bootstrap, topic, isolation, expected, starts=None):
        return ck_read(bootstrap, topic, isolation, expected, starts=starts)


class KpClient:
    name = "kafka-python"

    create_topic = staticmethod(lambda bootstrap, name: kp_create_topic(bootstrap, name))

    @staticmethod
    def producer(bootstrap, txn_id):
        p = kp_txn_producer(bootstrap, txn_id)
        bounded("init_transactions", p.init_transactions)
        return p

    produce = staticmethod(lambda p, topic, messages: kp_produce(p, topic, messages))

    @staticmethod
    def begin(p):
        p.begin_transaction()

    @staticmethod
    def commit(p):
        bounded("commit_transaction", p.commit_transaction)

    @staticmethod
    def abort(p):
        bounded("abort_transaction", p.abort_transaction)

    @staticmethod
    def read(bootstrap, topic, isolation, expected, starts=None):
        return kp_read(bootstrap, topic, isolation, expected, starts=starts)[0]


def interleaved(client, bootstrap):
    """Two transactional producers write alternating batches to the same partitions; one commits
    while the other is still open (read_committed sees nothing yet: the open one holds the last
    stable offset at its first offset), then the other aborts. Readers must drop exactly the
    aborted producer's batches, also when they start reading in the middle of its transaction
    (the broker lists every aborted transaction overlapping the fetched range, like Kafka)."""
    topic = unique("txn-interleaved")
    client.create_topic(bootstrap, topic)
    p1 = client.producer(bootstrap, unique("txn-p1"))
    p2 = client.producer(bootstrap, unique("txn-p2"))
    client.begin(p1)
    client.begin(p2)
    doomed, kept = [], []
    for r in range(4):
        batch1 = [(i % PARTITIONS, f"p1-aborted-{r}-{i}".encode()) for i in range(6)]
        batch2 = [(i % PARTITIONS, f"p2-committed-{r}-{i}".encode()) for i in range(6)]
        client.produce(p1, topic, batch1)
        client.produce(p2, topic, batch2)
        doomed += batch1
        kept += batch2
    client.commit(p2)
    got = client.read(bootstrap, topic, "read_committed", 0)
    check_eq(values_by_partition(got), {}, "read_committed while p1's transaction (first) is open")
    client.abort(p1)
    got = client.read(bootstrap, topic, "read_committed", len(kept))
    check_eq(values_by_partition(got), expected_by_partition(kept), "read_committed after abort")

    later = txn_set("p1-later", 9)
    client.begin(p1)
    client.produce(p1, topic, later)
    client.commit(p1)
    committed = expected_by_partition(kept, later)
    got = client.read(bootstrap, topic, "read_committed", len(kept) + len(later))
    check_eq(values_by_partition(got), committed, "read_committed at the end")

    everything = client.read(bootstrap, topic, "read_uncommitted", len(doomed) + len(kept) + len(later))
    check_eq(
        sorted(v for msgs in everything.values() for _, v in msgs),
        sorted(v for _, v in doomed + kept + later),
        "read_uncommitted: every message",
    )
    # read_committed from inside the aborted transaction, in each partition
    doomed_values = {v for _, v in doomed}
    for p, msgs in sorted(everything.items()):
        aborted_offsets = [o for o, v in msgs if v in doomed_values]
        start = aborted_offsets[len(aborted_offsets) // 2]
        want = [v for o, v in msgs if o >= start and v not in doomed_values]
        got = client.read(bootstrap, topic, "read_committed", len(want), starts={p: start})
        check_eq([v for _, v in got.get(p, [])], want, f"read_committed of {p} from offset {start}")
    log(f"{client.name}: interleaved aborted/committed transactions filtered exactly")


def scenario_ck_interleaved(bootstrap):
    interleaved(CkClient, bootstrap)


def scenario_kp_interleaved(bootstrap):
    interleaved(KpClient, bootstrap)


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
            "ck_interleaved": scenario_ck_interleaved,
            "ck_transactional_input": lambda b: scenario_ck_consume_transform_produce(b, True),
            "kp_commit_abort": scenario_kp_commit_abort,
            "kp_zombie_fenced": scenario_kp_zombie_fenced,
            "kp_consume_transform_produce": scenario_kp_consume_transform_produce,
            "kp_interleaved": scenario_kp_interleaved,
            "kp_transactional_input": lambda b: scenario_kp_consume_transform_produce(b, True),
        }
    )

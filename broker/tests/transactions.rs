//! Transactions end to end with librdkafka (the `rdkafka` crate) against a real kbroker:
//! commits are visible, aborts are invisible to `read_committed` and visible to
//! `read_uncommitted`, a zombie is fenced by a new instance with the same transactional id,
//! consume-transform-produce commits the input offsets inside the transaction, and a broker
//! killed with -9 in the middle of a transaction never leaves it half visible.

mod common;

use std::time::{Duration, Instant};

use common::TestBroker;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

const T: Duration = Duration::from_secs(30);

/// Broker settings: look for timed-out transactions every 500 ms instead of every 10 s.
const BROKER: &[&str] = &["transaction.abort.timed.out.transaction.cleanup.interval.ms=500"];

async fn create_topic(bootstrap: &str, name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    let res = admin
        .create_topics([&topic], &AdminOptions::new())
        .await
        .expect("create topics");
    assert!(res.iter().all(|r| r.is_ok()), "{res:?}");
}

fn txn_producer(bootstrap: &str, transactional_id: &str, timeout_ms: u32) -> FutureProducer {
    let timeout = timeout_ms.to_string();
    let socket_timeout = timeout_ms.min(10_000).to_string();
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("transactional.id", transactional_id)
        .set("transaction.timeout.ms", &timeout)
        .set("message.timeout.ms", &timeout)
        .set("socket.timeout.ms", &socket_timeout)
        .set("linger.ms", "5")
        .create()
        .expect("transactional producer")
}

/// Sends `values` (keyed by themselves) to `topic` and waits for every delivery.
async fn send_all(p: &FutureProducer, topic: &str, values: &[String]) {
    for v in values {
        p.send(FutureRecord::to(topic).key(v).payload(v), T)
            .await
            .unwrap_or_else(|(e, _)| panic!("delivery of {v} failed: {e}"));
    }
}

fn values(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// Everything `topic` holds for a consumer with `isolation` ("read_committed" or
/// "read_uncommitted"), read from the beginning until every partition reports its end.
fn read_all(bootstrap: &str, topic: &str, partitions: i32, isolation: &str) -> Vec<String> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("reader-{}", uuid_like()))
        .set("isolation.level", isolation)
        .set("enable.partition.eof", "true")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let mut got = Vec::new();
    let mut at_end = std::collections::BTreeSet::new();
    let deadline = Instant::now() + T;
    while at_end.len() < partitions as usize {
        assert!(
            Instant::now() < deadline,
            "{topic} ({isolation}) did not reach its end; got {got:?}"
        );
        match c.poll(Duration::from_millis(200)) {
            None => {}
            Some(Ok(m)) => {
                at_end.remove(&m.partition());
                got.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            Some(Err(e)) => panic!("consumer error: {e}"),
        }
    }
    got.sort();
    got
}

fn uuid_like() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{nanos:x}")
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_transactions_are_visible_and_aborted_ones_only_to_read_uncommitted() {
    let broker = TestBroker::start(BROKER);
    let b = broker.bootstrap.clone();
    create_topic(&b, "txn-visibility", 2).await;
    let p = txn_producer(&b, "visibility", 60_000);
    p.init_transactions(T).expect("init_transactions");

    p.begin_transaction().unwrap();
    send_all(&p, "txn-visibility", &values("committed", 10)).await;
    p.commit_transaction(T).expect("commit");

    p.begin_transaction().unwrap();
    send_all(&p, "txn-visibility", &values("aborted", 5)).await;
    p.abort_transaction(T).expect("abort");

    p.begin_transaction().unwrap();
    send_all(&p, "txn-visibility", &values("later", 3)).await;
    p.commit_transaction(T).expect("second commit");

    let committed = read_all(&b, "txn-visibility", 2, "read_committed");
    let expected = sorted([values("committed", 10), values("later", 3)].concat());
    assert_eq!(committed, expected);
    let everything = read_all(&b, "txn-visibility", 2, "read_uncommitted");
    assert_eq!(
        everything,
        sorted(
            [
                values("committed", 10),
                values("aborted", 5),
                values("later", 3)
            ]
            .concat()
        )
    );
    assert!(
        !broker.log().contains("panicked"),
        "broker log:\n{}",
        broker.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zombie_is_fenced_when_a_new_instance_initialises() {
    let broker = TestBroker::start(BROKER);
    let b = broker.bootstrap.clone();
    create_topic(&b, "txn-zombie", 1).await;
    let zombie = txn_producer(&b, "fenced-id", 60_000);
    zombie.init_transactions(T).expect("zombie init");
    zombie.begin_transaction().unwrap();
    send_all(&zombie, "txn-zombie", &values("zombie", 3)).await;

    // A new instance with the same transactional id: its init aborts the zombie's transaction.
    let fresh = txn_producer(&b, "fenced-id", 60_000);
    fresh.init_transactions(T).expect("fresh init");
    let err = zombie
        .commit_transaction(T)
        .expect_err("the zombie's commit must fail");
    let text = err.to_string().to_lowercase();
    assert!(
        text.contains("fenc") || text.contains("epoch"),
        "not a fencing error: {err}"
    );

    fresh.begin_transaction().unwrap();
    send_all(&fresh, "txn-zombie", &values("fresh", 2)).await;
    fresh.commit_transaction(T).expect("fresh commit");

    assert_eq!(
        read_all(&b, "txn-zombie", 1, "read_committed"),
        values("fresh", 2)
    );
    assert!(
        broker.wait_for_log("fenced-id", std::time::Duration::from_secs(5)),
        "the broker log names the transactional id"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_transform_produce_commits_the_input_offsets_in_the_transaction() {
    let broker = TestBroker::start(BROKER);
    let b = broker.bootstrap.clone();
    create_topic(&b, "ctp-input", 2).await;
    create_topic(&b, "ctp-output", 2).await;
    let input = values("in", 40);
    {
        let plain: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &b)
            .create()
            .unwrap();
        send_all(&plain, "ctp-input", &input).await;
    }

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &b)
        .set("group.id", "transformers")
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&["ctp-input"]).unwrap();
    let producer = txn_producer(&b, "transformer-1", 60_000);
    producer.init_transactions(T).unwrap();

    let mut done = 0;
    let deadline = Instant::now() + T;
    while done < input.len() {
        assert!(Instant::now() < deadline, "only {done} inputs transformed");
        // One transaction per poll batch of up to 7 messages.
        let batch = common::poll_batch(&consumer, 7);
        if batch.is_empty() {
            continue;
        }
        producer.begin_transaction().unwrap();
        let out: Vec<String> = batch
            .iter()
            .map(|(_, _, v)| v.replace("in-", "out-"))
            .collect();
        send_all(&producer, "ctp-output", &out).await;
        let offsets = common::next_offsets("ctp-input", &batch);
        let meta = consumer.group_metadata().expect("group metadata");
        producer
            .send_offsets_to_transaction(&offsets, &meta, T)
            .expect("send_offsets_to_transaction");
        producer.commit_transaction(T).expect("commit");
        done += batch.len();
    }
    drop(consumer);

    let output = read_all(&b, "ctp-output", 2, "read_committed");
    let expected = sorted(input.iter().map(|v| v.replace("in-", "out-")).collect());
    assert_eq!(output, expected, "output holds each input exactly once");

    // The group's committed offsets are the end of the input.
    let check: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &b)
        .set("group.id", "transformers")
        .set("isolation.level", "read_committed")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition("ctp-input", 0);
    tpl.add_partition("ctp-input", 1);
    let committed = check.committed_offsets(tpl, T).unwrap();
    let mut total = 0;
    for e in committed.elements() {
        let (_, high) = check
            .fetch_watermarks("ctp-input", e.partition(), T)
            .unwrap();
        assert_eq!(
            e.offset(),
            Offset::Offset(high),
            "partition {}",
            e.partition()
        );
        total += high;
    }
    assert_eq!(total, input.len() as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_open_at_kill9_is_aborted_after_restart_never_half_visible() {
    let mut broker = TestBroker::start(BROKER);
    let b = broker.bootstrap.clone();
    create_topic(&b, "txn-crash", 2).await;
    {
        let p = txn_producer(&b, "crashing", 60_000);
        p.init_transactions(T).unwrap();
        p.begin_transaction().unwrap();
        send_all(&p, "txn-crash", &values("committed", 4)).await;
        p.commit_transaction(T).unwrap();
        // An open transaction whose records are in the log when the broker dies.
        let short = txn_producer(&b, "open-at-crash", 3_000);
        short.init_transactions(T).unwrap();
        short.begin_transaction().unwrap();
        send_all(&short, "txn-crash", &values("open", 6)).await;
        broker.kill9();
        // The clients die with the broker (never commit).
        drop(short);
        drop(p);
    }
    broker.restart();
    let b = broker.bootstrap.clone();
    // The open transaction times out (3 s) and is aborted; read_committed then reads past it.
    let deadline = Instant::now() + T;
    loop {
        let committed = read_all(&b, "txn-crash", 2, "read_committed");
        assert!(
            !committed.iter().any(|v| v.starts_with("open")),
            "records of the open transaction became visible: {committed:?}"
        );
        let log = broker.log();
        if log.contains("transaction timed out") && committed == values("committed", 4) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the open transaction was not aborted; broker log:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(
        read_all(&b, "txn-crash", 2, "read_uncommitted").len(),
        10,
        "aborted records stay in the log for read_uncommitted"
    );
    // The transactional id works again after the restart.
    let again = txn_producer(&b, "open-at-crash", 3_000);
    again.init_transactions(T).unwrap();
    again.begin_transaction().unwrap();
    send_all(&again, "txn-crash", &values("after", 2)).await;
    again.commit_transaction(T).unwrap();
    assert_eq!(
        read_all(&b, "txn-crash", 2, "read_committed"),
        sorted([values("after", 2), values("committed", 4)].concat())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_acknowledged_before_kill9_is_visible_after_restart() {
    let mut broker = TestBroker::start(BROKER);
    let b = broker.bootstrap.clone();
    create_topic(&b, "txn-durable", 1).await;
    let p = txn_producer(&b, "durable", 60_000);
    p.init_transactions(T).unwrap();
    p.begin_transaction().unwrap();
    send_all(&p, "txn-durable", &values("kept", 5)).await;
    p.commit_transaction(T).unwrap();
    broker.kill9();
    drop(p);
    broker.restart();
    let b = broker.bootstrap.clone();
    assert_eq!(
        read_all(&b, "txn-durable", 1, "read_committed"),
        values("kept", 5)
    );
    // The id was replayed: a new instance gets a fresh epoch and can commit.
    let p = txn_producer(&b, "durable", 60_000);
    p.init_transactions(T).unwrap();
    p.begin_transaction().unwrap();
    send_all(&p, "txn-durable", &values("more", 1)).await;
    p.commit_transaction(T).unwrap();
    assert_eq!(read_all(&b, "txn-durable", 1, "read_committed").len(), 6);
}

/// Every advertised version of the transaction APIs over the wire, with Kafka's error codes.
mod wire {
    use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
    use kafka_protocol::messages::txn_offset_commit_request::{
        TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
    };
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::StrBytes;

    use super::common::wire::Wire;
    use super::common::TestBroker;

    fn s(v: &str) -> StrBytes {
        StrBytes::from_string(v.to_owned())
    }

    fn init(w: &mut Wire, v: i16, txn: &str, timeout_ms: i32) -> InitProducerIdResponse {
        let mut req = InitProducerIdRequest::default();
        req.transactional_id = Some(TransactionalId(s(txn)));
        req.transaction_timeout_ms = timeout_ms;
        req.producer_id = ProducerId(-1);
        req.producer_epoch = -1;
        w.call(ApiKey::InitProducerId, v, &req)
    }

    fn add(
        w: &mut Wire,
        v: i16,
        txn: &str,
        pid: i64,
        epoch: i16,
        parts: &[(&str, i32)],
    ) -> Vec<i16> {
        let mut req = AddPartitionsToTxnRequest::default();
        req.v3_and_below_transactional_id = TransactionalId(s(txn));
        req.v3_and_below_producer_id = ProducerId(pid);
        req.v3_and_below_producer_epoch = epoch;
        for (t, p) in parts {
            let mut topic = AddPartitionsToTxnTopic::default();
            topic.name = TopicName(s(t));
            topic.partitions = vec![*p];
            req.v3_and_below_topics.push(topic);
        }
        let resp: AddPartitionsToTxnResponse = w.call(ApiKey::AddPartitionsToTxn, v, &req);
        resp.results_by_topic_v3_and_below
            .iter()
            .flat_map(|t| {
                t.results_by_partition
                    .iter()
                    .map(|p| p.partition_error_code)
            })
            .collect()
    }

    fn end(w: &mut Wire, v: i16, txn: &str, pid: i64, epoch: i16, commit: bool) -> i16 {
        let mut req = EndTxnRequest::default();
        req.transactional_id = TransactionalId(s(txn));
        req.producer_id = ProducerId(pid);
        req.producer_epoch = epoch;
        req.committed = commit;
        let resp: EndTxnResponse = w.call(ApiKey::EndTxn, v, &req);
        resp.error_code
    }

    fn add_offsets(w: &mut Wire, v: i16, txn: &str, pid: i64, epoch: i16, group: &str) -> i16 {
        let mut req = AddOffsetsToTxnRequest::default();
        req.transactional_id = TransactionalId(s(txn));
        req.producer_id = ProducerId(pid);
        req.producer_epoch = epoch;
        req.group_id = GroupId(s(group));
        let resp: AddOffsetsToTxnResponse = w.call(ApiKey::AddOffsetsToTxn, v, &req);
        resp.error_code
    }

    fn txn_commit(w: &mut Wire, v: i16, txn: &str, pid: i64, epoch: i16, group: &str) -> i16 {
        let mut req = TxnOffsetCommitRequest::default();
        req.transactional_id = TransactionalId(s(txn));
        req.group_id = GroupId(s(group));
        req.producer_id = ProducerId(pid);
        req.producer_epoch = epoch;
        req.generation_id = -1;
        let mut p = TxnOffsetCommitRequestPartition::default();
        p.partition_index = 0;
        p.committed_offset = 1;
        p.committed_leader_epoch = -1;
        let mut t = TxnOffsetCommitRequestTopic::default();
        t.name = TopicName(s("wire-txn"));
        t.partitions.push(p);
        req.topics.push(t);
        let resp: TxnOffsetCommitResponse = w.call(ApiKey::TxnOffsetCommit, v, &req);
        resp.topics[0].partitions[0].error_code
    }

    #[test]
    fn every_advertised_transaction_api_version_round_trips() {
        let broker = TestBroker::start(&[]);
        let mut w = Wire::connect(&broker.bootstrap);
        let mut md = MetadataRequest::default();
        let mut topic = metadata_request::MetadataRequestTopic::default();
        topic.name = Some(TopicName(s("wire-txn")));
        md.topics = Some(vec![topic]);
        md.allow_auto_topic_creation = true;
        let _: MetadataResponse = w.call(ApiKey::Metadata, 9, &md);

        // transaction.max.timeout.ms defaults to 15 minutes.
        assert_eq!(init(&mut w, 4, "too-long", 900_001).error_code, 50);
        for v in 0..=3i16 {
            let txn = format!("wire-{v}");
            let r = init(&mut w, v.min(4), &txn, 60_000);
            assert_eq!(r.error_code, 0, "InitProducerId v{v}");
            let (pid, epoch) = (r.producer_id.0, r.producer_epoch);
            // An unknown partition fails alone; the others are not attempted.
            assert_eq!(
                add(
                    &mut w,
                    v,
                    &txn,
                    pid,
                    epoch,
                    &[("wire-txn", 0), ("no-such-topic", 0)]
                ),
                vec![55, 3],
                "AddPartitionsToTxn v{v}"
            );
            assert_eq!(
                add(&mut w, v, &txn, pid, epoch, &[("wire-txn", 0)]),
                vec![0]
            );
            assert_eq!(add_offsets(&mut w, v, &txn, pid, epoch, "wire-group"), 0);
            assert_eq!(txn_commit(&mut w, v, &txn, pid, epoch, "wire-group"), 0);
            assert_eq!(end(&mut w, v, &txn, pid, epoch, true), 0, "EndTxn v{v}");
            // Retried commit: success; abort after commit: INVALID_TXN_STATE.
            assert_eq!(end(&mut w, v, &txn, pid, epoch, true), 0);
            assert_eq!(end(&mut w, v, &txn, pid, epoch, false), 48);
            // A wrong producer id: INVALID_PRODUCER_ID_MAPPING.
            assert_eq!(end(&mut w, v, &txn, pid + 1000, epoch, true), 49);
            // A second instance fences the first: PRODUCER_FENCED from v2 (KIP-588),
            // INVALID_PRODUCER_EPOCH before.
            let r2 = init(&mut w, v.min(4), &txn, 60_000);
            assert_eq!((r2.error_code, r2.producer_epoch), (0, epoch + 1));
            let fenced = if v >= 2 { 90 } else { 47 };
            assert_eq!(
                add(&mut w, v, &txn, pid, epoch, &[("wire-txn", 0)]),
                vec![fenced]
            );
            assert_eq!(
                add_offsets(&mut w, v, &txn, pid, epoch, "wire-group"),
                fenced
            );
            assert_eq!(end(&mut w, v, &txn, pid, epoch, true), fenced);
            let fenced_commit = if v >= 3 { 90 } else { 47 };
            assert_eq!(
                txn_commit(&mut w, v, &txn, pid, epoch, "wire-group"),
                fenced_commit
            );
        }
        // InitProducerId v4 on an id with an open transaction: CONCURRENT_TRANSACTIONS while
        // the old one is aborted, then the epoch bumped twice.
        let r = init(&mut w, 4, "busy", 60_000);
        let (pid, epoch) = (r.producer_id.0, r.producer_epoch);
        assert_eq!(
            add(&mut w, 3, "busy", pid, epoch, &[("wire-txn", 0)]),
            vec![0]
        );
        assert_eq!(init(&mut w, 4, "busy", 60_000).error_code, 51);
        let r = init(&mut w, 4, "busy", 60_000);
        assert_eq!((r.error_code, r.producer_epoch), (0, epoch + 2));
        assert!(
            broker.wait_for_log("busy", std::time::Duration::from_secs(5)),
            "errors name the transactional id"
        );
    }
}

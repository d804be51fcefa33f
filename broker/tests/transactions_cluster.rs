//! Transactions on a replicated 3-broker kbroker cluster, driven by librdkafka (`rdkafka`):
//! the transaction coordinator is the leader of the transactional id's `__transaction_state`
//! partition, markers reach partitions led by every broker, and the coordinator's broker can be
//! killed with -9 mid-run without a committed transaction going missing or an aborted one
//! becoming visible.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::cluster::TestCluster;
use kafka_protocol::messages::{ApiKey, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

const T: Duration = Duration::from_secs(60);

/// Every broker: timed-out transactions looked for every 500 ms, no rebalance delay.
const BROKERS: &[&str] = &[
    "transaction.abort.timed.out.transaction.cleanup.interval.ms=500",
    "group.initial.rebalance.delay.ms=0",
];

/// Key types of FindCoordinator.
const GROUP: i8 = 0;
const TRANSACTION: i8 = 1;

/// The broker FindCoordinator names for `key` (retried while the internal topic is created).
fn coordinator_of(cluster: &TestCluster, key_type: i8, key: &str) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for addr in cluster.bootstrap().split(',') {
            let Ok(_) = std::net::TcpStream::connect(addr) else {
                continue;
            };
            let mut wire = common::wire::Wire::connect(addr);
            let mut req = FindCoordinatorRequest::default();
            req.key = StrBytes::from_string(key.to_owned());
            req.key_type = key_type;
            let resp: FindCoordinatorResponse = wire.call(ApiKey::FindCoordinator, 2, &req);
            if resp.error_code == 0 {
                return resp.node_id.0;
            }
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no coordinator for {key} (key type {key_type})\n{}",
            cluster.log_tails(30)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn txn_producer(bootstrap: &str, transactional_id: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("transactional.id", transactional_id)
        .set("transaction.timeout.ms", "60000")
        .set("message.timeout.ms", "60000")
        .set("socket.timeout.ms", "10000")
        .set("reconnect.backoff.max.ms", "1000")
        .set("linger.ms", "5")
        .create()
        .expect("transactional producer")
}

/// Everything `topic` holds for a consumer with `isolation`, from the beginning until every
/// partition reports its end.
fn read_all(bootstrap: &str, topic: &str, partitions: i32, isolation: &str) -> Vec<String> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", format!("reader-{isolation}"))
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
    let mut at_end = BTreeSet::new();
    let deadline = Instant::now() + T;
    while at_end.len() < partitions as usize {
        assert!(
            Instant::now() < deadline,
            "{topic} ({isolation}) did not reach its end; got {} records",
            got.len()
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

/// A topic of 3 partitions, RF 3, each led by a different broker.
fn spread_topic(cluster: &TestCluster, name: &str) {
    cluster.create_topic(name, 3, 3, &[("min.insync.replicas", "2")]);
    let parts = cluster.wait_for(name, Duration::from_secs(15), "ISRs of 3", |ps| {
        ps.iter().all(|p| p.isr.len() == 3 && p.leader > 0)
    });
    let leaders: BTreeSet<i32> = parts.iter().map(|p| p.leader).collect();
    assert_eq!(leaders.len(), 3, "leaders on different brokers: {parts:?}");
}

/// Sends one record per partition of `topic` (values `<txn>-<p>`) and waits for them.
fn send_to_each_partition(
    rt: &tokio::runtime::Runtime,
    p: &FutureProducer,
    topic: &str,
    txn: &str,
) -> Vec<String> {
    let values: Vec<String> = (0..3).map(|i| format!("{txn}-{i}")).collect();
    let sends: Vec<_> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            p.send(
                FutureRecord::to(topic)
                    .partition(i as i32)
                    .key(v)
                    .payload(v),
                T,
            )
        })
        .collect();
    for (s, v) in sends.into_iter().zip(&values) {
        rt.block_on(s)
            .unwrap_or_else(|(e, _)| panic!("delivery of {v} failed: {e}"));
    }
    values
}

#[test]
fn transactions_across_leaders_on_every_broker_commit_and_abort_atomically() {
    let cluster = TestCluster::start(3, &[], BROKERS);
    spread_topic(&cluster, "spread");
    let b = cluster.bootstrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let producer = txn_producer(&b, "cluster-txn");
    producer.init_transactions(T).expect("init_transactions");
    let (mut committed, mut aborted) = (Vec::new(), Vec::new());
    for t in 0..12 {
        producer.begin_transaction().unwrap();
        let values = send_to_each_partition(&rt, &producer, "spread", &format!("t{t:02}"));
        if t % 3 == 2 {
            producer.abort_transaction(T).expect("abort");
            aborted.extend(values);
        } else {
            producer.commit_transaction(T).expect("commit");
            committed.extend(values);
        }
    }
    committed.sort();
    let mut all: Vec<String> = committed.iter().chain(&aborted).cloned().collect();
    all.sort();
    assert_eq!(read_all(&b, "spread", 3, "read_committed"), committed);
    assert_eq!(read_all(&b, "spread", 3, "read_uncommitted"), all);
}

#[test]
fn killing_the_transaction_coordinators_broker_loses_no_commit_and_shows_no_abort() {
    let mut cluster = TestCluster::start(3, &[], BROKERS);
    spread_topic(&cluster, "survive");
    let b = cluster.bootstrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let id = "survivor-txn";
    let producer = txn_producer(&b, id);
    producer.init_transactions(T).expect("init_transactions");
    let victim = coordinator_of(&cluster, TRANSACTION, id);
    let (mut committed, mut aborted) = (Vec::new(), Vec::new());
    let mut killed_at: Option<Instant> = None;
    let mut given_up = 0;
    for t in 0..24 {
        producer.begin_transaction().unwrap();
        let values = send_to_each_partition(&rt, &producer, "survive", &format!("t{t:02}"));
        if t == 8 {
            // In the middle of a transaction: its records are written, its end is not.
            cluster.kill9(victim);
            killed_at = Some(Instant::now());
        }
        if t == 12 {
            let successor = coordinator_of(&cluster, TRANSACTION, id);
            assert_ne!(
                successor, victim,
                "the coordinator moved off the killed broker"
            );
        }
        if t == 16 {
            cluster.restart(victim);
        }
        let commit = t % 4 != 3;
        let outcome = if commit {
            producer.commit_transaction(T)
        } else {
            producer.abort_transaction(T)
        };
        match outcome {
            Ok(()) if commit => committed.extend(values),
            Ok(()) => aborted.extend(values),
            Err(KafkaError::Transaction(e)) if e.txn_requires_abort() => {
                // The client gave up on this one: it aborts, and the test counts it aborted.
                producer
                    .abort_transaction(T)
                    .expect("abort after a failed commit");
                aborted.extend(values);
                given_up += 1;
            }
            Err(e) => panic!(
                "transaction {t} failed for good: {e}\n{}",
                cluster.log_tails(40)
            ),
        }
    }
    let killed_at = killed_at.expect("the coordinator was killed");
    eprintln!(
        "coordinator {victim} killed; {} records committed, {} aborted ({} given up by the client), {:?} since the kill",
        committed.len(),
        aborted.len(),
        given_up,
        killed_at.elapsed()
    );
    let now_coordinator = coordinator_of(&cluster, TRANSACTION, id);
    assert!(now_coordinator > 0, "a coordinator after the kill");
    committed.sort();
    assert!(
        committed.len() >= 15 * 3,
        "too few commits: {}",
        committed.len()
    );
    let seen = read_all(&b, "survive", 3, "read_committed");
    let duplicates: Vec<&String> = seen
        .windows(2)
        .filter(|w| w[0] == w[1])
        .map(|w| &w[0])
        .collect();
    assert!(duplicates.is_empty(), "seen twice: {duplicates:?}");
    let visible_aborts: Vec<&String> = seen.iter().filter(|v| aborted.contains(v)).collect();
    assert!(
        visible_aborts.is_empty(),
        "aborted but visible: {visible_aborts:?}"
    );
    assert_eq!(
        seen, committed,
        "read_committed sees exactly the committed transactions"
    );
}

#[test]
fn offsets_sent_to_a_transaction_commit_with_the_group_on_another_broker() {
    let cluster = TestCluster::start(3, &[], BROKERS);
    spread_topic(&cluster, "ctp-in");
    spread_topic(&cluster, "ctp-out");
    let b = cluster.bootstrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let txn_id = "ctp-txn";
    // The producer first: its coordinator exists once init_transactions returns.
    let producer = txn_producer(&b, txn_id);
    producer.init_transactions(T).expect("init_transactions");
    let txn_coordinator = coordinator_of(&cluster, TRANSACTION, txn_id);
    let group = (0..)
        .map(|i| format!("ctp-group-{i}"))
        .find(|g| coordinator_of(&cluster, GROUP, g) != txn_coordinator)
        .unwrap();
    let input: Vec<String> = (0..45).map(|i| format!("in-{i:02}")).collect();
    {
        let plain: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &b)
            .set("acks", "all")
            .create()
            .unwrap();
        for v in &input {
            rt.block_on(plain.send(FutureRecord::to("ctp-in").key(v).payload(v), T))
                .unwrap_or_else(|(e, _)| panic!("{v}: {e}"));
        }
    }
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &b)
        .set("group.id", &group)
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&["ctp-in"]).unwrap();
    let mut done = 0;
    let deadline = Instant::now() + T;
    while done < input.len() {
        assert!(Instant::now() < deadline, "only {done} inputs transformed");
        let batch = common::poll_batch(&consumer, 8);
        if batch.is_empty() {
            continue;
        }
        producer.begin_transaction().unwrap();
        for (_, _, v) in &batch {
            let out = v.replace("in-", "out-");
            rt.block_on(producer.send(FutureRecord::to("ctp-out").key(&out).payload(&out), T))
                .unwrap_or_else(|(e, _)| panic!("{out}: {e}"));
        }
        let offsets = common::next_offsets("ctp-in", &batch);
        let meta = consumer.group_metadata().expect("group metadata");
        producer
            .send_offsets_to_transaction(&offsets, &meta, T)
            .expect("send_offsets_to_transaction");
        producer.commit_transaction(T).expect("commit");
        done += batch.len();
    }
    drop(consumer);
    let expected: Vec<String> = input.iter().map(|v| v.replace("in-", "out-")).collect();
    assert_eq!(read_all(&b, "ctp-out", 3, "read_committed"), expected);
    // The group's committed offsets (kept by another broker than the transaction's
    // coordinator) are the end of every input partition.
    let check: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &b)
        .set("group.id", &group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition("ctp-in", p);
    }
    let committed = check.committed_offsets(tpl, T).unwrap();
    let mut total = 0;
    for e in committed.elements() {
        let (_, high) = check.fetch_watermarks("ctp-in", e.partition(), T).unwrap();
        assert_eq!(e.offset(), Offset::Offset(high), "ctp-in-{}", e.partition());
        total += high;
    }
    assert_eq!(total, input.len() as i64);
}

//! Replicated kbroker clusters, driven by librdkafka through `rdkafka`: real processes, real
//! kill -9, SIGSTOP and restarts.
//!
//! What is proven here is what a user of replication relies on: acks=all writes survive the
//! leader's death again and again; min.insync.replicas is enforced for acks=all and not for
//! acks=1; a stalled follower leaves the ISR and comes back; a returning old leader gives up the
//! tail that the new leader never had; replicas are spread across racks and leaders across
//! brokers.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cluster::TestCluster;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, ThreadedProducer};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::TopicPartitionList;

fn producer(bootstrap: &str, extra: &[(&str, &str)]) -> FutureProducer {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("linger.ms", "1")
        .set("message.timeout.ms", "30000");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c.create().expect("producer")
}

/// Reads partition `p` of `topic` from the beginning up to its end, as (key, value) strings.
fn read_all(bootstrap: &str, topic: &str, p: i32) -> Vec<(String, String)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "replication-test-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let (_, high) = consumer
        .fetch_watermarks(topic, p, Duration::from_secs(10))
        .expect("watermarks");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning)
        .expect("tpl");
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut next = 0;
    while next < high {
        assert!(
            Instant::now() < deadline,
            "read {next} of {high} offsets in 60 s"
        );
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            next = m.offset() + 1;
            let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
            let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned();
            out.push((key, value));
        }
    }
    out
}

#[test]
fn replicas_spread_across_racks_and_leaders_across_brokers() {
    let cluster = TestCluster::start(3, &["a", "a", "b"], &[]);
    cluster.create_topic("spread", 6, 2, &[]);
    let parts = cluster.wait_for("spread", Duration::from_secs(10), "all ISRs full", |ps| {
        ps.len() == 6 && ps.iter().all(|p| p.isr.len() == 2 && p.leader > 0)
    });
    for (i, p) in parts.iter().enumerate() {
        let distinct: BTreeSet<i32> = p.replicas.iter().copied().collect();
        assert_eq!(distinct.len(), 2, "partition {i}: {p:?}");
        // Brokers 1 and 2 are in rack a, broker 3 alone in rack b: RF 2 spanning both racks
        // means broker 3 holds a replica of every partition.
        assert!(
            p.replicas.contains(&3),
            "partition {i} not on rack b: {p:?}"
        );
        assert_eq!(
            p.leader, p.replicas[0],
            "partition {i}: leader is not the preferred replica"
        );
    }
    cluster.create_topic("balanced", 6, 3, &[]);
    let parts = cluster.wait_for("balanced", Duration::from_secs(10), "leaders", |ps| {
        ps.len() == 6 && ps.iter().all(|p| p.leader > 0 && p.isr.len() == 3)
    });
    for id in 1..=3 {
        let led = parts.iter().filter(|p| p.leader == id).count();
        assert_eq!(led, 2, "broker {id} leads {led} of 6 partitions: {parts:?}");
    }
}

#[test]
fn acks_all_writes_survive_repeated_leader_kills() {
    let mut cluster = TestCluster::start(3, &[], &["min.insync.replicas=2"]);
    cluster.create_topic("durable", 1, 3, &[]);
    cluster.wait_for("durable", Duration::from_secs(10), "ISR of 3", |ps| {
        ps[0].isr.len() == 3
    });
    let bootstrap = cluster.bootstrap();
    let acked: Arc<Mutex<BTreeSet<u64>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (acked, stop, bootstrap) = (acked.clone(), stop.clone(), bootstrap.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().expect("runtime");
            rt.block_on(async move {
                let p = producer(
                    &bootstrap,
                    &[("acks", "all"), ("enable.idempotence", "true")],
                );
                let mut seq = 0u64;
                let mut failed = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    // Windows of 50 in flight: steady load without unbounded queues.
                    let mut window = Vec::new();
                    for _ in 0..50 {
                        let key = seq.to_string();
                        let f = p
                            .send_result(FutureRecord::to("durable").key(&key).payload(&key))
                            .map_err(|(e, _)| e);
                        window.push((seq, f));
                        seq += 1;
                    }
                    for (id, f) in window {
                        let Ok(f) = f else {
                            failed += 1;
                            continue;
                        };
                        match f.await {
                            Ok(Ok(_)) => {
                                acked.lock().unwrap().insert(id);
                            }
                            _ => failed += 1,
                        }
                    }
                }
                let _ = p.flush(Duration::from_secs(30));
                (seq, failed)
            })
        })
    };
    let kills = 12;
    let started = Instant::now();
    for k in 0..kills {
        if started.elapsed() > Duration::from_secs(150) {
            panic!("only {k} of {kills} kills in 150 s");
        }
        let leader = cluster.wait_for("durable", Duration::from_secs(15), "a leader", |ps| {
            ps[0].leader > 0
        })[0]
            .leader;
        let before = acked.lock().unwrap().len();
        cluster.kill9(leader);
        // Writes continue on the new leader while the old one is down.
        let deadline = Instant::now() + Duration::from_secs(15);
        while acked.lock().unwrap().len() < before + 100 {
            assert!(
                Instant::now() < deadline,
                "kill {k} (broker {leader}): writes did not resume within 15 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        cluster.restart(leader);
        cluster.wait_for("durable", Duration::from_secs(30), "ISR back to 3", |ps| {
            ps[0].isr.len() == 3
        });
    }
    stop.store(true, Ordering::Relaxed);
    let (sent, failed) = writer.join().expect("writer");
    let acked = acked.lock().unwrap().clone();
    let stored = read_all(&bootstrap, "durable", 0);
    let mut seen = BTreeSet::new();
    let mut dupes = 0;
    for (k, _) in &stored {
        if !seen.insert(k.parse::<u64>().expect("numeric key")) {
            dupes += 1;
        }
    }
    let lost: Vec<u64> = acked.difference(&seen).copied().take(10).collect();
    eprintln!(
        "{kills} leader kills: sent {sent}, acked {}, failed {failed}, stored {}, duplicates {dupes}",
        acked.len(),
        stored.len()
    );
    assert!(acked.len() > 1000, "too few acked writes to mean anything");
    assert!(lost.is_empty(), "acked acks=all writes lost, e.g. {lost:?}");
    assert_eq!(dupes, 0, "idempotent producer's writes duplicated");
}

#[test]
fn acks_all_is_refused_below_min_insync_replicas_while_acks_1_goes_on() {
    let mut cluster = TestCluster::start(3, &[], &[]);
    cluster.create_topic("guarded", 1, 3, &[("min.insync.replicas", "3")]);
    let p0 = cluster.wait_for("guarded", Duration::from_secs(10), "ISR of 3", |ps| {
        ps[0].isr.len() == 3
    })[0]
        .clone();
    let bootstrap = cluster.bootstrap();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let send = |acks: &str, value: &str| {
        let p = producer(
            &bootstrap,
            &[
                ("acks", acks),
                ("retries", "0"),
                ("enable.idempotence", "false"),
            ],
        );
        rt.block_on(p.send(
            FutureRecord::to("guarded").key("k").payload(value),
            Duration::from_secs(5),
        ))
        .map(|_| ())
        .map_err(|(e, _)| e)
    };
    send("all", "all-in-sync").expect("acks=all with the full ISR");
    let follower = *p0
        .replicas
        .iter()
        .find(|r| **r != p0.leader)
        .expect("a follower");
    cluster.kill9(follower);
    cluster.wait_for("guarded", Duration::from_secs(10), "ISR shrunk", |ps| {
        ps[0].isr.len() == 2
    });
    match send("all", "too-few") {
        Err(KafkaError::MessageProduction(RDKafkaErrorCode::NotEnoughReplicas)) => {}
        other => panic!("acks=all with ISR 2 < min.insync 3 gave {other:?}"),
    }
    send("1", "acks-1").expect("acks=1 does not need min.insync replicas");
    let stored: Vec<String> = read_all(&bootstrap, "guarded", 0)
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(
        stored,
        ["all-in-sync", "acks-1"],
        "a refused write was stored"
    );
}

#[test]
fn paused_follower_leaves_the_isr_and_comes_back() {
    let cluster = TestCluster::start(
        3,
        &[],
        &[
            "replica.lag.time.max.ms=1500",
            // Long enough that the controller does not fence the paused broker: this is about
            // the leader's view of its follower.
            "broker.session.timeout.ms=60000",
        ],
    );
    cluster.create_topic("lagging", 1, 3, &[]);
    let p0 = cluster.wait_for("lagging", Duration::from_secs(10), "ISR of 3", |ps| {
        ps[0].isr.len() == 3
    })[0]
        .clone();
    let follower = *p0
        .replicas
        .iter()
        .rev()
        .find(|r| **r != p0.leader)
        .expect("follower");
    cluster.brokers[(follower - 1) as usize].signal("STOP");
    let bootstrap = cluster.bootstrap();
    let p = producer(&bootstrap, &[("acks", "1")]);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    for i in 0..20 {
        rt.block_on(
            p.send(
                FutureRecord::to("lagging")
                    .key("k")
                    .payload(&format!("{i}")),
                Duration::from_secs(5),
            ),
        )
        .expect("acks=1 while a follower is paused");
    }
    let shrunk = cluster.wait_for("lagging", Duration::from_secs(15), "ISR shrink", |ps| {
        !ps[0].isr.contains(&follower)
    });
    assert_eq!(shrunk[0].isr.len(), 2, "{shrunk:?}");
    cluster.brokers[(follower - 1) as usize].signal("CONT");
    cluster.wait_for("lagging", Duration::from_secs(20), "ISR expand", |ps| {
        ps[0].isr.contains(&follower) && ps[0].isr.len() == 3
    });
}

/// After a broker comes back from a kill, the controller gives its partitions back to it (Kafka's
/// automatic leader rebalancing, here checked every second instead of every 5 minutes), so
/// leadership does not stay piled up on the brokers that stayed up.
#[test]
fn leadership_returns_to_preferred_replicas_after_a_broker_comes_back() {
    let mut cluster = TestCluster::start(3, &[], &["leader.imbalance.check.interval.seconds=1"]);
    cluster.create_topic("rebalanced", 3, 3, &[]);
    let preferred = |ps: &[common::cluster::PartitionMeta]| {
        ps.len() == 3
            && ps
                .iter()
                .all(|p| p.leader == p.replicas[0] && p.isr.len() == 3)
    };
    let parts = cluster.wait_for(
        "rebalanced",
        Duration::from_secs(10),
        "preferred",
        preferred,
    );
    let victim = parts[0].leader;
    cluster.kill9(victim);
    cluster.wait_for("rebalanced", Duration::from_secs(20), "fail-over", |ps| {
        ps.iter().all(|p| p.leader > 0 && p.leader != victim)
    });
    cluster.restart(victim);
    let back = cluster.wait_for(
        "rebalanced",
        Duration::from_secs(30),
        "leadership back on the preferred replicas",
        preferred,
    );
    let leaders: BTreeSet<i32> = back.iter().map(|p| p.leader).collect();
    assert_eq!(
        leaders.len(),
        3,
        "one partition led by each broker: {back:?}"
    );
}

/// A 3-broker cluster with one topic of one partition at RF 3 whose followers may be paused for
/// the whole test without leaving the ISR or being fenced, so the leader's high watermark stays
/// where it is while they are. Returns the cluster, the leader's address and the followers.
fn cluster_with_pausable_followers(topic: &str) -> (TestCluster, String, Vec<i32>) {
    let cluster = TestCluster::start(
        3,
        &[],
        &[
            "replica.lag.time.max.ms=60000",
            "broker.session.timeout.ms=60000",
        ],
    );
    cluster.create_topic(topic, 1, 3, &[]);
    let p0 = cluster.wait_for(topic, Duration::from_secs(10), "ISR of 3", |ps| {
        ps[0].isr.len() == 3
    })[0]
        .clone();
    cluster.wait_until_served(topic, 1);
    let followers = p0
        .replicas
        .iter()
        .copied()
        .filter(|r| *r != p0.leader)
        .collect();
    let leader = cluster.brokers[(p0.leader - 1) as usize].bootstrap.clone();
    (cluster, leader, followers)
}

/// Sends `signal` ("STOP" or "CONT") to each of `brokers`.
fn signal_all(cluster: &TestCluster, brokers: &[i32], signal: &str) {
    for b in brokers {
        cluster.brokers[(*b - 1) as usize].signal(signal);
    }
}

/// A consumer's Fetch v12 of partition 0 of `topic` at `offset` from the broker at `addr`,
/// without waiting: (error code, high watermark, record bytes).
fn consumer_fetch(addr: &str, topic: &str, offset: i64) -> (i16, i64, usize) {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{ApiKey, FetchRequest, FetchResponse, TopicName};
    use kafka_protocol::protocol::StrBytes;
    let mut part = FetchPartition::default();
    part.partition = 0;
    part.fetch_offset = offset;
    part.partition_max_bytes = 1 << 20;
    let mut t = FetchTopic::default();
    t.topic = TopicName(StrBytes::from_string(topic.to_owned()));
    t.partitions = vec![part];
    let mut req = FetchRequest::default();
    req.replica_id = (-1).into();
    req.max_wait_ms = 0;
    req.max_bytes = 1 << 20;
    req.topics = vec![t];
    let resp: FetchResponse = common::wire::Wire::connect(addr).call(ApiKey::Fetch, 12, &req);
    let pd = &resp.responses[0].partitions[0];
    let bytes = pd.records.as_ref().map_or(0, |r| r.len());
    (pd.error_code, pd.high_watermark, bytes)
}

/// A consumer fetching between the leader's high watermark and its log end: the state right
/// after a fail-over, when the consumer has read up to the old leader's high watermark and the
/// new leader has not yet learned it. Kafka answers with no records (the consumer waits); an
/// OFFSET_OUT_OF_RANGE would send the consumer to `auto.offset.reset` and re-read (or skip) the
/// partition.
#[test]
fn a_fetch_past_the_high_watermark_but_within_the_log_waits_instead_of_out_of_range() {
    use kafka_protocol::error::ResponseError;

    let (cluster, leader, followers) = cluster_with_pausable_followers("ahead");
    signal_all(&cluster, &followers, "STOP");
    let p = producer(&cluster.bootstrap(), &[("acks", "1")]);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    for i in 0..5 {
        rt.block_on(p.send(
            FutureRecord::to("ahead").key("k").payload(&format!("{i}")),
            Duration::from_secs(5),
        ))
        .expect("acks=1 with the followers paused");
    }
    let (code, hw, bytes) = consumer_fetch(&leader, "ahead", 3);
    let (past_end, _, _) = consumer_fetch(&leader, "ahead", 6);
    signal_all(&cluster, &followers, "CONT");
    assert!(
        hw < 3,
        "the high watermark moved to {hw} with both followers paused"
    );
    assert_eq!(
        (code, bytes),
        (0, 0),
        "offset 3 is in the log (end 5) but past the high watermark {hw}: no error, no records"
    );
    assert_eq!(
        past_end,
        ResponseError::OffsetOutOfRange.code(),
        "offset 6 is past the log end (5)"
    );
}

/// Produce requests on one connection are pipelined: while an acks=all request waits for its
/// replication, the next ones are appended already, yet every response comes back in request
/// order (Kafka's guarantee), a later request's response never overtaking an earlier one.
#[test]
fn pipelined_produce_requests_are_appended_at_once_and_answered_in_order() {
    use kafka_protocol::error::ResponseError;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{
        ApiKey, MetadataRequest, MetadataResponse, ProduceRequest, ProduceResponse, TopicName,
    };
    use kafka_protocol::protocol::StrBytes;

    let (cluster, leader, followers) = cluster_with_pausable_followers("pipelined");
    let produce = |acks: i16, value: &[u8]| {
        let mut pd = PartitionProduceData::default();
        pd.index = 0;
        pd.records = Some(kbroker::log::build_batch(
            &[(None, Some(value))],
            1_700_000_000_000,
            -1,
            -1,
            -1,
            false,
            false,
        ));
        let mut td = TopicProduceData::default();
        td.name = TopicName(StrBytes::from_static_str("pipelined"));
        td.partition_data.push(pd);
        let mut req = ProduceRequest::default();
        req.acks = acks;
        req.timeout_ms = 20_000;
        req.topic_data.push(td);
        req
    };
    // Whether `offset` is within the leader's log (a consumer fetch there is not out of range).
    let in_log = |offset: i64| {
        consumer_fetch(&leader, "pipelined", offset).0 != ResponseError::OffsetOutOfRange.code()
    };

    signal_all(&cluster, &followers, "STOP");
    let mut w = common::wire::Wire::connect(&leader);
    let first = w.send(ApiKey::Produce, 7, &produce(-1, b"first"));
    let second = w.send(ApiKey::Produce, 7, &produce(-1, b"second"));
    let third = w.send(ApiKey::Produce, 7, &produce(1, b"third"));
    let metadata = w.send(ApiKey::Metadata, 9, &MetadataRequest::default());
    // The first request cannot complete (its followers are paused), yet all three batches are
    // in the leader's log: the later requests did not wait for it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !in_log(3) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let appended = in_log(3);
    signal_all(&cluster, &followers, "CONT");
    assert!(
        appended,
        "the pipelined batches were not appended while the first waited"
    );

    let mut answers = Vec::new();
    for _ in 0..3 {
        let (correlation, r): (i32, ProduceResponse) = w.receive(ApiKey::Produce, 7);
        let pr = &r.responses[0].partition_responses[0];
        answers.push((correlation, pr.error_code, pr.base_offset));
    }
    assert_eq!(
        answers,
        vec![(first, 0, 0), (second, 0, 1), (third, 0, 2)],
        "(correlation id, error, base offset) in request order"
    );
    let (correlation, m): (i32, MetadataResponse) = w.receive(ApiKey::Metadata, 9);
    assert_eq!(correlation, metadata);
    assert_eq!(m.brokers.len(), 3);
}

/// Bytes of every `.log` segment of a partition, in offset order.
fn log_bytes(dir: &std::path::Path, topic: &str, p: i32) -> Vec<u8> {
    let pdir = dir.join(format!("{topic}-{p}"));
    let mut segs: Vec<_> = std::fs::read_dir(&pdir)
        .unwrap_or_else(|e| panic!("{}: {e}", pdir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    segs.sort();
    segs.iter()
        .flat_map(|s| std::fs::read(s).expect("segment"))
        .collect()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn returning_old_leader_truncates_its_divergent_tail() {
    let mut cluster = TestCluster::start(3, &[], &["broker.session.timeout.ms=60000"]);
    cluster.create_topic("diverge", 1, 3, &[]);
    let p0 = cluster.wait_for("diverge", Duration::from_secs(10), "ISR of 3", |ps| {
        ps[0].isr.len() == 3
    })[0]
        .clone();
    let old = p0.leader;
    let followers: Vec<i32> = p0.replicas.iter().copied().filter(|r| *r != old).collect();
    let bootstrap = cluster.bootstrap();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let all = producer(&bootstrap, &[("acks", "all")]);
    rt.block_on(
        all.send(
            FutureRecord::to("diverge")
                .key("k")
                .payload("committed-before"),
            Duration::from_secs(5),
        ),
    )
    .expect("acks=all before the divergence");
    // The followers stall: the leader alone takes acks=1 writes they never see.
    for f in &followers {
        cluster.brokers[(*f - 1) as usize].signal("STOP");
    }
    let one = producer(
        &format!("127.0.0.1:{}", cluster.brokers[(old - 1) as usize].port()),
        &[("acks", "1")],
    );
    // The followers' long-polling fetches are parked at the leader: the first write answers
    // them into their (stopped) sockets, so they will have it. Only what follows diverges.
    rt.block_on(one.send(
        FutureRecord::to("diverge").key("k").payload("parked"),
        Duration::from_secs(5),
    ))
    .expect("acks=1 on the lone leader");
    std::thread::sleep(Duration::from_millis(300));
    for i in 0..5 {
        rt.block_on(
            one.send(
                FutureRecord::to("diverge")
                    .key("k")
                    .payload(&format!("divergent-{i}")),
                Duration::from_secs(5),
            ),
        )
        .expect("acks=1 on the lone leader");
    }
    drop(one);
    cluster.kill9(old);
    for f in &followers {
        cluster.brokers[(*f - 1) as usize].signal("CONT");
    }
    let after = cluster.wait_for("diverge", Duration::from_secs(15), "new leader", |ps| {
        ps[0].leader > 0 && ps[0].leader != old
    });
    let new = after[0].leader;
    rt.block_on(
        all.send(
            FutureRecord::to("diverge")
                .key("k")
                .payload("committed-after"),
            Duration::from_secs(10),
        ),
    )
    .expect("acks=all on the new leader");
    cluster.restart(old);
    cluster.wait_for(
        "diverge",
        Duration::from_secs(30),
        "old leader back in ISR",
        |ps| ps[0].isr.contains(&old),
    );
    let old_dir = cluster.broker(old).log_dir.clone();
    let new_dir = cluster.broker(new).log_dir.clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (o, n) = (
            log_bytes(&old_dir, "diverge", 0),
            log_bytes(&new_dir, "diverge", 0),
        );
        if o == n {
            assert!(!contains(&o, b"divergent-"), "the divergent tail survived");
            assert!(contains(&o, b"committed-after"));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "old leader's log ({} bytes) never matched the new leader's ({} bytes)",
            o.len(),
            n.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let values: Vec<String> = read_all(&bootstrap, "diverge", 0)
        .into_iter()
        .map(|(_, v)| v)
        .filter(|v| v != "parked")
        .collect();
    assert_eq!(values, ["committed-before", "committed-after"]);
}

#[test]
fn threaded_producer_fails_over_within_seconds() {
    // Leader kill → new leader and producers back: the figure the issue asks to stay ≤ 3 s
    // with default timeouts. Asserted loosely here (10 s) because CI machines vary; the
    // scenario reports the measured time.
    let mut cluster = TestCluster::start(3, &[], &[]);
    cluster.create_topic("failover", 1, 3, &[]);
    let p0 = cluster.wait_for("failover", Duration::from_secs(10), "ISR of 3", |ps| {
        ps[0].isr.len() == 3
    })[0]
        .clone();
    let acked = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap())
        .set("acks", "all")
        .set("linger.ms", "1")
        .create()
        .expect("producer");
    let push = |n: usize| {
        for i in 0..n {
            let payload = format!("m{i}");
            let _ = producer.send(BaseRecord::<str, str>::to("failover").payload(&payload));
        }
    };
    push(100);
    producer.flush(Duration::from_secs(10)).expect("flush");
    let _ = &acked;
    cluster.kill9(p0.leader);
    let killed = Instant::now();
    cluster.wait_for("failover", Duration::from_secs(10), "new leader", |ps| {
        ps[0].leader > 0 && ps[0].leader != p0.leader
    });
    push(100);
    producer
        .flush(Duration::from_secs(10))
        .expect("writes resume on the new leader");
    let took = killed.elapsed();
    eprintln!("fail-over: kill -9 → writes acknowledged again in {took:?}");
    assert!(took < Duration::from_secs(10), "fail-over took {took:?}");
}

/// The node id of the broker coordinating `group`, asked of the broker at `addr`.
fn coordinator_of(addr: &str, group: &str) -> i32 {
    use kafka_protocol::messages::{ApiKey, FindCoordinatorRequest, FindCoordinatorResponse};
    use kafka_protocol::protocol::StrBytes;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let mut wire = common::wire::Wire::connect(addr);
        let mut req = FindCoordinatorRequest::default();
        req.key = StrBytes::from_string(group.to_owned());
        let resp: FindCoordinatorResponse = wire.call(ApiKey::FindCoordinator, 2, &req);
        if resp.error_code == 0 {
            return resp.node_id.0;
        }
        assert!(
            Instant::now() < deadline,
            "no coordinator for {group}: error {}",
            resp.error_code
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_consumer_group_goes_on_when_its_coordinators_broker_dies() {
    let mut cluster = TestCluster::start(3, &[], &["group.initial.rebalance.delay.ms=0"]);
    cluster.create_topic("orders", 3, 3, &[]);
    cluster.wait_for("orders", Duration::from_secs(10), "ISRs of 3", |ps| {
        ps.iter().all(|p| p.isr.len() == 3)
    });
    let bootstrap = cluster.bootstrap();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let p = producer(&bootstrap, &[("acks", "all")]);
    let produce = |from: usize, to: usize| {
        for i in from..to {
            let key = format!("{i}");
            rt.block_on(p.send(
                FutureRecord::to("orders").key(&key).payload(&key),
                Duration::from_secs(30),
            ))
            .expect("produce");
        }
    };
    let group = "survivors";
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .create()
        .expect("consumer");
    consumer.subscribe(&["orders"]).expect("subscribe");
    let mut seen = BTreeSet::new();
    let mut consume_until = |n: usize, what: &str, cluster: &TestCluster| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while seen.len() < n {
            assert!(
                Instant::now() < deadline,
                "{what}: consumed {} of {n} distinct messages in 60 s\n{}",
                seen.len(),
                cluster.log_tails(20)
            );
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
                seen.insert(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
            }
        }
    };
    produce(0, 1000);
    consume_until(1000, "before the kill", &cluster);
    consumer
        .commit_consumer_state(rdkafka::consumer::CommitMode::Sync)
        .expect("commit");
    let committed_before = consumer
        .committed(Duration::from_secs(10))
        .expect("committed offsets");
    assert!(
        committed_before
            .elements()
            .iter()
            .all(|e| matches!(e.offset(), rdkafka::Offset::Offset(n) if n > 0)),
        "nothing committed before the kill: {committed_before:?}"
    );
    let coordinator = coordinator_of(&cluster.brokers[0].bootstrap, group);
    cluster.kill9(coordinator);
    let live = cluster
        .brokers
        .iter()
        .find(|b| b.pid().is_some())
        .expect("a live broker")
        .bootstrap
        .clone();
    let deadline = Instant::now() + Duration::from_secs(15);
    let moved = loop {
        let now = coordinator_of(&live, group);
        if now != coordinator {
            break now;
        }
        assert!(
            Instant::now() < deadline,
            "the coordinator stayed on the dead broker {coordinator}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    // The committed offsets moved with the coordinator: __consumer_offsets is replicated.
    let committed_after = {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match consumer.committed_offsets(committed_before.clone(), Duration::from_secs(5)) {
                Ok(c)
                    if c.elements()
                        .iter()
                        .all(|e| e.offset() != rdkafka::Offset::Invalid) =>
                {
                    break c
                }
                other => assert!(
                    Instant::now() < deadline,
                    "committed offsets after the move: {other:?}"
                ),
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    let offsets = |l: &TopicPartitionList| {
        l.elements()
            .iter()
            .map(|e| (e.partition(), e.offset()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        offsets(&committed_after),
        offsets(&committed_before),
        "committed offsets changed when the coordinator moved from {coordinator} to {moved}"
    );
    produce(1000, 2000);
    consume_until(
        2000,
        &format!("after broker {coordinator} died (now {moved})"),
        &cluster,
    );
    assert!(
        consumer.assignment().map(|a| a.count()).unwrap_or(0) > 0,
        "the consumer has no partitions after the coordinator moved"
    );
}

#[test]
fn a_broker_waiting_for_a_quorum_stops_on_sigterm() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("port")
    };
    let (kafka, controller, absent) = (free(), free(), free());
    let overrides = vec![
        "node.id=1".to_owned(),
        format!("controller.quorum.voters=1@127.0.0.1:{controller},2@127.0.0.1:{absent}"),
    ];
    let (mut b, _ready) = common::TestBroker::launch(
        &tmp.path().join("data"),
        &format!("listeners=PLAINTEXT://127.0.0.1:{kafka},CONTROLLER://127.0.0.1:{controller}"),
        &overrides,
    );
    assert!(
        b.wait_for_log("joining the cluster", Duration::from_secs(20)),
        "{}",
        b.log()
    );
    let asked = Instant::now();
    assert!(
        b.stop(),
        "exit after SIGTERM without a quorum:\n{}",
        b.log()
    );
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "took {:?} to stop",
        asked.elapsed()
    );
}

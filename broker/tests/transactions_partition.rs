//! The partition side of transactions against a real kbroker, over raw Produce, Fetch and
//! ListOffsets: an open transaction holds the last stable offset, so `read_committed` fetches
//! stop before its first batch while `read_uncommitted` fetches see everything, and the open
//! transaction is still open after kill -9 and restart; with the transaction coordinator's
//! AddPartitionsToTxn/EndTxn, a commit makes the data visible and an abort is listed for the
//! fetched range, also after kill -9; librdkafka's read_committed consumer skips aborted records.

mod common;

use std::time::{Duration, Instant};

use common::wire::Wire;
use common::TestBroker;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, FetchRequest, FetchResponse, InitProducerIdRequest, InitProducerIdResponse,
    ListOffsetsRequest, ListOffsetsResponse, MetadataRequest, MetadataResponse, ProduceRequest,
    ProduceResponse, ProducerId, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kbroker::log::batch::batches;
use kbroker::log::build_batch;

const TOPIC: &str = "txp";

fn topic_name() -> TopicName {
    TopicName(StrBytes::from_static_str(TOPIC))
}

fn create_topic(w: &mut Wire) {
    let mut topic = kafka_protocol::messages::metadata_request::MetadataRequestTopic::default();
    topic.name = Some(topic_name());
    let mut md = MetadataRequest::default();
    md.topics = Some(vec![topic]);
    md.allow_auto_topic_creation = true;
    let _: MetadataResponse = w.call(ApiKey::Metadata, 9, &md);
}

fn producer_id(w: &mut Wire) -> (i64, i16) {
    let mut req = InitProducerIdRequest::default();
    req.transaction_timeout_ms = 60_000;
    req.producer_id = ProducerId(-1);
    req.producer_epoch = -1;
    let resp: InitProducerIdResponse = w.call(ApiKey::InitProducerId, 4, &req);
    assert_eq!(resp.error_code, 0);
    (resp.producer_id.0, resp.producer_epoch)
}

/// Produces one batch of `n` records; transactional when `txn`. Returns (error, base offset).
fn produce(w: &mut Wire, pid: i64, epoch: i16, seq: i32, n: usize, txn: bool) -> (i16, i64) {
    let values = vec![(None, Some(&b"payload"[..])); n];
    let batch = build_batch(&values, 1_700_000_000_000, pid, epoch, seq, txn, false);
    let mut pd = PartitionProduceData::default();
    pd.records = Some(batch);
    let mut td = TopicProduceData::default();
    td.name = topic_name();
    td.partition_data.push(pd);
    let mut req = ProduceRequest::default();
    req.acks = -1;
    req.timeout_ms = 5000;
    req.topic_data.push(td);
    let resp: ProduceResponse = w.call(ApiKey::Produce, 8, &req);
    let p = &resp.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// What one partition's fetch answered.
#[derive(Debug)]
struct Fetched {
    error: i16,
    high_watermark: i64,
    last_stable_offset: i64,
    /// Base offsets of the returned batches.
    batches: Vec<i64>,
    /// `None` when the broker sent a null list (read_uncommitted).
    aborted: Option<Vec<(i64, i64)>>,
}

fn fetch(w: &mut Wire, offset: i64, isolation: i8, max_wait_ms: i32) -> Fetched {
    let mut fp = FetchPartition::default();
    fp.partition = 0;
    fp.fetch_offset = offset;
    fp.partition_max_bytes = 1 << 20;
    fp.current_leader_epoch = -1;
    fp.log_start_offset = -1;
    let mut ft = FetchTopic::default();
    ft.topic = topic_name();
    ft.partitions.push(fp);
    let mut req = FetchRequest::default();
    req.replica_id = kafka_protocol::messages::BrokerId(-1);
    req.max_wait_ms = max_wait_ms;
    req.min_bytes = 1;
    req.max_bytes = 1 << 22;
    req.isolation_level = isolation;
    req.session_epoch = -1;
    req.topics.push(ft);
    let resp: FetchResponse = w.call(ApiKey::Fetch, 11, &req);
    let p = &resp.responses[0].partitions[0];
    let records = p.records.clone().unwrap_or_default();
    Fetched {
        error: p.error_code,
        high_watermark: p.high_watermark,
        last_stable_offset: p.last_stable_offset,
        batches: batches(&records)
            .map(|b| b.expect("well-formed batch").0.base_offset)
            .collect(),
        aborted: p.aborted_transactions.as_ref().map(|list| {
            list.iter()
                .map(|a| (a.producer_id.0, a.first_offset))
                .collect()
        }),
    }
}

fn latest(w: &mut Wire, isolation: i8) -> i64 {
    let mut p = ListOffsetsPartition::default();
    p.partition_index = 0;
    p.timestamp = -1;
    let mut t = ListOffsetsTopic::default();
    t.name = topic_name();
    t.partitions.push(p);
    let mut req = ListOffsetsRequest::default();
    req.replica_id = kafka_protocol::messages::BrokerId(-1);
    req.isolation_level = isolation;
    req.topics.push(t);
    let resp: ListOffsetsResponse = w.call(ApiKey::ListOffsets, 5, &req);
    let p = &resp.topics[0].partitions[0];
    assert_eq!(p.error_code, 0);
    p.offset
}

/// Plain records at 0..=1, an open transaction from 2 (2..=4 and 6), plain again at 5.
fn open_a_transaction(w: &mut Wire) -> i64 {
    create_topic(w);
    let (pid, epoch) = producer_id(w);
    assert_eq!(produce(w, -1, -1, -1, 2, false), (0, 0));
    assert_eq!(produce(w, pid, epoch, 0, 3, true), (0, 2));
    assert_eq!(produce(w, -1, -1, -1, 1, false), (0, 5));
    assert_eq!(produce(w, pid, epoch, 3, 1, true), (0, 6));
    pid
}

fn assert_open_transaction_holds_the_lso(w: &mut Wire) {
    let committed = fetch(w, 0, 1, 0);
    assert_eq!(committed.error, 0);
    assert_eq!(committed.high_watermark, 7);
    assert_eq!(committed.last_stable_offset, 2);
    assert_eq!(committed.batches, vec![0], "nothing at or past the LSO");
    assert_eq!(committed.aborted, Some(vec![]));

    let uncommitted = fetch(w, 0, 0, 0);
    assert_eq!(uncommitted.batches, vec![0, 2, 5, 6]);
    assert_eq!(
        uncommitted.last_stable_offset, 2,
        "Kafka sends the LSO here too"
    );
    assert_eq!(uncommitted.aborted, None);

    assert_eq!(latest(w, 1), 2, "read_committed latest is the LSO");
    assert_eq!(
        latest(w, 0),
        7,
        "read_uncommitted latest is the high watermark"
    );
}

#[test]
fn read_committed_fetch_stops_at_an_open_transaction() {
    let broker = TestBroker::start(&[]);
    let mut w = Wire::connect(&broker.bootstrap);
    open_a_transaction(&mut w);
    assert_open_transaction_holds_the_lso(&mut w);
    // A committed fetch at the LSO long-polls and comes back empty, not with the open data.
    let started = Instant::now();
    let waited = fetch(&mut w, 2, 1, 300);
    assert!(started.elapsed() >= Duration::from_millis(250));
    assert_eq!(waited.error, 0);
    assert!(waited.batches.is_empty());
    // Past the high watermark is still out of range for both.
    assert_eq!(fetch(&mut w, 8, 1, 0).error, 1, "OFFSET_OUT_OF_RANGE");
}

#[test]
fn open_transaction_survives_kill9_and_restart() {
    let mut broker = TestBroker::start(&[]);
    let mut w = Wire::connect(&broker.bootstrap);
    let pid = open_a_transaction(&mut w);
    broker.kill9();
    broker.restart();
    let mut w = Wire::connect(&broker.bootstrap);
    assert_open_transaction_holds_the_lso(&mut w);
    // And once more, now that the restart wrote a checkpoint, after more data.
    assert_eq!(produce(&mut w, -1, -1, -1, 1, false), (0, 7));
    broker.kill9();
    broker.restart();
    let mut w = Wire::connect(&broker.bootstrap);
    let committed = fetch(&mut w, 0, 1, 0);
    assert_eq!(
        (committed.high_watermark, committed.last_stable_offset),
        (8, 2)
    );
    // The producer's sequence state came back too: its next batch follows on.
    assert_eq!(produce(&mut w, pid, 0, 4, 1, true), (0, 8));
}

/// InitProducerId for `transactional_id`, retrying while the coordinator loads.
fn init_transactional(w: &mut Wire, transactional_id: &str) -> (i64, i16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut req = InitProducerIdRequest::default();
        req.transactional_id = Some(kafka_protocol::messages::TransactionalId(StrBytes::from(
            transactional_id.to_owned(),
        )));
        req.transaction_timeout_ms = 60_000;
        req.producer_id = ProducerId(-1);
        req.producer_epoch = -1;
        let resp: InitProducerIdResponse = w.call(ApiKey::InitProducerId, 4, &req);
        if resp.error_code == 0 {
            return (resp.producer_id.0, resp.producer_epoch);
        }
        assert!(
            Instant::now() < deadline,
            "InitProducerId keeps failing with {}",
            resp.error_code
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn add_partition(w: &mut Wire, transactional_id: &str, pid: i64, epoch: i16) {
    use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
    use kafka_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse};
    let mut t = AddPartitionsToTxnTopic::default();
    t.name = topic_name();
    t.partitions = vec![0];
    let mut req = AddPartitionsToTxnRequest::default();
    req.v3_and_below_transactional_id =
        kafka_protocol::messages::TransactionalId(StrBytes::from(transactional_id.to_owned()));
    req.v3_and_below_producer_id = ProducerId(pid);
    req.v3_and_below_producer_epoch = epoch;
    req.v3_and_below_topics = vec![t];
    let resp: AddPartitionsToTxnResponse = w.call(ApiKey::AddPartitionsToTxn, 3, &req);
    for r in &resp.results_by_topic_v3_and_below {
        for p in &r.results_by_partition {
            assert_eq!(p.partition_error_code, 0, "AddPartitionsToTxn");
        }
    }
}

fn end_txn(w: &mut Wire, transactional_id: &str, pid: i64, epoch: i16, commit: bool) {
    use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse};
    let mut req = EndTxnRequest::default();
    req.transactional_id =
        kafka_protocol::messages::TransactionalId(StrBytes::from(transactional_id.to_owned()));
    req.producer_id = ProducerId(pid);
    req.producer_epoch = epoch;
    req.committed = commit;
    let resp: EndTxnResponse = w.call(ApiKey::EndTxn, 3, &req);
    assert_eq!(resp.error_code, 0, "EndTxn");
}

#[test]
fn commit_makes_data_visible_and_abort_is_listed_across_restart() {
    let mut broker = TestBroker::start(&[]);
    let mut w = Wire::connect(&broker.bootstrap);
    create_topic(&mut w);
    let (pid, epoch) = init_transactional(&mut w, "tx-a");

    add_partition(&mut w, "tx-a", pid, epoch);
    assert_eq!(produce(&mut w, pid, epoch, 0, 3, true), (0, 0));
    let open = fetch(&mut w, 0, 1, 0);
    assert_eq!((open.last_stable_offset, open.batches.len()), (0, 0));
    end_txn(&mut w, "tx-a", pid, epoch, true);
    let committed = fetch(&mut w, 0, 1, 0);
    assert_eq!(committed.batches, vec![0, 3], "data and its commit marker");
    assert_eq!(committed.last_stable_offset, 4);
    assert_eq!(committed.aborted, Some(vec![]));

    add_partition(&mut w, "tx-a", pid, epoch);
    assert_eq!(produce(&mut w, pid, epoch, 3, 2, true), (0, 4));
    end_txn(&mut w, "tx-a", pid, epoch, false);
    assert_eq!(produce(&mut w, -1, -1, -1, 1, false), (0, 7));
    let check = |w: &mut Wire| {
        let all = fetch(w, 0, 1, 0);
        assert_eq!(all.batches, vec![0, 3, 4, 6, 7]);
        assert_eq!((all.high_watermark, all.last_stable_offset), (8, 8));
        assert_eq!(all.aborted, Some(vec![(pid, 4)]), "the aborted transaction");
        assert_eq!(fetch(w, 6, 1, 0).aborted, Some(vec![(pid, 4)]));
        assert_eq!(fetch(w, 7, 1, 0).aborted, Some(vec![]), "past the abort");
        let uncommitted = fetch(w, 0, 0, 0);
        assert_eq!(uncommitted.batches, all.batches);
        assert_eq!(uncommitted.aborted, None);
    };
    check(&mut w);
    broker.kill9();
    broker.restart();
    let mut w = Wire::connect(&broker.bootstrap);
    check(&mut w);
}

/// librdkafka's own handling of what Fetch returns: a read_committed consumer sees the committed
/// transaction and skips the aborted one (using the aborted list), a read_uncommitted one sees
/// both.
#[tokio::test(flavor = "multi_thread")]
async fn librdkafka_read_committed_skips_aborted_records() {
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
    use rdkafka::{Message, TopicPartitionList};

    let broker = TestBroker::start(&[]);
    let bootstrap = broker.bootstrap.clone();
    let values = tokio::task::spawn_blocking(move || {
        let p: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("transactional.id", "rd-tx")
            .create()
            .unwrap();
        let t = Duration::from_secs(20);
        p.init_transactions(t).unwrap();
        for (round, commit) in [("a", true), ("b", false), ("c", true)] {
            p.begin_transaction().unwrap();
            for i in 0..5 {
                let v = format!("{round}{i}");
                p.send(BaseRecord::<(), _>::to(TOPIC).payload(&v).partition(0))
                    .unwrap();
            }
            if commit {
                p.commit_transaction(t).unwrap();
            } else {
                p.flush(t).unwrap();
                p.abort_transaction(t).unwrap();
            }
        }
        let read = |isolation: &str| -> Vec<String> {
            let c: BaseConsumer = ClientConfig::new()
                .set("bootstrap.servers", &bootstrap)
                .set("group.id", format!("g-{isolation}"))
                .set("isolation.level", isolation)
                .set("enable.auto.commit", "false")
                .set("enable.partition.eof", "true")
                .create()
                .unwrap();
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(TOPIC, 0, rdkafka::Offset::Beginning)
                .unwrap();
            c.assign(&tpl).unwrap();
            let mut got = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                match c.poll(Duration::from_millis(200)) {
                    Some(Ok(m)) => {
                        got.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into())
                    }
                    // The end of the partition (for read_committed: of the stable part).
                    Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => break,
                    _ => {}
                }
            }
            got
        };
        (read("read_committed"), read("read_uncommitted"))
    })
    .await
    .unwrap();
    let expect = |rounds: &[&str]| -> Vec<String> {
        rounds
            .iter()
            .flat_map(|r| (0..5).map(move |i| format!("{r}{i}")))
            .collect()
    };
    assert_eq!(values.0, expect(&["a", "c"]), "read_committed");
    assert_eq!(values.1, expect(&["a", "b", "c"]), "read_uncommitted");
}

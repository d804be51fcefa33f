//! The partition side of transactions against a real kbroker, over raw Produce, Fetch and
//! ListOffsets: an open transaction holds the last stable offset, so `read_committed` fetches
//! stop before its first batch while `read_uncommitted` fetches see everything, and the open
//! transaction is still open after kill -9 and restart. (Markers are written by the transaction
//! coordinator; commit/abort over the wire is tested with its EndTxn.)

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

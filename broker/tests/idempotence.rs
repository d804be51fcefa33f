//! Idempotent producers against a real kbroker: ids from InitProducerId, retried batches not
//! stored twice, gaps and stale epochs refused, state rebuilt after kill -9.

mod common;

use std::time::Duration;

use common::wire::Wire;
use common::TestBroker;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, InitProducerIdRequest, InitProducerIdResponse, MetadataRequest, MetadataResponse,
    ProduceRequest, ProduceResponse, ProducerId, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kbroker::log::build_batch;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};

fn init(wire: &mut Wire) -> (i64, i16) {
    let mut req = InitProducerIdRequest::default();
    req.transactional_id = None;
    req.transaction_timeout_ms = 60_000;
    req.producer_id = ProducerId(-1);
    req.producer_epoch = -1;
    let resp: InitProducerIdResponse = wire.call(ApiKey::InitProducerId, 4, &req);
    assert_eq!(resp.error_code, 0);
    (resp.producer_id.0, resp.producer_epoch)
}

/// Produces one batch of `n` records from producer `pid`/`epoch` starting at sequence `seq`;
/// returns (error code, base offset).
fn send(wire: &mut Wire, pid: i64, epoch: i16, seq: i32, n: usize) -> (i16, i64) {
    let values = vec![(None, Some(&b"payload"[..])); n];
    let batch = build_batch(&values, 1_700_000_000_000, pid, epoch, seq, false, false);
    let mut pd = PartitionProduceData::default();
    pd.records = Some(batch);
    let mut td = TopicProduceData::default();
    td.name = TopicName(StrBytes::from_static_str("idem"));
    td.partition_data.push(pd);
    let mut req = ProduceRequest::default();
    req.acks = -1;
    req.timeout_ms = 5000;
    req.topic_data.push(td);
    let resp: ProduceResponse = wire.call(ApiKey::Produce, 8, &req);
    let p = &resp.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

fn end_offset(bootstrap: &str) -> i64 {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    c.fetch_watermarks("idem", 0, Duration::from_secs(10))
        .unwrap()
        .1
}

#[test]
fn retried_batches_are_not_stored_twice_and_gaps_are_refused() {
    let mut broker = TestBroker::start(&[]);
    let mut w = Wire::connect(&broker.bootstrap);
    // Clients create topics by asking for their metadata (auto.create.topics.enable).
    let mut topic = kafka_protocol::messages::metadata_request::MetadataRequestTopic::default();
    topic.name = Some(TopicName(StrBytes::from_static_str("idem")));
    let mut md = MetadataRequest::default();
    md.topics = Some(vec![topic]);
    md.allow_auto_topic_creation = true;
    let _: MetadataResponse = w.call(ApiKey::Metadata, 9, &md);
    let (pid, epoch) = init(&mut w);
    let (pid2, _) = init(&mut w);
    assert_ne!(pid, pid2, "every InitProducerId gets a new id");
    assert_eq!(send(&mut w, pid, epoch, 0, 3), (0, 0));
    assert_eq!(send(&mut w, pid, epoch, 3, 2), (0, 3));
    // The first batch again, as a client retries after a lost response: original offset.
    assert_eq!(send(&mut w, pid, epoch, 0, 3), (0, 0));
    assert_eq!(end_offset(&broker.bootstrap), 5, "the retry was stored");
    // A gap in the sequence.
    assert_eq!(
        send(&mut w, pid, epoch, 9, 1).0,
        45,
        "OUT_OF_ORDER_SEQUENCE_NUMBER"
    );
    // A zombie with an older epoch after the producer moved on.
    assert_eq!(send(&mut w, pid, epoch + 1, 0, 1), (0, 5));
    assert_eq!(
        send(&mut w, pid, epoch, 5, 1).0,
        47,
        "INVALID_PRODUCER_EPOCH"
    );
    assert_eq!(end_offset(&broker.bootstrap), 6);

    // After kill -9 the state is rebuilt from the log: the retry is still recognised, and a new
    // producer never gets an id handed out before.
    broker.kill9();
    broker.restart();
    let mut w = Wire::connect(&broker.bootstrap);
    assert_eq!(
        send(&mut w, pid, epoch + 1, 0, 1),
        (0, 5),
        "retry after restart"
    );
    assert_eq!(end_offset(&broker.bootstrap), 6);
    let (pid3, _) = init(&mut w);
    assert!(
        pid3 > pid2,
        "producer id {pid3} handed out again after restart"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn librdkafka_idempotent_producer_round_trip() {
    let broker = TestBroker::start(&[]);
    let p: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &broker.bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "2")
        .create()
        .unwrap();
    let mut futures = Vec::new();
    for i in 0..2000 {
        let v = format!("m{i}");
        futures.push(
            p.send_result(FutureRecord::<(), _>::to("idem").payload(&v))
                .map_err(|(e, _)| e)
                .unwrap(),
        );
    }
    for (i, f) in futures.into_iter().enumerate() {
        let d = f
            .await
            .unwrap()
            .unwrap_or_else(|(e, _)| panic!("message {i}: {e}"));
        assert_eq!(d.offset, i as i64, "offsets follow send order");
    }
    assert_eq!(end_offset(&broker.bootstrap), 2000);
}

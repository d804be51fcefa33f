//! A Fetch answer stays within the request's `max_bytes` and each partition's
//! `partition_max_bytes`, except that the first batch of the first partition with data may go
//! over (KIP-74), exactly as Apache Kafka answers. The Java consumer asks for 50 MiB by default
//! but `fetch.max.bytes` users and followers with `replica.fetch.response.max.bytes` rely on the
//! limit; kbroker once answered a 1 MB limit with 1.8 MB.
//!
//! The data is written by librdkafka (one 300 KB message per batch); the fetches are raw Fetch v12
//! requests so the exact limits and the exact answer can be checked.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::wire::Wire;
use common::TestBroker;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};

const TOPIC: &str = "limits";
const PARTITIONS: i32 = 4;
const BATCHES_PER_PARTITION: usize = 3;
const MESSAGE: usize = 300_000;

/// Four partitions of three single-message batches of ~300 KB each.
async fn fill(bootstrap: &str) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let topic = NewTopic::new(TOPIC, PARTITIONS, TopicReplication::Fixed(1));
    for r in admin
        .create_topics([&topic], &AdminOptions::new())
        .await
        .expect("create_topics")
    {
        r.unwrap_or_else(|(t, e)| panic!("creating {t}: {e}"));
    }
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "0")
        .set("compression.type", "none")
        .set("message.timeout.ms", "20000")
        .create()
        .expect("producer");
    let payload = vec![b'x'; MESSAGE];
    for p in 0..PARTITIONS {
        for _ in 0..BATCHES_PER_PARTITION {
            // Awaited one by one: every message is a batch of its own.
            producer
                .send(
                    FutureRecord::<(), _>::to(TOPIC)
                        .partition(p)
                        .payload(&payload),
                    Duration::from_secs(20),
                )
                .await
                .expect("produce");
        }
    }
}

/// Fetches every partition from offset 0 (partition order 0..4) with the given limits; returns
/// the record bytes each partition answered with.
fn fetch(w: &mut Wire, max_bytes: i32, partition_max_bytes: i32) -> Vec<Bytes> {
    let mut req = FetchRequest::default();
    req.replica_id = (-1).into();
    req.max_wait_ms = 100;
    req.min_bytes = 1;
    req.max_bytes = max_bytes;
    let mut t = FetchTopic::default();
    t.topic = TopicName(StrBytes::from_static_str(TOPIC));
    t.partitions = (0..PARTITIONS)
        .map(|i| {
            let mut p = FetchPartition::default();
            p.partition = i;
            p.fetch_offset = 0;
            p.partition_max_bytes = partition_max_bytes;
            p
        })
        .collect();
    req.topics = vec![t];
    let resp: FetchResponse = w.call(ApiKey::Fetch, 12, &req);
    assert_eq!(resp.error_code, 0);
    let parts = &resp.responses[0].partitions;
    assert_eq!(parts.len(), PARTITIONS as usize);
    parts
        .iter()
        .map(|p| {
            assert_eq!(p.error_code, 0, "partition {}", p.partition_index);
            p.records.clone().unwrap_or_default()
        })
        .collect()
}

/// How many whole stored batches `records` holds (every batch here is one message).
fn batches(records: &Bytes, batch_len: usize) -> usize {
    assert_eq!(records.len() % batch_len, 0, "only whole batches go out");
    records.len() / batch_len
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_answers_stay_within_max_bytes_and_partition_max_bytes() {
    let broker = TestBroker::start(&[]);
    fill(&broker.bootstrap).await;
    let mut w = Wire::connect(&broker.bootstrap);

    // Everything fits: all 12 batches.
    let all = fetch(&mut w, 50 << 20, 10 << 20);
    let batch_len = all[0].len() / BATCHES_PER_PARTITION;
    assert!(batch_len > MESSAGE, "one stored batch per message");
    let counts: Vec<usize> = all.iter().map(|r| batches(r, batch_len)).collect();
    assert_eq!(counts, vec![3, 3, 3, 3]);

    // The response limit, 1 MB: partition 0 takes three batches (~900 KB); no other partition's
    // next batch fits what is left, so they answer nothing (kbroker once sent one more batch per
    // partition here: 1.8 MB).
    let got = fetch(&mut w, 1_000_000, 10 << 20);
    let total: usize = got.iter().map(Bytes::len).sum();
    assert!(total <= 1_000_000, "{total} bytes answer a 1 MB limit");
    let counts: Vec<usize> = got.iter().map(|r| batches(r, batch_len)).collect();
    assert_eq!(counts, vec![3, 0, 0, 0]);

    // The partition limit, 700 KB: two batches each.
    let got = fetch(&mut w, 50 << 20, 700_000);
    let counts: Vec<usize> = got.iter().map(|r| batches(r, batch_len)).collect();
    assert_eq!(counts, vec![2, 2, 2, 2]);

    // Both limits below one batch: only the first partition's first batch goes out (KIP-74).
    let got = fetch(&mut w, 100_000, 100_000);
    let counts: Vec<usize> = got.iter().map(|r| batches(r, batch_len)).collect();
    assert_eq!(counts, vec![1, 0, 0, 0]);
    let got = fetch(&mut w, 50 << 20, 100_000);
    let counts: Vec<usize> = got.iter().map(|r| batches(r, batch_len)).collect();
    assert_eq!(counts, vec![1, 0, 0, 0]);
}

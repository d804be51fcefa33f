//! Log compaction (`cleanup.policy=compact`) on a real kbroker process with real clients:
//! librdkafka through the `rdkafka` crate for a kill -9 in the middle of a cleaning, and the
//! Python `confluent-kafka` client reading a compacted topic, written plain or compressed
//! (`compat/compaction_compat.py`).
//!
//! The broker runs its cleaner every 200 ms (`log.cleaner.backoff.ms`). The kill test uses the
//! test-only hook `KBROKER_TEST_CLEANER_PAUSE_MS`: the cleaner sleeps after writing a
//! `.cleaned` segment and before swapping it in, so the kill lands exactly there.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use common::clients::{self, log_tail, run_client};
use common::{read_partition, TestBroker};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

const TIMEOUT: Duration = Duration::from_secs(30);
const CLEANER_FAST: &str = "log.cleaner.backoff.ms=200";

async fn create_compacted(bootstrap: &str, name: &str) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let topic = NewTopic::new(name, 1, TopicReplication::Fixed(1))
        .set("cleanup.policy", "compact")
        .set("segment.bytes", "2048")
        .set("min.cleanable.dirty.ratio", "0.01");
    for r in admin
        .create_topics([&topic], &AdminOptions::new())
        .await
        .expect("create_topics request")
    {
        r.unwrap_or_else(|(t, e)| panic!("creating {t}: {e}"));
    }
}

/// Produces `versions` versions of `keys` keys with the producer's `compression.type`; returns
/// offset → (key, value) as acknowledged. Compressed, each version skips every third key (a
/// different third each time), so that compressed batches keep only part of their records.
async fn produce_versions(
    bootstrap: &str,
    topic: &str,
    keys: usize,
    versions: usize,
    compression: &str,
) -> BTreeMap<i64, (String, String)> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .set("message.timeout.ms", "20000")
        .set("compression.type", compression)
        .create()
        .expect("producer");
    let mut written = BTreeMap::new();
    // One round of versions at a time, so that they land in many batches and segments.
    for version in 0..versions {
        let mut sends = Vec::new();
        for key in 0..keys {
            if compression != "none" && (key + version) % 3 == 0 {
                continue;
            }
            let (k, v) = (format!("key-{key}"), format!("key-{key}-v{version}"));
            let send = producer
                .send_result(FutureRecord::to(topic).key(&k).payload(&v))
                .unwrap_or_else(|(e, _)| panic!("enqueue: {e}"));
            sends.push((k, v, send));
        }
        for (k, v, send) in sends {
            let offset = send
                .await
                .expect("delivery report")
                .unwrap_or_else(|(e, _)| panic!("delivery: {e}"))
                .offset;
            written.insert(offset, (k, v));
        }
    }
    written
}

/// Every record of partition 0 from the beginning to the high watermark: (offset, key, value).
fn read_all(bootstrap: &str, topic: &str) -> Vec<(i64, String, String)> {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    read_partition(bootstrap, topic, 0, TIMEOUT)
        .into_iter()
        .map(|(o, k, v)| (o, text(k.as_deref().unwrap_or_default()), text(&v)))
        .collect()
}

/// Files in `dir` whose name ends with `suffix`.
fn files_ending(dir: &Path, suffix: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(suffix))
                .collect()
        })
        .unwrap_or_default()
}

/// What was read is what was written at those offsets, no offset twice, and every key's newest
/// acknowledged record is there.
fn assert_nothing_lost(read: &[(i64, String, String)], written: &BTreeMap<i64, (String, String)>) {
    let mut seen = HashSet::new();
    for (offset, key, value) in read {
        assert!(seen.insert(*offset), "offset {offset} read twice");
        assert_eq!(
            written.get(offset),
            Some(&(key.clone(), value.clone())),
            "record at offset {offset}"
        );
    }
    let mut newest: BTreeMap<&str, i64> = BTreeMap::new();
    for (offset, (key, _)) in written {
        newest.insert(key, *offset);
    }
    for (key, offset) in newest {
        assert!(
            read.iter().any(|r| r.0 == offset),
            "{key}'s newest record (offset {offset}) is gone"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kill9_mid_clean_loses_nothing_and_the_clean_completes_after_restart() {
    kill9_mid_clean("none").await;
}

/// The same with zstd batches, which the cleaner decompresses, filters and compresses again.
#[tokio::test(flavor = "multi_thread")]
async fn kill9_mid_clean_of_compressed_batches_loses_nothing() {
    kill9_mid_clean("zstd").await;
}

async fn kill9_mid_clean(compression: &str) {
    let mut broker = TestBroker::start_with_env(
        &[CLEANER_FAST],
        &[("KBROKER_TEST_CLEANER_PAUSE_MS", "600000")],
    );
    let topic = "compacted";
    create_compacted(&broker.bootstrap, topic).await;
    let written = produce_versions(&broker.bootstrap, topic, 20, 30, compression).await;
    let dir = broker.log_dir.join(format!("{topic}-0"));

    assert!(
        broker.wait_for_log("pausing before the swap", TIMEOUT),
        "the cleaner never wrote a cleaned segment\n{}",
        log_tail("kbroker log", &broker.log(), 40)
    );
    let cleaned = files_ending(&dir, ".cleaned");
    assert!(!cleaned.is_empty(), "no .cleaned file in {}", dir.display());
    broker.kill9();

    broker.env.clear();
    broker.restart();
    assert!(
        files_ending(&dir, ".cleaned").is_empty(),
        "the half-done clean is discarded on start"
    );
    assert_nothing_lost(&read_all(&broker.bootstrap, topic), &written);

    // Without the pause, the cleaner now finishes the job.
    assert!(
        broker.wait_for_log("log cleaner compacted the partition", TIMEOUT),
        "no compaction after the restart\n{}",
        log_tail("kbroker log", &broker.log(), 40)
    );
    let read = read_all(&broker.bootstrap, topic);
    assert_nothing_lost(&read, &written);
    assert!(
        read.len() < written.len(),
        "{} of {} records left",
        read.len(),
        written.len()
    );
}

/// Runs `compat/compaction_compat.py SCENARIO` against a broker cleaning every 200 ms.
fn python_scenario(scenario: &str) {
    clients::venv_python();
    let broker = TestBroker::start(&[CLEANER_FAST]);
    let cmd = clients::python_scenario("compaction_compat.py", scenario, &broker.bootstrap);
    let out = run_client(
        &format!("compaction_compat.py {scenario}"),
        cmd,
        None,
        Duration::from_secs(120),
        &|| log_tail("kbroker log", &broker.log(), 60),
    );
    println!("{}", out.stdout);
}

#[test]
fn confluent_kafka_reads_only_the_newest_record_per_key() {
    python_scenario("compacted");
}

/// gzip, snappy, lz4 and zstd batches holding several keys each: the cleaner opens them, and
/// the consumer sees the newest record per key at its offset, with its timestamp.
#[test]
fn confluent_kafka_reads_compacted_compressed_batches() {
    python_scenario("compressed");
}

#[test]
fn confluent_kafka_cannot_write_a_keyless_record_to_a_compacted_topic() {
    python_scenario("keyless");
}

/// In a cluster (here of one broker, its own controller) `__consumer_offsets` is a compacted
/// topic: after thousands of commits the cleaner shrinks it, and after a kill -9 and restart
/// the coordinator replays the compacted log to the latest committed offsets.
#[test]
fn compacted_consumer_offsets_keep_the_latest_commits_across_a_restart() {
    use rdkafka::consumer::CommitMode;
    let mut cluster = common::cluster::TestCluster::start(
        1,
        &[],
        &[
            CLEANER_FAST,
            "offsets.topic.num.partitions=1",
            "offsets.topic.segment.bytes=8192",
        ],
    );
    cluster.create_topic("t", 10, 1, &[]);
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap())
        .set("group.id", "g")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let rounds = 300;
    let deadline = Instant::now() + TIMEOUT;
    for round in 1..=rounds {
        let mut tpl = TopicPartitionList::new();
        for p in 0..10 {
            tpl.add_partition_offset("t", p, Offset::Offset(round))
                .expect("offset");
        }
        // The coordinator may still be loading right after the topic is created.
        while let Err(e) = consumer.commit(&tpl, CommitMode::Sync) {
            assert!(Instant::now() < deadline, "commit {round}: {e}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    assert!(
        cluster.broker(1).wait_for_log(
            "log cleaner compacted the partition topic=__consumer_offsets",
            TIMEOUT
        ),
        "__consumer_offsets was not compacted\n{}",
        cluster.log_tails(30)
    );
    drop(consumer);

    cluster.kill9(1);
    cluster.restart(1);
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap())
        .set("group.id", "g")
        .create()
        .expect("consumer");
    let mut wanted = TopicPartitionList::new();
    for p in 0..10 {
        wanted.add_partition("t", p);
    }
    let deadline = Instant::now() + TIMEOUT;
    let committed = loop {
        match consumer.committed_offsets(wanted.clone(), Duration::from_secs(5)) {
            Ok(c) if c.elements().iter().all(|e| e.offset() != Offset::Invalid) => break c,
            other => {
                assert!(Instant::now() < deadline, "committed offsets: {other:?}");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    };
    for e in committed.elements() {
        assert_eq!(
            e.offset(),
            Offset::Offset(rounds),
            "partition {}",
            e.partition()
        );
    }
}

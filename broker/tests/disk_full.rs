//! A full disk: kbroker's log dir on a small tmpfs that the test mounts itself, filled until
//! appends fail. Producers must get KAFKA_STORAGE_ERROR (never an acknowledgement for what was
//! not written, never a timeout), the log must stay readable and whole, the broker must say once
//! which directory is full, and once space is freed every acknowledged message must still be
//! there, before and after a restart, with new produces accepted.
//!
//! Mounting needs root (CAP_SYS_ADMIN); without it these tests fail, saying so, rather than
//! pass without having run. The tmpfs is unmounted by a drop guard, after the broker using it
//! is gone.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use common::tmpfs::Tmpfs;
use common::{read_partition, TestBroker};
use kbroker::log::{batch, build_batch, LogConfig, PartitionLog};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};

const TIMEOUT: Duration = Duration::from_secs(30);
/// Size of each test message's value.
const MESSAGE_BYTES: usize = 1000;

/// The value of message `seq`: its number, then bytes derived from it, so that any damage or
/// mix-up shows.
fn value(seq: u32) -> Vec<u8> {
    let mut v = format!("msg-{seq:08}-").into_bytes();
    let mut x = seq.wrapping_mul(2_654_435_761).wrapping_add(1);
    while v.len() < MESSAGE_BYTES {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        v.push(b'a' + (x % 26) as u8);
    }
    v
}

/// The sequence number a stored value carries, if it is one of ours and intact.
fn seq_of(stored: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(stored.get(4..12)?).ok()?;
    let seq: u32 = text.parse().ok()?;
    (value(seq) == stored).then_some(seq)
}

async fn create_topic(bootstrap: &str, name: &str, configs: &[(&str, &str)]) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client");
    let mut topic = NewTopic::new(name, 1, TopicReplication::Fixed(1));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    for r in admin
        .create_topics([&topic], &AdminOptions::new())
        .await
        .expect("create_topics request")
    {
        r.unwrap_or_else(|(t, e)| panic!("creating {t}: {e}"));
    }
}

/// An idempotent acks=all producer that gives up after two retries, so that a broker error
/// that does not go away reaches the application as itself rather than as a timeout.
fn producer(bootstrap: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("retries", "2")
        .set("retry.backoff.ms", "50")
        .set("retry.backoff.max.ms", "200")
        .set("linger.ms", "2")
        .set("message.timeout.ms", "30000")
        .create()
        .expect("producer")
}

/// What a produce run got back.
#[derive(Default)]
struct Outcome {
    /// Acknowledged messages: sequence number → offset.
    acked: BTreeMap<u32, i64>,
    /// Refused messages: sequence number → error.
    failed: BTreeMap<u32, KafkaError>,
}

/// Sends messages `first..first + max` in windows of 50, waiting for each window's delivery
/// reports, and stops after the first window with a failure.
async fn produce(p: &FutureProducer, topic: &str, first: u32, max: u32) -> Outcome {
    let mut out = Outcome::default();
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut seq = first;
    while seq < first + max && out.failed.is_empty() {
        assert!(Instant::now() < deadline, "producing took over 90 s");
        let mut window = Vec::new();
        for _ in 0..50 {
            let v = value(seq);
            let record = FutureRecord::<(), _>::to(topic).payload(&v);
            let delivery = p.send_result(record).map_err(|(e, _)| e).expect("enqueue");
            window.push((seq, delivery));
            seq += 1;
        }
        for (seq, delivery) in window {
            match delivery.await.expect("delivery report") {
                Ok(d) => {
                    out.acked.insert(seq, d.offset);
                }
                Err((e, _)) => {
                    out.failed.insert(seq, e);
                }
            }
        }
    }
    out
}

/// Checks that `topic` holds exactly the acknowledged messages, intact, in send order, at the
/// offsets their acknowledgements gave.
fn assert_log_holds_exactly(bootstrap: &str, topic: &str, acked: &BTreeMap<u32, i64>, when: &str) {
    let stored: Vec<(i64, Vec<u8>)> = read_partition(bootstrap, topic, 0, TIMEOUT)
        .into_iter()
        .map(|(o, _, v)| (o, v))
        .collect();
    let mut seen = BTreeMap::new();
    let mut last_seq = None;
    for (offset, v) in &stored {
        let seq = seq_of(v).unwrap_or_else(|| {
            panic!(
                "{when}: offset {offset} holds a damaged or foreign value ({} bytes: {:?}...)",
                v.len(),
                String::from_utf8_lossy(&v[..v.len().min(20)])
            )
        });
        assert!(
            last_seq.is_none_or(|l| seq > l),
            "{when}: message {seq} at offset {offset} is out of order (after {last_seq:?})"
        );
        last_seq = Some(seq);
        assert!(
            seen.insert(seq, *offset).is_none(),
            "{when}: message {seq} is stored twice"
        );
    }
    for (seq, offset) in acked {
        assert_eq!(
            seen.get(seq),
            Some(offset),
            "{when}: acknowledged message {seq} is not at its offset {offset}"
        );
    }
    let extra: Vec<_> = seen.keys().filter(|s| !acked.contains_key(s)).collect();
    assert!(
        extra.is_empty(),
        "{when}: the log holds messages that were refused, not acknowledged: {extra:?}"
    );
}

/// The two tests run one at a time: while one fills its file system, the other forks (the broker
/// process, `mount`), and (most likely) a child holding a copy of the filler's descriptor keeps its
/// space allocated after the unlink; "space returns" then failed about one run in eight.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread")]
async fn a_full_log_dir_refuses_produces_with_a_storage_error_and_loses_no_acked_message() {
    let _serial = SERIAL.lock().await;
    let fs = Tmpfs::mount("16m");
    let log_dir = fs.mount_point.join("data");
    let (mut broker, ready) = TestBroker::launch(
        &log_dir,
        "listeners=PLAINTEXT://127.0.0.1:0",
        &["auto.create.topics.enable=false".to_owned()],
    );
    broker.await_ready(ready, TIMEOUT);
    let topic = "full";
    // Small segments, so that segments roll near the full mark too.
    create_topic(&broker.bootstrap, topic, &[("segment.bytes", "4194304")]).await;
    let filler = fs.fill_leaving(1 << 20);

    // Phase 1: produce until the broker refuses.
    let p = producer(&broker.bootstrap);
    let first = produce(&p, topic, 0, 20_000).await;
    assert!(
        !first.failed.is_empty(),
        "20000 messages of {MESSAGE_BYTES} bytes fitted in about 1 MiB of free space"
    );
    assert!(
        first.acked.len() > 100,
        "only {} messages acknowledged before the disk was full",
        first.acked.len()
    );
    for (seq, e) in &first.failed {
        assert_eq!(
            e.rdkafka_error_code(),
            Some(RDKafkaErrorCode::KafkaStorageError),
            "message {seq} failed with {e}, not KAFKA_STORAGE_ERROR"
        );
    }
    assert!(
        broker.wait_for_log(
            &format!("log directory {} is full", log_dir.display()),
            Duration::from_secs(5)
        ),
        "no log line names the full directory; log:\n{}",
        broker.log()
    );
    let full_lines = broker.log().matches("is full").count();
    assert_eq!(
        full_lines,
        1,
        "one line, not one per request:\n{}",
        broker.log()
    );

    // The log is readable and holds exactly what was acknowledged, while the disk is full.
    assert_log_holds_exactly(&broker.bootstrap, topic, &first.acked, "disk full");
    // Still full: the refusal is the same, and nothing changes.
    let again = produce(&p, topic, 100_000, 50).await;
    assert!(again.acked.is_empty(), "acknowledged on a full disk");
    assert!(again
        .failed
        .values()
        .all(|e| { e.rdkafka_error_code() == Some(RDKafkaErrorCode::KafkaStorageError) }));
    drop(p);

    // Phase 2: space returns; appends succeed again without a restart.
    fs::remove_file(&filler).expect("delete the filler");
    let p = producer(&broker.bootstrap);
    let second = produce(&p, topic, 200_000, 200).await;
    assert!(
        second.failed.is_empty(),
        "produce after space returned: {:?}",
        second.failed.values().next()
    );
    assert!(
        broker.wait_for_log("accepts appends again", Duration::from_secs(5)),
        "no log line says the directory recovered; log:\n{}",
        broker.log()
    );
    drop(p);
    let mut acked = first.acked.clone();
    acked.extend(second.acked);

    // Phase 3: a restart (kill -9: recovery scans and CRC-checks the tail) keeps everything
    // acknowledged and cuts nothing, and the log takes new messages.
    broker.restart();
    assert!(
        !broker.log().contains("truncating invalid tail"),
        "recovery found a torn or corrupt tail:\n{}",
        broker.log()
    );
    assert_log_holds_exactly(&broker.bootstrap, topic, &acked, "after restart");
    let p = producer(&broker.bootstrap);
    let third = produce(&p, topic, 300_000, 100).await;
    assert!(third.failed.is_empty(), "produce after restart failed");
    acked.extend(third.acked);
    assert_log_holds_exactly(
        &broker.bootstrap,
        topic,
        &acked,
        "after restart and produce",
    );
    drop(p);
    drop(broker);
}

/// One record of `len` bytes, numbered `n`, as a producer would send it.
fn record_batch(n: u32, len: usize) -> bytes::Bytes {
    let mut v = format!("{n:08}").into_bytes();
    v.resize(len, b'x');
    build_batch(&[(None, Some(&v[..]))], 1_000, -1, -1, -1, false, false)
}

/// Sum of the `.log` files' sizes in `dir`.
fn segment_bytes_on_disk(dir: &Path) -> u64 {
    fs::read_dir(dir)
        .expect("list partition dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .map(|p| fs::metadata(p).expect("stat").len())
        .sum()
}

#[test]
fn a_partition_log_on_a_full_file_system_keeps_no_torn_bytes() {
    let _serial = SERIAL.blocking_lock();
    let fs = Tmpfs::mount("4m");
    let dir = fs.mount_point.join("t-0");
    let config = LogConfig {
        segment_bytes: 64 << 10,
        index_interval_bytes: 512,
        ..LogConfig::default()
    };
    let mut log = PartitionLog::open(&dir, config.clone()).expect("open");
    let filler = fs.fill_leaving(512 << 10);

    // Batches of about 10 KiB, so the last one is cut short by the full disk.
    let mut n = 0u32;
    let err = loop {
        assert!(n < 1000, "1000 batches of 10 KiB fitted in 512 KiB");
        match log.append(record_batch(n, 10_000), 1_000) {
            Ok(info) => assert_eq!(info.base_offset, i64::from(n)),
            Err(e) => break e,
        }
        n += 1;
    };
    assert_eq!(err.kafka_error_code(), 56, "KAFKA_STORAGE_ERROR: {err}");
    assert!(n > 10, "only {n} batches fitted");
    for _ in 0..3 {
        assert!(log.append(record_batch(n, 10_000), 1_000).is_err());
        assert_eq!(
            log.log_end_offset(),
            i64::from(n),
            "a refused append moved the log"
        );
        assert_eq!(
            segment_bytes_on_disk(&dir),
            log.size_bytes(),
            "bytes of a refused append were left in the segment files"
        );
    }

    // Space returns: the next append continues at the same offset.
    fs::remove_file(&filler).expect("delete the filler");
    let info = log.append(record_batch(n, 10_000), 1_000).expect("append");
    assert_eq!(info.base_offset, i64::from(n));
    let end = log.log_end_offset();
    drop(log);

    // Reopened with a recovery scan of every segment: the same log, every batch intact.
    fs::remove_file(dir.join("recovery-point-offset.checkpoint")).ok();
    let log = PartitionLog::open(&dir, config).expect("reopen");
    assert_eq!(log.log_end_offset(), end);
    let mut expected = 0i64;
    for item in log.batches_from(0) {
        let (header, bytes) = item.expect("stored batch");
        assert_eq!(header.base_offset, expected);
        batch::validate_produce(&bytes, usize::MAX).expect("intact batch");
        let records = batch::decode_records(&bytes).expect("records");
        let value = records[0].value.as_deref().expect("value");
        assert_eq!(&value[..8], format!("{expected:08}").as_bytes());
        expected += 1;
    }
    assert_eq!(expected, end);
}

//! kbroker driven by librdkafka (the `rdkafka` crate) exactly as an application would drive
//! Apache Kafka: admin, produce with every codec, consume, restart, kill -9.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{read_partition, TestBroker};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};

const TIMEOUT: Duration = Duration::from_secs(30);

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client")
}

async fn create_topic(bootstrap: &str, name: &str, partitions: i32, configs: &[(&str, &str)]) {
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        topic = topic.set(k, v);
    }
    let res = admin(bootstrap)
        .create_topics([&topic], &AdminOptions::new())
        .await
        .expect("create_topics request");
    for r in res {
        r.unwrap_or_else(|(t, e)| panic!("creating {t}: {e}"));
    }
}

fn producer(bootstrap: &str, extra: &[(&str, &str)]) -> FutureProducer {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .set("message.timeout.ms", "20000");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c.create().expect("producer")
}

#[tokio::test(flavor = "multi_thread")]
async fn round_trip_with_every_codec() {
    let broker = TestBroker::start(&[]);
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("codec-{codec}");
        create_topic(&broker.bootstrap, &topic, 1, &[]).await;
        let p = producer(&broker.bootstrap, &[("compression.type", codec)]);
        let mut sent = Vec::new();
        let mut deliveries = Vec::new();
        for i in 0..500u32 {
            // Compressible payloads so every codec actually compresses.
            let value = format!("{codec}-message-{i:05}-").repeat(20).into_bytes();
            let key = format!("k{i}");
            let record = FutureRecord::to(&topic).key(&key).payload(&value);
            deliveries.push(p.send_result(record).map_err(|(e, _)| e).expect("enqueue"));
            sent.push((key, value));
        }
        for d in deliveries {
            d.await.expect("delivery report").expect("acknowledged");
        }
        let got = read_partition(&broker.bootstrap, &topic, 0, TIMEOUT);
        assert_eq!(got.len(), sent.len(), "{codec}: message count");
        for (i, ((offset, key, value), (k, v))) in got.iter().zip(&sent).enumerate() {
            assert_eq!(*offset, i as i64, "{codec}: offsets are dense");
            assert_eq!(key.as_deref(), Some(k.as_bytes()), "{codec}: key {i}");
            assert_eq!(value, v, "{codec}: value {i}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_messages_survive_kill_9_and_a_torn_tail_is_cut() {
    let mut broker = TestBroker::start(&[]);
    create_topic(&broker.bootstrap, "durable", 1, &[]).await;
    let p = producer(
        &broker.bootstrap,
        &[
            ("acks", "1"),
            ("message.timeout.ms", "3000"),
            ("retries", "0"),
        ],
    );
    let mut acked: HashMap<i64, Vec<u8>> = HashMap::new();
    let stream = async {
        let mut pending = Vec::new();
        for i in 0..u32::MAX {
            let value = format!("record-{i}").into_bytes();
            pending.push((
                p.send_result(FutureRecord::<(), _>::to("durable").payload(&value))
                    .ok(),
                value,
            ));
            if pending.len() == 50 {
                for (f, v) in pending.drain(..) {
                    if let Some(Ok(Ok(d))) = match f {
                        Some(f) => Some(f.await),
                        None => None,
                    } {
                        acked.insert(d.offset, v);
                    }
                }
                tokio::task::yield_now().await;
            }
        }
    };
    // Produce for a while, then kill the broker mid-stream.
    let _ = tokio::time::timeout(Duration::from_secs(2), stream).await;
    broker.kill9();
    // The producer's unsent messages go with it: delivered to the restarted broker later,
    // they would land between the read and the produce below and race the offset check.
    drop(p);
    assert!(
        acked.len() > 100,
        "only {} messages acknowledged before the kill",
        acked.len()
    );
    // Simulate a write torn by the crash: garbage after the last complete batch.
    let seg_dir = broker.log_dir.join("durable-0");
    let last_log = std::fs::read_dir(&seg_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .max()
        .expect("a segment file");
    let valid_len = std::fs::metadata(&last_log).unwrap().len();
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&last_log)
            .unwrap();
        // A plausible batch header claiming 5000 bytes, followed by too few of them.
        let mut torn = Vec::new();
        torn.extend_from_slice(&123_456i64.to_be_bytes());
        torn.extend_from_slice(&5000i32.to_be_bytes());
        torn.extend_from_slice(&[0xAB; 300]);
        f.write_all(&torn).unwrap();
    }
    broker.restart();
    assert_eq!(
        std::fs::metadata(&last_log).unwrap().len(),
        valid_len,
        "torn tail was not cut"
    );
    let got = read_partition(&broker.bootstrap, "durable", 0, TIMEOUT);
    let by_offset: HashMap<i64, Vec<u8>> = got.into_iter().map(|(o, _, v)| (o, v)).collect();
    for (offset, value) in &acked {
        assert_eq!(
            by_offset.get(offset),
            Some(value),
            "acknowledged offset {offset} lost or changed"
        );
    }
    // The log goes on from where the valid data ended.
    let p = producer(&broker.bootstrap, &[]);
    let d = p
        .send(
            FutureRecord::<(), _>::to("durable").payload("after restart"),
            TIMEOUT,
        )
        .await
        .expect("produce after restart");
    assert_eq!(
        d.offset as usize,
        by_offset.len(),
        "offsets continue after the recovered end"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_deletes_old_segments() {
    let broker = TestBroker::start(&["log.retention.check.interval.ms=300"]);
    create_topic(
        &broker.bootstrap,
        "short-lived",
        1,
        &[("segment.bytes", "20000"), ("retention.bytes", "50000")],
    )
    .await;
    let p = producer(
        &broker.bootstrap,
        &[("batch.size", "4000"), ("linger.ms", "0")],
    );
    for i in 0..300 {
        p.send(
            FutureRecord::<(), _>::to("short-lived").payload(&vec![b'x'; 1000]),
            TIMEOUT,
        )
        .await
        .unwrap_or_else(|e| panic!("message {i}: {e:?}"));
    }
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &broker.bootstrap)
        .create()
        .unwrap();
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        let (low, high) = consumer
            .fetch_watermarks("short-lived", 0, TIMEOUT)
            .unwrap();
        let segments = std::fs::read_dir(broker.log_dir.join("short-lived-0"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "log")
            })
            .count();
        let bytes: u64 = std::fs::read_dir(broker.log_dir.join("short-lived-0"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "log"))
            // A segment may be deleted between the listing and this.
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        assert_eq!(high, 300);
        // A retention pass may have run while the messages were still arriving (the log start
        // moved, then more segments were written): wait for one that saw all of them.
        if low > 0 && segments <= 4 && bytes < 300 * 1000 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "retention left log start {low}, {segments} segments, {bytes} bytes for ~50 KB of retention.bytes"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn too_large_message_is_refused_with_the_size_error() {
    let broker = TestBroker::start(&["message.max.bytes=10000"]);
    create_topic(&broker.bootstrap, "small", 1, &[]).await;
    // The client allows more than the broker, so the broker's limit is what refuses it.
    let p = producer(
        &broker.bootstrap,
        &[
            ("message.max.bytes", "100000"),
            ("compression.type", "none"),
        ],
    );
    let err = p
        .send(
            FutureRecord::<(), _>::to("small").payload(&vec![7u8; 50_000]),
            TIMEOUT,
        )
        .await
        .expect_err("a 50 KB message must be refused");
    assert_eq!(
        err.0,
        KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge),
        "wrong error"
    );
    // Smaller messages still go through.
    p.send(
        FutureRecord::<(), _>::to("small").payload(&vec![7u8; 5000]),
        TIMEOUT,
    )
    .await
    .expect("a 5 KB message is accepted");
}

#[tokio::test(flavor = "multi_thread")]
async fn topics_and_their_configs_survive_a_restart() {
    let mut broker = TestBroker::start(&[]);
    create_topic(&broker.bootstrap, "kept", 3, &[("retention.ms", "123456")]).await;
    let p = producer(&broker.bootstrap, &[]);
    for part in 0..3 {
        p.send(
            FutureRecord::<(), _>::to("kept")
                .partition(part)
                .payload("x"),
            TIMEOUT,
        )
        .await
        .unwrap();
    }
    assert!(broker.stop(), "clean shutdown on SIGTERM exits 0");
    broker.restart();
    let a = admin(&broker.bootstrap);
    let res = a
        .describe_configs(
            [&rdkafka::admin::ResourceSpecifier::Topic("kept")],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    let cfg = res.into_iter().next().unwrap().expect("describe topic");
    let retention = cfg.get("retention.ms").expect("retention.ms listed");
    assert_eq!(retention.value.as_deref(), Some("123456"));
    assert!(!retention.is_default);
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &broker.bootstrap)
        .create()
        .unwrap();
    let md = consumer.fetch_metadata(Some("kept"), TIMEOUT).unwrap();
    assert_eq!(md.topics()[0].partitions().len(), 3);
    for part in 0..3 {
        assert_eq!(
            consumer.fetch_watermarks("kept", part, TIMEOUT).unwrap(),
            (0, 1)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn admin_creates_grows_and_deletes_topics() {
    let broker = TestBroker::start(&["auto.create.topics.enable=false"]);
    let a = admin(&broker.bootstrap);
    create_topic(&broker.bootstrap, "admin-t", 2, &[]).await;
    // Creating it again is refused with TOPIC_ALREADY_EXISTS.
    let again = a
        .create_topics(
            [&NewTopic::new("admin-t", 2, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    assert_eq!(
        again[0].as_ref().unwrap_err().1,
        RDKafkaErrorCode::TopicAlreadyExists
    );
    // A replication factor this single broker cannot hold is refused.
    let rf3 = a
        .create_topics(
            [&NewTopic::new("rf3", 1, TopicReplication::Fixed(3))],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    assert_eq!(
        rf3[0].as_ref().unwrap_err().1,
        RDKafkaErrorCode::InvalidReplicationFactor
    );
    let grown = a
        .create_partitions(
            [&rdkafka::admin::NewPartitions::new("admin-t", 5)],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    grown[0].as_ref().expect("grow to 5");
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &broker.bootstrap)
        .create()
        .unwrap();
    let md = consumer.fetch_metadata(Some("admin-t"), TIMEOUT).unwrap();
    assert_eq!(md.topics()[0].partitions().len(), 5);
    let deleted = a
        .delete_topics(&["admin-t"], &AdminOptions::new())
        .await
        .unwrap();
    deleted[0].as_ref().expect("delete");
    assert!(
        !broker.log_dir.join("admin-t-0").exists(),
        "partition data removed"
    );
    let md = consumer.fetch_metadata(None, TIMEOUT).unwrap();
    assert!(md.topics().iter().all(|t| t.name() != "admin-t"));
    // With auto-creation off, producing to a missing topic fails instead of creating it.
    let p = producer(&broker.bootstrap, &[("message.timeout.ms", "2000")]);
    let err = p
        .send(
            FutureRecord::<(), _>::to("never-created").payload("x"),
            TIMEOUT,
        )
        .await
        .expect_err("no auto-create");
    assert!(matches!(err.0, KafkaError::MessageProduction(_)), "{err:?}");
}

/// A log dir a single kbroker of an earlier version wrote (its topic registry
/// `kbroker-topics.json`, no metadata log) is refused with a message naming the dir and what
/// to do, before anything is written to it; the same dir without the registry starts.
#[test]
fn a_log_dir_of_an_earlier_single_broker_is_refused_with_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    std::fs::create_dir_all(dir.join("old-0")).unwrap();
    let registry = r#"[{"name":"old","id":"00000000-0000-0000-0000-000000000001","partitions":1,"replication_factor":1,"configs":{}}]"#;
    std::fs::write(dir.join("kbroker-topics.json"), registry).unwrap();
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_kbroker"))
            .arg("--override")
            .arg("listeners=PLAINTEXT://127.0.0.1:0")
            .arg("--override")
            .arg(format!("log.dirs={}", dir.display()))
            .env("KBROKER_LOG", "info")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn kbroker")
    };
    let mut child = run();
    let mut waited = 0;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if waited > 300 {
            let _ = child.kill();
            let _ = child.wait();
            panic!("kbroker kept running on an earlier single broker's log dir");
        }
        std::thread::sleep(Duration::from_millis(100));
        waited += 1;
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success(), "refused: {stderr}");
    let shown = dir.display().to_string();
    assert!(
        stderr.contains(&shown)
            && stderr.contains("kbroker-topics.json")
            && stderr.contains("earlier version")
            && stderr.contains("empty log dir"),
        "the message names the dir, the file and what to do: {stderr}"
    );
    assert!(
        !dir.join("__cluster_metadata-0").exists(),
        "nothing written into the refused dir"
    );
    // The guard looks at the registry only: without it the same dir opens.
    std::fs::remove_file(dir.join("kbroker-topics.json")).unwrap();
    let (mut broker, ready) = TestBroker::launch(&dir, "listeners=PLAINTEXT://127.0.0.1:0", &[]);
    broker.await_ready(ready, Duration::from_secs(30));
    assert!(broker.stop(), "clean shutdown on SIGTERM exits 0");
}

/// Starts kbroker on `dir` with `overrides` and waits (bounded) for it to exit: its status and
/// everything it logged.
fn run_until_exit(dir: &std::path::Path, overrides: &[&str]) -> (std::process::ExitStatus, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_kbroker"));
    cmd.arg("--override")
        .arg(format!("log.dirs={}", dir.display()));
    for o in overrides {
        cmd.arg("--override").arg(o);
    }
    let mut child = cmd
        .env("KBROKER_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn kbroker");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("kbroker on {} did not exit", dir.display());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status, stderr)
}

/// A log dir used by a lone broker (a quorum of one) and then started as a member of a
/// two-voter cluster is refused, naming the metadata log and both quorums, instead of waiting
/// for an election its configuration cannot win.
#[test]
fn a_lone_brokers_log_dir_started_with_other_voters_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let (mut lone, ready) = TestBroker::launch(&dir, "listeners=PLAINTEXT://127.0.0.1:0", &[]);
    lone.await_ready(ready, Duration::from_secs(30));
    assert!(lone.stop(), "clean shutdown on SIGTERM exits 0");
    let ports: Vec<u16> = (0..2)
        .map(|_| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        })
        .collect();
    let listeners = format!(
        "listeners=PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:{}",
        ports[0]
    );
    let voters = format!(
        "controller.quorum.voters=0@127.0.0.1:{},1@127.0.0.1:{}",
        ports[0], ports[1]
    );
    let (status, log) = run_until_exit(
        &dir,
        &[&listeners, "controller.listener.names=CONTROLLER", &voters],
    );
    assert!(!status.success(), "refused: {log}");
    assert!(
        log.contains("one voter, broker 0")
            && log.contains("voters 0,1")
            && log.contains("__cluster_metadata-0"),
        "the message names both quorums and the metadata log: {log}"
    );
}

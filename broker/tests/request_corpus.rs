//! The requests real clients send, recorded on their way to a real kbroker by a small TCP proxy
//! in this test: every frame librdkafka (the `rdkafka` crate) sends while administering topics,
//! producing with every codec, idempotently and in transactions, and consuming in a group must
//! decode through `kbroker::decode_request` (the path and bounds check the connection uses), and
//! every record batch it produces must pass `validate_produce`.
//!
//! With `KBROKER_CAPTURE_CORPUS=1` the test also runs the third-party clients of `compat/`
//! (kafka-python, confluent-kafka, kcat; `.ci/install-deps.sh` installs them) through the proxy,
//! and rewrites the fuzz seed corpus from what it saw: up to three distinct frames per API and
//! version in `fuzz/corpus/request_frame/` (`<api>_v<N>_<nnn>`, as captured), the produced
//! record sets in `fuzz/corpus/record_batch/` (`<codec>_<producer kind>_<nnn>`), and frames built
//! with the protocol crate for what no client here sends (`synthetic_<api>_v<N>`:
//! WriteTxnMarkers and OffsetForLeaderEpoch, which brokers send each other).
//!
//! ```sh
//! KBROKER_CAPTURE_CORPUS=1 cargo test -p kbroker --test request_corpus -- --nocapture
//! ```

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::TestBroker;
use kafka_protocol::messages::{ApiKey, RequestKind};
use kafka_protocol::protocol::{Encodable, StrBytes};
use kbroker::log::batch::{BatchHeader, Compression};
use rdkafka::admin::{
    AdminClient, AdminOptions, NewPartitions, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

const T: Duration = Duration::from_secs(30);
/// Frames larger than this are not kept as seeds (the fuzzer works best on small inputs).
const MAX_SEED: usize = 16 * 1024;
/// Distinct seeds kept per API and version, and per kind of record set.
const PER_KIND: usize = 3;

/// A TCP proxy that records every request frame clients send through it.
struct Recorder {
    /// Where clients connect (the broker advertises this address).
    addr: String,
    /// The broker's own address, set once it is up.
    upstream: Arc<OnceLock<String>>,
    /// Every frame seen, in arrival order per connection.
    frames: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Recorder {
    fn start() -> Recorder {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address").to_string();
        let upstream: Arc<OnceLock<String>> = Arc::default();
        let frames: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let (up, fr) = (upstream.clone(), frames.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                let (up, fr) = (up.clone(), fr.clone());
                std::thread::spawn(move || relay(client, &up, &fr));
            }
        });
        Recorder {
            addr,
            upstream,
            frames,
        }
    }

    fn frames(&self) -> Vec<Vec<u8>> {
        self.frames.lock().unwrap().clone()
    }
}

/// Forwards one client connection: requests frame by frame (recorded), responses as bytes.
fn relay(mut client: TcpStream, upstream: &OnceLock<String>, frames: &Mutex<Vec<Vec<u8>>>) {
    let Some(addr) = upstream.get() else { return };
    let Ok(mut server) = TcpStream::connect(addr) else {
        return;
    };
    let (Ok(mut from_server), Ok(mut to_client)) = (server.try_clone(), client.try_clone()) else {
        return;
    };
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_server, &mut to_client);
        let _ = to_client.shutdown(Shutdown::Both);
    });
    loop {
        let mut size = [0u8; 4];
        if client.read_exact(&mut size).is_err() {
            break;
        }
        let n = i32::from_be_bytes(size);
        if !(0..=64 << 20).contains(&n) {
            break;
        }
        let mut frame = vec![0u8; n as usize];
        if client.read_exact(&mut frame).is_err() {
            break;
        }
        frames.lock().unwrap().push(frame.clone());
        if server
            .write_all(&size)
            .and_then(|_| server.write_all(&frame))
            .is_err()
        {
            break;
        }
    }
    let _ = server.shutdown(Shutdown::Both);
}

/// A broker that tells clients to connect through `proxy`.
fn broker_behind(proxy: &Recorder) -> TestBroker {
    let port = proxy.addr.rsplit(':').next().unwrap();
    let advertised = format!("advertised.listeners=PLAINTEXT://127.0.0.1:{port}");
    let broker = TestBroker::start(&[
        &advertised,
        "num.partitions=3",
        "auto.create.topics.enable=true",
        "transaction.abort.timed.out.transaction.cleanup.interval.ms=500",
    ]);
    proxy.upstream.set(broker.bootstrap.clone()).unwrap();
    broker
}

fn config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap);
    c
}

/// Everything librdkafka does in kbench's runs, and the admin calls it offers.
async fn rdkafka_session(bootstrap: &str) {
    let admin: AdminClient<DefaultClientContext> = config(bootstrap).create().expect("admin");
    let opts = AdminOptions::new().operation_timeout(Some(T));
    let topics = [
        NewTopic::new("corpus-codecs", 2, TopicReplication::Fixed(1))
            .set("max.message.bytes", "200000"),
        NewTopic::new("corpus-txn", 1, TopicReplication::Fixed(1)),
        NewTopic::new("corpus-doomed", 1, TopicReplication::Fixed(1)),
    ];
    let created = admin.create_topics(&topics, &opts).await.expect("create");
    assert!(created.iter().all(Result::is_ok), "{created:?}");
    let grown = admin
        .create_partitions(&[NewPartitions::new("corpus-codecs", 3)], &opts)
        .await
        .expect("create partitions");
    assert!(grown.iter().all(Result::is_ok), "{grown:?}");
    let described = admin
        .describe_configs(
            &[
                ResourceSpecifier::Topic("corpus-codecs"),
                ResourceSpecifier::Broker(0),
            ],
            &opts,
        )
        .await
        .expect("describe configs");
    assert!(described.iter().all(Result::is_ok), "{described:?}");
    let deleted = admin
        .delete_topics(&["corpus-doomed"], &opts)
        .await
        .expect("delete");
    assert!(deleted.iter().all(Result::is_ok), "{deleted:?}");

    // Every codec, plain (acks=1) and idempotent (acks=all).
    for (codec, idempotent) in [
        ("none", false),
        ("gzip", false),
        ("snappy", false),
        ("lz4", false),
        ("zstd", false),
        ("none", true),
        ("lz4", true),
    ] {
        let producer: FutureProducer = config(bootstrap)
            .set("compression.type", codec)
            .set("enable.idempotence", idempotent.to_string())
            .set("acks", if idempotent { "all" } else { "1" })
            .set("linger.ms", "20")
            .create()
            .expect("producer");
        let sends = (0..20).map(|i| {
            let key = format!("k{i}");
            let value = format!("{codec} value {i} {}", "x".repeat(i * 7));
            let producer = &producer;
            async move {
                producer
                    .send(
                        FutureRecord::to("corpus-codecs")
                            .key(&key)
                            .payload(&value)
                            .headers(rdkafka::message::OwnedHeaders::new().insert(
                                rdkafka::message::Header {
                                    key: "h",
                                    value: Some("v"),
                                },
                            )),
                        T,
                    )
                    .await
                    .map_err(|(e, _)| e)
            }
        });
        for r in futures::future::join_all(sends).await {
            r.expect("delivery");
        }
    }

    // A consumer group that reads, commits and looks itself up.
    let consumer: BaseConsumer = config(bootstrap)
        .set("group.id", "corpus-group")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("heartbeat.interval.ms", "100")
        .create()
        .expect("consumer");
    consumer.subscribe(&["corpus-codecs"]).expect("subscribe");
    let deadline = Instant::now() + T;
    let mut read = Vec::new();
    while read.len() < 140 {
        assert!(Instant::now() < deadline, "read {} of 140", read.len());
        read.extend(common::poll_batch(&consumer, 140 - read.len()));
    }
    consumer
        .commit(
            &common::next_offsets("corpus-codecs", &read),
            CommitMode::Sync,
        )
        .expect("commit");
    consumer.committed(T).expect("committed offsets");
    consumer
        .fetch_watermarks("corpus-codecs", 0, T)
        .expect("watermarks");
    let mut at = rdkafka::TopicPartitionList::new();
    at.add_partition_offset("corpus-codecs", 0, rdkafka::Offset::Offset(0))
        .unwrap();
    consumer
        .offsets_for_times(at, T)
        .expect("offsets for times");
    consumer
        .fetch_group_list(Some("corpus-group"), T)
        .expect("group list");
    consumer.fetch_metadata(None, T).expect("metadata");

    // Transactions: one committed with the group's offsets, one aborted.
    let txn: FutureProducer = config(bootstrap)
        .set("transactional.id", "corpus-txn-id")
        .set("linger.ms", "5")
        .create()
        .expect("transactional producer");
    txn.init_transactions(T).expect("init transactions");
    for commit in [true, false] {
        txn.begin_transaction().expect("begin");
        for i in 0..5 {
            let v = format!("txn {commit} {i}");
            txn.send(FutureRecord::<(), _>::to("corpus-txn").payload(&v), T)
                .await
                .map_err(|(e, _)| e)
                .expect("transactional delivery");
        }
        if commit {
            let cgm = consumer.group_metadata().expect("group metadata");
            txn.send_offsets_to_transaction(&consumer.position().expect("position"), &cgm, T)
                .expect("offsets to transaction");
            txn.commit_transaction(T).expect("commit");
        } else {
            txn.abort_transaction(T).expect("abort");
        }
    }
    consumer.unsubscribe();
    drop(consumer);
    // A second member resumes from the committed offsets.
    let again: BaseConsumer = config(bootstrap)
        .set("group.id", "corpus-group")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    again
        .subscribe(&["corpus-codecs", "corpus-txn"])
        .expect("subscribe");
    let _ = common::poll_batch(&again, 10);
    drop(again);
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// Runs one third-party client through the proxy; it must succeed, at the second attempt at
/// the latest (kcat's codec check counts on batches of several messages, and the proxy's extra
/// hop sometimes leaves librdkafka 2.0.2 a batch of one, which it sends uncompressed).
fn third_party(what: &str, mut cmd: Command) {
    cmd.env_remove("LD_LIBRARY_PATH")
        .current_dir(repo_root())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null());
    let mut failure = String::new();
    for attempt in 1..=2 {
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run {what}: {e}; run .ci/install-deps.sh"));
        if out.status.success() {
            println!("captured: {what} (attempt {attempt})");
            return;
        }
        failure = format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    panic!("{what} failed twice through the proxy:\n{failure}");
}

/// The compat suite's clients, through the proxy.
fn third_party_session(bootstrap: &str) {
    let python = repo_root().join(".venv/bin/python");
    let compat = repo_root().join("compat");
    for (script, scenarios) in [
        (
            "kafka_python_compat.py",
            &["admin", "roundtrip", "group", "codecs"][..],
        ),
        (
            "confluent_kafka_compat.py",
            &["admin", "roundtrip", "group", "codecs"][..],
        ),
        (
            "transactions_compat.py",
            &["ck_commit_abort", "kp_commit_abort"][..],
        ),
    ] {
        let mut cmd = Command::new(&python);
        cmd.arg(compat.join(script)).arg(bootstrap).args(scenarios);
        third_party(&format!("{script} {}", scenarios.join(" ")), cmd);
    }
    let mut cmd = Command::new(&python);
    cmd.arg("-c")
        .arg(
            "import sys; from kafka import KafkaAdminClient\n\
             a = KafkaAdminClient(bootstrap_servers=sys.argv[1])\n\
             print(a.describe_log_dirs()); print(a.describe_cluster()); a.close()",
        )
        .arg(bootstrap);
    third_party("kafka-python describe_log_dirs, describe_cluster", cmd);
    let mut cmd = Command::new("bash");
    cmd.arg(compat.join("kcat_compat.sh"))
        .arg(bootstrap)
        .args(["metadata", "codecs", "group"]);
    third_party("kcat_compat.sh metadata codecs group", cmd);
}

/// A request frame (without the size prefix) built with the protocol crate.
fn frame<R: Encodable>(api: ApiKey, version: i16, body: &R) -> Vec<u8> {
    common::wire::request_frame(api, version, 7, "kbroker", body)
}

/// Requests no client here sends: what one kbroker sends another (WriteTxnMarkers, and
/// OffsetForLeaderEpoch, which a follower asks its leader).
fn synthetic_frames() -> Vec<(String, Vec<u8>)> {
    use kafka_protocol::messages::offset_for_leader_epoch_request::{
        OffsetForLeaderPartition, OffsetForLeaderTopic,
    };
    use kafka_protocol::messages::write_txn_markers_request::{
        WritableTxnMarker, WritableTxnMarkerTopic,
    };
    use kafka_protocol::messages::{
        OffsetForLeaderEpochRequest, TopicName, WriteTxnMarkersRequest,
    };
    let mut epochs = OffsetForLeaderEpochRequest::default();
    epochs.replica_id = kafka_protocol::messages::BrokerId(2);
    let mut t = OffsetForLeaderTopic::default();
    t.topic = TopicName(StrBytes::from_static_str("corpus-codecs"));
    for partition in 0..2 {
        let mut p = OffsetForLeaderPartition::default();
        p.partition = partition;
        p.current_leader_epoch = 4;
        p.leader_epoch = 3;
        t.partitions.push(p);
    }
    epochs.topics.push(t);
    let mut topic = WritableTxnMarkerTopic::default();
    topic.name = TopicName(StrBytes::from_static_str("corpus-txn"));
    topic.partition_indexes = vec![0, 1];
    let mut marker = WritableTxnMarker::default();
    marker.producer_id = kafka_protocol::messages::ProducerId(4000);
    marker.producer_epoch = 2;
    marker.transaction_result = true;
    marker.coordinator_epoch = 3;
    marker.topics.push(topic);
    let mut req = WriteTxnMarkersRequest::default();
    req.markers.push(marker);
    let mut out = vec![(
        "synthetic_write_txn_markers_v1".to_owned(),
        frame(ApiKey::WriteTxnMarkers, 1, &req),
    )];
    for v in [2, 4] {
        out.push((
            format!("synthetic_offset_for_leader_epoch_v{v}"),
            frame(ApiKey::OffsetForLeaderEpoch, v, &epochs),
        ));
    }
    out
}

/// `AddPartitionsToTxn` → `add_partitions_to_txn`.
fn snake(api: ApiKey) -> String {
    let mut out = String::new();
    for (i, c) in format!("{api:?}").chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// What a produce payload is, for naming seeds: codec and producer kind of its first batch.
fn batch_kind(records: &[u8]) -> String {
    let h = BatchHeader::parse(records).expect("a produced batch has a header");
    let codec = match h.compression() {
        Some(Compression::None) => "none",
        Some(Compression::Gzip) => "gzip",
        Some(Compression::Snappy) => "snappy",
        Some(Compression::Lz4) => "lz4",
        Some(Compression::Zstd) => "zstd",
        None => "unknown",
    };
    let kind = if h.is_transactional() {
        "transactional"
    } else if h.producer_id >= 0 {
        "idempotent"
    } else {
        "plain"
    };
    format!("{codec}_{kind}")
}

/// Replaces the files of `dir` with `files`.
fn rewrite(dir: &Path, files: &BTreeMap<String, Vec<u8>>) {
    if dir.exists() {
        for entry in std::fs::read_dir(dir).unwrap() {
            std::fs::remove_file(entry.unwrap().path()).unwrap();
        }
    }
    std::fs::create_dir_all(dir).unwrap();
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    println!("wrote {} seeds to {}", files.len(), dir.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_real_clients_send_decodes_and_every_batch_validates() {
    let capture = std::env::var_os("KBROKER_CAPTURE_CORPUS").is_some_and(|v| v == "1");
    let proxy = Recorder::start();
    let _broker = broker_behind(&proxy);
    rdkafka_session(&proxy.addr).await;
    let from_rdkafka = proxy.frames().len();
    if capture {
        let addr = proxy.addr.clone();
        tokio::task::spawn_blocking(move || third_party_session(&addr))
            .await
            .unwrap();
    }
    let frames = proxy.frames();

    let mut seen: BTreeSet<(i16, i16)> = BTreeSet::new();
    let mut requests: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut per_version: BTreeMap<(i16, i16), BTreeSet<Vec<u8>>> = BTreeMap::new();
    let mut batches: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut per_kind: BTreeMap<String, BTreeSet<Vec<u8>>> = BTreeMap::new();
    for (i, f) in frames.iter().enumerate() {
        let request = match kbroker::decode_request(Bytes::copy_from_slice(f)) {
            Ok(r) => r,
            // Newer clients try ApiVersions above kbroker's range first and retry as told.
            Err(kbroker::request::RequestError::ApiVersionsTooNew { .. }) => continue,
            Err(e) => panic!(
                "frame {i} of {} from a real client does not decode: {e}",
                frames.len()
            ),
        };
        let key = (request.api_key as i16, request.version);
        if i < from_rdkafka {
            seen.insert(key);
        }
        let kept = per_version.entry(key).or_default();
        if f.len() <= MAX_SEED && kept.len() < PER_KIND && kept.insert(f.clone()) {
            let name = format!(
                "{}_v{}_{:03}",
                snake(request.api_key),
                request.version,
                kept.len() - 1
            );
            requests.insert(name, f.clone());
        }
        if let RequestKind::Produce(p) = request.body {
            for records in p
                .topic_data
                .iter()
                .flat_map(|t| &t.partition_data)
                .filter_map(|p| p.records.as_ref())
            {
                if let Err(e) = kbroker::log::validate_produce(records, usize::MAX) {
                    panic!("a batch a real client produced is refused: {e}");
                }
                let kind = batch_kind(records);
                let kept = per_kind.entry(kind.clone()).or_default();
                if records.len() <= MAX_SEED
                    && kept.len() < PER_KIND
                    && kept.insert(records.to_vec())
                {
                    batches.insert(format!("{kind}_{:03}", kept.len() - 1), records.to_vec());
                }
            }
        }
    }

    // What librdkafka alone must have sent: everything but the broker-to-broker and the
    // admin calls the rdkafka crate does not offer.
    let expected = [
        ApiKey::Produce,
        ApiKey::Fetch,
        ApiKey::ListOffsets,
        ApiKey::Metadata,
        ApiKey::ApiVersions,
        ApiKey::CreateTopics,
        ApiKey::DeleteTopics,
        ApiKey::CreatePartitions,
        ApiKey::DescribeConfigs,
        ApiKey::InitProducerId,
        ApiKey::AddPartitionsToTxn,
        ApiKey::AddOffsetsToTxn,
        ApiKey::EndTxn,
        ApiKey::TxnOffsetCommit,
        ApiKey::FindCoordinator,
        ApiKey::JoinGroup,
        ApiKey::SyncGroup,
        ApiKey::Heartbeat,
        ApiKey::LeaveGroup,
        ApiKey::OffsetCommit,
        ApiKey::OffsetFetch,
        ApiKey::ListGroups,
        ApiKey::DescribeGroups,
    ];
    let apis: BTreeSet<i16> = seen.iter().map(|&(k, _)| k).collect();
    let missing: Vec<_> = expected
        .iter()
        .filter(|a| !apis.contains(&(**a as i16)))
        .collect();
    assert!(
        missing.is_empty(),
        "librdkafka sent none of {missing:?}; saw {seen:?}"
    );
    let codecs: BTreeSet<String> = per_kind
        .keys()
        .map(|k| k.split('_').next().unwrap().to_owned())
        .collect();
    assert_eq!(codecs.len(), 5, "produced codecs: {codecs:?}");
    println!(
        "{} frames ({from_rdkafka} from librdkafka): {} API versions",
        frames.len(),
        per_version.len()
    );

    if capture {
        for (name, bytes) in synthetic_frames() {
            kbroker::decode_request(Bytes::from(bytes.clone())).expect("a synthetic frame decodes");
            requests.insert(name, bytes);
        }
        let corpus = repo_root().join("fuzz/corpus");
        rewrite(&corpus.join("request_frame"), &requests);
        rewrite(&corpus.join("record_batch"), &batches);
    }
}

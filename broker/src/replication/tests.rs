//! In-process replication tests: a real leader broker (its [`Broker`] state served by the real
//! connection loop on port 0, so follower fetches go through the real Fetch handler and
//! produce requests through the real Produce handler), a follower partition in its own
//! directory copied by a real fetcher task, and a fake [`ClusterLink`] standing in for the
//! cluster metadata layer (it commits every ISR change at once and records it).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, TopicName};

use super::{ClusterLink, ReplicaManager, ReplicationSettings};
use crate::broker::Broker;
use crate::log::{batch, build_batch, LogConfig};
use crate::partition::LeaderAndIsr;
use crate::partition::Partition;
use crate::wire::client::Connection;

const LEADER: i32 = 1;
const FOLLOWER: i32 = 2;
const TOPIC: &str = "r";

/// The fake metadata layer.
struct FakeLink {
    node: i32,
    leader_addr: (String, u16),
    /// Every committed ISR change.
    isr_changes: Arc<Mutex<Vec<Vec<i32>>>>,
}

impl ClusterLink for FakeLink {
    fn node_id(&self) -> i32 {
        self.node
    }
    fn endpoint(&self, broker: i32) -> Option<(String, u16)> {
        (broker == LEADER).then(|| self.leader_addr.clone())
    }
    fn alter_isr(
        &self,
        _topic: &str,
        _partition: i32,
        mut proposed: LeaderAndIsr,
    ) -> BoxFuture<'static, Result<LeaderAndIsr, i16>> {
        self.isr_changes.lock().unwrap().push(proposed.isr.clone());
        proposed.partition_epoch += 1;
        Box::pin(async move { Ok(proposed) })
    }
}

struct Cluster {
    _dir: tempfile::TempDir,
    broker: Arc<Broker>,
    addr: std::net::SocketAddr,
    leader: Arc<Partition>,
    leader_mgr: Arc<ReplicaManager>,
    follower: Arc<Partition>,
    follower_mgr: Arc<ReplicaManager>,
    isr_changes: Arc<Mutex<Vec<Vec<i32>>>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.server.abort();
        self.leader_mgr.shutdown();
        self.follower_mgr.shutdown();
    }
}

fn settings() -> ReplicationSettings {
    ReplicationSettings {
        replica_lag_time_max_ms: 1000,
        replica_fetch_wait_max_ms: 100,
        replica_socket_timeout_ms: 5000,
        ..ReplicationSettings::default()
    }
}

fn state(leader: i32, epoch: i32, isr: &[i32]) -> LeaderAndIsr {
    LeaderAndIsr {
        leader,
        leader_epoch: epoch,
        partition_epoch: 0,
        replicas: vec![LEADER, FOLLOWER],
        isr: isr.to_vec(),
    }
}

/// A leader broker with topic `r` (one partition, `configs`), and a follower partition.
async fn cluster(configs: &[(&str, &str)]) -> Cluster {
    let dir = tempfile::tempdir().unwrap();
    let mut raw = BTreeMap::new();
    raw.insert("node.id".into(), LEADER.to_string());
    raw.insert(
        "log.dirs".into(),
        dir.path().join("leader").display().to_string(),
    );
    raw.insert("listeners".into(), "PLAINTEXT://127.0.0.1:0".into());
    let config = crate::BrokerConfig::from_map(raw).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // The leader broker's own quorum is a lone voter; the topic is opened here directly
    // (replicas and ISR are driven by the test, not by the metadata).
    let quorum = crate::cluster::Cluster::start(
        crate::cluster::ClusterConfig {
            node_id: LEADER,
            voters: BTreeMap::from([(LEADER, "127.0.0.1:0".parse().unwrap())]),
            host: "127.0.0.1".into(),
            port: addr.port(),
            rack: None,
            metadata_dir: dir.path().join("leader/__cluster_metadata-0"),
            session_timeout: Duration::from_secs(9),
            unclean_leader_election: false,
            leader_rebalance: None,
        },
        None,
        Duration::from_secs(15),
    )
    .await
    .unwrap();
    let broker = Arc::new(Broker::open(config, addr, quorum).unwrap());
    let configs: BTreeMap<String, String> = configs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let spec = crate::topics::TopicSpec {
        name: TOPIC,
        id: uuid::Uuid::new_v4(),
        configs: &configs,
        partition_count: 1,
        replication_factor: 2,
    };
    broker.topics.ensure(&spec, &[0]).unwrap();
    let leader = broker.topics.partition(TOPIC, 0).unwrap();
    let b = broker.clone();
    let server = tokio::spawn(async move {
        let (_stop_tx, stop) = tokio::sync::watch::channel(false);
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                return;
            };
            tokio::spawn(crate::connection::serve(
                stream,
                peer,
                b.clone(),
                stop.clone(),
            ));
        }
    });
    let follower = Arc::new(
        Partition::open(
            TOPIC,
            0,
            &dir.path().join("follower/r-0"),
            LogConfig::default(),
        )
        .unwrap(),
    );
    let isr_changes = Arc::new(Mutex::new(Vec::new()));
    let link = |node| {
        Arc::new(FakeLink {
            node,
            leader_addr: ("127.0.0.1".into(), addr.port()),
            isr_changes: isr_changes.clone(),
        })
    };
    let leader_mgr = ReplicaManager::new(link(LEADER), settings());
    let follower_mgr = ReplicaManager::new(link(FOLLOWER), settings());
    Cluster {
        _dir: dir,
        broker,
        addr,
        leader,
        leader_mgr,
        follower,
        follower_mgr,
        isr_changes,
        server,
    }
}

/// Sends one Produce v9 request for `r-0`.
async fn produce(
    addr: std::net::SocketAddr,
    acks: i16,
    timeout_ms: i32,
    records: bytes::Bytes,
) -> (i16, i64) {
    let mut conn = Connection::connect("127.0.0.1", addr.port(), "test", Duration::from_secs(5))
        .await
        .unwrap();
    let mut pd = PartitionProduceData::default();
    pd.index = 0;
    pd.records = Some(records);
    let mut td = TopicProduceData::default();
    td.name = TopicName(crate::wire::str_bytes(TOPIC));
    td.partition_data.push(pd);
    let mut req = ProduceRequest::default();
    req.acks = acks;
    req.timeout_ms = timeout_ms;
    req.topic_data.push(td);
    let resp: ProduceResponse = conn
        .call(ApiKey::Produce, 9, &req, Duration::from_secs(20))
        .await
        .unwrap();
    let pr = &resp.responses[0].partition_responses[0];
    (pr.error_code, pr.base_offset)
}

fn records(n: usize) -> bytes::Bytes {
    let values = vec![(None, Some(&b"value"[..])); n];
    build_batch(&values, 1, -1, -1, -1, false, false)
}

/// Polls `cond` every 20 ms for at most `secs` seconds.
async fn eventually(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_all_completes_only_once_the_follower_has_the_batch() {
    let c = cluster(&[("min.insync.replicas", "2")]).await;
    c.leader_mgr
        .apply(&c.leader, &state(LEADER, 1, &[LEADER, FOLLOWER]));
    // The follower is not fetching: acks=all cannot complete.
    let (code, _) = produce(c.addr, -1, 300, records(2)).await;
    assert_eq!(
        code, 7,
        "REQUEST_TIMED_OUT while the ISR follower has not fetched"
    );
    assert_eq!(
        c.leader.offsets().high_watermark,
        0,
        "HW held by the follower"
    );
    // acks=1 answers from the leader's log alone.
    let (code, base) = produce(c.addr, 1, 300, records(1)).await;
    assert_eq!((code, base), (0, 2));
    c.follower_mgr
        .apply(&c.follower, &state(LEADER, 1, &[LEADER, FOLLOWER]));
    let (code, base) = produce(c.addr, -1, 10_000, records(3)).await;
    assert_eq!((code, base), (0, 3));
    assert!(
        c.follower.log_end_offset() >= 6,
        "acks=all answered before the follower had the batch (follower end {})",
        c.follower.log_end_offset()
    );
    assert_eq!(c.leader.offsets().high_watermark, 6);
    eventually(5, "the follower's HW", || {
        c.follower.offsets().high_watermark == 6
    })
    .await;
    // The follower's copy carries the leader's offsets and epoch.
    let data = c.follower.fetch_for_replica(0, 1 << 20, true).unwrap();
    let headers: Vec<_> = batch::batches(&data).map(|b| b.unwrap().0).collect();
    assert_eq!(
        headers.iter().map(|h| h.base_offset).collect::<Vec<_>>(),
        vec![0, 2, 3]
    );
    assert!(headers.iter().all(|h| h.partition_leader_epoch == 1));
    assert_eq!(c.follower.latest_epoch(), 1);
    // A follower is not a leader: produce to it is refused.
    let bytes = records(1);
    let h = batch::validate_produce(&bytes, 1 << 20).unwrap();
    assert_eq!(c.follower.append(bytes, &h, 1).unwrap_err().code(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_follower_blocks_the_hw_then_leaves_the_isr() {
    let c = cluster(&[("min.insync.replicas", "1")]).await;
    c.leader_mgr
        .apply(&c.leader, &state(LEADER, 1, &[LEADER, FOLLOWER]));
    c.follower_mgr
        .apply(&c.follower, &state(LEADER, 1, &[LEADER, FOLLOWER]));
    assert_eq!(produce(c.addr, -1, 10_000, records(1)).await.0, 0);
    c.follower_mgr.shutdown();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(produce(c.addr, 1, 1000, records(1)).await.0, 0);
    assert_eq!(
        c.leader.offsets().high_watermark,
        1,
        "the stopped follower holds the HW"
    );
    assert_eq!(c.leader.isr_len(), 2);
    // After replica.lag.time.max.ms (1 s) the ISR task shrinks it out; the HW moves.
    eventually(5, "the ISR shrink", || c.leader.isr_len() == 1).await;
    assert_eq!(c.isr_changes.lock().unwrap().last(), Some(&vec![LEADER]));
    assert_eq!(c.leader.offsets().high_watermark, 2);
    assert_eq!(
        produce(c.addr, -1, 2000, records(1)).await.0,
        0,
        "acks=all with ISR {{1}}"
    );
    // min.insync.replicas=2 refuses acks=all now (nothing written), acks=1 still works.
    // (The topic's own min.insync.replicas is 1; the partition check is what Produce uses.)
    let end = c.leader.log_end_offset();
    let bytes = records(1);
    let h = batch::validate_produce(&bytes, 1 << 20).unwrap();
    let e = c.leader.append_as_leader(bytes, &h, 1, 2).unwrap_err();
    assert_eq!(e.code(), 19, "{e}");
    assert_eq!(c.leader.log_end_offset(), end, "nothing written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_with_a_divergent_tail_truncates_it() {
    let c = cluster(&[]).await;
    // Epoch 0: follower 2 led and wrote 4 records; only the first 2 reached broker 1.
    c.follower
        .become_leader(FOLLOWER, &state(FOLLOWER, 0, &[FOLLOWER]), 0)
        .unwrap();
    for _ in 0..2 {
        let b = records(2);
        let h = batch::validate_produce(&b, 1 << 20).unwrap();
        c.follower.append(b, &h, 1).unwrap();
    }
    c.leader
        .become_leader(LEADER, &state(LEADER, 0, &[LEADER]), 0)
        .unwrap();
    let b = records(2);
    let h = batch::validate_produce(&b, 1 << 20).unwrap();
    c.leader.append(b, &h, 1).unwrap();
    // Epoch 1: broker 1 leads and writes 3 more records at offsets 2..=4.
    c.leader_mgr.apply(&c.leader, &state(LEADER, 1, &[LEADER]));
    assert_eq!(produce(c.addr, 1, 1000, records(3)).await, (0, 2));
    assert_eq!(c.leader.epoch_end_offset(0), (0, 2));
    c.follower_mgr
        .apply(&c.follower, &state(LEADER, 1, &[LEADER]));
    eventually(5, "the follower to converge", || {
        c.follower.log_end_offset() == 5 && c.follower.latest_epoch() == 1
    })
    .await;
    let data = c.follower.fetch_for_replica(0, 1 << 20, true).unwrap();
    let headers: Vec<_> = batch::batches(&data).map(|b| b.unwrap().0).collect();
    let shape: Vec<_> = headers
        .iter()
        .map(|h| (h.base_offset, h.partition_leader_epoch))
        .collect();
    assert_eq!(
        shape,
        vec![(0, 0), (2, 1)],
        "epoch-0 tail at 2..=3 replaced"
    );
    assert_eq!(c.follower.epoch_end_offset(0), (0, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promoted_follower_dedupes_an_idempotent_retry_and_keeps_open_transactions() {
    let c = cluster(&[]).await;
    c.leader_mgr
        .apply(&c.leader, &state(LEADER, 1, &[LEADER, FOLLOWER]));
    c.follower_mgr
        .apply(&c.follower, &state(LEADER, 1, &[LEADER, FOLLOWER]));
    let values = vec![(None, Some(&b"v"[..])); 2];
    let idempotent = build_batch(&values, 1, 7, 0, 0, false, false);
    assert_eq!(
        produce(c.addr, -1, 10_000, idempotent.clone()).await,
        (0, 0)
    );
    let txn = build_batch(&values, 1, 8, 0, 0, true, false);
    assert_eq!(produce(c.addr, -1, 10_000, txn).await, (0, 2));
    assert_eq!(c.leader.offsets().last_stable_offset, 2);
    eventually(5, "the follower to catch up", || {
        c.follower.offsets().high_watermark == 4
    })
    .await;
    // The leader dies; the follower becomes leader of epoch 2.
    c.leader_mgr.shutdown();
    c.follower_mgr.shutdown();
    c.follower
        .become_leader(FOLLOWER, &state(FOLLOWER, 2, &[FOLLOWER]), 0)
        .unwrap();
    let h = batch::validate_produce(&idempotent, 1 << 20).unwrap();
    let retry = c.follower.append(idempotent, &h, 1).unwrap();
    assert_eq!(
        retry.base_offset, 0,
        "the retry is answered with the original offset"
    );
    assert_eq!(c.follower.log_end_offset(), 4, "and not stored again");
    assert_eq!(
        c.follower.offsets().last_stable_offset,
        2,
        "the replicated open transaction holds the LSO"
    );
    assert_eq!(c.follower.write_txn_marker(8, 0, false, 0, 1).unwrap(), 4);
    assert_eq!(c.follower.offsets().last_stable_offset, 5);
    let _ = &c.broker;
}

impl Cluster {
    /// A fresh follower replica manager (the previous one may have been shut down).
    fn new_follower_manager(&self) -> Arc<ReplicaManager> {
        ReplicaManager::new(
            Arc::new(FakeLink {
                node: FOLLOWER,
                leader_addr: ("127.0.0.1".into(), self.addr.port()),
                isr_changes: self.isr_changes.clone(),
            }),
            settings(),
        )
    }

    async fn conn(&self) -> Connection {
        Connection::connect(
            "127.0.0.1",
            self.addr.port(),
            "test",
            Duration::from_secs(5),
        )
        .await
        .unwrap()
    }
}

/// A Fetch v12 request for `r-0`.
fn fetch_request(
    replica_id: i32,
    offset: i64,
    current_epoch: i32,
    last_fetched_epoch: i32,
) -> kafka_protocol::messages::FetchRequest {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    let mut fp = FetchPartition::default();
    fp.partition = 0;
    fp.fetch_offset = offset;
    fp.current_leader_epoch = current_epoch;
    fp.last_fetched_epoch = last_fetched_epoch;
    fp.partition_max_bytes = 1 << 20;
    let mut ft = FetchTopic::default();
    ft.topic = TopicName(crate::wire::str_bytes(TOPIC));
    ft.partitions.push(fp);
    let mut req = kafka_protocol::messages::FetchRequest::default();
    req.replica_id = kafka_protocol::messages::BrokerId(replica_id);
    req.max_wait_ms = 0;
    req.min_bytes = 1;
    req.max_bytes = 1 << 20;
    req.topics.push(ft);
    req
}

async fn fetch(
    c: &Cluster,
    req: &kafka_protocol::messages::FetchRequest,
) -> kafka_protocol::messages::fetch_response::PartitionData {
    let resp: kafka_protocol::messages::FetchResponse = c
        .conn()
        .await
        .call(ApiKey::Fetch, 12, req, Duration::from_secs(10))
        .await
        .unwrap();
    resp.responses[0].partitions[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_all_is_refused_below_min_insync_while_acks_1_succeeds() {
    let c = cluster(&[("min.insync.replicas", "2")]).await;
    c.leader_mgr.apply(&c.leader, &state(LEADER, 1, &[LEADER]));
    let (code, _) = produce(c.addr, -1, 1000, records(1)).await;
    assert_eq!(code, 19, "NOT_ENOUGH_REPLICAS");
    assert_eq!(c.leader.log_end_offset(), 0, "nothing written");
    assert_eq!(produce(c.addr, 1, 1000, records(1)).await, (0, 0));
    assert_eq!(c.leader.offsets().high_watermark, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_all_waiting_when_leadership_moves_gets_not_leader() {
    let c = cluster(&[]).await;
    c.leader_mgr
        .apply(&c.leader, &state(LEADER, 1, &[LEADER, FOLLOWER]));
    let addr = c.addr;
    let waiting = tokio::spawn(async move { produce(addr, -1, 10_000, records(1)).await });
    eventually(5, "the append", || c.leader.log_end_offset() == 1).await;
    // The controller moves leadership to the follower (epoch 2).
    c.leader_mgr
        .apply(&c.leader, &state(FOLLOWER, 2, &[FOLLOWER]));
    let (code, _) = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("the waiting produce answers at once")
        .unwrap();
    assert_eq!(code, 6, "NOT_LEADER_OR_FOLLOWER");
    // A non-leader refuses produce and consumer fetches.
    assert_eq!(produce(c.addr, 1, 1000, records(1)).await.0, 6);
    assert_eq!(fetch(&c, &fetch_request(-1, 0, -1, -1)).await.error_code, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_fences_epochs_and_answers_divergence() {
    let c = cluster(&[]).await;
    c.leader_mgr.apply(&c.leader, &state(LEADER, 0, &[LEADER]));
    assert_eq!(produce(c.addr, 1, 1000, records(2)).await, (0, 0));
    c.leader_mgr.apply(&c.leader, &state(LEADER, 3, &[LEADER]));
    assert_eq!(produce(c.addr, 1, 1000, records(3)).await, (0, 2));
    // Consumer fetches: the leader's epoch is 3.
    assert_eq!(fetch(&c, &fetch_request(-1, 0, 2, -1)).await.error_code, 74);
    assert_eq!(fetch(&c, &fetch_request(-1, 0, 4, -1)).await.error_code, 75);
    let ok = fetch(&c, &fetch_request(-1, 0, 3, -1)).await;
    assert_eq!((ok.error_code, ok.high_watermark), (0, 5));
    assert!(!ok.records.unwrap().is_empty());
    // A fetcher at offset 4 whose last epoch is 0: epoch 0 ended at 2 here.
    let d = fetch(&c, &fetch_request(-1, 4, 3, 0)).await;
    assert_eq!(d.error_code, 0);
    assert_eq!(
        (d.diverging_epoch.epoch, d.diverging_epoch.end_offset),
        (0, 2)
    );
    assert!(
        d.records.unwrap_or_default().is_empty(),
        "no records with a divergence"
    );
    // At offset 2 with epoch 0 there is no divergence.
    let d = fetch(&c, &fetch_request(-1, 2, 3, 0)).await;
    assert_eq!(d.diverging_epoch.end_offset, -1);
    assert!(!d.records.unwrap().is_empty());
    // An epoch newer than any this leader had: the follower is pointed at this log's end under
    // the latest epoch ((-1, -1) would read as "no divergence" and the follower would loop).
    let d = fetch(&c, &fetch_request(-1, 2, 3, 7)).await;
    assert_eq!(
        (d.diverging_epoch.epoch, d.diverging_epoch.end_offset),
        (3, 5)
    );
    // A broker that is not a replica of the partition is refused.
    assert_eq!(fetch(&c, &fetch_request(9, 0, 3, -1)).await.error_code, 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offset_for_leader_epoch_answers_from_the_epoch_cache() {
    use kafka_protocol::messages::offset_for_leader_epoch_request::{
        OffsetForLeaderPartition, OffsetForLeaderTopic,
    };
    use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};
    let c = cluster(&[]).await;
    c.leader_mgr.apply(&c.leader, &state(LEADER, 1, &[LEADER]));
    assert_eq!(produce(c.addr, 1, 1000, records(2)).await, (0, 0));
    c.leader_mgr.apply(&c.leader, &state(LEADER, 4, &[LEADER]));
    assert_eq!(produce(c.addr, 1, 1000, records(1)).await, (0, 2));
    let ask = |current: i32, epoch: i32| {
        let mut p = OffsetForLeaderPartition::default();
        p.partition = 0;
        p.current_leader_epoch = current;
        p.leader_epoch = epoch;
        let mut t = OffsetForLeaderTopic::default();
        t.topic = TopicName(crate::wire::str_bytes(TOPIC));
        t.partitions.push(p);
        let mut req = OffsetForLeaderEpochRequest::default();
        req.replica_id = kafka_protocol::messages::BrokerId(-1);
        req.topics.push(t);
        req
    };
    let mut conn = c.conn().await;
    let mut call = async |current, epoch| {
        let resp: OffsetForLeaderEpochResponse = conn
            .call(
                ApiKey::OffsetForLeaderEpoch,
                4,
                &ask(current, epoch),
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        let r = &resp.topics[0].partitions[0];
        (r.error_code, r.leader_epoch, r.end_offset)
    };
    assert_eq!(call(4, 1).await, (0, 1, 2));
    assert_eq!(call(4, 3).await, (0, 1, 2), "an epoch that never wrote");
    assert_eq!(
        call(4, 4).await,
        (0, 4, 3),
        "the current epoch ends at the log end"
    );
    assert_eq!(
        call(-1, 0).await,
        (0, 0, 0),
        "older than the log: ends where the oldest epoch starts"
    );
    assert_eq!(call(3, 1).await.0, 74, "FENCED_LEADER_EPOCH");
    assert_eq!(call(5, 1).await.0, 75, "UNKNOWN_LEADER_EPOCH");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returning_follower_catches_up_and_rejoins_the_isr() {
    let c = cluster(&[]).await;
    c.leader_mgr.apply(&c.leader, &state(LEADER, 1, &[LEADER]));
    for _ in 0..3 {
        assert_eq!(produce(c.addr, 1, 1000, records(2)).await.0, 0);
    }
    c.follower_mgr
        .apply(&c.follower, &state(LEADER, 1, &[LEADER]));
    eventually(5, "the expansion", || c.leader.isr_len() == 2).await;
    assert_eq!(
        c.isr_changes.lock().unwrap().last(),
        Some(&vec![LEADER, FOLLOWER])
    );
    assert_eq!(c.follower.log_end_offset(), 6);
    // Gone, shrunk out, back: it rejoins.
    c.follower_mgr.shutdown();
    eventually(5, "the shrink", || c.leader.isr_len() == 1).await;
    assert_eq!(produce(c.addr, 1, 1000, records(2)).await.0, 0);
    let again = c.new_follower_manager();
    again.apply(&c.follower, &state(LEADER, 1, &[LEADER]));
    eventually(5, "the second expansion", || c.leader.isr_len() == 2).await;
    assert_eq!(c.follower.log_end_offset(), 8);
    again.shutdown();
}

#[test]
fn truncation_rebuilds_transactions_and_the_epoch_cache_and_reopen_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(TOPIC, 0, dir.path(), LogConfig::default()).unwrap();
    p.become_leader(LEADER, &state(LEADER, 2, &[LEADER]), 0)
        .unwrap();
    let values = vec![(None, Some(&b"v"[..])); 2];
    let plain = records(2);
    let h = batch::validate_produce(&plain, 1 << 20).unwrap();
    p.append(plain, &h, 1).unwrap(); // 0..=1
    p.become_leader(LEADER, &state(LEADER, 3, &[LEADER]), 0)
        .unwrap();
    let txn = build_batch(&values, 1, 5, 0, 0, true, false);
    let h = batch::validate_produce(&txn, 1 << 20).unwrap();
    p.append(txn, &h, 1).unwrap(); // 2..=3, open transaction
    assert_eq!(p.offsets().last_stable_offset, 2);
    assert_eq!(p.epoch_end_offset(2), (2, 2));
    p.become_follower(FOLLOWER, 4);
    p.truncate_to(2).unwrap();
    assert_eq!(p.log_end_offset(), 2);
    assert_eq!(p.latest_epoch(), 2, "epoch 3 started at the cut");
    assert_eq!(p.offsets().last_stable_offset, 2);
    assert_eq!(p.offsets().high_watermark, 2);
    drop(p);
    // Reopened: cache from the checkpoint; without it, rebuilt from the batches.
    let p = Partition::open(TOPIC, 0, dir.path(), LogConfig::default()).unwrap();
    assert_eq!(p.latest_epoch(), 2);
    drop(p);
    std::fs::remove_file(
        dir.path()
            .join(crate::partition::epoch_cache::EPOCH_CHECKPOINT_FILE),
    )
    .unwrap();
    let p = Partition::open(TOPIC, 0, dir.path(), LogConfig::default()).unwrap();
    assert_eq!(p.epoch_end_offset(2), (2, 2));
    assert_eq!(
        p.offsets().last_stable_offset,
        2,
        "no open transaction after the cut"
    );
}

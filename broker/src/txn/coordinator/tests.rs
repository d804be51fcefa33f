//! Unit tests of the transaction coordinator with a fake marker writer: init and fencing,
//! add/end, idempotent EndTxn, the abort of an open transaction by a new instance, timeouts
//! (with `tokio::time::pause()`), marker retries, and replay of `__transaction_state`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;

use crate::group::store::OFFSETS_TOPIC;
use crate::producer_ids::ProducerIds;
use crate::txn::markers::{Marker, MarkerError, MarkerWriter};
use crate::txn::state::{TxnError, TxnState};
use crate::txn::{TransactionCoordinator, TxnConfig};

/// Records markers; fails the next `fail` writes.
#[derive(Default)]
struct FakeMarkers {
    written: Mutex<Vec<(String, i32, Marker)>>,
    fail: Mutex<usize>,
}

impl FakeMarkers {
    fn written(&self) -> Vec<(String, i32, Marker)> {
        self.written.lock().unwrap().clone()
    }

    fn fail_next(&self, n: usize) {
        *self.fail.lock().unwrap() = n;
    }
}

impl MarkerWriter for FakeMarkers {
    fn write_marker<'a>(
        &'a self,
        topic: &'a str,
        partition: i32,
        marker: &'a Marker,
    ) -> BoxFuture<'a, Result<(), MarkerError>> {
        Box::pin(std::future::ready(self.write(topic, partition, marker)))
    }
}

impl FakeMarkers {
    fn write(&self, topic: &str, partition: i32, marker: &Marker) -> Result<(), MarkerError> {
        let mut fail = self.fail.lock().unwrap();
        if *fail > 0 {
            *fail -= 1;
            return Err(MarkerError::Failed("disk on fire".into()));
        }
        if topic == "gone" {
            return Err(MarkerError::UnknownPartition);
        }
        self.written
            .lock()
            .unwrap()
            .push((topic.to_owned(), partition, *marker));
        Ok(())
    }
}

fn cfg() -> TxnConfig {
    TxnConfig {
        max_timeout_ms: 900_000,
        abort_check_interval_ms: 1000,
        ..TxnConfig::default()
    }
}

fn tp(t: &str, p: i32) -> (String, i32) {
    (t.to_owned(), p)
}

struct Setup {
    c: TransactionCoordinator,
    markers: Arc<FakeMarkers>,
    ids: ProducerIds,
    _dir: tempfile::TempDir,
}

/// A coordinator over one real `__transaction_state` partition in `dir`, led by this broker
/// alone (the lone broker's case: every id is in partition 0 of 1), replayed from what `dir`
/// holds.
fn local(dir: &std::path::Path, markers: Arc<FakeMarkers>) -> TransactionCoordinator {
    let c = TransactionCoordinator::new(cfg(), markers);
    c.load_partition(0, txn_partition(dir, 0), 1, 1).unwrap();
    c
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let markers = Arc::new(FakeMarkers::default());
    Setup {
        c: local(dir.path(), markers.clone()),
        markers,
        ids: ProducerIds::open(dir.path(), 0).unwrap(),
        _dir: dir,
    }
}

#[tokio::test]
async fn init_gives_a_producer_id_and_a_second_init_fences_the_first() {
    let s = setup();
    let (pid, e0) =
        s.c.init_producer_id("tx", 60_000, None, &s.ids)
            .await
            .unwrap();
    assert_eq!(e0, 0);
    let (pid2, e1) =
        s.c.init_producer_id("tx", 60_000, None, &s.ids)
            .await
            .unwrap();
    assert_eq!((pid2, e1), (pid, 1), "same id, epoch bumped");
    // The first instance is a zombie now.
    let err =
        s.c.add_partitions("tx", pid, 0, &[tp("a", 0)])
            .await
            .unwrap_err();
    assert_eq!(err.code(true), 90);
    assert_eq!(err.code(false), 47);
    assert!(s.c.end_txn("tx", pid, 0, true).await.is_err());
    // Other transactional ids get other producer ids.
    let (other, _) =
        s.c.init_producer_id("tx-2", 60_000, None, &s.ids)
            .await
            .unwrap();
    assert_ne!(other, pid);
    // Unknown ids and wrong producer ids are INVALID_PRODUCER_ID_MAPPING.
    assert_eq!(
        s.c.add_partitions("nope", pid, 1, &[tp("a", 0)])
            .await
            .unwrap_err()
            .code(true),
        49
    );
    assert_eq!(
        s.c.end_txn("tx", other, 1, true)
            .await
            .unwrap_err()
            .code(true),
        49
    );
}

#[tokio::test]
async fn timeouts_above_the_maximum_are_refused() {
    let s = setup();
    let e =
        s.c.init_producer_id("tx", 900_001, None, &s.ids)
            .await
            .unwrap_err();
    assert_eq!(e.code(true), 50);
    assert!(s.c.init_producer_id("tx", 0, None, &s.ids).await.is_err());
    assert!(s.c.describe("tx").is_none());
}

#[tokio::test]
async fn commit_writes_markers_to_every_partition_then_completes() {
    let s = setup();
    let (pid, epoch) =
        s.c.init_producer_id("tx", 60_000, None, &s.ids)
            .await
            .unwrap();
    s.c.add_partitions("tx", pid, epoch, &[tp("a", 0), tp("a", 1)])
        .await
        .unwrap();
    s.c.add_partitions("tx", pid, epoch, &[tp("b", 0), tp("a", 0)])
        .await
        .unwrap();
    assert_eq!(s.c.describe("tx").unwrap().state, TxnState::Ongoing);
    s.c.end_txn("tx", pid, epoch, true).await.unwrap();
    let written = s.markers.written();
    let mut parts: Vec<_> = written.iter().map(|(t, p, _)| (t.clone(), *p)).collect();
    parts.sort();
    assert_eq!(parts, vec![tp("a", 0), tp("a", 1), tp("b", 0)]);
    assert!(written
        .iter()
        .all(|(_, _, m)| m.commit && m.producer_id == pid && m.producer_epoch == epoch));
    let m = s.c.describe("tx").unwrap();
    assert_eq!(m.state, TxnState::CompleteCommit);
    assert!(m.partitions.is_empty());
    // A retried EndTxn(commit) succeeds without new markers; an abort now is invalid.
    s.c.end_txn("tx", pid, epoch, true).await.unwrap();
    assert_eq!(s.markers.written().len(), 3);
    assert_eq!(
        s.c.end_txn("tx", pid, epoch, false)
            .await
            .unwrap_err()
            .code(true),
        48
    );
    // The next transaction starts from CompleteCommit.
    s.c.add_partitions("tx", pid, epoch, &[tp("c", 0)])
        .await
        .unwrap();
    s.c.end_txn("tx", pid, epoch, false).await.unwrap();
    let last = s.markers.written().pop().unwrap();
    assert_eq!((last.0.as_str(), last.2.commit), ("c", false));
    assert_eq!(s.c.describe("tx").unwrap().state, TxnState::CompleteAbort);
}

#[tokio::test]
async fn end_without_a_transaction_is_an_invalid_state() {
    let s = setup();
    let (pid, epoch) =
        s.c.init_producer_id("tx", 60_000, None, &s.ids)
            .await
            .unwrap();
    assert_eq!(
        s.c.end_txn("tx", pid, epoch, true).await.unwrap_err(),
        TxnError::InvalidTxnState {
            request: "EndTxn(commit)",
            state: TxnState::Empty
        }
    );
}

#[tokio::test]
async fn a_new_instance_aborts_the_open_transaction_of_the_old_one() {
    let s = setup();
    let (pid, e0) =
        s.c.init_producer_id("tx", 60_000, None, &s.ids)
            .await
            .unwrap();
    s.c.add_partitions("tx", pid, e0, &[tp("a", 0)])
        .await
        .unwrap();
    // The new instance is told to retry while the abort completes.
    let err =
        s.c.init_producer_id("tx", 60_000, None, &s.ids)
            .await
            .unwrap_err();
    assert_eq!(err.code(true), 51);
    let markers = s.markers.written();
    assert_eq!(markers.len(), 1);
    assert!(!markers[0].2.commit);
    assert_eq!(
        markers[0].2.producer_epoch,
        e0 + 1,
        "abort carries the bumped epoch"
    );
    assert_eq!(s.c.describe("tx").unwrap().state, TxnState::CompleteAbort);
    // The retry gets the epoch bumped a second time, as Kafka.
    let (pid2, e2) =
        s.c.init_producer_id("tx", 60_000, None, &s.ids)
            .await
            .unwrap();
    assert_eq!((pid2, e2), (pid, e0 + 2));
    // The old instance is fenced.
    assert_eq!(
        s.c.end_txn("tx", pid, e0, true)
            .await
            .unwrap_err()
            .code(true),
        90
    );
}

#[tokio::test]
async fn kip_360_epoch_bump_by_the_client_and_its_retry() {
    let s = setup();
    let (pid, e0) =
        s.c.init_producer_id("tx", 60_000, None, &s.ids)
            .await
            .unwrap();
    let (_, e1) =
        s.c.init_producer_id("tx", 60_000, Some((pid, e0)), &s.ids)
            .await
            .unwrap();
    assert_eq!(e1, e0 + 1);
    // The same request retried (response lost): same answer, no second bump.
    let (_, again) =
        s.c.init_producer_id("tx", 60_000, Some((pid, e0)), &s.ids)
            .await
            .unwrap();
    assert_eq!(again, e1);
    // A stale epoch is fenced.
    let (_, e2) =
        s.c.init_producer_id("tx", 60_000, Some((pid, e1)), &s.ids)
            .await
            .unwrap();
    assert_eq!(e2, e1 + 1);
    assert_eq!(
        s.c.init_producer_id("tx", 60_000, Some((pid, e0)), &s.ids)
            .await
            .unwrap_err()
            .code(true),
        90
    );
}

#[tokio::test(start_paused = true)]
async fn an_ongoing_transaction_past_its_timeout_is_aborted_and_its_producer_fenced() {
    let s = setup();
    let (pid, epoch) =
        s.c.init_producer_id("tx", 5_000, None, &s.ids)
            .await
            .unwrap();
    s.c.add_partitions("tx", pid, epoch, &[tp("a", 0)])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(4_500)).await;
    assert_eq!(s.c.describe("tx").unwrap().state, TxnState::Ongoing);
    // The background task (every second) notices within a second of the deadline.
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    let m = s.c.describe("tx").unwrap();
    assert_eq!(m.state, TxnState::CompleteAbort);
    assert_eq!(m.producer_epoch, epoch + 1);
    let markers = s.markers.written();
    assert_eq!(markers.len(), 1);
    assert!(!markers[0].2.commit);
    assert_eq!(markers[0].2.producer_epoch, epoch + 1);
    // The late producer's commit is fenced.
    assert_eq!(
        s.c.end_txn("tx", pid, epoch, true)
            .await
            .unwrap_err()
            .code(false),
        47
    );
    // Nothing else times out.
    assert_eq!(s.c.abort_timed_out().await, 0);
}

#[tokio::test(start_paused = true)]
async fn failed_markers_are_retried_and_the_id_waits_in_prepare() {
    let s = setup();
    let (pid, epoch) =
        s.c.init_producer_id("tx", 60_000, None, &s.ids)
            .await
            .unwrap();
    s.c.add_partitions("tx", pid, epoch, &[tp("a", 0), tp("b", 0)])
        .await
        .unwrap();
    s.markers.fail_next(3);
    // The decision is durable: EndTxn succeeds, the markers follow.
    s.c.end_txn("tx", pid, epoch, true).await.unwrap();
    assert_eq!(s.c.describe("tx").unwrap().state, TxnState::PrepareCommit);
    assert_eq!(
        s.c.add_partitions("tx", pid, epoch, &[tp("a", 0)])
            .await
            .unwrap_err()
            .code(true),
        51
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(s.c.describe("tx").unwrap().state, TxnState::CompleteCommit);
    // Each partition marked exactly once despite the retries.
    let mut parts: Vec<_> = s
        .markers
        .written()
        .iter()
        .map(|(t, p, _)| (t.clone(), *p))
        .collect();
    parts.sort();
    assert_eq!(parts, vec![tp("a", 0), tp("b", 0)]);
}

#[tokio::test]
async fn deleted_partitions_are_skipped() {
    let s = setup();
    let (pid, epoch) =
        s.c.init_producer_id("tx", 60_000, None, &s.ids)
            .await
            .unwrap();
    s.c.add_partitions("tx", pid, epoch, &[tp("gone", 0), tp("a", 0)])
        .await
        .unwrap();
    s.c.end_txn("tx", pid, epoch, true).await.unwrap();
    assert_eq!(s.c.describe("tx").unwrap().state, TxnState::CompleteCommit);
    assert_eq!(s.markers.written().len(), 1);
}

#[tokio::test]
async fn offset_commits_need_the_offsets_partition_in_the_transaction() {
    let s = setup();
    let (pid, epoch) =
        s.c.init_producer_id("tx", 60_000, None, &s.ids)
            .await
            .unwrap();
    assert_eq!(
        s.c.check_offset_commit("tx", pid, epoch, 7)
            .unwrap_err()
            .code(true),
        48
    );
    s.c.add_partitions("tx", pid, epoch, &[tp(OFFSETS_TOPIC, 7)])
        .await
        .unwrap();
    s.c.check_offset_commit("tx", pid, epoch, 7).unwrap();
    assert_eq!(
        s.c.check_offset_commit("tx", pid, epoch + 1, 7)
            .unwrap_err()
            .code(true),
        90
    );
    assert_eq!(
        s.c.check_offset_commit("other", pid, epoch, 7)
            .unwrap_err()
            .code(true),
        49
    );
}

#[tokio::test]
async fn replay_completes_prepared_transactions_and_keeps_open_ones() {
    let dir = tempfile::tempdir().unwrap();
    let ids = ProducerIds::open(dir.path(), 0).unwrap();
    let (pid, epoch, pid2);
    {
        // Markers fail for good: the broker "crashes" in PrepareCommit.
        let broken = Arc::new(FakeMarkers::default());
        broken.fail_next(usize::MAX);
        let c = local(dir.path(), broken.clone());
        (pid, epoch) = c
            .init_producer_id("committing", 60_000, None, &ids)
            .await
            .unwrap();
        c.add_partitions("committing", pid, epoch, &[tp("a", 0), tp("a", 1)])
            .await
            .unwrap();
        c.end_txn("committing", pid, epoch, true).await.unwrap();
        let e2;
        (pid2, e2) = c
            .init_producer_id("open", 60_000, None, &ids)
            .await
            .unwrap();
        c.add_partitions("open", pid2, e2, &[tp("b", 0)])
            .await
            .unwrap();
        c.init_producer_id("idle", 60_000, None, &ids)
            .await
            .unwrap();
        assert_eq!(
            c.describe("committing").unwrap().state,
            TxnState::PrepareCommit
        );
        assert!(broken.written().is_empty());
    }
    let markers = Arc::new(FakeMarkers::default());
    let c = local(dir.path(), markers.clone());
    let m = c.describe("committing").unwrap();
    assert_eq!(m.state, TxnState::CompleteCommit);
    assert_eq!((m.producer_id, m.producer_epoch), (pid, epoch));
    let written = markers.written();
    assert_eq!(written.len(), 2);
    assert!(written.iter().all(|(t, _, m)| t == "a" && m.commit));
    let open = c.describe("open").unwrap();
    assert_eq!(open.state, TxnState::Ongoing);
    assert_eq!(open.producer_id, pid2);
    assert!(open.partitions.contains(&tp("b", 0)));
    assert_eq!(c.describe("idle").unwrap().state, TxnState::Empty);
    // The replayed ids keep fencing: a new instance of "committing" gets the next epoch.
    let (p, e) = c
        .init_producer_id("committing", 60_000, None, &ids)
        .await
        .unwrap();
    assert_eq!((p, e), (pid, epoch + 1));
    drop(c);
    // And the completion itself was persisted.
    let c = local(dir.path(), markers.clone());
    assert_eq!(c.describe("committing").unwrap().producer_epoch, epoch + 1);
    assert_eq!(markers.written().len(), 2, "nothing left to re-mark");
}

/// A `__transaction_state` partition led by this broker alone (epoch 0, ISR = itself, so the
/// high watermark is the log end and writes commit at once).
fn txn_partition(dir: &std::path::Path, index: i32) -> Arc<crate::partition::Partition> {
    Arc::new(
        crate::partition::Partition::open(
            crate::txn::store::TXN_TOPIC,
            index,
            &dir.join(format!("{}-{index}", crate::txn::store::TXN_TOPIC)),
            crate::log::LogConfig::default(),
        )
        .unwrap(),
    )
}

/// A transactional id whose partition (of `n`) is `index`.
fn id_in(index: i32, n: i32) -> String {
    (0..)
        .map(|i| format!("txn-{i}"))
        .find(|id| crate::group::store::partition_for(id, n) == index)
        .unwrap()
}

#[test]
fn transactional_ids_map_to_partitions_as_in_kafka() {
    use crate::group::store::partition_for;
    // Kafka: Utils.abs(transactionalId.hashCode) % n. "hello".hashCode() is 99162322;
    // "polygenelubricants".hashCode() is Integer.MIN_VALUE, which Utils.abs maps to 0.
    assert_eq!(partition_for("hello", 100_000), 99_162_322 % 100_000);
    assert_eq!(partition_for("polygenelubricants", 7), 0);
    // String.hashCode by its formula (s[0]*31^(n-1) + ... over UTF-16 units), done by hand.
    assert_eq!(partition_for("my-txn", 50), 45);
    assert_eq!(partition_for("kbench-txn-0", 50), 1);
    assert_eq!(partition_for("", 50), 0);
    for id in ["a", "tx", "exactly-once-7", "\u{00e9}t\u{00e9}"] {
        let p = partition_for(id, 50);
        assert!((0..50).contains(&p), "{id}: {p}");
    }
}

#[tokio::test]
async fn cluster_ids_are_answered_only_once_their_partition_is_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let ids = ProducerIds::open(dir.path(), 0).unwrap();
    let markers = Arc::new(FakeMarkers::default());
    let c = TransactionCoordinator::new(cfg(), markers.clone());
    let (mine, other) = (id_in(1, 3), id_in(2, 3));
    let err = c
        .init_producer_id(&mine, 60_000, None, &ids)
        .await
        .unwrap_err();
    assert!(matches!(err, TxnError::NotCoordinator { .. }), "{err}");
    assert!(!c.is_coordinating(&mine));
    c.load_partition(1, txn_partition(dir.path(), 1), 3, 1)
        .unwrap();
    assert!(c.is_coordinating(&mine));
    assert!(!c.is_coordinating(&other));
    c.init_producer_id(&mine, 60_000, None, &ids).await.unwrap();
    let err = c
        .init_producer_id(&other, 60_000, None, &ids)
        .await
        .unwrap_err();
    assert_eq!(err.code(true), 16, "NOT_COORDINATOR: {err}");
    c.unload_partition(1);
    assert!(!c.is_coordinating(&mine));
    assert!(c.describe(&mine).is_none(), "forgotten when no longer led");
}

#[tokio::test]
async fn a_new_coordinator_loads_the_log_and_completes_prepared_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let ids = ProducerIds::open(dir.path(), 0).unwrap();
    let partition = txn_partition(dir.path(), 0);
    let (committing, open) = (id_in(0, 1), format!("{}-open", id_in(0, 1)));
    let (pid, epoch, pid2);
    {
        // The old coordinator's markers fail for good: it "dies" in PrepareCommit.
        let broken = Arc::new(FakeMarkers::default());
        broken.fail_next(usize::MAX);
        let c = TransactionCoordinator::new(cfg(), broken.clone());
        c.load_partition(0, partition.clone(), 1, 1).unwrap();
        (pid, epoch) = c
            .init_producer_id(&committing, 60_000, None, &ids)
            .await
            .unwrap();
        c.add_partitions(&committing, pid, epoch, &[tp("a", 0), tp(OFFSETS_TOPIC, 3)])
            .await
            .unwrap();
        c.end_txn(&committing, pid, epoch, true).await.unwrap();
        let e2;
        (pid2, e2) = c.init_producer_id(&open, 60_000, None, &ids).await.unwrap();
        c.add_partitions(&open, pid2, e2, &[tp("b", 0)])
            .await
            .unwrap();
        assert!(broken.written().is_empty());
        c.unload_partition(0);
    }
    // The partition's new leader: another coordinator, at a newer leader epoch.
    let leader = crate::partition::LeaderAndIsr {
        leader: 1,
        leader_epoch: 5,
        partition_epoch: 1,
        replicas: vec![1],
        isr: vec![1],
    };
    partition.become_leader(1, &leader, 0).unwrap();
    let markers = Arc::new(FakeMarkers::default());
    let c = TransactionCoordinator::new(cfg(), markers.clone());
    assert_eq!(c.load_partition(0, partition.clone(), 1, 1).unwrap(), 2);
    // Completing runs as a task.
    for _ in 0..100 {
        if c.describe(&committing).map(|m| m.state) == Some(TxnState::CompleteCommit) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        c.describe(&committing).unwrap().state,
        TxnState::CompleteCommit
    );
    let written = markers.written();
    assert_eq!(written.len(), 2);
    assert!(written
        .iter()
        .all(|(_, _, m)| m.commit && m.producer_id == pid && m.coordinator_epoch == 5));
    let o = c.describe(&open).unwrap();
    assert_eq!((o.state, o.producer_id), (TxnState::Ongoing, pid2));
    // The new coordinator fences the old producer instance when a new one starts.
    let (p, e) = c
        .init_producer_id(&committing, 60_000, None, &ids)
        .await
        .unwrap();
    assert_eq!((p, e), (pid, epoch + 1));
}

#[tokio::test]
async fn writes_need_min_insync_replicas() {
    let dir = tempfile::tempdir().unwrap();
    let ids = ProducerIds::open(dir.path(), 0).unwrap();
    let c = TransactionCoordinator::new(cfg(), Arc::new(FakeMarkers::default()));
    c.load_partition(0, txn_partition(dir.path(), 0), 1, 2)
        .unwrap();
    let err = c
        .init_producer_id("x", 60_000, None, &ids)
        .await
        .unwrap_err();
    assert_eq!(err.code(true), 15, "COORDINATOR_NOT_AVAILABLE: {err}");
    assert!(c.describe("x").is_none(), "nothing changed");
}

/// Waits (bounded) until `f` holds.
async fn eventually(what: &str, f: impl Fn() -> bool) {
    for _ in 0..200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{what}: not within 2 s");
}

#[tokio::test]
async fn clients_and_markers_wait_until_the_isr_has_the_decision() {
    let dir = tempfile::tempdir().unwrap();
    let ids = Arc::new(ProducerIds::open(dir.path(), 0).unwrap());
    let partition = txn_partition(dir.path(), 0);
    // Led by broker 1 with broker 2 in the ISR: nothing is committed until 2 has fetched it.
    let state = crate::partition::LeaderAndIsr {
        leader: 1,
        leader_epoch: 1,
        partition_epoch: 1,
        replicas: vec![1, 2],
        isr: vec![1, 2],
    };
    partition.become_leader(1, &state, 0).unwrap();
    let follower_fetches = {
        let p = partition.clone();
        move || {
            p.record_replica_fetch(2, p.log_end_offset(), 0);
        }
    };
    let markers = Arc::new(FakeMarkers::default());
    let c = TransactionCoordinator::new(cfg(), markers.clone());
    c.load_partition(0, partition.clone(), 1, 1).unwrap();

    let init = tokio::spawn({
        let (c, ids) = (c.clone(), ids.clone());
        async move { c.init_producer_id("tx", 60_000, None, &ids).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !init.is_finished(),
        "answered before the ISR had the record"
    );
    follower_fetches();
    let (pid, epoch) = init.await.unwrap().unwrap();
    let add = tokio::spawn({
        let c = c.clone();
        async move { c.add_partitions("tx", pid, epoch, &[tp("a", 0)]).await }
    });
    eventually("the AddPartitions record is written", || {
        partition.log_end_offset() == 2
    })
    .await;
    follower_fetches();
    add.await.unwrap().unwrap();

    let end = tokio::spawn({
        let c = c.clone();
        async move { c.end_txn("tx", pid, epoch, true).await }
    });
    eventually("the PrepareCommit record is written", || {
        partition.log_end_offset() == 3
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        markers.written().is_empty(),
        "a marker was written before the decision was replicated"
    );
    follower_fetches();
    end.await.unwrap().unwrap();
    assert_eq!(markers.written().len(), 1);
    assert_eq!(markers.written()[0].2.coordinator_epoch, 1);
    // The CompleteCommit record follows.
    eventually("the CompleteCommit record is written", || {
        partition.log_end_offset() == 4
    })
    .await;
    follower_fetches();
    assert_eq!(c.describe("tx").unwrap().state, TxnState::CompleteCommit);
}

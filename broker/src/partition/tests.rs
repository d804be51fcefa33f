use super::*;
use crate::log::build_batch;

fn open(dir: &Path) -> Partition {
    Partition::open("t", 0, dir, LogConfig::default()).unwrap()
}

/// Appends `n` records from `pid`/`epoch` at `seq`; transactional when `txn`.
fn produce(p: &Partition, pid: i64, epoch: i16, seq: i32, n: usize, txn: bool) -> i64 {
    let values = vec![(None, Some(&b"v"[..])); n];
    let bytes = build_batch(&values, 1, pid, epoch, seq, txn, false);
    let headers = batch::validate_produce(&bytes, 1 << 20).unwrap();
    p.append(bytes, &headers, 1).unwrap().base_offset
}

fn fetched_offsets(p: &Partition, from: i64, committed: bool) -> (Vec<i64>, Vec<AbortedTxn>) {
    let data = p
        .fetch(from, 1 << 20, true, committed, &p.offsets())
        .unwrap();
    let bases = batch::batches(&data.records)
        .map(|b| b.unwrap().0.base_offset)
        .collect();
    (bases, data.aborted)
}

#[test]
fn a_fetch_never_returns_records_past_the_watermark_it_reports() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path());
    produce(&p, -1, -1, -1, 2, false);
    let seen = p.offsets();
    // An append lands between the offsets snapshot and the read.
    produce(&p, -1, -1, -1, 3, false);
    let data = p.fetch(0, 1 << 20, true, false, &seen).unwrap();
    let last = batch::batches(&data.records)
        .map(|b| b.unwrap().0.last_offset())
        .max()
        .unwrap();
    assert_eq!(seen.high_watermark, 2);
    assert!(
        last < seen.high_watermark,
        "returned offset {last} past the reported HW"
    );
    assert_eq!(p.offsets().high_watermark, 5);
}

#[test]
fn open_transaction_holds_the_last_stable_offset_until_its_marker() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path());
    assert_eq!(produce(&p, -1, -1, -1, 2, false), 0);
    assert_eq!(produce(&p, 5, 0, 0, 3, true), 2);
    assert_eq!(produce(&p, -1, -1, -1, 1, false), 5);
    assert_eq!(produce(&p, 5, 0, 3, 1, true), 6);
    let o = p.offsets();
    assert_eq!((o.high_watermark, o.last_stable_offset), (7, 2));
    assert_eq!(fetched_offsets(&p, 0, true).0, vec![0]);
    assert_eq!(fetched_offsets(&p, 0, false).0, vec![0, 2, 5, 6]);
    let mut watch = p.watch_watermarks();
    watch.borrow_and_update();

    let marker = p.write_txn_marker(5, 0, true, 0, 10).unwrap();
    assert_eq!(marker, 7);
    assert!(watch.has_changed().unwrap(), "committed fetchers are woken");
    let o = p.offsets();
    assert_eq!((o.high_watermark, o.last_stable_offset), (8, 8));
    let (bases, aborted) = fetched_offsets(&p, 0, true);
    assert_eq!(
        bases,
        vec![0, 2, 5, 6, 7],
        "control batches go out as stored"
    );
    assert!(aborted.is_empty(), "a commit lists nothing");
}

#[test]
fn abort_is_listed_for_fetches_overlapping_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path());
    produce(&p, 1, 0, 0, 2, true); // 0..=1
    produce(&p, 2, 0, 0, 2, true); // 2..=3
    produce(&p, 1, 0, 2, 1, true); // 4
    assert_eq!(p.write_txn_marker(1, 0, false, 0, 5).unwrap(), 5);
    assert_eq!(p.offsets().last_stable_offset, 2, "producer 2 still open");
    assert_eq!(p.write_txn_marker(2, 0, true, 0, 5).unwrap(), 6);
    assert_eq!(p.offsets().last_stable_offset, 7);
    let (bases, aborted) = fetched_offsets(&p, 0, true);
    assert_eq!(bases, vec![0, 2, 4, 5, 6]);
    assert_eq!(
        aborted,
        vec![AbortedTxn {
            producer_id: 1,
            first_offset: 0,
            last_offset: 5,
            last_stable_offset: 2,
        }]
    );
    // A fetch past the abort marker does not list it; uncommitted fetches never do.
    assert!(fetched_offsets(&p, 6, true).1.is_empty());
    assert!(fetched_offsets(&p, 0, false).1.is_empty());
    // A second transaction of the same producer starts at its own first batch.
    produce(&p, 1, 0, 3, 1, true); // 7
    assert_eq!(p.offsets().last_stable_offset, 7);
    p.write_txn_marker(1, 0, false, 0, 5).unwrap(); // 8
    let (_, aborted) = fetched_offsets(&p, 6, true);
    assert_eq!(aborted.len(), 1);
    assert_eq!((aborted[0].first_offset, aborted[0].last_offset), (7, 8));
}

#[test]
fn stale_markers_are_refused_and_a_bumped_epoch_fences_the_zombie() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path());
    produce(&p, 3, 2, 0, 1, true);
    let stale = p.write_txn_marker(3, 1, false, 0, 1).unwrap_err();
    assert_eq!(stale.code(), 47, "INVALID_PRODUCER_EPOCH: {stale}");
    assert_eq!(p.offsets().high_watermark, 1, "nothing written");
    // The coordinator aborts with a bumped epoch: accepted, and the old epoch is fenced.
    assert_eq!(p.write_txn_marker(3, 3, false, 1, 1).unwrap(), 1);
    assert_eq!(p.offsets().last_stable_offset, 2);
    let values = vec![(None, Some(&b"v"[..]))];
    let zombie = build_batch(&values, 1, 3, 2, 1, true, false);
    let headers = batch::validate_produce(&zombie, 1 << 20).unwrap();
    assert_eq!(p.append(zombie, &headers, 1).unwrap_err().code(), 47);
    // An older coordinator epoch is fenced too.
    let old_coordinator = p.write_txn_marker(3, 3, true, 0, 1).unwrap_err();
    assert_eq!(old_coordinator.code(), 52, "{old_coordinator}");
    // A marker with nothing open is written and changes nothing else.
    assert_eq!(p.write_txn_marker(3, 3, false, 1, 1).unwrap(), 2);
    assert_eq!(p.offsets().last_stable_offset, 3);
    assert_eq!(fetched_offsets(&p, 0, true).1.len(), 1);
}

#[test]
fn open_and_aborted_transactions_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let p = open(dir.path());
        produce(&p, 1, 0, 0, 2, true); // 0..=1
        p.write_txn_marker(1, 0, false, 0, 1).unwrap(); // 2
        p.flush().unwrap();
        // Written after the checkpoint: found again by the replay of the tail.
        produce(&p, 2, 0, 0, 1, true); // 3
        p.write_txn_marker(2, 0, false, 0, 1).unwrap(); // 4
        produce(&p, 3, 0, 0, 1, true); // 5 (left open: no marker)
        produce(&p, -1, -1, -1, 1, false); // 6
                                           // Dropped without flush, like kill -9 (the page cache keeps what was written).
    }
    let check = |p: &Partition| {
        let o = p.offsets();
        assert_eq!((o.high_watermark, o.last_stable_offset), (7, 5));
        let (bases, aborted) = fetched_offsets(p, 0, true);
        assert_eq!(bases, vec![0, 2, 3, 4]);
        let ranges: Vec<_> = aborted
            .iter()
            .map(|a| (a.producer_id, a.first_offset, a.last_offset))
            .collect();
        assert_eq!(ranges, vec![(1, 0, 2), (2, 3, 4)]);
        assert_eq!(p.inner().txns.ongoing(3), Some(5));
    };
    let p = open(dir.path());
    check(&p);
    drop(p);
    // Without any checkpoint or index: everything is rebuilt from the log.
    std::fs::remove_file(dir.path().join(crate::log::txn_index::TXN_CHECKPOINT_FILE)).unwrap();
    std::fs::remove_file(dir.path().join(crate::log::txn_index::ABORTED_INDEX_FILE)).unwrap();
    let p = open(dir.path());
    check(&p);
    // The marker completes the recovered transaction.
    p.write_txn_marker(3, 0, true, 0, 1).unwrap();
    assert_eq!(p.offsets().last_stable_offset, 8);
}

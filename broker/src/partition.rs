//! One partition as the request handlers see it: its log behind a lock with the state derived
//! from it (idempotent producers, open and aborted transactions), and a watch channel carrying
//! the high watermark and last stable offset so that long-polling fetches sleep until data
//! arrives (or, for `read_committed`, until a transaction completes).
//!
//! The log itself (segments, indexes, recovery) lives in [`crate::log`]; this type adds what
//! only a serving broker needs: concurrency and wake-ups. Appends and reads are short, page-cache
//! bound operations, so a plain mutex is held across them rather than moving them to a thread
//! pool. On a single broker the high watermark is the log end offset; replication will move it
//! separately. Transactions: [`Partition::write_txn_marker`] is the transaction coordinator's
//! way in; the bookkeeping is in [`crate::partition_txns`].
//!
//! A transactional batch is accepted whether or not the coordinator added the partition to the
//! producer's transaction (Kafka refuses it with INVALID_TXN_STATE since KIP-890); the
//! coordinator-side verification is not done yet.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bytes::Bytes;
use tokio::sync::watch;

use crate::log::batch;
use crate::log::txn_index::AbortedTxn;
use crate::log::{AppendInfo, BatchHeader, LogConfig, LogError, PartitionLog};
use crate::partition_txns::{ControlMarker, PartitionTxns};
use crate::producer_state::{ProducerStates, SequenceError, Verdict};

/// Why an append was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AppendError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Sequence(#[from] SequenceError),
}

impl AppendError {
    /// The Kafka error code for the produce response.
    pub(crate) fn code(&self) -> i16 {
        match self {
            AppendError::Log(e) => e.kafka_error_code(),
            AppendError::Sequence(e) => e.code(),
        }
    }
}

/// The log and the state derived from it, changed together under one lock.
struct Inner {
    log: PartitionLog,
    producers: ProducerStates,
    txns: PartitionTxns,
}

/// The offsets fetches wait on, published together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Watermarks {
    /// Offset up to which `read_uncommitted` consumers may read.
    pub(crate) high_watermark: i64,
    /// Offset up to which `read_committed` consumers may read.
    pub(crate) last_stable_offset: i64,
}

/// A topic-partition hosted by this broker.
pub(crate) struct Partition {
    /// Topic name.
    pub(crate) topic: String,
    /// Partition index.
    pub(crate) index: i32,
    /// Directory of the partition's log (`<log.dir>/<topic>-<index>`).
    pub(crate) dir: PathBuf,
    /// The log and its producer state. Held only for the duration of one append or one read.
    inner: Mutex<Inner>,
    /// The high watermark and last stable offset; changes wake waiting fetches.
    watermarks: watch::Sender<Watermarks>,
}

/// The answer to an append.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Appended {
    /// Offset of the first record (the original one for a duplicate).
    pub(crate) base_offset: i64,
    /// The log start offset after the append.
    pub(crate) log_start_offset: i64,
}

/// A snapshot of a partition's offsets.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Offsets {
    /// First offset still in the log.
    pub(crate) log_start: i64,
    /// Offset up to which consumers may read.
    pub(crate) high_watermark: i64,
    /// Offset up to which `read_committed` consumers may read: the first offset of the oldest
    /// open transaction, or the high watermark when none is open.
    pub(crate) last_stable_offset: i64,
}

/// What a fetch of one partition returns.
#[derive(Debug, Clone, Default)]
pub(crate) struct FetchedData {
    /// Whole stored batches.
    pub(crate) records: Bytes,
    /// For `read_committed`: the aborted transactions overlapping the returned batches.
    pub(crate) aborted: Vec<AbortedTxn>,
}

impl Partition {
    /// Opens (and recovers) the log in `dir`.
    pub(crate) fn open(
        topic: &str,
        index: i32,
        dir: &Path,
        config: LogConfig,
    ) -> Result<Self, LogError> {
        let log = PartitionLog::open(dir, config)?;
        // One replay feeds both: producer states from the newest segment, transactions from
        // their checkpoint (the log start without one).
        let mut producers = ProducerStates::default();
        let producers_from = ProducerStates::rebuild_from(&log);
        let (mut txns, txns_from) = PartitionTxns::open(&log)?;
        for item in log.batches_from(producers_from.min(txns_from)) {
            let (header, bytes) = item?;
            if header.base_offset >= producers_from {
                producers.replay(&header, &bytes);
            }
            if header.next_offset() > txns_from {
                txns.replay(&header, &bytes)?;
            }
        }
        let log_end = log.log_end_offset();
        txns.finish_recovery(log_end)?;
        let watermarks = Watermarks {
            high_watermark: log_end,
            last_stable_offset: txns.last_stable_offset(log_end, log.log_start_offset()),
        };
        let (watermarks, _) = watch::channel(watermarks);
        Ok(Partition {
            topic: topic.to_owned(),
            index,
            dir: dir.to_owned(),
            inner: Mutex::new(Inner {
                log,
                producers,
                txns,
            }),
            watermarks,
        })
    }

    /// Publishes the offsets after a change (single broker: the high watermark is the log end).
    fn publish(&self, inner: &Inner) -> Watermarks {
        let hw = inner.log.log_end_offset();
        let w = Watermarks {
            high_watermark: hw,
            last_stable_offset: inner
                .txns
                .last_stable_offset(hw, inner.log.log_start_offset()),
        };
        self.watermarks.send_replace(w);
        w
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock would be a bug in the log; the data on disk is still
        // consistent (appends are single writes), so keep serving rather than poisoning forever.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends validated batches (`headers` as parsed by validation; offsets are assigned here)
    /// and wakes waiting fetches. A batch an idempotent producer already wrote is not stored
    /// again: the answer carries its original base offset.
    pub(crate) fn append(
        &self,
        batches: Bytes,
        headers: &[BatchHeader],
        now_ms: i64,
    ) -> Result<Appended, AppendError> {
        let mut inner = self.inner();
        if let Verdict::Duplicate { base_offset } = inner.producers.check(headers)? {
            return Ok(Appended {
                base_offset,
                log_start_offset: inner.log.log_start_offset(),
            });
        }
        let info: AppendInfo = inner.log.append(batches, now_ms)?;
        let mut next = info.base_offset;
        let assigned: Vec<BatchHeader> = headers
            .iter()
            .map(|h| {
                let mut h = *h;
                h.base_offset = next;
                next = h.next_offset();
                h
            })
            .collect();
        inner.producers.record(&assigned);
        inner.txns.on_appended(&assigned);
        // Single broker: data is committed as soon as it is in the log.
        self.publish(&inner);
        self.note_appended(&mut inner, info.bytes);
        Ok(Appended {
            base_offset: info.base_offset,
            log_start_offset: info.log_start_offset,
        })
    }

    /// Writes a transaction marker (COMMIT when `commit`, else ABORT) for `producer_id` and
    /// returns its offset. This is how the transaction coordinator completes a transaction on
    /// this partition: the producer's open transaction here ends (an abort is added to the
    /// aborted-transaction list), the last stable offset moves, and `read_committed` fetches
    /// wake up.
    ///
    /// Refused (nothing written) with INVALID_PRODUCER_EPOCH when `producer_epoch` is older
    /// than the producer's current epoch here, and TRANSACTION_COORDINATOR_FENCED when
    /// `coordinator_epoch` is older than the one of the producer's previous marker. A bumped
    /// epoch (the coordinator aborting a zombie's transaction with epoch + 1) is accepted and
    /// becomes the producer's epoch, fencing the zombie's later batches. A marker for a producer
    /// with no open transaction here is written all the same (a retry is harmless).
    pub(crate) fn write_txn_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
        now_ms: i64,
    ) -> Result<i64, AppendError> {
        let marker = ControlMarker {
            commit,
            coordinator_epoch,
        };
        let mut inner = self.inner();
        inner
            .producers
            .check_marker(producer_id, producer_epoch, coordinator_epoch)?;
        let info = inner
            .log
            .append(marker.batch(producer_id, producer_epoch, now_ms), now_ms)?;
        let offset = info.base_offset;
        inner
            .producers
            .record_marker(producer_id, producer_epoch, coordinator_epoch);
        let hw = inner.log.log_end_offset();
        let completed = inner.txns.complete(producer_id, offset, commit, Some(hw));
        self.publish(&inner);
        self.note_appended(&mut inner, info.bytes);
        if let Err(e) = completed {
            // The marker is in the log (the truth); only the derived index failed, and the next
            // open rebuilds it from the log.
            tracing::error!(topic = %self.topic, partition = self.index, producer_id, error = %e,
                "cannot record aborted transaction in the index");
        }
        tracing::debug!(topic = %self.topic, partition = self.index, producer_id, producer_epoch,
            commit, offset, "transaction marker written");
        Ok(offset)
    }

    /// Lets the transaction state checkpoint itself now and then; a failure only makes a later
    /// recovery replay more, so it is logged, not returned.
    fn note_appended(&self, inner: &mut Inner, bytes: usize) {
        let end = inner.log.log_end_offset();
        if let Err(e) = inner.txns.note_appended(bytes, end) {
            tracing::warn!(topic = %self.topic, partition = self.index, error = %e,
                "cannot write the transaction checkpoint");
        }
    }

    /// Reads for a fetch: whole stored batches from `offset`, at most `max_bytes` (but at least
    /// one batch), never past the high watermark, or, for `read_committed`, never past the last
    /// stable offset and with the aborted transactions overlapping what is returned.
    ///
    /// The bounds are those of `seen`, the [`Partition::offsets`] snapshot the response reports,
    /// so the records never reach past the watermarks the client is told (appends between the
    /// snapshot and the read only move the watermarks forward).
    pub(crate) fn fetch(
        &self,
        offset: i64,
        max_bytes: usize,
        read_committed: bool,
        seen: &Offsets,
    ) -> Result<FetchedData, LogError> {
        let inner = self.inner();
        let upper = if read_committed {
            seen.last_stable_offset
        } else {
            seen.high_watermark
        };
        let records = inner.log.read(offset, max_bytes, upper)?;
        let mut aborted = Vec::new();
        if read_committed && !records.is_empty() {
            let mut end = offset;
            for item in batch::batches(&records) {
                match item {
                    Ok((h, _)) => end = end.max(h.next_offset()),
                    Err(_) => break,
                }
            }
            aborted = inner.txns.aborted_overlapping(offset, end);
        }
        Ok(FetchedData { records, aborted })
    }

    /// Current offsets.
    pub(crate) fn offsets(&self) -> Offsets {
        let inner = self.inner();
        let w = *self.watermarks.borrow();
        Offsets {
            log_start: inner.log.log_start_offset(),
            high_watermark: w.high_watermark,
            last_stable_offset: w.last_stable_offset,
        }
    }

    /// The first offset whose timestamp is at or after `ts`, with that timestamp.
    pub(crate) fn offset_for_timestamp(&self, ts: i64) -> Option<(i64, i64)> {
        self.inner().log.offset_for_timestamp(ts)
    }

    /// Bytes of the partition's segment files.
    pub(crate) fn size_bytes(&self) -> u64 {
        self.inner().log.size_bytes()
    }

    /// A receiver that changes whenever the high watermark or the last stable offset moves.
    pub(crate) fn watch_watermarks(&self) -> watch::Receiver<Watermarks> {
        self.watermarks.subscribe()
    }

    /// Deletes old segments per the retention settings, drops aborted-transaction entries
    /// below the new log start, and checkpoints the transaction state (bounding the replay of a
    /// later recovery).
    pub(crate) fn apply_retention(&self, now_ms: i64) -> Result<usize, LogError> {
        let mut inner = self.inner();
        let deleted = inner.log.apply_retention(now_ms)?;
        let (start, end) = (inner.log.log_start_offset(), inner.log.log_end_offset());
        if deleted > 0 {
            inner.txns.on_log_start(start)?;
            self.publish(&inner);
        }
        inner.txns.checkpoint(end)?;
        Ok(deleted)
    }

    /// Writes everything to stable storage, with a transaction checkpoint at the log end.
    pub(crate) fn flush(&self) -> Result<(), LogError> {
        let mut inner = self.inner();
        inner.log.flush()?;
        inner.txns.flush()?;
        let end = inner.log.log_end_offset();
        inner.txns.checkpoint(end)
    }
}

#[cfg(test)]
mod tests {
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
        let data = p.fetch(from, 1 << 20, committed, &p.offsets()).unwrap();
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
        let data = p.fetch(0, 1 << 20, false, &seen).unwrap();
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
}

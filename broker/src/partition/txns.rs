//! The transactions of one partition: which producers have a transaction open here and from
//! which offset (giving the last stable offset), the aborted-transaction list that
//! `read_committed` fetches return, and the control markers that end transactions.
//!
//! Kafka's rules, kept here:
//! - the first transactional batch of a producer id opens a transaction at its base offset;
//!   later batches of the same transaction change nothing (O(1) per appended batch);
//! - a control marker (COMMIT or ABORT, written by the transaction coordinator through
//!   [`crate::partition::Partition::write_txn_marker`]) ends it; an ABORT records an
//!   [`AbortedTxn`] `(producer id, first offset, marker offset)` in the partition's
//!   [`TxnIndex`];
//! - the last stable offset is the first offset of the oldest open transaction, or the high
//!   watermark when none is open.
//!
//! A marker for a producer with no open transaction here (a coordinator retrying after a lost
//! answer, or an empty transaction) is written to the log all the same, as Kafka does, and
//! changes nothing else: no aborted entry is recorded for it, since it covers no data.
//!
//! Recovery ([`PartitionTxns::open`] then [`PartitionTxns::replay`] for each batch): the state
//! is the index plus the transaction checkpoint (see [`crate::log::txn_index`]) plus a replay of
//! the batch headers written after the checkpoint. Checkpoints are written when the partition
//! is opened, flushed, after retention and every 64 MiB appended, so a restart, even after
//! kill -9, replays at most about 64 MiB (the producer-state replay of the newest segment, which
//! predates transactions, reads more). Without a usable checkpoint (first start, or one that disagrees with
//! the log) the whole log is replayed once: one sequential read of the log (1 MiB at a time),
//! header work only. A transaction whose marker was never written (the broker died first) stays
//! open; the transaction coordinator completes it on its own recovery.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use bytes::Bytes;

use crate::log::txn_index::{AbortedTxn, TxnCheckpoint, TxnIndex};
use crate::log::{build_batch, decode_records, BatchHeader, LogError, PartitionLog};

/// Control record type of an abort marker.
const ABORT: i16 = 0;
/// Control record type of a commit marker.
const COMMIT: i16 = 1;

/// Bytes appended between two checkpoints: a recovery replays at most about this much (one
/// checkpoint costs a small file write and a rename, under the partition lock).
const CHECKPOINT_EVERY_BYTES: u64 = 64 << 20;

/// The content of a transaction marker (Kafka's `EndTransactionMarker`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ControlMarker {
    /// COMMIT (true) or ABORT (false).
    pub(crate) commit: bool,
    /// Epoch of the transaction coordinator that wrote it.
    pub(crate) coordinator_epoch: i32,
}

impl ControlMarker {
    /// The control batch carrying this marker for `producer_id`/`producer_epoch`: attributes
    /// transactional + control, base sequence -1, one record with key
    /// `version:i16=0, type:i16` (0 ABORT, 1 COMMIT) and value `version:i16=0,
    /// coordinator_epoch:i32`.
    pub(crate) fn batch(&self, producer_id: i64, producer_epoch: i16, timestamp_ms: i64) -> Bytes {
        let kind = if self.commit { COMMIT } else { ABORT };
        let mut key = [0u8; 4];
        key[2..4].copy_from_slice(&kind.to_be_bytes());
        let mut value = [0u8; 6];
        value[2..6].copy_from_slice(&self.coordinator_epoch.to_be_bytes());
        build_batch(
            &[(Some(&key[..]), Some(&value[..]))],
            timestamp_ms,
            producer_id,
            producer_epoch,
            -1,
            true,
            true,
        )
    }

    /// Reads the marker of a stored control batch; `None` when `batch` is not a control batch
    /// or its first record is not a marker of a known type (Kafka ignores those too).
    pub(crate) fn parse(batch: &[u8]) -> Option<ControlMarker> {
        let header = BatchHeader::parse(batch).ok()?;
        if !header.is_control() {
            return None;
        }
        let records = decode_records(batch).ok()?;
        let record = records.first()?;
        let key = record.key.as_deref()?;
        let kind = i16::from_be_bytes(key.get(2..4)?.try_into().ok()?);
        let commit = match kind {
            ABORT => false,
            COMMIT => true,
            _ => return None,
        };
        let coordinator_epoch = record
            .value
            .as_deref()
            .and_then(|v| Some(i32::from_be_bytes(v.get(2..6)?.try_into().ok()?)))
            .unwrap_or(-1);
        Some(ControlMarker {
            commit,
            coordinator_epoch,
        })
    }
}

/// The transaction state of one partition. See the module docs.
#[derive(Debug)]
pub(crate) struct PartitionTxns {
    /// The partition directory (for the checkpoint).
    dir: PathBuf,
    /// Open transactions: producer id → offset of its first batch here.
    ongoing: HashMap<i64, i64>,
    /// The same, ordered by first offset, for the last stable offset.
    by_first_offset: BTreeSet<(i64, i64)>,
    /// Aborted transactions, in memory and on disk.
    index: TxnIndex,
    /// Set when the index file could not be written: checkpoints are then withheld (and the
    /// existing one removed) so that the next open replays the whole log.
    index_broken: bool,
    /// During recovery: offset of each producer's last marker seen by the replay.
    replayed_markers: HashMap<i64, i64>,
    /// During recovery: where the replay started.
    replay_from: i64,
    /// Bytes appended since the last checkpoint.
    unchecked_bytes: u64,
    /// Checkpoint again once this many bytes were appended (bounds the replay after kill -9).
    checkpoint_every_bytes: u64,
}

impl PartitionTxns {
    /// Loads the persisted state of `log`'s partition and returns it with the offset from which
    /// the log must be replayed through [`PartitionTxns::replay`] (then call
    /// [`PartitionTxns::finish_recovery`]).
    pub(crate) fn open(log: &PartitionLog) -> Result<(PartitionTxns, i64), LogError> {
        let dir = log.dir().to_path_buf();
        let log_start = log.log_start_offset();
        let log_end = log.log_end_offset();
        let mut index = TxnIndex::open(&dir)?;
        let checkpoint = TxnCheckpoint::read(&dir).filter(|c| {
            c.offset >= log_start
                && c.offset <= log_end
                && c.aborted_entries <= index.len()
                && index
                    .entries()
                    .get(c.aborted_entries.wrapping_sub(1))
                    .is_none_or(|e| e.last_offset < c.offset)
                && c.ongoing.iter().all(|&(_, first)| first < c.offset)
        });
        let mut ongoing = Vec::new();
        let from = match checkpoint {
            Some(c) => {
                index.truncate(c.aborted_entries)?;
                ongoing = c.ongoing;
                c.offset
            }
            None => {
                index.retain(|_| false)?;
                log_start
            }
        };
        let mut txns = PartitionTxns {
            dir,
            ongoing: HashMap::new(),
            by_first_offset: BTreeSet::new(),
            index,
            index_broken: false,
            replayed_markers: HashMap::new(),
            replay_from: from,
            unchecked_bytes: 0,
            checkpoint_every_bytes: CHECKPOINT_EVERY_BYTES,
        };
        for (pid, first) in ongoing {
            txns.open_txn(pid, first);
        }
        Ok((txns, from))
    }

    /// Replays one stored batch (`bytes` is the whole batch, `header` carries its offset).
    pub(crate) fn replay(&mut self, header: &BatchHeader, bytes: &[u8]) -> Result<(), LogError> {
        if header.producer_id < 0 || !header.is_transactional() {
            return Ok(());
        }
        if !header.is_control() {
            self.on_appended(std::slice::from_ref(header));
            return Ok(());
        }
        let Some(marker) = ControlMarker::parse(bytes) else {
            return Ok(());
        };
        let pid = header.producer_id;
        if !marker.commit && !self.ongoing.contains_key(&pid) {
            // The transaction may have started before the replay did (when replaying from the
            // log start, before the retained log): everything of this producer since its
            // previous marker belongs to it.
            let first = self
                .replayed_markers
                .get(&pid)
                .map_or(self.replay_from, |m| m + 1);
            if first < header.base_offset {
                self.open_txn(pid, first);
            }
        }
        self.replayed_markers.insert(pid, header.base_offset);
        self.complete(pid, header.base_offset, marker.commit, None)?;
        Ok(())
    }

    /// Ends recovery: checkpoints the state as of `log_end`.
    pub(crate) fn finish_recovery(&mut self, log_end: i64) -> Result<(), LogError> {
        self.replayed_markers = HashMap::new();
        self.checkpoint(log_end)
    }

    fn open_txn(&mut self, producer_id: i64, first_offset: i64) {
        if let std::collections::hash_map::Entry::Vacant(v) = self.ongoing.entry(producer_id) {
            v.insert(first_offset);
            self.by_first_offset.insert((first_offset, producer_id));
        }
    }

    /// Records appended data batches (headers carry their assigned offsets): a transactional
    /// batch of a producer with no open transaction here opens one.
    pub(crate) fn on_appended(&mut self, headers: &[BatchHeader]) {
        for h in headers {
            if h.is_transactional() && !h.is_control() && h.producer_id >= 0 {
                self.open_txn(h.producer_id, h.base_offset);
            }
        }
    }

    /// Ends `producer_id`'s open transaction with the marker at `marker_offset`. For an abort
    /// the aborted entry is recorded and returned; its last stable offset is computed with
    /// `high_watermark` (the marker's next offset when `None`).
    pub(crate) fn complete(
        &mut self,
        producer_id: i64,
        marker_offset: i64,
        commit: bool,
        high_watermark: Option<i64>,
    ) -> Result<Option<AbortedTxn>, LogError> {
        let Some(first) = self.ongoing.remove(&producer_id) else {
            return Ok(None);
        };
        self.by_first_offset.remove(&(first, producer_id));
        if commit {
            return Ok(None);
        }
        let hw = high_watermark.unwrap_or(marker_offset + 1);
        let entry = AbortedTxn {
            producer_id,
            first_offset: first,
            last_offset: marker_offset,
            last_stable_offset: self.first_unstable_offset().map_or(hw, |f| f.min(hw)),
        };
        if self
            .index
            .entries()
            .back()
            .is_some_and(|b| b.last_offset >= marker_offset)
        {
            // Already recorded (replay over an index that was ahead of the checkpoint).
            return Ok(Some(entry));
        }
        if self.index_broken {
            self.index.record(entry);
        } else if let Err(e) = self.index.append(entry) {
            // The entry is in memory (fetches list it); the file is behind from now on.
            self.index_broken = true;
            let _ = TxnCheckpoint::remove(&self.dir);
            return Err(e);
        }
        Ok(Some(entry))
    }

    /// First offset of the oldest open transaction.
    pub(crate) fn first_unstable_offset(&self) -> Option<i64> {
        self.by_first_offset.first().map(|&(first, _)| first)
    }

    /// The last stable offset given the high watermark and the log start offset.
    pub(crate) fn last_stable_offset(&self, high_watermark: i64, log_start: i64) -> i64 {
        self.first_unstable_offset()
            .map_or(high_watermark, |f| f.min(high_watermark))
            .max(log_start)
    }

    /// The producer's open transaction here, as its first offset.
    #[cfg(test)]
    pub(crate) fn ongoing(&self, producer_id: i64) -> Option<i64> {
        self.ongoing.get(&producer_id).copied()
    }

    /// Aborted transactions overlapping the fetched range `[from, upper)`.
    pub(crate) fn aborted_overlapping(&self, from: i64, upper: i64) -> Vec<AbortedTxn> {
        self.index.overlapping(from, upper)
    }

    /// Drops aborted entries wholly below the log start offset.
    pub(crate) fn on_log_start(&mut self, log_start: i64) -> Result<(), LogError> {
        self.index.retain(|e| e.last_offset >= log_start)?;
        Ok(())
    }

    /// Counts `bytes` just appended, the log now ending at `log_end`; checkpoints when enough
    /// accumulated since the last checkpoint. O(1) except on those rare checkpoints.
    pub(crate) fn note_appended(&mut self, bytes: usize, log_end: i64) -> Result<(), LogError> {
        self.unchecked_bytes += bytes as u64;
        if self.unchecked_bytes >= self.checkpoint_every_bytes {
            self.checkpoint(log_end)?;
        }
        Ok(())
    }

    /// Writes the checkpoint of the current state as of `offset` (the log end offset).
    pub(crate) fn checkpoint(&mut self, offset: i64) -> Result<(), LogError> {
        self.unchecked_bytes = 0;
        if self.index_broken {
            return TxnCheckpoint::remove(&self.dir);
        }
        let mut ongoing: Vec<(i64, i64)> =
            self.by_first_offset.iter().map(|&(f, p)| (p, f)).collect();
        ongoing.sort_unstable();
        TxnCheckpoint {
            offset,
            aborted_entries: self.index.len(),
            ongoing,
        }
        .write(&self.dir)
    }

    /// fsyncs the aborted-transaction index.
    pub(crate) fn flush(&self) -> Result<(), LogError> {
        self.index.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_encode_as_kafka_control_records() {
        for (commit, kind) in [(false, 0u8), (true, 1u8)] {
            let marker = ControlMarker {
                commit,
                coordinator_epoch: 7,
            };
            let bytes = marker.batch(42, 3, 1_000);
            let h = BatchHeader::parse(&bytes).unwrap();
            assert!(h.is_control() && h.is_transactional());
            assert_eq!(
                (h.producer_id, h.producer_epoch, h.base_sequence),
                (42, 3, -1)
            );
            assert_eq!((h.records_count, h.base_timestamp), (1, 1_000));
            let records = decode_records(&bytes).unwrap();
            assert_eq!(records.len(), 1);
            assert_eq!(records[0].key.as_deref(), Some(&[0, 0, 0, kind][..]));
            assert_eq!(records[0].value.as_deref(), Some(&[0, 0, 0, 0, 0, 7][..]));
            assert_eq!(ControlMarker::parse(&bytes), Some(marker));
        }
        let data = build_batch(&[(None, Some(&b"x"[..]))], 0, 1, 0, 0, true, false);
        assert_eq!(ControlMarker::parse(&data), None);
    }

    fn header(pid: i64, base_offset: i64, txn: bool) -> BatchHeader {
        let bytes = build_batch(&[(None, Some(&b"x"[..]))], 0, pid, 0, 0, txn, false);
        let mut h = BatchHeader::parse(&bytes).unwrap();
        h.base_offset = base_offset;
        h
    }

    #[test]
    fn last_stable_offset_is_the_oldest_open_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let log = PartitionLog::open(dir.path(), crate::log::LogConfig::default()).unwrap();
        let (mut t, from) = PartitionTxns::open(&log).unwrap();
        assert_eq!(from, 0);
        assert_eq!(t.last_stable_offset(10, 0), 10);
        t.on_appended(&[header(1, 3, true), header(2, 5, true), header(-1, 6, false)]);
        t.on_appended(&[header(1, 7, true)]);
        assert_eq!(t.ongoing(1), Some(3), "later batches keep the first offset");
        assert_eq!(t.last_stable_offset(10, 0), 3);
        assert_eq!(
            t.last_stable_offset(2, 0),
            2,
            "never past the high watermark"
        );
        assert_eq!(t.last_stable_offset(10, 4), 4, "never below the log start");
        assert_eq!(t.complete(1, 8, true, None).unwrap(), None);
        assert_eq!(t.last_stable_offset(10, 0), 5);
        let aborted = t.complete(2, 9, false, Some(10)).unwrap().unwrap();
        assert_eq!((aborted.first_offset, aborted.last_offset), (5, 9));
        assert_eq!(t.last_stable_offset(10, 0), 10);
        assert_eq!(
            t.complete(2, 11, false, None).unwrap(),
            None,
            "nothing open"
        );
        assert_eq!(t.aborted_overlapping(0, 12).len(), 1);
    }

    #[test]
    fn a_checkpoint_is_written_after_enough_appended_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let log = PartitionLog::open(dir.path(), crate::log::LogConfig::default()).unwrap();
        let (mut t, _) = PartitionTxns::open(&log).unwrap();
        t.checkpoint_every_bytes = 100;
        t.on_appended(&[header(1, 0, true)]);
        t.note_appended(60, 1).unwrap();
        assert_eq!(TxnCheckpoint::read(dir.path()), None);
        t.note_appended(60, 2).unwrap();
        let c = TxnCheckpoint::read(dir.path()).unwrap();
        assert_eq!((c.offset, c.ongoing), (2, vec![(1, 0)]));
    }
}

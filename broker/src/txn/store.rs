//! The transaction log: the internal log `__transaction_state-0` under the first log dir,
//! holding [`TxnRecord`]s in Kafka's formats, replayed at start.
//!
//! Kafka spreads transactional ids over 50 partitions of `__transaction_state` so that many
//! brokers can share the coordinator role. kbroker is the coordinator of every transactional id,
//! so one partition (0) is enough, and the on-disk name stays Kafka's. Every state change is
//! a `write()` of one batch to the segment file before the client is answered (so it survives
//! `kill -9`) and, for a Prepare state, before any marker is written; fsync follows the
//! broker's flush settings.
//!
//! Kafka keeps this log small with log compaction; here, as in the `__consumer_offsets` store,
//! once the log has grown enough since the last snapshot the coordinator writes the live state
//! of every transactional id again and the log start moves to that snapshot. Replay starts at
//! the log start, so a crash between the two steps only leaves redundant records behind.
//!
//! That is the single broker. In a cluster `__transaction_state` is a replicated topic of many
//! partitions, written by the coordinator through the partition it leads; [`replay`] and
//! [`encode_batch`] are shared with that path, and no snapshot is taken there: the topic is
//! created with `cleanup.policy=compact` and the log cleaner keeps it small.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use crate::log::{build_batch, decode_records, LogConfig, LogError, PartitionLog};

use super::records::TxnRecord;

/// Name of the internal topic.
pub(crate) const TXN_TOPIC: &str = "__transaction_state";

/// Segment size of the internal log: small, so snapshots can drop old segments soon.
const SEGMENT_BYTES: u64 = 16 << 20;

/// The log is snapshotted once it has grown by this much (or by twice its last snapshot).
const SNAPSHOT_MIN_GROWTH: u64 = 32 << 20;

/// Why the transaction log failed.
#[derive(Debug, thiserror::Error)]
#[error("{TXN_TOPIC}-0: {0}")]
pub(crate) struct TxnStoreError(#[from] pub(crate) LogError);

/// The open log and its growth since the last snapshot.
struct Inner {
    log: PartitionLog,
    bytes_since_snapshot: u64,
    last_snapshot_bytes: u64,
}

/// The `__transaction_state` log of this broker.
pub(crate) struct TxnStore {
    inner: Mutex<Inner>,
    /// Growth that makes the log due for a snapshot (tests lower it).
    snapshot_min_growth: u64,
}

impl TxnStore {
    /// Opens (creating if needed) `<dir>/__transaction_state-0` and replays it: the last record
    /// of every transactional id, in log order.
    pub(crate) fn open(
        dir: &Path,
        flush_interval_messages: Option<u64>,
        flush_interval_ms: Option<u64>,
    ) -> Result<(Self, HashMap<String, TxnRecord>), TxnStoreError> {
        let config = LogConfig {
            segment_bytes: SEGMENT_BYTES,
            segment_ms: None,
            retention_ms: None,
            retention_bytes: None,
            flush_interval_messages,
            flush_interval_ms,
            ..LogConfig::default()
        };
        let log = PartitionLog::open(&dir.join(format!("{TXN_TOPIC}-0")), config)?;
        let latest = replay(&log, 0)?;
        let size = log.size_bytes();
        Ok((
            TxnStore {
                inner: Mutex::new(Inner {
                    log,
                    bytes_since_snapshot: 0,
                    last_snapshot_bytes: size,
                }),
                snapshot_min_growth: SNAPSHOT_MIN_GROWTH,
            },
            latest,
        ))
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Appends are single writes: the log stays consistent even if a holder panicked.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends `record` as one batch: a `write()` to the segment file, so the record survives
    /// `kill -9` once this returns (fsync follows the broker's flush settings, as for Kafka's
    /// own internal topics). Returns whether the log is due for a snapshot.
    pub(crate) fn append(&self, record: &TxnRecord) -> Result<bool, TxnStoreError> {
        let mut inner = self.lock();
        let bytes = append_records(&mut inner.log, std::slice::from_ref(record))?;
        inner.bytes_since_snapshot += bytes;
        Ok(
            inner.bytes_since_snapshot
                > self.snapshot_min_growth.max(2 * inner.last_snapshot_bytes),
        )
    }

    /// Writes `live` (the state of every transactional id) and makes it the start of the log.
    pub(crate) fn snapshot(&self, live: &[TxnRecord]) -> Result<(), TxnStoreError> {
        let mut inner = self.lock();
        let start = inner.log.log_end_offset();
        let mut written = 0;
        for chunk in live.chunks(256) {
            written += append_records(&mut inner.log, chunk)?;
        }
        inner.log.flush()?;
        inner.log.delete_records_before(start)?;
        inner.bytes_since_snapshot = 0;
        inner.last_snapshot_bytes = written;
        tracing::info!(
            records = live.len(),
            bytes = written,
            "snapshotted {TXN_TOPIC}-0"
        );
        Ok(())
    }

    /// fsyncs the log.
    pub(crate) fn flush(&self) -> Result<(), TxnStoreError> {
        Ok(self.lock().log.flush()?)
    }

    /// Lowers the snapshot threshold (tests).
    #[cfg(test)]
    pub(crate) fn set_snapshot_min_growth(&mut self, bytes: u64) {
        self.snapshot_min_growth = bytes;
    }
}

/// Replays a `__transaction_state` partition (`index`, for messages): the last record of every
/// transactional id still alive (tombstones removed), from the log start. The single broker's
/// own log and a replicated partition this broker starts to lead are read the same way.
pub(crate) fn replay(
    log: &PartitionLog,
    index: i32,
) -> Result<HashMap<String, TxnRecord>, LogError> {
    let mut latest = HashMap::new();
    let start = log.log_start_offset();
    let mut count = 0usize;
    for item in log.batches_from(start) {
        let (header, bytes) = item?;
        if header.is_control() {
            continue;
        }
        let records = match decode_records(&bytes) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(
                    offset = header.base_offset,
                    "skipping undecodable batch in {TXN_TOPIC}-{index}: {e}"
                );
                continue;
            }
        };
        for r in records {
            let offset = header.base_offset + i64::from(r.offset_delta);
            if offset < start {
                continue;
            }
            let decoded = r
                .key
                .as_deref()
                .and_then(|k| TxnRecord::decode(k, r.value.as_deref()));
            match decoded {
                Some(rec) => {
                    count += 1;
                    latest.insert(rec.transactional_id.clone(), rec);
                }
                None => tracing::warn!(offset, "skipping unknown record in {TXN_TOPIC}-{index}"),
            }
        }
    }
    latest.retain(|_, r| r.value.is_some());
    tracing::info!(
        records = count,
        transactional_ids = latest.len(),
        "replayed {TXN_TOPIC}-{index}"
    );
    Ok(latest)
}

/// `records` as one uncompressed, non-transactional batch.
pub(crate) fn encode_batch(records: &[TxnRecord]) -> bytes::Bytes {
    let encoded: Vec<_> = records.iter().map(TxnRecord::encode).collect();
    let pairs: Vec<_> = encoded
        .iter()
        .map(|(k, v)| (Some(&k[..]), v.as_deref()))
        .collect();
    build_batch(&pairs, crate::clock::now_ms(), -1, -1, -1, false, false)
}

/// Appends `records` as one uncompressed batch; returns the bytes written.
fn append_records(log: &mut PartitionLog, records: &[TxnRecord]) -> Result<u64, TxnStoreError> {
    if records.is_empty() {
        return Ok(0);
    }
    let batch = encode_batch(records);
    let len = batch.len() as u64;
    log.append(batch, crate::clock::now_ms())?;
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::txn::records::TxnValue;
    use crate::txn::state::TxnState;

    fn rec(id: &str, epoch: i16, state: TxnState) -> TxnRecord {
        TxnRecord {
            transactional_id: id.into(),
            value: Some(TxnValue {
                producer_id: 1,
                producer_epoch: epoch,
                timeout_ms: 1000,
                state,
                partitions: Default::default(),
                last_update_ms: 0,
                start_ms: -1,
            }),
        }
    }

    #[test]
    fn the_last_record_of_each_id_is_replayed() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (store, replayed) = TxnStore::open(dir.path(), None, None).unwrap();
            assert!(replayed.is_empty());
            store.append(&rec("a", 0, TxnState::Empty)).unwrap();
            store.append(&rec("b", 0, TxnState::Empty)).unwrap();
            store.append(&rec("a", 1, TxnState::Ongoing)).unwrap();
            let tombstone = TxnRecord {
                transactional_id: "b".into(),
                value: None,
            };
            store.append(&tombstone).unwrap();
            // Dropped without flush, as after kill -9.
        }
        let (_store, replayed) = TxnStore::open(dir.path(), None, None).unwrap();
        assert_eq!(replayed.len(), 1);
        assert_eq!(replayed["a"], rec("a", 1, TxnState::Ongoing));
    }

    #[test]
    fn snapshot_moves_the_log_start_and_keeps_the_live_state() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut store, _) = TxnStore::open(dir.path(), None, None).unwrap();
            store.set_snapshot_min_growth(1);
            let mut due = false;
            for e in 0..10 {
                due = store.append(&rec("a", e, TxnState::Empty)).unwrap();
            }
            assert!(due);
            store.snapshot(&[rec("a", 9, TxnState::Empty)]).unwrap();
            store.append(&rec("c", 0, TxnState::Empty)).unwrap();
        }
        let (_store, replayed) = TxnStore::open(dir.path(), None, None).unwrap();
        assert_eq!(replayed.len(), 2);
        assert_eq!(replayed["a"], rec("a", 9, TxnState::Empty));
    }
}

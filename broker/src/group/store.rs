//! The committed-offsets store: the `__consumer_offsets` partitions this broker leads, holding
//! [`StoreRecord`]s in Kafka's formats.
//!
//! A group's records all go to partition `abs(java_hash(group_id)) % offsets.topic.num.partitions`,
//! as in Kafka. `__consumer_offsets` is a replicated topic like any other (a lone broker is a
//! quorum of one): its partitions are [`Partition`]s that the replication layer keeps on
//! `offsets.topic.replication.factor` brokers, and this store only writes to the ones this
//! broker currently leads ([`OffsetStore::lead`]). A commit is answered once the leader has
//! written it, as with acks=1: followers have it milliseconds later; a coordinator that dies in
//! between loses those last commits (its consumers re-read a little, at-least-once), where
//! Kafka would wait for the ISR. The topic is created with `cleanup.policy=compact`, so the log
//! cleaner keeps it bounded by the live state, as in Kafka.
//!
//! Transactional offset commits (TxnOffsetCommit) are written as Kafka writes them: a
//! transactional batch carrying the producer id and epoch, later followed by the transaction's
//! COMMIT or ABORT control batch ([`OffsetStore::append_marker`]). Replay holds a producer's
//! transactional records until its marker: committed ones take effect at the marker's place in
//! the log, aborted ones are dropped, and those still without a marker (the transaction was
//! open at the crash) come back as pending ([`OffsetStore::lead`]) for the transaction
//! coordinator to complete or abort.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

use crate::partition::Partition;

use crate::log::{build_batch, decode_records, PartitionLog};

pub(crate) use super::records::{GroupSnapshot, MemberSnapshot, StoreRecord};
use super::GroupError;

/// Name of the internal topic.
pub(crate) const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Kafka's `String.hashCode()` of the group id (UTF-16 code units), for partition choice.
fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// The `__consumer_offsets` partition of `group_id` (Kafka's `Utils.abs(hash) % n`).
pub(crate) fn partition_for(group_id: &str, num_partitions: i32) -> i32 {
    let n = num_partitions.max(1);
    // Kafka's Utils.abs maps i32::MIN to 0.
    let h = java_string_hash(group_id);
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % n
}

/// Transactional offset records of one producer that have no marker yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PendingTxnRecords {
    /// Producer id.
    pub(crate) producer_id: i64,
    /// Producer epoch of the records.
    pub(crate) producer_epoch: i16,
    /// The group the records belong to.
    pub(crate) group: String,
    /// The offset records, in log order.
    pub(crate) records: Vec<StoreRecord>,
}

/// Whether a control record key is a COMMIT marker (`None` if it is not a marker key).
fn marker_is_commit(key: &[u8]) -> Option<bool> {
    match key {
        [0, 0, 0, 1, ..] => Some(true),
        [0, 0, 0, 0, ..] => Some(false),
        _ => None,
    }
}

/// Where committed offsets and group metadata are written: the `__consumer_offsets`
/// partitions this broker leads.
pub(crate) struct OffsetStore {
    /// `offsets.topic.num.partitions`.
    num_partitions: i32,
    /// The partitions this broker leads, by index.
    led: Mutex<HashMap<i32, Arc<Partition>>>,
}

impl OffsetStore {
    /// A store leading no partition yet; [`OffsetStore::lead`] hands them over.
    pub(crate) fn new(num_partitions: i32) -> Self {
        OffsetStore {
            num_partitions,
            led: Mutex::default(),
        }
    }

    /// This broker now leads `partition` (index `index`): writes go to it. Returns its records
    /// in log order and the transactional ones still waiting for a marker, for the coordinator
    /// to load.
    pub(crate) fn lead(
        &self,
        index: i32,
        partition: Arc<Partition>,
    ) -> Result<(Vec<StoreRecord>, Vec<PendingTxnRecords>), GroupError> {
        let mut records = Vec::new();
        let mut pending = Vec::new();
        partition.with_log(|log| replay(log, index, &mut records, &mut pending))?;
        self.lock().insert(index, partition);
        Ok((records, pending))
    }

    /// This broker no longer leads partition `index`.
    pub(crate) fn resign(&self, index: i32) {
        self.lock().remove(&index);
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<i32, Arc<Partition>>> {
        self.led.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The led partition `index` (NotLeader if this broker does not lead it).
    fn led(&self, index: i32) -> Result<Arc<Partition>, GroupError> {
        self.lock()
            .get(&index)
            .cloned()
            .ok_or(GroupError::NotLeader { partition: index })
    }

    /// Appends `batch` to the led partition `index`.
    fn append_led(&self, index: i32, batch: Bytes) -> Result<(), GroupError> {
        self.led(index)?
            .append_from_coordinator(batch, crate::clock::now_ms())
            .map_err(|e| match e {
                crate::partition::LeaderAppendError::NotLeader => {
                    GroupError::NotLeader { partition: index }
                }
                other => GroupError::Replicated {
                    partition: index,
                    message: other.to_string(),
                },
            })?;
        Ok(())
    }

    /// The partition of `group_id`.
    pub(crate) fn partition_for(&self, group_id: &str) -> i32 {
        partition_for(group_id, self.num_partitions)
    }

    /// Appends `records` (all of `group_id`) as one batch to the group's partition, as its
    /// leader.
    pub(crate) fn append(&self, group_id: &str, records: &[StoreRecord]) -> Result<(), GroupError> {
        if records.is_empty() {
            return Ok(());
        }
        let index = self.partition_for(group_id);
        self.append_led(index, encode_batch(records, (-1, -1)))
    }

    /// Appends `records` (all of `group_id`) as one transactional batch of `producer_id`:
    /// they count only once the transaction's COMMIT marker follows them.
    pub(crate) fn append_transactional(
        &self,
        group_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        records: &[StoreRecord],
    ) -> Result<(), GroupError> {
        if records.is_empty() {
            return Ok(());
        }
        let index = self.partition_for(group_id);
        self.append_led(index, encode_batch(records, (producer_id, producer_epoch)))
    }

    /// Appends the COMMIT or ABORT marker of `producer_id`'s transaction to partition `index`.
    pub(crate) fn append_marker(
        &self,
        index: i32,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
    ) -> Result<(), GroupError> {
        self.led(index)?
            .write_txn_marker(
                producer_id,
                producer_epoch,
                commit,
                coordinator_epoch,
                crate::clock::now_ms(),
            )
            .map_err(|e| GroupError::Replicated {
                partition: index,
                message: e.to_string(),
            })?;
        Ok(())
    }
}

/// `records` as one uncompressed batch, transactional when `producer` (id, epoch) has an id.
fn encode_batch(records: &[StoreRecord], producer: (i64, i16)) -> Bytes {
    let encoded: Vec<_> = records.iter().map(StoreRecord::encode).collect();
    let pairs: Vec<_> = encoded
        .iter()
        .map(|(k, v)| (Some(&k[..]), v.as_deref()))
        .collect();
    let (producer_id, producer_epoch) = producer;
    build_batch(
        &pairs,
        crate::clock::now_ms(),
        producer_id,
        producer_epoch,
        -1,
        producer_id >= 0,
        false,
    )
}

/// Reads every record of `log` from its start offset, in order, into `out`. Transactional
/// records wait for their producer's marker: COMMIT appends them to `out` at the marker's
/// place, ABORT drops them; those left without a marker go to `pending`.
fn replay(
    log: &PartitionLog,
    index: i32,
    out: &mut Vec<StoreRecord>,
    pending: &mut Vec<PendingTxnRecords>,
) -> Result<(), GroupError> {
    let start = log.log_start_offset();
    // Per producer id: (epoch, records by group in log order).
    let mut open: HashMap<i64, (i16, Vec<StoreRecord>)> = HashMap::new();
    for item in log.batches_from(start) {
        let (header, bytes) = item.map_err(|source| GroupError::Log {
            partition: index,
            source,
        })?;
        let records = match decode_records(&bytes) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(
                    partition = index,
                    offset = header.base_offset,
                    "skipping undecodable batch in {OFFSETS_TOPIC}-{index}: {e}"
                );
                continue;
            }
        };
        if header.is_control() {
            let commit = records
                .first()
                .and_then(|r| r.key.as_deref())
                .and_then(marker_is_commit);
            if let (Some(commit), Some((_, txn))) = (commit, open.remove(&header.producer_id)) {
                if commit {
                    out.extend(txn);
                }
            }
            continue;
        }
        for r in records {
            if header.base_offset + i64::from(r.offset_delta) < start {
                continue;
            }
            let Some(key) = r.key.as_deref() else {
                continue;
            };
            match StoreRecord::decode(key, r.value.as_deref()) {
                Some(rec) if header.is_transactional() => {
                    let entry = open
                        .entry(header.producer_id)
                        .or_insert_with(|| (header.producer_epoch, Vec::new()));
                    entry.0 = header.producer_epoch;
                    entry.1.push(rec);
                }
                Some(rec) => out.push(rec),
                None => tracing::warn!(
                    partition = index,
                    offset = header.base_offset + i64::from(r.offset_delta),
                    "skipping unknown record in {OFFSETS_TOPIC}-{index}"
                ),
            }
        }
    }
    let mut open: Vec<_> = open.into_iter().collect();
    open.sort_by_key(|(pid, _)| *pid);
    for (producer_id, (producer_epoch, records)) in open {
        let mut by_group: Vec<PendingTxnRecords> = Vec::new();
        for r in records {
            let StoreRecord::Offset { group, .. } = &r else {
                continue;
            };
            match by_group.iter_mut().find(|p| &p.group == group) {
                Some(p) => p.records.push(r),
                None => by_group.push(PendingTxnRecords {
                    producer_id,
                    producer_epoch,
                    group: group.clone(),
                    records: vec![r],
                }),
            }
        }
        pending.extend(by_group);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::state::CommittedOffset;
    use crate::log::LogConfig;

    fn commit(group: &str, partition: i32, offset: i64) -> StoreRecord {
        StoreRecord::Offset {
            group: group.into(),
            topic: "t".into(),
            partition,
            value: Some(CommittedOffset {
                offset,
                leader_epoch: -1,
                metadata: String::new(),
                commit_timestamp_ms: 1,
                expire_timestamp_ms: None,
            }),
        }
    }

    #[test]
    fn partition_choice_matches_kafka() {
        // Java: "my-group".hashCode() == 1248614617 ... checked against the Java formula.
        assert_eq!(java_string_hash(""), 0);
        assert_eq!(java_string_hash("a"), 97);
        assert_eq!(java_string_hash("ab"), 97 * 31 + 98);
        assert_eq!(partition_for("ab", 50), (97 * 31 + 98) % 50);
        for g in ["x", "consumer-group-1", "é"] {
            assert!((0..50).contains(&partition_for(g, 50)));
        }
    }

    #[test]
    fn appended_records_are_replayed_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let open = |i: i32| {
            let path = dir.path().join(format!("{OFFSETS_TOPIC}-{i}"));
            Arc::new(Partition::open(OFFSETS_TOPIC, i, &path, LogConfig::default()).unwrap())
        };
        {
            let store = OffsetStore::new(50);
            for i in 0..50 {
                let (replayed, _) = store.lead(i, open(i)).unwrap();
                assert!(replayed.is_empty());
            }
            store
                .append("g", &[commit("g", 0, 5), commit("g", 1, 6)])
                .unwrap();
            store.append("h", &[commit("h", 0, 7)]).unwrap();
            store.append("g", &[commit("g", 0, 8)]).unwrap();
            // Dropped without flush: the data is in the page cache, like after kill -9.
        }
        let store = OffsetStore::new(50);
        let mut replayed = Vec::new();
        for i in 0..50 {
            replayed.extend(store.lead(i, open(i)).unwrap().0);
        }
        let g: Vec<_> = replayed
            .iter()
            .filter(|r| r.group() == "g")
            .cloned()
            .collect();
        assert_eq!(
            g,
            vec![commit("g", 0, 5), commit("g", 1, 6), commit("g", 0, 8)]
        );
        assert_eq!(replayed.iter().filter(|r| r.group() == "h").count(), 1);
    }
}

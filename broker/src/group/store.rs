//! The committed-offsets store: the internal log `__consumer_offsets-<n>` under the first log
//! dir, one [`PartitionLog`] per partition, holding [`StoreRecord`]s in Kafka's formats.
//!
//! A group's records all go to partition `abs(java_hash(group_id)) % offsets.topic.num.partitions`,
//! as in Kafka. Partitions are created on first use, so a broker whose clients never commit has
//! no `__consumer_offsets` directories. Every append is a `write()` to the segment file before
//! the caller answers its client (so an acknowledged commit survives `kill -9`), fsynced per the
//! log's flush settings.
//!
//! Kafka keeps this log small with log compaction. Here the same effect comes from snapshots:
//! once a partition has grown by more than a threshold since its last snapshot, the coordinator
//! writes the live state of that partition's groups again and the log start offset moves to the
//! snapshot ([`PartitionLog::delete_records_before`]), which drops whole old segments. Replay
//! starts at the log start offset and skips records below it, so a crash between the two steps
//! only leaves redundant records behind.
//!
//! Transactional offset commits (TxnOffsetCommit) are written as Kafka writes them: a
//! transactional batch carrying the producer id and epoch, later followed by the transaction's
//! COMMIT or ABORT control batch ([`OffsetStore::append_marker`]). Replay holds a producer's
//! transactional records until its marker: committed ones take effect at the marker's place in
//! the log, aborted ones are dropped, and those still without a marker (the transaction was
//! open at the crash) come back as pending ([`OffsetStore::take_replayed_pending`]) for the
//! transaction coordinator to complete or abort. Snapshots rewrite pending records as
//! transactional batches so they keep waiting for their marker.
//!
//! In a cluster the log is a replicated topic like any other: `__consumer_offsets` partitions
//! are [`Partition`]s that the replication layer keeps on several brokers, and this store only
//! writes to the ones this broker currently leads ([`OffsetStore::replicated`],
//! [`OffsetStore::lead`]). A commit is answered once the leader has written it, as with acks=1:
//! followers have it milliseconds later; a coordinator that dies in between loses those last
//! commits (its consumers re-read a little, at-least-once), where Kafka would wait for the ISR.
//! Snapshots are not taken there: the topic is created with `cleanup.policy=compact`, so the
//! log cleaner keeps it bounded by the live state, as in Kafka.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{BufMut, Bytes, BytesMut};

use crate::partition::Partition;

use crate::log::{build_batch, decode_records, LogConfig, PartitionLog};

pub(crate) use super::records::{GroupSnapshot, MemberSnapshot, StoreRecord};
use super::GroupError;

/// Name of the internal topic.
pub(crate) const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Segment size of the internal log: small, so snapshots can drop old segments soon.
const SEGMENT_BYTES: u64 = 16 << 20;

/// A partition is snapshotted once it has grown by this much (or by twice its last snapshot,
/// whichever is larger) since the last snapshot.
const SNAPSHOT_MIN_GROWTH: u64 = 32 << 20;

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

/// The control record of a transaction marker: key (version 0, type 0 = ABORT / 1 = COMMIT),
/// value (version 0, coordinator epoch), as Kafka's `EndTransactionMarker`.
fn marker_record(commit: bool, coordinator_epoch: i32) -> ([u8; 4], [u8; 6]) {
    let mut key = BytesMut::with_capacity(4);
    key.put_i16(0);
    key.put_i16(i16::from(commit));
    let mut value = BytesMut::with_capacity(6);
    value.put_i16(0);
    value.put_i32(coordinator_epoch);
    let mut k = [0u8; 4];
    k.copy_from_slice(&key);
    let mut v = [0u8; 6];
    v.copy_from_slice(&value);
    (k, v)
}

/// Whether a control record key is a COMMIT marker (`None` if it is not a marker key).
fn marker_is_commit(key: &[u8]) -> Option<bool> {
    match key {
        [0, 0, 0, 1, ..] => Some(true),
        [0, 0, 0, 0, ..] => Some(false),
        _ => None,
    }
}

/// One open partition of the internal log.
struct OffsetsPartition {
    /// The log.
    log: PartitionLog,
    /// Bytes appended since the last snapshot (or since open).
    bytes_since_snapshot: u64,
    /// The partition grew enough that the coordinator should snapshot it.
    snapshot_due: bool,
    /// Size of the last snapshot (bytes).
    last_snapshot_bytes: u64,
}

/// The `__consumer_offsets` log of this broker.
pub(crate) struct OffsetStore {
    /// The first log dir (partitions live in `<dir>/__consumer_offsets-<n>`).
    dir: PathBuf,
    /// `offsets.topic.num.partitions`.
    num_partitions: i32,
    /// Settings for the partition logs (flush policy from the broker config).
    log_config: LogConfig,
    /// Open partitions by index.
    partitions: Mutex<HashMap<i32, OffsetsPartition>>,
    /// Growth that makes a partition due for a snapshot ([`SNAPSHOT_MIN_GROWTH`]; tests lower
    /// it).
    snapshot_min_growth: u64,
    /// Transactional records replay found without a marker, until the coordinator takes them.
    replayed_pending: Mutex<Vec<PendingTxnRecords>>,
    /// Cluster mode: the replicated partitions this broker leads, by index (`None`: the store
    /// owns its logs, a single broker).
    replicated: Option<Mutex<HashMap<i32, Arc<Partition>>>>,
}

impl OffsetStore {
    /// Opens every existing `__consumer_offsets-<n>` partition under `dir` and replays it.
    /// Returns the store and the records in log order (partition by partition).
    pub(crate) fn open(
        dir: &Path,
        num_partitions: i32,
        flush_interval_messages: Option<u64>,
        flush_interval_ms: Option<u64>,
    ) -> Result<(Self, Vec<StoreRecord>), GroupError> {
        let log_config = LogConfig {
            segment_bytes: SEGMENT_BYTES,
            segment_ms: None,
            retention_ms: None,
            retention_bytes: None,
            flush_interval_messages,
            flush_interval_ms,
            ..LogConfig::default()
        };
        std::fs::create_dir_all(dir).map_err(|source| GroupError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let mut found = Vec::new();
        let entries = std::fs::read_dir(dir).map_err(|source| GroupError::Io {
            path: dir.to_owned(),
            source,
        })?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(index) = name
                .strip_prefix(OFFSETS_TOPIC)
                .and_then(|rest| rest.strip_prefix('-'))
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            if entry.path().is_dir() && index >= 0 {
                found.push(index);
            }
        }
        found.sort_unstable();
        let mut partitions = HashMap::new();
        let mut records = Vec::new();
        let mut pending = Vec::new();
        for index in found {
            let path = dir.join(format!("{OFFSETS_TOPIC}-{index}"));
            let log = PartitionLog::open(&path, log_config.clone()).map_err(|source| {
                GroupError::Log {
                    partition: index,
                    source,
                }
            })?;
            let before = records.len();
            replay(&log, index, &mut records, &mut pending)?;
            tracing::info!(
                partition = index,
                records = records.len() - before,
                "replayed {OFFSETS_TOPIC}-{index}"
            );
            let size = log.size_bytes();
            partitions.insert(
                index,
                OffsetsPartition {
                    log,
                    bytes_since_snapshot: 0,
                    snapshot_due: false,
                    last_snapshot_bytes: size,
                },
            );
        }
        Ok((
            OffsetStore {
                dir: dir.to_owned(),
                num_partitions,
                log_config,
                partitions: Mutex::new(partitions),
                snapshot_min_growth: SNAPSHOT_MIN_GROWTH,
                replayed_pending: Mutex::new(pending),
                replicated: None,
            },
            records,
        ))
    }

    /// A store whose partitions are replicated `__consumer_offsets` partitions handed over by
    /// [`OffsetStore::lead`] (cluster mode). Nothing is opened or replayed here.
    pub(crate) fn replicated(dir: &Path, num_partitions: i32) -> Self {
        OffsetStore {
            dir: dir.to_owned(),
            num_partitions,
            log_config: LogConfig::default(),
            partitions: Mutex::new(HashMap::new()),
            snapshot_min_growth: SNAPSHOT_MIN_GROWTH,
            replayed_pending: Mutex::new(Vec::new()),
            replicated: Some(Mutex::new(HashMap::new())),
        }
    }

    /// Whether the partitions are replicated ones (cluster mode).
    pub(crate) fn is_replicated(&self) -> bool {
        self.replicated.is_some()
    }

    /// Cluster mode: this broker now leads `partition` (index `index`): writes go to it. Returns
    /// its records in log order and the transactional ones still waiting for a marker, for the
    /// coordinator to load.
    pub(crate) fn lead(
        &self,
        index: i32,
        partition: Arc<Partition>,
    ) -> Result<(Vec<StoreRecord>, Vec<PendingTxnRecords>), GroupError> {
        let mut records = Vec::new();
        let mut pending = Vec::new();
        partition.with_log(|log| replay(log, index, &mut records, &mut pending))?;
        if let Some(map) = &self.replicated {
            map.lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(index, partition);
        }
        Ok((records, pending))
    }

    /// Cluster mode: this broker no longer leads partition `index`.
    pub(crate) fn resign(&self, index: i32) {
        if let Some(map) = &self.replicated {
            map.lock().unwrap_or_else(|e| e.into_inner()).remove(&index);
        }
    }

    /// Cluster mode: the led partition `index` (NotLeader if this broker does not lead it);
    /// `Ok(None)` when the store owns its logs.
    fn led(&self, index: i32) -> Result<Option<Arc<Partition>>, GroupError> {
        let Some(map) = &self.replicated else {
            return Ok(None);
        };
        map.lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&index)
            .cloned()
            .map(Some)
            .ok_or(GroupError::NotLeader { partition: index })
    }

    /// Cluster mode: appends `batch` to the led partition `index`. `Ok(None)` when the store
    /// owns its logs (the caller appends locally).
    fn append_replicated(&self, index: i32, batch: Bytes) -> Result<Option<u64>, GroupError> {
        let Some(partition) = self.led(index)? else {
            return Ok(None);
        };
        let len = batch.len() as u64;
        partition
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
        Ok(Some(len))
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<i32, OffsetsPartition>> {
        self.partitions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The partition of `group_id`.
    pub(crate) fn partition_for(&self, group_id: &str) -> i32 {
        partition_for(group_id, self.num_partitions)
    }

    /// Appends `records` (all of `group_id`) as one batch to the group's partition. Returns
    /// after the bytes are written to the segment file (and fsynced if the flush policy says
    /// so). Marks the partition due for a snapshot once it has grown enough.
    pub(crate) fn append(&self, group_id: &str, records: &[StoreRecord]) -> Result<(), GroupError> {
        if records.is_empty() {
            return Ok(());
        }
        let index = self.partition_for(group_id);
        if self
            .append_replicated(index, encode_batch(records, (-1, -1)))?
            .is_some()
        {
            return Ok(());
        }
        let mut partitions = self.lock();
        let partition = self.open_partition(&mut partitions, index)?;
        let bytes = append_records(&mut partition.log, index, records)?;
        partition.bytes_since_snapshot += bytes;
        if partition.bytes_since_snapshot
            > self
                .snapshot_min_growth
                .max(2 * partition.last_snapshot_bytes)
        {
            partition.snapshot_due = true;
        }
        Ok(())
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
        if self
            .append_replicated(index, encode_batch(records, (producer_id, producer_epoch)))?
            .is_some()
        {
            return Ok(());
        }
        let mut partitions = self.lock();
        let partition = self.open_partition(&mut partitions, index)?;
        let bytes = append_batch(
            &mut partition.log,
            index,
            records,
            (producer_id, producer_epoch),
        )?;
        partition.bytes_since_snapshot += bytes;
        Ok(())
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
        if let Some(partition) = self.led(index)? {
            partition
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
            return Ok(());
        }
        let mut partitions = self.lock();
        let partition = self.open_partition(&mut partitions, index)?;
        let (k, v) = marker_record(commit, coordinator_epoch);
        let now = crate::clock::now_ms();
        let batch = build_batch(
            &[(Some(&k[..]), Some(&v[..]))],
            now,
            producer_id,
            producer_epoch,
            -1,
            true,
            true,
        );
        partition.bytes_since_snapshot += batch.len() as u64;
        partition
            .log
            .append(batch, now)
            .map_err(|source| GroupError::Log {
                partition: index,
                source,
            })?;
        Ok(())
    }

    /// The transactional records replay found without a marker (once; later calls get none).
    pub(crate) fn take_replayed_pending(&self) -> Vec<PendingTxnRecords> {
        std::mem::take(
            &mut *self
                .replayed_pending
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        )
    }

    /// Lowers the snapshot threshold (tests).
    #[cfg(test)]
    pub(crate) fn set_snapshot_min_growth(&mut self, bytes: u64) {
        self.snapshot_min_growth = bytes;
    }

    /// The log start offset of partition `index`, if it is open (tests).
    #[cfg(test)]
    pub(crate) fn log_start_offset(&self, index: i32) -> Option<i64> {
        self.lock().get(&index).map(|p| p.log.log_start_offset())
    }

    /// Partitions due for a snapshot (the flags are cleared by [`OffsetStore::snapshot`]).
    pub(crate) fn due_snapshots(&self) -> Vec<i32> {
        self.lock()
            .iter()
            .filter(|(_, p)| p.snapshot_due)
            .map(|(i, _)| *i)
            .collect()
    }

    /// Writes `live` (the whole current state of partition `index`'s groups) and `pending`
    /// (their open transactions' offsets, as transactional batches) and makes it the start of
    /// the log, dropping older segments.
    pub(crate) fn snapshot(
        &self,
        index: i32,
        live: &[StoreRecord],
        pending: &[PendingTxnRecords],
    ) -> Result<(), GroupError> {
        if self.is_replicated() {
            return Ok(());
        }
        let mut partitions = self.lock();
        let partition = self.open_partition(&mut partitions, index)?;
        let start = partition.log.log_end_offset();
        let mut written = 0u64;
        // Keep batches well below the log's batch size limit.
        let mut chunk = Vec::new();
        let mut chunk_bytes = 0usize;
        for r in live {
            let (k, v) = r.encode();
            chunk_bytes += k.len() + v.as_ref().map_or(0, |v| v.len()) + 16;
            chunk.push(r.clone());
            if chunk_bytes > 256 << 10 {
                written += append_records(&mut partition.log, index, &chunk)?;
                chunk.clear();
                chunk_bytes = 0;
            }
        }
        if !chunk.is_empty() {
            written += append_records(&mut partition.log, index, &chunk)?;
        }
        for p in pending {
            written += append_batch(
                &mut partition.log,
                index,
                &p.records,
                (p.producer_id, p.producer_epoch),
            )?;
        }
        partition
            .log
            .flush()
            .and_then(|()| partition.log.delete_records_before(start))
            .map_err(|source| GroupError::Log {
                partition: index,
                source,
            })?;
        partition.bytes_since_snapshot = 0;
        partition.snapshot_due = false;
        partition.last_snapshot_bytes = written;
        tracing::info!(
            partition = index,
            records = live.len(),
            bytes = written,
            "snapshotted {OFFSETS_TOPIC}-{index}"
        );
        Ok(())
    }

    /// fsyncs every open partition.
    pub(crate) fn flush(&self) -> Result<(), GroupError> {
        let mut partitions = self.lock();
        for (index, p) in partitions.iter_mut() {
            p.log.flush().map_err(|source| GroupError::Log {
                partition: *index,
                source,
            })?;
        }
        Ok(())
    }

    /// Applies `flush.ms` to every open partition.
    pub(crate) fn maybe_flush(&self, now_ms: i64) -> Result<(), GroupError> {
        let mut partitions = self.lock();
        for (index, p) in partitions.iter_mut() {
            p.log
                .maybe_flush(now_ms)
                .map_err(|source| GroupError::Log {
                    partition: *index,
                    source,
                })?;
        }
        Ok(())
    }

    fn open_partition<'a>(
        &self,
        partitions: &'a mut HashMap<i32, OffsetsPartition>,
        index: i32,
    ) -> Result<&'a mut OffsetsPartition, GroupError> {
        match partitions.entry(index) {
            std::collections::hash_map::Entry::Occupied(e) => Ok(e.into_mut()),
            std::collections::hash_map::Entry::Vacant(v) => {
                let path = self.dir.join(format!("{OFFSETS_TOPIC}-{index}"));
                let log = PartitionLog::open(&path, self.log_config.clone()).map_err(|source| {
                    GroupError::Log {
                        partition: index,
                        source,
                    }
                })?;
                Ok(v.insert(OffsetsPartition {
                    log,
                    bytes_since_snapshot: 0,
                    snapshot_due: false,
                    last_snapshot_bytes: 0,
                }))
            }
        }
    }
}

/// Appends `records` as one uncompressed batch; returns the bytes written.
fn append_records(
    log: &mut PartitionLog,
    index: i32,
    records: &[StoreRecord],
) -> Result<u64, GroupError> {
    append_batch(log, index, records, (-1, -1))
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

/// Appends `records` as one uncompressed batch, transactional when `producer` (id, epoch) has
/// an id; returns the bytes written.
fn append_batch(
    log: &mut PartitionLog,
    index: i32,
    records: &[StoreRecord],
    producer: (i64, i16),
) -> Result<u64, GroupError> {
    if records.is_empty() {
        return Ok(0);
    }
    let encoded: Vec<_> = records.iter().map(StoreRecord::encode).collect();
    let pairs: Vec<_> = encoded
        .iter()
        .map(|(k, v)| (Some(&k[..]), v.as_deref()))
        .collect();
    let now = crate::clock::now_ms();
    let (producer_id, producer_epoch) = producer;
    let transactional = producer_id >= 0;
    let batch = build_batch(
        &pairs,
        now,
        producer_id,
        producer_epoch,
        -1,
        transactional,
        false,
    );
    let len = batch.len() as u64;
    log.append(batch, now).map_err(|source| GroupError::Log {
        partition: index,
        source,
    })?;
    Ok(len)
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
        {
            let (store, replayed) = OffsetStore::open(dir.path(), 50, None, None).unwrap();
            assert!(replayed.is_empty());
            store
                .append("g", &[commit("g", 0, 5), commit("g", 1, 6)])
                .unwrap();
            store.append("h", &[commit("h", 0, 7)]).unwrap();
            store.append("g", &[commit("g", 0, 8)]).unwrap();
            // Dropped without flush: the data is in the page cache, like after kill -9.
        }
        let (_store, replayed) = OffsetStore::open(dir.path(), 50, None, None).unwrap();
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

    #[test]
    fn snapshot_moves_the_log_start_and_replay_skips_older_records() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (store, _) = OffsetStore::open(dir.path(), 1, None, None).unwrap();
            for i in 0..10 {
                store.append("g", &[commit("g", 0, i)]).unwrap();
            }
            store.snapshot(0, &[commit("g", 0, 9)], &[]).unwrap();
            store.append("g", &[commit("g", 1, 1)]).unwrap();
        }
        let (_store, replayed) = OffsetStore::open(dir.path(), 1, None, None).unwrap();
        assert_eq!(replayed, vec![commit("g", 0, 9), commit("g", 1, 1)]);
    }
}

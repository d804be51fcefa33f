//! One partition as the request handlers see it: its log behind a lock with the state derived
//! from it (idempotent producers, open and aborted transactions), and a watch channel carrying
//! the high watermark and last stable offset so that long-polling fetches sleep until data
//! arrives (or, for `read_committed`, until a transaction completes).
//!
//! The log itself (segments, indexes, recovery) lives in [`crate::log`]; this type adds what
//! only a serving broker needs: concurrency and wake-ups. Appends and reads are short, page-cache
//! bound operations, so a plain mutex is held across them rather than moving them to a thread
//! pool. Transactions: [`Partition::write_txn_marker`] is the transaction coordinator's
//! way in; the bookkeeping is in [`txns`].
//!
//! A transactional batch is accepted whether or not the coordinator added the partition to the
//! producer's transaction (Kafka refuses it with INVALID_TXN_STATE since KIP-890); the
//! coordinator-side verification is not done yet.
//!
//! Replication: a partition is either the leader of a leader epoch (it takes produce requests,
//! stamps its epoch on each batch, and keeps what its followers fetched, see
//! [`leader_state`]) or a follower copying a leader's batches with
//! [`Partition::append_replicated`]. The high watermark is kept here: on a leader the smallest
//! log end over the ISR, on a follower the leader's one bounded by the own log end. A single
//! broker is the leader of epoch 0 with itself as the only replica, so its high watermark is the
//! log end, as before. Besides the watermarks channel (consumers, acks=all producers), a second
//! channel carries the log end offset to wake long-polling follower fetches on every append.
//! The leader epoch cache ([`epoch_cache`]) changes under the same lock as
//! the log.
//!
//! Everything that lives inside one partition is in this folder (producer state, its
//! transactions, the leader's view of its followers, the epoch cache, waiting for an offset to
//! be committed), so the layers point one way: handlers and the coordinators use partitions,
//! `crate::replication` drives them (applying the controller's [`LeaderAndIsr`], fetching for
//! followers), and a partition uses only [`crate::log`] below it.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::watch;

pub(crate) mod committed;
pub(crate) mod epoch_cache;
pub(crate) mod leader_state;
pub(crate) mod producer_state;
pub(crate) mod txns;

use crate::log::batch;
use crate::log::txn_index::AbortedTxn;
use crate::log::{
    AppendInfo, BatchHeader, CleanStats, CleanerHook, LogConfig, LogError, PartitionLog,
};
use epoch_cache::EpochCache;
pub(crate) use leader_state::LeaderAndIsr;
use leader_state::LeaderState;
use producer_state::{ProducerStates, SequenceError, Verdict};
use txns::{ControlMarker, PartitionTxns};

/// Why an append was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AppendError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error(transparent)]
    Sequence(#[from] SequenceError),
}

/// Why a produce append (or a replicated append) was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LeaderAppendError {
    #[error(transparent)]
    Append(#[from] AppendError),
    /// This broker does not lead the partition (any more, or at the expected epoch).
    #[error("this broker is not the leader of the partition")]
    NotLeader,
    /// acks=all while the ISR is smaller than `min.insync.replicas`.
    #[error("the in-sync replicas ({isr}) are fewer than min.insync.replicas ({required})")]
    NotEnoughReplicas {
        /// Size of the ISR.
        isr: usize,
        /// `min.insync.replicas`.
        required: usize,
    },
}

impl From<LogError> for LeaderAppendError {
    fn from(e: LogError) -> Self {
        LeaderAppendError::Append(AppendError::Log(e))
    }
}

impl From<SequenceError> for LeaderAppendError {
    fn from(e: SequenceError) -> Self {
        LeaderAppendError::Append(AppendError::Sequence(e))
    }
}

impl LeaderAppendError {
    /// The Kafka error code for the produce response.
    pub(crate) fn code(&self) -> i16 {
        match self {
            LeaderAppendError::Append(e) => e.code(),
            LeaderAppendError::NotLeader => 6,
            LeaderAppendError::NotEnoughReplicas { .. } => 19,
        }
    }
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
    /// Where each leader epoch starts.
    epochs: EpochCache,
    /// Leader or follower.
    role: Role,
    /// Offset up to which data is committed (replicated to the ISR).
    high_watermark: i64,
    /// Woken when a follower may join the ISR (set by the replica manager).
    isr_wakeup: Option<Arc<tokio::sync::Notify>>,
}

/// What this broker does for a partition.
#[derive(Debug, Clone)]
pub(crate) enum Role {
    /// Takes produce requests and serves followers.
    Leader(LeaderState),
    /// Copies `leader`'s log.
    Follower {
        /// The leader's broker id (-1 when there is none).
        leader: i32,
        /// The leader epoch followed.
        leader_epoch: i32,
    },
}

impl Role {
    /// The leader epoch known for the partition.
    pub(crate) fn leader_epoch(&self) -> i32 {
        match self {
            Role::Leader(l) => l.leader_epoch,
            Role::Follower { leader_epoch, .. } => *leader_epoch,
        }
    }
}

/// How a fetch of a follower from this leader went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReplicaFetch {
    /// Recorded; the high watermark now.
    Recorded,
    /// This broker does not lead the partition.
    NotLeader,
    /// The fetching broker is not a replica of the partition.
    NotAReplica,
}

/// The offsets fetches wait on, published together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Watermarks {
    /// Offset up to which `read_uncommitted` consumers may read.
    pub(crate) high_watermark: i64,
    /// Offset up to which `read_committed` consumers may read.
    pub(crate) last_stable_offset: i64,
    /// The leader epoch this broker leads in; `None` while it follows.
    pub(crate) leader_epoch: Option<i32>,
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
    /// The log end offset; changes wake waiting follower fetches.
    log_end: watch::Sender<i64>,
}

/// The answer to an append.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Appended {
    /// Offset of the first record (the original one for a duplicate).
    pub(crate) base_offset: i64,
    /// Offset of the last record (the original one for a duplicate).
    pub(crate) last_offset: i64,
    /// The log start offset after the append.
    pub(crate) log_start_offset: i64,
    /// The leader epoch the append was made in.
    pub(crate) leader_epoch: i32,
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
        let (producers, txns) = derive_state(&log)?;
        let log_end = log.log_end_offset();
        let epochs = match EpochCache::open(dir, log_end) {
            Some(cache) => cache,
            None => rebuild_epochs(&log)?,
        };
        let epoch = epochs.latest_epoch().unwrap_or(0).max(0);
        let watermarks = Watermarks {
            high_watermark: log_end,
            last_stable_offset: txns.last_stable_offset(log_end, log.log_start_offset()),
            leader_epoch: Some(epoch),
        };
        let (watermarks, _) = watch::channel(watermarks);
        let (log_end_tx, _) = watch::channel(log_end);
        Ok(Partition {
            topic: topic.to_owned(),
            index,
            dir: dir.to_owned(),
            inner: Mutex::new(Inner {
                log,
                producers,
                txns,
                epochs,
                role: Role::Leader(LeaderState::single(epoch, log_end)),
                high_watermark: log_end,
                isr_wakeup: None,
            }),
            watermarks,
            log_end: log_end_tx,
        })
    }

    /// Recomputes the high watermark (a leader's from its ISR, never backwards; a follower's
    /// stays as set) and publishes the offsets after a change; wakes waiters only on a change.
    fn publish(&self, inner: &mut Inner) -> Watermarks {
        let log_end = inner.log.log_end_offset();
        if let Role::Leader(l) = &inner.role {
            inner.high_watermark = l.high_watermark(log_end, inner.high_watermark);
        }
        inner.high_watermark = inner.high_watermark.min(log_end);
        let hw = inner.high_watermark;
        let w = Watermarks {
            high_watermark: hw,
            last_stable_offset: inner
                .txns
                .last_stable_offset(hw, inner.log.log_start_offset()),
            leader_epoch: match &inner.role {
                Role::Leader(l) => Some(l.leader_epoch),
                Role::Follower { .. } => None,
            },
        };
        self.watermarks.send_if_modified(|old| {
            let changed = *old != w;
            *old = w;
            changed
        });
        self.log_end.send_if_modified(|old| {
            let changed = *old != log_end;
            *old = log_end;
            changed
        });
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
    #[cfg(test)]
    pub(crate) fn append(
        &self,
        batches: Bytes,
        headers: &[BatchHeader],
        now_ms: i64,
    ) -> Result<Appended, LeaderAppendError> {
        self.append_as_leader(batches, headers, now_ms, 0)
    }

    /// [`Partition::append`] for a produce request: refused with
    /// [`LeaderAppendError::NotLeader`] unless this broker leads, and with
    /// [`LeaderAppendError::NotEnoughReplicas`] (nothing written) when the committed ISR is smaller
    /// than `required_isr` (acks=all and `min.insync.replicas`; 0 otherwise). The leader epoch is
    /// stamped on every batch.
    pub(crate) fn append_as_leader(
        &self,
        batches: Bytes,
        headers: &[BatchHeader],
        now_ms: i64,
        required_isr: usize,
    ) -> Result<Appended, LeaderAppendError> {
        let mut inner = self.inner();
        let Role::Leader(leader) = &inner.role else {
            return Err(LeaderAppendError::NotLeader);
        };
        let epoch = leader.leader_epoch;
        if leader.isr.len() < required_isr {
            return Err(LeaderAppendError::NotEnoughReplicas {
                isr: leader.isr.len(),
                required: required_isr,
            });
        }
        if let Verdict::Duplicate { base_offset } = inner.producers.check(headers)? {
            let records: i64 = headers
                .iter()
                .map(|h| i64::from(h.last_offset_delta) + 1)
                .sum();
            return Ok(Appended {
                base_offset,
                last_offset: base_offset + records - 1,
                log_start_offset: inner.log.log_start_offset(),
                leader_epoch: epoch,
            });
        }
        let (appended, assigned) =
            self.append_at_epoch(&mut inner, batches, headers, epoch, now_ms)?;
        inner.producers.record(&assigned);
        Ok(appended)
    }

    /// The leader's write: stamps `epoch`, appends, and updates what follows from the new
    /// batches (epoch cache, transactions, watermarks, flush policy). Returns the answer and the
    /// headers with their assigned offsets, for the caller's producer bookkeeping.
    fn append_at_epoch(
        &self,
        inner: &mut Inner,
        batches: Bytes,
        headers: &[BatchHeader],
        epoch: i32,
        now_ms: i64,
    ) -> Result<(Appended, Vec<BatchHeader>), LeaderAppendError> {
        let log_end = inner.log.log_end_offset();
        inner.epochs.assign(epoch, log_end)?;
        let info: AppendInfo = inner.log.append_with_epoch(batches, Some(epoch), now_ms)?;
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
        inner.txns.on_appended(&assigned);
        self.publish(inner);
        self.note_appended(inner, info.bytes);
        let appended = Appended {
            base_offset: info.base_offset,
            last_offset: info.last_offset,
            log_start_offset: info.log_start_offset,
            leader_epoch: epoch,
        };
        Ok((appended, assigned))
    }

    /// Appends a batch the group coordinator built (its own `__consumer_offsets` records) as
    /// the leader, at the current leader epoch. Like Kafka's coordinator-origin appends it skips
    /// the producer sequence check: a transactional offset commit carries the client producer's
    /// id and epoch but no sequence. The transaction bookkeeping (open transaction, last stable
    /// offset) is kept as for any append, so the COMMIT/ABORT marker closes it.
    pub(crate) fn append_from_coordinator(
        &self,
        batch: Bytes,
        now_ms: i64,
    ) -> Result<Appended, LeaderAppendError> {
        let headers: Vec<BatchHeader> = batch::batches(&batch)
            .filter_map(|b| b.ok().map(|(h, _)| h))
            .collect();
        let mut inner = self.inner();
        let Role::Leader(leader) = &inner.role else {
            return Err(LeaderAppendError::NotLeader);
        };
        let epoch = leader.leader_epoch;
        let (appended, _) = self.append_at_epoch(&mut inner, batch, &headers, epoch, now_ms)?;
        Ok(appended)
    }

    /// Runs `f` on the partition's log under its lock (the group coordinator replays
    /// `__consumer_offsets` partitions it starts to lead).
    pub(crate) fn with_log<R>(&self, f: impl FnOnce(&PartitionLog) -> R) -> R {
        f(&self.inner().log)
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
        let Role::Leader(leader) = &inner.role else {
            // A marker belongs on the leader; the coordinator retries once metadata catches up.
            return Err(AppendError::Log(LogError::Io {
                op: "cannot write a transaction marker: this broker does not lead",
                path: self.dir.clone(),
                source: std::io::Error::other("not the leader"),
            }));
        };
        let epoch = leader.leader_epoch;
        inner
            .producers
            .check_marker(producer_id, producer_epoch, coordinator_epoch)?;
        let log_end = inner.log.log_end_offset();
        inner.epochs.assign(epoch, log_end)?;
        let info = inner.log.append_with_epoch(
            marker.batch(producer_id, producer_epoch, now_ms),
            Some(epoch),
            now_ms,
        )?;
        let offset = info.base_offset;
        inner
            .producers
            .record_marker(producer_id, producer_epoch, coordinator_epoch);
        // The aborted entry's last stable offset: the marker is committed once replicated, and
        // read_committed readers cannot pass it before, so the log end is the right bound.
        let hw = inner.log.log_end_offset();
        let completed = inner.txns.complete(producer_id, offset, commit, Some(hw));
        self.publish(&mut inner);
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

    /// Reads for a fetch: whole stored batches from `offset`, at most `max_bytes` (a first batch
    /// larger than that only when `first_may_exceed`), never past the high watermark, or, for
    /// `read_committed`, never past the last stable offset and with the aborted transactions
    /// overlapping what is returned.
    ///
    /// The bounds are those of `seen`, the [`Partition::offsets`] snapshot the response reports,
    /// so the records never reach past the watermarks the client is told (appends between the
    /// snapshot and the read only move the watermarks forward).
    pub(crate) fn fetch(
        &self,
        offset: i64,
        max_bytes: usize,
        first_may_exceed: bool,
        read_committed: bool,
        seen: &Offsets,
    ) -> Result<FetchedData, LogError> {
        let inner = self.inner();
        let upper = if read_committed {
            seen.last_stable_offset
        } else {
            seen.high_watermark
        };
        let records = inner
            .log
            .read_limited(offset, max_bytes, upper, first_may_exceed)?;
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

    /// Takes new storage settings (the topic's configs were altered).
    pub(crate) fn set_log_config(&self, config: LogConfig) -> Result<(), LogError> {
        self.inner().log.set_config(config)
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

    /// DeleteRecords on the leader: makes `offset` (-1: the high watermark) the log start
    /// offset. Returns the new log start, or the Kafka error code: NOT_LEADER_OR_FOLLOWER on a
    /// follower, OFFSET_OUT_OF_RANGE past the high watermark, KAFKA_STORAGE_ERROR when the log
    /// cannot be changed.
    pub(crate) fn delete_records(&self, offset: i64) -> Result<i64, i16> {
        use kafka_protocol::error::ResponseError as E;
        if self.leader_epoch().is_none() {
            return Err(E::NotLeaderOrFollower.code());
        }
        let high_watermark = self.watermarks.borrow().high_watermark;
        let offset = if offset == -1 { high_watermark } else { offset };
        if offset < 0 || offset > high_watermark {
            return Err(E::OffsetOutOfRange.code());
        }
        let mut inner = self.inner();
        let start = inner.log.delete_records_before(offset).map_err(|e| {
            tracing::warn!(topic = %self.topic, partition = self.index, error = %e,
                "delete records failed");
            e.kafka_error_code()
        })?;
        let moved = inner
            .txns
            .on_log_start(start)
            .and_then(|()| inner.epochs.truncate_from_start(start));
        if let Err(e) = moved {
            tracing::warn!(topic = %self.topic, partition = self.index, error = %e,
                "cannot record the new log start");
        }
        self.publish(&mut inner);
        Ok(start)
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
            inner.epochs.truncate_from_start(start)?;
            self.publish(&mut inner);
        }
        inner.txns.checkpoint(end)?;
        Ok(deleted)
    }

    /// Compacts the log when its topic is compacted and the log is due (see
    /// [`crate::log::Cleaning`]): the plan is made under the lock, the segments are read and
    /// rewritten without it, and each cleaned group is swapped in under it. Nothing at or past
    /// the last stable offset (hence the high watermark) is cleaned. `hook` runs after each
    /// cleaned file is written, before its swap. `None` when there was nothing to do.
    pub(crate) fn clean(
        &self,
        now_ms: i64,
        hook: CleanerHook<'_>,
    ) -> Result<Option<CleanStats>, LogError> {
        let cleaning = {
            let inner = self.inner();
            let lso = inner
                .txns
                .last_stable_offset(inner.high_watermark, inner.log.log_start_offset());
            inner.log.plan_clean(lso.min(inner.high_watermark), now_ms)
        };
        let Some(cleaning) = cleaning else {
            return Ok(None);
        };
        cleaning
            .run(hook, &mut |group| self.inner().log.install_cleaned(group))
            .map(Some)
    }

    /// This broker's role for the partition.
    pub(crate) fn role(&self) -> Role {
        self.inner().role.clone()
    }

    /// The leader epoch this broker leads in, `None` while it follows.
    pub(crate) fn leader_epoch(&self) -> Option<i32> {
        match &self.inner().role {
            Role::Leader(l) => Some(l.leader_epoch),
            Role::Follower { .. } => None,
        }
    }

    /// Size of the committed ISR (1 while following: only the own log is known).
    pub(crate) fn isr_len(&self) -> usize {
        match &self.inner().role {
            Role::Leader(l) => l.isr.len(),
            Role::Follower { .. } => 1,
        }
    }

    /// The log end offset.
    pub(crate) fn log_end_offset(&self) -> i64 {
        self.inner().log.log_end_offset()
    }

    /// A receiver that changes whenever the log end offset moves (appends, truncations).
    pub(crate) fn watch_log_end(&self) -> watch::Receiver<i64> {
        self.log_end.subscribe()
    }

    /// The newest leader epoch in the log (-1 if none), for a follower's `last_fetched_epoch`.
    pub(crate) fn latest_epoch(&self) -> i32 {
        self.inner().epochs.latest_epoch().unwrap_or(-1)
    }

    /// Where `epoch` ends in this log: `(largest epoch <= it, its end offset)`, or `(-1, -1)`.
    pub(crate) fn epoch_end_offset(&self, epoch: i32) -> (i32, i64) {
        let inner = self.inner();
        inner
            .epochs
            .end_offset_for(epoch, inner.log.log_end_offset())
    }

    /// Lets the partition wake the replica manager's ISR task when a follower may join.
    pub(crate) fn set_isr_wakeup(&self, notify: Arc<tokio::sync::Notify>) {
        self.inner().isr_wakeup = Some(notify);
    }

    /// Becomes (or stays) the leader as `state` says. A newer leader epoch starts a new
    /// leadership (the epoch is recorded at the log end, follower progress is reset); the same
    /// epoch with a newer partition epoch takes the committed replicas and ISR; anything older
    /// is ignored. Returns whether anything changed.
    pub(crate) fn become_leader(
        &self,
        local: i32,
        state: &LeaderAndIsr,
        now_ms: i64,
    ) -> Result<bool, LogError> {
        let mut inner = self.inner();
        let log_end = inner.log.log_end_offset();
        let changed = match &mut inner.role {
            Role::Leader(l) if l.local == local && l.leader_epoch == state.leader_epoch => {
                if state.partition_epoch > l.partition_epoch
                    || (state.partition_epoch == l.partition_epoch
                        && (l.isr != state.isr || l.replicas != state.replicas))
                {
                    l.update(state, now_ms);
                    true
                } else {
                    false
                }
            }
            role if state.leader_epoch < role.leader_epoch() => {
                tracing::warn!(topic = %self.topic, partition = self.index,
                    epoch = state.leader_epoch, known = role.leader_epoch(),
                    "ignoring leadership of an older leader epoch");
                false
            }
            role => {
                *role = Role::Leader(LeaderState::new(local, state, log_end, now_ms));
                inner.log.set_read_cache(true);
                inner.epochs.assign(state.leader_epoch, log_end)?;
                tracing::info!(topic = %self.topic, partition = self.index,
                    epoch = state.leader_epoch, log_end, isr = ?state.isr, "became leader");
                true
            }
        };
        if changed {
            self.publish(&mut inner);
        }
        Ok(changed)
    }

    /// Becomes (or stays) a follower of `leader` in `leader_epoch`. Returns whether anything
    /// changed (an older epoch is ignored).
    pub(crate) fn become_follower(&self, leader: i32, leader_epoch: i32) -> bool {
        let mut inner = self.inner();
        let current = inner.role.leader_epoch();
        let same = matches!(&inner.role, Role::Follower { leader: l, leader_epoch: e }
            if *l == leader && *e == leader_epoch);
        if same || leader_epoch < current {
            return false;
        }
        inner.role = Role::Follower {
            leader,
            leader_epoch,
        };
        // Nothing fetches from a follower: its appends need not be kept in memory.
        inner.log.set_read_cache(false);
        tracing::info!(topic = %self.topic, partition = self.index, leader, leader_epoch,
            "became follower");
        self.publish(&mut inner);
        true
    }

    /// A follower `replica` fetches from `fetch_offset`: records its log end (and whether it
    /// is caught up), which may move the high watermark.
    pub(crate) fn record_replica_fetch(
        &self,
        replica: i32,
        fetch_offset: i64,
        now_ms: i64,
    ) -> ReplicaFetch {
        let mut inner = self.inner();
        let log_end = inner.log.log_end_offset();
        let hw = inner.high_watermark;
        let Role::Leader(l) = &mut inner.role else {
            return ReplicaFetch::NotLeader;
        };
        if !l.record_fetch(replica, fetch_offset, log_end, now_ms) {
            return ReplicaFetch::NotAReplica;
        }
        let may_join = !l.isr.contains(&replica)
            && fetch_offset >= hw
            && fetch_offset >= l.epoch_start_offset
            && l.pending_isr.is_none();
        if may_join {
            if let Some(n) = &inner.isr_wakeup {
                n.notify_one();
            }
        }
        self.publish(&mut inner);
        ReplicaFetch::Recorded
    }

    /// The ISR change this leader should propose now (see
    /// [`LeaderState::isr_proposal`]), marked pending; `None` if there is none.
    pub(crate) fn propose_isr(&self, now_ms: i64, lag_ms: i64) -> Option<LeaderAndIsr> {
        let mut inner = self.inner();
        let hw = inner.high_watermark;
        let Role::Leader(l) = &mut inner.role else {
            return None;
        };
        let isr = l.isr_proposal(hw, now_ms, lag_ms)?;
        l.pending_isr = Some(isr.clone());
        let proposal = l.proposal_state(isr);
        self.publish(&mut inner);
        Some(proposal)
    }

    /// The controller answered a proposal: `Some(state)` committed, `None` refused (the
    /// pending change is dropped and may be proposed again).
    pub(crate) fn complete_isr_proposal(&self, committed: Option<&LeaderAndIsr>, now_ms: i64) {
        let mut inner = self.inner();
        let Role::Leader(l) = &mut inner.role else {
            return;
        };
        match committed {
            Some(state) if state.leader == l.local && state.leader_epoch == l.leader_epoch => {
                if state.partition_epoch >= l.partition_epoch {
                    tracing::info!(topic = %self.topic, partition = self.index,
                        isr = ?state.isr, "ISR changed");
                    l.update(state, now_ms);
                }
            }
            _ => l.pending_isr = None,
        }
        self.publish(&mut inner);
    }

    /// Reads for a follower: whole batches from `offset` up to the log end (not the high
    /// watermark), at most `max_bytes` (a larger first batch only when `first_may_exceed`).
    pub(crate) fn fetch_for_replica(
        &self,
        offset: i64,
        max_bytes: usize,
        first_may_exceed: bool,
    ) -> Result<Bytes, LogError> {
        let inner = self.inner();
        let end = inner.log.log_end_offset();
        inner
            .log
            .read_recent(offset, max_bytes, end, first_may_exceed)
    }

    /// Appends batches fetched from the leader of `leader_epoch`, keeping their offsets and
    /// epochs, and updates everything derived from them as the leader did: producer states,
    /// transactions, the epoch cache. The high watermark becomes `min(leader_hw, log end)`.
    /// Refused with [`LeaderAppendError::NotLeader`] when the partition no longer follows that
    /// leader epoch. A torn last batch (a response cut at its size limit) is left out.
    pub(crate) fn append_replicated(
        &self,
        records: &Bytes,
        leader_epoch: i32,
        leader_hw: i64,
        now_ms: i64,
    ) -> Result<usize, LeaderAppendError> {
        let mut inner = self.inner();
        if !matches!(inner.role, Role::Follower { leader_epoch: e, .. } if e == leader_epoch) {
            return Err(LeaderAppendError::NotLeader);
        }
        let mut headers = Vec::new();
        let mut end = 0;
        for item in batch::batches(records.as_ref()) {
            let Ok((header, _)) = item else { break };
            end += header.len_total();
            headers.push(header);
        }
        let log_end = inner.log.log_end_offset();
        // Batches already here (a retried fetch) are skipped.
        let mut start = 0;
        let mut fresh = Vec::new();
        for h in headers {
            if h.next_offset() <= log_end {
                start += h.len_total();
            } else {
                fresh.push(h);
            }
        }
        if !fresh.is_empty() {
            let data = records.slice(start..end);
            let mut first_new_epoch = None;
            for h in &fresh {
                if inner
                    .epochs
                    .assign(h.partition_leader_epoch, h.base_offset)?
                {
                    first_new_epoch.get_or_insert(h.base_offset);
                }
            }
            let info = match inner.log.append_replicated(data.clone(), now_ms) {
                Ok(info) => info,
                Err(e) => {
                    // Nothing was written (the log undid the append): the epochs just added
                    // would claim data this log does not have.
                    if let Some(start) = first_new_epoch {
                        if let Err(cut) = inner.epochs.truncate_from_end(start) {
                            tracing::debug!(topic = %self.topic, partition = self.index,
                                error = %cut, "cannot rewrite the leader epoch checkpoint");
                        }
                    }
                    return Err(e.into());
                }
            };
            let mut position = 0;
            for h in &fresh {
                let bytes = &data[position..position + h.len_total()];
                position += h.len_total();
                inner.producers.replay(h, bytes);
                if let Err(e) = inner.txns.replay(h, bytes) {
                    tracing::error!(topic = %self.topic, partition = self.index, error = %e,
                        "cannot record a replicated transaction marker in the index");
                }
            }
            self.note_appended(&mut inner, info.bytes);
        }
        let new_end = inner.log.log_end_offset();
        inner.high_watermark = leader_hw.min(new_end).max(0);
        self.publish(&mut inner);
        Ok(end - start)
    }

    /// Sets a follower's high watermark from the leader's (bounded by the own log end).
    pub(crate) fn set_follower_high_watermark(&self, leader_hw: i64) {
        let mut inner = self.inner();
        if matches!(inner.role, Role::Follower { .. }) {
            let end = inner.log.log_end_offset();
            inner.high_watermark = leader_hw.min(end).max(0);
            self.publish(&mut inner);
        }
    }

    /// Cuts the log to `offset` (a follower dropping a divergent tail): the epoch cache is cut
    /// too, and producer and transaction state are rebuilt from the remaining log.
    pub(crate) fn truncate_to(&self, offset: i64) -> Result<(), LogError> {
        let mut inner = self.inner();
        if offset >= inner.log.log_end_offset() {
            return Ok(());
        }
        tracing::info!(topic = %self.topic, partition = self.index, offset,
            log_end = inner.log.log_end_offset(), "truncating the log");
        inner.log.truncate_to(offset)?;
        let end = inner.log.log_end_offset();
        inner.epochs.truncate_from_end(end)?;
        self.rebuild_derived(&mut inner)?;
        inner.high_watermark = inner.high_watermark.min(end);
        self.publish(&mut inner);
        Ok(())
    }

    /// Empties the log and restarts it at `offset` (a follower behind the leader's log start).
    pub(crate) fn truncate_fully_and_start_at(&self, offset: i64) -> Result<(), LogError> {
        let mut inner = self.inner();
        inner.log.truncate_fully_and_start_at(offset)?;
        // The log is empty: no epoch has data in it any more.
        inner.epochs.truncate_from_end(i64::MIN)?;
        self.rebuild_derived(&mut inner)?;
        inner.high_watermark = offset;
        self.publish(&mut inner);
        Ok(())
    }

    /// Rebuilds producer and transaction state from the log, as on open.
    fn rebuild_derived(&self, inner: &mut Inner) -> Result<(), LogError> {
        let (producers, txns) = derive_state(&inner.log)?;
        inner.producers = producers;
        inner.txns = txns;
        Ok(())
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

/// Producer states and transactions of `log`, from one replay: producer states from the
/// newest segment, transactions from their checkpoint (the log start without one).
fn derive_state(log: &PartitionLog) -> Result<(ProducerStates, PartitionTxns), LogError> {
    let mut producers = ProducerStates::default();
    let producers_from = ProducerStates::rebuild_from(log);
    let (mut txns, txns_from) = PartitionTxns::open(log)?;
    for item in log.batches_from(producers_from.min(txns_from)) {
        let (header, bytes) = item?;
        if header.base_offset >= producers_from {
            producers.replay(&header, &bytes);
        }
        if header.next_offset() > txns_from {
            txns.replay(&header, &bytes)?;
        }
    }
    txns.finish_recovery(log.log_end_offset())?;
    Ok((producers, txns))
}

/// The epoch cache of `log` from the `partitionLeaderEpoch` of its batches (no checkpoint
/// file, or a bad one); persisted, so the scan happens once.
fn rebuild_epochs(log: &PartitionLog) -> Result<EpochCache, LogError> {
    let mut cache = EpochCache::empty(log.dir());
    if log.log_end_offset() > log.log_start_offset() {
        for item in log.batches_from(log.log_start_offset()) {
            let (header, _) = item?;
            if cache
                .latest_epoch()
                .is_none_or(|e| header.partition_leader_epoch > e)
                && header.partition_leader_epoch >= 0
            {
                cache.assign(header.partition_leader_epoch, header.base_offset)?;
            }
        }
    }
    cache.persist()?;
    Ok(cache)
}

#[cfg(test)]
mod tests;

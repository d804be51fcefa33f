//! The transaction coordinator: InitProducerId (with a transactional id), AddPartitionsToTxn,
//! AddOffsetsToTxn, EndTxn, the TxnOffsetCommit check, timeouts and recovery.
//!
//! All transactional ids sit behind one mutex; nothing awaits while holding it. Each request
//! runs the pure rule of [`super::state`], writes the resulting state to `__transaction_state`
//! and only then changes the in-memory state and answers, so a replay after `kill -9` knows
//! every decision a client was told about. Ending a transaction is two-phase, as in Kafka:
//!
//! 1. PrepareCommit/PrepareAbort is written to the log (the decision is now durable);
//! 2. a marker is written to every partition of the transaction ([`MarkerWriter`]);
//! 3. CompleteCommit/CompleteAbort is written and the partitions are forgotten.
//!
//! While 2 runs the id is in a Prepare state and other requests for it get
//! CONCURRENT_TRANSACTIONS (the client retries). Markers are written inline, so EndTxn answers
//! after they are in the logs; if one fails (a storage error), a task retries it until it
//! succeeds and the id stays in the Prepare state meanwhile. On start, every id replayed in a
//! Prepare state goes through 2 and 3 again (markers are harmless to repeat), so a transaction
//! is never left half visible. A background task aborts Ongoing transactions that outlive their
//! timeout, bumping the epoch first so the late producer is fenced.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::time::Instant;

use super::markers::{Marker, MarkerError, MarkerWriter};
use super::records::TxnRecord;
use super::state::{InitDecision, TxnError, TxnMetadata, TxnState};
use super::store::{TxnStore, TxnStoreError};
use super::TxnConfig;
use crate::group::store::OFFSETS_TOPIC;
use crate::producer_ids::ProducerIds;

/// The coordinator epoch written into markers: one coordinator, never moved.
const COORDINATOR_EPOCH: i32 = 0;

/// How long to wait before retrying markers that could not be written.
const MARKER_RETRY: Duration = Duration::from_millis(500);

/// The coordinator for every transactional id on this broker.
pub(crate) struct TransactionCoordinator {
    /// State shared with the timeout and retry tasks.
    inner: Arc<Inner>,
}

/// What the background tasks share with the coordinator.
struct Inner {
    /// Limits and intervals.
    cfg: TxnConfig,
    /// Every known transactional id.
    txns: Mutex<HashMap<String, TxnMetadata>>,
    /// The transaction log; `None` keeps everything in memory (unit tests).
    store: Option<TxnStore>,
    /// Where markers go.
    markers: Arc<dyn MarkerWriter>,
}

/// A transaction whose markers still have to be written.
#[derive(Debug, Clone)]
struct Completion {
    /// Transactional id.
    transactional_id: String,
    /// The marker.
    marker: Marker,
    /// Partitions not marked yet.
    remaining: BTreeSet<(String, i32)>,
}

impl Completion {
    /// The markers owed by `meta`, which is in a Prepare state.
    fn of(transactional_id: &str, meta: &TxnMetadata) -> Self {
        Completion {
            transactional_id: transactional_id.to_owned(),
            marker: Marker {
                producer_id: meta.producer_id,
                producer_epoch: meta.producer_epoch,
                commit: meta.state == TxnState::PrepareCommit,
                coordinator_epoch: COORDINATOR_EPOCH,
            },
            remaining: meta.partitions.clone(),
        }
    }
}

impl TransactionCoordinator {
    /// Opens the coordinator: replays `<dir>/__transaction_state-0`, completes the
    /// transactions it finds in a Prepare state, and (inside a tokio runtime) starts the
    /// timeout task. `dir` is the first log dir.
    pub(crate) fn open(
        dir: &Path,
        cfg: TxnConfig,
        markers: Arc<dyn MarkerWriter>,
    ) -> Result<Self, TxnStoreError> {
        let (store, replayed) =
            TxnStore::open(dir, cfg.flush_interval_messages, cfg.flush_interval_ms)?;
        let now_ms = crate::clock::now_ms();
        let now = Instant::now();
        let txns: HashMap<String, TxnMetadata> = replayed
            .into_iter()
            .filter_map(|(id, r)| Some((id, TxnMetadata::from_value(r.value?, now_ms, now))))
            .collect();
        let coordinator = Self::build(cfg, Some(store), markers, txns);
        coordinator.recover();
        coordinator.start_timeout_task();
        Ok(coordinator)
    }

    /// A coordinator that keeps its state in memory only.
    #[cfg(test)]
    pub(crate) fn in_memory(cfg: TxnConfig, markers: Arc<dyn MarkerWriter>) -> Self {
        let c = Self::build(cfg, None, markers, HashMap::new());
        c.start_timeout_task();
        c
    }

    fn build(
        cfg: TxnConfig,
        store: Option<TxnStore>,
        markers: Arc<dyn MarkerWriter>,
        txns: HashMap<String, TxnMetadata>,
    ) -> Self {
        TransactionCoordinator {
            inner: Arc::new(Inner {
                cfg,
                txns: Mutex::new(txns),
                store,
                markers,
            }),
        }
    }

    /// Completes every transaction replayed in a Prepare state.
    fn recover(&self) {
        let pending: Vec<Completion> = self
            .inner
            .lock()
            .iter()
            .filter(|(_, m)| matches!(m.state, TxnState::PrepareCommit | TxnState::PrepareAbort))
            .map(|(id, m)| Completion::of(id, m))
            .collect();
        for c in pending {
            tracing::info!(
                transactional_id = %c.transactional_id,
                producer_id = c.marker.producer_id,
                commit = c.marker.commit,
                partitions = c.remaining.len(),
                "recovering a transaction that was completing: writing its markers again"
            );
            self.inner.finish(c);
        }
        let ongoing = self
            .inner
            .lock()
            .values()
            .filter(|m| m.state == TxnState::Ongoing)
            .count();
        if ongoing > 0 {
            tracing::info!(
                "{ongoing} transaction(s) were open at restart; they abort at their timeout unless their producers end them"
            );
        }
    }

    /// Starts the task that aborts timed-out transactions, when called inside a runtime. The
    /// task ends when the coordinator is dropped.
    fn start_timeout_task(&self) {
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let period = Duration::from_millis(self.inner.cfg.abort_check_interval_ms.max(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { return };
                inner.abort_timed_out();
            }
        });
    }

    /// InitProducerId with a transactional id: the producer id and epoch to use.
    ///
    /// A new id gets a fresh producer id and epoch 0; a known one its producer id with the
    /// epoch bumped (fencing the previous instance). An open transaction is aborted first and
    /// the answer is CONCURRENT_TRANSACTIONS, so the client retries once the abort is done.
    /// `expected` is the id and epoch a v3+ client passes to bump its own epoch (KIP-360).
    pub(crate) fn init_producer_id(
        &self,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        ids: &ProducerIds,
    ) -> Result<(i64, i16), TxnError> {
        self.inner
            .init_producer_id(transactional_id, timeout_ms, expected, ids)
            .inspect_err(|e| log_refusal("InitProducerId", transactional_id, e))
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn with the group's offsets partition): the
    /// partitions join the open transaction, which starts if none is open. The caller has
    /// checked that the partitions exist.
    pub(crate) fn add_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[(String, i32)],
    ) -> Result<(), TxnError> {
        self.inner
            .add_partitions(transactional_id, producer_id, producer_epoch, partitions)
            .inspect_err(|e| log_refusal("AddPartitionsToTxn", transactional_id, e))
    }

    /// EndTxn: commits or aborts the open transaction. Returns once the markers are written
    /// (or, if a partition could not be written, once the decision is durable and a retry
    /// task owns the rest).
    pub(crate) fn end_txn(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
    ) -> Result<(), TxnError> {
        self.inner
            .end_txn(transactional_id, producer_id, producer_epoch, commit)
            .inspect_err(|e| log_refusal("EndTxn", transactional_id, e))
    }

    /// TxnOffsetCommit's check: the producer is the current one of `transactional_id` and the
    /// group's offsets partition (`offsets_partition` of `__consumer_offsets`) is in its open
    /// transaction (AddOffsetsToTxn came first), so the commit marker will reach the offsets.
    pub(crate) fn check_offset_commit(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        offsets_partition: i32,
    ) -> Result<(), TxnError> {
        let txns = self.inner.lock();
        let result = match txns.get(transactional_id) {
            None => Err(TxnError::InvalidProducerIdMapping {
                given: producer_id,
                current: None,
            }),
            Some(m) => m
                .check_producer(producer_id, producer_epoch)
                .and_then(|()| {
                    let key = (OFFSETS_TOPIC.to_owned(), offsets_partition);
                    if m.state == TxnState::Ongoing && m.partitions.contains(&key) {
                        Ok(())
                    } else {
                        Err(TxnError::InvalidTxnState {
                            request: "TxnOffsetCommit before AddOffsetsToTxn",
                            state: m.state,
                        })
                    }
                }),
        };
        result.inspect_err(|e| log_refusal("TxnOffsetCommit", transactional_id, e))
    }

    /// Aborts every Ongoing transaction past its timeout (what the background task runs);
    /// returns how many.
    #[cfg(test)]
    pub(crate) fn abort_timed_out(&self) -> usize {
        self.inner.abort_timed_out()
    }

    /// The state of one transactional id.
    #[cfg(test)]
    pub(crate) fn describe(&self, transactional_id: &str) -> Option<TxnMetadata> {
        self.inner.lock().get(transactional_id).cloned()
    }

    /// fsyncs the transaction log.
    pub(crate) fn flush(&self) -> Result<(), TxnStoreError> {
        match &self.inner.store {
            Some(s) => s.flush(),
            None => Ok(()),
        }
    }
}

/// Logs a refused request, naming the transactional id.
fn log_refusal(api: &str, transactional_id: &str, e: &TxnError) {
    match e {
        // The client retries these; they are part of normal operation.
        TxnError::ConcurrentTransactions { .. } => {
            tracing::debug!(transactional_id, "{api}: {e}")
        }
        TxnError::Storage(_) => tracing::warn!(transactional_id, "{api} failed: {e}"),
        _ => tracing::info!(transactional_id, "{api} refused: {e}"),
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, TxnMetadata>> {
        // Every mutation is a single insert after the log write: a poisoned map is consistent.
        self.txns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes `next` to the log, then makes it the state of `id`.
    fn persist(
        &self,
        txns: &mut HashMap<String, TxnMetadata>,
        id: &str,
        next: TxnMetadata,
    ) -> Result<(), TxnError> {
        if let Some(store) = &self.store {
            let record = TxnRecord {
                transactional_id: id.to_owned(),
                value: Some(next.to_value()),
            };
            let due = store
                .append(&record)
                .map_err(|e| TxnError::Storage(e.to_string()))?;
            txns.insert(id.to_owned(), next);
            if due {
                let live: Vec<TxnRecord> = txns
                    .iter()
                    .map(|(id, m)| TxnRecord {
                        transactional_id: id.clone(),
                        value: Some(m.to_value()),
                    })
                    .collect();
                if let Err(e) = store.snapshot(&live) {
                    tracing::warn!("cannot snapshot the transaction log: {e}");
                }
            }
        } else {
            txns.insert(id.to_owned(), next);
        }
        Ok(())
    }

    fn init_producer_id(
        self: &Arc<Self>,
        id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        ids: &ProducerIds,
    ) -> Result<(i64, i16), TxnError> {
        let max = self.cfg.max_timeout_ms;
        if timeout_ms <= 0 || timeout_ms > max {
            return Err(TxnError::InvalidTransactionTimeout {
                given: timeout_ms,
                max,
            });
        }
        let now_ms = crate::clock::now_ms();
        let allocate = || {
            ids.allocate()
                .map_err(|e| TxnError::Storage(format!("cannot reserve producer ids: {e}")))
        };
        let completion = {
            let mut txns = self.lock();
            let decision = match txns.get(id) {
                None => InitDecision::NewProducerId,
                Some(meta) => meta.init(timeout_ms, expected, now_ms)?,
            };
            match decision {
                InitDecision::NewProducerId => {
                    let next = TxnMetadata::new(allocate()?, timeout_ms, now_ms);
                    let answer = (next.producer_id, next.producer_epoch);
                    self.persist(&mut txns, id, next)?;
                    tracing::info!(
                        transactional_id = id,
                        producer_id = answer.0,
                        "new producer id for transactional id"
                    );
                    return Ok(answer);
                }
                InitDecision::Current => {
                    let m = txns.get(id).ok_or(TxnError::InvalidProducerIdMapping {
                        given: -1,
                        current: None,
                    })?;
                    return Ok((m.producer_id, m.producer_epoch));
                }
                InitDecision::Bump(next) => {
                    let answer = (next.producer_id, next.producer_epoch);
                    self.persist(&mut txns, id, next)?;
                    return Ok(answer);
                }
                InitDecision::FenceAndAbort(next) => {
                    tracing::info!(
                        transactional_id = id,
                        producer_id = next.producer_id,
                        epoch = next.producer_epoch,
                        "a new producer instance initialised: aborting the open transaction of the old one"
                    );
                    let c = Completion::of(id, &next);
                    self.persist(&mut txns, id, next)?;
                    c
                }
            }
        };
        self.finish(completion);
        Err(TxnError::ConcurrentTransactions {
            state: TxnState::PrepareAbort,
        })
    }

    fn add_partitions(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
    ) -> Result<(), TxnError> {
        let mut txns = self.lock();
        let meta = txns.get(id).ok_or(TxnError::InvalidProducerIdMapping {
            given: producer_id,
            current: None,
        })?;
        let next = meta.add_partitions(
            producer_id,
            epoch,
            partitions,
            crate::clock::now_ms(),
            Instant::now(),
        )?;
        match next {
            None => Ok(()),
            Some(next) => self.persist(&mut txns, id, next),
        }
    }

    fn end_txn(
        self: &Arc<Self>,
        id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
    ) -> Result<(), TxnError> {
        let completion = {
            let mut txns = self.lock();
            let meta = txns.get(id).ok_or(TxnError::InvalidProducerIdMapping {
                given: producer_id,
                current: None,
            })?;
            let Some(next) = meta.end(producer_id, epoch, commit, crate::clock::now_ms())? else {
                return Ok(());
            };
            let c = Completion::of(id, &next);
            self.persist(&mut txns, id, next)?;
            c
        };
        self.finish(completion);
        Ok(())
    }

    fn abort_timed_out(self: &Arc<Self>) -> usize {
        let now = Instant::now();
        let now_ms = crate::clock::now_ms();
        let mut completions = Vec::new();
        {
            let mut txns = self.lock();
            let expired: Vec<String> = txns
                .iter()
                .filter(|(_, m)| m.timed_out(now))
                .map(|(id, _)| id.clone())
                .collect();
            for id in expired {
                let Some(meta) = txns.get(&id) else { continue };
                let next = meta.fence_abort(now_ms);
                tracing::info!(
                    transactional_id = %id,
                    producer_id = next.producer_id,
                    timeout_ms = next.timeout_ms,
                    "transaction timed out: aborting it and fencing its producer (epoch now {})",
                    next.producer_epoch
                );
                let c = Completion::of(&id, &next);
                match self.persist(&mut txns, &id, next) {
                    Ok(()) => completions.push(c),
                    Err(e) => {
                        tracing::warn!(transactional_id = %id, "cannot abort a timed-out transaction: {e}")
                    }
                }
            }
        }
        let n = completions.len();
        for c in completions {
            self.finish(c);
        }
        n
    }

    /// Writes the markers of `c` and completes the transaction; if a marker cannot be written,
    /// a task keeps retrying (the id stays in its Prepare state meanwhile).
    fn finish(self: &Arc<Self>, mut c: Completion) {
        if self.try_complete(&mut c) {
            return;
        }
        if tokio::runtime::Handle::try_current().is_err() {
            tracing::error!(
                transactional_id = %c.transactional_id,
                "markers not written and no runtime to retry them; they are written at the next start"
            );
            return;
        }
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(MARKER_RETRY).await;
                let Some(inner) = weak.upgrade() else { return };
                if inner.try_complete(&mut c) {
                    return;
                }
            }
        });
    }

    /// One attempt at writing the remaining markers of `c`; when all are written, the
    /// transaction moves to its Complete state. Returns whether it is complete.
    fn try_complete(&self, c: &mut Completion) -> bool {
        let marker = c.marker;
        let id = c.transactional_id.clone();
        c.remaining
            .retain(|(topic, partition)| match self.markers.write_marker(topic, *partition, &marker) {
                Ok(()) => false,
                Err(MarkerError::UnknownPartition) => {
                    tracing::info!(transactional_id = %id, "{topic}-{partition} is gone; no marker written there");
                    false
                }
                Err(MarkerError::Refused(e)) => {
                    tracing::error!(transactional_id = %id, "transaction marker refused ({e}); not retried");
                    false
                }
                Err(MarkerError::Failed(e)) => {
                    tracing::warn!(transactional_id = %id, "cannot write a transaction marker ({e}); retrying");
                    true
                }
            });
        if !c.remaining.is_empty() {
            return false;
        }
        let mut txns = self.lock();
        let Some(meta) = txns.get(&id) else {
            return true;
        };
        let preparing = if marker.commit {
            TxnState::PrepareCommit
        } else {
            TxnState::PrepareAbort
        };
        if meta.state != preparing
            || meta.producer_id != marker.producer_id
            || meta.producer_epoch != marker.producer_epoch
        {
            return true;
        }
        let next = meta.completed(crate::clock::now_ms());
        if let Err(e) = self.persist(&mut txns, &id, next.clone()) {
            // The markers are written; a replay would write them again and complete then.
            tracing::warn!(transactional_id = %id, "cannot record the completed transaction: {e}");
            txns.insert(id, next);
        }
        true
    }
}

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
//!
//! As in Kafka (a lone broker being a quorum of one), `__transaction_state` is a replicated topic and the coordinator of
//! a transactional id is the leader of its partition (`abs(java_hash(id)) % partitions`, the
//! same choice as for groups, [`crate::group::store::partition_for`]). When this broker starts
//! leading such a partition, [`TransactionCoordinator::load_partition`] replays it and
//! completes the transactions it finds in a Prepare state; when it stops,
//! [`TransactionCoordinator::unload_partition`] forgets them. Ids of partitions not loaded here
//! are NOT_COORDINATOR. Every state change is appended to the partition as its leader and the
//! client is answered, and markers written, only once the high watermark has passed it (Kafka's
//! acks=-1 append), so a new coordinator always knows every decision a client or a partition
//! saw. The coordinator epoch written into markers is the partition's leader epoch.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::time::Instant;

use super::markers::{Marker, MarkerError, MarkerWriter};
use super::records::TxnRecord;
use super::state::{InitDecision, TxnError, TxnMetadata, TxnState};
use super::store::TXN_TOPIC;
use super::TxnConfig;
use crate::group::store::{partition_for, OFFSETS_TOPIC};
use crate::log::LogError;
use crate::partition::committed::{wait_committed, CommitError};
use crate::partition::{Appended, LeaderAppendError, Partition};
use crate::producer_ids::ProducerIds;

/// How long to wait before retrying markers that could not be written.
const MARKER_RETRY: Duration = Duration::from_millis(500);

/// How long a transaction log write may take to reach the ISR before the client is told
/// COORDINATOR_NOT_AVAILABLE (it retries; the record stays in the leader's log).
const COMMIT_TIMEOUT: Duration = Duration::from_secs(15);

/// The coordinator for every transactional id on this broker.
#[derive(Clone)]
pub(crate) struct TransactionCoordinator {
    /// State shared with the timeout and retry tasks.
    inner: Arc<Inner>,
}

/// What the background tasks share with the coordinator.
struct Inner {
    /// Limits and intervals.
    cfg: TxnConfig,
    /// The transactional ids of the loaded partitions.
    txns: Mutex<HashMap<String, TxnMetadata>>,
    /// The `__transaction_state` partitions this broker leads and has loaded: where state
    /// changes are written. Locked after `txns`, never before.
    log: Mutex<Replicated>,
    /// Where markers go.
    markers: Arc<dyn MarkerWriter>,
}

/// The loaded partitions of a replicated transaction log.
#[derive(Default)]
struct Replicated {
    /// Partitions of `__transaction_state` (known once one is loaded; 0 before).
    num_partitions: i32,
    /// Loaded partitions by index.
    led: HashMap<i32, Led>,
}

/// A `__transaction_state` partition this broker leads and coordinates.
#[derive(Clone)]
struct Led {
    /// The partition.
    partition: Arc<Partition>,
    /// Its leader epoch when loaded: the coordinator epoch of its transactions.
    epoch: i32,
    /// The topic's `min.insync.replicas`: fewer in-sync replicas refuse writes.
    min_isr: usize,
}

/// A transaction log record written to a replicated partition, not yet known to be committed.
struct Pending {
    /// The partition.
    partition: Arc<Partition>,
    /// Where the record went.
    appended: Appended,
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
    /// The markers owed by `meta`, which is in a Prepare state, from a coordinator at
    /// `coordinator_epoch`.
    fn of(transactional_id: &str, meta: &TxnMetadata, coordinator_epoch: i32) -> Self {
        Completion {
            transactional_id: transactional_id.to_owned(),
            marker: Marker {
                producer_id: meta.producer_id,
                producer_epoch: meta.producer_epoch,
                commit: meta.state == TxnState::PrepareCommit,
                coordinator_epoch,
            },
            remaining: meta.partitions.clone(),
        }
    }
}

/// Runs `fut` to its end now if it never has to wait (markers and log writes to partitions led
/// here by a lone broker complete at once, so a loaded partition's recovery is done before it
/// answers), else as a task.
fn run_now_or_spawn(fut: impl Future<Output = ()> + Send + 'static) {
    let mut fut = Box::pin(fut);
    let waker = futures::task::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    if fut.as_mut().poll(&mut cx).is_ready() {
        return;
    }
    if tokio::runtime::Handle::try_current().is_ok() {
        tokio::spawn(fut);
    } else {
        tracing::error!(
            "transaction recovery must wait and there is no runtime: it resumes at the next start"
        );
    }
}

/// The transactions of `txns` in a Prepare state, as completions at `epoch`.
fn prepared<'a>(
    txns: impl Iterator<Item = (&'a String, &'a TxnMetadata)>,
    epoch: i32,
) -> Vec<Completion> {
    txns.filter(|(_, m)| matches!(m.state, TxnState::PrepareCommit | TxnState::PrepareAbort))
        .map(|(id, m)| Completion::of(id, m, epoch))
        .collect()
}

impl TransactionCoordinator {
    /// A coordinator of no transactional id yet; it takes up the ids of each
    /// `__transaction_state` partition this broker comes to lead
    /// ([`TransactionCoordinator::load_partition`]).
    pub(crate) fn new(cfg: TxnConfig, markers: Arc<dyn MarkerWriter>) -> Self {
        let c = Self::build(cfg, markers);
        c.start_timeout_task();
        c
    }

    fn build(cfg: TxnConfig, markers: Arc<dyn MarkerWriter>) -> Self {
        TransactionCoordinator {
            inner: Arc::new(Inner {
                cfg,
                txns: Mutex::default(),
                log: Mutex::default(),
                markers,
            }),
        }
    }

    /// This broker now leads `__transaction_state` partition `index` (of
    /// `num_partitions`, with `min.insync.replicas` = `min_isr`): the partition's transactional
    /// ids are replayed from its log, replacing whatever this broker remembered of them, and
    /// the transactions found in a Prepare state are completed. Returns how many ids were
    /// loaded. The coordinator epoch is the partition's current leader epoch.
    pub(crate) fn load_partition(
        &self,
        index: i32,
        partition: Arc<Partition>,
        num_partitions: i32,
        min_isr: usize,
    ) -> Result<usize, LogError> {
        let replicated = &self.inner.log;
        let Some(epoch) = partition.leader_epoch() else {
            return Err(LogError::Io {
                op: "cannot load transactions: this broker does not lead",
                path: partition.dir.clone(),
                source: std::io::Error::other("not the leader"),
            });
        };
        // Stop answering for the partition while it is replayed: nothing is written meanwhile.
        lock(replicated).led.remove(&index);
        let replayed = partition.with_log(|log| super::store::replay(log, index))?;
        let now_ms = crate::clock::now_ms();
        let now = Instant::now();
        let loaded: HashMap<String, TxnMetadata> = replayed
            .into_iter()
            .filter(|(id, _)| partition_for(id, num_partitions) == index)
            .filter_map(|(id, r)| Some((id, TxnMetadata::from_value(r.value?, now_ms, now))))
            .collect();
        let count = loaded.len();
        let pending = {
            let mut txns = self.inner.lock();
            txns.retain(|id, _| partition_for(id, num_partitions) != index);
            let pending = prepared(loaded.iter(), epoch);
            txns.extend(loaded);
            let mut r = lock(replicated);
            r.num_partitions = num_partitions;
            r.led.insert(
                index,
                Led {
                    partition,
                    epoch,
                    min_isr,
                },
            );
            pending
        };
        for c in pending {
            tracing::info!(
                transactional_id = %c.transactional_id,
                producer_id = c.marker.producer_id,
                commit = c.marker.commit,
                coordinator_epoch = epoch,
                "completing a transaction the previous coordinator left in its Prepare state"
            );
            run_now_or_spawn(self.inner.clone().finish(c));
        }
        Ok(count)
    }

    /// Another broker leads `__transaction_state` partition `index` now: its
    /// transactional ids are forgotten here (their producers get NOT_COORDINATOR and look the
    /// coordinator up again; marker retries for them stop).
    pub(crate) fn unload_partition(&self, index: i32) {
        let replicated = &self.inner.log;
        let mut txns = self.inner.lock();
        let mut r = lock(replicated);
        let n = r.num_partitions;
        r.led.remove(&index);
        txns.retain(|id, _| partition_for(id, n) != index);
    }

    /// Whether this broker answers for `transactional_id` now: once its `__transaction_state`
    /// partition is loaded here.
    pub(crate) fn is_coordinating(&self, transactional_id: &str) -> bool {
        self.inner.led_for(transactional_id).is_ok()
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
                inner.abort_timed_out().await;
            }
        });
    }

    /// InitProducerId with a transactional id: the producer id and epoch to use.
    ///
    /// A new id gets a fresh producer id and epoch 0; a known one its producer id with the
    /// epoch bumped (fencing the previous instance). An open transaction is aborted first and
    /// the answer is CONCURRENT_TRANSACTIONS, so the client retries once the abort is done.
    /// `expected` is the id and epoch a v3+ client passes to bump its own epoch (KIP-360).
    pub(crate) async fn init_producer_id(
        &self,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        ids: &ProducerIds,
    ) -> Result<(i64, i16), TxnError> {
        self.inner
            .init_producer_id(transactional_id, timeout_ms, expected, ids)
            .await
            .inspect_err(|e| log_refusal("InitProducerId", transactional_id, e))
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn with the group's offsets partition): the
    /// partitions join the open transaction, which starts if none is open. The caller has
    /// checked that the partitions exist.
    pub(crate) async fn add_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[(String, i32)],
    ) -> Result<(), TxnError> {
        self.inner
            .add_partitions(transactional_id, producer_id, producer_epoch, partitions)
            .await
            .inspect_err(|e| log_refusal("AddPartitionsToTxn", transactional_id, e))
    }

    /// EndTxn: commits or aborts the open transaction. Returns once the markers are written
    /// (or, if a partition could not be written, once the decision is durable and a retry
    /// task owns the rest).
    pub(crate) async fn end_txn(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
    ) -> Result<(), TxnError> {
        self.inner
            .end_txn(transactional_id, producer_id, producer_epoch, commit)
            .await
            .inspect_err(|e| log_refusal("EndTxn", transactional_id, e))
    }

    /// TxnOffsetCommit's check: the producer is the current one of `transactional_id` and the
    /// group's offsets partition (`offsets_partition` of `__consumer_offsets`) is in its open
    /// transaction (AddOffsetsToTxn came first), so the commit marker will reach the offsets.
    /// In a cluster the group coordinator is often another broker than the transaction
    /// coordinator; there, as in Kafka before KIP-890, it is not checked.
    pub(crate) fn check_offset_commit(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        offsets_partition: i32,
    ) -> Result<(), TxnError> {
        if !self.is_coordinating(transactional_id) {
            return Ok(());
        }
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
    pub(crate) async fn abort_timed_out(&self) -> usize {
        self.inner.abort_timed_out().await
    }

    /// The state of one transactional id.
    #[cfg(test)]
    pub(crate) fn describe(&self, transactional_id: &str) -> Option<TxnMetadata> {
        self.inner.lock().get(transactional_id).cloned()
    }
}

/// Logs a refused request, naming the transactional id.
fn log_refusal(api: &str, transactional_id: &str, e: &TxnError) {
    match e {
        // The client retries these; they are part of normal operation.
        TxnError::ConcurrentTransactions { .. } | TxnError::NotCoordinator { .. } => {
            tracing::debug!(transactional_id, "{api}: {e}")
        }
        TxnError::Storage(_) => tracing::warn!(transactional_id, "{api} failed: {e}"),
        _ => tracing::info!(transactional_id, "{api} refused: {e}"),
    }
}

/// Locks the loaded partitions (a poisoned map is consistent: every change is one insert or
/// removal).
fn lock(r: &Mutex<Replicated>) -> MutexGuard<'_, Replicated> {
    r.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, HashMap<String, TxnMetadata>> {
        // Every mutation is a single insert after the log write: a poisoned map is consistent.
        self.txns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The loaded partition of `id` (NOT_COORDINATOR if it is not loaded here).
    fn led_for(&self, id: &str) -> Result<(i32, Led), TxnError> {
        let r = lock(&self.log);
        if r.num_partitions == 0 {
            return Err(TxnError::NotCoordinator { partition: None });
        }
        let index = partition_for(id, r.num_partitions);
        r.led
            .get(&index)
            .map(|led| (index, led.clone()))
            .ok_or(TxnError::NotCoordinator {
                partition: Some(index),
            })
    }

    /// The coordinator epoch of `id`'s markers: its partition's leader epoch (-1 if not
    /// loaded).
    fn coordinator_epoch(&self, id: &str) -> i32 {
        self.led_for(id).map_or(-1, |(_, led)| led.epoch)
    }

    /// Writes `next` to the log, then makes it the state of `id`: the record is appended to the
    /// id's partition as its leader and the returned [`Pending`] must be
    /// awaited ([`Inner::committed`]) before anyone is told or any marker is written.
    fn persist(
        &self,
        txns: &mut HashMap<String, TxnMetadata>,
        id: &str,
        next: TxnMetadata,
    ) -> Result<Option<Pending>, TxnError> {
        let record = TxnRecord {
            transactional_id: id.to_owned(),
            value: Some(next.to_value()),
        };
        let (index, led) = self.led_for(id)?;
        let isr = led.partition.isr_len();
        if isr < led.min_isr {
            return Err(TxnError::Storage(format!(
                "{TXN_TOPIC}-{index}: the in-sync replicas ({isr}) are fewer than min.insync.replicas ({})",
                led.min_isr
            )));
        }
        let batch = super::store::encode_batch(std::slice::from_ref(&record));
        let appended = led
            .partition
            .append_from_coordinator(batch, crate::clock::now_ms())
            .map_err(|e| match e {
                LeaderAppendError::NotLeader => TxnError::NotCoordinator {
                    partition: Some(index),
                },
                other => TxnError::Storage(format!("{TXN_TOPIC}-{index}: {other}")),
            })?;
        txns.insert(id.to_owned(), next);
        Ok(Some(Pending {
            partition: led.partition,
            appended,
        }))
    }

    /// Waits until a replicated write is committed (the high watermark passed it).
    async fn committed(pending: &Option<Pending>) -> Result<(), TxnError> {
        let Some(p) = pending else {
            return Ok(());
        };
        let deadline = Instant::now() + COMMIT_TIMEOUT;
        wait_committed(
            &p.partition,
            p.appended.last_offset,
            p.appended.leader_epoch,
            deadline,
        )
        .await
        .map_err(|e| match e {
            CommitError::LeadershipLost { partition, .. } => TxnError::NotCoordinator {
                partition: Some(partition),
            },
            e @ CommitError::TimedOut { .. } => TxnError::Storage(e.to_string()),
        })
    }

    async fn init_producer_id(
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
        self.led_for(id)?;
        let now_ms = crate::clock::now_ms();
        let allocate = || {
            ids.allocate()
                .map_err(|e| TxnError::Storage(format!("cannot reserve producer ids: {e}")))
        };
        let (answer, pending, completion) = {
            let mut txns = self.lock();
            let decision = match txns.get(id) {
                None => InitDecision::NewProducerId,
                Some(meta) => meta.init(timeout_ms, expected, now_ms)?,
            };
            match decision {
                InitDecision::NewProducerId => {
                    let next = TxnMetadata::new(allocate()?, timeout_ms, now_ms);
                    let answer = (next.producer_id, next.producer_epoch);
                    let pending = self.persist(&mut txns, id, next)?;
                    tracing::info!(
                        transactional_id = id,
                        producer_id = answer.0,
                        "new producer id for transactional id"
                    );
                    (Ok(answer), pending, None)
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
                    (Ok(answer), self.persist(&mut txns, id, next)?, None)
                }
                InitDecision::FenceAndAbort(next) => {
                    tracing::info!(
                        transactional_id = id,
                        producer_id = next.producer_id,
                        epoch = next.producer_epoch,
                        "a new producer instance initialised: aborting the open transaction of the old one"
                    );
                    let c = Completion::of(id, &next, self.coordinator_epoch(id));
                    let pending = self.persist(&mut txns, id, next)?;
                    let retry = Err(TxnError::ConcurrentTransactions {
                        state: TxnState::PrepareAbort,
                    });
                    (retry, pending, Some(c))
                }
            }
        };
        if let Some(c) = completion {
            self.decide(c, pending).await?;
        } else {
            Self::committed(&pending).await?;
        }
        answer
    }

    async fn add_partitions(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
    ) -> Result<(), TxnError> {
        self.led_for(id)?;
        let pending = {
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
                None => None,
                Some(next) => self.persist(&mut txns, id, next)?,
            }
        };
        Self::committed(&pending).await
    }

    async fn end_txn(
        self: &Arc<Self>,
        id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
    ) -> Result<(), TxnError> {
        self.led_for(id)?;
        let (completion, pending) = {
            let mut txns = self.lock();
            let meta = txns.get(id).ok_or(TxnError::InvalidProducerIdMapping {
                given: producer_id,
                current: None,
            })?;
            let Some(next) = meta.end(producer_id, epoch, commit, crate::clock::now_ms())? else {
                return Ok(());
            };
            let c = Completion::of(id, &next, self.coordinator_epoch(id));
            let pending = self.persist(&mut txns, id, next)?;
            (c, pending)
        };
        self.decide(completion, pending).await
    }

    /// Writes the markers of a Prepare state once its record is committed: a coordinator
    /// that took over without it would not know the transaction was ending. If the record is
    /// slow to reach the ISR, the caller gets the error (the client retries and is told
    /// CONCURRENT_TRANSACTIONS meanwhile) and a task finishes the transaction once it is
    /// committed; if leadership moved, the next coordinator finishes it from the log.
    async fn decide(
        self: &Arc<Self>,
        c: Completion,
        pending: Option<Pending>,
    ) -> Result<(), TxnError> {
        match Self::committed(&pending).await {
            Ok(()) => {
                self.clone().finish(c).await;
                Ok(())
            }
            Err(e) => {
                if !matches!(e, TxnError::NotCoordinator { .. }) {
                    let inner = self.clone();
                    tokio::spawn(async move {
                        loop {
                            match Self::committed(&pending).await {
                                Ok(()) => return inner.finish(c).await,
                                Err(TxnError::NotCoordinator { .. }) => return,
                                Err(_) if !inner.owns(&c) => return,
                                Err(_) => {}
                            }
                        }
                    });
                }
                Err(e)
            }
        }
    }

    async fn abort_timed_out(self: &Arc<Self>) -> usize {
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
                let c = Completion::of(&id, &next, self.coordinator_epoch(&id));
                match self.persist(&mut txns, &id, next) {
                    Ok(pending) => completions.push((c, pending)),
                    Err(e) => {
                        tracing::warn!(transactional_id = %id, "cannot abort a timed-out transaction: {e}")
                    }
                }
            }
        }
        let mut n = 0;
        for (c, pending) in completions {
            let id = c.transactional_id.clone();
            match self.decide(c, pending).await {
                Ok(()) => n += 1,
                Err(e) => {
                    tracing::warn!(transactional_id = %id, "the abort of a timed-out transaction is not replicated yet: {e}")
                }
            }
        }
        n
    }

    /// Writes the markers of `c` and completes the transaction; if a marker cannot be written,
    /// a task keeps retrying (the id stays in its Prepare state meanwhile) as long as this
    /// broker coordinates the id.
    async fn finish(self: Arc<Self>, mut c: Completion) {
        if self.try_complete(&mut c).await {
            return;
        }
        if tokio::runtime::Handle::try_current().is_err() {
            tracing::error!(
                transactional_id = %c.transactional_id,
                "markers not written and no runtime to retry them; they are written at the next start"
            );
            return;
        }
        let weak = Arc::downgrade(&self);
        drop(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(MARKER_RETRY).await;
                let Some(inner) = weak.upgrade() else { return };
                if inner.try_complete(&mut c).await {
                    return;
                }
            }
        });
    }

    /// Whether `c` is still this coordinator's to complete: the id is known here, in the
    /// Prepare state of `c`'s marker, with the same producer and coordinator epoch.
    fn owns(&self, c: &Completion) -> bool {
        let txns = self.lock();
        self.owns_locked(&txns, c)
    }

    /// One attempt at writing the remaining markers of `c` (to all its partitions at once);
    /// when all are written, the transaction moves to its Complete state. Returns whether
    /// nothing is left to do (complete, or no longer this coordinator's).
    async fn try_complete(&self, c: &mut Completion) -> bool {
        if !self.owns(c) {
            return true;
        }
        let marker = c.marker;
        let id = c.transactional_id.clone();
        let writes = c.remaining.iter().map(|(topic, partition)| async move {
            let r = self.markers.write_marker(topic, *partition, &marker).await;
            ((topic.clone(), *partition), r)
        });
        for ((topic, partition), r) in futures::future::join_all(writes).await {
            let done = match r {
                Ok(()) => true,
                Err(MarkerError::UnknownPartition) => {
                    tracing::info!(transactional_id = %id, "{topic}-{partition} is gone; no marker written there");
                    true
                }
                Err(MarkerError::Refused(e)) => {
                    tracing::error!(transactional_id = %id, "transaction marker refused ({e}); not retried");
                    true
                }
                Err(MarkerError::Failed(e)) => {
                    tracing::warn!(transactional_id = %id, "cannot write a transaction marker ({e}); retrying");
                    false
                }
            };
            if done {
                c.remaining.remove(&(topic, partition));
            }
        }
        if !c.remaining.is_empty() {
            return false;
        }
        let mut txns = self.lock();
        if !self.owns_locked(&txns, c) {
            return true;
        }
        let Some(meta) = txns.get(&id) else {
            return true;
        };
        let next = meta.completed(crate::clock::now_ms());
        // Not awaited: every marker is written, so the answer no longer depends on this
        // record; a coordinator that takes over without it writes the markers again.
        if let Err(e) = self.persist(&mut txns, &id, next.clone()) {
            // The markers are written; a replay would write them again and complete then.
            tracing::warn!(transactional_id = %id, "cannot record the completed transaction: {e}");
            txns.insert(id.clone(), next);
        }
        true
    }

    /// [`Inner::owns`] with the ids already locked.
    fn owns_locked(&self, txns: &HashMap<String, TxnMetadata>, c: &Completion) -> bool {
        let marker = c.marker;
        let preparing = if marker.commit {
            TxnState::PrepareCommit
        } else {
            TxnState::PrepareAbort
        };
        txns.get(&c.transactional_id).is_some_and(|meta| {
            meta.state == preparing
                && meta.producer_id == marker.producer_id
                && meta.producer_epoch == marker.producer_epoch
        }) && self.coordinator_epoch(&c.transactional_id) == marker.coordinator_epoch
    }
}

#[cfg(test)]
mod tests;

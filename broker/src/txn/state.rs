//! The transaction state machine of one transactional id, as plain data and pure rules.
//!
//! Every rule here takes the current [`TxnMetadata`] and a request and returns either the
//! metadata to persist next or the Kafka error, exactly as Apache Kafka's
//! `TransactionCoordinator` decides. Nothing here does I/O or awaits, so the rules are tested
//! without a runtime; [`super::coordinator`] persists what they return and writes the markers.
//!
//! ```text
//!  Empty ──AddPartitions──▶ Ongoing ──EndTxn(commit)──▶ PrepareCommit ──markers──▶ CompleteCommit
//!    ▲                        │    └──EndTxn(abort) / timeout / fence──▶ PrepareAbort ──▶ CompleteAbort
//!    └──InitProducerId────────┴── (from Empty/Complete*: epoch + 1) ◀───────────────────────┘
//! ```

use std::collections::BTreeSet;

use kafka_protocol::error::ResponseError as E;
use tokio::time::{Duration, Instant};

use super::records::TxnValue;
use super::store::TXN_TOPIC;

/// Kafka's transaction states (the status byte in `__transaction_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TxnState {
    /// A producer id is assigned; no transaction is open.
    Empty,
    /// Partitions (or offsets) were added: a transaction is open.
    Ongoing,
    /// The producer asked to commit; markers are being written.
    PrepareCommit,
    /// The transaction is being aborted; markers are being written.
    PrepareAbort,
    /// The last transaction committed.
    CompleteCommit,
    /// The last transaction aborted.
    CompleteAbort,
    /// The transactional id expired (never written by kbroker; decoded for completeness).
    Dead,
    /// Kafka's transient state while fencing (never persisted by kbroker).
    PrepareEpochFence,
}

impl TxnState {
    /// The status byte Kafka writes.
    pub(crate) fn code(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
            TxnState::Dead => 6,
            TxnState::PrepareEpochFence => 7,
        }
    }

    /// The state of a status byte.
    pub(crate) fn from_code(code: i8) -> Option<Self> {
        Some(match code {
            0 => TxnState::Empty,
            1 => TxnState::Ongoing,
            2 => TxnState::PrepareCommit,
            3 => TxnState::PrepareAbort,
            4 => TxnState::CompleteCommit,
            5 => TxnState::CompleteAbort,
            6 => TxnState::Dead,
            7 => TxnState::PrepareEpochFence,
            _ => return None,
        })
    }
}

/// Why a transactional request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TxnError {
    /// The producer id is not the one of this transactional id (or the id is unknown).
    #[error("producer id {given} is not the producer id of this transactional id ({current:?})")]
    InvalidProducerIdMapping {
        /// The producer id in the request.
        given: i64,
        /// The transactional id's producer id, if it has one.
        current: Option<i64>,
    },
    /// A newer producer with the same transactional id exists (epoch mismatch).
    #[error("producer epoch {given} is fenced: the current epoch is {current}")]
    ProducerFenced {
        /// The epoch in the request.
        given: i16,
        /// The current epoch.
        current: i16,
    },
    /// Markers of the previous transaction are still being written; retry.
    #[error("a transaction of this id is completing ({state:?}); retry")]
    ConcurrentTransactions {
        /// The state.
        state: TxnState,
    },
    /// The request does not fit the state (e.g. abort after commit).
    #[error("{request} is not valid in state {state:?}")]
    InvalidTxnState {
        /// What was asked.
        request: &'static str,
        /// The state.
        state: TxnState,
    },
    /// The timeout given with InitProducerId is out of range.
    #[error("transaction timeout {given} ms is not in 1..={max} (transaction.max.timeout.ms)")]
    InvalidTransactionTimeout {
        /// The timeout in the request.
        given: i32,
        /// `transaction.max.timeout.ms`.
        max: i32,
    },
    /// The transaction log could not be written; the client retries.
    #[error("cannot write the transaction log: {0}")]
    Storage(String),
    /// This broker does not coordinate the id (another broker leads its
    /// `__transaction_state` partition, or leadership just moved); the client looks the
    /// coordinator up again.
    #[error("this broker does not coordinate the transactional id ({TXN_TOPIC} partition {partition:?} is not loaded here)")]
    NotCoordinator {
        /// The id's `__transaction_state` partition, when known.
        partition: Option<i32>,
    },
}

impl TxnError {
    /// The Kafka error code. `fenced_code` says whether the request version knows
    /// PRODUCER_FENCED (KIP-588); older versions get INVALID_PRODUCER_EPOCH instead.
    pub(crate) fn code(&self, fenced_code: bool) -> i16 {
        match self {
            TxnError::InvalidProducerIdMapping { .. } => E::InvalidProducerIdMapping.code(),
            TxnError::ProducerFenced { .. } if fenced_code => E::ProducerFenced.code(),
            TxnError::ProducerFenced { .. } => E::InvalidProducerEpoch.code(),
            TxnError::ConcurrentTransactions { .. } => E::ConcurrentTransactions.code(),
            TxnError::InvalidTxnState { .. } => E::InvalidTxnState.code(),
            TxnError::InvalidTransactionTimeout { .. } => E::InvalidTransactionTimeout.code(),
            TxnError::Storage(_) => E::CoordinatorNotAvailable.code(),
            TxnError::NotCoordinator { .. } => E::NotCoordinator.code(),
        }
    }
}

/// What the coordinator knows about one transactional id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TxnMetadata {
    /// Producer id.
    pub(crate) producer_id: i64,
    /// Current producer epoch.
    pub(crate) producer_epoch: i16,
    /// The epoch before the last InitProducerId bump (-1 = none), so that a retried
    /// InitProducerId (KIP-360, the client passes its old epoch) gets the same answer.
    /// In memory only, as Kafka's v0 record has no field for it.
    pub(crate) last_producer_epoch: i16,
    /// Transaction timeout (ms).
    pub(crate) timeout_ms: i32,
    /// State.
    pub(crate) state: TxnState,
    /// Partitions of the open (or completing) transaction.
    pub(crate) partitions: BTreeSet<(String, i32)>,
    /// When the transaction began (ms since the epoch; -1 when none).
    pub(crate) start_ms: i64,
    /// When the state last changed (ms since the epoch).
    pub(crate) last_update_ms: i64,
    /// When an Ongoing transaction times out (tokio time, so tests can pause it).
    pub(crate) deadline: Option<Instant>,
}

/// Epochs at or above this are exhausted: the next InitProducerId gets a new producer id
/// (Kafka's `isEpochExhausted`: `epoch >= Short.MaxValue - 1`).
const EPOCH_EXHAUSTED: i16 = i16::MAX - 1;

/// What InitProducerId should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum InitDecision {
    /// Persist this (epoch bumped, state Empty) and answer with its producer id and epoch.
    Bump(TxnMetadata),
    /// The epoch is exhausted: allocate a new producer id, epoch 0.
    NewProducerId,
    /// A transaction is open: persist this PrepareAbort (epoch bumped, fencing the old
    /// producer), write abort markers, and answer CONCURRENT_TRANSACTIONS so the client retries.
    FenceAndAbort(TxnMetadata),
    /// A retry of an InitProducerId that already bumped the epoch: answer with the current one.
    Current,
}

impl TxnMetadata {
    /// A new transactional id with a fresh producer id.
    pub(crate) fn new(producer_id: i64, timeout_ms: i32, now_ms: i64) -> Self {
        TxnMetadata {
            producer_id,
            producer_epoch: 0,
            last_producer_epoch: -1,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            start_ms: -1,
            last_update_ms: now_ms,
            deadline: None,
        }
    }

    /// The persisted form.
    pub(crate) fn to_value(&self) -> TxnValue {
        TxnValue {
            producer_id: self.producer_id,
            producer_epoch: self.producer_epoch,
            timeout_ms: self.timeout_ms,
            state: self.state,
            partitions: self.partitions.clone(),
            last_update_ms: self.last_update_ms,
            start_ms: self.start_ms,
        }
    }

    /// The metadata of a replayed record. An Ongoing transaction keeps the rest of its timeout
    /// (counted from its start on the wall clock).
    pub(crate) fn from_value(v: TxnValue, now_ms: i64, now: Instant) -> Self {
        let deadline = (v.state == TxnState::Ongoing).then(|| {
            let end = v.start_ms.saturating_add(i64::from(v.timeout_ms));
            now + Duration::from_millis(u64::try_from(end - now_ms).unwrap_or(0))
        });
        TxnMetadata {
            producer_id: v.producer_id,
            producer_epoch: v.producer_epoch,
            last_producer_epoch: -1,
            timeout_ms: v.timeout_ms,
            state: v.state,
            partitions: v.partitions,
            start_ms: v.start_ms,
            last_update_ms: v.last_update_ms,
            deadline,
        }
    }

    /// Checks the producer id and epoch of a request against this metadata.
    pub(crate) fn check_producer(&self, producer_id: i64, epoch: i16) -> Result<(), TxnError> {
        if producer_id != self.producer_id {
            return Err(TxnError::InvalidProducerIdMapping {
                given: producer_id,
                current: Some(self.producer_id),
            });
        }
        if epoch != self.producer_epoch {
            return Err(TxnError::ProducerFenced {
                given: epoch,
                current: self.producer_epoch,
            });
        }
        Ok(())
    }

    /// InitProducerId for an existing transactional id. `expected` is the producer id and
    /// epoch the client passed (v3+, KIP-360), if any.
    pub(crate) fn init(
        &self,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        now_ms: i64,
    ) -> Result<InitDecision, TxnError> {
        if let Some((pid, epoch)) = expected {
            let is_current = pid == self.producer_id && epoch == self.producer_epoch;
            let is_retry = pid == self.producer_id
                && epoch == self.last_producer_epoch
                && self.state == TxnState::Empty;
            if is_retry {
                return Ok(InitDecision::Current);
            }
            if !is_current {
                return Err(if pid != self.producer_id {
                    TxnError::InvalidProducerIdMapping {
                        given: pid,
                        current: Some(self.producer_id),
                    }
                } else {
                    TxnError::ProducerFenced {
                        given: epoch,
                        current: self.producer_epoch,
                    }
                });
            }
        }
        match self.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence => {
                Err(TxnError::ConcurrentTransactions { state: self.state })
            }
            TxnState::Ongoing => Ok(InitDecision::FenceAndAbort(self.fence_abort(now_ms))),
            TxnState::Empty
            | TxnState::CompleteCommit
            | TxnState::CompleteAbort
            | TxnState::Dead => {
                if self.producer_epoch >= EPOCH_EXHAUSTED {
                    return Ok(InitDecision::NewProducerId);
                }
                let mut next = self.clone();
                next.last_producer_epoch = self.producer_epoch;
                next.producer_epoch = self.producer_epoch + 1;
                next.timeout_ms = timeout_ms;
                next.state = TxnState::Empty;
                next.partitions.clear();
                next.start_ms = -1;
                next.last_update_ms = now_ms;
                next.deadline = None;
                Ok(InitDecision::Bump(next))
            }
        }
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn: the metadata to persist, or `None` when every
    /// partition is already in the open transaction.
    pub(crate) fn add_partitions(
        &self,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
        now_ms: i64,
        now: Instant,
    ) -> Result<Option<TxnMetadata>, TxnError> {
        self.check_producer(producer_id, epoch)?;
        match self.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence => {
                return Err(TxnError::ConcurrentTransactions { state: self.state })
            }
            TxnState::Dead => {
                return Err(TxnError::InvalidTxnState {
                    request: "AddPartitionsToTxn",
                    state: self.state,
                })
            }
            TxnState::Ongoing if partitions.iter().all(|p| self.partitions.contains(p)) => {
                return Ok(None)
            }
            _ => {}
        }
        let mut next = self.clone();
        if self.state != TxnState::Ongoing {
            next.partitions.clear();
            next.start_ms = now_ms;
            next.deadline =
                Some(now + Duration::from_millis(u64::try_from(self.timeout_ms).unwrap_or(0)));
        }
        next.state = TxnState::Ongoing;
        next.partitions.extend(partitions.iter().cloned());
        next.last_update_ms = now_ms;
        Ok(Some(next))
    }

    /// EndTxn: the PrepareCommit/PrepareAbort metadata to persist, or `None` when the
    /// transaction already ended the same way (an idempotent retry).
    pub(crate) fn end(
        &self,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        now_ms: i64,
    ) -> Result<Option<TxnMetadata>, TxnError> {
        self.check_producer(producer_id, epoch)?;
        let request = if commit {
            "EndTxn(commit)"
        } else {
            "EndTxn(abort)"
        };
        let invalid = || TxnError::InvalidTxnState {
            request,
            state: self.state,
        };
        match (self.state, commit) {
            (TxnState::Ongoing, _) => {
                let mut next = self.clone();
                next.state = if commit {
                    TxnState::PrepareCommit
                } else {
                    TxnState::PrepareAbort
                };
                next.last_update_ms = now_ms;
                next.deadline = None;
                Ok(Some(next))
            }
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => Ok(None),
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                Err(TxnError::ConcurrentTransactions { state: self.state })
            }
            (TxnState::PrepareEpochFence, _) => {
                Err(TxnError::ConcurrentTransactions { state: self.state })
            }
            _ => Err(invalid()),
        }
    }

    /// Abort of an open transaction by the coordinator (timeout, or a new producer instance):
    /// PrepareAbort with the epoch bumped, so the old producer is fenced and the markers carry
    /// the new epoch.
    pub(crate) fn fence_abort(&self, now_ms: i64) -> TxnMetadata {
        let mut next = self.clone();
        // An exhausted epoch cannot be bumped; the next InitProducerId moves to a new id.
        if self.producer_epoch < i16::MAX {
            next.producer_epoch = self.producer_epoch + 1;
        }
        next.last_producer_epoch = -1;
        next.state = TxnState::PrepareAbort;
        next.last_update_ms = now_ms;
        next.deadline = None;
        next
    }

    /// After the markers are written: CompleteCommit/CompleteAbort, partitions cleared.
    pub(crate) fn completed(&self, now_ms: i64) -> TxnMetadata {
        let mut next = self.clone();
        next.state = match self.state {
            TxnState::PrepareCommit => TxnState::CompleteCommit,
            _ => TxnState::CompleteAbort,
        };
        next.partitions.clear();
        next.last_update_ms = now_ms;
        next.deadline = None;
        next
    }

    /// Whether an Ongoing transaction has run past its timeout at `now`.
    pub(crate) fn timed_out(&self, now: Instant) -> bool {
        self.state == TxnState::Ongoing && self.deadline.is_some_and(|d| d <= now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(t: &str, p: i32) -> (String, i32) {
        (t.to_owned(), p)
    }

    fn ongoing() -> TxnMetadata {
        TxnMetadata::new(7, 60_000, 1)
            .add_partitions(7, 0, &[tp("a", 0)], 2, Instant::now())
            .unwrap()
            .unwrap()
    }

    #[test]
    fn add_partitions_opens_a_transaction_and_checks_the_producer() {
        let m = TxnMetadata::new(7, 60_000, 1);
        let o = ongoing();
        assert_eq!(o.state, TxnState::Ongoing);
        assert_eq!(o.start_ms, 2);
        assert!(o.deadline.is_some());
        // Already in: nothing to write.
        assert_eq!(
            o.add_partitions(7, 0, &[tp("a", 0)], 3, Instant::now()),
            Ok(None)
        );
        assert!(matches!(
            m.add_partitions(8, 0, &[tp("a", 0)], 3, Instant::now()),
            Err(TxnError::InvalidProducerIdMapping { .. })
        ));
        let fenced = m
            .add_partitions(7, 1, &[tp("a", 0)], 3, Instant::now())
            .unwrap_err();
        assert_eq!(fenced.code(true), 90);
        assert_eq!(fenced.code(false), 47);
        let preparing = o.end(7, 0, true, 4).unwrap().unwrap();
        assert_eq!(
            preparing
                .add_partitions(7, 0, &[tp("b", 0)], 5, Instant::now())
                .unwrap_err()
                .code(true),
            51
        );
    }

    #[test]
    fn end_transitions_and_idempotent_retries() {
        let o = ongoing();
        let pc = o.end(7, 0, true, 3).unwrap().unwrap();
        assert_eq!(pc.state, TxnState::PrepareCommit);
        assert_eq!(pc.end(7, 0, true, 3).unwrap_err().code(true), 51);
        assert_eq!(pc.end(7, 0, false, 3).unwrap_err().code(true), 48);
        let cc = pc.completed(4);
        assert_eq!(cc.state, TxnState::CompleteCommit);
        assert!(cc.partitions.is_empty());
        assert_eq!(cc.end(7, 0, true, 5), Ok(None));
        assert_eq!(cc.end(7, 0, false, 5).unwrap_err().code(true), 48);
        let ca = o.end(7, 0, false, 3).unwrap().unwrap().completed(4);
        assert_eq!(ca.state, TxnState::CompleteAbort);
        assert_eq!(ca.end(7, 0, false, 5), Ok(None));
        assert_eq!(ca.end(7, 0, true, 5).unwrap_err().code(true), 48);
        // Nothing was ever added: Kafka refuses EndTxn in Empty.
        let empty = TxnMetadata::new(7, 60_000, 1);
        assert_eq!(empty.end(7, 0, true, 2).unwrap_err().code(true), 48);
    }

    #[test]
    fn init_bumps_fences_and_aborts_an_open_transaction() {
        let m = TxnMetadata::new(7, 60_000, 1);
        let InitDecision::Bump(b) = m.init(30_000, None, 2).unwrap() else {
            panic!("expected a bump")
        };
        assert_eq!(
            (b.producer_id, b.producer_epoch, b.timeout_ms),
            (7, 1, 30_000)
        );
        // KIP-360 retry of that same call: the current epoch again.
        assert_eq!(b.init(30_000, Some((7, 0)), 3), Ok(InitDecision::Current));
        // A client passing an epoch that is neither current nor the last one is fenced.
        let mut later = b.clone();
        later.producer_epoch = 5;
        later.last_producer_epoch = 4;
        assert!(matches!(
            later.init(30_000, Some((7, 1)), 3),
            Err(TxnError::ProducerFenced { .. })
        ));
        let o = ongoing();
        let InitDecision::FenceAndAbort(f) = o.init(60_000, None, 3).unwrap() else {
            panic!("expected fence and abort")
        };
        assert_eq!(f.state, TxnState::PrepareAbort);
        assert_eq!(f.producer_epoch, 1);
        assert_eq!(f.partitions, o.partitions);
        assert_eq!(f.init(60_000, None, 4).unwrap_err().code(true), 51);
        let mut tired = TxnMetadata::new(7, 60_000, 1);
        tired.producer_epoch = EPOCH_EXHAUSTED;
        assert_eq!(tired.init(1, None, 2), Ok(InitDecision::NewProducerId));
    }

    #[tokio::test(start_paused = true)]
    async fn ongoing_transactions_time_out_and_keep_their_deadline_on_replay() {
        let o = ongoing();
        assert!(!o.timed_out(Instant::now()));
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(o.timed_out(Instant::now()));
        // Replayed 10 s into a 60 s timeout: 50 s left.
        let mut v = o.to_value();
        v.start_ms = 1_000_000;
        let r = TxnMetadata::from_value(v, 1_010_000, Instant::now());
        assert!(!r.timed_out(Instant::now() + Duration::from_secs(49)));
        assert!(r.timed_out(Instant::now() + Duration::from_secs(50)));
    }
}

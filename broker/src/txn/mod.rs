//! Transactions (KIP-98): the transaction coordinator and its `__transaction_state` log.
//!
//! - [`state`]: the state machine of one transactional id as pure rules (Kafka's
//!   `TransactionCoordinator` decisions, testable without a runtime);
//! - [`coordinator`]: applies the rules, persists every transition before answering, writes
//!   markers, aborts timed-out transactions, recovers in-flight ones at start;
//! - [`records`]: Kafka's `__transaction_state` key/value formats;
//! - [`store`]: the `__transaction_state` records as written to and replayed from a partition;
//! - [`markers`]: writing COMMIT/ABORT markers to data partitions and to `__consumer_offsets`;
//! - [`marker_channel`]: sending them to each partition's leader (WriteTxnMarkers; the
//!   receiving side is `crate::handlers::write_txn_markers`).
//!
//! The partition side (ongoing transactions, last stable offset, aborted-transaction index,
//! read_committed fetch) lives in `crate::partition`; the pending transactional offsets in
//! `crate::group`. Handlers (`crate::handlers::{init_producer_id, add_partitions_to_txn,
//! add_offsets_to_txn, end_txn, txn_offset_commit, write_txn_markers}`) only translate wire
//! messages.
//!
//! `__transaction_state` is replicated like any topic (a lone broker is a quorum of one) and
//! each partition's leader coordinates the ids of that partition (see [`coordinator`];
//! `crate::metadata_sync` hands the partitions over as leadership moves).

pub(crate) mod coordinator;
pub(crate) mod marker_channel;
pub(crate) mod markers;
pub(crate) mod records;
pub(crate) mod state;
pub(crate) mod store;

pub(crate) use coordinator::TransactionCoordinator;

use crate::config::BrokerConfig;

/// Transaction coordinator settings (Kafka's broker keys in the field docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TxnConfig {
    /// `transaction.max.timeout.ms`: the largest timeout a producer may ask for.
    pub(crate) max_timeout_ms: i32,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`: how often timed-out
    /// transactions are looked for.
    pub(crate) abort_check_interval_ms: u64,
    /// `log.flush.interval.messages` applied to the transaction log.
    pub(crate) flush_interval_messages: Option<u64>,
    /// `log.flush.interval.ms` applied to the transaction log.
    pub(crate) flush_interval_ms: Option<u64>,
}

impl Default for TxnConfig {
    /// Kafka's defaults.
    fn default() -> Self {
        TxnConfig {
            max_timeout_ms: 900_000,
            abort_check_interval_ms: 10_000,
            flush_interval_messages: None,
            flush_interval_ms: None,
        }
    }
}

impl TxnConfig {
    /// The transaction settings of a broker configuration.
    pub(crate) fn from_broker(config: &BrokerConfig) -> Self {
        TxnConfig {
            max_timeout_ms: config.transaction_max_timeout_ms,
            abort_check_interval_ms: config.transaction_abort_check_interval_ms,
            flush_interval_messages: config.log_flush_interval_messages,
            flush_interval_ms: config.log_flush_interval_ms,
        }
    }
}

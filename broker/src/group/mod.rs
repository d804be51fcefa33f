//! Consumer groups: the group coordinator (Kafka's classic JoinGroup/SyncGroup protocol) and
//! the committed-offsets store behind it.
//!
//! - [`state`]: the data of a group and its members, and the rules that look at one group;
//! - [`coordinator`]: the state machine with its timers and deferred responses (what the
//!   FindCoordinator … DescribeGroups handlers call);
//! - [`records`]: Kafka's `__consumer_offsets` key/value formats;
//! - [`store`]: the `__consumer_offsets` partitions this broker leads, replayed as it starts
//!   leading them.
//!
//! A group's coordinator is the leader of its `__consumer_offsets` partition (this broker, for
//! every group, when it runs alone). Handlers live in
//! `crate::handlers::{find_coordinator, join_group, …}` and only translate between the wire
//! messages of each version and the coordinator's plain types.

pub(crate) mod coordinator;
pub(crate) mod records;
pub(crate) mod state;
pub(crate) mod store;

use std::time::Duration;

pub(crate) use coordinator::GroupCoordinator;

use crate::config::BrokerConfig;
use crate::log::LogError;

/// Group coordinator settings (Kafka's broker keys in the field docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupConfig {
    /// `group.initial.rebalance.delay.ms`: how long the first rebalance of an empty group waits
    /// for more members (extended while they keep coming, up to the rebalance timeout).
    pub(crate) initial_rebalance_delay_ms: u64,
    /// `group.min.session.timeout.ms`.
    pub(crate) min_session_timeout_ms: u64,
    /// `group.max.session.timeout.ms`.
    pub(crate) max_session_timeout_ms: u64,
    /// `offsets.retention.minutes`: how long committed offsets of an empty group are kept.
    pub(crate) offsets_retention_minutes: u64,
    /// `offsets.retention.check.interval.ms`.
    pub(crate) offsets_retention_check_interval_ms: u64,
    /// `offsets.topic.num.partitions`.
    pub(crate) offsets_topic_num_partitions: i32,
    /// `offset.metadata.max.bytes`: longest metadata string accepted with a commit.
    pub(crate) offset_metadata_max_bytes: usize,
    /// `log.flush.interval.messages` applied to the offsets log.
    pub(crate) flush_interval_messages: Option<u64>,
    /// `log.flush.interval.ms` applied to the offsets log.
    pub(crate) flush_interval_ms: Option<u64>,
}

impl Default for GroupConfig {
    /// Kafka's defaults.
    fn default() -> Self {
        GroupConfig {
            initial_rebalance_delay_ms: 3000,
            min_session_timeout_ms: 6000,
            max_session_timeout_ms: 1_800_000,
            offsets_retention_minutes: 10_080,
            offsets_retention_check_interval_ms: 600_000,
            offsets_topic_num_partitions: 50,
            offset_metadata_max_bytes: 4096,
            flush_interval_messages: None,
            flush_interval_ms: None,
        }
    }
}

impl GroupConfig {
    /// The group settings of a broker configuration.
    pub(crate) fn from_broker(config: &BrokerConfig) -> Self {
        GroupConfig {
            initial_rebalance_delay_ms: config.group_initial_rebalance_delay_ms,
            min_session_timeout_ms: config.group_min_session_timeout_ms,
            max_session_timeout_ms: config.group_max_session_timeout_ms,
            offsets_retention_minutes: config.offsets_retention_minutes,
            offsets_retention_check_interval_ms: config.offsets_retention_check_interval_ms,
            offsets_topic_num_partitions: config.offsets_topic_num_partitions,
            offset_metadata_max_bytes: config.offset_metadata_max_bytes,
            flush_interval_messages: config.log_flush_interval_messages,
            flush_interval_ms: config.log_flush_interval_ms,
        }
    }
}

/// Why the group coordinator could not open or write its log.
#[derive(Debug, thiserror::Error)]
pub(crate) enum GroupError {
    /// A `__consumer_offsets` partition log failed.
    #[error("{}-{partition}: {source}", store::OFFSETS_TOPIC)]
    Log {
        /// The partition of `__consumer_offsets`.
        partition: i32,
        /// The log error.
        source: LogError,
    },
    /// This broker does not lead the group's `__consumer_offsets` partition.
    #[error("{}-{partition} is not led by this broker", store::OFFSETS_TOPIC)]
    NotLeader {
        /// The partition of `__consumer_offsets`.
        partition: i32,
    },
    /// The partition refused the write.
    #[error("{}-{partition}: {message}", store::OFFSETS_TOPIC)]
    Replicated {
        /// The partition of `__consumer_offsets`.
        partition: i32,
        /// What the partition said.
        message: String,
    },
}

impl GroupCoordinator {
    /// A coordinator whose `__consumer_offsets` partitions are replicated topic partitions; it
    /// coordinates the groups of the partitions this broker leads, loaded as leadership
    /// arrives ([`GroupCoordinator::load_partition`]).
    pub(crate) fn new(cfg: GroupConfig) -> Self {
        let store = store::OffsetStore::new(cfg.offsets_topic_num_partitions);
        let check = Duration::from_millis(cfg.offsets_retention_check_interval_ms.max(1));
        let coordinator = GroupCoordinator::with_store(cfg, store);
        if tokio::runtime::Handle::try_current().is_ok() {
            coordinator.spawn_retention_task(check);
        }
        coordinator
    }
}

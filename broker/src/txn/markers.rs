//! Writing transaction markers: the coordinator's only way of touching partitions.
//!
//! The coordinator decides; the partitions record the decision as a control batch (a COMMIT or
//! ABORT marker) from the transaction's producer. [`MarkerWriter`] is that one operation, so
//! the state machine can be tested with a fake that records markers (and fails on demand).
//!
//! The partitions of a transaction are led by any broker of the cluster (all by this one when
//! it is alone): the writer is [`super::marker_channel::ClusterMarkers`], which sends
//! WriteTxnMarkers to each partition's leader, and the leader writes the marker with
//! [`write_as_leader`] (also used when the leader is this broker): data partitions through
//! `Partition::write_txn_marker`, `__consumer_offsets` partitions through the group
//! coordinator, which also turns the producer's pending transactional offsets into committed
//! ones (or drops them). Writing is asynchronous for that reason.

use futures::future::BoxFuture;
use kafka_protocol::error::ResponseError as E;

use crate::group::store::OFFSETS_TOPIC;
use crate::group::GroupCoordinator;
use crate::partition::AppendError;
use crate::topics::Topics;
use crate::wire::KafkaError;

/// How long a leader waits for a marker to reach the ISR before answering REQUEST_TIMED_OUT
/// (the coordinator then retries; the marker is harmless to write twice).
const MARKER_COMMIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The outcome of one transaction, as written to each of its partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Marker {
    /// The transaction's producer id.
    pub(crate) producer_id: i64,
    /// The producer epoch the marker carries (bumped when the coordinator aborted on its own).
    pub(crate) producer_epoch: i16,
    /// COMMIT (true) or ABORT (false).
    pub(crate) commit: bool,
    /// The coordinator epoch: the leader epoch of the transaction's `__transaction_state`
    /// partition.
    pub(crate) coordinator_epoch: i32,
}

impl Marker {
    /// Writes this marker to the local data partition `p`; returns the marker's offset.
    fn write_to(&self, p: &crate::partition::Partition) -> Result<i64, AppendError> {
        p.write_txn_marker(
            self.producer_id,
            self.producer_epoch,
            self.commit,
            self.coordinator_epoch,
            crate::clock::now_ms(),
        )
    }

    /// Writes this marker to `__consumer_offsets` partition `index` through the group
    /// coordinator, which commits or drops the producer's pending offsets there.
    fn complete_offsets(
        &self,
        groups: &GroupCoordinator,
        index: i32,
    ) -> Result<(), crate::group::GroupError> {
        groups.complete_transaction(
            index,
            self.producer_id,
            self.producer_epoch,
            self.commit,
            self.coordinator_epoch,
        )
    }
}

/// Why a marker was not written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum MarkerError {
    /// The partition no longer exists (its topic was deleted): nothing to mark, as in Kafka.
    #[error("the partition does not exist")]
    UnknownPartition,
    /// The partition refused the marker for good (a newer producer epoch or coordinator epoch
    /// already wrote there): retrying cannot help.
    #[error("refused: {0}")]
    Refused(String),
    /// The write failed; the coordinator retries until it succeeds.
    #[error("{0}")]
    Failed(String),
}

/// Writes one marker to one partition. Writing the same marker twice is harmless (recovery
/// rewrites the markers of transactions it finds in a Prepare state).
pub(crate) trait MarkerWriter: Send + Sync {
    /// Writes `marker` to `topic`-`partition`.
    fn write_marker<'a>(
        &'a self,
        topic: &'a str,
        partition: i32,
        marker: &'a Marker,
    ) -> BoxFuture<'a, Result<(), MarkerError>>;
}

/// Writes `marker` to `topic`-`partition`, which this broker must lead, and waits until it is
/// committed (replicated to the ISR, as acks=all): what a leader does for WriteTxnMarkers.
/// `__consumer_offsets` partitions go through the group coordinator, which also completes the
/// producer's pending offsets; they must be loaded here.
pub(crate) async fn write_as_leader(
    topics: &Topics,
    groups: &GroupCoordinator,
    topic: &str,
    partition: i32,
    marker: &Marker,
) -> Result<(), KafkaError> {
    let Some(p) = topics.partition(topic, partition) else {
        return Err(KafkaError::new(
            E::UnknownTopicOrPartition,
            format!("{topic}-{partition} is not hosted by this broker"),
        ));
    };
    let not_leader = || {
        KafkaError::new(
            E::NotLeaderOrFollower,
            format!("this broker does not lead {topic}-{partition}"),
        )
    };
    let Some(epoch) = p.leader_epoch() else {
        return Err(not_leader());
    };
    let offset = if topic == OFFSETS_TOPIC {
        if !groups.is_partition_loaded(partition) {
            // Still loading the groups: the marker must reach them, so the sender retries.
            return Err(not_leader());
        }
        marker
            .complete_offsets(groups, partition)
            .map_err(|e| match e {
                crate::group::GroupError::NotLeader { .. } => not_leader(),
                other => KafkaError::new(E::KafkaStorageError, other.to_string()),
            })?;
        // The marker is the last write of the partition at most: wait for the log end.
        p.log_end_offset() - 1
    } else {
        marker.write_to(&p).map_err(|e| match e {
            AppendError::Sequence(e) => {
                KafkaError::with_code(e.code(), format!("{topic}-{partition}: {e}"))
            }
            AppendError::Log(e) => {
                KafkaError::new(E::KafkaStorageError, format!("{topic}-{partition}: {e}"))
            }
        })?
    };
    let deadline = tokio::time::Instant::now() + MARKER_COMMIT_TIMEOUT;
    crate::partition::committed::wait_committed(&p, offset, epoch, deadline)
        .await
        .map_err(|e| KafkaError::with_code(e.code(), e.to_string()))
}

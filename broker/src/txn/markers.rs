//! Writing transaction markers: the coordinator's only way of touching partitions.
//!
//! The coordinator decides; the partitions record the decision as a control batch (a COMMIT or
//! ABORT marker) from the transaction's producer. [`MarkerWriter`] is that one operation, so
//! the state machine can be tested with a fake that records markers (and fails on demand),
//! while [`BrokerMarkers`] writes them for real: data partitions through
//! `Partition::write_txn_marker`, and `__consumer_offsets` partitions through the group
//! coordinator, which also turns the producer's pending transactional offsets into committed
//! ones (or drops them).

use std::sync::Arc;

use crate::group::store::OFFSETS_TOPIC;
use crate::group::GroupCoordinator;
use crate::partition::AppendError;
use crate::topics::Topics;

/// The outcome of one transaction, as written to each of its partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Marker {
    /// The transaction's producer id.
    pub(crate) producer_id: i64,
    /// The producer epoch the marker carries (bumped when the coordinator aborted on its own).
    pub(crate) producer_epoch: i16,
    /// COMMIT (true) or ABORT (false).
    pub(crate) commit: bool,
    /// The coordinator epoch (constant on this single-node broker).
    pub(crate) coordinator_epoch: i32,
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
    fn write_marker(&self, topic: &str, partition: i32, marker: &Marker)
        -> Result<(), MarkerError>;
}

/// The broker's partitions and its group coordinator.
pub(crate) struct BrokerMarkers {
    /// Data partitions.
    pub(crate) topics: Arc<Topics>,
    /// `__consumer_offsets` partitions and the pending transactional offsets.
    pub(crate) groups: GroupCoordinator,
}

impl MarkerWriter for BrokerMarkers {
    fn write_marker(
        &self,
        topic: &str,
        partition: i32,
        marker: &Marker,
    ) -> Result<(), MarkerError> {
        if topic == OFFSETS_TOPIC {
            return self
                .groups
                .complete_transaction(
                    partition,
                    marker.producer_id,
                    marker.producer_epoch,
                    marker.commit,
                    marker.coordinator_epoch,
                )
                .map_err(|e| MarkerError::Failed(e.to_string()));
        }
        let Some(p) = self.topics.partition(topic, partition) else {
            return Err(MarkerError::UnknownPartition);
        };
        p.write_txn_marker(
            marker.producer_id,
            marker.producer_epoch,
            marker.commit,
            marker.coordinator_epoch,
            crate::clock::now_ms(),
        )
        .map(|_| ())
        .map_err(|e| match e {
            AppendError::Sequence(e) => MarkerError::Refused(format!("{topic}-{partition}: {e}")),
            AppendError::Log(e) => MarkerError::Failed(format!("{topic}-{partition}: {e}")),
        })
    }
}

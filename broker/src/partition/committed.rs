//! Waiting until a leader's write is committed: replicated to every in-sync replica, which is
//! when the high watermark passes it.
//!
//! Produce with acks=all answers only then, and so do the broker's own writes that Kafka makes
//! with acks=-1: transaction log records (the coordinator must not act on a decision a new
//! coordinator could lose) and transaction markers (WriteTxnMarkers answers once the marker is
//! committed). The wait watches the partition's watermarks channel, so it costs nothing while
//! the followers catch up. With a single in-sync replica the high watermark is the log end, so it returns
//! at once.

use tokio::time::Instant;

use crate::partition::Partition;

/// Why a write was not (known to be) committed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CommitError {
    /// This broker stopped leading (or moved to another leader epoch) before the high watermark
    /// passed the write; the new leader may not have it.
    #[error("{topic}-{partition}: leadership lost before the write was replicated")]
    LeadershipLost {
        /// Topic.
        topic: String,
        /// Partition index.
        partition: i32,
    },
    /// The deadline passed first; the write stays in the leader's log.
    #[error("{topic}-{partition}: not replicated to the ISR in time (high watermark {high_watermark}, needed {needed})")]
    TimedOut {
        /// Topic.
        topic: String,
        /// Partition index.
        partition: i32,
        /// The high watermark at the deadline.
        high_watermark: i64,
        /// The offset the high watermark had to reach.
        needed: i64,
    },
}

impl CommitError {
    /// Kafka's error code: NOT_LEADER_OR_FOLLOWER or REQUEST_TIMED_OUT.
    pub(crate) fn code(&self) -> i16 {
        use kafka_protocol::error::ResponseError as E;
        match self {
            CommitError::LeadershipLost { .. } => E::NotLeaderOrFollower.code(),
            CommitError::TimedOut { .. } => E::RequestTimedOut.code(),
        }
    }
}

/// Waits until the high watermark of `partition` passes `last_offset`, written by this broker
/// as the leader of `leader_epoch`, or until `deadline`.
pub(crate) async fn wait_committed(
    partition: &Partition,
    last_offset: i64,
    leader_epoch: i32,
    deadline: Instant,
) -> Result<(), CommitError> {
    let needed = last_offset + 1;
    let mut marks = partition.watch_watermarks();
    loop {
        let m = *marks.borrow_and_update();
        if m.leader_epoch != Some(leader_epoch) {
            return Err(CommitError::LeadershipLost {
                topic: partition.topic.clone(),
                partition: partition.index,
            });
        }
        if m.high_watermark >= needed {
            return Ok(());
        }
        if tokio::time::timeout_at(deadline, marks.changed())
            .await
            .is_err()
        {
            return Err(CommitError::TimedOut {
                topic: partition.topic.clone(),
                partition: partition.index,
                high_watermark: m.high_watermark,
                needed,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_single_replica_write_is_committed_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let p = Partition::open("t", 0, dir.path(), crate::log::LogConfig::default()).unwrap();
        let batch = crate::log::build_batch(
            &[(Some(b"k".as_slice()), Some(b"v".as_slice()))],
            0,
            -1,
            -1,
            -1,
            false,
            false,
        );
        let appended = p.append_from_coordinator(batch, 0).unwrap();
        let deadline = Instant::now() + Duration::from_secs(1);
        wait_committed(&p, appended.last_offset, appended.leader_epoch, deadline)
            .await
            .unwrap();
        let lost = wait_committed(
            &p,
            appended.last_offset,
            appended.leader_epoch + 1,
            deadline,
        )
        .await;
        assert!(
            matches!(lost, Err(CommitError::LeadershipLost { .. })),
            "{lost:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_past_the_log_end_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let p = Partition::open("t", 0, dir.path(), crate::log::LogConfig::default()).unwrap();
        let deadline = Instant::now() + Duration::from_millis(50);
        let err = wait_committed(&p, 10, 0, deadline).await.unwrap_err();
        assert_eq!(
            err.code(),
            kafka_protocol::error::ResponseError::RequestTimedOut.code()
        );
    }
}

//! TxnOffsetCommit v0-3: a transactional producer commits a group's offsets inside its
//! transaction (consume-transform-produce). The transaction coordinator checks the producer
//! and that AddOffsetsToTxn put the group's offsets partition in the transaction; the group
//! coordinator checks the member and generation (v3+) and keeps the offsets pending until the
//! transaction's marker commits or drops them.
//!
//! In a cluster the answer waits until the offsets are replicated to the ISR of their
//! `__consumer_offsets` partition (as Kafka appends them with acks=-1): the transaction's COMMIT
//! marker may reach a new group coordinator, which must have the offsets it commits.

use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};

use super::RequestContext;
use crate::group::coordinator::{CommitPartition, TxnCommitRequest};
use crate::group::store::OFFSETS_TOPIC;

pub(crate) async fn handle(
    ctx: &RequestContext<'_>,
    req: TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    let broker = ctx.broker;
    let group_id = req.group_id.0.to_string();
    let txn_id = req.transactional_id.0.as_str();
    let checked = broker.txn.check_offset_commit(
        txn_id,
        req.producer_id.0,
        req.producer_epoch,
        broker.groups.offsets_partition_for(&group_id),
    );
    let n = req.topics.iter().map(|t| t.partitions.len()).sum();
    let codes: Vec<i16> = match (broker.group_coordinator_error(&group_id).await, checked) {
        (Some(code), _) => vec![code; n],
        // PRODUCER_FENCED exists from v3 on (KIP-588).
        (None, Err(e)) => vec![e.code(ctx.version >= 3); n],
        (None, Ok(())) => {
            let commit = TxnCommitRequest {
                group_id: group_id.clone(),
                producer_id: req.producer_id.0,
                producer_epoch: req.producer_epoch,
                generation_id: if ctx.version >= 3 {
                    req.generation_id
                } else {
                    -1
                },
                member_id: if ctx.version >= 3 {
                    req.member_id.to_string()
                } else {
                    String::new()
                },
                group_instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
                partitions: req
                    .topics
                    .iter()
                    .flat_map(|t| {
                        t.partitions.iter().map(|p| CommitPartition {
                            topic: t.name.0.to_string(),
                            partition: p.partition_index,
                            offset: p.committed_offset,
                            leader_epoch: p.committed_leader_epoch,
                            metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                        })
                    })
                    .collect(),
            };
            let mut codes = broker.groups.commit_txn_offsets(&commit);
            if codes.iter().all(|c| *c == 0) {
                if let Err(code) = replicated(ctx, &group_id).await {
                    codes = vec![code; n];
                }
            }
            if let Some(code) = codes.iter().find(|c| **c != 0) {
                tracing::info!(
                    transactional_id = txn_id,
                    group = %group_id,
                    "TxnOffsetCommit refused by the group coordinator (error {code})"
                );
            }
            codes
        }
    };
    let mut codes = codes.into_iter();
    let mut resp = TxnOffsetCommitResponse::default();
    for t in &req.topics {
        let mut tr = TxnOffsetCommitResponseTopic::default();
        tr.name = t.name.clone();
        for p in &t.partitions {
            let mut pr = TxnOffsetCommitResponsePartition::default();
            pr.partition_index = p.partition_index;
            pr.error_code = codes.next().unwrap_or(0);
            tr.partitions.push(pr);
        }
        resp.topics.push(tr);
    }
    resp
}

/// Waits until what `group_id`'s `__consumer_offsets` partition holds now is
/// replicated to its ISR. `Err(error code)` when leadership moved (NOT_COORDINATOR) or the ISR
/// was too slow (COORDINATOR_NOT_AVAILABLE); the client retries either.
async fn replicated(ctx: &RequestContext<'_>, group_id: &str) -> Result<(), i16> {
    use kafka_protocol::error::ResponseError as E;
    let broker = ctx.broker;
    let index = broker.groups.offsets_partition_for(group_id);
    let Some(p) = broker.topics.partition(OFFSETS_TOPIC, index) else {
        return Err(E::NotCoordinator.code());
    };
    let Some(epoch) = p.leader_epoch() else {
        return Err(E::NotCoordinator.code());
    };
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    crate::partition::committed::wait_committed(&p, p.log_end_offset() - 1, epoch, deadline)
        .await
        .map_err(|e| {
            tracing::info!(group = group_id, "TxnOffsetCommit not replicated: {e}");
            match e {
                crate::partition::committed::CommitError::LeadershipLost { .. } => E::NotCoordinator.code(),
                crate::partition::committed::CommitError::TimedOut { .. } => {
                    E::CoordinatorNotAvailable.code()
                }
            }
        })
}

//! TxnOffsetCommit v0-3: a transactional producer commits a group's offsets inside its
//! transaction (consume-transform-produce). The transaction coordinator checks the producer
//! and that AddOffsetsToTxn put the group's offsets partition in the transaction; the group
//! coordinator checks the member and generation (v3+) and keeps the offsets pending until the
//! transaction's marker commits or drops them.

use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};

use super::RequestContext;
use crate::group::coordinator::{CommitPartition, TxnCommitRequest};

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
    let codes: Vec<i16> = match (broker.group_coordinator_error(&group_id), checked) {
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
            let codes = broker.groups.commit_txn_offsets(&commit);
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

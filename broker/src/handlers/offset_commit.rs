//! OffsetCommit (v2+): partitions of unknown topics get UNKNOWN_TOPIC_OR_PARTITION; the rest
//! go to the group coordinator, which checks membership and generation (generation -1 with an
//! empty member id = a consumer outside group management) and writes them to the
//! `__consumer_offsets` log before this answers. `retention_time_ms` exists in v2-4 only.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

use super::RequestContext;
use crate::group::coordinator::{CommitPartition, CommitRequest};

pub(crate) async fn handle(
    ctx: &RequestContext<'_>,
    req: OffsetCommitRequest,
) -> OffsetCommitResponse {
    // Request order is kept: (topic index, partition index, error or "to commit").
    let mut slots: Vec<Option<i16>> = Vec::new();
    let mut partitions = Vec::new();
    for t in &req.topics {
        for p in &t.partitions {
            if !ctx
                .broker
                .partition_exists(t.name.0.as_str(), p.partition_index)
            {
                slots.push(Some(ResponseError::UnknownTopicOrPartition.code()));
                continue;
            }
            slots.push(None);
            partitions.push(CommitPartition {
                topic: t.name.0.to_string(),
                partition: p.partition_index,
                offset: p.committed_offset,
                leader_epoch: if ctx.version >= 6 {
                    p.committed_leader_epoch
                } else {
                    -1
                },
                metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
            });
        }
    }
    let codes = if partitions.is_empty() {
        Vec::new()
    } else if let Some(code) = ctx.broker.group_coordinator_error(req.group_id.0.as_str()).await {
        vec![code; partitions.len()]
    } else {
        ctx.broker.groups.commit_offsets(&CommitRequest {
            group_id: req.group_id.0.to_string(),
            generation_id: req.generation_id_or_member_epoch,
            member_id: req.member_id.to_string(),
            group_instance_id: if ctx.version >= 7 {
                req.group_instance_id.as_ref().map(|s| s.to_string())
            } else {
                None
            },
            retention_time_ms: if ctx.version <= 4 {
                req.retention_time_ms
            } else {
                -1
            },
            partitions,
        })
    };
    let mut codes = codes.into_iter();
    let mut slots = slots.into_iter();
    let mut resp = OffsetCommitResponse::default();
    for t in req.topics {
        let mut tr = OffsetCommitResponseTopic::default();
        tr.name = t.name;
        for p in t.partitions {
            let mut pr = OffsetCommitResponsePartition::default();
            pr.partition_index = p.partition_index;
            pr.error_code = match slots.next().flatten() {
                Some(code) => code,
                None => codes
                    .next()
                    .unwrap_or(ResponseError::UnknownServerError.code()),
            };
            tr.partitions.push(pr);
        }
        resp.topics.push(tr);
    }
    resp
}

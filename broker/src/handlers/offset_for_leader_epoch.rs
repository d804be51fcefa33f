//! OffsetForLeaderEpoch (API 23): where a leader epoch ends in the leader's log, from its
//! leader epoch cache. Consumers ask it after a leader change (KIP-320) to check that the
//! position they hold was not truncated away; followers of older Kafka versions to find their
//! divergence point (kbroker followers use Fetch v12's `diverging_epoch` instead).
//!
//! The answer is the largest epoch `<=` the requested one with its end offset (the log end for
//! the current epoch), or `-1`/`-1` when the epoch is unknown. Only the leader answers
//! (NOT_LEADER_OR_FOLLOWER otherwise, unless a follower asks with `replica_id >= 0`, which
//! Kafka allows for debugging), with the usual fencing of `current_leader_epoch`.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use super::{unknown_partition, RequestContext};

pub(crate) async fn handle(
    ctx: &RequestContext<'_>,
    req: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let mut resp = OffsetForLeaderEpochResponse::default();
    for t in req.topics {
        let mut tr = OffsetForLeaderTopicResult::default();
        tr.topic = t.topic.clone();
        for p in t.partitions {
            let mut r = EpochEndOffset::default();
            r.partition = p.partition;
            r.leader_epoch = -1;
            r.end_offset = -1;
            match ctx.broker.topics.partition(t.topic.0.as_str(), p.partition) {
                None => r.error_code = unknown_partition(),
                Some(part) => {
                    let epoch = part.role().leader_epoch();
                    let leads = part.leader_epoch().is_some();
                    if !leads && req.replica_id.0 < 0 {
                        r.error_code = ResponseError::NotLeaderOrFollower.code();
                    } else if p.current_leader_epoch >= 0 && p.current_leader_epoch < epoch {
                        r.error_code = ResponseError::FencedLeaderEpoch.code();
                    } else if p.current_leader_epoch > epoch {
                        r.error_code = ResponseError::UnknownLeaderEpoch.code();
                    } else {
                        let (e, end) = part.epoch_end_offset(p.leader_epoch);
                        r.leader_epoch = e;
                        r.end_offset = end;
                    }
                }
            }
            tr.partitions.push(r);
        }
        resp.topics.push(tr);
    }
    resp
}

//! ListOffsets: earliest (-2), latest (-1) or the first offset at or after a timestamp.
//!
//! With `isolation_level` 1 (`read_committed`, v2+) "latest" is the last stable offset and a
//! timestamp lookup only finds offsets below it, as in Kafka; otherwise the high watermark
//! bounds both.
//!
//! Only the leader answers (others: NOT_LEADER_OR_FOLLOWER); a `current_leader_epoch` (v4+)
//! older than the leader's gets FENCED_LEADER_EPOCH, a newer one UNKNOWN_LEADER_EPOCH, and
//! answers carry the leader epoch (v4+).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::{unknown_partition, RequestContext};

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;

pub(crate) async fn handle(
    ctx: &RequestContext<'_>,
    req: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let mut resp = ListOffsetsResponse::default();
    for t in req.topics {
        let mut tr = ListOffsetsTopicResponse::default();
        tr.name = t.name.clone();
        for p in t.partitions {
            let mut pr = ListOffsetsPartitionResponse::default();
            pr.partition_index = p.partition_index;
            pr.timestamp = -1;
            pr.offset = -1;
            if ctx.version >= 4 {
                pr.leader_epoch = 0;
            }
            match ctx
                .broker
                .topics
                .partition(t.name.0.as_str(), p.partition_index)
            {
                None => pr.error_code = unknown_partition(),
                Some(part) => 'found: {
                    let Some(epoch) = part.leader_epoch() else {
                        pr.error_code = ResponseError::NotLeaderOrFollower.code();
                        break 'found;
                    };
                    if ctx.version >= 4 && p.current_leader_epoch >= 0 {
                        if p.current_leader_epoch < epoch {
                            pr.error_code = ResponseError::FencedLeaderEpoch.code();
                            break 'found;
                        }
                        if p.current_leader_epoch > epoch {
                            pr.error_code = ResponseError::UnknownLeaderEpoch.code();
                            break 'found;
                        }
                    }
                    if ctx.version >= 4 {
                        pr.leader_epoch = epoch;
                    }
                    let o = part.offsets();
                    let fetchable = if req.isolation_level == 1 {
                        o.last_stable_offset
                    } else {
                        o.high_watermark
                    };
                    match p.timestamp {
                        LATEST => pr.offset = fetchable,
                        EARLIEST => pr.offset = o.log_start,
                        ts if ts >= 0 => {
                            if let Some((offset, ts)) = part.offset_for_timestamp(ts) {
                                if offset < fetchable {
                                    pr.offset = offset;
                                    pr.timestamp = ts;
                                }
                            }
                        }
                        _ => pr.error_code = ResponseError::UnsupportedVersion.code(),
                    }
                }
            }
            tr.partitions.push(pr);
        }
        resp.topics.push(tr);
    }
    resp
}

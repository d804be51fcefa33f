//! DeleteRecords: moves a partition's log start offset forward (`kafka-delete-records`, the
//! AdminClient's `deleteRecords`); records below it can no longer be read and whole segments
//! below it are deleted. An offset of -1 means the high watermark.
//!
//! Only the leader answers for a partition (others: NOT_LEADER_OR_FOLLOWER); an offset past the
//! high watermark is OFFSET_OUT_OF_RANGE, as in Kafka. Followers learn the new log start from
//! their fetch responses.

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use super::{unknown_partition, RequestContext};

pub(crate) async fn handle(
    ctx: &RequestContext<'_>,
    req: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let mut resp = DeleteRecordsResponse::default();
    for t in req.topics {
        let mut tr = DeleteRecordsTopicResult::default();
        tr.name = t.name.clone();
        for p in t.partitions {
            let mut pr = DeleteRecordsPartitionResult::default();
            pr.partition_index = p.partition_index;
            pr.low_watermark = -1;
            match ctx.broker.topics.partition(t.name.0.as_str(), p.partition_index) {
                None => pr.error_code = unknown_partition(),
                Some(part) => match part.delete_records(p.offset) {
                    Ok(start) => pr.low_watermark = start,
                    Err(code) => pr.error_code = code,
                },
            }
            tr.partitions.push(pr);
        }
        resp.topics.push(tr);
    }
    resp
}

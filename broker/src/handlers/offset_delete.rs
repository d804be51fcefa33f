//! OffsetDelete: removes a group's committed offsets for some partitions
//! (`kafka-consumer-groups --delete-offsets`, the AdminClient's `deleteConsumerGroupOffsets`).
//! Partitions of topics a current member subscribes to keep their offsets
//! (GROUP_SUBSCRIBED_TO_TOPIC), as in Kafka.

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use super::RequestContext;

pub(crate) async fn handle(
    ctx: &RequestContext<'_>,
    req: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let mut resp = OffsetDeleteResponse::default();
    let group = req.group_id.0.as_str();
    if let Some(code) = ctx.broker.group_coordinator_error(group).await {
        resp.error_code = code;
        return resp;
    }
    let wanted: Vec<(String, i32)> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.0.to_string(), p.partition_index))
        })
        .collect();
    let (code, per_partition) = ctx.broker.groups.delete_offsets(group, &wanted);
    resp.error_code = code;
    if code != 0 {
        return resp;
    }
    let mut codes = per_partition.into_iter();
    for t in req.topics {
        let mut tr = OffsetDeleteResponseTopic::default();
        tr.name = t.name;
        for p in t.partitions {
            let mut pr = OffsetDeleteResponsePartition::default();
            pr.partition_index = p.partition_index;
            pr.error_code = codes.next().unwrap_or_default();
            tr.partitions.push(pr);
        }
        resp.topics.push(tr);
    }
    resp
}

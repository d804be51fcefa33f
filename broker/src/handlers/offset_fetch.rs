//! OffsetFetch: committed offsets of a group for the given partitions, or all of them (null
//! topics, v2+). v1-7 ask about one group; v8+ about a batch of groups. A partition without a
//! commit gets offset -1 and no error, as in Kafka. With `require_stable` (v7+, sent by
//! read_committed consumers), a partition with offsets pending in an open transaction
//! (TxnOffsetCommit) gets UNSTABLE_OFFSET_COMMIT and the client retries; without it, the last
//! committed offset is returned.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, TopicName};

use super::RequestContext;
use crate::wire::str_bytes;
use crate::group::state::CommittedOffset;
use crate::broker::Broker;

/// One fetched partition: (partition, committed offset or none, or an error code).
type Fetched = Vec<(String, Vec<(i32, Result<Option<CommittedOffset>, i16>)>)>;

/// Committed offsets of one group, grouped by topic (request order, or sorted for "all").
/// With `require_stable`, partitions with pending transactional offsets come back as `Err`.
/// A broker that is not (or not yet) the group's coordinator answers with the error.
async fn fetch(
    broker: &Broker,
    group_id: &str,
    wanted: Option<Vec<(String, Vec<i32>)>>,
    require_stable: bool,
) -> Result<Fetched, i16> {
    if let Some(code) = broker.group_coordinator_error(group_id).await {
        return Err(code);
    }
    let groups = &broker.groups;
    let rows = groups.fetch_offsets(group_id, wanted.as_deref())?;
    let unstable = if require_stable {
        groups.unstable_partitions(group_id)
    } else {
        Default::default()
    };
    let mut out: Fetched = Vec::new();
    for (topic, partition, offset) in rows {
        let offset = if unstable.contains(&(topic.clone(), partition)) {
            Err(ResponseError::UnstableOffsetCommit.code())
        } else {
            Ok(offset)
        };
        match out.last_mut() {
            Some((t, parts)) if *t == topic => parts.push((partition, offset)),
            _ => out.push((topic, vec![(partition, offset)])),
        }
    }
    Ok(out)
}

pub(crate) async fn handle(
    ctx: &RequestContext<'_>,
    req: OffsetFetchRequest,
) -> OffsetFetchResponse {
    let broker: &Broker = ctx.broker;
    let mut resp = OffsetFetchResponse::default();
    if ctx.version >= 8 {
        for g in req.groups {
            let wanted = g.topics.map(|ts| {
                ts.into_iter()
                    .map(|t| (t.name.0.to_string(), t.partition_indexes))
                    .collect()
            });
            let mut gr = OffsetFetchResponseGroup::default();
            gr.group_id = g.group_id.clone();
            match fetch(broker, g.group_id.0.as_str(), wanted, req.require_stable).await {
                Err(code) => gr.error_code = code,
                Ok(topics) => {
                    for (topic, parts) in topics {
                        let mut tr = OffsetFetchResponseTopics::default();
                        tr.name = TopicName(str_bytes(&topic));
                        for (partition, offset) in parts {
                            let mut pr = OffsetFetchResponsePartitions::default();
                            pr.partition_index = partition;
                            pr.error_code = fill(
                                offset,
                                &mut pr.committed_offset,
                                &mut pr.committed_leader_epoch,
                                &mut pr.metadata,
                            );
                            tr.partitions.push(pr);
                        }
                        gr.topics.push(tr);
                    }
                }
            }
            resp.groups.push(gr);
        }
        return resp;
    }
    let wanted = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes))
            .collect()
    });
    let require_stable = ctx.version >= 7 && req.require_stable;
    let asked = wanted.clone();
    match fetch(broker, req.group_id.0.as_str(), wanted, require_stable).await {
        Err(code) if ctx.version >= 2 => resp.error_code = code,
        // v1 has no top-level error: each asked partition carries it.
        Err(code) => {
            for (topic, parts) in asked.unwrap_or_default() {
                let mut tr = OffsetFetchResponseTopic::default();
                tr.name = TopicName(str_bytes(&topic));
                for partition in parts {
                    let mut pr = OffsetFetchResponsePartition::default();
                    pr.partition_index = partition;
                    pr.error_code = fill(
                        Err(code),
                        &mut pr.committed_offset,
                        &mut pr.committed_leader_epoch,
                        &mut pr.metadata,
                    );
                    tr.partitions.push(pr);
                }
                resp.topics.push(tr);
            }
        }
        Ok(topics) => {
            for (topic, parts) in topics {
                let mut tr = OffsetFetchResponseTopic::default();
                tr.name = TopicName(str_bytes(&topic));
                for (partition, offset) in parts {
                    let mut pr = OffsetFetchResponsePartition::default();
                    pr.partition_index = partition;
                    pr.error_code = fill(
                        offset,
                        &mut pr.committed_offset,
                        &mut pr.committed_leader_epoch,
                        &mut pr.metadata,
                    );
                    tr.partitions.push(pr);
                }
                resp.topics.push(tr);
            }
        }
    }
    resp
}

/// Sets the committed offset fields (-1 / -1 / "" when there is no commit or an error);
/// returns the partition's error code.
fn fill(
    offset: Result<Option<CommittedOffset>, i16>,
    committed_offset: &mut i64,
    leader_epoch: &mut i32,
    metadata: &mut Option<kafka_protocol::protocol::StrBytes>,
) -> i16 {
    let (code, offset) = match offset {
        Ok(o) => (0, o),
        Err(code) => (code, None),
    };
    match offset {
        Some(o) => {
            *committed_offset = o.offset;
            *leader_epoch = o.leader_epoch;
            *metadata = Some(str_bytes(&o.metadata));
        }
        None => {
            *committed_offset = -1;
            *leader_epoch = -1;
            *metadata = Some(str_bytes(""));
        }
    }
    code
}

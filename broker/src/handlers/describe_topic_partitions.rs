//! DescribeTopicPartitions (KIP-966): the partitions of the named topics (or of every topic),
//! paginated by a partition limit and a cursor. Kafka's `kafka-topics --describe` asks this
//! first and falls back to Metadata (printing `Elr: N/A`) when a broker lacks it.
//!
//! As Kafka's `DescribeTopicPartitionsRequestHandler`: topics in name order, starting at the
//! cursor's topic and partition; at most `response_partition_limit` partitions (capped at 2000,
//! Kafka's `max.request.partition.size.limit` default) in one answer, with `next_cursor` naming
//! where the next page starts. A named topic that does not exist is answered with
//! UNKNOWN_TOPIC_OR_PARTITION. kbroker has no eligible leader replicas (Kafka's ELR is off
//! unless `eligible.leader.replicas.version` is enabled), so those lists are empty, as Kafka's.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};

use super::RequestContext;
use crate::wire::str_bytes;

/// Kafka's `max.request.partition.size.limit` default.
const MAX_PARTITIONS: i32 = 2000;

/// Kafka's "authorized operations not requested" value.
const NO_OPERATIONS: i32 = i32::MIN;

pub(crate) async fn handle(
    ctx: &RequestContext<'_>,
    req: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let broker = ctx.broker;
    let mut names: Vec<String> = if req.topics.is_empty() {
        broker.topic_views().into_iter().map(|t| t.name).collect()
    } else {
        req.topics.iter().map(|t| t.name.0.to_string()).collect()
    };
    names.sort();
    names.dedup();
    let (start_topic, mut start_partition) = match &req.cursor {
        Some(c) => (Some(c.topic_name.0.to_string()), c.partition_index.max(0)),
        None => (None, 0),
    };
    let mut budget = req.response_partition_limit.clamp(1, MAX_PARTITIONS);
    let mut resp = DescribeTopicPartitionsResponse::default();
    for name in names {
        if let Some(start) = &start_topic {
            if name < *start {
                continue;
            }
            if name != *start {
                start_partition = 0;
            }
        }
        let mut tr = DescribeTopicPartitionsResponseTopic::default();
        tr.name = Some(TopicName(str_bytes(&name)));
        tr.topic_authorized_operations = NO_OPERATIONS;
        let Some(view) = broker.topic_view(&name) else {
            tr.error_code = ResponseError::UnknownTopicOrPartition.code();
            resp.topics.push(tr);
            continue;
        };
        if budget == 0 {
            resp.next_cursor = Some(cursor(&name, start_partition));
            break;
        }
        tr.topic_id = view.id;
        tr.is_internal = view.is_internal();
        for p in view.partitions.iter().filter(|p| p.index >= start_partition) {
            if budget == 0 {
                resp.next_cursor = Some(cursor(&name, p.index));
                break;
            }
            budget -= 1;
            let mut pr = DescribeTopicPartitionsResponsePartition::default();
            pr.partition_index = p.index;
            pr.leader_id = BrokerId(p.leader);
            pr.leader_epoch = p.leader_epoch;
            pr.replica_nodes = p.replicas.iter().copied().map(BrokerId).collect();
            pr.isr_nodes = p.isr.iter().copied().map(BrokerId).collect();
            pr.offline_replicas = p.offline.iter().copied().map(BrokerId).collect();
            pr.eligible_leader_replicas = Some(Vec::new());
            pr.last_known_elr = Some(Vec::new());
            if p.leader < 0 {
                pr.error_code = ResponseError::LeaderNotAvailable.code();
            }
            tr.partitions.push(pr);
        }
        resp.topics.push(tr);
        start_partition = 0;
        if resp.next_cursor.is_some() {
            break;
        }
    }
    resp
}

fn cursor(topic: &str, partition: i32) -> Cursor {
    let mut c = Cursor::default();
    c.topic_name = TopicName(str_bytes(topic));
    c.partition_index = partition;
    c
}

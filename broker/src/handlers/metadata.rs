//! Metadata: the brokers, and for each topic its partitions with leader, replicas and ISR.
//!
//! The answer comes from [`crate::cluster_view`]: this broker alone, or the whole cluster as
//! the Raft metadata describes it (every live broker, leaders, ISR, offline replicas).
//!
//! A request for an unknown topic auto-creates it when `auto.create.topics.enable` is on and the
//! client allows it (v4+), as Kafka does; the new topic is answered at once, ready to use.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};

use super::RequestContext;
use crate::wire::str_bytes;
use crate::cluster_view::TopicView;

pub(crate) async fn handle(ctx: &RequestContext<'_>, req: MetadataRequest) -> MetadataResponse {
    let broker = ctx.broker;
    let mut resp = MetadataResponse::default();
    for live in broker.live_brokers() {
        let mut b = MetadataResponseBroker::default();
        b.node_id = BrokerId(live.id);
        b.host = str_bytes(&live.host);
        b.port = i32::from(live.port);
        b.rack = live.rack.as_deref().map(str_bytes);
        resp.brokers.push(b);
    }
    resp.cluster_id = Some(str_bytes(&broker.cluster_id));
    resp.controller_id = BrokerId(broker.controller_id());

    let all = match &req.topics {
        None => true,
        Some(t) => t.is_empty() && ctx.version == 0,
    };
    if all {
        for t in broker.topic_views() {
            resp.topics.push(describe(&t));
        }
        return resp;
    }
    let auto_create =
        broker.config.auto_create_topics && (ctx.version < 4 || req.allow_auto_topic_creation);
    for rt in req.topics.unwrap_or_default() {
        let found = match &rt.name {
            Some(name) => broker
                .topic_view(name.0.as_str())
                .ok_or(name.0.to_string()),
            None => broker.topic_view_by_id(rt.topic_id).ok_or_else(String::new),
        };
        let topic = match found {
            Ok(t) => Ok(t),
            Err(name) if auto_create && !name.is_empty() && !name.starts_with("__") => {
                match broker
                    .create_topic(&name, -1, -1, Default::default(), false)
                    .await
                {
                    Ok(t) => Ok(t),
                    // Another client created it at the same moment.
                    Err(e) if e.code() == ResponseError::TopicAlreadyExists.code() => broker
                        .topic_view(&name)
                        .ok_or((ResponseError::LeaderNotAvailable.code(), name)),
                    Err(e) => Err((e.code(), name)),
                }
            }
            Err(name) => {
                let code = if crate::topics::validate_name(&name).is_err() && !name.is_empty() {
                    ResponseError::InvalidTopicException.code()
                } else {
                    ResponseError::UnknownTopicOrPartition.code()
                };
                Err((code, name))
            }
        };
        match topic {
            Ok(t) => resp.topics.push(describe(&t)),
            Err((code, name)) => {
                let mut tr = MetadataResponseTopic::default();
                tr.error_code = code;
                tr.name = Some(TopicName(str_bytes(&name)));
                tr.topic_id = rt.topic_id;
                resp.topics.push(tr);
            }
        }
    }
    resp
}

/// A topic as Metadata shows it. A partition without a leader carries LEADER_NOT_AVAILABLE, so
/// clients retry instead of giving up on it.
fn describe(t: &TopicView) -> MetadataResponseTopic {
    let mut tr = MetadataResponseTopic::default();
    tr.name = Some(TopicName(str_bytes(&t.name)));
    tr.topic_id = t.id;
    tr.is_internal = t.is_internal();
    for p in &t.partitions {
        let mut pr = MetadataResponsePartition::default();
        pr.partition_index = p.index;
        pr.leader_id = BrokerId(p.leader);
        pr.leader_epoch = p.leader_epoch;
        pr.replica_nodes = p.replicas.iter().copied().map(BrokerId).collect();
        pr.isr_nodes = p.isr.iter().copied().map(BrokerId).collect();
        pr.offline_replicas = p.offline.iter().copied().map(BrokerId).collect();
        if p.leader < 0 {
            pr.error_code = ResponseError::LeaderNotAvailable.code();
        }
        tr.partitions.push(pr);
    }
    tr
}

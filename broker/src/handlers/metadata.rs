//! Metadata: the brokers, and for each topic its partitions with leader, replicas and ISR.
//!
//! A request for an unknown topic auto-creates it when `auto.create.topics.enable` is on and the
//! client allows it (v4+), as Kafka does; the new topic is answered at once, ready to use.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};

use super::{str_bytes, RequestContext};
use crate::topics::{Topic, TopicError};

pub(crate) async fn handle(ctx: &RequestContext<'_>, req: MetadataRequest) -> MetadataResponse {
    let broker = ctx.broker;
    let me = BrokerId(broker.node_id());
    let mut resp = MetadataResponse::default();
    let mut b = MetadataResponseBroker::default();
    b.node_id = me;
    b.host = str_bytes(&broker.advertised_host);
    b.port = broker.advertised_port as i32;
    b.rack = broker.config.rack.as_deref().map(str_bytes);
    resp.brokers.push(b);
    resp.cluster_id = Some(str_bytes(&broker.cluster_id));
    resp.controller_id = me;

    let all = match &req.topics {
        None => true,
        Some(t) => t.is_empty() && ctx.version == 0,
    };
    if all {
        for t in broker.topics.all() {
            resp.topics.push(describe(&t, me));
        }
        return resp;
    }
    let auto_create =
        broker.config.auto_create_topics && (ctx.version < 4 || req.allow_auto_topic_creation);
    for rt in req.topics.unwrap_or_default() {
        let found = match &rt.name {
            Some(name) => broker.topics.get(name.0.as_str()).ok_or(name.0.to_string()),
            None => broker.topics.get_by_id(rt.topic_id).ok_or_else(String::new),
        };
        let topic = match found {
            Ok(t) => Ok(t),
            Err(name) if auto_create && !name.is_empty() => {
                match broker
                    .topics
                    .create(&name, -1, -1, Default::default(), false)
                {
                    Ok(t) => Ok(t),
                    // Another client created it at the same moment.
                    Err(TopicError::AlreadyExists(_)) => broker
                        .topics
                        .get(&name)
                        .ok_or((ResponseError::UnknownTopicOrPartition.code(), name)),
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
            Ok(t) => resp.topics.push(describe(&t, me)),
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

/// A topic as Metadata shows it: this broker leads every partition.
fn describe(t: &Topic, me: BrokerId) -> MetadataResponseTopic {
    let mut tr = MetadataResponseTopic::default();
    tr.name = Some(TopicName(str_bytes(&t.name)));
    tr.topic_id = t.id;
    tr.is_internal = t.name.starts_with("__");
    for p in &t.partitions {
        let mut pr = MetadataResponsePartition::default();
        pr.partition_index = p.index;
        pr.leader_id = me;
        pr.leader_epoch = 0;
        pr.replica_nodes = vec![me];
        pr.isr_nodes = vec![me];
        tr.partitions.push(pr);
    }
    tr
}

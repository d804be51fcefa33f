//! CreateTopics: validate and create each topic; v5+ answers with the resulting configs.

use std::collections::BTreeMap;

use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};

use super::RequestContext;
use crate::wire::str_bytes;
use crate::topics::TopicConfigs;

/// DescribeConfigs/CreateTopics config sources.
pub(crate) const SOURCE_TOPIC: i8 = 1;
pub(crate) const SOURCE_STATIC_BROKER: i8 = 4;
pub(crate) const SOURCE_DEFAULT: i8 = 5;

pub(crate) async fn handle(
    ctx: &RequestContext<'_>,
    req: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let broker = ctx.broker;
    let mut resp = CreateTopicsResponse::default();
    for t in req.topics {
        let name = t.name.0.to_string();
        let mut r = CreatableTopicResult::default();
        r.name = t.name.clone();
        let configs: BTreeMap<String, String> = t
            .configs
            .iter()
            .filter_map(|c| Some((c.name.to_string(), c.value.as_ref()?.to_string())))
            .collect();
        let (partitions, rf) = if t.assignments.is_empty() {
            (t.num_partitions, t.replication_factor)
        } else {
            // Manual assignment: one entry per partition, replicas listed per partition.
            let rf = t.assignments[0].broker_ids.len() as i16;
            (t.assignments.len() as i32, rf)
        };
        let result = broker
            .create_topic(&name, partitions, rf, configs, req.validate_only)
            .await;
        match result {
            Ok(topic) => {
                r.topic_id = topic.id;
                r.num_partitions = if req.validate_only {
                    partitions.max(broker.config.num_partitions)
                } else {
                    topic.partitions.len() as i32
                };
                r.replication_factor = topic.replication_factor;
                if ctx.version >= 5 {
                    let entries = TopicConfigs::new(&broker.config, &topic.configs).entries();
                    r.configs = Some(
                        entries
                            .into_iter()
                            .map(|(k, v, is_default)| {
                                let mut c = CreatableTopicConfigs::default();
                                c.name = str_bytes(k);
                                c.value = Some(str_bytes(&v));
                                c.config_source = if is_default {
                                    SOURCE_DEFAULT
                                } else {
                                    SOURCE_TOPIC
                                };
                                c
                            })
                            .collect(),
                    );
                }
            }
            Err(e) => {
                r.error_code = e.code();
                r.error_message = Some(str_bytes(&e.to_string()));
                r.num_partitions = -1;
                r.replication_factor = -1;
            }
        }
        resp.topics.push(r);
    }
    resp
}

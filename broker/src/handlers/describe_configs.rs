//! DescribeConfigs: topic configs (overrides and defaults) and broker configs.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};

use super::create_topics::{SOURCE_DEFAULT, SOURCE_STATIC_BROKER, SOURCE_TOPIC};
use super::{str_bytes, RequestContext};
use crate::topics::TopicConfigs;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

pub(crate) async fn handle(
    ctx: &RequestContext<'_>,
    req: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let broker = ctx.broker;
    let mut resp = DescribeConfigsResponse::default();
    for res in req.resources {
        let mut r = DescribeConfigsResult::default();
        r.resource_type = res.resource_type;
        r.resource_name = res.resource_name.clone();
        let name = res.resource_name.to_string();
        let entries: Result<Vec<(String, String, i8)>, (i16, String)> = match res.resource_type {
            RESOURCE_TOPIC => match broker.topics.get(&name) {
                Some(t) => Ok(TopicConfigs::new(&broker.config, &t.configs)
                    .entries()
                    .into_iter()
                    .map(|(k, v, d)| {
                        (
                            k.to_owned(),
                            v,
                            if d { SOURCE_DEFAULT } else { SOURCE_TOPIC },
                        )
                    })
                    .collect()),
                None => Err((
                    ResponseError::UnknownTopicOrPartition.code(),
                    format!("topic {name} does not exist"),
                )),
            },
            RESOURCE_BROKER if name.is_empty() || name == broker.node_id().to_string() => {
                Ok(broker
                    .config
                    .raw
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone(), SOURCE_STATIC_BROKER))
                    .collect())
            }
            RESOURCE_BROKER => Err((
                ResponseError::InvalidRequest.code(),
                format!("broker {name} is not this broker ({})", broker.node_id()),
            )),
            other => Err((
                ResponseError::InvalidRequest.code(),
                format!("resource type {other} is not supported (topic = 2, broker = 4)"),
            )),
        };
        match entries {
            Ok(entries) => {
                let keys = res.configuration_keys.as_ref();
                for (k, v, source) in entries {
                    if keys.is_some_and(|ks| !ks.iter().any(|x| x.as_str() == k)) {
                        continue;
                    }
                    let mut c = DescribeConfigsResourceResult::default();
                    c.name = str_bytes(&k);
                    c.value = Some(str_bytes(&v));
                    c.config_source = source;
                    r.configs.push(c);
                }
            }
            Err((code, msg)) => {
                r.error_code = code;
                r.error_message = Some(str_bytes(&msg));
            }
        }
        resp.results.push(r);
    }
    resp
}

//! IncrementalAlterConfigs: set, delete, append to or subtract from a topic's config overrides
//! (`kafka-configs --alter`, the Java AdminClient's `incrementalAlterConfigs`).
//!
//! Topic resources go through [`crate::broker::Broker::alter_topic_configs`] (the controller,
//! through the metadata log); the partitions take the new storage settings at once. Broker resources are refused with INVALID_REQUEST: kbroker's broker configuration is
//! its `server.properties` and command line, with no dynamic layer as in Kafka.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};

use super::RequestContext;
use crate::wire::{str_bytes, KafkaError};
use crate::topics::configs::Alteration;
use crate::topics::TopicError;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

pub(crate) async fn handle(
    ctx: &RequestContext<'_>,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut resp = IncrementalAlterConfigsResponse::default();
    for res in req.resources {
        let mut r = AlterConfigsResourceResponse::default();
        r.resource_type = res.resource_type;
        r.resource_name = res.resource_name.clone();
        let name = res.resource_name.to_string();
        let outcome: Result<(), KafkaError> = match res.resource_type {
            RESOURCE_TOPIC => {
                let changes: Result<Vec<(String, Alteration)>, TopicError> = res
                    .configs
                    .iter()
                    .map(|c| {
                        Alteration::from_wire(c.config_operation, c.value.as_deref())
                            .map(|a| (c.name.to_string(), a))
                    })
                    .collect();
                let done = match changes {
                    Ok(changes) => {
                        ctx.broker
                            .alter_topic_configs(&name, &changes, req.validate_only)
                            .await
                    }
                    Err(e) => Err(e),
                };
                done.map_err(|e| KafkaError::with_code(e.code(), e.to_string()))
            }
            RESOURCE_BROKER => Err(KafkaError::new(
                ResponseError::InvalidRequest,
                "kbroker has no dynamic broker configs: set them in server.properties or with \
                 --override and restart the broker"
                    .to_owned(),
            )),
            other => Err(KafkaError::new(
                ResponseError::InvalidRequest,
                format!("resource type {other} is not supported (2 = topic)"),
            )),
        };
        if let Err(e) = outcome {
            r.error_code = e.code;
            r.error_message = Some(str_bytes(&e.message));
        }
        resp.responses.push(r);
    }
    resp
}

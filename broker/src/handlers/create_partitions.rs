//! CreatePartitions: grow a topic's partition count (never shrink, as in Kafka).

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};

use super::RequestContext;
use crate::wire::str_bytes;

pub(crate) async fn handle(
    ctx: &RequestContext<'_>,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut resp = CreatePartitionsResponse::default();
    for t in req.topics {
        let mut r = CreatePartitionsTopicResult::default();
        r.name = t.name.clone();
        if let Err(e) = ctx
            .broker
            .create_partitions(t.name.0.as_str(), t.count, req.validate_only)
            .await
        {
            r.error_code = e.code();
            r.error_message = Some(str_bytes(&e.to_string()));
        }
        resp.results.push(r);
    }
    resp
}

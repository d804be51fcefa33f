//! DeleteTopics: by name (v0-5) or by name or id (v6+).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};

use super::RequestContext;
use crate::wire::str_bytes;

pub(crate) async fn handle(
    ctx: &RequestContext<'_>,
    req: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let broker = ctx.broker;
    // v0-5 list names; v6+ lists states carrying a name or an id.
    let targets: Vec<(Option<String>, uuid::Uuid)> = if ctx.version >= 6 {
        req.topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id))
            .collect()
    } else {
        req.topic_names
            .iter()
            .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil()))
            .collect()
    };
    let mut resp = DeleteTopicsResponse::default();
    for (name, id) in targets {
        let mut r = DeletableTopicResult::default();
        r.topic_id = id;
        let name = name.or_else(|| broker.topic_view_by_id(id).map(|t| t.name));
        match name {
            None => {
                r.error_code = ResponseError::UnknownTopicId.code();
                r.error_message = Some(str_bytes(&format!("no topic has id {id}")));
            }
            Some(name) => {
                r.name = Some(TopicName(str_bytes(&name)));
                let topic_id = broker.topic_view(&name).map(|t| t.id);
                match broker.delete_topic(&name).await {
                    Ok(()) => r.topic_id = topic_id.unwrap_or(id),
                    Err(e) => {
                        r.error_code = e.code();
                        if ctx.version >= 5 {
                            r.error_message = Some(str_bytes(&e.to_string()));
                        }
                    }
                }
            }
        }
        resp.responses.push(r);
    }
    resp
}
